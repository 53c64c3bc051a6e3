//! What every request handler can reach, whatever protocol it arrived by: the front door (the
//! inference pipeline), the registry of served models, the per-server limits, the metrics, the
//! reloader and the auth policy.
//!
//! [`AppState::new`] is the one way to build it; start-up ([`crate::startup::assemble`]) calls it
//! with the resolved configuration and the tests with [`StateOptions::default`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{Auth, AuthConfig};
use crate::front_door::{FrontDoor, Observer};
use crate::metrics::Metrics;
use crate::prediction_log::PredictionLog;
use crate::serving::Backends;
use crate::serving::ModelRegistry;
use crate::serving::ModelSource;
use crate::serving::Reloader;
use crate::serving::ShadowSink;
use crate::transport::budget::BodyBudget;

/// The deadline of a request that sets none.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request's body may take to arrive after its head, by default.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request body, by default.
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 8 * 1024 * 1024;
/// The memory budget for request bodies in flight, by default (less under a small memory
/// limit: see `startup::preflight`).
pub const DEFAULT_BODY_BUDGET_BYTES: usize = 256 * 1024 * 1024;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub registry: Arc<ModelRegistry>,
    /// How long a request may take when it does not say (`x-timeout-ms`).
    pub request_timeout: Duration,
    /// How long a request's body may take to arrive after its head.
    pub body_timeout: Duration,
    /// The largest request body or gRPC message, in bytes.
    pub body_limit_bytes: usize,
    /// The memory budget every request body and message is read under.
    pub body_budget: BodyBudget,
    /// The inference pipeline every protocol goes through.
    pub door: FrontDoor,
    pub metrics: Arc<Metrics>,
    /// Loads and unloads models for the repository API; `None` when the server was given no
    /// repository to reload from.
    pub reloader: Option<Arc<Reloader>>,
    /// Who may call what; `None`: everyone may call everything.
    pub auth: Option<Arc<Auth>>,
    /// The prediction log, when one is kept (it also observes the door).
    pub prediction_log: Option<Arc<PredictionLog>>,
}

/// How a state is set up beyond its models.
#[derive(Debug)]
pub struct StateOptions {
    pub request_timeout: Duration,
    pub body_timeout: Duration,
    /// The largest request body or gRPC message, in bytes.
    pub body_limit_bytes: usize,
    /// The memory budget for request bodies in flight, in bytes.
    pub body_budget_bytes: usize,
    /// Large bodies decoded at once: the CPUs this process may use.
    pub decode_permits: usize,
    pub auth: Option<AuthConfig>,
    /// The repository to reload from (the repository API, SIGHUP, the watcher).
    pub reload: Option<ReloadFrom>,
    /// What sees every served request (see [`crate::front_door::Observer`]).
    pub observers: Vec<Arc<dyn Observer>>,
    /// The prediction log, when one is kept: added to the observers.
    pub prediction_log: Option<Arc<PredictionLog>>,
}

/// Where reloads come from: the repository, the engines that load its models, and the sources
/// the registry was loaded from.
#[derive(Debug)]
pub struct ReloadFrom {
    pub repository: PathBuf,
    pub backends: Backends,
    pub sources: Vec<ModelSource>,
}

impl Default for StateOptions {
    /// The defaults: timeouts as documented, one decode permit per CPU, no auth, no reloads.
    fn default() -> StateOptions {
        StateOptions {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
            body_budget_bytes: DEFAULT_BODY_BUDGET_BYTES,
            decode_permits: std::thread::available_parallelism().map_or(1, usize::from),
            auth: None,
            reload: None,
            observers: Vec::new(),
            prediction_log: None,
        }
    }
}

impl AppState {
    /// A state serving `registry`, with fresh metrics.
    pub fn new(registry: ModelRegistry, options: StateOptions) -> AppState {
        let registry = Arc::new(registry);
        let metrics = Arc::new(Metrics::new());
        let reloader = options.reload.map(|from| {
            Arc::new(Reloader::new(
                from.repository,
                from.backends,
                Arc::clone(&registry),
                Arc::clone(&metrics),
                &from.sources,
            ))
        });
        metrics
            .body_budget_bytes
            .set(i64::try_from(options.body_budget_bytes).unwrap_or(i64::MAX));
        let mut observers = options.observers;
        if let Some(log) = &options.prediction_log {
            observers.push(Arc::clone(log) as Arc<dyn Observer>);
        }
        let mut door = FrontDoor::new(Arc::clone(&registry), options.decode_permits, observers);
        if let Some(log) = &options.prediction_log {
            door = door.with_shadow_sink(Arc::clone(log) as Arc<dyn ShadowSink>);
        }
        AppState {
            door,
            prediction_log: options.prediction_log,
            registry,
            request_timeout: options.request_timeout,
            body_timeout: options.body_timeout,
            body_limit_bytes: options.body_limit_bytes,
            body_budget: BodyBudget::new(
                options.body_budget_bytes,
                metrics.body_bytes_in_flight.clone(),
            ),
            metrics,
            reloader,
            auth: options
                .auth
                .as_ref()
                .map(|config| Arc::new(Auth::new(config))),
        }
    }
}

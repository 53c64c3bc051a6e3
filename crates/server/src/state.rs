//! What every request handler can reach, whatever protocol it arrived by: the registry of
//! served models, the per-server limits, the metrics, the reloader and the auth policy.
//!
//! [`AppState::new`] is the one way to build it; start-up ([`crate::startup::assemble`]) calls it
//! with the resolved configuration and the tests with [`StateOptions::default`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{Auth, AuthConfig};
use crate::metrics::Metrics;
use crate::serving::Backends;
use crate::serving::ModelRegistry;
use crate::serving::ModelSource;
use crate::serving::Reloader;

/// The deadline of a request that sets none.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request's body may take to arrive after its head, by default.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub registry: Arc<ModelRegistry>,
    /// How long a request may take when it does not say (`x-timeout-ms`).
    pub request_timeout: Duration,
    /// How long a request's body may take to arrive after its head.
    pub body_timeout: Duration,
    /// Permits to decode a large body (one per CPU): see `api::body::DecodeSlot`.
    pub large_bodies: Arc<tokio::sync::Semaphore>,
    pub metrics: Arc<Metrics>,
    /// Loads and unloads models for the repository API; `None` when the server was given no
    /// repository to reload from.
    pub reloader: Option<Arc<Reloader>>,
    /// Who may call what; `None`: everyone may call everything.
    pub auth: Option<Arc<Auth>>,
}

/// How a state is set up beyond its models.
#[derive(Debug)]
pub struct StateOptions {
    pub request_timeout: Duration,
    pub body_timeout: Duration,
    /// Large bodies decoded at once: the CPUs this process may use.
    pub decode_permits: usize,
    pub auth: Option<AuthConfig>,
    /// The repository to reload from (the repository API, SIGHUP, the watcher).
    pub reload: Option<ReloadFrom>,
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
            decode_permits: std::thread::available_parallelism().map_or(1, usize::from),
            auth: None,
            reload: None,
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
        AppState {
            registry,
            request_timeout: options.request_timeout,
            body_timeout: options.body_timeout,
            large_bodies: Arc::new(tokio::sync::Semaphore::new(options.decode_permits.max(1))),
            metrics,
            reloader,
            auth: options
                .auth
                .as_ref()
                .map(|config| Arc::new(Auth::new(config))),
        }
    }
}

//! What every request handler can reach, whatever protocol it arrived by: the registry of
//! served models, the per-server limits, the metrics, the reloader and the auth policy.
//!
//! [`AppState::new`] is the one way to build it; start-up ([`crate::startup::assemble`]) calls it
//! with the resolved configuration and the tests with [`StateOptions::default`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;

use crate::auth::{Auth, AuthConfig};
use crate::metrics::Metrics;
use crate::outcome::error::{ApiError, ErrorCode};
use crate::serving::Backends;
use crate::serving::ModelRegistry;
use crate::serving::ModelSource;
use crate::serving::Reloader;
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
    /// Permits to decode a large body or message (one per CPU): see [`DecodeSlot`].
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
    /// The largest request body or gRPC message, in bytes.
    pub body_limit_bytes: usize,
    /// The memory budget for request bodies in flight, in bytes.
    pub body_budget_bytes: usize,
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
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
            body_budget_bytes: DEFAULT_BODY_BUDGET_BYTES,
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
        metrics
            .body_budget_bytes
            .set(i64::try_from(options.body_budget_bytes).unwrap_or(i64::MAX));
        AppState {
            registry,
            request_timeout: options.request_timeout,
            body_timeout: options.body_timeout,
            body_limit_bytes: options.body_limit_bytes,
            body_budget: BodyBudget::new(
                options.body_budget_bytes,
                metrics.body_bytes_in_flight.clone(),
            ),
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

/// Bodies from this size on are large: a few megabytes of JSON take a tenth of a second or
/// more to parse and check, and tens of megabytes once parsed. Smaller ones are decoded in
/// place, as a thread hop would cost more than their decoding.
pub const LARGE_BODY_BYTES: usize = 64 * 1024;

/// Where a body's CPU-heavy decoding runs. A small body is decoded in place. A large one is
/// decoded on the blocking pool, so it never stalls the runtime's few threads (and with them
/// every other connection), and only under a permit from [`AppState::large_bodies`] (one per
/// CPU), held from its parse until its JSON is dropped: however many clients send megabytes at
/// once, only that many large bodies are decoded, and held parsed in memory, at a time.
#[derive(Debug)]
pub struct DecodeSlot(Option<OwnedSemaphorePermit>);

impl DecodeSlot {
    /// The slot for a body of `size` bytes; a large one waits for a permit, at most the
    /// server's request timeout (then 503 `overloaded`).
    pub async fn acquire(state: &AppState, size: usize) -> Result<DecodeSlot, ApiError> {
        if size < LARGE_BODY_BYTES {
            return Ok(DecodeSlot(None));
        }
        let permit = Arc::clone(&state.large_bodies).acquire_owned();
        match tokio::time::timeout(state.request_timeout, permit).await {
            Ok(Ok(permit)) => Ok(DecodeSlot(Some(permit))),
            Ok(Err(closed)) => Err(ApiError::internal(&closed)),
            Err(_) => Err(ApiError::new(
                ErrorCode::Overloaded,
                "too many large request bodies are being decoded; retry after the Retry-After delay",
            )),
        }
    }

    /// Runs `work` (which should own, and so drop, the body it decodes) where this slot says.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        if self.0.is_none() {
            return Ok(work());
        }
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|err| ApiError::internal(&err))
    }
}

//! The steps of start-up that [`crate::startup::preflight`] sequences: locating and loading ONNX
//! Runtime, loading models, binding the address; then serving until SIGTERM or SIGINT and
//! finishing the requests in flight.

pub mod config;
pub mod diagnostics;
pub mod preflight;
pub use preflight::{Engines, Mode, Outcome, Prepared, assemble};
pub mod resources;
pub mod telemetry;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::signal::unix::{Signal, SignalKind, signal};

use warden_runtime::RuntimeError;
use warden_runtime::onnxruntime::{ExplicitLibrary, LibrarySearch, OnnxRuntime, locate_library};

use crate::api::connections::{self, ConnectionLimits};
use crate::api::router;
use crate::serving::backends::Backends;
use crate::startup::config::ServeConfig;
use crate::startup::diagnostics::StartupError;
use crate::state::AppState;

/// Locates and loads ONNX Runtime. Once per process: ONNX Runtime keeps one environment.
/// `explicit` are the places the user named, highest precedence first (see
/// [`crate::startup::config::resolve`]); then `python3`'s onnxruntime package and project `.venv`s.
pub fn init_onnxruntime(explicit: &[ExplicitLibrary]) -> Result<Arc<OnnxRuntime>, StartupError> {
    let search = LibrarySearch {
        explicit: explicit.to_vec(),
        python: Some("python3".into()),
        venvs: project_venvs(),
    };
    let mut located = locate_library(&search).map_err(StartupError::OnnxRuntime)?;
    if let Ok(absolute) = std::fs::canonicalize(&located.path) {
        located.path = absolute;
    }
    let runtime = OnnxRuntime::init(&located.path).map_err(StartupError::OnnxRuntime)?;
    tracing::info!(
        library = %located.path.display(),
        found_by = %located.found_by,
        version = runtime.version(),
        "ONNX Runtime loaded"
    );
    Ok(Arc::new(runtime))
}

/// The engines for this process: ONNX Runtime when its library is found, and tract when built
/// in. ONNX Runtime missing everywhere is not fatal when tract can serve instead; a library the
/// user named that does not load is.
pub fn backends(explicit: &[ExplicitLibrary]) -> Result<Backends, StartupError> {
    match init_onnxruntime(explicit) {
        Ok(runtime) => {
            let detail = format!("{} from {}", runtime.version(), runtime.library().display());
            let mut backends = Backends::new(Some(runtime), None);
            backends.onnxruntime_detail = Some(detail);
            Ok(backends)
        }
        Err(StartupError::OnnxRuntime(missing @ RuntimeError::LibraryNotFound { .. }))
            if Backends::new(None, None).tract.is_some() =>
        {
            tracing::warn!(
                error = %missing,
                "no ONNX Runtime library: models load on tract, the built-in pure-Rust engine"
            );
            Ok(Backends::new(None, Some(missing.to_string())))
        }
        Err(err) => Err(err),
    }
}

/// `.venv` in the working directory and beside the binary's ancestors (so
/// `target/release/warden` finds the project's own `.venv`).
fn project_venvs() -> Vec<PathBuf> {
    let mut venvs = vec![PathBuf::from(".venv")];
    if let Ok(exe) = std::env::current_exe() {
        venvs.extend(exe.ancestors().skip(1).take(4).map(|dir| dir.join(".venv")));
    }
    venvs.dedup();
    venvs
}

/// Binds the configured address.
pub fn bind(config: &ServeConfig) -> Result<std::net::TcpListener, StartupError> {
    let address = SocketAddr::new(config.host, config.port);
    let listener = std::net::TcpListener::bind(address)
        .map_err(|source| StartupError::Bind { address, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| StartupError::Bind { address, source })?;
    Ok(listener)
}

/// Serves `state` on `listener` until `shutdown` resolves, then finishes in-flight requests
/// for at most the grace period in `limits`.
pub async fn serve(
    state: AppState,
    listener: std::net::TcpListener,
    body_limit_bytes: usize,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|err| StartupError::Internal(format!("cannot adopt the listener: {err}")))?;
    let address = listener
        .local_addr()
        .map_err(|err| StartupError::Internal(format!("cannot read the bound address: {err}")))?;
    tracing::info!(
        address = %address,
        max_connections = limits.max_connections,
        header_timeout_ms = limits.header_timeout.as_millis() as u64,
        idle_timeout_ms = limits.idle_timeout.as_millis() as u64,
        "listening"
    );
    let metrics = Arc::clone(&state.metrics);
    connections::serve(
        listener,
        router(state, body_limit_bytes),
        limits,
        metrics,
        shutdown,
    )
    .await;
    Ok(())
}

/// The signals warden acts on: SIGTERM and SIGINT (finish in-flight requests, then exit) and
/// SIGHUP (rescan the repository). Registered before the server reports `listening`, so a
/// signal sent right after start-up is never met by the default action (death mid-request).
#[derive(Debug)]
pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
    /// Each SIGHUP received.
    pub hangup: Signal,
}

impl Signals {
    /// Registers the handlers; needs a running tokio runtime.
    pub fn install() -> Result<Signals, StartupError> {
        let register = |kind: SignalKind, name: &str| {
            signal(kind)
                .map_err(|err| StartupError::Internal(format!("cannot handle {name}: {err}")))
        };
        Ok(Signals {
            terminate: register(SignalKind::terminate(), "SIGTERM")?,
            interrupt: register(SignalKind::interrupt(), "SIGINT")?,
            hangup: register(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    /// Splits into the shutdown future (SIGTERM or SIGINT) and the SIGHUP stream.
    pub fn split(self) -> (impl Future<Output = ()> + Send + 'static, Signal) {
        let Signals {
            mut terminate,
            mut interrupt,
            hangup,
        } = self;
        let shutdown = async move {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("SIGINT received: finishing in-flight requests"),
                _ = terminate.recv() => tracing::info!("SIGTERM received: finishing in-flight requests"),
            }
        };
        (shutdown, hangup)
    }
}

//! Start-up: configuration resolved, the ONNX Runtime library located and loaded, every model
//! loaded and warmed, the port bound, and then serving until SIGTERM or SIGINT.
//!
//! Every failure on the way is a [`StartupError`] carrying its cause, the file or variable
//! involved and a hint, rendered like a compiler diagnostic and mapped to a sysexits code, so
//! a container that will not start says why instead of dying with a bare exit status.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use warden_runtime::onnxruntime::{ExplicitLibrary, LibrarySearch, OnnxRuntime, locate_library};
use warden_runtime::{Backend, RuntimeError};

use crate::api::{AppState, router};
use crate::config::{EnvSource, ServeConfig};
use crate::init::InitError;
use crate::model::{LoadError, ModelVersion};
use crate::registry::{ModelEntry, ModelRegistry};
use crate::repository::{self, RepositoryError};

/// sysexits codes, as DESIGN.md lists them.
pub mod exit {
    pub const USAGE: u8 = 64;
    pub const DATA: u8 = 65;
    pub const NO_INPUT: u8 = 66;
    pub const UNAVAILABLE: u8 = 69;
    pub const SOFTWARE: u8 = 70;
    pub const CANNOT_CREATE: u8 = 73;
    pub const IO: u8 = 74;
    pub const NO_PERMISSION: u8 = 77;
    pub const CONFIG: u8 = 78;
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    #[error("{0}")]
    OnnxRuntime(RuntimeError),
    #[error("{} of {total} models failed to load", failures.len())]
    Models {
        total: usize,
        failures: Vec<(String, LoadError)>,
    },
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Init(#[from] InitError),
    #[error("{0}")]
    Internal(String),
}

impl StartupError {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartupError::Config(_) => exit::CONFIG,
            StartupError::Repository(err) => match err {
                RepositoryError::NotFound { .. }
                | RepositoryError::NoVersion { .. }
                | RepositoryError::PinnedVersionMissing { .. }
                | RepositoryError::Empty { .. } => exit::NO_INPUT,
                RepositoryError::Manifest { .. } => exit::DATA,
                RepositoryError::Io { source, .. } => io_exit(source),
            },
            StartupError::OnnxRuntime(_) => exit::UNAVAILABLE,
            StartupError::Models { failures, .. } => {
                if failures
                    .iter()
                    .all(|(_, err)| matches!(err, LoadError::Read { .. }))
                {
                    exit::NO_INPUT
                } else {
                    exit::DATA
                }
            }
            StartupError::Bind { source, .. } => match source.kind() {
                std::io::ErrorKind::PermissionDenied => exit::NO_PERMISSION,
                _ => exit::UNAVAILABLE,
            },
            StartupError::Init(err) => match err {
                InitError::Read { source, .. } => io_exit(source),
                InitError::Runtime(
                    RuntimeError::LibraryNotFound { .. } | RuntimeError::LibraryUnusable { .. },
                ) => exit::UNAVAILABLE,
                InitError::Runtime(_)
                | InitError::Data { .. }
                | InitError::Graph(_)
                | InitError::Check(_) => exit::DATA,
                InitError::Exists { .. } => exit::CANNOT_CREATE,
                InitError::Write { source, .. } => io_exit(source),
            },
            StartupError::Internal(_) => exit::SOFTWARE,
        }
    }

    /// The fix to suggest, when there is one.
    fn hint(&self) -> Option<String> {
        Some(match self {
            StartupError::Config(_) => "see `warden serve --help` for every setting".to_owned(),
            StartupError::Repository(
                RepositoryError::Empty { .. } | RepositoryError::NotFound { .. },
            ) => "a repository holds NAME/warden.toml and NAME/1/model.onnx for each model; \
                 or pass a single .onnx file"
                .to_owned(),
            StartupError::Repository(RepositoryError::Manifest { .. }) => {
                "fix the manifest; unknown keys are rejected so typos never switch a check off"
                    .to_owned()
            }
            StartupError::OnnxRuntime(RuntimeError::LibraryNotFound { .. }) => {
                "install it with `python3 -m pip install onnxruntime`, or point \
                 WARDEN_ONNXRUNTIME_LIB (or --onnxruntime-lib) at libonnxruntime.so"
                    .to_owned()
            }
            StartupError::Bind { address, .. } => format!(
                "another process may hold the port: `ss -ltnp 'sport = :{}'` shows it; \
                 or choose another with --port",
                address.port()
            ),
            _ => return None,
        })
    }

    /// The file or variable the error is about, when there is one.
    fn location(&self) -> Option<String> {
        let path = match self {
            StartupError::Repository(
                RepositoryError::NotFound { path }
                | RepositoryError::Io { path, .. }
                | RepositoryError::Empty { path }
                | RepositoryError::Manifest { path, .. }
                | RepositoryError::NoVersion { path, .. }
                | RepositoryError::PinnedVersionMissing { path, .. },
            ) => path,
            StartupError::OnnxRuntime(RuntimeError::LibraryUnusable { path, .. }) => path,
            StartupError::Bind { address, .. } => return Some(address.to_string()),
            StartupError::Init(err) => return err.path().map(|p| p.display().to_string()),
            _ => return None,
        };
        Some(path.display().to_string())
    }
}

fn io_exit(err: &std::io::Error) -> u8 {
    match err.kind() {
        std::io::ErrorKind::PermissionDenied => exit::NO_PERMISSION,
        std::io::ErrorKind::NotFound => exit::NO_INPUT,
        _ => exit::IO,
    }
}

/// The human form of a start-up error, modelled on rustc's diagnostics.
#[derive(Debug)]
pub struct Diagnostic<'a>(pub &'a StartupError);

impl fmt::Display for Diagnostic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let err = self.0;
        writeln!(f, "error: {err}")?;
        if let Some(location) = err.location() {
            writeln!(f, "  --> {location}")?;
        }
        if let StartupError::Models { failures, .. } = err {
            for (model, cause) in failures {
                writeln!(f, "  = model `{model}`: {cause}")?;
            }
        }
        if let StartupError::Init(init) = err {
            for problem in init.problems() {
                writeln!(f, "  = {problem}")?;
            }
        }
        if let StartupError::OnnxRuntime(RuntimeError::LibraryNotFound { searched }) = err {
            for place in searched {
                writeln!(f, "  = searched: {place}")?;
            }
        }
        if let Some(hint) = err.hint() {
            writeln!(f, "  = hint: {hint}")?;
        }
        Ok(())
    }
}

/// Locates and loads ONNX Runtime. Once per process: ONNX Runtime keeps one environment.
pub fn init_onnxruntime(
    flag: Option<&Path>,
    env: &dyn EnvSource,
) -> Result<Arc<OnnxRuntime>, StartupError> {
    let mut explicit = Vec::new();
    if let Some(path) = flag {
        explicit.push(ExplicitLibrary {
            source: "--onnxruntime-lib".into(),
            path: path.to_path_buf(),
        });
    }
    for variable in ["WARDEN_ONNXRUNTIME_LIB", "ORT_DYLIB_PATH"] {
        if let Some(value) = env.var(variable).filter(|v| !v.is_empty()) {
            explicit.push(ExplicitLibrary {
                source: variable.into(),
                path: value.into(),
            });
        }
    }
    let search = LibrarySearch {
        explicit,
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

/// Scans the repository and loads every model; fails if any model fails, naming each.
pub fn load_models(model_path: &Path, backend: &dyn Backend) -> Result<AppState, StartupError> {
    let sources = repository::scan(model_path)?;
    let total = sources.len();
    let mut models = BTreeMap::new();
    let mut failures = Vec::new();
    for source in &sources {
        if source.manifest.is_none() {
            tracing::info!(
                model = %source.name,
                path = %source.graph.display(),
                "no manifest: serving the contract the graph declares (names, dtypes, shapes); \
                 no ranges or categories are checked"
            );
        }
        match ModelVersion::load(source, backend) {
            Ok(model) => {
                for output in &model.contract.outputs {
                    for guard in &output.relax {
                        tracing::warn!(
                            model = %model.name,
                            output = %output.name,
                            guard = ?guard,
                            "output guard relaxed by the manifest: this check does not run"
                        );
                    }
                }
                tracing::info!(
                    model = %model.name,
                    version = model.version,
                    sha256 = %model.sha256,
                    platform = model.platform,
                    "model loaded and warmed up"
                );
                models.insert(source.name.clone(), ModelEntry::Ready(Arc::new(model)));
            }
            Err(err) => failures.push((source.name.clone(), err)),
        }
    }
    if !failures.is_empty() {
        return Err(StartupError::Models { total, failures });
    }
    Ok(AppState {
        registry: Arc::new(ModelRegistry::new(models)),
    })
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

/// Serves `state` on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    state: AppState,
    listener: std::net::TcpListener,
    body_limit_bytes: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|err| StartupError::Internal(format!("cannot adopt the listener: {err}")))?;
    let address = listener
        .local_addr()
        .map_err(|err| StartupError::Internal(format!("cannot read the bound address: {err}")))?;
    tracing::info!(address = %address, "listening");
    axum::serve(listener, router(state, body_limit_bytes))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|err| StartupError::Internal(format!("the server stopped: {err}")))?;
    tracing::info!("stopped: every in-flight request was answered");
    Ok(())
}

/// Resolves when the process receives SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received: finishing in-flight requests"),
        () = terminate => tracing::info!("SIGTERM received: finishing in-flight requests"),
    }
}

//! The inference engines of this process: ONNX Runtime, located (flags, environment, Python's
//! onnxruntime package, project `.venv`s) and loaded once, and tract when built in.

use std::path::PathBuf;
use std::sync::Arc;

use warden_runtime::RuntimeError;
use warden_runtime::onnxruntime::{ExplicitLibrary, LibrarySearch, OnnxRuntime, locate_library};

use crate::serving::Backends;
use crate::startup::diagnostics::StartupError;

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

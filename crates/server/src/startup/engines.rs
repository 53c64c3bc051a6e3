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
        installed: installed_in(),
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

/// Whether this binary is statically linked (the musl build of the container image).
const STATIC_BUILD: bool = cfg!(target_feature = "crt-static");

/// Why a static build has no ONNX Runtime, as `warden check` says it.
const STATIC_BUILD_REASON: &str =
    "not available in the static build (it cannot load shared libraries)";

/// The engines for this process: ONNX Runtime when its library is found, and tract when built
/// in. ONNX Runtime missing everywhere is not fatal when tract can serve instead; a library the
/// user named that does not load is.
pub fn backends(explicit: &[ExplicitLibrary]) -> Result<Backends, StartupError> {
    if STATIC_BUILD {
        // A statically linked binary cannot dlopen: ONNX Runtime is not an option, and looking
        // for it would only find a library it cannot load.
        if let Some(named) = explicit.first() {
            return Err(StartupError::OnnxRuntime(RuntimeError::LibraryUnusable {
                path: named.path.clone(),
                reason: format!(
                    "{} names it, but this warden is the static build, which cannot load shared                      libraries; use the glibc build (or the onnxruntime image) for ONNX Runtime",
                    named.source
                ),
            }));
        }
        return Ok(Backends::new(None, Some(STATIC_BUILD_REASON.to_owned())));
    }
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

/// The Python environment whose `bin/` holds this binary, when it is one (`pip install warden`
/// into a venv, `--user` or a system prefix): the prefix with a `lib/python3*` beside `bin/`.
fn installed_in() -> Vec<PathBuf> {
    let Ok(exe) = std::env::current_exe() else {
        return Vec::new();
    };
    let Some(prefix) = exe
        .parent()
        .filter(|bin| bin.ends_with("bin"))
        .and_then(|bin| bin.parent())
    else {
        return Vec::new();
    };
    vec![prefix.to_path_buf()]
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

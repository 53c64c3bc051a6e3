//! Shared by the runtime's integration tests: the repository root and the one ONNX Runtime.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use warden_runtime::onnxruntime::{ExplicitLibrary, LibrarySearch, OnnxRuntime, locate_library};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The process's ONNX Runtime: `WARDEN_ONNXRUNTIME_LIB`, else the project's `.venv`.
pub fn onnxruntime() -> &'static OnnxRuntime {
    static RUNTIME: OnceLock<OnnxRuntime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let explicit = std::env::var("WARDEN_ONNXRUNTIME_LIB")
            .ok()
            .map(|path| ExplicitLibrary {
                source: "WARDEN_ONNXRUNTIME_LIB".into(),
                path: path.into(),
            });
        let search = LibrarySearch {
            explicit: explicit.into_iter().collect(),
            python: None,
            venvs: vec![root().join(".venv")],
        };
        OnnxRuntime::init(&locate_library(&search).unwrap().path).unwrap()
    })
}

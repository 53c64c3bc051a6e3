//! Shared by the runtime's integration tests: the repository root, the one ONNX Runtime, and
//! the zoo's JSON tensors (tests/zoo/*.json).

#![allow(dead_code, clippy::unwrap_used)]

#[cfg(feature = "tract")]
pub(crate) mod graphs;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use warden_runtime::onnxruntime::{ExplicitLibrary, LibrarySearch, OnnxRuntime, locate_library};
use warden_runtime::{NamedTensor, Tensor, TensorData};

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The process's ONNX Runtime: `WARDEN_ONNXRUNTIME_LIB`, else the project's `.venv`.
pub(crate) fn onnxruntime() -> &'static OnnxRuntime {
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
            installed: Vec::new(),
            python: None,
            venvs: vec![root().join(".venv")],
        };
        OnnxRuntime::init(&locate_library(&search).unwrap().path).unwrap()
    })
}

/// A tensor of a zoo case: `{"name", "datatype", "shape", "data"}`.
pub(crate) fn tensor(value: &Value) -> NamedTensor {
    let shape: Vec<usize> = value["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data = value["data"].as_array().unwrap();
    let data = match value["datatype"].as_str().unwrap() {
        "FP32" => TensorData::F32(data.iter().map(|x| x.as_f64().unwrap() as f32).collect()),
        "FP64" => TensorData::F64(data.iter().map(|x| x.as_f64().unwrap()).collect()),
        "INT64" => TensorData::I64(data.iter().map(|x| x.as_i64().unwrap()).collect()),
        "INT32" => TensorData::I32(data.iter().map(|x| x.as_i64().unwrap() as i32).collect()),
        "BYTES" => TensorData::String(
            data.iter()
                .map(|x| x.as_str().unwrap().to_owned())
                .collect(),
        ),
        other => panic!("unexpected datatype {other}"),
    };
    NamedTensor {
        name: value["name"].as_str().unwrap().to_owned(),
        tensor: Tensor::new(shape, data).unwrap(),
    }
}

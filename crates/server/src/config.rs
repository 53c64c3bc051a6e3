//! Serving configuration: flags and `WARDEN_*` environment variables resolved into one
//! validated [`ServeConfig`] before anything is loaded or bound.
//!
//! The environment is read through [`EnvSource`], never through process-global state, so tests
//! hand in a map instead of mutating the process's environment.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

/// Somewhere environment variables can be read from.
pub trait EnvSource {
    /// The variable's value, if set and valid UTF-8.
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl EnvSource for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// The default request body limit: 8 MiB.
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 8 * 1024 * 1024;

/// Everything `warden serve` needs, resolved and checked.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// A model repository or a single `.onnx` file.
    pub model_path: PathBuf,
    pub host: IpAddr,
    pub port: u16,
    /// `--onnxruntime-lib`, highest precedence when locating ONNX Runtime.
    pub onnxruntime_lib: Option<PathBuf>,
    /// Largest request body accepted.
    pub body_limit_bytes: usize,
}

impl ServeConfig {
    /// A configuration with the defaults, serving `model_path` on 127.0.0.1:8000.
    pub fn new(model_path: impl Into<PathBuf>) -> ServeConfig {
        ServeConfig {
            model_path: model_path.into(),
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8000,
            onnxruntime_lib: None,
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
        }
    }
}

//! The errors a backend reports. Each carries enough to tell a user what failed and why,
//! without exposing the engine's internals to HTTP clients (the server decides what to show).

use std::path::PathBuf;

/// Everything that can go wrong while locating an engine, loading a graph or running it.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine's shared library could not be found anywhere it was looked for.
    #[error("the ONNX Runtime shared library was not found; searched: {}", searched.join("; "))]
    LibraryNotFound { searched: Vec<String> },
    /// The shared library exists but could not be loaded or is too old.
    #[error("could not load ONNX Runtime from {path}: {reason}")]
    LibraryUnusable { path: PathBuf, reason: String },
    /// The graph could not be loaded (corrupt file, unsupported operator, ...).
    #[error("could not load model {path}: {reason}")]
    Load { path: PathBuf, reason: String },
    /// The graph declares an input or output warden cannot exchange (e.g. a ZipMap sequence).
    #[error("model {path}: {reason}")]
    UnsupportedSignature { path: PathBuf, reason: String },
    /// The engine rejected the inputs or failed while running.
    #[error("inference failed: {0}")]
    Inference(String),
}

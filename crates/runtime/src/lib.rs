//! warden's inference runtime: the [`Backend`] trait every engine implements, the tensor and
//! signature types that cross it, and the ONNX Runtime backend.
//!
//! The trait is deliberately free of any engine's types, so the server, the contract and the
//! tests speak one tensor vocabulary whichever engine runs the graph: ONNX Runtime (a C++
//! library loaded at run time) or tract (pure Rust, behind the default `tract` feature).

#![forbid(unsafe_code)]

#[cfg(feature = "tract")]
pub mod attribution;
mod backend;
mod error;
pub mod graph_facts;
#[cfg(feature = "tract")]
mod onnx_ml;
pub mod onnxruntime;
#[cfg(feature = "tract")]
pub mod rewrite;
#[cfg(feature = "tract")]
mod svm;
mod tensor;
#[cfg(feature = "tract")]
pub mod tract;
#[cfg(feature = "tract")]
mod trees;
mod wire;
mod zipmap;

pub use backend::{Backend, LoadOptions, LoadedModel};
pub use error::RuntimeError;
pub use tensor::{DataType, NamedTensor, Signature, Tensor, TensorData, TensorSpec};

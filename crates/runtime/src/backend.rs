//! The seam between the server and an inference engine.
//!
//! A [`Backend`] turns a model file into a [`LoadedModel`]. A loaded model is run through
//! `&mut self`: engines such as ONNX Runtime are not safe to run concurrently through one
//! handle, so the server gives each worker thread its own loaded model (or serialises access)
//! rather than the trait pretending otherwise.

use std::fmt::Debug;
use std::path::Path;

use crate::{NamedTensor, RuntimeError, Signature};

/// How a model should be loaded; grows with the scheduler (thread counts, optimisation level).
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Threads one inference may use inside the engine; `None` lets the engine decide.
    pub intra_op_threads: Option<usize>,
    /// ONNX Runtime: one session for every worker of a version, run by one worker at a time
    /// ([`LoadedModel::share`] hands out handles on it), instead of a session per worker.
    pub share_session: bool,
}

/// An inference engine able to load ONNX graphs.
pub trait Backend: Send + Sync + Debug {
    /// The platform name reported in KServe V2 model metadata, e.g. `onnxruntime_onnx`.
    fn platform(&self) -> &'static str;

    /// Loads the graph in `model` (ONNX bytes already read by the caller, so the bytes that
    /// are hashed are the bytes that are served) and checks its signature can be exchanged.
    fn load(
        &self,
        model: &[u8],
        origin: &Path,
        options: &LoadOptions,
    ) -> Result<Box<dyn LoadedModel>, RuntimeError>;
}

/// A graph ready to run.
pub trait LoadedModel: Send + Debug {
    /// The inputs and outputs the graph declares.
    fn signature(&self) -> &Signature;

    /// Runs the graph. `inputs` must name every graph input; `outputs` selects which graph
    /// outputs to compute and return, in that order (empty: all, in graph order).
    fn run(
        &mut self,
        inputs: Vec<NamedTensor>,
        outputs: &[String],
    ) -> Result<Vec<NamedTensor>, RuntimeError>;

    /// Another handle on the same loaded graph for another worker, when the engine can run one
    /// graph from several threads (tract's plans are shared); `None` means load a new copy.
    fn share(&self) -> Option<Box<dyn LoadedModel>> {
        None
    }

    /// Whether handles from [`LoadedModel::share`] run at the same time (tract) rather than in
    /// turn behind one lock (a shared ONNX Runtime session): a low-priority thread must not
    /// hold a lock a request's worker waits on.
    fn shares_run_at_once(&self) -> bool {
        false
    }
}

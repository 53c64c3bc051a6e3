//! Where a request is admitted, waits and runs: the contract gate ([`Admitted`] is the only
//! thing a model version runs), the served model versions (loaded, contract-checked, warmed up),
//! each model's set of versions and the rollout of a candidate among them,
//! the scheduler that batches their requests onto worker threads, the output guards, the
//! registry of what is served, and the repository they come from and are reloaded from.
//!
//! The modules are private; what the rest of the server (and the tests) may use is re-exported
//! here, so this list is the layer's whole surface.

mod admission;
mod backends;
mod binding;
mod contract;
mod drift;
mod explain;
mod guards;
mod load_error;
mod model;
mod predict_error;
mod registry;
mod reload;
mod repository;
mod rollout;
mod scheduler;
mod version_set;
mod watch;

pub use admission::{Admitted, TensorRequest};
pub use backends::{Backends, ExampleTrial, Refusal, load_to_serve};
pub use contract::{ModelContract, graph_inputs};
pub use drift::{
    DriftMonitor, DriftReport, DriftStatus, FeatureReport, PredictionReport, WindowReport,
};
pub use explain::{
    ExplainAsk, ExplainCounters, ExplainError, Explainer, Explanation, MethodChoice, RowExplanation,
};
pub use load_error::LoadError;
pub use model::{ModelVersion, OnnxRuntimeSessions, Serving, sha256_hex};
pub use predict_error::PredictError;
pub use registry::{ChangeError, LookupError, ModelEntry, ModelRegistry};
pub use reload::{IndexEntry, ReloadError, Reloader};
pub use repository::{
    MANIFEST_FILE, MODEL_FILE, ModelSource, RepositoryError, scan as scan_repository,
    scan_model_folder,
};
pub use rollout::{
    ComparisonFigures, Confusion, DeltaQuantiles, Leg, Rollout, RolloutReport, ShadowAnswer,
    ShadowRun, ShadowSink, StickyKey,
};
pub use scheduler::{Answer, Counters, InferError, Timings};
pub use version_set::{RolloutChange, Route, VersionSet};
pub use watch::{WatchMode, spawn as watch_repository};

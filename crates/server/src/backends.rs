//! Which engine serves each model version: the manifest's `backend` (`auto` by default),
//! what this process has (ONNX Runtime when its library was found; tract when built with the
//! `tract` feature), and a fallback to the other engine when the first cannot load the graph.
//!
//! `auto` prefers ONNX Runtime (the reference implementation of every ONNX-ML operator, and
//! multi-threaded) and uses tract when the library is absent, so a single binary with no C++
//! library still serves scikit-learn, XGBoost and LightGBM exports.

use std::sync::Arc;

use warden_contract::BackendChoice;
use warden_runtime::Backend;

use crate::model::{LoadError, ModelVersion};
use crate::repository::ModelSource;

/// An engine to try, and why it is tried.
type Candidate = (Arc<dyn Backend>, &'static str);

/// The engines this process can use.
#[derive(Debug, Clone, Default)]
pub struct Backends {
    pub onnxruntime: Option<Arc<dyn Backend>>,
    /// Which library and version, for `warden check`.
    pub onnxruntime_detail: Option<String>,
    /// Why ONNX Runtime is absent, for messages.
    pub onnxruntime_missing: Option<String>,
    pub tract: Option<Arc<dyn Backend>>,
}

impl Backends {
    /// ONNX Runtime (if given) and, when built in, tract.
    pub fn new(
        onnxruntime: Option<Arc<dyn Backend>>,
        onnxruntime_missing: Option<String>,
    ) -> Backends {
        Backends {
            onnxruntime,
            onnxruntime_detail: None,
            onnxruntime_missing,
            tract: built_in_tract(),
        }
    }

    /// Exactly one engine (tests, and `warden init` which checks with what it found).
    pub fn only(backend: Arc<dyn Backend>) -> Backends {
        Backends {
            onnxruntime: Some(backend),
            onnxruntime_detail: None,
            onnxruntime_missing: None,
            tract: None,
        }
    }

    /// The engines to try for `choice`, in order, with why each is there.
    fn candidates(&self, choice: BackendChoice) -> Result<Vec<Candidate>, LoadError> {
        let unavailable = |backend: &'static str, reason: String| LoadError::BackendUnavailable {
            backend,
            reason,
        };
        match choice {
            BackendChoice::Onnxruntime => match &self.onnxruntime {
                Some(ort) => Ok(vec![(ort.clone(), "the manifest asks for onnxruntime")]),
                None => Err(unavailable(
                    "onnxruntime",
                    self.onnxruntime_missing
                        .clone()
                        .unwrap_or_else(|| "its library was not found".into()),
                )),
            },
            BackendChoice::Tract => match &self.tract {
                Some(tract) => Ok(vec![(tract.clone(), "the manifest asks for tract")]),
                None => Err(unavailable(
                    "tract",
                    "this warden was built without the `tract` feature".into(),
                )),
            },
            BackendChoice::Auto => {
                let mut order = Vec::new();
                if let Some(ort) = &self.onnxruntime {
                    order.push((ort.clone(), "auto: ONNX Runtime is present"));
                }
                if let Some(tract) = &self.tract {
                    order.push((
                        tract.clone(),
                        if order.is_empty() {
                            "auto: no ONNX Runtime library, so the pure-Rust engine"
                        } else {
                            "auto: fallback, ONNX Runtime could not load the graph"
                        },
                    ));
                }
                if order.is_empty() {
                    return Err(unavailable(
                        "auto",
                        self.onnxruntime_missing
                            .clone()
                            .unwrap_or_else(|| "no inference engine is available".into()),
                    ));
                }
                Ok(order)
            }
        }
    }

    /// Loads `source` on the first engine that can, logging the choice and the reason.
    pub fn load(&self, source: &ModelSource) -> Result<ModelVersion, LoadError> {
        let choice = source
            .manifest
            .as_ref()
            .map_or(BackendChoice::Auto, |m| m.backend);
        let mut first_error = None;
        for (backend, reason) in self.candidates(choice)? {
            match ModelVersion::load(source, backend.as_ref()) {
                Ok(model) => {
                    tracing::info!(
                        model = %source.name,
                        version = source.version,
                        platform = backend.platform(),
                        reason,
                        "backend chosen"
                    );
                    return Ok(model);
                }
                // Only a graph the engine cannot load falls back; a broken contract or warm-up
                // would fail the same way on any engine.
                Err(err @ (LoadError::Backend(_) | LoadError::UnsupportedOperator { .. })) => {
                    tracing::warn!(
                        model = %source.name,
                        platform = backend.platform(),
                        error = %err,
                        "this engine cannot load the graph"
                    );
                    first_error.get_or_insert(err);
                }
                Err(err) => return Err(err),
            }
        }
        Err(first_error.unwrap_or(LoadError::BackendUnavailable {
            backend: "auto",
            reason: "no engine could load the graph".into(),
        }))
    }
}

#[cfg(feature = "tract")]
fn built_in_tract() -> Option<Arc<dyn Backend>> {
    Some(Arc::new(warden_runtime::tract::Tract))
}

#[cfg(not(feature = "tract"))]
fn built_in_tract() -> Option<Arc<dyn Backend>> {
    None
}

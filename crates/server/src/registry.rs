//! The set of models the server knows and the state of each: which version is served, or why
//! none is. Readiness is derived from it, never stored beside it.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::ModelVersion;

/// One model's state.
#[derive(Debug, Clone)]
pub enum ModelEntry {
    /// Loaded, checked and warmed up.
    Ready(Arc<ModelVersion>),
    /// Known but not servable (loading, or failed with the reason given).
    Unavailable { reason: String },
}

/// Why a model lookup found nothing to serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("unknown model `{0}`")]
    UnknownModel(String),
    #[error("model `{model}` has no version {requested}; it serves version {served}")]
    UnknownVersion {
        model: String,
        requested: String,
        served: String,
    },
    #[error("model `{model}` is not ready: {reason}")]
    NotReady { model: String, reason: String },
}

/// Every model by name.
#[derive(Debug, Default)]
pub struct ModelRegistry {
    models: BTreeMap<String, ModelEntry>,
    allow_partial: bool,
}

impl ModelRegistry {
    /// A registry of the given models. With `allow_partial`, the server is ready when at least
    /// one model is (the others report not ready on their own routes).
    pub fn new(models: BTreeMap<String, ModelEntry>, allow_partial: bool) -> ModelRegistry {
        ModelRegistry {
            models,
            allow_partial,
        }
    }

    /// Ready when every model is ready (or, with `allow_partial`, at least one is).
    pub fn is_ready(&self) -> bool {
        let ready = |entry: &ModelEntry| matches!(entry, ModelEntry::Ready(_));
        if self.allow_partial {
            self.models.values().any(ready)
        } else {
            !self.models.is_empty() && self.models.values().all(ready)
        }
    }

    /// All models in name order.
    pub fn entries(&self) -> impl Iterator<Item = (&String, &ModelEntry)> {
        self.models.iter()
    }

    /// The served version of `name`, checked against the `version` a URL asked for.
    pub fn get(&self, name: &str, version: Option<&str>) -> Result<Arc<ModelVersion>, LookupError> {
        match self.models.get(name) {
            None => Err(LookupError::UnknownModel(name.to_owned())),
            Some(ModelEntry::Unavailable { reason }) => Err(LookupError::NotReady {
                model: name.to_owned(),
                reason: reason.clone(),
            }),
            Some(ModelEntry::Ready(model)) => match version {
                Some(requested) if requested.parse::<u64>().ok() != Some(model.version) => {
                    Err(LookupError::UnknownVersion {
                        model: name.to_owned(),
                        requested: requested.to_owned(),
                        served: model.version.to_string(),
                    })
                }
                _ => Ok(Arc::clone(model)),
            },
        }
    }
}

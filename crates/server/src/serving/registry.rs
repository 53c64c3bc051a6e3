//! The set of models the server knows and the state of each: which version is served, or why
//! none is. Readiness is derived from it, never stored beside it.
//!
//! The map sits behind one pointer that is swapped whole (copy on write): a request takes the
//! current snapshot, finds its version and holds that version's `Arc` until it has answered, so
//! a reload swaps the pointer without waiting for anyone, in-flight requests finish on the
//! version they started on, and a replaced version is freed when its last request ends.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use crate::metrics::{ModelState, ServedVersion};
use crate::serving::model::ModelVersion;

/// One model's state.
#[derive(Debug, Clone)]
pub enum ModelEntry {
    /// Loaded, checked and warmed up.
    Ready(Arc<ModelVersion>),
    /// Known but not servable (loading, or failed with the reason given).
    Unavailable { reason: String },
    /// Unloaded through the repository API; not counted against readiness.
    Unloaded,
    /// Added to the repository while serving, and failed its checks: never served, and not
    /// counted against readiness (a broken new model must not take every other model out of
    /// the load balancer).
    Rejected { reason: String },
}

impl ModelEntry {
    /// Whether the entry counts against readiness: only models that should be served, are not,
    /// and were expected from start-up.
    fn blocks_readiness(&self) -> bool {
        matches!(self, ModelEntry::Unavailable { .. })
    }
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

/// The models by name.
pub(super) type Models = BTreeMap<String, ModelEntry>;

/// Every model by name.
#[derive(Debug, Default)]
pub struct ModelRegistry {
    models: RwLock<Arc<Models>>,
    allow_partial: bool,
}

impl ModelRegistry {
    /// Every model's state now, for a metrics scrape.
    pub fn states(&self) -> Vec<ModelState> {
        self.snapshot()
            .iter()
            .map(|(name, entry)| ModelState {
                name: name.clone(),
                served: match entry {
                    ModelEntry::Ready(model) => Some(ServedVersion {
                        version: model.version,
                        queued: model.counters().queued.load(Ordering::Relaxed) as u64,
                        drift: model
                            .drift
                            .as_ref()
                            .map(|monitor| monitor.report().figures())
                            .unwrap_or_default(),
                    }),
                    ModelEntry::Unavailable { .. }
                    | ModelEntry::Unloaded
                    | ModelEntry::Rejected { .. } => None,
                },
            })
            .collect()
    }

    /// A registry of the given models. With `allow_partial`, the server is ready when at least
    /// one model is (the others report not ready on their own routes).
    pub fn new(models: BTreeMap<String, ModelEntry>, allow_partial: bool) -> ModelRegistry {
        ModelRegistry {
            models: RwLock::new(Arc::new(models)),
            allow_partial,
        }
    }

    /// The models as they are now; later swaps do not change the snapshot.
    pub fn snapshot(&self) -> Arc<Models> {
        // A poisoned lock still holds a whole map: swaps replace the pointer in one step.
        Arc::clone(&self.models.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Sets (or, with `None`, removes) one model's entry in a new snapshot, and returns the
    /// entry it replaced. Callers serialise their updates (the reloader holds a lock).
    pub fn update(&self, name: &str, entry: Option<ModelEntry>) -> Option<ModelEntry> {
        let mut guard = self.models.write().unwrap_or_else(|e| e.into_inner());
        let mut models = Models::clone(&guard);
        let previous = match entry {
            Some(entry) => models.insert(name.to_owned(), entry),
            None => models.remove(name),
        };
        *guard = Arc::new(models);
        previous
    }

    /// Ready when every model (not unloaded) is ready, and at least one is; with
    /// `allow_partial`, when at least one is.
    pub fn is_ready(&self) -> bool {
        let models = self.snapshot();
        let ready = |entry: &ModelEntry| matches!(entry, ModelEntry::Ready(_));
        let any_ready = models.values().any(ready);
        if self.allow_partial {
            any_ready
        } else {
            any_ready && !models.values().any(ModelEntry::blocks_readiness)
        }
    }

    /// The served version of `name`, checked against the `version` a URL asked for.
    pub fn get(&self, name: &str, version: Option<&str>) -> Result<Arc<ModelVersion>, LookupError> {
        match self.snapshot().get(name) {
            None => Err(LookupError::UnknownModel(name.to_owned())),
            Some(ModelEntry::Unavailable { reason } | ModelEntry::Rejected { reason }) => {
                Err(LookupError::NotReady {
                    model: name.to_owned(),
                    reason: reason.clone(),
                })
            }
            Some(ModelEntry::Unloaded) => Err(LookupError::NotReady {
                model: name.to_owned(),
                reason: format!(
                    "unloaded through the repository API; POST /v2/repository/models/{name}/load \
                     serves it again"
                ),
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

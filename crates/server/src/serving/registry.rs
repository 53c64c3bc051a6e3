//! The set of models the server knows and the state of each: which versions are served (a
//! [`VersionSet`]), or why none is. Readiness is derived from it, never stored beside it.
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
use crate::serving::rollout::StickyKey;
use crate::serving::version_set::{Route, VersionSet};

/// One model's state.
#[derive(Debug, Clone)]
pub enum ModelEntry {
    /// Every version loaded, checked and warmed up.
    Ready(Arc<VersionSet>),
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
    // `served` lists every loaded version: `1, 2`.
    UnknownVersion {
        model: String,
        requested: String,
        served: String,
    },
    #[error("model `{model}` is not ready: {reason}")]
    NotReady { model: String, reason: String },
}

/// Why a change of a model's versions was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error(transparent)]
    Lookup(LookupError),
    #[error("{0}")]
    Invalid(String),
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
            .map(|(name, entry)| match entry {
                ModelEntry::Ready(set) => ModelState {
                    name: name.clone(),
                    default_version: Some(set.default_version().version),
                    served: set
                        .versions()
                        .map(|model| ServedVersion {
                            version: model.version,
                            queued: model.counters().queued.load(Ordering::Relaxed) as u64,
                            drift: model
                                .drift
                                .as_ref()
                                .map(|monitor| monitor.report().figures())
                                .unwrap_or_default(),
                            explain: model.explainer().map(|e| e.figures()),
                        })
                        .collect(),
                    rollout: set.rollout().map(|rollout| rollout.gauges()),
                },
                ModelEntry::Unavailable { .. }
                | ModelEntry::Unloaded
                | ModelEntry::Rejected { .. } => ModelState {
                    name: name.clone(),
                    default_version: None,
                    served: Vec::new(),
                    rollout: None,
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

    /// Replaces the versions of ready model `name` with `change` of them (a new default or
    /// rollout), under the write lock so two changes never lose one another.
    pub fn change(
        &self,
        name: &str,
        change: impl FnOnce(&VersionSet) -> Result<VersionSet, String>,
    ) -> Result<Arc<VersionSet>, ChangeError> {
        let mut guard = self.models.write().unwrap_or_else(|e| e.into_inner());
        let current = match guard.get(name) {
            Some(ModelEntry::Ready(set)) => Arc::clone(set),
            _ => {
                drop(guard);
                return Err(ChangeError::Lookup(
                    self.versions(name)
                        .err()
                        .unwrap_or_else(|| LookupError::UnknownModel(name.to_owned())),
                ));
            }
        };
        let changed = Arc::new(change(&current).map_err(ChangeError::Invalid)?);
        let mut models = Models::clone(&guard);
        models.insert(name.to_owned(), ModelEntry::Ready(Arc::clone(&changed)));
        *guard = Arc::new(models);
        Ok(changed)
    }

    /// The versions of `name`, when it is ready.
    pub fn versions(&self, name: &str) -> Result<Arc<VersionSet>, LookupError> {
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
            Some(ModelEntry::Ready(set)) => Ok(Arc::clone(set)),
        }
    }

    /// The version of `name` a URL asked for (`None`: the default one).
    pub fn get(&self, name: &str, version: Option<&str>) -> Result<Arc<ModelVersion>, LookupError> {
        let set = self.versions(name)?;
        match version {
            None => Ok(Arc::clone(set.default_version())),
            Some(requested) => requested
                .parse::<u64>()
                .ok()
                .and_then(|number| set.version(number))
                .cloned()
                .ok_or_else(|| unknown_version(name, requested, &set)),
        }
    }

    /// Where a request for `name` goes: the `version` it names, or the default one or, under a
    /// rollout, the canary's pick (sticky by `sticky`'s header).
    pub fn route(
        &self,
        name: &str,
        version: Option<&str>,
        sticky: &(dyn StickyKey + Sync),
    ) -> Result<Route, LookupError> {
        let set = self.versions(name)?;
        let number = match version {
            None => None,
            Some(requested) => Some(
                requested
                    .parse::<u64>()
                    .map_err(|_| unknown_version(name, requested, &set))?,
            ),
        };
        set.route(number, sticky)
            .ok_or_else(|| unknown_version(name, version.unwrap_or_default(), &set))
    }
}

fn unknown_version(name: &str, requested: &str, set: &VersionSet) -> LookupError {
    LookupError::UnknownVersion {
        model: name.to_owned(),
        requested: warden_contract::clip(requested).into_owned(),
        served: set.numbers(),
    }
}

//! The versions of one model served at once: every loaded version reachable by number, one of
//! them the default (it answers requests that name none), and an optional [`Rollout`] of a
//! candidate beside the default. What the registry holds for a ready model, swapped whole.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use warden_contract::{Drift, Rollout as RolloutSettings};

use super::load_error::LoadError;
use super::model::ModelVersion;
use super::repository::ModelSource;
use super::rollout::{Leg, Rollout, StickyKey};

/// A ready model's versions.
#[derive(Debug)]
pub struct VersionSet {
    versions: BTreeMap<u64, Arc<ModelVersion>>,
    default: Arc<ModelVersion>,
    rollout: Option<Arc<Rollout>>,
    /// The windows a rollout is judged over (the manifest's `[drift]`).
    drift: Drift,
}

/// A change of a model's default version or rollout through the repository API
/// (`POST /v2/repository/models/{m}/rollout`); what is absent stays as it is.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutChange {
    /// The version that answers requests naming none (promotion: the candidate).
    pub default_version: Option<u64>,
    /// The version rolled out beside the default; starts a rollout when none is on.
    pub candidate: Option<u64>,
    /// The canary share (0 rolls the canary back).
    pub canary: Option<f64>,
    /// The shadow share.
    pub shadow: Option<f64>,
    /// Ends the rollout: the default version answers everything, nothing is shadowed.
    #[serde(default)]
    pub end: bool,
}

/// Where one request goes: the version that answers it and, under a rollout, its leg (the
/// arm it is counted in, and whether it is shadowed).
#[derive(Debug)]
pub struct Route {
    pub version: Arc<ModelVersion>,
    pub leg: Option<Leg>,
}

impl VersionSet {
    /// The set of `versions` (at least one, `default` among them), with a rollout when the
    /// manifest has one. An incompatible rollout pair is a load error naming what differs.
    pub fn new(
        versions: Vec<Arc<ModelVersion>>,
        default: u64,
        rollout: Option<&RolloutSettings>,
        drift: &Drift,
    ) -> Result<VersionSet, LoadError> {
        let versions: BTreeMap<u64, Arc<ModelVersion>> =
            versions.into_iter().map(|v| (v.version, v)).collect();
        let missing = |version: u64| LoadError::Rollout {
            model: versions
                .values()
                .next()
                .map(|v| v.name.clone())
                .unwrap_or_default(),
            reason: format!("version {version} is not loaded"),
        };
        let default = Arc::clone(versions.get(&default).ok_or_else(|| missing(default))?);
        let rollout = match rollout {
            None => None,
            Some(settings) => {
                let candidate = versions
                    .get(&settings.candidate)
                    .ok_or_else(|| missing(settings.candidate))?;
                let rollout = Rollout::new(
                    Arc::clone(&default),
                    Arc::clone(candidate),
                    settings.clone(),
                    drift,
                )
                .map_err(|err| LoadError::Rollout {
                    model: default.name.clone(),
                    reason: err.0,
                })?;
                Some(Arc::new(rollout))
            }
        };
        Ok(VersionSet {
            versions,
            default,
            rollout,
            drift: drift.clone(),
        })
    }

    /// This set with `change` applied; the reason when it cannot be.
    pub fn changed(&self, change: &RolloutChange) -> Result<VersionSet, String> {
        let default = change.default_version.unwrap_or(self.default.version);
        if self.version(default).is_none() {
            return Err(format!(
                "version {default} is not loaded (loaded: {}); load it through the manifest's \
                 `version_policy` first",
                self.numbers()
            ));
        }
        let current = self.rollout.as_ref().map(|r| {
            let mut settings = r.settings().clone();
            settings.canary = r.canary_share();
            settings.shadow = r.shadow_share();
            settings
        });
        let settings = if change.end {
            None
        } else {
            let mut settings = match (current, change.candidate) {
                (Some(mut settings), Some(candidate)) => {
                    settings.candidate = candidate;
                    settings
                }
                (Some(settings), None) => settings,
                (None, Some(candidate)) => RolloutSettings::of_candidate(candidate),
                (None, None) if change.canary.is_none() && change.shadow.is_none() => {
                    return self
                        .rearranged(default, None, &self.drift.clone())
                        .map_err(|err| err.to_string());
                }
                (None, None) => {
                    return Err("no rollout is on: name a `candidate` to start one".to_owned());
                }
            };
            if let Some(canary) = change.canary {
                settings.canary = canary;
            }
            if let Some(shadow) = change.shadow {
                settings.shadow = shadow;
            }
            if change.candidate == Some(default) {
                return Err(format!(
                    "`candidate` {default} is the default version: a rollout needs two versions \
                     (to promote it, set `default_version`)"
                ));
            }
            if settings.candidate == default {
                // Promoting the candidate ends its rollout.
                None
            } else {
                let problems = settings.problems(Some(default));
                if !problems.is_empty() {
                    return Err(problems.join("; "));
                }
                if self.version(settings.candidate).is_none() {
                    return Err(format!(
                        "candidate version {} is not loaded (loaded: {})",
                        settings.candidate,
                        self.numbers()
                    ));
                }
                Some(settings)
            }
        };
        self.rearranged(default, settings.as_ref(), &self.drift.clone())
            .map_err(|err| err.to_string())
    }

    /// The set a model folder's scanned `sources` describe (its default, its rollout), of
    /// `versions` loaded from them.
    pub fn of_sources(
        sources: &[ModelSource],
        versions: Vec<Arc<ModelVersion>>,
    ) -> Result<VersionSet, LoadError> {
        let default = sources
            .iter()
            .find(|s| s.default)
            .or(sources.first())
            .map_or(0, |s| s.version);
        let manifest = sources.first().and_then(|s| s.manifest.as_ref());
        let drift = manifest.map(|m| m.drift.clone()).unwrap_or_default();
        VersionSet::new(
            versions,
            default,
            manifest.and_then(|m| m.rollout.as_ref()),
            &drift,
        )
    }

    /// The same versions with another default or rollout (the repository API, a manifest edit
    /// that changes only those): a rollout of the same pair keeps its figures.
    pub fn rearranged(
        &self,
        default: u64,
        rollout: Option<&RolloutSettings>,
        drift: &Drift,
    ) -> Result<VersionSet, LoadError> {
        let same_pair = |current: &Arc<Rollout>, settings: &RolloutSettings| {
            current.versions()[0].version == default
                && current.versions()[1].version == settings.candidate
        };
        if let (Some(current), Some(settings)) = (&self.rollout, rollout)
            && same_pair(current, settings)
            && current.settings().sticky_header == settings.sticky_header
            && current.settings().shadow_queue == settings.shadow_queue
            && current.settings().guard == settings.guard
            && current.settings().min_agreement == settings.min_agreement
        {
            current.set_shares(Some(settings.canary), Some(settings.shadow));
            return Ok(VersionSet {
                versions: self.versions.clone(),
                default: Arc::clone(&self.default),
                rollout: Some(Arc::clone(current)),
                drift: drift.clone(),
            });
        }
        VersionSet::new(
            self.versions.values().cloned().collect(),
            default,
            rollout,
            drift,
        )
    }

    /// The version that answers requests naming none.
    pub fn default_version(&self) -> &Arc<ModelVersion> {
        &self.default
    }

    /// Every loaded version, ascending.
    pub fn versions(&self) -> impl Iterator<Item = &Arc<ModelVersion>> {
        self.versions.values()
    }

    /// A loaded version by number.
    pub fn version(&self, version: u64) -> Option<&Arc<ModelVersion>> {
        self.versions.get(&version)
    }

    /// The rollout, when one is on.
    pub fn rollout(&self) -> Option<&Arc<Rollout>> {
        self.rollout.as_ref()
    }

    /// The version numbers, as an error lists them: `1, 2`.
    pub fn numbers(&self) -> String {
        self.versions
            .keys()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Where a request goes: the version it names, or (naming none) the default, or the
    /// candidate for the canary's share.
    pub fn route(&self, version: Option<u64>, sticky: &dyn StickyKey) -> Option<Route> {
        match (version, &self.rollout) {
            (Some(number), _) => Some(Route {
                version: Arc::clone(self.versions.get(&number)?),
                leg: None,
            }),
            (None, None) => Some(Route {
                version: Arc::clone(&self.default),
                leg: None,
            }),
            (None, Some(rollout)) => {
                let (version, leg) = rollout.route(sticky);
                Some(Route {
                    version,
                    leg: Some(leg),
                })
            }
        }
    }
}

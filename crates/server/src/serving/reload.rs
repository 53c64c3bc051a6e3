//! Hot reload: bringing what is served in line with the repository on disk, one model at a
//! time, without dropping a request.
//!
//! A changed model's new versions are loaded beside the ones being served and go through every
//! check a start-up load does (file format, checksum, contract against the graph, warm-up,
//! output guards); only then is the model's new [`VersionSet`] swapped into the
//! [`ModelRegistry`]. A version whose graph and contract did not change is kept as it is, not
//! loaded again: a manifest edit that changes only the default version, the version policy or
//! the rollout swaps no graph, and a rollout of the same pair keeps its figures. Requests in flight keep
//! the version they started on; the old one is freed when its last request ends, so memory
//! during a swap is at most old + new. A version that fails is not served: the previous one
//! keeps serving, readiness does not change, and the failure is logged and counted; it is not
//! retried until its files change (or the repository API asks). Models are loaded one after
//! another, never two at once.
//!
//! What triggers a rescan (file events, polling, SIGHUP) lives in [`crate::serving::watch`]; the
//! repository API calls [`Reloader::load`] and [`Reloader::unload`] directly.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;

use crate::metrics::Metrics;
use warden_contract::Manifest;

use crate::serving::backends::{Backends, load_to_serve};
use crate::serving::model::ModelVersion;
use crate::serving::registry::{ModelEntry, ModelRegistry};
use crate::serving::repository::{self, MANIFEST_FILE, ModelSource, ScannedModel};
use crate::serving::version_set::VersionSet;

/// Keeps the registry in line with the repository.
#[derive(Debug)]
pub struct Reloader {
    repository: PathBuf,
    backends: Backends,
    registry: Arc<ModelRegistry>,
    metrics: Arc<Metrics>,
    /// Per model, what was loaded or failed; the lock also serialises every reload.
    tracked: Mutex<BTreeMap<String, Tracked>>,
}

/// What the reloader remembers about one model.
#[derive(Debug, Default)]
struct Tracked {
    /// The files of the versions being served.
    served: Option<Fingerprint>,
    /// The contract part of the manifest they were loaded with (see
    /// [`Manifest::contract_part`]): a version is reused only under the same one.
    contract: Option<Manifest>,
    /// The last files that failed, and why: not retried until they change.
    failed: Option<(Failed, String)>,
    /// Unloaded through the repository API: rescans leave it alone until it is loaded again.
    unloaded: bool,
}

/// What identifies one version's graph file without reading it: its size and modification time.
type FileStamp = Option<(u64, SystemTime)>;

/// What identifies a model's files without reading them: each version to load with its graph's
/// stamp, and the manifest's.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    versions: Vec<(u64, FileStamp)>,
    manifest: FileStamp,
}

fn stamp(path: &Path) -> FileStamp {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.len(), metadata.modified().ok()?))
}

impl Fingerprint {
    fn of(sources: &[ModelSource]) -> Fingerprint {
        let manifest = sources
            .first()
            .filter(|s| s.manifest.is_some())
            .and_then(|s| s.graph.parent()?.parent())
            .and_then(|dir| stamp(&dir.join(MANIFEST_FILE)));
        Fingerprint {
            versions: sources
                .iter()
                .map(|s| (s.version, stamp(&s.graph)))
                .collect(),
            manifest,
        }
    }

    fn graph(&self, version: u64) -> Option<&FileStamp> {
        self.versions
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, stamp)| stamp)
    }
}

/// What failed: a version's files, or the scan of the model's folder (with its error).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failed {
    Files(Fingerprint),
    Scan(String),
}

/// What a reload did to one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new set of versions was swapped in (`version` its default, `previous` the default of
    /// the set it replaced).
    Loaded { version: u64, previous: Option<u64> },
    /// Nothing to do: the served files did not change, or the same failing files are still there.
    Unchanged,
    /// The new version failed a check and is not served (the reason as logged).
    Failed(String),
    /// The model left the repository and is no longer served.
    Removed,
}

/// Why the repository API could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the repository has no model `{0}`")]
    UnknownModel(String),
    #[error("cannot read the repository: {0}")]
    Repository(String),
    #[error("model `{model}` failed to load: {reason}")]
    LoadFailed { model: String, reason: String },
}

/// One line of `POST /v2/repository/index`, as Triton's repository extension has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct IndexEntry {
    pub name: String,
    /// The version being served, or the one on disk when none is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `READY` or `UNAVAILABLE`.
    pub state: &'static str,
    /// Why the model is unavailable, or why its newest version is not the one served.
    pub reason: String,
}

impl Reloader {
    /// A reloader for `repository`, whose models `sources` were loaded into `registry` at
    /// start-up (those that are ready count as served).
    pub fn new(
        repository: PathBuf,
        backends: Backends,
        registry: Arc<ModelRegistry>,
        metrics: Arc<Metrics>,
        sources: &[ModelSource],
    ) -> Reloader {
        let snapshot = registry.snapshot();
        for (name, entry) in snapshot.iter() {
            if matches!(entry, ModelEntry::Ready(_)) {
                metrics.loads.with_label_values(&[name.as_str()]).inc();
            }
        }
        let mut by_model: BTreeMap<String, Vec<ModelSource>> = BTreeMap::new();
        for source in sources {
            by_model
                .entry(source.name.clone())
                .or_default()
                .push(source.clone());
        }
        let tracked = by_model
            .into_iter()
            .map(|(name, sources)| {
                let ready = matches!(snapshot.get(&name), Some(ModelEntry::Ready(_)));
                let tracked = Tracked {
                    served: ready.then(|| Fingerprint::of(&sources)),
                    contract: sources
                        .first()
                        .and_then(|s| s.manifest.as_ref())
                        .map(Manifest::contract_part),
                    ..Tracked::default()
                };
                (name, tracked)
            })
            .collect();
        Reloader {
            repository,
            backends,
            registry,
            metrics,
            tracked: Mutex::new(tracked),
        }
    }

    /// The repository this reloader watches.
    pub fn repository(&self) -> &Path {
        &self.repository
    }

    /// Rescans the whole repository: loads what changed, retires what left. Blocking (it loads
    /// models); call it from a blocking thread. A repository that cannot be read at all changes
    /// nothing: a failed mount must not take every model down.
    pub fn rescan(&self) -> Vec<(String, Change)> {
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        let scanned = match repository::scan_each(&self.repository) {
            Ok(scanned) => scanned,
            Err(err) => {
                tracing::error!(
                    error = %err,
                    "cannot rescan the model repository; every model keeps what it serves"
                );
                return Vec::new();
            }
        };
        let present: BTreeSet<String> = scanned.iter().map(|m| m.name.clone()).collect();
        let mut changes = Vec::new();
        for model in scanned {
            let name = model.name.clone();
            if tracked.get(&name).is_some_and(|t| t.unloaded) {
                continue;
            }
            let change = self.refresh(tracked.entry(name.clone()).or_default(), model, false);
            changes.push((name, change));
        }
        for name in self.registry.snapshot().keys() {
            if !present.contains(name) {
                self.registry.update(name, None);
                tracked.remove(name);
                tracing::info!(
                    model = %name,
                    "model left the repository: no longer served; its in-flight requests finish"
                );
                changes.push((name.clone(), Change::Removed));
            }
        }
        changes.retain(|(_, change)| *change != Change::Unchanged);
        changes
    }

    /// Loads (or reloads) `name` from the repository, retrying files that failed before, and
    /// serves it again if it was unloaded. The name is looked up in the repository's listing.
    pub fn load(&self, name: &str) -> Result<Change, ReloadError> {
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        let scanned = repository::scan_each(&self.repository)
            .map_err(|err| ReloadError::Repository(err.to_string()))?;
        let model = scanned
            .into_iter()
            .find(|m| m.name == name)
            .ok_or_else(|| ReloadError::UnknownModel(name.to_owned()))?;
        let entry = tracked.entry(model.name.clone()).or_default();
        entry.unloaded = false;
        match self.refresh(entry, model, true) {
            Change::Failed(reason) => Err(ReloadError::LoadFailed {
                model: name.to_owned(),
                reason,
            }),
            change => Ok(change),
        }
    }

    /// Stops serving `name`; its in-flight requests finish on it. It stays unloaded, through
    /// rescans, until [`Reloader::load`].
    pub fn unload(&self, name: &str) -> Result<(), ReloadError> {
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        if !self.registry.snapshot().contains_key(name) {
            return Err(ReloadError::UnknownModel(name.to_owned()));
        }
        self.registry.update(name, Some(ModelEntry::Unloaded));
        let entry = tracked.entry(name.to_owned()).or_default();
        entry.served = None;
        entry.failed = None;
        entry.unloaded = true;
        tracing::info!(model = %name, "model unloaded through the repository API");
        Ok(())
    }

    /// Every model in the repository or in the registry, with its state.
    pub fn index(&self) -> Vec<IndexEntry> {
        let tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        let snapshot = self.registry.snapshot();
        let on_disk: BTreeMap<String, Option<u64>> = repository::scan_each(&self.repository)
            .map(|scanned| {
                scanned
                    .into_iter()
                    .map(|m| {
                        let default = m
                            .source
                            .ok()
                            .and_then(|s| s.into_iter().find(|s| s.default))
                            .map(|s| s.version);
                        (m.name, default)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let names: BTreeSet<&String> = on_disk.keys().chain(snapshot.keys()).collect();
        names
            .into_iter()
            .map(|name| {
                let failure = tracked
                    .get(name)
                    .and_then(|t| t.failed.as_ref())
                    .map(|(_, reason)| reason.clone());
                let disk_version = on_disk.get(name).copied().flatten();
                let (version, state, reason) = match snapshot.get(name) {
                    Some(ModelEntry::Ready(set)) => (
                        Some(set.default_version().version),
                        "READY",
                        failure
                            .map(|f| format!("a newer version is not served: {f}"))
                            .unwrap_or_default(),
                    ),
                    Some(ModelEntry::Unavailable { reason } | ModelEntry::Rejected { reason }) => (
                        disk_version,
                        "UNAVAILABLE",
                        failure.unwrap_or(reason.clone()),
                    ),
                    Some(ModelEntry::Unloaded) => (disk_version, "UNAVAILABLE", "unloaded".into()),
                    None => (
                        disk_version,
                        "UNAVAILABLE",
                        failure.unwrap_or_else(|| "not loaded".into()),
                    ),
                };
                IndexEntry {
                    name: name.clone(),
                    version: version.map(|v| v.to_string()),
                    state,
                    reason,
                }
            })
            .collect()
    }

    /// Brings one model in line with its files; `retry` also retries files that failed before.
    fn refresh(&self, tracked: &mut Tracked, model: ScannedModel, retry: bool) -> Change {
        let name = model.name;
        let sources = match model.source {
            Ok(sources) => sources,
            Err(err) => {
                let key = Failed::Scan(err.to_string());
                if !retry && tracked.failed.as_ref().is_some_and(|(k, _)| *k == key) {
                    return Change::Unchanged;
                }
                return self.failed(tracked, &name, None, key, err.to_string());
            }
        };
        let fingerprint = Fingerprint::of(&sources);
        let current = match self.registry.snapshot().get(&name) {
            Some(ModelEntry::Ready(set)) => Some(Arc::clone(set)),
            _ => None,
        };
        if current.is_some() && tracked.served.as_ref() == Some(&fingerprint) {
            return Change::Unchanged;
        }
        let key = Failed::Files(fingerprint.clone());
        if !retry && tracked.failed.as_ref().is_some_and(|(k, _)| *k == key) {
            return Change::Unchanged;
        }
        let contract = sources
            .first()
            .and_then(|s| s.manifest.as_ref())
            .map(Manifest::contract_part);
        let default = sources.iter().find(|s| s.default).map_or(0, |s| s.version);
        match self.assemble(
            tracked,
            &sources,
            &fingerprint,
            contract.as_ref(),
            current.as_deref(),
        ) {
            Ok(set) => {
                let version = set.default_version().version;
                let previous = match self
                    .registry
                    .update(&name, Some(ModelEntry::Ready(Arc::new(set))))
                {
                    Some(ModelEntry::Ready(old)) => Some(old.default_version().version),
                    _ => None,
                };
                tracked.served = Some(fingerprint);
                tracked.contract = contract;
                tracked.failed = None;
                self.metrics.loads.with_label_values(&[name.as_str()]).inc();
                tracing::info!(
                    model = %name,
                    version,
                    versions = ?sources.iter().map(|s| s.version).collect::<Vec<_>>(),
                    previous_version = previous,
                    "model's versions swapped in; the previous ones finish their in-flight requests"
                );
                Change::Loaded { version, previous }
            }
            Err((version, err)) => self.failed(tracked, &name, version.or(Some(default)), key, err),
        }
    }

    /// The model's new set: each version reused from `current` when its graph and the contract
    /// did not change, else loaded and checked; the first failure (with its version) stops it.
    fn assemble(
        &self,
        tracked: &Tracked,
        sources: &[ModelSource],
        fingerprint: &Fingerprint,
        contract: Option<&Manifest>,
        current: Option<&VersionSet>,
    ) -> Result<VersionSet, (Option<u64>, String)> {
        let same_contract = tracked.contract.as_ref() == contract;
        let mut versions: Vec<Arc<ModelVersion>> = Vec::with_capacity(sources.len());
        for source in sources {
            let unchanged = same_contract
                && tracked
                    .served
                    .as_ref()
                    .and_then(|served| served.graph(source.version))
                    == fingerprint.graph(source.version);
            let kept = current
                .filter(|_| unchanged)
                .and_then(|set| set.version(source.version));
            match kept {
                Some(version) => versions.push(Arc::clone(version)),
                None => match load_to_serve(source, &self.backends) {
                    Ok(model) => versions.push(Arc::new(model)),
                    Err(err) => return Err((Some(source.version), err.to_string())),
                },
            }
        }
        let same_versions = current.is_some_and(|set| {
            set.versions().count() == versions.len()
                && versions
                    .iter()
                    .all(|v| set.version(v.version).is_some_and(|c| Arc::ptr_eq(c, v)))
        });
        let default = sources.iter().find(|s| s.default).map_or(0, |s| s.version);
        let manifest = sources.first().and_then(|s| s.manifest.as_ref());
        let result = match (current, same_versions) {
            (Some(set), true) => set.rearranged(
                default,
                manifest.and_then(|m| m.rollout.as_ref()),
                &manifest.map(|m| m.drift.clone()).unwrap_or_default(),
            ),
            _ => VersionSet::of_sources(sources, versions),
        };
        result.map_err(|err| (None, err.to_string()))
    }

    /// `reason` with the repository's own path cut from the paths in it: the index and
    /// not-ready answers show `iris/3/model.onnx`, never where the repository is mounted.
    fn relative(&self, reason: &str) -> String {
        let mut roots: Vec<PathBuf> = std::fs::canonicalize(&self.repository)
            .into_iter()
            .collect();
        roots.push(self.repository.clone());
        roots.iter().fold(reason.to_owned(), |text, root| {
            text.replace(&format!("{}/", root.display()), "")
        })
    }

    fn failed(
        &self,
        tracked: &mut Tracked,
        name: &str,
        version: Option<u64>,
        key: Failed,
        reason: String,
    ) -> Change {
        let reason = self.relative(&reason);
        self.metrics.load_failures.with_label_values(&[name]).inc();
        let served = match self.registry.snapshot().get(name) {
            Some(ModelEntry::Ready(set)) => Some(set.default_version().version),
            _ => None,
        };
        tracing::error!(
            model = %name,
            version,
            error = %reason,
            still_serving = served,
            "model version failed its load checks and is not served"
        );
        if served.is_none() {
            // Never served since start-up: reported on its own routes, not by readiness.
            self.registry.update(
                name,
                Some(ModelEntry::Rejected {
                    reason: format!("failed to load: {reason}"),
                }),
            );
        }
        tracked.failed = Some((key, reason.clone()));
        Change::Failed(reason)
    }
}

//! Hot reload: bringing what is served in line with the repository on disk, one model at a
//! time, without dropping a request.
//!
//! A changed model's new version is loaded beside the one being served and goes through every
//! check a start-up load does (file format, checksum, contract against the graph, warm-up,
//! output guards); only then is it swapped into the [`ModelRegistry`]. Requests in flight keep
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
use crate::serving::backends::{Backends, load_to_serve};
use crate::serving::registry::{ModelEntry, ModelRegistry};
use crate::serving::repository::{self, MANIFEST_FILE, ModelSource, ScannedModel};

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
    /// The files of the version being served.
    served: Option<Fingerprint>,
    /// The last files that failed, and why: not retried until they change.
    failed: Option<(Failed, String)>,
    /// Unloaded through the repository API: rescans leave it alone until it is loaded again.
    unloaded: bool,
}

/// What identifies a version's files without reading them: the version number and the size and
/// modification time of the graph and the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    version: u64,
    graph: Option<(u64, SystemTime)>,
    manifest: Option<(u64, SystemTime)>,
}

impl Fingerprint {
    fn of(source: &ModelSource) -> Fingerprint {
        let stat = |path: &Path| {
            let metadata = std::fs::metadata(path).ok()?;
            Some((metadata.len(), metadata.modified().ok()?))
        };
        let manifest = source
            .manifest
            .as_ref()
            .and_then(|_| source.graph.parent()?.parent())
            .and_then(|dir| stat(&dir.join(MANIFEST_FILE)));
        Fingerprint {
            version: source.version,
            graph: stat(&source.graph),
            manifest,
        }
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
    /// A version was loaded and swapped in (`previous` is the one it replaced).
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
        let tracked = sources
            .iter()
            .map(|source| {
                let served = matches!(snapshot.get(&source.name), Some(ModelEntry::Ready(_)))
                    .then(|| Fingerprint::of(source));
                (
                    source.name.clone(),
                    Tracked {
                        served,
                        ..Tracked::default()
                    },
                )
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
                    .map(|m| (m.name, m.source.ok().map(|s| s.version)))
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
                    Some(ModelEntry::Ready(model)) => (
                        Some(model.version),
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
        let source = match model.source {
            Ok(source) => source,
            Err(err) => {
                let key = Failed::Scan(err.to_string());
                if !retry && tracked.failed.as_ref().is_some_and(|(k, _)| *k == key) {
                    return Change::Unchanged;
                }
                return self.failed(tracked, &name, None, key, err.to_string());
            }
        };
        let fingerprint = Fingerprint::of(&source);
        let serving = matches!(
            self.registry.snapshot().get(&name),
            Some(ModelEntry::Ready(_))
        );
        if serving && tracked.served.as_ref() == Some(&fingerprint) {
            return Change::Unchanged;
        }
        let key = Failed::Files(fingerprint.clone());
        if !retry && tracked.failed.as_ref().is_some_and(|(k, _)| *k == key) {
            return Change::Unchanged;
        }
        match load_to_serve(&source, &self.backends) {
            Ok(model) => {
                let version = model.version;
                let previous = match self
                    .registry
                    .update(&name, Some(ModelEntry::Ready(Arc::new(model))))
                {
                    Some(ModelEntry::Ready(old)) => Some(old.version),
                    _ => None,
                };
                tracked.served = Some(fingerprint);
                tracked.failed = None;
                self.metrics.loads.with_label_values(&[name.as_str()]).inc();
                tracing::info!(
                    model = %name,
                    version,
                    previous_version = previous,
                    "new version swapped in; the previous one finishes its in-flight requests"
                );
                Change::Loaded { version, previous }
            }
            Err(err) => self.failed(tracked, &name, Some(source.version), key, err.to_string()),
        }
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
            Some(ModelEntry::Ready(model)) => Some(model.version),
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

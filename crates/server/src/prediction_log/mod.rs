//! The prediction log: what each model was asked and answered, kept as typed Parquet files a
//! team can query (pandas, pyarrow, DuckDB) to audit a decision, label and retrain, or find a
//! request by its id.
//!
//! It is an [`Observer`] of the front door, so every protocol is logged alike. On the request's
//! task it only decides and copies: a request is logged when the hash of its request id falls
//! under the model's `sample` share (so a request's primary and shadow records are in or out
//! together, and a client's retry with the same id too), its admitted inputs and answer are
//! copied into a [`Record`], and the record is handed to the bounded queue of the [`Writer`]
//! (dropped and counted when full). The writer thread turns records into the version's schema
//! ([`schema`]) and files ([`writer`]).
//!
//! Settings layer: the server's (`--prediction-log-*`) under the manifest's `[prediction_log]`.
//! The directory is the server's: `<dir>/<model>/<UTC start>-v<version>-<instance>-<n>.parquet`.

mod schema;
mod stats;
mod upload;
mod writer;

pub use schema::{Record, Role, SCHEMA_VERSION, VersionLog};
pub use stats::{DropReason, ModelLogStats, Stats};
pub use upload::{UploadTarget, Uploader};
pub use writer::{MAX_QUEUED_RECORDS, Writer, parquet_properties};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use warden_contract::PredictionLog as ManifestLog;

use crate::front_door::{Observed, Observer};
use crate::metrics::{PredictionLogCounts, PredictionLogModel};
use crate::serving::{ModelVersion, ShadowAnswer, ShadowSink};

/// The environment variable holding the key of hashed features.
pub const KEY_ENV: &str = "WARDEN_PREDICTION_LOG_KEY";
/// The longest error JSON a record keeps.
const MAX_ERROR_JSON: usize = 16 * 1024;

/// One model version's log settings: the server's defaults under its manifest's table.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub sample: f64,
    /// Whether requests that were not answered (refused or failed) are logged.
    pub refused: bool,
    pub drop: Vec<String>,
    pub hash: Vec<String>,
    pub rotate_bytes: u64,
    pub rotate_seconds: u64,
    pub retain_bytes: Option<u64>,
    pub retain_files: Option<u64>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            sample: 1.0,
            refused: true,
            drop: Vec::new(),
            hash: Vec::new(),
            rotate_bytes: 128 * 1024 * 1024,
            rotate_seconds: 3600,
            retain_bytes: Some(1024 * 1024 * 1024),
            retain_files: None,
        }
    }
}

impl Settings {
    /// These defaults under a manifest's `[prediction_log]`.
    pub fn under(&self, manifest: &ManifestLog) -> Settings {
        Settings {
            sample: manifest.sample.unwrap_or(self.sample),
            refused: manifest.refused.unwrap_or(self.refused),
            drop: manifest.drop.clone(),
            hash: manifest.hash.clone(),
            rotate_bytes: manifest.rotate_bytes.unwrap_or(self.rotate_bytes),
            rotate_seconds: manifest.rotate_seconds.unwrap_or(self.rotate_seconds),
            retain_bytes: manifest.retain_bytes.or(self.retain_bytes),
            retain_files: manifest.retain_files.or(self.retain_files),
        }
    }
}

/// The server's prediction log configuration.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub directory: PathBuf,
    pub defaults: Settings,
    /// The queue's bound in bytes.
    pub queue_bytes: usize,
    /// The key of hashed features (from [`KEY_ENV`]).
    pub key: Option<Arc<[u8]>>,
    /// Where published files are uploaded, when they are.
    pub upload: Option<UploadTarget>,
}

/// Checks that `directory` can hold the log: it exists (or is created) and a file can be
/// created in it. The error names what failed.
pub fn check_directory(directory: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(directory)?;
    let probe = directory.join(format!(".warden-probe-{}", std::process::id()));
    std::fs::File::create(&probe)?;
    std::fs::remove_file(&probe)
}

/// The prediction log: the observer the front door calls and the writer behind it.
#[derive(Debug)]
pub struct PredictionLog {
    config: LogConfig,
    /// Each logged version's columns, by its process-unique id.
    versions: RwLock<HashMap<u64, Arc<VersionLog>>>,
    writer: Writer,
    uploader: Option<Arc<Uploader>>,
    stats: Arc<Stats>,
}

/// What the metrics and the page show of the log.
#[derive(Debug, Clone)]
pub struct LogFigures {
    pub directory: PathBuf,
    pub queued_bytes: usize,
    pub queue_bytes: usize,
    pub models: BTreeMap<String, ModelLogStats>,
}

impl PredictionLog {
    /// Starts the log's writer over `config.directory` (checked by start-up).
    pub fn start(config: LogConfig) -> std::io::Result<PredictionLog> {
        let stats = Arc::new(Stats::default());
        let uploader = match &config.upload {
            Some(target) => Some(Arc::new(
                Uploader::start(target.clone(), Arc::clone(&stats))
                    .map_err(std::io::Error::other)?,
            )),
            None => None,
        };
        let writer = Writer::start(
            config.directory.clone(),
            config.queue_bytes,
            Arc::clone(&stats),
            uploader.clone(),
        )?;
        Ok(PredictionLog {
            config,
            versions: RwLock::new(HashMap::new()),
            writer,
            uploader,
            stats,
        })
    }

    /// The settings `model` is logged under.
    pub fn settings_of(&self, model: &ModelVersion) -> Settings {
        self.config.defaults.under(&model.contract.prediction_log)
    }

    /// The columns `model` is logged with (made on its first record).
    fn version_log(&self, model: &ModelVersion) -> Arc<VersionLog> {
        let found = self
            .versions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&model.id())
            .cloned();
        if let Some(log) = found {
            return log;
        }
        let mut versions = self.versions.write().unwrap_or_else(|p| p.into_inner());
        if let Some(log) = versions.get(&model.id()) {
            return Arc::clone(log);
        }
        // Versions replaced by reloads leave their entries: a bound keeps them few.
        if versions.len() >= 256 {
            versions.clear();
        }
        let settings = self.settings_of(model);
        if !settings.hash.is_empty() && self.config.key.is_none() {
            tracing::error!(
                model = %model.name,
                version = model.version,
                "the manifest hashes features in the prediction log but {KEY_ENV} is not set: \
                 their columns are written as null"
            );
        }
        let log = Arc::new(VersionLog::of(model, settings, self.config.key.clone()));
        versions.insert(model.id(), Arc::clone(&log));
        log
    }

    /// Writes what is queued, publishes every open file and uploads what waits (shutdown).
    pub fn close(&self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        self.writer.close(timeout);
        if let Some(uploader) = &self.uploader {
            uploader.close(deadline.saturating_duration_since(std::time::Instant::now()));
        }
    }

    /// The log's figures now.
    pub fn figures(&self) -> LogFigures {
        LogFigures {
            directory: self.config.directory.clone(),
            queued_bytes: self
                .stats
                .queued_bytes
                .load(std::sync::atomic::Ordering::Relaxed),
            queue_bytes: self.config.queue_bytes,
            models: lock(&self.stats.models).clone(),
        }
    }

    /// The log's figures as the metrics show them.
    pub(crate) fn counts(&self) -> PredictionLogCounts {
        let figures = self.figures();
        PredictionLogCounts {
            queued_bytes: figures.queued_bytes as u64,
            queue_bytes: figures.queue_bytes as u64,
            models: figures
                .models
                .into_iter()
                .map(|(model, stats)| PredictionLogModel {
                    model,
                    written: stats
                        .records
                        .iter()
                        .map(|(version, records)| {
                            let rows = stats.rows.get(version).copied().unwrap_or(0);
                            (version.to_string(), *records, rows)
                        })
                        .collect(),
                    dropped: DropReason::ALL
                        .iter()
                        .map(|r| (r.as_str(), stats.dropped.get(r).copied().unwrap_or(0)))
                        .collect(),
                    files_published: stats.files_published,
                    bytes_published: stats.bytes_published,
                    files_deleted: stats.files_deleted,
                    files: stats.files,
                    bytes: stats.bytes,
                    uploaded_files: stats.uploaded_files,
                    uploaded_bytes: stats.uploaded_bytes,
                    upload_failures: stats.upload_failures,
                })
                .collect(),
        }
    }

    /// Logs a record of `model` (a shadow run's, say) when `request_id` is sampled.
    pub fn record(
        &self,
        model: &ModelVersion,
        request_id: &str,
        make: impl FnOnce(Arc<VersionLog>) -> Record,
    ) {
        let log = self.version_log(model);
        if sampled(log.settings.sample, request_id) {
            self.writer.push(make(log));
        }
    }
}

impl Observer for PredictionLog {
    fn wants_inputs(&self, request_id: &str, model: &ModelVersion) -> bool {
        sampled(self.version_log(model).settings.sample, request_id)
    }

    fn observe(&self, request: &Observed<'_>) {
        // A request no model version took (an unknown model) belongs to no model's log.
        let Some(model) = request.model else {
            return;
        };
        let log = self.version_log(model);
        if !sampled(log.settings.sample, request.request_id) {
            return;
        }
        let (outputs, error) = match request.outcome {
            Ok(outputs) => (outputs.to_vec(), None),
            Err(_) if !log.settings.refused => return,
            Err(err) => {
                let json =
                    String::from_utf8(err.to_json_within(MAX_ERROR_JSON)).unwrap_or_default();
                (Vec::new(), Some((err.code.as_str(), json)))
            }
        };
        let inputs = request.inputs.cloned().unwrap_or_else(|| Arc::from([]));
        let rows = if inputs.is_empty() { 0 } else { request.rows };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let arrived = now.saturating_sub(request.elapsed);
        self.writer.push(Record {
            log,
            request_id: request.request_id.to_owned(),
            timestamp_us: i64::try_from(arrived.as_micros()).unwrap_or(i64::MAX),
            latency_us: i64::try_from(request.elapsed.as_micros()).unwrap_or(i64::MAX),
            protocol: request.protocol.as_str(),
            role: Role::Primary,
            rows,
            inputs,
            outputs,
            error,
            compared: None,
        });
    }
}

impl ShadowSink for PredictionLog {
    fn shadow(&self, answer: ShadowAnswer<'_>) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        self.record(answer.version, answer.request_id, |log| Record {
            log,
            request_id: answer.request_id.to_owned(),
            timestamp_us: i64::try_from(now.saturating_sub(answer.latency).as_micros())
                .unwrap_or(i64::MAX),
            latency_us: i64::try_from(answer.latency.as_micros()).unwrap_or(i64::MAX),
            protocol: answer.protocol,
            role: Role::Shadow,
            rows: answer.rows,
            // The features are on the primary's rows of the same request id.
            inputs: Arc::from([]),
            outputs: answer.outputs.to_vec(),
            error: None,
            compared: Some((answer.primary_version, answer.agreed)),
        });
    }
}

/// Whether a request is in a `share` sample, decided by its id alone: the same id is always in
/// or always out, and ids spread evenly whatever their form.
pub fn sampled(share: f64, request_id: &str) -> bool {
    if share >= 1.0 {
        return true;
    }
    if share <= 0.0 {
        return false;
    }
    // FNV-1a, then SplitMix64's finaliser so that ids differing in one character spread.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in request_id.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^= hash >> 31;
    ((hash >> 11) as f64 / (1u64 << 53) as f64) < share
}

/// A poisoned lock still holds whole values here (counters, a sender): use them.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Waits for a background thread to end, at most `timeout`; false when it did not (it is left
/// running, detached).
fn join_within(thread: std::thread::JoinHandle<()>, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while !thread.is_finished() {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::park_timeout(Duration::from_millis(5));
    }
    let _ = thread.join();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_by_id_and_follows_the_share() {
        assert!(sampled(1.0, "a") && !sampled(0.0, "a"));
        let ids: Vec<String> = (0..20_000).map(|i| format!("req-{i}")).collect();
        let share = |s: f64| ids.iter().filter(|id| sampled(s, id)).count() as f64 / 20_000.0;
        for s in [0.01, 0.1, 0.5, 0.9] {
            // 20,000 draws: σ ≤ 0.0036; within 5σ.
            assert!((share(s) - s).abs() < 0.018, "share {s}: {}", share(s));
        }
        // Nested: an id in the 10% sample is in the 50% one.
        assert!(ids.iter().all(|id| !sampled(0.1, id) || sampled(0.5, id)));
        assert_eq!(sampled(0.3, "req-7"), sampled(0.3, "req-7"));
    }

    #[test]
    fn the_manifest_overrides_the_server_defaults_key_by_key() {
        let defaults = Settings::default();
        let manifest = ManifestLog {
            sample: Some(0.25),
            hash: vec!["customer".into()],
            retain_files: Some(10),
            ..ManifestLog::default()
        };
        let settings = defaults.under(&manifest);
        assert_eq!(settings.sample, 0.25);
        assert_eq!(settings.hash, vec!["customer".to_owned()]);
        assert_eq!(settings.retain_files, Some(10));
        assert_eq!(settings.retain_bytes, defaults.retain_bytes);
        assert!(settings.refused);
    }
}

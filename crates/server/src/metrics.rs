//! Prometheus metrics: what the server did (requests, errors, where their time went), what it
//! serves (models ready, loaded versions, queue depths) and what went wrong loading them.
//!
//! Counters and histograms are updated where the event happens (the access-log middleware, the
//! reloader); gauges describing the models' current state are built afresh from the model
//! registry for each scrape ([`ModelGauges`], from the [`ModelState`]s the caller reads), so they cannot go stale, and two concurrent
//! scrapes never see each other's half-written values (a shared gauge reset then refilled
//! would let one scrape read it empty). Each [`Metrics`] has its own `prometheus::Registry` (not
//! the crate's global one), so servers in one process (the tests) do not share counts.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// One model's state, as a scrape's gauges show it.
#[derive(Debug, Clone)]
pub struct ModelState {
    pub name: String,
    /// The version answering requests that name none; `None` when the model is not served.
    pub default_version: Option<u64>,
    /// Every served version and its queue; empty when the model is not served.
    pub served: Vec<ServedVersion>,
    /// The rollout of a candidate version, when one is on.
    pub rollout: Option<RolloutGauges>,
}

/// A rollout's figures, as a scrape shows them (the serving layer fills them from its report).
#[derive(Debug, Clone, Default)]
pub struct RolloutGauges {
    pub candidate: String,
    pub canary: f64,
    pub shadow: f64,
    /// Rollbacks by the guard since the rollout began.
    pub rollbacks: u64,
    /// Shadow runs dropped before running since the rollout began: version, reason, count.
    pub dropped: Vec<(String, &'static str, u64)>,
    /// Each version's routed and shadow traffic since the rollout began.
    pub versions: Vec<RolloutVersionCounts>,
    /// Each (primary, other) pair's comparison in each window, `since_start` included.
    pub comparisons: Vec<RolloutComparison>,
}

/// One version's traffic in a rollout since it began.
#[derive(Debug, Clone, Default)]
pub struct RolloutVersionCounts {
    pub version: String,
    pub requests: u64,
    pub errors: u64,
    pub shadow_runs: u64,
    pub shadow_errors: u64,
}

/// One (primary, other) pair's comparison in one window.
#[derive(Debug, Clone, Default)]
pub struct RolloutComparison {
    pub window: String,
    /// The totals since the rollout began (counters) rather than a sliding window (gauges).
    pub since_start: bool,
    pub primary: String,
    pub other: String,
    pub rows: u64,
    pub agreed: u64,
    pub agreement: Option<f64>,
    pub psi: Option<f64>,
    /// Primary label × other label: the labels and the counts.
    pub confusion: Option<(Vec<String>, Vec<Vec<u64>>)>,
    /// |Δ| quantiles (0.5, 0.9, 0.99, max) per class ("" for a regressor's value).
    pub deltas: Vec<(String, [f64; 4])>,
}

/// The prediction log's figures, as a scrape shows them (the log fills them).
#[derive(Debug, Clone, Default)]
pub struct PredictionLogCounts {
    /// Bytes of records waiting for the writer, and the bound.
    pub queued_bytes: u64,
    pub queue_bytes: u64,
    pub models: Vec<PredictionLogModel>,
}

/// One model's prediction log since the server started.
#[derive(Debug, Clone, Default)]
pub struct PredictionLogModel {
    pub model: String,
    /// Per version: records (requests) and rows in published files.
    pub written: Vec<(String, u64, u64)>,
    /// Records dropped, by reason.
    pub dropped: Vec<(&'static str, u64)>,
    pub files_published: u64,
    pub bytes_published: u64,
    pub files_deleted: u64,
    /// Its published files now, and their bytes.
    pub files: u64,
    pub bytes: u64,
    /// Files uploaded to object storage and their bytes, and files that could not be.
    pub uploaded_files: u64,
    pub uploaded_bytes: u64,
    pub upload_failures: u64,
}

/// The served version of a model, as the gauges show it.
#[derive(Debug, Clone)]
pub struct ServedVersion {
    pub version: u64,
    /// Requests waiting in its queue.
    pub queued: u64,
    /// Its drift figures, one per window and column (empty when it is not monitored).
    pub drift: Vec<DriftFigure>,
    /// Its explanations' counts, when it has a background set.
    pub explain: Option<ExplainFigures>,
}

/// What a version's explanations have cost since it was loaded.
#[derive(Debug, Clone, Default)]
pub struct ExplainFigures {
    /// Explain requests waiting or running now.
    pub in_flight: u64,
    /// Explain requests answered.
    pub requests: u64,
    /// Rows explained.
    pub rows: u64,
    /// Rows the engine scored for the coalition method.
    pub evaluations: u64,
    /// Time the explain thread spent, in seconds.
    pub busy_seconds: f64,
    /// Refused because the queue was full.
    pub refused_overloaded: u64,
    /// Not finished within the deadline.
    pub refused_deadline: u64,
}

/// One column's drift in one window: a feature, or the prediction (`prediction` true).
#[derive(Debug, Clone)]
pub struct DriftFigure {
    pub window: String,
    pub column: String,
    pub prediction: bool,
    /// Rows in the window.
    pub rows: u64,
    pub psi: Option<f64>,
    /// -1 insufficient data, 0 ok, 1 warn, 2 alert.
    pub status: i64,
    pub out_of_range_share: Option<f64>,
    pub null_share: Option<f64>,
    /// A regressor's mean prediction.
    pub mean: Option<f64>,
}

/// Latency buckets in seconds: 50 µs to 10 s.
const LATENCY_BUCKETS: [f64; 16] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];
/// Batch-size buckets in rows.
const ROW_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];

/// Every metric warden exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `warden_requests_total{model, version, route, code, protocol}`: `protocol` is `http` or
    /// `grpc`; `route` the HTTP route template or the gRPC method; `code` the HTTP status or the
    /// gRPC status name; model and version are empty for requests no model answered.
    pub requests: IntCounterVec,
    /// `warden_errors_total{code, type}`: `code` from the error table, `type` the violation type
    /// of `invalid_input` errors (one per distinct type in the request), else empty.
    pub errors: IntCounterVec,
    /// `warden_output_guard_violations_total{model, version}`: answers withheld by the guards.
    pub guard_violations: IntCounterVec,
    pub queue_wait: HistogramVec,
    pub inference: HistogramVec,
    pub request_duration: HistogramVec,
    pub batch_rows: HistogramVec,
    /// `warden_model_load_failures_total{model}`: versions that failed a load check.
    pub load_failures: IntCounterVec,
    /// `warden_model_loads_total{model}`: versions loaded and swapped in (start-up included).
    pub loads: IntCounterVec,
    /// `warden_connections_closed_total{reason}`: connections the server closed or refused
    /// itself (timeouts, the connection cap, the end of the shutdown grace period).
    pub connections_closed: IntCounterVec,
    /// `warden_open_connections`: TCP connections open now.
    pub open_connections: IntGauge,
    /// `warden_body_bytes_in_flight`: request body bytes held now (the memory budget's use).
    pub body_bytes_in_flight: IntGauge,
    /// `warden_body_budget_bytes`: the memory budget for request bodies in flight.
    pub body_budget_bytes: IntGauge,
    /// Requests per model in each of the last 60 seconds (for the page's request rate).
    pub recent: Arc<RecentRequests>,
}

/// Requests per model in each of the last 60 seconds: a ring of one-second counters per model,
/// so the page can show a current rate without a time-series store; and each model's error
/// answers by error code (`warden_errors_total` has no model label).
#[derive(Debug)]
pub struct RecentRequests {
    started: Instant,
    per_model: Mutex<HashMap<String, [(u64, u64); 60]>>,
    errors: Mutex<BTreeMap<(String, &'static str), u64>>,
}

impl RecentRequests {
    fn new() -> RecentRequests {
        RecentRequests {
            started: Instant::now(),
            per_model: Mutex::new(HashMap::new()),
            errors: Mutex::new(BTreeMap::new()),
        }
    }

    /// Counts one error answer (its code from the error table) of `model`.
    pub fn record_error(&self, model: &str, code: &'static str) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *errors.entry((model.to_owned(), code)).or_default() += 1;
    }

    /// `model`'s error answers by code, since start.
    pub fn errors_of(&self, model: &str) -> BTreeMap<&'static str, u64> {
        let errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        errors
            .iter()
            .filter(|((m, _), _)| m == model)
            .map(|((_, code), count)| (*code, *count))
            .collect()
    }

    /// Counts one request answered by `model` now.
    pub fn record(&self, model: &str) {
        let second = self.started.elapsed().as_secs();
        let mut models = self.per_model.lock().unwrap_or_else(|e| e.into_inner());
        let ring = match models.get_mut(model) {
            Some(ring) => ring,
            None => models
                .entry(model.to_owned())
                .or_insert([(u64::MAX, 0); 60]),
        };
        let slot = &mut ring[(second % 60) as usize];
        if slot.0 != second {
            *slot = (second, 0);
        }
        slot.1 += 1;
    }

    /// `model`'s requests per second over the last full minute (or since start, if sooner).
    pub fn per_second(&self, model: &str) -> f64 {
        let elapsed = self.started.elapsed();
        let now = elapsed.as_secs();
        let models = self.per_model.lock().unwrap_or_else(|e| e.into_inner());
        let Some(ring) = models.get(model) else {
            return 0.0;
        };
        let count: u64 = ring
            .iter()
            .filter(|(second, _)| *second <= now && now - second < 60)
            .map(|(_, count)| count)
            .sum();
        count as f64 / elapsed.as_secs_f64().clamp(1.0, 60.0)
    }
}

/// What the page shows of a model's traffic, since the server started.
#[derive(Debug, Clone, Default)]
pub struct ModelStats {
    /// Requests a version of the model answered.
    pub requests: u64,
    /// Its error answers by error code (`invalid_input`, `overloaded`, ...).
    pub errors: BTreeMap<&'static str, u64>,
    /// Latency percentiles in seconds (p50, p95, p99), estimated from the histogram's buckets
    /// as Prometheus's `histogram_quantile` does.
    pub percentiles: Option<[f64; 3]>,
    /// Requests per second over the last minute.
    pub per_second: f64,
}

/// The gauges of one scrape, set from the model registry at that moment.
struct ModelGauges {
    registry: Registry,
    queue_depth: IntGaugeVec,
    model_ready: IntGaugeVec,
    loaded_version: IntGaugeVec,
    drift_psi: GaugeVec,
    drift_status: IntGaugeVec,
    drift_out_of_range: GaugeVec,
    drift_nulls: GaugeVec,
    drift_rows: IntGaugeVec,
    prediction_psi: GaugeVec,
    prediction_status: IntGaugeVec,
    prediction_mean: GaugeVec,
    rollout_share: GaugeVec,
    rollout_rows: IntCounterVec,
    rollout_agreed: IntCounterVec,
    rollout_confusion: IntCounterVec,
    rollout_agreement: GaugeVec,
    rollout_psi: GaugeVec,
    rollout_delta: GaugeVec,
    rollout_requests: IntCounterVec,
    shadow_runs: IntCounterVec,
    shadow_dropped: IntCounterVec,
    rollbacks: IntCounterVec,
    log_records: IntCounterVec,
    log_rows: IntCounterVec,
    log_dropped: IntCounterVec,
    log_files: IntCounterVec,
    log_bytes: IntCounterVec,
    log_deleted: IntCounterVec,
    log_kept_files: IntGaugeVec,
    log_kept_bytes: IntGaugeVec,
    log_queue: IntGaugeVec,
    log_uploads: IntCounterVec,
    log_uploaded_bytes: IntCounterVec,
    explain_in_flight: IntGaugeVec,
    explain_requests: IntCounterVec,
    explain_rows: IntCounterVec,
    explain_evaluations: IntCounterVec,
    explain_seconds: prometheus::CounterVec,
    explain_refused: IntCounterVec,
}

impl ModelGauges {
    fn new() -> ModelGauges {
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let float = |name: &str, help: &str, labels: &[&str]| {
            GaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let feature = ["model", "version", "feature", "window"];
        let window = ["model", "version", "window"];
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let pair = ["model", "primary", "other"];
        let pair_window = ["model", "primary", "other", "window"];
        let version = ["model", "version"];
        let gauges = ModelGauges {
            registry: Registry::new(),
            explain_in_flight: gauge(
                "warden_explain_in_flight",
                "Explain requests waiting in the version's explanation queue or running",
                &version,
            ),
            explain_requests: counter(
                "warden_explain_requests_total",
                "Explain requests answered (V1 :explain and V2 `contributions`)",
                &version,
            ),
            explain_rows: counter("warden_explain_rows_total", "Rows explained", &version),
            explain_evaluations: counter(
                "warden_explain_evaluations_total",
                "Rows the engine scored for explanations by coalition enumeration (their cost)",
                &version,
            ),
            explain_seconds: prometheus::CounterVec::new(
                Opts::new(
                    "warden_explain_seconds_total",
                    "Time the version's explain thread spent explaining",
                ),
                &version,
            )
            .expect("valid metric"),
            explain_refused: counter(
                "warden_explain_refused_total",
                "Explain requests refused: `overloaded` (the explanation queue was full) or `deadline` (not finished in time)",
                &["model", "version", "reason"],
            ),
            queue_depth: gauge(
                "warden_queue_depth",
                "Requests waiting in the model's queue",
                &["model", "version"],
            ),
            model_ready: gauge(
                "warden_model_ready",
                "1 when the model is served, 0 when it is known but not servable",
                &["model"],
            ),
            loaded_version: gauge(
                "warden_model_loaded_version",
                "The version of the model being served",
                &["model"],
            ),
            drift_psi: float(
                "warden_drift_psi",
                "Population stability index of a feature's served values in the window against its training baseline",
                &feature,
            ),
            drift_status: gauge(
                "warden_drift_status",
                "A feature's drift judgement in the window: -1 insufficient data, 0 ok, 1 warn, 2 alert",
                &feature,
            ),
            drift_out_of_range: float(
                "warden_drift_out_of_range_share",
                "Share of a numeric feature's served values in the window outside the training range",
                &feature,
            ),
            drift_nulls: float(
                "warden_drift_null_share",
                "Share of nulls among a nullable feature's served values in the window",
                &feature,
            ),
            drift_rows: gauge(
                "warden_drift_window_rows",
                "Rows admitted in the drift window",
                &window,
            ),
            prediction_psi: float(
                "warden_prediction_drift_psi",
                "Population stability index of the predictions in the window against the training target",
                &window,
            ),
            prediction_status: gauge(
                "warden_prediction_drift_status",
                "The prediction's drift judgement in the window: -1 insufficient data, 0 ok, 1 warn, 2 alert",
                &window,
            ),
            prediction_mean: float(
                "warden_prediction_mean",
                "A regressor's mean prediction in the window",
                &window,
            ),
            rollout_share: float(
                "warden_rollout_share",
                "The share of requests in force for the rollout's candidate: `kind` canary (answers) or shadow (also runs)",
                &["model", "version", "kind"],
            ),
            rollout_rows: counter(
                "warden_rollout_compared_rows_total",
                "Rows answered by the primary version and run again on the other (shadow), since the rollout began",
                &pair,
            ),
            rollout_agreed: counter(
                "warden_rollout_agreed_rows_total",
                "Compared rows whose labels (classifiers) or values (regressors) are equal",
                &pair,
            ),
            rollout_confusion: counter(
                "warden_rollout_confusion_total",
                "Compared rows by the primary version's label and the other's",
                &["model", "primary", "other", "primary_label", "other_label"],
            ),
            rollout_agreement: float(
                "warden_rollout_agreement_ratio",
                "Label (or value) agreement of the compared rows in the window",
                &pair_window,
            ),
            rollout_psi: float(
                "warden_rollout_psi",
                "PSI of the other version's score distribution against the primary's in the window",
                &pair_window,
            ),
            rollout_delta: float(
                "warden_rollout_delta",
                "Quantile of |other - primary| in the window (per class probability for classifiers: `class`; the value for regressors: class empty), as the upper edge of its bin",
                &["model", "primary", "other", "window", "class", "quantile"],
            ),
            rollout_requests: counter(
                "warden_rollout_requests_total",
                "Requests the rollout routed to a version (`outcome` ok or error), and shadow runs on it (`kind` shadow)",
                &["model", "version", "kind", "outcome"],
            ),
            shadow_runs: counter(
                "warden_shadow_runs_total",
                "Shadow runs made on a version",
                &["model", "version"],
            ),
            shadow_dropped: counter(
                "warden_shadow_dropped_total",
                "Shadow runs dropped: busy (a shadow run already waited for idle CPU), queue_full (shadow_queue runs in flight), deadline (not finished by the request's deadline), overloaded (the other version's idle queue), outputs_not_answered",
                &["model", "version", "reason"],
            ),
            rollbacks: counter(
                "warden_rollout_rollbacks_total",
                "Canary rollbacks made by the rollout guard",
                &["model", "version"],
            ),
            log_records: counter(
                "warden_prediction_log_records_total",
                "Requests written to published prediction log files",
                &["model", "version"],
            ),
            log_rows: counter(
                "warden_prediction_log_rows_total",
                "Rows written to published prediction log files",
                &["model", "version"],
            ),
            log_dropped: counter(
                "warden_prediction_log_dropped_total",
                "Sampled requests the prediction log lost: queue_full (its queue was full), write_error (their file could not be written or published)",
                &["model", "reason"],
            ),
            log_files: counter(
                "warden_prediction_log_files_total",
                "Prediction log files published",
                &["model"],
            ),
            log_bytes: counter(
                "warden_prediction_log_bytes_total",
                "Bytes of prediction log files published",
                &["model"],
            ),
            log_deleted: counter(
                "warden_prediction_log_files_deleted_total",
                "Prediction log files deleted by retention",
                &["model"],
            ),
            log_kept_files: gauge(
                "warden_prediction_log_kept_files",
                "The model's published prediction log files now",
                &["model"],
            ),
            log_kept_bytes: gauge(
                "warden_prediction_log_kept_bytes",
                "Bytes of the model's published prediction log files now",
                &["model"],
            ),
            log_queue: gauge(
                "warden_prediction_log_queue_bytes",
                "Bytes of records waiting for the prediction log's writer (`bound`: its limit)",
                &["kind"],
            ),
            log_uploads: counter(
                "warden_prediction_log_uploads_total",
                "Prediction log files uploaded to object storage (outcome ok), or not (failed: after retries, or the upload queue was full; the file stays on disk)",
                &["model", "outcome"],
            ),
            log_uploaded_bytes: counter(
                "warden_prediction_log_uploaded_bytes_total",
                "Bytes of prediction log files uploaded to object storage",
                &["model"],
            ),
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 39] = [
            Box::new(gauges.log_uploads.clone()),
            Box::new(gauges.log_uploaded_bytes.clone()),
            Box::new(gauges.log_records.clone()),
            Box::new(gauges.log_rows.clone()),
            Box::new(gauges.log_dropped.clone()),
            Box::new(gauges.log_files.clone()),
            Box::new(gauges.log_bytes.clone()),
            Box::new(gauges.log_deleted.clone()),
            Box::new(gauges.log_kept_files.clone()),
            Box::new(gauges.log_kept_bytes.clone()),
            Box::new(gauges.log_queue.clone()),
            Box::new(gauges.rollout_share.clone()),
            Box::new(gauges.rollout_rows.clone()),
            Box::new(gauges.rollout_agreed.clone()),
            Box::new(gauges.rollout_confusion.clone()),
            Box::new(gauges.rollout_agreement.clone()),
            Box::new(gauges.rollout_psi.clone()),
            Box::new(gauges.rollout_delta.clone()),
            Box::new(gauges.rollout_requests.clone()),
            Box::new(gauges.shadow_runs.clone()),
            Box::new(gauges.shadow_dropped.clone()),
            Box::new(gauges.rollbacks.clone()),
            Box::new(gauges.queue_depth.clone()),
            Box::new(gauges.explain_in_flight.clone()),
            Box::new(gauges.explain_requests.clone()),
            Box::new(gauges.explain_rows.clone()),
            Box::new(gauges.explain_evaluations.clone()),
            Box::new(gauges.explain_seconds.clone()),
            Box::new(gauges.explain_refused.clone()),
            Box::new(gauges.model_ready.clone()),
            Box::new(gauges.loaded_version.clone()),
            Box::new(gauges.drift_psi.clone()),
            Box::new(gauges.drift_status.clone()),
            Box::new(gauges.drift_out_of_range.clone()),
            Box::new(gauges.drift_nulls.clone()),
            Box::new(gauges.drift_rows.clone()),
            Box::new(gauges.prediction_psi.clone()),
            Box::new(gauges.prediction_status.clone()),
            Box::new(gauges.prediction_mean.clone()),
        ];
        for collector in collectors {
            gauges
                .registry
                .register(collector)
                .expect("metric names are unique");
        }
        gauges
    }
}

impl ModelGauges {
    fn explain(&self, model: &str, version: &str, figures: &ExplainFigures) {
        let labels = [model, version];
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.explain_in_flight
            .with_label_values(&labels)
            .set(int(figures.in_flight));
        self.explain_requests
            .with_label_values(&labels)
            .inc_by(figures.requests);
        self.explain_rows
            .with_label_values(&labels)
            .inc_by(figures.rows);
        self.explain_evaluations
            .with_label_values(&labels)
            .inc_by(figures.evaluations);
        self.explain_seconds
            .with_label_values(&labels)
            .inc_by(figures.busy_seconds);
        for (reason, count) in [
            ("overloaded", figures.refused_overloaded),
            ("deadline", figures.refused_deadline),
        ] {
            self.explain_refused
                .with_label_values(&[model, version, reason])
                .inc_by(count);
        }
    }

    fn prediction_log(&self, log: &PredictionLogCounts) {
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.log_queue
            .with_label_values(&["queued"])
            .set(int(log.queued_bytes));
        self.log_queue
            .with_label_values(&["bound"])
            .set(int(log.queue_bytes));
        for m in &log.models {
            let model = m.model.as_str();
            for (version, records, rows) in &m.written {
                self.log_records
                    .with_label_values(&[model, version.as_str()])
                    .inc_by(*records);
                self.log_rows
                    .with_label_values(&[model, version.as_str()])
                    .inc_by(*rows);
            }
            for (reason, count) in &m.dropped {
                self.log_dropped
                    .with_label_values(&[model, reason])
                    .inc_by(*count);
            }
            self.log_files
                .with_label_values(&[model])
                .inc_by(m.files_published);
            self.log_bytes
                .with_label_values(&[model])
                .inc_by(m.bytes_published);
            self.log_deleted
                .with_label_values(&[model])
                .inc_by(m.files_deleted);
            self.log_kept_files
                .with_label_values(&[model])
                .set(int(m.files));
            self.log_kept_bytes
                .with_label_values(&[model])
                .set(int(m.bytes));
            if m.uploaded_files + m.upload_failures > 0 {
                self.log_uploads
                    .with_label_values(&[model, "ok"])
                    .inc_by(m.uploaded_files);
                self.log_uploads
                    .with_label_values(&[model, "failed"])
                    .inc_by(m.upload_failures);
                self.log_uploaded_bytes
                    .with_label_values(&[model])
                    .inc_by(m.uploaded_bytes);
            }
        }
    }

    fn rollout(&self, model: &str, rollout: &RolloutGauges) {
        let candidate = rollout.candidate.as_str();
        self.rollout_share
            .with_label_values(&[model, candidate, "canary"])
            .set(rollout.canary);
        self.rollout_share
            .with_label_values(&[model, candidate, "shadow"])
            .set(rollout.shadow);
        self.rollbacks
            .with_label_values(&[model, candidate])
            .inc_by(rollout.rollbacks);
        for (version, reason, count) in &rollout.dropped {
            self.shadow_dropped
                .with_label_values(&[model, version.as_str(), reason])
                .inc_by(*count);
        }
        for v in &rollout.versions {
            let labels = |kind, outcome| [model, v.version.as_str(), kind, outcome];
            let counts = [
                ("routed", "ok", v.requests.saturating_sub(v.errors)),
                ("routed", "error", v.errors),
                (
                    "shadow",
                    "ok",
                    v.shadow_runs.saturating_sub(v.shadow_errors),
                ),
                ("shadow", "error", v.shadow_errors),
            ];
            for (kind, outcome, count) in counts {
                self.rollout_requests
                    .with_label_values(&labels(kind, outcome))
                    .inc_by(count);
            }
            self.shadow_runs
                .with_label_values(&[model, v.version.as_str()])
                .inc_by(v.shadow_runs);
        }
        for pair in &rollout.comparisons {
            let (primary, other) = (pair.primary.as_str(), pair.other.as_str());
            if pair.since_start {
                self.rollout_rows
                    .with_label_values(&[model, primary, other])
                    .inc_by(pair.rows);
                self.rollout_agreed
                    .with_label_values(&[model, primary, other])
                    .inc_by(pair.agreed);
                if let Some((labels, counts)) = &pair.confusion {
                    for (i, row) in counts.iter().enumerate() {
                        for (j, &count) in row.iter().enumerate() {
                            self.rollout_confusion
                                .with_label_values(&[
                                    model,
                                    primary,
                                    other,
                                    labels[i].as_str(),
                                    labels[j].as_str(),
                                ])
                                .inc_by(count);
                        }
                    }
                }
                continue;
            }
            let window = pair.window.as_str();
            let labels = [model, primary, other, window];
            if let Some(agreement) = pair.agreement {
                self.rollout_agreement
                    .with_label_values(&labels)
                    .set(agreement);
            }
            if let Some(psi) = pair.psi {
                self.rollout_psi.with_label_values(&labels).set(psi);
            }
            for (class, quantiles) in &pair.deltas {
                for (name, value) in ["0.5", "0.9", "0.99", "1"].into_iter().zip(quantiles) {
                    self.rollout_delta
                        .with_label_values(&[model, primary, other, window, class, name])
                        .set(*value);
                }
            }
        }
    }

    fn drift(&self, model: &str, version: &str, figures: &[DriftFigure]) {
        for figure in figures {
            let window = [model, version, figure.window.as_str()];
            if figure.prediction {
                self.prediction_status
                    .with_label_values(&window)
                    .set(figure.status);
                if let Some(psi) = figure.psi {
                    self.prediction_psi.with_label_values(&window).set(psi);
                }
                if let Some(mean) = figure.mean {
                    self.prediction_mean.with_label_values(&window).set(mean);
                }
                continue;
            }
            self.drift_rows
                .with_label_values(&window)
                .set(i64::try_from(figure.rows).unwrap_or(i64::MAX));
            let labels = [
                model,
                version,
                figure.column.as_str(),
                figure.window.as_str(),
            ];
            self.drift_status
                .with_label_values(&labels)
                .set(figure.status);
            let floats = [
                (&self.drift_psi, figure.psi),
                (&self.drift_out_of_range, figure.out_of_range_share),
                (&self.drift_nulls, figure.null_share),
            ];
            for (gauge, value) in floats {
                if let Some(value) = value {
                    gauge.with_label_values(&labels).set(value);
                }
            }
        }
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh set of metrics in its own registry.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let model_version = ["model", "version"];
        let metrics = Metrics {
            requests: IntCounterVec::new(
                Opts::new("warden_requests_total", "Requests answered, HTTP and gRPC"),
                &["model", "version", "route", "code", "protocol"],
            )
            .expect("valid metric"),
            errors: IntCounterVec::new(
                Opts::new(
                    "warden_errors_total",
                    "Error answers by error code and violation type",
                ),
                &["code", "type"],
            )
            .expect("valid metric"),
            guard_violations: IntCounterVec::new(
                Opts::new(
                    "warden_output_guard_violations_total",
                    "Answers withheld because the model's output failed its guards",
                ),
                &model_version,
            )
            .expect("valid metric"),
            queue_wait: histogram(
                "warden_queue_wait_seconds",
                "Time a request waited in its model's queue",
                &LATENCY_BUCKETS,
            ),
            inference: histogram(
                "warden_inference_seconds",
                "Time the batch a request rode in spent in the engine",
                &LATENCY_BUCKETS,
            ),
            request_duration: HistogramVec::new(
                HistogramOpts::new(
                    "warden_request_duration_seconds",
                    "Time from the request's arrival to its answer, for requests a model answered",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["model", "version", "protocol"],
            )
            .expect("valid metric"),
            batch_rows: histogram(
                "warden_batch_rows",
                "Rows in the batch a request rode in",
                &ROW_BUCKETS,
            ),
            load_failures: IntCounterVec::new(
                Opts::new(
                    "warden_model_load_failures_total",
                    "Model versions that failed a load check (file, checksum, contract, warm-up)",
                ),
                &["model"],
            )
            .expect("valid metric"),
            loads: IntCounterVec::new(
                Opts::new(
                    "warden_model_loads_total",
                    "Model versions loaded, checked and swapped in",
                ),
                &["model"],
            )
            .expect("valid metric"),
            connections_closed: IntCounterVec::new(
                Opts::new(
                    "warden_connections_closed_total",
                    "Connections the server closed or refused itself, by reason",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            open_connections: IntGauge::new("warden_open_connections", "TCP connections open now")
                .expect("valid metric"),
            body_bytes_in_flight: IntGauge::new(
                "warden_body_bytes_in_flight",
                "Request body bytes held now, all protocols (reserved from the memory budget)",
            )
            .expect("valid metric"),
            body_budget_bytes: IntGauge::new(
                "warden_body_budget_bytes",
                "The memory budget for request body bytes in flight (--max-body-bytes-in-flight)",
            )
            .expect("valid metric"),
            recent: Arc::new(RecentRequests::new()),
            registry,
        };
        let build_info = IntGaugeVec::new(
            Opts::new("warden_build_info", "The warden build: always 1"),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let collectors: [Box<dyn prometheus::core::Collector>; 14] = [
            Box::new(metrics.connections_closed.clone()),
            Box::new(metrics.open_connections.clone()),
            Box::new(metrics.body_bytes_in_flight.clone()),
            Box::new(metrics.body_budget_bytes.clone()),
            Box::new(metrics.requests.clone()),
            Box::new(metrics.errors.clone()),
            Box::new(metrics.guard_violations.clone()),
            Box::new(metrics.queue_wait.clone()),
            Box::new(metrics.inference.clone()),
            Box::new(metrics.request_duration.clone()),
            Box::new(metrics.batch_rows.clone()),
            Box::new(metrics.load_failures.clone()),
            Box::new(metrics.loads.clone()),
            Box::new(build_info),
        ];
        for collector in collectors {
            metrics
                .registry
                .register(collector)
                .expect("metric names are unique");
        }
        metrics
    }

    /// The text exposition of every metric, with the model gauges set from `models`, the
    /// state of every model at this moment, and the prediction log's figures when one is kept.
    pub fn render(&self, models: &[ModelState], log: Option<&PredictionLogCounts>) -> String {
        let gauges = ModelGauges::new();
        if let Some(log) = log {
            gauges.prediction_log(log);
        }
        for model in models {
            let name = model.name.as_str();
            let Some(default) = model.default_version else {
                gauges.model_ready.with_label_values(&[name]).set(0);
                continue;
            };
            gauges.model_ready.with_label_values(&[name]).set(1);
            gauges
                .loaded_version
                .with_label_values(&[name])
                .set(i64::try_from(default).unwrap_or(i64::MAX));
            for served in &model.served {
                let version = served.version.to_string();
                gauges
                    .queue_depth
                    .with_label_values(&[name, version.as_str()])
                    .set(i64::try_from(served.queued).unwrap_or(i64::MAX));
                gauges.drift(name, &version, &served.drift);
                if let Some(explain) = &served.explain {
                    gauges.explain(name, &version, explain);
                }
            }
            if let Some(rollout) = &model.rollout {
                gauges.rollout(name, rollout);
            }
        }
        let mut text = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let mut families = self.registry.gather();
        families.extend(gauges.registry.gather());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let _ = TextEncoder::new().encode(&families, &mut text);
        String::from_utf8(text).unwrap_or_default()
    }
}

impl Metrics {
    /// Every model's traffic as the page shows it, from one read of the two metric families
    /// that hold it.
    pub fn model_stats(&self) -> BTreeMap<String, ModelStats> {
        let model_of = |metric: &prometheus::proto::Metric| -> Option<String> {
            metric
                .get_label()
                .iter()
                .find(|l| l.name() == "model")
                .map(|l| l.value().to_owned())
                .filter(|m| !m.is_empty())
        };
        let mut stats: BTreeMap<String, ModelStats> = BTreeMap::new();
        // Per model: each bucket's bound and cumulative count (summed over versions: bucket
        // bounds are the same for all), and the sample count.
        type Latency = (BTreeMap<u64, (f64, u64)>, u64);
        let mut latencies: BTreeMap<String, Latency> = BTreeMap::new();
        use prometheus::core::Collector as _;
        let families = self
            .requests
            .collect()
            .into_iter()
            .chain(self.request_duration.collect());
        for family in families {
            for metric in family.get_metric() {
                let Some(model) = model_of(metric) else {
                    continue;
                };
                if family.name() == "warden_requests_total" {
                    stats.entry(model).or_default().requests +=
                        metric.get_counter().get_value() as u64;
                    continue;
                }
                let histogram = metric.get_histogram();
                let (buckets, count) = latencies.entry(model).or_default();
                *count += histogram.get_sample_count();
                for bucket in histogram.get_bucket() {
                    let entry = buckets
                        .entry(bucket.upper_bound().to_bits())
                        .or_insert((bucket.upper_bound(), 0));
                    entry.1 += bucket.cumulative_count();
                }
            }
        }
        for (model, (buckets, count)) in latencies {
            let mut cumulative: Vec<(f64, u64)> = buckets.into_values().collect();
            cumulative.sort_by(|a, b| a.0.total_cmp(&b.0));
            let quantile = |q: f64| {
                let rank = q * count as f64;
                let mut lower = (0.0, 0u64);
                for &(bound, seen) in &cumulative {
                    if seen as f64 >= rank {
                        let within = (seen - lower.1) as f64;
                        let share = if within > 0.0 {
                            (rank - lower.1 as f64) / within
                        } else {
                            1.0
                        };
                        return lower.0 + (bound - lower.0) * share;
                    }
                    lower = (bound, seen);
                }
                lower.0
            };
            if count > 0 {
                stats.entry(model).or_default().percentiles =
                    Some([quantile(0.5), quantile(0.95), quantile(0.99)]);
            }
        }
        for (model, entry) in stats.iter_mut() {
            entry.per_second = self.recent.per_second(model);
            entry.errors = self.recent.errors_of(model);
        }
        stats
    }
}

fn histogram(name: &str, help: &str, buckets: &[f64]) -> HistogramVec {
    HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        &["model", "version"],
    )
    .expect("valid metric")
}

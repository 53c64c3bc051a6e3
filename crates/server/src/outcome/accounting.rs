//! Every answered request recorded once, whatever protocol it came by: one access-log line
//! (with its request id) and the metrics: `warden_requests_total` with its protocol, route and
//! status, the error counters, and for answers a model gave its latency histograms and the
//! page's recent-traffic ring. The HTTP access-log middleware and the gRPC call wrapper both
//! end a request here.

use std::sync::Arc;

use super::access_log;
use crate::metrics::Metrics;
use crate::outcome::error::ErrorCode;
use crate::serving::{ModelVersion, Timings};

/// Which model version answered (its name, version and hash: every answer names them), held
/// by reference so naming it costs no copy of its strings.
#[derive(Debug, Clone)]
pub struct ServedBy {
    pub model: Arc<ModelVersion>,
    /// Where an inference's time went (absent for metadata routes).
    pub timings: Option<Timings>,
}

impl ServedBy {
    /// `model`, with where an inference's time went when one ran.
    pub fn of(model: &Arc<ModelVersion>, timings: Option<Timings>) -> ServedBy {
        ServedBy {
            model: Arc::clone(model),
            timings,
        }
    }
}

/// One answered request, as the log and the metrics record it, whatever protocol it came by.
#[derive(Debug)]
pub(crate) struct Answered<'a> {
    pub request_id: &'a str,
    /// `http` or `grpc`.
    pub protocol: &'static str,
    /// The HTTP method (`POST` for every gRPC call).
    pub method: &'a str,
    /// The path asked for (the gRPC method's full name).
    pub path: &'a str,
    /// The HTTP route template or the gRPC method: a bounded set, never a raw path.
    pub route: &'a str,
    /// The HTTP status or the gRPC status name.
    pub status: &'a str,
    pub served: Option<&'a ServedBy>,
    pub code: Option<ErrorCode>,
    /// The distinct violation types of an `invalid_input` answer.
    pub violation_types: &'a [&'static str],
    pub elapsed: std::time::Duration,
}

/// Logs one answered request and counts it in the metrics.
pub(crate) fn record(metrics: &Metrics, answered: &Answered<'_>) {
    access_log::write(answered);
    count(metrics, answered);
}

fn count(metrics: &Metrics, answered: &Answered<'_>) {
    let served = answered.served;
    let model = served.map_or("", |s| s.model.name.as_str());
    let version = served.map_or("", |s| s.model.version_label.as_str());
    metrics
        .requests
        .with_label_values(&[
            model,
            version,
            answered.route,
            answered.status,
            answered.protocol,
        ])
        .inc();
    if let Some(code) = answered.code {
        if let Some(served) = served {
            metrics
                .recent
                .record_error(&served.model.name, code.as_str());
        }
        if answered.violation_types.is_empty() {
            metrics.errors.with_label_values(&[code.as_str(), ""]).inc();
        }
        for kind in answered.violation_types {
            metrics
                .errors
                .with_label_values(&[code.as_str(), kind])
                .inc();
        }
        if code == ErrorCode::InvalidOutput && served.is_some() {
            metrics
                .guard_violations
                .with_label_values(&[model, version])
                .inc();
        }
    }
    if let Some(served) = served {
        metrics.recent.record(model);
        let labels = [model, version];
        if let Some(timings) = served.timings {
            metrics
                .queue_wait
                .with_label_values(&labels)
                .observe(timings.queue.as_secs_f64());
            metrics
                .inference
                .with_label_values(&labels)
                .observe(timings.inference.as_secs_f64());
            metrics
                .batch_rows
                .with_label_values(&labels)
                .observe(timings.batch_rows as f64);
            metrics
                .request_duration
                .with_label_values(&[model, version, answered.protocol])
                .observe(answered.elapsed.as_secs_f64());
        }
    }
}

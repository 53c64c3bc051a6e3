//! Every answered request counted once, whatever protocol it came by: `warden_requests_total`
//! with its protocol, route and status, the error counters, and for answers a model gave its
//! latency histograms and the page's recent-traffic ring.

use crate::metrics::Metrics;
use crate::outcome::error::ErrorCode;

/// Which model version answered; handlers attach it to their responses for the log line.
#[derive(Debug, Clone)]
pub struct ServedBy {
    pub model: String,
    pub version: u64,
    /// Where an inference's time went (absent for metadata routes).
    pub timings: Option<crate::serving::Timings>,
}

/// One answered request, as the metrics count it, whatever protocol it came by.
#[derive(Debug)]
pub(crate) struct Answered<'a> {
    /// `http` or `grpc`.
    pub protocol: &'static str,
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

/// Counts one answered request in the metrics.
pub(crate) fn record(metrics: &Metrics, answered: &Answered<'_>) {
    let served = answered.served;
    let model = served.map_or("", |s| s.model.as_str());
    let version = served.map(|s| s.version.to_string()).unwrap_or_default();
    let version = version.as_str();
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
            metrics.recent.record_error(&served.model, code.as_str());
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

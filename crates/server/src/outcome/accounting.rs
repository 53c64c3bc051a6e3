//! Every answered request recorded once, whatever protocol it came by: one access-log line
//! (with its request id) and the metrics: `warden_requests_total` with its protocol, route and
//! status, the error counters, and for answers a model gave its latency histograms and the
//! page's recent-traffic ring. The HTTP access-log middleware and the gRPC call wrapper both
//! end a request here.

use super::access_log;
use super::answered::Answered;
use crate::metrics::Metrics;
use crate::outcome::error::ErrorCode;

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

//! Per-request observability: one structured log line and the request metrics for every
//! request, with its id, route, status, duration and the model version that answered. The id
//! comes from the client's `x-request-id` or is generated (tower-http), and is returned on the
//! response.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::error::{ErrorCode, ViolationTypes};
use crate::metrics::Metrics;
use crate::state::AppState;

/// Which model version answered; handlers attach it to their responses for the log line.
#[derive(Debug, Clone)]
pub struct ServedBy {
    pub model: String,
    pub version: u64,
    /// Where an inference's time went (absent for metadata routes).
    pub timings: Option<crate::serving::Timings>,
}

/// Logs one line per request and counts it, and runs the request inside a span carrying its
/// id so every other log line it causes (including on the inference thread) carries the id too.
pub(super) async fn access_log(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    // The route template, never the raw path: label values must stay few.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let span = tracing::info_span!("request", request_id = %request_id);
    let response = next.run(request).instrument(span).await;
    let elapsed = started.elapsed();
    let served = response.extensions().get::<ServedBy>();
    let code = response.extensions().get::<ErrorCode>().copied();
    let violation_types = response
        .extensions()
        .get::<ViolationTypes>()
        .map_or(&[][..], |types| types.0.as_slice());
    record(
        &state.metrics,
        &Answered {
            protocol: "http",
            route: &route,
            status: response.status().as_str(),
            served,
            code,
            violation_types,
            elapsed,
        },
    );
    tracing::info!(
        request_id = %request_id,
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        model = served.map(|s| s.model.as_str()),
        version = served.map(|s| s.version),
        queue_ms = served.and_then(|s| s.timings).map(|t| t.queue.as_secs_f64() * 1e3),
        inference_ms = served.and_then(|s| s.timings).map(|t| t.inference.as_secs_f64() * 1e3),
        batch_rows = served.and_then(|s| s.timings).map(|t| t.batch_rows),
        code = code.map(ErrorCode::as_str),
        "request"
    );
    response
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

//! Per-request observability: one structured log line and the request metrics for every
//! request, with its id, route, status, duration and the model version that answered. The id
//! comes from the client's `x-request-id` or is generated (tower-http), and is returned on the
//! response.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::outcome::error::{ErrorCode, ViolationTypes};
use crate::outcome::{Answered, ServedBy, record};
use crate::state::AppState;

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

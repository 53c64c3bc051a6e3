//! Per-request observability: one structured log line per request with its id, route, status,
//! duration and the model version that answered. The id comes from the client's `x-request-id`
//! or is generated (tower-http), and is returned on the response.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::error::ErrorCode;

/// Which model version answered; handlers attach it to their responses for the log line.
#[derive(Debug, Clone)]
pub struct ServedBy {
    pub model: String,
    pub version: u64,
    /// Where an inference's time went (absent for metadata routes).
    pub timings: Option<crate::worker::Timings>,
}

/// Logs one line per request, and runs the request inside a span carrying its id so every
/// other log line it causes (including on the inference thread) carries the id too.
pub async fn access_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let span = tracing::info_span!("request", request_id = %request_id);
    let response = next.run(request).instrument(span).await;
    let served = response.extensions().get::<ServedBy>();
    let code = response.extensions().get::<ErrorCode>().map(|c| c.as_str());
    tracing::info!(
        request_id = %request_id,
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        model = served.map(|s| s.model.as_str()),
        version = served.map(|s| s.version),
        queue_ms = served.and_then(|s| s.timings).map(|t| t.queue.as_secs_f64() * 1e3),
        inference_ms = served.and_then(|s| s.timings).map(|t| t.inference.as_secs_f64() * 1e3),
        batch_rows = served.and_then(|s| s.timings).map(|t| t.batch_rows),
        code,
        "request"
    );
    response
}

//! Per-request observability: every HTTP request ends in `outcome::record` (one structured log
//! line and the request metrics, with its id, route, status, duration and the model version that
//! answered). The id comes from the client's `x-request-id` or is generated (tower-http), and is
//! returned on the response. The request's arrival is stamped here, first, so its deadline
//! counts from it.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::outcome::error::{ErrorCode, ViolationTypes};
use crate::outcome::{Answered, ServedBy, record};
use crate::stage::{self, Stage};
use crate::state::AppState;
use crate::transport::deadline::Arrived;

/// Logs one line per request and counts it, and runs the request inside a span carrying its
/// id so every other log line it causes (including on the inference thread) carries the id too.
pub(super) async fn access_log(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    stage::enter(Stage::Read);
    request.extensions_mut().insert(Arrived(started));
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
    stage::enter(Stage::Log);
    record(
        &state.metrics,
        &Answered {
            request_id: &request_id,
            protocol: "http",
            method: method.as_str(),
            path: &path,
            route: &route,
            status: response.status().as_str(),
            served,
            code,
            violation_types,
            elapsed,
        },
    );
    stage::enter(Stage::Transport);
    response
}

//! The HTTP layer: routes, shared state, and the middleware every request passes through.
//!
//! Handlers translate between HTTP and the layers below and decide nothing themselves: the
//! protocol codecs ([`crate::protocol`]) decode and encode, the serving layer
//! ([`crate::serving`]) looks models up, admits inputs through the contract gate and runs them.
//! [`router`] is a plain function so tests drive the real router in-process or on a socket.

mod answer;
mod auth;
mod body;
mod drift;
mod model_openapi;
mod observe;
mod openapi;
mod operations;
mod page;
mod path;
mod rollout;
mod v1;
mod v2;
mod wire;

pub use answer::canned_answers;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::outcome::ServedBy;
use crate::outcome::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::transport::deadline::{Arrived, Deadline};

/// When the request must be answered: its arrival (stamped by the access log) plus its
/// `x-timeout-ms`, or the server's request timeout.
fn request_deadline(state: &AppState, request: &Request) -> Result<Deadline, ApiError> {
    let arrived = request
        .extensions()
        .get::<Arrived>()
        .map_or_else(Instant::now, |arrived| arrived.0);
    let asked = match request.headers().get(TIMEOUT_HEADER) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|&ms| ms > 0)
                .map(Duration::from_millis)
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidInput,
                        "x-timeout-ms must be a positive number of milliseconds",
                    )
                })?,
        ),
    };
    Ok(Deadline::new(arrived, asked, state.request_timeout))
}

/// The request's id: the client's `x-request-id`, or the one generated for it.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned()
}

/// The header a client sets to bound a request's time, in milliseconds.
pub const TIMEOUT_HEADER: &str = "x-timeout-ms";

/// The whole HTTP API. Bodies are read within the state's limits (`body::read`), not axum's.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/v2/health/live", get(v2::live))
        .route("/v2/health/ready", get(v2::ready))
        .route("/v2", get(v2::server_metadata))
        .route("/v2/models/{model}", get(v2::model_metadata))
        .route(
            "/v2/models/{model}/versions/{version}",
            get(v2::model_version_metadata),
        )
        .route("/v2/models/{model}/ready", get(v2::model_ready))
        .route(
            "/v2/models/{model}/versions/{version}/ready",
            get(v2::model_version_ready),
        )
        .route("/v2/models/{model}/infer", post(v2::infer))
        .route(
            "/v2/models/{model}/versions/{version}/infer",
            post(v2::infer_version),
        )
        .route("/", get(page::index))
        .route("/ui/models/{model}", get(page::model_page))
        .route("/metrics", get(operations::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/v2/repository/index", post(operations::index))
        .route("/v2/repository/models/{model}/load", post(operations::load))
        .route(
            "/v2/repository/models/{model}/unload",
            post(operations::unload),
        )
        .route(
            "/v2/repository/models/{model}/rollout",
            post(rollout::change),
        )
        .route("/v1/models/{model}/rollout", get(rollout::report))
        .route("/v1/models/{model}/drift", get(drift::drift))
        .route(
            "/v1/models/{model}/openapi.json",
            get(openapi::model_openapi),
        )
        .route(
            "/v1/models/{model}/versions/{version}/openapi.json",
            get(openapi::model_version_openapi),
        )
        .route(
            "/v1/models/{model}/versions/{version}/drift",
            get(drift::drift_version),
        )
        .route("/v1/models/{model_action}", post(v1::predict))
        .route(
            "/v1/models/{model}/versions/{version_action}",
            post(v1::predict_version),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.body_limit_bytes))
        .with_state(state.clone());
    let api = api.layer(CatchPanicLayer::custom(|_panic| {
        ApiError::internal(&"a handler panicked").into_response()
    }));
    // Without tokens there is nothing to check: no layer, no per-request cost.
    let api = if state.auth.is_some() {
        api.layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
    } else {
        api
    };
    api.layer(middleware::from_fn_with_state(state, observe::access_log))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

async fn not_found() -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        "no such route; see the README for the API",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not accept that HTTP method",
    )
}

/// Marks a response as answered by a model version: headers naming it and its hash (so every
/// answer says what produced it), where its time went (`server-timing`), and an extension for
/// the access log.
fn served(by: ServedBy, response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    let headers = response.headers_mut();
    if let Some(t) = by.timings {
        let value = format!(
            "queue;dur={:.3}, inference;dur={:.3}",
            t.queue.as_secs_f64() * 1e3,
            t.inference.as_secs_f64() * 1e3
        );
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static("server-timing"), value);
        }
        headers.insert(
            HeaderName::from_static("x-batch-rows"),
            HeaderValue::from(t.batch_rows),
        );
    }
    for (name, value) in [
        ("x-model-name", by.model.name.as_str()),
        ("x-model-version", by.model.version_label.as_str()),
        ("x-model-sha256", by.model.sha256.as_str()),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    response.extensions_mut().insert(by);
    response
}

//! The Open Inference Protocol (KServe V2) over gRPC, on its own port (`--grpc-port`, default
//! 8001 as Triton and KServe use), so `tritonclient.grpc`, KServe's `InferenceGRPCClient` and
//! stubs generated from the protocol's `.proto` work unchanged.
//!
//! It is the gRPC face of the same server, not a second one: inferences go through the same
//! front door as REST ([`crate::front_door`]: registry, contract gate, scheduler, output guards),
//! their tensors through the same checks ([`crate::protocol::v2`]), errors through the same table
//! ([`crate::outcome::error::ErrorCode::grpc`]), and the listener through the same connection caps,
//! timeouts and graceful drain ([`crate::transport::connections`]): tonic's services are turned into
//! an axum router and served by warden's own accept loop beside the HTTP router.
//!
//! - [`service`]: `inference.GRPCInferenceService` (live, ready, metadata, `ModelInfer`), its
//!   codec in [`crate::protocol::v2`];
//! - [`health`]: `grpc.health.v1.Health`, answered from the registry on every call (Kubernetes'
//!   gRPC probes), and server reflection (v1 and v1alpha) so `grpcurl` needs no `.proto`;
//! - [`inference`]: the prost messages and tonic service (generated; they live with the codec).
//!
//! Auth: the same tokens, as `authorization: Bearer …` metadata; health checks and
//! `ServerLive`/`ServerReady` are open, as the REST health routes are.
//!
//! Bounds: a unary call's message is read whole by [`bounded_message`] before tonic sees it,
//! through the transport's bounded read (`crate::transport::body`): within the body timeout or
//! the call's own `grpc-timeout`, whichever is sooner (then `DEADLINE_EXCEEDED` and the stream
//! reset), refused at once when its length prefix is over the limit or its bytes would pass the
//! memory budget (`RESOURCE_EXHAUSTED`). The streaming calls (health `Watch`, reflection) have
//! their client stream bounded as it goes: a frame at least every body timeout, 1 MiB in all.

mod health;
mod service;

pub use crate::protocol::v2::inference;

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;

use crate::auth::Access;
use crate::outcome::error::{ApiError, ErrorCode, grpc_name};
use crate::outcome::{Answered, ServedBy, body_refusal, record};
use crate::protocol::v2::INFERENCE_DESCRIPTOR;
use crate::stage::{self, Stage};
use crate::state::AppState;
use crate::transport::body::{BodyBounds, BoundedStream, Framing, read_bounded};
use crate::transport::deadline::{Arrived, Deadline};
use inference::grpc_inference_service_server::GrpcInferenceServiceServer;

pub use service::Inference;

/// The gRPC methods warden answers, by full path, and whether the client sends a stream (or
/// may keep sending: its request body is then bounded as it goes rather than read whole).
/// Which of them need a token is `Access::of`'s to say, as for the REST paths.
const METHODS: &[(&str, bool)] = &[
    ("/inference.GRPCInferenceService/ServerLive", false),
    ("/inference.GRPCInferenceService/ServerReady", false),
    ("/inference.GRPCInferenceService/ModelReady", false),
    ("/inference.GRPCInferenceService/ServerMetadata", false),
    ("/inference.GRPCInferenceService/ModelMetadata", false),
    ("/inference.GRPCInferenceService/ModelInfer", false),
    ("/grpc.health.v1.Health/Check", false),
    ("/grpc.health.v1.Health/Watch", true),
    (
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        true,
    ),
    (
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        true,
    ),
];

/// A method's full path if warden answers it, else `unmatched` (it is then `UNIMPLEMENTED`;
/// metric label values must stay few); and whether its client streams.
fn known_method(path: &str) -> (&'static str, bool) {
    METHODS
        .iter()
        .find(|(known, _)| *known == path)
        .copied()
        .unwrap_or(("unmatched", false))
}

/// The most a streaming call's client may send in all: reflection requests and a health
/// request are a few hundred bytes each.
const MAX_CLIENT_STREAM_BYTES: usize = 1024 * 1024;

/// The gRPC services as one router for the connection layer: inference, health, reflection;
/// messages up to the server's body limit.
pub fn router(state: AppState) -> Router {
    let message_limit_bytes = state.body_limit_bytes;
    let inference = GrpcInferenceServiceServer::new(Inference::new(state.clone()))
        .max_decoding_message_size(message_limit_bytes)
        .max_encoding_message_size(usize::MAX);
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(INFERENCE_DESCRIPTOR)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let mut routes =
        tonic::service::Routes::new(inference).add_service(health::service(state.clone()));
    // Both reflection versions: grpcurl asks v1 first, older tools only know v1alpha.
    match (reflection().build_v1(), reflection().build_v1alpha()) {
        (Ok(v1), Ok(v1alpha)) => routes = routes.add_service(v1).add_service(v1alpha),
        (Err(err), _) | (_, Err(err)) => {
            tracing::error!(error = %err, "gRPC reflection is unavailable")
        }
    }
    let router = routes
        .into_axum_router()
        .layer(CatchPanicLayer::custom(|_panic| {
            status_response(&ApiError::internal(&"a gRPC handler panicked"), "-")
        }))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            tonic_refusals,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            bounded_message,
        ));
    let router = if state.auth.is_some() {
        router.layer(middleware::from_fn_with_state(state, require_token))
    } else {
        router
    };
    router.layer(middleware::from_fn(arrive))
}

/// The first thing every call meets: its arrival stamped (its deadline counts from it) and its
/// request id fixed (the client's `x-request-id` when it is 1 to 200 bytes of text, else a new
/// one), so every layer after, and the front door, log and answer under the same id.
async fn arrive(mut request: Request, next: Next) -> Response {
    stage::enter(Stage::Read);
    request.extensions_mut().insert(Arrived(Instant::now()));
    let headers = request.headers_mut();
    let id = request_id(headers.get("x-request-id"));
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        headers.insert("x-request-id", value);
    }
    next.run(request).await
}

/// The call's deadline: its arrival plus its `grpc-timeout` (which every gRPC client sends for
/// a call with a timeout), else the server's request timeout.
fn deadline(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    arrived: Instant,
) -> Result<Deadline, ApiError> {
    let asked = match headers.get("grpc-timeout") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(parse_grpc_timeout)
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidInput,
                        "grpc-timeout must be 1 to 8 digits and a unit (H, M, S, m, u or n)",
                    )
                })?,
        ),
    };
    Ok(Deadline::new(arrived, asked, state.request_timeout))
}

/// `grpc-timeout`'s format: up to eight digits and a unit.
fn parse_grpc_timeout(text: &str) -> Option<Duration> {
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value * 3600),
        "M" => Duration::from_secs(value * 60),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

/// What tonic refuses before a service sees the call, answered from the error table and
/// counted like any other error: a message that is not valid protobuf (tonic says INTERNAL,
/// but it is the client's: `invalid_input`, INVALID_ARGUMENT), a message over the limit (tonic
/// says OUT_OF_RANGE: `payload_too_large`, RESOURCE_EXHAUSTED as the gRPC specification has it),
/// and an unknown method (`not_found`, UNIMPLEMENTED).
async fn tonic_refusals(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (route, _) = known_method(request.uri().path());
    let request_id = request_id(request.headers().get("x-request-id"));
    let started = arrival(&request);
    let response = next.run(request).await;
    let headers = response.headers();
    if headers.contains_key("warden-code") {
        return response;
    }
    let status = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32);
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let error = match status {
        Some(tonic::Code::Internal) if message.starts_with("failed%20to%20decode") => {
            ApiError::new(
                ErrorCode::InvalidInput,
                "the message is not a valid protobuf encoding of this method's request",
            )
        }
        Some(tonic::Code::OutOfRange) => ApiError::new(
            ErrorCode::PayloadTooLarge,
            "the message is over the server's limit (--max-body-bytes)",
        ),
        Some(tonic::Code::Unimplemented) if route == "unmatched" => ApiError::new(
            ErrorCode::NotFound,
            "no such gRPC method; warden serves inference.GRPCInferenceService, \
             grpc.health.v1.Health and server reflection",
        ),
        _ => return response,
    };
    answered(
        &state,
        route,
        &request_id,
        None,
        Some(&error),
        started.elapsed(),
    );
    status_response(&error, &request_id)
}

/// Reads a unary call's message whole, within the body timeout (or the call's `grpc-timeout`,
/// when sooner), the message limit and the memory budget, and hands tonic the bytes read; the
/// budget's reservation is held until the call is answered. A streaming call's client stream is
/// bounded as it goes instead. Compressed messages are refused: warden decodes none.
async fn bounded_message(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (route, streaming) = known_method(request.uri().path());
    if streaming {
        let (parts, body) = request.into_parts();
        let body = BoundedStream::new(body, state.body_timeout, MAX_CLIENT_STREAM_BYTES);
        return next.run(Request::from_parts(parts, Body::new(body))).await;
    }
    let started = arrival(&request);
    let refuse = |error: ApiError, request_id: &str| {
        answered(
            &state,
            route,
            request_id,
            None,
            Some(&error),
            started.elapsed(),
        );
        status_response(&error, request_id)
    };
    let compressed = || {
        ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "compressed messages are not accepted; send them uncompressed (grpc-encoding identity)",
        )
    };
    let headers = request.headers();
    if headers
        .get("grpc-encoding")
        .is_some_and(|encoding| encoding.as_bytes() != b"identity")
    {
        return refuse(compressed(), &request_id(headers.get("x-request-id")));
    }
    let deadline = match deadline(&state, headers, started) {
        Ok(deadline) => deadline,
        Err(error) => return refuse(error, &request_id(headers.get("x-request-id"))),
    };
    let (until, clients_deadline) = deadline.within(state.body_timeout);
    let bounds = BodyBounds {
        // The message limit, and the 5-byte prefix in front of it.
        max_bytes: state.body_limit_bytes.saturating_add(5),
        until,
        clients_deadline,
    };
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(deadline);
    match read_bounded(body, Framing::GrpcMessage, bounds, &state.body_budget).await {
        Ok(read) if read.bytes.first().is_some_and(|&flag| flag != 0) => {
            refuse(compressed(), &request_id(parts.headers.get("x-request-id")))
        }
        Ok(read) => {
            let response = next
                .run(Request::from_parts(parts, Body::from(read.bytes)))
                .await;
            drop(read.permit);
            response
        }
        Err(refusal) => refuse(
            body_refusal(
                refusal,
                "the message",
                state.body_limit_bytes,
                state.body_timeout,
            ),
            &request_id(parts.headers.get("x-request-id")),
        ),
    }
}

/// Refuses a call without a valid token (`UNAUTHENTICATED`), before any service sees it.
async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let access = Access::of(path);
    if let Some(auth) = &state.auth {
        let authorization = request
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        if let Err(denied) = auth.check(access, authorization) {
            let error = ApiError::from(denied);
            let request_id = request_id(request.headers().get("x-request-id"));
            answered(
                &state,
                known_method(path).0,
                &request_id,
                None,
                Some(&error),
                arrival(&request).elapsed(),
            );
            return status_response(&error, &request_id);
        }
    }
    next.run(request).await
}

/// The longest status message, in bytes: gRPC clients refuse answers whose metadata pass 8 KiB
/// (grpcio's default), and the message travels percent-encoded (up to 3 bytes per byte).
const MAX_STATUS_MESSAGE_BYTES: usize = 1024;
/// The longest JSON error body in `warden-error-bin` (4 KiB once base64-encoded).
const MAX_ERROR_METADATA_BYTES: usize = 3 * 1024;

/// An error as a gRPC status: the table's gRPC code; the message `code: message`, then each
/// violation as `location: message`; the error code in `warden-code` metadata and the REST
/// error body (JSON, the violations that fit in [`MAX_ERROR_METADATA_BYTES`] listed, the rest
/// counted) in `warden-error-bin`. All of it within a client's default metadata limit.
pub(crate) fn status(error: &ApiError) -> tonic::Status {
    let mut message = format!("{}: {}", error.code.as_str(), error.message);
    for violation in error.details.listed() {
        if message.len() > MAX_STATUS_MESSAGE_BYTES {
            break;
        }
        message.push_str(&format!(
            "; {}: {}",
            location(&violation.loc),
            violation.msg
        ));
    }
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert(
        "warden-code",
        tonic::metadata::MetadataValue::from_static(error.code.as_str()),
    );
    metadata.insert_bin(
        "warden-error-bin",
        tonic::metadata::MetadataValue::from_bytes(&error.to_json_within(MAX_ERROR_METADATA_BYTES)),
    );
    tonic::Status::with_metadata(
        error.code.grpc(),
        clip_bytes(&message, MAX_STATUS_MESSAGE_BYTES),
        metadata,
    )
}

/// `text` cut at a character boundary to at most `max` bytes, `…` marking a cut.
fn clip_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A call's request id: the client's `x-request-id` (1 to 200 bytes of text), else a new UUID.
pub(crate) fn request_id(given: Option<&axum::http::HeaderValue>) -> String {
    given
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 200)
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// Counts one answered call in the metrics and logs it, as the HTTP access log does a request:
/// whether the service answered it or it was refused before (auth, tonic's own refusals).
pub(crate) fn answered(
    state: &AppState,
    route: &str,
    request_id: &str,
    served: Option<&ServedBy>,
    error: Option<&ApiError>,
    elapsed: Duration,
) {
    stage::enter(Stage::Log);
    let status = error.map_or_else(|| "OK".to_owned(), |e| grpc_name(e.code.grpc()));
    let violation_types = error.map(ApiError::violation_types).unwrap_or_default();
    record(
        &state.metrics,
        &Answered {
            request_id,
            protocol: "grpc",
            method: "POST",
            path: route,
            route,
            status: &status,
            served,
            code: error.map(|e| e.code),
            violation_types: &violation_types,
            elapsed,
        },
    );
    stage::enter(Stage::Transport);
}

/// When the call arrived (stamped by [`arrive`]).
fn arrival(request: &Request) -> Instant {
    request
        .extensions()
        .get::<Arrived>()
        .map_or_else(Instant::now, |arrived| arrived.0)
}

/// An error as a trailers-only gRPC answer carrying the request id, for the layers that refuse
/// a call before a service sees it.
fn status_response(error: &ApiError, request_id: &str) -> Response {
    let mut status = status(error);
    if let Ok(id) = tonic::metadata::MetadataValue::try_from(request_id) {
        status.metadata_mut().insert("x-request-id", id);
    }
    let (parts, body) = status.into_http::<Body>().into_parts();
    let mut response = Response::from_parts(parts, body);
    response.extensions_mut().insert(error.code);
    response.into_response()
}

/// A violation's location as a path: `inputs[0].contents.fp32_contents[3]`.
fn location(loc: &[warden_contract::LocSegment]) -> String {
    let mut text = String::new();
    for segment in loc {
        match segment {
            warden_contract::LocSegment::Key(key) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(key);
            }
            warden_contract::LocSegment::Index(index) => text.push_str(&format!("[{index}]")),
        }
    }
    if text.is_empty() {
        "request".to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_as_the_specification_writes_them() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5000u"), Some(Duration::from_millis(5)));
        assert_eq!(parse_grpc_timeout("123456789m"), None, "nine digits");
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
        assert_eq!(parse_grpc_timeout(""), None);
    }
}

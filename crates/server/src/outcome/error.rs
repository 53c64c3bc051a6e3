//! The one table of client-visible errors: every error a client can see has a stable `code`,
//! an HTTP status and a one-line meaning, here and nowhere else. The README's table is rendered
//! from [`ErrorCode::ALL`] and a test keeps the two equal.
//!
//! Bodies are `{"code": ..., "error": ...}` plus `details` (one entry per violation) when there
//! are any; the KServe V2 routes keep the protocol's `error` key, so V2 clients read them too.
//! Internal causes (paths, engine messages) are logged with the request id, never sent.
//! HTTP answers are made from it in `api/answer.rs`, gRPC statuses in `grpc/mod.rs`.

use axum::http::StatusCode;
use serde::Serialize;
use warden_contract::{Violations, clip_to};

/// Declares the error codes: each once, with its wire code, HTTP status and meaning; the enum,
/// [`ErrorCode::ALL`] (in the README's order) and the lookups all come from that one list.
macro_rules! error_codes {
    ($($variant:ident = $code:literal, $status:ident, $grpc:ident, $meaning:literal;)*) => {
        /// Every client-visible error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            /// The table, in the order the README shows it.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The stable code clients match on.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The HTTP status it is answered with.
            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)*
                }
            }

            /// The gRPC status code it is answered with on the gRPC listener.
            pub fn grpc(self) -> tonic::Code {
                match self {
                    $(ErrorCode::$variant => tonic::Code::$grpc,)*
                }
            }

            /// When it happens, in one line.
            pub fn meaning(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $meaning,)*
                }
            }
        }
    };
}

error_codes! {
    MalformedJson = "malformed_json", BAD_REQUEST, InvalidArgument,
        "the body is not valid JSON (line and column given)";
    InvalidInput = "invalid_input", BAD_REQUEST, InvalidArgument,
        "the request breaks the model's contract or the protocol (every violation in `details`)";
    BatchTooLarge = "batch_too_large", BAD_REQUEST, InvalidArgument,
        "more rows than the model's `max_request_rows`";
    LoadFailed = "load_failed", BAD_REQUEST, FailedPrecondition,
        "the repository API could not load the model: its files failed a load check (the reason given); what was served still is";
    Unauthorized = "unauthorized", UNAUTHORIZED, Unauthenticated,
        "missing or wrong bearer token (with `WWW-Authenticate`)";
    Forbidden = "forbidden", FORBIDDEN, PermissionDenied,
        "the token is valid but not an admin token, which the repository API requires";
    ModelNotFound = "model_not_found", NOT_FOUND, NotFound,
        "unknown model or version";
    NotFound = "not_found", NOT_FOUND, Unimplemented,
        "no such route";
    MethodNotAllowed = "method_not_allowed", METHOD_NOT_ALLOWED, Unimplemented,
        "the route exists but not for this HTTP method";
    RequestTimeout = "request_timeout", REQUEST_TIMEOUT, DeadlineExceeded,
        "the body did not arrive within the body timeout (default 30 s) after the headers; the connection is closed";
    PayloadTooLarge = "payload_too_large", PAYLOAD_TOO_LARGE, ResourceExhausted,
        "the body is over the configured limit (default 8 MiB), refused at once when its `Content-Length` or gRPC length prefix says so";
    HeadersTooLarge = "headers_too_large", REQUEST_HEADER_FIELDS_TOO_LARGE, ResourceExhausted,
        "the request line and headers are over 64 KiB (HTTP/1) or 16 KiB (HTTP/2); the connection is closed";
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, InvalidArgument,
        "the content type is not JSON, or the body is compressed (`Content-Encoding` other than `identity`; a gRPC message with `grpc-encoding` or its compressed flag)";
    ExplainUnavailable = "explain_unavailable", CONFLICT, FailedPrecondition,
        "an explanation was asked of a model with no background set (`warden init --data` stores one)";
    ExplainTooCostly = "explain_too_costly", UNPROCESSABLE_ENTITY, ResourceExhausted,
        "exact Shapley values by enumeration would cost more than the model's `[explain]` limits (`max_exact_features`, `max_evaluations`)";
    InvalidOutput = "invalid_output", INTERNAL_SERVER_ERROR, Internal,
        "the model answered NaN, a broken probability or an unknown label; the values are withheld";
    Internal = "internal", INTERNAL_SERVER_ERROR, Internal,
        "anything else; details only in the log, under the request id";
    Overloaded = "overloaded", SERVICE_UNAVAILABLE, ResourceExhausted,
        "the model's queue is full, the bodies in flight fill the memory budget (`--max-body-bytes-in-flight`), or the server is at its connection cap with none idle (with `Retry-After`)";
    ModelNotReady = "model_not_ready", SERVICE_UNAVAILABLE, Unavailable,
        "the model is loading or failed to load";
    DeadlineExceeded = "deadline_exceeded", GATEWAY_TIMEOUT, DeadlineExceeded,
        "the request's own deadline (`x-timeout-ms`, gRPC's `grpc-timeout`; default 30 s) passed before its body arrived or inference finished";
}

impl ErrorCode {
    /// The error table as Markdown, as the README shows it.
    pub fn markdown_table() -> String {
        let mut table = String::from("| code | HTTP | gRPC | when |\n|---|---|---|---|\n");
        for &code in ErrorCode::ALL {
            table.push_str(&format!(
                "| `{}` | {} | `{}` | {} |\n",
                code.as_str(),
                code.status().as_u16(),
                grpc_name(code.grpc()),
                code.meaning()
            ));
        }
        table
    }
}

/// A gRPC status code as the gRPC specification spells it (`INVALID_ARGUMENT`).
pub fn grpc_name(code: tonic::Code) -> String {
    // `Code`'s Debug is its CamelCase name; the specification's is upper snake case.
    let camel = format!("{code:?}");
    let mut name = String::with_capacity(camel.len() + 4);
    for (index, letter) in camel.chars().enumerate() {
        if letter.is_ascii_uppercase() && index > 0 {
            name.push('_');
        }
        name.push(letter.to_ascii_uppercase());
    }
    name
}

/// The distinct violation types of an `invalid_input` answer, for the metrics.
#[derive(Debug, Clone)]
pub struct ViolationTypes(pub Vec<&'static str>);

/// An error answer: a code from the table, a message for humans, and violations if any.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Violations,
    /// The model version the error is about, when there is one (for the log, the metrics and
    /// the answer's headers).
    pub model: Option<Box<super::ServedBy>>,
}

impl ApiError {
    /// The same error, marked as about `model`.
    pub fn about(mut self, model: &std::sync::Arc<crate::serving::ModelVersion>) -> ApiError {
        self.model = Some(Box::new(super::ServedBy::of(model, None)));
        self
    }

    /// An error with a message and no details. Messages may quote what a client sent (a model
    /// name from the URL), so they are clipped to [`MAX_ERROR_MESSAGE_CHARS`].
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError {
            code,
            message: clip_to(&message, MAX_ERROR_MESSAGE_CHARS).into_owned(),
            details: Violations::new(),
            model: None,
        }
    }

    /// `invalid_input` listing the violations (the first of them, when there are many).
    pub fn invalid_input(details: Violations) -> ApiError {
        let message = match (details.total(), details.omitted()) {
            (1, _) => "1 problem in the request".to_owned(),
            (n, 0) => format!("{n} problems in the request"),
            (n, _) => format!(
                "{n} problems in the request; the first {} are listed",
                details.listed().len()
            ),
        };
        ApiError {
            code: ErrorCode::InvalidInput,
            message,
            details,
            model: None,
        }
    }

    /// `internal`, with the cause logged (never sent).
    pub fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(cause = %cause, "internal error");
        ApiError::new(
            ErrorCode::Internal,
            "internal error; the server log has the details under this request's x-request-id",
        )
    }
}

/// The longest `error` message an answer carries, in characters.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 1024;

/// An error's JSON body, as HTTP answers carry it and gRPC's `warden-error-bin` metadata.
#[derive(Serialize)]
pub(crate) struct ErrorBody<'a> {
    code: &'static str,
    error: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    details: &'a [warden_contract::Violation],
    #[serde(skip_serializing_if = "is_zero")]
    details_omitted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl ApiError {
    /// The error's JSON body.
    pub(crate) fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            code: self.code.as_str(),
            error: &self.message,
            details: self.details.listed(),
            details_omitted: self.details.omitted(),
        }
    }

    /// The error body as JSON, at most `max_bytes` long: the violations that fit are listed, in
    /// order, and the rest counted in `details_omitted` (for gRPC metadata, which clients cap).
    pub fn to_json_within(&self, max_bytes: usize) -> Vec<u8> {
        let mut body = self.body();
        let all = body.details;
        let mut size = serde_json::to_vec(&ErrorBody {
            details: &[],
            details_omitted: self.details.total(),
            ..body
        })
        .map_or(0, |json| json.len())
            + r#","details":[]"#.len();
        let mut fits = 0;
        for violation in all {
            size += serde_json::to_vec(violation).map_or(max_bytes, |json| json.len() + 1);
            if size > max_bytes {
                break;
            }
            fits += 1;
        }
        body.details = &all[..fits];
        body.details_omitted += all.len() - fits;
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// The model version the error is about, as the access log and metrics record it.
    pub fn served_by(&self) -> Option<super::ServedBy> {
        self.model.as_deref().cloned()
    }

    /// The distinct violation types of its details, for the metrics.
    pub fn violation_types(&self) -> Vec<&'static str> {
        let mut types: Vec<&'static str> = self
            .details
            .listed()
            .iter()
            .map(|v| v.kind.as_str())
            .collect();
        types.sort_unstable();
        types.dedup();
        types
    }
}

//! An [`ApiError`] as an HTTP answer: its status, its JSON body, and the headers some codes
//! carry (`Retry-After`, `Connection: close`, `WWW-Authenticate`); extensions tell the access
//! log the code, the violation types and the model version it is about, and when there is one
//! the answer names that version in the `x-model-*` headers as a success does.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::outcome::error::{ApiError, ErrorCode, ViolationTypes};
use crate::transport::canned::CannedAnswers;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.code.status(), axum::Json(self.body())).into_response();
        match self.code {
            ErrorCode::Overloaded => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ErrorCode::RequestTimeout => {
                // The rest of the body may still come; the connection cannot be reused.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            ErrorCode::Unauthorized => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"warden\""),
                );
            }
            _ => {}
        }
        if !self.details.is_empty() {
            response
                .extensions_mut()
                .insert(ViolationTypes(self.violation_types()));
        }
        response.extensions_mut().insert(self.code);
        match self.served_by() {
            // Like a success, the answer names the version it is about.
            Some(served) => super::served(served, response),
            None => response,
        }
    }
}

/// The answers the transport writes by itself (hyper's parse errors, the connection cap), from
/// the error table, as whole HTTP/1.1 responses that close the connection.
pub fn canned_answers() -> CannedAnswers {
    let whole = |error: ApiError, extra: &str| {
        let body = error.to_json_within(4096);
        let status = error.code.status();
        let mut answer = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\n{extra}connection: close\r\n\
             content-length: {}\r\n\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Error"),
            body.len()
        )
        .into_bytes();
        answer.extend_from_slice(&body);
        answer
    };
    CannedAnswers {
        bad_request: whole(
            ApiError::new(
                ErrorCode::InvalidInput,
                "the request is not valid HTTP/1.1: its request line or a header (such as a bad \
                 or repeated Content-Length) could not be parsed",
            ),
            "",
        ),
        head_too_large: whole(
            ApiError::new(
                ErrorCode::HeadersTooLarge,
                "the request line and headers are over the server's 64 KiB limit",
            ),
            "",
        ),
        over_capacity: whole(
            ApiError::new(
                ErrorCode::Overloaded,
                "the server has too many open connections; retry after the Retry-After delay",
            ),
            "retry-after: 1\r\n",
        ),
    }
}

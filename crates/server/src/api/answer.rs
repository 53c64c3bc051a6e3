//! An [`ApiError`] as an HTTP answer: its status, its JSON body, and the headers some codes
//! carry (`Retry-After`, `Connection: close`, `WWW-Authenticate`); extensions tell the access
//! log the code, the violation types and the model version it is about.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::outcome::error::{ApiError, ErrorCode, ViolationTypes};

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
        if let Some(served) = self.served_by() {
            response.extensions_mut().insert(served);
        }
        response
    }
}

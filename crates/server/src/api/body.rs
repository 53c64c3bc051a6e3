//! The JSON request body extractor: enforces the content type and the size limit and parses
//! JSON, answering each failure with its own code from the error table (415, 413,
//! `malformed_json` with line and column) instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde_json::Value;

use super::error::{ApiError, ErrorCode};

/// A request body parsed as JSON.
#[derive(Debug)]
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<JsonBody, ApiError> {
        if let Some(content_type) = request.headers().get(header::CONTENT_TYPE) {
            let essence = content_type
                .to_str()
                .unwrap_or_default()
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            let is_json = essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"));
            if !is_json {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    format!(
                        "expected Content-Type: application/json, got {:?}",
                        content_type.to_str().unwrap_or("(not text)")
                    ),
                ));
            }
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        ErrorCode::PayloadTooLarge,
                        "the request body is over the server's limit",
                    )
                } else {
                    ApiError::new(
                        ErrorCode::InvalidInput,
                        "the request body could not be read",
                    )
                }
            })?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|err| {
            ApiError::new(
                ErrorCode::MalformedJson,
                format!("the body is not valid JSON: {err}"),
            )
        })
    }
}

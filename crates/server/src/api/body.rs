//! Request body extractors: they enforce the content type, the content encoding and the size
//! limit and parse JSON (refusing duplicate keys), answering each failure with its own code from
//! the error table (415, 413, `malformed_json` with line and column) instead of axum's
//! plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;
use warden_contract::{clip, mark_bare_non_finite, parse_strict};

use crate::outcome::error::{ApiError, ErrorCode};
use crate::state::{AppState, DecodeSlot};

/// The header of Triton's binary tensor extension: the length of the JSON part of the body.
const INFERENCE_HEADER_LENGTH: &str = "inference-header-content-length";

/// A request body parsed as JSON, and where its further decoding runs.
#[derive(Debug)]
pub(super) struct JsonBody {
    pub value: Value,
    pub slot: DecodeSlot,
}

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<JsonBody, ApiError> {
        check_content_type(request.headers(), false)?;
        let bytes = read(request, state).await?;
        let slot = DecodeSlot::acquire(state, bytes.len()).await?;
        let value = slot.run(move || parse_json(&bytes)).await??;
        Ok(JsonBody { value, slot })
    }
}

/// A KServe V2 inference body: the JSON header and, with the binary tensor extension, the
/// binary tensor data that follows it (empty otherwise).
#[derive(Debug)]
pub(super) struct InferBody {
    pub json: Value,
    pub binary: Bytes,
    pub slot: DecodeSlot,
}

impl FromRequest<AppState> for InferBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<InferBody, ApiError> {
        let header_length = match request.headers().get(INFERENCE_HEADER_LENGTH) {
            None => None,
            Some(value) => Some(
                value
                    .to_str()
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::InvalidInput,
                            "Inference-Header-Content-Length must be a byte count",
                        )
                    })?,
            ),
        };
        check_content_type(request.headers(), header_length.is_some())?;
        let mut bytes = read(request, state).await?;
        let slot = DecodeSlot::acquire(state, bytes.len()).await?;
        let Some(length) = header_length else {
            return Ok(InferBody {
                json: slot.run(move || parse_json(&bytes)).await??,
                binary: Bytes::new(),
                slot,
            });
        };
        if length > bytes.len() {
            return Err(ApiError::new(
                ErrorCode::InvalidInput,
                format!(
                    "Inference-Header-Content-Length is {length} but the body has {} bytes",
                    bytes.len()
                ),
            ));
        }
        let binary = bytes.split_off(length);
        Ok(InferBody {
            json: slot.run(move || parse_json(&bytes)).await??,
            binary,
            slot,
        })
    }
}

/// JSON bodies may come without a content type (Triton's client sends none) or with a JSON
/// one; a binary-extension body may also be `application/octet-stream`.
fn check_content_type(headers: &HeaderMap, binary: bool) -> Result<(), ApiError> {
    check_content_encoding(headers)?;
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
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
    if is_json || (binary && essence == "application/octet-stream") {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::UnsupportedMediaType,
        format!(
            "expected Content-Type: application/json, got {:?}",
            clip(content_type.to_str().unwrap_or("(not text)"))
        ),
    ))
}

/// warden decodes no compression, so a compressed body would be parsed as garbage or, worse,
/// half-understood: anything but `identity` is refused.
fn check_content_encoding(headers: &HeaderMap) -> Result<(), ApiError> {
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let text = value.to_str().unwrap_or("(not text)");
        let identity = text
            .split(',')
            .all(|coding| coding.trim().eq_ignore_ascii_case("identity"));
        if !identity {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "Content-Encoding {:?} is not supported; send the body uncompressed",
                    clip(text)
                ),
            ));
        }
    }
    Ok(())
}

/// Reads the whole body within the body timeout. A client that stops sending mid-body is
/// answered 408 and, as its body was not read to the end, its connection is closed.
async fn read(request: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let Ok(read) =
        tokio::time::timeout(state.body_timeout, Bytes::from_request(request, state)).await
    else {
        return Err(ApiError::new(
            ErrorCode::RequestTimeout,
            format!(
                "the request body did not arrive within {} ms of its headers",
                state.body_timeout.as_millis()
            ),
        ));
    };
    read.map_err(|rejection| {
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
    })
}

/// Parses JSON; a body that is JSON but for bare `NaN`/`Infinity` tokens (as Python's
/// `json.dumps` writes them) is read with those tokens marked, so validation can refuse them
/// as non-finite values at their exact location rather than call the whole body malformed.
fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    parse_strict(bytes).or_else(|err| {
        mark_bare_non_finite(bytes)
            .and_then(|marked| parse_strict(&marked).ok())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::MalformedJson,
                    format!("the body is not valid JSON: {err}"),
                )
            })
    })
}

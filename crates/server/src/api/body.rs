//! Request body extractors: they fix the request's deadline (from its arrival and its
//! `x-timeout-ms`), enforce the content type and the content encoding, and read the body within
//! the transport's bounds (time, size, the memory budget: `transport::body`), answering each
//! failure with its own code from the error table (415, 413, 408, 504, 503) instead of axum's
//! plain-text rejections. The JSON itself is checked by the protocol's codec in the front door.
//! The body's reservation in the memory budget is held by the extracted value, so it lasts as
//! long as the request's handler.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use warden_contract::clip;

use crate::outcome::body_refusal;
use crate::outcome::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::transport::body::{BodyBounds, Framing, read_bounded};
use crate::transport::budget::BudgetPermit;
use crate::transport::deadline::Deadline;

/// The header of Triton's binary tensor extension: the length of the JSON part of the body.
const INFERENCE_HEADER_LENGTH: &str = "inference-header-content-length";

/// A row request's body, read whole (not yet checked as JSON).
#[derive(Debug)]
pub(super) struct RowsJson {
    pub body: Bytes,
    pub deadline: Deadline,
    /// The body's bytes in the memory budget, held until the handler is done.
    pub budget: BudgetPermit,
}

impl FromRequest<AppState> for RowsJson {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<RowsJson, ApiError> {
        let deadline = super::request_deadline(state, &request)?;
        check_content_type(request.headers(), false)?;
        let (body, budget) = read(request, state, deadline).await?;
        Ok(RowsJson {
            body,
            deadline,
            budget,
        })
    }
}

/// A KServe V2 inference body: the JSON header and, with the binary tensor extension, the
/// binary tensor data that follows it (empty otherwise).
#[derive(Debug)]
pub(super) struct InferBody {
    /// The JSON part (not yet checked).
    pub json: Bytes,
    pub binary: Bytes,
    pub deadline: Deadline,
    /// The body's bytes in the memory budget, held until the handler is done.
    pub budget: BudgetPermit,
}

impl FromRequest<AppState> for InferBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<InferBody, ApiError> {
        let deadline = super::request_deadline(state, &request)?;
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
        let (mut bytes, budget) = read(request, state, deadline).await?;
        let Some(length) = header_length else {
            return Ok(InferBody {
                json: bytes,
                binary: Bytes::new(),
                deadline,
                budget,
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
            json: bytes,
            binary,
            deadline,
            budget,
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

/// Reads the whole body within the body timeout (or the request's deadline, when sooner), the
/// body limit and the memory budget. A `Content-Length` over the limit or the budget is refused
/// before a byte of the body is read; a client that stops sending mid-body is answered 408 and,
/// as its body was not read to the end, its connection is closed.
async fn read(
    request: Request,
    state: &AppState,
    deadline: Deadline,
) -> Result<(Bytes, BudgetPermit), ApiError> {
    let (until, clients_deadline) = deadline.within(state.body_timeout);
    let content_length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let bounds = BodyBounds {
        max_bytes: state.body_limit_bytes,
        until,
        clients_deadline,
    };
    let read = read_bounded(
        request.into_body(),
        Framing::Http { content_length },
        bounds,
        &state.body_budget,
    )
    .await
    .map_err(|refusal| {
        body_refusal(
            refusal,
            "the request body",
            state.body_limit_bytes,
            state.body_timeout,
        )
    })?;
    Ok((read.bytes, read.permit))
}

//! KServe V2 (Open Inference Protocol) REST handlers: health, metadata, readiness, inference.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::body::InferBody;
use super::error::{ApiError, ErrorCode};
use super::{AppState, predict_error, served};
use crate::registry::ModelEntry;
use crate::v2_protocol::{decode_request, encode_response, tensor_metadata};

/// `{model}` and the optional `{version}` of a V2 path.
#[derive(Debug, Deserialize)]
pub struct ModelPath {
    model: String,
    version: Option<String>,
}

pub async fn live() -> Json<serde_json::Value> {
    Json(json!({"live": true}))
}

pub async fn ready(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    if state.registry.is_ready() {
        return Ok(Json(json!({"ready": true})));
    }
    let waiting: Vec<String> = state
        .registry
        .snapshot()
        .iter()
        .filter_map(|(name, entry)| match entry {
            ModelEntry::Ready(_) | ModelEntry::Unloaded => None,
            ModelEntry::Unavailable { reason } => Some(format!("{name} ({reason})")),
        })
        .collect();
    let message = if waiting.is_empty() {
        "no model is loaded".to_owned()
    } else {
        format!("not every model is ready: {}", waiting.join(", "))
    };
    Err(ApiError::new(ErrorCode::ModelNotReady, message))
}

pub async fn server_metadata() -> Json<serde_json::Value> {
    Json(json!({
        "name": "warden",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data"],
    }))
}

pub async fn model_metadata(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Response, ApiError> {
    let model = state.registry.get(&path.model, path.version.as_deref())?;
    let body = json!({
        "name": model.name,
        "versions": [model.version.to_string()],
        "platform": model.platform,
        "inputs": tensor_metadata(&model.signature.inputs),
        "outputs": tensor_metadata(&model.signature.outputs),
        "sha256": model.sha256,
    });
    Ok(served(&model, None, Json(body)))
}

pub async fn model_ready(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Response, ApiError> {
    let model = state.registry.get(&path.model, path.version.as_deref())?;
    let body = json!({"name": model.name, "version": model.version.to_string(), "ready": true});
    Ok(served(&model, None, Json(body)))
}

pub async fn infer(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
    headers: HeaderMap,
    body: InferBody,
) -> Result<Response, ApiError> {
    let deadline = state.deadline(&headers)?;
    let model = state.registry.get(&path.model, path.version.as_deref())?;
    let request =
        decode_request(body.json, &body.binary, &model.signature).map_err(|violations| {
            ApiError::invalid_input(violations).about(&model.name, model.version)
        })?;
    model
        .check_inputs(&request.inputs)
        .map_err(|err| predict_error(&model, err))?;
    let answer = model
        .infer(request.inputs, request.outputs, request.rows, deadline)
        .await
        .map_err(|err| predict_error(&model, err))?;
    let outputs = answer.outputs;
    let encoded = encode_response(
        &model.name,
        model.version,
        request.id.as_deref(),
        &outputs,
        &request.binary_outputs,
    )
    .map_err(|err| ApiError::internal(&err))?;
    let response = if encoded.binary.is_empty() {
        ([(header::CONTENT_TYPE, "application/json")], encoded.json).into_response()
    } else {
        let json_length = encoded.json.len().to_string();
        let mut body = encoded.json;
        body.extend_from_slice(&encoded.binary);
        (
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                (
                    HeaderName::from_static("inference-header-content-length"),
                    json_length,
                ),
            ],
            body,
        )
            .into_response()
    };
    Ok(served(&model, Some(answer.timings), response))
}

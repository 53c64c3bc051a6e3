//! KServe V2 (Open Inference Protocol) REST handlers: health, metadata, readiness, inference.

use axum::Json;
use axum::extract::State;

use super::path::ApiPath;
use axum::http::{HeaderMap, HeaderName, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::body::InferBody;
use super::wire::{Live, ModelMetadata, ModelReady, Ready, ServerMetadata};
use super::{request_id, served};
use crate::front_door::{Call, Protocol};
use crate::outcome::ServedBy;
use crate::outcome::error::{ApiError, ErrorCode};
use crate::protocol::v2::{RequestBody, ResponseHeader, RestCodec, tensor_metadata};
use crate::serving::ModelEntry;
use crate::state::AppState;

/// `{model}` and the optional `{version}` of a V2 path.
#[derive(Debug, Deserialize)]
pub(super) struct ModelPath {
    model: String,
    version: Option<String>,
}

#[utoipa::path(get, path = "/v2/health/live", tag = "health",
    responses((status = 200, description = "The process is up", body = Live)))]
pub(super) async fn live() -> Json<Live> {
    Json(Live { live: true })
}

#[utoipa::path(get, path = "/v2/health/ready", tag = "health",
    responses((status = 200, description = "Every model is loaded, checked and warmed up (with --allow-partial: at least one)", body = Ready)))]
pub(super) async fn ready(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    if state.registry.is_ready() {
        return Ok(Json(Ready { ready: true }));
    }
    let waiting: Vec<String> = state
        .registry
        .snapshot()
        .iter()
        .filter_map(|(name, entry)| match entry {
            ModelEntry::Ready(_) | ModelEntry::Unloaded | ModelEntry::Rejected { .. } => None,
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

#[utoipa::path(get, path = "/v2", tag = "metadata",
    responses((status = 200, description = "The server's name, version and protocol extensions", body = ServerMetadata)))]
pub(super) async fn server_metadata() -> Json<ServerMetadata> {
    Json(ServerMetadata {
        name: "warden",
        version: env!("CARGO_PKG_VERSION"),
        extensions: vec!["binary_tensor_data", "model_repository"],
    })
}

#[utoipa::path(get, path = "/v2/models/{model}", tag = "metadata", params(ModelParam),
    responses((status = 200, description = "The served version's tensors, engine and hash", body = ModelMetadata)))]
pub(super) async fn model_metadata(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<ModelPath>,
) -> Result<Response, ApiError> {
    let model = state.registry.get(&path.model, path.version.as_deref())?;
    let body = ModelMetadata {
        name: &model.name,
        versions: vec![model.version.to_string()],
        platform: model.platform,
        inputs: tensor_metadata(&model.signature.inputs),
        outputs: tensor_metadata(&model.signature.outputs),
        sha256: &model.sha256,
    };
    let response = Json(body).into_response();
    Ok(served(ServedBy::of(&model, None), response))
}

#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}", tag = "metadata",
    params(ModelParam, VersionParam),
    responses((status = 200, description = "The version's tensors, engine and hash", body = ModelMetadata)))]
pub(super) async fn model_version_metadata(
    state: State<AppState>,
    path: ApiPath<ModelPath>,
) -> Result<Response, ApiError> {
    model_metadata(state, path).await
}

#[utoipa::path(get, path = "/v2/models/{model}/ready", tag = "health", params(ModelParam),
    responses((status = 200, description = "The model is served", body = ModelReady)))]
pub(super) async fn model_ready(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<ModelPath>,
) -> Result<Response, ApiError> {
    let model = state.registry.get(&path.model, path.version.as_deref())?;
    let response = Json(ModelReady {
        name: &model.name,
        version: model.version.to_string(),
        ready: true,
    })
    .into_response();
    Ok(served(ServedBy::of(&model, None), response))
}

#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}/ready", tag = "health",
    params(ModelParam, VersionParam),
    responses((status = 200, description = "The version is served", body = ModelReady)))]
pub(super) async fn model_version_ready(
    state: State<AppState>,
    path: ApiPath<ModelPath>,
) -> Result<Response, ApiError> {
    model_ready(state, path).await
}

#[utoipa::path(post, path = "/v2/models/{model}/infer", tag = "inference", params(ModelParam),
    request_body(content = RequestBody, description = "JSON, or with the binary tensor extension a JSON header of `Inference-Header-Content-Length` bytes followed by the tensor bytes"),
    responses((status = 200, description = "The outputs, each checked by the output guards; with the output `contributions` asked for, also each row's exact Shapley attributions and base value, `[N, F + 1]` FP64 (see the README's Explanations)", body = ResponseHeader)))]
pub(super) async fn infer(
    state: State<AppState>,
    path: ApiPath<ModelPath>,
    headers: HeaderMap,
    body: InferBody,
) -> Result<Response, ApiError> {
    infer_any(state, path, headers, body).await
}

#[utoipa::path(post, path = "/v2/models/{model}/versions/{version}/infer", tag = "inference",
    params(ModelParam, VersionParam),
    request_body(content = RequestBody, description = "As for the model's infer route"),
    responses((status = 200, description = "The outputs, each checked by the output guards", body = ResponseHeader)))]
pub(super) async fn infer_version(
    state: State<AppState>,
    path: ApiPath<ModelPath>,
    headers: HeaderMap,
    body: InferBody,
) -> Result<Response, ApiError> {
    infer_any(state, path, headers, body).await
}

/// The `{model}` path parameter.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(names("model"), parameter_in = Path)]
#[allow(dead_code)] // documents the parameter; handlers read it through ModelPath
pub(super) struct ModelParam(
    /// The model's name, as its repository folder is named.
    String,
);

/// The `{version}` path parameter.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(names("version"), parameter_in = Path)]
#[allow(dead_code)] // documents the parameter; handlers read it through ModelPath
pub(super) struct VersionParam(
    /// A version number; only the served version answers.
    String,
);

async fn infer_any(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<ModelPath>,
    headers: HeaderMap,
    body: InferBody,
) -> Result<Response, ApiError> {
    // The body's reservation in the memory budget lasts as long as this handler.
    let InferBody {
        json,
        binary,
        deadline,
        budget: _budget,
    } = body;
    let answered = state
        .door
        .infer(Call {
            protocol: Protocol::RestV2,
            sticky: &headers,
            request_id: request_id(&headers),
            model: path.model,
            version: path.version,
            deadline,
            size: json.len() + binary.len(),
            codec: RestCodec::new(json, binary),
        })
        .await?;
    let encoded = answered.answer;
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
    Ok(served(answered.by, response))
}

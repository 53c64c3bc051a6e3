//! The row API, in TF Serving's REST convention, for people coming from Flask:
//! `POST /v1/models/{m}[/versions/{v}]:predict` with `{"instances": [{...}, ...]}`.

use axum::Json;
use axum::extract::State;

use super::path::ApiPath;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::body::RowsJson;
use super::wire::{ModelIdentity, RowRequest, RowResponse};
use super::{request_id, served};
use crate::front_door::{Call, Protocol};
use crate::outcome::error::{ApiError, ErrorCode};
use crate::protocol::rows::RowsCodec;
use crate::state::AppState;

/// `POST /v1/models/{model}:predict`
#[utoipa::path(post, path = "/v1/models/{model}:predict", tag = "rows",
    params(("model" = String, Path, description = "The model's name")),
    request_body(content = RowRequest, content_type = "application/json"),
    responses((status = 200, description = "One prediction per row, in order, and the version that made them", body = RowResponse)))]
pub(super) async fn predict(
    State(state): State<AppState>,
    ApiPath(model_action): ApiPath<String>,
    headers: HeaderMap,
    body: RowsJson,
) -> Result<Response, ApiError> {
    let model = predict_action(&model_action)?;
    answer(state, model, None, &headers, body).await
}

/// `POST /v1/models/{model}/versions/{version}:predict`
#[utoipa::path(post, path = "/v1/models/{model}/versions/{version}:predict", tag = "rows",
    params(("model" = String, Path, description = "The model's name"),
           ("version" = String, Path, description = "A loaded version number (see the manifest's `version_policy`)")),
    request_body(content = RowRequest, content_type = "application/json"),
    responses((status = 200, description = "One prediction per row, in order, and the version that made them", body = RowResponse)))]
pub(super) async fn predict_version(
    State(state): State<AppState>,
    ApiPath((model, version_action)): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: RowsJson,
) -> Result<Response, ApiError> {
    let version = predict_action(&version_action)?;
    answer(state, &model, Some(version), &headers, body).await
}

/// Splits `name:predict`; any other action is not a route.
fn predict_action(segment: &str) -> Result<&str, ApiError> {
    match segment.rsplit_once(':') {
        Some((name, "predict")) => Ok(name),
        _ => Err(ApiError::new(
            ErrorCode::NotFound,
            "no such route; the row API is POST /v1/models/{model}[/versions/{version}]:predict",
        )),
    }
}

async fn answer(
    state: AppState,
    name: &str,
    version: Option<&str>,
    headers: &HeaderMap,
    body: RowsJson,
) -> Result<Response, ApiError> {
    // The body's reservation in the memory budget lasts as long as this handler.
    let RowsJson {
        body,
        deadline,
        budget: _budget,
    } = body;
    let answered = state
        .door
        .infer(Call {
            protocol: Protocol::Rows,
            sticky: headers,
            request_id: request_id(headers),
            model: name.to_owned(),
            version: version.map(str::to_owned),
            deadline,
            size: body.len(),
            codec: RowsCodec::new(body),
        })
        .await?;
    let by = answered.by;
    let response = Json(RowResponse {
        predictions: answered.answer,
        model: ModelIdentity {
            name: &by.model.name,
            version: by.model.version_label.clone(),
            sha256: &by.model.sha256,
        },
    })
    .into_response();
    Ok(served(by, response))
}

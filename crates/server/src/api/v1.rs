//! The row API, in TF Serving's REST convention, for people coming from Flask:
//! `POST /v1/models/{m}[/versions/{v}]:predict` with `{"instances": [{...}, ...]}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::path::ApiPath;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::body::RowsJson;
use super::wire::{ModelIdentity, RowRequest, RowResponse};
use super::{predict_error, request_deadline, served};
use crate::outcome::error::{ApiError, ErrorCode};
use crate::protocol::rows;
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
           ("version" = String, Path, description = "A version number; only the served version answers")),
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
    let deadline = request_deadline(&state, headers)?;
    let model = state.registry.get(name, version)?;
    // The body's reservation in the memory budget lasts as long as this handler.
    let RowsJson {
        rows,
        slot,
        budget: _budget,
    } = body;
    let checking = Arc::clone(&model);
    // The rows are parsed, validated (and dropped) one by one where the body was checked: off
    // the runtime when large.
    let admitted = slot
        .run(move || {
            let source = rows.source().map_err(ApiError::invalid_input)?;
            checking
                .admit_rows(source)
                .map_err(|err| predict_error(&checking, err))
        })
        .await??;
    drop(slot);
    let rows = admitted.rows();
    let answer = model
        .infer(admitted, deadline)
        .await
        .map_err(|err| predict_error(&model, err))?;
    let predictions = rows::predictions(&answer.outputs, &model.contract.outputs, rows);
    let response = Json(RowResponse {
        predictions,
        model: ModelIdentity {
            name: &model.name,
            version: model.version.to_string(),
            sha256: &model.sha256,
        },
    })
    .into_response();
    Ok(served(&model, Some(answer.timings), response))
}

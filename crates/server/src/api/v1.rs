//! The row API, in TF Serving's REST convention, for people coming from Flask:
//! `POST /v1/models/{m}[/versions/{v}]:predict` with `{"instances": [{...}, ...]}`, and
//! KServe's V1 `:explain` verb on the same rows (the same path, another action).

use axum::Json;
use axum::extract::State;

use super::path::ApiPath;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::body::RowsJson;
use super::wire::{ExplainRequest, ExplainResponse, ModelIdentity, RowRequest, RowResponse};
use super::{request_id, served};
use crate::front_door::{Call, Protocol};
use crate::outcome::ServedBy;
use crate::outcome::error::{ApiError, ErrorCode};
use crate::protocol::explain::ExplainCodec;
use crate::protocol::rows::RowsCodec;
use crate::state::AppState;
use crate::transport::deadline::Deadline;

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
    let (model, action) = row_action(&model_action)?;
    answer(state, model, None, action, &headers, body).await
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
    let (version, action) = row_action(&version_action)?;
    answer(state, &model, Some(version), action, &headers, body).await
}

/// `POST /v1/models/{model}:explain` (documentation only: the route is [`predict`]'s, the
/// action tells them apart).
#[utoipa::path(post, path = "/v1/models/{model}:explain", tag = "rows",
    params(("model" = String, Path, description = "The model's name")),
    request_body(content = ExplainRequest, content_type = "application/json"),
    responses((status = 200, description = "Per row: the prediction, the base value and one exact Shapley attribution per feature against the model's background set", body = ExplainResponse)))]
#[allow(dead_code)]
pub(super) async fn explain() {}

/// `POST /v1/models/{model}/versions/{version}:explain` (documentation only, as [`explain`]).
#[utoipa::path(post, path = "/v1/models/{model}/versions/{version}:explain", tag = "rows",
    params(("model" = String, Path, description = "The model's name"),
           ("version" = String, Path, description = "A loaded version number")),
    request_body(content = ExplainRequest, content_type = "application/json"),
    responses((status = 200, description = "As `:explain` on the model", body = ExplainResponse)))]
#[allow(dead_code)]
pub(super) async fn explain_version() {}

/// The verb after the colon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowAction {
    Predict,
    Explain,
}

/// Splits `name:predict` or `name:explain`; any other action is not a route.
fn row_action(segment: &str) -> Result<(&str, RowAction), ApiError> {
    match segment.rsplit_once(':') {
        Some((name, "predict")) => Ok((name, RowAction::Predict)),
        Some((name, "explain")) => Ok((name, RowAction::Explain)),
        _ => Err(ApiError::new(
            ErrorCode::NotFound,
            "no such route; the row API is POST /v1/models/{model}[/versions/{version}]:predict (or :explain)",
        )),
    }
}

async fn answer(
    state: AppState,
    name: &str,
    version: Option<&str>,
    action: RowAction,
    headers: &HeaderMap,
    body: RowsJson,
) -> Result<Response, ApiError> {
    // The body's reservation in the memory budget lasts as long as this handler.
    let RowsJson {
        body,
        deadline,
        budget: _budget,
    } = body;
    let size = body.len();
    let call = CallParts {
        headers,
        name,
        version,
        deadline,
        size,
    };
    match action {
        RowAction::Predict => {
            let answered = state.door.infer(call.with(RowsCodec::new(body))).await?;
            let by = answered.by;
            let response = Json(RowResponse {
                predictions: answered.answer,
                model: identity(&by),
            })
            .into_response();
            Ok(served(by, response))
        }
        RowAction::Explain => {
            let answered = state.door.infer(call.with(ExplainCodec::new(body))).await?;
            let by = answered.by;
            let response = Json(ExplainResponse {
                model: identity(&by),
                explanation: answered.answer,
            })
            .into_response();
            Ok(served(by, response))
        }
    }
}

/// What a row call is made of besides its codec.
struct CallParts<'a> {
    headers: &'a HeaderMap,
    name: &'a str,
    version: Option<&'a str>,
    deadline: Deadline,
    size: usize,
}

impl<'a> CallParts<'a> {
    fn with<C>(self, codec: C) -> Call<'a, C> {
        Call {
            protocol: Protocol::Rows,
            sticky: self.headers,
            request_id: request_id(self.headers),
            model: self.name.to_owned(),
            version: self.version.map(str::to_owned),
            deadline: self.deadline,
            size: self.size,
            codec,
        }
    }
}

fn identity(by: &ServedBy) -> ModelIdentity<'_> {
    ModelIdentity {
        name: &by.model.name,
        version: by.model.version_label.clone(),
        sha256: &by.model.sha256,
    }
}

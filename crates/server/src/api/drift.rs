//! `GET /v1/models/{m}[/versions/{v}]/drift`: the served version's drift figures, per window,
//! as its monitor computes them now (see `serving::DriftMonitor`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::path::ApiPath;
use super::served;
use crate::outcome::ServedBy;
use crate::outcome::error::ApiError;
use crate::serving::{DriftReport, ModelVersion};
use crate::state::AppState;

/// The answer: the figures, or why the version is not monitored.
#[derive(Debug, Serialize)]
struct DriftBody {
    monitored: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(flatten)]
    report: Option<DriftReport>,
}

/// `GET /v1/models/{model}/drift`
#[utoipa::path(get, path = "/v1/models/{model}/drift", tag = "monitoring",
    params(("model" = String, Path, description = "The model's name")),
    responses((status = 200, description = "Per window: each feature's PSI against the training baseline, its share of nulls and of values outside the training range, and the prediction's drift; `monitored: false` with a reason when the manifest has no baseline", body = Object)))]
pub(super) async fn drift(
    State(state): State<AppState>,
    ApiPath(model): ApiPath<String>,
) -> Result<Response, ApiError> {
    let model = state.registry.get(&model, None)?;
    Ok(answer(&model))
}

/// `GET /v1/models/{model}/versions/{version}/drift`
#[utoipa::path(get, path = "/v1/models/{model}/versions/{version}/drift", tag = "monitoring",
    params(("model" = String, Path, description = "The model's name"),
           ("version" = String, Path, description = "A loaded version number")),
    responses((status = 200, description = "As `/v1/models/{model}/drift`, for that version", body = Object)))]
pub(super) async fn drift_version(
    State(state): State<AppState>,
    ApiPath((model, version)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let model = state.registry.get(&model, Some(&version))?;
    Ok(answer(&model))
}

fn answer(model: &Arc<ModelVersion>) -> Response {
    let body = match &model.drift {
        Some(monitor) => DriftBody {
            monitored: true,
            reason: None,
            report: Some(monitor.report()),
        },
        None => DriftBody {
            monitored: false,
            reason: Some(
                "the manifest has no [baseline] for the model's features or target: write one \
                 with `warden init --data train.csv`",
            ),
            report: None,
        },
    };
    served(ServedBy::of(model, None), Json(body).into_response())
}

//! A model's versions and rollout: `GET /v1/models/{m}/rollout` reports them (the candidate's
//! share, each version's traffic and the comparisons of their answers, per drift window, as
//! `serving::Rollout` counts them), and `POST /v2/repository/models/{m}/rollout` changes them
//! without a restart: promote a version to default, start or end a rollout, set the canary or
//! shadow share. A change lasts until the model's files change on disk (the manifest is then
//! read again), and is logged. A change's body is at most [`CHANGE_BODY_LIMIT`] bytes.

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::State;
use serde::Serialize;

use super::path::ApiPath;
use crate::outcome::error::{ApiError, ErrorCode};
use crate::serving::{ChangeError, RolloutChange, RolloutReport, VersionSet};
use crate::state::AppState;

/// The answer: the versions served and the rollout, when one is on.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct RolloutBody {
    model: String,
    /// Every loaded version, ascending.
    versions: Vec<String>,
    default_version: String,
    /// `null` when no rollout is on.
    #[schema(value_type = Option<Object>)]
    rollout: Option<RolloutReport>,
}

impl RolloutBody {
    fn of(name: &str, set: &VersionSet) -> RolloutBody {
        RolloutBody {
            model: name.to_owned(),
            versions: set.versions().map(|v| v.version_label.clone()).collect(),
            default_version: set.default_version().version_label.clone(),
            rollout: set.rollout().map(|r| r.report()),
        }
    }
}

/// `GET /v1/models/{model}/rollout`
#[utoipa::path(get, path = "/v1/models/{model}/rollout", tag = "monitoring",
    params(("model" = String, Path, description = "The model's name")),
    responses((status = 200, description = "The versions served, the default one, and the rollout: shares in force, per window each version's requests, errors and latency, and for each (primary, other) pair the label agreement, confusion counts, |Δ| quantiles and PSI of their answers to the same rows", body = RolloutBody)))]
pub(super) async fn report(
    State(state): State<AppState>,
    ApiPath(model): ApiPath<String>,
) -> Result<Json<RolloutBody>, ApiError> {
    let set = state.registry.versions(&model)?;
    Ok(Json(RolloutBody::of(&model, &set)))
}

/// The largest rollout change body: five small fields fit many times over.
pub(super) const CHANGE_BODY_LIMIT: usize = 4096;

/// `POST /v2/repository/models/{model}/rollout`
#[utoipa::path(post, path = "/v2/repository/models/{model}/rollout", tag = "repository",
    params(("model" = String, Path, description = "A served model's name")),
    request_body(content = RolloutChange, content_type = "application/json"),
    responses((status = 200, description = "The change is in force for the next request; in-flight requests finish on the version they started on", body = RolloutBody)))]
pub(super) async fn change(
    State(state): State<AppState>,
    ApiPath(model): ApiPath<String>,
    body: Body,
) -> Result<Json<RolloutBody>, ApiError> {
    let body = to_bytes(body, CHANGE_BODY_LIMIT).await.map_err(|err| {
        let too_long = std::error::Error::source(&err)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_long {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("a rollout change is at most {CHANGE_BODY_LIMIT} bytes"),
            )
        } else {
            ApiError::new(
                ErrorCode::InvalidInput,
                "the body of the rollout change could not be read",
            )
        }
    })?;
    let change: RolloutChange = serde_json::from_slice(&body).map_err(|err| {
        ApiError::new(
            ErrorCode::InvalidInput,
            format!(
                "the body must be a JSON object with any of `default_version`, `candidate`, \
                 `canary`, `shadow`, `end`: {}",
                warden_contract::clip(&err.to_string())
            ),
        )
    })?;
    let set = state
        .registry
        .change(&model, |set| set.changed(&change))
        .map_err(|err| match err {
            ChangeError::Lookup(lookup) => ApiError::from(lookup),
            ChangeError::Invalid(reason) => ApiError::new(ErrorCode::InvalidInput, reason),
        })?;
    let body = RolloutBody::of(&model, &set);
    tracing::info!(
        model = %model,
        default_version = %body.default_version,
        candidate = body.rollout.as_ref().map(|r| r.candidate.as_str()),
        canary = body.rollout.as_ref().map(|r| r.canary),
        shadow = body.rollout.as_ref().map(|r| r.shadow),
        "versions rearranged through the repository API; in force until the model's files change"
    );
    Ok(Json(body))
}

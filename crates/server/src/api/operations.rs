//! Operator routes: Prometheus metrics and the repository API (Triton's repository extension:
//! list, load, unload). Loading runs on a blocking thread: it reads files and warms a model up.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::path::ApiPath;
use axum::http::header;
use axum::response::IntoResponse;

use crate::outcome::error::{ApiError, ErrorCode};
use crate::serving::{IndexEntry, ReloadError, Reloader};
use crate::state::AppState;

/// `GET /metrics`: the Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format (version 0.0.4)", body = String, content_type = "text/plain")))]
pub(super) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let log = state.prediction_log.as_ref().map(|log| log.counts());
    let text = state.metrics.render(&state.registry.states(), log.as_ref());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

fn reloader(state: &AppState) -> Result<Arc<Reloader>, ApiError> {
    state.reloader.clone().ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            "this server was started without a model repository to load from",
        )
    })
}

/// Runs `work` on a blocking thread; a panic there is an internal error, not a lost request.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| ApiError::internal(&err))
}

impl From<ReloadError> for ApiError {
    fn from(err: ReloadError) -> ApiError {
        match &err {
            ReloadError::UnknownModel(_) => {
                ApiError::new(ErrorCode::ModelNotFound, err.to_string())
            }
            ReloadError::LoadFailed { .. } => ApiError::new(ErrorCode::LoadFailed, err.to_string()),
            ReloadError::Repository(_) => ApiError::internal(&err),
        }
    }
}

/// `POST /v2/repository/index`: every model in the repository or served, with its state.
#[utoipa::path(post, path = "/v2/repository/index", tag = "repository",
    responses((status = 200, description = "Every model on disk or served, with its state", body = Vec<IndexEntry>)))]
pub(super) async fn index(
    State(state): State<AppState>,
) -> Result<Json<Vec<IndexEntry>>, ApiError> {
    let reloader = reloader(&state)?;
    Ok(Json(blocking(move || reloader.index()).await?))
}

/// `POST /v2/repository/models/{model}/load`: loads the model's current files (retrying files
/// that failed before) and answers its index entry; a failure leaves what was served serving.
#[utoipa::path(post, path = "/v2/repository/models/{model}/load", tag = "repository",
    params(("model" = String, Path, description = "A model folder's name in the repository")),
    responses((status = 200, description = "The model is served from its current files", body = IndexEntry)))]
pub(super) async fn load(
    state: State<AppState>,
    model: ApiPath<String>,
) -> Result<Json<IndexEntry>, ApiError> {
    act_on(state, model, |reloader, name| {
        reloader.load(name).map(|_| ())
    })
    .await
}

/// `POST /v2/repository/models/{model}/unload`: stops serving the model once its in-flight
/// requests finish; it stays unloaded until loaded again.
#[utoipa::path(post, path = "/v2/repository/models/{model}/unload", tag = "repository",
    params(("model" = String, Path, description = "A served model's name")),
    responses((status = 200, description = "The model is no longer served; in-flight requests finished on it", body = IndexEntry)))]
pub(super) async fn unload(
    state: State<AppState>,
    model: ApiPath<String>,
) -> Result<Json<IndexEntry>, ApiError> {
    act_on(state, model, Reloader::unload).await
}

/// Runs a repository action on `model` on a blocking thread and answers its index entry.
async fn act_on(
    State(state): State<AppState>,
    ApiPath(model): ApiPath<String>,
    action: fn(&Reloader, &str) -> Result<(), ReloadError>,
) -> Result<Json<IndexEntry>, ApiError> {
    let reloader = reloader(&state)?;
    let name = model.clone();
    let entry = blocking(move || {
        action(&reloader, &name)?;
        Ok::<_, ReloadError>(reloader.index().into_iter().find(|e| e.name == name))
    })
    .await??;
    entry
        .map(Json)
        .ok_or_else(|| ApiError::new(ErrorCode::ModelNotFound, format!("unknown model `{model}`")))
}

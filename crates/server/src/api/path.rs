//! The path-parameter extractor every route uses: axum's `Path`, with its rejections (a path
//! segment that is not UTF-8, say) answered from the error table as JSON instead of axum's
//! plain-text "Invalid URL" naming an internal parameter.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::outcome::error::{ApiError, ErrorCode};

/// Path parameters, deserialised as axum's [`Path`] does.
#[derive(Debug)]
pub(super) struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => {
                tracing::debug!(rejection = %rejection.body_text(), "path rejected");
                Err(ApiError::new(
                    ErrorCode::InvalidInput,
                    "the URL path is not valid: each segment must be UTF-8 text once percent-decoded",
                ))
            }
        }
    }
}

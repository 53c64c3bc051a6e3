//! The HTTP face of the token policy in [`crate::auth`]: a middleware that asks it about each
//! request and answers 401 (with `WWW-Authenticate`) or 403 before any handler runs.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::Access;
use crate::outcome::error::ApiError;
use crate::state::AppState;

/// The middleware: answers 401 (with `WWW-Authenticate`) or 403 before any handler runs.
pub(super) async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(auth) = &state.auth {
        let access = Access::of(request.uri().path());
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        if let Err(denied) = auth.check(access, authorization) {
            let mut response = ApiError::from(denied).into_response();
            if access == Access::Page && response.status() == StatusCode::UNAUTHORIZED {
                // A browser asks for Basic credentials itself; the password is the token.
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"warden\", charset=\"UTF-8\""),
                );
            }
            return response;
        }
    }
    next.run(request).await
}

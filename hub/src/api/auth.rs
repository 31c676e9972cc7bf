//! Bearer-token check for `/api/v1`. The token is compared by SHA-256 so the
//! comparison time says nothing about the token itself.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::{ApiError, AppState};

/// SHA-256 of a token.
pub fn hash(token: &str) -> [u8; 32] {
    evsync_protocol::chain::Hash::of(token.as_bytes()).0
}

/// Refuses requests without `Authorization: Bearer <token>` (401).
pub async fn require_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if hash(t.trim()) == *state.token_hash => Ok(next.run(req).await),
        Some(_) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "the bearer token is not valid")),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing Authorization: Bearer <token> (the token is in the hub's data folder, file api-token)",
        )),
    }
}

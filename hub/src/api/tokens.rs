//! API tokens over HTTP (admins only) and `whoami` (anyone with a token).

use super::extract::{Fields, Json, Strict};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Extension;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, AppState, Caller};
use crate::store::Role;

/// `GET /api/v1/whoami`: the caller's token name and role.
pub async fn whoami(Extension(caller): Extension<Caller>) -> Json<Value> {
    Json(json!({ "name": caller.name, "role": caller.role, "token_id": caller.token_id }))
}

/// `GET /api/v1/tokens`: every token (never the secret).
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let tokens = state.read(|s| s.tokens()).await?;
    Ok(Json(json!({ "tokens": tokens })))
}

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: String,
    role: String,
}

impl Fields for CreateToken {
    const KNOWN: &'static [&'static str] = &["name", "role"];
}

/// `POST /api/v1/tokens`: the new token is in the answer, this once.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Strict(c): Strict<CreateToken>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let role = Role::parse(&c.role)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    // Audited before it is made: no change lands without its entry.
    state
        .audit(
            &caller,
            "token.create",
            &c.name,
            format!("role {}", role.as_str()),
            Vec::new(),
        )
        .await?;
    let by = caller.name.clone();
    let t = state
        .write(move |s| Ok(s.create_token(&c.name, role, &by)))
        .await?
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}")))?;
    Ok((StatusCode::CREATED, Json(json!(t))))
}

/// `DELETE /api/v1/tokens/{id}`: revokes it at once.
pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state
        .audit(&caller, "token.revoke", &id, String::new(), Vec::new())
        .await?;
    let t = state
        .write(move |s| Ok(s.revoke_token(&id)))
        .await?
        .map_err(|e| ApiError::not_found(format!("{e:#}")))?;
    Ok(Json(json!(t)))
}

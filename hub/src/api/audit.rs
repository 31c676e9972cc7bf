//! The audit log over HTTP, for auditors: entries in order, and a check of
//! the whole chain against the hub's key.

use super::extract::{Json, Query};
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, AppState};

/// Largest page of the audit log.
const MAX_LIMIT: u32 = 1000;

/// Query of the audit log.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    after: Option<i64>,
    limit: Option<u32>,
}

/// `GET /api/v1/audit?after=SEQ&limit=N`: entries after `after`, oldest first.
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let after = q.after.unwrap_or(0);
    let limit = q.limit.unwrap_or(100);
    if after < 0 || limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "after = {after}, limit = {limit}: expected after >= 0 and limit 1 to {MAX_LIMIT}"
            ),
        ));
    }
    let entries = state.read(move |s| s.audit_entries(after, limit)).await?;
    let next = entries.last().map_or(after, |e| e.seq);
    Ok(Json(json!({
        "entries": entries,
        "next": next,
        "hub_key": state.key.public().to_base64(),
    })))
}

/// `GET /api/v1/audit/verify`: whether every entry links, hashes and verifies.
pub async fn verify(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let key = state.key.public();
    let check = state.read(move |s| s.verify_audit(&key)).await?;
    Ok(Json(json!(check)))
}

//! A recorder's configuration over HTTP: what the policy makes of it and
//! why, its signed assignment and where it stands, and what its dock last
//! read from it.

use axum::extract::{Path, State};
use serde_json::{json, Value};

use super::extract::Json;
use super::{ApiError, AppState};

/// `GET /api/v1/devices/{id}/config`
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let lookup = id.clone();
    let found = state
        .read(move |s| {
            if !s.devices()?.iter().any(|d| d.device_id == lookup) {
                return Ok(None);
            }
            // A known device that is no recorder, or a policy it cannot
            // have, is the caller's to hear about, not a server error.
            Ok(Some(
                s.config_effective(&lookup)
                    .map_err(|e| format!("{e:#}"))
                    .and_then(|eff| {
                        let status = s.config_status(&lookup).map_err(|e| format!("{e:#}"))?;
                        Ok((eff, status))
                    }),
            ))
        })
        .await?;
    let (effective, status) = match found {
        None => return Err(ApiError::not_found(format!("no device {id:?}"))),
        Some(Err(e)) => {
            return Err(ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                e,
            ))
        }
        Some(Ok(f)) => f,
    };
    let hash = effective.config.content_hash();
    let sources: serde_json::Map<String, Value> = effective
        .sources
        .iter()
        .map(|(k, v)| (k.clone(), json!(v.to_string())))
        .collect();
    let in_sync = status.as_ref().map(|s| s.in_sync());
    let pending = status.as_ref().is_none_or(|s| s.config_hash != hash);
    Ok(Json(json!({
        "device_id": id,
        "effective": {
            "config_hash": hash,
            "config": effective.config.to_toml(),
            "sources": sources,
        },
        "assignment": status,
        "in_sync": in_sync,
        "policy_changed": pending,
    })))
}

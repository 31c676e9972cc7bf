//! A recorder's configuration over HTTP: what the policy makes of it and
//! why, its signed assignment and where it stands, and what its dock last
//! read from it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{json, Value};

use super::extract::Json;
use super::{ApiError, AppState};
use crate::store::DeviceKind;

/// `GET /api/v1/devices/{id}/config`
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let lookup = id.clone();
    let found = state
        .read(move |s| {
            let recorder = s
                .device(&lookup)?
                .is_some_and(|d| d.kind == DeviceKind::Recorder);
            if !recorder {
                return Ok(None);
            }
            // Policy layers that give it no valid configuration are the
            // operator's to hear about, not a server error.
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
        None => {
            return Err(ApiError::not_found(format!(
                "no recorder {id:?}: only recorders have a configuration"
            )))
        }
        Some(Err(e)) => return Err(ApiError::new(StatusCode::CONFLICT, e)),
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

/// `GET /firmware/{sha256}`: a registered firmware image, with HTTP Range
/// so a dock resumes an interrupted download. Served without the API token:
/// docks hold none, and an image is no evidence; its integrity comes from
/// the SHA-256 in the hub-signed assignment, which the dock checks. Only
/// registered images are served, never other blobs.
pub async fn firmware_image(
    State(state): State<AppState>,
    Path(sha256): Path<String>,
    req: axum::extract::Request,
) -> Result<axum::response::Response, ApiError> {
    let lookup = sha256.clone();
    if !state.read(move |s| s.is_firmware(&lookup)).await? {
        return Err(ApiError::not_found(format!(
            "no firmware image with SHA-256 {sha256:?} is registered on this hub"
        )));
    }
    let served = state
        .uploads()
        .blobs()
        .serve(&sha256, req)
        .await
        .map_err(ApiError::internal)?;
    if served.status() == axum::http::StatusCode::NOT_FOUND {
        return Err(ApiError::internal(anyhow::anyhow!(
            "firmware image {sha256} is registered but its blob is missing"
        )));
    }
    Ok(served)
}

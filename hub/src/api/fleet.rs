//! The fleet over HTTP: devices with live status and assignment history,
//! enrollment, assignments, units and officers (one by one or CSV). Every
//! change is written to the audit log with who made it.

use super::extract::{Fields, Json, Query, Strict};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Extension;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, AppState, Caller};
use crate::store::{apply_liveness, DeviceState, NewAssignment, Officer, Roster, Unit};

/// Largest CSV import accepted, bytes.
pub const MAX_IMPORT: usize = 8 * 1024 * 1024;

fn unprocessable(problems: Vec<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, problems.join("; "))
}

/// An operator error (unknown device, bad field) from the store, as 404 or 422.
fn refused(e: anyhow::Error) -> ApiError {
    let msg = format!("{e:#}");
    if msg.starts_with("no device") || msg.starts_with("no token") {
        ApiError::not_found(msg)
    } else {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, msg)
    }
}

/// Query of the device list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    kind: Option<String>,
    unit_code: Option<String>,
}

/// `GET /api/v1/devices?kind=&unit_code=`
pub async fn devices(
    State(state): State<AppState>,
    Query(q): Query<DeviceQuery>,
) -> Result<Json<Value>, ApiError> {
    if let Some(k) = &q.kind {
        if crate::store::DeviceKind::from_name(k).is_none() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("kind = {k:?}: expected dock, field or recorder"),
            ));
        }
    }
    let mut devices = state.read(|s| s.devices()).await?;
    apply_liveness(&mut devices, state.offline_after);
    devices.retain(|d| {
        q.kind.as_deref().is_none_or(|k| d.kind.as_str() == k)
            && q.unit_code
                .as_deref()
                .is_none_or(|u| d.unit_code.as_deref() == Some(u))
    });
    Ok(Json(json!({ "devices": devices })))
}

/// Query of one device.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceAt {
    at: Option<String>,
}

/// `GET /api/v1/devices/{id}?at=TIME`: the device, its assignment history,
/// the recorders docked in it (a dock), its open alerts, and with `at` who
/// had it then (`assigned_at`).
pub async fn device(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<DeviceAt>,
) -> Result<Json<Value>, ApiError> {
    let at = super::feed::time_param("at", q.at)?;
    // The whole fleet once: liveness of a recorder follows its dock's, and
    // a dock's page lists the recorders in it.
    let mut all = state.read(|s| s.devices()).await?;
    apply_liveness(&mut all, state.offline_after);
    let docked: Vec<&str> = all
        .iter()
        .filter(|r| r.docked_in.as_deref() == Some(id.as_str()))
        .map(|r| r.device_id.as_str())
        .collect();
    let d = all
        .iter()
        .find(|d| d.device_id == id)
        .ok_or_else(|| ApiError::not_found(format!("no device {id:?}")))?;
    let lookup = id.clone();
    let (assignments, alerts, assigned_at) = state
        .read(move |s| {
            let alerts: Vec<_> = s
                .alerts(true, 1000)?
                .into_iter()
                .filter(|a| {
                    a.device_id.as_deref() == Some(&lookup)
                        || a.agent_id.as_deref() == Some(&lookup)
                })
                .collect();
            let then = match &at {
                Some(t) => Some(s.assignment_at(&lookup, t)?),
                None => None,
            };
            Ok((s.assignments(&lookup)?, alerts, then))
        })
        .await?;
    let mut v = json!(d);
    v["assignments"] = json!(assignments);
    v["alerts"] = json!(alerts);
    v["docked"] = json!(docked);
    if let Some(then) = assigned_at {
        v["assigned_at"] = json!(then);
    }
    Ok(Json(v))
}

/// Body of `POST /api/v1/devices`: registers a recorder ahead of its first docking.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    device_id: String,
    kind: String,
}

impl Fields for Register {
    const KNOWN: &'static [&'static str] = &["device_id", "kind"];
}

impl Fields for NewAssignment {
    const KNOWN: &'static [&'static str] = &["officer_id", "unit_code", "domain"];
}

impl Fields for Officer {
    const KNOWN: &'static [&'static str] = &["officer_id", "name", "unit_code", "domain", "active"];
}

impl Fields for Unit {
    const KNOWN: &'static [&'static str] = &[
        "unit_code",
        "name",
        "district_code",
        "domain",
        "parent_code",
    ];
}

/// `POST /api/v1/devices`
pub async fn register(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Strict(r): Strict<Register>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if r.kind != "recorder" {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "kind = {:?}: only recorders are registered here; docks and field devices enroll by announcing their key, then are approved",
                r.kind
            ),
        ));
    }
    let id = r.device_id.clone();
    evsync_protocol::topic::validate_device_id(&id).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("device_id {id:?}: {e}"),
        )
    })?;
    let lookup = id.clone();
    if let Some(d) = state.read(move |s| s.device(&lookup)).await? {
        if d.kind.is_agent() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "{id} is a {} (an agent that enrolls by announcing its key), not a recorder",
                    d.kind.as_str()
                ),
            ));
        }
    }
    // Audited before it is made: no change lands without its entry.
    state
        .audit(&caller, "device.register", &id, String::new(), Vec::new())
        .await?;
    let d = state
        .write(move |s| Ok(s.register_recorder(&id)))
        .await?
        .map_err(refused)?;
    Ok((StatusCode::CREATED, Json(json!(d))))
}

async fn set_state(
    state: AppState,
    caller: Caller,
    id: String,
    to: DeviceState,
    action: &str,
) -> Result<Json<Value>, ApiError> {
    state
        .audit(&caller, action, &id, String::new(), Vec::new())
        .await?;
    let d = state
        .write(move |s| Ok(s.set_device_state(&id, to)))
        .await?
        .map_err(refused)?;
    Ok(Json(json!(d)))
}

/// `POST /api/v1/devices/{id}/approve`
pub async fn approve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_state(state, caller, id, DeviceState::Approved, "device.approve").await
}

/// `POST /api/v1/devices/{id}/revoke`
pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_state(state, caller, id, DeviceState::Revoked, "device.revoke").await
}

/// `PUT /api/v1/devices/{id}/assignment`
pub async fn assign(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Strict(a): Strict<NewAssignment>,
) -> Result<Json<Value>, ApiError> {
    let problems = a.problems();
    if !problems.is_empty() {
        return Err(unprocessable(problems));
    }
    let (lookup, by) = (id.clone(), caller.name.clone());
    let detail = serde_json::to_string(&a).unwrap_or_default();
    state
        .audit(&caller, "device.assign", &id, detail, Vec::new())
        .await?;
    state
        .write(move |s| Ok(s.assign(&lookup, &a, &by)))
        .await?
        .map_err(refused)?;
    let lookup = id.clone();
    let history = state.read(move |s| s.assignments(&lookup)).await?;
    Ok(Json(json!({ "device_id": id, "assignments": history })))
}

/// Query of the officer list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficerQuery {
    unit_code: Option<String>,
}

/// `GET /api/v1/officers?unit_code=`
pub async fn officers(
    State(state): State<AppState>,
    Query(q): Query<OfficerQuery>,
) -> Result<Json<Value>, ApiError> {
    let list = state
        .read(move |s| s.officers(q.unit_code.as_deref()))
        .await?;
    Ok(Json(json!({ "officers": list })))
}

/// `GET /api/v1/units`
pub async fn units(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let list = state.read(|s| s.units()).await?;
    Ok(Json(json!({ "units": list })))
}

/// `POST /api/v1/officers` and `POST /api/v1/units`: adds or replaces one.
pub async fn put<T: Roster + Fields>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Strict(item): Strict<T>,
) -> Result<Json<Value>, ApiError> {
    let problems = item.problems();
    if !problems.is_empty() {
        return Err(unprocessable(problems));
    }
    let key = item.key().to_owned();
    let saved = json!(item);
    state
        .audit(
            &caller,
            &format!("{}.put", T::KIND),
            &key,
            String::new(),
            Vec::new(),
        )
        .await?;
    state.write(move |s| T::upsert(s, &[item])).await?;
    Ok(Json(saved))
}

fn csv_text(body: &axum::body::Bytes) -> Result<&str, ApiError> {
    if body.len() > MAX_IMPORT {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{} bytes of CSV: expected at most {MAX_IMPORT}", body.len()),
        ));
    }
    std::str::from_utf8(body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the CSV is not UTF-8 ({e}): expected UTF-8 text with a header line"),
        )
    })
}

/// `POST /api/v1/officers/import` and `POST /api/v1/units/import` with a
/// CSV body: all rows or none.
pub async fn import<T: Roster>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let rows = T::parse_csv(csv_text(&body)?).map_err(unprocessable)?;
    let kind = format!("{}s", T::KIND);
    state
        .audit(
            &caller,
            &format!("{kind}.import"),
            &kind,
            format!("{} rows", rows.len()),
            Vec::new(),
        )
        .await?;
    let n = state.write(move |s| T::upsert(s, &rows)).await?;
    Ok(Json(json!({ "imported": n })))
}

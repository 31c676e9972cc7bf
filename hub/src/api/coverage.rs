//! Sensing coverage over HTTP (issue 6): every figure grouped by unit,
//! domain, officer or day over a time window, each with its numerator and
//! denominator; the drill-downs behind them (uncovered actions, officers
//! without a working recorder, unrecorded duty hours, late uploads, cells);
//! each also as CSV (`format=csv`); and imports of actions from a case
//! system and of duty rosters. Definitions: docs/coverage.md.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::Caller;
use super::extract::{Json, Query};
use super::{ApiError, AppState};
use crate::store::{
    check_actions, parse_actions_csv, Figures, GroupBy, ImportedAction, RosterDuty, Scope, MAX_ROWS,
};

/// The window when none is given: the last 30 days.
const DEFAULT_DAYS: i64 = 30;
/// The causes an uncovered action can have.
const CAUSES: [&str; 5] = [
    "clock_problem",
    "no_recorder_assigned",
    "media_not_arrived",
    "not_linked",
    "nothing_recorded",
];

/// Drill-down rows when no `limit` is given.
const DEFAULT_ROWS: u32 = 1_000;

fn bad(e: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, e)
}

/// The query every coverage endpoint takes: a window, filters, the
/// figures' grouping or a drill-down's choices, a format. Each endpoint
/// says which of the choices apply to it; any other is refused by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoverageQuery {
    from: Option<String>,
    to: Option<String>,
    unit_code: Option<String>,
    domain: Option<String>,
    officer_id: Option<String>,
    format: Option<String>,
    group_by: Option<String>,
    covered: Option<bool>,
    cause: Option<String>,
    working: Option<bool>,
    recorded: Option<bool>,
    limit: Option<u32>,
}

impl CoverageQuery {
    /// Refuses the choices that do not apply to `endpoint` (only `allowed` do).
    fn only(&self, endpoint: &str, allowed: &[&str]) -> Result<(), ApiError> {
        let given = [
            ("group_by", self.group_by.is_some()),
            ("covered", self.covered.is_some()),
            ("cause", self.cause.is_some()),
            ("working", self.working.is_some()),
            ("recorded", self.recorded.is_some()),
            ("limit", self.limit.is_some()),
        ];
        match given.iter().find(|(n, set)| *set && !allowed.contains(n)) {
            Some((n, _)) => Err(bad(format!(
                "{n} does not apply to {endpoint}: expected from, to, unit_code, domain, officer_id, format{}",
                allowed.iter().map(|a| format!(", {a}")).collect::<String>()
            ))),
            None => Ok(()),
        }
    }

    /// `[from, to)`: `to` defaults to now and `from` to 30 days before it.
    /// A window that ends before it starts holds nothing (and answers so).
    fn scope(&self) -> Result<(Scope, DateTime<Utc>, DateTime<Utc>), ApiError> {
        let parse = |name: &str, v: &Option<String>| {
            v.as_deref()
                .map(|s| crate::store::parse_time(name, s).map_err(bad))
                .transpose()
        };
        let to = parse("to", &self.to)?.unwrap_or_else(Utc::now);
        let from = parse("from", &self.from)?.unwrap_or(to - Duration::days(DEFAULT_DAYS));
        let scope = Scope {
            from: from.timestamp_millis(),
            to: to.timestamp_millis(),
            unit_code: self.unit_code.clone(),
            domain: self.domain.clone(),
            officer_id: self.officer_id.clone(),
        };
        Ok((scope, from, to))
    }
}

/// `format=json` (the default) or `format=csv`.
fn wants_csv(format: Option<&str>) -> Result<bool, ApiError> {
    match format {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(f) => Err(bad(format!("format = {f:?}: expected json or csv"))),
    }
}

fn rows_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit.unwrap_or(DEFAULT_ROWS) {
        0 => Err(bad("limit = 0: expected 1 or more".into())),
        n if n > MAX_ROWS => Err(bad(format!("limit = {n}: expected at most {MAX_ROWS}"))),
        n => Ok(n),
    }
}

/// The first `limit` of `rows` (read one more than that), and whether there were more.
fn cut<T>(mut rows: Vec<T>, limit: u32) -> (Vec<T>, bool) {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    (rows, more)
}

/// A CSV answer: a header line, then one line per row; `X-Truncated: true`
/// when more rows than `limit` matched.
fn csv_answer(
    name: &str,
    header: &[&str],
    rows: Vec<Vec<String>>,
    truncated: bool,
) -> Result<Response, ApiError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let written = w
        .write_record(header)
        .and_then(|()| rows.iter().try_for_each(|r| w.write_record(r)));
    let bytes = written
        .map_err(anyhow::Error::from)
        .and_then(|()| w.into_inner().map_err(|e| anyhow::anyhow!("{e}")))
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("writing CSV: {e:#}"),
            )
        })?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ),
            (
                header::HeaderName::from_static("x-truncated"),
                truncated.to_string(),
            ),
        ],
        bytes,
    )
        .into_response())
}

fn at(ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(crate::store::stamp)
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

fn ratio(n: i64, d: i64) -> f64 {
    if d > 0 {
        n as f64 / d as f64
    } else {
        0.0
    }
}

/// One group's figures as the API answers them.
fn figures_json(f: &Figures) -> Value {
    json!({
        "actions": {
            "covered": f.actions.covered, "total": f.actions.total,
            "ratio": ratio(f.actions.covered, f.actions.total),
            "uncovered_by_cause": f.actions.uncovered_by_cause,
        },
        "devices": {"heard": f.devices.covered, "total": f.devices.total, "ratio": ratio(f.devices.covered, f.devices.total)},
        "personnel": {"covered": f.personnel.covered, "total": f.personnel.total, "ratio": ratio(f.personnel.covered, f.personnel.total)},
        "time": {
            "recorded_ms": f.time.recorded_ms, "on_duty_ms": f.time.on_duty_ms,
            "ratio": ratio(f.time.recorded_ms, f.time.on_duty_ms),
            "unrecorded_hours_by_cause": f.time.unrecorded_hours_by_cause,
        },
        "timeliness": {
            "on_time": f.timeliness.on_time, "late": f.timeliness.late, "total": f.timeliness.total,
            "ratio": ratio(f.timeliness.on_time, f.timeliness.total),
        },
        "integrity": {
            "intact": f.integrity.intact, "total": f.integrity.total, "gaps": f.integrity.gaps,
            "ratio": ratio(f.integrity.intact, f.integrity.total),
        },
        "spatial": {"covered": f.spatial.covered, "total": f.spatial.total, "ratio": ratio(f.spatial.covered, f.spatial.total)},
    })
}

const FIGURE_COLUMNS: &[&str] = &[
    "key",
    "actions_covered",
    "actions_total",
    "actions_uncovered_by_cause",
    "devices_heard",
    "devices_total",
    "personnel_covered",
    "personnel_total",
    "time_recorded_ms",
    "time_on_duty_ms",
    "time_unrecorded_hours_by_cause",
    "timeliness_on_time",
    "timeliness_total",
    "integrity_intact",
    "integrity_total",
    "integrity_gaps",
    "spatial_covered",
    "spatial_total",
];

fn causes(c: &std::collections::BTreeMap<String, i64>) -> String {
    c.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

fn figures_row(key: String, f: &Figures) -> Vec<String> {
    vec![
        key,
        f.actions.covered.to_string(),
        f.actions.total.to_string(),
        causes(&f.actions.uncovered_by_cause),
        f.devices.covered.to_string(),
        f.devices.total.to_string(),
        f.personnel.covered.to_string(),
        f.personnel.total.to_string(),
        f.time.recorded_ms.to_string(),
        f.time.on_duty_ms.to_string(),
        causes(&f.time.unrecorded_hours_by_cause),
        f.timeliness.on_time.to_string(),
        f.timeliness.total.to_string(),
        f.integrity.intact.to_string(),
        f.integrity.total.to_string(),
        f.integrity.gaps.to_string(),
        f.spatial.covered.to_string(),
        f.spatial.total.to_string(),
    ]
}

/// `GET /api/v1/coverage?group_by=unit|domain|officer|day&from=&to=&unit_code=&domain=&officer_id=&format=`
pub async fn figures(
    State(state): State<AppState>,
    Query(q): Query<CoverageQuery>,
) -> Result<Response, ApiError> {
    q.only("/coverage", &["group_by"])?;
    let name = q.group_by.clone().unwrap_or_else(|| "unit".into());
    let by = GroupBy::parse(&name).map_err(bad)?;
    let csv = wants_csv(q.format.as_deref())?;
    let (scope, from, to) = q.scope()?;
    let (all, groups, th) = state
        .read(move |s| {
            let (all, groups) = s.figures(by, &scope)?;
            Ok((all, groups, s.thresholds()?))
        })
        .await?;
    if csv {
        let mut rows = vec![figures_row("all".into(), &all)];
        rows.extend(groups.iter().map(|(k, f)| figures_row(opt(k), f)));
        return csv_answer(&format!("coverage-by-{name}"), FIGURE_COLUMNS, rows, false);
    }
    let groups: Vec<Value> = groups
        .iter()
        .map(|(k, f)| {
            let mut v = figures_json(f);
            v["key"] = json!(k);
            v
        })
        .collect();
    Ok(Json(json!({
        "group_by": name,
        "from": crate::store::stamp(from),
        "to": crate::store::stamp(to),
        "policy": {
            "share_permille": th.judge.share_permille,
            "drift_ms": th.judge.drift_ms,
            "timeliness_hours": th.timeliness_hours,
        },
        "all": figures_json(&all),
        "groups": groups,
    }))
    .into_response())
}

/// `GET /api/v1/coverage/actions?covered=false&cause=&...`: the judged
/// actions of the window, each with its covered time and cause.
pub async fn actions(
    State(state): State<AppState>,
    Query(q): Query<CoverageQuery>,
) -> Result<Response, ApiError> {
    q.only("/coverage/actions", &["covered", "cause", "limit"])?;
    let csv = wants_csv(q.format.as_deref())?;
    let limit = rows_limit(q.limit)?;
    let (scope, _, _) = q.scope()?;
    let (covered, cause) = (q.covered, q.cause);
    if let Some(c) = cause.as_deref().filter(|c| !CAUSES.contains(c)) {
        return Err(bad(format!(
            "cause = {c:?}: expected one of {}",
            CAUSES.join(", ")
        )));
    }
    let list = state
        .read(move |s| s.judged_actions(&scope, covered, cause.as_deref(), limit + 1))
        .await?;
    let (list, truncated) = cut(list, limit);
    if csv {
        let rows = list
            .iter()
            .map(|a| {
                vec![
                    a.key.clone(),
                    a.action_id.clone(),
                    a.device_id.clone(),
                    a.officers.join(";"),
                    opt(&a.unit_code),
                    opt(&a.domain),
                    opt(&a.case_number),
                    opt(&a.place),
                    at(a.start_ms).unwrap_or_default(),
                    at(a.end_ms).unwrap_or_default(),
                    a.span_ms.to_string(),
                    a.covered_ms.to_string(),
                    a.covered.to_string(),
                    opt(&a.cause),
                ]
            })
            .collect();
        let header = [
            "key",
            "action_id",
            "device_id",
            "officers",
            "unit_code",
            "domain",
            "case_number",
            "place",
            "start",
            "end",
            "span_ms",
            "covered_ms",
            "covered",
            "cause",
        ];
        return csv_answer("coverage-actions", &header, rows, truncated);
    }
    let list: Vec<Value> = list
        .into_iter()
        .map(|a| {
            json!({
                "key": a.key,
                "action_id": a.action_id,
                "device_id": a.device_id,
                "officers": a.officers,
                "unit_code": a.unit_code,
                "domain": a.domain,
                "case_number": a.case_number,
                "place": a.place,
                "start": at(a.start_ms),
                "end": at(a.end_ms),
                "span_ms": a.span_ms,
                "covered_ms": a.covered_ms,
                "covered": a.covered,
                "cause": a.cause,
            })
        })
        .collect();
    Ok(Json(json!({ "actions": list, "truncated": truncated })).into_response())
}

/// `GET /api/v1/coverage/officers?working=false`: officer-days on duty,
/// with whether a recorder of theirs was heard from.
pub async fn officers(
    State(state): State<AppState>,
    Query(q): Query<CoverageQuery>,
) -> Result<Response, ApiError> {
    q.only("/coverage/officers", &["working", "limit"])?;
    let csv = wants_csv(q.format.as_deref())?;
    let limit = rows_limit(q.limit)?;
    let (scope, _, _) = q.scope()?;
    let working = q.working;
    let list = state
        .read(move |s| s.officer_days(&scope, working, limit + 1))
        .await?;
    let (list, truncated) = cut(list, limit);
    if csv {
        let rows = list
            .iter()
            .map(|o| {
                vec![
                    o.officer_id.clone(),
                    opt(&o.name),
                    opt(&o.unit_code),
                    o.day.clone(),
                    o.on_duty_ms.to_string(),
                    o.recorded_ms.to_string(),
                    o.working.to_string(),
                    o.devices.join(";"),
                ]
            })
            .collect();
        let header = [
            "officer_id",
            "name",
            "unit_code",
            "day",
            "on_duty_ms",
            "recorded_ms",
            "working",
            "devices",
        ];
        return csv_answer("coverage-officers", &header, rows, truncated);
    }
    Ok(Json(json!({ "officers": list, "truncated": truncated })).into_response())
}

/// `GET /api/v1/coverage/late`: recordings whose bytes missed their deadline.
pub async fn late(
    State(state): State<AppState>,
    Query(q): Query<CoverageQuery>,
) -> Result<Response, ApiError> {
    q.only("/coverage/late", &["limit"])?;
    let csv = wants_csv(q.format.as_deref())?;
    let limit = rows_limit(q.limit)?;
    let (scope, _, _) = q.scope()?;
    let list = state
        .read(move |s| s.late_uploads(&scope, limit + 1))
        .await?;
    let (list, truncated) = cut(list, limit);
    let rows: Vec<LateRow> = list
        .into_iter()
        .map(|l| LateRow {
            record_id: l.record_id,
            device_id: l.device_id,
            officer_id: l.officer_id,
            unit_code: l.unit_code,
            end: at(l.end_ms),
            deadline: at(l.deadline_ms),
            arrived_at: l.arrived_ms.and_then(at),
        })
        .collect();
    if csv {
        let header = [
            "record_id",
            "device_id",
            "officer_id",
            "unit_code",
            "end",
            "deadline",
            "arrived_at",
        ];
        let rows = rows
            .iter()
            .map(|l| {
                vec![
                    l.record_id.clone(),
                    l.device_id.clone(),
                    opt(&l.officer_id),
                    opt(&l.unit_code),
                    opt(&l.end),
                    opt(&l.deadline),
                    opt(&l.arrived_at),
                ]
            })
            .collect();
        return csv_answer("coverage-late", &header, rows, truncated);
    }
    Ok(Json(json!({ "late": rows, "truncated": truncated })).into_response())
}

#[derive(Debug, Serialize)]
struct LateRow {
    record_id: String,
    device_id: String,
    officer_id: Option<String>,
    unit_code: Option<String>,
    end: Option<String>,
    deadline: Option<String>,
    arrived_at: Option<String>,
}

/// `GET /api/v1/coverage/hours?recorded=false&officer_id=`: duty hours
/// with what recorded them, and the cause of those without any recording.
pub async fn hours(
    State(state): State<AppState>,
    Query(q): Query<CoverageQuery>,
) -> Result<Response, ApiError> {
    q.only("/coverage/hours", &["recorded", "limit"])?;
    let csv = wants_csv(q.format.as_deref())?;
    let limit = rows_limit(q.limit)?;
    let (scope, _, _) = q.scope()?;
    let recorded = q.recorded;
    let list = state
        .read(move |s| s.duty_hours(&scope, recorded, limit + 1))
        .await?;
    let (list, truncated) = cut(list, limit);
    if csv {
        let header = [
            "officer_id",
            "unit_code",
            "start",
            "end",
            "recorded_ms",
            "cause",
        ];
        let rows = list
            .iter()
            .map(|h| {
                vec![
                    h.officer_id.clone(),
                    opt(&h.unit_code),
                    at(h.start_ms).unwrap_or_default(),
                    at(h.end_ms).unwrap_or_default(),
                    h.recorded_ms.to_string(),
                    opt(&h.cause),
                ]
            })
            .collect();
        return csv_answer("coverage-hours", &header, rows, truncated);
    }
    let list: Vec<Value> = list
        .into_iter()
        .map(|h| {
            json!({
                "officer_id": h.officer_id, "unit_code": h.unit_code,
                "start": at(h.start_ms), "end": at(h.end_ms),
                "recorded_ms": h.recorded_ms, "cause": h.cause,
            })
        })
        .collect();
    Ok(Json(json!({ "hours": list, "truncated": truncated })).into_response())
}

/// `GET /api/v1/coverage/cells`: geohash cells with the actions and
/// recordings placed in them, those with actions and no recording first.
pub async fn cells(
    State(state): State<AppState>,
    Query(q): Query<CoverageQuery>,
) -> Result<Response, ApiError> {
    q.only("/coverage/cells", &["limit"])?;
    let csv = wants_csv(q.format.as_deref())?;
    let limit = rows_limit(q.limit)?;
    let (scope, _, _) = q.scope()?;
    let list = state.read(move |s| s.cells(&scope, limit + 1)).await?;
    let (list, truncated) = cut(list, limit);
    if csv {
        let rows = list
            .iter()
            .map(|c| {
                vec![
                    c.cell.clone(),
                    c.actions.to_string(),
                    c.recordings.to_string(),
                ]
            })
            .collect();
        return csv_answer(
            "coverage-cells",
            &["cell", "actions", "recordings"],
            rows,
            truncated,
        );
    }
    Ok(Json(json!({ "cells": list, "truncated": truncated })).into_response())
}

/// Largest import body.
const MAX_IMPORT: usize = 32 << 20;

fn is_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/csv"))
}

fn import_text(body: &axum::body::Bytes) -> Result<&str, ApiError> {
    if body.len() > MAX_IMPORT {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{} bytes: expected at most {MAX_IMPORT}", body.len()),
        ));
    }
    std::str::from_utf8(body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the body is not UTF-8 ({e})"),
        )
    })
}

fn unprocessable(problems: Vec<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, problems.join("; "))
}

/// `{"actions": [...]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionsBody {
    actions: Vec<ImportedAction>,
}

/// `{"duties": [...]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DutiesBody {
    duties: Vec<RosterDuty>,
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, expected: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{e}: expected {expected}, or a CSV body with Content-Type: text/csv"),
        )
    })
}

/// `POST /api/v1/coverage/actions`: actions from a case system, as JSON
/// `{"actions": [...]}` or CSV; all or none, each judged at once.
pub async fn import_actions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let text = import_text(&body)?;
    let rows = if is_csv(&headers) {
        parse_actions_csv(text).map_err(unprocessable)?
    } else {
        let b: ActionsBody = from_json(text, "{\"actions\": [...]}")?;
        check_actions(b.actions).map_err(unprocessable)?
    };
    state
        .audit(
            &caller,
            "coverage.import_actions",
            "actions",
            format!("{} actions", rows.len()),
            Vec::new(),
        )
        .await?;
    let n = state.write(move |s| s.import_actions(&rows)).await?;
    Ok(Json(json!({ "imported": n })))
}

/// `POST /api/v1/coverage/duties`: duty shifts of a roster, as JSON
/// `{"duties": [...]}` or CSV (`officer_id,start,end`); all or none.
pub async fn import_duties(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let text = import_text(&body)?;
    let rows: Vec<RosterDuty> = if is_csv(&headers) {
        crate::store::parse_roster_csv(text).map_err(unprocessable)?
    } else {
        from_json::<DutiesBody>(text, "{\"duties\": [...]}")?.duties
    };
    let mut problems = Vec::new();
    let mut checked = Vec::new();
    for (i, d) in rows.into_iter().enumerate() {
        match d.span() {
            Ok(span) => checked.push((d, span)),
            Err(p) => problems.push(format!("duties[{i}]: {p}")),
        }
    }
    if !problems.is_empty() {
        return Err(unprocessable(problems));
    }
    if checked.is_empty() {
        return Err(unprocessable(vec![
            "no duties: expected at least one".into()
        ]));
    }
    state
        .audit(
            &caller,
            "coverage.import_duties",
            "duties",
            format!("{} duties", checked.len()),
            Vec::new(),
        )
        .await?;
    let n = state.write(move |s| s.import_duties(&checked)).await?;
    Ok(Json(json!({ "imported": n })))
}

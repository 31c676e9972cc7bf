//! Sensing coverage over HTTP (issue 6): figures grouped by unit, domain,
//! officer or day over a time window, each with its numerator and
//! denominator, and the drill-down to the actions behind them with the
//! cause of each uncovered one. Definitions: docs/coverage.md.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::{Json, Query};
use super::{ApiError, AppState};
use crate::coverage::action::Policy;
use crate::store::GroupBy;

/// The window when none is given: the last 30 days.
const DEFAULT_DAYS: i64 = 30;

/// A window `[from, to)`; `to` defaults to now and `from` to 30 days before it.
fn window(
    from: Option<String>,
    to: Option<String>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let parse = |name: &str, v: Option<String>| {
        v.map(|s| {
            crate::store::parse_time(name, &s)
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))
        })
        .transpose()
    };
    // A window that ends before it starts holds nothing (and answers so).
    let to = parse("to", to)?.unwrap_or_else(Utc::now);
    let from = parse("from", from)?.unwrap_or(to - Duration::days(DEFAULT_DAYS));
    Ok((from, to))
}

/// Query of the figures.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiguresQuery {
    group_by: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/v1/coverage?group_by=unit|domain|officer|day&from=&to=`
pub async fn figures(
    State(state): State<AppState>,
    Query(q): Query<FiguresQuery>,
) -> Result<Json<Value>, ApiError> {
    let name = q.group_by.unwrap_or_else(|| "unit".into());
    let by = GroupBy::parse(&name).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    let (from, to) = window(q.from, q.to)?;
    let (f, t) = (from.timestamp_millis(), to.timestamp_millis());
    let groups = state.read(move |s| s.action_coverage(by, f, t)).await?;
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|g| {
            json!({
                "key": g.key,
                "actions": {
                    "covered": g.covered,
                    "total": g.total,
                    "ratio": if g.total > 0 { g.covered as f64 / g.total as f64 } else { 0.0 },
                    "uncovered_by_cause": g.causes,
                },
            })
        })
        .collect();
    Ok(Json(json!({
        "group_by": name,
        "from": crate::store::stamp(from),
        "to": crate::store::stamp(to),
        "share_permille": Policy::default().share_permille,
        "groups": groups,
    })))
}

/// Query of the drill-down.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionsQuery {
    from: Option<String>,
    to: Option<String>,
    covered: Option<bool>,
}

/// `GET /api/v1/coverage/actions?from=&to=&covered=false`: the judged
/// actions of the window, each with its covered time and cause.
pub async fn actions(
    State(state): State<AppState>,
    Query(q): Query<ActionsQuery>,
) -> Result<Json<Value>, ApiError> {
    let (from, to) = window(q.from, q.to)?;
    let (f, t) = (from.timestamp_millis(), to.timestamp_millis());
    let mut list = state.read(move |s| s.judged_actions(f, t)).await?;
    if let Some(c) = q.covered {
        list.retain(|a| a.covered == c);
    }
    let list: Vec<Value> = list
        .into_iter()
        .map(|a| {
            let at = |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms).map(crate::store::stamp);
            json!({
                "key": a.key,
                "action_id": a.action_id,
                "device_id": a.device_id,
                "unit_code": a.unit_code,
                "domain": a.domain,
                "case_number": a.case_number,
                "start": at(a.start_ms),
                "end": at(a.end_ms),
                "span_ms": a.span_ms,
                "covered_ms": a.covered_ms,
                "covered": a.covered,
                "cause": a.cause,
            })
        })
        .collect();
    Ok(Json(json!({ "actions": list })))
}

//! Each day's coverage figures rolled up per group (schema 8,
//! `coverage_groups.sql`): for the whole district and for every unit,
//! domain and officer, the day's personnel, time, timeliness of arrived
//! recordings, records and actions. A question over the whole district
//! (no unit, domain or officer filter) then reads one row per day and group
//! — 38 units × 90 days rather than every officer-day and every action.
//!
//! The rows are made from the day's `coverage_days` rows and its actions
//! when the day is summed ([`roll_up`], called by `coverage_days::refresh`),
//! so they go stale with them: the same `coverage_stale_days` marks (with
//! triggers on actions and their officers too) keep a changed day from
//! being read from here until it is summed again.

use std::collections::HashMap;

use super::db::{named_params, Connection, Row, Transaction};

use super::coverage_days::{per_cause, some, Plan};
use super::figures::{Figures, GroupBy};
use crate::coverage::action::Cause;

/// The additive columns of `coverage_days` carried into each group's row
/// as they are.
fn additive() -> String {
    format!(
        "on_duty_ms, recorded_ms, {}, arrived_on_time, arrived_late, records",
        per_cause(|_, n| n.to_owned())
    )
}

/// The per-cause action columns (`actions_<cause>`).
fn action_causes(item: impl Fn(Cause, &str) -> String) -> String {
    Cause::ALL
        .iter()
        .map(|&c| item(c, &format!("actions_{}", c.as_str())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rolls the day `day` (`[from, to)` in ms) up per group from its
/// `coverage_days` rows (already summed) and its judged actions, replacing
/// what the day held.
pub(super) fn roll_up(tx: &Transaction<'_>, day: &str, from: i64, to: i64) -> anyhow::Result<()> {
    let additive = additive();
    let zero_additive = per_cause(|_, _| "0".to_owned());
    let zero_actions = action_causes(|_, _| "0".to_owned());
    let named_zero_actions = action_causes(|_, n| format!("0 AS {n}"));
    let sums = format!(
        "SUM(on_duty_ms), SUM(recorded_ms), {}, SUM(arrived_on_time), SUM(arrived_late), SUM(records)",
        per_cause(|_, n| format!("SUM({n})"))
    );
    let action_sums = action_causes(|_, n| format!("SUM({n})"));
    let of_cause = action_causes(|c, n| {
        format!(
            "CAST(a.cause IS NOT DISTINCT FROM '{}' AS INTEGER) AS {n}",
            c.as_str()
        )
    });
    // One arm per grouping and kind of figure; the first names the columns.
    let sums_of = |grouping: &str, key: &str| {
        format!(
            "SELECT '{grouping}' AS g, {key} AS k, 0 AS od, 0 AS odh, {additive},
                    0 AS actions, 0 AS actions_covered, {named_zero_actions}
             FROM coverage_days WHERE day = :day"
        )
    };
    let officer_days_of = |grouping: &str, key: &str, by: &str| {
        format!(
            "SELECT '{grouping}', {key}, 1, MAX(CAST(duties_heard > 0 AS INTEGER)), 0, 0, {zero_additive}, 0, 0, 0,
                    0, 0, {zero_actions}
             FROM coverage_days WHERE day = :day AND duties > 0 GROUP BY {by}"
        )
    };
    let actions_of = |grouping: &str, key: &str, from: &str| {
        format!(
            "SELECT '{grouping}', {key}, 0, 0, 0, 0, {zero_additive}, 0, 0, 0,
                    1, a.covered, {of_cause}
             FROM {from} WHERE a.span_ms IS NOT NULL AND a.start_ms >= :from AND a.start_ms < :to"
        )
    };
    let arms = [
        sums_of("all", "''"),
        sums_of("unit", "unit_code"),
        sums_of("domain", "domain"),
        sums_of("officer", "officer_id"),
        officer_days_of("all", "''", "officer_id"),
        officer_days_of("unit", "unit_code", "unit_code, officer_id"),
        officer_days_of("domain", "domain", "domain, officer_id"),
        officer_days_of("officer", "officer_id", "officer_id"),
        actions_of("all", "''", "actions a"),
        actions_of("unit", "COALESCE(a.unit_code, '')", "actions a"),
        actions_of("domain", "COALESCE(a.domain, '')", "actions a"),
        actions_of(
            "officer",
            "o.officer_id",
            "actions a JOIN action_officers o ON o.action_key = a.action_key",
        ),
    ]
    .join("\n UNION ALL ");
    let sql = format!(
        "INSERT INTO coverage_day_groups (grouping, day, key, officer_days, officer_days_heard, {additive},
                                          actions, actions_covered, {action_cols})
         SELECT g, :day, k, SUM(od), SUM(odh), {sums}, SUM(actions), SUM(actions_covered), {action_sums}
         FROM ({arms}) parts GROUP BY g, k",
        action_cols = action_causes(|_, n| n.to_owned()),
    );
    tx.prepare_cached("DELETE FROM coverage_day_groups WHERE day = ?1")?
        .execute([day])?;
    tx.prepare_cached(&sql)?
        .execute(named_params! {":day": day, ":from": from, ":to": to})?;
    Ok(())
}

/// Adds one group-day row's figures to `f`.
fn add_row(f: &mut Figures, r: &Row) -> super::db::Result<()> {
    // Columns from 3 on: officer_days, officer_days_heard, on_duty_ms,
    // recorded_ms, hours per cause, arrived_on_time, arrived_late, records,
    // actions, actions_covered, actions per cause.
    let n = Cause::ALL.len();
    let at = |i: usize| r.get::<_, i64>(3 + i);
    f.personnel.total += at(0)?;
    f.personnel.covered += at(1)?;
    f.time.on_duty_ms += at(2)?;
    f.time.recorded_ms += at(3)?;
    for (i, c) in Cause::ALL.iter().enumerate() {
        let h = at(4 + i)?;
        if h > 0 {
            *f.time
                .unrecorded_hours_by_cause
                .entry(c.as_str().to_owned())
                .or_default() += h;
        }
    }
    let (on_time, late, records) = (at(4 + n)?, at(5 + n)?, at(6 + n)?);
    f.timeliness.on_time += on_time;
    f.timeliness.late += late;
    f.timeliness.total += on_time + late;
    f.integrity.total += records;
    f.integrity.intact += records;
    let (actions, covered) = (at(7 + n)?, at(8 + n)?);
    f.actions.total += actions;
    f.actions.covered += covered;
    let mut caused = 0;
    for (i, c) in Cause::ALL.iter().enumerate() {
        let k = at(9 + n + i)?;
        caused += k;
        if k > 0 {
            *f.actions
                .uncovered_by_cause
                .entry(c.as_str().to_owned())
                .or_default() += k;
        }
    }
    // Uncovered without a cause: counted as the rows count them, under ''.
    let uncaused = actions - covered - caused;
    if uncaused > 0 {
        *f.actions
            .uncovered_by_cause
            .entry(String::new())
            .or_default() += uncaused;
    }
    Ok(())
}

/// Adds the rolled-up rows of the plan's fresh whole days to the whole's
/// figures and to each group's (a question without filters): personnel,
/// time, timeliness of arrived recordings, records and actions.
pub(super) fn add_groups(
    conn: &Connection,
    by: GroupBy,
    plan: &Plan,
    all: &mut Figures,
    groups: &mut HashMap<Option<String>, Figures>,
) -> anyhow::Result<()> {
    let Some((first, end)) = &plan.summed else {
        return Ok(());
    };
    let grouping = match by {
        GroupBy::Unit => "unit",
        GroupBy::Domain => "domain",
        GroupBy::Officer => "officer",
        // A day's group is the day's whole.
        GroupBy::Day => "all",
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT grouping, day, key, officer_days, officer_days_heard, {},
                actions, actions_covered, {}
         FROM coverage_day_groups WHERE grouping IN ('all', :grouping) AND day >= :first AND day < :end
           AND day NOT IN (SELECT day FROM coverage_stale_days WHERE day >= :first AND day < :end)",
        additive(),
        action_causes(|_, n| n.to_owned()),
    ))?;
    let mut rows =
        stmt.query(named_params! {":grouping": grouping, ":first": first, ":end": end})?;
    while let Some(r) = rows.next()? {
        let g: String = r.get(0)?;
        if g == "all" {
            add_row(all, r)?;
            if by == GroupBy::Day {
                add_row(groups.entry(Some(r.get(1)?)).or_default(), r)?;
            }
        } else {
            add_row(groups.entry(some(r.get(2)?)).or_default(), r)?;
        }
    }
    Ok(())
}

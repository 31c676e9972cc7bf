//! The additive coverage figures kept summed by day (schema 7,
//! `coverage_days.sql`): personnel's duties, time's duty hours, timeliness
//! of arrived recordings and integrity's records, per China Standard Time
//! day, unit, domain and officer. A question over months then reads one row
//! per officer-day instead of every duty hour, recording and record.
//!
//! The sums are never trusted past a change: every insert, update or delete
//! of the rows they are summed from names its day in `coverage_stale_days`
//! (triggers, so no write path can forget), a question counts stale days and
//! the partial days at the window's edges from the rows themselves
//! ([`plan`]), and the coverage sweeper sums stale days again ([`refresh`]).
//! So the figures are the same whether a day is summed or not, which
//! `figures_tests` checks.

use std::collections::HashMap;

use super::db::{named_params, Connection, Transaction};

use super::coverage::{cst_day, stamp_ms, thresholds};
use super::figures::{Figures, GroupBy, Scope};
use crate::coverage::action::Cause;

const DAY_MS: i64 = 86_400_000;
/// China Standard Time is UTC+8.
const CST_MS: i64 = 8 * 3_600_000;

/// How a question's window is answered: the whole days `[first, end)`
/// (dates) read from the sums, minus those stale; and the spans of time
/// (ms) counted from the rows — the partial days at either edge and each
/// stale day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    /// Whole days read from the sums, as dates `[first, end)`.
    pub summed: Option<(String, String)>,
    /// Spans `[from, to)` counted from the rows.
    pub raw: Vec<(i64, i64)>,
}

/// The first China Standard Time midnight at or after `ms`.
fn midnight_on_or_after(ms: i64) -> i64 {
    (ms.saturating_add(CST_MS).saturating_add(DAY_MS - 1))
        .div_euclid(DAY_MS)
        .saturating_mul(DAY_MS)
        - CST_MS
}

/// The last China Standard Time midnight at or before `ms`.
fn midnight_on_or_before(ms: i64) -> i64 {
    ms.saturating_add(CST_MS)
        .div_euclid(DAY_MS)
        .saturating_mul(DAY_MS)
        - CST_MS
}

/// The start (ms) of a date, China Standard Time.
fn day_start(day: &str) -> anyhow::Result<i64> {
    let d = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map_err(|e| anyhow::anyhow!("coverage day {day:?} is not a date: {e}"))?;
    Ok(d.and_time(chrono::NaiveTime::MIN)
        .and_utc()
        .timestamp_millis()
        - CST_MS)
}

/// Splits `[from, to)` into summed whole days and spans counted from rows.
pub(super) fn plan(conn: &Connection, from: i64, to: i64) -> anyhow::Result<Plan> {
    let (a, b) = (midnight_on_or_after(from), midnight_on_or_before(to));
    if a >= b {
        return Ok(Plan {
            summed: None,
            raw: if from < to {
                vec![(from, to)]
            } else {
                Vec::new()
            },
        });
    }
    let (first, end) = (cst_day(a), cst_day(b));
    let mut raw: Vec<(i64, i64)> = Vec::new();
    let mut push = |s: i64, e: i64| match raw.last_mut() {
        Some(last) if last.1 == s => last.1 = e,
        _ => raw.push((s, e)),
    };
    if from < a {
        push(from, a);
    }
    let stale: Vec<String> = conn
        .prepare_cached(
            "SELECT day FROM coverage_stale_days WHERE day >= ?1 AND day < ?2 ORDER BY day",
        )?
        .query_map([&first, &end], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for day in stale {
        let s = day_start(&day)?;
        push(s, s + DAY_MS);
    }
    if b < to {
        push(b, to);
    }
    Ok(Plan {
        summed: Some((first, end)),
        raw,
    })
}

/// A comma-separated list, one item per cause, made from the cause and
/// the name of its hours column (`hours_<cause>`).
pub(super) fn per_cause(item: impl Fn(Cause, &str) -> String) -> String {
    Cause::ALL
        .iter()
        .map(|&c| item(c, &format!("hours_{}", c.as_str())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sums up to `limit` stale days again (oldest first); returns how many.
pub(super) fn refresh(tx: &Transaction<'_>, limit: u32) -> anyhow::Result<usize> {
    let days: Vec<String> = tx
        .prepare_cached("SELECT day FROM coverage_stale_days ORDER BY day LIMIT ?1")?
        .query_map([limit], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let hours = thresholds(tx)?.timeliness_hours;
    let zeros = per_cause(|_, _| "0".to_owned());
    let named_zeros = per_cause(|_, n| format!("0 AS {n}"));
    let sums = per_cause(|_, n| format!("SUM({n})"));
    let of_cause = per_cause(|c, n| {
        format!(
            "CAST(t.cause IS NOT DISTINCT FROM '{}' AS INTEGER) AS {n}",
            c.as_str()
        )
    });
    let deadline = super::figures::DEADLINE;
    let sql = format!(
        "INSERT INTO coverage_days (day, unit_code, domain, officer_id, duties, duties_heard,
                                    on_duty_ms, recorded_ms, {cols}, arrived_on_time, arrived_late, records)
         SELECT :day, u, d, o, SUM(duties), SUM(heard), SUM(on_duty), SUM(recorded), {sums},
                SUM(on_time), SUM(late), SUM(records)
         FROM (
           SELECT COALESCE(t.unit_code, '') AS u, COALESCE(t.domain, '') AS d, t.officer_id AS o,
                  1 AS duties, CAST(t.heard_ms IS NOT NULL AS INTEGER) AS heard, 0 AS on_duty, 0 AS recorded, {named_zeros},
                  0 AS on_time, 0 AS late, 0 AS records
             FROM duties t WHERE t.start_ms >= :from AND t.start_ms < :to
           UNION ALL
           SELECT COALESCE(t.unit_code, ''), COALESCE(t.domain, ''), t.officer_id,
                  0, 0, t.end_ms - t.start_ms, t.recorded_ms, {of_cause}, 0, 0, 0
             FROM duty_hours t WHERE t.start_ms >= :from AND t.start_ms < :to
           UNION ALL
           SELECT COALESCE(t.unit_code, ''), COALESCE(t.domain, ''), COALESCE(t.officer_id, ''),
                  0, 0, 0, 0, {zeros}, CAST(t.arrived_ms <= {deadline} AS INTEGER), CAST(t.arrived_ms > {deadline} AS INTEGER), 0
             FROM recordings t WHERE t.end_ms >= :from AND t.end_ms < :to AND t.arrived_ms IS NOT NULL
           UNION ALL
           SELECT COALESCE(t.unit_code, ''), COALESCE(t.domain, ''), COALESCE(t.officer_id, ''),
                  0, 0, 0, 0, {zeros}, 0, 0, 1
             FROM records t WHERE t.occurred_at >= :from_stamp AND t.occurred_at < :to_stamp
         ) parts GROUP BY u, d, o",
        cols = per_cause(|_, n| n.to_owned()),
    );
    let mut insert = tx.prepare_cached(&sql)?;
    for day in &days {
        let from = day_start(day)?;
        let to = from + DAY_MS;
        tx.prepare_cached("DELETE FROM coverage_days WHERE day = ?1")?
            .execute([day])?;
        insert.execute(named_params! {
            ":day": day, ":from": from, ":to": to, ":hours": hours,
            ":from_stamp": stamp_ms(from), ":to_stamp": stamp_ms(to),
        })?;
        super::coverage_groups::roll_up(tx, day, from, to)?;
        tx.prepare_cached("DELETE FROM coverage_stale_days WHERE day = ?1")?
            .execute([day])?;
    }
    Ok(days.len())
}

/// Days whose sums are stale.
pub(super) fn stale_days(conn: &Connection) -> anyhow::Result<i64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM coverage_stale_days", [], |r| r.get(0))?)
}

/// Marks every summed day stale (what they were summed under changed).
pub(super) fn all_stale(tx: &Transaction<'_>) -> anyhow::Result<()> {
    tx.execute(
        "INSERT INTO coverage_stale_days
             SELECT day FROM coverage_days
             UNION SELECT day FROM coverage_day_groups WHERE grouping = 'all'
             ON CONFLICT DO NOTHING",
        [],
    )?;
    Ok(())
}

/// `''` (what the sums hold for none) as none.
pub(super) fn some(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Adds the sums of the plan's fresh whole days (within the scope's
/// filters) to the whole's figures and to each group's: personnel, time,
/// timeliness of arrived recordings, records.
pub(super) fn add_sums(
    conn: &Connection,
    by: GroupBy,
    scope: &Scope,
    plan: &Plan,
    all: &mut Figures,
    groups: &mut HashMap<Option<String>, Figures>,
) -> anyhow::Result<()> {
    let Some((first, end)) = &plan.summed else {
        return Ok(());
    };
    let causes = Cause::ALL;
    let cols = per_cause(|_, n| n.to_owned());
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT day, unit_code, domain, officer_id, duties, duties_heard, on_duty_ms, recorded_ms,
                arrived_on_time, arrived_late, records, {cols}
         FROM coverage_days WHERE day >= :first AND day < :end
           AND day NOT IN (SELECT day FROM coverage_stale_days WHERE day >= :first AND day < :end)
           AND (CAST(:unit AS TEXT) IS NULL OR unit_code = :unit) AND (CAST(:domain AS TEXT) IS NULL OR domain = :domain)
           AND (CAST(:officer AS TEXT) IS NULL OR officer_id = :officer)"
    ))?;
    let mut rows = stmt.query(named_params! {
        ":first": first, ":end": end, ":unit": scope.unit_code,
        ":domain": scope.domain, ":officer": scope.officer_id,
    })?;
    // Officer-days: on duty in a group, and heard from in it (an officer-day
    // in two units counts once in each, and once in the whole).
    let mut days_all: HashMap<(String, String), bool> = HashMap::new();
    let mut days_by: HashMap<(Option<String>, String, String), bool> = HashMap::new();
    while let Some(r) = rows.next()? {
        let (day, unit, domain, officer): (String, String, String, String) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
        let n: [i64; 7] = [
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
            r.get(8)?,
            r.get(9)?,
            r.get(10)?,
        ];
        let [duties, heard, on_duty, recorded, on_time, late, records] = n;
        let key = match by {
            GroupBy::Unit => some(unit),
            GroupBy::Domain => some(domain),
            GroupBy::Officer => some(officer.clone()),
            GroupBy::Day => Some(day.clone()),
        };
        let mut hours = [0i64; Cause::ALL.len()];
        for (i, h) in hours.iter_mut().enumerate() {
            *h = r.get(11 + i)?;
        }
        let g = groups.entry(key.clone()).or_default();
        for f in [&mut *all, g] {
            f.time.recorded_ms += recorded;
            f.time.on_duty_ms += on_duty;
            for (c, h) in causes.iter().zip(hours) {
                if h > 0 {
                    *f.time
                        .unrecorded_hours_by_cause
                        .entry(c.as_str().to_owned())
                        .or_default() += h;
                }
            }
            f.timeliness.on_time += on_time;
            f.timeliness.late += late;
            f.timeliness.total += on_time + late;
            f.integrity.total += records;
            f.integrity.intact += records;
        }
        if duties > 0 {
            *days_all.entry((officer.clone(), day.clone())).or_default() |= heard > 0;
            *days_by.entry((key, officer, day)).or_default() |= heard > 0;
        }
    }
    for heard in days_all.into_values() {
        all.personnel.total += 1;
        all.personnel.covered += i64::from(heard);
    }
    for ((key, _, _), heard) in days_by {
        let g = groups.entry(key).or_default();
        g.personnel.total += 1;
        g.personnel.covered += i64::from(heard);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midnights_are_china_standard_time() {
        // 2026-11-23T00:00+08:00 = 2026-11-22T16:00Z.
        let midnight = chrono::DateTime::parse_from_rfc3339("2026-11-23T00:00:00+08:00")
            .unwrap()
            .timestamp_millis();
        assert_eq!(midnight_on_or_after(midnight), midnight);
        assert_eq!(midnight_on_or_before(midnight), midnight);
        assert_eq!(midnight_on_or_after(midnight + 1), midnight + DAY_MS);
        assert_eq!(midnight_on_or_before(midnight - 1), midnight - DAY_MS);
        assert_eq!(day_start("2026-11-23").unwrap(), midnight);
        assert_eq!(cst_day(midnight), "2026-11-23");
        assert!(day_start("23/11/2026").is_err());
    }

    #[test]
    fn a_window_splits_into_edges_summed_days_and_stale_days() {
        let conn = Connection::open_sqlite(std::path::Path::new(":memory:")).unwrap();
        conn.execute_batch(
            "CREATE TABLE coverage_stale_days (day TEXT PRIMARY KEY) WITHOUT ROWID;",
        )
        .unwrap();
        let d23 = day_start("2026-11-23").unwrap();
        // Within one day: all from the rows.
        let p = plan(&conn, d23 + 5, d23 + 10).unwrap();
        assert_eq!(
            p,
            Plan {
                summed: None,
                raw: vec![(d23 + 5, d23 + 10)]
            }
        );
        // 23rd 06:00 to 26th 12:00: the 24th and 25th summed, the edges from rows.
        let (from, to) = (d23 + 6 * 3_600_000, d23 + 3 * DAY_MS + 12 * 3_600_000);
        let p = plan(&conn, from, to).unwrap();
        assert_eq!(p.summed, Some(("2026-11-24".into(), "2026-11-26".into())));
        assert_eq!(p.raw, vec![(from, d23 + DAY_MS), (d23 + 3 * DAY_MS, to)]);
        // The 24th stale: counted from rows, joined to the first edge.
        conn.execute(
            "INSERT INTO coverage_stale_days VALUES ('2026-11-24'), ('2026-12-30')",
            [],
        )
        .unwrap();
        let p = plan(&conn, from, to).unwrap();
        assert_eq!(
            p.raw,
            vec![(from, d23 + 2 * DAY_MS), (d23 + 3 * DAY_MS, to)]
        );
        // Whole days exactly: no edges.
        let p = plan(&conn, d23, d23 + 3 * DAY_MS).unwrap();
        assert_eq!(p.summed, Some(("2026-11-23".into(), "2026-11-26".into())));
        assert_eq!(p.raw, vec![(d23 + DAY_MS, d23 + 2 * DAY_MS)]);
    }
}

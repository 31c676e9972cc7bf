//! The coverage figures (issue 6; definitions in docs/coverage.md), each a
//! numerator over a denominator, grouped by unit, domain, officer or day
//! over a window, and the drill-downs behind them. Every figure is a plain
//! aggregate over what ingest keeps up to date (verdicts, duty hours,
//! device days, recordings' arrival), read through indexes on time; those
//! that add up across days are read from their day sums for the window's
//! whole, fresh days ([`coverage_days`]).

use std::collections::{BTreeMap, HashMap};

use super::db::{named_params, Connection, Row};
use serde::Serialize;

use super::coverage::{stamp_ms, thresholds};
use super::{coverage_days, coverage_groups};

/// What figures are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// The unit (of the action's start event, the duty, the recording, the device).
    Unit,
    /// The enforcement domain.
    Domain,
    /// Each officer (an action of two officers counts for both).
    Officer,
    /// The day, China Standard Time (UTC+8).
    Day,
}

impl GroupBy {
    /// The group with this name; the error names the choices.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "unit" => Ok(Self::Unit),
            "domain" => Ok(Self::Domain),
            "officer" => Ok(Self::Officer),
            "day" => Ok(Self::Day),
            _ => Err(format!(
                "group_by = {s:?}: expected unit, domain, officer or day"
            )),
        }
    }
}

/// The window and filters of a question: `[from, to)` in milliseconds, and
/// optionally one unit, domain or officer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Start, milliseconds (inclusive).
    pub from: i64,
    /// End, milliseconds (exclusive).
    pub to: i64,
    /// Only this unit.
    pub unit_code: Option<String>,
    /// Only this domain.
    pub domain: Option<String>,
    /// Only this officer.
    pub officer_id: Option<String>,
}

/// A numerator over a denominator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Ratio {
    /// Numerator.
    pub covered: i64,
    /// Denominator.
    pub total: i64,
}

/// Action coverage: covered actions / actions, and the causes of the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ActionCoverage {
    /// Covered actions.
    pub covered: i64,
    /// Judged actions.
    pub total: i64,
    /// Uncovered actions by cause.
    pub uncovered_by_cause: BTreeMap<String, i64>,
}

/// Time coverage: recorded / on-duty milliseconds, and the causes of the
/// on-duty hours without any recording.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TimeCoverage {
    /// Milliseconds of finished duties covered by the officers' arrived recordings.
    pub recorded_ms: i64,
    /// Milliseconds of finished duties.
    pub on_duty_ms: i64,
    /// Duty hours (clock hours, the first and last partial) without any recording, by cause.
    pub unrecorded_hours_by_cause: BTreeMap<String, i64>,
}

/// Timeliness: recordings whose bytes arrived by their deadline / those due.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Timeliness {
    /// Arrived by the deadline.
    pub on_time: i64,
    /// Arrived after it, or past it and not arrived.
    pub late: i64,
    /// `on_time + late`: recordings not yet due are not counted.
    pub total: i64,
}

/// Integrity: records with intact chains / records, and open gaps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Integrity {
    /// Records (all verified on arrival) not named by a chain break or conflict.
    pub intact: i64,
    /// Records.
    pub total: i64,
    /// Unresolved gap alerts (sequence gaps, recorder file index gaps, files missing).
    pub gaps: i64,
}

/// Every figure of one group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Figures {
    /// Action coverage.
    pub actions: ActionCoverage,
    /// Device coverage: devices heard from / approved devices.
    pub devices: Ratio,
    /// Personnel coverage: officer-days on duty with a recorder heard from / officer-days on duty.
    pub personnel: Ratio,
    /// Time coverage.
    pub time: TimeCoverage,
    /// Timeliness.
    pub timeliness: Timeliness,
    /// Integrity.
    pub integrity: Integrity,
    /// Spatial coverage: cells of actions holding a recording / cells of actions.
    pub spatial: Ratio,
}

/// The SQL of a group's key over a table aliased `t` whose columns are
/// `unit_code`, `domain`, `officer_id`, and whose time is `time` (ms).
fn key_sql(by: Option<GroupBy>, time: &str) -> String {
    match by {
        None => "NULL".into(),
        Some(GroupBy::Unit) => "t.unit_code".into(),
        Some(GroupBy::Domain) => "t.domain".into(),
        Some(GroupBy::Officer) => "t.officer_id".into(),
        Some(GroupBy::Day) => format!("date({time} / 1000 + 28800, 'unixepoch')"),
    }
}

/// The filter of a scope over a table aliased `t` (named parameters
/// `:unit`, `:domain`, `:officer`).
const FILTER: &str =
    "(CAST(:unit AS TEXT) IS NULL OR t.unit_code = :unit) AND (CAST(:domain AS TEXT) IS NULL OR t.domain = :domain)
     AND (CAST(:officer AS TEXT) IS NULL OR t.officer_id = :officer)";

type Groups<T> = BTreeMap<Option<String>, T>;

fn collect<T: Default>(
    conn: &Connection,
    sql: &str,
    scope: &Scope,
    mut add: impl FnMut(&mut T, &Row) -> super::db::Result<()>,
) -> anyhow::Result<Groups<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(named_params! {
        ":from": scope.from,
        ":to": scope.to,
        ":unit": scope.unit_code,
        ":domain": scope.domain,
        ":officer": scope.officer_id,
    })?;
    let mut out: Groups<T> = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let k: Option<String> = r.get(0)?;
        add(out.entry(k).or_default(), r)?;
    }
    Ok(out)
}

fn actions(
    conn: &Connection,
    by: Option<GroupBy>,
    s: &Scope,
) -> anyhow::Result<Groups<ActionCoverage>> {
    // Actions carry no officer column: an officer's are those they took part in.
    let (from, key) = match by {
        Some(GroupBy::Officer) => (
            "actions a JOIN action_officers o ON o.action_key = a.action_key".to_owned(),
            "o.officer_id".to_owned(),
        ),
        _ => (
            "actions a".to_owned(),
            key_sql(by, "a.start_ms").replace("t.", "a."),
        ),
    };
    let sql = format!(
        "SELECT {key}, a.covered, COALESCE(a.cause, ''), COUNT(*) FROM {from}
         WHERE a.span_ms IS NOT NULL AND a.start_ms >= :from AND a.start_ms < :to
           AND (CAST(:unit AS TEXT) IS NULL OR a.unit_code = :unit) AND (CAST(:domain AS TEXT) IS NULL OR a.domain = :domain)
           AND (CAST(:officer AS TEXT) IS NULL OR a.action_key IN (SELECT action_key FROM action_officers WHERE officer_id = :officer))
         GROUP BY 1, 2, 3"
    );
    collect(conn, &sql, s, |g: &mut ActionCoverage, r| {
        let (covered, cause, n): (bool, String, i64) = (r.get(1)?, r.get(2)?, r.get(3)?);
        g.total += n;
        if covered {
            g.covered += n;
        } else {
            *g.uncovered_by_cause.entry(cause).or_default() += n;
        }
        Ok(())
    })
}

fn devices(conn: &Connection, by: Option<GroupBy>, s: &Scope) -> anyhow::Result<Groups<Ratio>> {
    // Heard from on a day of the window (China Standard Time).
    let days = "dd.day >= date(CAST(:from AS BIGINT) / 1000 + 28800, 'unixepoch')
                AND dd.day <= date((CAST(:to AS BIGINT) - 1) / 1000 + 28800, 'unixepoch')";
    if by == Some(GroupBy::Day) {
        let total: i64 = conn
            .prepare_cached(&format!(
                "SELECT COUNT(*) FROM devices t WHERE t.state = 'approved' AND {FILTER}"
            ))?
            .query_row(
                named_params! {":unit": s.unit_code, ":domain": s.domain, ":officer": s.officer_id},
                |r| r.get(0),
            )?;
        let sql = format!(
            "SELECT dd.day, COUNT(*) FROM device_days dd JOIN devices t ON t.device_id = dd.device_id
             WHERE t.state = 'approved' AND {days} AND {FILTER} GROUP BY dd.day"
        );
        return collect(conn, &sql, s, |g: &mut Ratio, r| {
            g.covered = r.get(1)?;
            g.total = total;
            Ok(())
        });
    }
    let key = key_sql(by, "0");
    let sql = format!(
        "SELECT {key}, COUNT(*), SUM(EXISTS (SELECT 1 FROM device_days dd WHERE dd.device_id = t.device_id AND {days}))
         FROM devices t WHERE t.state = 'approved' AND {FILTER} GROUP BY 1"
    );
    collect(conn, &sql, s, |g: &mut Ratio, r| {
        g.total = r.get(1)?;
        g.covered = r.get(2)?;
        Ok(())
    })
}

fn personnel(conn: &Connection, by: Option<GroupBy>, s: &Scope) -> anyhow::Result<Groups<Ratio>> {
    let key = key_sql(by, "t.start_ms");
    let sql = format!(
        "SELECT k, COUNT(*), SUM(heard) FROM (
             SELECT {key} AS k, t.officer_id, date(t.start_ms / 1000 + 28800, 'unixepoch') AS day,
                    MAX(CAST(t.heard_ms IS NOT NULL AS INTEGER)) AS heard
             FROM duties t WHERE t.start_ms >= :from AND t.start_ms < :to AND {FILTER}
             GROUP BY 1, 2, 3) officer_days
         GROUP BY k"
    );
    collect(conn, &sql, s, |g: &mut Ratio, r| {
        g.total = r.get(1)?;
        g.covered = r.get(2)?;
        Ok(())
    })
}

fn time(conn: &Connection, by: Option<GroupBy>, s: &Scope) -> anyhow::Result<Groups<TimeCoverage>> {
    let key = key_sql(by, "t.start_ms");
    let sql = format!(
        "SELECT {key}, COALESCE(t.cause, ''), SUM(t.recorded_ms), SUM(t.end_ms - t.start_ms), COUNT(*)
         FROM duty_hours t WHERE t.start_ms >= :from AND t.start_ms < :to AND {FILTER} GROUP BY 1, 2"
    );
    collect(conn, &sql, s, |g: &mut TimeCoverage, r| {
        let cause: String = r.get(1)?;
        g.recorded_ms += r.get::<_, i64>(2)?;
        g.on_duty_ms += r.get::<_, i64>(3)?;
        if !cause.is_empty() {
            *g.unrecorded_hours_by_cause.entry(cause).or_default() += r.get::<_, i64>(4)?;
        }
        Ok(())
    })
}

/// The SQL of a recording's upload deadline (`:hours` after the end of its
/// duty, or of itself outside a finished duty) over `recordings t`.
pub(super) const DEADLINE: &str =
    "(MAX(COALESCE(t.duty_end_ms, t.end_ms), t.end_ms) + CAST(:hours AS BIGINT) * 3600000)";

/// Timeliness of the recordings whose bytes have arrived (`arrived`), or of
/// those whose bytes have not (late once `now` is past their deadline).
fn timeliness(
    conn: &Connection,
    by: Option<GroupBy>,
    s: &Scope,
    arrived: bool,
) -> anyhow::Result<Groups<Timeliness>> {
    let key = key_sql(by, "t.end_ms");
    let which = if arrived {
        "t.arrived_ms IS NOT NULL"
    } else {
        "t.arrived_ms IS NULL"
    };
    let sql = format!(
        "SELECT {key},
                SUM(t.arrived_ms IS NOT NULL AND t.arrived_ms <= {DEADLINE}),
                SUM((t.arrived_ms IS NOT NULL AND t.arrived_ms > {DEADLINE}) OR (t.arrived_ms IS NULL AND :now > {DEADLINE}))
         FROM recordings t WHERE {which} AND t.end_ms >= :from AND t.end_ms < :to AND {FILTER} GROUP BY 1"
    );
    let hours = thresholds(conn)?.timeliness_hours;
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(named_params! {
        ":from": s.from, ":to": s.to, ":unit": s.unit_code, ":domain": s.domain,
        ":officer": s.officer_id, ":hours": hours, ":now": chrono::Utc::now().timestamp_millis(),
    })?;
    let mut out: Groups<Timeliness> = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let (on_time, late): (i64, i64) = (r.get(1)?, r.get(2)?);
        out.insert(
            r.get(0)?,
            Timeliness {
                on_time,
                late,
                total: on_time + late,
            },
        );
    }
    Ok(out)
}

/// The SQL of a record's group key over `records t`.
fn record_key(by: Option<GroupBy>) -> String {
    match by {
        Some(GroupBy::Day) => "date(t.occurred_at, '+8 hours')".to_owned(),
        other => key_sql(other, "0"),
    }
}

/// Runs a `SELECT key, count` over records or alerts in the scope (its
/// window as stamps `:fs`, `:ts`).
fn counts(conn: &Connection, sql: &str, s: &Scope) -> anyhow::Result<Vec<(Option<String>, i64)>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt
        .query_map(
            named_params! {
                ":fs": stamp_ms(s.from), ":ts": stamp_ms(s.to), ":unit": s.unit_code,
                ":domain": s.domain, ":officer": s.officer_id,
            },
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Records that occurred in the scope.
fn records(conn: &Connection, by: Option<GroupBy>, s: &Scope) -> anyhow::Result<Groups<i64>> {
    let key = record_key(by);
    Ok(counts(
        conn,
        &format!(
            "SELECT {key}, COUNT(*) FROM records t
             WHERE t.occurred_at >= :fs AND t.occurred_at < :ts AND {FILTER} GROUP BY 1"
        ),
        s,
    )?
    .into_iter()
    .collect())
}

/// Integrity's flaws in the scope: records a chain break or a conflicting
/// record names (each once; `intact` is minus them), and open gaps.
fn flaws(conn: &Connection, by: Option<GroupBy>, s: &Scope) -> anyhow::Result<Groups<Integrity>> {
    let rkey = record_key(by);
    let mut out: Groups<Integrity> = BTreeMap::new();
    for (k, n) in counts(
        conn,
        &format!(
            "SELECT {rkey}, COUNT(*) FROM records t WHERE t.hub_seq IN (
                 SELECT r.hub_seq FROM alerts a JOIN records r ON r.device_id = a.device_id AND r.agent_id = a.agent_id
                 AND r.seq BETWEEN a.seq_from AND a.seq_to WHERE a.kind IN ('chain_break', 'seq_conflict'))
             AND t.occurred_at >= :fs AND t.occurred_at < :ts AND {FILTER} GROUP BY 1"
        ),
        s,
    )? {
        out.entry(k).or_default().intact = -n;
    }
    let akey = match by {
        Some(GroupBy::Day) => "date(a.raised_at, '+8 hours')".to_owned(),
        other => key_sql(other, "0"),
    };
    for (k, n) in counts(
        conn,
        &format!(
            "SELECT {akey}, COUNT(*) FROM alerts a LEFT JOIN devices t ON t.device_id = a.device_id
             WHERE a.kind IN ('sequence_gap', 'file_index_gap', 'recorder_files_missing') AND a.resolved_at IS NULL
               AND a.raised_at >= :fs AND a.raised_at < :ts AND {FILTER} GROUP BY 1"
        ),
        s,
    )? {
        out.entry(k).or_default().gaps = n;
    }
    Ok(out)
}

/// Spatial coverage: for each group, the cells its actions started in, and
/// of them those holding a recording of the same group in the window (the
/// same day, by day). Actions are read by time; each cell is looked up in
/// the recordings by cell (`geo_points_by_cell*`).
fn spatial(conn: &Connection, by: Option<GroupBy>, s: &Scope) -> anyhow::Result<Groups<Ratio>> {
    let key = key_sql(by, "t.at_ms");
    // The planner, seeing a range on time, would rather walk the window's
    // points by time for each cell: the index by cell is named.
    let (same, index) = match by {
        Some(GroupBy::Unit) => (
            "r.unit_code IS NOT DISTINCT FROM g.k",
            "geo_points_by_cell_unit",
        ),
        Some(GroupBy::Domain) => (
            "r.domain IS NOT DISTINCT FROM g.k",
            "geo_points_by_cell_domain",
        ),
        Some(GroupBy::Officer) => (
            "r.officer_id IS NOT DISTINCT FROM g.k",
            "geo_points_by_cell_officer",
        ),
        Some(GroupBy::Day) | None => ("TRUE", "geo_points_by_cell"),
    };
    let (lo, hi) = match by {
        Some(GroupBy::Day) => (
            "MAX(:from, (CAST(strftime('%s', k) AS BIGINT) - 28800) * 1000)",
            "MIN(:to, (CAST(strftime('%s', k) AS BIGINT) - 28800) * 1000 + 86400000)",
        ),
        _ => (":from", ":to"),
    };
    let on_r = FILTER.replace("t.", "r.");
    let index = conn.dialect().indexed_by(index);
    let sql = format!(
        "SELECT g.k, COUNT(*), SUM(EXISTS (
             SELECT 1 FROM geo_points r {index} WHERE r.kind = 'recording' AND r.cell = g.cell
               AND r.at_ms >= g.lo AND r.at_ms < g.hi AND {same} AND {on_r}))
         FROM (SELECT k, cell, {lo} AS lo, {hi} AS hi FROM (
                 SELECT DISTINCT {key} AS k, t.cell FROM geo_points t
                 WHERE t.kind = 'action' AND t.at_ms >= :from AND t.at_ms < :to AND {FILTER}) a) g
         GROUP BY g.k"
    );
    collect(conn, &sql, s, |g: &mut Ratio, r| {
        g.total = r.get(1)?;
        g.covered = r.get(2)?;
        Ok(())
    })
}

/// The scope narrowed to `[from, to)`.
fn within(s: &Scope, (from, to): (i64, i64)) -> Scope {
    Scope {
        from,
        to,
        ..s.clone()
    }
}

/// Adds what one part of a group's figures counted.
fn add_time(f: &mut Figures, t: &TimeCoverage) {
    f.time.recorded_ms += t.recorded_ms;
    f.time.on_duty_ms += t.on_duty_ms;
    for (cause, n) in &t.unrecorded_hours_by_cause {
        *f.time
            .unrecorded_hours_by_cause
            .entry(cause.clone())
            .or_default() += n;
    }
}

fn add_timeliness(f: &mut Figures, t: Timeliness) {
    f.timeliness.on_time += t.on_time;
    f.timeliness.late += t.late;
    f.timeliness.total += t.total;
}

fn add_integrity(f: &mut Figures, i: Integrity) {
    f.integrity.intact += i.intact;
    f.integrity.total += i.total;
    f.integrity.gaps += i.gaps;
}

fn add_personnel(f: &mut Figures, p: Ratio) {
    f.personnel.covered += p.covered;
    f.personnel.total += p.total;
}

/// Adds what one part of the window counted of a group's actions.
fn add_actions(f: &mut Figures, a: &ActionCoverage) {
    f.actions.covered += a.covered;
    f.actions.total += a.total;
    for (cause, n) in &a.uncovered_by_cause {
        *f.actions
            .uncovered_by_cause
            .entry(cause.clone())
            .or_default() += n;
    }
}

/// Every figure over `s`, for the whole and by `by`.
///
/// Counted directly over the window, for the whole and for the groups:
/// what one thing may put in two groups over several days (a device heard
/// on two days, a cell). Personnel, time, timeliness, integrity and actions
/// come from the day sums for whole fresh days and from the rows for the
/// rest ([`coverage_days::plan`]): a question without filters reads each
/// day's rolled-up groups ([`coverage_groups`]), one with a filter the day
/// sums per unit, domain and officer and its actions from the rows (few).
/// An action is in one unit, one domain and one day, so by those the
/// whole's actions counted from rows are the groups' sum; by officer (an
/// action of two officers is in both) they are counted for the whole too.
fn all_figures(
    conn: &Connection,
    by: GroupBy,
    s: &Scope,
) -> anyhow::Result<(Figures, HashMap<Option<String>, Figures>)> {
    let filtered = s.unit_code.is_some() || s.domain.is_some() || s.officer_id.is_some();
    let plan = coverage_days::plan(conn, s.from, s.to)?;
    let action_parts: Vec<Scope> = if filtered {
        vec![s.clone()]
    } else {
        plan.raw.iter().map(|&span| within(s, span)).collect()
    };
    let mut all = Figures::default();
    let mut groups: HashMap<Option<String>, Figures> = HashMap::new();
    let actions_shared = by == GroupBy::Officer;
    for b in [None, Some(by)] {
        let mut direct: Groups<Figures> = BTreeMap::new();
        if b.is_some() || actions_shared {
            for part in &action_parts {
                for (k, v) in actions(conn, b, part)? {
                    add_actions(direct.entry(k).or_default(), &v);
                }
            }
        }
        for (k, v) in devices(conn, b, s)? {
            direct.entry(k).or_default().devices = v;
        }
        for (k, v) in spatial(conn, b, s)? {
            direct.entry(k).or_default().spatial = v;
        }
        match b {
            None => all = direct.remove(&None).unwrap_or_default(),
            Some(_) => groups.extend(direct),
        }
    }
    if !actions_shared {
        for g in groups.values() {
            add_actions(&mut all, &g.actions);
        }
    }
    if filtered {
        coverage_days::add_sums(conn, by, s, &plan, &mut all, &mut groups)?;
    } else {
        coverage_groups::add_groups(conn, by, &plan, &mut all, &mut groups)?;
    }
    for &span in &plan.raw {
        let part = within(s, span);
        if let Some(p) = personnel(conn, None, &part)?.remove(&None) {
            add_personnel(&mut all, p);
        }
        for (k, p) in personnel(conn, Some(by), &part)? {
            add_personnel(groups.entry(k).or_default(), p);
        }
        for (k, t) in time(conn, Some(by), &part)? {
            add_time(&mut all, &t);
            add_time(groups.entry(k).or_default(), &t);
        }
        for (k, t) in timeliness(conn, Some(by), &part, true)? {
            add_timeliness(&mut all, t);
            add_timeliness(groups.entry(k).or_default(), t);
        }
        for (k, n) in records(conn, Some(by), &part)? {
            let i = Integrity {
                intact: n,
                total: n,
                gaps: 0,
            };
            add_integrity(&mut all, i);
            add_integrity(groups.entry(k).or_default(), i);
        }
    }
    for (k, t) in timeliness(conn, Some(by), s, false)? {
        add_timeliness(&mut all, t);
        add_timeliness(groups.entry(k).or_default(), t);
    }
    for (k, i) in flaws(conn, Some(by), s)? {
        add_integrity(&mut all, i);
        add_integrity(groups.entry(k).or_default(), i);
    }
    Ok((all, groups))
}
/// A group's key (null when what is counted carries none) and its figures.
pub type Group = (Option<String>, Figures);

/// An action with its cached verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JudgedAction {
    /// `<device>/<action_id>`, or `import/<id>` for an imported one.
    pub key: String,
    /// The action id of its events, or the import's id.
    pub action_id: String,
    /// The device whose events made it (`import` for an imported one).
    pub device_id: String,
    /// Its officers.
    pub officers: Vec<String>,
    /// Unit, as on its start event.
    pub unit_code: Option<String>,
    /// Enforcement domain.
    pub domain: Option<String>,
    /// Case number, if any.
    pub case_number: Option<String>,
    /// Where, as imported.
    pub place: Option<String>,
    /// Start, milliseconds.
    pub start_ms: i64,
    /// End, milliseconds.
    pub end_ms: i64,
    /// Length, milliseconds.
    pub span_ms: i64,
    /// Milliseconds covered by its officers' arrived recordings.
    pub covered_ms: i64,
    /// Whether that reaches the share.
    pub covered: bool,
    /// Why not (`clock_problem`, `no_recorder_assigned`, ...).
    pub cause: Option<String>,
}

/// An officer's day on duty (personnel coverage's unit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfficerDay {
    /// Officer number.
    pub officer_id: String,
    /// Name, when the officer is known to the hub.
    pub name: Option<String>,
    /// Unit of the duty.
    pub unit_code: Option<String>,
    /// The day (China Standard Time).
    pub day: String,
    /// Milliseconds on duty that day (finished duties).
    pub on_duty_ms: i64,
    /// Of which covered by their arrived recordings.
    pub recorded_ms: i64,
    /// Whether a recorder of theirs was heard from on duty that day.
    pub working: bool,
    /// The devices assigned to them during it.
    pub devices: Vec<String>,
}

/// A recording whose bytes missed their deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LateUpload {
    /// The media record.
    pub record_id: String,
    /// The recorder.
    pub device_id: String,
    /// Its officer.
    pub officer_id: Option<String>,
    /// Its unit.
    pub unit_code: Option<String>,
    /// When it ended (real time, ms).
    pub end_ms: i64,
    /// Its deadline (ms).
    pub deadline_ms: i64,
    /// When its bytes arrived, if they have.
    pub arrived_ms: Option<i64>,
}

/// A duty hour with what covers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DutyHour {
    /// Officer number.
    pub officer_id: String,
    /// Unit of the duty.
    pub unit_code: Option<String>,
    /// Start (ms).
    pub start_ms: i64,
    /// End (ms).
    pub end_ms: i64,
    /// Milliseconds covered by their arrived recordings.
    pub recorded_ms: i64,
    /// Why nothing was, when nothing was.
    pub cause: Option<String>,
}

/// A geohash cell with the actions and recordings placed in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// Geohash (6 characters).
    pub cell: String,
    /// Actions that started in it.
    pub actions: i64,
    /// Recordings made in it.
    pub recordings: i64,
}

/// At most this many rows per drill-down answer.
pub const MAX_ROWS: u32 = 10_000;

impl super::Store {
    /// Every figure over `scope`, for the whole scope and by `by`.
    pub fn figures(&self, by: GroupBy, scope: &Scope) -> anyhow::Result<(Figures, Vec<Group>)> {
        // One read transaction: the sums, the stale days and the rows all as of one moment.
        let tx = self.conn().read_transaction()?;
        let (all, groups) = all_figures(&tx, by, scope)?;
        tx.finish()?;
        let mut groups: Vec<Group> = groups.into_iter().collect();
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        Ok((all, groups))
    }

    /// Judged actions of `scope` (by start), oldest first; only covered or
    /// uncovered ones, or of one cause, when asked; at most `limit`.
    pub fn judged_actions(
        &self,
        scope: &Scope,
        covered: Option<bool>,
        cause: Option<&str>,
        limit: u32,
    ) -> anyhow::Result<Vec<JudgedAction>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT t.action_key, t.action_id, t.device_id, t.unit_code, t.domain, t.case_number, t.place,
                    t.start_ms, t.end_ms, t.span_ms, t.covered_ms, t.covered, t.cause,
                    (SELECT group_concat(officer_id, ' ') FROM action_officers o WHERE o.action_key = t.action_key)
             FROM actions t WHERE t.span_ms IS NOT NULL AND t.start_ms >= :from AND t.start_ms < :to
               AND (CAST(:unit AS TEXT) IS NULL OR t.unit_code = :unit) AND (CAST(:domain AS TEXT) IS NULL OR t.domain = :domain)
               AND (CAST(:officer AS TEXT) IS NULL OR t.action_key IN (SELECT action_key FROM action_officers WHERE officer_id = :officer))
               AND (CAST(:covered AS BIGINT) IS NULL OR t.covered = :covered) AND (CAST(:cause AS TEXT) IS NULL OR t.cause = :cause)
             ORDER BY t.start_ms LIMIT :limit",
        )?;
        let rows = stmt
            .query_map(
                named_params! {
                    ":from": scope.from, ":to": scope.to, ":unit": scope.unit_code,
                    ":domain": scope.domain, ":officer": scope.officer_id,
                    ":covered": covered, ":cause": cause, ":limit": limit,
                },
                |r| {
                    let officers: Option<String> = r.get(13)?;
                    let mut officers: Vec<String> = officers
                        .unwrap_or_default()
                        .split(' ')
                        .filter(|o| !o.is_empty())
                        .map(str::to_owned)
                        .collect();
                    officers.sort();
                    Ok(JudgedAction {
                        key: r.get(0)?,
                        action_id: r.get(1)?,
                        device_id: r.get(2)?,
                        officers,
                        unit_code: r.get(3)?,
                        domain: r.get(4)?,
                        case_number: r.get(5)?,
                        place: r.get(6)?,
                        start_ms: r.get(7)?,
                        end_ms: r.get(8)?,
                        span_ms: r.get(9)?,
                        covered_ms: r.get(10)?,
                        covered: r.get(11)?,
                        cause: r.get::<_, Option<String>>(12)?.filter(|c| !c.is_empty()),
                    })
                },
            )?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Officer-days on duty in `scope` (by duty start), with whether a
    /// recorder of theirs was heard from; only those without (or with) one
    /// when asked.
    pub fn officer_days(
        &self,
        scope: &Scope,
        working: Option<bool>,
        limit: u32,
    ) -> anyhow::Result<Vec<OfficerDay>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT t.officer_id, MAX(t.unit_code), date(t.start_ms / 1000 + 28800, 'unixepoch') AS day,
                    MAX(CAST(t.heard_ms IS NOT NULL AS INTEGER)) AS working,
                    (SELECT name FROM officers o WHERE o.officer_id = t.officer_id),
                    MIN(t.start_ms), MAX(COALESCE(t.end_ms, t.start_ms)),
                    SUM(COALESCE(t.end_ms - t.start_ms, 0)),
                    (SELECT COALESCE(SUM(h.recorded_ms), 0) FROM duty_hours h WHERE h.officer_id = t.officer_id
                       AND h.start_ms >= MIN(t.start_ms) AND h.start_ms < MAX(COALESCE(t.end_ms, t.start_ms)))
             FROM duties t WHERE t.start_ms >= :from AND t.start_ms < :to
               AND (CAST(:unit AS TEXT) IS NULL OR t.unit_code = :unit) AND (CAST(:domain AS TEXT) IS NULL OR t.domain = :domain)
               AND (CAST(:officer AS TEXT) IS NULL OR t.officer_id = :officer)
             GROUP BY t.officer_id, day
             HAVING (CAST(:working AS BIGINT) IS NULL OR MAX(CAST(t.heard_ms IS NOT NULL AS INTEGER)) = :working)
             ORDER BY day, t.officer_id LIMIT :limit",
        )?;
        let rows: Vec<(OfficerDay, i64, i64)> = stmt
            .query_map(
                named_params! {
                    ":from": scope.from, ":to": scope.to, ":unit": scope.unit_code,
                    ":domain": scope.domain, ":officer": scope.officer_id,
                    ":working": working, ":limit": limit,
                },
                |r| {
                    Ok((
                        OfficerDay {
                            officer_id: r.get(0)?,
                            unit_code: r.get(1)?,
                            day: r.get(2)?,
                            working: r.get(3)?,
                            name: r.get(4)?,
                            on_duty_ms: r.get(7)?,
                            recorded_ms: r.get(8)?,
                            devices: Vec::new(),
                        },
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )?
            .collect::<Result<_, _>>()?;
        let mut devices = conn.prepare_cached(
            "SELECT DISTINCT device_id FROM assignments WHERE officer_id = ?1
             AND from_at < ?3 AND (to_at IS NULL OR to_at > ?2) ORDER BY device_id",
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for (mut day, start, end) in rows {
            day.devices = devices
                .query_map(
                    super::db::params![
                        day.officer_id,
                        stamp_ms(start),
                        stamp_ms(end.max(start + 1))
                    ],
                    |r| r.get(0),
                )?
                .collect::<Result<_, _>>()?;
            out.push(day);
        }
        Ok(out)
    }

    /// Recordings of `scope` (by end) whose bytes arrived after their
    /// deadline, or have not by it.
    pub fn late_uploads(&self, scope: &Scope, limit: u32) -> anyhow::Result<Vec<LateUpload>> {
        let conn = self.conn();
        let hours = thresholds(conn)?.timeliness_hours;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT t.record_id, t.device_id, t.officer_id, t.unit_code, t.end_ms, {DEADLINE}, t.arrived_ms
             FROM recordings t WHERE t.end_ms >= :from AND t.end_ms < :to AND {FILTER}
               AND ((t.arrived_ms IS NOT NULL AND t.arrived_ms > {DEADLINE}) OR (t.arrived_ms IS NULL AND :now > {DEADLINE}))
             ORDER BY t.end_ms LIMIT :limit"
        ))?;
        let rows = stmt
            .query_map(
                named_params! {
                    ":from": scope.from, ":to": scope.to, ":unit": scope.unit_code,
                    ":domain": scope.domain, ":officer": scope.officer_id, ":hours": hours,
                    ":now": chrono::Utc::now().timestamp_millis(), ":limit": limit,
                },
                |r| {
                    Ok(LateUpload {
                        record_id: r.get(0)?,
                        device_id: r.get(1)?,
                        officer_id: r.get(2)?,
                        unit_code: r.get(3)?,
                        end_ms: r.get(4)?,
                        deadline_ms: r.get(5)?,
                        arrived_ms: r.get(6)?,
                    })
                },
            )?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Duty hours of `scope`; only those with (or without) any recording when asked.
    pub fn duty_hours(
        &self,
        scope: &Scope,
        recorded: Option<bool>,
        limit: u32,
    ) -> anyhow::Result<Vec<DutyHour>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT t.officer_id, t.unit_code, t.start_ms, t.end_ms, t.recorded_ms, t.cause
             FROM duty_hours t WHERE t.start_ms >= :from AND t.start_ms < :to AND {FILTER}
               AND (CAST(:recorded AS BIGINT) IS NULL OR CAST(t.recorded_ms > 0 AS INTEGER) = :recorded)
             ORDER BY t.start_ms, t.officer_id LIMIT :limit"
        ))?;
        let rows = stmt
            .query_map(
                named_params! {
                    ":from": scope.from, ":to": scope.to, ":unit": scope.unit_code,
                    ":domain": scope.domain, ":officer": scope.officer_id,
                    ":recorded": recorded, ":limit": limit,
                },
                |r| {
                    Ok(DutyHour {
                        officer_id: r.get(0)?,
                        unit_code: r.get(1)?,
                        start_ms: r.get(2)?,
                        end_ms: r.get(3)?,
                        recorded_ms: r.get(4)?,
                        cause: r.get(5)?,
                    })
                },
            )?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Geohash cells of `scope` with the actions and recordings placed in
    /// them, those with the most actions and fewest recordings first.
    pub fn cells(&self, scope: &Scope, limit: u32) -> anyhow::Result<Vec<Cell>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT t.cell, SUM(t.kind = 'action'), SUM(t.kind = 'recording')
             FROM geo_points t WHERE t.kind IN ('action', 'recording') AND t.at_ms >= :from AND t.at_ms < :to AND {FILTER}
             GROUP BY t.cell ORDER BY SUM(t.kind = 'recording') > 0, 2 DESC, t.cell LIMIT :limit"
        ))?;
        let rows = stmt
            .query_map(
                named_params! {
                    ":from": scope.from, ":to": scope.to, ":unit": scope.unit_code,
                    ":domain": scope.domain, ":officer": scope.officer_id, ":limit": limit,
                },
                |r| {
                    Ok(Cell {
                        cell: r.get(0)?,
                        actions: r.get(1)?,
                        recordings: r.get(2)?,
                    })
                },
            )?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

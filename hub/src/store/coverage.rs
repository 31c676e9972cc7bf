//! Coverage bookkeeping kept at ingest (issue 6): each recording as a span
//! of real time, each enforcement action from its started/ended events, and
//! each action's verdict ([`crate::coverage::action::judge`]) cached and
//! judged again whenever something that may change it arrives: its end, a
//! recording of one of its officers, or that recording's bytes. Figures
//! grouped by unit, domain, officer or day are then plain aggregates.

use std::collections::BTreeSet;

use evsync_protocol::record::{Event, RecordBody};
use rusqlite::{params, OptionalExtension, Transaction};

use super::now;
use crate::coverage::action::{judge, Action, Assignment, Evidence, Policy, Recording, Verdict};
use crate::coverage::span::Span;

/// Recordings longer than this are taken as this long (a recorder's clock
/// or header gone wrong), so that overlap queries stay index ranges.
pub const MAX_RECORDING_MS: i64 = 24 * 3_600_000;

fn ms(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

fn parse_ms(stamp: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(stamp)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Notes a media record's recording (not a re-copy of one already held).
pub(crate) fn recorded(tx: &Transaction<'_>, body: &RecordBody) -> anyhow::Result<()> {
    let Some(m) = &body.media else {
        return Ok(());
    };
    let device_start = ms(m.started_at.unwrap_or(body.device_time));
    let length = m
        .duration_ms
        .map_or(0, |d| i64::try_from(d).unwrap_or(i64::MAX))
        .min(MAX_RECORDING_MS);
    let raw = Span::new(device_start, device_start.saturating_add(length));
    let real = raw.shifted(body.clock_offset_ms);
    tx.prepare_cached(
        "INSERT INTO recordings (record_id, device_id, officer_id, unit_code, start_ms, end_ms,
                                 device_start_ms, device_end_ms, clock_offset_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (record_id) DO NOTHING",
    )?
    .execute(params![
        body.id.to_string(),
        body.device_id,
        body.officer_id,
        body.unit_code,
        real.start,
        real.end,
        raw.start,
        raw.end,
        body.clock_offset_ms
    ])?;
    rejudge_touching(tx, body.officer_id.as_deref(), &body.device_id, real, raw)
}

/// Notes an action's start or end from its event, and judges it once both are known.
pub(crate) fn action_event(tx: &Transaction<'_>, body: &RecordBody) -> anyhow::Result<()> {
    let at = ms(body.device_time) - body.clock_offset_ms;
    let (action_id, start, end, domain, case) = match &body.event {
        Some(Event::ActionStarted {
            action_id,
            case_number,
            domain,
            ..
        }) => (action_id, Some(at), None, Some(domain), case_number),
        Some(Event::ActionEnded {
            action_id,
            case_number,
        }) => (action_id, None, Some(at), None, case_number),
        _ => return Ok(()),
    };
    let key = format!("{}/{action_id}", body.device_id);
    tx.prepare_cached(
        "INSERT INTO actions (action_key, action_id, device_id, unit_code, domain, case_number, start_ms, end_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (action_key) DO UPDATE SET
             unit_code = COALESCE(unit_code, excluded.unit_code),
             domain = COALESCE(excluded.domain, domain),
             case_number = COALESCE(case_number, excluded.case_number),
             start_ms = COALESCE(excluded.start_ms, start_ms),
             end_ms = COALESCE(excluded.end_ms, end_ms)",
    )?
    .execute(params![key, action_id, body.device_id, body.unit_code, domain, case, start, end])?;
    if let Some(officer) = &body.officer_id {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO action_officers (officer_id, action_key) VALUES (?1, ?2)",
        )?
        .execute(params![officer, key])?;
    }
    judge_action(tx, &key)
}

/// Judges again the actions the recordings of these media records touch
/// (their bytes have just arrived).
pub(crate) fn arrived(tx: &Transaction<'_>, record_ids: &[String]) -> anyhow::Result<()> {
    for id in record_ids {
        let row: Option<(String, Option<String>, i64, i64, i64, i64)> = tx
            .prepare_cached(
                "SELECT device_id, officer_id, start_ms, end_ms, device_start_ms, device_end_ms
                 FROM recordings WHERE record_id = ?1",
            )?
            .query_row([id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .optional()?;
        if let Some((device, officer, s, e, ds, de)) = row {
            rejudge_touching(
                tx,
                officer.as_deref(),
                &device,
                Span::new(s, e),
                Span::new(ds, de),
            )?;
        }
    }
    Ok(())
}

/// Judges again every action a recording may bear on: those of its officer,
/// and those of whoever had its device, overlapping its real or raw span.
fn rejudge_touching(
    tx: &Transaction<'_>,
    officer: Option<&str>,
    device: &str,
    real: Span,
    raw: Span,
) -> anyhow::Result<()> {
    let from = real.start.min(raw.start);
    let to = real.end.max(raw.end).max(from + 1);
    let mut officers: BTreeSet<String> = officer.map(str::to_owned).into_iter().collect();
    let holders: Vec<String> = tx
        .prepare_cached(
            "SELECT DISTINCT officer_id FROM assignments WHERE device_id = ?1 AND officer_id IS NOT NULL",
        )?
        .query_map([device], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    officers.extend(holders);
    let mut keys = BTreeSet::new();
    let mut stmt = tx.prepare_cached(
        "SELECT a.action_key FROM action_officers o JOIN actions a ON a.action_key = o.action_key
         WHERE o.officer_id = ?1 AND a.start_ms < ?3 AND a.end_ms >= ?2",
    )?;
    for o in &officers {
        for k in stmt.query_map(params![o, from, to], |r| r.get::<_, String>(0))? {
            keys.insert(k?);
        }
    }
    for k in keys {
        judge_action(tx, &k)?;
    }
    Ok(())
}

/// Judges one action (once both its ends are known) and caches the verdict.
fn judge_action(tx: &Transaction<'_>, key: &str) -> anyhow::Result<()> {
    let ends: Option<(Option<i64>, Option<i64>)> = tx
        .prepare_cached("SELECT start_ms, end_ms FROM actions WHERE action_key = ?1")?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((Some(start), Some(end))) = ends else {
        return Ok(());
    };
    let officers: Vec<String> = tx
        .prepare_cached("SELECT officer_id FROM action_officers WHERE action_key = ?1")?
        .query_map([key], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let action = Action {
        id: key.to_owned(),
        officers,
        span: Span::new(start, end),
    };
    let assignments = assignments_of(tx, &action.officers)?;
    let recordings = recordings_near(tx, &action, &assignments)?;
    let v = judge(
        &action,
        Evidence {
            recordings: &recordings,
            assignments: &assignments,
            events: &[],
        },
        Policy::default(),
    );
    store_verdict(tx, key, &v)
}

fn store_verdict(tx: &Transaction<'_>, key: &str, v: &Verdict) -> anyhow::Result<()> {
    let cause = v
        .cause
        .map(|c| {
            serde_json::to_value(c)
                .ok()
                .and_then(|s| s.as_str().map(str::to_owned))
        })
        .unwrap_or_default();
    tx.prepare_cached(
        "UPDATE actions SET span_ms = ?2, covered_ms = ?3, covered = ?4, cause = ?5, judged_at = ?6
         WHERE action_key = ?1",
    )?
    .execute(params![
        key,
        v.span_ms,
        v.covered_ms,
        v.covered,
        cause,
        now()
    ])?;
    Ok(())
}

fn assignments_of(tx: &Transaction<'_>, officers: &[String]) -> anyhow::Result<Vec<Assignment>> {
    let mut out = Vec::new();
    let mut stmt = tx.prepare_cached(
        "SELECT device_id, officer_id, from_at, to_at FROM assignments WHERE officer_id = ?1",
    )?;
    for o in officers {
        let rows = stmt.query_map([o], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        for row in rows {
            let (device_id, officer_id, from, to) = row?;
            let Some(start) = parse_ms(&from) else {
                continue;
            };
            let end = to.as_deref().and_then(parse_ms).unwrap_or(i64::MAX);
            out.push(Assignment {
                device_id,
                officer_id,
                span: Span::new(start, end),
            });
        }
    }
    Ok(out)
}

/// The recordings that may bear on `action`: its officers' (by real or raw
/// time), and those of the devices assigned to them (by real time).
fn recordings_near(
    tx: &Transaction<'_>,
    action: &Action,
    assignments: &[Assignment],
) -> anyhow::Result<Vec<Recording>> {
    const COLUMNS: &str =
        "r.record_id, r.device_id, r.officer_id, r.device_start_ms, r.device_end_ms,
        r.clock_offset_ms, COALESCE(m.state = 'stored', 0)";
    let read = |r: &rusqlite::Row<'_>| {
        Ok(Recording {
            record_id: r.get(0)?,
            device_id: r.get(1)?,
            officer_id: r.get(2)?,
            device_span: Span::new(r.get(3)?, r.get(4)?),
            clock_offset_ms: r.get(5)?,
            arrived: r.get(6)?,
        })
    };
    let (s, e) = (
        action.span.start,
        action.span.end.max(action.span.start + 1),
    );
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut keep = |rec: Recording| {
        if seen.insert(rec.record_id.clone()) {
            out.push(rec);
        }
    };
    let mut by_officer = tx.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM recordings r LEFT JOIN media m ON m.record_id = r.record_id
         WHERE r.officer_id = ?1 AND ((r.start_ms < ?3 AND r.start_ms > ?2 - {MAX_RECORDING_MS} AND r.end_ms > ?2)
            OR (r.device_start_ms < ?3 AND r.device_start_ms > ?2 - {MAX_RECORDING_MS} AND r.device_end_ms > ?2))"
    ))?;
    for o in &action.officers {
        for rec in by_officer.query_map(params![o, s, e], read)? {
            keep(rec?);
        }
    }
    let mut by_device = tx.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM recordings r LEFT JOIN media m ON m.record_id = r.record_id
         WHERE r.device_id = ?1 AND r.start_ms < ?3 AND r.start_ms > ?2 - {MAX_RECORDING_MS} AND r.end_ms > ?2"
    ))?;
    let devices: BTreeSet<&str> = assignments
        .iter()
        .filter(|a| a.span.overlaps(Span::new(s, e)))
        .map(|a| a.device_id.as_str())
        .collect();
    for d in devices {
        for rec in by_device.query_map(params![d, s, e], read)? {
            keep(rec?);
        }
    }
    Ok(out)
}

/// Fills in recordings and actions for the records a store held before
/// schema 5, in hub order (as ingest would have).
pub(crate) fn backfill(tx: &Transaction<'_>) -> anyhow::Result<()> {
    let mut stmt = tx.prepare(
        "SELECT r.body, m.recopy_of IS NOT NULL FROM records r LEFT JOIN media m ON m.record_id = r.id
         WHERE r.kind = 'media' OR r.case_number IS NOT NULL OR r.body LIKE '%\"action_%'
         ORDER BY r.hub_seq",
    )?;
    let rows: Vec<(Vec<u8>, bool)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (bytes, recopy) in rows {
        let Ok(body) = RecordBody::parse(&bytes) else {
            continue; // verified when stored; one that no longer parses is reported by the feed
        };
        if body.media.is_some() {
            if !recopy {
                recorded(tx, &body)?;
            }
        } else {
            action_event(tx, &body)?;
        }
    }
    Ok(())
}

impl super::Store {
    /// Judged actions that start in `[from, to)` (milliseconds), oldest first.
    pub fn judged_actions(&self, from: i64, to: i64) -> anyhow::Result<Vec<JudgedAction>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT action_key, action_id, device_id, unit_code, domain, case_number, start_ms, end_ms,
                    span_ms, covered_ms, covered, cause
             FROM actions WHERE span_ms IS NOT NULL AND start_ms >= ?1 AND start_ms < ?2 ORDER BY start_ms",
        )?;
        let rows = stmt
            .query_map(params![from, to], |r| {
                Ok(JudgedAction {
                    key: r.get(0)?,
                    action_id: r.get(1)?,
                    device_id: r.get(2)?,
                    unit_code: r.get(3)?,
                    domain: r.get(4)?,
                    case_number: r.get(5)?,
                    start_ms: r.get(6)?,
                    end_ms: r.get(7)?,
                    span_ms: r.get(8)?,
                    covered_ms: r.get(9)?,
                    covered: r.get(10)?,
                    cause: r.get::<_, Option<String>>(11)?.filter(|c| !c.is_empty()),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

/// An action with its cached verdict.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JudgedAction {
    /// `<device>/<action_id>`.
    pub key: String,
    /// The action id of its events.
    pub action_id: String,
    /// The device whose events made it.
    pub device_id: String,
    /// Unit, as on its start event.
    pub unit_code: Option<String>,
    /// Enforcement domain.
    pub domain: Option<String>,
    /// Case number, if any.
    pub case_number: Option<String>,
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

/// What coverage figures are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// The unit on the action's start event.
    Unit,
    /// The action's enforcement domain.
    Domain,
    /// Each of the action's officers (an action of two officers counts for both).
    Officer,
    /// The day it started, China Standard Time (UTC+8).
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

    fn key_sql(self) -> &'static str {
        match self {
            Self::Unit => "a.unit_code",
            Self::Domain => "a.domain",
            Self::Officer => "o.officer_id",
            Self::Day => "date(a.start_ms / 1000 + 8 * 3600, 'unixepoch')",
        }
    }
}

/// Action coverage of one group: numerator, denominator and the causes of
/// the uncovered ones.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ActionCoverage {
    /// The group (a unit code, domain, officer number or date); null when
    /// the actions carry none.
    pub key: Option<String>,
    /// Covered actions.
    pub covered: i64,
    /// All judged actions.
    pub total: i64,
    /// Uncovered actions by cause.
    pub causes: std::collections::BTreeMap<String, i64>,
}

impl super::Store {
    /// Action coverage of the actions starting in `[from, to)` (milliseconds), by group.
    pub fn action_coverage(
        &self,
        by: GroupBy,
        from: i64,
        to: i64,
    ) -> anyhow::Result<Vec<ActionCoverage>> {
        let key = by.key_sql();
        let join = match by {
            GroupBy::Officer => "JOIN action_officers o ON o.action_key = a.action_key",
            _ => "",
        };
        let mut stmt = self.conn().prepare(&format!(
            "SELECT {key} AS k, a.covered, COALESCE(a.cause, ''), COUNT(*) FROM actions a {join}
             WHERE a.span_ms IS NOT NULL AND a.start_ms >= ?1 AND a.start_ms < ?2
             GROUP BY k, a.covered, a.cause ORDER BY k"
        ))?;
        let mut groups: Vec<ActionCoverage> = Vec::new();
        let rows = stmt.query_map(params![from, to], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        for row in rows {
            let (k, covered, cause, n) = row?;
            if groups.last().is_none_or(|g| g.key != k) {
                groups.push(ActionCoverage {
                    key: k,
                    covered: 0,
                    total: 0,
                    causes: Default::default(),
                });
            }
            if let Some(g) = groups.last_mut() {
                g.total += n;
                if covered {
                    g.covered += n;
                } else {
                    *g.causes.entry(cause).or_default() += n;
                }
            }
        }
        Ok(groups)
    }
}

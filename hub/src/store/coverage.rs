//! Coverage bookkeeping kept at ingest (issue 6): each recording as a span
//! of real time, each enforcement action from its started/ended events, and
//! each action's verdict ([`crate::coverage::action::judge`]) cached and
//! judged again whenever something that may change it arrives: its end, a
//! recording of one of its officers, or that recording's bytes. Figures
//! grouped by unit, domain, officer or day are then plain aggregates.

use std::collections::BTreeSet;

use super::db::{params, Connection, OptionalExtension, Transaction};
use evsync_protocol::record::{Event, RecordBody};

use super::alerts::{raise_about, About, AlertKind};
use super::now;
use crate::coverage::action::{
    judge, Action, Assignment, Evidence, Policy, Recording, RecordingEvent, Verdict,
};
use crate::coverage::geohash;
use crate::coverage::span::Span;

/// Recordings longer than this are taken as this long (a recorder's clock
/// or header gone wrong), so that overlap queries stay index ranges.
pub const MAX_RECORDING_MS: i64 = 24 * 3_600_000;

pub(super) fn ms(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn parse_ms(stamp: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(stamp)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// A stored time of milliseconds.
pub(super) fn stamp_ms(at: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(at)
        .map(super::stamp)
        .unwrap_or_default()
}

/// The thresholds coverage is judged by (hub.toml `[coverage]`), as the
/// store keeps them: every connection judges with the same ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Action share and clock drift.
    pub judge: Policy,
    /// Hours after the end of its duty (or of the recording, outside any
    /// duty) within which a recording's bytes must arrive.
    pub timeliness_hours: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            judge: Policy::default(),
            timeliness_hours: 24,
        }
    }
}

impl Thresholds {
    /// The upload deadline of a recording ending at `end_ms`, in a duty
    /// ending at `duty_end_ms` if any.
    pub fn deadline(&self, end_ms: i64, duty_end_ms: Option<i64>) -> i64 {
        duty_end_ms
            .unwrap_or(end_ms)
            .max(end_ms)
            .saturating_add(self.timeliness_hours.saturating_mul(3_600_000))
    }
}

/// The thresholds in force.
pub(crate) fn thresholds(conn: &Connection) -> anyhow::Result<Thresholds> {
    let t = conn
        .prepare_cached(
            "SELECT share_permille, drift_ms, timeliness_hours FROM coverage_policy WHERE id = 1",
        )?
        .query_row([], |r| {
            Ok(Thresholds {
                judge: Policy {
                    share_permille: r.get(0)?,
                    drift_ms: r.get(1)?,
                },
                timeliness_hours: r.get(2)?,
            })
        })
        .optional()?;
    Ok(t.unwrap_or_default())
}

/// Notes a media record's recording (not a re-copy of one already held):
/// its span, whether its bytes are already held, the duty it was made in,
/// where it was made; the officer's recorder was heard from.
pub(crate) fn recorded(
    tx: &Transaction<'_>,
    body: &RecordBody,
    stored: bool,
) -> anyhow::Result<()> {
    let Some(m) = &body.media else {
        return Ok(());
    };
    // A recorder does not know the domain: the record's, else its officer's.
    let domain: Option<String> = tx
        .prepare_cached(
            "SELECT COALESCE((SELECT domain FROM records WHERE id = ?1),
                             (SELECT domain FROM officers WHERE officer_id = ?2))",
        )?
        .query_row(params![body.id.to_string(), body.officer_id], |r| r.get(0))?;
    let domain = domain.as_deref();
    let device_start = ms(m.started_at.unwrap_or(body.device_time));
    let length = m
        .duration_ms
        .map_or(0, |d| i64::try_from(d).unwrap_or(i64::MAX))
        .min(MAX_RECORDING_MS);
    let raw = Span::new(device_start, device_start.saturating_add(length));
    let real = raw.shifted(body.clock_offset_ms);
    let duty_end = match &body.officer_id {
        Some(o) => super::duty::end_of_duty_at(tx, o, real.end)?,
        None => None,
    };
    let arrived = stored.then(|| ms(chrono::Utc::now()));
    let first = !records_media(tx, &body.device_id)?;
    tx.prepare_cached(
        "INSERT INTO recordings (record_id, device_id, officer_id, unit_code, start_ms, end_ms,
                                 device_start_ms, device_end_ms, clock_offset_ms, domain, arrived_ms, duty_end_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT (record_id) DO NOTHING",
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
        body.clock_offset_ms,
        domain,
        arrived,
        duty_end
    ])?;
    if let Some(g) = &body.geo {
        geo_point(tx, real.start, g.lat, g.lon, "recording", body, domain)?;
    }
    if first {
        became_recorder(tx, &body.device_id)?;
    }
    if let Some(o) = &body.officer_id {
        super::duty::heard(tx, o, real)?;
    }
    rejudge_touching(tx, body.officer_id.as_deref(), &body.device_id, real, raw)
}

/// A device has just shown that it records (its first recording): what it
/// reported while not yet known to record is judged again — its actions
/// judged `no_recorder_assigned`, and its duties (whether their officer was
/// heard from, and their hours).
fn became_recorder(tx: &Transaction<'_>, device: &str) -> anyhow::Result<()> {
    // Keys of what a device reported begin "<device>/".
    let (from, to) = (format!("{device}/"), format!("{device}0"));
    let actions: Vec<String> = tx
        .prepare_cached(
            "SELECT action_key FROM actions WHERE action_key >= ?1 AND action_key < ?2
             AND source = 'event' AND cause = 'no_recorder_assigned'",
        )?
        .query_map([&from, &to], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for k in actions {
        judge_action(tx, &k)?;
    }
    let duties: Vec<String> = tx
        .prepare_cached("SELECT duty_key FROM duties WHERE duty_key >= ?1 AND duty_key < ?2")?
        .query_map([&from, &to], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for k in duties {
        super::duty::settle(tx, &k)?;
    }
    Ok(())
}

/// Notes a geotagged place.
fn geo_point(
    tx: &Transaction<'_>,
    at: i64,
    lat: f64,
    lon: f64,
    kind: &str,
    body: &RecordBody,
    domain: Option<&str>,
) -> anyhow::Result<()> {
    let Some(cell) = geohash::encode(lat, lon, geohash::CELL_CHARS) else {
        return Ok(());
    };
    tx.prepare_cached(
        "INSERT INTO geo_points (at_ms, cell, kind, officer_id, unit_code, domain) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![at, cell, kind, body.officer_id, body.unit_code, domain])?;
    Ok(())
}

/// What a record other than media tells coverage: an action's start or
/// end, a duty's, a recording the device says it started or stopped; and,
/// when its device records, that the officer's recorder was heard from.
pub(crate) fn on_record(
    tx: &Transaction<'_>,
    body: &RecordBody,
    domain: Option<&str>,
) -> anyhow::Result<()> {
    let at = ms(body.device_time) - body.clock_offset_ms;
    noted(tx, body, at, domain)?;
    // Only a recorder is heard from: a field device's own events (a duty
    // started on a terminal) say nothing of whether its officer can record.
    if let Some(o) = &body.officer_id {
        if records_media(tx, &body.device_id)? {
            super::duty::heard(tx, o, Span::new(at, at + 1))?;
            with_a_device(tx, o, at)?;
        }
    }
    Ok(())
}

/// Notes what an event record says (an action's or a duty's start or end,
/// a recording started or stopped).
fn noted(
    tx: &Transaction<'_>,
    body: &RecordBody,
    at: i64,
    domain: Option<&str>,
) -> anyhow::Result<()> {
    match &body.event {
        Some(Event::ActionStarted { .. } | Event::ActionEnded { .. }) => {
            action_event(tx, body, at, domain)
        }
        Some(Event::DutyStarted | Event::DutyEnded) => {
            super::duty::duty_event(tx, body, at, domain)
        }
        Some(Event::RecordingStarted { .. }) => {
            tx.prepare_cached(
                "INSERT INTO recording_events (device_id, officer_id, start_ms) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![body.device_id, body.officer_id, at])?;
            Ok(())
        }
        Some(Event::RecordingStopped { .. }) => {
            let open: Option<(i64, i64)> = tx
                .prepare_cached(
                    "SELECT id, start_ms FROM recording_events WHERE device_id = ?1 AND end_ms IS NULL
                     AND start_ms <= ?2 ORDER BY start_ms DESC LIMIT 1",
                )?
                .query_row(params![body.device_id, at], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if let Some((id, start)) = open {
                tx.prepare_cached("UPDATE recording_events SET end_ms = ?2 WHERE id = ?1")?
                    .execute(params![id, at])?;
                let span = Span::new(start, at.max(start + 1));
                rejudge_touching(tx, body.officer_id.as_deref(), &body.device_id, span, span)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The SQL of whether the device in column `device` records: registered as
/// a recorder, or the hub holds a recording of it. Only such a device is an
/// officer's recorder — assigned, heard from, or the device an action was
/// reported on (docs/coverage.md). A terminal that relays a recorder's
/// recording started/stopped is not one.
pub(super) fn records_media_sql(device: &str) -> String {
    format!(
        "(EXISTS (SELECT 1 FROM devices rd WHERE rd.device_id = {device} AND rd.kind = 'recorder')
          OR EXISTS (SELECT 1 FROM recordings rr WHERE rr.device_id = {device}))"
    )
}

/// Whether `device` records (see [`records_media_sql`]).
pub(super) fn records_media(tx: &Connection, device: &str) -> anyhow::Result<bool> {
    Ok(tx
        .prepare_cached(&format!("SELECT {}", records_media_sql("?1")))?
        .query_row([device], |r| r.get(0))?)
}

/// Judges again what was judged `no_recorder_assigned` for `officer` at
/// `at`: a device of theirs has just been heard from then.
fn with_a_device(tx: &Transaction<'_>, officer: &str, at: i64) -> anyhow::Result<()> {
    let keys: Vec<String> = tx
        .prepare_cached(
            "SELECT a.action_key FROM action_officers o JOIN actions a ON a.action_key = o.action_key
             WHERE o.officer_id = ?1 AND a.cause = 'no_recorder_assigned'
               AND a.start_ms <= ?2 AND a.end_ms > ?2",
        )?
        .query_map(params![officer, at], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for k in keys {
        judge_action(tx, &k)?;
    }
    super::duty::rejudge_unassigned_hour(tx, officer, at)
}

/// Notes that a device was heard from at `at_ms`: a record it made then, or
/// a status it sent (its day, China Standard Time).
pub(crate) fn heard_on_day(tx: &Connection, device: &str, at_ms: i64) -> anyhow::Result<()> {
    tx.prepare_cached(
        "INSERT INTO device_days (day, device_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )?
    .execute(params![cst_day(at_ms), device])?;
    Ok(())
}

/// The date (China Standard Time, UTC+8) of a time in milliseconds.
pub fn cst_day(at_ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(at_ms + 8 * 3_600_000)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Notes an action's start or end from its event, and judges it once both are known.
fn action_event(
    tx: &Transaction<'_>,
    body: &RecordBody,
    at: i64,
    record_domain: Option<&str>,
) -> anyhow::Result<()> {
    let (action_id, start, end, domain, case) = match &body.event {
        Some(Event::ActionStarted {
            action_id,
            case_number,
            domain,
            ..
        }) => (
            action_id,
            Some(at),
            None,
            Some(domain.as_str()),
            case_number,
        ),
        Some(Event::ActionEnded {
            action_id,
            case_number,
        }) => (action_id, None, Some(at), None, case_number),
        _ => return Ok(()),
    };
    let key = format!("{}/{action_id}", body.device_id);
    let cell = match (&body.geo, start) {
        (Some(g), Some(_)) => geohash::encode(g.lat, g.lon, geohash::CELL_CHARS),
        _ => None,
    };
    tx.prepare_cached(
        "INSERT INTO actions (action_key, action_id, device_id, unit_code, domain, case_number, start_ms, end_ms, cell)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (action_key) DO UPDATE SET
             unit_code = COALESCE(actions.unit_code, excluded.unit_code),
             domain = COALESCE(excluded.domain, actions.domain),
             case_number = COALESCE(actions.case_number, excluded.case_number),
             start_ms = COALESCE(excluded.start_ms, actions.start_ms),
             end_ms = COALESCE(excluded.end_ms, actions.end_ms),
             cell = COALESCE(excluded.cell, actions.cell)",
    )?
    .execute(params![key, action_id, body.device_id, body.unit_code, domain, case, start, end, cell])?;
    if let (Some(g), Some(s)) = (&body.geo, start) {
        geo_point(
            tx,
            s,
            g.lat,
            g.lon,
            "action",
            body,
            domain.or(record_domain),
        )?;
    }
    if let Some(officer) = &body.officer_id {
        tx.prepare_cached(
            "INSERT INTO action_officers (officer_id, action_key) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?
        .execute(params![officer, key])?;
    }
    judge_action(tx, &key)
}

/// Notes that the bytes of these media records' recordings arrived: judges
/// again what they bear on, and alerts a late upload.
pub(crate) fn arrived(
    tx: &Transaction<'_>,
    record_ids: &[String],
    now_ms: i64,
) -> anyhow::Result<()> {
    let th = thresholds(tx)?;
    for id in record_ids {
        let row: Option<ArrivedRow> = tx
            .prepare_cached(
                "UPDATE recordings SET arrived_ms = COALESCE(arrived_ms, ?2) WHERE record_id = ?1
                 RETURNING device_id, officer_id, start_ms, end_ms, device_start_ms, device_end_ms,
                           duty_end_ms, late_alerted",
            )?
            .query_row(params![id, now_ms], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })
            .optional()?;
        let Some((device, officer, s, e, ds, de, duty_end, alerted)) = row else {
            continue;
        };
        let deadline = th.deadline(e, duty_end);
        if now_ms > deadline && !alerted {
            late_upload(tx, id, &device, officer.as_deref(), deadline, Some(now_ms))?;
        }
        rejudge_touching(
            tx,
            officer.as_deref(),
            &device,
            Span::new(s, e),
            Span::new(ds, de),
        )?;
    }
    Ok(())
}

/// device, officer, real start and end, raw start and end, duty end, late alerted.
type ArrivedRow = (
    String,
    Option<String>,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    bool,
);

/// Raises the alert of a recording whose bytes missed their deadline
/// (arrived late at `arrived`, or not at all yet).
pub(super) fn late_upload(
    tx: &Transaction<'_>,
    record_id: &str,
    device: &str,
    officer: Option<&str>,
    deadline: i64,
    arrived: Option<i64>,
) -> anyhow::Result<()> {
    let when = match arrived {
        Some(at) => format!(
            "arrived {:.1} h after its deadline {}",
            (at - deadline) as f64 / 3_600_000.0,
            stamp_ms(deadline)
        ),
        None => format!("has not arrived; its deadline was {}", stamp_ms(deadline)),
    };
    raise_about(
        tx,
        AlertKind::LateUpload,
        About {
            device_id: Some(device),
            officer_id: officer,
            subject: record_id,
        },
        &format!(
            "recording {record_id} of {device}{}: {when}",
            officer
                .map(|o| format!(" (officer {o})"))
                .unwrap_or_default()
        ),
    )?;
    tx.prepare_cached("UPDATE recordings SET late_alerted = 1 WHERE record_id = ?1")?
        .execute([record_id])?;
    Ok(())
}

/// Judges again every action and duty hour a recording may bear on: those
/// of its officer, and those of whoever had its device, overlapping its
/// real or raw span.
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
    // Whoever had the device while it recorded.
    let holders: Vec<String> = tx
        .prepare_cached(
            "SELECT DISTINCT officer_id FROM assignments WHERE device_id = ?1 AND officer_id IS NOT NULL
             AND from_at < ?3 AND (to_at IS NULL OR to_at > ?2)",
        )?
        .query_map(params![device, stamp_ms(from), stamp_ms(to)], |r| r.get(0))?
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
    super::duty::rejudge_hours(tx, &officers, Span::new(from, to))
}

/// Judges one action (once both its ends are known) and caches the verdict.
pub(super) fn judge_action(tx: &Transaction<'_>, key: &str) -> anyhow::Result<()> {
    let ends: Option<(Option<i64>, Option<i64>, String, String)> = tx
        .prepare_cached(
            "SELECT start_ms, end_ms, device_id, source FROM actions WHERE action_key = ?1",
        )?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let Some((Some(start), Some(end), device, source)) = ends else {
        return Ok(());
    };
    let officers: Vec<String> = tx
        .prepare_cached("SELECT officer_id FROM action_officers WHERE action_key = ?1")?
        .query_map([key], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let own = source == "event" && records_media(tx, &device)?;
    let action = Action {
        id: key.to_owned(),
        officers,
        span: Span::new(start, end),
        device_id: own.then_some(device),
    };
    let v = verdict(tx, &action)?;
    store_verdict(tx, key, &v)
}

/// Gathers what bears on `action` from the store and judges it.
pub(super) fn verdict(tx: &Transaction<'_>, action: &Action) -> anyhow::Result<Verdict> {
    let mut assignments = assignments_of(tx, action)?;
    assignments.extend(devices_heard(tx, action)?);
    let recordings = recordings_near(tx, action, &assignments)?;
    let events = recording_events_near(tx, action, &assignments)?;
    Ok(judge(
        action,
        Evidence {
            recordings: &recordings,
            assignments: &assignments,
            events: &events,
        },
        thresholds(tx)?.judge,
    ))
}

fn store_verdict(tx: &Transaction<'_>, key: &str, v: &Verdict) -> anyhow::Result<()> {
    tx.prepare_cached(
        "UPDATE actions SET span_ms = ?2, covered_ms = ?3, covered = ?4, cause = ?5, judged_at = ?6
         WHERE action_key = ?1",
    )?
    .execute(params![
        key,
        v.span_ms,
        v.covered_ms,
        v.covered,
        v.cause.map(|c| c.as_str()),
        now()
    ])?;
    if v.covered {
        // Covered after all (its media arrived): the alert is settled.
        tx.prepare_cached(
            "UPDATE alerts SET resolved_at = ?2
             WHERE subject = ?1 AND kind = 'action_uncovered' AND resolved_at IS NULL",
        )?
        .execute(params![key, now()])?;
    }
    Ok(())
}

/// The assignments of the action's officers that overlap it, of recorders.
fn assignments_of(tx: &Transaction<'_>, action: &Action) -> anyhow::Result<Vec<Assignment>> {
    let mut out = Vec::new();
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT device_id, officer_id, from_at, to_at FROM assignments
             WHERE officer_id = ?1 AND from_at < ?3 AND (to_at IS NULL OR to_at > ?2) AND {}",
        records_media_sql("assignments.device_id")
    ))?;
    let (from, to) = (
        stamp_ms(action.span.start),
        stamp_ms(action.span.end.max(action.span.start + 1)),
    );
    for o in &action.officers {
        let rows = stmt.query_map(params![o, from, to], |r| {
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

/// The recorders that made a record attributed to one of the action's
/// officers during it: with them then, as if assigned for the action's span.
fn devices_heard(tx: &Transaction<'_>, action: &Action) -> anyhow::Result<Vec<Assignment>> {
    let span = Span::new(
        action.span.start,
        action.span.end.max(action.span.start + 1),
    );
    let mut stmt = tx.prepare_cached(
        &format!(
            "SELECT DISTINCT device_id FROM records WHERE officer_id = ?1 AND occurred_at >= ?2 AND occurred_at < ?3
             AND {}",
            records_media_sql("records.device_id")
        ),
    )?;
    let mut out = Vec::new();
    for o in &action.officers {
        let devices = stmt
            .query_map(params![o, stamp_ms(span.start), stamp_ms(span.end)], |r| {
                r.get::<_, String>(0)
            })?
            .collect::<Result<Vec<_>, _>>()?;
        out.extend(devices.into_iter().map(|device_id| Assignment {
            device_id,
            officer_id: o.clone(),
            span,
        }));
    }
    Ok(out)
}

/// The devices assigned to the action's officers during it.
fn devices_during<'a>(action: &Action, assignments: &'a [Assignment]) -> BTreeSet<&'a str> {
    let span = Span::new(
        action.span.start,
        action.span.end.max(action.span.start + 1),
    );
    assignments
        .iter()
        .filter(|a| a.span.overlaps(span))
        .map(|a| a.device_id.as_str())
        .collect()
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
        r.clock_offset_ms, r.arrived_ms IS NOT NULL";
    let read = |r: &super::db::Row| {
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
    // By real time and by the recorder's own: each an index range.
    let mut by_officer = tx.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM recordings r
         WHERE r.officer_id = ?1 AND r.start_ms < ?3 AND r.start_ms > CAST(?2 AS BIGINT) - {MAX_RECORDING_MS} AND r.end_ms > ?2"
    ))?;
    let mut by_officer_raw = tx.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM recordings r
         WHERE r.officer_id = ?1 AND r.device_start_ms < ?3 AND r.device_start_ms > CAST(?2 AS BIGINT) - {MAX_RECORDING_MS}
           AND r.device_end_ms > ?2"
    ))?;
    for o in &action.officers {
        for rec in by_officer.query_map(params![o, s, e], read)? {
            keep(rec?);
        }
        for rec in by_officer_raw.query_map(params![o, s, e], read)? {
            keep(rec?);
        }
    }
    let mut by_device = tx.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM recordings r
         WHERE r.device_id = ?1 AND r.start_ms < ?3 AND r.start_ms > CAST(?2 AS BIGINT) - {MAX_RECORDING_MS} AND r.end_ms > ?2"
    ))?;
    for d in devices_during(action, assignments) {
        for rec in by_device.query_map(params![d, s, e], read)? {
            keep(rec?);
        }
    }
    Ok(out)
}

/// The recordings devices said they made that touch `action`: of its
/// officers, or of the devices assigned to them. One still running counts
/// as running to now.
fn recording_events_near(
    tx: &Transaction<'_>,
    action: &Action,
    assignments: &[Assignment],
) -> anyhow::Result<Vec<RecordingEvent>> {
    let (s, e) = (
        action.span.start,
        action.span.end.max(action.span.start + 1),
    );
    let now_ms = ms(chrono::Utc::now());
    let read = |r: &super::db::Row| {
        let start: i64 = r.get(2)?;
        let end: Option<i64> = r.get(3)?;
        Ok(RecordingEvent {
            device_id: r.get(0)?,
            officer_id: r.get(1)?,
            span: Span::new(start, end.unwrap_or(now_ms).max(start + 1)),
        })
    };
    let mut out = Vec::new();
    let mut by_officer = tx.prepare_cached(&format!(
        "SELECT device_id, officer_id, start_ms, end_ms FROM recording_events
         WHERE officer_id = ?1 AND start_ms < ?3 AND start_ms > CAST(?2 AS BIGINT) - {MAX_RECORDING_MS}
           AND (end_ms IS NULL OR end_ms > ?2)"
    ))?;
    for o in &action.officers {
        for ev in by_officer.query_map(params![o, s, e], read)? {
            out.push(ev?);
        }
    }
    let mut by_device = tx.prepare_cached(&format!(
        "SELECT device_id, officer_id, start_ms, end_ms FROM recording_events
         WHERE device_id = ?1 AND start_ms < ?3 AND start_ms > CAST(?2 AS BIGINT) - {MAX_RECORDING_MS}
           AND (end_ms IS NULL OR end_ms > ?2)"
    ))?;
    for d in devices_during(action, assignments) {
        for ev in by_device.query_map(params![d, s, e], read)? {
            out.push(ev?);
        }
    }
    Ok(out)
}

/// Fills in the coverage tables for the records a store held before
/// schema 6, in hub order (as ingest would have). They hold nothing but
/// what records say, so they are emptied first.
pub(crate) fn backfill(tx: &Transaction<'_>) -> anyhow::Result<()> {
    for table in [
        "recordings",
        "actions",
        "action_officers",
        "duties",
        "duty_hours",
        "recording_events",
        "geo_points",
    ] {
        tx.execute(&format!("DELETE FROM {table} WHERE 1"), [])?;
    }
    let mut stmt = tx.prepare(
        "SELECT r.body, r.domain, m.recopy_of IS NOT NULL, m.state = 'stored', m.stored_at
         FROM records r LEFT JOIN media m ON m.record_id = r.id ORDER BY r.hub_seq",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, Vec<u8>>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, Option<bool>>(2)?,
            r.get::<_, Option<bool>>(3)?,
            r.get::<_, Option<String>>(4)?,
        ))
    })?;
    for row in rows {
        let (bytes, domain, recopy, stored, stored_at) = row?;
        let Ok(body) = RecordBody::parse(&bytes) else {
            continue; // verified when stored; one that no longer parses is reported by the feed
        };
        if body.media.is_some() {
            if recopy != Some(true) {
                // Judged as arrived (or not) as it is noted; then arrived
                // when its bytes really were stored.
                let arrived = stored == Some(true);
                recorded(tx, &body, arrived)?;
                if arrived {
                    let at = stored_at.as_deref().and_then(parse_ms);
                    tx.prepare_cached(
                        "UPDATE recordings SET arrived_ms = COALESCE(?2, arrived_ms) WHERE record_id = ?1",
                    )?
                    .execute(params![body.id.to_string(), at])?;
                }
            }
        } else {
            on_record(tx, &body, domain.as_deref())?;
        }
    }
    Ok(())
}

/// Judges every action and finished duty again (the thresholds changed).
pub(super) fn judge_all(tx: &Transaction<'_>) -> anyhow::Result<()> {
    let keys: Vec<String> = tx
        .prepare(
            "SELECT action_key FROM actions WHERE start_ms IS NOT NULL AND end_ms IS NOT NULL",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for k in keys {
        judge_action(tx, &k)?;
    }
    super::duty::settle_all(tx)
}

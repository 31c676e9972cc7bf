//! Duty shifts (issue 6): from `duty_started` / `duty_ended` events or a
//! roster import. Each finished duty is cut into clock hours, each judged
//! like an action of its officer — how many of its milliseconds the
//! officer's arrived recordings cover, and the cause when they cover none —
//! and judged again when a recording touching it arrives. A duty also keeps
//! when a recorder of its officer was first heard from in it (personnel
//! coverage, and the `officer_unheard` alert).

use std::collections::BTreeSet;

use super::db::{params, OptionalExtension, Transaction};
use evsync_protocol::record::{Event, RecordBody};

use super::coverage::{
    parse_ms, records_media, records_media_sql, stamp_ms, verdict, MAX_RECORDING_MS,
};
use crate::coverage::action::Action;
use crate::coverage::span::Span;

const HOUR_MS: i64 = 3_600_000;

/// Notes a duty's start or end from its event (attributed to the record's
/// officer; a record without one is no one's duty and is left out).
pub(crate) fn duty_event(
    tx: &Transaction<'_>,
    body: &RecordBody,
    at: i64,
    domain: Option<&str>,
) -> anyhow::Result<()> {
    let Some(officer) = body.officer_id.as_deref() else {
        tracing::warn!(record = %body.id, device = body.device_id, "duty event without an officer: not counted");
        return Ok(());
    };
    let device = body.device_id.as_str();
    match body.event {
        Some(Event::DutyStarted) => {
            // An end that arrived first (records resent out of order) waits for its start.
            let waiting: Option<String> = tx
                .prepare_cached(
                    "SELECT duty_key FROM duties WHERE officer_id = ?1 AND device_id = ?2
                     AND start_ms IS NULL AND end_ms >= ?3 ORDER BY end_ms LIMIT 1",
                )?
                .query_row(params![officer, device, at], |r| r.get(0))
                .optional()?;
            let key = match waiting {
                Some(k) => {
                    tx.prepare_cached("UPDATE duties SET start_ms = ?2 WHERE duty_key = ?1")?
                        .execute(params![k, at])?;
                    k
                }
                None => {
                    let key = format!("{device}/{officer}/{at}");
                    tx.prepare_cached(
                        "INSERT INTO duties (duty_key, officer_id, unit_code, domain, device_id, start_ms, source)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'event') ON CONFLICT (duty_key) DO NOTHING",
                    )?
                    .execute(params![key, officer, body.unit_code, domain, device, at])?;
                    key
                }
            };
            settle(tx, &key)
        }
        Some(Event::DutyEnded) => {
            let open: Option<String> = tx
                .prepare_cached(
                    "SELECT duty_key FROM duties WHERE officer_id = ?1 AND device_id = ?2
                     AND end_ms IS NULL AND start_ms <= ?3 ORDER BY start_ms DESC LIMIT 1",
                )?
                .query_row(params![officer, device, at], |r| r.get(0))
                .optional()?;
            match open {
                Some(k) => {
                    tx.prepare_cached("UPDATE duties SET end_ms = ?2 WHERE duty_key = ?1")?
                        .execute(params![k, at])?;
                    settle(tx, &k)
                }
                None => {
                    tx.prepare_cached(
                        "INSERT INTO duties (duty_key, officer_id, unit_code, domain, device_id, end_ms, source)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'event') ON CONFLICT (duty_key) DO NOTHING",
                    )?
                    .execute(params![
                        format!("{device}/{officer}/end-{at}"),
                        officer,
                        body.unit_code,
                        domain,
                        device,
                        at
                    ])?;
                    Ok(())
                }
            }
        }
        _ => Ok(()),
    }
}

/// officer, unit, domain, start, end.
type DutyRow = (
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

/// Brings a duty up to date with what the store holds: when its officer
/// was first heard from in it and, once it has ended, its hours judged and
/// its recordings' upload deadlines counted from its end.
pub(crate) fn settle(tx: &Transaction<'_>, key: &str) -> anyhow::Result<()> {
    let row: Option<DutyRow> = tx
        .prepare_cached(
            "SELECT officer_id, unit_code, domain, start_ms, end_ms FROM duties WHERE duty_key = ?1",
        )?
        .query_row([key], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    let Some((officer, unit, domain, Some(start), end)) = row else {
        return Ok(());
    };
    let heard = first_heard(tx, &officer, start, end)?;
    tx.prepare_cached("UPDATE duties SET heard_ms = ?2 WHERE duty_key = ?1")?
        .execute(params![key, heard])?;
    let Some(end) = end else {
        return Ok(());
    };
    tx.prepare_cached(&format!(
        "UPDATE recordings SET duty_end_ms = ?4 WHERE officer_id = ?1
         AND end_ms >= ?2 AND end_ms <= ?3 AND start_ms > CAST(?2 AS BIGINT) - {MAX_RECORDING_MS}"
    ))?
    .execute(params![officer, start, end, end])?;
    tx.prepare_cached("DELETE FROM duty_hours WHERE duty_key = ?1")?
        .execute([key])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO duty_hours (duty_key, start_ms, end_ms, officer_id, unit_code, domain, recorded_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
    )?;
    for hour in hours(Span::new(start, end)) {
        insert.execute(params![key, hour.start, hour.end, officer, unit, domain])?;
        judge_hour(tx, key, &officer, hour)?;
    }
    Ok(())
}

/// When a recorder of `officer` was first heard from in their duty from
/// `start` to `end` (open if none): a record a recorder made then, or a
/// recording of theirs running then.
fn first_heard(
    tx: &Transaction<'_>,
    officer: &str,
    start: i64,
    end: Option<i64>,
) -> anyhow::Result<Option<i64>> {
    let until = end.unwrap_or(i64::MAX / 2);
    let first_record: Option<String> = tx
        .prepare_cached(&format!(
            "SELECT MIN(occurred_at) FROM records WHERE officer_id = ?1 AND occurred_at >= ?2 AND occurred_at < ?3
             AND {}",
            records_media_sql("records.device_id")
        ))?
        .query_row(
            params![officer, stamp_ms(start), end.map_or("9999".into(), stamp_ms)],
            |r| r.get(0),
        )?;
    let first_recording: Option<i64> = tx
        .prepare_cached(&format!(
            "SELECT MIN(MAX(start_ms, ?2)) FROM recordings WHERE officer_id = ?1
             AND start_ms < ?3 AND start_ms > CAST(?2 AS BIGINT) - {MAX_RECORDING_MS} AND end_ms > ?2"
        ))?
        .query_row(params![officer, start, until], |r| r.get(0))?;
    Ok(
        [first_record.as_deref().and_then(parse_ms), first_recording]
            .into_iter()
            .flatten()
            .min(),
    )
}

/// Settles every duty again (the thresholds changed).
pub(crate) fn settle_all(tx: &Transaction<'_>) -> anyhow::Result<()> {
    let keys: Vec<String> = tx
        .prepare("SELECT duty_key FROM duties WHERE end_ms IS NOT NULL")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for k in keys {
        settle(tx, &k)?;
    }
    Ok(())
}

/// `span` cut at clock hours (China Standard Time is a whole number of
/// hours from UTC, so its hours are UTC's).
pub(crate) fn hours(span: Span) -> Vec<Span> {
    let mut out = Vec::new();
    let mut at = span.start;
    while at < span.end {
        let next = (at.div_euclid(HOUR_MS) + 1) * HOUR_MS;
        out.push(Span::new(at, next.min(span.end)));
        at = next;
    }
    out
}

pub(crate) fn judge_hour(
    tx: &Transaction<'_>,
    key: &str,
    officer: &str,
    hour: Span,
) -> anyhow::Result<()> {
    // A duty reported by a recorder: that recorder is with its officer.
    let device: Option<String> = tx
        .prepare_cached("SELECT device_id FROM duties WHERE duty_key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?
        .flatten();
    let device = match device {
        Some(d) if records_media(tx, &d)? => Some(d),
        _ => None,
    };
    let v = verdict(
        tx,
        &Action {
            id: key.to_owned(),
            officers: vec![officer.to_owned()],
            span: hour,
            device_id: device,
        },
    )?;
    let cause = (v.covered_ms == 0).then_some(v.cause).flatten();
    tx.prepare_cached(
        "UPDATE duty_hours SET recorded_ms = ?3, cause = ?4 WHERE duty_key = ?1 AND start_ms = ?2",
    )?
    .execute(params![
        key,
        hour.start,
        v.covered_ms,
        cause.map(|c| c.as_str())
    ])?;
    Ok(())
}

/// Judges again the duty hours of these officers that overlap `span`.
pub(crate) fn rejudge_hours(
    tx: &Transaction<'_>,
    officers: &BTreeSet<String>,
    span: Span,
) -> anyhow::Result<()> {
    let mut stmt = tx.prepare_cached(
        "SELECT duty_key, start_ms, end_ms FROM duty_hours
         WHERE officer_id = ?1 AND start_ms < ?3 AND start_ms > CAST(?2 AS BIGINT) - 3600000 AND end_ms > ?2",
    )?;
    for o in officers {
        let rows: Vec<(String, i64, i64)> = stmt
            .query_map(params![o, span.start, span.end], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        for (key, s, e) in rows {
            judge_hour(tx, &key, o, Span::new(s, e))?;
        }
    }
    Ok(())
}

/// Judges again the duty hour of `officer` holding `at` if it was judged
/// `no_recorder_assigned` (a device of theirs has just been heard from then).
pub(crate) fn rejudge_unassigned_hour(
    tx: &Transaction<'_>,
    officer: &str,
    at: i64,
) -> anyhow::Result<()> {
    let rows: Vec<(String, i64, i64)> = tx
        .prepare_cached(
            "SELECT duty_key, start_ms, end_ms FROM duty_hours WHERE officer_id = ?1
             AND start_ms <= ?2 AND start_ms > CAST(?2 AS BIGINT) - 3600000 AND end_ms > ?2 AND cause = 'no_recorder_assigned'",
        )?
        .query_map(params![officer, at], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (key, s, e) in rows {
        judge_hour(tx, &key, officer, Span::new(s, e))?;
    }
    Ok(())
}

/// The end of the finished duty of `officer` that `at` falls in.
pub(crate) fn end_of_duty_at(
    tx: &Transaction<'_>,
    officer: &str,
    at: i64,
) -> anyhow::Result<Option<i64>> {
    Ok(tx
        .prepare_cached(
            "SELECT end_ms FROM duties WHERE officer_id = ?1 AND start_ms <= ?2 AND start_ms > CAST(?2 AS BIGINT) - 86400000
             AND end_ms >= ?2 ORDER BY start_ms DESC LIMIT 1",
        )?
        .query_row(params![officer, at], |r| r.get(0))
        .optional()?)
}

/// Notes that a recorder of `officer` was heard from during `span`.
pub(crate) fn heard(tx: &Transaction<'_>, officer: &str, span: Span) -> anyhow::Result<()> {
    tx.prepare_cached(
        "UPDATE duties SET heard_ms = MAX(start_ms, ?2)
         WHERE officer_id = ?1 AND start_ms < ?3 AND start_ms > CAST(?2 AS BIGINT) - 86400000 AND (end_ms IS NULL OR end_ms > ?2)
         AND (heard_ms IS NULL OR heard_ms > MAX(start_ms, ?2))",
    )?
    .execute(params![officer, span.start, span.end.max(span.start + 1)])?;
    Ok(())
}

/// A duty shift of a roster (`POST /api/v1/coverage/duties`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterDuty {
    /// Officer number (6 digits).
    pub officer_id: String,
    /// Start (RFC 3339).
    pub start: String,
    /// End (RFC 3339), after the start.
    pub end: String,
}

impl RosterDuty {
    /// The duty's span, or what is wrong with it.
    pub fn span(&self) -> Result<Span, String> {
        if self.officer_id.len() != 6 || !self.officer_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "officer_id = {:?}: expected 6 digits",
                self.officer_id
            ));
        }
        let start = super::parse_time("start", &self.start)?.timestamp_millis();
        let end = super::parse_time("end", &self.end)?.timestamp_millis();
        if end <= start {
            return Err(format!(
                "end {} is not after start {}",
                self.end, self.start
            ));
        }
        if end - start > 24 * HOUR_MS {
            return Err(format!(
                "{} to {} is longer than 24 hours: one row per shift",
                self.start, self.end
            ));
        }
        Ok(Span::new(start, end))
    }
}

/// Reads a roster from CSV with a header row naming `officer_id`, `start`
/// and `end`; every bad row named by line.
pub fn parse_roster_csv(text: &str) -> Result<Vec<RosterDuty>, Vec<String>> {
    super::fleet::parse_csv(text, |d: &RosterDuty| d.span().err().into_iter().collect())
}

impl super::Store {
    /// Imports duty shifts of a roster, all or none (the caller checked each
    /// with [`RosterDuty::span`]); one imported again is replaced. Returns
    /// how many were imported.
    pub fn import_duties(&mut self, duties: &[(RosterDuty, Span)]) -> anyhow::Result<usize> {
        self.in_transaction(|tx| {
            for (d, span) in duties {
                let key = format!("import/{}/{}", d.officer_id, span.start);
                tx.prepare_cached(
                    // The officer's unit and domain as the officers list has
                    // them, else as their latest device assignment does.
                    "INSERT INTO duties (duty_key, officer_id, unit_code, domain, start_ms, end_ms, source)
                     SELECT ?1, ?2,
                            COALESCE(o.unit_code, (SELECT unit_code FROM assignments WHERE officer_id = ?2
                                                   AND unit_code IS NOT NULL ORDER BY from_at DESC LIMIT 1)),
                            COALESCE(o.domain, (SELECT domain FROM assignments WHERE officer_id = ?2
                                                AND domain IS NOT NULL ORDER BY from_at DESC LIMIT 1)),
                            ?3, ?4, 'import'
                     FROM (SELECT 1) one LEFT JOIN officers o ON o.officer_id = ?2
                     WHERE true
                     ON CONFLICT (duty_key) DO UPDATE SET end_ms = excluded.end_ms",
                )?
                .execute(params![key, d.officer_id, span.start, span.end])?;
                settle(tx, &key)?;
            }
            Ok(duties.len())
        })
    }
}

/// Version 7 counts only recorders as an officer's devices (a terminal's
/// own events no longer say a recorder was there): when each duty's
/// officer was first heard from again, and every uncovered action and
/// unrecorded hour whose cause depended on which devices they had judged again.
pub(crate) fn judge_again_for_recorders(tx: &Transaction<'_>) -> anyhow::Result<()> {
    type Row = (String, String, i64, Option<i64>);
    let duties: Vec<Row> = tx
        .prepare(
            "SELECT duty_key, officer_id, start_ms, end_ms FROM duties WHERE start_ms IS NOT NULL",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    let mut set = tx.prepare("UPDATE duties SET heard_ms = ?2 WHERE duty_key = ?1")?;
    for (key, officer, start, end) in duties {
        set.execute(params![key, first_heard(tx, &officer, start, end)?])?;
    }
    const BY_DEVICE: &str = "('media_not_arrived', 'not_linked', 'nothing_recorded')";
    let actions: Vec<String> = tx
        .prepare(&format!(
            "SELECT action_key FROM actions WHERE covered = 0 AND cause IN {BY_DEVICE}"
        ))?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for k in actions {
        super::coverage::judge_action(tx, &k)?;
    }
    let hours: Vec<(String, String, i64, i64)> = tx
        .prepare(&format!(
            "SELECT duty_key, officer_id, start_ms, end_ms FROM duty_hours WHERE cause IN {BY_DEVICE}"
        ))?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    for (key, officer, s, e) in hours {
        judge_hour(tx, &key, &officer, Span::new(s, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duty_is_cut_at_clock_hours() {
        // 08:30 to 10:15 UTC: 30 minutes, an hour, 15 minutes.
        let h = |x: f64| (x * HOUR_MS as f64) as i64;
        let day = 20_000 * 24 * HOUR_MS;
        let got = hours(Span::new(day + h(8.5), day + h(10.25)));
        assert_eq!(
            got,
            vec![
                Span::new(day + h(8.5), day + h(9.0)),
                Span::new(day + h(9.0), day + h(10.0)),
                Span::new(day + h(10.0), day + h(10.25)),
            ]
        );
        assert!(hours(Span::new(day, day)).is_empty());
    }

    #[test]
    fn a_roster_row_names_what_is_wrong() {
        let row = |o: &str, s: &str, e: &str| RosterDuty {
            officer_id: o.into(),
            start: s.into(),
            end: e.into(),
        };
        let ok = row(
            "010203",
            "2026-11-30T08:00:00+08:00",
            "2026-11-30T17:00:00+08:00",
        );
        assert_eq!(ok.span().map(|s| s.len()), Ok(9 * HOUR_MS));
        let e = row(
            "12",
            "2026-11-30T08:00:00+08:00",
            "2026-11-30T17:00:00+08:00",
        )
        .span();
        assert!(e.is_err_and(|e| e.contains("expected 6 digits")));
        let e = row(
            "010203",
            "2026-11-30T17:00:00+08:00",
            "2026-11-30T08:00:00+08:00",
        )
        .span();
        assert!(e.is_err_and(|e| e.contains("is not after start")));
        let e = row("010203", "yesterday", "2026-11-30T08:00:00+08:00").span();
        assert!(e.is_err_and(|e| e.contains("start = \"yesterday\"")));
    }
}

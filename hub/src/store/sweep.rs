//! The coverage alerts that time raises (issue 6), looked for by the hub
//! every `coverage.sweep_secs`: an action still not covered some time after
//! it ended, an officer on duty for a while from whose recorders nothing has
//! been heard, a recording whose bytes are past their upload deadline. Each
//! is raised once; an action covered later has its alert resolved. What
//! ended more than [`HORIZON_DAYS`] ago is history (in the figures and
//! drill-downs), not news: a store filled in on migration, or a district
//! imported, does not flood the platform with alerts about last year.

use std::time::Duration;

use super::db::{params, OptionalExtension};

use super::alerts::{raise_about, About, AlertKind};
use super::coverage::{late_upload, parse_ms, stamp_ms, thresholds};

/// Days back a sweep looks.
pub const HORIZON_DAYS: i64 = 7;

/// How many alerts one sweep raised, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// `action_uncovered`.
    pub actions: usize,
    /// `officer_unheard`.
    pub officers: usize,
    /// `late_upload` (not arrived by the deadline).
    pub late: usize,
}

/// duty key, officer, start, end, device.
type QuietDuty = (String, String, i64, Option<i64>, Option<String>);
/// record id, device, officer, end, duty end.
type Overdue = (String, String, Option<String>, i64, Option<i64>);

fn minutes(ms: i64) -> String {
    format!("{:.1}", ms as f64 / 60_000.0)
}

impl super::Store {
    /// Raises the alerts due at `now_ms`: actions uncovered `alert_after`
    /// after their end, duties `unheard_after` old with nothing heard from
    /// their officer's recorders, recordings past their upload deadline.
    pub fn coverage_sweep(
        &mut self,
        now_ms: i64,
        alert_after: Duration,
        unheard_after: Duration,
    ) -> anyhow::Result<Swept> {
        let after = i64::try_from(alert_after.as_millis()).unwrap_or(i64::MAX);
        let unheard = i64::try_from(unheard_after.as_millis()).unwrap_or(i64::MAX);
        let horizon = now_ms.saturating_sub(HORIZON_DAYS * 24 * 3_600_000);
        self.in_transaction(|tx| {
            let mut swept = Swept::default();
            let th = thresholds(tx)?;
            type ActionRow = (String, String, Option<String>, Option<String>, i64, i64, i64, i64, Option<String>, Option<String>);
            let due: Vec<ActionRow> = tx
                .prepare_cached(
                    "SELECT a.action_key, a.device_id, a.unit_code, a.case_number, a.start_ms, a.end_ms,
                            a.span_ms, a.covered_ms, a.cause,
                            (SELECT group_concat(officer_id, ', ') FROM action_officers o WHERE o.action_key = a.action_key)
                     FROM actions a WHERE a.covered = 0 AND a.alerted = 0 AND a.end_ms <= ?1 AND a.end_ms > ?2",
                )?
                .query_map([now_ms.saturating_sub(after), horizon], |r| {
                    Ok((
                        r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?,
                        r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?,
                    ))
                })?
                .collect::<Result<_, _>>()?;
            for (key, device, unit, case, start, end, span, covered, cause, officers) in due {
                let first = officers.as_deref().and_then(|o| o.split(", ").next());
                let detail = format!(
                    "action {key}{}{} of officer(s) {} from {} to {}: recordings cover {} of {} min, below {}‰; cause {}",
                    case.map(|c| format!(" (case {c})")).unwrap_or_default(),
                    unit.map(|u| format!(", unit {u}")).unwrap_or_default(),
                    officers.as_deref().unwrap_or("none"),
                    stamp_ms(start),
                    stamp_ms(end),
                    minutes(covered),
                    minutes(span),
                    th.judge.share_permille,
                    cause.as_deref().unwrap_or("unknown"),
                );
                raise_about(
                    tx,
                    AlertKind::ActionUncovered,
                    About {
                        device_id: (device != "import").then_some(device.as_str()),
                        officer_id: first,
                        subject: &key,
                    },
                    &detail,
                )?;
                tx.prepare_cached("UPDATE actions SET alerted = 1 WHERE action_key = ?1")?
                    .execute([&key])?;
                swept.actions += 1;
            }

            let quiet: Vec<QuietDuty> = tx
                .prepare_cached(
                    "SELECT duty_key, officer_id, start_ms, end_ms, device_id FROM duties
                     WHERE heard_ms IS NULL AND alerted = 0 AND start_ms <= ?1 AND start_ms > ?2",
                )?
                .query_map([now_ms.saturating_sub(unheard), horizon], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<Result<_, _>>()?;
            for (key, officer, start, end, device) in quiet {
                // A device of theirs that sent its status (not a record) during the duty.
                let live: Option<String> = tx
                    .prepare_cached(
                        "SELECT MAX(last_seen) FROM devices WHERE last_seen >= ?2 AND (officer_id = ?1
                         OR device_id IN (SELECT device_id FROM assignments WHERE officer_id = ?1 AND to_at IS NULL))",
                    )?
                    .query_row(params![officer, stamp_ms(start)], |r| r.get(0))
                    .optional()?
                    .flatten();
                let live = live
                    .as_deref()
                    .and_then(parse_ms)
                    .filter(|t| end.is_none_or(|e| *t < e));
                if let Some(t) = live {
                    tx.prepare_cached("UPDATE duties SET heard_ms = ?2 WHERE duty_key = ?1")?
                        .execute(params![key, t])?;
                    continue;
                }
                raise_about(
                    tx,
                    AlertKind::OfficerUnheard,
                    About {
                        device_id: device.as_deref(),
                        officer_id: Some(&officer),
                        subject: &key,
                    },
                    &format!(
                        "officer {officer} on duty since {}{}: no recorder of theirs heard from",
                        stamp_ms(start),
                        end.map(|e| format!(" (until {})", stamp_ms(e))).unwrap_or_default()
                    ),
                )?;
                tx.prepare_cached("UPDATE duties SET alerted = 1 WHERE duty_key = ?1")?
                    .execute([&key])?;
                swept.officers += 1;
            }

            let hours = th.timeliness_hours.saturating_mul(3_600_000);
            let overdue: Vec<Overdue> = tx
                .prepare_cached(
                    "SELECT record_id, device_id, officer_id, end_ms, duty_end_ms FROM recordings
                     WHERE arrived_ms IS NULL AND late_alerted = 0 AND end_ms < ?1 AND end_ms > ?2",
                )?
                .query_map([now_ms.saturating_sub(hours), horizon.saturating_sub(hours)], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<Result<_, _>>()?;
            for (id, device, officer, end, duty_end) in overdue {
                let deadline = th.deadline(end, duty_end);
                if now_ms > deadline {
                    late_upload(tx, &id, &device, officer.as_deref(), deadline, None)?;
                    swept.late += 1;
                }
            }
            Ok(swept)
        })
    }

    /// The coverage thresholds in force.
    pub fn thresholds(&self) -> anyhow::Result<super::Thresholds> {
        thresholds(self.conn())
    }

    /// Puts the coverage thresholds in force; when they differ from those
    /// the store's verdicts were judged with, judges every action and duty
    /// hour again. Returns whether they changed.
    pub fn set_thresholds(&mut self, t: super::Thresholds) -> anyhow::Result<bool> {
        self.in_transaction(|tx| {
            if thresholds(tx)? == t {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO coverage_policy (id, share_permille, drift_ms, timeliness_hours) VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET share_permille = ?1, drift_ms = ?2, timeliness_hours = ?3",
                params![t.judge.share_permille, t.judge.drift_ms, t.timeliness_hours],
            )?;
            super::coverage::judge_all(tx)?;
            // The sums count timeliness under the old deadline.
            super::coverage_days::all_stale(tx)?;
            Ok(true)
        })
    }

    /// Sums the stale coverage days again, a few per transaction so ingest
    /// waits at most one short transaction; returns how many were summed
    /// and how many are stale after (days ingest touched meanwhile).
    pub fn sum_coverage_days(&mut self) -> anyhow::Result<(usize, i64)> {
        const PER_TRANSACTION: u32 = 4;
        let stale = self.coverage_stale_days()?;
        let mut summed = 0;
        // At most one pass over what was stale at the start: days that ingest
        // keeps touching wait for the next sweep.
        for _ in 0..=(stale / i64::from(PER_TRANSACTION)) {
            let n = self.in_transaction(|tx| super::coverage_days::refresh(tx, PER_TRANSACTION))?;
            summed += n;
            if n < PER_TRANSACTION as usize {
                break;
            }
        }
        Ok((summed, self.coverage_stale_days()?))
    }

    /// Days whose coverage sums are stale (counted from rows until summed again).
    pub fn coverage_stale_days(&self) -> anyhow::Result<i64> {
        super::coverage_days::stale_days(self.conn())
    }
}

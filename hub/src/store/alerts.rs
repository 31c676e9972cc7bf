//! Alerts: what the supervision platform must see. Raised by ingest when a
//! source's chain breaks, its sequence has a gap, or two records claim one
//! place in it; when a dock reports files gone from a recorder, or the hub
//! sees a hole in a recorder's file indexes across all docks. A gap alert
//! resolves itself once what was missing arrives.
//!
//! A source is the pair (device, agent): for a field device both are the
//! same id, for a recorder it is (recorder, dock), so alerts name both.

use std::time::Duration;

use super::db::{params, Transaction};
use chrono::Utc;
use serde::Serialize;

use super::{now, stamp, Store};

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Sequence numbers `seq_from..=seq_to` of a source have not arrived.
    SequenceGap,
    /// A record's `prev_hash` does not match the stored predecessor.
    ChainBreak,
    /// A different record arrived for a (source, seq) already stored.
    SeqConflict,
    /// An enrolled device announced a different key.
    KeyMismatch,
    /// Uploaded media failed verification against its record too often.
    MediaFailed,
    /// A dock found files gone from a recorder without having been synced.
    RecorderFilesMissing,
    /// A dock found a recorder's clock off by more than its drift threshold.
    ClockDrift,
    /// File indexes `file_from..=file_to` of a recorder were delivered by no
    /// dock, while lower and higher ones were, and no dock reported them missing.
    FileIndexGap,
    /// An enforcement action ended without recordings of its officers
    /// covering enough of it (coverage `alert_after_mins` after its end).
    ActionUncovered,
    /// An officer on duty (longer than coverage `unheard_after_mins`) from
    /// whose recorders nothing has been heard.
    OfficerUnheard,
    /// A recording's bytes arrived after their deadline, or had not by it.
    LateUpload,
    /// A configuration assignment was refused by the recorder's dock or
    /// could not be applied to the recorder.
    ConfigFailed,
    /// A recorder that had applied its assigned configuration was found
    /// running another one.
    ConfigDrift,
    /// A firmware image assigned to a recorder was not installed.
    FirmwareFailed,
}

impl AlertKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SequenceGap => "sequence_gap",
            Self::ChainBreak => "chain_break",
            Self::SeqConflict => "seq_conflict",
            Self::KeyMismatch => "key_mismatch",
            Self::MediaFailed => "media_failed",
            Self::RecorderFilesMissing => "recorder_files_missing",
            Self::ClockDrift => "clock_drift",
            Self::FileIndexGap => "file_index_gap",
            Self::ActionUncovered => "action_uncovered",
            Self::OfficerUnheard => "officer_unheard",
            Self::LateUpload => "late_upload",
            Self::ConfigFailed => "config_failed",
            Self::ConfigDrift => "config_drift",
            Self::FirmwareFailed => "firmware_failed",
        }
    }
}

/// One alert.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// Alert id.
    pub id: i64,
    /// What kind.
    pub kind: String,
    /// The device concerned (a field device, or a recorder).
    pub device_id: Option<String>,
    /// The agent of the source concerned (the dock, for a recorder); with
    /// `device_id` it names the chain that `seq_from`/`seq_to` count in.
    /// `None` for what concerns no single source (a recorder's file index
    /// gap across docks) or could not be known (alerts older than schema 3).
    pub agent_id: Option<String>,
    /// First sequence number concerned.
    pub seq_from: Option<i64>,
    /// Last sequence number concerned.
    pub seq_to: Option<i64>,
    /// First recorder file index concerned (`recorder_files_missing`, `file_index_gap`).
    pub file_from: Option<i64>,
    /// Last recorder file index concerned.
    pub file_to: Option<i64>,
    /// The officer concerned (coverage alerts).
    pub officer_id: Option<String>,
    /// What a coverage alert is about: an action key, a duty key or a
    /// media record id.
    pub subject: Option<String>,
    /// Human-readable detail.
    pub detail: String,
    /// When raised.
    pub raised_at: String,
    /// When resolved (gap filled), if it was.
    pub resolved_at: Option<String>,
}

/// What an alert is about: a device, the agent of its source, and the
/// sequence numbers or file indexes concerned.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Subject<'a> {
    /// The device (field device or recorder).
    pub device_id: &'a str,
    /// The agent of the source, when one source is concerned.
    pub agent_id: Option<&'a str>,
    /// Sequence numbers in that source's chain.
    pub seqs: Option<(u64, u64)>,
    /// Recorder file indexes.
    pub files: Option<(u64, u64)>,
}

impl<'a> Subject<'a> {
    /// The source (device, agent), optionally at some sequence numbers.
    pub fn source(device_id: &'a str, agent_id: &'a str, seqs: Option<(u64, u64)>) -> Self {
        Self {
            device_id,
            agent_id: Some(agent_id),
            seqs,
            files: None,
        }
    }
}

/// What a coverage alert is about: an action, a duty or a recording, of
/// an officer, seen on a device.
#[derive(Debug, Clone, Copy)]
pub(crate) struct About<'a> {
    /// The device concerned, if one is.
    pub device_id: Option<&'a str>,
    /// The officer concerned.
    pub officer_id: Option<&'a str>,
    /// The action key, duty key or record id.
    pub subject: &'a str,
}

/// Raises a coverage alert, visible at once, inside the caller's transaction.
pub(crate) fn raise_about(
    tx: &Transaction<'_>,
    kind: AlertKind,
    about: About<'_>,
    detail: &str,
) -> anyhow::Result<()> {
    let t = now();
    tracing::info!(
        kind = kind.as_str(),
        subject = about.subject,
        detail,
        "alert raised"
    );
    tx.prepare_cached(
        "INSERT INTO alerts (kind, device_id, officer_id, subject, detail, raised_at, visible_after)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?
    .execute(params![
        kind.as_str(),
        about.device_id,
        about.officer_id,
        about.subject,
        detail,
        t
    ])?;
    Ok(())
}

/// Raises an alert inside the caller's transaction, visible after `grace`.
pub(crate) fn raise(
    tx: &Transaction<'_>,
    kind: AlertKind,
    about: Subject<'_>,
    detail: &str,
    grace: Duration,
) -> anyhow::Result<()> {
    let raised = Utc::now();
    let visible = raised + chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::zero());
    raise_visible_at(tx, kind, about, detail, &stamp(raised), &stamp(visible))
}

/// Raises an alert that becomes visible at `visible_after` (a stored time).
pub(crate) fn raise_visible_at(
    tx: &Transaction<'_>,
    kind: AlertKind,
    about: Subject<'_>,
    detail: &str,
    raised_at: &str,
    visible_after: &str,
) -> anyhow::Result<()> {
    let device_id = about.device_id;
    let agent_id = about.agent_id;
    if visible_after <= raised_at {
        tracing::warn!(
            kind = kind.as_str(),
            device_id,
            agent_id,
            detail,
            "alert raised"
        );
    } else {
        tracing::info!(
            kind = kind.as_str(),
            device_id,
            agent_id,
            detail,
            visible_after,
            "alert pending"
        );
    }
    let (seqs, files) = (about.seqs, about.files);
    tx.prepare_cached(
        "INSERT INTO alerts (kind, device_id, agent_id, seq_from, seq_to, file_from, file_to, detail, raised_at, visible_after)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        kind.as_str(),
        device_id,
        agent_id,
        seqs.map(|s| s.0 as i64),
        seqs.map(|s| s.1 as i64),
        files.map(|s| s.0 as i64),
        files.map(|s| s.1 as i64),
        detail,
        raised_at,
        visible_after
    ])?;
    Ok(())
}

fn alert(r: &super::db::Row) -> super::db::Result<Alert> {
    Ok(Alert {
        id: r.get(0)?,
        kind: r.get(1)?,
        device_id: r.get(2)?,
        agent_id: r.get(3)?,
        seq_from: r.get(4)?,
        seq_to: r.get(5)?,
        file_from: r.get(6)?,
        file_to: r.get(7)?,
        detail: r.get(8)?,
        raised_at: r.get(9)?,
        resolved_at: r.get(10)?,
        officer_id: r.get(11)?,
        subject: r.get(12)?,
    })
}

impl Store {
    /// Visible alerts, newest first; `open_only` leaves out resolved ones.
    pub fn alerts(&self, open_only: bool, limit: u32) -> anyhow::Result<Vec<Alert>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, kind, device_id, agent_id, seq_from, seq_to, file_from, file_to, detail, raised_at, resolved_at, officer_id, subject FROM alerts
             WHERE visible_after <= ?3 AND (?1 = 0 OR resolved_at IS NULL) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![open_only, limit, now()], alert)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// What a pushed stream that has looked at alerts up to id `after_id`,
    /// and for late ones up to time `cutoff`, has to send now (at `until`):
    /// alerts that became visible late (raised with a grace period, already
    /// looked at, visible since `cutoff`), then new ones already visible. Also
    /// returns the highest id looked at. Ids are given in commit order (one
    /// writer at a time), so an alert committed after a look has a higher id
    /// and is found by the next one; a late one is found by its time, which
    /// is long past its commit.
    pub fn alerts_to_push(
        &self,
        after_id: i64,
        cutoff: &str,
        until: &str,
        limit: u32,
    ) -> anyhow::Result<(Vec<Alert>, i64)> {
        let late: Vec<Alert> = self
            .conn()
            .prepare_cached(
                "SELECT id, kind, device_id, agent_id, seq_from, seq_to, file_from, file_to, detail, raised_at, resolved_at, officer_id, subject FROM alerts
                 WHERE id <= ?1 AND visible_after > raised_at AND visible_after > ?2 AND visible_after <= ?3
                 ORDER BY visible_after, id",
            )?
            .query_map(params![after_id, cutoff, until], alert)?
            .collect::<Result<_, _>>()?;
        let fresh: Vec<(Alert, bool)> = self
            .conn()
            .prepare_cached(
                "SELECT id, kind, device_id, agent_id, seq_from, seq_to, file_from, file_to, detail, raised_at, resolved_at,
                        officer_id, subject, visible_after <= ?2 FROM alerts WHERE id > ?1 ORDER BY id LIMIT ?3",
            )?
            .query_map(params![after_id, until, limit], |r| Ok((alert(r)?, r.get(13)?)))?
            .collect::<Result<_, _>>()?;
        let looked = fresh.last().map_or(after_id, |(a, _)| a.id);
        let mut out = late;
        out.extend(
            fresh
                .into_iter()
                .filter(|(_, visible)| *visible)
                .map(|(a, _)| a),
        );
        Ok((out, looked))
    }

    /// The highest alert id (0 when there is none).
    pub fn last_alert_id(&self) -> anyhow::Result<i64> {
        Ok(self
            .conn()
            .query_row("SELECT COALESCE(MAX(id), 0) FROM alerts", [], |r| r.get(0))?)
    }

    /// Raises an alert about an agent itself (its enrollment, its key) in its own transaction.
    pub fn raise_alert(
        &mut self,
        kind: AlertKind,
        device_id: &str,
        detail: &str,
    ) -> anyhow::Result<()> {
        let about = Subject::source(device_id, device_id, None);
        self.in_transaction(|tx| raise(tx, kind, about, detail, Duration::ZERO))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_gets_each_alert_once_the_late_ones_when_they_become_visible() {
        for e in super::super::tests::engines() {
            let (_dir, mut s) = super::super::tests::store_on(&e);
            let at = |m: u32| format!("2026-12-02T01:{m:02}:00.000Z");
            let put = |s: &mut Store, detail: &str, raised: u32, visible: u32| {
                s.in_transaction(|tx| {
                    let about = Subject::source("field-1", "field-1", Some((1, 1)));
                    raise_visible_at(
                        tx,
                        AlertKind::ChainBreak,
                        about,
                        detail,
                        &at(raised),
                        &at(visible),
                    )
                })
                .unwrap()
            };
            let details = |v: &[Alert]| v.iter().map(|a| a.detail.clone()).collect::<Vec<_>>();
            put(&mut s, "now-1", 1, 1);
            put(&mut s, "late", 1, 10); // a gap with a grace period: visible at :10
            put(&mut s, "now-2", 2, 2);
            // Looked at :05: the two visible ones; the late one is looked at but not sent.
            let (sent, looked) = s.alerts_to_push(0, &at(0), &at(5), 100).unwrap();
            assert_eq!(
                (details(&sent), looked),
                (vec!["now-1".into(), "now-2".into()], 3)
            );
            // At :09 nothing new; at :11 the late one, once.
            let (sent, looked) = s.alerts_to_push(3, &at(5), &at(9), 100).unwrap();
            assert_eq!((sent.len(), looked), (0, 3));
            put(&mut s, "now-3", 10, 10);
            let (sent, looked) = s.alerts_to_push(3, &at(9), &at(11), 100).unwrap();
            assert_eq!(
                (details(&sent), looked),
                (vec!["late".into(), "now-3".into()], 4)
            );
            let (sent, _) = s.alerts_to_push(4, &at(11), &at(12), 100).unwrap();
            assert!(sent.is_empty());
            // An alert committed with a visibility time already behind the
            // stream's clock (raised before a long transaction committed) is
            // still found, by its id.
            put(&mut s, "slow-commit", 3, 3);
            let (sent, looked) = s.alerts_to_push(4, &at(12), &at(13), 100).unwrap();
            assert_eq!((details(&sent), looked), (vec!["slow-commit".into()], 5));
        }
    }
}

//! Alerts: what the supervision platform must see. Raised by ingest when a
//! chain breaks, a sequence has a gap, or two records claim one place in a
//! chain; a gap alert resolves itself once the missing records arrive.

use std::time::Duration;

use chrono::Utc;
use rusqlite::{params, Transaction};
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
    /// The source device concerned.
    pub device_id: Option<String>,
    /// First sequence number concerned.
    pub seq_from: Option<i64>,
    /// Last sequence number concerned.
    pub seq_to: Option<i64>,
    /// Human-readable detail.
    pub detail: String,
    /// When raised.
    pub raised_at: String,
    /// When resolved (gap filled), if it was.
    pub resolved_at: Option<String>,
}

/// Raises an alert inside the caller's transaction, visible after `grace`.
pub(crate) fn raise(
    tx: &Transaction<'_>,
    kind: AlertKind,
    device_id: &str,
    seqs: Option<(u64, u64)>,
    detail: &str,
    grace: Duration,
) -> anyhow::Result<()> {
    if grace.is_zero() {
        tracing::warn!(kind = kind.as_str(), device_id, detail, "alert raised");
    } else {
        tracing::info!(
            kind = kind.as_str(),
            device_id,
            detail,
            ?grace,
            "alert pending"
        );
    }
    let raised = Utc::now();
    let visible = raised + chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::zero());
    tx.prepare_cached(
        "INSERT INTO alerts (kind, device_id, seq_from, seq_to, detail, raised_at, visible_after)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        kind.as_str(),
        device_id,
        seqs.map(|s| s.0 as i64),
        seqs.map(|s| s.1 as i64),
        detail,
        stamp(raised),
        stamp(visible)
    ])?;
    Ok(())
}

impl Store {
    /// Visible alerts, newest first; `open_only` leaves out resolved ones.
    pub fn alerts(&self, open_only: bool, limit: u32) -> anyhow::Result<Vec<Alert>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, kind, device_id, seq_from, seq_to, detail, raised_at, resolved_at FROM alerts
             WHERE visible_after <= ?3 AND (?1 = 0 OR resolved_at IS NULL) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![open_only, limit, now()], |r| {
                Ok(Alert {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    device_id: r.get(2)?,
                    seq_from: r.get(3)?,
                    seq_to: r.get(4)?,
                    detail: r.get(5)?,
                    raised_at: r.get(6)?,
                    resolved_at: r.get(7)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Raises an alert in its own transaction.
    pub fn raise_alert(
        &mut self,
        kind: AlertKind,
        device_id: &str,
        detail: &str,
    ) -> anyhow::Result<()> {
        self.in_transaction(|tx| raise(tx, kind, device_id, None, detail, Duration::ZERO))
    }
}

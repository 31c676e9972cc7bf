//! Media of media records: what the hub expects, what it holds, and what
//! failed verification. The bytes themselves live in the blob folder
//! ([`crate::media::blobs`]); this is the bookkeeping that says a record's
//! media is complete, which is never claimed before the blob is durable.

use super::db::{params, OptionalExtension, Transaction};
use serde::Serialize;

use evsync_protocol::record::RecordBody;

use super::alerts::{raise, AlertKind, Subject};
use super::{now, Store};

/// Where a record's media stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaState {
    /// The record is stored; its bytes have not arrived complete and verified.
    Awaiting,
    /// The bytes verified against the record's SHA-256 and are durably stored.
    Stored,
    /// Uploads failed verification too often; kept out of the store, alerted.
    Failed,
}

impl MediaState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Awaiting => "awaiting",
            Self::Stored => "stored",
            Self::Failed => "failed",
        }
    }

    /// The state with this stored name.
    pub(crate) fn from_name(s: &str) -> Option<Self> {
        [Self::Awaiting, Self::Stored, Self::Failed]
            .into_iter()
            .find(|m| m.as_str() == s)
    }

    fn parse(s: &str) -> super::db::Result<Self> {
        Self::from_name(s)
            .ok_or_else(|| super::db::Error::conversion(0, format!("unknown media state {s:?}")))
    }
}

/// One media record's bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MediaRow {
    /// The media record.
    pub record_id: String,
    /// The agent that signed it (the only one granted its upload).
    pub agent_id: String,
    /// The recorder or device it came from.
    pub device_id: String,
    /// SHA-256 (hex) the bytes must have.
    pub sha256: String,
    /// Their size.
    pub size: u64,
    /// MIME type from the record.
    pub mime: String,
    /// Where it stands.
    pub state: MediaState,
    /// Uploads whose hash did not match.
    pub mismatches: u32,
    /// When the bytes were stored.
    pub stored_at: Option<String>,
    /// Why it failed, for `failed`.
    pub detail: Option<String>,
    /// The recorder's index of the file, when the record gives one.
    pub file_index: Option<u64>,
    /// For a recording delivered before by another record (same recorder,
    /// file index and SHA-256, e.g. a second dock copied it again): that
    /// record's id. The bytes are stored once either way.
    pub recopy_of: Option<String>,
}

const COLUMNS: &str = "record_id, agent_id, device_id, sha256, size, mime, state, mismatches, stored_at, detail, file_index, recopy_of";

fn row(r: &super::db::Row) -> super::db::Result<MediaRow> {
    Ok(MediaRow {
        record_id: r.get(0)?,
        agent_id: r.get(1)?,
        device_id: r.get(2)?,
        sha256: r.get(3)?,
        size: r.get::<_, i64>(4)? as u64,
        mime: r.get(5)?,
        state: MediaState::parse(&r.get::<_, String>(6)?)?,
        mismatches: r.get(7)?,
        stored_at: r.get(8)?,
        detail: r.get(9)?,
        file_index: r.get::<_, Option<i64>>(10)?.map(|i| i as u64),
        recopy_of: r.get(11)?,
    })
}

/// Notes, inside the transaction that stores a media record, that the hub
/// now expects its bytes. Content already held (another record with the same
/// bytes) makes it `stored` at once: the same content is stored once. A
/// recording some earlier record already delivered (same recorder, file index
/// and SHA-256: a second dock copied it again) is marked a re-copy of it.
pub(crate) fn expect(tx: &Transaction<'_>, body: &RecordBody) -> anyhow::Result<MediaRow> {
    let Some(m) = &body.media else {
        anyhow::bail!("record {} is a media record without media", body.id);
    };
    let file_index = m.file_index.and_then(|i| i64::try_from(i).ok());
    let recopy_of: Option<String> = match file_index {
        None => None,
        Some(index) => tx
            .prepare_cached(
                "SELECT record_id FROM media WHERE device_id = ?1 AND file_index = ?2 AND sha256 = ?3
                 AND recopy_of IS NULL AND record_id <> ?4 ORDER BY rowid LIMIT 1",
            )?
            .query_row(
                params![body.device_id, index, m.sha256, body.id.to_string()],
                |r| r.get(0),
            )
            .optional()?,
    };
    if let Some(first) = &recopy_of {
        tracing::info!(
            record = %body.id,
            recorder = body.device_id,
            agent = body.agent_id,
            file_index,
            first,
            "recording delivered again by another record: marked a re-copy"
        );
    }
    let held: bool = tx
        .prepare_cached("SELECT 1 FROM blobs WHERE sha256 = ?1 AND size = ?2")?
        .query_row(params![m.sha256, m.size as i64], |_| Ok(()))
        .optional()?
        .is_some();
    let (state, stored_at) = if held {
        (MediaState::Stored, Some(now()))
    } else {
        (MediaState::Awaiting, None)
    };
    tx.prepare_cached(
        "INSERT INTO media (record_id, agent_id, device_id, sha256, size, mime, state, created_at, stored_at, file_index, recopy_of)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (record_id) DO NOTHING",
    )?
    .execute(params![
        body.id.to_string(),
        body.agent_id,
        body.device_id,
        m.sha256,
        m.size as i64,
        m.mime,
        state.as_str(),
        now(),
        stored_at,
        file_index,
        recopy_of
    ])?;
    // For coverage, once the media row says whether its bytes are held.
    if recopy_of.is_none() {
        super::coverage::recorded(tx, body, held)?;
    }
    Ok(MediaRow {
        record_id: body.id.to_string(),
        agent_id: body.agent_id.clone(),
        device_id: body.device_id.clone(),
        sha256: m.sha256.clone(),
        size: m.size,
        mime: m.mime.clone(),
        state,
        mismatches: 0,
        stored_at,
        detail: None,
        file_index: m.file_index,
        recopy_of,
    })
}

impl Store {
    /// The media bookkeeping of one record.
    pub fn media(&self, record_id: &str) -> anyhow::Result<Option<MediaRow>> {
        Ok(self
            .conn()
            .prepare_cached(&format!("SELECT {COLUMNS} FROM media WHERE record_id = ?1"))?
            .query_row([record_id], row)
            .optional()?)
    }

    /// SHA-256 (hex) of every recording signed by agent `agent_id` whose
    /// bytes are verified and stored.
    pub fn stored_hashes(&self, agent_id: &str) -> anyhow::Result<Vec<String>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT DISTINCT sha256 FROM media WHERE agent_id = ?1 AND state = 'stored'",
        )?;
        let rows = stmt
            .query_map([agent_id], |r| r.get(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Hashes that some record still awaits (partials of others are abandoned).
    pub fn awaited_hashes(&self) -> anyhow::Result<Vec<String>> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT DISTINCT sha256 FROM media WHERE state = 'awaiting'")?;
        let rows = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Records that verified content `sha256` of `size` bytes is now durably
    /// in the blob folder, and marks every record awaiting it stored. Returns
    /// those records (each is owed a media receipt).
    pub fn blob_stored(&mut self, sha256: &str, size: u64) -> anyhow::Result<Vec<MediaRow>> {
        self.blob_stored_at(sha256, size, chrono::Utc::now())
    }

    /// [`Store::blob_stored`] at a given time: for bytes that arrived
    /// earlier than they are recorded (history brought into a new hub, and
    /// timeliness measured against when they really came).
    pub fn blob_stored_at(
        &mut self,
        sha256: &str,
        size: u64,
        at: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<Vec<MediaRow>> {
        self.in_transaction(|tx| {
            let t = super::stamp(at);
            tx.prepare_cached(
                "INSERT INTO blobs (sha256, size, stored_at) VALUES (?1, ?2, ?3) ON CONFLICT (sha256) DO NOTHING",
            )?
            .execute(params![sha256, size as i64, t])?;
            // By the content's index: the partial index of awaited rows
            // would visit every one of them (SQLite keeps no planner
            // statistics to know better).
            let by_sha = tx.dialect().indexed_by("media_by_sha");
            let rows = tx
                .prepare_cached(&format!(
                    "UPDATE media {by_sha} SET state = 'stored', stored_at = ?3, detail = NULL
                     WHERE sha256 = ?1 AND size = ?2 AND state = 'awaiting' RETURNING {COLUMNS}"
                ))?
                .query_map(params![sha256, size as i64, t], row)?
                .collect::<Result<Vec<_>, _>>()?;
            let ids: Vec<String> = rows.iter().map(|r| r.record_id.clone()).collect();
            super::coverage::arrived(tx, &ids, at.timestamp_millis())?;
            Ok(rows)
        })
    }

    /// Counts a hash mismatch against every record awaiting `sha256`; those
    /// reaching `max` mismatches fail, with an alert. Returns the records that
    /// failed now (each is owed a `failed` media receipt).
    pub fn media_mismatch(
        &mut self,
        sha256: &str,
        got: &str,
        max: u32,
    ) -> anyhow::Result<Vec<MediaRow>> {
        self.in_transaction(|tx| {
            let detail = format!(
                "uploaded bytes hashed to {got}, not the signed {sha256}, {max} times: kept out of the store"
            );
            let by_sha = tx.dialect().indexed_by("media_by_sha");
            tx.prepare_cached(&format!(
                "UPDATE media {by_sha} SET mismatches = mismatches + 1 WHERE sha256 = ?1 AND state = 'awaiting'",
            ))?
            .execute([sha256])?;
            let failed = tx
                .prepare_cached(&format!(
                    "UPDATE media {by_sha} SET state = 'failed', detail = ?3
                     WHERE sha256 = ?1 AND state = 'awaiting' AND mismatches >= ?2 RETURNING {COLUMNS}"
                ))?
                .query_map(params![sha256, max, detail], row)?
                .collect::<Result<Vec<_>, _>>()?;
            for m in &failed {
                raise(
                    tx,
                    AlertKind::MediaFailed,
                    Subject::source(&m.device_id, &m.agent_id, None),
                    &format!("media of record {}: {detail}", m.record_id),
                    std::time::Duration::ZERO,
                )?;
            }
            Ok(failed)
        })
    }
}

//! What the dock took off each recorder, committed with the records it
//! made: which file indexes are copied, accounted for, safe and deleted.

use anyhow::Context as _;
use evsync_protocol::chain::Hash;
use evsync_protocol::record::RecordBody;
use evsync_protocol::signing::SigningKey;
use rusqlite::params;

use super::{append_in, hold_media_in, now, Buffer, HeldMedia};

/// A file copied off a recorder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockedFile {
    /// Its index on the recorder.
    pub index: u32,
    /// Its name on the recorder.
    pub name: String,
    /// Its size on the recorder.
    pub size: u64,
}

/// A ledger row, with whether the hub holds the file verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    /// The file.
    pub file: DockedFile,
    /// SHA-256 of the copy.
    pub sha256: String,
    /// Its record.
    pub record_id: uuid::Uuid,
    /// The hub receipted the record and the media: the copy is no longer needed anywhere.
    pub safe: bool,
    /// Deleted from the recorder.
    pub deleted: bool,
}

impl Buffer {
    /// Commits the media record of a file copied off `recorder_id`, the
    /// held copy and the ledger row, in one transaction.
    pub fn append_docked(
        &mut self,
        key: &SigningKey,
        recorder_id: &str,
        file: &DockedFile,
        held: &HeldMedia,
        make: impl FnOnce(u64, Hash) -> RecordBody,
    ) -> anyhow::Result<RecordBody> {
        let tx = self.conn.transaction()?;
        let body = append_in(&tx, key, recorder_id, make)?;
        hold_media_in(&tx, held, &body)?;
        tx.prepare_cached(
            "INSERT INTO recorder_files (recorder_id, file_index, name, size, sha256, record_id, copied_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            recorder_id,
            file.index,
            file.name,
            file.size as i64,
            held.sha256,
            body.id.to_string(),
            now()
        ])
        .with_context(|| format!("file #{} of {recorder_id} is already in the ledger", file.index))?;
        tx.commit()
            .context("committing a docked file to the buffer")?;
        Ok(body)
    }

    /// Commits a record about `recorder_id` (a clock correction, missing
    /// files); `missing`, if given, is the range of indexes it reports missing.
    pub fn append_recorder_event(
        &mut self,
        key: &SigningKey,
        recorder_id: &str,
        missing: Option<(u32, u32)>,
        make: impl FnOnce(u64, Hash) -> RecordBody,
    ) -> anyhow::Result<RecordBody> {
        let tx = self.conn.transaction()?;
        let body = append_in(&tx, key, recorder_id, make)?;
        if let Some((from, to)) = missing {
            tx.prepare_cached(
                "INSERT INTO recorder_missing (recorder_id, from_index, to_index, record_id) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![recorder_id, from, to, body.id.to_string()])?;
        }
        tx.commit()
            .context("committing a recorder event to the buffer")?;
        Ok(body)
    }

    /// Records a docking of `recorder_id`; the first one sets the baseline
    /// (the lowest index listed, less one) below which nothing is expected.
    /// Returns the baseline.
    pub fn docked(&mut self, recorder_id: &str, baseline: u32) -> anyhow::Result<u32> {
        self.conn
            .prepare_cached(
                "INSERT INTO recorders (recorder_id, baseline, last_docked) VALUES (?1, ?2, ?3)
                 ON CONFLICT (recorder_id) DO UPDATE SET last_docked = excluded.last_docked",
            )?
            .execute(params![recorder_id, baseline, now()])?;
        Ok(self
            .conn
            .prepare_cached("SELECT baseline FROM recorders WHERE recorder_id = ?1")?
            .query_row([recorder_id], |r| r.get(0))?)
    }

    /// Index ranges of `recorder_id` already reported missing.
    pub fn missing(&self, recorder_id: &str) -> anyhow::Result<Vec<(u32, u32)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT from_index, to_index FROM recorder_missing WHERE recorder_id = ?1 ORDER BY from_index",
        )?;
        let rows = stmt.query_map([recorder_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The ledger of `recorder_id`, by index.
    pub fn ledger(&self, recorder_id: &str) -> anyhow::Result<Vec<LedgerRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT f.file_index, f.name, f.size, f.sha256, f.record_id, f.deleted_at IS NOT NULL,
                    NOT EXISTS (SELECT 1 FROM outbox o WHERE o.id = f.record_id)
                    AND NOT EXISTS (SELECT 1 FROM media m WHERE m.sha256 = f.sha256)
             FROM recorder_files f WHERE f.recorder_id = ?1 ORDER BY f.file_index",
        )?;
        let rows = stmt.query_map([recorder_id], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, bool>(5)?,
                r.get::<_, bool>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (index, name, size, sha256, record_id, deleted, safe) = row?;
            out.push(LedgerRow {
                file: DockedFile {
                    index,
                    name,
                    size: size as u64,
                },
                sha256,
                record_id: record_id
                    .parse()
                    .context("the buffer's ledger holds a malformed record id")?,
                safe,
                deleted,
            });
        }
        Ok(out)
    }

    /// Notes that file `index` is gone from `recorder_id`.
    pub fn mark_deleted(&mut self, recorder_id: &str, index: u32) -> anyhow::Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE recorder_files SET deleted_at = ?3 WHERE recorder_id = ?1 AND file_index = ?2",
            )?
            .execute(params![recorder_id, index, now()])?;
        Ok(())
    }
}

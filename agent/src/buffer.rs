//! The agent's durable buffer (SQLite, WAL, `synchronous=FULL`): the outbox
//! of signed records, each source's chain head, the ledger of spool files
//! already taken, held media copies with their upload state, and the log of
//! receipts.
//!
//! This is the only source of truth about what is safe at the hub. A record
//! is appended (numbered, chained, signed) in one transaction, and removed
//! only by [`Buffer::apply_receipt`], in the transaction that logs the receipt.
//! A media copy is let go only by [`Buffer::media_receipted`], for a media
//! receipt the hub signed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use chrono::{DateTime, SecondsFormat, Utc};
use evsync_protocol::chain::{Hash, Head};
use evsync_protocol::envelope::{Envelope, MAX_BODY_LEN};
use evsync_protocol::receipt::ReceiptBody;
use evsync_protocol::record::RecordBody;
use evsync_protocol::signing::{Context, SigningKey};
use rusqlite::{params, Connection, OptionalExtension};

mod checkouts;
mod dock_ledger;
mod recorder_configs;
pub use checkouts::{Checkout, Holder};
pub use dock_ledger::{DockedFile, LedgerRow};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS chain (
    device_id TEXT PRIMARY KEY,
    seq       INTEGER NOT NULL,
    hash      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    pos        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    device_id  TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    hash       TEXT NOT NULL,
    body       BLOB NOT NULL,
    signature  BLOB NOT NULL,
    created_at TEXT NOT NULL,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS spooled (
    name        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    record_id   TEXT NOT NULL,
    ingested_at TEXT NOT NULL,
    PRIMARY KEY (name, sha256, fingerprint)
);
CREATE TABLE IF NOT EXISTS media (
    sha256    TEXT PRIMARY KEY,
    path      TEXT NOT NULL,
    size      INTEGER NOT NULL,
    record_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS receipts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    hub_id      TEXT NOT NULL,
    entries     INTEGER NOT NULL,
    payload     BLOB NOT NULL
);
";

/// Version 2: upload order, grants and failures of held media.
const MEDIA_UPLOADS: &str = "
ALTER TABLE media ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE media ADD COLUMN file_name TEXT NOT NULL DEFAULT '';
ALTER TABLE media ADD COLUMN created_at TEXT NOT NULL DEFAULT '';
ALTER TABLE media ADD COLUMN grant_token TEXT;
ALTER TABLE media ADD COLUMN grant_url TEXT;
ALTER TABLE media ADD COLUMN grant_expires TEXT;
ALTER TABLE media ADD COLUMN failed TEXT;
CREATE INDEX IF NOT EXISTS media_order ON media (priority DESC, created_at);
";

/// Version 3: what the dock took off each recorder.
const DOCK_LEDGER: &str = "
CREATE TABLE IF NOT EXISTS recorder_files (
    recorder_id TEXT NOT NULL,
    file_index  INTEGER NOT NULL,
    name        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    record_id   TEXT NOT NULL,
    copied_at   TEXT NOT NULL,
    deleted_at  TEXT,
    PRIMARY KEY (recorder_id, file_index)
);
CREATE TABLE IF NOT EXISTS recorders (
    recorder_id  TEXT PRIMARY KEY,
    -- Indexes up to here predate the first docking: nothing is expected of them.
    baseline     INTEGER NOT NULL,
    last_docked  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS recorder_missing (
    recorder_id TEXT NOT NULL,
    from_index  INTEGER NOT NULL,
    to_index    INTEGER NOT NULL,
    record_id   TEXT NOT NULL,
    PRIMARY KEY (recorder_id, from_index)
);
";

/// Version 4: check-out requests (pooled recorders handed to officers).
const CHECKOUTS: &str = "
CREATE TABLE IF NOT EXISTS checkouts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    officer_no   TEXT NOT NULL,
    unit_no      TEXT NOT NULL,
    officer_name TEXT NOT NULL,
    unit_name    TEXT NOT NULL,
    -- Asked for, or once claimed the one being handed out.
    recorder_id  TEXT,
    -- pending | claimed | done | refused
    state        TEXT NOT NULL,
    result       TEXT,
    requested_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    done_at      TEXT
);
CREATE INDEX IF NOT EXISTS checkouts_pending ON checkouts (state, id);
";

/// Version 5: the newest configuration assignment accepted for each
/// recorder, so that an older one is refused as a rollback even after a
/// restart, and the firmware last recorded as installed on it.
const RECORDER_CONFIGS: &str = "
CREATE TABLE IF NOT EXISTS recorder_configs (
    recorder_id  TEXT PRIMARY KEY,
    version      INTEGER NOT NULL,
    config_hash  TEXT NOT NULL,
    accepted_at  TEXT NOT NULL,
    -- The firmware version last recorded as installed on it.
    firmware_reported TEXT
);
";

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A record waiting for its receipt.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Position in the outbox (send order).
    pub pos: i64,
    /// Record id.
    pub id: uuid::Uuid,
    /// The signed record as transmitted.
    pub envelope: Envelope,
}

/// Where a spool file came from, for the idempotency ledger.
#[derive(Debug, Clone)]
pub struct SpoolOrigin {
    /// File name in the spool folder.
    pub name: String,
    /// SHA-256 (hex) of its content.
    pub sha256: String,
    /// Which version of the file (inode, size, modification time).
    pub fingerprint: String,
}

/// A media copy the agent holds for the record.
#[derive(Debug, Clone)]
pub struct HeldMedia {
    /// SHA-256 (hex).
    pub sha256: String,
    /// Where the copy is.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// The recording's file name (for progress displays).
    pub file_name: String,
    /// Upload priority: higher first (files marked important), then oldest first.
    pub priority: i64,
}

/// A hub-signed upload grant the agent holds for a media copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldGrant {
    /// The HTTP credential.
    pub token: String,
    /// Where to upload.
    pub url: String,
    /// When the hub stops accepting it.
    pub expires_at: DateTime<Utc>,
}

/// A media copy waiting to be uploaded and receipted.
#[derive(Debug, Clone)]
pub struct MediaUpload {
    /// The media record.
    pub record_id: uuid::Uuid,
    /// SHA-256 (hex) of the copy.
    pub sha256: String,
    /// Where the copy is.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// The recording's file name.
    pub file_name: String,
    /// The grant held for it, if any.
    pub grant: Option<HeldGrant>,
}

/// Media figures for status messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MediaBacklog {
    /// Recordings not yet receipted by the hub.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Of those, recordings the hub refused after repeated hash mismatches (kept here).
    pub failed: u64,
}

/// Backlog figures for status messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Backlog {
    /// Records waiting for a receipt.
    pub records: u64,
    /// Their body bytes.
    pub bytes: u64,
}

/// What applying a receipt did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Records removed from the outbox (stored or duplicate at the hub).
    pub removed: usize,
    /// Entries the hub refused (records kept, error noted).
    pub rejected: usize,
    /// Entries naming records this agent does not hold (already removed, or not ours).
    pub unmatched: usize,
}

/// Numbers, chains, signs and inserts one record inside `tx`.
fn append_in(
    tx: &rusqlite::Transaction<'_>,
    key: &SigningKey,
    device_id: &str,
    make: impl FnOnce(u64, Hash) -> RecordBody,
) -> anyhow::Result<RecordBody> {
    let head: Option<(i64, String)> = tx
        .prepare_cached("SELECT seq, hash FROM chain WHERE device_id = ?1")?
        .query_row([device_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let head = match head {
        None => Head::default(),
        Some((seq, hash)) => Head {
            seq: seq as u64,
            hash: Hash::from_hex(&hash)
                .context("the buffer's chain table holds a malformed hash")?,
        },
    };
    let body = make(head.seq + 1, head.hash);
    body.validate()
        .context("the agent built an invalid record")?;
    anyhow::ensure!(
        body.device_id == device_id && body.seq == head.seq + 1,
        "the agent built record {} of {} for the chain of {device_id} at {}",
        body.seq,
        body.device_id,
        head.seq + 1
    );
    let bytes = body.to_bytes();
    anyhow::ensure!(
        bytes.len() <= MAX_BODY_LEN,
        "record {} of {device_id} would be {} bytes: the protocol allows {MAX_BODY_LEN}",
        body.seq,
        bytes.len()
    );
    let env = Envelope::seal(key, Context::Record, bytes);
    let hash = Hash::of(&env.body);
    tx.prepare_cached(
        "INSERT INTO outbox (id, device_id, seq, hash, body, signature, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        body.id.to_string(),
        device_id,
        body.seq as i64,
        hash.to_hex(),
        env.body,
        env.signature.as_slice(),
        now()
    ])?;
    tx.prepare_cached(
        "INSERT INTO chain (device_id, seq, hash) VALUES (?1, ?2, ?3)
         ON CONFLICT (device_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
    )?
    .execute(params![device_id, body.seq as i64, hash.to_hex()])?;
    Ok(body)
}

/// Keeps a media copy until the hub receipts it. The same content held
/// twice is uploaded once: the hub stores it once and receipts every record
/// that names it.
fn hold_media_in(
    tx: &rusqlite::Transaction<'_>,
    m: &HeldMedia,
    body: &RecordBody,
) -> anyhow::Result<()> {
    tx.prepare_cached(
        "INSERT INTO media (sha256, path, size, record_id, file_name, priority, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (sha256) DO NOTHING",
    )?
    .execute(params![
        m.sha256,
        m.path.to_string_lossy(),
        m.size as i64,
        body.id.to_string(),
        m.file_name,
        m.priority,
        now()
    ])?;
    Ok(())
}

/// Runs `f` on the buffer shared by the agent's tasks, off the async runtime
/// (SQLite calls block, and commits wait for the disk).
pub async fn with_buffer<T: Send + 'static>(
    buffer: &Arc<Mutex<Buffer>>,
    f: impl FnOnce(&mut Buffer) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let buffer = buffer.clone();
    tokio::task::spawn_blocking(move || {
        let mut b = buffer
            .lock()
            .map_err(|_| anyhow::anyhow!("buffer lock poisoned"))?;
        f(&mut b)
    })
    .await
    .context("buffer task")?
}

/// The buffer.
pub struct Buffer {
    conn: Connection,
}

impl Buffer {
    /// Opens (creating if needed) the buffer at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let mut conn = Connection::open(path)
            .with_context(|| format!("opening the buffer {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)
            .with_context(|| format!("creating the buffer schema in {}", path.display()))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        anyhow::ensure!(
            version <= 5,
            "buffer {} has schema version {version}, newer than this agent understands (5): upgrade the agent",
            path.display()
        );
        for (to, step) in [
            (2, MEDIA_UPLOADS),
            (3, DOCK_LEDGER),
            (4, CHECKOUTS),
            (5, RECORDER_CONFIGS),
        ] {
            if version < to {
                let tx = conn.transaction()?;
                tx.execute_batch(step).with_context(|| {
                    format!("migrating the buffer {} to version {to}", path.display())
                })?;
                tx.pragma_update(None, "user_version", to)?;
                tx.commit()?;
            }
        }
        Ok(Self { conn })
    }

    /// Whether this version of a spool file was already recorded (a crash came
    /// between the commit and the removal of the file).
    pub fn already_spooled(&self, origin: &SpoolOrigin) -> anyhow::Result<bool> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT 1 FROM spooled WHERE name = ?1 AND sha256 = ?2 AND fingerprint = ?3",
            )?
            .query_row(
                params![origin.name, origin.sha256, origin.fingerprint],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Numbers, chains and signs a record for `device_id` and commits it, with
    /// the spool ledger entry and media copy, in one transaction.
    /// `make` receives the sequence number and previous hash and builds the body.
    pub fn append(
        &mut self,
        key: &SigningKey,
        device_id: &str,
        origin: Option<&SpoolOrigin>,
        media: Option<&HeldMedia>,
        make: impl FnOnce(u64, Hash) -> RecordBody,
    ) -> anyhow::Result<RecordBody> {
        let tx = self.conn.transaction()?;
        let body = append_in(&tx, key, device_id, make)?;
        if let Some(o) = origin {
            tx.prepare_cached(
                "INSERT INTO spooled (name, sha256, fingerprint, record_id, ingested_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![o.name, o.sha256, o.fingerprint, body.id.to_string(), now()])?;
        }
        if let Some(m) = media {
            hold_media_in(&tx, m, &body)?;
        }
        tx.commit().context("committing a record to the buffer")?;
        Ok(body)
    }

    /// Appends `count` records of `device_id` in one transaction (a recorder's
    /// event log read at docking, a benchmark's prefill).
    pub fn append_many(
        &mut self,
        key: &SigningKey,
        device_id: &str,
        count: usize,
        mut make: impl FnMut(u64, Hash) -> RecordBody,
    ) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        for _ in 0..count {
            append_in(&tx, key, device_id, &mut make)?;
        }
        tx.commit().context("committing records to the buffer")?;
        Ok(())
    }

    /// Up to `limit` unreceipted records after outbox position `after`, in order.
    pub fn pending_after(&self, after: i64, limit: usize) -> anyhow::Result<Vec<Pending>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT pos, id, body, signature FROM outbox WHERE pos > ?1 ORDER BY pos LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![after, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(pos, id, body, sig)| {
                let signature: [u8; 64] = sig.try_into().map_err(|_| {
                    anyhow::anyhow!("outbox position {pos}: stored signature is not 64 bytes")
                })?;
                Ok(Pending {
                    pos,
                    id: id
                        .parse()
                        .with_context(|| format!("outbox position {pos}: bad id"))?,
                    envelope: Envelope { body, signature },
                })
            })
            .collect()
    }

    /// Outbox position of the oldest unreceipted record.
    pub fn oldest_pending(&self) -> anyhow::Result<Option<i64>> {
        Ok(self
            .conn
            .query_row("SELECT MIN(pos) FROM outbox", [], |r| r.get(0))?)
    }

    /// Applies a verified receipt: removes records the hub holds (matching id
    /// and hash), notes refusals, and logs the receipt, in one transaction.
    pub fn apply_receipt(&mut self, receipt: &ReceiptBody, raw: &[u8]) -> anyhow::Result<Applied> {
        let tx = self.conn.transaction()?;
        let mut applied = Applied::default();
        for e in &receipt.entries {
            let id = e.id.to_string();
            let n = if e.is_safe_at_hub() {
                let n = tx
                    .prepare_cached("DELETE FROM outbox WHERE id = ?1 AND hash = ?2")?
                    .execute(params![id, e.hash])?;
                applied.removed += n;
                n
            } else {
                let reason = e
                    .reason
                    .clone()
                    .unwrap_or_else(|| "refused without a reason".into());
                let n = tx
                    .prepare_cached(
                        "UPDATE outbox SET last_error = ?3 WHERE id = ?1 AND hash = ?2",
                    )?
                    .execute(params![id, e.hash, reason])?;
                applied.rejected += n;
                n
            };
            if n == 0 {
                applied.unmatched += 1;
            }
        }
        tx.prepare_cached(
            "INSERT INTO receipts (received_at, hub_id, entries, payload) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            now(),
            receipt.hub_id,
            receipt.entries.len() as i64,
            raw
        ])?;
        tx.commit().context("committing a receipt to the buffer")?;
        Ok(applied)
    }

    /// Number of records waiting for receipts (cheaper than [`Buffer::backlog`],
    /// which reads every body's length).
    pub fn unreceipted(&self) -> anyhow::Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Records and bytes waiting for receipts.
    pub fn backlog(&self) -> anyhow::Result<Backlog> {
        let (records, bytes): (i64, Option<i64>) =
            self.conn
                .query_row("SELECT COUNT(*), SUM(LENGTH(body)) FROM outbox", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
        Ok(Backlog {
            records: records as u64,
            bytes: bytes.unwrap_or(0) as u64,
        })
    }
}

/// Media queries and updates.
impl Buffer {
    /// Media copies to upload, in upload order (priority, then oldest),
    /// leaving out failed ones and those whose record the hub has not
    /// receipted yet (it grants uploads only for records it holds).
    pub fn uploads_due(&self, limit: usize) -> anyhow::Result<Vec<MediaUpload>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT record_id, sha256, path, size, file_name, grant_token, grant_url, grant_expires FROM media
             WHERE failed IS NULL AND record_id NOT IN (SELECT id FROM outbox)
             ORDER BY priority DESC, created_at, rowid LIMIT ?1",
        )?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(id, sha256, path, size, file_name, token, url, expires)| {
                let grant = match (token, url, expires) {
                    (Some(token), Some(url), Some(expires)) => Some(HeldGrant {
                        token,
                        url,
                        expires_at: DateTime::parse_from_rfc3339(&expires)
                            .with_context(|| {
                                format!("media of {id}: bad grant expiry {expires:?}")
                            })?
                            .with_timezone(&Utc),
                    }),
                    _ => None,
                };
                Ok(MediaUpload {
                    record_id: id
                        .parse()
                        .with_context(|| format!("media table: bad record id {id:?}"))?,
                    sha256,
                    path: PathBuf::from(path),
                    size: size as u64,
                    file_name,
                    grant,
                })
            })
            .collect()
    }

    /// Keeps a grant for the media of `record_id` (if the agent still holds
    /// that content). Returns whether it matched.
    pub fn set_grant(
        &mut self,
        record_id: &uuid::Uuid,
        sha256: &str,
        grant: &HeldGrant,
    ) -> anyhow::Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE media SET grant_token = ?3, grant_url = ?4, grant_expires = ?5
                 WHERE record_id = ?1 AND sha256 = ?2 AND failed IS NULL",
            )?
            .execute(params![
                record_id.to_string(),
                sha256,
                grant.token,
                grant.url,
                grant
                    .expires_at
                    .to_rfc3339_opts(SecondsFormat::Millis, true)
            ])?;
        Ok(n > 0)
    }

    /// Forgets the grant of `record_id` (refused or used up): the next attempt asks for a new one.
    pub fn clear_grant(&mut self, record_id: &uuid::Uuid) -> anyhow::Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE media SET grant_token = NULL, grant_url = NULL, grant_expires = NULL WHERE record_id = ?1",
            )?
            .execute([record_id.to_string()])?;
        Ok(())
    }

    /// Applies a `stored` media receipt: forgets the media copy of
    /// `record_id` if it has this SHA-256, returning the copy's path for the
    /// caller to delete once this has committed.
    pub fn media_receipted(
        &mut self,
        record_id: &uuid::Uuid,
        sha256: &str,
    ) -> anyhow::Result<Option<PathBuf>> {
        let path: Option<String> = self
            .conn
            .prepare_cached(
                "DELETE FROM media WHERE record_id = ?1 AND sha256 = ?2 RETURNING path",
            )?
            .query_row(params![record_id.to_string(), sha256], |r| r.get(0))
            .optional()?;
        Ok(path.map(PathBuf::from))
    }

    /// Whether a record still waiting for its media receipt uses the copy of
    /// this content (copies are named by their SHA-256).
    pub fn holds_copy(&self, sha256: &str) -> anyhow::Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM media WHERE sha256 = ?1 LIMIT 1")?
            .query_row(params![sha256], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Applies a `failed` media receipt: the copy stays, marked so it is not
    /// sent again until an operator acts. Returns whether it matched.
    pub fn media_failed(
        &mut self,
        record_id: &uuid::Uuid,
        sha256: &str,
        reason: &str,
    ) -> anyhow::Result<bool> {
        let n = self
            .conn
            .prepare_cached("UPDATE media SET failed = ?3 WHERE record_id = ?1 AND sha256 = ?2")?
            .execute(params![record_id.to_string(), sha256, reason])?;
        Ok(n > 0)
    }

    /// Recordings held until the hub receipts them.
    pub fn media_backlog(&self) -> anyhow::Result<MediaBacklog> {
        let (files, bytes, failed): (i64, Option<i64>, i64) = self.conn.query_row(
            "SELECT COUNT(*), SUM(size), COUNT(failed) FROM media",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(MediaBacklog {
            files: files as u64,
            bytes: bytes.unwrap_or(0) as u64,
            failed: failed as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evsync_protocol::receipt::{Entry, Status};
    use evsync_protocol::record::{Event, Kind, VERSION};

    fn event_body(seq: u64, prev: Hash) -> RecordBody {
        RecordBody {
            v: VERSION,
            id: uuid::Uuid::now_v7(),
            kind: Kind::Event,
            device_id: "field-1".into(),
            agent_id: "field-1".into(),
            seq,
            prev_hash: prev.to_hex(),
            officer_id: None,
            unit_code: None,
            device_time: Utc::now(),
            ingest_time: Utc::now(),
            clock_offset_ms: 0,
            media: None,
            event: Some(Event::DutyStarted),
            geo: None,
        }
    }

    fn receipt_for(p: &Pending, status: Status) -> ReceiptBody {
        let body = RecordBody::parse(&p.envelope.body).unwrap();
        ReceiptBody {
            v: 1,
            hub_id: "hub".into(),
            agent_id: "field-1".into(),
            issued_at: Utc::now(),
            entries: vec![Entry {
                id: p.id,
                device_id: body.device_id,
                seq: body.seq,
                hash: Hash::of(&p.envelope.body).to_hex(),
                status,
                reason: Some("test".into()),
            }],
        }
    }

    #[test]
    fn appended_records_form_a_chain_that_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_seed_for_tests(&[5; 32]).unwrap();
        let path = dir.path().join("buffer.sqlite");
        let first = {
            let mut b = Buffer::open(&path).unwrap();
            b.append(&key, "field-1", None, None, event_body).unwrap()
        };
        let mut b = Buffer::open(&path).unwrap();
        let second = b.append(&key, "field-1", None, None, event_body).unwrap();
        assert_eq!((first.seq, second.seq), (1, 2));
        let pending = b.pending_after(0, 10).unwrap();
        assert_eq!(
            second.prev_hash,
            Hash::of(&pending[0].envelope.body).to_hex()
        );
        assert_eq!(pending.len(), 2);
    }

    #[test]
    fn only_a_matching_stored_or_duplicate_entry_removes_a_record() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_seed_for_tests(&[5; 32]).unwrap();
        let mut b = Buffer::open(&dir.path().join("b.sqlite")).unwrap();
        b.append(&key, "field-1", None, None, event_body).unwrap();
        let p = b.pending_after(0, 1).unwrap().remove(0);

        let refused = receipt_for(&p, Status::Rejected);
        assert_eq!(b.apply_receipt(&refused, b"r").unwrap().rejected, 1);
        let mut wrong_hash = receipt_for(&p, Status::Stored);
        wrong_hash.entries[0].hash = "00".repeat(32);
        assert_eq!(b.apply_receipt(&wrong_hash, b"r").unwrap().unmatched, 1);
        assert_eq!(b.backlog().unwrap().records, 1);

        assert_eq!(
            b.apply_receipt(&receipt_for(&p, Status::Duplicate), b"r")
                .unwrap()
                .removed,
            1
        );
        assert_eq!(b.backlog().unwrap().records, 0);
    }

    fn held(sha: &str, name: &str, priority: i64) -> HeldMedia {
        HeldMedia {
            sha256: sha.repeat(64),
            path: PathBuf::from(format!("/data/media/{name}")),
            size: 10,
            file_name: name.into(),
            priority,
        }
    }

    #[test]
    fn media_is_due_only_after_its_record_is_receipted_important_first_and_released_on_receipt() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_seed_for_tests(&[5; 32]).unwrap();
        let mut b = Buffer::open(&dir.path().join("b.sqlite")).unwrap();
        let old = b
            .append(
                &key,
                "field-1",
                None,
                Some(&held("a", "old.mp4", 0)),
                event_body,
            )
            .unwrap();
        let imp = b
            .append(
                &key,
                "field-1",
                None,
                Some(&held("b", "x_IMP.mp4", 1)),
                event_body,
            )
            .unwrap();
        assert!(
            b.uploads_due(10).unwrap().is_empty(),
            "no upload before the hub holds the record"
        );
        for p in b.pending_after(0, 10).unwrap() {
            b.apply_receipt(&receipt_for(&p, Status::Stored), b"r")
                .unwrap();
        }
        let due = b.uploads_due(10).unwrap();
        let order: Vec<_> = due.iter().map(|u| u.record_id).collect();
        assert_eq!(order, vec![imp.id, old.id], "important first, then oldest");
        assert!(due.iter().all(|u| u.grant.is_none()));

        let grant = HeldGrant {
            token: "t".into(),
            url: "http://hub/api/v1/uploads/x".into(),
            expires_at: Utc::now(),
        };
        assert!(
            !b.set_grant(&old.id, &"f".repeat(64), &grant).unwrap(),
            "a grant for other content is not kept"
        );
        assert!(b.set_grant(&old.id, &"a".repeat(64), &grant).unwrap());
        let due = b.uploads_due(10).unwrap();
        assert_eq!(due[1].grant.as_ref().map(|g| g.token.as_str()), Some("t"));

        assert!(b
            .media_failed(&imp.id, &"b".repeat(64), "mismatch")
            .unwrap());
        assert_eq!(
            b.uploads_due(10).unwrap().len(),
            1,
            "a failed recording is not sent again"
        );
        assert_eq!(
            b.media_receipted(&old.id, &"b".repeat(64)).unwrap(),
            None,
            "hash must match"
        );
        assert_eq!(
            b.media_receipted(&old.id, &"a".repeat(64)).unwrap(),
            Some(PathBuf::from("/data/media/old.mp4"))
        );
        let left = b.media_backlog().unwrap();
        assert_eq!((left.files, left.failed), (1, 1), "the failed copy is kept");
    }
}

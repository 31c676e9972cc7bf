//! The audit log: who read which evidence (and made which change), when,
//! from where. Append-only (the table refuses updates and deletes) and
//! hash-chained: entry n's hash is SHA-256 over the previous entry's hash
//! and entry n's content, and the hub signs each hash with its key. A row
//! changed, removed or slipped in later breaks the chain at that row, and
//! rewriting the chain from there on needs the hub's private key.
//!
//! Entry hash, recomputable by hand: SHA-256 (hex) of the compact JSON array
//! `[prev_hash, seq, at, actor, role, action, target, remote, detail,
//! first_hub_seq, last_hub_seq, reads]` (strings as JSON strings, numbers as
//! numbers, absent ones `null`; serde_json's escaping, UTF-8 as is), where
//! `reads` is the SHA-256 (hex) of the hub positions the read returned, in
//! ascending order, as decimal numbers joined by commas (`""` when it
//! returned none). The first entry's `prev_hash` is 64 zeros. The signature
//! is Ed25519 over `"evsync/v1 audit\0" || hash (hex, ASCII)`. JSON leaves no
//! way to move text between fields; the `reads` digest covers the index
//! (`audit_reads`) that custody trails are built from.

use super::db::{params, OptionalExtension};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use evsync_protocol::chain::{Hash, GENESIS};
use evsync_protocol::signing::{Context, PublicKey, SigningKey};
use serde::Serialize;

use super::{now, Store};

/// What is being written to the log.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    /// Token name (or `cli:<user>` for the command line).
    pub actor: String,
    /// Its role.
    pub role: String,
    /// What was done: `record.read`, `media.read`, `records.list`, `device.approve`, ...
    pub action: String,
    /// What it was done to: a record id, a device id, a token id, or the query.
    pub target: String,
    /// Where the request came from (peer address), or `cli`.
    pub remote: String,
    /// Anything else worth keeping (range read, filter, reason).
    pub detail: String,
    /// For a read of the feed: the hub positions of the records it returned.
    pub records: Vec<i64>,
}

/// One entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Position in the log, from 1, without gaps.
    pub seq: i64,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// Who.
    pub actor: String,
    /// With which role.
    pub role: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// From where.
    pub remote: String,
    /// Details.
    pub detail: String,
    /// First feed position returned (feed pages).
    pub first_hub_seq: Option<i64>,
    /// Last feed position returned (feed pages).
    pub last_hub_seq: Option<i64>,
    /// SHA-256 (hex) of every position returned (see the module doc), or empty.
    pub reads: String,
    /// Hash of the previous entry.
    pub prev_hash: String,
    /// Hash of this entry.
    pub hash: String,
    /// The hub's signature over the hash (base64).
    pub signature: String,
}

impl AuditEntry {
    /// The hash this entry's content and `prev_hash` give.
    pub fn computed_hash(&self) -> Hash {
        let fields = serde_json::json!([
            self.prev_hash,
            self.seq,
            self.at,
            self.actor,
            self.role,
            self.action,
            self.target,
            self.remote,
            self.detail,
            self.first_hub_seq,
            self.last_hub_seq,
            self.reads,
        ]);
        Hash::of(fields.to_string().as_bytes())
    }
}

/// The digest of the hub positions a read returned (see the module doc).
pub fn reads_digest(positions: &[i64]) -> String {
    if positions.is_empty() {
        return String::new();
    }
    let mut sorted = positions.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let text = sorted
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    Hash::of(text.as_bytes()).to_hex()
}

/// The result of checking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditCheck {
    /// Entries checked.
    pub entries: i64,
    /// Whether every entry links, hashes and verifies.
    pub intact: bool,
    /// The first entry that does not.
    pub first_bad_seq: Option<i64>,
    /// Why it does not.
    pub problem: Option<String>,
    /// Hash of the last entry (the head an auditor can keep and compare later).
    pub head: String,
}

const COLUMNS: &str = "seq, at, actor, role, action, target, remote, detail, first_hub_seq, \
     last_hub_seq, prev_hash, hash, signature, reads";

fn entry(r: &super::db::Row) -> super::db::Result<AuditEntry> {
    Ok(AuditEntry {
        seq: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        role: r.get(3)?,
        action: r.get(4)?,
        target: r.get(5)?,
        remote: r.get(6)?,
        detail: r.get(7)?,
        first_hub_seq: r.get(8)?,
        last_hub_seq: r.get(9)?,
        prev_hash: r.get(10)?,
        hash: r.get(11)?,
        signature: r.get(12)?,
        reads: r.get(13)?,
    })
}

/// Why `e` does not continue a chain whose previous hash is `prev`, if it does not.
fn fault(e: &AuditEntry, expected_seq: i64, prev: &str, key: &PublicKey) -> Option<String> {
    if e.seq != expected_seq {
        return Some(format!(
            "entry {expected_seq} is missing (next stored entry is {})",
            e.seq
        ));
    }
    if e.prev_hash != prev {
        return Some(format!(
            "names previous hash {} but entry {} has hash {prev}",
            e.prev_hash,
            e.seq - 1
        ));
    }
    let computed = e.computed_hash().to_hex();
    if computed != e.hash {
        return Some(format!(
            "content does not match its hash (stored {}, content gives {computed})",
            e.hash
        ));
    }
    let sig = B64
        .decode(&e.signature)
        .ok()
        .and_then(|s| <[u8; 64]>::try_from(s.as_slice()).ok());
    match sig {
        Some(sig)
            if key
                .verify(Context::Audit, e.hash.as_bytes(), &sig, "hub")
                .is_ok() =>
        {
            None
        }
        _ => Some("signature does not verify with the hub key".into()),
    }
}

impl Store {
    /// Appends an entry, signed with the hub key, in its own transaction.
    pub fn audit(&mut self, key: &SigningKey, ev: &AuditEvent) -> anyhow::Result<AuditEntry> {
        self.in_transaction(|tx| {
            let last: Option<(i64, String)> = tx
                .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let (seq, prev_hash) = match last {
                Some((s, h)) => (s + 1, h),
                None => (1, GENESIS.to_hex()),
            };
            let mut e = AuditEntry {
                seq,
                at: now(),
                actor: ev.actor.clone(),
                role: ev.role.clone(),
                action: ev.action.clone(),
                target: ev.target.clone(),
                remote: ev.remote.clone(),
                detail: ev.detail.clone(),
                first_hub_seq: ev.records.iter().min().copied(),
                last_hub_seq: ev.records.iter().max().copied(),
                reads: reads_digest(&ev.records),
                prev_hash,
                hash: String::new(),
                signature: String::new(),
            };
            e.hash = e.computed_hash().to_hex();
            e.signature = B64.encode(key.sign(Context::Audit, e.hash.as_bytes()));
            tx.prepare_cached(&format!(
                "INSERT INTO audit ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
            ))?
            .execute(params![
                e.seq,
                e.at,
                e.actor,
                e.role,
                e.action,
                e.target,
                e.remote,
                e.detail,
                e.first_hub_seq,
                e.last_hub_seq,
                e.prev_hash,
                e.hash,
                e.signature,
                e.reads
            ])?;
            let mut link = tx.prepare_cached(
                "INSERT INTO audit_reads (hub_seq, audit_seq) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )?;
            for hub_seq in &ev.records {
                link.execute(params![hub_seq, e.seq])?;
            }
            Ok(e)
        })
    }

    /// Entries after `after`, at most `limit`, oldest first.
    pub fn audit_entries(&self, after: i64, limit: u32) -> anyhow::Result<Vec<AuditEntry>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {COLUMNS} FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2"
        ))?;
        let rows = stmt
            .query_map(params![after, limit], entry)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Entries about one record: reads of it and of its media, and the reads
    /// of the feed that returned it (by its hub position); the newest
    /// `limit`, oldest first, and how many there are in all.
    pub fn audit_of_record(
        &self,
        record_id: &str,
        hub_seq: i64,
        limit: u32,
    ) -> anyhow::Result<(Vec<AuditEntry>, i64)> {
        const ABOUT: &str = "SELECT seq FROM audit WHERE target = ?1
             UNION SELECT audit_seq FROM audit_reads WHERE hub_seq = ?2";
        let total: i64 = self
            .conn()
            .prepare_cached(&format!("SELECT COUNT(*) FROM ({ABOUT})"))?
            .query_row(params![record_id, hub_seq], |r| r.get(0))?;
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {COLUMNS} FROM audit WHERE seq IN ({ABOUT}) ORDER BY seq DESC LIMIT ?3"
        ))?;
        let mut rows: Vec<AuditEntry> = stmt
            .query_map(params![record_id, hub_seq, limit], entry)?
            .collect::<Result<_, _>>()?;
        rows.reverse();
        Ok((rows, total))
    }

    /// Checks the whole chain against the hub's public key.
    pub fn verify_audit(&self, key: &PublicKey) -> anyhow::Result<AuditCheck> {
        let mut stmt = self
            .conn()
            .prepare(&format!("SELECT {COLUMNS} FROM audit ORDER BY seq"))?;
        let mut rows = stmt.query_map([], entry)?;
        let mut linked = self
            .conn()
            .prepare("SELECT hub_seq FROM audit_reads WHERE audit_seq = ?1 ORDER BY hub_seq")?;
        let mut prev = GENESIS.to_hex();
        let mut n = 0i64;
        while let Some(e) = rows.next().transpose()? {
            n += 1;
            let positions: Vec<i64> = linked
                .query_map([e.seq], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let why = fault(&e, n, &prev, key).or_else(|| {
                (reads_digest(&positions) != e.reads).then(|| {
                    format!(
                        "the records it says were read ({} indexed) do not match its digest",
                        positions.len()
                    )
                })
            });
            if let Some(why) = why {
                return Ok(AuditCheck {
                    entries: n,
                    intact: false,
                    first_bad_seq: Some(n),
                    problem: Some(why),
                    head: prev,
                });
            }
            prev = e.hash;
        }
        Ok(AuditCheck {
            entries: n,
            intact: true,
            first_bad_seq: None,
            problem: None,
            head: prev,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(n: usize) -> AuditEvent {
        AuditEvent {
            actor: "platform-1".into(),
            role: "platform".into(),
            action: "record.read".into(),
            target: format!("record-{n}"),
            remote: "127.0.0.1:5000".into(),
            ..AuditEvent::default()
        }
    }

    fn store_with(
        e: &super::super::tests::Engine,
        n: usize,
    ) -> (super::super::tests::Fixture, Store, SigningKey) {
        let (dir, mut s) = super::super::tests::store_on(e);
        let key = SigningKey::from_seed_for_tests(&[9; 32]).unwrap();
        for i in 0..n {
            s.audit(&key, &read(i)).unwrap();
        }
        (dir, s, key)
    }

    /// Drops a trigger of `table` (each engine spells it its own way).
    fn drop_trigger(s: &Store, trigger: &str, table: &str) {
        let sql = match s.conn().dialect() {
            super::super::db::Dialect::Sqlite => format!("DROP TRIGGER IF EXISTS {trigger}"),
            super::super::db::Dialect::Postgres => {
                format!("DROP TRIGGER IF EXISTS {trigger} ON {table}")
            }
        };
        s.conn().execute_batch(&sql).unwrap();
    }

    /// Rewrites a row behind the triggers' back, as someone with the file would.
    fn tamper(s: &Store, sql: &str) {
        drop_trigger(s, "audit_no_update", "audit");
        drop_trigger(s, "audit_no_delete", "audit");
        s.conn().execute_batch(sql).unwrap();
    }

    #[test]
    fn an_intact_log_verifies_and_the_table_refuses_updates_and_deletes() {
        for e in super::super::tests::engines() {
            let (_d, s, key) = store_with(&e, 5);
            let check = s.verify_audit(&key.public()).unwrap();
            assert!(check.intact, "{check:?}");
            assert_eq!(check.entries, 5);
            let err = s
                .conn()
                .execute("UPDATE audit SET actor = 'x' WHERE seq = 2", [])
                .unwrap_err();
            assert!(err.to_string().contains("append-only"), "{err}");
            assert!(s
                .conn()
                .execute("DELETE FROM audit WHERE seq = 5", [])
                .is_err());
        }
    }

    #[test]
    fn an_altered_row_breaks_the_chain_at_that_row() {
        for e in super::super::tests::engines() {
            let (_d, s, key) = store_with(&e, 5);
            tamper(&s, "UPDATE audit SET actor = 'someone-else' WHERE seq = 3;");
            let check = s.verify_audit(&key.public()).unwrap();
            assert!(!check.intact);
            let (at, why) = (check.first_bad_seq.unwrap(), check.problem.unwrap());
            assert_eq!(at, 3);
            assert!(why.contains("does not match its hash"), "{why}");
        }
    }

    #[test]
    fn a_removed_row_is_found_missing() {
        for e in super::super::tests::engines() {
            let (_d, s, key) = store_with(&e, 5);
            tamper(&s, "DELETE FROM audit WHERE seq = 2;");
            let check = s.verify_audit(&key.public()).unwrap();
            let (at, why) = (check.first_bad_seq.unwrap(), check.problem.unwrap());
            assert_eq!(at, 2);
            assert!(why.contains("entry 2 is missing"), "{why}");
        }
    }

    #[test]
    fn a_row_rewritten_with_a_recomputed_hash_fails_on_the_signature() {
        for e in super::super::tests::engines() {
            let (_d, s, key) = store_with(&e, 3);
            let mut e = s.audit_entries(1, 1).unwrap().remove(0);
            e.actor = "someone-else".into();
            let forged = e.computed_hash().to_hex();
            tamper(
                &s,
                &format!(
                    "UPDATE audit SET actor = 'someone-else', hash = '{forged}' WHERE seq = 2;"
                ),
            );
            let check = s.verify_audit(&key.public()).unwrap();
            let (at, why) = (check.first_bad_seq.unwrap(), check.problem.unwrap());
            assert_eq!(at, 2);
            assert!(why.contains("signature"), "{why}");
        }
    }

    #[test]
    fn the_hash_is_recomputable_from_the_documented_form() {
        for e in super::super::tests::engines() {
            let (_d, mut s, key) = store_with(&e, 1);
            let e = s.audit_entries(0, 1).unwrap().remove(0);
            let text = format!(
                r#"["{}",1,"{}","platform-1","platform","record.read","record-0","127.0.0.1:5000","",null,null,""]"#,
                "0".repeat(64),
                e.at
            );
            assert_eq!(Hash::of(text.as_bytes()).to_hex(), e.hash);
            // A read of the feed: its positions' digest, sorted, joined by commas.
            let page = AuditEvent {
                action: "records.list".into(),
                records: vec![9, 3, 5],
                ..read(1)
            };
            let e = s.audit(&key, &page).unwrap();
            assert_eq!(e.reads, Hash::of(b"3,5,9").to_hex());
            assert_eq!((e.first_hub_seq, e.last_hub_seq), (Some(3), Some(9)));
        }
    }

    #[test]
    fn moving_text_between_fields_or_dropping_a_custody_link_is_found() {
        for e in super::super::tests::engines() {
            let (_d, mut s, key) = store_with(&e, 2);
            let page = AuditEvent {
                action: "records.list".into(),
                records: vec![1, 2],
                ..read(9)
            };
            s.audit(&key, &page).unwrap();
            drop_trigger(&s, "audit_reads_no_delete", "audit_reads");
            tamper(&s, "DELETE FROM audit_reads WHERE hub_seq = 2;");
            let check = s.verify_audit(&key.public()).unwrap();
            assert_eq!(check.first_bad_seq, Some(3), "{check:?}");
            assert!(check.problem.unwrap().contains("do not match its digest"));
        }
    }
}

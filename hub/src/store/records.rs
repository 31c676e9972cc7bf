//! Verified records: insertion with deduplication and chain checks, and the
//! reads behind the feed.
//!
//! A chain's source is the pair (device_id, agent_id): a field device signs
//! its own chain (both ids are its own); a dock keeps one chain per recorder
//! docked in it, so a pooled recorder that moves between docks has one chain
//! per dock. Deduplication is by (source, seq): the body names all three, so
//! a second copy with the same hash is a duplicate (receipted again, stored
//! once) and one with a different hash is a conflict (refused, alerted).
//! Continuity of a recorder's file indexes across all its sources is checked
//! by [`super::file_index`].

use super::db::{params, OptionalExtension, Transaction};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use evsync_protocol::chain::{self, Hash, Link, GENESIS};
use evsync_protocol::record::{Event, RecordBody};
use std::time::Duration;

use super::alerts::{raise, AlertKind, Subject};
use super::media::MediaState;
use super::{devices, file_index, fleet};
use super::{now, Store};

/// A record whose signature has been verified, ready to store.
#[derive(Debug, Clone)]
pub struct VerifiedRecord {
    /// Parsed body.
    pub body: RecordBody,
    /// The exact signed bytes.
    pub bytes: Vec<u8>,
    /// The signature over them.
    pub signature: [u8; 64],
    /// SHA-256 of `bytes`.
    pub hash: Hash,
    /// The key that verified it (base64).
    pub signer_key: String,
}

/// What inserting a record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// Stored now.
    New,
    /// Already stored with the same hash.
    Duplicate,
    /// Another record with a different hash holds this (source, seq).
    Conflict {
        /// Hash of the record already stored.
        stored: Hash,
    },
}

fn hash_at(
    tx: &Transaction<'_>,
    device_id: &str,
    agent_id: &str,
    seq: u64,
) -> anyhow::Result<Option<Hash>> {
    let hex: Option<String> = tx
        .prepare_cached(
            "SELECT hash FROM records WHERE device_id = ?1 AND agent_id = ?2 AND seq = ?3",
        )?
        .query_row(params![device_id, agent_id, seq as i64], |r| r.get(0))
        .optional()?;
    Ok(hex.and_then(|h| Hash::from_hex(&h)))
}

/// How a source is named in alert details: the device alone when it is its
/// own agent, otherwise "device via agent".
pub(crate) fn source_name(device_id: &str, agent_id: &str) -> String {
    if device_id == agent_id {
        device_id.to_owned()
    } else {
        format!("{device_id} via {agent_id}")
    }
}

/// Inserts a verified record inside the caller's transaction, raising alerts
/// for gaps (visible after `gap_grace`), breaks and conflicts in its source's chain.
pub(crate) fn insert(
    tx: &Transaction<'_>,
    rec: &VerifiedRecord,
    gap_grace: Duration,
) -> anyhow::Result<Inserted> {
    let b = &rec.body;
    let device = b.device_id.as_str();
    let agent = b.agent_id.as_str();
    let source = source_name(device, agent);
    let at = |seqs| Subject::source(device, agent, Some(seqs));
    if let Some(stored) = hash_at(tx, device, agent, b.seq)? {
        if stored == rec.hash {
            return Ok(Inserted::Duplicate);
        }
        raise(
            tx,
            AlertKind::SeqConflict,
            at((b.seq, b.seq)),
            &format!(
                "a second, different record {} (hash {}) claims seq {} of {source}, already held by hash {}",
                b.id,
                rec.hash.to_hex(),
                b.seq,
                stored.to_hex()
            ),
            Duration::ZERO,
        )?;
        return Ok(Inserted::Conflict { stored });
    }
    let id_holder: Option<(String, String, i64)> = tx
        .prepare_cached("SELECT device_id, agent_id, seq FROM records WHERE id = ?1")?
        .query_row([b.id.to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    if let Some((holder, holder_agent, holder_seq)) = id_holder {
        raise(
            tx,
            AlertKind::SeqConflict,
            at((b.seq, b.seq)),
            &format!(
                "record id {} is already held by seq {holder_seq} of {}; a second record (seq {} of {source}, hash {}) reuses it",
                b.id,
                source_name(&holder, &holder_agent),
                b.seq,
                rec.hash.to_hex()
            ),
            Duration::ZERO,
        )?;
        let stored = hash_at(tx, &holder, &holder_agent, holder_seq as u64)?.unwrap_or(GENESIS);
        return Ok(Inserted::Conflict { stored });
    }
    let max: Option<i64> = tx
        .prepare_cached("SELECT MAX(seq) FROM records WHERE device_id = ?1 AND agent_id = ?2")?
        .query_row([device, agent], |r| r.get(0))?;
    let max = max.map(|m| m as u64).unwrap_or(0);
    let predecessor = if b.seq == 1 {
        Some(GENESIS)
    } else {
        hash_at(tx, device, agent, b.seq - 1)?
    };
    let prev = b.prev_hash()?;
    match chain::link(prev, predecessor) {
        Link::Intact => {}
        Link::Missing if b.seq > max + 1 => raise(
            tx,
            AlertKind::SequenceGap,
            at((max + 1, b.seq - 1)),
            &format!(
                "records {}..={} of {source} have not arrived",
                max + 1,
                b.seq - 1
            ),
            gap_grace,
        )?,
        Link::Missing => {}
        Link::Broken { claimed, stored } => raise(
            tx,
            AlertKind::ChainBreak,
            at((b.seq - 1, b.seq)),
            &format!(
                "record {} (seq {} of {source}) names predecessor hash {} but seq {} stored has hash {}",
                b.id,
                b.seq,
                claimed.to_hex(),
                b.seq - 1,
                stored.to_hex()
            ),
            Duration::ZERO,
        )?,
    }
    match &b.event {
        Some(Event::FilesMissing {
            from_index,
            to_index,
        }) => raise(
            tx,
            AlertKind::RecorderFilesMissing,
            Subject {
                files: Some((*from_index, *to_index)),
                ..at((b.seq, b.seq))
            },
            &format!(
                "files {from_index}..={to_index} of recorder {device} are gone from it without having been synced (reported by {agent})"
            ),
            Duration::ZERO,
        )?,
        Some(Event::ClockChecked {
            offset_ms,
            drift: true,
            ..
        }) => raise(
            tx,
            AlertKind::ClockDrift,
            at((b.seq, b.seq)),
            &format!(
                "clock of {device} was {:.1} s off (measured by {agent})",
                *offset_ms as f64 / 1000.0,
            ),
            Duration::ZERO,
        )?,
        _ => {}
    }
    if b.seq < max {
        // Arrived out of order: check the successor's link and whether a gap is now filled.
        let succ_prev: Option<String> = tx
            .prepare_cached(
                "SELECT prev_hash FROM records WHERE device_id = ?1 AND agent_id = ?2 AND seq = ?3",
            )?
            .query_row(params![device, agent, (b.seq + 1) as i64], |r| r.get(0))
            .optional()?;
        if let Some(succ_prev) = succ_prev {
            if succ_prev != rec.hash.to_hex() {
                raise(
                    tx,
                    AlertKind::ChainBreak,
                    at((b.seq, b.seq + 1)),
                    &format!(
                        "seq {} of {source} names predecessor hash {succ_prev} but the late record {} at seq {} has hash {}",
                        b.seq + 1,
                        b.id,
                        b.seq,
                        rec.hash.to_hex()
                    ),
                    Duration::ZERO,
                )?;
            }
        }
    }
    let (domain, case_number) = match &b.event {
        Some(Event::ActionStarted {
            domain,
            case_number,
            ..
        }) => (Some(domain.clone()), case_number.clone()),
        Some(Event::ActionEnded { case_number, .. }) => (None, case_number.clone()),
        _ => (None, None),
    };
    // A record without a domain of its own is in its device's domain, or its unit's.
    let domain = match domain {
        Some(d) => Some(d),
        None => tx
            .prepare_cached(
                "SELECT COALESCE((SELECT domain FROM devices WHERE device_id = ?1),
                                 (SELECT domain FROM units WHERE unit_code = ?2))",
            )?
            .query_row(params![device, b.unit_code], |r| r.get(0))?,
    };
    let occurred = b.device_time - chrono::Duration::milliseconds(b.clock_offset_ms);
    tx.prepare_cached(
        "INSERT INTO records (id, device_id, seq, agent_id, kind, hash, prev_hash, body, signature, signer_key, received_at,
                              occurred_at, officer_id, unit_code, domain, case_number)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?
    .execute(params![
        b.id.to_string(),
        device,
        b.seq as i64,
        agent,
        b.kind.as_str(),
        rec.hash.to_hex(),
        b.prev_hash,
        rec.bytes,
        rec.signature.as_slice(),
        rec.signer_key,
        now(),
        super::stamp(occurred),
        b.officer_id,
        b.unit_code,
        domain,
        case_number
    ])?;
    fleet_facts(tx, b)?;
    // Heard from on the day it made the record (a recorder synced days later still worked then).
    super::coverage::heard_on_day(tx, device, occurred.timestamp_millis())?;
    if b.media.is_none() {
        super::coverage::on_record(tx, b, domain.as_deref())?;
    }
    if b.seq < max {
        resolve_filled_gaps(tx, device, agent, b.seq)?;
    }
    if let Some(Event::FilesMissing {
        from_index,
        to_index,
    }) = &b.event
    {
        file_index::reported_missing(tx, b, *from_index, *to_index, gap_grace)?;
    }
    Ok(Inserted::New)
}

/// What a record tells about the fleet: a recorder seen through a dock,
/// its battery and storage, a measured clock offset, a check-out.
fn fleet_facts(tx: &Transaction<'_>, b: &RecordBody) -> anyhow::Result<()> {
    let device = b.device_id.as_str();
    if device != b.agent_id {
        devices::seen_recorder(tx, device)?;
    }
    super::recorder_config::on_event(tx, b)?;
    super::firmware::on_event(tx, b)?;
    match &b.event {
        Some(Event::DeviceStatus {
            battery_pct,
            storage_free_bytes,
            storage_total_bytes,
        }) => devices::recorder_status(
            tx,
            device,
            *battery_pct,
            *storage_free_bytes,
            *storage_total_bytes,
        ),
        Some(Event::ClockChecked { offset_ms, .. }) => {
            devices::clock_offset(tx, device, *offset_ms)
        }
        Some(Event::RecorderCheckedOut {
            officer_id,
            unit_code,
            ..
        }) => {
            let at = b.ingest_time;
            let domain = fleet::open_assignment(tx, device)?.and_then(|a| a.domain);
            fleet::assign_in(
                tx,
                device,
                &fleet::NewAssignment {
                    officer_id: Some(officer_id.clone()),
                    unit_code: Some(unit_code.clone()),
                    domain,
                },
                &super::stamp(at),
                "check_out",
                &b.agent_id,
            )
        }
        Some(Event::RecorderCheckedIn { .. }) => {
            let domain = fleet::open_assignment(tx, device)?.and_then(|a| a.domain);
            fleet::assign_in(
                tx,
                device,
                &fleet::NewAssignment {
                    domain,
                    ..Default::default()
                },
                &super::stamp(b.ingest_time),
                "check_in",
                &b.agent_id,
            )
        }
        _ => Ok(()),
    }
}

/// Resolves gap alerts of the source (device, agent) that `seq` completes;
/// one filled within its grace period was only a reordering and is dropped unseen.
fn resolve_filled_gaps(
    tx: &Transaction<'_>,
    device: &str,
    agent: &str,
    seq: u64,
) -> anyhow::Result<()> {
    let open: Vec<(i64, i64, i64, String)> = tx
        .prepare_cached(
            "SELECT id, seq_from, seq_to, visible_after FROM alerts WHERE device_id = ?1 AND agent_id = ?2
             AND kind = 'sequence_gap' AND resolved_at IS NULL AND ?3 BETWEEN seq_from AND seq_to",
        )?
        .query_map(params![device, agent, seq as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    for (id, from, to, visible_after) in open {
        let present: i64 = tx
            .prepare_cached(
                "SELECT COUNT(*) FROM records WHERE device_id = ?1 AND agent_id = ?2 AND seq BETWEEN ?3 AND ?4",
            )?
            .query_row(params![device, agent, from, to], |r| r.get(0))?;
        if present == to - from + 1 {
            let t = now();
            if visible_after > t {
                tx.prepare_cached("DELETE FROM alerts WHERE id = ?1")?
                    .execute([id])?;
                tracing::debug!(
                    device,
                    agent,
                    from,
                    to,
                    "records arrived out of order; gap filled within grace"
                );
            } else {
                tx.prepare_cached("UPDATE alerts SET resolved_at = ?2 WHERE id = ?1")?
                    .execute(params![id, t])?;
                tracing::info!(device, agent, from, to, "sequence gap filled");
            }
        }
    }
    Ok(())
}

/// A stored record as read back.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    /// Position in hub order (the feed cursor).
    pub hub_seq: i64,
    /// Parsed body.
    pub body: RecordBody,
    /// The exact signed bytes.
    pub bytes: Vec<u8>,
    /// Signature over them.
    pub signature: Vec<u8>,
    /// Key that verified the record at ingest (base64).
    pub signer_key: String,
    /// SHA-256 of the bytes (hex).
    pub hash: String,
    /// When the hub stored it.
    pub received_at: String,
    /// For media records: whether the recording's bytes are stored yet.
    pub media_state: Option<MediaState>,
    /// For a recording another dock already delivered (same recorder, file
    /// index and SHA-256): the id of the record that delivered it first.
    pub recopy_of: Option<String>,
}

impl StoredRecord {
    /// The signature as base64.
    pub fn signature_b64(&self) -> String {
        B64.encode(&self.signature)
    }
}

const COLUMNS: &str =
    "r.hub_seq, r.body, r.signature, r.signer_key, r.hash, r.received_at, m.state, m.recopy_of";
const FROM: &str = "records r LEFT JOIN media m ON m.record_id = r.id";

/// A row as read, before its body is parsed.
struct Raw {
    hub_seq: i64,
    bytes: Vec<u8>,
    signature: Vec<u8>,
    signer_key: String,
    hash: String,
    received_at: String,
    media_state: Option<String>,
    recopy_of: Option<String>,
}

fn row(r: &super::db::Row) -> super::db::Result<Raw> {
    Ok(Raw {
        hub_seq: r.get(0)?,
        bytes: r.get(1)?,
        signature: r.get(2)?,
        signer_key: r.get(3)?,
        hash: r.get(4)?,
        received_at: r.get(5)?,
        media_state: r.get(6)?,
        recopy_of: r.get(7)?,
    })
}

fn parse(raw: Raw) -> anyhow::Result<StoredRecord> {
    let body = RecordBody::parse(&raw.bytes).map_err(|e| {
        anyhow::anyhow!(
            "stored record at hub_seq {} no longer parses: {e}",
            raw.hub_seq
        )
    })?;
    let media_state = match raw.media_state.as_deref() {
        None => None,
        Some(name) => Some(MediaState::from_name(name).ok_or_else(|| {
            anyhow::anyhow!(
                "record at hub_seq {} has unknown media state {name:?}",
                raw.hub_seq
            )
        })?),
    };
    Ok(StoredRecord {
        media_state,
        hub_seq: raw.hub_seq,
        body,
        bytes: raw.bytes,
        signature: raw.signature,
        signer_key: raw.signer_key,
        hash: raw.hash,
        received_at: raw.received_at,
        recopy_of: raw.recopy_of,
    })
}

/// Which records of the feed to return; every field narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFilter {
    /// Records about this device.
    pub device_id: Option<String>,
    /// Records signed by this agent (a dock's records are about its recorders).
    pub agent_id: Option<String>,
    /// Records made while the device was assigned to this officer.
    pub officer_id: Option<String>,
    /// ... to this unit.
    pub unit_code: Option<String>,
    /// Records in this enforcement domain (the action's, else the device's or unit's).
    pub domain: Option<String>,
    /// `media` or `event`.
    pub kind: Option<String>,
    /// Happened at or after this time (RFC 3339, as stored), by the agent's clock.
    pub from: Option<String>,
    /// Happened before this time.
    pub to: Option<String>,
    /// Records of enforcement actions with this case number.
    pub case_number: Option<String>,
}

impl RecordFilter {
    /// The filters set, as `name=value` pairs for logs and the audit log.
    pub fn describe(&self) -> String {
        [
            ("device_id", &self.device_id),
            ("agent_id", &self.agent_id),
            ("officer_id", &self.officer_id),
            ("unit_code", &self.unit_code),
            ("domain", &self.domain),
            ("kind", &self.kind),
            ("from", &self.from),
            ("to", &self.to),
            ("case_number", &self.case_number),
        ]
        .iter()
        .filter_map(|(n, v)| v.as_ref().map(|v| format!("{n}={v}")))
        .collect::<Vec<_>>()
        .join(" ")
    }
}

impl Store {
    /// Records after `after` in hub order that pass `filter`, at most `limit`.
    pub fn records_after(
        &self,
        after: i64,
        limit: u32,
        filter: &RecordFilter,
    ) -> anyhow::Result<Vec<StoredRecord>> {
        self.records_page(after, limit, filter, false)
    }

    /// Records before `before` in reverse hub order (newest first) that pass
    /// `filter`, at most `limit`.
    pub fn records_before(
        &self,
        before: i64,
        limit: u32,
        filter: &RecordFilter,
    ) -> anyhow::Result<Vec<StoredRecord>> {
        self.records_page(before, limit, filter, true)
    }

    fn records_page(
        &self,
        from: i64,
        limit: u32,
        filter: &RecordFilter,
        descending: bool,
    ) -> anyhow::Result<Vec<StoredRecord>> {
        let (op, order) = if descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let mut sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE r.hub_seq {op} ?1");
        let mut args: Vec<&dyn super::db::ToSql> = vec![&from];
        for (column, value, op) in [
            ("r.device_id", &filter.device_id, "="),
            ("r.agent_id", &filter.agent_id, "="),
            ("r.officer_id", &filter.officer_id, "="),
            ("r.unit_code", &filter.unit_code, "="),
            ("r.domain", &filter.domain, "="),
            ("r.kind", &filter.kind, "="),
            ("r.occurred_at", &filter.from, ">="),
            ("r.occurred_at", &filter.to, "<"),
            ("r.case_number", &filter.case_number, "="),
        ] {
            if let Some(v) = value {
                args.push(v);
                sql.push_str(&format!(" AND {column} {op} ?{}", args.len()));
            }
        }
        args.push(&limit);
        sql.push_str(&format!(
            " ORDER BY r.hub_seq {order} LIMIT ?{}",
            args.len()
        ));
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let raws = stmt
            .query_map(args.as_slice(), row)?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(parse).collect()
    }

    /// One record by id.
    pub fn record(&self, id: &str) -> anyhow::Result<Option<StoredRecord>> {
        let mut stmt = self
            .conn()
            .prepare_cached(&format!("SELECT {COLUMNS} FROM {FROM} WHERE r.id = ?1"))?;
        stmt.query_row([id], row).optional()?.map(parse).transpose()
    }

    /// Hash of the stored record at `seq` of the source (device, agent), for chain checks on read.
    pub fn hash_at(
        &self,
        device_id: &str,
        agent_id: &str,
        seq: u64,
    ) -> anyhow::Result<Option<String>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT hash FROM records WHERE device_id = ?1 AND agent_id = ?2 AND seq = ?3",
            )?
            .query_row(params![device_id, agent_id, seq as i64], |r| r.get(0))
            .optional()?)
    }

    /// Hub position of the newest record (0 when there is none).
    pub fn last_hub_seq(&self) -> anyhow::Result<i64> {
        Ok(self
            .conn()
            .query_row("SELECT COALESCE(MAX(hub_seq), 0) FROM records", [], |r| {
                r.get(0)
            })?)
    }

    /// Number of stored records.
    pub fn record_count(&self) -> anyhow::Result<i64> {
        Ok(self
            .conn()
            .query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))?)
    }
}

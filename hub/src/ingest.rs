//! Ingest: MQTT messages in, verified records stored and signed receipts out.
//!
//! Pure with respect to the network: the caller hands in (topic, payload)
//! pairs and publishes the receipts this returns. Everything of one call is
//! stored in one SQLite transaction, and receipts are produced only after it
//! committed, so a receipt always means "durably stored".

use std::sync::Arc;
use std::time::Duration;

use evsync_protocol::announce::AnnounceBody;
use evsync_protocol::batch;
use evsync_protocol::chain::Hash;
use evsync_protocol::envelope::Envelope;
use evsync_protocol::grant::GrantRequest;
use evsync_protocol::receipt::{self, Entry, ReceiptBody, Status};
use evsync_protocol::record::{Kind, RecordBody};
use evsync_protocol::signing::{Context, PublicKey, SigningKey};
use evsync_protocol::topic::{self, Channel};

use crate::media::Issuer;
use crate::metrics::Metrics;
use crate::store::{self, AlertKind, Announced, DeviceState, Inserted, Store, VerifiedRecord};

/// Largest status message accepted.
pub const MAX_STATUS_LEN: usize = 16 * 1024;

/// What an outgoing message is, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// A record receipt.
    Receipt,
    /// An upload grant.
    Grant,
    /// A media receipt.
    MediaReceipt,
}

/// A signed message to publish to an agent.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Topic to publish on.
    pub topic: String,
    /// The sealed message.
    pub payload: Vec<u8>,
    /// What it is.
    pub kind: Sent,
}

/// The ingest stage: owns the writer connection to the store.
pub struct Ingest {
    store: Store,
    hub_id: String,
    key: Arc<SigningKey>,
    auto_approve: bool,
    gap_grace: Duration,
    metrics: Arc<Metrics>,
    issuer: Arc<Issuer>,
}

/// A batch whose records are being answered.
struct Answer {
    agent_id: String,
    entries: Vec<Entry>,
    /// Index into `entries` → index into the verified list, for records to store.
    pending: Vec<(usize, usize)>,
}

/// A batch from an approved device, waiting for its signatures to be checked.
struct Admitted {
    topic: String,
    agent_id: String,
    /// Docks sign for the recorders docked in them; every other device only for itself.
    signs_for_others: bool,
    key: PublicKey,
    signer_key: String,
    envelopes: Vec<Envelope>,
}

/// What became of a batch at admission.
enum Admission {
    /// The device may not send records; every record is answered `rejected`.
    Refused(Answer),
    /// The device is approved; its records go on to signature checks.
    Admitted(Admitted),
    /// Undecodable: refused and counted, with nobody to answer.
    Dropped,
}

/// The outcome of checking one envelope.
enum Checked {
    /// Signature valid, body well-formed, signed by the topic's device.
    Valid(Box<RecordBody>, Hash),
    /// Refused, with the metrics reason and a human detail.
    Refused {
        reason: &'static str,
        detail: String,
    },
}

/// Checks one envelope: signature first, then the body. Pure; runs on any thread.
fn check(env: &Envelope, key: &PublicKey, agent_id: &str, signs_for_others: bool) -> Checked {
    if let Err(e) = env.verify(key, Context::Record, agent_id) {
        return Checked::Refused {
            reason: e.reason(),
            detail: e.to_string(),
        };
    }
    let body = match RecordBody::parse(&env.body) {
        Ok(b) => b,
        Err(e) => {
            return Checked::Refused {
                reason: e.reason(),
                detail: e.to_string(),
            }
        }
    };
    if body.agent_id != agent_id {
        return Checked::Refused {
            reason: "signer_mismatch",
            detail: format!(
                "record {} names agent {} but arrived on the topic of {agent_id}",
                body.id, body.agent_id
            ),
        };
    }
    if !signs_for_others && body.device_id != agent_id {
        return Checked::Refused {
            reason: "signer_mismatch",
            detail: format!(
                "record {} is for device {} but {agent_id} is not a dock and may sign only its own records",
                body.id, body.device_id
            ),
        };
    }
    let hash = Hash::of(&env.body);
    Checked::Valid(Box::new(body), hash)
}

/// Checks every envelope of `batches` on all cores (Ed25519 verification is
/// the costliest step of ingest), returning the outcomes batch by batch.
fn check_in_parallel(batches: &[Admitted]) -> Vec<Vec<Checked>> {
    let work: Vec<(&Envelope, &Admitted)> = batches
        .iter()
        .flat_map(|b| b.envelopes.iter().map(move |e| (e, b)))
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = work.len().div_ceil(threads).max(64);
    let mut flat: Vec<Checked> = Vec::with_capacity(work.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = work
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|&(e, b)| check(e, &b.key, &b.agent_id, b.signs_for_others))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            // `check` does not panic; if it ever did, ingest stops and the hub with it.
            flat.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
    });
    let mut flat = flat.into_iter();
    batches
        .iter()
        .map(|b| flat.by_ref().take(b.envelopes.len()).collect())
        .collect()
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

fn entry_for(env: &Envelope, status: Status, reason: Option<String>) -> Option<Entry> {
    // Rejections echo what the (unverified) body says so the agent can match them;
    // a body that does not parse cannot be answered per record.
    let body = RecordBody::parse(&env.body).ok()?;
    Some(Entry {
        id: body.id,
        device_id: body.device_id,
        seq: body.seq,
        hash: Hash::of(&env.body).to_hex(),
        status,
        reason,
    })
}

impl Ingest {
    /// Creates the stage. Sequence gaps become visible alerts after
    /// `gap_grace`; `issuer` grants uploads for the media records stored.
    pub fn new(
        store: Store,
        hub_id: String,
        key: Arc<SigningKey>,
        auto_approve: bool,
        gap_grace: Duration,
        metrics: Arc<Metrics>,
        issuer: Arc<Issuer>,
    ) -> Self {
        Self {
            store,
            hub_id,
            key,
            auto_approve,
            gap_grace,
            metrics,
            issuer,
        }
    }

    /// The store, for the caller's own reads.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn reject(&self, topic: &str, reason: &str, detail: &str) {
        self.metrics.reject(reason);
        tracing::warn!(topic, reason, detail, "refused");
        if let Err(e) = self.store.log_reject(topic, reason, detail) {
            tracing::error!(error = %e, "could not log a reject");
        }
    }

    /// Processes messages taken together and returns the receipts (and
    /// upload grants) to publish. An error means nothing of this call was
    /// stored and nothing is receipted.
    pub fn process(&mut self, messages: &[(&str, &[u8])]) -> anyhow::Result<Vec<Outgoing>> {
        let mut answers = Vec::new();
        let mut admitted = Vec::new();
        let mut out = Vec::new();
        for &(topic_name, payload) in messages {
            let (device, channel) = match topic::parse(topic_name) {
                Ok(t) => t,
                Err(e) => {
                    self.reject(topic_name, e.reason(), &e.to_string());
                    continue;
                }
            };
            match channel {
                Channel::Records => match self.admit(topic_name, device, payload)? {
                    Admission::Refused(a) => answers.push(a),
                    Admission::Admitted(a) => admitted.push(a),
                    Admission::Dropped => {}
                },
                Channel::Announce => self.announce(topic_name, device, payload)?,
                Channel::Status => self.status(topic_name, device, payload)?,
                Channel::Uploads => out.extend(self.grant_requests(topic_name, device, payload)?),
                _ => self.reject(
                    topic_name,
                    "unexpected_topic",
                    "the hub does not consume this channel",
                ),
            }
        }
        let checked = check_in_parallel(&admitted);
        let mut verified = Vec::new();
        for (batch, checked) in admitted.into_iter().zip(checked) {
            let answer = self.answer(batch, checked, &mut verified)?;
            answers.push(answer);
        }
        if answers.is_empty() {
            return Ok(out);
        }
        let grace = self.gap_grace;
        let (outcomes, media) = self.store.in_transaction(|tx| {
            let mut media = Vec::new();
            let outcomes = verified
                .iter()
                .map(|r| {
                    let inserted = store::insert_record(tx, r, grace)?;
                    if inserted == Inserted::New && r.body.kind == Kind::Media {
                        media.push(store::expect_media(tx, &r.body)?);
                        store::media_delivered(tx, &r.body, grace)?;
                    }
                    Ok(inserted)
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok((outcomes, media))
        })?;
        // A batch none of whose records could even be parsed has nobody to answer.
        for mut a in answers.into_iter().filter(|a| !a.entries.is_empty()) {
            for &(entry_ix, rec_ix) in &a.pending {
                let e = &mut a.entries[entry_ix];
                match &outcomes[rec_ix] {
                    Inserted::New => {
                        self.metrics.records_stored.inc();
                        e.status = Status::Stored;
                    }
                    Inserted::Duplicate => {
                        self.metrics.records_duplicate.inc();
                        e.status = Status::Duplicate;
                    }
                    Inserted::Conflict { stored } => {
                        self.metrics.reject("seq_conflict");
                        e.status = Status::Rejected;
                        e.reason = Some(format!(
                            "seq_conflict: seq {} of {} is already held by a different record (hash {})",
                            e.seq,
                            store::source_name(&e.device_id, &a.agent_id),
                            stored.to_hex()
                        ));
                    }
                }
            }
            for e in &mut a.entries {
                if let Some(r) = &mut e.reason {
                    truncate(r, receipt::MAX_REASON);
                }
            }
            for entries in a.entries.chunks(receipt::MAX_ENTRIES) {
                let receipt = ReceiptBody {
                    v: 1,
                    hub_id: self.hub_id.clone(),
                    agent_id: a.agent_id.clone(),
                    issued_at: chrono::Utc::now(),
                    entries: entries.to_vec(),
                };
                out.push(Outgoing {
                    topic: topic::topic(&a.agent_id, Channel::Receipts),
                    payload: receipt.seal(&self.key),
                    kind: Sent::Receipt,
                });
            }
        }
        // After the receipts: the agent learns the record is safe before it is granted the upload.
        for m in &media {
            out.push(self.issuer.answer(m)?);
        }
        Ok(out)
    }

    /// Answers an agent's request for upload grants: a grant for each of its
    /// media records whose bytes the hub awaits, the media receipt again for
    /// those already stored or failed. Records of other agents are refused.
    fn grant_requests(
        &mut self,
        topic_name: &str,
        device: &str,
        payload: &[u8],
    ) -> anyhow::Result<Vec<Outgoing>> {
        let request = match GrantRequest::parse(payload) {
            Ok(r) => r,
            Err(e) => {
                self.reject(topic_name, e.reason(), &e.to_string());
                return Ok(Vec::new());
            }
        };
        let mut out = Vec::new();
        for id in request.records {
            match self.store.media(&id.to_string())? {
                Some(m) if m.agent_id == device => out.push(self.issuer.answer(&m)?),
                Some(m) => self.reject(
                    topic_name,
                    "not_your_record",
                    &format!(
                        "{device} asked to upload the media of record {id}, which {} signed",
                        m.agent_id
                    ),
                ),
                None => self.reject(
                    topic_name,
                    "unknown_record",
                    &format!("{device} asked to upload the media of record {id}, which this hub does not hold as a media record"),
                ),
            }
        }
        Ok(out)
    }

    /// Decodes a batch and checks its device: refused at once (answered), or
    /// admitted for signature checks, or dropped (undecodable: nobody to answer).
    fn admit(
        &mut self,
        topic_name: &str,
        agent_id: &str,
        payload: &[u8],
    ) -> anyhow::Result<Admission> {
        self.metrics.batches.inc();
        let envelopes = match batch::decode(payload) {
            Ok(e) => e,
            Err(e) => {
                self.reject(topic_name, e.reason(), &e.to_string());
                return Ok(Admission::Dropped);
            }
        };
        let device = self.store.device(agent_id)?;
        let refusal = match &device {
            None => Some((
                "unknown_device",
                format!("{agent_id} has not announced itself"),
            )),
            Some(d) if d.state == DeviceState::Pending => Some((
                "pending_enrollment",
                format!("{agent_id} awaits approval (evsync-hub devices approve {agent_id})"),
            )),
            Some(d) if d.state == DeviceState::Revoked => {
                Some(("revoked", format!("{agent_id} is revoked")))
            }
            Some(_) => None,
        };
        match (refusal, device) {
            (Some((reason, detail)), _) => {
                for _ in &envelopes {
                    self.metrics.reject(reason);
                }
                tracing::warn!(
                    topic = topic_name,
                    reason,
                    detail,
                    records = envelopes.len(),
                    "refused"
                );
                self.store.log_reject(topic_name, reason, &detail)?;
                let entries = envelopes
                    .iter()
                    .filter_map(|env| {
                        entry_for(env, Status::Rejected, Some(format!("{reason}: {detail}")))
                    })
                    .collect();
                Ok(Admission::Refused(Answer {
                    agent_id: agent_id.to_owned(),
                    entries,
                    pending: Vec::new(),
                }))
            }
            (None, Some(device)) => {
                let Some(enrolled) = device.public_key.clone().filter(|_| device.kind.is_agent())
                else {
                    // A recorder's id on an agent's topic: recorders have no key and send nothing themselves.
                    self.reject(
                        topic_name,
                        "unknown_device",
                        &format!(
                            "{agent_id} is a recorder, which has no key and cannot send records"
                        ),
                    );
                    return Ok(Admission::Dropped);
                };
                let key = PublicKey::from_base64(&enrolled)
                    .map_err(|e| anyhow::anyhow!("enrolled key of {agent_id} is unusable: {e}"))?;
                Ok(Admission::Admitted(Admitted {
                    topic: topic_name.to_owned(),
                    agent_id: agent_id.to_owned(),
                    signs_for_others: device.role.as_deref() == Some("dock"),
                    key,
                    signer_key: enrolled,
                    envelopes,
                }))
            }
            (None, None) => Ok(Admission::Dropped),
        }
    }

    /// Turns the checked envelopes of one admitted batch into its answer,
    /// moving verified records to `verified`. A dock's record about another
    /// device is refused when that device is itself an enrolled agent: docks
    /// sign for the recorders docked in them, never in another agent's name.
    fn answer(
        &mut self,
        batch: Admitted,
        checked: Vec<Checked>,
        verified: &mut Vec<VerifiedRecord>,
    ) -> anyhow::Result<Answer> {
        let mut answer = Answer {
            agent_id: batch.agent_id,
            entries: Vec::with_capacity(batch.envelopes.len()),
            pending: Vec::new(),
        };
        let mut enrolled: std::collections::HashMap<String, bool> = Default::default();
        for (env, c) in batch.envelopes.into_iter().zip(checked) {
            let c = match c {
                Checked::Valid(ref body, _) if body.device_id != answer.agent_id => {
                    let is_agent = match enrolled.get(&body.device_id) {
                        Some(&known) => known,
                        None => {
                            let known = self
                                .store
                                .device(&body.device_id)?
                                .is_some_and(|d| d.kind.is_agent());
                            enrolled.insert(body.device_id.clone(), known);
                            known
                        }
                    };
                    if is_agent {
                        Checked::Refused {
                            reason: "signer_mismatch",
                            detail: format!(
                                "record {} of dock {} names device {}, an enrolled agent that signs its own records",
                                body.id, answer.agent_id, body.device_id
                            ),
                        }
                    } else {
                        c
                    }
                }
                c => c,
            };
            match c {
                Checked::Valid(body, hash) => {
                    answer.pending.push((answer.entries.len(), verified.len()));
                    answer.entries.push(Entry {
                        id: body.id,
                        device_id: body.device_id.clone(),
                        seq: body.seq,
                        hash: hash.to_hex(),
                        status: Status::Stored,
                        reason: None,
                    });
                    verified.push(VerifiedRecord {
                        body: *body,
                        bytes: env.body,
                        signature: env.signature,
                        hash,
                        signer_key: batch.signer_key.clone(),
                    });
                }
                Checked::Refused { reason, detail } => {
                    self.reject(&batch.topic, reason, &detail);
                    answer
                        .entries
                        .extend(entry_for(&env, Status::Rejected, Some(detail)));
                }
            }
        }
        Ok(answer)
    }

    fn announce(&mut self, topic_name: &str, device: &str, payload: &[u8]) -> anyhow::Result<()> {
        let (body, key) = match AnnounceBody::open(payload) {
            Ok(x) => x,
            Err(e) => {
                self.reject(topic_name, e.reason(), &e.to_string());
                return Ok(());
            }
        };
        if body.device_id != device {
            self.reject(
                topic_name,
                "signer_mismatch",
                &format!(
                    "announcement for {} on the topic of {device}",
                    body.device_id
                ),
            );
            return Ok(());
        }
        let public_key = key.to_base64();
        let outcome = self.store.announce(
            store::Announcement {
                device_id: device,
                public_key: &public_key,
                role: &body.role,
                officer_id: body.officer_id.as_deref(),
                unit_code: body.unit_code.as_deref(),
                software: &body.software,
            },
            self.auto_approve,
        )?;
        match outcome {
            Announced::Enrolled(state) => {
                tracing::info!(
                    device,
                    state = state.as_str(),
                    "device enrolled from its announcement"
                )
            }
            Announced::Refreshed => {}
            Announced::KeyMismatch => {
                let detail =
                    format!("{device} announced a key other than the one enrolled: refused");
                self.reject(topic_name, "key_mismatch", &detail);
                self.store
                    .raise_alert(AlertKind::KeyMismatch, device, &detail)?;
            }
        }
        Ok(())
    }

    fn status(&mut self, topic_name: &str, device: &str, payload: &[u8]) -> anyhow::Result<()> {
        if payload.is_empty() {
            return Ok(()); // a cleared retained message
        }
        if payload.len() > MAX_STATUS_LEN {
            let e = evsync_protocol::ProtocolError::Oversized {
                size: payload.len(),
                limit: MAX_STATUS_LEN,
            };
            self.reject(topic_name, e.reason(), &e.to_string());
            return Ok(());
        }
        match serde_json::from_slice::<serde_json::Value>(payload) {
            Ok(v) if v.is_object() => {
                // Only agents the hub knows have a status (and metric
                // series): a retained status of a device unknown here (an old
                // one on a shared broker) is left alone.
                let Some(d) = self.store.device(device)?.filter(|d| d.kind.is_agent()) else {
                    tracing::debug!(
                        device,
                        "status of a device that is not an enrolled agent ignored"
                    );
                    return Ok(());
                };
                // Status is not signed: only an approved dock's slots may say
                // which recorders sit where (and so move their assignments).
                let trusted = d.state == DeviceState::Approved;
                if trusted {
                    self.metrics.backlog(device, &v);
                }
                let docks = trusted && d.kind == store::DeviceKind::Dock;
                self.store.device_status(device, &v, docks)
            }
            Ok(_) => {
                self.reject(topic_name, "malformed", "status: expected a JSON object");
                Ok(())
            }
            Err(e) => {
                self.reject(topic_name, "malformed", &format!("status: {e}"));
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evsync_protocol::chain::GENESIS;
    use evsync_protocol::record::{Event, FixQuality, Geo, VERSION};

    fn geotagged(lat: f64, lon: f64) -> RecordBody {
        RecordBody {
            v: VERSION,
            id: uuid::Uuid::now_v7(),
            kind: Kind::Event,
            device_id: "field-1".into(),
            agent_id: "field-1".into(),
            seq: 1,
            prev_hash: GENESIS.to_hex(),
            officer_id: None,
            unit_code: None,
            device_time: chrono::Utc::now(),
            ingest_time: chrono::Utc::now(),
            clock_offset_ms: 0,
            media: None,
            event: Some(Event::DutyStarted),
            geo: Some(Geo {
                lat,
                lon,
                quality: FixQuality::Gps,
                age_ms: 800,
                satellites: Some(8),
                hdop: Some(1.12),
                altitude_m: None,
            }),
        }
    }

    #[test]
    fn only_an_enrolled_agent_s_status_is_kept_and_becomes_metric_series() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(SigningKey::from_seed_for_tests(&[5; 32]).unwrap());
        let metrics = Arc::new(Metrics::default());
        let issuer = Arc::new(Issuer::new(
            "hub".into(),
            key.clone(),
            "http://127.0.0.1:1".into(),
            Duration::from_secs(60),
        ));
        let store = Store::open(&dir.path().join("h.sqlite")).unwrap();
        let mut ingest = Ingest::new(
            store,
            "hub".into(),
            key,
            true,
            Duration::ZERO,
            metrics.clone(),
            issuer,
        );
        let status = br#"{"online":true,"backlog_records":7,"backlog_bytes":700,"media_backlog":{"files":2,"bytes":9,"failed":0}}"#;
        let topic_of = |id: &str| topic::topic(id, Channel::Status);
        ingest
            .process(&[(&topic_of("stranger"), status.as_slice())])
            .unwrap();
        assert!(!metrics.render().contains("stranger"));
        assert!(ingest.store().device("stranger").unwrap().is_none());

        let agent_key = SigningKey::from_seed_for_tests(&[6; 32]).unwrap();
        let announce = AnnounceBody {
            v: 1,
            device_id: "field-1".into(),
            public_key: agent_key.public().to_base64(),
            role: "field".into(),
            officer_id: None,
            unit_code: None,
            software: "test".into(),
            sent_at: chrono::Utc::now(),
        }
        .seal(&agent_key);
        ingest
            .process(&[
                (
                    &topic::topic("field-1", Channel::Announce),
                    announce.as_slice(),
                ),
                (&topic_of("field-1"), status.as_slice()),
            ])
            .unwrap();
        let text = metrics.render();
        for series in [
            "evsync_hub_backlog_records{device=\"field-1\"} 7",
            "evsync_hub_backlog_bytes{device=\"field-1\"} 700",
            "evsync_hub_media_backlog{device=\"field-1\"} 2",
        ] {
            assert!(text.contains(series), "{series} not in {text}");
        }
        let d = ingest.store().device("field-1").unwrap().unwrap();
        assert_eq!((d.online, d.backlog_records), (true, Some(7)));

        // Status is unsigned: only an approved dock's slots place recorders
        // and their assignments, and never over an agent or with a bad officer.
        let dock_key = SigningKey::from_seed_for_tests(&[7; 32]).unwrap();
        let dock_announce = AnnounceBody {
            v: 1,
            device_id: "dock-1".into(),
            public_key: dock_key.public().to_base64(),
            role: "dock".into(),
            officer_id: None,
            unit_code: None,
            software: "test".into(),
            sent_at: chrono::Utc::now(),
        }
        .seal(&dock_key);
        let slots = |recorder: &str, officer: &str| {
            serde_json::json!({"online": true, "slots": [
                {"slot": 1, "recorder": recorder, "officer": officer, "unit": "500109000001"}
            ]})
            .to_string()
        };
        let said = slots("ZFY0001", "200001");
        ingest
            .process(&[
                (
                    &topic::topic("dock-1", Channel::Announce),
                    dock_announce.as_slice(),
                ),
                (&topic_of("field-1"), said.as_bytes()),
            ])
            .unwrap();
        assert!(
            ingest.store().device("ZFY0001").unwrap().is_none(),
            "a field device's slots"
        );
        let bad = [slots("field-1", "200001"), slots("ZFY0002", "12")];
        for s in &bad {
            ingest
                .process(&[(&topic_of("dock-1"), s.as_bytes())])
                .unwrap();
        }
        let field = ingest.store().assignments("field-1").unwrap();
        assert!(field.iter().all(|a| a.source != "recorder"), "{field:?}");
        assert!(ingest.store().assignments("ZFY0002").unwrap().is_empty());
        ingest
            .store
            .set_device_state("dock-1", DeviceState::Pending)
            .unwrap();
        ingest
            .process(&[(&topic_of("dock-1"), said.as_bytes())])
            .unwrap();
        assert!(
            ingest.store().device("ZFY0001").unwrap().is_none(),
            "a pending dock's slots"
        );
        ingest
            .store
            .set_device_state("dock-1", DeviceState::Approved)
            .unwrap();
        ingest
            .process(&[(&topic_of("dock-1"), said.as_bytes())])
            .unwrap();
        let r = ingest.store().device("ZFY0001").unwrap().unwrap();
        assert_eq!(
            (r.docked_in.as_deref(), r.officer_id.as_deref()),
            (Some("dock-1"), Some("200001"))
        );
    }

    #[test]
    fn a_geotag_off_the_globe_is_refused_as_malformed_naming_the_coordinate() {
        let key = SigningKey::from_seed_for_tests(&[3; 32]).unwrap();
        let check_one = |body: &RecordBody| {
            let env = Envelope::seal(&key, Context::Record, body.to_bytes());
            check(&env, &key.public(), "field-1", false)
        };
        assert!(matches!(
            check_one(&geotagged(29.557_36, 106.577_11)),
            Checked::Valid(..)
        ));
        for (lat, lon, said) in [
            (91.0, 106.5, "geo.lat = 91: expected degrees from -90 to 90"),
            (
                29.5,
                -181.0,
                "geo.lon = -181: expected degrees from -180 to 180",
            ),
        ] {
            match check_one(&geotagged(lat, lon)) {
                Checked::Refused { reason, detail } => {
                    assert_eq!(reason, "malformed");
                    assert!(detail.contains(said), "{detail}");
                }
                Checked::Valid(..) => panic!("{lat}, {lon} accepted"),
            }
        }
    }
}

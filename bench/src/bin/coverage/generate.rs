//! Generation: the planned district into a hub store through the hub's own
//! ingest, so that every store hook (the coverage bookkeeping of each media
//! record, action event and arriving recording) runs as it does in service.
//!
//! Each field device and dock is an agent with its own Ed25519 key, enrolled
//! by its signed announcement (the hub auto-approves, as `auto_approve =
//! true` does); recorders are registered as an operator would. Records are
//! built and signed as agents build them — one hash chain per field device
//! and per recorder at its dock, batches of up to 500 — on every core, a day
//! ahead of the hub, and handed to [`Ingest::process`] in groups of about
//! 20,000 records (one transaction each). After each day's records, the bytes
//! of the recordings due by then "arrive": [`Store::blob_stored_at`] (the
//! upload endpoint's [`Store::blob_stored`] at the time they came) for each
//! one that arrives; those due after the end of the run stay awaited. Last,
//! the hub's coverage sweep (the alerts time raises) runs twice, timed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use evsync_hub::ingest::Ingest;
use evsync_hub::media::Issuer;
use evsync_hub::metrics::Metrics;
use evsync_hub::store::{self, Store};
use evsync_protocol::announce::AnnounceBody;
use evsync_protocol::batch;
use evsync_protocol::chain::{Hash, GENESIS};
use evsync_protocol::envelope::Envelope;
use evsync_protocol::record::{Event, FixQuality, Geo, Kind, Media, RecordBody, VERSION};
use evsync_protocol::signing::{Context, SigningKey};
use evsync_protocol::topic::{self, Channel};

use crate::district::{District, Shift, DAY, MINUTE};

/// Records per MQTT message, as agents send them by default.
const BATCH_RECORDS: usize = 500;
/// Records per call of the ingest (one store transaction).
const RECORDS_PER_CALL: usize = 20_000;
/// The hub id written into receipts and grants.
pub const HUB_ID: &str = "bench-coverage";

/// What generation made and how long it took.
#[derive(Debug, Default, Clone)]
pub struct Generated {
    /// Records stored.
    pub records: u64,
    /// Of which media records.
    pub media: u64,
    /// Of which event records.
    pub events: u64,
    /// Recordings whose bytes arrived (`blob_stored`).
    pub arrived: u64,
    /// Wall time of the whole generation, seconds.
    pub seconds: f64,
    /// Of which the hub's ingest (verify + store), seconds.
    pub ingest_seconds: f64,
    /// Of which the arrivals of recordings, seconds.
    pub arrival_seconds: f64,
    /// Time the signing stage spent building and signing, seconds (beside the ingest).
    pub signing_seconds: f64,
    /// The first coverage sweep over the whole history, seconds.
    pub first_sweep_seconds: f64,
    /// Alerts it raised.
    pub first_sweep_alerts: usize,
    /// The next sweep (nothing new to raise), seconds.
    pub next_sweep_seconds: f64,
}

/// One agent of the district and the chains it signs.
struct Agent {
    id: String,
    key: SigningKey,
    dock: Option<usize>,
    officer: Option<usize>,
    /// (seq, hash) of the last record of each source it signs.
    chains: HashMap<String, (u64, Hash)>,
    rng: fastrand::Rng,
}

/// One MQTT message of records.
struct Batch {
    /// The agent's records topic.
    topic: String,
    /// The encoded batch.
    payload: Vec<u8>,
    /// Records in it.
    records: usize,
}

/// What one signing thread made of its agents' day.
#[derive(Default)]
struct Signed {
    field: Vec<Batch>,
    docks: Vec<Batch>,
    media: u64,
    records: u64,
}

/// One day of signed batches, ready for the hub.
struct Day {
    /// Field devices' batches first (sent as it happens), then the docks' (after the shift).
    messages: Vec<Batch>,
    /// When the bytes of the recordings that arrive come, with their SHA-256 (hex) and size.
    arrivals: Vec<(i64, String, u64)>,
    media: u64,
    events: u64,
    seconds: f64,
}

/// A time in milliseconds as a UTC time (every time here lies within years of now).
fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn geo(rng: &mut fastrand::Rng, place: (f64, f64)) -> Geo {
    Geo {
        lat: (place.0 * 1e6).round() / 1e6,
        lon: (place.1 * 1e6).round() / 1e6,
        quality: FixQuality::Gps,
        age_ms: rng.u64(200..3000),
        satellites: Some(rng.u32(6..15)),
        hdop: Some(f64::from(rng.u32(7..25)) / 10.0),
        altitude_m: None,
    }
}

/// What a record says, before its place in a chain.
struct Draft {
    kind: Kind,
    device_id: String,
    officer: Option<usize>,
    device_time: i64,
    ingest_time: i64,
    clock_offset_ms: i64,
    media: Option<Media>,
    event: Option<Event>,
    geo: Option<Geo>,
}

impl Agent {
    /// Puts `draft` at the end of its source's chain and signs it.
    fn sign(&mut self, d: &District, draft: Draft) -> Envelope {
        let (seq, prev) = self
            .chains
            .get(&draft.device_id)
            .map_or((1, GENESIS), |&(s, h)| (s + 1, h));
        let mut random = [0u8; 10];
        self.rng.fill(&mut random);
        let id =
            uuid::Builder::from_unix_timestamp_millis(draft.ingest_time.max(0) as u64, &random)
                .into_uuid();
        let officer = draft.officer.map(|o| &d.officers[o]);
        let body = RecordBody {
            v: VERSION,
            id,
            kind: draft.kind,
            device_id: draft.device_id,
            agent_id: self.id.clone(),
            seq,
            prev_hash: prev.to_hex(),
            officer_id: officer.map(|o| o.id.clone()),
            unit_code: officer.map(|o| d.units[o.unit].code.clone()),
            device_time: at(draft.device_time),
            ingest_time: at(draft.ingest_time),
            clock_offset_ms: draft.clock_offset_ms,
            media: draft.media,
            event: draft.event,
            geo: draft.geo,
        };
        let bytes = body.to_bytes();
        self.chains.insert(body.device_id, (seq, Hash::of(&bytes)));
        Envelope::seal(&self.key, Context::Record, bytes)
    }

    /// The field device's records of its officer's shift, in time order.
    fn field_records(&mut self, d: &District, shift: &Shift) -> Vec<Envelope> {
        let officer = &d.officers[shift.officer];
        let home = d.units[officer.unit].center;
        let mut events: Vec<(i64, Event, (f64, f64))> = vec![
            (shift.start, Event::DutyStarted, home),
            (shift.end, Event::DutyEnded, home),
        ];
        for &a in &shift.actions {
            let action = &d.actions[a];
            let action_id = format!("A{:07}", action.number + 1);
            events.push((
                action.start,
                Event::ActionStarted {
                    action_id: action_id.clone(),
                    case_number: action.case_number.clone(),
                    domain: d.domains[action.domain].code.clone(),
                    legal_basis: action
                        .case_number
                        .as_ref()
                        .map(|_| "《中华人民共和国行政处罚法》第五十一条".to_owned()),
                },
                action.place,
            ));
            events.push((
                action.end,
                Event::ActionEnded {
                    action_id,
                    case_number: action.case_number.clone(),
                },
                action.place,
            ));
            if let Some((from, to)) = action.filmed {
                events.push((
                    from,
                    Event::RecordingStarted { file_index: None },
                    action.place,
                ));
                events.push((
                    to,
                    Event::RecordingStopped { file_index: None },
                    action.place,
                ));
            }
        }
        events.sort_by_key(|e| e.0);
        events
            .into_iter()
            .map(|(t, event, place)| {
                let g = geo(&mut self.rng, place);
                let latency = self.rng.i64(200..1500);
                self.sign(
                    d,
                    Draft {
                        kind: Kind::Event,
                        device_id: self.id.clone(),
                        officer: Some(shift.officer),
                        device_time: t,
                        ingest_time: t + latency,
                        clock_offset_ms: 0,
                        media: None,
                        event: Some(event),
                        geo: Some(g),
                    },
                )
            })
            .collect()
    }

    /// The dock's records of one recorder's shift: its check-out, and at
    /// docking its clock check, its recordings and its check-in.
    fn dock_records(&mut self, d: &District, shift: &Shift, out: &mut Vec<Envelope>) -> u64 {
        let Some(r) = shift.recorder else {
            return 0;
        };
        let recorder = &d.recorders[r];
        let officer = &d.officers[shift.officer];
        let reported = recorder.reported_offset_ms();
        let event =
            |device_time: i64, ingest_time: i64, officer: Option<usize>, event: Event| Draft {
                kind: Kind::Event,
                device_id: recorder.id.clone(),
                officer,
                device_time: device_time + reported,
                ingest_time,
                clock_offset_ms: reported,
                media: None,
                event: Some(event),
                geo: None,
            };
        if let Some(t) = shift.check_out {
            let e = event(
                t,
                t,
                Some(shift.officer),
                Event::RecorderCheckedOut {
                    officer_id: officer.id.clone(),
                    unit_code: d.units[officer.unit].code.clone(),
                    officer_name: Some(officer.name.clone()),
                },
            );
            out.push(self.sign(d, e));
        }
        let mut t = shift.docked;
        if reported != 0 {
            let e = event(
                t,
                t,
                Some(shift.officer),
                Event::ClockChecked {
                    offset_ms: reported,
                    corrected: false,
                    drift: reported.abs() > MINUTE,
                },
            );
            out.push(self.sign(d, e));
        }
        for &i in &shift.recordings {
            let rec = &d.recordings[i];
            t += self.rng.i64(1000..4000);
            let device_start = rec.start + recorder.offset_ms;
            let g = rec.place.map(|p| geo(&mut self.rng, p));
            let draft = Draft {
                kind: Kind::Media,
                device_id: recorder.id.clone(),
                officer: rec.linked.then_some(shift.officer),
                device_time: device_start,
                ingest_time: t,
                clock_offset_ms: reported,
                media: Some(Media {
                    sha256: hex(&rec.sha256),
                    size: rec.size,
                    mime: "video/mp4".into(),
                    file_name: format!(
                        "{}_{}_{:05}.MP4",
                        recorder.id,
                        at(device_start + 8 * 3_600_000).format("%Y%m%d%H%M%S"),
                        rec.file_index
                    ),
                    file_index: Some(rec.file_index),
                    started_at: Some(at(device_start)),
                    duration_ms: Some((rec.end - rec.start).max(0) as u64),
                }),
                event: None,
                geo: g,
            };
            out.push(self.sign(d, draft));
        }
        if shift.spare {
            t += 10_000;
            let e = event(
                t,
                t,
                Some(shift.officer),
                Event::RecorderCheckedIn {
                    files: shift.recordings.len() as u64,
                },
            );
            out.push(self.sign(d, e));
        }
        shift.recordings.len() as u64
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Cuts an agent's envelopes into record batches on its topic.
fn batches(agent: &str, envelopes: &[Envelope], out: &mut Vec<Batch>) {
    let topic = topic::topic(agent, Channel::Records);
    let mut rest = envelopes;
    while !rest.is_empty() {
        let n = batch::fitting(&rest[..rest.len().min(BATCH_RECORDS)]).max(1);
        out.push(Batch {
            topic: topic.clone(),
            payload: batch::encode(&rest[..n]),
            records: n,
        });
        rest = &rest[n..];
    }
}

/// Builds and signs one day on every core.
fn sign_day(d: &District, agents: &mut [Agent], day: usize, threads: usize) -> Day {
    let t0 = Instant::now();
    let (first, last) = d.days[day];
    let mut by_officer: Vec<Option<usize>> = vec![None; d.officers.len()];
    let mut by_dock: Vec<Vec<usize>> = vec![Vec::new(); d.docks.len()];
    for s in first..last {
        let shift = &d.shifts[s];
        by_officer[shift.officer] = Some(s);
        if let Some(r) = shift.recorder {
            by_dock[d.recorders[r].dock].push(s);
        }
    }
    for list in &mut by_dock {
        list.sort_by_key(|&s| d.shifts[s].docked);
    }
    let mut groups: Vec<Vec<&mut Agent>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, a) in agents.iter_mut().enumerate() {
        groups[i % threads].push(a);
    }
    let (by_officer, by_dock) = (&by_officer, &by_dock);
    let parts: Vec<Signed> = std::thread::scope(|scope| {
        let handles: Vec<_> = groups
            .into_iter()
            .map(|group| {
                scope.spawn(move || {
                    let mut out = Signed::default();
                    for agent in group {
                        let mut envelopes = Vec::new();
                        if let Some(o) = agent.officer {
                            if let Some(s) = by_officer[o] {
                                envelopes = agent.field_records(d, &d.shifts[s]);
                            }
                        } else if let Some(k) = agent.dock {
                            for &s in &by_dock[k] {
                                out.media += agent.dock_records(d, &d.shifts[s], &mut envelopes);
                            }
                        }
                        out.records += envelopes.len() as u64;
                        let list = if agent.dock.is_some() {
                            &mut out.docks
                        } else {
                            &mut out.field
                        };
                        batches(&agent.id, &envelopes, list);
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            // The closure does not panic; if it ever did, generation stops with it.
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let (mut field, mut docks) = (Vec::new(), Vec::new());
    let (mut media, mut records) = (0, 0);
    for p in parts {
        field.extend(p.field);
        docks.extend(p.docks);
        media += p.media;
        records += p.records;
    }
    field.extend(docks);
    let arrivals = d.shifts[first..last]
        .iter()
        .flat_map(|s| {
            s.recordings
                .iter()
                .map(move |&i| (s.uploaded, &d.recordings[i]))
        })
        .filter(|(_, r)| r.arrives)
        .map(|(at, r)| (at, hex(&r.sha256), r.size))
        .collect();
    Day {
        messages: field,
        arrivals,
        media,
        events: records - media,
        seconds: t0.elapsed().as_secs_f64(),
    }
}

fn roster(d: &District, store: &mut Store) -> anyhow::Result<()> {
    let units: Vec<store::Unit> = d
        .units
        .iter()
        .map(|u| store::Unit {
            unit_code: u.code.clone(),
            name: u.name.clone(),
            district_code: Some(u.code[..6].to_owned()),
            domain: None,
            parent_code: None,
        })
        .collect();
    store.upsert_units(&units).context("adding the units")?;
    let officers: Vec<store::Officer> = d
        .officers
        .iter()
        .map(|o| store::Officer {
            officer_id: o.id.clone(),
            name: o.name.clone(),
            unit_code: Some(d.units[o.unit].code.clone()),
            domain: Some(d.domains[o.domain].code.clone()),
            active: true,
        })
        .collect();
    store
        .upsert_officers(&officers)
        .context("adding the officers")?;
    for r in &d.recorders {
        store
            .register_recorder(&r.id)
            .with_context(|| format!("registering recorder {}", r.id))?;
    }
    Ok(())
}

/// Announces every agent (signed with its own key) and returns them.
fn enroll(d: &District, ingest: &mut Ingest, seed: u64) -> anyhow::Result<Vec<Agent>> {
    let mut agents = Vec::with_capacity(d.officers.len() + d.docks.len());
    let fields = d
        .officers
        .iter()
        .enumerate()
        .map(|(i, o)| (o.field_device.clone(), "field", Some(i), None));
    let docks = d
        .docks
        .iter()
        .enumerate()
        .map(|(k, dock)| (dock.id.clone(), "dock", None, Some(k)));
    let mut messages = Vec::new();
    for (n, (id, role, officer, dock)) in fields.chain(docks).enumerate() {
        let key = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8()?)?;
        let o = officer.map(|i: usize| &d.officers[i]);
        let announce = AnnounceBody {
            v: 1,
            device_id: id.clone(),
            public_key: key.public().to_base64(),
            role: role.into(),
            officer_id: o.map(|o| o.id.clone()),
            unit_code: o
                .map(|o| d.units[o.unit].code.clone())
                .or_else(|| dock.map(|k: usize| d.units[d.docks[k].unit].code.clone())),
            software: format!("evsync-bench-coverage {}", env!("CARGO_PKG_VERSION")),
            sent_at: at(d.start_ms),
        }
        .seal(&key);
        messages.push((topic::topic(&id, Channel::Announce), announce));
        agents.push(Agent {
            id,
            key,
            dock,
            officer,
            chains: HashMap::new(),
            rng: fastrand::Rng::with_seed(
                seed ^ (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ),
        });
    }
    for chunk in messages.chunks(256) {
        let refs: Vec<(&str, &[u8])> = chunk
            .iter()
            .map(|(t, p)| (t.as_str(), p.as_slice()))
            .collect();
        ingest.process(&refs).context("announcing the agents")?;
    }
    for a in &agents {
        let enrolled = ingest.store().device(&a.id)?;
        anyhow::ensure!(
            enrolled.is_some_and(|e| e.state == store::DeviceState::Approved),
            "agent {} was not enrolled and approved from its announcement",
            a.id
        );
    }
    Ok(agents)
}

/// Generates the district into a new hub store in `data_dir`; bytes due
/// after `now_ms` stay awaited.
pub fn generate(
    d: Arc<District>,
    data_dir: &Path,
    seed: u64,
    now_ms: i64,
) -> anyhow::Result<Generated> {
    let t0 = Instant::now();
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let key = Arc::new(evsync_hub::server::hub_key(data_dir)?);
    let db = data_dir.join("hub.sqlite");
    let mut side = Store::open(&db)?;
    roster(&d, &mut side)?;
    let issuer = Arc::new(Issuer::new(
        HUB_ID.into(),
        key.clone(),
        "http://127.0.0.1:9".into(),
        Duration::from_secs(3600),
    ));
    // The ingest stage as the hub's server makes it (auto-approving).
    let mut ingest = Ingest::new(
        Store::open(&db)?,
        HUB_ID.into(),
        key,
        true,
        Duration::from_secs(60),
        Arc::new(Metrics::default()),
        issuer,
    );
    let mut agents = enroll(&d, &mut ingest, seed)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());

    // The signing stage runs a day ahead of the hub.
    let (tx, rx) = mpsc::sync_channel::<Day>(1);
    let plan = d.clone();
    let signer = std::thread::Builder::new()
        .name("sign".into())
        .spawn(move || {
            for day in 0..plan.days.len() {
                if tx.send(sign_day(&plan, &mut agents, day, threads)).is_err() {
                    return; // the hub side stopped (and says why)
                }
            }
        })
        .context("starting the signing thread")?;

    let mut g = Generated::default();
    let mut sent = 0u64;
    // Bytes due, earliest first.
    let mut due: std::collections::BinaryHeap<std::cmp::Reverse<(i64, String, u64)>> =
        Default::default();
    let mut last_report = Instant::now();
    for (n, day) in rx.iter().enumerate() {
        g.signing_seconds += day.seconds;
        g.media += day.media;
        g.events += day.events;
        let t = Instant::now();
        let mut call: Vec<(&str, &[u8])> = Vec::new();
        let mut in_call = 0;
        for (i, b) in day.messages.iter().enumerate() {
            call.push((b.topic.as_str(), b.payload.as_slice()));
            in_call += b.records;
            sent += b.records as u64;
            if in_call >= RECORDS_PER_CALL || i + 1 == day.messages.len() {
                ingest
                    .process(&call)
                    .with_context(|| format!("ingesting day {n}"))?;
                call.clear();
                in_call = 0;
            }
        }
        g.ingest_seconds += t.elapsed().as_secs_f64();
        let t = Instant::now();
        due.extend(day.arrivals.into_iter().map(std::cmp::Reverse));
        let until = if n + 1 == d.days.len() {
            now_ms
        } else {
            d.start_ms + (n as i64 + 1) * DAY
        };
        while let Some(std::cmp::Reverse((at_ms, sha, size))) = due.pop() {
            if at_ms > until {
                due.push(std::cmp::Reverse((at_ms, sha, size)));
                break;
            }
            side.blob_stored_at(&sha, size, at(at_ms))
                .with_context(|| format!("storing the bytes of {sha} (day {n})"))?;
            g.arrived += 1;
        }
        g.arrival_seconds += t.elapsed().as_secs_f64();
        if last_report.elapsed() > Duration::from_secs(20) || n + 1 == d.days.len() {
            last_report = Instant::now();
            eprintln!(
                "generating: day {}/{}: {sent} records, {} recordings arrived, {:.0} s, {:.0} records/s",
                n + 1,
                d.days.len(),
                g.arrived,
                t0.elapsed().as_secs_f64(),
                sent as f64 / t0.elapsed().as_secs_f64()
            );
        }
    }
    signer
        .join()
        .map_err(|_| anyhow::anyhow!("the signing thread panicked"))?;
    g.records = side.record_count()? as u64;
    anyhow::ensure!(
        g.records == sent,
        "the hub stored {} of the {sent} records sent: see the rejects table of {}",
        g.records,
        db.display()
    );
    // The alerts time raises, as the hub's sweeper looks for them.
    let cfg = evsync_hub::config::CoverageConfig::default();
    let minutes = |m: u32| Duration::from_secs(u64::from(m) * 60);
    let sweep = |store: &mut Store| {
        store.coverage_sweep(
            chrono::Utc::now().timestamp_millis(),
            minutes(cfg.alert_after_mins),
            minutes(cfg.unheard_after_mins),
        )
    };
    let t = Instant::now();
    let first = sweep(&mut side).context("the first coverage sweep")?;
    g.first_sweep_seconds = t.elapsed().as_secs_f64();
    g.first_sweep_alerts = first.actions + first.officers + first.late;
    let t = Instant::now();
    sweep(&mut side).context("the second coverage sweep")?;
    g.next_sweep_seconds = t.elapsed().as_secs_f64();
    g.seconds = t0.elapsed().as_secs_f64();
    Ok(g)
}

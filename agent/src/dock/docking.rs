//! What the dock does with a docked recorder, in order: open it, identify
//! it, measure and correct its clock, then until it is taken out: list its
//! files, report numbered files that vanished, copy and record new ones,
//! and delete the ones whose evidence is safe (per policy), checking that
//! each deletion happened.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Duration as ChronoDuration, NaiveDateTime, Utc};
use evsync_protocol::chain::{Hash, GENESIS};
use evsync_protocol::record::{Event, Kind, Media, RecordBody, VERSION};
use evsync_protocol::signing::SigningKey;
use evsync_recorder_protocol::message::{
    FileEntry, Identity, Request, Response, FLAG_IMPORTANT, MAX_LIST_PAGE, VERSIONS,
};
use tokio::sync::{watch, Notify, Semaphore};

use super::copy;
use super::gaps;
use super::link::RecorderLink;
use crate::buffer::{with_buffer, Buffer, DockedFile, HeldMedia, LedgerRow};
use crate::config::AgentConfig;
use crate::probe;
use crate::records::now_millis;

/// What every slot shares.
pub struct Shared {
    /// The agent's configuration.
    pub cfg: AgentConfig,
    /// The dock's signing key.
    pub key: Arc<SigningKey>,
    /// The buffer.
    pub buffer: Arc<Mutex<Buffer>>,
    /// Bounds copies across slots.
    pub copies: Arc<Semaphore>,
    /// Woken when records are committed.
    pub new_records: Arc<Notify>,
}

/// A recorder as identified on docking.
#[derive(Debug)]
struct Docked {
    id: String,
    officer: Option<String>,
    unit: Option<String>,
    utc_offset_min: i16,
    clock_offset_ms: i64,
    max_chunk: u32,
}

/// Serves one docked recorder until it is taken out (an error from the
/// line) or the agent stops (`Ok`).
pub async fn serve(
    shared: &Shared,
    link: &mut RecorderLink,
    shutdown: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let docked = open(shared, link).await?;
    let poll = Duration::from_millis(shared.cfg.dock.poll_ms);
    loop {
        sync_files(shared, link, &docked).await?;
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

async fn open(shared: &Shared, link: &mut RecorderLink) -> anyhow::Result<Docked> {
    let dock = &shared.cfg.dock;
    let max_chunk = match link
        .call(Request::Hello {
            min: *VERSIONS.start(),
            max: *VERSIONS.end(),
        })
        .await?
    {
        Response::Hello { max_chunk, .. } => max_chunk,
        other => anyhow::bail!("recorder answered Hello with {other:?}"),
    };
    let mut password = [0u8; 6];
    password.copy_from_slice(&dock.password.as_bytes()[..6]);
    link.call(Request::InitDevice { password }).await?;
    let Response::Identity(identity) = link.call(Request::Identify).await? else {
        anyhow::bail!("recorder answered Identify with something else");
    };
    let Response::ZfyInfo(zfy) = link.call(Request::GetZfyInfo).await? else {
        anyhow::bail!("recorder answered GetZFYInfo with something else");
    };
    evsync_protocol::topic::validate_device_id(&identity.device_id).map_err(|e| {
        anyhow::anyhow!(
            "recorder reports device id {:?}, which cannot be a device id: {e}",
            identity.device_id
        )
    })?;
    let offset = measure_clock(link, identity.utc_offset_min).await?;
    let threshold = i64::try_from(dock.clock_set_threshold_ms).unwrap_or(i64::MAX);
    let corrected = offset.abs() > threshold;
    if corrected {
        let local =
            (Utc::now() + ChronoDuration::minutes(i64::from(identity.utc_offset_min))).naive_utc();
        link.call(Request::SyncDevTime {
            time: round_to_second(local),
        })
        .await?;
    }
    let drift = offset.unsigned_abs() > dock.clock_drift_alert_secs.saturating_mul(1000);
    let docked = Docked {
        id: identity.device_id.clone(),
        officer: assigned(&zfy.officer_no),
        unit: assigned(&zfy.unit_no),
        utc_offset_min: identity.utc_offset_min,
        clock_offset_ms: offset,
        max_chunk: max_chunk.clamp(512, evsync_recorder_protocol::message::MAX_CHUNK),
    };
    tracing::info!(
        recorder = docked.id,
        firmware = identity.firmware,
        battery = identity.battery_pct,
        files = identity.files,
        clock_offset_ms = offset,
        corrected,
        drift,
        "recorder docked"
    );
    record_docking(shared, &docked, &identity, corrected, drift).await?;
    Ok(docked)
}

/// The value of an assignment field, or `None` for the all-zero "nobody".
fn assigned(v: &str) -> Option<String> {
    (!v.is_empty() && !v.bytes().all(|b| b == b'0')).then(|| v.to_owned())
}

fn round_to_second(t: NaiveDateTime) -> NaiveDateTime {
    use chrono::Timelike;
    t.with_nanosecond(0).unwrap_or(t)
}

/// Recorder clock minus dock clock, milliseconds: the recorder's answer set
/// against the midpoint of the exchange; the best of three.
async fn measure_clock(link: &mut RecorderLink, utc_offset_min: i16) -> anyhow::Result<i64> {
    let mut best: Option<(i64, i64)> = None;
    for _ in 0..3 {
        let sent = Utc::now();
        let Response::Time { clock, millis } = link.call(Request::GetTime).await? else {
            anyhow::bail!("recorder answered GetTime with something else");
        };
        let got = Utc::now();
        let rtt = (got - sent).num_milliseconds();
        let recorder_utc = (clock - ChronoDuration::minutes(i64::from(utc_offset_min))).and_utc()
            + ChronoDuration::milliseconds(i64::from(millis));
        let mid = sent + (got - sent) / 2;
        let offset = (recorder_utc - mid).num_milliseconds();
        if best.is_none_or(|(r, _)| rtt < r) {
            best = Some((rtt, offset));
        }
    }
    best.map(|(_, o)| o)
        .context("no clock reading from the recorder")
}

/// A record about the docked recorder, to be placed in its chain by [`chained`].
fn body(shared: &Shared, docked: &Docked, kind: Kind, device_time: DateTime<Utc>) -> RecordBody {
    use chrono::SubsecRound;
    RecordBody {
        v: VERSION,
        id: uuid::Uuid::now_v7(),
        kind,
        device_id: docked.id.clone(),
        agent_id: shared.cfg.device_id.clone(),
        seq: 0,
        prev_hash: GENESIS.to_hex(),
        officer_id: docked.officer.clone(),
        unit_code: docked.unit.clone(),
        device_time: device_time.trunc_subsecs(3),
        ingest_time: now_millis(),
        clock_offset_ms: docked.clock_offset_ms,
        media: None,
        event: None,
        geo: None,
    }
}

/// `template` at the chain position the buffer gives it.
fn chained(template: RecordBody) -> impl FnOnce(u64, Hash) -> RecordBody {
    move |seq, prev| RecordBody {
        seq,
        prev_hash: prev.to_hex(),
        ..template
    }
}

async fn record_docking(
    shared: &Shared,
    docked: &Docked,
    identity: &Identity,
    corrected: bool,
    drift: bool,
) -> anyhow::Result<()> {
    let key = shared.key.clone();
    let id = docked.id.clone();
    let clock =
        (identity.clock - ChronoDuration::minutes(i64::from(identity.utc_offset_min))).and_utc();
    let status = Event::DeviceStatus {
        battery_pct: Some(identity.battery_pct),
        storage_free_bytes: Some(identity.free_bytes),
        storage_total_bytes: Some(identity.total_bytes),
    };
    let checked = Event::ClockChecked {
        offset_ms: docked.clock_offset_ms,
        corrected,
        drift,
    };
    let mk = |event: Event| {
        let mut b = body(shared, docked, Kind::Event, clock);
        b.event = Some(event);
        b
    };
    let (a, b) = (mk(checked), mk(status));
    with_buffer(&shared.buffer, move |buf| {
        for template in [a, b] {
            buf.append_recorder_event(&key, &id, None, chained(template))?;
        }
        Ok(())
    })
    .await?;
    shared.new_records.notify_one();
    Ok(())
}

async fn list_all(link: &mut RecorderLink) -> anyhow::Result<Vec<FileEntry>> {
    let mut out: Vec<FileEntry> = Vec::new();
    let mut from = 0u32;
    loop {
        let Response::Files { entries, more } = link
            .call(Request::ListFiles {
                from,
                max: MAX_LIST_PAGE,
            })
            .await?
        else {
            anyhow::bail!("recorder answered ListFiles with something else");
        };
        let last = entries.last().map(|e| e.index);
        for e in entries {
            anyhow::ensure!(
                out.last().is_none_or(|p| e.index > p.index),
                "recorder listed file #{} out of order",
                e.index
            );
            out.push(e);
        }
        match last {
            Some(l) if more && l < u32::MAX => from = l + 1,
            _ => return Ok(out),
        }
    }
}

async fn sync_files(
    shared: &Shared,
    link: &mut RecorderLink,
    docked: &Docked,
) -> anyhow::Result<()> {
    let entries = list_all(link).await?;
    let id = docked.id.clone();
    let baseline = entries.first().map_or(0, |e| e.index.saturating_sub(1));
    let (ledger, baseline, reported) = with_buffer(&shared.buffer, move |b| {
        let ledger = b.ledger(&id)?;
        let baseline = match ledger.first() {
            // Known before: nothing below what was first seen is expected.
            Some(first) => b.docked(&id, first.file.index.saturating_sub(1).min(baseline))?,
            None => b.docked(&id, baseline)?,
        };
        Ok((ledger, baseline, b.missing(&id)?))
    })
    .await?;
    let copied: HashMap<u32, &LedgerRow> = ledger.iter().map(|r| (r.file.index, r)).collect();
    let known: Vec<u32> = entries
        .iter()
        .map(|e| e.index)
        .chain(copied.keys().copied())
        .collect();
    for (from, to) in gaps::missing(baseline, &known, &reported) {
        report_missing(shared, docked, from, to).await?;
    }
    for entry in entries.iter().filter(|e| !copied.contains_key(&e.index)) {
        take(shared, link, docked, entry).await?;
    }
    let listed: HashSet<u32> = entries.iter().map(|e| e.index).collect();
    delete_safe(shared, link, docked, &ledger, &entries, &listed).await
}

async fn report_missing(
    shared: &Shared,
    docked: &Docked,
    from: u32,
    to: u32,
) -> anyhow::Result<()> {
    tracing::error!(
        recorder = docked.id,
        from,
        to,
        "files numbered by the recorder are gone from it without having been synced"
    );
    let mut template = body(shared, docked, Kind::Event, Utc::now());
    template.event = Some(Event::FilesMissing {
        from_index: u64::from(from),
        to_index: u64::from(to),
    });
    let (key, id) = (shared.key.clone(), docked.id.clone());
    with_buffer(&shared.buffer, move |b| {
        b.append_recorder_event(&key, &id, Some((from, to)), chained(template))
    })
    .await?;
    shared.new_records.notify_one();
    Ok(())
}

/// Copies one new file and commits its record.
async fn take(
    shared: &Shared,
    link: &mut RecorderLink,
    docked: &Docked,
    entry: &FileEntry,
) -> anyhow::Result<()> {
    let _permit = shared
        .copies
        .clone()
        .acquire_owned()
        .await
        .context("copy limiter closed")?;
    let media_dir = shared.cfg.data_dir.join("media");
    let copied = copy::copy(link, &docked.id, entry, &media_dir, docked.max_chunk).await?;
    let path = copied.path.clone();
    let name = entry.name.clone();
    let info = tokio::task::spawn_blocking(move || probe::probe(&path, &name))
        .await
        .context("probing a copied recording")?;
    if let Some(problem) = &info.problem {
        tracing::warn!(
            recorder = docked.id,
            index = entry.index,
            problem,
            "recording kept as evidence without container metadata"
        );
    }
    let recorded_utc =
        (entry.recorded - ChronoDuration::minutes(i64::from(docked.utc_offset_min))).and_utc();
    let device_time = info.started_at.unwrap_or(recorded_utc);
    let important = entry.flags & FLAG_IMPORTANT != 0;
    let held = HeldMedia {
        sha256: copied.sha256.clone(),
        path: copied.path.clone(),
        size: copied.size,
        file_name: entry.name.clone(),
        priority: i64::from(important).max(shared.cfg.upload.priority_of(&entry.name)),
    };
    let file = DockedFile {
        index: entry.index,
        name: entry.name.clone(),
        size: copied.size,
    };
    let mut template = body(shared, docked, Kind::Media, device_time);
    template.media = Some(Media {
        sha256: copied.sha256.clone(),
        size: copied.size,
        mime: info.mime.to_owned(),
        file_name: entry.name.clone(),
        file_index: Some(u64::from(entry.index)),
        started_at: info.started_at,
        duration_ms: info.duration_ms,
    });
    let (key, id) = (shared.key.clone(), docked.id.clone());
    let rec = with_buffer(&shared.buffer, move |b| {
        b.append_docked(&key, &id, &file, &held, chained(template))
    })
    .await?;
    shared.new_records.notify_one();
    tracing::info!(
        recorder = docked.id,
        index = entry.index,
        size = copied.size,
        seq = rec.seq,
        confirmed = copied.confirmed_by_recorder,
        "recording copied off the recorder"
    );
    Ok(())
}

async fn delete_safe(
    shared: &Shared,
    link: &mut RecorderLink,
    docked: &Docked,
    ledger: &[LedgerRow],
    entries: &[FileEntry],
    listed: &HashSet<u32>,
) -> anyhow::Result<()> {
    let policy = shared.cfg.dock.delete.as_str();
    for row in ledger.iter().filter(|r| !r.deleted) {
        let index = row.file.index;
        if listed.contains(&index) {
            let due = match policy {
                "after_copy" => true,
                "after_media_receipt" => row.safe,
                _ => false,
            };
            if !due {
                continue;
            }
            let on_recorder = entries.iter().find(|e| e.index == index);
            if on_recorder.is_some_and(|e| e.name != row.file.name) {
                tracing::warn!(
                    recorder = docked.id,
                    index,
                    "file index now names another file; not deleting"
                );
                continue;
            }
            link.call(Request::DeleteFile {
                index,
                size: row.file.size,
                name: row.file.name.clone(),
            })
            .await
            .with_context(|| format!("deleting file #{index} from {}", docked.id))?;
            // Check that it is gone.
            let Response::Files { entries: after, .. } = link
                .call(Request::ListFiles {
                    from: index,
                    max: 1,
                })
                .await?
            else {
                anyhow::bail!("recorder answered ListFiles with something else");
            };
            anyhow::ensure!(
                after.first().is_none_or(|e| e.index != index),
                "recorder {} still lists file #{index} after deleting it",
                docked.id
            );
            tracing::info!(
                recorder = docked.id,
                index,
                "file deleted from the recorder; its evidence is safe at the hub"
            );
        }
        let id = docked.id.clone();
        with_buffer(&shared.buffer, move |b| b.mark_deleted(&id, index)).await?;
    }
    Ok(())
}

//! What the dock does with a docked recorder, in order: open it, identify
//! it, measure and correct its clock, then until it is taken out: list its
//! files, report numbered files that vanished, copy and record new ones,
//! delete the ones whose evidence is safe (per policy), checking that each
//! deletion happened; check a pooled recorder in once its recordings are
//! taken, and hand it out (check-out) once it is cleared.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Duration as ChronoDuration, NaiveDateTime, Utc};
use evsync_protocol::chain::{Hash, GENESIS};
use evsync_protocol::record::{Event, Kind, Media, RecordBody, VERSION};
use evsync_protocol::signing::SigningKey;
use evsync_recorder_protocol::message::{
    FileEntry, Identity, Request, Response, ZfyInfo, FLAG_IMPORTANT, MAX_LIST_PAGE, VERSIONS,
};
use tokio::sync::{watch, Notify, Semaphore};

use super::board::{Copying, SlotHandle, SlotState};
use super::gaps;
use super::link::RecorderLink;
use super::mount;
use super::{configure, firmware};
use crate::buffer::{with_buffer, Buffer, Checkout, DockedFile, HeldMedia, LedgerRow};
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
    /// Configuration assignments of docked recorders, from the hub.
    pub assignments: Arc<crate::assignments::Assignments>,
}

/// A recorder as identified on docking.
#[derive(Debug)]
pub struct Docked {
    pub(super) id: String,
    /// Its GA/T 947 identity and assignment as last read or written.
    zfy: ZfyInfo,
    officer: Option<String>,
    unit: Option<String>,
    utc_offset_min: i16,
    pub(super) clock_offset_ms: i64,
    pub(super) max_chunk: u32,
    /// Firmware version it reports.
    pub(super) firmware: String,
    /// The firmware image its accepted assignment names.
    pub(super) firmware_wanted: Option<evsync_protocol::assignment::FirmwareImage>,
    /// SHA-256 of the image dealt with at this docking (installed or refused).
    pub(super) firmware_done: Option<String>,
    /// Downloads of the wanted image that failed on the way at this docking.
    pub(super) firmware_attempts: u32,
    /// Files taken off it at this docking.
    taken: u64,
    /// A pooled recorder was checked in at this docking.
    checked_in: bool,
    /// It was checked out at this docking: not handed out again until it
    /// has been taken and docked again.
    checked_out: bool,
    /// Files that could not be taken: failures so far, and when to try again.
    failing: HashMap<u32, (u32, std::time::Instant)>,
    /// The configuration it runs (its content hash), or why none could be read.
    pub(super) running: configure::Running,
    /// SHA-256 of the last assignment message dealt with at this docking.
    pub(super) assignment_seen: Option<Vec<u8>>,
    /// `running` was recorded (`config_checked`) at this docking.
    pub(super) running_recorded: bool,
}

/// A recorder docked again within this many seconds of its check-out,
/// with no recordings, is taken to have never left: not checked in.
const CHECK_IN_AFTER_SECS: i64 = 120;

/// Where a recorder stands after a pass over its files.
#[derive(Debug, Clone, Copy)]
struct Standing {
    /// Files on it.
    on_recorder: usize,
    /// Files on it not yet copied.
    uncopied: usize,
    /// Files still on it whose evidence the hub does not yet hold.
    unsafe_left: usize,
}

impl Standing {
    /// Every recording is copied and every one still on it is safe at the
    /// hub: it can go out for the next shift.
    fn cleared(&self) -> bool {
        self.uncopied == 0 && self.unsafe_left == 0
    }
}

/// Serves one docked recorder until it is taken out (an error from the
/// line) or the agent stops (`Ok`), keeping `slot`'s figures on the board.
pub async fn serve(
    shared: &Shared,
    link: &mut RecorderLink,
    shutdown: &mut watch::Receiver<bool>,
    slot: &SlotHandle,
) -> anyhow::Result<()> {
    slot.update(|s| {
        s.state = SlotState::Identifying;
        s.error = None;
        s.files_copied = 0;
    });
    // Line figures count from the agent's start: this link's come on top.
    let before = slot.status().map_or((0, 0, 0), |s| {
        (s.retries, s.damaged_frames, s.skipped_bytes)
    });
    let line = |s: &mut super::board::SlotStatus, link: &RecorderLink| {
        let (skipped, damaged) = link.damage();
        s.retries = before.0 + link.retries();
        s.damaged_frames = before.1 + damaged;
        s.skipped_bytes = before.2 + skipped;
    };
    let opened = open(shared, link, slot).await;
    slot.update(|s| line(s, link));
    let mut docked = opened?;
    let served = serve_docked(shared, link, shutdown, slot, &mut docked, line).await;
    if let Err(e) = shared.assignments.forget(&docked.id) {
        tracing::debug!(recorder = docked.id, error = %format!("{e:#}"), "config topic kept");
    }
    served
}

/// [`serve`] once the recorder is open.
async fn serve_docked(
    shared: &Shared,
    link: &mut RecorderLink,
    shutdown: &mut watch::Receiver<bool>,
    slot: &SlotHandle,
    docked: &mut Docked,
    line: impl Fn(&mut super::board::SlotStatus, &RecorderLink),
) -> anyhow::Result<()> {
    let poll = Duration::from_millis(shared.cfg.dock.poll_ms);
    loop {
        configure::apply_assigned(shared, link, docked).await?;
        let synced = sync_files(shared, link, docked, slot).await;
        slot.update(|s| line(s, link));
        let standing = synced?;
        // Evidence first: firmware only once every recording is copied off.
        if standing.uncopied == 0 {
            firmware::install_assigned(shared, link, docked).await?;
        }
        // Checked in once its evidence is safe at the hub: until then the
        // recorder keeps naming who carried it, should it be copied again.
        if shared.cfg.dock.pooled && standing.cleared() {
            check_in(shared, link, docked).await?;
        }
        slot.update(|s| {
            s.state = if standing.cleared() && docked.checked_out {
                SlotState::CheckedOut
            } else if standing.cleared() {
                SlotState::Cleared
            } else if standing.uncopied > 0 {
                SlotState::Copying
            } else {
                SlotState::Waiting
            };
            s.files_on_recorder = standing.on_recorder;
            s.officer = docked.officer.clone();
            s.unit = docked.unit.clone();
        });
        if shared.cfg.dock.pooled && standing.cleared() && !docked.checked_out {
            hand_out(shared, link, docked, slot).await?;
        }
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

async fn open(
    shared: &Shared,
    link: &mut RecorderLink,
    slot: &SlotHandle,
) -> anyhow::Result<Docked> {
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
        zfy,
        utc_offset_min: identity.utc_offset_min,
        clock_offset_ms: offset,
        max_chunk: max_chunk.clamp(512, evsync_recorder_protocol::message::MAX_CHUNK),
        taken: 0,
        checked_in: false,
        checked_out: false,
        failing: HashMap::new(),
        running: Err("not read yet".into()),
        assignment_seen: None,
        running_recorded: false,
        firmware: identity.firmware.clone(),
        firmware_wanted: None,
        firmware_done: None,
        firmware_attempts: 0,
    };
    slot.update(|s| {
        s.recorder = Some(docked.id.clone());
        s.officer = docked.officer.clone();
        s.unit = docked.unit.clone();
        s.battery_pct = Some(identity.battery_pct);
        s.firmware = Some(identity.firmware.clone());
        s.clock_offset_ms = Some(docked.clock_offset_ms);
        s.files_on_recorder = identity.files as usize;
    });
    // A check-out this recorder was being given when the agent stopped or
    // the recorder was pulled is answered again.
    let id = docked.id.clone();
    with_buffer(&shared.buffer, move |b| b.release_claims(&id)).await?;
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
    let mut docked = docked;
    shared.assignments.want(&docked.id)?;
    docked.running = configure::read_running(link).await?;
    configure::record_running_if_assigned(shared, &mut docked).await?;
    Ok(docked)
}

/// A recorder's file name as a record can carry it (1 to 255 bytes, no
/// NUL): NUL shown as `␀`, an empty name as `#<index>`. Anything else the
/// recorder reports is kept as it is.
fn record_file_name(name: &str, index: u32) -> String {
    if name.is_empty() {
        return format!("#{index}");
    }
    let mut out = name.replace('\0', "\u{2400}");
    if out.len() > 255 {
        let mut end = 255;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
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
pub(super) fn body(
    shared: &Shared,
    docked: &Docked,
    kind: Kind,
    device_time: DateTime<Utc>,
) -> RecordBody {
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
pub(super) fn chained(template: RecordBody) -> impl FnOnce(u64, Hash) -> RecordBody {
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
    docked: &mut Docked,
    slot: &SlotHandle,
) -> anyhow::Result<Standing> {
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
    let new: Vec<&FileEntry> = entries
        .iter()
        .filter(|e| !copied.contains_key(&e.index))
        .collect();
    if !new.is_empty() {
        slot.update(|s| s.state = SlotState::Copying);
    }
    let mut failed = 0;
    for entry in &new {
        let now = std::time::Instant::now();
        if docked
            .failing
            .get(&entry.index)
            .is_some_and(|(_, at)| *at > now)
        {
            failed += 1;
            continue;
        }
        if let Err(e) = take(shared, link, docked, entry, slot).await {
            // The line failing ends this docking; anything else (a file the
            // disk cannot take, a copy that does not match the recorder's
            // digest) is this file's problem: it stays on the recorder, is
            // tried again at the next pass, and the others go on.
            if e.downcast_ref::<super::link::LinkError>().is_some() {
                return Err(e);
            }
            let e = format!("file #{} ({:?}): {e:#}", entry.index, entry.name);
            // Tried again after a pause that doubles each time, up to 5 minutes.
            let tries = docked.failing.get(&entry.index).map_or(0, |(n, _)| *n) + 1;
            let pause = Duration::from_millis(shared.cfg.dock.poll_ms)
                .saturating_mul(1 << tries.min(12))
                .min(Duration::from_secs(300));
            docked.failing.insert(entry.index, (tries, now + pause));
            tracing::error!(
                recorder = docked.id,
                error = e,
                tries,
                retry_in_ms = pause.as_millis() as u64,
                "recording not taken; tried again later"
            );
            slot.update(|s| s.error = Some(e));
            failed += 1;
        } else {
            docked.failing.remove(&entry.index);
        }
    }
    if failed == 0 {
        slot.update(|s| s.error = None);
    }
    let listed: HashSet<u32> = entries.iter().map(|e| e.index).collect();
    let (deleted, unsafe_left) =
        delete_safe(shared, link, docked, &ledger, &entries, &listed).await?;
    Ok(Standing {
        on_recorder: entries.len() - deleted,
        uncopied: failed,
        // Just copied: the hub has none of them yet.
        unsafe_left: unsafe_left + new.len() - failed,
    })
}

/// Checks a pooled recorder in once every recording on it is copied (and
/// so attributed to the officer who carried it): a `recorder_checked_in`
/// record in their name, then the officer is cleared from the recorder.
async fn check_in(
    shared: &Shared,
    link: &mut RecorderLink,
    docked: &mut Docked,
) -> anyhow::Result<()> {
    if docked.checked_in {
        return Ok(());
    }
    docked.checked_in = true;
    let Some(officer) = docked.officer.clone() else {
        return Ok(());
    };
    // Back without a recording moments after its check-out: the line
    // dropped while the officer was taking it, or it was only reseated. It
    // stays theirs.
    let id = docked.id.clone();
    let out_at = with_buffer(&shared.buffer, move |b| b.last_checkout(&id)).await?;
    if docked.taken == 0
        && out_at.is_some_and(|t| Utc::now() - t < ChronoDuration::seconds(CHECK_IN_AFTER_SECS))
    {
        tracing::info!(
            recorder = docked.id,
            officer,
            "recorder back without recordings right after its check-out; still checked out"
        );
        docked.checked_out = true;
        return Ok(());
    }
    let mut template = body(shared, docked, Kind::Event, Utc::now());
    template.event = Some(Event::RecorderCheckedIn {
        files: docked.taken,
    });
    let (key, id) = (shared.key.clone(), docked.id.clone());
    with_buffer(&shared.buffer, move |b| {
        b.append_recorder_event(&key, &id, None, chained(template))
    })
    .await?;
    shared.new_records.notify_one();
    let cleared = ZfyInfo {
        officer_no: "000000".into(),
        officer_name: String::new(),
        ..docked.zfy.clone()
    };
    write_zfy(link, docked, cleared).await?;
    tracing::info!(
        recorder = docked.id,
        officer,
        files = docked.taken,
        "recorder checked in; its officer cleared"
    );
    Ok(())
}

/// Writes `info` into the recorder and reads it back.
async fn write_zfy(
    link: &mut RecorderLink,
    docked: &mut Docked,
    info: ZfyInfo,
) -> anyhow::Result<()> {
    link.call(Request::WriteZfyInfo(info.clone()))
        .await
        .with_context(|| format!("writing the assignment into {}", docked.id))?;
    let Response::ZfyInfo(now) = link.call(Request::GetZfyInfo).await? else {
        anyhow::bail!("recorder answered GetZFYInfo with something else");
    };
    anyhow::ensure!(
        now == info,
        "recorder {} reads back {now:?} after {info:?} was written",
        docked.id
    );
    docked.officer = assigned(&now.officer_no);
    docked.unit = assigned(&now.unit_no);
    docked.zfy = now;
    Ok(())
}

/// Answers a check-out request this cleared recorder can take: writes the
/// officer and unit into it, reads them back, and commits the handover
/// record in the new holder's name together with the request's answer.
async fn hand_out(
    shared: &Shared,
    link: &mut RecorderLink,
    docked: &mut Docked,
    slot: &SlotHandle,
) -> anyhow::Result<()> {
    let (id, any) = (docked.id.clone(), slot.best_cleared());
    let Some(req): Option<Checkout> =
        with_buffer(&shared.buffer, move |b| b.claim_checkout(&id, any)).await?
    else {
        return Ok(());
    };
    let h = &req.holder;
    let info = ZfyInfo {
        officer_no: h.officer_no.clone(),
        unit_no: h.unit_no.clone(),
        officer_name: h.officer_name.clone(),
        unit_name: h.unit_name.clone(),
        ..docked.zfy.clone()
    };
    let before = docked.zfy.clone();
    if let Err(e) = write_zfy(link, docked, info).await {
        let why = format!("{e:#}");
        let (id, rid) = (req.id, docked.id.clone());
        let line_failed = e
            .downcast_ref::<super::link::LinkError>()
            .is_some_and(|l| l.status().is_none());
        if line_failed {
            // Answered again (the claim is released at the next docking).
            with_buffer(&shared.buffer, move |b| b.release_claims(&rid)).await?;
            return Err(e);
        }
        // Refused, or it reads back something else: the request is refused
        // and the recorder given back its assignment, so nobody is named
        // on it who did not check it out.
        tracing::error!(recorder = docked.id, error = why, "check-out failed");
        with_buffer(&shared.buffer, move |b| b.refuse_checkout(id, &why)).await?;
        write_zfy(link, docked, before)
            .await
            .with_context(|| format!("restoring the assignment of {}", docked.id))?;
        return Ok(());
    }
    let mut template = body(shared, docked, Kind::Event, Utc::now());
    template.event = Some(Event::RecorderCheckedOut {
        officer_id: h.officer_no.clone(),
        unit_code: h.unit_no.clone(),
        officer_name: (!h.officer_name.is_empty()).then(|| h.officer_name.clone()),
    });
    let result = format!(
        "recorder {} in slot {} is checked out to officer {} of unit {}",
        docked.id,
        slot.slot(),
        h.officer_no,
        h.unit_no
    );
    let (key, rid, req_id, said) = (
        shared.key.clone(),
        docked.id.clone(),
        req.id,
        result.clone(),
    );
    with_buffer(&shared.buffer, move |b| {
        b.checkout_done(&key, &rid, req_id, &said, chained(template))
    })
    .await?;
    shared.new_records.notify_one();
    docked.checked_out = true;
    slot.update(|s| {
        s.state = SlotState::CheckedOut;
        s.officer = docked.officer.clone();
        s.unit = docked.unit.clone();
    });
    tracing::info!(recorder = docked.id, result, "recorder checked out");
    Ok(())
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
    docked: &mut Docked,
    entry: &FileEntry,
    slot: &SlotHandle,
) -> anyhow::Result<()> {
    let _permit = shared
        .copies
        .clone()
        .acquire_owned()
        .await
        .context("copy limiter closed")?;
    slot.update(|s| {
        s.copying = Some(Copying {
            index: entry.index,
            name: entry.name.clone(),
            bytes_done: 0,
            bytes_total: entry.size,
        })
    });
    let media_dir = shared.cfg.data_dir.join("media");
    let copied = mount::take(link, &docked.id, entry, &media_dir, docked.max_chunk, slot).await;
    slot.update(|s| s.copying = None);
    let copied = copied?;
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
        file_name: record_file_name(&entry.name, entry.index),
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
    docked.taken += 1;
    slot.update(|s| s.files_copied += 1);
    tracing::info!(
        recorder = docked.id,
        index = entry.index,
        size = copied.size,
        seq = rec.seq,
        confirmed = copied.confirmed_by_recorder,
        via = copied.via.as_str(),
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
) -> anyhow::Result<(usize, usize)> {
    let policy = shared.cfg.dock.delete.as_str();
    let (mut deleted, mut unsafe_left) = (0, 0);
    for row in ledger.iter().filter(|r| !r.deleted) {
        let index = row.file.index;
        if listed.contains(&index) {
            let due = match policy {
                "after_copy" => true,
                "after_media_receipt" => row.safe,
                _ => false,
            };
            if !due {
                unsafe_left += usize::from(!row.safe);
                continue;
            }
            let on_recorder = entries.iter().find(|e| e.index == index);
            if on_recorder.is_some_and(|e| e.name != row.file.name) {
                tracing::warn!(
                    recorder = docked.id,
                    index,
                    "file index now names another file; not deleting"
                );
                unsafe_left += usize::from(!row.safe);
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
                policy,
                "file deleted from the recorder"
            );
            deleted += 1;
        }
        let id = docked.id.clone();
        with_buffer(&shared.buffer, move |b| b.mark_deleted(&id, index)).await?;
    }
    Ok((deleted, unsafe_left))
}

#[cfg(test)]
mod tests {
    use super::record_file_name;

    #[test]
    fn names_a_record_cannot_carry_are_made_carriable_and_others_kept_as_reported() {
        assert_eq!(record_file_name("", 12), "#12");
        assert_eq!(record_file_name("a\0b.MP4", 1), "a\u{2400}b.MP4");
        assert_eq!(record_file_name("../../etc/x.MP4", 1), "../../etc/x.MP4");
        let long = "录".repeat(100);
        let kept = record_file_name(&long, 1);
        assert!(kept.len() <= 255 && long.starts_with(&kept) && !kept.is_empty());
    }
}

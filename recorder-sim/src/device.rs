//! The recorder's behaviour: one answer per request, from its storage and
//! clock. No I/O but the storage folder; the link is the caller's.

use chrono::{Duration as ChronoDuration, NaiveDateTime, Utc};
use evsync_recorder_protocol::message::{
    Answer, Identity, Request, Response, Status, ZfyInfo, MAX_CHUNK, VERSIONS,
};

use crate::faults::Faults;
use crate::mount::Volume;
use crate::storage::Storage;

/// Manufacturer reported by `GetIDCode`.
pub const MANUFACTURER: &str = "evsync";
/// Model reported by `GetIDCode`.
pub const MODEL: &str = "recorder-sim";

/// A recorder.
#[derive(Debug)]
pub struct Device {
    /// Its storage.
    pub storage: Storage,
    faults: Faults,
    opened: bool,
    msdc: bool,
    volume: Option<Volume>,
    max_chunk: u32,
}

fn refuse(status: Status, reason: impl Into<String>) -> Answer {
    Answer::Err {
        status,
        reason: reason.into(),
    }
}

impl Device {
    /// A recorder on `storage`, serving chunks of at most `max_chunk` bytes.
    pub fn new(storage: Storage, faults: Faults, max_chunk: u32) -> Self {
        Self {
            storage,
            faults,
            opened: false,
            msdc: false,
            volume: None,
            max_chunk: max_chunk.clamp(512, MAX_CHUNK),
        }
    }

    /// Gives the recorder a mass-storage volume at `dir` (see [`crate::mount`]),
    /// emptied of what its recordings left there before.
    pub fn with_mount(mut self, dir: &std::path::Path) -> anyhow::Result<Self> {
        self.volume = Some(Volume::new(
            dir,
            &self.storage,
            self.faults.mount_tamper_index,
        )?);
        Ok(self)
    }

    /// Whether mass storage is on.
    pub fn msdc(&self) -> bool {
        self.msdc
    }

    /// Unplugged or stopped: mass storage goes off and the volume empties.
    pub fn unmount(&mut self) {
        self.msdc = false;
        if let Some(v) = &mut self.volume {
            v.clear();
        }
    }

    /// The recorder's clock now (local time, offset applied).
    pub fn clock(&self) -> NaiveDateTime {
        let m = &self.storage.manifest;
        (Utc::now()
            + ChronoDuration::minutes(i64::from(m.utc_offset_min))
            + ChronoDuration::milliseconds(m.clock_offset_ms))
        .naive_utc()
    }

    /// A new link (docking): `Init_Device` is needed again.
    pub fn reset_session(&mut self) {
        self.opened = false;
    }

    /// Handles one request.
    pub fn handle(&mut self, req: &Request) -> Answer {
        match self.answer(req) {
            Ok(a) => a,
            Err(e) => refuse(Status::IoError, format!("{e:#}")),
        }
    }

    fn answer(&mut self, req: &Request) -> anyhow::Result<Answer> {
        let open_needed = !matches!(
            req,
            Request::Hello { .. } | Request::InitDevice { .. } | Request::GetIdCode
        );
        if open_needed && !self.opened {
            return Ok(refuse(
                Status::Unauthorized,
                "open the recorder with Init_Device first",
            ));
        }
        let ok = |r| Ok(Answer::Ok(r));
        match req {
            Request::Hello { min, max } => {
                let best = (*max).min(*VERSIONS.end());
                if best < *min || best < *VERSIONS.start() {
                    return Ok(refuse(
                        Status::VersionMismatch,
                        format!(
                            "this recorder speaks versions {}..={}, the host {min}..={max}",
                            VERSIONS.start(),
                            VERSIONS.end()
                        ),
                    ));
                }
                ok(Response::Hello {
                    version: best,
                    max_chunk: self.max_chunk,
                })
            }
            Request::InitDevice { password } => {
                if password.as_slice() != self.storage.manifest.password.as_bytes() {
                    self.log("Init_Device refused: wrong password")?;
                    return Ok(refuse(Status::BadPassword, "wrong admin password"));
                }
                self.opened = true;
                ok(Response::Done)
            }
            Request::GetIdCode => ok(Response::IdCode {
                manufacturer: MANUFACTURER.into(),
                model: MODEL.into(),
            }),
            Request::Identify => {
                let m = &self.storage.manifest;
                let used = self.storage.used();
                ok(Response::Identity(Identity {
                    device_id: m.zfy.serial.clone(),
                    officer_no: m.zfy.officer_no.clone(),
                    unit_no: m.zfy.unit_no.clone(),
                    firmware: m.firmware.clone(),
                    battery_pct: m.battery_pct,
                    free_bytes: m.total_bytes.saturating_sub(used),
                    total_bytes: m.total_bytes,
                    clock: self.clock(),
                    utc_offset_min: m.utc_offset_min,
                    files: m.files.len() as u32,
                }))
            }
            Request::GetTime => ok(self.time()),
            Request::SyncDevTime { time } => {
                let before = self.time();
                let m = &mut self.storage.manifest;
                let true_local =
                    Utc::now().naive_utc() + ChronoDuration::minutes(i64::from(m.utc_offset_min));
                m.clock_offset_ms = (*time - true_local).num_milliseconds();
                let line = format!("clock set to {time}");
                self.log(&line)?;
                ok(before)
            }
            Request::GetZfyInfo => ok(Response::ZfyInfo(ZfyInfo::from(&self.storage.manifest.zfy))),
            Request::WriteZfyInfo(info) => {
                if info.serial != self.storage.manifest.zfy.serial {
                    return Ok(refuse(
                        Status::BadRequest,
                        format!(
                            "product serial {} is fixed; {} was written",
                            self.storage.manifest.zfy.serial, info.serial
                        ),
                    ));
                }
                self.storage.manifest.zfy = info.into();
                let line = format!(
                    "assigned to officer {} unit {}",
                    info.officer_no, info.unit_no
                );
                self.log(&line)?;
                ok(Response::Done)
            }
            Request::SetMsdc { on } => {
                self.msdc = *on;
                let line = match (&mut self.volume, *on) {
                    (Some(v), true) => {
                        format!(
                            "mass storage on: {} files on the volume",
                            v.expose(&self.storage)?
                        )
                    }
                    (Some(v), false) => {
                        v.clear();
                        "mass storage off".to_owned()
                    }
                    (None, true) => "mass storage on (no volume attached)".to_owned(),
                    (None, false) => "mass storage off".to_owned(),
                };
                self.log(&line)?;
                ok(Response::Done)
            }
            Request::ReadResolution => ok(Response::Resolution {
                width: 1920,
                height: 1080,
                fps: 30,
            }),
            Request::ReadBattery => ok(Response::Battery {
                percent: self.storage.manifest.battery_pct,
                charging: true,
            }),
            Request::ListFiles { from, max } => {
                let mut entries = self.storage.entries(*from)?;
                let more = entries.len() > usize::from(*max);
                entries.truncate(usize::from(*max));
                for e in &mut entries {
                    e.size = self.faults.reported_size(e.size);
                }
                ok(Response::Files { entries, more })
            }
            Request::ReadFile { index, offset, len } => {
                if self.storage.file(*index).is_none() {
                    return Ok(refuse(Status::NotFound, format!("no file #{index}")));
                }
                if *offset == 0 {
                    // In the recorder's log, so a test can tell which files went over serial.
                    self.log(&format!("read #{index} over serial from 0"))?;
                }
                let (data, eof) = self
                    .storage
                    .read(*index, *offset, (*len).min(self.max_chunk))?;
                ok(Response::Chunk {
                    index: *index,
                    offset: *offset,
                    eof,
                    data,
                })
            }
            Request::DeleteFile { index, size, name } => {
                let Some(f) = self.storage.file(*index) else {
                    return Ok(refuse(Status::NotFound, format!("no file #{index}")));
                };
                let actual = self.storage.size(*index)?;
                if f.name != *name || actual != *size {
                    return Ok(refuse(
                        Status::Mismatch,
                        format!(
                            "file #{index} is {:?} of {actual} bytes, not {name:?} of {size} bytes",
                            f.name
                        ),
                    ));
                }
                self.storage.delete(*index)?;
                if let Some(v) = &mut self.volume {
                    v.remove(*index);
                }
                ok(Response::Done)
            }
            Request::FileDigest { index } => {
                if self.storage.file(*index).is_none() {
                    return Ok(refuse(Status::NotFound, format!("no file #{index}")));
                }
                let (sha256, size) = self.storage.digest(*index)?;
                ok(Response::Digest {
                    index: *index,
                    size,
                    sha256,
                })
            }
            Request::GetConfig => ok(Response::Config {
                format: 0,
                data: self.storage.manifest.config.clone().into_bytes(),
            }),
            Request::SetConfig { format, data } => {
                if *format != 0 {
                    return Ok(refuse(
                        Status::Unsupported,
                        format!("configuration format {format}; this recorder takes 0 (TOML)"),
                    ));
                }
                let Ok(text) = String::from_utf8(data.clone()) else {
                    return Ok(refuse(Status::BadRequest, "configuration is not UTF-8"));
                };
                self.storage.manifest.config = text;
                self.log("configuration replaced")?;
                ok(Response::Done)
            }
            Request::ReadLog { from, max } => {
                let log = &self.storage.manifest.log;
                let start = (*from as usize).min(log.len());
                let lines: Vec<String> = log[start..]
                    .iter()
                    .take(usize::from(*max))
                    .cloned()
                    .collect();
                ok(Response::Log {
                    next: (start + lines.len()) as u32,
                    lines,
                })
            }
        }
    }

    fn time(&self) -> Response {
        use chrono::Timelike;
        let clock = self.clock();
        Response::Time {
            clock: clock.with_nanosecond(0).unwrap_or(clock),
            millis: (clock.nanosecond() / 1_000_000).min(999) as u16,
        }
    }

    fn log(&mut self, line: &str) -> anyhow::Result<()> {
        let at = self.clock().format("%Y-%m-%d %H:%M:%S");
        self.storage.manifest.log.push(format!("{at} {line}"));
        self.storage.save()
    }
}

//! The recorder's behaviour: one answer per request, from its storage and
//! clock. No I/O but the storage folder; the link is the caller's.

use chrono::{Duration as ChronoDuration, NaiveDateTime, Utc};
use evsync_recorder_protocol::firmware::check_upgrade;
use evsync_recorder_protocol::message::{
    Answer, FirmwareImage, Identity, Request, Response, Status, ZfyInfo, MAX_CHUNK, VERSIONS,
};

use firmware_config::{ConfigError, RecorderConfig};

use crate::faults::Faults;
use crate::mount::Volume;
use crate::storage::Storage;

/// Manufacturer reported by `GetIDCode`.
pub const MANUFACTURER: &str = "evsync";
/// Model reported by `GetIDCode`.
pub const MODEL: &str = "recorder-sim";
/// Largest firmware image the recorder takes, bytes.
pub const MAX_FIRMWARE_BYTES: u64 = 64 * 1024 * 1024;

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
                let config = match RecorderConfig::from_serial(*format, data) {
                    Ok(c) => c,
                    Err(e @ ConfigError::Format(_)) => {
                        return Ok(refuse(Status::Unsupported, e.to_string()))
                    }
                    Err(e) => return Ok(refuse(Status::BadRequest, e.to_string())),
                };
                let serial = &self.storage.manifest.zfy.serial;
                if config.identity.device_id != *serial {
                    return Ok(refuse(
                        Status::BadRequest,
                        format!(
                            "configuration is for identity.device_id = {:?}; this recorder is {serial:?}",
                            config.identity.device_id
                        ),
                    ));
                }
                self.storage.manifest.config = config.to_toml();
                self.log(&format!(
                    "configuration replaced ({})",
                    config.content_hash()
                ))?;
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
            Request::FirmwareBegin {
                version,
                size,
                sha256,
            } => self.firmware_begin(version, *size, *sha256),
            Request::FirmwareWrite { offset, data } => self.firmware_write(*offset, data),
            Request::FirmwareCommit => self.firmware_commit(),
            Request::FirmwareStatus => match self.storage.pending_firmware()? {
                Some(image) => ok(Response::FirmwareImage(image)),
                None => Ok(self.no_pending_firmware()),
            },
        }
    }

    fn no_pending_firmware(&self) -> Answer {
        refuse(
            Status::NotFound,
            format!(
                "no firmware image is being received (running firmware {}); \
                 send FirmwareBegin first",
                self.storage.manifest.firmware
            ),
        )
    }

    /// `FirmwareBegin`: a newer version of this product, of a size the
    /// recorder takes; an unfinished image is discarded.
    fn firmware_begin(
        &mut self,
        version: &str,
        size: u64,
        sha256: [u8; 32],
    ) -> anyhow::Result<Answer> {
        let running = self.storage.manifest.firmware.clone();
        if let Err(e) = check_upgrade(&running, version) {
            self.log(&format!("FirmwareBegin refused: {e}"))?;
            return Ok(refuse(Status::BadRequest, e.to_string()));
        }
        if size == 0 || size > MAX_FIRMWARE_BYTES {
            let reason = format!(
                "firmware image size {size} bytes; expected 1..={MAX_FIRMWARE_BYTES} bytes"
            );
            self.log(&format!("FirmwareBegin refused: {reason}"))?;
            return Ok(refuse(Status::BadRequest, reason));
        }
        let discarded = self
            .storage
            .pending_firmware()?
            .map(|old| {
                format!(
                    ", discarding unfinished {} at {}/{} bytes",
                    old.version, old.received, old.size
                )
            })
            .unwrap_or_default();
        self.storage.begin_firmware(version, size, sha256)?;
        self.log(&format!(
            "firmware {version} offered: {size} bytes, sha256 {}{discarded}",
            hex::encode(sha256)
        ))?;
        Ok(Answer::Ok(Response::FirmwareImage(FirmwareImage {
            version: version.to_owned(),
            size,
            sha256,
            received: 0,
        })))
    }

    /// `FirmwareWrite`: bytes at the next offset are staged; bytes at an
    /// offset already received are compared with what was staged, so a
    /// write repeated after a lost answer is acknowledged, and only what
    /// lies past the staged bytes is appended.
    fn firmware_write(&mut self, offset: u64, data: &[u8]) -> anyhow::Result<Answer> {
        let Some(mut image) = self.storage.pending_firmware()? else {
            return Ok(self.no_pending_firmware());
        };
        let len = data.len() as u64;
        if len > u64::from(self.max_chunk) {
            return Ok(refuse(
                Status::BadRequest,
                format!(
                    "firmware write of {len} bytes; expected at most {} (max_chunk)",
                    self.max_chunk
                ),
            ));
        }
        let end = offset.saturating_add(len);
        if end > image.size {
            return Ok(refuse(
                Status::BadRequest,
                format!(
                    "firmware write of {len} bytes at offset {offset} ends at {end}, past the \
                     image size {}; expected writes within 0..{}",
                    image.size, image.size
                ),
            ));
        }
        if offset > image.received {
            return Ok(refuse(
                Status::BadRequest,
                format!(
                    "firmware write at offset {offset}; expected offset {} (the bytes received \
                     so far)",
                    image.received
                ),
            ));
        }
        // Bytes already staged must be the same; only the rest is appended.
        let overlap = (image.received - offset).min(len) as usize;
        if overlap > 0 {
            let held = self.storage.read_firmware(offset, overlap)?;
            if held != data[..overlap] {
                let at = offset
                    + held
                        .iter()
                        .zip(data)
                        .position(|(a, b)| a != b)
                        .unwrap_or(held.len()) as u64;
                return Ok(refuse(
                    Status::Mismatch,
                    format!(
                        "firmware write at offset {offset} differs from the bytes already \
                         received at offset {at}; expected a repeat of the same bytes or a \
                         write at offset {}",
                        image.received
                    ),
                ));
            }
        }
        if overlap < data.len() {
            image.received = self.storage.append_firmware(&data[overlap..])?;
        }
        Ok(Answer::Ok(Response::FirmwareImage(image)))
    }

    /// `FirmwareCommit`: the whole image with the announced SHA-256 is
    /// installed; a short image stays pending, a wrong one is discarded.
    fn firmware_commit(&mut self) -> anyhow::Result<Answer> {
        let Some(image) = self.storage.pending_firmware()? else {
            return Ok(self.no_pending_firmware());
        };
        let running = self.storage.manifest.firmware.clone();
        let (sha256, received) = self.storage.firmware_digest()?;
        if received < image.size {
            return Ok(refuse(
                Status::Mismatch,
                format!(
                    "firmware {} has {received} of {} bytes; expected the rest from offset \
                     {received} before FirmwareCommit",
                    image.version, image.size
                ),
            ));
        }
        if received > image.size {
            self.storage.discard_firmware()?;
            let reason = format!(
                "firmware {} has {received} bytes staged, more than the {} announced; the \
                 image is discarded and firmware {running} keeps running",
                image.version, image.size
            );
            self.log(&format!("FirmwareCommit refused: {reason}"))?;
            return Ok(refuse(Status::Mismatch, reason));
        }
        if sha256 != image.sha256 {
            self.storage.discard_firmware()?;
            let reason = format!(
                "firmware {}: sha256 of the {received} bytes received is {}, expected {}; \
                 the image is discarded and firmware {running} keeps running",
                image.version,
                hex::encode(sha256),
                hex::encode(image.sha256)
            );
            self.log(&format!("FirmwareCommit refused: {reason}"))?;
            return Ok(refuse(Status::Mismatch, reason));
        }
        let kept = self.storage.install_firmware()?;
        self.log(&format!(
            "firmware {} installed (was {running}): {received} bytes, sha256 {}, kept as {}",
            image.version,
            hex::encode(sha256),
            kept.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        ))?;
        Ok(Answer::Ok(Response::FirmwareInstalled {
            version: image.version,
        }))
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const CHUNK: usize = 4096;

    fn opened(dir: &Path) -> Device {
        let storage = Storage::open(dir, "ZFY0001").unwrap();
        let mut d = Device::new(storage, Faults::default(), CHUNK as u32);
        let ok = d.handle(&Request::InitDevice {
            password: *b"000000",
        });
        assert_eq!(ok, Answer::Ok(Response::Done));
        d
    }

    #[test]
    fn a_configuration_is_taken_only_if_valid_and_for_this_recorder() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = opened(dir.path());
        let mut config = RecorderConfig::default();
        config.identity.device_id = "ZFY0001".into();
        let set = |format, data: Vec<u8>| Request::SetConfig { format, data };
        assert_eq!(
            d.handle(&set(1, config.to_compact())),
            Answer::Ok(Response::Done)
        );
        assert_eq!(
            d.handle(&Request::GetConfig),
            Answer::Ok(Response::Config {
                format: 0,
                data: config.to_toml().into_bytes()
            })
        );
        let (status, reason) = refused(d.handle(&set(0, b"[video]\nframe_rate = 24\n".to_vec())));
        assert_eq!(status, Status::BadRequest);
        assert!(reason.contains("video.frame_rate = 24"), "{reason}");
        let mut other = config.clone();
        other.identity.device_id = "ZFY0002".into();
        let (status, reason) = refused(d.handle(&set(1, other.to_compact())));
        assert_eq!(status, Status::BadRequest);
        assert!(reason.contains("\"ZFY0002\""), "{reason}");
        let (status, _) = refused(d.handle(&set(7, Vec::new())));
        assert_eq!(status, Status::Unsupported);
        // Nothing refused replaced what it holds.
        assert_eq!(d.storage.manifest.config, config.to_toml());
    }

    fn image(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn sha256(bytes: &[u8]) -> [u8; 32] {
        let mut out = [0; 32];
        out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
        out
    }

    fn refused(answer: Answer) -> (Status, String) {
        match answer {
            Answer::Err { status, reason } => (status, reason),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn received(answer: Answer) -> u64 {
        match answer {
            Answer::Ok(Response::FirmwareImage(image)) => image.received,
            other => panic!("expected the image being received, got {other:?}"),
        }
    }

    fn running(d: &mut Device) -> String {
        match d.handle(&Request::Identify) {
            Answer::Ok(Response::Identity(i)) => i.firmware,
            other => panic!("no identity: {other:?}"),
        }
    }

    fn begin(d: &mut Device, version: &str, bytes: &[u8]) -> Answer {
        d.handle(&Request::FirmwareBegin {
            version: version.into(),
            size: bytes.len() as u64,
            sha256: sha256(bytes),
        })
    }

    fn write_from(d: &mut Device, bytes: &[u8], from: usize) {
        for (i, chunk) in bytes[from..].chunks(CHUNK).enumerate() {
            let offset = (from + i * CHUNK) as u64;
            let answer = d.handle(&Request::FirmwareWrite {
                offset,
                data: chunk.to_vec(),
            });
            assert_eq!(received(answer), offset + chunk.len() as u64);
        }
    }

    fn install(d: &mut Device, version: &str, bytes: &[u8]) -> Answer {
        assert_eq!(received(begin(d, version, bytes)), 0);
        write_from(d, bytes, 0);
        d.handle(&Request::FirmwareCommit)
    }

    #[test]
    fn a_good_image_installs_and_identify_reports_the_new_version() {
        let tmp = tempfile::tempdir().unwrap();
        let mut d = opened(tmp.path());
        assert_eq!(running(&mut d), "SIM-2.4.1");
        let bytes = image(3 * CHUNK + 123);
        assert_eq!(
            install(&mut d, "SIM-2.5.0", &bytes),
            Answer::Ok(Response::FirmwareInstalled {
                version: "SIM-2.5.0".into()
            })
        );
        assert_eq!(running(&mut d), "SIM-2.5.0");
        let kept = tmp.path().join("firmware").join("SIM-2.5.0.bin");
        assert_eq!(std::fs::read(kept).unwrap(), bytes, "the image is kept");
        assert!(!d.storage.firmware_staging().exists());
        let log = d.storage.manifest.log.join("\n");
        assert!(
            log.contains("firmware SIM-2.5.0 installed (was SIM-2.4.1)"),
            "{log}"
        );
        let (status, reason) = refused(d.handle(&Request::FirmwareStatus));
        assert_eq!(status, Status::NotFound);
        assert!(reason.contains("running firmware SIM-2.5.0"), "{reason}");
    }

    #[test]
    fn an_image_with_the_wrong_hash_is_refused_naming_both_hashes_and_the_version_stays() {
        let tmp = tempfile::tempdir().unwrap();
        let mut d = opened(tmp.path());
        let bytes = image(2 * CHUNK);
        let mut announced = bytes.clone();
        announced[5] ^= 1;
        d.handle(&Request::FirmwareBegin {
            version: "SIM-2.5.0".into(),
            size: bytes.len() as u64,
            sha256: sha256(&announced),
        });
        write_from(&mut d, &bytes, 0);
        let (status, reason) = refused(d.handle(&Request::FirmwareCommit));
        assert_eq!(status, Status::Mismatch);
        assert!(
            reason.contains(&format!(
                "is {}, expected {}",
                hex::encode(sha256(&bytes)),
                hex::encode(sha256(&announced))
            )),
            "{reason}"
        );
        assert!(
            reason.contains("firmware SIM-2.4.1 keeps running"),
            "{reason}"
        );
        assert_eq!(running(&mut d), "SIM-2.4.1");
        assert!(!tmp.path().join("firmware").join("SIM-2.5.0.bin").exists());
        let (status, _) = refused(d.handle(&Request::FirmwareStatus));
        assert_eq!(status, Status::NotFound, "a wrong image is discarded");
    }

    #[test]
    fn a_downgrade_the_same_version_another_product_or_an_unparsable_version_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut d = opened(tmp.path());
        let bytes = image(100);
        for (version, says) in [
            ("SIM-2.4.0", "is not newer than the running SIM-2.4.1"),
            ("SIM-2.4.1", "is not newer than the running SIM-2.4.1"),
            ("SIM-2.4.1.0", "is not newer than the running SIM-2.4.1"),
            ("ACME-9.0", "expected a version starting with \"SIM-\""),
            ("SIM-2.5.0-beta", "cannot be parsed"),
            ("../../SIM-3.0", "cannot be parsed"),
        ] {
            let (status, reason) = refused(begin(&mut d, version, &bytes));
            assert_eq!(status, Status::BadRequest, "{version}");
            assert!(reason.contains(says), "{version}: {reason}");
        }
        assert_eq!(running(&mut d), "SIM-2.4.1");
        assert_eq!(d.storage.manifest.firmware_pending, None);
    }

    #[test]
    fn an_empty_or_oversized_image_is_refused_with_the_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let mut d = opened(tmp.path());
        for size in [0, MAX_FIRMWARE_BYTES + 1] {
            let (status, reason) = refused(d.handle(&Request::FirmwareBegin {
                version: "SIM-2.5.0".into(),
                size,
                sha256: [0; 32],
            }));
            assert_eq!(status, Status::BadRequest);
            assert_eq!(
                reason,
                format!("firmware image size {size} bytes; expected 1..=67108864 bytes")
            );
        }
    }

    #[test]
    fn writes_must_come_at_the_next_offset_and_a_repeat_is_acknowledged_only_if_identical() {
        let tmp = tempfile::tempdir().unwrap();
        let mut d = opened(tmp.path());
        let bytes = image(3 * CHUNK);
        let write = |d: &mut Device, offset: usize, data: &[u8]| {
            d.handle(&Request::FirmwareWrite {
                offset: offset as u64,
                data: data.to_vec(),
            })
        };
        let (status, reason) = refused(write(&mut d, 0, &bytes[..CHUNK]));
        assert_eq!(status, Status::NotFound);
        assert!(reason.contains("send FirmwareBegin first"), "{reason}");

        begin(&mut d, "SIM-2.5.0", &bytes);
        let (status, reason) = refused(write(&mut d, CHUNK, &bytes[CHUNK..2 * CHUNK]));
        assert_eq!(status, Status::BadRequest);
        assert_eq!(
            reason,
            "firmware write at offset 4096; expected offset 0 (the bytes received so far)"
        );
        assert_eq!(received(write(&mut d, 0, &bytes[..CHUNK])), 4096);
        // The answer was lost and the dock sends the same write again.
        assert_eq!(received(write(&mut d, 0, &bytes[..CHUNK])), 4096);
        let mut other = bytes[..CHUNK].to_vec();
        other[10] ^= 0xFF;
        let (status, reason) = refused(write(&mut d, 0, &other));
        assert_eq!(status, Status::Mismatch);
        assert!(
            reason.contains(
                "at offset 10; expected a repeat of the same bytes or a write at offset 4096"
            ),
            "{reason}"
        );
        // A write straddling what was received appends only the new part.
        let straddle = &bytes[CHUNK / 2..CHUNK / 2 + CHUNK];
        assert_eq!(received(write(&mut d, CHUNK / 2, straddle)), 6144);
        let (status, reason) = refused(write(&mut d, 3 * CHUNK - 10, &[0; 20]));
        assert_eq!(status, Status::BadRequest);
        assert!(reason.contains("past the image size 12288"), "{reason}");
        let (status, reason) = refused(write(&mut d, 6144, &vec![0; CHUNK + 1]));
        assert_eq!(status, Status::BadRequest);
        assert!(
            reason.contains("expected at most 4096 (max_chunk)"),
            "{reason}"
        );

        // A commit before the last byte leaves the image pending.
        let (status, reason) = refused(d.handle(&Request::FirmwareCommit));
        assert_eq!(status, Status::Mismatch);
        assert_eq!(
            reason,
            "firmware SIM-2.5.0 has 6144 of 12288 bytes; expected the rest from offset 6144 \
             before FirmwareCommit"
        );
        write_from(&mut d, &bytes, 6144);
        assert!(matches!(
            d.handle(&Request::FirmwareCommit),
            Answer::Ok(Response::FirmwareInstalled { .. })
        ));
        assert_eq!(
            std::fs::read(tmp.path().join("firmware").join("SIM-2.5.0.bin")).unwrap(),
            bytes
        );
    }

    #[test]
    fn a_new_begin_discards_the_unfinished_image() {
        let tmp = tempfile::tempdir().unwrap();
        let mut d = opened(tmp.path());
        let first = image(2 * CHUNK);
        begin(&mut d, "SIM-2.5.0", &first);
        write_from(&mut d, &first[..CHUNK], 0);
        let second = image(CHUNK + 1);
        begin(&mut d, "SIM-2.6.0", &second);
        let Answer::Ok(Response::FirmwareImage(status)) = d.handle(&Request::FirmwareStatus) else {
            panic!("no image pending")
        };
        assert_eq!(
            (status.version.as_str(), status.size, status.received),
            ("SIM-2.6.0", second.len() as u64, 0)
        );
        let log = d.storage.manifest.log.join("\n");
        assert!(
            log.contains("discarding unfinished SIM-2.5.0 at 4096/8192 bytes"),
            "{log}"
        );
        write_from(&mut d, &second, 0);
        assert!(matches!(
            d.handle(&Request::FirmwareCommit),
            Answer::Ok(Response::FirmwareInstalled { version }) if version == "SIM-2.6.0"
        ));
    }

    #[test]
    fn an_unfinished_image_is_resumed_after_a_restart_from_the_bytes_staged() {
        let tmp = tempfile::tempdir().unwrap();
        let bytes = image(3 * CHUNK);
        let mut d = opened(tmp.path());
        begin(&mut d, "SIM-2.5.0", &bytes);
        write_from(&mut d, &bytes[..2 * CHUNK], 0);
        drop(d);
        let mut d = opened(tmp.path());
        let Answer::Ok(Response::FirmwareImage(status)) = d.handle(&Request::FirmwareStatus) else {
            panic!("the image was forgotten")
        };
        assert_eq!(status.received, 2 * CHUNK as u64);
        assert_eq!(status.sha256, sha256(&bytes));
        write_from(&mut d, &bytes, status.received as usize);
        assert!(matches!(
            d.handle(&Request::FirmwareCommit),
            Answer::Ok(Response::FirmwareInstalled { .. })
        ));
    }

    #[test]
    fn the_installed_version_survives_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let mut d = opened(tmp.path());
        let bytes = image(CHUNK);
        assert!(matches!(
            install(&mut d, "SIM-2.5.0", &bytes),
            Answer::Ok(Response::FirmwareInstalled { .. })
        ));
        drop(d);
        let mut d = opened(tmp.path());
        assert_eq!(running(&mut d), "SIM-2.5.0");
        let (_, reason) = refused(begin(&mut d, "SIM-2.5.0", &bytes));
        assert!(
            reason.contains("not newer than the running SIM-2.5.0"),
            "{reason}"
        );
    }

    #[test]
    fn firmware_commands_need_init_device() {
        let tmp = tempfile::tempdir().unwrap();
        let storage = Storage::open(tmp.path(), "ZFY0001").unwrap();
        let mut d = Device::new(storage, Faults::default(), 512);
        for req in [
            Request::FirmwareBegin {
                version: "SIM-2.5.0".into(),
                size: 1,
                sha256: [0; 32],
            },
            Request::FirmwareWrite {
                offset: 0,
                data: vec![0],
            },
            Request::FirmwareCommit,
            Request::FirmwareStatus,
        ] {
            let (status, _) = refused(d.handle(&req));
            assert_eq!(status, Status::Unauthorized, "{req:?}");
        }
        assert_eq!(d.storage.manifest.firmware_pending, None);
    }
}

//! The recorder's storage: recordings with sequential indexes, and the
//! recorder's own settings, kept in a folder that survives restarts.
//!
//! `recorder.json` is the recorder's memory (identity, password, clock
//! offset, next file index, configuration, log, firmware version and the
//! image being received); each recording is stored as `files/<index>.bin`,
//! so the name the recorder *reports* can be anything, hostile names
//! included, without touching the host's paths. A firmware image being
//! received is staged in `firmware/pending.bin`, a chunk at a time and
//! synced as it comes; an installed one is kept as `firmware/<version>.bin`.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::NaiveDateTime;
use evsync_recorder_protocol::firmware::FirmwareVersion;
use evsync_recorder_protocol::message::{FileEntry, FirmwareImage, ZfyInfo};
use serde::{Deserialize, Serialize};

/// A recording on the recorder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredFile {
    /// Sequential index.
    pub index: u32,
    /// Name the recorder reports.
    pub name: String,
    /// When recording started (recorder local time).
    pub recorded: NaiveDateTime,
    /// Marked important by the officer.
    #[serde(default)]
    pub important: bool,
    /// SHA-256 (hex) and size taken when the recording was closed, as a
    /// recorder that hashes while it writes keeps them; `FileDigest`
    /// answers with these, so later damage on the recorder shows.
    #[serde(default)]
    pub sealed: Option<(String, u64)>,
}

/// What the recorder remembers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Identity and assignment (GA/T 947 `ZFY_INFO`).
    pub zfy: ZfyInfoRecord,
    /// Admin password for `Init_Device`.
    pub password: String,
    /// Firmware version.
    pub firmware: String,
    /// Recorder clock minus true time, milliseconds.
    pub clock_offset_ms: i64,
    /// Recorder clock's offset from UTC, minutes.
    pub utc_offset_min: i16,
    /// Battery charge, percent.
    pub battery_pct: u8,
    /// Storage size reported, bytes.
    pub total_bytes: u64,
    /// Index the next recording gets.
    pub next_index: u32,
    /// Recordings, by index.
    pub files: Vec<StoredFile>,
    /// Configuration as last set (TOML text).
    #[serde(default)]
    pub config: String,
    /// The recorder's own log.
    #[serde(default)]
    pub log: Vec<String>,
    /// The firmware image being received (`FirmwareBegin`), if any; its
    /// bytes are in `firmware/pending.bin`.
    #[serde(default)]
    pub firmware_pending: Option<PendingFirmware>,
}

/// A firmware image being received, as announced by `FirmwareBegin`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingFirmware {
    /// Version it installs.
    pub version: String,
    /// Size of the whole image, bytes.
    pub size: u64,
    /// SHA-256 of the whole image, hex.
    pub sha256: String,
}

/// [`ZfyInfo`] in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ZfyInfoRecord {
    /// Product serial (device id).
    pub serial: String,
    /// Officer number.
    pub officer_no: String,
    /// Unit number.
    pub unit_no: String,
    /// Officer name.
    pub officer_name: String,
    /// Unit name.
    pub unit_name: String,
}

impl From<&ZfyInfoRecord> for ZfyInfo {
    fn from(z: &ZfyInfoRecord) -> Self {
        ZfyInfo {
            serial: z.serial.clone(),
            officer_no: z.officer_no.clone(),
            unit_no: z.unit_no.clone(),
            officer_name: z.officer_name.clone(),
            unit_name: z.unit_name.clone(),
        }
    }
}

impl From<&ZfyInfo> for ZfyInfoRecord {
    fn from(z: &ZfyInfo) -> Self {
        ZfyInfoRecord {
            serial: z.serial.clone(),
            officer_no: z.officer_no.clone(),
            unit_no: z.unit_no.clone(),
            officer_name: z.officer_name.clone(),
            unit_name: z.unit_name.clone(),
        }
    }
}

impl Manifest {
    /// A fresh recorder with this serial, assigned to nobody.
    pub fn new(serial: &str) -> Self {
        Self {
            zfy: ZfyInfoRecord {
                serial: serial.to_owned(),
                officer_no: "000000".into(),
                unit_no: "000000000000".into(),
                officer_name: String::new(),
                unit_name: String::new(),
            },
            password: "000000".into(),
            firmware: "SIM-2.4.1".into(),
            clock_offset_ms: 0,
            utc_offset_min: 480,
            battery_pct: 87,
            total_bytes: 64 * 1024 * 1024 * 1024,
            next_index: 1,
            files: Vec::new(),
            config: String::new(),
            log: vec!["power on".into()],
            firmware_pending: None,
        }
    }
}

/// The storage folder.
#[derive(Debug)]
pub struct Storage {
    dir: PathBuf,
    /// What the recorder remembers.
    pub manifest: Manifest,
}

impl Storage {
    /// Opens the folder, creating a recorder with `serial` if it holds none.
    pub fn open(dir: &Path, serial: &str) -> anyhow::Result<Self> {
        for sub in ["files", "firmware"] {
            fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("creating the storage folder {}", dir.display()))?;
        }
        let path = dir.join("recorder.json");
        let manifest = if path.exists() {
            let text =
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        } else {
            Manifest::new(serial)
        };
        let s = Self {
            dir: dir.to_owned(),
            manifest,
        };
        s.save()?;
        Ok(s)
    }

    /// Reads what a recorder's storage folder remembers, without opening it
    /// (another process or thread may be serving it).
    pub fn peek(dir: &Path) -> anyhow::Result<Manifest> {
        let path = dir.join("recorder.json");
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Writes the manifest (write, fsync, rename).
    pub fn save(&self) -> anyhow::Result<()> {
        let path = self.dir.join("recorder.json");
        let tmp = self.dir.join("recorder.json.tmp");
        let mut f = File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec_pretty(&self.manifest)?)?;
        f.sync_all()?;
        fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
        Ok(())
    }

    /// Where recording `index` is stored.
    pub fn blob(&self, index: u32) -> PathBuf {
        self.dir.join("files").join(format!("{index}.bin"))
    }

    /// Adds a recording (copied from `src`), with the next index. Returns the index.
    pub fn add(
        &mut self,
        src: &Path,
        name: &str,
        recorded: NaiveDateTime,
        important: bool,
    ) -> anyhow::Result<u32> {
        let index = self.manifest.next_index;
        fs::copy(src, self.blob(index))
            .with_context(|| format!("copying {} into the recorder", src.display()))?;
        let (sha, size) = self.hash(index)?;
        self.manifest.next_index += 1;
        self.manifest.files.push(StoredFile {
            index,
            name: name.to_owned(),
            recorded,
            important,
            sealed: Some((hex::encode(sha), size)),
        });
        self.manifest
            .log
            .push(format!("{} recorded #{index} {name:?}", recorded));
        self.save()?;
        Ok(index)
    }

    /// The recording with this index.
    pub fn file(&self, index: u32) -> Option<&StoredFile> {
        self.manifest.files.iter().find(|f| f.index == index)
    }

    /// Actual size of a recording.
    pub fn size(&self, index: u32) -> anyhow::Result<u64> {
        Ok(fs::metadata(self.blob(index))
            .with_context(|| format!("file #{index}"))?
            .len())
    }

    /// List entries from index `from`, with sizes as stored.
    pub fn entries(&self, from: u32) -> anyhow::Result<Vec<FileEntry>> {
        let mut out = Vec::new();
        for f in self.manifest.files.iter().filter(|f| f.index >= from) {
            out.push(FileEntry {
                index: f.index,
                size: self.size(f.index)?,
                recorded: f.recorded,
                flags: u8::from(f.important),
                name: f.name.clone(),
            });
        }
        Ok(out)
    }

    /// Up to `len` bytes of recording `index` from `offset`; the flag says
    /// whether they reach its end.
    pub fn read(&self, index: u32, offset: u64, len: u32) -> anyhow::Result<(Vec<u8>, bool)> {
        let mut f = File::open(self.blob(index)).with_context(|| format!("file #{index}"))?;
        let size = f.metadata()?.len();
        let start = offset.min(size);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = vec![0; (size - start).min(u64::from(len)) as usize];
        f.read_exact(&mut buf)?;
        let eof = start + buf.len() as u64 >= size;
        Ok((buf, eof))
    }

    /// SHA-256 and size of recording `index`: as sealed when it was
    /// recorded, or (for recordings from before seals) as it is now.
    pub fn digest(&self, index: u32) -> anyhow::Result<([u8; 32], u64)> {
        if let Some((sha, size)) = self.file(index).and_then(|f| f.sealed.as_ref()) {
            let mut out = [0; 32];
            hex::decode_to_slice(sha, &mut out)
                .with_context(|| format!("file #{index} has a malformed seal {sha:?}"))?;
            return Ok((out, *size));
        }
        self.hash(index)
    }

    fn hash(&self, index: u32) -> anyhow::Result<([u8; 32], u64)> {
        sha256_of(&self.blob(index)).with_context(|| format!("file #{index}"))
    }

    /// Deletes recording `index`.
    pub fn delete(&mut self, index: u32) -> anyhow::Result<()> {
        fs::remove_file(self.blob(index)).with_context(|| format!("deleting file #{index}"))?;
        self.manifest.files.retain(|f| f.index != index);
        self.manifest.log.push(format!("deleted #{index}"));
        self.save()
    }

    /// Where a firmware image being received is staged.
    pub fn firmware_staging(&self) -> PathBuf {
        self.dir.join("firmware").join("pending.bin")
    }

    /// Where installed firmware `version` is kept; `None` if `version` is
    /// not a firmware version (and so not safe as a file name).
    pub fn firmware_image(&self, version: &str) -> Option<PathBuf> {
        FirmwareVersion::parse(version).ok()?;
        Some(self.dir.join("firmware").join(format!("{version}.bin")))
    }

    /// Starts receiving firmware `version`: empties the staging file (an
    /// unfinished image is discarded) and remembers what it must become.
    pub fn begin_firmware(
        &mut self,
        version: &str,
        size: u64,
        sha256: [u8; 32],
    ) -> anyhow::Result<()> {
        let staging = self.firmware_staging();
        File::create(&staging)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("emptying {}", staging.display()))?;
        self.manifest.firmware_pending = Some(PendingFirmware {
            version: version.to_owned(),
            size,
            sha256: hex::encode(sha256),
        });
        self.save()
    }

    /// The image being received with the bytes staged so far, if any.
    pub fn pending_firmware(&self) -> anyhow::Result<Option<FirmwareImage>> {
        let Some(p) = &self.manifest.firmware_pending else {
            return Ok(None);
        };
        let mut sha256 = [0; 32];
        hex::decode_to_slice(&p.sha256, &mut sha256)
            .with_context(|| format!("pending firmware has a malformed sha256 {:?}", p.sha256))?;
        Ok(Some(FirmwareImage {
            version: p.version.clone(),
            size: p.size,
            sha256,
            received: self.firmware_received()?,
        }))
    }

    /// Bytes of the image being received that are staged (0 if none).
    pub fn firmware_received(&self) -> anyhow::Result<u64> {
        let staging = self.firmware_staging();
        match fs::metadata(&staging) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e).with_context(|| format!("reading {}", staging.display())),
        }
    }

    /// Up to `len` staged bytes from `offset` (fewer at the end).
    pub fn read_firmware(&self, offset: u64, len: usize) -> anyhow::Result<Vec<u8>> {
        let staging = self.firmware_staging();
        let mut f =
            File::open(&staging).with_context(|| format!("reading {}", staging.display()))?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity(len);
        f.take(len as u64).read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// Appends `data` to the staged image and syncs it; returns the bytes
    /// now staged.
    pub fn append_firmware(&mut self, data: &[u8]) -> anyhow::Result<u64> {
        let staging = self.firmware_staging();
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&staging)
            .with_context(|| format!("opening {}", staging.display()))?;
        f.write_all(data)
            .and_then(|()| f.sync_data())
            .with_context(|| format!("writing {}", staging.display()))?;
        Ok(f.metadata()?.len())
    }

    /// SHA-256 and size of the staged image, read a buffer at a time.
    pub fn firmware_digest(&self) -> anyhow::Result<([u8; 32], u64)> {
        let staging = self.firmware_staging();
        sha256_of(&staging).with_context(|| format!("hashing {}", staging.display()))
    }

    /// Forgets the image being received and removes its staged bytes.
    pub fn discard_firmware(&mut self) -> anyhow::Result<()> {
        let staging = self.firmware_staging();
        match fs::remove_file(&staging) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", staging.display())),
        }
        self.manifest.firmware_pending = None;
        self.save()
    }

    /// Installs the staged image (the caller has checked its size and
    /// SHA-256): it is kept as `firmware/<version>.bin`, then its version
    /// becomes the running firmware. Returns where the image is kept.
    pub fn install_firmware(&mut self) -> anyhow::Result<PathBuf> {
        let Some(p) = self.manifest.firmware_pending.clone() else {
            anyhow::bail!("no firmware image is being received");
        };
        let kept = self.firmware_image(&p.version).with_context(|| {
            format!(
                "pending firmware version {:?} cannot name a file",
                p.version
            )
        })?;
        let staging = self.firmware_staging();
        File::open(&staging)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("syncing {}", staging.display()))?;
        fs::rename(&staging, &kept)
            .with_context(|| format!("moving {} to {}", staging.display(), kept.display()))?;
        File::open(self.dir.join("firmware"))
            .and_then(|d| d.sync_all())
            .context("syncing the firmware folder")?;
        self.manifest.firmware = p.version;
        self.manifest.firmware_pending = None;
        self.save()?;
        Ok(kept)
    }

    /// Bytes used by recordings.
    pub fn used(&self) -> u64 {
        self.manifest
            .files
            .iter()
            .filter_map(|f| self.size(f.index).ok())
            .sum()
    }
}

/// SHA-256 and size of a file, read a fixed-size buffer at a time.
fn sha256_of(path: &Path) -> anyhow::Result<([u8; 32], u64)> {
    let mut f = File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0; 256 * 1024];
    let mut size = 0;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        size += n as u64;
    }
    let mut out = [0; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Ok((out, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_the_one_sealed_at_recording_so_later_damage_shows() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut storage = Storage::open(&dir.path().join("rec"), "ZFY0001")?;
        let src = dir.path().join("a.mp4");
        fs::write(&src, b"recorded bytes")?;
        let at = chrono::DateTime::UNIX_EPOCH.naive_utc();
        let index = storage.add(&src, "A.MP4", at, false)?;
        let sealed = storage.digest(index)?;
        assert_eq!(sealed, storage.hash(index)?);
        fs::write(storage.blob(index), b"recorded bytez")?;
        assert_eq!(storage.digest(index)?, sealed, "the seal stays");
        assert_ne!(storage.hash(index)?, sealed, "the file changed");
        Ok(())
    }
}

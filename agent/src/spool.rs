//! Field-mode source: the spool folder a field application drops files into.
//!
//! A file is taken only once it has settled (size and modification time
//! unchanged for `spool.settle_ms`); names starting with `.` or ending in
//! `.part`, `.tmp` or `.crdownload` are never taken, so writers that use
//! write-then-rename are picked up at the rename. Recordings are copied into
//! the agent's media folder while being hashed (one streaming pass, fsynced);
//! the record is committed; only then is the spool file removed. A file that
//! changes while being copied is left for a later scan. Event files that do
//! not parse are moved to `.rejected/` with the reason beside them.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use anyhow::Context as _;
use chrono::{DateTime, FixedOffset, Utc};
use evsync_protocol::chain::Hash;
use evsync_protocol::record::{Event, Kind, Media};
use evsync_protocol::signing::SigningKey;
use ring::digest;
use serde::Deserialize;

use crate::buffer::{Buffer, HeldMedia, SpoolOrigin};
use crate::config::AgentConfig;
use crate::gps::Gps;
use crate::{probe, records};

/// Largest event file accepted: well below the record body limit
/// ([`evsync_protocol::envelope::MAX_BODY_LEN`]), leaving room for the record's own fields.
pub const MAX_EVENT_FILE: u64 = 16 * 1024;
const COPY_CHUNK: usize = 1024 * 1024;

/// The content of an event file in the spool.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolEvent {
    /// When it happened (RFC 3339, any offset); the file's modification time if absent.
    pub time: Option<DateTime<FixedOffset>>,
    /// The event.
    pub event: Event,
}

/// What happened to one spool file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// A record was committed and the file removed.
    Recorded {
        /// Sequence number of the new record.
        seq: u64,
    },
    /// The file had been recorded before (a crash came between commit and removal); removed now.
    AlreadyRecorded,
    /// The file changed while being read; left for a later scan.
    Changed,
    /// The file is not valid; moved to `.rejected/`.
    Rejected(String),
}

/// Everything the spool needs to turn files into records.
pub struct Spool {
    cfg: AgentConfig,
    key: Arc<SigningKey>,
    buffer: Arc<Mutex<Buffer>>,
    media_dir: PathBuf,
    seen: HashMap<String, (Stamp, Instant)>,
    gps: Option<Gps>,
}

fn ignored(name: &str) -> bool {
    name.starts_with('.')
        || [".part", ".tmp", ".crdownload"]
            .iter()
            .any(|s| name.ends_with(s))
}

/// What identifies one version of a spool file: size, modification time and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime: SystemTime,
    ino: u64,
}

impl Stamp {
    fn of(path: &Path) -> anyhow::Result<Self> {
        let meta = fs::metadata(path)
            .with_context(|| format!("reading the metadata of {}", path.display()))?;
        Ok(Self::from_meta(&meta))
    }

    fn from_meta(meta: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            size: meta.len(),
            mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            ino: meta.ino(),
        }
    }

    /// The ledger's key for this version: a file with the same name and content
    /// written again later is a new version, not the one already recorded.
    fn fingerprint(&self) -> String {
        let ns = self
            .mtime
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{}:{}:{ns}", self.ino, self.size)
    }
}

/// Copies `src` into `dst` while hashing it, in one streaming pass, and fsyncs `dst`.
fn copy_hashing(src: &Path, dst: &Path) -> anyhow::Result<(Hash, u64)> {
    let mut input = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    let mut output = File::create(dst).with_context(|| format!("creating {}", dst.display()))?;
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut size = 0u64;
    loop {
        let n = input
            .read(&mut buf)
            .with_context(|| format!("reading {}", src.display()))?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        output
            .write_all(&buf[..n])
            .with_context(|| format!("writing {}", dst.display()))?;
        size += n as u64;
    }
    output
        .sync_all()
        .with_context(|| format!("syncing {}", dst.display()))?;
    let mut h = [0u8; 32];
    h.copy_from_slice(ctx.finish().as_ref());
    Ok((Hash(h), size))
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing folder {}", dir.display()))
}

impl Spool {
    /// Prepares the spool and media folders.
    pub fn new(
        cfg: AgentConfig,
        key: Arc<SigningKey>,
        buffer: Arc<Mutex<Buffer>>,
    ) -> anyhow::Result<Self> {
        let media_dir = cfg.data_dir.join("media");
        for dir in [&cfg.spool_dir, &media_dir] {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // Copies interrupted by a crash (their spool files are still in the
        // spool), and copies whose media receipt was applied just before a
        // crash took the agent down before it removed them.
        for entry in fs::read_dir(&media_dir)? {
            let path = entry?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            // Other hidden files are partial copies off recorders, resumed at the next
            // docking; copies from a recorder's mass storage are never resumed.
            let orphan = name.starts_with(".incoming-")
                || name.starts_with(".dock-") && name.ends_with("-volume")
                || !name.starts_with('.')
                    && !buffer
                        .lock()
                        .map_err(|_| anyhow::anyhow!("buffer lock poisoned"))?
                        .holds_copy(&name)?;
            if orphan {
                fs::remove_file(&path).with_context(|| {
                    format!(
                        "removing the copy {}, which no record holds",
                        path.display()
                    )
                })?;
            }
        }
        Ok(Self {
            cfg,
            key,
            buffer,
            media_dir,
            seen: HashMap::new(),
            gps: None,
        })
    }

    /// Geotags every record from now on from `gps` (a field device's receiver).
    pub fn with_gps(mut self, gps: Option<Gps>) -> Self {
        self.gps = gps;
        self
    }

    /// One pass over the spool folder: takes every settled file. Returns how many records were committed.
    pub fn scan(&mut self) -> anyhow::Result<usize> {
        let settle = self.cfg.spool.settle();
        let mut ready = Vec::new();
        let mut present = Vec::new();
        let dir = fs::read_dir(&self.cfg.spool_dir).with_context(|| {
            format!("reading the spool folder {}", self.cfg.spool_dir.display())
        })?;
        for entry in dir {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                tracing::warn!(name = ?entry.file_name(), "spool file name is not UTF-8: left in place");
                continue;
            };
            if ignored(&name) {
                continue;
            }
            let meta = entry.metadata()?;
            if !meta.is_file() {
                continue;
            }
            present.push(name.clone());
            let now_stamp = Stamp::from_meta(&meta);
            let now = Instant::now();
            let first = match self.seen.get(&name) {
                Some(&(s, since)) if s == now_stamp => since,
                _ => now,
            };
            self.seen.insert(name.clone(), (now_stamp, first));
            if now.duration_since(first) >= settle {
                ready.push(name);
            }
        }
        self.seen.retain(|n, _| present.contains(n));
        ready.sort();
        let mut committed = 0;
        for name in ready {
            match self.take(&name) {
                Ok(Taken::Recorded { .. }) => committed += 1,
                Ok(Taken::Changed) => {
                    self.seen.remove(&name);
                }
                Ok(Taken::AlreadyRecorded | Taken::Rejected(_)) => {}
                // One file that cannot be taken (unreadable, disk full) stays in the
                // spool for a later scan and does not hold up the others.
                Err(e) => {
                    self.seen.remove(&name);
                    tracing::error!(file = name, error = %format!("{e:#}"), "spool file not taken; left in the spool");
                }
            }
        }
        Ok(committed)
    }

    /// Takes one settled spool file.
    pub fn take(&mut self, name: &str) -> anyhow::Result<Taken> {
        let path = self.cfg.spool_dir.join(name);
        let before = Stamp::of(&path)?;
        let taken = if probe::is_event_file(name) {
            self.take_event(name, &path, before)?
        } else {
            self.take_media(name, &path, before)?
        };
        match &taken {
            Taken::Recorded { .. } | Taken::AlreadyRecorded => {
                self.seen.remove(name);
                if Stamp::of(&path)? != before {
                    // Written to again after it settled: what was recorded is kept, and the
                    // file stays to be recorded again once it settles anew, so nothing is lost.
                    tracing::warn!(
                        file = name,
                        "spool file changed after it was recorded; kept for another record"
                    );
                    return Ok(Taken::Changed);
                }
                fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            }
            Taken::Rejected(reason) => {
                self.quarantine(name, &path, reason)?;
            }
            Taken::Changed => {}
        }
        Ok(taken)
    }

    fn quarantine(&mut self, name: &str, path: &Path, reason: &str) -> anyhow::Result<()> {
        let dir = self.cfg.spool_dir.join(".rejected");
        fs::create_dir_all(&dir)?;
        fs::rename(path, dir.join(name))
            .with_context(|| format!("moving {} to {}", path.display(), dir.display()))?;
        fs::write(dir.join(format!("{name}.error.txt")), format!("{reason}\n"))?;
        tracing::error!(
            file = name,
            reason,
            "spool file rejected; moved to .rejected/"
        );
        self.seen.remove(name);
        Ok(())
    }

    fn take_event(&mut self, name: &str, path: &Path, before: Stamp) -> anyhow::Result<Taken> {
        if before.size > MAX_EVENT_FILE {
            return Ok(Taken::Rejected(format!(
                "event file is {} bytes: expected at most {MAX_EVENT_FILE}",
                before.size
            )));
        }
        let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let sha = Hash::of(&bytes).to_hex();
        let origin = SpoolOrigin {
            name: name.to_owned(),
            sha256: sha,
            fingerprint: before.fingerprint(),
        };
        if self.lock()?.already_spooled(&origin)? {
            return Ok(Taken::AlreadyRecorded);
        }
        let parsed: SpoolEvent = match serde_json::from_slice(&bytes) {
            Ok(e) => e,
            Err(e) => {
                return Ok(Taken::Rejected(format!(
                    "not a valid event file: {e}; expected {{\"time\": RFC 3339 (optional), \"event\": {{\"type\": ...}}}}"
                )))
            }
        };
        let time = parsed
            .time
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| DateTime::<Utc>::from(before.mtime));
        let key = self.key.clone();
        let body = self.lock()?.append(
            &key,
            &self.cfg.device_id.clone(),
            Some(&origin),
            None,
            |seq, prev| {
                let mut b =
                    records::body(&self.cfg, Kind::Event, seq, prev, time, self.gps.as_ref());
                b.event = Some(parsed.event);
                b
            },
        )?;
        tracing::debug!(file = name, seq = body.seq, "event recorded");
        Ok(Taken::Recorded { seq: body.seq })
    }

    fn take_media(&mut self, name: &str, path: &Path, before: Stamp) -> anyhow::Result<Taken> {
        let incoming = self
            .media_dir
            .join(format!(".incoming-{}", uuid::Uuid::now_v7()));
        let (hash, size) = match copy_hashing(path, &incoming) {
            Ok(r) => r,
            Err(e) => {
                // A full disk or an unreadable file: the spool file stays for a later scan.
                let _ = fs::remove_file(&incoming);
                return Err(e);
            }
        };
        if Stamp::of(path)? != before || size != before.size {
            fs::remove_file(&incoming)?;
            tracing::info!(
                file = name,
                "spool file changed while being copied; will retry once it settles"
            );
            return Ok(Taken::Changed);
        }
        let sha = hash.to_hex();
        let origin = SpoolOrigin {
            name: name.to_owned(),
            sha256: sha.clone(),
            fingerprint: before.fingerprint(),
        };
        if self.lock()?.already_spooled(&origin)? {
            fs::remove_file(&incoming)?;
            return Ok(Taken::AlreadyRecorded);
        }
        let held = self.media_dir.join(&sha);
        fs::rename(&incoming, &held)
            .with_context(|| format!("moving the copy into {}", held.display()))?;
        sync_dir(&self.media_dir)?;
        let info = probe::probe(&held, name);
        if let Some(problem) = &info.problem {
            tracing::warn!(
                file = name,
                problem,
                "recording kept as evidence without container metadata"
            );
        }
        let device_time = info
            .started_at
            .unwrap_or_else(|| DateTime::<Utc>::from(before.mtime));
        let media = Media {
            sha256: sha.clone(),
            size,
            mime: info.mime.to_owned(),
            file_name: name.to_owned(),
            file_index: None,
            started_at: info.started_at,
            duration_ms: info.duration_ms,
        };
        let held_media = HeldMedia {
            sha256: sha,
            path: held,
            size,
            file_name: name.to_owned(),
            priority: self.cfg.upload.priority_of(name),
        };
        let key = self.key.clone();
        let device_id = self.cfg.device_id.clone();
        let body = self.lock()?.append(
            &key,
            &device_id,
            Some(&origin),
            Some(&held_media),
            |seq, prev| {
                let mut b = records::body(
                    &self.cfg,
                    Kind::Media,
                    seq,
                    prev,
                    device_time,
                    self.gps.as_ref(),
                );
                b.media = Some(media);
                b
            },
        )?;
        tracing::info!(file = name, seq = body.seq, size, "recording recorded");
        Ok(Taken::Recorded { seq: body.seq })
    }

    fn lock(&self) -> anyhow::Result<std::sync::MutexGuard<'_, Buffer>> {
        self.buffer
            .lock()
            .map_err(|_| anyhow::anyhow!("buffer lock poisoned"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evsync_protocol::record::RecordBody;

    fn spool_with(cfg: &AgentConfig, buffer: &Arc<Mutex<Buffer>>) -> Spool {
        let key = SigningKey::from_seed_for_tests(&[7; 32]).unwrap();
        Spool::new(cfg.clone(), Arc::new(key), buffer.clone()).unwrap()
    }

    #[test]
    fn at_start_copies_no_record_holds_are_removed_and_held_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let hub = SigningKey::from_seed_for_tests(&[1; 32]).unwrap().public();
        let mut cfg = AgentConfig::field("field-1", dir.path(), "mqtt://127.0.0.1:1", &hub);
        cfg.spool.settle_ms = 0;
        fs::create_dir_all(&cfg.data_dir).unwrap();
        let buffer = Arc::new(Mutex::new(
            Buffer::open(&cfg.data_dir.join("buffer.sqlite")).unwrap(),
        ));
        let mut spool = spool_with(&cfg, &buffer);
        for (name, fill) in [("VID_0001.mp4", 1u8), ("VID_0002.mp4", 2)] {
            fs::write(cfg.spool_dir.join(name), vec![fill; 4096]).unwrap();
        }
        let mut taken = 0;
        for _ in 0..3 {
            taken += spool.scan().unwrap();
        }
        assert_eq!(taken, 2);
        let media_dir = cfg.data_dir.join("media");
        let copies = |dir: &Path| {
            let mut names: Vec<String> = fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(copies(&media_dir).len(), 2);

        // The first recording's media receipt was applied, then the agent
        // died before removing its copy; a copy was half made; and a stray
        // file sits in the folder.
        let first = buffer
            .lock()
            .unwrap()
            .pending_after(0, 1)
            .unwrap()
            .remove(0);
        let sha = RecordBody::parse(&first.envelope.body)
            .unwrap()
            .media
            .unwrap()
            .sha256;
        let released = buffer
            .lock()
            .unwrap()
            .media_receipted(&first.id, &sha)
            .unwrap();
        assert_eq!(released, Some(media_dir.join(&sha)));
        fs::write(media_dir.join(".incoming-0190"), b"half").unwrap();
        fs::write(media_dir.join("f".repeat(64)), b"stray").unwrap();

        drop(spool);
        let _restarted = spool_with(&cfg, &buffer);
        let left = copies(&media_dir);
        assert_eq!(left.len(), 1, "left: {left:?}");
        assert_ne!(left[0], sha, "the receipted copy is released");
        assert!(buffer.lock().unwrap().holds_copy(&left[0]).unwrap());
    }
}

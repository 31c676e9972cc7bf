//! The fast path for bulk copy: a recorder whose slot has a `mount` is
//! switched to USB mass storage (GA/T 947 `SetMSDC`) and its recordings are
//! copied from the mounted volume, while the serial line stays the control
//! channel: the recorder's own `FileDigest` over serial decides whether a
//! copy is accepted, exactly as for a copy read over serial.
//!
//! Only a file whose listed name is plain (`evsync_recorder_protocol::volume`)
//! is looked for, and only if it is a regular file inside the volume reached
//! without following a symlink, with the size the recorder lists. Anything
//! else — an unplain name, a missing or odd file, a volume that never shows
//! up, a recorder without `FileDigest`, a copy whose digest differs, any
//! I/O error — sends that file over serial ([`copy::copy`]); nothing is kept
//! that the recorder did not vouch for.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use evsync_recorder_protocol::message::{FileEntry, Request, Response};
use evsync_recorder_protocol::volume::{self, Unplain};
use ring::digest;

use super::board::SlotHandle;
use super::copy::{self, Copied, Via};
use super::link::{LinkError, RecorderLink};

/// Read size of the volume copy.
const BUF: usize = 4 * 1024 * 1024;
/// Buffers in flight between the copy and the hash.
const BUFFERS: usize = 4;
/// How often the volume is looked for while it comes up.
const LOOK_EVERY: Duration = Duration::from_millis(50);

/// Why a file is not taken from the volume.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The listed name has no place on a volume.
    #[error("name is not a plain relative path: {0}")]
    NotPlain(Unplain),
    /// No such file on the volume.
    #[error("not on the volume")]
    Absent,
    /// A component of the path is a symlink.
    #[error("{0} is a symlink")]
    Symlink(PathBuf),
    /// Not a regular file (or a folder on the way is not a folder).
    #[error("{0} is not a regular file")]
    NotFile(PathBuf),
    /// Its real path leaves the volume.
    #[error("{0} resolves outside the volume")]
    Escapes(PathBuf),
    /// A size other than the listed one.
    #[error("{size} bytes on the volume, {listed} listed")]
    Size {
        /// On the volume.
        size: u64,
        /// In `ListFiles`.
        listed: u64,
    },
    /// It changed between looking and opening.
    #[error("changed while being opened")]
    Changed,
    /// The file system said no.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Opens the file listed as `name` (`size` bytes) on the volume whose
/// canonical root is `root`, refusing anything but a regular file reached
/// by plain components, without symlinks, that stays under `root`.
pub fn open_on_volume(root: &Path, name: &str, size: u64) -> Result<(File, PathBuf), Refusal> {
    let parts = volume::components(name).map_err(Refusal::NotPlain)?;
    let mut path = root.to_owned();
    let last = parts.len() - 1;
    let mut meta = None;
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        let m = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Refusal::Absent),
            Err(e) => return Err(e.into()),
        };
        if m.file_type().is_symlink() {
            return Err(Refusal::Symlink(path));
        }
        let wanted = if i == last { m.is_file() } else { m.is_dir() };
        if !wanted {
            return Err(Refusal::NotFile(path));
        }
        meta = Some(m);
    }
    let real = std::fs::canonicalize(&path)?;
    if !real.starts_with(root) {
        return Err(Refusal::Escapes(path));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)?;
    let opened = file.metadata()?;
    let seen = meta.ok_or(Refusal::Absent)?;
    if !opened.is_file() || opened.dev() != seen.dev() || opened.ino() != seen.ino() {
        return Err(Refusal::Changed);
    }
    if opened.len() != size {
        return Err(Refusal::Size {
            size: opened.len(),
            listed: size,
        });
    }
    Ok((file, path))
}

#[derive(Debug)]
enum State {
    /// Mass storage not asked for yet on this docking.
    Off,
    /// Switched on and showing, at this canonical root.
    Ready(PathBuf),
    /// Switched on (or refused) and never showed: serial for this docking.
    Unavailable,
}

/// One docking's view of the recorder's mass-storage volume.
#[derive(Debug)]
pub struct Volume {
    mount: PathBuf,
    wait: Duration,
    state: State,
    /// Files copied from the volume on this docking.
    pub from_volume: u64,
    /// Files that went over serial instead on this docking.
    pub over_serial: u64,
}

impl Volume {
    /// The volume a slot mounts at `mount`, waited for up to `wait` once switched on.
    pub fn new(mount: PathBuf, wait: Duration) -> Self {
        Self {
            mount,
            wait,
            state: State::Off,
            from_volume: 0,
            over_serial: 0,
        }
    }

    /// The volume's canonical root, switching mass storage on and waiting
    /// for it the first time; `None` if it is not there (serial, then).
    async fn root(
        &mut self,
        link: &mut RecorderLink,
        recorder: &str,
    ) -> anyhow::Result<Option<PathBuf>> {
        if let State::Off = self.state {
            self.state = match link.call(Request::SetMsdc { on: true }).await {
                Ok(_) => match wait_for(&self.mount, self.wait).await {
                    Some(root) => {
                        tracing::info!(recorder, mount = %self.mount.display(), "recorder's mass storage is mounted; copying from it");
                        State::Ready(root)
                    }
                    None => {
                        tracing::warn!(recorder, mount = %self.mount.display(), wait_ms = self.wait.as_millis() as u64, "recorder's mass storage did not show up; copying over serial");
                        State::Unavailable
                    }
                },
                Err(e @ LinkError::Refused { .. }) => {
                    tracing::warn!(recorder, error = %e, "recorder refused mass storage; copying over serial");
                    State::Unavailable
                }
                Err(e) => return Err(e.into()),
            };
        }
        Ok(match &self.state {
            State::Ready(root) => Some(root.clone()),
            _ => None,
        })
    }
}

/// Waits up to `wait` for `mount` to be a folder that is a mount point or
/// holds something; its canonical path.
async fn wait_for(mount: &Path, wait: Duration) -> Option<PathBuf> {
    let deadline = Instant::now() + wait;
    loop {
        let m = mount.to_owned();
        let found = tokio::task::spawn_blocking(move || showing(&m))
            .await
            .ok()
            .flatten();
        if found.is_some() || Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

fn showing(mount: &Path) -> Option<PathBuf> {
    let root = std::fs::canonicalize(mount).ok()?;
    let meta = std::fs::metadata(&root).ok()?;
    if !meta.is_dir() {
        return None;
    }
    let mounted = root
        .parent()
        .and_then(|p| std::fs::metadata(p).ok())
        .is_some_and(|p| p.dev() != meta.dev());
    let holds = std::fs::read_dir(&root).ok()?.next().is_some();
    (mounted || holds).then_some(root)
}

/// Takes `entry` off the recorder: from its mass-storage volume when the
/// link has one and the file qualifies, otherwise (or on any failure of
/// that copy) over serial.
pub async fn take(
    link: &mut RecorderLink,
    recorder: &str,
    entry: &FileEntry,
    media_dir: &Path,
    chunk: u32,
    slot: &SlotHandle,
) -> anyhow::Result<Copied> {
    let Some(mut vol) = link.volume.take() else {
        return copy::copy(link, recorder, entry, media_dir, chunk, slot).await;
    };
    let fast = match from_volume(&mut vol, link, recorder, entry, media_dir, slot).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(
                recorder,
                index = entry.index,
                error = %format!("{e:#}"),
                "copy from the mass-storage volume failed; copying over serial"
            );
            None
        }
    };
    let result = match fast {
        Some(c) => {
            vol.from_volume += 1;
            Ok(c)
        }
        None => {
            vol.over_serial += 1;
            slot.update(|s| {
                if let Some(c) = &mut s.copying {
                    c.bytes_done = 0;
                }
            });
            copy::copy(link, recorder, entry, media_dir, chunk, slot).await
        }
    };
    link.volume = Some(vol);
    result
}

/// The copy from the volume, `None` when the file does not qualify.
async fn from_volume(
    vol: &mut Volume,
    link: &mut RecorderLink,
    recorder: &str,
    entry: &FileEntry,
    media_dir: &Path,
    slot: &SlotHandle,
) -> anyhow::Result<Option<Copied>> {
    if let Err(why) = volume::components(&entry.name) {
        tracing::debug!(recorder, index = entry.index, %why, "not on the volume by name; copying over serial");
        return Ok(None);
    }
    let Some(root) = vol.root(link, recorder).await? else {
        return Ok(None);
    };
    let (name, size) = (entry.name.clone(), entry.size);
    let opened = tokio::task::spawn_blocking(move || open_on_volume(&root, &name, size))
        .await
        .context("looking on the volume")?;
    let (file, path) = match opened {
        Ok(o) => o,
        Err(why) => {
            tracing::warn!(recorder, index = entry.index, %why, "file not taken from the volume; copying over serial");
            return Ok(None);
        }
    };
    let partial = PathBuf::from(format!(
        "{}-volume",
        copy::partial_path(media_dir, recorder, entry).display()
    ));
    // The recorder hashes its file while the dock copies it.
    let p = partial.clone();
    let progress = slot.clone();
    let copying = tokio::task::spawn_blocking(move || copy_file(file, &p, &progress));
    let asked = link.call(Request::FileDigest { index: entry.index }).await;
    let copied = copying.await.context("copying from the volume")?;
    let (sha, size) = match copied {
        Ok(c) => c,
        Err(e) => {
            tokio::fs::remove_file(&partial).await.ok();
            return Err(e.context(format!("copying {}", path.display())));
        }
    };
    let sha256 = hex::encode(sha);
    let ok = match asked {
        Ok(Response::Digest {
            size: s, sha256: d, ..
        }) => {
            let ok = d == sha && s == size && size == entry.size;
            if !ok {
                tracing::error!(
                    recorder,
                    index = entry.index,
                    volume_sha256 = sha256,
                    volume_size = size,
                    recorder_sha256 = hex::encode(d),
                    recorder_size = s,
                    "the file on the mass-storage volume differs from the recorder's digest; not accepted"
                );
            }
            ok
        }
        Ok(other) => {
            tracing::warn!(
                recorder,
                ?other,
                "recorder answered FileDigest with something else"
            );
            false
        }
        Err(e @ LinkError::Refused { .. }) => {
            // Without the recorder's word the volume's bytes are not evidence.
            tracing::warn!(recorder, error = %e, "no digest from the recorder for a volume copy");
            false
        }
        Err(e) => {
            tokio::fs::remove_file(&partial).await.ok();
            return Err(e.into());
        }
    };
    if !ok {
        tokio::fs::remove_file(&partial).await.ok();
        return Ok(None);
    }
    let held = copy::hold(&partial, media_dir, &sha256).await?;
    tracing::debug!(recorder, index = entry.index, from = %path.display(), "copied from the mass-storage volume");
    Ok(Some(Copied {
        sha256,
        size,
        path: held,
        confirmed_by_recorder: true,
        via: Via::Volume,
    }))
}

/// Streams `src` into a new `partial` (replacing any), hashing on the way,
/// and syncs it; its SHA-256 and length. The hash runs on a thread of its
/// own, a few buffers behind the copy, so it costs wall time only when the
/// cores are busy.
fn copy_file(
    mut src: File,
    partial: &Path,
    progress: &SlotHandle,
) -> anyhow::Result<([u8; 32], u64)> {
    use std::sync::mpsc;
    let mut out = File::create(partial)
        .with_context(|| format!("creating the partial copy {}", partial.display()))?;
    let (to_hash, hashing) = mpsc::sync_channel::<(Vec<u8>, usize)>(BUFFERS);
    let (to_fill, empty) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
    for _ in 0..BUFFERS {
        to_fill
            .send(vec![0u8; BUF])
            .map_err(|_| anyhow::anyhow!("buffer pool closed"))?;
    }
    let hasher = std::thread::spawn(move || {
        let mut ctx = digest::Context::new(&digest::SHA256);
        for (buf, n) in hashing {
            ctx.update(&buf[..n]);
            // After the copy ends nobody takes buffers back; every queued one is still hashed.
            let _ = to_fill.send(buf);
        }
        ctx.finish()
    });
    let copied = (|| -> anyhow::Result<u64> {
        let mut total = 0u64;
        loop {
            let mut buf = empty
                .recv()
                .map_err(|_| anyhow::anyhow!("the hashing thread stopped"))?;
            let n = match src.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
                Err(e) => return Err(e).context("reading the volume"),
            };
            out.write_all(&buf[..n])
                .with_context(|| format!("writing {}", partial.display()))?;
            total += n as u64;
            progress.copied(n as u64);
            to_hash
                .send((buf, n))
                .map_err(|_| anyhow::anyhow!("the hashing thread stopped"))?;
        }
    })();
    drop(to_hash);
    drop(empty);
    let sha = hasher
        .join()
        .map_err(|_| anyhow::anyhow!("the hashing thread panicked"))?;
    let total = copied?;
    out.sync_all()
        .with_context(|| format!("syncing {}", partial.display()))?;
    let mut out_sha = [0u8; 32];
    out_sha.copy_from_slice(sha.as_ref());
    Ok((out_sha, total))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    struct Vol {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
    }

    /// A volume holding `A.MP4` and `DCIM/100/B.MP4`, beside a secret outside it.
    fn vol() -> Vol {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("vol");
        std::fs::create_dir_all(root.join("DCIM/100")).unwrap();
        std::fs::write(root.join("A.MP4"), b"aaaa").unwrap();
        std::fs::write(root.join("DCIM/100/B.MP4"), b"bbbbbb").unwrap();
        let outside = tmp.path().join("secret");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("agent.key"), b"secret").unwrap();
        let root = std::fs::canonicalize(root).unwrap();
        Vol {
            _tmp: tmp,
            root,
            outside,
        }
    }

    fn refused(v: &Vol, name: &str, size: u64) -> Refusal {
        match open_on_volume(&v.root, name, size) {
            Ok((_, p)) => panic!("{name:?} was taken from {}", p.display()),
            Err(e) => e,
        }
    }

    #[test]
    fn plain_names_open_the_file_of_that_name_under_the_volume() {
        let v = vol();
        let (mut f, p) = open_on_volume(&v.root, "DCIM/100/B.MP4", 6).unwrap();
        assert_eq!(p, v.root.join("DCIM/100/B.MP4"));
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "bbbbbb");
        assert!(open_on_volume(&v.root, "A.MP4", 4).is_ok());
    }

    #[test]
    fn traversal_absolute_paths_and_control_characters_are_not_looked_for() {
        let v = vol();
        std::fs::write(v.root.join("ctl\u{1b}[31m.MP4"), b"x").unwrap();
        for name in [
            "../secret/agent.key",
            "DCIM/../../secret/agent.key",
            "/etc/passwd",
            "ctl\u{1b}[31m.MP4",
            "bell\u{7}new\nline.MP4",
            "",
            "..",
            "C:\\Windows\\win.ini.MP4",
        ] {
            assert!(
                matches!(refused(&v, name, 6), Refusal::NotPlain(_)),
                "{name:?}"
            );
        }
        let abs = v.outside.join("agent.key").display().to_string();
        assert!(matches!(
            refused(&v, &abs, 6),
            Refusal::NotPlain(Unplain::Absolute)
        ));
    }

    #[test]
    fn very_long_names_are_not_looked_for() {
        let v = vol();
        let long = format!("{}.MP4", "L".repeat(300));
        assert!(matches!(
            refused(&v, &long, 1),
            Refusal::NotPlain(Unplain::TooLong)
        ));
        let deep = vec!["d"; 40].join("/");
        assert!(matches!(
            refused(&v, &deep, 1),
            Refusal::NotPlain(Unplain::TooLong)
        ));
    }

    #[test]
    fn symlinks_out_of_the_volume_are_refused_as_file_and_as_folder() {
        let v = vol();
        symlink(v.outside.join("agent.key"), v.root.join("KEY.MP4")).unwrap();
        symlink(&v.outside, v.root.join("OUT")).unwrap();
        // Even one that stays inside: the volume's names are files, not links.
        symlink(v.root.join("A.MP4"), v.root.join("ALIAS.MP4")).unwrap();
        assert!(matches!(refused(&v, "KEY.MP4", 6), Refusal::Symlink(_)));
        assert!(matches!(
            refused(&v, "OUT/agent.key", 6),
            Refusal::Symlink(_)
        ));
        assert!(matches!(refused(&v, "ALIAS.MP4", 4), Refusal::Symlink(_)));
    }

    #[test]
    fn missing_files_folders_fifos_and_other_sizes_are_left_to_serial() {
        let v = vol();
        assert!(matches!(refused(&v, "NOPE.MP4", 1), Refusal::Absent));
        assert!(matches!(refused(&v, "DCIM/100", 1), Refusal::NotFile(_)));
        assert!(matches!(refused(&v, "A.MP4/x", 1), Refusal::NotFile(_)));
        assert!(matches!(
            refused(&v, "A.MP4", 5),
            Refusal::Size { size: 4, listed: 5 }
        ));
        let made = std::process::Command::new("mkfifo")
            .arg(v.root.join("FIFO.MP4"))
            .status()
            .unwrap();
        assert!(made.success());
        assert!(matches!(refused(&v, "FIFO.MP4", 0), Refusal::NotFile(_)));
    }

    #[test]
    fn a_copy_is_streamed_hashed_and_synced() {
        let v = vol();
        let data: Vec<u8> = (0..(BUF * 2 + 17)).map(|i| (i % 251) as u8).collect();
        std::fs::write(v.root.join("BIG.MP4"), &data).unwrap();
        let (f, _) = open_on_volume(&v.root, "BIG.MP4", data.len() as u64).unwrap();
        let partial = v.root.join(".partial");
        let slot = SlotHandle::new(
            std::sync::Arc::new(super::super::board::Board::new(&[], None)),
            1,
        );
        let (sha, n) = copy_file(f, &partial, &slot).unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(
            sha.as_slice(),
            digest::digest(&digest::SHA256, &data).as_ref()
        );
        assert_eq!(std::fs::read(&partial).unwrap(), data);
    }
}

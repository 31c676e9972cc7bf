//! Unfinished uploads: `<partials_dir>/<sha256>.part`, one file per content.
//!
//! The folder may be shared storage (NFS) between hub instances: whichever
//! hub receives the next chunk of an upload continues the partial another
//! hub left. An exclusive lock on the partial's file (`flock`, which Linux
//! carries to the NFS server as a whole-file lock) keeps two hubs, or two
//! requests in one hub, from appending to it at once.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context as _;

use super::blobs::check_sha;

/// The folder of partial uploads.
#[derive(Debug, Clone)]
pub struct Partials {
    dir: PathBuf,
}

/// A partial held for writing: the file is open and exclusively locked
/// until this is dropped.
#[derive(Debug)]
pub struct Held {
    file: File,
    path: PathBuf,
}

/// Which file a path names: (device, inode).
fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

impl Partials {
    /// Opens (creating) the folder.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the partial uploads folder {}", dir.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// Where the unfinished upload of `sha256` is kept.
    pub fn path(&self, sha256: &str) -> anyhow::Result<PathBuf> {
        check_sha(sha256)?;
        Ok(self.dir.join(format!("{sha256}.part")))
    }

    /// Takes the partial of `sha256` for writing, creating it empty if
    /// there is none; `None` while another holder (this hub or another) has it.
    pub fn try_take(&self, sha256: &str) -> anyhow::Result<Option<Held>> {
        let path = self.path(sha256)?;
        // The holder before us may remove the file after we opened it (the
        // upload finished, or was discarded): then lock the new one.
        for _ in 0..8 {
            let file = OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("locking {}", path.display()))
                }
            }
            let held = identity(&file.metadata()?);
            match std::fs::metadata(&path) {
                Ok(now) if identity(&now) == held => return Ok(Some(Held { file, path })),
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("checking {}", path.display())),
            }
        }
        anyhow::bail!(
            "{} keeps being replaced while it is being locked",
            path.display()
        )
    }

    /// Every partial upload: its SHA-256 and when it was last written.
    pub fn list(&self) -> anyhow::Result<Vec<(String, SystemTime)>> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.dir)
            .with_context(|| format!("listing {}", self.dir.display()))?;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(sha) = name.to_str().and_then(|n| n.strip_suffix(".part")) else {
                continue;
            };
            if check_sha(sha).is_err() {
                continue;
            }
            let modified = match entry.metadata() {
                Ok(m) => m.modified()?,
                // Finished or removed by another hub meanwhile.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            out.push((sha.to_owned(), modified));
        }
        Ok(out)
    }
}

impl Held {
    /// The locked file (opened for reading and appending).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Which file this is (device, inode): a partial removed and made anew
    /// is another file, so hash state kept for the old one does not apply.
    pub fn identity(&self) -> anyhow::Result<(u64, u64)> {
        Ok(identity(&self.file.metadata().with_context(|| {
            format!("reading the length of {}", self.path.display())
        })?))
    }

    /// Its length after making it durable.
    pub fn durable_len(&self) -> anyhow::Result<u64> {
        self.file
            .sync_all()
            .with_context(|| format!("syncing {}", self.path.display()))?;
        Ok(self.file.metadata()?.len())
    }

    /// Deletes the partial (a mismatch, or abandoned), still under the lock.
    pub fn remove(self) -> anyhow::Result<()> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", self.path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hashes_name_partials_and_stray_files_are_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        let partials = Partials::open(&dir.path().join("partials")).unwrap();
        let sha = "ab".repeat(32);
        for bad in ["../../etc/passwd", &"AB".repeat(32), "ab"] {
            assert!(partials.path(bad).is_err(), "{bad} accepted");
        }
        std::fs::write(partials.path(&sha).unwrap(), b"x").unwrap();
        std::fs::write(dir.path().join("partials/stray.part"), b"y").unwrap();
        let listed = partials.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0, sha);
    }

    #[test]
    fn a_partial_has_one_writer_at_a_time_and_a_removed_one_is_made_anew() {
        let dir = tempfile::tempdir().unwrap();
        // Two handles on one folder, as two hubs sharing it would have.
        let a = Partials::open(dir.path()).unwrap();
        let b = Partials::open(dir.path()).unwrap();
        let sha = "cd".repeat(32);
        let held = a.try_take(&sha).unwrap().expect("free at first");
        assert!(b.try_take(&sha).unwrap().is_none(), "taken twice");
        use std::io::Write as _;
        let mut file = held.file();
        file.write_all(b"12345").unwrap();
        assert_eq!(held.durable_len().unwrap(), 5);
        let first = held.identity().unwrap();
        drop(held);
        let again = b.try_take(&sha).unwrap().expect("free once dropped");
        assert_eq!(again.durable_len().unwrap(), 5, "continued, not restarted");
        assert_eq!(again.identity().unwrap(), first);
        again.remove().unwrap();
        let fresh = a.try_take(&sha).unwrap().expect("free once removed");
        assert_eq!(fresh.durable_len().unwrap(), 0);
    }
}

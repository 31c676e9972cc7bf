//! The content-addressed media store: verified content at
//! `<data>/blobs/ab/cd/<sha256>`, unfinished uploads at
//! `<data>/partials/<sha256>.part`. A blob is only ever created by moving a
//! fully verified, fsynced partial into place, so a file in `blobs/` is
//! always complete.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context as _;

/// The two folders.
#[derive(Debug, Clone)]
pub struct Blobs {
    root: PathBuf,
    partials: PathBuf,
}

fn check_sha(sha256: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{sha256:?} is not a SHA-256 in lowercase hex"
    );
    Ok(())
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing the folder {}", dir.display()))
}

impl Blobs {
    /// Opens (creating) the folders under `data_dir`.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let b = Self {
            root: data_dir.join("blobs"),
            partials: data_dir.join("partials"),
        };
        for dir in [&b.root, &b.partials] {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the media folder {}", dir.display()))?;
        }
        Ok(b)
    }

    /// Where verified content `sha256` is (or would be) stored.
    pub fn path(&self, sha256: &str) -> anyhow::Result<PathBuf> {
        check_sha(sha256)?;
        Ok(self
            .root
            .join(&sha256[..2])
            .join(&sha256[2..4])
            .join(sha256))
    }

    /// Where the unfinished upload of `sha256` is kept.
    pub fn partial(&self, sha256: &str) -> anyhow::Result<PathBuf> {
        check_sha(sha256)?;
        Ok(self.partials.join(format!("{sha256}.part")))
    }

    /// Moves the verified, fsynced partial of `sha256` into the store and
    /// makes the move durable. Returns the blob's path.
    pub fn commit(&self, sha256: &str) -> anyhow::Result<PathBuf> {
        let from = self.partial(sha256)?;
        let to = self.path(sha256)?;
        let dir = to
            .parent()
            .context("a blob path always has a parent folder")?;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the blob folder {}", dir.display()))?;
        std::fs::rename(&from, &to)
            .with_context(|| format!("moving {} to {}", from.display(), to.display()))?;
        sync_dir(dir)?;
        sync_dir(&self.partials)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        Ok(to)
    }

    /// Every partial upload: its SHA-256 and when it was last written.
    pub fn partials(&self) -> anyhow::Result<Vec<(String, SystemTime)>> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.partials)
            .with_context(|| format!("listing {}", self.partials.display()))?;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(sha) = name.to_str().and_then(|n| n.strip_suffix(".part")) else {
                continue;
            };
            if check_sha(sha).is_err() {
                continue;
            }
            let modified = entry.metadata()?.modified()?;
            out.push((sha.to_owned(), modified));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_fanned_out_by_hash_and_only_hashes_name_files() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path()).unwrap();
        let sha = "ab".repeat(32);
        assert_eq!(
            blobs.path(&sha).unwrap(),
            dir.path().join("blobs/ab/ab").join(&sha)
        );
        for bad in ["../../etc/passwd", &"AB".repeat(32), "ab"] {
            assert!(blobs.path(bad).is_err(), "{bad} accepted");
            assert!(blobs.partial(bad).is_err(), "{bad} accepted");
        }
        std::fs::write(blobs.partial(&sha).unwrap(), b"x").unwrap();
        std::fs::write(dir.path().join("partials/stray.part"), b"y").unwrap();
        let partials = blobs.partials().unwrap();
        assert_eq!(partials.len(), 1);
        assert_eq!(partials[0].0, sha);
        let stored = blobs.commit(&sha).unwrap();
        assert_eq!(std::fs::read(stored).unwrap(), b"x");
        assert!(blobs.partials().unwrap().is_empty());
    }
}

//! The local-folder blob store (the default): verified content at
//! `<data>/blobs/ab/cd/<sha256>`. A blob is only ever created by moving a
//! fully verified, fsynced partial into place, so a file in `blobs/` is
//! always complete.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::check_sha;

/// The folder of blobs.
#[derive(Debug, Clone)]
pub struct LocalBlobs {
    root: PathBuf,
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing the folder {}", dir.display()))
}

impl LocalBlobs {
    /// Opens (creating) `<data_dir>/blobs`.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let root = data_dir.join("blobs");
        std::fs::create_dir_all(&root)
            .with_context(|| format!("creating the media folder {}", root.display()))?;
        Ok(Self { root })
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

    /// The size of stored content `sha256`, if it is stored.
    pub fn size(&self, sha256: &str) -> anyhow::Result<Option<u64>> {
        let path = self.path(sha256)?;
        match std::fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("looking at {}", path.display())),
        }
    }

    /// Moves the verified, fsynced partial `from` into place as `sha256`
    /// and makes the move durable. A partial on another file system (a
    /// shared partials folder) is copied, fsynced, renamed into place and
    /// then removed.
    pub fn commit(&self, sha256: &str, from: &Path) -> anyhow::Result<()> {
        let to = self.path(sha256)?;
        let dir = to
            .parent()
            .context("a blob path always has a parent folder")?;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the blob folder {}", dir.display()))?;
        match std::fs::rename(from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                let tmp = dir.join(format!("{sha256}.incoming"));
                std::fs::copy(from, &tmp)
                    .with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
                std::fs::File::open(&tmp)
                    .and_then(|f| f.sync_all())
                    .with_context(|| format!("syncing {}", tmp.display()))?;
                std::fs::rename(&tmp, &to)
                    .with_context(|| format!("moving {} to {}", tmp.display(), to.display()))?;
                std::fs::remove_file(from)
                    .with_context(|| format!("removing {}", from.display()))?;
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("moving {} to {}", from.display(), to.display()))
            }
        }
        sync_dir(dir)?;
        if let Some(partials) = from.parent() {
            sync_dir(partials)?;
        }
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }
}

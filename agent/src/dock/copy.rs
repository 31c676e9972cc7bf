//! Copying one file off a recorder: read in chunks over the serial line
//! into a partial copy while hashing, resume a partial copy left by an
//! unplug, check the whole against the recorder's own digest, and only
//! then move it where held recordings live (named by SHA-256).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use evsync_recorder_protocol::message::{FileEntry, Request, Response, Status};
use ring::digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::board::SlotHandle;
use super::link::RecorderLink;

/// A verified copy.
#[derive(Debug)]
pub struct Copied {
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// Bytes copied (the file's real size, whatever the listing said).
    pub size: u64,
    /// Where the copy is held.
    pub path: PathBuf,
    /// Whether the recorder confirmed it with its own digest.
    pub confirmed_by_recorder: bool,
    /// Which way the bytes came.
    pub via: Via,
}

/// Which way a copy's bytes came off the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `ReadFile` over the serial line.
    Serial,
    /// The recorder's USB mass-storage volume ([`super::mount`]).
    Volume,
}

impl Via {
    /// As written in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Serial => "serial",
            Via::Volume => "mass_storage",
        }
    }
}

/// Where a partial copy of `entry` of `recorder` waits to be resumed: a
/// name derived from the file's identity, never from its (untrusted) name.
pub fn partial_path(media_dir: &Path, recorder: &str, entry: &FileEntry) -> PathBuf {
    let id = digest::digest(
        &digest::SHA256,
        format!("{recorder}\0{}\0{}", entry.index, entry.name).as_bytes(),
    );
    media_dir.join(format!(".dock-{}", &hex::encode(id.as_ref())[..32]))
}

/// Moves a verified, synced `partial` copy to where held recordings live,
/// named by its SHA-256, and syncs the folder; the held path.
pub async fn hold(partial: &Path, media_dir: &Path, sha256: &str) -> anyhow::Result<PathBuf> {
    let held = media_dir.join(sha256);
    tokio::fs::rename(partial, &held)
        .await
        .with_context(|| format!("moving the copy to {}", held.display()))?;
    let dir = media_dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir).and_then(|d| d.sync_all()))
        .await
        .context("syncing the media folder")?
        .context("syncing the media folder")?;
    Ok(held)
}

/// Copies `entry` into `media_dir`, resuming a partial copy if one is there.
/// `chunk` is the largest read the recorder serves; bytes are counted on `slot`.
pub async fn copy(
    link: &mut RecorderLink,
    recorder: &str,
    entry: &FileEntry,
    media_dir: &Path,
    chunk: u32,
    slot: &SlotHandle,
) -> anyhow::Result<Copied> {
    let partial = partial_path(media_dir, recorder, entry);
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut offset = 0u64;
    if let Ok(mut f) = tokio::fs::File::open(&partial).await {
        // Resume: the bytes already held count, once hashed again.
        let mut buf = vec![0; 256 * 1024];
        loop {
            let n = f.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
            offset += n as u64;
        }
        if offset > 0 {
            tracing::info!(
                recorder,
                index = entry.index,
                offset,
                "resuming a partial copy"
            );
            slot.copied(offset);
            slot.update(|s| s.resumed_copies += 1);
        }
    }
    let mut out = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&partial)
        .await
        .with_context(|| format!("opening the partial copy {}", partial.display()))?;
    loop {
        let resp = link
            .call(Request::ReadFile {
                index: entry.index,
                offset,
                len: chunk,
            })
            .await?;
        let Response::Chunk {
            index,
            offset: at,
            eof,
            data,
        } = resp
        else {
            anyhow::bail!("recorder answered ReadFile with {resp:?}");
        };
        anyhow::ensure!(
            index == entry.index && at == offset,
            "recorder sent file #{index} at {at} when #{} at {offset} was asked for",
            entry.index
        );
        out.write_all(&data)
            .await
            .with_context(|| format!("writing {}", partial.display()))?;
        ctx.update(&data);
        offset += data.len() as u64;
        slot.copied(data.len() as u64);
        if eof || data.is_empty() {
            break;
        }
    }
    out.sync_all()
        .await
        .with_context(|| format!("syncing {}", partial.display()))?;
    drop(out);
    let sha = ctx.finish();
    let sha256 = hex::encode(sha.as_ref());
    if offset != entry.size {
        tracing::warn!(
            recorder,
            index = entry.index,
            listed = entry.size,
            copied = offset,
            "the recorder listed a size its file does not have; the file as read is kept"
        );
    }
    let confirmed_by_recorder = match link.call(Request::FileDigest { index: entry.index }).await {
        Ok(Response::Digest {
            size, sha256: d, ..
        }) => {
            if d.as_slice() != sha.as_ref() || size != offset {
                tokio::fs::remove_file(&partial).await.ok();
                anyhow::bail!(
                    "copy of file #{} of {recorder} ({offset} bytes, SHA-256 {sha256}) does not match the recorder's digest ({size} bytes, {}); copying it again",
                    entry.index,
                    hex::encode(d)
                );
            }
            true
        }
        Ok(other) => anyhow::bail!("recorder answered FileDigest with {other:?}"),
        Err(e) if e.status() == Some(Status::Unsupported) => false,
        Err(e) => return Err(e.into()),
    };
    let held = hold(&partial, media_dir, &sha256).await?;
    Ok(Copied {
        sha256,
        size: offset,
        path: held,
        confirmed_by_recorder,
        via: Via::Serial,
    })
}

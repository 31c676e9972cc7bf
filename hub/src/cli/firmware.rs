//! `evsync-hub firmware …`: register recorder firmware images and roll
//! them out. An image's manifest rides on the recorders' signed
//! configuration assignments; docks download the bytes from the hub
//! (`/firmware/<sha256>`, with ranges) and install them over serial.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Subcommand;
use evsync_protocol::chain::Hash;

use super::operator::{json, Operator};
use super::recorder_config::{rollout_to, Targets};
use crate::media::blobs::Blobs;
use crate::media::Partials;

/// Firmware subcommands.
#[derive(Debug, Subcommand)]
pub enum FirmwareAction {
    /// Register an image: its bytes go to the hub's blob store, its SHA-256 is computed.
    Add {
        /// The image file.
        file: PathBuf,
        /// The firmware version it installs, e.g. SIM-2.5.0.
        #[arg(long)]
        version: String,
    },
    /// List the registered images.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Assign an image to some recorders: their next assignments name it (issued now).
    Rollout {
        /// The firmware version (registered with `firmware add`).
        version: String,
        /// Which recorders.
        #[command(flatten)]
        to: Targets,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `evsync-hub firmware …`
pub fn run(config: Option<PathBuf>, action: FirmwareAction) -> anyhow::Result<()> {
    let mut op = Operator::open(config)?;
    match action {
        FirmwareAction::Add { file, version } => {
            evsync_recorder_protocol::firmware::FirmwareVersion::parse(&version)?;
            let blobs = Blobs::open(&op.cfg)?;
            let partials = Partials::open(&op.cfg.partials_dir())?;
            let (sha256, size) = store_image(&blobs, &partials, &file)?;
            op.audited("firmware.add", &version, format!("{sha256} {size} bytes"))?;
            let actor = op.actor.clone();
            if op.store.add_firmware(&version, &sha256, size, &actor)? {
                println!("firmware {version} registered: sha256 {sha256}, {size} bytes");
            } else {
                println!("firmware {version} was registered already with this image");
            }
        }
        FirmwareAction::List { json: as_json } => {
            let images = op.store.firmware_images()?;
            if as_json {
                return json(&images);
            }
            println!("{:<20} {:>12}  {:<64}  added", "version", "bytes", "sha256");
            for i in images {
                println!(
                    "{:<20} {:>12}  {:<64}  {} by {}",
                    i.version, i.size, i.sha256, i.added_at, i.by_whom
                );
            }
        }
        FirmwareAction::Rollout {
            version,
            to,
            json: as_json,
        } => {
            let rollout = to.rollout();
            let targets = op.store.rollout_targets(&rollout)?;
            anyhow::ensure!(
                !targets.is_empty(),
                "no recorder of the fleet matches {rollout}"
            );
            op.audited(
                "firmware.rollout",
                &version,
                format!("{rollout}: {} recorder(s)", targets.len()),
            )?;
            let listen = op.cfg.http.listen;
            anyhow::ensure!(
                op.cfg.media.public_url.is_some() || !listen.ip().is_unspecified(),
                "http.listen = {listen} is no address a dock can download from: set media.public_url (e.g. http://hub.example:8480)"
            );
            let actor = op.actor.clone();
            // Every target or none: a recorder whose configuration forbids
            // the version stops the rollout before anything changes.
            op.store.set_firmware_targets(&targets, &version, &actor)?;
            rollout_to(&mut op, &rollout, false, as_json)?;
        }
    }
    Ok(())
}

/// Runs `f` to completion on a runtime of its own, on a thread of its own
/// (this command runs inside the command line's runtime, and may not block it).
fn run_async<T: Send>(
    f: impl std::future::Future<Output = anyhow::Result<T>> + Send,
) -> anyhow::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting a runtime for the blob store")?
                .block_on(f)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the blob store thread panicked"))?
    })
}

/// Copies `file` into the blob store, verified: hashed once to name it,
/// and again while copying into a partial, so a file changed meanwhile is
/// refused.
fn store_image(blobs: &Blobs, partials: &Partials, file: &Path) -> anyhow::Result<(String, u64)> {
    let open = || std::fs::File::open(file).with_context(|| format!("reading {}", file.display()));
    let (hash, size) = Hash::of_stream(&mut open()?, &mut std::io::sink())
        .with_context(|| format!("reading {}", file.display()))?;
    let sha256 = hash.to_hex();
    anyhow::ensure!(size > 0, "{}: the image is empty", file.display());
    if run_async(blobs.size(&sha256))? == Some(size) {
        return Ok((sha256, size));
    }
    let held = partials.try_take(&sha256)?.with_context(|| {
        format!("an upload of the same content ({sha256}) is under way: try again later")
    })?;
    let partial = held.path().to_path_buf();
    held.file()
        .set_len(0)
        .with_context(|| format!("emptying {}", partial.display()))?;
    let mut to = held.file();
    let copied = Hash::of_stream(&mut open()?, &mut to)
        .with_context(|| format!("copying {} to {}", file.display(), partial.display()))?;
    to.sync_all()
        .with_context(|| format!("syncing {}", partial.display()))?;
    if copied != (hash, size) {
        held.remove()?;
        anyhow::bail!(
            "{} changed while it was being added: try again",
            file.display()
        );
    }
    run_async(blobs.commit(&sha256, &partial))?;
    drop(held);
    Ok((sha256, size))
}

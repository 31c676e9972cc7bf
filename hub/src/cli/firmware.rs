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
            let blobs = Blobs::open(&op.cfg.data_dir)?;
            let (sha256, size) = store_image(&blobs, &file)?;
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

/// Copies `file` into the blob store, verified: hashed once to name it,
/// and again while copying, so a file changed meanwhile is refused.
fn store_image(blobs: &Blobs, file: &Path) -> anyhow::Result<(String, u64)> {
    let open = || std::fs::File::open(file).with_context(|| format!("reading {}", file.display()));
    let (hash, size) = Hash::of_stream(&mut open()?, &mut std::io::sink())
        .with_context(|| format!("reading {}", file.display()))?;
    let sha256 = hash.to_hex();
    anyhow::ensure!(size > 0, "{}: the image is empty", file.display());
    if blobs.path(&sha256)?.exists() {
        return Ok((sha256, size));
    }
    let partial = blobs.partial(&sha256)?;
    let mut to = std::fs::File::create(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let copied = Hash::of_stream(&mut open()?, &mut to)
        .with_context(|| format!("copying {} to {}", file.display(), partial.display()))?;
    to.sync_all()?;
    if copied != (hash, size) {
        let _ = std::fs::remove_file(&partial);
        anyhow::bail!(
            "{} changed while it was being added: try again",
            file.display()
        );
    }
    blobs.commit(&sha256)?;
    Ok((sha256, size))
}

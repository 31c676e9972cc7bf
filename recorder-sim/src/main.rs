//! `evsync-recorder-sim`: a recorder on a pseudo-terminal. See the crate docs.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use evsync_recorder_sim::device::Device;
use evsync_recorder_sim::faults::Faults;
use evsync_recorder_sim::generate::{self, Plan};
use evsync_recorder_sim::serve::{self, Ended, Options};
use evsync_recorder_sim::storage::Storage;

#[derive(Parser)]
#[command(
    name = "evsync-recorder-sim",
    version,
    about = "A body-worn recorder on a pseudo-terminal"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Recorder {
    /// The recorder's storage folder (created if missing).
    #[arg(long)]
    storage: PathBuf,
    /// Product serial (device id) of a new recorder: 7 letters or digits.
    #[arg(long, default_value = "ZFY0001")]
    serial: String,
    /// Set the recorder clock this many seconds off true time.
    #[arg(long, allow_negative_numbers = true)]
    clock_offset_secs: Option<i64>,
    /// Set the admin password (6 characters).
    #[arg(long)]
    password: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the recorder on a new pseudo-terminal (its path is printed) or a serial device.
    Serve {
        #[command(flatten)]
        recorder: Recorder,
        /// Use this serial device instead of a new pseudo-terminal.
        #[arg(long, conflicts_with = "link")]
        device: Option<PathBuf>,
        /// Keep a symlink here pointing at the pseudo-terminal (a stable port path).
        #[arg(long)]
        link: Option<PathBuf>,
        /// Folder standing for the recorder's USB mass-storage volume: while
        /// mass storage is on (SetMSDC), recordings with plain names appear
        /// there at their names.
        #[arg(long)]
        mount: Option<PathBuf>,
        /// Largest file chunk served, bytes.
        #[arg(long, default_value_t = 16 * 1024)]
        max_chunk: u32,
        #[command(flatten)]
        faults: Faults,
    },
    /// Record MP4 recordings onto the recorder (needs ffmpeg).
    Generate {
        #[command(flatten)]
        recorder: Recorder,
        #[command(flatten)]
        plan: Plan,
    },
}

fn open(r: &Recorder) -> anyhow::Result<Storage> {
    anyhow::ensure!(
        r.serial.len() == 7 && r.serial.bytes().all(|b| b.is_ascii_alphanumeric()),
        "--serial {:?}: expected 7 ASCII letters or digits",
        r.serial
    );
    let mut storage = Storage::open(&r.storage, &r.serial)?;
    if let Some(secs) = r.clock_offset_secs {
        storage.manifest.clock_offset_ms = secs.saturating_mul(1000);
    }
    if let Some(p) = &r.password {
        anyhow::ensure!(
            p.len() == 6 && p.is_ascii(),
            "--password: expected 6 ASCII characters"
        );
        storage.manifest.password = p.clone();
    }
    storage.save()?;
    Ok(storage)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("evsync-recorder-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Generate { recorder, plan } => {
            let storage = open(&recorder)?;
            let device = Device::new(storage, Faults::default(), 512);
            let now = device.clock();
            let mut storage = device.storage;
            let made = generate::fill(&mut storage, &plan, now)?;
            println!(
                "recorded {} files on {} (indexes {:?})",
                made.len(),
                storage.manifest.zfy.serial,
                made
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            recorder,
            device,
            link,
            mount,
            max_chunk,
            faults,
        } => {
            let storage = open(&recorder)?;
            let serial = storage.manifest.zfy.serial.clone();
            drop(storage);
            // Runs until killed; a signal's default action ends it, closing the line.
            let stop = AtomicBool::new(false);
            let opts = Options {
                storage: recorder.storage,
                serial: serial.clone(),
                device,
                link,
                mount,
                max_chunk,
                faults,
            };
            let ended = serve::run(&opts, &stop, |path| {
                println!("recorder {serial} on {}", path.display());
                let _ = std::io::stdout().flush();
            })
            .context("serving")?;
            Ok(match ended {
                Ended::Stopped => ExitCode::SUCCESS,
                Ended::Unplugged => {
                    println!("recorder {serial} unplugged");
                    ExitCode::from(3)
                }
            })
        }
    }
}

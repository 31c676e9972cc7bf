//! Simulated recorders for dock tests: a storage folder filled with real
//! MP4s by ffmpeg, served on a pseudo-terminal behind a stable link path,
//! stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use evsync_recorder_sim::device::Device;
use evsync_recorder_sim::faults::Faults;
use evsync_recorder_sim::generate::{self, Plan};
use evsync_recorder_sim::serve::{Background, Ended, Options};
use evsync_recorder_sim::storage::Storage;

/// Fails with the fix when ffmpeg is missing (scripts/setup installs it).
pub fn require_ffmpeg() -> anyhow::Result<()> {
    generate::require_ffmpeg()
}

/// Makes a recorder `serial` in `dir` holding `count` recordings, its clock
/// `clock_offset_secs` off true time.
pub fn make_recorder(
    dir: &Path,
    serial: &str,
    count: u32,
    clock_offset_secs: i64,
    hostile_names: bool,
) -> anyhow::Result<PathBuf> {
    let storage_dir = dir.join(serial);
    let mut storage = Storage::open(&storage_dir, serial)?;
    storage.manifest.clock_offset_ms = clock_offset_secs * 1000;
    storage.save()?;
    let device = Device::new(storage, Faults::default(), 512);
    let now = device.clock();
    let mut storage = device.storage;
    let plan = Plan {
        count,
        seconds: 1,
        size: "160x120".into(),
        hostile_names,
        important_every: 0,
    };
    generate::fill(&mut storage, &plan, now)?;
    Ok(storage_dir)
}

/// Duration of a media file as ffprobe reads its container, milliseconds.
pub fn ffprobe_duration_ms(path: &Path) -> anyhow::Result<u64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .context("running ffprobe")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let secs: f64 = text
        .trim()
        .parse()
        .with_context(|| format!("ffprobe printed {text:?} for {}", path.display()))?;
    Ok((secs * 1000.0).round() as u64)
}

/// A recorder serving on a pseudo-terminal in a thread of this process.
pub struct Served {
    line: Background,
    /// The stable port path (a symlink to the current pty).
    pub link: PathBuf,
    /// The storage folder.
    pub storage: PathBuf,
}

impl Served {
    /// Serves the recorder in `storage` behind `link` with `faults`.
    pub fn start(storage: &Path, link: &Path, faults: Faults) -> anyhow::Result<Self> {
        let manifest = Storage::peek(storage)?;
        let opts = Options {
            storage: storage.to_owned(),
            serial: manifest.zfy.serial,
            device: None,
            link: Some(link.to_owned()),
            max_chunk: 16 * 1024,
            faults,
        };
        Ok(Self {
            line: Background::start(opts, Duration::from_secs(5))?,
            link: link.to_owned(),
            storage: storage.to_owned(),
        })
    }

    /// Files left on the recorder.
    pub fn files_left(&self) -> anyhow::Result<usize> {
        Ok(Storage::peek(&self.storage)?.files.len())
    }

    /// Stops it; returns how it ended.
    pub fn stop(self) -> anyhow::Result<Ended> {
        self.line.stop()
    }
}

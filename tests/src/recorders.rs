//! Simulated recorders for dock tests: a storage folder filled with real
//! MP4s by ffmpeg, served on a pseudo-terminal behind a stable link path,
//! stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use evsync_agent::config::{AgentConfig, SlotSection};
use evsync_protocol::signing::PublicKey;
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
    record(&storage_dir, count, hostile_names)?;
    Ok(storage_dir)
}

/// `count` recordings (1 s, 160×120) onto the recorder in `storage_dir`,
/// dated by its own clock.
fn record(storage_dir: &Path, count: u32, hostile_names: bool) -> anyhow::Result<Vec<u32>> {
    let manifest = Storage::peek(storage_dir)?;
    let storage = Storage::open(storage_dir, &manifest.zfy.serial)?;
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
    generate::fill(&mut storage, &plan, now)
}

/// Records `count` more recordings on the (not served) recorder in
/// `storage_dir`, numbered on from its last index. Returns their indexes.
pub fn record_more(storage_dir: &Path, count: u32) -> anyhow::Result<Vec<u32>> {
    record(storage_dir, count, false)
}

/// A dock agent's configuration for `slots`, quick to notice and to give up
/// on a silent recorder (300 ms per attempt, 3 attempts, polling every 100 ms).
pub fn dock_config(
    dir: &Path,
    mqtt_url: &str,
    hub_key: &PublicKey,
    slots: &[&Served],
) -> AgentConfig {
    let mut cfg = crate::agent_config(dir, &crate::unique("dock"), mqtt_url, hub_key);
    cfg.role = "dock".into();
    cfg.dock.slots = slots
        .iter()
        .map(|s| SlotSection {
            port: s.link.clone(),
            baud: 115_200,
            mount: None,
        })
        .collect();
    cfg.dock.poll_ms = 100;
    cfg.dock.request_timeout_ms = 300;
    cfg.dock.attempts = 3;
    cfg
}

/// Deletes recordings from the (not served) recorder in `storage_dir`
/// without any dock seeing them: evidence lost between dockings.
pub fn lose_files(storage_dir: &Path, indexes: &[u32]) -> anyhow::Result<()> {
    let manifest = Storage::peek(storage_dir)?;
    let mut storage = Storage::open(storage_dir, &manifest.zfy.serial)?;
    for &i in indexes {
        storage.delete(i)?;
    }
    Ok(())
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
        Self::start_with_mount(storage, link, None, faults)
    }

    /// Serves the recorder in `storage` behind `link` with `faults`, its
    /// mass-storage volume (shown on `SetMSDC`) at `mount`.
    pub fn start_with_mount(
        storage: &Path,
        link: &Path,
        mount: Option<&Path>,
        faults: Faults,
    ) -> anyhow::Result<Self> {
        let manifest = Storage::peek(storage)?;
        let opts = Options {
            storage: storage.to_owned(),
            serial: manifest.zfy.serial,
            device: None,
            link: Some(link.to_owned()),
            mount: mount.map(Path::to_owned),
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

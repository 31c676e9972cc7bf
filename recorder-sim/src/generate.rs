//! Fills a recorder with real MP4 recordings, made by ffmpeg (Debian's
//! package, installed by `scripts/setup`), with sequential indexes and the
//! names and start times a recorder gives them — by the recorder's own
//! clock, offset included.

use std::path::Path;
use std::process::Command;

use anyhow::Context as _;
use chrono::{Duration as ChronoDuration, NaiveDateTime};

use crate::storage::Storage;

/// Names a broken or hostile recorder might report.
pub const HOSTILE_NAMES: &[&str] = &[
    "../../../../etc/cron.d/evil.MP4",
    "/var/lib/evsync/agent.key.MP4",
    "bell\u{7}new\nline\u{1b}[31m.MP4",
    "..",
    "",
    "C:\\Windows\\win.ini.MP4",
];

/// What to generate.
#[derive(Debug, Clone, clap::Args)]
pub struct Plan {
    /// How many recordings.
    #[arg(long, default_value_t = 10)]
    pub count: u32,
    /// Length of the shortest recording, seconds (lengths vary from there).
    #[arg(long, default_value_t = 2)]
    pub seconds: u32,
    /// Frame size.
    #[arg(long, default_value = "320x240")]
    pub size: String,
    /// Give some recordings hostile names (path tricks, control characters, a 255-byte name).
    #[arg(long)]
    pub hostile_names: bool,
    /// Mark every Nth recording important (0: none).
    #[arg(long, default_value_t = 0)]
    pub important_every: u32,
}

/// Whether ffmpeg can be run.
pub fn ffmpeg_available() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Fails, naming the fix, when ffmpeg cannot be run.
pub fn require_ffmpeg() -> anyhow::Result<()> {
    anyhow::ensure!(
        ffmpeg_available(),
        "ffmpeg not found: run scripts/setup, which installs Debian's ffmpeg"
    );
    Ok(())
}

/// Makes one MP4 of `seconds` at `path`, its header saying it started at `start` (UTC).
pub fn make_mp4(
    path: &Path,
    seconds: f64,
    size: &str,
    start: NaiveDateTime,
    tone: u32,
) -> anyhow::Result<()> {
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("testsrc2=size={size}:rate=15"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency={tone}:sample_rate=16000"))
        .args(["-t", &format!("{seconds:.3}")])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-b:a", "32k", "-metadata"])
        .arg(format!(
            "creation_time={}",
            start.format("%Y-%m-%dT%H:%M:%SZ")
        ))
        .arg(path)
        .output()
        .context("running ffmpeg: not installed? scripts/setup installs Debian's ffmpeg")?;
    anyhow::ensure!(
        out.status.success(),
        "ffmpeg failed making {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Records `plan.count` recordings onto the recorder, the last ending about
/// now by its clock. Returns their indexes.
pub fn fill(
    storage: &mut Storage,
    plan: &Plan,
    clock_now: NaiveDateTime,
) -> anyhow::Result<Vec<u32>> {
    let tmp = tempfile::tempdir().context("making a scratch folder for ffmpeg")?;
    let utc_offset = ChronoDuration::minutes(i64::from(storage.manifest.utc_offset_min));
    let serial = storage.manifest.zfy.serial.clone();
    let mut indexes = Vec::new();
    let mut start = clock_now - ChronoDuration::minutes(5 * i64::from(plan.count));
    for i in 0..plan.count {
        let seconds = f64::from(plan.seconds) + f64::from(i % 4) * 0.5;
        let file = tmp.path().join(format!("{i}.mp4"));
        // The header holds UTC by the recorder's clock.
        make_mp4(
            &file,
            seconds,
            &plan.size,
            start - utc_offset,
            300 + 40 * (i % 10),
        )?;
        let index = storage.manifest.next_index;
        let name = if plan.hostile_names && i % 2 == 1 {
            let pick = (i / 2) as usize;
            if pick % (HOSTILE_NAMES.len() + 1) == HOSTILE_NAMES.len() {
                format!("{}.MP4", "L".repeat(251))
            } else {
                HOSTILE_NAMES[pick % (HOSTILE_NAMES.len() + 1)].to_owned()
            }
        } else {
            format!("{serial}_{}_{index:04}.MP4", start.format("%Y%m%d%H%M%S"))
        };
        let important = plan.important_every > 0 && (i + 1) % plan.important_every == 0;
        indexes.push(storage.add(&file, &name, start, important)?);
        std::fs::remove_file(&file).ok();
        start += ChronoDuration::minutes(5);
    }
    Ok(indexes)
}

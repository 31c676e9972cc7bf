//! A GPS receiver for field-device tests: socat joins two pseudo-terminals,
//! the port the agent's GPS reader opens and a feeder side the test writes
//! NMEA 0183 fixtures into (those of `agent/tests/fixtures/nmea/`). Stopped
//! when dropped.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::Proc;

/// The NMEA fixture `name` (e.g. `mediatek_drive_dgps.nmea`).
pub fn nmea_fixture(name: &str) -> anyhow::Result<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../agent/tests/fixtures/nmea")
        .join(name);
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// Whether socat is installed (`scripts/setup` installs it).
pub fn socat_available() -> bool {
    Command::new("socat")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A receiver on the pseudo-terminal `port`.
pub struct GpsReceiver {
    feeder_path: PathBuf,
    /// Kept open once opened: closing it would end socat.
    feeder: Option<std::fs::File>,
    socat: Proc,
}

impl GpsReceiver {
    /// Plugs a receiver into `port` (a path that socat links to its
    /// pseudo-terminal). The feeder side appears only once the reader has
    /// opened the port (`wait-slave`), so nothing sent is lost.
    pub fn plug_in(port: &Path) -> anyhow::Result<Self> {
        let feeder_path = port.with_extension("feeder");
        let child = Command::new("socat")
            .arg(format!(
                "pty,rawer,echo=0,wait-slave,link={}",
                port.display()
            ))
            .arg(format!("pty,rawer,echo=0,link={}", feeder_path.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting socat (scripts/setup installs it)")?;
        Ok(Self {
            feeder_path,
            feeder: None,
            socat: Proc::adopt(child, "socat"),
        })
    }

    /// Sends `bytes` as the receiver, waiting up to `within` for the reader
    /// to open the port first.
    pub async fn send(&mut self, bytes: Vec<u8>, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        while !self.feeder_path.exists() {
            anyhow::ensure!(
                self.socat.running(),
                "socat ended before the GPS port was opened"
            );
            anyhow::ensure!(
                Instant::now() < deadline,
                "the GPS reader did not open {} within {within:?}",
                self.feeder_path.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let file = match self.feeder.take() {
            Some(f) => f,
            None => std::fs::OpenOptions::new()
                .write(true)
                .open(&self.feeder_path)
                .with_context(|| format!("opening {}", self.feeder_path.display()))?,
        };
        let file = tokio::task::spawn_blocking(move || -> anyhow::Result<std::fs::File> {
            let mut file = file;
            file.write_all(&bytes)?;
            file.flush()?;
            Ok(file)
        })
        .await??;
        self.feeder = Some(file);
        Ok(())
    }

    /// Unplugs the receiver: socat is killed and reaped.
    pub fn unplug(mut self) {
        self.feeder = None;
        self.socat.kill9();
    }
}

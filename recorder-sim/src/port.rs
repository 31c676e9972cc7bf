//! The recorder's end of the serial line: a new pseudo-terminal (the dock
//! opens its other end, exactly as it opens a USB serial port), or an
//! existing serial device.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use nix::sys::termios::{self, SetArg};

/// An open line.
#[derive(Debug)]
pub struct Port {
    /// Where the recorder reads and writes.
    pub io: File,
    /// The device path the dock opens.
    pub path: PathBuf,
    /// The pty's other end, held so the line stays up while no dock has it open.
    _slave: Option<File>,
    link: Option<PathBuf>,
}

impl Port {
    /// A new pseudo-terminal in raw mode; `link`, if given, is made a symlink to it.
    pub fn pty(link: Option<&Path>) -> anyhow::Result<Self> {
        let pty = nix::pty::openpty(None, None).context("opening a pseudo-terminal")?;
        let mut t = termios::tcgetattr(&pty.slave).context("reading the pty's settings")?;
        termios::cfmakeraw(&mut t);
        termios::tcsetattr(&pty.slave, SetArg::TCSANOW, &t).context("setting the pty raw")?;
        let slave = File::from(pty.slave);
        let path = fs::read_link(format!("/proc/self/fd/{}", slave.as_raw_fd()))
            .context("finding the pty's path")?;
        if let Some(link) = link {
            let tmp = link.with_extension("linking");
            let _ = fs::remove_file(&tmp);
            std::os::unix::fs::symlink(&path, &tmp)
                .with_context(|| format!("linking {} to {}", tmp.display(), path.display()))?;
            fs::rename(&tmp, link).with_context(|| format!("replacing {}", link.display()))?;
        }
        Ok(Self {
            io: File::from(pty.master),
            path,
            _slave: Some(slave),
            link: link.map(Path::to_owned),
        })
    }

    /// An existing serial device (a real port, or a pty someone else made).
    pub fn device(path: &Path) -> anyhow::Result<Self> {
        let io = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening the serial port {}", path.display()))?;
        if let Ok(mut t) = termios::tcgetattr(&io) {
            termios::cfmakeraw(&mut t);
            termios::tcsetattr(&io, SetArg::TCSANOW, &t)
                .with_context(|| format!("setting {} raw", path.display()))?;
        }
        Ok(Self {
            io,
            path: path.to_owned(),
            _slave: None,
            link: None,
        })
    }

    /// Pulls the plug: the link path disappears and the line closes.
    pub fn unplug(self) {
        if let Some(link) = &self.link {
            let _ = fs::remove_file(link);
        }
    }
}

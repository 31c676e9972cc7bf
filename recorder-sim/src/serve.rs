//! The recorder's main loop: read the line, answer requests, inject faults,
//! and pull (and put back) the plug when told to; [`Background`] runs it on
//! a thread of the caller's process (tests, the hub's demo).

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use evsync_recorder_protocol::frame::Decoder;
use evsync_recorder_protocol::message::{Answer, Response};
use evsync_recorder_protocol::session::{Incoming, Responder};
use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::device::Device;
use crate::faults::{Faults, Line};
use crate::port::Port;
use crate::storage::Storage;

/// Where and how the recorder runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Storage folder.
    pub storage: PathBuf,
    /// Product serial for a new storage folder.
    pub serial: String,
    /// Serve on this existing serial device instead of a new pty.
    pub device: Option<PathBuf>,
    /// Symlink kept pointing at the current pty.
    pub link: Option<PathBuf>,
    /// Largest chunk served.
    pub max_chunk: u32,
    /// Folder standing for the recorder's USB mass-storage volume, filled
    /// while mass storage is on (`SetMSDC`); none: no volume.
    pub mount: Option<PathBuf>,
    /// Faults to inject.
    pub faults: Faults,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// `stop` was set.
    Stopped,
    /// The unplug fault fired and no replug was asked for.
    Unplugged,
}

/// Runs the recorder until `stop` is set (or it is unplugged for good).
/// `on_line` is told the device path each time a line comes up.
pub fn run(
    opts: &Options,
    stop: &AtomicBool,
    mut on_line: impl FnMut(&std::path::Path),
) -> anyhow::Result<Ended> {
    let storage = Storage::open(&opts.storage, &opts.serial)?;
    let mut device = Device::new(storage, opts.faults.clone(), opts.max_chunk);
    if let Some(dir) = &opts.mount {
        device = device.with_mount(dir)?;
    }
    let mut line = Line::new(&opts.faults);
    let mut unplug_at = opts.faults.unplug_after_bytes;
    let mut sent_file_bytes = 0u64;
    let mut requests = 0u64;
    loop {
        let mut port = match &opts.device {
            Some(path) => Port::device(path)?,
            None => Port::pty(opts.link.as_deref())?,
        };
        // Non-blocking, so that a dock that stops reading cannot wedge the
        // recorder in a write it would never return from (nor a stop).
        nix::fcntl::fcntl(
            &port.io,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .context("making the line non-blocking")?;
        on_line(&port.path);
        let mut decoder = Decoder::new();
        let mut responder = Responder::new();
        let mut buf = vec![0u8; 64 * 1024];
        'line: loop {
            if stop.load(Ordering::Relaxed) {
                device.unmount();
                port.unplug();
                return Ok(Ended::Stopped);
            }
            let mut fds = [PollFd::new(port.io.as_fd(), PollFlags::POLLIN)];
            let ready =
                nix::poll::poll(&mut fds, PollTimeout::from(100u16)).context("polling the line")?;
            if ready == 0 {
                continue;
            }
            let n = match port.io.read(&mut buf) {
                Ok(0) => {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                Ok(n) => n,
                // EIO on a pty master: nobody holds the other end right now.
                Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e).context("reading the line"),
            };
            decoder.push(&buf[..n]);
            while let Some(decoded) = decoder.decode() {
                let reply = match responder.on_decoded(decoded) {
                    Incoming::Ignore => continue,
                    Incoming::Reply(bytes) => bytes,
                    Incoming::Request { id, request } => {
                        requests += 1;
                        if let Some(pause) = opts.faults.stall_before(requests) {
                            tracing::warn!(?pause, "fault: stalling");
                            std::thread::sleep(pause);
                        }
                        if matches!(
                            request,
                            evsync_recorder_protocol::message::Request::Hello { .. }
                        ) {
                            device.reset_session();
                        }
                        let answer = device.handle(&request);
                        if let Answer::Ok(Response::Chunk { data, .. }) = &answer {
                            sent_file_bytes += data.len() as u64;
                        }
                        match responder.answer(request.code(), id, &answer) {
                            Some(bytes) => bytes,
                            None => continue,
                        }
                    }
                };
                if unplug_at.is_some_and(|at| sent_file_bytes >= at) {
                    tracing::warn!(sent_file_bytes, "fault: unplugged mid-transfer");
                    unplug_at = None;
                    break 'line;
                }
                if !send(&mut port.io, &line.transmit(reply), stop)? {
                    device.unmount();
                    port.unplug();
                    return Ok(Ended::Stopped);
                }
            }
        }
        device.unmount();
        port.unplug();
        match opts.faults.replug_after_ms {
            Some(ms) => std::thread::sleep(Duration::from_millis(ms)),
            None => return Ok(Ended::Unplugged),
        }
    }
}

/// Writes all of `bytes`, waiting for room on the line; `false` if `stop`
/// was set before they were all written.
fn send(io: &mut std::fs::File, mut bytes: &[u8], stop: &AtomicBool) -> anyhow::Result<bool> {
    while !bytes.is_empty() {
        if stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        match io.write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) =>
            {
                let mut fds = [PollFd::new(io.as_fd(), PollFlags::POLLOUT)];
                nix::poll::poll(&mut fds, PollTimeout::from(100u16)).context("polling the line")?;
            }
            Err(e) => return Err(e).context("writing the line"),
        }
    }
    Ok(true)
}

/// A recorder served by [`run`] on a thread of this process. [`Background::stop`]
/// (or dropping it) stops the line, joins the thread and removes the link.
#[derive(Debug)]
pub struct Background {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<Ended>>>,
    link: Option<PathBuf>,
}

impl Background {
    /// Starts serving `opts` on a new thread and waits up to `wait` for its
    /// line to come up (for a pty, its link to exist). A recorder that fails
    /// to start returns its error.
    pub fn start(opts: Options, wait: Duration) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (up_tx, up_rx) = mpsc::channel();
        let flag = stop.clone();
        let link = opts.link.clone();
        let what = format!("recorder {}", opts.serial);
        let thread = std::thread::Builder::new()
            .name(format!("recorder-{}", opts.serial))
            .spawn(move || {
                run(&opts, &flag, |path| {
                    let _ = up_tx.send(path.to_owned());
                })
            })
            .with_context(|| format!("starting a thread for {what}"))?;
        let mut me = Self {
            stop,
            thread: Some(thread),
            link,
        };
        match up_rx.recv_timeout(wait) {
            Ok(_) => Ok(me),
            // The sender is gone: the thread ended before its line came up.
            Err(mpsc::RecvTimeoutError::Disconnected) => match me.join() {
                Err(e) => Err(e.context(format!("{what} did not start"))),
                Ok(ended) => anyhow::bail!("{what} ended ({ended:?}) before its line came up"),
            },
            Err(mpsc::RecvTimeoutError::Timeout) => {
                anyhow::bail!("{what}: no line after {wait:?}")
            }
        }
    }

    /// Whether the recorder thread is still serving.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the recorder; returns how it ended (or the error it ended with).
    pub fn stop(mut self) -> anyhow::Result<Ended> {
        self.join()
    }

    fn join(&mut self) -> anyhow::Result<Ended> {
        self.stop.store(true, Ordering::Relaxed);
        let ended = match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("the recorder thread panicked"))?,
            None => Ok(Ended::Stopped),
        };
        // A line that ended with an error did not unplug; its link would dangle.
        if let Some(link) = self.link.take() {
            if link.symlink_metadata().is_ok() {
                let _ = std::fs::remove_file(&link);
            }
        }
        ended
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}

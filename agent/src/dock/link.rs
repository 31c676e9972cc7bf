//! The dock's end of a recorder's serial line: the async shell around
//! [`Requester`], which owns ids, timeouts and retries.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use evsync_recorder_protocol::frame::Decoder;
use evsync_recorder_protocol::message::{Answer, Request, Response, Status};
use evsync_recorder_protocol::session::{Requester, Step};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_serial::SerialPortBuilderExt;

/// A refusal from the recorder, or a failure of the line.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The recorder answered with an error status.
    #[error("recorder refused command 0x{code:02x}: {status}: {reason}", status = status.as_str())]
    Refused {
        /// Command code.
        code: u8,
        /// Status.
        status: Status,
        /// Its reason.
        reason: String,
    },
    /// The line is gone (unplugged) or unusable.
    #[error("serial line {port}: {detail}")]
    Line {
        /// Port path.
        port: String,
        /// What happened.
        detail: String,
    },
    /// No usable answer after the retries.
    #[error("serial line {port}: {source}")]
    Exchange {
        /// Port path.
        port: String,
        /// Why.
        source: evsync_recorder_protocol::session::ExchangeError,
    },
}

impl LinkError {
    /// The recorder's status, if it refused.
    pub fn status(&self) -> Option<Status> {
        match self {
            LinkError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// An open line to one recorder.
pub struct RecorderLink {
    port: String,
    io: tokio_serial::SerialStream,
    decoder: Decoder,
    requester: Requester,
    buf: Vec<u8>,
    /// The recorder's mass-storage volume on this docking, if its slot has
    /// a mount: the data channel beside this control channel.
    pub volume: Option<super::mount::Volume>,
}

impl RecorderLink {
    /// Opens `port` at `baud`; each request waits `timeout` per attempt, `attempts` times.
    pub fn open(port: &Path, baud: u32, timeout: Duration, attempts: u32) -> anyhow::Result<Self> {
        let io = tokio_serial::new(port.to_string_lossy(), baud)
            .open_native_async()
            .with_context(|| format!("opening the serial port {}", port.display()))?;
        Ok(Self {
            port: port.display().to_string(),
            io,
            decoder: Decoder::new(),
            requester: Requester::new(timeout, attempts),
            buf: vec![0; 64 * 1024],
            volume: None,
        })
    }

    /// Requests sent again because of timeouts or damage, so far.
    pub fn retries(&self) -> u64 {
        self.requester.retries()
    }

    /// Bytes skipped and frames found damaged on this line so far.
    pub fn damage(&self) -> (u64, u64) {
        let s = self.decoder.stats();
        (s.skipped, s.damaged)
    }

    fn line_error(&self, detail: impl std::fmt::Display) -> LinkError {
        LinkError::Line {
            port: self.port.clone(),
            detail: detail.to_string(),
        }
    }

    /// Sends `req` and waits for its answer, retrying as configured.
    pub async fn call(&mut self, req: Request) -> Result<Response, LinkError> {
        let code = req.code();
        let bytes = self
            .requester
            .start(&req, Instant::now())
            .map_err(|source| LinkError::Exchange {
                port: self.port.clone(),
                source,
            })?;
        self.write(&bytes).await?;
        loop {
            let deadline = self.requester.deadline().unwrap_or_else(Instant::now);
            let read = tokio::time::timeout_at(deadline.into(), self.io.read(&mut self.buf)).await;
            let mut steps = Vec::new();
            match read {
                Err(_) => steps.push(self.requester.on_timeout(Instant::now())),
                Ok(Ok(0)) => return Err(self.line_error("closed (recorder unplugged?)")),
                Ok(Ok(n)) => {
                    self.decoder.push(&self.buf[..n]);
                    while let Some(d) = self.decoder.decode() {
                        steps.push(self.requester.on_decoded(d, Instant::now()));
                    }
                }
                Ok(Err(e)) => {
                    return Err(self.line_error(format!("read failed: {e} (recorder unplugged?)")))
                }
            }
            for step in steps {
                match step {
                    Step::Wait => {}
                    Step::Send(bytes) => {
                        tracing::debug!(port = self.port, code, "resending a request");
                        self.write(&bytes).await?;
                    }
                    Step::Answered(Answer::Ok(resp)) => return Ok(resp),
                    Step::Answered(Answer::Err { status, reason }) => {
                        return Err(LinkError::Refused {
                            code,
                            status,
                            reason,
                        })
                    }
                    Step::Failed(source) => {
                        return Err(LinkError::Exchange {
                            port: self.port.clone(),
                            source,
                        })
                    }
                }
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        self.io
            .write_all(bytes)
            .await
            .map_err(|e| self.line_error(format!("write failed: {e} (recorder unplugged?)")))
    }
}

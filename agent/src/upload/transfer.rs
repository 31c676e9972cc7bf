//! One upload attempt, on a blocking thread: ask the hub how many bytes it
//! durably holds (`HEAD`), then stream the rest of the held copy from disk
//! (`PATCH` with `Upload-Offset`), through the shared rate cap, counting
//! progress, stopping when told to. Memory stays at a few buffers whatever
//! the file size.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::buffer::{HeldGrant, MediaUpload};

use super::progress::{Progress, Tracker};
use super::throttle::Throttle;

/// Largest read from the copy at once.
const READ_CHUNK: usize = 256 * 1024;
/// Slowest rate an upload is allowed before it counts as stalled (bytes/s).
const MIN_RATE: u64 = 256 * 1024;

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The hub holds the verified recording (its media receipt follows over MQTT).
    Stored,
    /// Not finished; try again (the offset moved, or the body was cut short).
    Retry(String),
    /// The whole file arrived but did not hash to the signed SHA-256; the hub discarded it.
    Mismatch(String),
    /// The grant was refused (expired, or not for this record): ask for a new one.
    GrantRefused(String),
    /// The hub failed this recording's media for good.
    Failed(String),
    /// The hub is busy or out of space: wait, then try again.
    Busy(String),
    /// The hub could not be reached or the connection broke.
    Network(String),
    /// The local copy is unusable.
    Local(String),
    /// The agent is stopping.
    Cancelled,
}

/// The copy as a request body: bounded reads, rate cap, progress, stop flag.
struct Feed<'a> {
    file: std::io::Take<File>,
    throttle: &'a Throttle,
    tracker: &'a Tracker,
    cancel: &'a AtomicBool,
    sent: &'a AtomicU64,
}

impl Read for Feed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("the agent is stopping"));
        }
        let len = buf.len().min(READ_CHUNK);
        let n = self.file.read(&mut buf[..len])?;
        self.throttle.take(n);
        self.tracker.add(n as u64);
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The HTTP client of uploads: statuses are answers, not errors; connects
/// time out; HTTPS trusts only the CAs in `ca_file` (none without it).
pub fn client(ca_file: Option<&std::path::Path>) -> anyhow::Result<ureq::Agent> {
    let tls = crate::tls::http_tls(ca_file).map_err(|e| e.context("upload.ca_file"))?;
    Ok(ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_response(Some(Duration::from_secs(120)))
        .user_agent(format!("evsync-agent/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent())
}

fn header_u64(r: &ureq::http::Response<ureq::Body>, name: &str) -> Option<u64> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn error_text(r: &mut ureq::http::Response<ureq::Body>) -> String {
    let status = r.status();
    let body = r
        .body_mut()
        .with_config()
        .limit(16 * 1024)
        .read_to_string()
        .unwrap_or_default();
    let detail = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or(body);
    format!("HTTP {status}: {detail}")
}

/// What a non-success answer means for the agent.
fn classify(r: &mut ureq::http::Response<ureq::Body>) -> Outcome {
    let status = r.status().as_u16();
    let text = error_text(r);
    match status {
        401 | 403 | 404 => Outcome::GrantRefused(text),
        409 | 408 | 413 => Outcome::Retry(text),
        410 => Outcome::Failed(text),
        422 => Outcome::Mismatch(text),
        503 | 507 => Outcome::Busy(text),
        _ => Outcome::Retry(text),
    }
}

fn stored(r: &ureq::http::Response<ureq::Body>) -> bool {
    r.headers()
        .get("upload-state")
        .is_some_and(|v| v.as_bytes() == b"stored")
}

/// Runs one attempt for `upload` under `grant`; returns how it ended and
/// the bytes of the file it sent.
pub fn run(
    http: &ureq::Agent,
    upload: &MediaUpload,
    grant: &HeldGrant,
    throttle: &Throttle,
    progress: &Progress,
    cancel: &AtomicBool,
) -> (Outcome, u64) {
    let sent = AtomicU64::new(0);
    let outcome = attempt(http, upload, grant, throttle, progress, cancel, &sent);
    (outcome, sent.load(Ordering::Relaxed))
}

fn attempt(
    http: &ureq::Agent,
    upload: &MediaUpload,
    grant: &HeldGrant,
    throttle: &Throttle,
    progress: &Progress,
    cancel: &AtomicBool,
    sent_bytes: &AtomicU64,
) -> Outcome {
    let auth = format!("Bearer {}", grant.token);
    let mut head = match http.head(&grant.url).header("Authorization", &auth).call() {
        Ok(r) => r,
        Err(e) => return Outcome::Network(format!("HEAD {}: {e}", grant.url)),
    };
    if !head.status().is_success() {
        return classify(&mut head);
    }
    if stored(&head) {
        return Outcome::Stored;
    }
    let Some(offset) = header_u64(&head, "upload-offset") else {
        return Outcome::Retry(format!("HEAD {} answered without Upload-Offset", grant.url));
    };
    if offset > upload.size {
        return Outcome::Retry(format!(
            "the hub holds {offset} bytes of a {}-byte recording",
            upload.size
        ));
    }
    let mut file = match File::open(&upload.path) {
        Ok(f) => f,
        Err(e) => return Outcome::Local(format!("opening {}: {e}", upload.path.display())),
    };
    match file.metadata() {
        Ok(m) if m.len() == upload.size => {}
        Ok(m) => {
            return Outcome::Local(format!(
                "the copy {} is {} bytes; its record says {}",
                upload.path.display(),
                m.len(),
                upload.size
            ))
        }
        Err(e) => return Outcome::Local(format!("{}: {e}", upload.path.display())),
    }
    if let Err(e) = file.seek(SeekFrom::Start(offset)) {
        return Outcome::Local(format!("seeking {}: {e}", upload.path.display()));
    }
    let remaining = upload.size - offset;
    let tracker = progress.start(upload.record_id, &upload.file_name, upload.size, offset);
    let mut feed = Feed {
        file: file.take(remaining),
        throttle,
        tracker: &tracker,
        cancel,
        sent: sent_bytes,
    };
    // A stalled connection is given up on: the whole body may take no longer
    // than at a slow but live rate, plus a minute.
    let budget = Duration::from_secs(60 + remaining / MIN_RATE);
    let sent = http
        .patch(&grant.url)
        .config()
        .timeout_send_body(Some(budget))
        .build()
        .header("Authorization", &auth)
        .header("Upload-Offset", offset.to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .header("Content-Length", remaining.to_string())
        .send(ureq::SendBody::from_reader(&mut feed));
    progress.finish(&upload.record_id);
    if cancel.load(Ordering::Relaxed) {
        return Outcome::Cancelled;
    }
    let mut answer = match sent {
        Ok(r) => r,
        Err(e) => return Outcome::Network(format!("PATCH {}: {e}", grant.url)),
    };
    if !answer.status().is_success() {
        return classify(&mut answer);
    }
    if stored(&answer) {
        Outcome::Stored
    } else {
        Outcome::Retry(format!(
            "the hub holds {} of {} bytes after the body",
            header_u64(&answer, "upload-offset").unwrap_or(0),
            upload.size
        ))
    }
}

//! Resumable uploads of recordings, modelled on the tus core protocol:
//!
//! - `HEAD /api/v1/uploads/{record}` answers `Upload-Offset`: how many bytes
//!   the hub durably holds (fsynced) for that record's content;
//! - `PATCH /api/v1/uploads/{record}` with `Upload-Offset: <that number>`
//!   appends the request body.
//!
//! Both need `Authorization: Bearer <grant token>`, a grant the hub signed for
//! exactly that record. Bytes go to the partial `<sha256>.part` in the
//! partials folder ([`super::partials`]; shared between hubs, each request
//! holding the partial's file lock while it writes) through a writer
//! thread while a hasher thread runs SHA-256 over the same chunks, so the
//! whole-file hash is ready when the last byte lands. A complete file is
//! checked against the signed SHA-256, moved into the blob store and only
//! then marked stored and receipted over MQTT. A mismatch discards the file
//! (the agent sends it again from zero); repeated mismatches fail the record
//! with an alert. A new request for the same content preempts an older one
//! still open in this hub (an agent that restarted, or lost its network,
//! retries); one open in another hub is waited for until it lets go.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path as FsPath;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use evsync_protocol::grant::GrantBody;
use http_body_util::BodyExt;
use ring::digest;
use serde_json::json;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};

use super::partials::{Held, Partials};
use super::{Blobs, Issuer};
use crate::api::AppState;
use crate::config::MediaConfig;
use crate::ingest::Outgoing;
use crate::metrics::Metrics;
use crate::store::{MediaRow, MediaState, Store};

/// `Upload-Offset`: bytes the hub durably holds (answer) or where the body starts (request).
pub const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
/// `Upload-Length`: the size of the whole recording.
pub const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
/// `Upload-State`: `partial`, `stored` or `failed`.
pub const UPLOAD_STATE: HeaderName = HeaderName::from_static("upload-state");

/// How long a request waits for an older request on the same content to let go.
const TAKEOVER_WAIT: Duration = Duration::from_secs(30);
/// Chunks queued to the writer and hasher threads.
const QUEUE: usize = 16;
/// Bytes gathered from the request body before they are handed to the
/// writer and hasher threads (few, large handoffs instead of one per frame;
/// the frames are shared, not copied).
const HANDOFF: usize = 1 << 20;

/// Frames of a request body, shared by the writer and the hasher.
type Batch = Arc<Vec<Bytes>>;
/// Bytes written between two background `fdatasync`s of a partial.
const SYNC_EVERY: usize = 64 << 20;

/// How often a request waiting for a partial another hub holds looks again.
const TAKEOVER_POLL: Duration = Duration::from_millis(100);

/// The SHA-256 of the first `len` bytes of a partial, carried between requests.
struct Hashed {
    /// Which file it was (device, inode): another hub may have removed the
    /// partial and begun it anew meanwhile.
    file: (u64, u64),
    len: u64,
    ctx: digest::Context,
}

/// One content's upload: at most one request writes it at a time.
#[derive(Default)]
struct Slot {
    preempt: Notify,
    hashed: tokio::sync::Mutex<Option<Hashed>>,
}

/// The upload service shared by the handlers.
pub struct Uploads {
    blobs: Blobs,
    partials: Partials,
    issuer: Arc<Issuer>,
    store: Arc<Mutex<Store>>,
    publisher: mpsc::UnboundedSender<Vec<Outgoing>>,
    metrics: Arc<Metrics>,
    cfg: MediaConfig,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    permits: Arc<Semaphore>,
}

/// How a request body ended.
enum Ended {
    /// The client sent it all.
    Complete,
    /// A newer request for the same content took over.
    Preempted,
    /// Nothing arrived for `idle_timeout_secs`.
    Idle,
    /// The connection broke.
    Broken(String),
    /// More bytes than the recording has.
    TooLong,
}

fn answer(
    status: StatusCode,
    offset: Option<u64>,
    row: Option<&MediaRow>,
    state: &str,
) -> Response {
    let mut r = status.into_response();
    let h = r.headers_mut();
    if let Some(o) = offset {
        h.insert(UPLOAD_OFFSET, HeaderValue::from(o));
    }
    if let Some(m) = row {
        h.insert(UPLOAD_LENGTH, HeaderValue::from(m.size));
    }
    if let Ok(v) = HeaderValue::from_str(state) {
        h.insert(UPLOAD_STATE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn refuse(status: StatusCode, offset: Option<u64>, message: String) -> Response {
    let mut r = (status, Json(json!({ "error": message }))).into_response();
    if let Some(o) = offset {
        r.headers_mut().insert(UPLOAD_OFFSET, HeaderValue::from(o));
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    }
    r
}

fn internal(e: anyhow::Error) -> Response {
    tracing::error!(error = %format!("{e:#}"), "upload failed at the hub");
    let storage_full = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull)
    });
    let status = if storage_full {
        StatusCode::INSUFFICIENT_STORAGE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    refuse(status, None, format!("{e:#}"))
}

/// Length of the partial at `path` after making it durable (0 if absent).
fn durable_len(path: &FsPath) -> anyhow::Result<u64> {
    match std::fs::OpenOptions::new().append(true).open(path) {
        Ok(f) => {
            f.sync_all()
                .with_context(|| format!("syncing {}", path.display()))?;
            Ok(f.metadata()?.len())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e).with_context(|| format!("opening {}", path.display())),
    }
}

/// SHA-256 state over the first `len` bytes of `path` (after a hub restart).
fn hash_prefix(path: &FsPath, len: u64) -> anyhow::Result<digest::Context> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    if len == 0 {
        return Ok(ctx);
    }
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut f = f.take(len);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(ctx)
}

/// Hands the gathered bytes to the writer and the hasher; false if either stopped.
async fn handoff(
    to_writer: &mpsc::Sender<Batch>,
    to_hasher: &mpsc::Sender<Batch>,
    pending: &mut Vec<Bytes>,
) -> bool {
    let batch: Batch = Arc::new(std::mem::take(pending));
    to_writer.send(batch.clone()).await.is_ok() && to_hasher.send(batch).await.is_ok()
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("blocking task")?
}

impl Uploads {
    /// The service; `store` is a connection of its own (it writes media states).
    pub fn new(
        blobs: Blobs,
        partials: Partials,
        issuer: Arc<Issuer>,
        store: Arc<Mutex<Store>>,
        publisher: mpsc::UnboundedSender<Vec<Outgoing>>,
        metrics: Arc<Metrics>,
        cfg: MediaConfig,
    ) -> Self {
        let permits = Arc::new(Semaphore::new(cfg.max_concurrent_uploads));
        Self {
            blobs,
            partials,
            issuer,
            store,
            publisher,
            metrics,
            cfg,
            slots: Mutex::new(HashMap::new()),
            permits,
        }
    }

    /// The blob store, for serving media.
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let store = self.store.clone();
        blocking(move || {
            let mut s = store
                .lock()
                .map_err(|_| anyhow::anyhow!("store lock poisoned"))?;
            f(&mut s)
        })
        .await
    }

    fn slot(&self, sha256: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(sha256.to_owned()).or_default().clone()
    }

    fn forget_slot(&self, sha256: &str) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.remove(sha256);
    }

    fn publish(&self, messages: Vec<Outgoing>) {
        if !messages.is_empty() && self.publisher.send(messages).is_err() {
            tracing::warn!("the publisher has stopped; media receipts are resent when agents ask");
        }
    }

    /// Checks the grant in `headers` against the record in the path.
    async fn authorize(&self, id: &str, headers: &HeaderMap) -> Result<MediaRow, Response> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                refuse(
                    StatusCode::UNAUTHORIZED,
                    None,
                    "missing Authorization: Bearer <grant token>: uploads need the grant the hub sends on evsync/v1/<device>/grants".into(),
                )
            })?;
        let grant = GrantBody::from_token(token, &self.issuer.public_key(), chrono::Utc::now())
            .map_err(|e| {
                refuse(
                    StatusCode::UNAUTHORIZED,
                    None,
                    format!("upload grant refused: {e}"),
                )
            })?;
        if grant.record_id.to_string() != id {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                None,
                format!(
                    "the grant is for record {}, not for record {id}",
                    grant.record_id
                ),
            ));
        }
        let lookup = id.to_owned();
        let row = self
            .with_store(move |s| s.media(&lookup))
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                refuse(
                    StatusCode::NOT_FOUND,
                    None,
                    format!("no media record {id} at this hub"),
                )
            })?;
        if row.agent_id != grant.agent_id || row.sha256 != grant.sha256 || row.size != grant.size {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                None,
                format!(
                    "record {id} was signed by {} for {} bytes with sha256 {}; this grant names {}, {} bytes, {}",
                    row.agent_id, row.size, row.sha256, grant.agent_id, grant.size, grant.sha256
                ),
            ));
        }
        Ok(row)
    }

    /// The answer for a record whose media is no longer awaited.
    fn settled(&self, row: &MediaRow) -> Response {
        // The agent asks because it has not seen the media receipt: send it again.
        if let Ok(m) = self.issuer.receipt(row) {
            self.publish(vec![m]);
        }
        match row.state {
            MediaState::Failed => refuse(
                StatusCode::GONE,
                None,
                format!(
                    "media of record {} failed: {}",
                    row.record_id,
                    row.detail.as_deref().unwrap_or("no detail")
                ),
            ),
            _ => answer(StatusCode::OK, Some(row.size), Some(row), "stored"),
        }
    }

    /// `HEAD`: how many bytes the hub durably holds for this record.
    async fn offset(&self, id: &str, headers: &HeaderMap) -> Response {
        let row = match self.authorize(id, headers).await {
            Ok(r) => r,
            Err(refused) => return refused,
        };
        if row.state != MediaState::Awaiting {
            return self.settled(&row);
        }
        let path = match self.partials.path(&row.sha256) {
            Ok(p) => p,
            Err(e) => return internal(e),
        };
        match blocking(move || durable_len(&path)).await {
            Ok(len) => answer(StatusCode::OK, Some(len), Some(&row), "partial"),
            Err(e) => internal(e),
        }
    }

    /// `PATCH`: appends the body at `Upload-Offset`.
    async fn append(&self, id: &str, headers: &HeaderMap, body: Body) -> Response {
        let row = match self.authorize(id, headers).await {
            Ok(r) => r,
            Err(refused) => return refused,
        };
        if row.state != MediaState::Awaiting {
            return self.settled(&row);
        }
        let Some(claimed) = headers
            .get(&UPLOAD_OFFSET)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        else {
            return refuse(
                StatusCode::BAD_REQUEST,
                None,
                "missing or invalid Upload-Offset: expected the offset HEAD answered".into(),
            );
        };
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                format!(
                    "the hub is receiving {} uploads already: retry shortly",
                    self.cfg.max_concurrent_uploads
                ),
            );
        };
        let slot = self.slot(&row.sha256);
        slot.preempt.notify_waiters();
        let deadline = tokio::time::Instant::now() + TAKEOVER_WAIT;
        let busy = || {
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "another upload of the same content is still finishing: retry shortly".into(),
            )
        };
        let Ok(mut hashed) = tokio::time::timeout_at(deadline, slot.hashed.lock()).await else {
            return busy();
        };
        // Another hub sharing the partials folder may be writing it.
        let held = loop {
            let partials = self.partials.clone();
            let sha = row.sha256.clone();
            match blocking(move || partials.try_take(&sha)).await {
                Ok(Some(held)) => break held,
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(TAKEOVER_POLL).await
                }
                Ok(None) => return busy(),
                Err(e) => return internal(e),
            }
        };
        match self
            .receive(
                &row,
                claimed,
                headers,
                body,
                &slot,
                &mut hashed,
                held,
                permit,
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                *hashed = None;
                internal(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn receive(
        &self,
        row: &MediaRow,
        claimed: u64,
        headers: &HeaderMap,
        body: Body,
        slot: &Slot,
        hashed: &mut Option<Hashed>,
        held: Held,
        _permit: OwnedSemaphorePermit,
    ) -> anyhow::Result<Response> {
        let sha = row.sha256.clone();
        // The request this one waited for may have finished the content.
        let id = row.record_id.clone();
        if let Some(now) = self.with_store(move |s| s.media(&id)).await? {
            if now.state != MediaState::Awaiting {
                return Ok(self.settled(&now));
            }
        }
        let path = held.path().to_path_buf();
        let held = Arc::new(held);
        let (offset, file_id) = blocking({
            let held = held.clone();
            move || Ok((held.durable_len()?, held.identity()?))
        })
        .await?;
        if claimed != offset {
            return Ok(refuse(
                StatusCode::CONFLICT,
                Some(offset),
                format!("Upload-Offset = {claimed}, but the hub holds {offset} bytes: continue from {offset}"),
            ));
        }
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(n) = declared {
            if offset.saturating_add(n) > row.size {
                return Ok(refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Some(offset),
                    format!(
                        "{n} bytes at offset {offset} would pass the recording's size of {} bytes",
                        row.size
                    ),
                ));
            }
        }
        let ctx = match hashed.take() {
            Some(h) if h.len == offset && h.file == file_id => h.ctx,
            _ => {
                let path = path.clone();
                blocking(move || hash_prefix(&path, offset)).await?
            }
        };
        self.metrics.uploads_active.inc();
        let file = held
            .file()
            .try_clone()
            .with_context(|| format!("opening {} again", path.display()))?;
        let received = self
            .stream(body, file, &path, offset, row.size - offset, ctx, slot)
            .await;
        self.metrics.uploads_active.dec();
        let (ended, written, ctx) = received?;
        self.metrics.media_bytes_received.inc_by(written);
        let len = offset + written;
        match ended {
            Ended::Complete if len == row.size => {
                let held = Arc::into_inner(held).context("the partial is held once")?;
                let outcome = self.finish(row, ctx, held).await;
                self.forget_slot(&sha);
                outcome
            }
            Ended::TooLong => {
                *hashed = Some(Hashed {
                    file: file_id,
                    len,
                    ctx,
                });
                Ok(refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Some(len),
                    format!("the body ran past the recording's size of {} bytes; the excess was dropped", row.size),
                ))
            }
            ended => {
                *hashed = Some(Hashed {
                    file: file_id,
                    len,
                    ctx,
                });
                if let Ended::Broken(why) = &ended {
                    tracing::info!(
                        record = row.record_id,
                        held = len,
                        why,
                        "upload interrupted; it resumes from what the hub holds"
                    );
                }
                let status = match ended {
                    Ended::Preempted => StatusCode::CONFLICT,
                    Ended::Idle => StatusCode::REQUEST_TIMEOUT,
                    _ => StatusCode::NO_CONTENT,
                };
                Ok(answer(status, Some(len), Some(row), "partial"))
            }
        }
    }

    /// Streams `body` into the partial `file` at `path` (holding `offset`
    /// bytes, locked by the caller), taking at most `room` bytes. Returns
    /// how it ended, the bytes written (all fsynced) and the hash state over
    /// the whole partial.
    #[allow(clippy::too_many_arguments)]
    async fn stream(
        &self,
        mut body: Body,
        file: File,
        path: &FsPath,
        offset: u64,
        room: u64,
        ctx: digest::Context,
        slot: &Slot,
    ) -> anyhow::Result<(Ended, u64, digest::Context)> {
        anyhow::ensure!(
            file.metadata()?.len() == offset,
            "{} changed length under the upload lock",
            path.display()
        );
        let (to_writer, mut writer_rx) = mpsc::channel::<Batch>(QUEUE);
        let (to_hasher, mut hasher_rx) = mpsc::channel::<Batch>(QUEUE);
        let shown = path.to_path_buf();
        // Dirty pages are pushed to disk behind the writer by a syncer thread,
        // so the final fsync is short and the writer never waits on the disk
        // mid-upload. (Durability of what HEAD reports does not rest on this:
        // HEAD and the end of every PATCH fsync.)
        let syncing = file
            .try_clone()
            .with_context(|| format!("opening {} again", path.display()))?;
        let (sync_tx, sync_rx) = std::sync::mpsc::sync_channel::<()>(1);
        let syncer = std::thread::Builder::new()
            .name("upload-sync".into())
            .spawn(move || {
                while sync_rx.recv().is_ok() {
                    // A failure here shows again in the writer's final fsync.
                    let _ = syncing.sync_data();
                }
            })
            .context("starting the upload syncer")?;
        let writer = std::thread::Builder::new()
            .name("upload-write".into())
            .spawn(move || -> anyhow::Result<()> {
                let mut file = file;
                let mut unsynced = 0usize;
                while let Some(batch) = writer_rx.blocking_recv() {
                    for chunk in batch.iter() {
                        file.write_all(chunk)
                            .with_context(|| format!("writing {}", shown.display()))?;
                        unsynced += chunk.len();
                    }
                    if unsynced >= SYNC_EVERY {
                        // Skipped when the syncer is still busy with the last one.
                        let _ = sync_tx.try_send(());
                        unsynced = 0;
                    }
                }
                drop(sync_tx);
                let _ = syncer.join();
                file.sync_all()
                    .with_context(|| format!("syncing {}", shown.display()))
            })
            .context("starting the upload writer")?;
        let hasher = std::thread::Builder::new()
            .name("upload-hash".into())
            .spawn(move || {
                let mut ctx = ctx;
                while let Some(batch) = hasher_rx.blocking_recv() {
                    for chunk in batch.iter() {
                        ctx.update(chunk);
                    }
                }
                ctx
            })
            .context("starting the upload hasher")?;

        let idle = Duration::from_secs(self.cfg.idle_timeout_secs);
        let preempted = slot.preempt.notified();
        tokio::pin!(preempted);
        preempted.as_mut().enable();
        let mut written = 0u64;
        let mut pending: Vec<Bytes> = Vec::new();
        let mut pending_len = 0usize;
        let ended = loop {
            let frame = tokio::select! {
                _ = &mut preempted => break Ended::Preempted,
                f = tokio::time::timeout(idle, body.frame()) => f,
            };
            let data = match frame {
                Err(_) => break Ended::Idle,
                Ok(None) => break Ended::Complete,
                Ok(Some(Err(e))) => break Ended::Broken(e.to_string()),
                Ok(Some(Ok(frame))) => match frame.into_data() {
                    Ok(d) => d,
                    Err(_) => continue, // trailers carry nothing for us
                },
            };
            let arrived = data.len();
            let fits = (room - written).min(arrived as u64) as usize;
            if fits > 0 {
                pending.push(data.slice(..fits));
                pending_len += fits;
                written += fits as u64;
            }
            if pending_len >= HANDOFF {
                pending_len = 0;
                if !handoff(&to_writer, &to_hasher, &mut pending).await {
                    break Ended::Broken("the writer or hasher stopped".into());
                }
            }
            if fits < arrived {
                break Ended::TooLong;
            }
        };
        // What arrived before the end is kept, whatever the end was.
        if !pending.is_empty() && !handoff(&to_writer, &to_hasher, &mut pending).await {
            tracing::warn!("the upload writer or hasher stopped early");
        }
        drop((to_writer, to_hasher));
        let (wrote, ctx) = blocking(move || {
            let wrote = writer
                .join()
                .map_err(|_| anyhow::anyhow!("the upload writer panicked"))?;
            let ctx = hasher
                .join()
                .map_err(|_| anyhow::anyhow!("the upload hasher panicked"))?;
            Ok((wrote, ctx))
        })
        .await?;
        wrote?;
        Ok((ended, written, ctx))
    }

    /// The last byte is in: verify, store, receipt; or discard on a mismatch.
    /// The partial stays locked until it is stored or discarded.
    async fn finish(
        &self,
        row: &MediaRow,
        ctx: digest::Context,
        held: Held,
    ) -> anyhow::Result<Response> {
        let got = hex::encode(ctx.finish());
        let sha = row.sha256.clone();
        if got == sha {
            self.blobs.commit(&sha, held.path()).await?;
            drop(held);
            let size = row.size;
            let stored = self.with_store(move |s| s.blob_stored(&sha, size)).await?;
            self.metrics.media_stored.inc();
            tracing::info!(
                record = row.record_id,
                sha256 = row.sha256,
                size = row.size,
                records = stored.len(),
                "media verified and stored"
            );
            let receipts = stored
                .iter()
                .map(|m| self.issuer.receipt(m))
                .collect::<anyhow::Result<Vec<_>>>()?;
            self.publish(receipts);
            return Ok(answer(
                StatusCode::NO_CONTENT,
                Some(row.size),
                Some(row),
                "stored",
            ));
        }
        self.metrics.media_mismatches.inc();
        let path = held.path().display().to_string();
        blocking(move || held.remove())
            .await
            .with_context(|| format!("discarding the mismatched upload {path}"))?;
        let max = self.cfg.max_mismatches;
        let failed = {
            let got = got.clone();
            self.with_store(move |s| s.media_mismatch(&sha, &got, max))
                .await?
        };
        tracing::warn!(
            record = row.record_id,
            expected = row.sha256,
            got,
            "uploaded bytes do not match the signed hash; discarded"
        );
        if failed.is_empty() {
            return Ok(refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(0),
                format!(
                    "the uploaded bytes hash to {got}, not to the signed {}: discarded; upload again from offset 0",
                    row.sha256
                ),
            ));
        }
        let receipts = failed
            .iter()
            .map(|m| self.issuer.receipt(m))
            .collect::<anyhow::Result<Vec<_>>>()?;
        self.publish(receipts);
        Ok(refuse(
            StatusCode::GONE,
            None,
            format!(
                "the uploaded bytes hashed to {got}, not to the signed {}, {max} times: the record's media is failed and alerted",
                row.sha256
            ),
        ))
    }

    /// Deletes partial uploads nobody (in this hub or another sharing the
    /// folder) is writing that are older than the configured time or whose
    /// content is no longer awaited. Returns how many.
    pub fn sweep(&self) -> anyhow::Result<usize> {
        let awaited: std::collections::HashSet<String> = self
            .store
            .lock()
            .map_err(|_| anyhow::anyhow!("store lock poisoned"))?
            .awaited_hashes()?
            .into_iter()
            .collect();
        let ttl = Duration::from_secs(self.cfg.partial_ttl_secs);
        let mut removed = 0;
        for (sha, modified) in self.partials.list()? {
            let stale = modified.elapsed().is_ok_and(|age| age > ttl);
            if !stale && awaited.contains(&sha) {
                continue;
            }
            let slot = self.slot(&sha);
            // Busy: a request is writing it right now.
            let Ok(mut hashed) = slot.hashed.try_lock() else {
                continue;
            };
            *hashed = None;
            // Busy in another hub.
            let Some(held) = self.partials.try_take(&sha)? else {
                continue;
            };
            held.remove()?;
            removed += 1;
            drop(hashed);
            self.forget_slot(&sha);
            tracing::info!(sha256 = sha, stale, "abandoned partial upload removed");
        }
        Ok(removed)
    }

    /// Sweeps abandoned partials periodically until shutdown.
    pub async fn janitor(
        self: Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let every = Duration::from_secs((self.cfg.partial_ttl_secs / 2).clamp(1, 60));
        loop {
            tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                _ = tokio::time::sleep(every) => {}
            }
            let me = self.clone();
            if let Err(e) = blocking(move || me.sweep()).await {
                tracing::error!(error = %format!("{e:#}"), "sweeping partial uploads failed");
            }
        }
    }
}

/// `HEAD /api/v1/uploads/{id}`
pub async fn head(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    state.uploads().offset(&id, &headers).await
}

/// `PATCH /api/v1/uploads/{id}`
pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    state.uploads().append(&id, &headers, body).await
}

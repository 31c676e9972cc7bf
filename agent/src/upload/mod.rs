//! Uploads of recordings to the hub: the media data plane.
//!
//! The record of a recording (with its SHA-256) travels first, over MQTT;
//! once the hub has stored it, it grants an upload (or the agent asks for
//! one). This task keeps the grants, runs up to `upload.parallel` uploads at
//! once in the configured order (important files first, then oldest), under
//! one shared rate cap, and lets go of a held copy only when the hub's signed
//! media receipt for it arrives. Records never wait for media: they travel on
//! their own MQTT connection and are never rate-capped.

pub mod progress;
pub mod throttle;
pub mod transfer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use evsync_protocol::grant::{GrantBody, GrantRequest, MAX_REQUESTED};
use evsync_protocol::media_receipt::{MediaReceiptBody, MediaStatus};
use evsync_protocol::signing::PublicKey;
use evsync_protocol::topic::{topic, Channel};
use rumqttc::{AsyncClient, QoS};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::buffer::{with_buffer, Buffer, HeldGrant, MediaUpload};
use crate::config::AgentConfig;
use crate::uplink::Link;

use progress::Progress;
use throttle::Throttle;
use transfer::Outcome;

/// Hub messages for the uploader.
#[derive(Debug)]
pub enum Inbound {
    /// An `EVG1` grant from the grants topic.
    Grant(Vec<u8>),
    /// An `EVM1` media receipt from the receipts topic.
    MediaReceipt(Vec<u8>),
}

/// Counters of the uploader, reported in status messages.
#[derive(Debug, Default)]
pub struct UploadStats {
    /// Upload attempts started.
    pub attempts: AtomicU64,
    /// Grants received and kept.
    pub grants: AtomicU64,
    /// Recordings the hub receipted as stored (local copies removed).
    pub receipted: AtomicU64,
    /// Complete uploads the hub found not matching the signed hash.
    pub mismatches: AtomicU64,
    /// Recordings the hub failed for good (copies kept).
    pub failed: AtomicU64,
    /// Grants and media receipts that did not verify or were not for this agent.
    pub refused_messages: AtomicU64,
}

/// Backoff state of one recording.
struct Hold {
    until: Instant,
    failures: u32,
}

/// The upload task.
pub struct Uploader {
    cfg: AgentConfig,
    client: AsyncClient,
    buffer: Arc<Mutex<Buffer>>,
    hub_key: PublicKey,
    http: ureq::Agent,
    throttle: Arc<Throttle>,
    progress: Arc<Progress>,
    stats: Arc<UploadStats>,
    active: HashMap<Uuid, Arc<AtomicBool>>,
    jobs: JoinSet<(Uuid, Outcome, u64)>,
    holds: HashMap<Uuid, Hold>,
    last_request: Option<Instant>,
}

/// Delay before retrying a recording after its `failures`-th failure in a row.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << failures.min(7))).min(Duration::from_secs(30))
}

impl Uploader {
    /// Creates the task.
    pub fn new(
        cfg: AgentConfig,
        client: AsyncClient,
        buffer: Arc<Mutex<Buffer>>,
        progress: Arc<Progress>,
        stats: Arc<UploadStats>,
    ) -> anyhow::Result<Self> {
        let hub_key = cfg.hub_key()?;
        let throttle = Arc::new(Throttle::new(cfg.upload.max_bytes_per_sec));
        let http = transfer::client(cfg.upload.ca_file.as_deref())?;
        Ok(Self {
            cfg,
            client,
            buffer,
            hub_key,
            http,
            throttle,
            progress,
            stats,
            active: HashMap::new(),
            jobs: JoinSet::new(),
            holds: HashMap::new(),
            last_request: None,
        })
    }

    /// Counts and logs a refused grant or media receipt; nothing else happens.
    fn refused(&self, what: &str, why: &str) -> anyhow::Result<()> {
        self.stats.refused_messages.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(what, why, "message from the hub refused");
        Ok(())
    }

    async fn on_inbound(&mut self, msg: Inbound) -> anyhow::Result<()> {
        match msg {
            Inbound::Grant(payload) => {
                let (grant, env) = match GrantBody::open(&payload, &self.hub_key) {
                    Ok(g) => g,
                    Err(e) => return self.refused("grant", &e.to_string()),
                };
                if grant.agent_id != self.cfg.device_id {
                    return self.refused("grant", &format!("addressed to {}", grant.agent_id));
                }
                if !(grant.url.starts_with("http://") || grant.url.starts_with("https://")) {
                    return self.refused(
                        "grant",
                        &format!("upload URL {:?} is not http(s)", grant.url),
                    );
                }
                let held = HeldGrant {
                    token: GrantBody::token(&env),
                    url: grant.url.clone(),
                    expires_at: grant.expires_at,
                };
                let (id, sha) = (grant.record_id, grant.sha256.clone());
                if with_buffer(&self.buffer, move |b| b.set_grant(&id, &sha, &held)).await? {
                    self.stats.grants.fetch_add(1, Ordering::Relaxed);
                    self.holds.remove(&grant.record_id);
                }
            }
            Inbound::MediaReceipt(payload) => {
                let r = match MediaReceiptBody::open(&payload, &self.hub_key) {
                    Ok(r) => r,
                    Err(e) => return self.refused("media receipt", &e.to_string()),
                };
                if r.agent_id != self.cfg.device_id {
                    return self.refused("media receipt", &format!("addressed to {}", r.agent_id));
                }
                if let Some(cancel) = self.active.get(&r.record_id) {
                    cancel.store(true, Ordering::Relaxed);
                }
                let (id, sha) = (r.record_id, r.sha256.clone());
                match r.status {
                    MediaStatus::Stored => {
                        let released =
                            with_buffer(&self.buffer, move |b| b.media_receipted(&id, &sha))
                                .await?;
                        if let Some(path) = released {
                            // The hub holds it verified: the copy's job is done.
                            if let Err(e) = std::fs::remove_file(&path) {
                                tracing::warn!(path = %path.display(), error = %e, "could not remove a receipted copy");
                            }
                            self.stats.receipted.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(record = %r.record_id, sha256 = r.sha256, size = r.size, "recording receipted by the hub; local copy released");
                        }
                    }
                    MediaStatus::Failed => {
                        let reason = r.reason.clone().unwrap_or_else(|| "no reason given".into());
                        let shown = reason.clone();
                        if with_buffer(&self.buffer, move |b| b.media_failed(&id, &sha, &reason))
                            .await?
                        {
                            self.stats.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(record = %r.record_id, reason = shown, "the hub failed this recording; the copy is kept here");
                        }
                    }
                }
                self.holds.remove(&r.record_id);
            }
        }
        Ok(())
    }

    async fn on_done(&mut self, id: Uuid, outcome: Outcome, sent: u64) -> anyhow::Result<()> {
        self.active.remove(&id);
        if sent > 0 {
            // It moved: whatever stopped it, the next wait starts short again.
            self.holds.remove(&id);
        }
        let hold = |me: &mut Self, why: &str| {
            let h = me.holds.entry(id).or_insert(Hold {
                until: Instant::now(),
                failures: 0,
            });
            h.failures += 1;
            h.until = Instant::now() + backoff(h.failures);
            tracing::info!(record = %id, why, retry_in = ?backoff(h.failures), "upload will be retried");
        };
        match outcome {
            Outcome::Stored => {
                // The media receipt is on its way; if it got lost, asking for a
                // grant makes the hub send it again.
                self.holds.insert(
                    id,
                    Hold {
                        until: Instant::now()
                            + Duration::from_secs(self.cfg.upload.grant_retry_secs),
                        failures: 0,
                    },
                );
                with_buffer(&self.buffer, move |b| b.clear_grant(&id)).await?;
            }
            Outcome::Mismatch(why) => {
                self.stats.mismatches.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(record = %id, why, "the hub discarded the upload (hash mismatch); sending it again");
            }
            Outcome::GrantRefused(why) => {
                tracing::info!(record = %id, why, "grant refused; asking for a new one");
                // Forgotten before the next schedule, so the refused grant is not used again.
                with_buffer(&self.buffer, move |b| b.clear_grant(&id)).await?;
            }
            Outcome::Failed(why) => {
                tracing::error!(record = %id, why, "the hub refuses this recording");
                hold(self, &why);
            }
            Outcome::Retry(why) | Outcome::Busy(why) | Outcome::Network(why) => hold(self, &why),
            Outcome::Local(why) => {
                tracing::error!(record = %id, why, "the held copy cannot be uploaded");
                hold(self, &why);
            }
            Outcome::Cancelled => {}
        }
        Ok(())
    }

    /// Starts uploads that have grants, asks for the grants missing.
    async fn schedule(&mut self, link_up: bool) -> anyhow::Result<()> {
        let parallel = self.cfg.upload.parallel;
        if self.active.len() >= parallel && !link_up {
            return Ok(());
        }
        let due = with_buffer(&self.buffer, move |b| {
            b.uploads_due(MAX_REQUESTED.max(parallel * 4))
        })
        .await?;
        let now = Instant::now();
        let soon = chrono::Utc::now() + chrono::Duration::seconds(10);
        let mut ask = Vec::new();
        for u in due {
            if self.active.contains_key(&u.record_id)
                || self.holds.get(&u.record_id).is_some_and(|h| h.until > now)
            {
                continue;
            }
            match u.grant.clone() {
                Some(g) if g.expires_at > soon => {
                    if self.active.len() < parallel {
                        self.spawn(u, g);
                    }
                }
                _ => ask.push(u.record_id),
            }
        }
        let retry = Duration::from_secs(self.cfg.upload.grant_retry_secs);
        if link_up && !ask.is_empty() && self.last_request.is_none_or(|t| t.elapsed() >= retry) {
            ask.truncate(MAX_REQUESTED);
            let request = GrantRequest { v: 1, records: ask };
            self.client
                .publish(
                    topic(&self.cfg.device_id, Channel::Uploads),
                    QoS::AtLeastOnce,
                    false,
                    request.to_bytes(),
                )
                .await
                .context("asking for upload grants")?;
            self.last_request = Some(Instant::now());
        }
        Ok(())
    }

    fn spawn(&mut self, upload: MediaUpload, grant: HeldGrant) {
        let cancel = Arc::new(AtomicBool::new(false));
        self.active.insert(upload.record_id, cancel.clone());
        self.stats.attempts.fetch_add(1, Ordering::Relaxed);
        let (http, throttle, progress) = (
            self.http.clone(),
            self.throttle.clone(),
            self.progress.clone(),
        );
        self.jobs.spawn_blocking(move || {
            let (outcome, sent) =
                transfer::run(&http, &upload, &grant, &throttle, &progress, &cancel);
            (upload.record_id, outcome, sent)
        });
    }

    /// Runs until shutdown; uploads under way are stopped (they resume from
    /// what the hub holds on the next start).
    pub async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut link: watch::Receiver<Link>,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                Some(m) = inbound.recv() => self.on_inbound(m).await?,
                Some(done) = self.jobs.join_next(), if !self.jobs.is_empty() => {
                    let (id, outcome, sent) = done.context("an upload thread panicked")?;
                    self.on_done(id, outcome, sent).await?;
                }
                r = link.changed() => if r.is_err() { break },
                _ = tick.tick() => {}
            }
            let up = link.borrow().up;
            self.schedule(up).await?;
        }
        for cancel in self.active.values() {
            cancel.store(true, Ordering::Relaxed);
        }
        while self.jobs.join_next().await.is_some() {}
        Ok(())
    }
}

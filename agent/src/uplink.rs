//! Uplink: moves records from the buffer to the hub and applies receipts.
//!
//! One task polls rumqttc's event loop ([`poll`]) and only forwards: receipts
//! into a bounded channel (a full channel drops the receipt and counts it; the
//! record is simply resent later) and connection changes into a watch.
//! Another task ([`Sender`]) owns the send window: it publishes batches in
//! outbox order, and goes back to the oldest unreceipted record after every
//! reconnect, when a receipt is overdue, and periodically while refused
//! records remain. The hub deduplicates, so resending is always safe.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use evsync_protocol::announce::AnnounceBody;
use evsync_protocol::batch;
use evsync_protocol::envelope::Envelope;
use evsync_protocol::media_receipt;
use evsync_protocol::receipt::ReceiptBody;
use evsync_protocol::signing::{PublicKey, SigningKey};
use evsync_protocol::topic::{topic, Channel};
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::{mpsc, watch, Notify};

use crate::assignments::Assignments;
use crate::buffer::{with_buffer, Buffer};
use crate::config::AgentConfig;
use crate::dock::board::Board;
use crate::gps::Gps;
use crate::upload::progress::Progress;
use crate::upload::{Inbound, UploadStats};

/// Counters of the uplink, reported in status messages.
#[derive(Debug, Default)]
pub struct Stats {
    /// Batches published.
    pub batches_sent: AtomicU64,
    /// Go-back resends (reconnect, overdue receipt, retry of refused records).
    pub resends: AtomicU64,
    /// Receipts that did not verify against the pinned hub key (nothing dropped for them).
    pub bad_receipts: AtomicU64,
    /// Receipts and grants dropped because their channel was full (the hub answers again).
    pub dropped_receipts: AtomicU64,
    /// Records the hub refused (kept in the buffer).
    pub refused_records: AtomicU64,
    /// Records removed from the buffer on a valid receipt.
    pub receipted_records: AtomicU64,
}

/// Builds the MQTT options of the agent: persistent session, last will, packet limits.
pub fn options(cfg: &AgentConfig) -> anyhow::Result<MqttOptions> {
    let url = &cfg.mqtt.url;
    let plain = crate::tls::parse_url_form(url);
    let mut opts = MqttOptions::parse_url(format!("{plain}?client_id={}", cfg.device_id))
        .with_context(|| format!("mqtt.url = {url:?}: expected mqtt://host:port"))?;
    crate::tls::mqtt_transport(&mut opts, url, cfg.mqtt.ca_file.as_deref(), "mqtt")?;
    let max = batch::MAX_PAYLOAD + 4096;
    opts.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(false)
        .set_max_packet_size(max, max)
        .set_inflight(100)
        .set_last_will(LastWill::new(
            topic(&cfg.device_id, Channel::Status),
            serde_json::json!({ "online": false }).to_string(),
            QoS::AtLeastOnce,
            true,
        ));
    if let Some(file) = &cfg.mqtt.password_file {
        let secret = std::fs::read_to_string(file).with_context(|| {
            format!(
                "mqtt.password_file = {}: cannot read this device's broker secret",
                file.display()
            )
        })?;
        opts.set_credentials(cfg.device_id.clone(), secret.trim());
    }
    Ok(opts)
}

/// Connection state as the sender sees it: a counter that moves on every
/// (re)connection, and whether the link is up now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Link {
    /// Number of connections made so far.
    pub generation: u64,
    /// Whether the broker connection is up.
    pub up: bool,
}

/// Where the poll task forwards what the hub sends.
pub struct Routes {
    /// This agent's receipts topic (record receipts and media receipts).
    pub receipts_topic: String,
    /// This agent's grants topic.
    pub grants_topic: String,
    /// Record receipts, to the sender.
    pub receipts: mpsc::Sender<Vec<u8>>,
    /// Grants and media receipts, to the uploader.
    pub media: mpsc::Sender<Inbound>,
    /// Configuration assignments of docked recorders.
    pub assignments: Arc<Assignments>,
}

impl Routes {
    /// Forwards one message; a full channel drops it and counts it (the hub
    /// answers again when the agent resends or asks again).
    fn forward(&self, topic: &str, payload: Vec<u8>, stats: &Stats) {
        let sent = if topic == self.receipts_topic {
            if payload.starts_with(media_receipt::MAGIC) {
                self.media.try_send(Inbound::MediaReceipt(payload)).is_ok()
            } else {
                self.receipts.try_send(payload).is_ok()
            }
        } else if topic == self.grants_topic {
            self.media.try_send(Inbound::Grant(payload)).is_ok()
        } else {
            self.assignments.deliver(topic, &payload);
            true
        };
        if !sent {
            stats.dropped_receipts.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Polls the event loop until shutdown. Never publishes.
pub async fn poll(
    mut eventloop: EventLoop,
    routes: Routes,
    link: watch::Sender<Link>,
    stats: Arc<Stats>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    eventloop.network_options.set_tcp_nodelay(true);
    let mut backoff = Duration::from_millis(100);
    loop {
        let event = tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_millis(100);
                tracing::info!("connected to the broker");
                link.send_modify(|l| {
                    l.generation += 1;
                    l.up = true;
                });
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                routes.forward(&p.topic, p.payload.to_vec(), &stats);
            }
            Ok(_) => {}
            Err(e) => {
                link.send_if_modified(|l| std::mem::replace(&mut l.up, false));
                tracing::warn!(error = %e, retry_in = ?backoff, "broker connection lost");
                tokio::select! {
                    _ = shutdown.changed() => return Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// A batch published and not yet answered.
struct InFlight {
    ids: HashSet<uuid::Uuid>,
    sent_at: Instant,
}

/// The send window.
pub struct Sender {
    cfg: AgentConfig,
    client: AsyncClient,
    buffer: Arc<Mutex<Buffer>>,
    key: Arc<SigningKey>,
    hub_key: PublicKey,
    stats: Arc<Stats>,
    records_topic: String,
    cursor: i64,
    inflight: VecDeque<InFlight>,
    last_rewind: Instant,
    reporting: Reporting,
    /// A dock slot changed: publish the status at the next tick (at most once a second).
    status_due: bool,
    last_status: Instant,
}

/// What the status message reports beside the uplink's own counters.
#[derive(Clone)]
pub struct Reporting {
    /// Uploads under way.
    pub progress: Arc<Progress>,
    /// Upload counters.
    pub upload_stats: Arc<UploadStats>,
    /// What each dock slot is doing.
    pub board: Arc<Board>,
    /// The field device's GPS receiver, if it has one.
    pub gps: Option<Gps>,
}

impl Sender {
    /// Creates the sender.
    pub fn new(
        cfg: AgentConfig,
        client: AsyncClient,
        buffer: Arc<Mutex<Buffer>>,
        key: Arc<SigningKey>,
        stats: Arc<Stats>,
        reporting: Reporting,
    ) -> anyhow::Result<Self> {
        let hub_key = cfg.hub_key()?;
        let records_topic = topic(&cfg.device_id, Channel::Records);
        Ok(Self {
            cfg,
            client,
            buffer,
            key,
            hub_key,
            stats,
            records_topic,
            cursor: 0,
            inflight: VecDeque::new(),
            last_rewind: Instant::now(),
            reporting,
            status_due: false,
            last_status: Instant::now(),
        })
    }

    /// Go back to the oldest unreceipted record.
    fn rewind(&mut self, why: &str) {
        if self.cursor > 0 || !self.inflight.is_empty() {
            self.stats.resends.fetch_add(1, Ordering::Relaxed);
            tracing::info!(why, "resending from the oldest unreceipted record");
        }
        self.cursor = 0;
        self.inflight.clear();
        self.last_rewind = Instant::now();
    }

    async fn on_connect(&mut self) -> anyhow::Result<()> {
        for channel in [Channel::Receipts, Channel::Grants] {
            self.client
                .subscribe(topic(&self.cfg.device_id, channel), QoS::AtLeastOnce)
                .await
                .with_context(|| format!("subscribing to {}", channel.as_str()))?;
        }
        self.announce().await?;
        self.rewind("reconnected");
        self.publish_status().await
    }

    /// Publishes this device's signed announcement (retained).
    async fn announce(&self) -> anyhow::Result<()> {
        let announce = AnnounceBody {
            v: 1,
            device_id: self.cfg.device_id.clone(),
            public_key: self.key.public().to_base64(),
            role: self.cfg.role.clone(),
            officer_id: self.cfg.officer_id.clone(),
            unit_code: self.cfg.unit_code.clone(),
            software: format!("evsync-agent {}", env!("CARGO_PKG_VERSION")),
            sent_at: chrono::Utc::now(),
        };
        self.client
            .publish(
                topic(&self.cfg.device_id, Channel::Announce),
                QoS::AtLeastOnce,
                true,
                announce.seal(&self.key),
            )
            .await
            .context("publishing the announcement")
    }

    async fn publish_status(&mut self) -> anyhow::Result<()> {
        self.status_due = false;
        self.last_status = Instant::now();
        let (backlog, media) =
            with_buffer(&self.buffer, |b| Ok((b.backlog()?, b.media_backlog()?))).await?;
        let s = &self.stats;
        let u = &self.reporting.upload_stats;
        let mut status = serde_json::json!({
            "online": true,
            "at": chrono::Utc::now(),
            "backlog_records": backlog.records,
            "backlog_bytes": backlog.bytes,
            "media_backlog": media,
            "transfers": self.reporting.progress.snapshot(),
            "slots": self.reporting.board.snapshot(),
            "uploads": {
                "attempts": u.attempts.load(Ordering::Relaxed),
                "receipted": u.receipted.load(Ordering::Relaxed),
                "mismatches": u.mismatches.load(Ordering::Relaxed),
                "failed": u.failed.load(Ordering::Relaxed),
                "refused_messages": u.refused_messages.load(Ordering::Relaxed),
            },
            "batches_sent": s.batches_sent.load(Ordering::Relaxed),
            "resends": s.resends.load(Ordering::Relaxed),
            "bad_receipts": s.bad_receipts.load(Ordering::Relaxed),
            "dropped_receipts": s.dropped_receipts.load(Ordering::Relaxed),
            "refused_records": s.refused_records.load(Ordering::Relaxed),
        });
        if let Some(gps) = &self.reporting.gps {
            status["gps"] = gps.status();
        }
        let data_dir = self.cfg.data_dir.clone();
        let health = tokio::task::spawn_blocking(move || crate::health::read(&data_dir))
            .await
            .unwrap_or_default();
        status["storage_free_bytes"] = serde_json::json!(health.storage_free_bytes);
        status["storage_total_bytes"] = serde_json::json!(health.storage_total_bytes);
        status["battery_pct"] = serde_json::json!(health.battery_pct);
        self.client
            .publish(
                topic(&self.cfg.device_id, Channel::Status),
                QoS::AtLeastOnce,
                true,
                status.to_string(),
            )
            .await
            .context("publishing status")
    }

    async fn on_receipt(&mut self, payload: Vec<u8>) -> anyhow::Result<()> {
        let receipt = match ReceiptBody::open(&payload, &self.hub_key) {
            Ok(r) if r.agent_id == self.cfg.device_id => r,
            Ok(r) => {
                self.stats.bad_receipts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    addressee = r.agent_id,
                    "receipt addressed to another device ignored"
                );
                return Ok(());
            }
            Err(e) => {
                self.stats.bad_receipts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "receipt refused; nothing dropped from the buffer");
                return Ok(());
            }
        };
        let answered: Vec<uuid::Uuid> = receipt.entries.iter().map(|e| e.id).collect();
        let applied = {
            let r = receipt.clone();
            with_buffer(&self.buffer, move |b| b.apply_receipt(&r, &payload)).await?
        };
        self.stats
            .receipted_records
            .fetch_add(applied.removed as u64, Ordering::Relaxed);
        if applied.rejected > 0 {
            self.stats
                .refused_records
                .fetch_add(applied.rejected as u64, Ordering::Relaxed);
            if let Some(e) = receipt.entries.iter().find(|e| !e.is_safe_at_hub()) {
                let reason = e.reason.as_deref().unwrap_or_default();
                if reason.starts_with("unknown_device") {
                    // The hub has not seen the announcement (records may overtake it on
                    // another topic, and a broker restart loses retained messages).
                    self.announce().await?;
                }
                tracing::warn!(
                    refused = applied.rejected,
                    first_reason = e.reason.as_deref().unwrap_or(""),
                    "the hub refused records; they stay buffered and are retried"
                );
            }
        }
        for f in &mut self.inflight {
            for id in &answered {
                f.ids.remove(id);
            }
        }
        self.inflight.retain(|f| !f.ids.is_empty());
        Ok(())
    }

    /// Publishes batches until the window is full or the outbox is exhausted.
    async fn fill(&mut self) -> anyhow::Result<()> {
        while self.inflight.len() < self.cfg.uplink.max_inflight_batches {
            let (after, limit) = (self.cursor, self.cfg.uplink.batch_records);
            let rows = with_buffer(&self.buffer, move |b| b.pending_after(after, limit)).await?;
            if rows.is_empty() {
                return Ok(());
            }
            let envelopes: Vec<Envelope> = rows.iter().map(|r| r.envelope.clone()).collect();
            let n = batch::fitting(&envelopes).max(1);
            let payload = batch::encode(&envelopes[..n]);
            self.client
                .publish(self.records_topic.clone(), QoS::AtLeastOnce, false, payload)
                .await
                .context("publishing a batch")?;
            self.stats.batches_sent.fetch_add(1, Ordering::Relaxed);
            self.cursor = rows[n - 1].pos;
            self.inflight.push_back(InFlight {
                ids: rows[..n].iter().map(|r| r.id).collect(),
                sent_at: Instant::now(),
            });
        }
        Ok(())
    }

    /// Rewinds when a receipt is overdue, or when refused records wait and the retry interval passed.
    async fn check_timers(&mut self) -> anyhow::Result<()> {
        let timeout = Duration::from_secs(self.cfg.uplink.receipt_timeout_secs);
        if self
            .inflight
            .front()
            .is_some_and(|f| f.sent_at.elapsed() > timeout)
        {
            self.rewind("receipt overdue");
            return Ok(());
        }
        let retry = Duration::from_secs(self.cfg.uplink.retry_secs);
        if self.inflight.is_empty() && self.last_rewind.elapsed() > retry {
            let cursor = self.cursor;
            let behind = with_buffer(&self.buffer, |b| b.oldest_pending()).await?;
            if behind.is_some_and(|oldest| oldest <= cursor) {
                self.rewind("records still unreceipted");
            }
        }
        Ok(())
    }

    /// Runs the window until shutdown. Errors caused by the event loop going
    /// away during shutdown are not failures.
    pub async fn run(
        self,
        receipts: mpsc::Receiver<Vec<u8>>,
        link: watch::Receiver<Link>,
        new_records: Arc<Notify>,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let stopping = shutdown.clone();
        match self.window(receipts, link, new_records, shutdown).await {
            Err(_) if *stopping.borrow() => Ok(()),
            r => r,
        }
    }

    async fn window(
        mut self,
        mut receipts: mpsc::Receiver<Vec<u8>>,
        mut link: watch::Receiver<Link>,
        new_records: Arc<Notify>,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut status = tokio::time::interval(Duration::from_secs(self.cfg.uplink.status_secs));
        let mut seen_generation = 0;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                r = link.changed() => {
                    if r.is_err() { return Ok(()) }
                    let l = *link.borrow_and_update();
                    if l.up && l.generation != seen_generation {
                        seen_generation = l.generation;
                        self.on_connect().await?;
                    }
                }
                Some(p) = receipts.recv() => self.on_receipt(p).await?,
                _ = new_records.notified() => {}
                _ = tick.tick() => {
                    self.check_timers().await?;
                    if self.status_due
                        && self.last_status.elapsed() >= Duration::from_secs(1)
                        && link.borrow().up
                    {
                        self.publish_status().await?;
                    }
                }
                _ = self.reporting.board.changed() => self.status_due = true,
                _ = status.tick() => if link.borrow().up { self.publish_status().await? },
            }
            if link.borrow().up {
                self.fill().await?;
            }
        }
    }
}

//! A running agent: the spool task, the dock slots or the GPS reader, the
//! uplink sender and the MQTT event loop, joined under one shutdown signal. Any task ending on its own ends
//! the agent with an error; nothing fails silently.

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use evsync_protocol::keyfile;
use evsync_protocol::signing::SigningKey;
use evsync_protocol::topic::{topic, Channel};
use rumqttc::AsyncClient;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;

use chrono::{DateTime, Utc};
use evsync_protocol::record::{Event, Kind, RecordBody};

use crate::assignments::Assignments;
use crate::buffer::{with_buffer, Backlog, Buffer};
use crate::config::AgentConfig;
use crate::dock::board::{Board, SlotHandle, SlotStatus};
use crate::gps::{self, Gps};
use crate::records;
use crate::spool::Spool;
use crate::uplink::{self, Link, Reporting, Routes, Sender, Stats};
use crate::upload::progress::Progress;
use crate::upload::{UploadStats, Uploader};

/// A running agent.
pub struct Agent {
    cfg: AgentConfig,
    new_records: Arc<Notify>,
    buffer: Arc<Mutex<Buffer>>,
    stats: Arc<Stats>,
    upload_stats: Arc<UploadStats>,
    progress: Arc<Progress>,
    board: Arc<Board>,
    key: Arc<SigningKey>,
    gps: Option<Gps>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<anyhow::Result<()>>,
}

/// Loads the device key from `<data_dir>/device.key`, creating it (0600) at first run.
pub fn device_key(cfg: &AgentConfig) -> anyhow::Result<SigningKey> {
    let (key, created) = keyfile::load_or_create(&cfg.data_dir.join("device.key"))?;
    if created {
        tracing::info!(device = cfg.device_id, public_key = %key.public().to_base64(), "generated the device key");
    }
    Ok(key)
}

impl Agent {
    /// Starts every task of the agent.
    pub async fn start(cfg: AgentConfig) -> anyhow::Result<Agent> {
        Self::start_with_bars(cfg, None).await
    }

    /// Starts every task of the agent, drawing upload progress bars on `bars`
    /// (the terminal, when the agent runs on one).
    pub async fn start_with_bars(
        cfg: AgentConfig,
        bars: Option<indicatif::MultiProgress>,
    ) -> anyhow::Result<Agent> {
        cfg.validate()?;
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("data_dir = {}: cannot create it", cfg.data_dir.display()))?;
        let key = Arc::new(device_key(&cfg)?);
        let buffer = Arc::new(Mutex::new(Buffer::open(
            &cfg.data_dir.join("buffer.sqlite"),
        )?));
        let stats = Arc::new(Stats::default());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let new_records = Arc::new(Notify::new());
        let mut tasks = JoinSet::new();

        // A field device's GPS receiver: read by a task of its own, which
        // reopens the port whenever it goes away and returns only on shutdown.
        let gps = match (&cfg.gps.port, cfg.role.as_str()) {
            (Some(port), "field") => {
                let port_name = port.display().to_string();
                let (gps, reader) = gps::reader(
                    port_name.clone(),
                    cfg.gps.baud,
                    cfg.gps.max_fix_age(),
                    shutdown_rx.clone(),
                );
                let stopping = shutdown_rx.clone();
                tasks.spawn(async move {
                    reader.await;
                    anyhow::ensure!(
                        *stopping.borrow(),
                        "the GPS reader of {} stopped before shutdown",
                        port_name
                    );
                    Ok(())
                });
                Some(gps)
            }
            _ => None,
        };

        let mut spool = Spool::new(cfg.clone(), key.clone(), buffer.clone())?.with_gps(gps.clone());
        let interval = cfg.spool.scan_interval();
        let notify = new_records.clone();
        let mut spool_shutdown = shutdown_rx.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tokio::select! {
                    _ = spool_shutdown.changed() => return Ok(()),
                    _ = tick.tick() => {}
                }
                let (back, committed) = tokio::task::spawn_blocking(move || {
                    let r = spool.scan();
                    (spool, r)
                })
                .await
                .context("spool task")?;
                spool = back;
                match committed {
                    Ok(0) => {}
                    Ok(_) => notify.notify_one(),
                    // A failing scan (disk full, unreadable folder) is reported and retried;
                    // files stay in the spool, so nothing is lost.
                    Err(e) => tracing::error!(error = %format!("{e:#}"), "spool scan failed; files stay in the spool"),
                }
            }
        });

        let ports: Vec<String> = if cfg.role == "dock" {
            cfg.dock
                .slots
                .iter()
                .map(|s| s.port.display().to_string())
                .collect()
        } else {
            Vec::new()
        };
        let board = Arc::new(Board::new(&ports, bars.as_ref()));
        let (client, eventloop) = AsyncClient::new(uplink::options(&cfg)?, 64);
        let assignments = Arc::new(Assignments::new(client.clone()));
        if cfg.role == "dock" {
            let released = buffer
                .lock()
                .map_err(|_| anyhow::anyhow!("buffer lock poisoned"))?
                .release_all_claims()?;
            if released > 0 {
                tracing::warn!(
                    released,
                    "check-outs interrupted by the last stop are answered again"
                );
            }
            let shared = Arc::new(crate::dock::docking::Shared {
                cfg: cfg.clone(),
                key: key.clone(),
                buffer: buffer.clone(),
                copies: Arc::new(tokio::sync::Semaphore::new(cfg.dock.parallel_copies)),
                new_records: new_records.clone(),
                assignments: assignments.clone(),
            });
            for (i, slot) in cfg.dock.slots.iter().enumerate() {
                tasks.spawn(crate::dock::run_slot(
                    shared.clone(),
                    slot.clone(),
                    SlotHandle::new(board.clone(), i + 1),
                    shutdown_rx.clone(),
                ));
            }
        }

        let (receipts_tx, receipts_rx) = mpsc::channel(256);
        let (media_tx, media_rx) = mpsc::channel(256);
        let (link_tx, link_rx) = watch::channel(Link::default());
        let routes = Routes {
            receipts_topic: topic(&cfg.device_id, Channel::Receipts),
            grants_topic: topic(&cfg.device_id, Channel::Grants),
            receipts: receipts_tx,
            media: media_tx,
            assignments: assignments.clone(),
        };
        tasks.spawn(uplink::poll(
            eventloop,
            routes,
            link_tx,
            stats.clone(),
            shutdown_rx.clone(),
        ));
        tasks.spawn(resubscribe_assignments(
            assignments,
            link_rx.clone(),
            shutdown_rx.clone(),
        ));
        let progress = Arc::new(Progress::new(bars));
        let upload_stats = Arc::new(UploadStats::default());
        let uploader = Uploader::new(
            cfg.clone(),
            client.clone(),
            buffer.clone(),
            progress.clone(),
            upload_stats.clone(),
        )?;
        tasks.spawn(uploader.run(media_rx, link_rx.clone(), shutdown_rx.clone()));
        let sender = Sender::new(
            cfg.clone(),
            client,
            buffer.clone(),
            key.clone(),
            stats.clone(),
            Reporting {
                progress: progress.clone(),
                upload_stats: upload_stats.clone(),
                board: board.clone(),
                gps: gps.clone(),
            },
        )?;
        tasks.spawn(sender.run(receipts_rx, link_rx, new_records.clone(), shutdown_rx));
        Ok(Agent {
            cfg,
            new_records,
            buffer,
            stats,
            upload_stats,
            progress,
            board,
            key,
            gps,
            shutdown,
            tasks,
        })
    }

    /// Records an event that happened at `device_time` (for applications that
    /// embed the agent instead of writing spool files): signed, chained and
    /// committed before this returns, then sent.
    pub async fn record_event(
        &self,
        event: Event,
        device_time: DateTime<Utc>,
    ) -> anyhow::Result<RecordBody> {
        let (cfg, key, gps) = (self.cfg.clone(), self.key.clone(), self.gps.clone());
        let body = with_buffer(&self.buffer, move |b| {
            b.append(&key, &cfg.device_id, None, None, |seq, prev| {
                let mut body =
                    records::body(&cfg, Kind::Event, seq, prev, device_time, gps.as_ref());
                body.event = Some(event);
                body
            })
        })
        .await?;
        self.new_records.notify_one();
        Ok(body)
    }

    /// Number of records waiting for receipts.
    pub fn unreceipted(&self) -> anyhow::Result<u64> {
        self.buffer
            .lock()
            .map_err(|_| anyhow::anyhow!("buffer lock poisoned"))?
            .unreceipted()
    }

    /// Records and bytes waiting for receipts.
    pub fn backlog(&self) -> anyhow::Result<Backlog> {
        self.buffer
            .lock()
            .map_err(|_| anyhow::anyhow!("buffer lock poisoned"))?
            .backlog()
    }

    /// The geotag a record made now would get: `None` without a GPS
    /// receiver, or while it has no valid fix within `gps.max_fix_age_secs`.
    pub fn geotag(&self) -> Option<evsync_protocol::record::Geo> {
        self.gps.as_ref().and_then(Gps::tag)
    }

    /// The GPS receiver's reader, when `[gps] port` is configured.
    pub fn gps(&self) -> Option<&Gps> {
        self.gps.as_ref()
    }

    /// Uplink counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Upload counters.
    pub fn upload_stats(&self) -> &UploadStats {
        &self.upload_stats
    }

    /// Uploads under way.
    pub fn transfers(&self) -> Vec<crate::upload::progress::Transfer> {
        self.progress.snapshot()
    }

    /// Where the agent keeps its buffer, keys and held recordings.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.cfg.data_dir
    }

    /// What each dock slot is doing (empty for a field device).
    pub fn slots(&self) -> Vec<SlotStatus> {
        self.board.snapshot()
    }

    /// Recordings held until the hub receipts them.
    pub fn media_backlog(&self) -> anyhow::Result<crate::buffer::MediaBacklog> {
        self.buffer
            .lock()
            .map_err(|_| anyhow::anyhow!("buffer lock poisoned"))?
            .media_backlog()
    }

    /// Waits until a task ends (a failure while running) and returns why.
    pub async fn failed(&mut self) -> anyhow::Error {
        match self.tasks.join_next().await {
            Some(Ok(Ok(()))) => anyhow::anyhow!("an agent task stopped unexpectedly"),
            Some(Ok(Err(e))) => e.context("an agent task failed"),
            Some(Err(e)) => anyhow::anyhow!("an agent task panicked: {e}"),
            None => anyhow::anyhow!("the agent has no tasks"),
        }
    }

    /// Signals every task to stop and waits for them.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        let mut first = None;
        while let Some(r) = self.tasks.join_next().await {
            if let Err(e) = r.map_err(anyhow::Error::from).and_then(|r| r) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Subscribes again to the config topics of docked recorders after every
/// reconnection (the broker may have lost the session).
async fn resubscribe_assignments(
    assignments: Arc<Assignments>,
    mut link: watch::Receiver<Link>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut generation = 0;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            r = link.changed() => if r.is_err() { return Ok(()) },
        }
        let now = *link.borrow();
        if now.up && now.generation != generation {
            generation = now.generation;
            assignments.resubscribe().await?;
        }
    }
}

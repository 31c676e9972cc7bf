//! Assembles a running hub: keys and token, embedded broker, MQTT link,
//! ingest worker, receipt publisher and HTTP API, with one shutdown signal
//! every task honours. Any task that ends unexpectedly ends the hub.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use evsync_protocol::keyfile;
use evsync_protocol::signing::{PublicKey, SigningKey};
use rumqttc::{AsyncClient, Publish, QoS};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::config::HubConfig;
use crate::ingest::{Ingest, Outgoing, Sent};
use crate::media::{Blobs, Issuer, Partials};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::{api, broker, link};

/// Most messages ingest takes into one transaction.
const INGEST_BATCH: usize = 256;

/// A running hub.
pub struct Hub {
    /// Where the API listens.
    pub http_addr: SocketAddr,
    /// The API's base URL (`https://` when `http.tls_cert` is set).
    pub api_url: String,
    /// The broker agents connect to (`mqtt://host:port`).
    pub mqtt_url: String,
    /// The API bearer token.
    pub token: String,
    /// The key that signs receipts; agents pin it.
    pub public_key: PublicKey,
    db: crate::store::Location,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<anyhow::Result<()>>,
    ingest: Option<std::thread::JoinHandle<()>>,
}

/// Loads the API token from config, or from `<data_dir>/api-token`, creating it (0600) if absent.
fn api_token(cfg: &HubConfig) -> anyhow::Result<String> {
    if let Some(t) = &cfg.http.token {
        return Ok(t.clone());
    }
    let path = cfg.data_dir.join("api-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        return Ok(t.trim().to_owned());
    }
    let mut bytes = [0u8; 24];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    let token = hex::encode(bytes);
    write_private(&path, token.as_bytes())?;
    Ok(token)
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Loads the hub key (creating it at first run) and writes its public half to `<data_dir>/hub.pub`.
pub fn hub_key(data_dir: &Path) -> anyhow::Result<SigningKey> {
    let (key, created) = keyfile::load_or_create(&data_dir.join("hub.key"))?;
    if created {
        tracing::info!(public_key = %key.public().to_base64(), "generated the hub key");
    }
    std::fs::write(
        data_dir.join("hub.pub"),
        format!("{}\n", key.public().to_base64()),
    )
    .context("writing hub.pub")?;
    Ok(key)
}

impl Hub {
    /// Starts every part of the hub and returns once the broker and API accept connections.
    pub async fn start(cfg: HubConfig) -> anyhow::Result<Hub> {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("data_dir = {}: cannot create it", cfg.data_dir.display()))?;
        let key = Arc::new(hub_key(&cfg.data_dir)?);
        let token = api_token(&cfg)?;
        let db = cfg.store_location();
        let mut store = Store::connect(&db)?;
        if store.set_thresholds(cfg.coverage.thresholds())? {
            tracing::info!(coverage = ?cfg.coverage, "coverage thresholds changed: every verdict judged again");
        }
        let metrics = Arc::new(Metrics::default());

        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let (mqtt_url, hub_url, hub_login) = if cfg.mqtt.embedded {
            let embedded = broker::start_embedded(&cfg.mqtt, || Store::connect(&db)).await?;
            if let Some(guard) = embedded.guard {
                tasks.spawn(guard.run(metrics.clone(), shutdown_rx.clone()));
            }
            (embedded.url, embedded.hub_url, embedded.hub_login)
        } else {
            let url = cfg
                .mqtt
                .url
                .clone()
                .context("mqtt.url is required when mqtt.embedded = false")?;
            (url.clone(), url, None)
        };
        let sweeper_store = Store::connect(&db)?;
        // What waits to be summed is on /metrics from the start.
        metrics
            .coverage_stale_days
            .set(sweeper_store.coverage_stale_days()?);
        tasks.spawn(coverage_sweeper(
            sweeper_store,
            cfg.coverage.clone(),
            metrics.clone(),
            shutdown_rx.clone(),
        ));

        let mut opts = link::options(
            &hub_url,
            &format!("evsync-hub-{}", cfg.hub_id),
            broker::MAX_PAYLOAD,
            cfg.mqtt.ca_file.as_deref(),
        )?;
        if let Some((user, secret)) = hub_login {
            opts.set_credentials(user, secret);
        } else if let (false, Some(file)) = (cfg.mqtt.embedded, &cfg.mqtt.password_file) {
            let secret = std::fs::read_to_string(file).with_context(|| {
                format!(
                    "mqtt.password_file = {}: cannot read the hub's broker secret",
                    file.display()
                )
            })?;
            opts.set_credentials(cfg.mqtt_user(), secret.trim());
        }
        let (client, eventloop) = AsyncClient::new(opts, 1024);
        let (to_ingest, from_link) = mpsc::channel::<Publish>(1024);
        let (connected_tx, connected_rx) = watch::channel(0u64);
        tasks.spawn(link::poll(
            eventloop,
            to_ingest,
            connected_tx,
            shutdown_rx.clone(),
        ));
        tasks.spawn(link::subscribe_on_connect(
            client.clone(),
            cfg.mqtt.share_group.clone(),
            connected_rx.clone(),
            shutdown_rx.clone(),
        ));
        tasks.spawn(crate::config_publisher::run(
            client.clone(),
            Store::connect(&db)?,
            connected_rx,
            std::time::Duration::from_secs(1),
            shutdown_rx.clone(),
        ));

        // The API listener is bound first: grants carry its address.
        let listener = tokio::net::TcpListener::bind(cfg.http.listen)
            .await
            .with_context(|| {
                format!(
                    "http.listen = {}: cannot bind (port in use?)",
                    cfg.http.listen
                )
            })?;
        let http_addr = listener.local_addr()?;
        let https = match (&cfg.http.tls_cert, &cfg.http.tls_key) {
            (Some(cert), Some(key)) => {
                Some(crate::tls::server_config(cert, key).context("http.tls_cert / http.tls_key")?)
            }
            _ => None,
        };
        let scheme = if https.is_some() { "https" } else { "http" };
        let public_url = cfg
            .media
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{http_addr}"));
        let issuer = Arc::new(Issuer::new(
            cfg.hub_id.clone(),
            key.clone(),
            public_url,
            std::time::Duration::from_secs(cfg.media.grant_ttl_secs),
        ));

        let (to_publisher, from_ingest) = mpsc::unbounded_channel();
        let ingest = Ingest::new(
            store,
            cfg.hub_id.clone(),
            key.clone(),
            cfg.auto_approve,
            std::time::Duration::from_secs(cfg.gap_grace_secs),
            metrics.clone(),
            issuer.clone(),
        );
        let media = api::MediaParts {
            blobs: Blobs::open(&cfg)?,
            partials: Partials::open(&cfg.partials_dir())?,
            issuer,
            publisher: to_publisher.clone(),
            cfg: cfg.media.clone(),
        };
        let (changes_tx, changes) = watch::channel(0u64);
        let ingest = std::thread::Builder::new()
            .name("ingest".into())
            .spawn(move || ingest_worker(ingest, from_link, to_publisher, changes_tx))
            .context("starting the ingest thread")?;
        tasks.spawn(publish_receipts(
            client,
            from_ingest,
            metrics.clone(),
            shutdown_rx.clone(),
        ));

        let parts = api::ApiParts {
            hub_id: cfg.hub_id.clone(),
            key: key.clone(),
            token: token.clone(),
            metrics,
            offline_after: std::time::Duration::from_secs(cfg.fleet.offline_after_secs),
            changes,
        };
        let state = api::AppState::new(&db, parts, media)?;
        tasks.spawn(state.uploads().clone().janitor(shutdown_rx.clone()));
        let mut http_shutdown = shutdown_rx.clone();
        tasks.spawn(async move {
            let app = api::router(state).into_make_service_with_connect_info::<SocketAddr>();
            let stop = async move {
                let _ = http_shutdown.changed().await;
            };
            match https {
                Some(tls) => {
                    use axum::serve::ListenerExt as _;
                    // tap_io only lends the TLS listener axum's ConnectInfo<SocketAddr>.
                    let listener = crate::tls::HttpsListener::new(listener, tls)?.tap_io(|_| {});
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stop)
                        .await
                        .context("HTTPS server")
                }
                None => axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
                    .context("HTTP server"),
            }
        });
        tracing::info!(%http_addr, %mqtt_url, "hub serving");
        Ok(Hub {
            http_addr,
            api_url: format!("{scheme}://{http_addr}"),
            mqtt_url,
            token,
            public_key: key.public(),
            db,
            shutdown,
            tasks,
            ingest: Some(ingest),
        })
    }

    /// Number of records stored.
    pub async fn record_count(&self) -> anyhow::Result<i64> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || Store::connect(&db)?.record_count()).await?
    }

    /// SHA-256 (hex) of every recording signed by agent `agent_id` whose
    /// bytes are verified and stored.
    pub async fn stored_media(&self, agent_id: &str) -> anyhow::Result<Vec<String>> {
        let (db, agent) = (self.db.clone(), agent_id.to_owned());
        tokio::task::spawn_blocking(move || Store::connect(&db)?.stored_hashes(&agent)).await?
    }

    /// Waits until a task ends (which is a failure while serving) and returns its error.
    pub async fn failed(&mut self) -> anyhow::Error {
        match self.tasks.join_next().await {
            Some(Ok(Ok(()))) => anyhow::anyhow!("a hub task stopped unexpectedly"),
            Some(Ok(Err(e))) => e.context("a hub task failed"),
            Some(Err(e)) => anyhow::anyhow!("a hub task panicked: {e}"),
            None => anyhow::anyhow!("the hub has no tasks"),
        }
    }

    /// Signals every task to stop and waits for them.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        let mut first_err = None;
        while let Some(r) = self.tasks.join_next().await {
            let r = r.map_err(anyhow::Error::from).and_then(|r| r);
            if let Err(e) = r {
                tracing::error!(error = %format!("{e:#}"), "task ended with an error");
                first_err.get_or_insert(e);
            }
        }
        // The link task is gone, so the ingest channel is closed and the worker drains and ends.
        if let Some(t) = self.ingest.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Takes messages off the link in groups of up to [`INGEST_BATCH`], stores
/// each group in one transaction and hands its receipts to the publisher.
fn ingest_worker(
    mut ingest: Ingest,
    mut from_link: mpsc::Receiver<Publish>,
    to_publisher: mpsc::UnboundedSender<Vec<Outgoing>>,
    changes: watch::Sender<u64>,
) {
    while let Some(first) = from_link.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < INGEST_BATCH {
            match from_link.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let messages: Vec<(&str, &[u8])> = batch
            .iter()
            .map(|p| (p.topic.as_str(), p.payload.as_ref()))
            .collect();
        let receipts = match ingest.process(&messages) {
            Ok(r) => r,
            Err(e) => {
                // Nothing of this batch was stored or receipted; agents resend.
                tracing::error!(error = %format!("{e:#}"), messages = batch.len(), "ingest failed; nothing receipted");
                continue;
            }
        };
        // Pushed event streams look at the store again.
        changes.send_modify(|n| *n += 1);
        if to_publisher.send(receipts).is_err() {
            break;
        }
    }
}

/// Publishes receipts, grants and media receipts. Never called from the event-loop task.
async fn publish_receipts(
    client: AsyncClient,
    mut from_ingest: mpsc::UnboundedReceiver<Vec<Outgoing>>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        // The API holds a sender too (media receipts), so the channel stays
        // open until the hub stops: stop on the signal instead.
        let receipts = tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            r = from_ingest.recv() => match r {
                Some(r) => r,
                None => return Ok(()),
            },
        };
        for r in receipts {
            if let Err(e) = client
                .publish(r.topic, QoS::AtLeastOnce, false, r.payload)
                .await
            {
                if *shutdown.borrow() {
                    return Ok(()); // the event loop is gone; unreceipted records are resent by agents
                }
                return Err(e).context("publishing a receipt");
            }
            match r.kind {
                Sent::Receipt => metrics.receipts.inc(),
                Sent::Grant => metrics.grants.inc(),
                Sent::MediaReceipt => metrics.media_receipts.inc(),
            };
        }
    }
}

/// Sums the coverage days that changed again (store::coverage_days) at
/// start and then, with the coverage alerts time brings (store::sweep),
/// every `coverage.sweep_secs` until shutdown.
async fn coverage_sweeper(
    store: Store,
    cfg: crate::config::CoverageConfig,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut store = Some(store);
    let every = std::time::Duration::from_secs(u64::from(cfg.sweep_secs.max(1)));
    let minutes = |m: u32| std::time::Duration::from_secs(u64::from(m) * 60);
    let (after, unheard) = (
        minutes(cfg.alert_after_mins),
        minutes(cfg.unheard_after_mins),
    );
    let mut first = true;
    loop {
        if !first {
            tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                _ = tokio::time::sleep(every) => {}
            }
        }
        let Some(mut s) = store.take() else {
            anyhow::bail!("the coverage sweeper lost its store");
        };
        let sweep = !first;
        first = false;
        let (back, summed, swept) = tokio::task::spawn_blocking(move || {
            let summed = s.sum_coverage_days();
            let swept = sweep.then(|| {
                let now = chrono::Utc::now().timestamp_millis();
                s.coverage_sweep(now, after, unheard)
            });
            (s, summed, swept)
        })
        .await?;
        store = Some(back);
        match summed {
            Ok((n, stale)) => {
                metrics.coverage_stale_days.set(stale);
                if n > 0 {
                    tracing::debug!(days = n, "coverage days summed again");
                }
            }
            Err(e) => tracing::warn!("summing coverage days: {e:#}"),
        }
        match swept {
            Some(Ok(n)) if n != crate::store::Swept::default() => {
                tracing::info!(?n, "coverage alerts raised")
            }
            Some(Ok(_)) | None => {}
            Some(Err(e)) => tracing::warn!("looking for coverage alerts: {e:#}"),
        }
    }
}

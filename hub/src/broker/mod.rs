//! The embedded MQTT broker (rumqttd), the zero-setup default.
//!
//! rumqttd is a router, not a store: it keeps messages in bounded memory and
//! may drop what a slow subscriber has not read. Nothing waits in it that is
//! not also in an agent's buffer until the hub's receipt, so that is safe.
//! It has no shutdown call: it lives as long as the process.
//!
//! rumqttd 0.20 can check a user name and password but has no topic ACL.
//! With `mqtt.require_auth` or TLS configured, it therefore listens only on
//! a loopback port that lets in the hub's in-memory secret alone, and the
//! hub's own guard ([`listener`], deciding with [`guard`] and [`acl`])
//! takes the public address: it authenticates each agent against the
//! credential issued at enrollment and confines it to its own topics, as
//! the ACL written for Mosquitto does.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use tokio::sync::watch;

use crate::config::MqttConfig;
use crate::metrics::Metrics;

pub mod acl;
pub mod guard;
pub mod listener;

/// Largest MQTT payload the embedded broker accepts: above the protocol's
/// batch limit, so the hub sees (and counts) oversized payloads itself.
pub const MAX_PAYLOAD: usize = 2 * evsync_protocol::batch::MAX_PAYLOAD;

fn config(listen: SocketAddr, auth: Option<(String, String)>) -> Config {
    let server = ServerSettings {
        name: "evsync-v4".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: MAX_PAYLOAD,
            max_inflight_count: 500,
            auth: auth.map(|(user, secret)| HashMap::from([(user, secret)])),
            external_auth: None,
            dynamic_filters: true,
        },
    };
    Config {
        id: 0,
        // Zeroed router settings make rumqttd refuse every connection: set them all.
        router: RouterConfig {
            max_connections: 10_000,
            max_outgoing_packet_count: 500,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 4,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..Config::default()
    }
}

/// The embedded broker, started.
pub struct Embedded {
    /// The URL agents connect to (`mqtt://` or, with TLS, `mqtts://`).
    pub url: String,
    /// The URL the hub itself connects to.
    pub hub_url: String,
    /// The hub's user name and in-memory secret, when the guard is in front.
    pub hub_login: Option<(String, String)>,
    /// The guard's accept loop and credential reloads, to be run until
    /// shutdown; none when rumqttd itself takes the public address.
    pub guard: Option<Guard>,
}

/// The guard's tasks.
pub struct Guard {
    listener: tokio::net::TcpListener,
    cfg: Arc<listener::GuardConfig>,
    creds: Arc<listener::CredentialSource>,
}

impl Guard {
    /// Runs the guard's accept loop and the credential reloads until shutdown.
    pub async fn run(
        self,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let reloads = tokio::spawn(self.creds.clone().run(shutdown.clone()));
        let accepted = listener::run(self.listener, self.cfg, self.creds, metrics, shutdown).await;
        reloads.await.context("credential reloads")??;
        accepted
    }
}

/// Starts the embedded broker as `cfg` says: rumqttd alone on
/// `mqtt.listen` when neither authentication nor TLS is asked for (with a
/// warning that says what is open), otherwise rumqttd on a loopback port
/// behind the guard, which reads credentials from `store`.
pub async fn start_embedded(
    cfg: &MqttConfig,
    store: impl FnOnce() -> anyhow::Result<crate::store::Store>,
) -> anyhow::Result<Embedded> {
    let listen = cfg.listen;
    if !cfg.require_auth {
        tracing::warn!(%listen, "mqtt.require_auth is off: any client that reaches the embedded broker may connect under any client id and publish or subscribe on any topic, every device's included. Records still need an enrolled, approved key to be stored and receipts are signed by the hub, but turn it on (with device credentials) outside a demo");
    }
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => {
            Some(crate::tls::server_config(cert, key).context("mqtt.tls_cert / mqtt.tls_key")?)
        }
        _ => None,
    };
    if !cfg.require_auth && tls.is_none() {
        start(listen, None).await?;
        return Ok(Embedded {
            url: format!("mqtt://{listen}"),
            hub_url: format!("mqtt://{listen}"),
            hub_login: None,
            guard: None,
        });
    }
    let public = tokio::net::TcpListener::bind(listen).await.with_context(|| {
        format!("mqtt.listen = {listen}: the port is not free (another broker?); choose a free port, or set mqtt.embedded = false and mqtt.url")
    })?;
    let internal = free_loopback_addr()?;
    let login = (
        "evsync-hub-internal".to_owned(),
        crate::mosquitto::new_secret()?,
    );
    start(internal, Some(login.clone()))
        .await
        .context("starting rumqttd on its internal loopback port, behind the guard")?;
    let creds = listener::CredentialSource::new(store()?)
        .context("reading broker credentials from the store")?;
    let scheme = if tls.is_some() { "mqtts" } else { "mqtt" };
    tracing::info!(%listen, %scheme, require_auth = cfg.require_auth, require_tls = cfg.require_tls, "embedded broker guard accepting connections");
    Ok(Embedded {
        url: format!("{scheme}://{listen}"),
        hub_url: format!("mqtt://{internal}"),
        hub_login: Some(login.clone()),
        guard: Some(Guard {
            listener: public,
            cfg: Arc::new(listener::GuardConfig {
                internal,
                internal_login: login,
                require_auth: cfg.require_auth,
                require_tls: cfg.require_tls,
                tls: tls.map(tokio_rustls::TlsAcceptor::from),
                max_packet: MAX_PAYLOAD + 4096,
            }),
            creds,
        }),
    })
}

/// Starts rumqttd on `listen` (letting in only `auth`, when given) and
/// returns once it answers an MQTT CONNECT. A port already in use is an
/// error that says so (rumqttd itself would only log it).
pub async fn start(listen: SocketAddr, auth: Option<(String, String)>) -> anyhow::Result<()> {
    TcpListener::bind(listen).map(drop).with_context(|| {
        format!("mqtt.listen = {listen}: the port is not free (another broker?); choose a free port, or set mqtt.embedded = false and mqtt.url")
    })?;
    let mut broker = Broker::new(config(listen, auth.clone()));
    std::thread::Builder::new()
        .name("embedded-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker stopped");
            }
        })
        .context("starting the embedded broker thread")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !answers_connect(listen, auth.as_ref()).await {
        if Instant::now() > deadline {
            anyhow::bail!("the embedded broker did not answer on {listen} within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::info!(%listen, "embedded MQTT broker accepting connections");
    Ok(())
}

/// Whether an MQTT client can connect to `addr` (and then leaves cleanly).
async fn answers_connect(addr: SocketAddr, auth: Option<&(String, String)>) -> bool {
    let mut opts = MqttOptions::new("evsync-hub-probe", addr.ip().to_string(), addr.port());
    opts.set_clean_session(true);
    if let Some((user, secret)) = auth {
        opts.set_credentials(user.clone(), secret.clone());
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 4);
    let connected = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .unwrap_or(false);
    if connected && client.disconnect().await.is_ok() {
        // Drive the event loop until the DISCONNECT is out and the broker has closed the connection.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while eventloop.poll().await.is_ok() {}
        })
        .await;
    }
    connected
}

/// A free loopback port, for demos and tests.
pub fn free_loopback_addr() -> anyhow::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(l.local_addr()?)
}

//! The embedded MQTT broker (rumqttd), the zero-setup default.
//!
//! rumqttd is a router, not a store: it keeps messages in bounded memory and
//! may drop what a slow subscriber has not read. Nothing waits in it that is
//! not also in an agent's buffer until the hub's receipt, so that is safe.
//! It has no shutdown call: it lives as long as the process.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// Largest MQTT payload the embedded broker accepts: above the protocol's
/// batch limit, so the hub sees (and counts) oversized payloads itself.
pub const MAX_PAYLOAD: usize = 2 * evsync_protocol::batch::MAX_PAYLOAD;

fn config(listen: SocketAddr) -> Config {
    let server = ServerSettings {
        name: "evsync-v4".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: MAX_PAYLOAD,
            max_inflight_count: 500,
            auth: None,
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

/// Starts the broker on `listen` and returns once it answers an MQTT CONNECT.
/// A port already in use is an error that says so (rumqttd itself would only log it).
pub async fn start(listen: SocketAddr) -> anyhow::Result<()> {
    TcpListener::bind(listen).map(drop).with_context(|| {
        format!("mqtt.listen = {listen}: the port is not free (another broker?); choose a free port, or set mqtt.embedded = false and mqtt.url")
    })?;
    let mut broker = Broker::new(config(listen));
    std::thread::Builder::new()
        .name("embedded-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker stopped");
            }
        })
        .context("starting the embedded broker thread")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !answers_connect(listen).await {
        if Instant::now() > deadline {
            anyhow::bail!("the embedded broker did not answer on {listen} within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::info!(%listen, "embedded MQTT broker accepting connections");
    Ok(())
}

/// Whether an MQTT client can connect to `addr` (and then leaves cleanly).
async fn answers_connect(addr: SocketAddr) -> bool {
    let mut opts = MqttOptions::new("evsync-hub-probe", addr.ip().to_string(), addr.port());
    opts.set_clean_session(true);
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

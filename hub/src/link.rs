//! The hub's MQTT client: one task polls the event loop and hands incoming
//! messages to ingest over a bounded channel (backpressure reaches the
//! broker as TCP flow control); another subscribes after every connection.
//! rumqttc acknowledges a message when it arrives: the broker is not where
//! evidence waits, and a record lost between PUBACK and commit is resent by
//! its agent, which holds it until the hub's receipt. Nothing publishes from
//! inside the event-loop task.

use std::time::Duration;

use anyhow::Context as _;
use evsync_protocol::topic::{all_devices, Channel};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use tokio::sync::{mpsc, watch};

/// Builds client options for `url` (`mqtt://host:port`, or
/// `mqtts://host:port` trusting the CA in `ca_file`).
pub fn options(
    url: &str,
    client_id: &str,
    max_packet: usize,
    ca_file: Option<&std::path::Path>,
) -> anyhow::Result<MqttOptions> {
    let sep = if url.contains('?') { '&' } else { '?' };
    let plain = evsync_agent::tls::parse_url_form(url);
    let mut opts = MqttOptions::parse_url(format!("{plain}{sep}client_id={client_id}"))
        .with_context(|| format!("mqtt url {url:?}: expected mqtt://host:port"))?;
    evsync_agent::tls::mqtt_transport(&mut opts, url, ca_file, "mqtt")?;
    opts.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(false)
        .set_max_packet_size(max_packet, max_packet)
        .set_inflight(200);
    Ok(opts)
}

/// The topics the hub consumes. With `share_group`, as the shared
/// subscription `$share/<group>/<filter>`: the broker hands each message to
/// one hub of the group (hubs sharing one store), not to all.
pub fn subscriptions(share_group: Option<&str>) -> [String; 4] {
    [
        Channel::Records,
        Channel::Announce,
        Channel::Status,
        Channel::Uploads,
    ]
    .map(|c| match share_group {
        Some(group) => format!("$share/{group}/{}", all_devices(c)),
        None => all_devices(c),
    })
}

/// Polls the event loop until shutdown, forwarding publishes to `to_ingest`
/// and signalling each (re)connection on `connected`.
pub async fn poll(
    mut eventloop: EventLoop,
    to_ingest: mpsc::Sender<Publish>,
    connected: watch::Sender<u64>,
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
                tracing::info!("hub connected to the broker");
                connected.send_modify(|g| *g += 1);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if to_ingest.send(p).await.is_err() {
                    anyhow::bail!("the ingest stage stopped");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "broker connection lost");
                tokio::select! {
                    _ = shutdown.changed() => return Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Subscribes after every connection (the broker may have lost the session).
pub async fn subscribe_on_connect(
    client: AsyncClient,
    share_group: Option<String>,
    mut connected: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            r = connected.changed() => if r.is_err() { return Ok(()) },
        }
        for filter in subscriptions(share_group.as_deref()) {
            client
                .subscribe(filter.clone(), QoS::AtLeastOnce)
                .await
                .with_context(|| format!("subscribing to {filter}"))?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_group_makes_every_subscription_shared() {
        assert_eq!(subscriptions(None)[0], "evsync/v1/+/records");
        let shared = subscriptions(Some("evsync-hubs"));
        assert!(shared
            .iter()
            .all(|f| f.starts_with("$share/evsync-hubs/evsync/v1/+/")));
    }
}

//! Puts recorders' configuration assignments on their retained config
//! topics: every one after each connection to the broker (an embedded
//! broker restarted with the hub has lost its retained messages), and new
//! ones as operators issue them (the CLI and the API write them to the
//! store; this task finds them there within `every`).

use std::time::Duration;

use anyhow::Context as _;
use evsync_protocol::topic::{topic, Channel};
use rumqttc::{AsyncClient, QoS};
use tokio::sync::watch;

use crate::store::Store;

/// Publishes assignments until shutdown, looking for new ones every `every`.
pub async fn run(
    client: AsyncClient,
    store: Store,
    mut connected: watch::Receiver<u64>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut store = Some(store);
    let mut seen_generation = 0;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            r = connected.changed() => if r.is_err() { return Ok(()) },
            _ = tokio::time::sleep(every) => {}
        }
        let generation = *connected.borrow();
        if generation == 0 {
            continue; // not connected yet
        }
        let all = generation != seen_generation;
        let Some(s) = store.take() else {
            anyhow::bail!("the configuration publisher lost its store");
        };
        let (back, due) = tokio::task::spawn_blocking(move || {
            let due = s.config_to_publish(all);
            (s, due)
        })
        .await
        .context("configuration publisher")?;
        store = Some(back);
        let due = match due {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("reading configuration assignments to publish: {e:#}");
                continue;
            }
        };
        seen_generation = generation;
        let mut published = Vec::with_capacity(due.len());
        for (device, version, message) in due {
            if let Err(e) = client
                .publish(
                    topic(&device, Channel::Config),
                    QoS::AtLeastOnce,
                    true,
                    message,
                )
                .await
            {
                if *shutdown.borrow() {
                    return Ok(());
                }
                return Err(e).context("publishing a configuration assignment");
            }
            tracing::info!(device, version, "configuration assignment published");
            published.push((device, version));
        }
        if published.is_empty() {
            continue;
        }
        let Some(mut s) = store.take() else {
            anyhow::bail!("the configuration publisher lost its store");
        };
        let (back, noted) = tokio::task::spawn_blocking(move || {
            let noted = published
                .iter()
                .try_for_each(|(device, version)| s.config_published(device, *version));
            (s, noted)
        })
        .await
        .context("configuration publisher")?;
        store = Some(back);
        if let Err(e) = noted {
            // Published again at the next pass: harmless, the message is retained.
            tracing::warn!("noting published assignments: {e:#}");
        }
    }
}

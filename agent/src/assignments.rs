//! Configuration assignments of docked recorders, as they arrive from the
//! hub: the dock subscribes to a recorder's retained config topic while the
//! recorder is docked, and keeps the newest message of each. Checking and
//! applying them is the docking task's ([`crate::dock::configure`]).

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::Context as _;
use evsync_protocol::topic::{self, Channel};
use rumqttc::{AsyncClient, QoS};

/// The newest assignment message of each recorder the dock subscribed for.
pub struct Assignments {
    client: AsyncClient,
    /// Recorder → newest message on its config topic (`None`: none yet).
    wanted: Mutex<HashMap<String, Option<Vec<u8>>>>,
}

impl Assignments {
    /// An inbox subscribing through `client`.
    pub fn new(client: AsyncClient) -> Self {
        Self {
            client,
            wanted: Mutex::new(HashMap::new()),
        }
    }

    fn wanted(
        &self,
    ) -> anyhow::Result<std::sync::MutexGuard<'_, HashMap<String, Option<Vec<u8>>>>> {
        self.wanted
            .lock()
            .map_err(|_| anyhow::anyhow!("assignments lock poisoned"))
    }

    /// Subscribes to `recorder`'s config topic (the broker sends the retained
    /// assignment at once, and any new one as it is issued). Never waits:
    /// while the broker is away the request may not fit the client's queue,
    /// and [`Assignments::resubscribe`] asks again on reconnection.
    pub fn want(&self, recorder: &str) -> anyhow::Result<()> {
        self.wanted()?.entry(recorder.to_owned()).or_insert(None);
        if let Err(e) = self
            .client
            .try_subscribe(topic::topic(recorder, Channel::Config), QoS::AtLeastOnce)
        {
            tracing::debug!(recorder, error = %e, "config topic subscription deferred to the next connection");
        }
        Ok(())
    }

    /// Unsubscribes from `recorder`'s config topic and forgets its message.
    /// Never waits (a subscription left over is harmless: its messages are
    /// not kept).
    pub fn forget(&self, recorder: &str) -> anyhow::Result<()> {
        self.wanted()?.remove(recorder);
        if let Err(e) = self
            .client
            .try_unsubscribe(topic::topic(recorder, Channel::Config))
        {
            tracing::debug!(recorder, error = %e, "config topic left subscribed");
        }
        Ok(())
    }

    /// Subscribes again to every wanted topic (after a reconnection: the
    /// broker may have lost the session).
    pub async fn resubscribe(&self) -> anyhow::Result<()> {
        let recorders: Vec<String> = self.wanted()?.keys().cloned().collect();
        for r in recorders {
            self.client
                .subscribe(topic::topic(&r, Channel::Config), QoS::AtLeastOnce)
                .await
                .with_context(|| format!("subscribing to the config topic of {r}"))?;
        }
        Ok(())
    }

    /// Keeps `payload` if `topic` is the config topic of a wanted recorder;
    /// false if it is no such topic.
    pub fn deliver(&self, topic_name: &str, payload: &[u8]) -> bool {
        let Ok((recorder, Channel::Config)) = topic::parse(topic_name) else {
            return false;
        };
        let Ok(mut wanted) = self.wanted() else {
            return false;
        };
        match wanted.get_mut(recorder) {
            Some(slot) => {
                *slot = Some(payload.to_vec());
                true
            }
            None => false,
        }
    }

    /// The newest assignment message for `recorder`, if one arrived.
    pub fn latest(&self, recorder: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.wanted()?.get(recorder).cloned().flatten())
    }
}

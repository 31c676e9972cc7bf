//! Signs what the hub tells agents about media: upload grants and media
//! receipts, each addressed to the agent that signed the record.

use std::sync::Arc;
use std::time::Duration;

use evsync_protocol::grant::GrantBody;
use evsync_protocol::media_receipt::{MediaReceiptBody, MediaStatus};
use evsync_protocol::signing::{PublicKey, SigningKey};
use evsync_protocol::topic::{topic, Channel};

use crate::ingest::{Outgoing, Sent};
use crate::store::{MediaRow, MediaState};

/// Issues grants and media receipts.
pub struct Issuer {
    hub_id: String,
    key: Arc<SigningKey>,
    base_url: String,
    ttl: Duration,
}

impl Issuer {
    /// An issuer whose grants point at `base_url` (`http(s)://host:port`) and last `ttl`.
    pub fn new(hub_id: String, key: Arc<SigningKey>, base_url: String, ttl: Duration) -> Self {
        Self {
            hub_id,
            key,
            base_url,
            ttl,
        }
    }

    /// The key grants are signed with (and checked against).
    pub fn public_key(&self) -> PublicKey {
        self.key.public()
    }

    /// Where the bytes of `record_id` are uploaded.
    pub fn upload_url(&self, record_id: &str) -> String {
        format!("{}/api/v1/uploads/{record_id}", self.base_url)
    }

    /// The message that moves a record's media forward: a grant while the
    /// hub awaits the bytes, else the media receipt of its final state.
    pub fn answer(&self, m: &MediaRow) -> anyhow::Result<Outgoing> {
        match m.state {
            MediaState::Awaiting => self.grant(m),
            MediaState::Stored | MediaState::Failed => self.receipt(m),
        }
    }

    /// A grant to upload the media of `m`.
    pub fn grant(&self, m: &MediaRow) -> anyhow::Result<Outgoing> {
        let now = chrono::Utc::now();
        let grant = GrantBody {
            v: 1,
            hub_id: self.hub_id.clone(),
            agent_id: m.agent_id.clone(),
            record_id: m.record_id.parse()?,
            sha256: m.sha256.clone(),
            size: m.size,
            url: self.upload_url(&m.record_id),
            issued_at: now,
            expires_at: now + chrono::Duration::from_std(self.ttl)?,
        };
        Ok(Outgoing {
            topic: topic(&m.agent_id, Channel::Grants),
            payload: GrantBody::message(&grant.sign(&self.key)),
            kind: Sent::Grant,
        })
    }

    /// The media receipt of a stored or failed record.
    pub fn receipt(&self, m: &MediaRow) -> anyhow::Result<Outgoing> {
        let status = match m.state {
            MediaState::Stored => MediaStatus::Stored,
            MediaState::Failed => MediaStatus::Failed,
            MediaState::Awaiting => {
                anyhow::bail!("media of record {} is not stored yet", m.record_id)
            }
        };
        let body = MediaReceiptBody {
            v: 1,
            hub_id: self.hub_id.clone(),
            agent_id: m.agent_id.clone(),
            record_id: m.record_id.parse()?,
            sha256: m.sha256.clone(),
            size: m.size,
            status,
            reason: m.detail.clone(),
            issued_at: chrono::Utc::now(),
        };
        Ok(Outgoing {
            topic: topic(&m.agent_id, Channel::Receipts),
            payload: body.seal(&self.key),
            kind: Sent::MediaReceipt,
        })
    }
}

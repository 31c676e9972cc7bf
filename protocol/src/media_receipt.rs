//! Media receipts: the hub's signed word that the bytes of a recording are
//! verified against the signed record and durably stored (or that they
//! failed verification too often and were refused).
//!
//! Payload on `evsync/v1/<agent>/receipts` (beside record receipts, told
//! apart by the magic): `"EVM1" || envelope`, signed by the hub under
//! [`Context::MediaReceipt`]. The agent deletes its copy of a recording only
//! for a `stored` media receipt whose record id and SHA-256 match what it holds.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::{decode_single, encode_single, Envelope};
use crate::signing::{Context, PublicKey, SigningKey};
use crate::ProtocolError;

/// Magic bytes of a media receipt.
pub const MAGIC: &[u8; 4] = b"EVM1";

/// What the hub did with the bytes of one recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaStatus {
    /// Verified against the record's SHA-256 and durably stored.
    Stored,
    /// Refused after repeated hash mismatches; `reason` says why. The agent keeps its copy.
    Failed,
}

/// The signed body of a media receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaReceiptBody {
    /// Body version (1).
    pub v: u32,
    /// The hub instance that issued it.
    pub hub_id: String,
    /// The agent it answers.
    pub agent_id: String,
    /// The media record.
    pub record_id: Uuid,
    /// SHA-256 (hex) of the stored bytes.
    pub sha256: String,
    /// Their size.
    pub size: u64,
    /// What happened.
    pub status: MediaStatus,
    /// Why, for `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the hub issued it.
    pub issued_at: DateTime<Utc>,
}

impl MediaReceiptBody {
    /// Signs with the hub key and encodes the message.
    pub fn seal(&self, hub_key: &SigningKey) -> Vec<u8> {
        let body = serde_json::to_vec(self).unwrap_or_default();
        encode_single(MAGIC, &Envelope::seal(hub_key, Context::MediaReceipt, body))
    }

    /// Decodes and verifies against the pinned hub key before parsing.
    pub fn open(payload: &[u8], hub_key: &PublicKey) -> Result<Self, ProtocolError> {
        let env = decode_single("media receipt", MAGIC, payload)?;
        env.verify(hub_key, Context::MediaReceipt, "the pinned hub key")?;
        let body: MediaReceiptBody = serde_json::from_slice(&env.body)
            .map_err(|e| ProtocolError::malformed("media receipt body", e.to_string()))?;
        if body.v != 1 {
            return Err(ProtocolError::malformed(
                "media receipt body",
                format!("v = {}: expected 1", body.v),
            ));
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipt::ReceiptBody;

    fn receipt() -> MediaReceiptBody {
        MediaReceiptBody {
            v: 1,
            hub_id: "hub-1".into(),
            agent_id: "field-1".into(),
            record_id: Uuid::nil(),
            sha256: "cd".repeat(32),
            size: 42,
            status: MediaStatus::Stored,
            reason: None,
            issued_at: DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
        }
    }

    #[test]
    fn a_media_receipt_opens_only_with_the_hub_key_and_never_as_a_record_receipt() {
        let hub = SigningKey::from_seed_for_tests(&[1; 32]).unwrap();
        let impostor = SigningKey::from_seed_for_tests(&[2; 32]).unwrap();
        let sealed = receipt().seal(&hub);
        assert_eq!(
            MediaReceiptBody::open(&sealed, &hub.public()).unwrap(),
            receipt()
        );
        assert_eq!(
            MediaReceiptBody::open(&receipt().seal(&impostor), &hub.public())
                .unwrap_err()
                .reason(),
            "bad_signature"
        );
        // Same topic as record receipts: the magic and the signing context keep them apart.
        assert!(ReceiptBody::open(&sealed, &hub.public()).is_err());
        let mut relabelled = sealed.clone();
        relabelled[..4].copy_from_slice(crate::receipt::MAGIC);
        assert!(ReceiptBody::open(&relabelled, &hub.public()).is_err());
    }
}

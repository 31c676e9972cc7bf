//! Receipts: the hub's signed word that records are durably stored.
//!
//! Payload of `evsync/v1/<agent>/receipts`: `"EVR1" || envelope`, the body
//! signed by the hub under [`Context::Receipt`]. An agent drops a record from
//! its buffer only for an entry with status `stored` or `duplicate` whose
//! record id and hash match what it holds, in a receipt that verifies
//! against the hub key it has pinned. An MQTT PUBACK is never a receipt.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::{decode_single, encode_single, Envelope};
use crate::signing::{Context, PublicKey, SigningKey};
use crate::ProtocolError;

/// Magic bytes of a receipt message.
pub const MAGIC: &[u8; 4] = b"EVR1";

/// Most entries one receipt carries, so that its body always fits an
/// envelope (64 KiB) even with 64-character device ids and long reasons.
/// A batch of more records is answered by several receipts.
pub const MAX_ENTRIES: usize = 100;

/// Longest `reason` an entry carries (bytes); longer reasons are cut.
pub const MAX_REASON: usize = 300;

/// What the hub did with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Verified and durably stored now.
    Stored,
    /// Already durably stored earlier (same source, sequence and hash).
    Duplicate,
    /// Not stored; `reason` says why. The agent keeps the record.
    Rejected,
}

/// The hub's answer for one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Record id.
    pub id: Uuid,
    /// Source device.
    pub device_id: String,
    /// Sequence number in the source's chain.
    pub seq: u64,
    /// SHA-256 (hex) of the record body the hub holds.
    pub hash: String,
    /// What happened.
    pub status: Status,
    /// Why, for `rejected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Entry {
    /// Whether this entry lets the agent drop the record from its buffer.
    pub fn is_safe_at_hub(&self) -> bool {
        matches!(self.status, Status::Stored | Status::Duplicate)
    }
}

/// The signed body of a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptBody {
    /// Body version (1).
    pub v: u32,
    /// The hub instance that issued it.
    pub hub_id: String,
    /// The agent it answers.
    pub agent_id: String,
    /// When the hub issued it.
    pub issued_at: DateTime<Utc>,
    /// One entry per record of the batch answered.
    pub entries: Vec<Entry>,
}

impl ReceiptBody {
    /// Signs the receipt with the hub key and encodes the message.
    pub fn seal(&self, hub_key: &SigningKey) -> Vec<u8> {
        let body = serde_json::to_vec(self).unwrap_or_default();
        encode_single(MAGIC, &Envelope::seal(hub_key, Context::Receipt, body))
    }

    /// Decodes a receipt message and verifies it against the pinned hub key
    /// before parsing the body.
    pub fn open(payload: &[u8], hub_key: &PublicKey) -> Result<Self, ProtocolError> {
        let env = decode_single("receipt", MAGIC, payload)?;
        env.verify(hub_key, Context::Receipt, "the pinned hub key")?;
        let body: ReceiptBody = serde_json::from_slice(&env.body)
            .map_err(|e| ProtocolError::malformed("receipt body", e.to_string()))?;
        if body.v != 1 {
            return Err(ProtocolError::malformed(
                "receipt body",
                format!("v = {}: expected 1", body.v),
            ));
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt() -> ReceiptBody {
        ReceiptBody {
            v: 1,
            hub_id: "hub-1".into(),
            agent_id: "field-1".into(),
            issued_at: DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
            entries: vec![Entry {
                id: Uuid::nil(),
                device_id: "field-1".into(),
                seq: 1,
                hash: "00".repeat(32),
                status: Status::Stored,
                reason: None,
            }],
        }
    }

    #[test]
    fn a_receipt_opens_only_with_the_hub_key_that_signed_it() {
        let hub = SigningKey::from_seed_for_tests(&[1; 32]).unwrap();
        let impostor = SigningKey::from_seed_for_tests(&[2; 32]).unwrap();
        let sealed = receipt().seal(&hub);
        assert_eq!(
            ReceiptBody::open(&sealed, &hub.public()).unwrap(),
            receipt()
        );
        let forged = receipt().seal(&impostor);
        let err = ReceiptBody::open(&forged, &hub.public()).unwrap_err();
        assert_eq!(err.reason(), "bad_signature");
    }

    #[test]
    fn a_receipt_of_max_entries_of_the_largest_kind_fits_an_envelope() {
        let hub = SigningKey::from_seed_for_tests(&[1; 32]).unwrap();
        let entry = Entry {
            id: Uuid::max(),
            device_id: "d".repeat(64),
            seq: u64::MAX,
            hash: "f".repeat(64),
            status: Status::Rejected,
            reason: Some("r".repeat(MAX_REASON)),
        };
        let mut big = receipt();
        big.agent_id = "a".repeat(64);
        big.hub_id = "h".repeat(64);
        big.entries = vec![entry; MAX_ENTRIES];
        let sealed = big.seal(&hub);
        assert_eq!(ReceiptBody::open(&sealed, &hub.public()).unwrap(), big);
    }

    #[test]
    fn a_receipt_altered_in_transit_does_not_open() {
        let hub = SigningKey::from_seed_for_tests(&[1; 32]).unwrap();
        let mut sealed = receipt().seal(&hub);
        let at = sealed.len() - 70;
        sealed[at] ^= 1;
        assert!(ReceiptBody::open(&sealed, &hub.public()).is_err());
    }
}

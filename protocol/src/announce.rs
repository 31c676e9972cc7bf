//! Announcements: a device says who it is and which key it signs with.
//!
//! Payload of `evsync/v1/<device>/announce` (retained): `"EVA1" || envelope`,
//! signed by the announced key itself (proof that the sender holds it). The
//! hub enrolls an unknown device as *pending* from this; an operator approves
//! it. The key of an approved device never changes by announcement.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::envelope::{decode_single, encode_single, Envelope};
use crate::signing::{Context, PublicKey, SigningKey};
use crate::topic::validate_device_id;
use crate::ProtocolError;

/// Magic bytes of an announcement.
pub const MAGIC: &[u8; 4] = b"EVA1";

/// The signed body of an announcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceBody {
    /// Body version (1).
    pub v: u32,
    /// The announcing device.
    pub device_id: String,
    /// Its Ed25519 public key, standard base64.
    pub public_key: String,
    /// `field` or `dock`.
    pub role: String,
    /// Officer currently assigned, if known to the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub officer_id: Option<String>,
    /// Unit currently assigned, if known to the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_code: Option<String>,
    /// Software name and version.
    pub software: String,
    /// When it was sent.
    pub sent_at: DateTime<Utc>,
}

impl AnnounceBody {
    /// Signs with the device key and encodes the message.
    pub fn seal(&self, key: &SigningKey) -> Vec<u8> {
        let body = serde_json::to_vec(self).unwrap_or_default();
        encode_single(MAGIC, &Envelope::seal(key, Context::Announce, body))
    }

    /// Decodes, checks that it is signed by the key it announces, and returns it with that key.
    pub fn open(payload: &[u8]) -> Result<(Self, PublicKey), ProtocolError> {
        let env = decode_single("announcement", MAGIC, payload)?;
        let body: AnnounceBody = serde_json::from_slice(&env.body)
            .map_err(|e| ProtocolError::malformed("announcement", e.to_string()))?;
        validate_device_id(&body.device_id)?;
        let key = PublicKey::from_base64(&body.public_key)?;
        env.verify(&key, Context::Announce, &body.device_id)?;
        Ok((body, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announcement_must_be_signed_by_the_key_it_announces() {
        let key = SigningKey::from_seed_for_tests(&[3; 32]).unwrap();
        let other = SigningKey::from_seed_for_tests(&[4; 32]).unwrap();
        let body = AnnounceBody {
            v: 1,
            device_id: "field-500112-0001".into(),
            public_key: key.public().to_base64(),
            role: "field".into(),
            officer_id: Some("012345".into()),
            unit_code: Some("500112000001".into()),
            software: "evsync-agent 0.1.0".into(),
            sent_at: DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
        };
        let (opened, k) = AnnounceBody::open(&body.seal(&key)).unwrap();
        assert_eq!((opened, k), (body.clone(), key.public()));
        assert!(AnnounceBody::open(&body.seal(&other)).is_err());
    }
}

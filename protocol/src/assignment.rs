//! Configuration assignments: the hub's signed word of what one recorder
//! must run.
//!
//! Payload of `evsync/v1/<recorder>/config` (retained): `"EVC1" || envelope`,
//! the body signed by the hub under [`Context::Config`]. A body names the
//! recorder, a version that only ever grows (one counter for the whole hub),
//! the effective configuration as TOML and its content hash (SHA-256 of the
//! configuration's compact form, computed by `firmware-config`), and
//! optionally the firmware image the recorder must run, so that a firmware
//! manifest is signed by the same mechanism. An agent applies an assignment
//! only when it verifies against the pinned hub key, names the recorder it
//! is for, is newer than every assignment it accepted for that recorder
//! ([`check_newer`]) and its configuration hashes to `config_hash`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::envelope::{decode_single, encode_single, Envelope};
use crate::signing::{Context, PublicKey, SigningKey};
use crate::ProtocolError;

/// Magic bytes of an assignment message.
pub const MAGIC: &[u8; 4] = b"EVC1";

/// A firmware image a recorder must run: its manifest, signed as part of
/// the assignment that names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareImage {
    /// Firmware version the image installs (e.g. `SIM-2.5.0`).
    pub version: String,
    /// SHA-256 (hex) of the image.
    pub sha256: String,
    /// Size of the image, bytes.
    pub size: u64,
    /// Where the agent downloads it (HTTP, with ranges).
    pub url: String,
}

/// The signed body of an assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// Body version (1).
    pub v: u32,
    /// The hub instance that issued it.
    pub hub_id: String,
    /// The recorder it is for.
    pub device_id: String,
    /// Assignment version: larger than every earlier one the hub issued.
    pub version: u64,
    /// SHA-256 (hex) of the configuration's compact form.
    pub config_hash: String,
    /// The effective configuration, TOML.
    pub config: String,
    /// The firmware image the recorder must run, if the hub names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<FirmwareImage>,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
}

/// Why an agent refused an assignment. The text is what it reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a well-formed, hub-signed assignment.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// Signed for another recorder.
    #[error("assignment is for {named:?}, not for recorder {expected:?}")]
    WrongDevice {
        /// The recorder it names.
        named: String,
        /// The recorder whose topic it came on.
        expected: String,
    },
    /// Older than one already accepted: a rollback or a replay.
    #[error("assignment version {version} is older than version {accepted}, already accepted: refused as a rollback")]
    Rollback {
        /// Version offered.
        version: u64,
        /// Newest version accepted so far.
        accepted: u64,
    },
}

impl Assignment {
    /// Signs the assignment with the hub key and encodes the MQTT message.
    pub fn seal(&self, hub_key: &SigningKey) -> Vec<u8> {
        let body = serde_json::to_vec(self).unwrap_or_default();
        encode_single(MAGIC, &Envelope::seal(hub_key, Context::Config, body))
    }

    /// Decodes an assignment message for `device_id`, verifying it against
    /// the pinned hub key. The version is checked by [`check_newer`].
    pub fn open(payload: &[u8], hub_key: &PublicKey, device_id: &str) -> Result<Self, Refusal> {
        let env = decode_single("configuration assignment", MAGIC, payload)?;
        env.verify(hub_key, Context::Config, "the hub key")?;
        let body: Assignment = serde_json::from_slice(&env.body).map_err(|e| {
            ProtocolError::malformed("configuration assignment body", e.to_string())
        })?;
        if body.v != 1 {
            return Err(ProtocolError::malformed(
                "configuration assignment body",
                format!("v = {}: expected 1", body.v),
            )
            .into());
        }
        if body.device_id != device_id {
            return Err(Refusal::WrongDevice {
                named: body.device_id,
                expected: device_id.to_owned(),
            });
        }
        Ok(body)
    }
}

/// Refuses `version` unless it is newer than `accepted`, the newest version
/// the agent accepted for the recorder (`None`: none yet). The same version
/// again is no rollback, but the agent treats it as already known.
pub fn check_newer(version: u64, accepted: Option<u64>) -> Result<(), Refusal> {
    match accepted {
        Some(accepted) if version < accepted => Err(Refusal::Rollback { version, accepted }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment() -> Assignment {
        Assignment {
            v: 1,
            hub_id: "hub-1".into(),
            device_id: "ZFY0001".into(),
            version: 7,
            config_hash: "ab".repeat(32),
            config: "[video]\nframe_rate = 25\n".into(),
            firmware: Some(FirmwareImage {
                version: "SIM-2.5.0".into(),
                sha256: "cd".repeat(32),
                size: 4096,
                url: "http://127.0.0.1:8480/api/v1/firmware/SIM-2.5.0".into(),
            }),
            issued_at: DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
        }
    }

    #[test]
    fn an_assignment_opens_with_the_hub_key_for_its_recorder_only() {
        let hub = SigningKey::from_seed_for_tests(&[1; 32]).unwrap();
        let other = SigningKey::from_seed_for_tests(&[2; 32]).unwrap();
        let msg = assignment().seal(&hub);
        assert_eq!(
            Assignment::open(&msg, &hub.public(), "ZFY0001").unwrap(),
            assignment()
        );
        let forged = assignment().seal(&other);
        assert!(matches!(
            Assignment::open(&forged, &hub.public(), "ZFY0001"),
            Err(Refusal::Protocol(ProtocolError::BadSignature { .. }))
        ));
        let err = Assignment::open(&msg, &hub.public(), "ZFY0002").unwrap_err();
        assert_eq!(
            err.to_string(),
            "assignment is for \"ZFY0001\", not for recorder \"ZFY0002\""
        );
    }

    #[test]
    fn a_changed_byte_anywhere_is_refused() {
        let hub = SigningKey::from_seed_for_tests(&[1; 32]).unwrap();
        let msg = assignment().seal(&hub);
        for i in 0..msg.len() {
            let mut bad = msg.clone();
            bad[i] ^= 0x01;
            assert!(
                Assignment::open(&bad, &hub.public(), "ZFY0001").is_err(),
                "byte {i} flipped and still accepted"
            );
        }
    }

    #[test]
    fn older_versions_are_refused_as_rollbacks() {
        assert!(check_newer(7, None).is_ok());
        assert!(check_newer(7, Some(6)).is_ok());
        assert!(check_newer(7, Some(7)).is_ok());
        let err = check_newer(6, Some(7)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "assignment version 6 is older than version 7, already accepted: refused as a rollback"
        );
    }
}

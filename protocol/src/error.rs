//! The one error type of the protocol crate: every variant names what was
//! wrong and what was expected, so a rejected message can be logged and
//! counted with a reason a person understands.

use thiserror::Error;

/// Why bytes or a message were refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// The payload is larger than the protocol allows.
    #[error("payload of {size} bytes is larger than the limit of {limit} bytes")]
    Oversized {
        /// Size of what arrived.
        size: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// The bytes do not follow the framing of `docs/wire-protocol.md`.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// Which structure was being decoded (e.g. "record batch").
        what: &'static str,
        /// What was wrong and what was expected.
        detail: String,
    },
    /// An Ed25519 signature does not verify against the given key.
    #[error("signature does not verify against the key of {signer}")]
    BadSignature {
        /// Whose key was tried.
        signer: String,
    },
    /// A public key is not a 32-byte Ed25519 key.
    #[error("invalid public key: {0}")]
    BadKey(String),
    /// A time-limited credential (an upload grant) is past its expiry.
    #[error("{what} expired at {at}: ask for a new one")]
    Expired {
        /// Which credential.
        what: &'static str,
        /// When it expired (RFC 3339).
        at: String,
    },
    /// A device id that cannot be used in a topic.
    #[error("invalid device id {id:?}: expected 1 to 64 characters from A-Z a-z 0-9 . _ -")]
    BadDeviceId {
        /// The offending id.
        id: String,
    },
}

impl ProtocolError {
    /// Shorthand for [`ProtocolError::Malformed`].
    pub fn malformed(what: &'static str, detail: impl Into<String>) -> Self {
        Self::Malformed {
            what,
            detail: detail.into(),
        }
    }

    /// A short, stable label for metrics (`reason="..."`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Oversized { .. } => "oversized",
            Self::Malformed { .. } => "malformed",
            Self::BadSignature { .. } => "bad_signature",
            Self::BadKey(_) => "bad_key",
            Self::Expired { .. } => "expired",
            Self::BadDeviceId { .. } => "bad_device_id",
        }
    }
}

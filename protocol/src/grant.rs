//! Upload grants: the hub's signed permission to upload the bytes of one
//! media record, and the agent's request for one.
//!
//! The hub grants an upload only for a media record it already holds, to the
//! agent that signed that record. A grant travels on
//! `evsync/v1/<agent>/grants` as `"EVG1" || envelope` (signed by the hub
//! under [`Context::Grant`]); the same signed bytes, written as a
//! [`token`](GrantBody::token), are the credential of the HTTP upload. A
//! grant names the record, its SHA-256 and size, and expires: the hub accepts
//! only those bytes, for that record, until then. An agent asks for grants
//! with a [`GrantRequest`] on `evsync/v1/<agent>/uploads`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::{decode_single, encode_single, Envelope};
use crate::signing::{Context, PublicKey, SigningKey, SIGNATURE_LEN};
use crate::ProtocolError;

/// Magic bytes of a grant message.
pub const MAGIC: &[u8; 4] = b"EVG1";

/// Most records one grant request names.
pub const MAX_REQUESTED: usize = 100;

/// Largest grant request accepted (bytes).
pub const MAX_REQUEST_LEN: usize = 8 * 1024;

/// The signed body of a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantBody {
    /// Body version (1).
    pub v: u32,
    /// The hub instance that granted it.
    pub hub_id: String,
    /// The agent allowed to upload (the one that signed the record).
    pub agent_id: String,
    /// The media record the bytes belong to.
    pub record_id: Uuid,
    /// SHA-256 (hex) the uploaded bytes must have.
    pub sha256: String,
    /// Exact size of the upload in bytes.
    pub size: u64,
    /// Where to upload (`HEAD` for the offset, `PATCH` to append).
    pub url: String,
    /// When it was granted.
    pub issued_at: DateTime<Utc>,
    /// After this the credential is refused; the agent asks again.
    pub expires_at: DateTime<Utc>,
}

impl GrantBody {
    /// Signs the grant with the hub key.
    pub fn sign(&self, hub_key: &SigningKey) -> Envelope {
        let body = serde_json::to_vec(self).unwrap_or_default();
        Envelope::seal(hub_key, Context::Grant, body)
    }

    /// Encodes a signed grant as the MQTT message.
    pub fn message(env: &Envelope) -> Vec<u8> {
        encode_single(MAGIC, env)
    }

    /// The HTTP credential of a signed grant: `base64url(body) "." base64url(signature)`.
    pub fn token(env: &Envelope) -> String {
        format!(
            "{}.{}",
            B64URL.encode(&env.body),
            B64URL.encode(env.signature)
        )
    }

    /// Decodes a grant message, verifying it against the pinned hub key.
    /// Expiry is not checked: the agent keeps the grant and asks again when
    /// the hub refuses an expired one.
    pub fn open(payload: &[u8], hub_key: &PublicKey) -> Result<(Self, Envelope), ProtocolError> {
        let env = decode_single("grant", MAGIC, payload)?;
        let body = Self::verified(&env, hub_key)?;
        Ok((body, env))
    }

    /// Checks an HTTP credential: signed by `hub_key` and not expired at `now`.
    pub fn from_token(
        token: &str,
        hub_key: &PublicKey,
        now: DateTime<Utc>,
    ) -> Result<Self, ProtocolError> {
        let bad = |detail: &str| ProtocolError::malformed("grant token", detail.to_owned());
        let (body, sig) = token
            .trim()
            .split_once('.')
            .ok_or_else(|| bad("expected base64url(body).base64url(signature)"))?;
        let body = B64URL
            .decode(body)
            .map_err(|e| bad(&format!("body is not base64url: {e}")))?;
        let signature: [u8; SIGNATURE_LEN] = B64URL
            .decode(sig)
            .map_err(|e| bad(&format!("signature is not base64url: {e}")))?
            .try_into()
            .map_err(|_| bad("signature is not 64 bytes"))?;
        let grant = Self::verified(&Envelope { body, signature }, hub_key)?;
        if grant.expires_at <= now {
            return Err(ProtocolError::Expired {
                what: "upload grant",
                at: grant.expires_at.to_rfc3339(),
            });
        }
        Ok(grant)
    }

    fn verified(env: &Envelope, hub_key: &PublicKey) -> Result<Self, ProtocolError> {
        env.verify(hub_key, Context::Grant, "the hub key")?;
        let body: GrantBody = serde_json::from_slice(&env.body)
            .map_err(|e| ProtocolError::malformed("grant body", e.to_string()))?;
        if body.v != 1 {
            return Err(ProtocolError::malformed(
                "grant body",
                format!("v = {}: expected 1", body.v),
            ));
        }
        Ok(body)
    }
}

/// An agent's request for grants, JSON on `evsync/v1/<agent>/uploads`. It
/// needs no signature: the hub only ever sends the answer to the grants topic
/// of the agent that signed each record, and a grant lets its holder deliver
/// nothing but the bytes whose hash that agent already signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRequest {
    /// Request version (1).
    pub v: u32,
    /// Records whose media the agent wants to upload (1 to [`MAX_REQUESTED`]).
    pub records: Vec<Uuid>,
}

impl GrantRequest {
    /// Encodes the request.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and bounds a request.
    pub fn parse(payload: &[u8]) -> Result<Self, ProtocolError> {
        if payload.len() > MAX_REQUEST_LEN {
            return Err(ProtocolError::Oversized {
                size: payload.len(),
                limit: MAX_REQUEST_LEN,
            });
        }
        let r: GrantRequest = serde_json::from_slice(payload)
            .map_err(|e| ProtocolError::malformed("grant request", e.to_string()))?;
        if r.v != 1 {
            return Err(ProtocolError::malformed(
                "grant request",
                format!("v = {}: expected 1", r.v),
            ));
        }
        if r.records.is_empty() || r.records.len() > MAX_REQUESTED {
            return Err(ProtocolError::malformed(
                "grant request",
                format!("{} records: expected 1 to {MAX_REQUESTED}", r.records.len()),
            ));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> GrantBody {
        GrantBody {
            v: 1,
            hub_id: "hub-1".into(),
            agent_id: "field-1".into(),
            record_id: Uuid::nil(),
            sha256: "ab".repeat(32),
            size: 1 << 30,
            url: "http://127.0.0.1:8480/api/v1/uploads/00000000-0000-0000-0000-000000000000".into(),
            issued_at: DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
            expires_at: DateTime::from_timestamp(1_790_000_900, 0).unwrap(),
        }
    }

    #[test]
    fn a_grant_opens_from_its_message_and_its_token_with_the_hub_key_only() {
        let hub = SigningKey::from_seed_for_tests(&[1; 32]).unwrap();
        let impostor = SigningKey::from_seed_for_tests(&[2; 32]).unwrap();
        let env = grant().sign(&hub);
        let (opened, _) = GrantBody::open(&GrantBody::message(&env), &hub.public()).unwrap();
        assert_eq!(opened, grant());
        let before_expiry = DateTime::from_timestamp(1_790_000_899, 0).unwrap();
        let token = GrantBody::token(&env);
        assert_eq!(
            GrantBody::from_token(&token, &hub.public(), before_expiry).unwrap(),
            grant()
        );
        let forged = GrantBody::token(&grant().sign(&impostor));
        let err = GrantBody::from_token(&forged, &hub.public(), before_expiry).unwrap_err();
        assert_eq!(err.reason(), "bad_signature");
    }

    #[test]
    fn an_expired_or_altered_token_is_refused_with_its_reason() {
        let hub = SigningKey::from_seed_for_tests(&[1; 32]).unwrap();
        let token = GrantBody::token(&grant().sign(&hub));
        let at_expiry = DateTime::from_timestamp(1_790_000_900, 0).unwrap();
        let err = GrantBody::from_token(&token, &hub.public(), at_expiry).unwrap_err();
        assert_eq!(err.reason(), "expired");
        assert!(err.to_string().contains("ask for a new one"), "{err}");

        // Another record id in the body: the signature no longer matches.
        let mut other = grant();
        other.record_id = Uuid::max();
        let (_, sig) = token.split_once('.').unwrap();
        let spliced = format!(
            "{}.{sig}",
            B64URL.encode(serde_json::to_vec(&other).unwrap())
        );
        let now = DateTime::from_timestamp(1_790_000_001, 0).unwrap();
        let err = GrantBody::from_token(&spliced, &hub.public(), now).unwrap_err();
        assert_eq!(err.reason(), "bad_signature");
        for garbage in ["", "abc", "a.b", "!!.!!"] {
            assert!(GrantBody::from_token(garbage, &hub.public(), now).is_err());
        }
    }

    #[test]
    fn grant_requests_are_bounded() {
        let ok = GrantRequest {
            v: 1,
            records: vec![Uuid::nil(); 3],
        };
        assert_eq!(GrantRequest::parse(&ok.to_bytes()).unwrap(), ok);
        let too_many = GrantRequest {
            v: 1,
            records: vec![Uuid::nil(); MAX_REQUESTED + 1],
        };
        let err = GrantRequest::parse(&too_many.to_bytes()).unwrap_err();
        assert!(err.to_string().contains("expected 1 to 100"), "{err}");
        assert!(GrantRequest::parse(br#"{"v":1,"records":[]}"#).is_err());
        assert!(GrantRequest::parse(&vec![b' '; MAX_REQUEST_LEN + 1]).is_err());
    }
}

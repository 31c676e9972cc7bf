//! Ed25519 signing with domain separation. Every signed structure is signed
//! as `context || bytes`, where the context names the structure, so a
//! signature over a record can never pass as a signature over a receipt.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use ring::signature::{self, Ed25519KeyPair, KeyPair};

use crate::ProtocolError;

/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// What a signature is over; the context string is prefixed to the signed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// A record body, signed by the agent that ingested it.
    Record,
    /// A receipt body, signed by the hub.
    Receipt,
    /// A device announcement, signed by the announcing device.
    Announce,
    /// An upload grant, signed by the hub.
    Grant,
    /// A media receipt, signed by the hub.
    MediaReceipt,
    /// The hash of an audit log entry, signed by the hub.
    Audit,
    /// A recorder's configuration assignment, signed by the hub.
    Config,
}

impl Context {
    /// The bytes prefixed to the message before signing.
    pub fn prefix(self) -> &'static [u8] {
        match self {
            Context::Record => b"evsync/v1 record\0",
            Context::Receipt => b"evsync/v1 receipt\0",
            Context::Announce => b"evsync/v1 announce\0",
            Context::Grant => b"evsync/v1 grant\0",
            Context::MediaReceipt => b"evsync/v1 media-receipt\0",
            Context::Audit => b"evsync/v1 audit\0",
            Context::Config => b"evsync/v1 config\0",
        }
    }
}

fn message(context: Context, bytes: &[u8]) -> Vec<u8> {
    let prefix = context.prefix();
    let mut m = Vec::with_capacity(prefix.len() + bytes.len());
    m.extend_from_slice(prefix);
    m.extend_from_slice(bytes);
    m
}

/// A private signing key (agent or hub).
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public().to_base64())
    }
}

impl SigningKey {
    /// Loads a key from a PKCS#8 v2 document (as written by [`SigningKey::generate_pkcs8`]).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, ProtocolError> {
        Ed25519KeyPair::from_pkcs8(der)
            .map(|pair| Self { pair })
            .map_err(|e| ProtocolError::BadKey(format!("not an Ed25519 PKCS#8 key: {e}")))
    }

    /// Creates a new random key and returns its PKCS#8 document.
    pub fn generate_pkcs8() -> Result<Vec<u8>, ProtocolError> {
        let rng = ring::rand::SystemRandom::new();
        Ed25519KeyPair::generate_pkcs8(&rng)
            .map(|doc| doc.as_ref().to_vec())
            .map_err(|e| ProtocolError::BadKey(format!("key generation failed: {e}")))
    }

    /// Deterministic key from a 32-byte seed, for test vectors only.
    pub fn from_seed_for_tests(seed: &[u8; 32]) -> Result<Self, ProtocolError> {
        let public = {
            // ring derives the public key itself; pass it back to satisfy the API.
            let pair = Ed25519KeyPair::from_seed_unchecked(seed)
                .map_err(|e| ProtocolError::BadKey(e.to_string()))?;
            pair.public_key().as_ref().to_vec()
        };
        Ed25519KeyPair::from_seed_and_public_key(seed, &public)
            .map(|pair| Self { pair })
            .map_err(|e| ProtocolError::BadKey(e.to_string()))
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        let mut k = [0u8; 32];
        k.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(k)
    }

    /// Signs `context || bytes`.
    pub fn sign(&self, context: Context, bytes: &[u8]) -> [u8; SIGNATURE_LEN] {
        let sig = self.pair.sign(&message(context, bytes));
        let mut out = [0u8; SIGNATURE_LEN];
        out.copy_from_slice(sig.as_ref());
        out
    }
}

/// An Ed25519 public key (32 bytes), written as standard base64 in configs and JSON.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl PublicKey {
    /// Parses standard base64 of 32 bytes.
    pub fn from_base64(s: &str) -> Result<Self, ProtocolError> {
        let bytes = B64
            .decode(s.trim())
            .map_err(|e| ProtocolError::BadKey(format!("{s:?} is not base64: {e}")))?;
        let arr: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            ProtocolError::BadKey(format!("expected 32 bytes, got {}", b.len()))
        })?;
        Ok(Self(arr))
    }

    /// Standard base64.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// Verifies `signature` over `context || bytes`; `signer` names the key in the error.
    pub fn verify(
        &self,
        context: Context,
        bytes: &[u8],
        signature: &[u8; SIGNATURE_LEN],
        signer: &str,
    ) -> Result<(), ProtocolError> {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(&message(context, bytes), signature)
            .map_err(|_| ProtocolError::BadSignature {
                signer: signer.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_for_one_context_does_not_verify_in_another() {
        let key = SigningKey::from_seed_for_tests(&[7; 32]).unwrap();
        let sig = key.sign(Context::Record, b"hello");
        let public = key.public();
        public.verify(Context::Record, b"hello", &sig, "t").unwrap();
        assert!(public
            .verify(Context::Receipt, b"hello", &sig, "t")
            .is_err());
        assert!(public.verify(Context::Record, b"hellO", &sig, "t").is_err());
    }

    #[test]
    fn public_keys_round_trip_through_base64_and_bad_ones_are_named() {
        let key = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap();
        let b64 = key.public().to_base64();
        assert_eq!(PublicKey::from_base64(&b64).unwrap(), key.public());
        let err = PublicKey::from_base64("AAAA").unwrap_err().to_string();
        assert!(err.contains("expected 32 bytes, got 3"), "{err}");
    }
}

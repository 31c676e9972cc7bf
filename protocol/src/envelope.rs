//! A signed envelope: the exact body bytes and an Ed25519 signature over
//! `context || body`. Encoded as `u32 BE length || body || 64-byte signature`.
//! The receiver verifies the bytes it received and only then parses them.

use crate::signing::{Context, PublicKey, SigningKey, SIGNATURE_LEN};
use crate::ProtocolError;

/// Largest body an envelope may carry (64 KiB).
pub const MAX_BODY_LEN: usize = 64 * 1024;

/// Body bytes with their signature, exactly as transmitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The signed bytes (UTF-8 JSON for every structure in this protocol).
    pub body: Vec<u8>,
    /// Ed25519 signature over `context || body`.
    pub signature: [u8; SIGNATURE_LEN],
}

impl Envelope {
    /// Signs `body` under `context`.
    pub fn seal(key: &SigningKey, context: Context, body: Vec<u8>) -> Self {
        let signature = key.sign(context, &body);
        Self { body, signature }
    }

    /// Verifies the signature against `key`; `signer` names the key in errors.
    pub fn verify(
        &self,
        key: &PublicKey,
        context: Context,
        signer: &str,
    ) -> Result<(), ProtocolError> {
        key.verify(context, &self.body, &self.signature, signer)
    }

    /// Length of the encoded form.
    pub fn encoded_len(&self) -> usize {
        4 + self.body.len() + SIGNATURE_LEN
    }

    /// Appends the encoded form to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        // Bodies are built by this crate and bounded by MAX_BODY_LEN, far below u32::MAX.
        out.extend_from_slice(&(self.body.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.body);
        out.extend_from_slice(&self.signature);
    }

    /// Decodes one envelope from the front of `input`, returning it and the rest.
    pub fn decode_from<'a>(
        what: &'static str,
        input: &'a [u8],
    ) -> Result<(Self, &'a [u8]), ProtocolError> {
        let (len_bytes, rest) = input
            .split_first_chunk::<4>()
            .ok_or_else(|| ProtocolError::malformed(what, "truncated before the body length"))?;
        let len = u32::from_be_bytes(*len_bytes) as usize;
        if len == 0 || len > MAX_BODY_LEN {
            return Err(ProtocolError::malformed(
                what,
                format!("body length {len}: expected 1 to {MAX_BODY_LEN} bytes"),
            ));
        }
        if rest.len() < len + SIGNATURE_LEN {
            return Err(ProtocolError::malformed(
                what,
                format!(
                    "truncated: body length {len} plus a {SIGNATURE_LEN}-byte signature, but only {} bytes remain",
                    rest.len()
                ),
            ));
        }
        let (body, rest) = rest.split_at(len);
        let (sig, rest) = rest.split_at(SIGNATURE_LEN);
        let mut signature = [0u8; SIGNATURE_LEN];
        signature.copy_from_slice(sig);
        Ok((
            Self {
                body: body.to_vec(),
                signature,
            },
            rest,
        ))
    }
}

/// Encodes `magic || envelope`, the form of single-envelope messages
/// (receipts, announcements).
pub fn encode_single(magic: &[u8; 4], envelope: &Envelope) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + envelope.encoded_len());
    out.extend_from_slice(magic);
    envelope.encode_into(&mut out);
    out
}

/// Decodes `magic || envelope` with nothing after it.
pub fn decode_single(
    what: &'static str,
    magic: &[u8; 4],
    input: &[u8],
) -> Result<Envelope, ProtocolError> {
    let rest = input.strip_prefix(magic.as_slice()).ok_or_else(|| {
        ProtocolError::malformed(
            what,
            format!(
                "expected the magic bytes {:?}",
                String::from_utf8_lossy(magic)
            ),
        )
    })?;
    let (env, rest) = Envelope::decode_from(what, rest)?;
    if !rest.is_empty() {
        return Err(ProtocolError::malformed(
            what,
            format!("{} unexpected bytes after the signature", rest.len()),
        ));
    }
    Ok(env)
}

//! The per-source hash chain. Each record names the SHA-256 of the previous
//! record body of the same source and carries the next sequence number, so
//! a missing, reordered or altered record shows as a gap or a break.

use ring::digest;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash(pub [u8; 32]);

/// The `prev_hash` of a source's first record.
pub const GENESIS: Hash = Hash([0; 32]);

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl Hash {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let d = digest::digest(&digest::SHA256, bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Self(out)
    }

    /// SHA-256 and length of everything `from` yields, copied to `to` on
    /// the way (`std::io::sink()` to only hash), in one streaming pass.
    pub fn of_stream(
        from: &mut impl std::io::Read,
        to: &mut impl std::io::Write,
    ) -> std::io::Result<(Self, u64)> {
        let mut ctx = digest::Context::new(&digest::SHA256);
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = from.read(&mut buf)?;
            if n == 0 {
                let mut out = [0u8; 32];
                out.copy_from_slice(ctx.finish().as_ref());
                return Ok((Self(out), size));
            }
            ctx.update(&buf[..n]);
            to.write_all(&buf[..n])?;
            size += n as u64;
        }
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 lowercase hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Self(out))
    }
}

/// Where a source's chain stands: its last sequence number and that record's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Sequence number of the last record (0 before the first).
    pub seq: u64,
    /// Hash of the last record body ([`GENESIS`] before the first).
    pub hash: Hash,
}

impl Default for Head {
    fn default() -> Self {
        Self {
            seq: 0,
            hash: GENESIS,
        }
    }
}

impl Head {
    /// The head after appending a record with this body hash.
    pub fn advance(self, body_hash: Hash) -> Head {
        Head {
            seq: self.seq + 1,
            hash: body_hash,
        }
    }
}

/// How a record relates to the record stored just before it in its source's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// `prev_hash` names the stored predecessor: the chain is intact here.
    Intact,
    /// The predecessor (seq − 1) has not been seen: a gap until it arrives.
    Missing,
    /// The predecessor is stored but its hash differs from `prev_hash`.
    Broken {
        /// What the record says the predecessor's hash is.
        claimed: Hash,
        /// The hash of the predecessor actually stored.
        stored: Hash,
    },
}

/// Checks a record's `prev_hash` against the hash of the stored predecessor
/// (`None` when seq − 1 is not stored; for seq 1 pass `Some(GENESIS)`).
pub fn link(prev_hash: Hash, stored_predecessor: Option<Hash>) -> Link {
    match stored_predecessor {
        None => Link::Missing,
        Some(stored) if stored == prev_hash => Link::Intact,
        Some(stored) => Link::Broken {
            claimed: prev_hash,
            stored,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_hashes_as_its_bytes_and_is_copied_whole() {
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let mut copy = Vec::new();
        let (hash, size) = Hash::of_stream(&mut bytes.as_slice(), &mut copy).unwrap();
        assert_eq!((hash, size), (Hash::of(&bytes), bytes.len() as u64));
        assert_eq!(copy, bytes);
    }

    #[test]
    fn hashes_round_trip_through_hex_and_uppercase_is_refused() {
        let h = Hash::of(b"abc");
        assert_eq!(
            h.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Hash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(Hash::from_hex(&h.to_hex().to_uppercase()), None);
        assert_eq!(Hash::from_hex("00"), None);
    }

    #[test]
    fn a_link_is_intact_missing_or_broken() {
        let a = Hash::of(b"a");
        let b = Hash::of(b"b");
        assert_eq!(link(a, Some(a)), Link::Intact);
        assert_eq!(link(a, None), Link::Missing);
        assert_eq!(
            link(a, Some(b)),
            Link::Broken {
                claimed: a,
                stored: b
            }
        );
        let head = Head::default().advance(a);
        assert_eq!(head, Head { seq: 1, hash: a });
    }
}

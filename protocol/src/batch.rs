//! A batch of signed records: the payload of `evsync/v1/<agent>/records`.
//!
//! `"EVB1" || u16 BE count || count × envelope`. Each envelope is verifiable
//! on its own; batching only amortises MQTT and storage overhead, and lets
//! one receipt answer many records.

use crate::envelope::Envelope;
use crate::ProtocolError;

/// Magic bytes of a record batch.
pub const MAGIC: &[u8; 4] = b"EVB1";
/// Most records one batch may hold.
pub const MAX_RECORDS: usize = 1000;
/// Largest batch payload (1 MiB).
pub const MAX_PAYLOAD: usize = 1024 * 1024;

/// Encodes envelopes as a batch. The caller keeps within [`MAX_RECORDS`] and
/// [`MAX_PAYLOAD`]; [`decode`] on the far side enforces both.
pub fn encode(records: &[Envelope]) -> Vec<u8> {
    let len = 6 + records.iter().map(Envelope::encoded_len).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(records.len().min(u16::MAX as usize) as u16).to_be_bytes());
    for r in records {
        r.encode_into(&mut out);
    }
    out
}

/// Decodes a batch, refusing oversized payloads, wrong magic, bad counts,
/// truncation and trailing bytes.
pub fn decode(payload: &[u8]) -> Result<Vec<Envelope>, ProtocolError> {
    const WHAT: &str = "record batch";
    if payload.len() > MAX_PAYLOAD {
        return Err(ProtocolError::Oversized {
            size: payload.len(),
            limit: MAX_PAYLOAD,
        });
    }
    let rest = payload
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| ProtocolError::malformed(WHAT, "expected the magic bytes \"EVB1\""))?;
    let (count, mut rest) = rest
        .split_first_chunk::<2>()
        .ok_or_else(|| ProtocolError::malformed(WHAT, "truncated before the record count"))?;
    let count = u16::from_be_bytes(*count) as usize;
    if count == 0 || count > MAX_RECORDS {
        return Err(ProtocolError::malformed(
            WHAT,
            format!("record count {count}: expected 1 to {MAX_RECORDS}"),
        ));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let (env, tail) = Envelope::decode_from(WHAT, rest)?;
        out.push(env);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(ProtocolError::malformed(
            WHAT,
            format!("{} unexpected bytes after record {count}", rest.len()),
        ));
    }
    Ok(out)
}

/// Largest number of envelopes from the front of `records` that fit in one batch.
pub fn fitting(records: &[Envelope]) -> usize {
    let mut size = 6;
    let mut n = 0;
    for r in records.iter().take(MAX_RECORDS) {
        size += r.encoded_len();
        if size > MAX_PAYLOAD {
            break;
        }
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env(body: &[u8]) -> Envelope {
        Envelope {
            body: body.to_vec(),
            signature: [9; 64],
        }
    }

    #[test]
    fn a_batch_round_trips() {
        let records = vec![env(b"{\"a\":1}"), env(b"{}")];
        assert_eq!(decode(&encode(&records)).unwrap(), records);
    }

    #[test]
    fn bad_batches_are_refused_with_a_reason() {
        let good = encode(&[env(b"x")]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"XXXX".to_vec(), "magic"),
            (b"EVB1".to_vec(), "truncated before the record count"),
            (b"EVB1\0\0".to_vec(), "record count 0"),
            (good[..good.len() - 1].to_vec(), "truncated"),
            ([good.clone(), vec![1]].concat(), "unexpected bytes"),
            (vec![0; MAX_PAYLOAD + 1], "larger than the limit"),
        ];
        for (bytes, expected) in cases {
            let err = decode(&bytes).unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{err:?} does not mention {expected:?}"
            );
        }
    }

    #[test]
    fn fitting_stops_before_the_payload_limit() {
        let big = env(&vec![b'x'; 60 * 1024]);
        let records = vec![big; 40];
        let n = fitting(&records);
        assert!(n > 0 && n < 40);
        assert!(encode(&records[..n]).len() <= MAX_PAYLOAD);
        assert!(encode(&records[..n + 1]).len() > MAX_PAYLOAD);
    }

    proptest! {
        #[test]
        fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
            let mut framed = MAGIC.to_vec();
            framed.extend_from_slice(&bytes);
            let _ = decode(&framed);
        }

        #[test]
        fn any_batch_round_trips(bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..200), 1..20)) {
            let records: Vec<Envelope> = bodies.iter().map(|b| env(b)).collect();
            prop_assert_eq!(decode(&encode(&records)).unwrap(), records);
        }
    }
}

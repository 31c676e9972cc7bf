//! Framing: how messages are cut out of a byte stream that may drop, add or
//! flip bytes.
//!
//! ```text
//! offset size  field
//! 0      2     start of frame: 0xA5 0x5A
//! 2      1     frame format version: 1
//! 3      1     command code; bit 7 set on responses
//! 4      2     request id (little endian), echoed by the response
//! 6      2     payload length N (little endian), at most MAX_PAYLOAD
//! 8      2     header CRC: CRC-16/IBM-3740 (CCITT-FALSE) over bytes 2..8
//! 10     N     payload
//! 10+N   4     frame CRC: CRC-32/ISO-HDLC over bytes 2..10+N
//! ```
//!
//! The header has its own CRC so that a damaged length never makes the
//! receiver wait for bytes that will not come: a bad header costs one byte
//! of resynchronisation, not a timeout. A frame whose header is sound but
//! whose payload fails its CRC is reported as [`Decoded::Damaged`] with its
//! code and id, so the receiver can ask for it again at once.

use crc::{Crc, CRC_16_IBM_3740, CRC_32_ISO_HDLC};

/// First two bytes of every frame.
pub const SOF: [u8; 2] = [0xA5, 0x5A];
/// The frame format this crate writes and reads.
pub const FRAME_VERSION: u8 = 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 10;
/// Bytes after the payload.
pub const TRAILER_LEN: usize = 4;
/// Largest payload a frame may carry (a 32 KiB file chunk plus its fields).
pub const MAX_PAYLOAD: usize = 32 * 1024 + 64;
/// Bit set in the code of a response.
pub const RESPONSE_BIT: u8 = 0x80;
/// Most bytes the decoder buffers while looking for a frame.
const MAX_BUFFERED: usize = 4 * (HEADER_LEN + MAX_PAYLOAD + TRAILER_LEN);

const CRC16: Crc<u16> = Crc::<u16>::new(&CRC_16_IBM_3740);
const CRC32: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);

/// One frame: a command code, a request id and a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Command code; [`RESPONSE_BIT`] set on responses.
    pub code: u8,
    /// Request id chosen by the host, echoed by the recorder.
    pub id: u16,
    /// The message, as [`crate::message`] encodes it.
    pub payload: Vec<u8>,
}

/// A frame could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payload of {len} bytes is over the frame limit of {MAX_PAYLOAD} bytes")]
pub struct TooLarge {
    /// The payload length asked for.
    pub len: usize,
}

impl Frame {
    /// Whether this frame is a response.
    pub fn is_response(&self) -> bool {
        self.code & RESPONSE_BIT != 0
    }

    /// The frame's bytes on the wire.
    pub fn encode(&self) -> Result<Vec<u8>, TooLarge> {
        let len = self.payload.len();
        if len > MAX_PAYLOAD {
            return Err(TooLarge { len });
        }
        let mut out = Vec::with_capacity(HEADER_LEN + len + TRAILER_LEN);
        out.extend_from_slice(&SOF);
        out.push(FRAME_VERSION);
        out.push(self.code);
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&(len as u16).to_le_bytes());
        let header_crc = CRC16.checksum(&out[2..8]);
        out.extend_from_slice(&header_crc.to_le_bytes());
        out.extend_from_slice(&self.payload);
        let frame_crc = CRC32.checksum(&out[2..]);
        out.extend_from_slice(&frame_crc.to_le_bytes());
        Ok(out)
    }
}

/// What the decoder found in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A sound frame.
    Frame(Frame),
    /// A frame whose header was sound and whose payload or frame CRC was not:
    /// the sender should be asked for it again.
    Damaged {
        /// Its command code.
        code: u8,
        /// Its request id.
        id: u16,
    },
}

/// Counters of what the decoder threw away, for status and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecoderStats {
    /// Sound frames decoded.
    pub frames: u64,
    /// Frames with a sound header and a bad frame CRC.
    pub damaged: u64,
    /// Bytes skipped while looking for a frame start.
    pub skipped: u64,
}

/// Streaming decoder: push bytes as they arrive, pull frames.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    stats: DecoderStats,
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds received bytes. If the buffer grows past its bound without
    /// yielding a frame (a stream of garbage), the oldest bytes are dropped.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > MAX_BUFFERED {
            let excess = self.buf.len() - MAX_BUFFERED;
            self.skip(excess);
        }
    }

    /// What was thrown away so far.
    pub fn stats(&self) -> DecoderStats {
        self.stats
    }

    /// Bytes held, waiting for the rest of a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn skip(&mut self, n: usize) {
        self.buf.drain(..n);
        self.stats.skipped += n as u64;
    }

    /// The next frame or damaged frame in the buffered bytes, or `None`
    /// until more bytes arrive.
    pub fn decode(&mut self) -> Option<Decoded> {
        loop {
            // Find a start of frame; keep a trailing 0xA5 that may begin one.
            match self.buf.windows(2).position(|w| w == SOF) {
                Some(0) => {}
                Some(at) => self.skip(at),
                None => {
                    let keep = usize::from(self.buf.last() == Some(&SOF[0]));
                    let n = self.buf.len() - keep;
                    self.skip(n);
                    return None;
                }
            }
            if self.buf.len() < HEADER_LEN {
                return None;
            }
            let header_crc = u16::from_le_bytes([self.buf[8], self.buf[9]]);
            let len = usize::from(u16::from_le_bytes([self.buf[6], self.buf[7]]));
            if self.buf[2] != FRAME_VERSION
                || CRC16.checksum(&self.buf[2..8]) != header_crc
                || len > MAX_PAYLOAD
            {
                // Not a frame start after all (or a damaged header): resynchronise.
                self.skip(1);
                continue;
            }
            let total = HEADER_LEN + len + TRAILER_LEN;
            if self.buf.len() < total {
                return None;
            }
            let code = self.buf[3];
            let id = u16::from_le_bytes([self.buf[4], self.buf[5]]);
            let at = HEADER_LEN + len;
            let frame_crc = u32::from_le_bytes([
                self.buf[at],
                self.buf[at + 1],
                self.buf[at + 2],
                self.buf[at + 3],
            ]);
            if CRC32.checksum(&self.buf[2..at]) != frame_crc {
                // The payload may hide the next real frame start: skip only the SOF.
                self.skip(1);
                self.stats.damaged += 1;
                return Some(Decoded::Damaged { code, id });
            }
            let payload = self.buf[HEADER_LEN..at].to_vec();
            self.buf.drain(..total);
            self.stats.frames += 1;
            return Some(Decoded::Frame(Frame { code, id, payload }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(code: u8, id: u16, payload: &[u8]) -> Frame {
        Frame {
            code,
            id,
            payload: payload.to_vec(),
        }
    }

    fn decode_all(d: &mut Decoder) -> Vec<Decoded> {
        std::iter::from_fn(|| d.decode()).collect()
    }

    #[test]
    fn a_known_frame_has_the_documented_bytes() {
        // Test vector for implementers (docs/recorder-protocol.md).
        let bytes = frame(0x03, 0x0102, &[]).encode().unwrap();
        assert_eq!(
            bytes,
            [0xA5, 0x5A, 0x01, 0x03, 0x02, 0x01, 0x00, 0x00, 0x3A, 0x7F, 0x05, 0xFF, 0xDB, 0x0D]
        );
    }

    #[test]
    fn frames_split_anywhere_decode_whole() {
        let a = frame(0x11, 7, &[1, 2, 3, 0xA5, 0x5A, 9]);
        let b = frame(0x91, 7, &vec![0x5A; 1000]);
        let mut bytes = a.encode().unwrap();
        bytes.extend(b.encode().unwrap());
        for cut in [1, 2, 9, 10, 11, 15, 20, bytes.len() - 1] {
            let mut d = Decoder::new();
            d.push(&bytes[..cut]);
            let mut got = decode_all(&mut d);
            d.push(&bytes[cut..]);
            got.extend(decode_all(&mut d));
            assert_eq!(
                got,
                vec![Decoded::Frame(a.clone()), Decoded::Frame(b.clone())]
            );
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn garbage_before_and_between_frames_is_skipped_and_counted() {
        let a = frame(0x04, 1, b"hello");
        let mut bytes = vec![0xA5, 0x00, 0xFF, 0xA5, 0x5A, 0x01];
        bytes.extend(a.encode().unwrap());
        bytes.extend([0x13, 0x37]);
        bytes.extend(a.encode().unwrap());
        let mut d = Decoder::new();
        d.push(&bytes);
        assert_eq!(
            decode_all(&mut d),
            vec![Decoded::Frame(a.clone()), Decoded::Frame(a)]
        );
        assert_eq!(d.stats().skipped, 8);
    }

    #[test]
    fn a_flipped_payload_bit_is_reported_with_the_frame_id_and_the_next_frame_survives() {
        let a = frame(0x91, 42, &[7; 64]);
        let b = frame(0x84, 43, b"next");
        let mut bytes = a.encode().unwrap();
        bytes[HEADER_LEN + 5] ^= 0x10;
        bytes.extend(b.encode().unwrap());
        let mut d = Decoder::new();
        d.push(&bytes);
        assert_eq!(
            decode_all(&mut d),
            vec![Decoded::Damaged { code: 0x91, id: 42 }, Decoded::Frame(b)]
        );
    }

    #[test]
    fn a_dropped_byte_loses_only_its_frame() {
        let a = frame(0x91, 1, &[3; 100]);
        let b = frame(0x91, 2, &[4; 100]);
        let mut bytes = a.encode().unwrap();
        bytes.remove(50);
        bytes.extend(b.encode().unwrap());
        let mut d = Decoder::new();
        d.push(&bytes);
        let got = decode_all(&mut d);
        assert_eq!(got.last(), Some(&Decoded::Frame(b)));
        assert!(!got.contains(&Decoded::Frame(a)));
    }

    #[test]
    fn a_damaged_length_does_not_stall_the_stream() {
        let a = frame(0x91, 1, &[3; 10]);
        let b = frame(0x84, 2, b"ok");
        let mut bytes = a.encode().unwrap();
        bytes[7] = 0x7F; // length 32 KiB+: caught by the header CRC
        bytes.extend(b.encode().unwrap());
        let mut d = Decoder::new();
        d.push(&bytes);
        assert_eq!(decode_all(&mut d), vec![Decoded::Frame(b)]);
    }

    #[test]
    fn oversized_payloads_are_refused_by_the_encoder() {
        let err = frame(0x91, 1, &vec![0; MAX_PAYLOAD + 1])
            .encode()
            .unwrap_err();
        assert!(err.to_string().contains("over the frame limit"));
    }

    #[test]
    fn endless_garbage_keeps_the_buffer_bounded() {
        let mut d = Decoder::new();
        for _ in 0..100 {
            d.push(&[0xA5; 10_000]);
            while d.decode().is_some() {}
        }
        assert!(d.buffered() <= MAX_BUFFERED);
    }

    proptest! {
        #[test]
        fn any_frame_round_trips(code: u8, id: u16, payload in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let f = frame(code, id, &payload);
            let mut d = Decoder::new();
            d.push(&f.encode().unwrap());
            prop_assert_eq!(d.decode(), Some(Decoded::Frame(f)));
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_a_frame_after_them_is_found(
            junk in proptest::collection::vec(any::<u8>(), 0..4000)
        ) {
            let f = frame(0x84, 9, b"after");
            let mut d = Decoder::new();
            d.push(&junk);
            while d.decode().is_some() {}
            // Whatever partial frame the junk left, a clean stream resumes within two frames.
            let bytes = f.encode().unwrap();
            d.push(&bytes);
            d.push(&bytes);
            let got = decode_all(&mut d);
            prop_assert!(got.contains(&Decoded::Frame(f)));
        }
    }
}

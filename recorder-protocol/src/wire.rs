//! Payload field encoding: little-endian integers, length-prefixed UTF-8
//! strings, recorder times. Every read names the field it failed on.

use chrono::NaiveDateTime;

use crate::message::DecodeError;

/// Format of recorder clock times on the wire (GA/T 947 `SyncDevTime`).
pub const TIME_FORMAT: &str = "%Y%m%d%H%M%S";

/// Appends fields to a payload.
#[derive(Debug, Default)]
pub struct Writer(Vec<u8>);

impl Writer {
    /// An empty payload.
    pub fn new() -> Self {
        Self::default()
    }
    /// The payload.
    pub fn finish(self) -> Vec<u8> {
        self.0
    }
    /// One byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    /// Two bytes, little endian.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Two bytes, little endian, signed.
    pub fn i16(&mut self, v: i16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Four bytes, little endian.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Eight bytes, little endian.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Raw bytes, no length.
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    /// A string of at most 255 bytes: length byte, then UTF-8. Longer strings
    /// are cut at a character boundary (callers validate lengths first).
    pub fn str8(&mut self, v: &str) -> &mut Self {
        let mut end = v.len().min(255);
        while !v.is_char_boundary(end) {
            end -= 1;
        }
        self.u8(end as u8).raw(&v.as_bytes()[..end])
    }
    /// Bytes of at most 65535: two length bytes, then the bytes (cut if longer).
    pub fn bytes16(&mut self, v: &[u8]) -> &mut Self {
        let n = v.len().min(usize::from(u16::MAX));
        self.u16(n as u16).raw(&v[..n])
    }
    /// A recorder clock time, 14 ASCII digits `YYYYMMDDhhmmss`.
    pub fn time(&mut self, t: NaiveDateTime) -> &mut Self {
        let s = t.format(TIME_FORMAT).to_string();
        self.raw(s.as_bytes())
    }
}

/// Reads fields from a payload.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Reads `buf` from its start.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, at: 0 }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let rest = self.buf.len() - self.at;
        if rest < n {
            return Err(DecodeError::Truncated {
                field,
                needed: n,
                left: rest,
            });
        }
        let s = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    /// One byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }
    /// Two bytes, little endian.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(2, field)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    /// Two bytes, little endian, signed.
    pub fn i16(&mut self, field: &'static str) -> Result<i16, DecodeError> {
        let b = self.take(2, field)?;
        Ok(i16::from_le_bytes([b[0], b[1]]))
    }
    /// Four bytes, little endian.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// Eight bytes, little endian.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let b = self.take(8, field)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    /// Exactly `N` raw bytes.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let b = self.take(N, field)?;
        let mut a = [0; N];
        a.copy_from_slice(b);
        Ok(a)
    }
    /// A length-byte string; must be UTF-8.
    pub fn str8(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let n = usize::from(self.u8(field)?);
        let b = self.take(n, field)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::NotUtf8 { field })
    }
    /// Two-length-byte bytes.
    pub fn bytes16(&mut self, field: &'static str) -> Result<Vec<u8>, DecodeError> {
        let n = usize::from(self.u16(field)?);
        Ok(self.take(n, field)?.to_vec())
    }
    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.at..];
        self.at = self.buf.len();
        s
    }
    /// A recorder clock time, 14 ASCII digits.
    pub fn time(&mut self, field: &'static str) -> Result<NaiveDateTime, DecodeError> {
        let b = self.take(14, field)?;
        let s = std::str::from_utf8(b).map_err(|_| DecodeError::NotUtf8 { field })?;
        parse_time(s).ok_or_else(|| DecodeError::Invalid {
            field,
            value: s.escape_debug().to_string(),
            expected: "a calendar time as YYYYMMDDhhmmss",
        })
    }
    /// Fails if bytes are left over (a message longer than its fields).
    pub fn end(&self, message: &'static str) -> Result<(), DecodeError> {
        match self.buf.len() - self.at {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes { message, extra }),
        }
    }
}

/// Parses `YYYYMMDDhhmmss`.
pub fn parse_time(s: &str) -> Option<NaiveDateTime> {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDateTime::parse_from_str(s, TIME_FORMAT).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_short_payloads_name_the_field() {
        let t = parse_time("20261123083000").unwrap();
        let mut w = Writer::new();
        w.u8(1).u16(2).u32(3).u64(4).i16(-480).str8("张三").time(t);
        let bytes = w.finish();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8("a").unwrap(), 1);
        assert_eq!(r.u16("b").unwrap(), 2);
        assert_eq!(r.u32("c").unwrap(), 3);
        assert_eq!(r.u64("d").unwrap(), 4);
        assert_eq!(r.i16("e").unwrap(), -480);
        assert_eq!(r.str8("name").unwrap(), "张三");
        assert_eq!(r.time("clock").unwrap(), t);
        r.end("test").unwrap();
        let err = Reader::new(&bytes[..3]).u64("size").unwrap_err();
        assert_eq!(
            err.to_string(),
            "field size needs 8 bytes, 3 left (message cut short)"
        );
    }

    #[test]
    fn only_real_calendar_times_are_accepted() {
        assert!(
            parse_time("20260229120000").is_none(),
            "2026 is not a leap year"
        );
        assert!(parse_time("2026112308300").is_none());
        assert!(parse_time("2026112308300x").is_none());
        assert!(parse_time("+0261123083000").is_none());
        assert!(parse_time("20281231235959").is_some());
    }

    #[test]
    fn long_strings_are_cut_at_a_character_boundary() {
        let s = "警".repeat(100); // 300 bytes
        let mut w = Writer::new();
        w.str8(&s);
        let bytes = w.finish();
        assert_eq!(bytes[0], 255);
        let got = Reader::new(&bytes).str8("s").unwrap();
        assert_eq!(got.chars().count(), 85);
    }
}

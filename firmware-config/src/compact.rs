//! The compact form: the binary encoding a recorder's firmware parses without
//! a TOML parser, sent as `SetConfig` format 1 over the serial protocol, and
//! hashed for [`RecorderConfig::content_hash`].
//!
//! Layout: the magic bytes `RC`, the format version byte `1`, then every
//! field as a tag byte followed by its value, in ascending tag order. There
//! is exactly one encoding of each configuration (every field present, in
//! tag order), so equal configurations give equal bytes and equal hashes.
//!
//! Numbers are big-endian; strings are a length byte then that many bytes of
//! UTF-8 (every valid string is at most 64 bytes). Allowed values are those
//! of the TOML form (see the fields of [`RecorderConfig`]); a decoded
//! configuration is validated like any other.
//!
//! | tag | field | encoding |
//! |-----|-------|----------|
//! | 0x10 | `video.resolution` | u8: 0 = 720p, 1 = 1080p, 2 = 1296p |
//! | 0x11 | `video.frame_rate` | u32 |
//! | 0x12 | `video.bitrate_kbps` | u32 |
//! | 0x13 | `video.night_mode` | u8: 0 = off, 1 = auto, 2 = on |
//! | 0x20 | `recording.pre_record_secs` | u32 |
//! | 0x21 | `recording.post_record_secs` | u32 |
//! | 0x22 | `recording.segment_minutes` | u32 |
//! | 0x23 | `recording.audio` | u8: 0 = false, 1 = true |
//! | 0x28 | `recording.triggers.holster` | u8: 0 = false, 1 = true |
//! | 0x29 | `recording.triggers.lightbar` | u8: 0 = false, 1 = true |
//! | 0x2a | `recording.triggers.speed_kmh` | u32 |
//! | 0x2b | `recording.triggers.fall_detection` | u8: 0 = false, 1 = true |
//! | 0x30 | `watermark.officer_id` | u8: 0 = false, 1 = true |
//! | 0x31 | `watermark.device_id` | u8: 0 = false, 1 = true |
//! | 0x32 | `watermark.time` | u8: 0 = false, 1 = true |
//! | 0x33 | `watermark.gps` | u8: 0 = false, 1 = true |
//! | 0x40 | `gps.interval_secs` | u32 |
//! | 0x50 | `time.utc_offset_min` | i16 |
//! | 0x51 | `time.sync` | u8: 0 = dock, 1 = gps, 2 = dock_and_gps |
//! | 0x52 | `time.max_drift_ms` | u32 |
//! | 0x60 | `storage.when_full` | u8: 0 = stop_and_alarm, 1 = overwrite_synced_only |
//! | 0x61 | `storage.reserve_mb` | u32 |
//! | 0x70 | `upload.when` | u8: 0 = docked_only, 1 = wifi, 2 = any_network |
//! | 0x71 | `upload.release_after` | u8: 0 = agent_copy, 1 = hub_receipt |
//! | 0x72 | `upload.important_first` | u8: 0 = false, 1 = true |
//! | 0x80 | `identity.device_id` | u8 length, UTF-8 |
//! | 0x81 | `identity.unit_code` | u8 length, UTF-8 |
//! | 0x82 | `identity.officer_id` | u8 length, UTF-8 |
//! | 0x90 | `firmware.min_version` | u8 length, UTF-8 |
//! | 0x91 | `firmware.max_version` | u8 length, UTF-8 |
//!
//! Decoding refuses, each with the byte offset and the field: bad magic or
//! format version, an unknown tag, a tag repeated or out of order, a missing
//! field, a truncated value, a boolean or enum number out of range, a string
//! that is not UTF-8, and bytes after the last field.

use toml::Value;

use crate::fields::{self, Field, Flat, Kind, FIELDS};
use crate::{ConfigError, RecorderConfig};

/// First bytes of every compact configuration.
pub const MAGIC: [u8; 2] = *b"RC";
/// Format version this crate writes and reads (`SetConfig` format 1).
pub const FORMAT: u8 = 1;

impl RecorderConfig {
    /// The compact form (see [`compact`](crate::compact)). A valid
    /// configuration decodes back unchanged; a string longer than 255 bytes,
    /// which no valid configuration holds, is cut to 255 at a character
    /// boundary.
    pub fn to_compact(&self) -> Vec<u8> {
        let values = fields::flatten(self);
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT);
        for field in &FIELDS {
            out.push(field.tag);
            encode(field, values.get(field.path), &mut out);
        }
        out
    }

    /// Decodes the compact form and validates the configuration.
    pub fn from_compact(bytes: &[u8]) -> Result<Self, ConfigError> {
        let values = decode(bytes)?;
        // Cannot fail: decoding gave every field a value of its type.
        let config = fields::from_flat(&values).map_err(|e| ConfigError::Compact {
            offset: bytes.len(),
            reason: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// SHA-256 (lowercase hex) of the compact form: equal configurations
    /// hash equally, and any change of any field changes the hash.
    pub fn content_hash(&self) -> String {
        hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            &self.to_compact(),
        ))
    }
}

fn encode(field: &Field, value: Option<&Value>, out: &mut Vec<u8>) {
    match (field.kind, value) {
        (Kind::Bool, Some(Value::Boolean(b))) => out.push(u8::from(*b)),
        (Kind::Choice(names), Some(Value::String(s))) => {
            // Every variant's name is in the list (fields::tests checks it);
            // 0xff, which decoding refuses, stands for an impossible miss.
            let index = names.iter().position(|n| n == s).unwrap_or(0xff);
            out.push(u8::try_from(index).unwrap_or(0xff));
        }
        (Kind::U32(_), Some(Value::Integer(n))) => {
            // The field is a u32, so the value fits.
            out.extend_from_slice(&u32::try_from(*n).unwrap_or(u32::MAX).to_be_bytes());
        }
        (Kind::I16(_), Some(Value::Integer(n))) => {
            // The field is an i16, so the value fits.
            out.extend_from_slice(&i16::try_from(*n).unwrap_or(i16::MAX).to_be_bytes());
        }
        (Kind::Text(_), Some(Value::String(s))) => {
            let mut end = s.len().min(255);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            out.push(end as u8); // end <= 255
            out.extend_from_slice(&s.as_bytes()[..end]);
        }
        // The table and the structs agree on every field's kind
        // (fields::tests), and a flattened config has every field.
        _ => unreachable!(
            "{}: the field table does not match RecorderConfig",
            field.path
        ),
    }
}

fn refuse(offset: usize, reason: String) -> ConfigError {
    ConfigError::Compact { offset, reason }
}

/// `video.frame_rate (tag 0x11)`.
fn name(field: &Field) -> String {
    format!("{} (tag {:#04x})", field.path, field.tag)
}

fn decode(bytes: &[u8]) -> Result<Flat, ConfigError> {
    if bytes.get(..2) != Some(&MAGIC[..]) {
        let found = match bytes.len() {
            0 => "nothing".to_owned(),
            n => hex::encode(&bytes[..n.min(2)]),
        };
        return Err(refuse(
            0,
            format!("expected the magic bytes \"RC\" (52 43), found {found}"),
        ));
    }
    match bytes.get(2) {
        Some(&FORMAT) => {}
        Some(other) => {
            return Err(refuse(
                2,
                format!("format version {other}; this decoder reads version {FORMAT}"),
            ));
        }
        None => {
            return Err(refuse(
                2,
                "the input ends before the format version".to_owned(),
            ))
        }
    }
    let mut at = 3;
    let mut values = Flat::new();
    for (i, field) in FIELDS.iter().enumerate() {
        let Some(&tag) = bytes.get(at) else {
            return Err(refuse(
                at,
                format!("{} is missing: the input ends", name(field)),
            ));
        };
        if tag != field.tag {
            return Err(refuse(at, misplaced(tag, i)));
        }
        at += 1;
        let value = read(field, bytes, &mut at)?;
        values.insert(field.path.to_owned(), value);
    }
    if at < bytes.len() {
        let extra = bytes.len() - at;
        return Err(refuse(
            at,
            format!("{extra} byte(s) after the last field, firmware.max_version (tag 0x91)"),
        ));
    }
    Ok(values)
}

/// Why `tag` cannot stand where field `i` is due.
fn misplaced(tag: u8, i: usize) -> String {
    let due = &FIELDS[i];
    match FIELDS.iter().position(|f| f.tag == tag) {
        None => format!("unknown tag {tag:#04x} where {} is due", name(due)),
        Some(j) if j < i => format!(
            "{} again, where {} is due: each field appears once, tags ascending",
            name(&FIELDS[j]),
            name(due)
        ),
        Some(j) => format!(
            "{} is missing: found {} in its place; every field appears, tags ascending",
            name(due),
            name(&FIELDS[j])
        ),
    }
}

/// `n` bytes of `field`'s value at `*at`; moves `*at` past them.
fn take<'a>(
    bytes: &'a [u8],
    at: &mut usize,
    n: usize,
    field: &Field,
) -> Result<&'a [u8], ConfigError> {
    let left = bytes.len() - *at;
    if left < n {
        return Err(refuse(
            *at,
            format!(
                "{}: value truncated: needs {n} byte(s), {left} left",
                name(field)
            ),
        ));
    }
    let taken = &bytes[*at..*at + n];
    *at += n;
    Ok(taken)
}

/// The value of `field` starting at `*at`; moves `*at` past it.
fn read(field: &Field, bytes: &[u8], at: &mut usize) -> Result<Value, ConfigError> {
    let start = *at;
    Ok(match field.kind {
        Kind::Bool => match take(bytes, at, 1, field)?[0] {
            0 => Value::Boolean(false),
            1 => Value::Boolean(true),
            other => {
                return Err(refuse(
                    start,
                    format!(
                        "{}: {other} is not a boolean; expected 0 (false) or 1 (true)",
                        name(field)
                    ),
                ));
            }
        },
        Kind::Choice(names) => {
            let index = take(bytes, at, 1, field)?[0];
            let Some(n) = names.get(usize::from(index)) else {
                let known: Vec<String> = names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| format!("{i} ({n})"))
                    .collect();
                return Err(refuse(
                    start,
                    format!(
                        "{}: enum number {index}; expected {}",
                        name(field),
                        known.join(", ")
                    ),
                ));
            };
            Value::String((*n).to_owned())
        }
        Kind::U32(_) => {
            let b = take(bytes, at, 4, field)?;
            Value::Integer(i64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
        }
        Kind::I16(_) => {
            let b = take(bytes, at, 2, field)?;
            Value::Integer(i64::from(i16::from_be_bytes([b[0], b[1]])))
        }
        Kind::Text(_) => {
            let len = usize::from(take(bytes, at, 1, field)?[0]);
            let text = take(bytes, at, len, field)?;
            match std::str::from_utf8(text) {
                Ok(s) => Value::String(s.to_owned()),
                Err(e) => {
                    return Err(refuse(
                        start + 1 + e.valid_up_to(),
                        format!("{}: the string is not UTF-8", name(field)),
                    ));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::arbitrary::{valid, valid_config};

    /// The compact refusal of `bytes`: (offset, reason).
    fn refusal(bytes: &[u8]) -> (usize, String) {
        match RecorderConfig::from_compact(bytes) {
            Err(ConfigError::Compact { offset, reason }) => (offset, reason),
            other => panic!("expected a compact refusal, got {other:?}"),
        }
    }

    /// Offset of `path`'s tag in the encoding of `valid()`.
    fn tag_offset(bytes: &[u8], path: &str) -> usize {
        let mut at = 3;
        for f in &FIELDS {
            if f.path == path {
                return at;
            }
            at += 1;
            let len = match f.kind {
                Kind::Bool | Kind::Choice(_) => 1,
                Kind::U32(_) => 4,
                Kind::I16(_) => 2,
                Kind::Text(_) => 1 + usize::from(bytes[at]),
            };
            at += len;
        }
        panic!("no field {path}")
    }

    #[test]
    fn the_default_config_has_these_bytes_and_this_hash() {
        let config = RecorderConfig::default();
        assert_eq!(
            hex::encode(config.to_compact()),
            "524301\
             100111000000191200000fa01301\
             200000001e210000001e220000000f2301\
             280029002a000000002b00\
             3001310132013301\
             400000000a\
             5001e0510052000007d0\
             60006100000200\
             700071007201\
             800081008200\
             90009100"
        );
        assert_eq!(
            config.content_hash(),
            "90baa832c741578a4e235fd9e7cb5b531fbbffcff8f36336119143d2acfabe11"
        );
    }

    #[test]
    fn the_documented_table_is_the_one_in_use() {
        let source = include_str!("compact.rs");
        for f in &FIELDS {
            let encoding = match f.kind {
                Kind::Bool => "u8: 0 = false, 1 = true".to_owned(),
                Kind::Choice(names) => {
                    let numbered: Vec<String> = names
                        .iter()
                        .enumerate()
                        .map(|(i, n)| format!("{i} = {n}"))
                        .collect();
                    format!("u8: {}", numbered.join(", "))
                }
                Kind::U32(_) => "u32".to_owned(),
                Kind::I16(_) => "i16".to_owned(),
                Kind::Text(_) => "u8 length, UTF-8".to_owned(),
            };
            let row = format!("//! | {:#04x} | `{}` | {encoding} |\n", f.tag, f.path);
            assert!(source.contains(&row), "missing row: {row}");
        }
    }

    #[test]
    fn bad_magic_or_format_version_is_refused() {
        let mut bytes = valid().to_compact();
        bytes[0] = b'X';
        assert_eq!(
            refusal(&bytes),
            (
                0,
                "expected the magic bytes \"RC\" (52 43), found 5843".to_owned()
            )
        );
        assert_eq!(refusal(b"").0, 0);
        assert_eq!(
            refusal(b"RC"),
            (2, "the input ends before the format version".to_owned())
        );
        let mut bytes = valid().to_compact();
        bytes[2] = 2;
        assert_eq!(
            refusal(&bytes),
            (
                2,
                "format version 2; this decoder reads version 1".to_owned()
            )
        );
    }

    #[test]
    fn an_unknown_tag_is_refused_naming_the_field_due() {
        let mut bytes = valid().to_compact();
        let at = tag_offset(&bytes, "video.night_mode");
        bytes[at] = 0x14;
        assert_eq!(
            refusal(&bytes),
            (
                at,
                "unknown tag 0x14 where video.night_mode (tag 0x13) is due".to_owned()
            )
        );
    }

    #[test]
    fn a_repeated_tag_is_refused() {
        let bytes = valid().to_compact();
        let at = tag_offset(&bytes, "video.night_mode");
        // Repeat video.bitrate_kbps (its tag and 4 value bytes).
        let mut repeated = bytes[..at].to_vec();
        repeated.extend_from_slice(&bytes[at - 5..at]);
        repeated.extend_from_slice(&bytes[at..]);
        let (offset, reason) = refusal(&repeated);
        assert_eq!(offset, at);
        assert!(
            reason.starts_with(
                "video.bitrate_kbps (tag 0x12) again, where video.night_mode (tag 0x13) is due"
            ),
            "{reason}"
        );
    }

    #[test]
    fn tags_out_of_order_are_refused_naming_the_missing_field() {
        let mut bytes = valid().to_compact();
        // Swap audio (0x23, 1 byte) and holster (0x28, 1 byte).
        let at = tag_offset(&bytes, "recording.audio");
        let (audio, holster) = (bytes[at..at + 2].to_vec(), bytes[at + 2..at + 4].to_vec());
        bytes[at..at + 2].copy_from_slice(&holster);
        bytes[at + 2..at + 4].copy_from_slice(&audio);
        let (offset, reason) = refusal(&bytes);
        assert_eq!(offset, at);
        assert!(
            reason.starts_with(
                "recording.audio (tag 0x23) is missing: found recording.triggers.holster (tag 0x28)"
            ),
            "{reason}"
        );
    }

    #[test]
    fn a_missing_field_is_refused_by_name() {
        let bytes = valid().to_compact();
        let at = tag_offset(&bytes, "firmware.max_version");
        assert_eq!(
            refusal(&bytes[..at]),
            (
                at,
                "firmware.max_version (tag 0x91) is missing: the input ends".to_owned()
            )
        );
    }

    #[test]
    fn a_truncated_value_is_refused_by_name() {
        let bytes = valid().to_compact();
        let at = tag_offset(&bytes, "video.bitrate_kbps");
        assert_eq!(
            refusal(&bytes[..at + 3]),
            (
                at + 1,
                "video.bitrate_kbps (tag 0x12): value truncated: needs 4 byte(s), 2 left"
                    .to_owned()
            )
        );
        let at = tag_offset(&bytes, "identity.device_id");
        let (offset, reason) = refusal(&bytes[..at + 4]);
        assert_eq!(offset, at + 2);
        assert!(
            reason.starts_with("identity.device_id (tag 0x80): value truncated"),
            "{reason}"
        );
    }

    #[test]
    fn a_bad_enum_or_boolean_number_is_refused_with_the_numbering() {
        let mut bytes = valid().to_compact();
        let at = tag_offset(&bytes, "video.resolution");
        bytes[at + 1] = 3;
        assert_eq!(
            refusal(&bytes),
            (
                at + 1,
                "video.resolution (tag 0x10): enum number 3; expected 0 (720p), 1 (1080p), \
                 2 (1296p)"
                    .to_owned()
            )
        );
        let mut bytes = valid().to_compact();
        let at = tag_offset(&bytes, "recording.audio");
        bytes[at + 1] = 2;
        assert_eq!(
            refusal(&bytes),
            (
                at + 1,
                "recording.audio (tag 0x23): 2 is not a boolean; expected 0 (false) or 1 (true)"
                    .to_owned()
            )
        );
    }

    #[test]
    fn a_string_that_is_not_utf8_is_refused_by_name() {
        let mut bytes = valid().to_compact();
        let at = tag_offset(&bytes, "identity.device_id");
        bytes[at + 4] = 0xff;
        assert_eq!(
            refusal(&bytes),
            (
                at + 4,
                "identity.device_id (tag 0x80): the string is not UTF-8".to_owned()
            )
        );
    }

    #[test]
    fn bytes_after_the_last_field_are_refused() {
        let mut bytes = valid().to_compact();
        let end = bytes.len();
        bytes.extend_from_slice(&[0x91, 0]);
        assert_eq!(
            refusal(&bytes),
            (
                end,
                "2 byte(s) after the last field, firmware.max_version (tag 0x91)".to_owned()
            )
        );
    }

    #[test]
    fn a_decoded_config_is_validated() {
        let mut config = valid();
        config.video.frame_rate = 24;
        let err = RecorderConfig::from_compact(&config.to_compact()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "1 problem(s) in the recorder configuration:\n  \
             video.frame_rate = 24: expected 15, 25 or 30"
        );
    }

    #[test]
    fn any_setting_changes_the_hash() {
        let base = valid();
        let mut changed = base.clone();
        changed.watermark.gps = false;
        assert_ne!(base.content_hash(), changed.content_hash());
        assert_eq!(base.content_hash(), valid().content_hash());
    }

    proptest! {
        #[test]
        fn valid_configs_survive_the_compact_form_with_a_stable_hash(config in valid_config()) {
            let bytes = config.to_compact();
            let back = RecorderConfig::from_compact(&bytes).unwrap();
            prop_assert_eq!(&back, &config);
            prop_assert_eq!(back.to_compact(), bytes);
            prop_assert_eq!(back.content_hash(), config.content_hash());
            prop_assert_eq!(config.content_hash(), config.clone().content_hash());
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = RecorderConfig::from_compact(&bytes);
            let mut framed = b"RC\x01".to_vec();
            framed.extend_from_slice(&bytes);
            let _ = RecorderConfig::from_compact(&framed);
        }

        #[test]
        fn damaged_encodings_are_refused_or_decode_to_what_they_say(
            config in valid_config(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = config.to_compact();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            bytes.truncate(cut.index(bytes.len() + 1).max(i));
            if let Ok(decoded) = RecorderConfig::from_compact(&bytes) {
                prop_assert_eq!(decoded.to_compact(), bytes);
            }
        }
    }
}

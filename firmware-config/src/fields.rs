//! Every leaf setting in one table, in field order: its dotted path, its tag
//! in the compact form and the values it takes. Validation, the compact form,
//! the TOML text, diffs and layering all walk this table, so they see the
//! same fields in the same order; a test checks it against the structs.
//!
//! Settings are handled as flat maps of dotted path → TOML value ([`Flat`]):
//! that is what layers overlay and what validation reads, and it holds
//! values the structs cannot (a negative bitrate), so they can be reported.

use std::collections::BTreeMap;

use toml::{Table, Value};

use crate::{ConfigError, RecorderConfig};

/// Dotted path → value of leaf (non-table) settings.
pub(crate) type Flat = BTreeMap<String, Value>;

/// The numbers a numeric setting takes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Allowed {
    /// From the first to the second, inclusive.
    Range(i64, i64),
    /// Multiples of the third from the first to the second, inclusive.
    Steps(i64, i64, i64),
    /// 0 (off), or from the first to the second, inclusive.
    OffOr(i64, i64),
    /// Exactly these.
    OneOf(&'static [i64]),
}

/// The strings a text setting takes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TextRule {
    /// 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with `.`.
    DeviceId,
    /// Empty or 12 digits.
    UnitCode,
    /// Empty or 6 digits.
    OfficerId,
    /// Empty or a firmware version.
    Version,
}

/// What kind of value a setting holds, which fixes its TOML type and its
/// compact encoding.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// `true`/`false`; compact: u8 0 or 1.
    Bool,
    /// One of these names; compact: u8 index into the list.
    Choice(&'static [&'static str]),
    /// A `u32`; compact: big-endian u32.
    U32(Allowed),
    /// An `i16`; compact: big-endian i16.
    I16(Allowed),
    /// A string; compact: u8 length, then UTF-8.
    Text(TextRule),
}

/// One leaf setting.
#[derive(Debug)]
pub(crate) struct Field {
    /// Tag in the compact form; ascending through the table.
    pub tag: u8,
    /// Dotted path, e.g. `video.frame_rate`.
    pub path: &'static str,
    /// Values it takes.
    pub kind: Kind,
}

const fn field(tag: u8, path: &'static str, kind: Kind) -> Field {
    Field { tag, path, kind }
}

use Allowed::*;
use Kind::*;

/// Every leaf setting, in the order of the structs' fields.
pub(crate) const FIELDS: [Field; 30] = [
    field(
        0x10,
        "video.resolution",
        Choice(&["720p", "1080p", "1296p"]),
    ),
    field(0x11, "video.frame_rate", U32(OneOf(&[15, 25, 30]))),
    field(0x12, "video.bitrate_kbps", U32(Range(500, 16_000))),
    field(0x13, "video.night_mode", Choice(&["off", "auto", "on"])),
    field(0x20, "recording.pre_record_secs", U32(Range(0, 120))),
    field(0x21, "recording.post_record_secs", U32(Range(0, 300))),
    field(0x22, "recording.segment_minutes", U32(Range(1, 60))),
    field(0x23, "recording.audio", Bool),
    field(0x28, "recording.triggers.holster", Bool),
    field(0x29, "recording.triggers.lightbar", Bool),
    field(0x2a, "recording.triggers.speed_kmh", U32(OffOr(10, 200))),
    field(0x2b, "recording.triggers.fall_detection", Bool),
    field(0x30, "watermark.officer_id", Bool),
    field(0x31, "watermark.device_id", Bool),
    field(0x32, "watermark.time", Bool),
    field(0x33, "watermark.gps", Bool),
    field(0x40, "gps.interval_secs", U32(OffOr(1, 3600))),
    field(0x50, "time.utc_offset_min", I16(Steps(-720, 840, 15))),
    field(0x51, "time.sync", Choice(&["dock", "gps", "dock_and_gps"])),
    field(0x52, "time.max_drift_ms", U32(Range(100, 60_000))),
    field(
        0x60,
        "storage.when_full",
        Choice(&["stop_and_alarm", "overwrite_synced_only"]),
    ),
    field(0x61, "storage.reserve_mb", U32(Range(64, 8192))),
    field(
        0x70,
        "upload.when",
        Choice(&["docked_only", "wifi", "any_network"]),
    ),
    field(
        0x71,
        "upload.release_after",
        Choice(&["agent_copy", "hub_receipt"]),
    ),
    field(0x72, "upload.important_first", Bool),
    field(0x80, "identity.device_id", Text(TextRule::DeviceId)),
    field(0x81, "identity.unit_code", Text(TextRule::UnitCode)),
    field(0x82, "identity.officer_id", Text(TextRule::OfficerId)),
    field(0x90, "firmware.min_version", Text(TextRule::Version)),
    field(0x91, "firmware.max_version", Text(TextRule::Version)),
];

/// The leaf setting at `path`, if there is one.
pub(crate) fn leaf(path: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.path == path)
}

/// Whether `path` is a section (a table holding settings), e.g. `recording.triggers`.
pub(crate) fn is_section(path: &str) -> bool {
    FIELDS.iter().any(|f| {
        f.path
            .strip_prefix(path)
            .is_some_and(|r| r.starts_with('.'))
    })
}

/// Names directly inside `section` (`""` for the top), in field order.
pub(crate) fn children(section: &str) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for f in &FIELDS {
        let rest = if section.is_empty() {
            Some(f.path)
        } else {
            f.path
                .strip_prefix(section)
                .and_then(|r| r.strip_prefix('.'))
        };
        if let Some(name) = rest.and_then(|r| r.split('.').next()) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// Every leaf of `config`.
pub(crate) fn flatten(config: &RecorderConfig) -> Flat {
    // Cannot fail: every field is a bool, a u32, an i16, a unit enum or a
    // string, and every table key is a field name: all of which TOML holds.
    // The round-trip property tests serialise every field of every kind.
    let value = Value::try_from(config).expect("RecorderConfig always has a TOML form");
    let mut flat = Flat::new();
    if let Value::Table(table) = value {
        flatten_into(&mut flat, "", table);
    }
    flat
}

fn flatten_into(flat: &mut Flat, section: &str, table: Table) {
    for (key, value) in table {
        let path = join(section, &key);
        match value {
            Value::Table(inner) => flatten_into(flat, &path, inner),
            leaf => {
                flat.insert(path, leaf);
            }
        }
    }
}

/// `section.key`, or `key` at the top.
pub(crate) fn join(section: &str, key: &str) -> String {
    if section.is_empty() {
        key.to_owned()
    } else {
        format!("{section}.{key}")
    }
}

/// The nested table of leaves given by path.
pub(crate) fn unflatten(flat: &Flat) -> Table {
    let mut table = Table::new();
    for (path, value) in flat {
        insert(&mut table, path, value.clone());
    }
    table
}

fn insert(table: &mut Table, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            table.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let inner = table
                .entry(head)
                .or_insert_with(|| Value::Table(Table::new()));
            if let Value::Table(inner) = inner {
                insert(inner, rest, value);
            }
        }
    }
}

/// The config these leaves describe. Fails only if a value does not fit its
/// field's type, which validation rules out first.
pub(crate) fn from_flat(flat: &Flat) -> Result<RecorderConfig, ConfigError> {
    Value::Table(unflatten(flat))
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Syntax(e.message().to_owned()))
}

/// A value as written in TOML: `25`, `true`, `"1080p"`.
pub(crate) fn show(value: &Value) -> String {
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_leaf_of_the_structs_in_field_order_with_its_toml_type() {
        // The TOML serialiser writes fields in struct order; read the paths
        // back from its text in that order.
        let text = toml::to_string(&RecorderConfig::default()).unwrap();
        let mut section = String::new();
        let mut paths = Vec::new();
        for line in text.lines() {
            if let Some(name) = line.strip_prefix('[') {
                section = name.trim_end_matches(']').to_owned();
            } else if let Some((key, _)) = line.split_once(" = ") {
                paths.push(join(&section, key));
            }
        }
        let table: Vec<&str> = FIELDS.iter().map(|f| f.path).collect();
        assert_eq!(paths, table);

        let flat = flatten(&RecorderConfig::default());
        for f in &FIELDS {
            let toml_type = match f.kind {
                Bool => "boolean",
                U32(_) | I16(_) => "integer",
                Choice(_) | Text(_) => "string",
            };
            assert_eq!(flat[f.path].type_str(), toml_type, "{}", f.path);
        }
    }

    #[test]
    fn tags_ascend_through_the_table() {
        for pair in FIELDS.windows(2) {
            assert!(
                pair[0].tag < pair[1].tag,
                "{} then {}",
                pair[0].path,
                pair[1].path
            );
        }
    }

    #[test]
    fn every_choice_name_is_a_variant_of_its_enum() {
        for f in &FIELDS {
            if let Choice(names) = f.kind {
                for name in names {
                    let mut flat = flatten(&RecorderConfig::default());
                    flat.insert(f.path.to_owned(), Value::String((*name).to_owned()));
                    let config = from_flat(&flat).unwrap();
                    assert_eq!(flatten(&config)[f.path].as_str(), Some(*name));
                }
            }
        }
    }

    #[test]
    fn sections_and_their_children_come_from_the_paths() {
        assert!(is_section("recording"));
        assert!(is_section("recording.triggers"));
        assert!(!is_section("recording.audio"));
        assert!(!is_section("record"));
        assert_eq!(
            children("recording"),
            [
                "pre_record_secs",
                "post_record_secs",
                "segment_minutes",
                "audio",
                "triggers"
            ]
        );
        assert_eq!(children("").len(), 9);
    }
}

//! The TOML form, for people: reading it with errors that name the field
//! path (the TOML parser itself only knows line and column), and writing it
//! in field order with what each setting allows as a comment.

use toml::{Table, Value};

use crate::fields::{self, Flat, FIELDS};
use crate::{validate, ConfigError, Invalid, RecorderConfig};

impl RecorderConfig {
    /// Reads TOML (missing fields take their defaults) and validates it.
    ///
    /// Unknown fields and values of the wrong type give
    /// [`ConfigError::Syntax`]; out-of-range values give
    /// [`ConfigError::Invalid`]. Either way every problem is listed.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let (given, mut wrong) = read(text, Reading::Config)?;
        let mut values = fields::flatten(&Self::default());
        values.extend(given);
        let problems = validate::problems(&values);
        if !wrong.is_empty() {
            wrong.extend(problems.iter().map(ToString::to_string));
            return Err(ConfigError::syntax(Reading::Config.what(), &wrong));
        }
        if !problems.is_empty() {
            return Err(Invalid(problems).into());
        }
        fields::from_flat(&values)
    }

    /// TOML for people: every field, sections in field order, each non-boolean
    /// setting followed by a comment saying what it allows. Equal configs
    /// give equal text.
    pub fn to_toml(&self) -> String {
        write(&fields::flatten(self))
    }
}

/// What a TOML text is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// A whole configuration.
    Config,
    /// A policy layer, which may not set identity.
    Layer,
}

impl Reading {
    /// Its name in messages.
    pub(crate) fn what(self) -> &'static str {
        match self {
            Reading::Config => "recorder configuration",
            Reading::Layer => "configuration override",
        }
    }
}

/// Reads TOML text into the leaves it sets. Returns them with one line per
/// field that does not fit: unknown, of the wrong type, or (in a layer) an
/// identity setting. Errors only if the text is not TOML.
pub(crate) fn read(text: &str, reading: Reading) -> Result<(Flat, Vec<String>), ConfigError> {
    let table: Table = text.parse().map_err(|e: toml::de::Error| {
        ConfigError::Syntax(format!("{} is not valid TOML: {e}", reading.what()))
    })?;
    let mut given = Flat::new();
    let mut wrong = Vec::new();
    walk(&table, "", reading, &mut given, &mut wrong);
    Ok((given, wrong))
}

fn walk(table: &Table, section: &str, reading: Reading, given: &mut Flat, wrong: &mut Vec<String>) {
    for (key, value) in table {
        let path = fields::join(section, key);
        let written = match value {
            Value::Table(_) => path.clone(),
            other => format!("{path} = {}", fields::show(other)),
        };
        if let Some(field) = fields::leaf(&path) {
            if reading == Reading::Layer && section == "identity" {
                wrong.push(format!(
                    "{written}: identity cannot be set by a policy layer; it comes from \
                     the device's assignment"
                ));
            } else if value.type_str() != toml_type(field.kind) {
                wrong.push(format!(
                    "{written}: expected {}, found {}",
                    field.kind.expects(),
                    a(value.type_str())
                ));
            } else {
                given.insert(path, value.clone());
            }
        } else if fields::is_section(&path) {
            match value {
                Value::Table(inner) => walk(inner, &path, reading, given, wrong),
                other => wrong.push(format!(
                    "{written}: expected a section [{path}] holding {}, found {}",
                    fields::children(&path).join(", "),
                    a(other.type_str())
                )),
            }
        } else if section.is_empty() {
            wrong.push(format!(
                "{written}: unknown section; the sections are {}",
                fields::children("").join(", ")
            ));
        } else {
            wrong.push(format!(
                "{written}: unknown field; [{section}] holds {}",
                fields::children(section).join(", ")
            ));
        }
    }
}

/// The TOML type name (as [`Value::type_str`]) of a kind's values.
fn toml_type(kind: fields::Kind) -> &'static str {
    match kind {
        fields::Kind::Bool => "boolean",
        fields::Kind::U32(_) | fields::Kind::I16(_) => "integer",
        fields::Kind::Choice(_) | fields::Kind::Text(_) => "string",
    }
}

/// `an integer`, `a string`.
fn a(type_name: &str) -> String {
    if type_name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {type_name}")
    } else {
        format!("a {type_name}")
    }
}

/// Nested TOML of the leaves present in `values`, in field order, comments
/// aligned within each section.
pub(crate) fn write(values: &Flat) -> String {
    let lines: Vec<(&str, String, String)> = FIELDS
        .iter()
        .filter_map(|f| {
            let value = values.get(f.path)?;
            let (section, key) = f.path.rsplit_once('.').unwrap_or(("", f.path));
            let comment = match f.kind {
                fields::Kind::Bool => String::new(),
                kind => kind.allowed(),
            };
            Some((section, format!("{key} = {}", fields::show(value)), comment))
        })
        .collect();
    let mut out = String::new();
    for block in lines.chunk_by(|a, b| a.0 == b.0) {
        let width = block
            .iter()
            .map(|(_, setting, _)| setting.len())
            .max()
            .unwrap_or(0);
        for (i, (section, setting, comment)) in block.iter().enumerate() {
            if i == 0 {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&format!("[{section}]\n"));
            }
            if comment.is_empty() {
                out.push_str(&format!("{setting}\n"));
            } else {
                out.push_str(&format!("{setting:<width$}  # {comment}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::arbitrary::valid_config;

    const DEVICE: &str = "[identity]\ndevice_id = \"ZFY0001\"\n";

    fn syntax(text: &str) -> String {
        match RecorderConfig::from_toml(text) {
            Err(ConfigError::Syntax(message)) => message,
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn missing_fields_take_their_defaults() {
        let config =
            RecorderConfig::from_toml(&format!("{DEVICE}[video]\nbitrate_kbps = 6000\n")).unwrap();
        let mut expected = RecorderConfig::default();
        expected.identity.device_id = "ZFY0001".to_owned();
        expected.video.bitrate_kbps = 6000;
        assert_eq!(config, expected);
    }

    #[test]
    fn several_bad_values_in_one_toml_are_all_named() {
        let text = format!(
            "{DEVICE}[video]\nframe_rate = 24\nbitrate_kbps = -3\n[recording]\nsegment_minutes = 0\n\
             [storage]\nwhen_full = \"overwrite_oldest\"\n[time]\nutc_offset_min = 100000\n"
        );
        let err = RecorderConfig::from_toml(&text).unwrap_err();
        let ConfigError::Invalid(Invalid(problems)) = &err else {
            panic!("{err}");
        };
        let named: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            named,
            [
                "video.frame_rate",
                "video.bitrate_kbps",
                "recording.segment_minutes",
                "time.utc_offset_min",
                "storage.when_full"
            ]
        );
        let text = err.to_string();
        assert!(
            text.starts_with("5 problem(s) in the recorder configuration:"),
            "{text}"
        );
        assert!(
            text.contains("video.bitrate_kbps = -3: expected 500 to 16000"),
            "{text}"
        );
        assert!(
            text.contains(
                "storage.when_full = \"overwrite_oldest\": expected \"stop_and_alarm\" or \
                 \"overwrite_synced_only\""
            ),
            "{text}"
        );
    }

    #[test]
    fn an_unknown_field_is_named_by_its_path_with_what_the_section_holds() {
        let text = syntax(&format!("{DEVICE}[recording.triggers]\nsiren = true\n"));
        assert_eq!(
            text,
            "1 problem(s) reading the recorder configuration:\n  \
             recording.triggers.siren = true: unknown field; [recording.triggers] holds \
             holster, lightbar, speed_kmh, fall_detection"
        );
        let text = syntax(&format!("colour = \"red\"\n{DEVICE}"));
        assert!(
            text.contains("colour = \"red\": unknown section; the sections are video, recording,"),
            "{text}"
        );
        let text = syntax(&format!("{DEVICE}[vidoe]\nframe_rate = 25\n"));
        assert!(text.contains("  vidoe: unknown section"), "{text}");
    }

    #[test]
    fn a_wrong_type_is_named_by_its_path_with_the_expected_type() {
        let text = syntax(&format!(
            "{DEVICE}[video]\nframe_rate = \"25\"\n[recording]\naudio = 1\ntriggers = 5\n"
        ));
        assert!(
            text.contains(
                "video.frame_rate = \"25\": expected an integer (15, 25 or 30), found a string"
            ),
            "{text}"
        );
        assert!(
            text.contains("recording.audio = 1: expected true or false, found an integer"),
            "{text}"
        );
        assert!(
            text.contains(
                "recording.triggers = 5: expected a section [recording.triggers] holding holster,"
            ),
            "{text}"
        );
        let text = syntax(&format!("video = {{ resolution = 1080 }}\n{DEVICE}"));
        assert!(
            text.contains(
                "video.resolution = 1080: expected a string (\"720p\", \"1080p\" or \
                 \"1296p\"), found an integer"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_syntax_error_also_lists_the_out_of_range_values() {
        let text = syntax("[video]\ncolour = 1\nframe_rate = 24\n");
        assert!(text.starts_with("3 problem(s) reading"), "{text}");
        assert!(text.contains("video.colour = 1: unknown field"), "{text}");
        assert!(
            text.contains("video.frame_rate = 24: expected 15, 25 or 30"),
            "{text}"
        );
        assert!(
            text.contains("identity.device_id = \"\": expected 1 to 64"),
            "{text}"
        );
    }

    #[test]
    fn text_that_is_not_toml_is_refused_with_its_line() {
        let text = syntax("[video\nframe_rate = 25\n");
        assert!(
            text.starts_with("recorder configuration is not valid TOML:"),
            "{text}"
        );
        assert!(text.contains("line 1"), "{text}");
    }

    #[test]
    fn the_toml_text_lists_every_field_in_order_with_what_is_allowed() {
        let text = RecorderConfig::default().to_toml();
        assert!(
            text.starts_with("[video]\nresolution = \"1080p\""),
            "{text}"
        );
        assert!(
            text.contains("\n\n[recording.triggers]\nholster = false\n"),
            "{text}"
        );
        assert!(text.contains("utc_offset_min = 480  "), "{text}");
        assert!(
            text.contains("# a multiple of 15 from -720 to 840\n"),
            "{text}"
        );
        let sections: Vec<&str> = text.lines().filter(|l| l.starts_with('[')).collect();
        assert_eq!(
            sections,
            [
                "[video]",
                "[recording]",
                "[recording.triggers]",
                "[watermark]",
                "[gps]",
                "[time]",
                "[storage]",
                "[upload]",
                "[identity]",
                "[firmware]"
            ]
        );
        let settings = text.lines().filter(|l| l.contains(" = ")).count();
        assert_eq!(settings, FIELDS.len());
    }

    /// Values outside `lo..=hi`: near the bounds and anywhere in i64.
    fn outside(lo: i64, hi: i64) -> BoxedStrategy<i64> {
        prop_oneof![
            (lo - 1000)..lo,
            (hi + 1)..(hi + 1000),
            i64::MIN..lo,
            (hi + 1)..=i64::MAX
        ]
        .boxed()
    }

    /// A numeric field and a value it does not allow, from ranges written out
    /// here independently of the field table.
    fn out_of_range() -> impl Strategy<Value = (&'static str, i64)> {
        let not_in = |these: &'static [i64]| {
            any::<i64>().prop_filter("allowed", move |v| !these.contains(v))
        };
        prop_oneof![
            not_in(&[15, 25, 30]).prop_map(|v| ("video.frame_rate", v)),
            outside(500, 16_000).prop_map(|v| ("video.bitrate_kbps", v)),
            outside(0, 120).prop_map(|v| ("recording.pre_record_secs", v)),
            outside(0, 300).prop_map(|v| ("recording.post_record_secs", v)),
            outside(1, 60).prop_map(|v| ("recording.segment_minutes", v)),
            prop_oneof![outside(0, 200), 1i64..10]
                .prop_map(|v| ("recording.triggers.speed_kmh", v)),
            outside(0, 3600).prop_map(|v| ("gps.interval_secs", v)),
            prop_oneof![
                outside(-720, 840),
                (-720i64..=840).prop_filter("step", |v| v % 15 != 0)
            ]
            .prop_map(|v| ("time.utc_offset_min", v)),
            outside(100, 60_000).prop_map(|v| ("time.max_drift_ms", v)),
            outside(64, 8192).prop_map(|v| ("storage.reserve_mb", v)),
        ]
    }

    proptest! {
        #[test]
        fn valid_configs_survive_the_toml_text_with_the_same_hash(config in valid_config()) {
            let text = config.to_toml();
            let back = RecorderConfig::from_toml(&text).unwrap();
            prop_assert_eq!(back.content_hash(), config.content_hash());
            prop_assert_eq!(back.to_toml(), text);
            prop_assert_eq!(back, config);
        }

        #[test]
        fn an_out_of_range_number_is_named_by_exactly_its_path_and_value(
            config in valid_config(),
            (path, value) in out_of_range(),
        ) {
            let mut values = fields::flatten(&config);
            values.insert(path.to_owned(), Value::Integer(value));
            let text = toml::to_string(&fields::unflatten(&values)).unwrap();
            match RecorderConfig::from_toml(&text) {
                Err(ConfigError::Invalid(Invalid(problems))) => {
                    prop_assert_eq!(problems.len(), 1, "{:?}", problems);
                    prop_assert_eq!(&problems[0].field, path);
                    prop_assert_eq!(&problems[0].value, &value.to_string());
                }
                other => prop_assert!(false, "{path} = {value}: {other:?}"),
            }
        }
    }
}

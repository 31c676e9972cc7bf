//! # firmware-config: what a recorder is configured to do
//!
//! In: recorder settings as TOML written by a hub operator. Out: a validated,
//! typed [`RecorderConfig`] and its content hash, which the hub will sign and
//! distribute and the agent will apply over the recorder serial protocol.
//!
//! Guarantees: validation reports every problem at once, each with the field
//! path, the bad value and what is allowed; a storage policy that would
//! overwrite unsynced recordings cannot be expressed; the content hash is
//! computed over a canonical serialisation, so equal configs hash equally.

use serde::{Deserialize, Serialize};

/// Video resolution a recorder records at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resolution {
    /// 1280×720.
    #[serde(rename = "720p")]
    Hd720,
    /// 1920×1080.
    #[serde(rename = "1080p")]
    Hd1080,
    /// 2304×1296.
    #[serde(rename = "1296p")]
    Hd1296,
}

/// What the recorder does when its storage is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageFull {
    /// Stop recording and alarm. Unsynced recordings are never overwritten.
    StopAndAlarm,
    /// Overwrite the oldest recordings that the hub has receipted; stop if there are none.
    OverwriteSyncedOnly,
}

/// Settings of one recorder. Units are in the field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecorderConfig {
    /// Video resolution.
    pub resolution: Resolution,
    /// Frames per second (15, 25 or 30).
    pub frame_rate: u32,
    /// Video bitrate, kbit/s (500..=16000).
    pub bitrate_kbps: u32,
    /// Seconds kept from before recording was started (0..=120).
    pub pre_record_secs: u32,
    /// Seconds recorded after stop is pressed (0..=300).
    pub post_record_secs: u32,
    /// Length of one recording file, minutes (1..=60).
    pub segment_minutes: u32,
    /// Record audio.
    pub audio: bool,
    /// Burn officer id, device id and time into the picture.
    pub watermark: bool,
    /// Seconds between GPS fixes; 0 turns GPS off (0..=3600).
    pub gps_interval_secs: u32,
    /// Largest clock drift tolerated before the agent corrects and flags it, ms (100..=60000).
    pub max_clock_drift_ms: u32,
    /// Behaviour when storage is full.
    pub storage_full: StorageFull,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            resolution: Resolution::Hd1080,
            frame_rate: 25,
            bitrate_kbps: 4000,
            pre_record_secs: 30,
            post_record_secs: 30,
            segment_minutes: 15,
            audio: true,
            watermark: true,
            gps_interval_secs: 10,
            max_clock_drift_ms: 2000,
            storage_full: StorageFull::StopAndAlarm,
        }
    }
}

/// One problem with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Field path, e.g. `frame_rate`.
    pub field: &'static str,
    /// The bad value as written.
    pub value: String,
    /// What is allowed.
    pub expected: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} = {}: expected {}",
            self.field, self.value, self.expected
        )
    }
}

/// Why a configuration was refused: every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} problem(s) in the recorder configuration:\n  {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
pub struct Invalid(pub Vec<Problem>);

/// A configuration that could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not valid TOML, an unknown field, or a value of the wrong type.
    #[error("recorder configuration: {0}")]
    Syntax(#[from] toml::de::Error),
    /// Parsed, but values are out of range.
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

fn check(problems: &mut Vec<Problem>, field: &'static str, value: u32, ok: bool, expected: &str) {
    if !ok {
        problems.push(Problem {
            field,
            value: value.to_string(),
            expected: expected.to_owned(),
        });
    }
}

impl RecorderConfig {
    /// Parses TOML (missing fields take their defaults) and validates.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let cfg: RecorderConfig = toml::from_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// TOML for people.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Every out-of-range value, each with its field and what is allowed.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut p = Vec::new();
        check(
            &mut p,
            "frame_rate",
            self.frame_rate,
            matches!(self.frame_rate, 15 | 25 | 30),
            "15, 25 or 30",
        );
        check(
            &mut p,
            "bitrate_kbps",
            self.bitrate_kbps,
            (500..=16000).contains(&self.bitrate_kbps),
            "500 to 16000",
        );
        check(
            &mut p,
            "pre_record_secs",
            self.pre_record_secs,
            self.pre_record_secs <= 120,
            "0 to 120",
        );
        check(
            &mut p,
            "post_record_secs",
            self.post_record_secs,
            self.post_record_secs <= 300,
            "0 to 300",
        );
        check(
            &mut p,
            "segment_minutes",
            self.segment_minutes,
            (1..=60).contains(&self.segment_minutes),
            "1 to 60",
        );
        check(
            &mut p,
            "gps_interval_secs",
            self.gps_interval_secs,
            self.gps_interval_secs <= 3600,
            "0 (off) to 3600",
        );
        check(
            &mut p,
            "max_clock_drift_ms",
            self.max_clock_drift_ms,
            (100..=60_000).contains(&self.max_clock_drift_ms),
            "100 to 60000",
        );
        if p.is_empty() {
            Ok(())
        } else {
            Err(Invalid(p))
        }
    }

    /// SHA-256 (hex) of the canonical form: compact JSON in field order.
    pub fn content_hash(&self) -> String {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &canonical))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_problem_is_reported_with_field_value_and_allowed_range() {
        let err =
            RecorderConfig::from_toml("frame_rate = 24\nsegment_minutes = 0\nbitrate_kbps = 99\n")
                .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("3 problem(s)"), "{text}");
        assert!(text.contains("frame_rate = 24: expected 15, 25 or 30"));
        assert!(text.contains("segment_minutes = 0: expected 1 to 60"));
        assert!(text.contains("bitrate_kbps = 99: expected 500 to 16000"));
    }

    #[test]
    fn unknown_fields_and_unsafe_storage_policies_are_refused() {
        assert!(RecorderConfig::from_toml("colour = \"red\"").is_err());
        let err = RecorderConfig::from_toml("storage_full = \"overwrite_oldest\"").unwrap_err();
        assert!(err.to_string().contains("overwrite_oldest"));
    }

    #[test]
    fn the_content_hash_changes_with_any_setting() {
        let a = RecorderConfig::default();
        let b = RecorderConfig {
            audio: false,
            ..a.clone()
        };
        assert_ne!(a.content_hash(), b.content_hash());
        assert_eq!(a.content_hash(), RecorderConfig::default().content_hash());
    }

    proptest! {
        #[test]
        fn valid_configs_round_trip_through_toml_with_the_same_hash(
            frame_rate in prop::sample::select(vec![15u32, 25, 30]),
            bitrate_kbps in 500u32..=16000,
            segment_minutes in 1u32..=60,
            audio in any::<bool>(),
        ) {
            let cfg = RecorderConfig { frame_rate, bitrate_kbps, segment_minutes, audio, ..RecorderConfig::default() };
            let back = RecorderConfig::from_toml(&cfg.to_toml()).unwrap();
            prop_assert_eq!(back.content_hash(), cfg.content_hash());
            prop_assert_eq!(back, cfg);
        }
    }
}

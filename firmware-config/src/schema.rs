//! The settings themselves: one struct per section of the TOML, with the
//! defaults a body-worn recorder ships with. Units are in the field names;
//! each field's doc comment gives its allowed values, which
//! [`RecorderConfig::validate`] enforces.

use serde::{Deserialize, Serialize};

/// Settings of one recorder, by section.
///
/// Missing fields take their defaults when read; unknown fields are refused.
/// The default is not valid on its own: `identity.device_id` is empty until
/// the device's assignment fills it in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecorderConfig {
    /// Picture: resolution, frame rate, bitrate, night mode.
    pub video: Video,
    /// When and how long the recorder records.
    pub recording: Recording,
    /// What is burnt into the picture.
    pub watermark: Watermark,
    /// Position fixes.
    pub gps: Gps,
    /// Clock: time zone, time source, tolerated drift.
    pub time: TimePolicy,
    /// Behaviour of the recorder's own storage.
    pub storage: Storage,
    /// When recordings are uploaded and when they may leave the recorder.
    pub upload: Upload,
    /// Who the recorder is and who carries it; set by the device's assignment.
    pub identity: Identity,
    /// Which recorder firmware versions this configuration is meant for.
    pub firmware: FirmwarePolicy,
}

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

/// Infrared night mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NightMode {
    /// Infrared never on.
    Off,
    /// Infrared switched on by the light sensor.
    Auto,
    /// Infrared always on.
    On,
}

/// Picture settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Video {
    /// Resolution: `"720p"`, `"1080p"` or `"1296p"`.
    pub resolution: Resolution,
    /// Frames per second: 15, 25 or 30.
    pub frame_rate: u32,
    /// Video bitrate, kbit/s: 500 to 16000.
    pub bitrate_kbps: u32,
    /// Infrared night mode: `"off"`, `"auto"` or `"on"`.
    pub night_mode: NightMode,
}

impl Default for Video {
    fn default() -> Self {
        Self {
            resolution: Resolution::Hd1080,
            frame_rate: 25,
            bitrate_kbps: 4000,
            night_mode: NightMode::Auto,
        }
    }
}

/// When and how long the recorder records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recording {
    /// Seconds kept from before recording was started: 0 to 120.
    pub pre_record_secs: u32,
    /// Seconds recorded after stop is pressed: 0 to 300.
    pub post_record_secs: u32,
    /// Length of one recording file, minutes: 1 to 60.
    pub segment_minutes: u32,
    /// Record audio with the video.
    pub audio: bool,
    /// Events that start recording without a button press.
    pub triggers: Triggers,
}

impl Default for Recording {
    fn default() -> Self {
        Self {
            pre_record_secs: 30,
            post_record_secs: 30,
            segment_minutes: 15,
            audio: true,
            triggers: Triggers::default(),
        }
    }
}

/// Events that start recording without a button press. All off by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Triggers {
    /// Start when the weapon or baton leaves its holster sensor.
    pub holster: bool,
    /// Start when the vehicle's light bar is switched on.
    pub lightbar: bool,
    /// Start above this vehicle speed, km/h: 0 (off) or 10 to 200.
    pub speed_kmh: u32,
    /// Start when the wearer falls.
    pub fall_detection: bool,
}

/// What is burnt into the picture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Watermark {
    /// The officer's id.
    pub officer_id: bool,
    /// The recorder's device id.
    pub device_id: bool,
    /// Date and time.
    pub time: bool,
    /// Position, when GPS has a fix.
    pub gps: bool,
}

impl Default for Watermark {
    fn default() -> Self {
        Self {
            officer_id: true,
            device_id: true,
            time: true,
            gps: true,
        }
    }
}

/// Position fixes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gps {
    /// Seconds between GPS fixes: 0 (GPS off) or 1 to 3600.
    pub interval_secs: u32,
}

impl Default for Gps {
    fn default() -> Self {
        Self { interval_secs: 10 }
    }
}

/// Where the recorder takes its time from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSync {
    /// Set by the dock (the agent measures and corrects the offset).
    Dock,
    /// Taken from GPS time.
    Gps,
    /// Set by the dock, kept by GPS in the field.
    DockAndGps,
}

/// Clock settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimePolicy {
    /// Offset of local time from UTC, minutes: -720 to 840 in steps of 15
    /// (480 is China Standard Time, UTC+8).
    pub utc_offset_min: i16,
    /// Time source: `"dock"`, `"gps"` or `"dock_and_gps"`.
    pub sync: TimeSync,
    /// Largest clock drift tolerated before the agent corrects and flags it,
    /// ms: 100 to 60000.
    pub max_drift_ms: u32,
}

impl Default for TimePolicy {
    fn default() -> Self {
        Self {
            utc_offset_min: 480,
            sync: TimeSync::Dock,
            max_drift_ms: 2000,
        }
    }
}

/// What the recorder does when its storage is full. Overwriting recordings
/// that are not yet synced has no variant: it cannot be configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageFull {
    /// Stop recording and alarm.
    StopAndAlarm,
    /// Overwrite the oldest recordings the hub has receipted; stop and alarm
    /// if there are none.
    OverwriteSyncedOnly,
}

/// The recorder's own storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// When full: `"stop_and_alarm"` or `"overwrite_synced_only"`.
    pub when_full: StorageFull,
    /// Space kept free for the recorder's own files and logs, MB: 64 to 8192.
    pub reserve_mb: u32,
}

impl Default for Storage {
    fn default() -> Self {
        Self {
            when_full: StorageFull::StopAndAlarm,
            reserve_mb: 512,
        }
    }
}

/// Which connections the recorder uploads over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadWhen {
    /// Only while docked.
    DockedOnly,
    /// While docked or on Wi-Fi.
    Wifi,
    /// While docked or on any network, including mobile data.
    AnyNetwork,
}

/// When a file may leave (be deleted from) the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseAfter {
    /// Once the agent holds a durable, hash-verified copy.
    AgentCopy,
    /// Only once the hub has receipted the file.
    HubReceipt,
}

/// Upload behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Upload {
    /// Connections to upload over: `"docked_only"`, `"wifi"` or `"any_network"`.
    pub when: UploadWhen,
    /// When a file may leave the recorder: `"agent_copy"` or `"hub_receipt"`.
    pub release_after: ReleaseAfter,
    /// Upload recordings marked important before the others.
    pub important_first: bool,
}

impl Default for Upload {
    fn default() -> Self {
        Self {
            when: UploadWhen::DockedOnly,
            release_after: ReleaseAfter::AgentCopy,
            important_first: true,
        }
    }
}

/// Who the recorder is and who carries it. Filled in from the device's
/// assignment, never from a policy layer. Empty by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Identity {
    /// The recorder's id: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with `.`.
    pub device_id: String,
    /// The unit it belongs to: empty or 12 digits.
    pub unit_code: String,
    /// The officer it is assigned to: empty or 6 digits.
    pub officer_id: String,
}

/// Which recorder firmware this configuration is meant for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FirmwarePolicy {
    /// Oldest firmware allowed: empty (any) or a version such as `2.4.0` or
    /// `SIM-2.4.1`.
    pub min_version: String,
    /// Newest firmware allowed: empty (any) or a version, not below
    /// `min_version`.
    pub max_version: String,
}

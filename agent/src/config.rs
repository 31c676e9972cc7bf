//! `agent.toml`: who this device is, where it keeps its data, which hub it
//! trusts and how it talks to it, and (field devices) its GPS receiver. `EVSYNC_AGENT_*` environment variables
//! override the file; validation reports every problem at once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use evsync_protocol::signing::PublicKey;
use serde::{Deserialize, Serialize};

/// The agent's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// This device's id (also its MQTT client id and topic segment).
    pub device_id: String,
    /// `field` (spool folder source) or `dock`.
    #[serde(default = "default_role")]
    pub role: String,
    /// Officer the device is assigned to.
    #[serde(default)]
    pub officer_id: Option<String>,
    /// Unit code (12 characters, starting with the district code).
    #[serde(default)]
    pub unit_code: Option<String>,
    /// Folder for the key, buffer and media copies.
    pub data_dir: PathBuf,
    /// Folder the field application drops files into.
    pub spool_dir: PathBuf,
    /// The hub's public key (base64), pinned: receipts must verify against it.
    pub hub_public_key: String,
    /// Broker connection.
    pub mqtt: MqttSection,
    /// Sending and resending.
    #[serde(default)]
    pub uplink: UplinkSection,
    /// Picking up spool files.
    #[serde(default)]
    pub spool: SpoolSection,
    /// Uploading recordings to the hub.
    #[serde(default)]
    pub upload: UploadSection,
    /// Docked recorders (role `dock`).
    #[serde(default)]
    pub dock: DockSection,
    /// The GPS receiver of a field device (role `field`), which geotags its records.
    #[serde(default)]
    pub gps: GpsSection,
}

/// A field device's GPS receiver, speaking NMEA 0183 on a serial port. Off
/// unless `port` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpsSection {
    /// Serial port of the receiver (e.g. `/dev/ttyUSB0`); GPS is on when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<PathBuf>,
    /// Baud rate (NMEA 0183 says 4800; most receivers send at 9600).
    pub baud: u32,
    /// A record is tagged only with a fix at most this old, seconds.
    pub max_fix_age_secs: u64,
}

impl Default for GpsSection {
    fn default() -> Self {
        Self {
            port: None,
            baud: 9600,
            max_fix_age_secs: 10,
        }
    }
}

impl GpsSection {
    /// The oldest fix a record may be tagged with.
    pub fn max_fix_age(&self) -> Duration {
        Duration::from_secs(self.max_fix_age_secs)
    }

    fn problems(&self, role: &str, p: &mut Vec<String>) {
        let Some(port) = &self.port else {
            return;
        };
        if role != "field" {
            p.push(format!(
                "gps.port = {:?}: a GPS receiver geotags a field device's records; \
                 expected no [gps] section with role = {role:?} (only with role = \"field\")",
                port.display().to_string()
            ));
        }
        if port.as_os_str().is_empty() {
            p.push(
                "gps.port = \"\": expected the receiver's serial port (e.g. \"/dev/ttyUSB0\")"
                    .into(),
            );
        }
        if !(1200..=921_600).contains(&self.baud) {
            p.push(format!(
                "gps.baud = {}: expected 1200 to 921600 (NMEA 0183: 4800; most receivers: 9600)",
                self.baud
            ));
        }
        if !(1..=3600).contains(&self.max_fix_age_secs) {
            p.push(format!(
                "gps.max_fix_age_secs = {}: expected 1 to 3600",
                self.max_fix_age_secs
            ));
        }
    }
}

/// A dock's slots and how it treats the recorders docked in them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockSection {
    /// Serial ports to watch, one per slot.
    pub slots: Vec<SlotSection>,
    /// The recorders' 6-character admin password (GA/T 947 `Init_Device`).
    pub password: String,
    /// Files copied off recorders at once, across all slots (1..=16).
    pub parallel_copies: usize,
    /// A recorder clock off by more than this is set to the dock's time, milliseconds.
    pub clock_set_threshold_ms: u64,
    /// A recorder clock off by more than this is flagged as drift, seconds.
    pub clock_drift_alert_secs: u64,
    /// When a copied file is deleted from the recorder: `after_media_receipt`
    /// (once the hub holds it verified), `after_copy` or `never`.
    pub delete: String,
    /// Wait for one answer from a recorder, milliseconds.
    pub request_timeout_ms: u64,
    /// Attempts per request before the line is given up.
    pub attempts: u32,
    /// How often slots are checked for a recorder, and docked ones for work, milliseconds.
    pub poll_ms: u64,
    /// Recorders are pooled: docking checks a recorder in (its recordings
    /// are attributed to the officer it was checked out to, then that
    /// officer is cleared from it) and `evsync-agent checkout` hands cleared
    /// recorders out. Otherwise assignments written into recorders stay.
    pub pooled: bool,
    /// How long to wait for a slot's mass-storage volume to show up after
    /// switching it on (`SetMSDC`), milliseconds; then files go over serial.
    pub mount_wait_ms: u64,
}

/// One slot of the dock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotSection {
    /// Serial port of the slot (e.g. `/dev/ttyACM0`, or a pseudo-terminal's path).
    pub port: PathBuf,
    /// Baud rate.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// Where the recorder's USB mass-storage volume is mounted when switched
    /// on (an absolute path): files with plain names are copied from there
    /// (the fast path), checked against the recorder's digest over serial.
    #[serde(default)]
    pub mount: Option<PathBuf>,
}

fn default_baud() -> u32 {
    115_200
}

impl Default for DockSection {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            password: "000000".into(),
            parallel_copies: 2,
            clock_set_threshold_ms: 1000,
            clock_drift_alert_secs: 60,
            delete: "after_media_receipt".into(),
            request_timeout_ms: 1000,
            attempts: 5,
            poll_ms: 500,
            pooled: false,
            mount_wait_ms: 10_000,
        }
    }
}

impl DockSection {
    fn problems(&self, role: &str, p: &mut Vec<String>) {
        if role == "dock" && self.slots.is_empty() {
            p.push("dock.slots: a dock needs at least one slot ([[dock.slots]] port = ...)".into());
        }
        if self.password.len() != 6 || !self.password.is_ascii() {
            p.push("dock.password: expected 6 ASCII characters".into());
        }
        if !(1..=16).contains(&self.parallel_copies) {
            p.push(format!(
                "dock.parallel_copies = {}: expected 1 to 16",
                self.parallel_copies
            ));
        }
        if !matches!(
            self.delete.as_str(),
            "after_media_receipt" | "after_copy" | "never"
        ) {
            p.push(format!(
                "dock.delete = {:?}: expected \"after_media_receipt\", \"after_copy\" or \"never\"",
                self.delete
            ));
        }
        if !(50..=60_000).contains(&self.request_timeout_ms) {
            p.push(format!(
                "dock.request_timeout_ms = {}: expected 50 to 60000",
                self.request_timeout_ms
            ));
        }
        if !(1..=20).contains(&self.attempts) {
            p.push(format!(
                "dock.attempts = {}: expected 1 to 20",
                self.attempts
            ));
        }
        for (i, slot) in self.slots.iter().enumerate() {
            if let Some(m) = slot.mount.as_ref().filter(|m| !m.is_absolute()) {
                p.push(format!(
                    "dock.slots[{i}].mount = {:?}: expected an absolute path (where the recorder's volume is mounted)",
                    m.display().to_string()
                ));
            }
        }
        if self.mount_wait_ms > 120_000 {
            p.push(format!(
                "dock.mount_wait_ms = {}: expected 0 to 120000",
                self.mount_wait_ms
            ));
        }
        if !(10..=60_000).contains(&self.poll_ms) {
            p.push(format!(
                "dock.poll_ms = {}: expected 10 to 60000",
                self.poll_ms
            ));
        }
    }
}

/// Uploading recordings (the media data plane).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadSection {
    /// Recordings uploaded at once (1..=16).
    pub parallel: usize,
    /// Cap on upload bytes per second across all uploads (docks share a
    /// station's uplink); 0 means no cap. Records over MQTT are never capped.
    pub max_bytes_per_sec: u64,
    /// A recording whose file name contains one of these (case-insensitive)
    /// is marked important and uploaded before the others.
    pub important_markers: Vec<String>,
    /// Seconds between requests for grants the hub has not answered.
    pub grant_retry_secs: u64,
    /// CA certificate (PEM) that the hub's HTTPS URLs (uploads, and docks'
    /// firmware downloads) must chain to. Without it, `https://` URLs fail:
    /// the agent trusts no system roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl Default for UploadSection {
    fn default() -> Self {
        Self {
            parallel: 2,
            max_bytes_per_sec: 0,
            important_markers: vec!["_IMP".into(), "IMPORTANT".into()],
            grant_retry_secs: 5,
            ca_file: None,
        }
    }
}

impl UploadSection {
    /// Upload priority of a recording by its file name: 1 if marked important, else 0.
    pub fn priority_of(&self, file_name: &str) -> i64 {
        let name = file_name.to_uppercase();
        let important = self
            .important_markers
            .iter()
            .any(|m| !m.is_empty() && name.contains(&m.to_uppercase()));
        i64::from(important)
    }
}

fn default_role() -> String {
    "field".into()
}

/// Broker connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSection {
    /// `mqtt://host:port`, or `mqtts://host:port` for MQTT over TLS (then
    /// `ca_file` is required).
    pub url: String,
    /// CA certificate (PEM) the broker's certificate must chain to, for
    /// `mqtts://` (`evsync-hub broker tls-init` makes one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// File holding this device's broker secret (issued by `evsync-hub
    /// devices credential`); the user name is the device id. Without it
    /// the agent connects without credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

/// Sending and resending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UplinkSection {
    /// Most records in one MQTT message (1..=1000).
    pub batch_records: usize,
    /// Batches sent before waiting for receipts (1..=64).
    pub max_inflight_batches: usize,
    /// Seconds to wait for a receipt before resending from the oldest unreceipted record.
    pub receipt_timeout_secs: u64,
    /// Seconds before resending records the hub refused (e.g. awaiting enrollment).
    pub retry_secs: u64,
    /// Seconds between status heartbeats.
    pub status_secs: u64,
}

impl Default for UplinkSection {
    fn default() -> Self {
        Self {
            batch_records: 500,
            max_inflight_batches: 8,
            receipt_timeout_secs: 10,
            retry_secs: 5,
            status_secs: 10,
        }
    }
}

/// Picking up spool files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolSection {
    /// Milliseconds between scans of the spool folder.
    pub scan_interval_ms: u64,
    /// A file is taken only after its size and modification time stayed unchanged this long.
    pub settle_ms: u64,
}

impl Default for SpoolSection {
    fn default() -> Self {
        Self {
            scan_interval_ms: 500,
            settle_ms: 1000,
        }
    }
}

impl SpoolSection {
    /// Scan interval as a duration.
    pub fn scan_interval(&self) -> Duration {
        Duration::from_millis(self.scan_interval_ms)
    }

    /// Settle time as a duration.
    pub fn settle(&self) -> Duration {
        Duration::from_millis(self.settle_ms)
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl AgentConfig {
    /// A field-mode configuration with default uplink and spool settings,
    /// keeping its data in `<folder>/data` and its spool in `<folder>/spool`.
    pub fn field(device_id: &str, folder: &Path, mqtt_url: &str, hub_key: &PublicKey) -> Self {
        Self {
            device_id: device_id.to_owned(),
            role: default_role(),
            officer_id: None,
            unit_code: None,
            data_dir: folder.join("data"),
            spool_dir: folder.join("spool"),
            hub_public_key: hub_key.to_base64(),
            mqtt: MqttSection {
                password_file: None,
                ca_file: None,
                url: mqtt_url.to_owned(),
            },
            uplink: UplinkSection::default(),
            spool: SpoolSection::default(),
            upload: UploadSection::default(),
            dock: DockSection::default(),
            gps: GpsSection::default(),
        }
    }

    /// Reads `path`, applies `EVSYNC_AGENT_*` overrides and validates.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut cfg: AgentConfig =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        cfg.apply_env();
        cfg.validate()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(cfg)
    }

    fn apply_env(&mut self) {
        if let Some(v) = env("EVSYNC_AGENT_MQTT_URL") {
            self.mqtt.url = v;
        }
        if let Some(v) = env("EVSYNC_AGENT_MQTT_PASSWORD_FILE") {
            self.mqtt.password_file = Some(v.into());
        }
        if let Some(v) = env("EVSYNC_AGENT_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = env("EVSYNC_AGENT_SPOOL_DIR") {
            self.spool_dir = v.into();
        }
        if let Some(v) = env("EVSYNC_AGENT_HUB_PUBLIC_KEY") {
            self.hub_public_key = v;
        }
        if let Some(v) = env("EVSYNC_AGENT_GPS_PORT") {
            self.gps.port = Some(v.into());
        }
    }

    /// The pinned hub key.
    pub fn hub_key(&self) -> anyhow::Result<PublicKey> {
        PublicKey::from_base64(&self.hub_public_key).map_err(|e| {
            anyhow::anyhow!("hub_public_key: {e}: expected the base64 key in the hub's hub.pub")
        })
    }

    /// Checks every field; the error lists every problem, each naming its field.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut p = Vec::new();
        if let Err(e) = evsync_protocol::topic::validate_device_id(&self.device_id) {
            p.push(format!("device_id: {e}"));
        }
        if !matches!(self.role.as_str(), "field" | "dock") {
            p.push(format!(
                "role = {:?}: expected \"field\" or \"dock\"",
                self.role
            ));
        }
        if let Some(u) = &self.unit_code {
            if u.chars().count() != 12 {
                p.push(format!(
                    "unit_code = {u:?}: expected 12 characters (GA/T 947 unit number)"
                ));
            }
        }
        if let Err(e) = self.hub_key() {
            p.push(e.to_string());
        }
        if !(self.mqtt.url.starts_with("mqtt://") || self.mqtt.url.starts_with("mqtts://")) {
            p.push(format!(
                "mqtt.url = {:?}: expected mqtt://host:port or mqtts://host:port",
                self.mqtt.url
            ));
        } else if self.mqtt.url.starts_with("mqtts://") && self.mqtt.ca_file.is_none() {
            p.push(format!(
                "mqtt.url = {:?} is mqtts://: expected mqtt.ca_file, the broker's CA certificate (PEM)",
                self.mqtt.url
            ));
        }
        let u = &self.uplink;
        if !(1..=evsync_protocol::batch::MAX_RECORDS).contains(&u.batch_records) {
            p.push(format!(
                "uplink.batch_records = {}: expected 1 to 1000",
                u.batch_records
            ));
        }
        if !(1..=64).contains(&u.max_inflight_batches) {
            p.push(format!(
                "uplink.max_inflight_batches = {}: expected 1 to 64",
                u.max_inflight_batches
            ));
        }
        self.dock.problems(&self.role, &mut p);
        self.gps.problems(&self.role, &mut p);
        if !(1..=16).contains(&self.upload.parallel) {
            p.push(format!(
                "upload.parallel = {}: expected 1 to 16",
                self.upload.parallel
            ));
        }
        for (name, v) in [
            ("uplink.receipt_timeout_secs", u.receipt_timeout_secs),
            ("uplink.retry_secs", u.retry_secs),
            ("uplink.status_secs", u.status_secs),
            ("spool.scan_interval_ms", self.spool.scan_interval_ms),
            ("upload.grant_retry_secs", self.upload.grant_retry_secs),
        ] {
            if v == 0 {
                p.push(format!("{name} = 0: expected a positive number"));
            }
        }
        if self.spool_dir == self.data_dir {
            p.push("spool_dir must differ from data_dir".into());
        }
        if p.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("{} problem(s):\n  {}", p.len(), p.join("\n  "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_configuration_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/agent.example.toml");
        let cfg = AgentConfig::load(&path).unwrap();
        assert_eq!(cfg.uplink, UplinkSection::default());
        assert_eq!(cfg.upload, UploadSection::default());
        assert_eq!(
            cfg.gps,
            GpsSection::default(),
            "GPS is off unless a port is set"
        );
    }

    fn with_gps(role: &str, gps: &str) -> AgentConfig {
        let slots = if role == "dock" {
            "[[dock.slots]]\nport = \"/dev/ttyACM0\"\n"
        } else {
            ""
        };
        let text = format!(
            r#"
            device_id = "field-500112-01"
            role = "{role}"
            data_dir = "/tmp/a"
            spool_dir = "/tmp/b"
            hub_public_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
            [mqtt]
            url = "mqtt://127.0.0.1:1884"
            {slots}
            [gps]
            {gps}
            "#
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn a_gps_port_turns_gps_on_with_defaults_for_the_rest() {
        let cfg = with_gps("field", r#"port = "/dev/ttyUSB0""#);
        cfg.validate().unwrap();
        assert_eq!(
            cfg.gps,
            GpsSection {
                port: Some("/dev/ttyUSB0".into()),
                baud: 9600,
                max_fix_age_secs: 10,
            }
        );
        assert_eq!(cfg.gps.max_fix_age(), Duration::from_secs(10));
        // Without a port the section's other settings are inert.
        let off = with_gps("dock", "baud = 4800");
        off.validate().unwrap();
        assert_eq!(off.gps.port, None);
    }

    #[test]
    fn gps_on_a_dock_and_bad_gps_values_are_reported_naming_the_field() {
        let dock = with_gps("dock", r#"port = "/dev/ttyUSB0""#);
        let err = dock.validate().unwrap_err().to_string();
        assert!(err.contains("1 problem(s)"), "{err}");
        assert!(
            err.contains(
                "gps.port = \"/dev/ttyUSB0\": a GPS receiver geotags a field device's records"
            ) && err.contains("role = \"dock\""),
            "{err}"
        );
        let bad = with_gps("field", "port = \"\"\nbaud = 0\nmax_fix_age_secs = 0");
        let err = bad.validate().unwrap_err().to_string();
        for needle in [
            "3 problem(s)",
            "gps.port = \"\": expected the receiver's serial port",
            "gps.baud = 0: expected 1200 to 921600",
            "gps.max_fix_age_secs = 0: expected 1 to 3600",
        ] {
            assert!(err.contains(needle), "{needle:?} missing from {err}");
        }
        let typo: Result<AgentConfig, _> = toml::from_str(
            "device_id = \"x\"\ndata_dir = \"a\"\nspool_dir = \"b\"\nhub_public_key = \"k\"\n\
             [mqtt]\nurl = \"mqtt://h:1\"\n[gps]\nprot = \"/dev/ttyUSB0\"",
        );
        assert!(typo.unwrap_err().to_string().contains("prot"));
    }

    #[test]
    fn a_slot_mount_must_be_an_absolute_path() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/agent.example.toml");
        let mut cfg = AgentConfig::load(&path).unwrap();
        cfg.role = "dock".into();
        let slot = |mount: Option<&str>| SlotSection {
            port: "/dev/ttyACM0".into(),
            baud: 115_200,
            mount: mount.map(PathBuf::from),
        };
        cfg.dock.slots = vec![
            slot(None),
            slot(Some("/media/zfy1")),
            slot(Some("media/zfy2")),
        ];
        cfg.dock.mount_wait_ms = 999_999;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("2 problem(s)"), "{err}");
        assert!(
            err.contains("dock.slots[2].mount = \"media/zfy2\": expected an absolute path"),
            "{err}"
        );
        assert!(err.contains("dock.mount_wait_ms = 999999"), "{err}");
        let text = "port = \"/dev/ttyACM1\"\nmount = \"/media/zfy1\"\n";
        let parsed: SlotSection = toml::from_str(text).unwrap();
        assert_eq!(parsed.mount.as_deref(), Some(Path::new("/media/zfy1")));
    }

    #[test]
    fn recordings_marked_important_by_name_come_first() {
        let u = UploadSection::default();
        assert_eq!(u.priority_of("20261123_083000_0007_imp.mp4"), 1);
        assert_eq!(u.priority_of("IMPORTANT-stop.mp4"), 1);
        assert_eq!(u.priority_of("20261123_083000_0008.mp4"), 0);
        let none = UploadSection {
            important_markers: vec![String::new()],
            ..UploadSection::default()
        };
        assert_eq!(none.priority_of("x_IMP.mp4"), 0);
    }

    #[test]
    fn every_problem_is_reported_at_once_naming_its_field() {
        let text = r#"
            device_id = "bad id"
            role = "car"
            unit_code = "5001"
            data_dir = "/tmp/a"
            spool_dir = "/tmp/a"
            hub_public_key = "nope"
            [mqtt]
            url = "tcp://x"
            [uplink]
            batch_records = 0
        "#;
        let cfg: AgentConfig = toml::from_str(text).unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        for needle in [
            "7 problem(s)",
            "device_id",
            "role = \"car\"",
            "unit_code = \"5001\"",
            "hub_public_key",
            "mqtt.url",
            "uplink.batch_records = 0",
            "spool_dir must differ",
        ] {
            assert!(err.contains(needle), "{needle:?} missing from {err}");
        }
    }
}

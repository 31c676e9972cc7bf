//! The record: one immutable unit of evidence, as the JSON body that the
//! ingesting agent signs. See `docs/wire-protocol.md` for the field table.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::chain::{Hash, GENESIS};
use crate::topic::validate_device_id;
use crate::ProtocolError;

/// The only body version this crate writes and accepts.
pub const VERSION: u32 = 1;

/// What a record is evidence of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A recording file (video, audio, photo).
    Media,
    /// A structured enforcement event.
    Event,
}

impl Kind {
    /// The name used on the wire and in the feed.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Media => "media",
            Kind::Event => "event",
        }
    }
}

/// A recording file: its hash, size and container metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Media {
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// MIME type (e.g. `video/mp4`).
    pub mime: String,
    /// The file name on the recorder or in the spool, as found (metadata only; never used as a path).
    pub file_name: String,
    /// The recorder's sequential file index, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_index: Option<u64>,
    /// Recording start from the container header (device clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// Duration from the container header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// A structured enforcement event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The recorder started recording.
    RecordingStarted {
        /// File index of the recording being written, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_index: Option<u64>,
    },
    /// The recorder stopped recording.
    RecordingStopped {
        /// File index of the recording just closed, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_index: Option<u64>,
    },
    /// The officer marked the current recording as important.
    MarkedImportant {
        /// Free text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// An enforcement action began.
    ActionStarted {
        /// Identifier that pairs this with its `action_ended`.
        action_id: String,
        /// Case number, if a case exists.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        case_number: Option<String>,
        /// Enforcement domain code (执法领域), e.g. `01`.
        domain: String,
        /// Legal basis cited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        legal_basis: Option<String>,
    },
    /// An enforcement action ended.
    ActionEnded {
        /// Identifier of the action.
        action_id: String,
        /// Case number, if a case exists.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        case_number: Option<String>,
    },
    /// The officer went on duty.
    DutyStarted,
    /// The officer went off duty.
    DutyEnded,
    /// A position fix.
    GpsFix {
        /// Latitude, degrees (WGS 84).
        lat: f64,
        /// Longitude, degrees (WGS 84).
        lon: f64,
        /// Horizontal accuracy in metres, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        accuracy_m: Option<f64>,
    },
    /// Battery and storage of the device.
    DeviceStatus {
        /// Battery charge, percent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        battery_pct: Option<u8>,
        /// Free storage, bytes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        storage_free_bytes: Option<u64>,
        /// Total storage, bytes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        storage_total_bytes: Option<u64>,
    },
    /// The device reported tampering (case opened, storage removed, ...).
    TamperAlarm {
        /// What the device said.
        detail: String,
    },
    /// A dock measured the recorder's clock (and set it, if it was off).
    ClockChecked {
        /// Recorder clock minus dock clock before any correction, milliseconds.
        offset_ms: i64,
        /// Whether the dock set the recorder's clock.
        corrected: bool,
        /// Whether the offset was over the dock's drift threshold.
        drift: bool,
    },
    /// Files the recorder numbered are gone from it without having been
    /// synced: indexes `from_index..=to_index`.
    FilesMissing {
        /// First missing index.
        from_index: u64,
        /// Last missing index.
        to_index: u64,
    },
    /// A dock handed a pooled recorder to an officer (check-out): it wrote
    /// the officer and unit into the recorder, so what the recorder records
    /// until its next docking is theirs. The record's `officer_id` and
    /// `unit_code` are the new holder's.
    RecorderCheckedOut {
        /// Officer number written into the recorder (6 digits).
        officer_id: String,
        /// Unit number written into the recorder (12 digits).
        unit_code: String,
        /// Officer name written into the recorder.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        officer_name: Option<String>,
    },
    /// A pooled recorder came back to a dock (check-in): its recordings
    /// were taken off and it was cleared of its holder. The record's
    /// `officer_id` and `unit_code` are the returning holder's.
    RecorderCheckedIn {
        /// Recordings the dock took off it at this docking.
        files: u64,
    },
    /// A configuration was applied to the device and read back from it.
    ConfigApplied {
        /// Content hash of the applied configuration.
        config_hash: String,
        /// Version of the applied configuration.
        version: u64,
    },
    /// The agent holding the device verified a hub-signed configuration
    /// assignment for it (signature, recorder, version, content hash) and
    /// will apply it.
    ConfigDelivered {
        /// Content hash of the assigned configuration.
        config_hash: String,
        /// Version of the assignment.
        version: u64,
    },
    /// A configuration assignment was refused (not signed by the hub key,
    /// older than one accepted, not hashing to its hash) or could not be
    /// applied; `reason` says which.
    ConfigFailed {
        /// Version of the assignment, as far as it could be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<u64>,
        /// Content hash it named, as far as it could be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config_hash: Option<String>,
        /// Why.
        reason: String,
    },
    /// A firmware image the hub assigned was installed on the device, and
    /// the device reports running it.
    FirmwareInstalled {
        /// Firmware version now running.
        version: String,
        /// SHA-256 (hex) of the image installed.
        sha256: String,
    },
    /// A firmware image the hub assigned was not installed; `reason` says
    /// why (not newer than the running firmware, bytes not matching the
    /// signed SHA-256, refused by the device).
    FirmwareFailed {
        /// Firmware version of the image.
        version: String,
        /// Why.
        reason: String,
    },
    /// The configuration the device runs, as an agent read it from the
    /// device on docking.
    ConfigChecked {
        /// Content hash of the configuration read; `None` when the device
        /// holds none the agent could read (`reason` says why).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config_hash: Option<String>,
        /// Why no hash could be computed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// How a GPS receiver computed a fix (NMEA GGA quality, or the RMC mode indicator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FixQuality {
    /// Autonomous satellite fix.
    Gps,
    /// Differential fix: SBAS or a correction service.
    Dgps,
    /// Precise Positioning Service (military code) fix.
    Pps,
    /// Real-time kinematic, integer ambiguities fixed: centimetres.
    Rtk,
    /// Real-time kinematic, float ambiguities: decimetres.
    FloatRtk,
    /// Dead reckoning from the last fix: no satellites behind it.
    Estimated,
    /// A position entered by hand.
    Manual,
    /// The receiver's simulator: not a real position.
    Simulation,
}

/// Where the device was when the record was made: the latest valid fix of
/// its GPS receiver, and how old that fix was at the record's ingest time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Geo {
    /// Latitude in degrees, WGS 84; south is negative.
    pub lat: f64,
    /// Longitude in degrees, WGS 84; west is negative.
    pub lon: f64,
    /// How the receiver computed the fix.
    pub quality: FixQuality,
    /// Milliseconds from receiving the fix to the record's ingest time.
    pub age_ms: u64,
    /// Satellites used in the fix, if the receiver said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub satellites: Option<u32>,
    /// Horizontal dilution of precision, if the receiver said: below 2 is good, above 5 poor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hdop: Option<f64>,
    /// Altitude above mean sea level in metres, if the receiver said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub altitude_m: Option<f64>,
}

impl Geo {
    /// Checks what the types cannot: coordinates on the globe, finite numbers.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        let bad = |detail: String| Err(ProtocolError::malformed("record body", detail));
        if !(self.lat.is_finite() && (-90.0..=90.0).contains(&self.lat)) {
            return bad(format!(
                "geo.lat = {}: expected degrees from -90 to 90",
                self.lat
            ));
        }
        if !(self.lon.is_finite() && (-180.0..=180.0).contains(&self.lon)) {
            return bad(format!(
                "geo.lon = {}: expected degrees from -180 to 180",
                self.lon
            ));
        }
        if let Some(h) = self.hdop {
            if !(h.is_finite() && h >= 0.0) {
                return bad(format!(
                    "geo.hdop = {h}: expected a finite number, at least 0"
                ));
            }
        }
        if let Some(a) = self.altitude_m {
            if !a.is_finite() {
                return bad(format!("geo.altitude_m = {a}: expected a finite number"));
            }
        }
        Ok(())
    }
}

/// The signed body of a record. Field order here is the order on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordBody {
    /// Body version, always [`VERSION`].
    pub v: u32,
    /// Record id, a UUIDv7 chosen by the agent (time-ordered).
    pub id: Uuid,
    /// `media` or `event`; the matching field below is present.
    pub kind: Kind,
    /// The device the record is about (a field device, or a recorder docked
    /// at the agent). With `agent_id` it names the record's source, whose
    /// chain the record extends: a recorder has one chain per dock.
    pub device_id: String,
    /// The agent that ingested and signed the record.
    pub agent_id: String,
    /// Position in the chain of the source (`device_id`, `agent_id`), starting at 1, without gaps.
    pub seq: u64,
    /// SHA-256 (hex) of the previous record body of the same source; 64 zeros for seq 1.
    pub prev_hash: String,
    /// Officer the device was assigned to when the record was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub officer_id: Option<String>,
    /// Unit code the device was assigned to when the record was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_code: Option<String>,
    /// When it happened, by the device's clock.
    pub device_time: DateTime<Utc>,
    /// When the agent ingested it, by the agent's clock.
    pub ingest_time: DateTime<Utc>,
    /// Device clock minus agent clock, milliseconds, as measured at ingest.
    pub clock_offset_ms: i64,
    /// Present for `kind = media`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Media>,
    /// Present for `kind = event`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Event>,
    /// Where the device was, for field devices with a GPS receiver that had
    /// a valid, recent fix when the record was made; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<Geo>,
}

fn is_hex_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl RecordBody {
    /// The exact bytes to sign and transmit: compact JSON in field order.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain structs of strings and numbers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and checks a body received as bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let body: RecordBody = serde_json::from_slice(bytes)
            .map_err(|e| ProtocolError::malformed("record body", e.to_string()))?;
        body.validate()?;
        Ok(body)
    }

    /// The previous-record hash as bytes.
    pub fn prev_hash(&self) -> Result<Hash, ProtocolError> {
        Hash::from_hex(&self.prev_hash).ok_or_else(|| {
            ProtocolError::malformed("record body", "prev_hash: expected 64 lowercase hex digits")
        })
    }

    /// Checks what the types cannot: version, ids, kind/payload agreement,
    /// hash formats, and a geotag on the globe.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        let bad = |detail: String| Err(ProtocolError::malformed("record body", detail));
        if self.v != VERSION {
            return bad(format!("v = {}: expected {VERSION}", self.v));
        }
        validate_device_id(&self.device_id)?;
        validate_device_id(&self.agent_id)?;
        if self.seq == 0 || self.seq > i64::MAX as u64 {
            return bad(format!("seq = {}: expected 1 to {}", self.seq, i64::MAX));
        }
        let prev = self.prev_hash()?;
        if self.seq == 1 && prev != GENESIS {
            return bad("seq = 1 must have prev_hash of 64 zeros (the chain's start)".into());
        }
        match (self.kind, &self.media, &self.event) {
            (Kind::Media, Some(m), None) => {
                if !is_hex_sha256(&m.sha256) {
                    return bad(format!(
                        "media.sha256 = {:?}: expected 64 lowercase hex digits",
                        m.sha256
                    ));
                }
                if m.file_name.is_empty() || m.file_name.len() > 255 || m.file_name.contains('\0') {
                    return bad("media.file_name: expected 1 to 255 bytes without NUL".into());
                }
            }
            (Kind::Event, None, Some(_)) => {}
            (kind, _, _) => {
                return bad(format!(
                    "kind = {}: expected exactly the {} field",
                    kind.as_str(),
                    kind.as_str()
                ))
            }
        }
        if let Some(geo) = &self.geo {
            geo.validate()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(seq: u64) -> RecordBody {
        RecordBody {
            v: VERSION,
            id: Uuid::nil(),
            kind: Kind::Event,
            device_id: "field-1".into(),
            agent_id: "field-1".into(),
            seq,
            prev_hash: "ab".repeat(32),
            officer_id: None,
            unit_code: None,
            device_time: DateTime::from_timestamp(0, 0).unwrap_or_default(),
            ingest_time: DateTime::from_timestamp(0, 0).unwrap_or_default(),
            clock_offset_ms: 0,
            media: None,
            event: Some(Event::DutyEnded),
            geo: None,
        }
    }

    fn geo(lat: f64, lon: f64) -> Geo {
        Geo {
            lat,
            lon,
            quality: FixQuality::Dgps,
            age_ms: 420,
            satellites: Some(10),
            hdop: Some(0.83),
            altitude_m: None,
        }
    }

    #[test]
    fn a_body_without_a_geotag_has_no_geo_field_and_one_with_it_round_trips() {
        let plain = body(2);
        let text = String::from_utf8(plain.to_bytes()).unwrap();
        assert!(!text.contains("geo"), "{text}");
        let mut tagged = body(2);
        tagged.geo = Some(geo(29.558_056_667, 106.577_916_667));
        let bytes = tagged.to_bytes();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(
            text.ends_with(
                r#","geo":{"lat":29.558056667,"lon":106.577916667,"quality":"dgps","age_ms":420,"satellites":10,"hdop":0.83}}"#
            ),
            "{text}"
        );
        let parsed = RecordBody::parse(&bytes).unwrap();
        assert_eq!(parsed, tagged);
        assert_eq!(parsed.to_bytes(), bytes, "canonical form is stable");
    }

    #[test]
    fn a_geotag_off_the_globe_or_not_finite_is_refused_naming_the_field() {
        for (lat, lon, field) in [
            (90.000_1, 0.0, "geo.lat = 90.0001"),
            (-91.0, 0.0, "geo.lat = -91"),
            (f64::NAN, 0.0, "geo.lat = NaN"),
            (0.0, 180.5, "geo.lon = 180.5"),
            (0.0, f64::NEG_INFINITY, "geo.lon = -inf"),
        ] {
            let mut b = body(2);
            b.geo = Some(geo(lat, lon));
            let err = b.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{field:?} not in {err}");
            assert!(err.contains("expected degrees"), "{err}");
        }
        let mut b = body(2);
        b.geo = Some(Geo {
            hdop: Some(-1.0),
            ..geo(90.0, -180.0)
        });
        assert!(b
            .validate()
            .unwrap_err()
            .to_string()
            .contains("geo.hdop = -1"));
        b.geo = Some(geo(90.0, -180.0));
        assert!(
            b.validate().is_ok(),
            "the poles and the antimeridian are on the globe"
        );
        // On the wire a coordinate out of range is refused at parse.
        let wire = String::from_utf8(body(2).to_bytes()).unwrap().replace(
            "}}",
            r#"},"geo":{"lat":91,"lon":0,"quality":"gps","age_ms":0}}"#,
        );
        let err = RecordBody::parse(wire.as_bytes()).unwrap_err().to_string();
        assert!(
            err.contains("geo.lat = 91: expected degrees from -90 to 90"),
            "{err}"
        );
    }

    #[test]
    fn sequence_numbers_outside_1_to_i64_max_are_refused() {
        assert!(body(2).validate().is_ok());
        for seq in [0, i64::MAX as u64 + 1, u64::MAX] {
            let err = body(seq).validate().unwrap_err().to_string();
            assert!(err.contains(&format!("seq = {seq}")), "{err}");
        }
    }

    #[test]
    fn the_first_record_must_start_the_chain_and_kind_must_match_its_payload() {
        let mut first = body(1);
        assert!(first.validate().is_err(), "seq 1 with a non-zero prev_hash");
        first.prev_hash = GENESIS.to_hex();
        assert!(first.validate().is_ok());
        first.kind = Kind::Media;
        assert!(first
            .validate()
            .unwrap_err()
            .to_string()
            .contains("kind = media"));
    }
}

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
    /// A configuration was applied to the device.
    ConfigApplied {
        /// Content hash of the applied configuration.
        config_hash: String,
        /// Version of the applied configuration.
        version: u64,
    },
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

    /// Checks what the types cannot: version, ids, kind/payload agreement, hash formats.
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
        }
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

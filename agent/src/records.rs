//! Building the records of this device: every source (spool, API) fills
//! identity, chain position, times and geotag the same way.

use chrono::{DateTime, SubsecRound, Utc};
use evsync_protocol::chain::Hash;
use evsync_protocol::record::{Kind, RecordBody, VERSION};

use crate::config::AgentConfig;
use crate::gps::Gps;

/// Now, truncated to milliseconds (the precision records carry).
pub fn now_millis() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// A record body of this device at `seq` after `prev`, without its media or
/// event, ingested now: geotagged from `gps` when the receiver has a valid,
/// recent fix (its age taken at this ingest time), otherwise without `geo`.
pub fn body(
    cfg: &AgentConfig,
    kind: Kind,
    seq: u64,
    prev: Hash,
    device_time: DateTime<Utc>,
    gps: Option<&Gps>,
) -> RecordBody {
    RecordBody {
        v: VERSION,
        id: uuid::Uuid::now_v7(),
        kind,
        device_id: cfg.device_id.clone(),
        agent_id: cfg.device_id.clone(),
        seq,
        prev_hash: prev.to_hex(),
        officer_id: cfg.officer_id.clone(),
        unit_code: cfg.unit_code.clone(),
        device_time: device_time.trunc_subsecs(3),
        ingest_time: now_millis(),
        // Field mode: the field device is the agent, so its clock is the agent's.
        clock_offset_ms: 0,
        media: None,
        event: None,
        geo: gps.and_then(Gps::tag),
    }
}

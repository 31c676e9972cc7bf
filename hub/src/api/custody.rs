//! A record's custody trail: every hand it passed through, from capture on
//! the device to each later read at the hub, as the supervision platform
//! must be able to show it (who, what, when, where).

use serde::Serialize;

use crate::store::{AuditEntry, MediaRow, MediaState, StoredRecord};

/// One step of the trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// When (RFC 3339). For `captured`, by the device's own clock.
    pub at: String,
    /// `captured`, `ingested`, `received`, `verified`, `receipted`,
    /// `media_stored`, `media_awaited`, `media_failed` or `accessed`.
    pub step: &'static str,
    /// Who: the device, the agent, the hub, or the API token's name.
    pub actor: String,
    /// What happened, in words.
    pub detail: String,
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    crate::store::stamp(t)
}

/// The trail of `r`, oldest step first, with its media bookkeeping and the
/// audit entries about it.
pub fn trail(
    r: &StoredRecord,
    hub_id: &str,
    media: Option<&MediaRow>,
    accesses: &[AuditEntry],
) -> Vec<Step> {
    let b = &r.body;
    let holder = match (&b.officer_id, &b.unit_code) {
        (Some(o), Some(u)) => format!("assigned to officer {o} of unit {u}"),
        (Some(o), None) => format!("assigned to officer {o}"),
        (None, Some(u)) => format!("assigned to unit {u}"),
        (None, None) => "assigned to nobody".to_owned(),
    };
    let what = match &b.media {
        Some(m) => format!(
            "recording {} ({} bytes, sha256 {})",
            m.file_name, m.size, m.sha256
        ),
        None => format!("{} event", b.kind.as_str()),
    };
    let mut steps = vec![
        Step {
            at: rfc3339(b.device_time),
            step: "captured",
            actor: b.device_id.clone(),
            detail: format!("{what} made on {}, {holder} (device clock)", b.device_id),
        },
        Step {
            at: rfc3339(b.ingest_time),
            step: "ingested",
            actor: b.agent_id.clone(),
            detail: format!(
                "hashed, chained at seq {} and signed by agent {} (key {}); device clock {} ms off the agent's",
                b.seq, b.agent_id, r.signer_key, b.clock_offset_ms
            ),
        },
        Step {
            at: r.received_at.clone(),
            step: "verified",
            actor: hub_id.to_owned(),
            detail: format!(
                "signature verified against {}'s enrolled key and stored durably (hash {})",
                b.agent_id, r.hash
            ),
        },
        Step {
            at: r.received_at.clone(),
            step: "receipted",
            actor: hub_id.to_owned(),
            detail: format!(
                "signed receipt issued to {} after the commit; the agent may then let the record go",
                b.agent_id
            ),
        },
    ];
    if let Some(m) = media {
        steps.push(match m.state {
            MediaState::Stored => Step {
                at: m.stored_at.clone().unwrap_or_else(|| r.received_at.clone()),
                step: "media_stored",
                actor: hub_id.to_owned(),
                detail: format!(
                    "uploaded bytes verified against sha256 {} and stored; media receipt issued",
                    m.sha256
                ),
            },
            MediaState::Awaiting => Step {
                at: r.received_at.clone(),
                step: "media_awaited",
                actor: hub_id.to_owned(),
                detail: "the recording's bytes have not arrived complete yet".into(),
            },
            MediaState::Failed => Step {
                at: r.received_at.clone(),
                step: "media_failed",
                actor: hub_id.to_owned(),
                detail: format!(
                    "uploads failed verification: {}",
                    m.detail.as_deref().unwrap_or("no detail")
                ),
            },
        });
    }
    steps.extend(accesses.iter().map(|a| Step {
        at: a.at.clone(),
        step: "accessed",
        actor: a.actor.clone(),
        detail: format!(
            "{} by {} ({}) from {} (audit entry {})",
            a.action, a.actor, a.role, a.remote, a.seq
        ),
    }));
    steps
}

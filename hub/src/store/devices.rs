//! The fleet's devices: docks and field devices (agents: they announce
//! themselves with a key, are pending until an operator approves them, and
//! can be revoked) and recorders (no key of their own: first seen through a
//! dock, or registered by an operator). Live figures come from heartbeats
//! (status messages, with the last will saying offline) and from the
//! records docks sign for recorders (battery, storage, clock offset).

use std::time::Duration;

use super::db::{params, OptionalExtension, Transaction};
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::fleet::{open_assignment, Assignment};
use super::{now, Store};

/// Enrollment state of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Announced itself (or seen through a dock); an agent's records are
    /// refused until an operator approves it. A recorder's records are
    /// accepted (its dock signs them) while it awaits registration.
    Pending,
    /// Trusted: records signed by its key are accepted.
    Approved,
    /// No longer trusted: its records are refused.
    Revoked,
}

impl DeviceState {
    fn parse(s: &str) -> Self {
        match s {
            "approved" => Self::Approved,
            "revoked" => Self::Revoked,
            _ => Self::Pending,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Revoked => "revoked",
        }
    }
}

/// What a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// A docking station (采集站): an agent that signs for the recorders docked in it.
    Dock,
    /// A field device (handheld terminal, in-car unit): an agent that signs its own records.
    Field,
    /// A body-worn recorder (执法记录仪): its records are signed by the dock that took them.
    Recorder,
}

impl DeviceKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dock => "dock",
            Self::Field => "field",
            Self::Recorder => "recorder",
        }
    }

    /// The kind with this name.
    pub fn from_name(s: &str) -> Option<Self> {
        [Self::Dock, Self::Field, Self::Recorder]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// Whether this kind signs records with a key of its own.
    pub fn is_agent(self) -> bool {
        self != Self::Recorder
    }
}

/// One device as the hub knows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceRow {
    /// Device id.
    pub device_id: String,
    /// Dock, field device or recorder.
    pub kind: DeviceKind,
    /// Enrolled Ed25519 public key (base64); none for recorders.
    pub public_key: Option<String>,
    /// Enrollment state.
    pub state: DeviceState,
    /// `field` or `dock`, as announced (agents only).
    pub role: Option<String>,
    /// Officer assigned now.
    pub officer_id: Option<String>,
    /// Unit assigned now.
    pub unit_code: Option<String>,
    /// Enforcement domain (执法领域) assigned now.
    pub domain: Option<String>,
    /// Agent software as announced.
    pub software: Option<String>,
    /// Recorder firmware as last reported by a dock.
    pub firmware: Option<String>,
    /// Configuration version the device reported last.
    pub config_version: Option<String>,
    /// First announcement (or first record, for a recorder).
    pub first_seen: String,
    /// Last change of enrollment state.
    pub changed_at: String,
    /// Last heartbeat, announcement or record.
    pub last_seen: Option<String>,
    /// Connected per its last heartbeat (the last will says offline) and
    /// heard from within the hub's `fleet.offline_after_secs`; for a
    /// recorder, docked now in a dock that is online.
    pub online: bool,
    /// The agent's last heartbeat as sent.
    pub status: Option<serde_json::Value>,
    /// Battery charge, percent (recorders as reported on docking; field devices from their heartbeat).
    pub battery_pct: Option<i64>,
    /// Free storage, bytes (an agent's data folder; a recorder's own storage).
    pub storage_free_bytes: Option<i64>,
    /// Total storage, bytes.
    pub storage_total_bytes: Option<i64>,
    /// Device clock minus agent clock as last measured, milliseconds.
    pub clock_offset_ms: Option<i64>,
    /// Records waiting in the agent's buffer for a receipt.
    pub backlog_records: Option<i64>,
    /// Bytes of those records.
    pub backlog_bytes: Option<i64>,
    /// For a recorder: the dock it sits in now.
    pub docked_in: Option<String>,
}

const COLUMNS: &str = "device_id, kind, public_key, state, role, officer_id, unit_code, domain, \
     software, firmware, config_version, first_seen, changed_at, last_seen, online, status, \
     battery_pct, storage_free_bytes, storage_total_bytes, clock_offset_ms, backlog_records, \
     backlog_bytes, docked_in";

fn row(r: &super::db::Row) -> super::db::Result<DeviceRow> {
    let kind: String = r.get(1)?;
    let state: String = r.get(3)?;
    let status: Option<String> = r.get(15)?;
    Ok(DeviceRow {
        device_id: r.get(0)?,
        kind: DeviceKind::from_name(&kind).unwrap_or(DeviceKind::Field),
        public_key: r.get(2)?,
        state: DeviceState::parse(&state),
        role: r.get(4)?,
        officer_id: r.get(5)?,
        unit_code: r.get(6)?,
        domain: r.get(7)?,
        software: r.get(8)?,
        firmware: r.get(9)?,
        config_version: r.get(10)?,
        first_seen: r.get(11)?,
        changed_at: r.get(12)?,
        last_seen: r.get(13)?,
        online: r.get(14)?,
        status: status.and_then(|s| serde_json::from_str(&s).ok()),
        battery_pct: r.get(16)?,
        storage_free_bytes: r.get(17)?,
        storage_total_bytes: r.get(18)?,
        clock_offset_ms: r.get(19)?,
        backlog_records: r.get(20)?,
        backlog_bytes: r.get(21)?,
        docked_in: r.get(22)?,
    })
}

/// Whether an agent last heard from at `last_seen` and connected per its
/// last status counts as online at `now`: silent for longer than
/// `offline_after` (a half-open connection whose last will never came) is offline.
pub fn is_online(
    connected: bool,
    last_seen: Option<&str>,
    now: DateTime<Utc>,
    offline_after: Duration,
) -> bool {
    let Some(seen) = last_seen.and_then(|s| DateTime::parse_from_rfc3339(s).ok()) else {
        return false;
    };
    let silent = now.signed_duration_since(seen.with_timezone(&Utc));
    connected && silent.to_std().map_or(true, |d| d <= offline_after)
}

/// Applies liveness to a list of devices: agents by their own heartbeat,
/// recorders by the dock they sit in.
pub fn apply_liveness(devices: &mut [DeviceRow], offline_after: Duration) {
    let t = Utc::now();
    for d in devices.iter_mut().filter(|d| d.kind.is_agent()) {
        d.online = is_online(d.online, d.last_seen.as_deref(), t, offline_after);
    }
    let online_docks: std::collections::HashSet<String> = devices
        .iter()
        .filter(|d| d.kind == DeviceKind::Dock && d.online)
        .map(|d| d.device_id.clone())
        .collect();
    for d in devices
        .iter_mut()
        .filter(|d| d.kind == DeviceKind::Recorder)
    {
        d.online = d
            .docked_in
            .as_ref()
            .is_some_and(|dock| online_docks.contains(dock));
    }
}

/// What an announcement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announced {
    /// A new device, now pending (or approved, with auto-approve).
    Enrolled(DeviceState),
    /// A known device with the same key; details refreshed.
    Refreshed,
    /// A known device announced a different key (or a recorder's id): refused.
    KeyMismatch,
}

/// What an agent announces about itself.
#[derive(Debug, Clone, Copy)]
pub struct Announcement<'a> {
    /// Its id.
    pub device_id: &'a str,
    /// Its key (base64).
    pub public_key: &'a str,
    /// `field` or `dock`.
    pub role: &'a str,
    /// Officer it says it is assigned to.
    pub officer_id: Option<&'a str>,
    /// Unit it says it is assigned to.
    pub unit_code: Option<&'a str>,
    /// Its software.
    pub software: &'a str,
}

/// Notes a recorder seen in a record signed by `dock` (creating it as
/// pending), inside the caller's transaction.
pub(crate) fn seen_recorder(tx: &Transaction<'_>, recorder: &str) -> anyhow::Result<()> {
    let t = now();
    tx.prepare_cached(
        "INSERT INTO devices (device_id, kind, state, first_seen, changed_at, last_seen)
         VALUES (?1, 'recorder', 'pending', ?2, ?2, ?2)
         ON CONFLICT (device_id) DO UPDATE SET last_seen = ?2 WHERE devices.kind = 'recorder'",
    )?
    .execute(params![recorder, t])?;
    Ok(())
}

/// Keeps a recorder's battery and storage as a dock reported them.
pub(crate) fn recorder_status(
    tx: &Transaction<'_>,
    recorder: &str,
    battery_pct: Option<u8>,
    free: Option<u64>,
    total: Option<u64>,
) -> anyhow::Result<()> {
    tx.prepare_cached(
        "UPDATE devices SET battery_pct = COALESCE(?2, battery_pct),
             storage_free_bytes = COALESCE(?3, storage_free_bytes),
             storage_total_bytes = COALESCE(?4, storage_total_bytes)
         WHERE device_id = ?1 AND kind = 'recorder'",
    )?
    .execute(params![
        recorder,
        battery_pct.map(i64::from),
        free.map(|v| v as i64),
        total.map(|v| v as i64)
    ])?;
    Ok(())
}

/// Keeps a device's clock offset as last measured.
pub(crate) fn clock_offset(
    tx: &Transaction<'_>,
    device: &str,
    offset_ms: i64,
) -> anyhow::Result<()> {
    tx.prepare_cached("UPDATE devices SET clock_offset_ms = ?2 WHERE device_id = ?1")?
        .execute(params![device, offset_ms])?;
    Ok(())
}

fn one(conn: &super::db::Connection, device_id: &str) -> anyhow::Result<Option<DeviceRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM devices WHERE device_id = ?1"
    ))?;
    Ok(stmt.query_row([device_id], row).optional()?)
}

impl Store {
    /// All devices, ordered by id (online as last reported: see [`apply_liveness`]).
    pub fn devices(&self) -> anyhow::Result<Vec<DeviceRow>> {
        let mut stmt = self
            .conn()
            .prepare_cached(&format!("SELECT {COLUMNS} FROM devices ORDER BY device_id"))?;
        let rows = stmt.query_map([], row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// One device.
    pub fn device(&self, device_id: &str) -> anyhow::Result<Option<DeviceRow>> {
        one(self.conn(), device_id)
    }

    /// Applies a verified announcement. A changed officer or unit opens a
    /// new assignment (source `announce`).
    pub fn announce(
        &mut self,
        a: Announcement<'_>,
        auto_approve: bool,
    ) -> anyhow::Result<Announced> {
        let t = now();
        self.in_transaction(|tx| {
            let kind = if a.role == "dock" {
                DeviceKind::Dock
            } else {
                DeviceKind::Field
            };
            let outcome = match one(tx, a.device_id)? {
                None => {
                    let state = if auto_approve {
                        DeviceState::Approved
                    } else {
                        DeviceState::Pending
                    };
                    tx.execute(
                        "INSERT INTO devices (device_id, kind, public_key, state, role, officer_id, unit_code, software, first_seen, changed_at, last_seen)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?9)",
                        params![a.device_id, kind.as_str(), a.public_key, state.as_str(), a.role, a.officer_id, a.unit_code, a.software, t],
                    )?;
                    Announced::Enrolled(state)
                }
                // Issued a broker credential before it first connected: its
                // first announcement pins its key, and it waits for approval
                // like any new device (an embedded broker authenticates
                // nobody, so the key must be seen before it is trusted).
                Some(d) if d.kind.is_agent() && d.public_key.is_none() => {
                    let state = match (d.state, auto_approve) {
                        (DeviceState::Pending, true) => DeviceState::Approved,
                        (state, _) => state,
                    };
                    tx.execute(
                        "UPDATE devices SET public_key = ?2, role = ?3, kind = ?4, software = ?5, last_seen = ?6,
                                            state = ?7, changed_at = ?6
                         WHERE device_id = ?1",
                        params![a.device_id, a.public_key, a.role, kind.as_str(), a.software, t, state.as_str()],
                    )?;
                    Announced::Enrolled(state)
                }
                Some(d) if d.public_key.as_deref() != Some(a.public_key) => {
                    return Ok(Announced::KeyMismatch)
                }
                Some(_) => {
                    tx.execute(
                        "UPDATE devices SET role = ?2, kind = ?3, software = ?4, last_seen = ?5 WHERE device_id = ?1",
                        params![a.device_id, a.role, kind.as_str(), a.software, t],
                    )?;
                    Announced::Refreshed
                }
            };
            if a.officer_id.is_some() || a.unit_code.is_some() {
                let current = open_assignment(tx, a.device_id)?;
                let same = current.as_ref().is_some_and(|c: &Assignment| {
                    c.officer_id.as_deref() == a.officer_id && c.unit_code.as_deref() == a.unit_code
                });
                if !same {
                    let domain = current.and_then(|c| c.domain);
                    super::fleet::assign_in(
                        tx,
                        a.device_id,
                        &super::fleet::NewAssignment {
                            officer_id: a.officer_id.map(str::to_owned),
                            unit_code: a.unit_code.map(str::to_owned),
                            domain,
                        },
                        &t,
                        "announce",
                        a.device_id,
                    )?;
                }
            }
            Ok(outcome)
        })
    }

    /// Sets a device's enrollment state (operator action). Errors name an unknown device.
    pub fn set_device_state(
        &mut self,
        device_id: &str,
        state: DeviceState,
    ) -> anyhow::Result<DeviceRow> {
        let n = self.conn().execute(
            "UPDATE devices SET state = ?2, changed_at = ?3 WHERE device_id = ?1",
            params![device_id, state.as_str(), now()],
        )?;
        if n == 0 {
            anyhow::bail!(
                "no device {device_id:?}: a device appears once it has announced itself or a dock has synced it, or when registered (see `evsync-hub devices list`)"
            );
        }
        self.device(device_id)?
            .with_context(|| format!("device {device_id} vanished while being updated"))
    }

    /// Registers a recorder ahead of its first docking (operator action),
    /// approved; an existing recorder is approved. Refuses the id of an agent.
    pub fn register_recorder(&mut self, device_id: &str) -> anyhow::Result<DeviceRow> {
        evsync_protocol::topic::validate_device_id(device_id)
            .map_err(|e| anyhow::anyhow!("device id {device_id:?}: {e}"))?;
        if let Some(d) = self.device(device_id)? {
            if d.kind.is_agent() {
                anyhow::bail!(
                    "{device_id} is a {} (an agent that enrolls by announcing its key), not a recorder",
                    d.kind.as_str()
                );
            }
        }
        let t = now();
        self.conn().execute(
            "INSERT INTO devices (device_id, kind, state, first_seen, changed_at)
             VALUES (?1, 'recorder', 'approved', ?2, ?2)
             ON CONFLICT (device_id) DO UPDATE SET state = 'approved', changed_at = ?2",
            params![device_id, t],
        )?;
        self.device(device_id)?
            .with_context(|| format!("recorder {device_id} vanished while being registered"))
    }

    /// Records a status message (heartbeat or last will). With `slots`
    /// (an approved dock's), its slots say which recorders sit in it now,
    /// with their battery, firmware and the assignment the recorder itself
    /// holds; slots naming a device that is not a recorder, or an officer or
    /// unit that is not well formed, are skipped.
    pub fn device_status(
        &mut self,
        device_id: &str,
        status: &serde_json::Value,
        slots: bool,
    ) -> anyhow::Result<()> {
        let online = status
            .get("online")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let int = |name: &str| status.get(name).and_then(|v| v.as_i64());
        let t = now();
        self.in_transaction(|tx| {
            tx.execute(
                "UPDATE devices SET last_seen = ?2, online = ?3, status = ?4,
                     backlog_records = COALESCE(?5, backlog_records), backlog_bytes = COALESCE(?6, backlog_bytes),
                     config_version = COALESCE(?7, config_version), battery_pct = COALESCE(?8, battery_pct),
                     storage_free_bytes = COALESCE(?9, storage_free_bytes),
                     storage_total_bytes = COALESCE(?10, storage_total_bytes)
                 WHERE device_id = ?1",
                params![
                    device_id,
                    t,
                    online,
                    status.to_string(),
                    int("backlog_records"),
                    int("backlog_bytes"),
                    status.get("config_version").and_then(|v| v.as_str()),
                    int("battery_pct").filter(|b| (0..=100).contains(b)),
                    int("storage_free_bytes"),
                    int("storage_total_bytes")
                ],
            )?;
            // Heard from today; and so its officer's recorder, if it is one and on duty.
            let at = chrono::Utc::now().timestamp_millis();
            super::coverage::heard_on_day(tx, device_id, at)?;
            let officer: Option<String> = tx
                .query_row(
                    "SELECT officer_id FROM devices WHERE device_id = ?1",
                    [device_id],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            if let (Some(o), true) = (officer, online) {
                if super::coverage::records_media(tx, device_id)? {
                    let now = crate::coverage::span::Span::new(at, at + 1);
                    super::duty::heard(tx, &o, now)?;
                }
            }
            let listed = status
                .get("slots")
                .and_then(|s| s.as_array())
                .filter(|_| slots);
            let Some(slots) = listed else {
                if !online {
                    // Last will: the dock is gone, and what sat in it with it.
                    tx.execute(
                        "UPDATE devices SET docked_in = NULL WHERE docked_in = ?1",
                        [device_id],
                    )?;
                }
                return Ok(());
            };
            let mut docked = Vec::new();
            for slot in slots {
                let Some(recorder) = slot.get("recorder").and_then(|v| v.as_str()) else {
                    continue;
                };
                if evsync_protocol::topic::validate_device_id(recorder).is_err() {
                    continue;
                }
                seen_recorder(tx, recorder)?;
                if one(tx, recorder)?.is_some_and(|d| d.kind != DeviceKind::Recorder) {
                    continue; // an agent's id in a slot: never a recorder
                }
                tx.execute(
                    "UPDATE devices SET docked_in = ?2, last_seen = ?3,
                         battery_pct = COALESCE(?4, battery_pct), firmware = COALESCE(?5, firmware),
                         clock_offset_ms = COALESCE(?6, clock_offset_ms)
                     WHERE device_id = ?1 AND kind = 'recorder'",
                    params![
                        recorder,
                        device_id,
                        t,
                        slot.get("battery_pct").and_then(|v| v.as_i64()),
                        slot.get("firmware").and_then(|v| v.as_str()),
                        slot.get("clock_offset_ms").and_then(|v| v.as_i64()),
                    ],
                )?;
                let said = |k: &str| slot.get(k).and_then(|v| v.as_str()).map(str::to_owned);
                let (officer, unit) = (said("officer"), said("unit"));
                let wrong = super::fleet::NewAssignment {
                    officer_id: officer.clone(),
                    unit_code: unit.clone(),
                    domain: None,
                }
                .problems();
                if !wrong.is_empty() {
                    tracing::warn!(dock = device_id, recorder, problems = %wrong.join("; "), "slot assignment ignored");
                    docked.push(recorder.to_owned());
                    continue;
                }
                if officer.is_some() || unit.is_some() {
                    let current = open_assignment(tx, recorder)?;
                    let same = current.as_ref().is_some_and(|c| {
                        c.officer_id == officer && c.unit_code == unit
                    });
                    if !same {
                        // What the recorder itself says it is assigned to (its ZFY info).
                        let domain = current.and_then(|c| c.domain);
                        super::fleet::assign_in(
                            tx,
                            recorder,
                            &super::fleet::NewAssignment {
                                officer_id: officer,
                                unit_code: unit,
                                domain,
                            },
                            &t,
                            "recorder",
                            device_id,
                        )?;
                    }
                }
                docked.push(recorder.to_owned());
            }
            let mut stmt =
                tx.prepare_cached("SELECT device_id FROM devices WHERE docked_in = ?1")?;
            let was: Vec<String> = stmt
                .query_map([device_id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for gone in was.iter().filter(|w| !docked.contains(w)) {
                tx.execute(
                    "UPDATE devices SET docked_in = NULL WHERE device_id = ?1",
                    [gone],
                )?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_silent_past_the_limit_is_offline_whatever_its_last_status_said() {
        let t = Utc::now();
        let ago = |s: i64| super::super::stamp(t - chrono::Duration::seconds(s));
        let limit = Duration::from_secs(30);
        assert!(is_online(true, Some(&ago(10)), t, limit));
        assert!(!is_online(true, Some(&ago(31)), t, limit));
        assert!(!is_online(false, Some(&ago(1)), t, limit));
        assert!(!is_online(true, None, t, limit));
        assert!(!is_online(true, Some("not a time"), t, limit));
    }
}

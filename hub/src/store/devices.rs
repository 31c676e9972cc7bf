//! Devices and their enrollment: pending (announced, not yet trusted),
//! approved (records verified against the enrolled key), revoked.

use anyhow::Context as _;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{now, Store};

/// Enrollment state of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Announced itself; records are refused until an operator approves it.
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

/// One device as the hub knows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceRow {
    /// Device id.
    pub device_id: String,
    /// Enrolled Ed25519 public key (base64).
    pub public_key: String,
    /// Enrollment state.
    pub state: DeviceState,
    /// `field` or `dock`, as announced.
    pub role: Option<String>,
    /// Officer as announced.
    pub officer_id: Option<String>,
    /// Unit as announced.
    pub unit_code: Option<String>,
    /// Software as announced.
    pub software: Option<String>,
    /// First announcement.
    pub first_seen: String,
    /// Last change of enrollment state.
    pub changed_at: String,
    /// Last status or announcement.
    pub last_seen: Option<String>,
    /// Online per the last status message (last will says offline).
    pub online: bool,
    /// The last status message as sent.
    pub status: Option<serde_json::Value>,
}

const COLUMNS: &str = "device_id, public_key, state, role, officer_id, unit_code, software, \
     first_seen, changed_at, last_seen, online, status";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceRow> {
    let state: String = r.get(2)?;
    let status: Option<String> = r.get(11)?;
    Ok(DeviceRow {
        device_id: r.get(0)?,
        public_key: r.get(1)?,
        state: DeviceState::parse(&state),
        role: r.get(3)?,
        officer_id: r.get(4)?,
        unit_code: r.get(5)?,
        software: r.get(6)?,
        first_seen: r.get(7)?,
        changed_at: r.get(8)?,
        last_seen: r.get(9)?,
        online: r.get(10)?,
        status: status.and_then(|s| serde_json::from_str(&s).ok()),
    })
}

/// What an announcement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announced {
    /// A new device, now pending (or approved, with auto-approve).
    Enrolled(DeviceState),
    /// A known device with the same key; details refreshed.
    Refreshed,
    /// A known device announced a different key: refused.
    KeyMismatch,
}

impl Store {
    /// All devices, ordered by id.
    pub fn devices(&self) -> anyhow::Result<Vec<DeviceRow>> {
        let mut stmt = self
            .conn()
            .prepare_cached(&format!("SELECT {COLUMNS} FROM devices ORDER BY device_id"))?;
        let rows = stmt.query_map([], row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// One device.
    pub fn device(&self, device_id: &str) -> anyhow::Result<Option<DeviceRow>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {COLUMNS} FROM devices WHERE device_id = ?1"
        ))?;
        Ok(stmt.query_row([device_id], row).optional()?)
    }

    /// Applies a verified announcement.
    #[allow(clippy::too_many_arguments)]
    pub fn announce(
        &self,
        device_id: &str,
        public_key: &str,
        role: &str,
        officer_id: Option<&str>,
        unit_code: Option<&str>,
        software: &str,
        auto_approve: bool,
    ) -> anyhow::Result<Announced> {
        let t = now();
        match self.device(device_id)? {
            None => {
                let state = if auto_approve {
                    DeviceState::Approved
                } else {
                    DeviceState::Pending
                };
                self.conn().execute(
                    "INSERT INTO devices (device_id, public_key, state, role, officer_id, unit_code, software, first_seen, changed_at, last_seen)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?8)",
                    params![device_id, public_key, state.as_str(), role, officer_id, unit_code, software, t],
                )?;
                Ok(Announced::Enrolled(state))
            }
            Some(d) if d.public_key != public_key => Ok(Announced::KeyMismatch),
            Some(_) => {
                self.conn().execute(
                    "UPDATE devices SET role = ?2, officer_id = ?3, unit_code = ?4, software = ?5, last_seen = ?6 WHERE device_id = ?1",
                    params![device_id, role, officer_id, unit_code, software, t],
                )?;
                Ok(Announced::Refreshed)
            }
        }
    }

    /// Sets a device's enrollment state (operator action). Errors name an unknown device.
    pub fn set_device_state(
        &self,
        device_id: &str,
        state: DeviceState,
    ) -> anyhow::Result<DeviceRow> {
        let n = self.conn().execute(
            "UPDATE devices SET state = ?2, changed_at = ?3 WHERE device_id = ?1",
            params![device_id, state.as_str(), now()],
        )?;
        if n == 0 {
            anyhow::bail!(
                "no device {device_id:?}: a device appears once it has announced itself (see `evsync-hub devices list`)"
            );
        }
        self.device(device_id)?
            .with_context(|| format!("device {device_id} vanished while being updated"))
    }

    /// Records a status message (heartbeat or last will).
    pub fn device_status(&self, device_id: &str, status: &serde_json::Value) -> anyhow::Result<()> {
        let online = status
            .get("online")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        self.conn().execute(
            "UPDATE devices SET last_seen = ?2, online = ?3, status = ?4 WHERE device_id = ?1",
            params![device_id, now(), online, status.to_string()],
        )?;
        Ok(())
    }
}

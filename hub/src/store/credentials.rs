//! Broker credentials of agents (docks and field devices): issuing one
//! enrolls the device (pending; its first announcement pins its key, and an
//! operator approves it, or auto-approve does), and the broker files are
//! written from the devices that hold one and are not revoked.

use super::db::params;
use serde::Serialize;

use super::devices::{DeviceKind, DeviceState};
use super::{now, Store};

/// An agent the broker lets in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokerUser {
    /// Its device id, which is its user name.
    pub device_id: String,
    /// Dock or field device.
    pub kind: DeviceKind,
    /// Salted hash of its secret, as a Mosquitto password file holds it.
    pub password_hash: String,
}

/// A credential the embedded broker's guard checks a connection against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerCredential {
    /// The agent and its hashed secret.
    pub user: BrokerUser,
    /// Whether the device is revoked (then it is refused).
    pub revoked: bool,
}

impl Store {
    /// Keeps `password_hash` as the broker credential of agent `device_id`,
    /// replacing any earlier one. An unknown device is enrolled, pending,
    /// as `kind`; a revoked one or a recorder is refused.
    pub fn set_credential(
        &mut self,
        device_id: &str,
        kind: DeviceKind,
        password_hash: &str,
        by: &str,
    ) -> anyhow::Result<()> {
        evsync_protocol::topic::validate_device_id(device_id)
            .map_err(|e| anyhow::anyhow!("device id {device_id:?}: {e}"))?;
        anyhow::ensure!(
            kind.is_agent(),
            "only agents (docks, field devices) connect to the broker; {device_id} would be a {}",
            kind.as_str()
        );
        if let Some(d) = self.device(device_id)? {
            anyhow::ensure!(
                d.kind.is_agent(),
                "{device_id} is a {}: it does not connect to the broker",
                d.kind.as_str()
            );
            anyhow::ensure!(
                d.state != DeviceState::Revoked,
                "{device_id} is revoked: it gets no credential"
            );
        }
        let t = now();
        self.in_transaction(|tx| {
            tx.execute(
                "INSERT INTO devices (device_id, kind, state, first_seen, changed_at)
                 VALUES (?1, ?2, 'pending', ?3, ?3) ON CONFLICT DO NOTHING",
                params![device_id, kind.as_str(), t],
            )?;
            tx.execute(
                "INSERT INTO device_credentials (device_id, password_hash, issued_at, by_whom)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (device_id) DO UPDATE SET password_hash = ?2, issued_at = ?3, by_whom = ?4",
                params![device_id, password_hash, t, by],
            )?;
            Ok(())
        })
    }

    /// Every credential issued, revoked devices' too (so a refusal can say why).
    pub fn broker_credentials(&self) -> anyhow::Result<Vec<BrokerCredential>> {
        let mut stmt = self.conn().prepare(
            "SELECT c.device_id, d.kind, c.password_hash, d.state FROM device_credentials c
             JOIN devices d ON d.device_id = c.device_id ORDER BY c.device_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (device_id, kind, password_hash, state) = row?;
            let kind = DeviceKind::from_name(&kind).ok_or_else(|| {
                anyhow::anyhow!("device {device_id} has an unknown kind {kind:?}")
            })?;
            out.push(BrokerCredential {
                user: BrokerUser {
                    device_id,
                    kind,
                    password_hash,
                },
                revoked: state == DeviceState::Revoked.as_str(),
            });
        }
        Ok(out)
    }

    /// The agents the broker lets in: those holding a credential and not revoked.
    pub fn broker_users(&self) -> anyhow::Result<Vec<BrokerUser>> {
        let mut stmt = self.conn().prepare(
            "SELECT c.device_id, d.kind, c.password_hash FROM device_credentials c
             JOIN devices d ON d.device_id = c.device_id
             WHERE d.state <> 'revoked' ORDER BY c.device_id",
        )?;
        let rows = stmt.query_map([], |r| {
            let kind: String = r.get(1)?;
            Ok((r.get::<_, String>(0)?, kind, r.get::<_, String>(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (device_id, kind, password_hash) = row?;
            let kind = DeviceKind::from_name(&kind).ok_or_else(|| {
                anyhow::anyhow!("device {device_id} has an unknown kind {kind:?}")
            })?;
            out.push(BrokerUser {
                device_id,
                kind,
                password_hash,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Announced, Announcement};

    #[test]
    fn a_credential_enrolls_an_agent_whose_first_announcement_pins_its_key() {
        for e in crate::store::tests::engines() {
            let (_dir, mut s) = crate::store::tests::store_on(&e);
            s.set_credential("field-1", DeviceKind::Field, "$7$101$a$b", "t")
                .unwrap();
            let d = s.device("field-1").unwrap().unwrap();
            assert_eq!((d.kind, d.state), (DeviceKind::Field, DeviceState::Pending));
            assert_eq!(d.public_key, None);
            let announce = |key| Announcement {
                device_id: "field-1",
                public_key: key,
                role: "field",
                officer_id: None,
                unit_code: None,
                software: "evsync-agent",
            };
            assert_eq!(
                s.announce(announce("key-1"), false).unwrap(),
                Announced::Enrolled(DeviceState::Pending),
                "seen, not trusted: an operator approves it"
            );
            assert_eq!(
                s.device("field-1").unwrap().unwrap().public_key.as_deref(),
                Some("key-1")
            );
            assert_eq!(
                s.announce(announce("key-2"), true).unwrap(),
                Announced::KeyMismatch,
                "the first key stays pinned"
            );
            assert_eq!(s.broker_users().unwrap().len(), 1);
        }
    }

    #[test]
    fn with_auto_approve_the_first_announcement_approves_it() {
        for e in crate::store::tests::engines() {
            let (_dir, mut s) = crate::store::tests::store_on(&e);
            s.set_credential("dock-1", DeviceKind::Dock, "$7$101$a$b", "t")
                .unwrap();
            let a = Announcement {
                device_id: "dock-1",
                public_key: "key-1",
                role: "dock",
                officer_id: None,
                unit_code: None,
                software: "evsync-agent",
            };
            assert_eq!(
                s.announce(a, true).unwrap(),
                Announced::Enrolled(DeviceState::Approved)
            );
        }
    }

    #[test]
    fn recorders_and_revoked_devices_get_no_credential_and_revoked_ones_leave_the_broker() {
        for e in crate::store::tests::engines() {
            let (_dir, mut s) = crate::store::tests::store_on(&e);
            s.register_recorder("ZFY0001").unwrap();
            let err = s
                .set_credential("ZFY0001", DeviceKind::Field, "$7$", "t")
                .unwrap_err();
            assert!(err.to_string().contains("is a recorder"), "{err}");
            assert!(s
                .set_credential("ZFY0002", DeviceKind::Recorder, "$7$", "t")
                .is_err());
            s.set_credential("dock-1", DeviceKind::Dock, "$7$101$a$b", "t")
                .unwrap();
            s.set_device_state("dock-1", DeviceState::Revoked).unwrap();
            assert!(s.broker_users().unwrap().is_empty());
            let all = s.broker_credentials().unwrap();
            assert_eq!(all.len(), 1);
            assert!(all[0].revoked && all[0].user.device_id == "dock-1");
            let err = s
                .set_credential("dock-1", DeviceKind::Dock, "$7$", "t")
                .unwrap_err();
            assert!(err.to_string().contains("revoked"), "{err}");
        }
    }
}

//! The decisions of the embedded broker's guard, without I/O: who a CONNECT
//! is (checked against the credentials issued at enrollment), whether each
//! later packet of that client stays within its own topics, and whether a
//! connected client is still allowed after the credentials changed. The
//! listener (`super::listener`) moves the bytes and acts on the answers.

use std::collections::HashMap;

use rumqttc::mqttbytes::v4::{Connect, Packet};
use rumqttc::mqttbytes::Protocol;
use rumqttc::ConnectReturnCode;

use super::acl;
use crate::store::{BrokerCredential, DeviceKind};

/// Why the guard refused a client; its label on
/// `evsync_hub_broker_refusals_total{reason=...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No user name or password.
    NoCredentials,
    /// The secret is not the one issued to that user.
    BadCredentials,
    /// No credential was ever issued to that user.
    UnknownClient,
    /// The device is revoked.
    Revoked,
    /// A new secret was issued while the client was connected with the old one.
    CredentialReplaced,
    /// The client id is not the user name (a device presenting another's id).
    ClientIdMismatch,
    /// A PUBLISH, SUBSCRIBE or last will outside the client's own topics.
    ForeignTopic,
    /// A plain TCP client where TLS is required.
    NoTls,
    /// An MQTT 5 client: the guard reads MQTT 3.1.1 only.
    Mqtt5,
    /// Bytes that are not MQTT 3.1.1, a packet too large, or a second CONNECT.
    Malformed,
    /// No CONNECT within the time allowed.
    Timeout,
}

impl Refusal {
    /// The metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::NoCredentials => "no_credentials",
            Refusal::BadCredentials => "bad_credentials",
            Refusal::UnknownClient => "unknown_client",
            Refusal::Revoked => "revoked",
            Refusal::CredentialReplaced => "credential_replaced",
            Refusal::ClientIdMismatch => "client_id_mismatch",
            Refusal::ForeignTopic => "foreign_topic",
            Refusal::NoTls => "no_tls",
            Refusal::Mqtt5 => "mqtt5_unsupported",
            Refusal::Malformed => "malformed",
            Refusal::Timeout => "connect_timeout",
        }
    }

    /// The CONNACK code that tells a refused CONNECT why (MQTT 3.1.1 §3.2.2.3).
    pub fn connack(self) -> ConnectReturnCode {
        match self {
            Refusal::NoCredentials | Refusal::BadCredentials => {
                ConnectReturnCode::BadUserNamePassword
            }
            Refusal::ClientIdMismatch => ConnectReturnCode::BadClientId,
            Refusal::Mqtt5 => ConnectReturnCode::RefusedProtocolVersion,
            _ => ConnectReturnCode::NotAuthorized,
        }
    }
}

/// The credentials issued, by device id (a snapshot of the store).
#[derive(Debug, Clone, Default)]
pub struct Credentials(HashMap<String, BrokerCredential>);

impl Credentials {
    /// A snapshot of `all`.
    pub fn new(all: Vec<BrokerCredential>) -> Self {
        Self(
            all.into_iter()
                .map(|c| (c.user.device_id.clone(), c))
                .collect(),
        )
    }

    /// Whether a credential was ever issued to `device_id`.
    pub fn knows(&self, device_id: &str) -> bool {
        self.0.contains_key(device_id)
    }
}

/// Who a connected client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// An enrolled agent, authenticated with the hashed secret it holds.
    Device {
        /// Its device id (user name and client id).
        id: String,
        /// Dock or field device.
        kind: DeviceKind,
        /// The hash it authenticated against; a new one issued ends the connection.
        password_hash: String,
    },
    /// Anyone, when `mqtt.require_auth` is off: no confinement.
    Open,
}

/// Checks a CONNECT. With `require_auth`, the user name must hold a
/// credential that is not revoked, the password must be its secret, the
/// client id must be the user name, and a last will must be on its own
/// topics; without it, every MQTT 3.1.1 client is let in.
pub fn authenticate(
    connect: &Connect,
    creds: &Credentials,
    require_auth: bool,
) -> Result<Identity, Refusal> {
    if connect.protocol != Protocol::V4 {
        return Err(Refusal::Mqtt5);
    }
    if !require_auth {
        return Ok(Identity::Open);
    }
    let login = connect.login.as_ref().ok_or(Refusal::NoCredentials)?;
    let cred = creds.0.get(&login.username).ok_or(Refusal::UnknownClient)?;
    if !crate::mosquitto::verify(&login.password, &cred.user.password_hash) {
        return Err(Refusal::BadCredentials);
    }
    if cred.revoked {
        return Err(Refusal::Revoked);
    }
    if connect.client_id != login.username {
        return Err(Refusal::ClientIdMismatch);
    }
    if let Some(will) = &connect.last_will {
        if !acl::may_publish(&login.username, &will.topic) {
            return Err(Refusal::ForeignTopic);
        }
    }
    Ok(Identity::Device {
        id: login.username.clone(),
        kind: cred.user.kind,
        password_hash: cred.user.password_hash.clone(),
    })
}

/// Whether a connected client may stay after the credentials changed.
pub fn still_allowed(who: &Identity, creds: &Credentials) -> Result<(), Refusal> {
    let Identity::Device {
        id, password_hash, ..
    } = who
    else {
        return Ok(());
    };
    match creds.0.get(id) {
        None => Err(Refusal::Revoked),
        Some(c) if c.revoked => Err(Refusal::Revoked),
        Some(c) if &c.user.password_hash != password_hash => Err(Refusal::CredentialReplaced),
        Some(_) => Ok(()),
    }
}

/// The topic name of a PUBLISH `frame` (a whole packet, fixed header
/// included), read in place: payloads are not copied to be checked.
pub fn publish_topic(frame: &[u8]) -> Option<&str> {
    // Fixed header: one byte, then 1 to 4 bytes of remaining length.
    let len_bytes = frame.get(1..)?.iter().take(4).position(|b| b & 0x80 == 0)? + 1;
    let at = 1 + len_bytes;
    let n = usize::from(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]));
    std::str::from_utf8(frame.get(at + 2..at + 2 + n)?).ok()
}

/// The protocol level of a CONNECT `frame` (4 is MQTT 3.1.1, 5 is MQTT 5),
/// read before the frame is parsed as 3.1.1.
pub fn protocol_level(frame: &[u8]) -> Option<u8> {
    let len_bytes = frame.get(1..)?.iter().take(4).position(|b| b & 0x80 == 0)? + 1;
    let at = 1 + len_bytes;
    let n = usize::from(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]));
    frame.get(at + 2 + n).copied()
}

/// Checks one packet (a whole `frame`) a connected client sends.
pub fn check_packet(who: &Identity, frame: &[u8], max: usize) -> Result<(), Refusal> {
    let first = *frame.first().ok_or(Refusal::Malformed)?;
    match first >> 4 {
        // A second CONNECT is a protocol violation (MQTT 3.1.1 §3.1.0-2).
        1 => Err(Refusal::Malformed),
        3 => {
            let topic = publish_topic(frame).ok_or(Refusal::Malformed)?;
            match who {
                Identity::Device { id, .. } if !acl::may_publish(id, topic) => {
                    Err(Refusal::ForeignTopic)
                }
                _ => Ok(()),
            }
        }
        8 => {
            let Identity::Device { id, kind, .. } = who else {
                return Ok(());
            };
            let mut bytes = bytes::BytesMut::from(frame);
            match Packet::read(&mut bytes, max) {
                Ok(Packet::Subscribe(s)) => {
                    if s.filters
                        .iter()
                        .all(|f| acl::may_subscribe(id, *kind, &f.path))
                    {
                        Ok(())
                    } else {
                        Err(Refusal::ForeignTopic)
                    }
                }
                _ => Err(Refusal::Malformed),
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BrokerUser;
    use rumqttc::mqttbytes::v4::{LastWill, Publish, Subscribe};
    use rumqttc::QoS;

    fn creds() -> Credentials {
        let c = |id: &str, kind, secret: &str, revoked| BrokerCredential {
            user: BrokerUser {
                device_id: id.into(),
                kind,
                password_hash: crate::mosquitto::password_hash(secret).unwrap(),
            },
            revoked,
        };
        Credentials::new(vec![
            c("field-1", DeviceKind::Field, "one", false),
            c("field-2", DeviceKind::Field, "two", false),
            c("field-3", DeviceKind::Field, "three", true),
        ])
    }

    fn connect(client_id: &str, login: Option<(&str, &str)>) -> Connect {
        let mut c = Connect::new(client_id);
        if let Some((u, p)) = login {
            c.set_login(u, p);
        }
        c
    }

    #[test]
    fn only_an_enrolled_unrevoked_agent_with_its_own_secret_and_id_is_let_in() {
        let c = creds();
        let ok = authenticate(&connect("field-1", Some(("field-1", "one"))), &c, true).unwrap();
        assert!(matches!(ok, Identity::Device { ref id, .. } if id == "field-1"));
        let refused = |conn: Connect| authenticate(&conn, &c, true).unwrap_err();
        assert_eq!(refused(connect("field-1", None)), Refusal::NoCredentials);
        assert_eq!(
            refused(connect("field-2", Some(("field-2", "one")))),
            Refusal::BadCredentials,
            "another device's id with its own secret"
        );
        assert_eq!(
            refused(connect("field-2", Some(("field-1", "one")))),
            Refusal::ClientIdMismatch,
            "its own credential under another device's client id"
        );
        assert_eq!(
            refused(connect("field-9", Some(("field-9", "x")))),
            Refusal::UnknownClient
        );
        assert_eq!(
            refused(connect("field-3", Some(("field-3", "three")))),
            Refusal::Revoked
        );
        let mut foreign_will = connect("field-1", Some(("field-1", "one")));
        foreign_will.last_will = Some(LastWill::new(
            "evsync/v1/field-2/status",
            "x",
            QoS::AtLeastOnce,
            true,
        ));
        assert_eq!(refused(foreign_will), Refusal::ForeignTopic);
        let mut v5 = connect("field-1", Some(("field-1", "one")));
        v5.protocol = Protocol::V5;
        assert_eq!(refused(v5), Refusal::Mqtt5);
        assert_eq!(
            authenticate(&connect("anyone", None), &c, false).unwrap(),
            Identity::Open
        );
    }

    #[test]
    fn a_connected_agent_is_dropped_when_revoked_or_given_a_new_secret() {
        let mut c = creds();
        let who = authenticate(&connect("field-1", Some(("field-1", "one"))), &c, true).unwrap();
        assert_eq!(still_allowed(&who, &c), Ok(()));
        let mut all: Vec<BrokerCredential> = c.0.values().cloned().collect();
        for x in &mut all {
            if x.user.device_id == "field-1" {
                x.user.password_hash = crate::mosquitto::password_hash("new").unwrap();
            }
        }
        let replaced = Credentials::new(all.clone());
        assert_eq!(
            still_allowed(&who, &replaced),
            Err(Refusal::CredentialReplaced)
        );
        c.0.get_mut("field-1").unwrap().revoked = true;
        assert_eq!(still_allowed(&who, &c), Err(Refusal::Revoked));
        assert_eq!(still_allowed(&Identity::Open, &c), Ok(()));
    }

    #[test]
    fn publishes_and_subscriptions_outside_its_topics_are_refused() {
        let who = Identity::Device {
            id: "field-1".into(),
            kind: DeviceKind::Field,
            password_hash: String::new(),
        };
        let frame = |p: Packet| {
            let mut b = bytes::BytesMut::new();
            p.write(&mut b, 1 << 20).unwrap();
            b.to_vec()
        };
        let publish = |topic: &str, len: usize| {
            let mut p = Publish::new(topic, QoS::AtLeastOnce, vec![7u8; len]);
            p.pkid = 1;
            frame(Packet::Publish(p))
        };
        // Payloads long enough for 1, 2 and 3 bytes of remaining length.
        for len in [10, 300, 70_000] {
            let own = publish("evsync/v1/field-1/records", len);
            assert_eq!(publish_topic(&own), Some("evsync/v1/field-1/records"));
            assert_eq!(check_packet(&who, &own, 1 << 20), Ok(()));
            let foreign = publish("evsync/v1/field-2/records", len);
            assert_eq!(
                check_packet(&who, &foreign, 1 << 20),
                Err(Refusal::ForeignTopic)
            );
            assert_eq!(check_packet(&Identity::Open, &foreign, 1 << 20), Ok(()));
        }
        let sub = |f: &str| {
            let mut s = Subscribe::new(f, QoS::AtLeastOnce);
            s.pkid = 1;
            frame(Packet::Subscribe(s))
        };
        assert_eq!(
            check_packet(&who, &sub("evsync/v1/field-1/receipts"), 1 << 20),
            Ok(())
        );
        assert_eq!(
            check_packet(&who, &sub("evsync/v1/+/receipts"), 1 << 20),
            Err(Refusal::ForeignTopic)
        );
        let again = frame(Packet::Connect(Connect::new("field-1")));
        assert_eq!(protocol_level(&again), Some(4));
        assert_eq!(check_packet(&who, &again, 1 << 20), Err(Refusal::Malformed));
        assert_eq!(
            check_packet(&who, &[0x30, 0x05, 0x00], 1 << 20),
            Err(Refusal::Malformed)
        );
        assert_eq!(check_packet(&who, &[0xC0, 0x00], 1 << 20), Ok(()));
    }
}

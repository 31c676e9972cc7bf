//! MQTT topic names. Every topic lives under `evsync/v1/<device-id>/`, so a
//! broker ACL can confine a device to its own subtree.

use crate::ProtocolError;

/// Prefix of every evsync topic.
pub const ROOT: &str = "evsync/v1";

/// What a topic carries. The suffix after `evsync/v1/<device-id>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Agent → hub: batches of signed records (QoS 1).
    Records,
    /// Hub → agent: signed receipts and rejections (QoS 1).
    Receipts,
    /// Agent → hub: the device's signed self-description and public key (retained).
    Announce,
    /// Agent → hub: heartbeat and backlog (retained; last will says offline).
    Status,
    /// Hub → agent: configuration signed by the hub (retained).
    Config,
    /// Hub → agent: commands.
    Commands,
    /// Hub → agent: signed upload grants for media records.
    Grants,
    /// Agent → hub: requests for upload grants.
    Uploads,
}

impl Channel {
    /// All channels, for parsing.
    pub const ALL: [Channel; 8] = [
        Channel::Records,
        Channel::Receipts,
        Channel::Announce,
        Channel::Status,
        Channel::Config,
        Channel::Commands,
        Channel::Grants,
        Channel::Uploads,
    ];

    /// The topic suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Records => "records",
            Channel::Receipts => "receipts",
            Channel::Announce => "announce",
            Channel::Status => "status",
            Channel::Config => "config",
            Channel::Commands => "commands",
            Channel::Grants => "grants",
            Channel::Uploads => "uploads",
        }
    }
}

/// Checks that a device id is safe in a topic and a file name:
/// 1–64 characters of `A-Z a-z 0-9 . _ -`, not starting with a dot.
pub fn validate_device_id(id: &str) -> Result<(), ProtocolError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ProtocolError::BadDeviceId { id: id.to_owned() })
    }
}

/// The topic of `channel` for `device_id`.
pub fn topic(device_id: &str, channel: Channel) -> String {
    format!("{ROOT}/{device_id}/{}", channel.as_str())
}

/// The filter that matches `channel` for every device (`evsync/v1/+/<channel>`).
pub fn all_devices(channel: Channel) -> String {
    format!("{ROOT}/+/{}", channel.as_str())
}

/// Splits a topic into its device id and channel.
pub fn parse(topic: &str) -> Result<(&str, Channel), ProtocolError> {
    let rest = topic
        .strip_prefix(ROOT)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| {
            ProtocolError::malformed("topic", format!("{topic:?} does not start with {ROOT}/"))
        })?;
    let (device, suffix) = rest.split_once('/').ok_or_else(|| {
        ProtocolError::malformed(
            "topic",
            format!("{topic:?}: expected {ROOT}/<device-id>/<channel>"),
        )
    })?;
    validate_device_id(device)?;
    let channel = Channel::ALL
        .into_iter()
        .find(|c| c.as_str() == suffix)
        .ok_or_else(|| ProtocolError::malformed("topic", format!("unknown channel {suffix:?}")))?;
    Ok((device, channel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_through_parse() {
        for channel in Channel::ALL {
            let t = topic("dock-500112-01", channel);
            assert_eq!(parse(&t).unwrap(), ("dock-500112-01", channel));
        }
    }

    #[test]
    fn device_ids_that_would_escape_a_topic_or_folder_are_refused() {
        for bad in ["", "a/b", "+", "#", "..", ".hidden", "a b", &"x".repeat(65)] {
            assert!(validate_device_id(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse("evsync/v1/a+b/records").is_err());
        assert!(parse("evsync/v1/dev/unknown").is_err());
        assert!(parse("other/v1/dev/records").is_err());
    }
}

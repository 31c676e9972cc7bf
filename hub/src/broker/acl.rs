//! Which topics an agent may use on the embedded broker: the rules of the
//! Mosquitto ACL the hub writes (`crate::mosquitto`), as plain functions.
//! Every agent publishes and subscribes under its own
//! `evsync/v1/<device-id>/` topics only; a dock may also subscribe to the
//! configuration topics of recorders (`evsync/v1/+/config`), since it
//! applies the configuration of whichever recorder is docked in it.

use crate::store::DeviceKind;

/// Whether `topic` (a PUBLISH topic name) belongs to `device_id`.
pub fn may_publish(device_id: &str, topic: &str) -> bool {
    let mut seg = topic.split('/');
    let own =
        seg.next() == Some("evsync") && seg.next() == Some("v1") && seg.next() == Some(device_id);
    // A topic name has no wildcards (MQTT 3.1.1 §4.7); one with them is not ours either.
    own && !topic.contains(['+', '#'])
}

/// Whether an agent `device_id` of `kind` may subscribe to `filter`: only
/// if every topic the filter can match is one it may read.
pub fn may_subscribe(device_id: &str, kind: DeviceKind, filter: &str) -> bool {
    let seg: Vec<&str> = filter.split('/').collect();
    if seg.len() >= 3 && seg[0] == "evsync" && seg[1] == "v1" && seg[2] == device_id {
        return true;
    }
    kind == DeviceKind::Dock
        && seg.len() == 4
        && seg[0] == "evsync"
        && seg[1] == "v1"
        && (seg[2] == "+" || !seg[2].contains(['+', '#']))
        && seg[3] == "config"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_publishes_under_its_own_topics_only() {
        assert!(may_publish("field-1", "evsync/v1/field-1/records"));
        assert!(may_publish("field-1", "evsync/v1/field-1"));
        for foreign in [
            "evsync/v1/field-2/records",
            "evsync/v1/field-10/records",
            "evsync/v1/field-1x/records",
            "evsync/v2/field-1/records",
            "other/field-1",
            "evsync/v1/+/records",
            "evsync/v1/field-1/#",
            "",
        ] {
            assert!(!may_publish("field-1", foreign), "{foreign}");
        }
    }

    #[test]
    fn an_agent_subscribes_to_its_own_topics_and_a_dock_also_to_recorders_configs() {
        let field = DeviceKind::Field;
        assert!(may_subscribe(
            "field-1",
            field,
            "evsync/v1/field-1/receipts"
        ));
        assert!(may_subscribe("field-1", field, "evsync/v1/field-1/#"));
        assert!(may_subscribe("field-1", field, "evsync/v1/field-1/+"));
        for foreign in [
            "evsync/v1/field-2/receipts",
            "evsync/v1/+/receipts",
            "evsync/v1/#",
            "evsync/#",
            "#",
            "+/v1/field-1/receipts",
            "$share/g/evsync/v1/field-1/receipts",
            "evsync/v1/ZFY0001/config",
        ] {
            assert!(!may_subscribe("field-1", field, foreign), "{foreign}");
        }
        let dock = DeviceKind::Dock;
        assert!(may_subscribe("dock-1", dock, "evsync/v1/+/config"));
        assert!(may_subscribe("dock-1", dock, "evsync/v1/ZFY0001/config"));
        assert!(!may_subscribe("dock-1", dock, "evsync/v1/#"));
        assert!(!may_subscribe("dock-1", dock, "evsync/v1/+/config/#"));
        assert!(!may_subscribe("dock-1", dock, "evsync/v1/field-2/receipts"));
    }
}

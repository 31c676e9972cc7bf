//! Recorder configuration in the store: assignments issued only on change,
//! stable percentage rollouts, and what docks' reports do to a recorder's
//! standing.

use std::time::Duration;

use evsync_protocol::record::Event;
use evsync_protocol::signing::SigningKey;

use super::tests::{put, store_on, Source};
use super::{Issuer, LayerScope, Rollout, Store};

const ISSUER: Issuer<'static> = Issuer {
    hub_id: "hub-1",
    by: "test",
    base_url: "http://127.0.0.1:8480",
};

fn key() -> SigningKey {
    SigningKey::from_seed_for_tests(&[9; 32]).unwrap()
}

/// Registers recorder ZFY0001 and issues it its first assignment.
fn first_assignment(s: &mut Store) -> super::Issued {
    s.register_recorder("ZFY0001").unwrap();
    s.issue_config("ZFY0001", &key(), &ISSUER, &Rollout::All)
        .unwrap()
        .unwrap()
}

/// Issues ZFY0001 a new assignment after a policy change.
fn next_assignment(s: &mut Store) -> super::Issued {
    s.issue_config("ZFY0001", &key(), &ISSUER, &Rollout::All)
        .unwrap()
        .unwrap()
}

fn kinds(s: &Store) -> Vec<String> {
    s.alerts(false, 100)
        .unwrap()
        .into_iter()
        .map(|a| a.kind)
        .collect()
}

#[test]
fn an_assignment_is_issued_again_only_when_its_content_changes() {
    for e in super::tests::engines() {
        let (_dir, mut s) = store_on(&e);
        let first = first_assignment(&mut s);
        assert!(
            first.version as i64 >= chrono::Utc::now().timestamp_millis() - 60_000,
            "versions start at the time in ms, so a restored store still issues newer ones"
        );
        assert!(s
            .issue_config("ZFY0001", &key(), &ISSUER, &Rollout::All)
            .unwrap()
            .is_none());
        s.set_config_layer(LayerScope::Fleet, "", "[video]\nbitrate_kbps = 6000\n", "t")
            .unwrap();
        let second = next_assignment(&mut s);
        assert!(second.version > first.version);
        let changes: Vec<String> = second.changes.iter().map(ToString::to_string).collect();
        assert_eq!(changes, ["video.bitrate_kbps: 4000 → 6000"]);
        let status = s.config_status("ZFY0001").unwrap().unwrap();
        assert_eq!(
            (status.version, status.state.as_str()),
            (second.version, "assigned")
        );
        assert_eq!(status.published_at, None, "queued for the publisher");
        let due = s.config_to_publish(false).unwrap();
        assert_eq!(due.len(), 1);
        s.config_published("ZFY0001", second.version).unwrap();
        assert!(s.config_to_publish(false).unwrap().is_empty());
        assert_eq!(
            s.config_to_publish(true).unwrap().len(),
            1,
            "all after a reconnect"
        );
    }
}

#[test]
fn a_larger_percentage_rollout_includes_every_recorder_of_a_smaller_one() {
    for e in super::tests::engines() {
        let (_dir, mut s) = store_on(&e);
        for i in 0..300 {
            s.register_recorder(&format!("ZFY{i:04}")).unwrap();
        }
        let ten = s.rollout_targets(&Rollout::Percent(10)).unwrap();
        let fifty = s.rollout_targets(&Rollout::Percent(50)).unwrap();
        assert!(ten.iter().all(|id| fifty.contains(id)));
        assert!(
            (10..=60).contains(&ten.len()),
            "{} of 300 in 10 %",
            ten.len()
        );
        assert!(
            (110..=190).contains(&fifty.len()),
            "{} of 300 in 50 %",
            fifty.len()
        );
        assert_eq!(
            s.rollout_targets(&Rollout::Percent(100)).unwrap().len(),
            300
        );
        let err = s
            .rollout_targets(&Rollout::Devices(vec!["ZFY9999".into()]))
            .unwrap_err();
        assert!(err.to_string().contains("ZFY9999"), "{err}");
    }
}

#[test]
fn a_report_older_than_one_taken_into_account_changes_nothing() {
    for e in super::tests::engines() {
        let (_dir, mut s) = store_on(&e);
        let issued = first_assignment(&mut s);
        let mut dock = Source::new("ZFY0001", "dock-1");
        let now = chrono::Utc::now();
        let applied = dock.next(|b| {
            b.device_time = now;
            b.event = Some(Event::ConfigApplied {
                config_hash: issued.config_hash.clone(),
                version: issued.version,
            });
        });
        // What the recorder ran an hour before it was applied, arriving late.
        let late = dock.next(|b| {
            b.device_time = now - chrono::Duration::hours(1);
            b.event = Some(Event::ConfigChecked {
                config_hash: Some("ab".repeat(32)),
                reason: None,
            });
        });
        put(&mut s, Duration::from_secs(60), &[applied, late]);
        let status = s.config_status("ZFY0001").unwrap().unwrap();
        assert_eq!(status.state, "applied");
        assert_eq!(
            status.running_hash.as_deref(),
            Some(issued.config_hash.as_str())
        );
        assert!(kinds(&s).is_empty(), "{:?}", kinds(&s));
        // The same report made after it was applied is drift.
        let drifted = dock.next(|b| {
            b.device_time = now + chrono::Duration::seconds(1);
            b.event = Some(Event::ConfigChecked {
                config_hash: Some("ab".repeat(32)),
                reason: None,
            });
        });
        put(&mut s, Duration::from_secs(60), &[drifted]);
        assert_eq!(kinds(&s), ["config_drift"]);
        assert!(!s.config_status("ZFY0001").unwrap().unwrap().in_sync());
    }
}

#[test]
fn a_failure_of_the_current_assignment_fails_it_and_a_refused_stranger_only_alerts() {
    for e in super::tests::engines() {
        let (_dir, mut s) = store_on(&e);
        let issued = first_assignment(&mut s);
        s.config_published("ZFY0001", issued.version).unwrap();
        let mut dock = Source::new("ZFY0001", "dock-1");
        let stranger = dock.next(|b| {
            b.event = Some(Event::ConfigFailed {
                version: None,
                config_hash: None,
                reason: "signature does not verify".into(),
            })
        });
        put(&mut s, Duration::from_secs(60), &[stranger]);
        let status = s.config_status("ZFY0001").unwrap().unwrap();
        assert_eq!(
            status.state, "assigned",
            "the current assignment is untouched"
        );
        assert_eq!(status.published_at, None, "the genuine one goes out again");
        let failed = dock.next(|b| {
            b.event = Some(Event::ConfigFailed {
                version: Some(issued.version),
                config_hash: Some(issued.config_hash.clone()),
                reason: "the recorder refused SetConfig".into(),
            })
        });
        put(&mut s, Duration::from_secs(60), &[failed]);
        let status = s.config_status("ZFY0001").unwrap().unwrap();
        assert_eq!(status.state, "failed");
        assert_eq!(
            status.reason.as_deref(),
            Some("the recorder refused SetConfig")
        );
        assert_eq!(kinds(&s), ["config_failed", "config_failed"]);
    }
}

#[test]
fn drift_is_seen_while_a_rollout_is_pending_and_when_its_report_arrives_late() {
    for e in super::tests::engines() {
        let (_dir, mut s) = store_on(&e);
        let v1 = first_assignment(&mut s);
        let mut dock_a = Source::new("ZFY0001", "dock-a");
        let mut dock_b = Source::new("ZFY0001", "dock-b");
        let t0 = chrono::Utc::now() - chrono::Duration::hours(3);
        let at = |h: i64| t0 + chrono::Duration::minutes(h);
        let applied = |src: &mut Source, when, i: &super::Issued| {
            let (hash, version) = (i.config_hash.clone(), i.version);
            src.next(move |b| {
                b.device_time = when;
                b.event = Some(Event::ConfigApplied {
                    config_hash: hash,
                    version,
                });
            })
        };
        let checked = |src: &mut Source, when, hash: &str| {
            let hash = hash.to_owned();
            src.next(move |b| {
                b.device_time = when;
                b.event = Some(Event::ConfigChecked {
                    config_hash: Some(hash),
                    reason: None,
                });
            })
        };
        let r = applied(&mut dock_a, at(0), &v1);
        put(&mut s, Duration::from_secs(60), &[r]);
        // A new version is being rolled out when the recorder turns up with a
        // configuration nobody assigned it.
        s.set_config_layer(LayerScope::Fleet, "", "[gps]\ninterval_secs = 30\n", "t")
            .unwrap();
        let v2 = next_assignment(&mut s);
        let r = checked(&mut dock_b, at(10), &"cd".repeat(32));
        put(&mut s, Duration::from_secs(60), &[r]);
        assert_eq!(kinds(&s), ["config_drift"], "seen with the rollout pending");
        // Dock B applies v2. Dock A, offline, had seen another tampered
        // configuration earlier; its report arrives after B's.
        let r = applied(&mut dock_b, at(11), &v2);
        put(&mut s, Duration::from_secs(60), &[r]);
        let r = checked(&mut dock_a, at(5), &"ef".repeat(32));
        put(&mut s, Duration::from_secs(60), &[r]);
        assert_eq!(
            kinds(&s),
            ["config_drift", "config_drift"],
            "late, and still seen"
        );
        let status = s.config_status("ZFY0001").unwrap().unwrap();
        assert_eq!(
            (status.state.as_str(), status.version),
            ("applied", v2.version)
        );
        assert_eq!(
            status.running_hash.as_deref(),
            Some(v2.config_hash.as_str())
        );
        // The assignment it ran before, reported late, is no drift.
        let r = checked(&mut dock_a, at(6), &v1.config_hash);
        put(&mut s, Duration::from_secs(60), &[r]);
        assert_eq!(kinds(&s).len(), 2);
    }
}

//! Property-test strategies: any valid configuration, every field anywhere
//! in its allowed range.

use std::cmp::Ordering;

use proptest::prelude::*;

use crate::*;

/// The default configuration of recorder ZFY0001: the smallest valid one.
pub(crate) fn valid() -> RecorderConfig {
    let mut config = RecorderConfig::default();
    config.identity.device_id = "ZFY0001".to_owned();
    config
}

/// Any valid [`RecorderConfig`].
pub(crate) fn valid_config() -> impl Strategy<Value = RecorderConfig> {
    let sections = (
        video(),
        recording(),
        watermark(),
        time(),
        storage(),
        upload(),
    );
    (sections, 0u32..=3600, identity(), firmware()).prop_map(
        |(
            (video, recording, watermark, time, storage, upload),
            interval_secs,
            identity,
            firmware,
        )| {
            RecorderConfig {
                video,
                recording,
                watermark,
                gps: Gps { interval_secs },
                time,
                storage,
                upload,
                identity,
                firmware,
            }
        },
    )
}

fn video() -> impl Strategy<Value = Video> {
    let resolution = prop_oneof![
        Just(Resolution::Hd720),
        Just(Resolution::Hd1080),
        Just(Resolution::Hd1296)
    ];
    let night = prop_oneof![
        Just(NightMode::Off),
        Just(NightMode::Auto),
        Just(NightMode::On)
    ];
    let frame_rate = prop::sample::select(vec![15u32, 25, 30]);
    (resolution, frame_rate, 500u32..=16_000, night).prop_map(
        |(resolution, frame_rate, bitrate_kbps, night_mode)| Video {
            resolution,
            frame_rate,
            bitrate_kbps,
            night_mode,
        },
    )
}

fn recording() -> impl Strategy<Value = Recording> {
    let speed = prop_oneof![Just(0u32), 10u32..=200];
    let triggers = (any::<bool>(), any::<bool>(), speed, any::<bool>()).prop_map(
        |(holster, lightbar, speed_kmh, fall_detection)| Triggers {
            holster,
            lightbar,
            speed_kmh,
            fall_detection,
        },
    );
    (0u32..=120, 0u32..=300, 1u32..=60, any::<bool>(), triggers).prop_map(
        |(pre_record_secs, post_record_secs, segment_minutes, audio, triggers)| Recording {
            pre_record_secs,
            post_record_secs,
            segment_minutes,
            audio,
            triggers,
        },
    )
}

fn watermark() -> impl Strategy<Value = Watermark> {
    any::<[bool; 4]>().prop_map(|[officer_id, device_id, time, gps]| Watermark {
        officer_id,
        device_id,
        time,
        gps,
    })
}

fn time() -> impl Strategy<Value = TimePolicy> {
    let sync = prop_oneof![
        Just(TimeSync::Dock),
        Just(TimeSync::Gps),
        Just(TimeSync::DockAndGps)
    ];
    ((-48i16..=56).prop_map(|q| q * 15), sync, 100u32..=60_000).prop_map(
        |(utc_offset_min, sync, max_drift_ms)| TimePolicy {
            utc_offset_min,
            sync,
            max_drift_ms,
        },
    )
}

fn storage() -> impl Strategy<Value = Storage> {
    let full = prop_oneof![
        Just(StorageFull::StopAndAlarm),
        Just(StorageFull::OverwriteSyncedOnly)
    ];
    (full, 64u32..=8192).prop_map(|(when_full, reserve_mb)| Storage {
        when_full,
        reserve_mb,
    })
}

fn upload() -> impl Strategy<Value = Upload> {
    let when = prop_oneof![
        Just(UploadWhen::DockedOnly),
        Just(UploadWhen::Wifi),
        Just(UploadWhen::AnyNetwork)
    ];
    let release = prop_oneof![
        Just(ReleaseAfter::AgentCopy),
        Just(ReleaseAfter::HubReceipt)
    ];
    (when, release, any::<bool>()).prop_map(|(when, release_after, important_first)| Upload {
        when,
        release_after,
        important_first,
    })
}

fn identity() -> impl Strategy<Value = Identity> {
    (
        "[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}",
        prop_oneof![Just(String::new()), "[0-9]{12}"],
        prop_oneof![Just(String::new()), "[0-9]{6}"],
    )
        .prop_map(|(device_id, unit_code, officer_id)| Identity {
            device_id,
            unit_code,
            officer_id,
        })
}

fn firmware() -> impl Strategy<Value = FirmwarePolicy> {
    let numbers = || prop::collection::vec(0u32..20, 1..4);
    let prefix = prop_oneof![Just(String::new()), "[A-Z][A-Z0-9_]{0,5}-"];
    (prefix, numbers(), numbers(), any::<[bool; 4]>()).prop_map(
        |(prefix, a, b, [has_min, has_max, min_prefixed, max_prefixed])| {
            let text = |n: &[u32], prefixed: bool| {
                let dotted: Vec<String> = n.iter().map(ToString::to_string).collect();
                let prefix = if prefixed { prefix.as_str() } else { "" };
                format!("{prefix}{}", dotted.join("."))
            };
            let (low, high) = if compare(&a, &b) == Ordering::Greater {
                (b, a)
            } else {
                (a, b)
            };
            FirmwarePolicy {
                min_version: if has_min {
                    text(&low, min_prefixed)
                } else {
                    String::new()
                },
                max_version: if has_max {
                    text(&high, max_prefixed)
                } else {
                    String::new()
                },
            }
        },
    )
}

/// Numbers compared with missing trailing ones as 0.
fn compare(a: &[u32], b: &[u32]) -> Ordering {
    let at = |v: &[u32], i: usize| v.get(i).copied().unwrap_or(0);
    (0..a.len().max(b.len()))
        .map(|i| at(a, i).cmp(&at(b, i)))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

proptest! {
    #[test]
    fn every_generated_config_is_valid(config in valid_config()) {
        prop_assert_eq!(config.validate(), Ok(()));
    }
}

//! Dock mode (issue 4): simulated recorders on pseudo-terminals docked to
//! one agent; every recording reaches the hub verified with the duration
//! ffprobe reads, the recorders' clocks are corrected and the offsets
//! recorded, and the recorders are emptied only once the hub holds their
//! evidence.

use std::collections::HashMap;
use std::time::Duration;

use evsync_agent::agent::Agent;
use evsync_e2e::recorders::{
    dock_config, ffprobe_duration_ms, make_recorder, require_ffmpeg, Served,
};
use evsync_e2e::*;
use evsync_hub::server::Hub;
use evsync_recorder_sim::faults::Faults;
use evsync_recorder_sim::storage::Storage;

/// SHA-256 → duration by ffprobe, for every file on a recorder.
fn ffprobe_all(storage: &std::path::Path) -> anyhow::Result<HashMap<String, u64>> {
    let mut out = HashMap::new();
    for f in Storage::peek(storage)?.files {
        let path = storage.join("files").join(format!("{}.bin", f.index));
        out.insert(media::sha256_file(&path)?, ffprobe_duration_ms(&path)?);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_docked_recorders_are_emptied_into_the_hub_with_corrected_clocks() -> anyhow::Result<()>
{
    require_ffmpeg()?;
    let dir = test_dir("dock-two")?;
    let recorders = dir.path().join("recorders");
    // ZFY0002's clock runs two hours ahead.
    let r1 = make_recorder(&recorders, "ZFY0001", 11, 0, false)?;
    let r2 = make_recorder(&recorders, "ZFY0002", 11, 7200, false)?;
    let mut expected = ffprobe_all(&r1)?;
    expected.extend(ffprobe_all(&r2)?);
    assert_eq!(expected.len(), 22, "22 distinct recordings");

    let hub = Hub::start(hub_config(dir.path(), None)?).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let s1 = Served::start(&r1, &dir.path().join("slot1"), Faults::default())?;
    let s2 = Served::start(&r2, &dir.path().join("slot2"), Faults::default())?;
    let cfg = dock_config(dir.path(), &hub.mqtt_url, &hub.public_key, &[&s1, &s2]);
    let dock_id = cfg.device_id.clone();
    let agent = Agent::start(cfg).await?;

    eventually(
        Duration::from_secs(90),
        "22 recordings stored at the hub",
        || async { Ok(api.stored_media().await? == 22) },
    )
    .await?;
    eventually(
        Duration::from_secs(30),
        "both recorders emptied",
        || async { Ok(s1.files_left()? == 0 && s2.files_left()? == 0) },
    )
    .await?;

    let feed = api.feed().await?;
    let chains = check_chains(&feed)?;
    for r in feed.iter().filter(|r| r["kind"] == "media") {
        verify_feed_record(r)?;
        let sha = r["sha256"].as_str().unwrap_or_default();
        let want = expected
            .get(sha)
            .ok_or_else(|| anyhow::anyhow!("the hub holds a recording no recorder had: {r}"))?;
        let got = r["duration_ms"].as_u64().unwrap_or_default();
        assert!(
            got.abs_diff(*want) <= 100,
            "{sha}: record says {got} ms, ffprobe {want} ms"
        );
        assert!(r["file_index"].as_u64().is_some(), "file index kept: {r}");
    }
    // Each recorder's chain: a clock check, a status, then its 11 recordings.
    for (recorder, off_hours) in [("ZFY0001", 0i64), ("ZFY0002", 2)] {
        let records = &chains[recorder];
        assert_eq!(
            records.iter().filter(|r| r["kind"] == "media").count(),
            11,
            "{recorder}"
        );
        let check = records
            .iter()
            .find(|r| r["event"]["type"] == "clock_checked")
            .ok_or_else(|| anyhow::anyhow!("no clock check for {recorder}"))?;
        let offset = check["event"]["offset_ms"].as_i64().unwrap_or_default();
        assert!(
            (offset - off_hours * 3_600_000).abs() < 2_000,
            "{recorder}: offset {offset} ms"
        );
        assert_eq!(check["event"]["corrected"], off_hours != 0, "{recorder}");
        // Records carry the measured offset; device time less the offset is true time.
        for r in records.iter().filter(|r| r["kind"] == "media") {
            assert_eq!(r["clock_offset_ms"].as_i64(), Some(offset), "{r}");
            let device_time = chrono::DateTime::parse_from_rfc3339(
                r["device_time"].as_str().unwrap_or_default(),
            )?;
            let corrected = device_time - chrono::Duration::milliseconds(offset);
            let age = chrono::Utc::now().signed_duration_since(corrected);
            assert!(
                age > chrono::Duration::zero() && age < chrono::Duration::hours(1),
                "{recorder}: corrected start {corrected} is not in the last hour"
            );
        }
    }
    // The drifting clock is an alert; nothing else is.
    let alerts = api.get_ok("/api/v1/alerts").await?;
    let kinds: Vec<(&str, &str)> = alerts["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    (
                        x["kind"].as_str().unwrap_or_default(),
                        x["device_id"].as_str().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(kinds, vec![("clock_drift", "ZFY0002")], "alerts: {alerts}");
    // The recorder's clock was set.
    let offset_now = Storage::peek(&r2)?.clock_offset_ms;
    assert!(
        offset_now.abs() < 2_000,
        "ZFY0002 clock still {offset_now} ms off"
    );

    // Issue 5: the recorders are in the fleet, docked in this dock, with
    // the battery, firmware and clock offset the dock reported.
    let fleet = api.get_ok("/api/v1/devices?kind=recorder").await?;
    let listed = fleet["devices"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 2, "{fleet}");
    eventually(
        Duration::from_secs(10),
        "both recorders shown docked and online",
        || async {
            let v = api.get_ok("/api/v1/devices?kind=recorder").await?;
            Ok(v["devices"].as_array().is_some_and(|d| {
                d.iter()
                    .all(|r| r["docked_in"] == dock_id.as_str() && r["online"] == true)
            }))
        },
    )
    .await?;
    for (recorder, off_hours) in [("ZFY0001", 0i64), ("ZFY0002", 2)] {
        let d = api.get_ok(&format!("/api/v1/devices/{recorder}")).await?;
        assert_eq!(d["kind"], "recorder", "{d}");
        assert!(d["battery_pct"].as_i64().is_some(), "{d}");
        assert!(
            d["storage_total_bytes"].as_i64().is_some_and(|b| b > 0),
            "{d}"
        );
        assert!(d["firmware"].as_str().is_some_and(|f| !f.is_empty()), "{d}");
        let offset = d["clock_offset_ms"].as_i64().unwrap_or(i64::MAX);
        assert!((offset - off_hours * 3_600_000).abs() < 2_000, "{d}");
    }

    agent.shutdown().await?;
    // The dock's last will (or its clean goodbye) takes its recorders offline with it.
    eventually(
        Duration::from_secs(10),
        "the recorders offline once their dock is",
        || async {
            let v = api.get_ok("/api/v1/devices?kind=recorder").await?;
            Ok(v["devices"]
                .as_array()
                .is_some_and(|d| d.iter().all(|r| r["online"] == false)))
        },
    )
    .await?;
    s1.stop()?;
    s2.stop()?;
    hub.shutdown().await
}

//! Issue 4, item 7, and SPEC.md "Interfaces → Serial" (field devices' GPS
//! receivers speaking NMEA 0183 geotag records), with guarantee 5 (bad input
//! gets a clear error, never a crash): a field agent reading a receiver on a
//! pseudo-terminal tags each record it makes, events and recordings, with the
//! receiver's latest valid fix (position, quality, age), signed with the
//! record; damaged sentences never become a position and are counted in the
//! agent's status; and a record made while the receiver reports no fix has
//! no geotag at all.

use std::time::Duration;

use evsync_agent::agent::Agent;
use evsync_e2e::gps::{nmea_fixture, socat_available, GpsReceiver};
use evsync_e2e::*;
use evsync_hub::server::Hub;
use serde_json::Value;

/// The last fix of `mediatek_drive_dgps.nmea`: SBAS differential, 10 satellites.
const LAST_LAT: f64 = 29.558_056_667;
const LAST_LON: f64 = 106.577_916_667;

fn near(v: &Value, want: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - want).abs() < 1e-6)
}

/// The feed's `geo` of `r`, checked to be the signed body's own.
fn signed_geo(r: &Value) -> anyhow::Result<Value> {
    let body = verify_feed_record(r)?;
    anyhow::ensure!(
        body["geo"] == r["geo"],
        "the feed's geo {} is not the signed body's {}",
        r["geo"],
        body["geo"]
    );
    Ok(body["geo"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_carry_the_receivers_latest_valid_fix_and_none_while_it_has_no_fix(
) -> anyhow::Result<()> {
    if !socat_available() {
        eprintln!(
            "SKIPPED: socat is not installed (scripts/setup installs it); \
             this test needs it for the GPS receiver's pseudo-terminal"
        );
        return Ok(());
    }
    let dir = test_dir("gps")?;
    let hub = Hub::start(hub_config(dir.path(), None)?).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let id = unique("field-gps");
    let mut cfg = agent_config(dir.path(), &id, &hub.mqtt_url, &hub.public_key);
    let port = dir.path().join("gps");
    cfg.gps.port = Some(port.clone());
    // Generous for a loaded machine: ageing out is the unit tests' business.
    cfg.gps.max_fix_age_secs = 120;
    let spool = cfg.spool_dir.clone();
    std::fs::create_dir_all(&spool)?;
    let mut receiver = GpsReceiver::plug_in(&port)?;
    let agent = Agent::start(cfg).await?;
    assert_eq!(agent.geotag(), None, "no fix before the receiver sends one");

    // A car driving north-east, GPS then DGPS fixes.
    receiver
        .send(
            nmea_fixture("mediatek_drive_dgps.nmea")?,
            Duration::from_secs(20),
        )
        .await?;
    eventually(
        Duration::from_secs(20),
        "the agent holding the drive's last fix",
        || async {
            Ok(agent
                .geotag()
                .is_some_and(|g| (g.lat - LAST_LAT).abs() < 1e-6 && g.satellites == Some(10)))
        },
    )
    .await?;

    // An event and a recording made while the receiver has that fix.
    drop_events(&spool, 0, 1)?;
    let part = spool.join("VID_geo.mp4.part");
    std::fs::write(&part, b"a recording made in the car")?;
    std::fs::rename(&part, spool.join("VID_geo.mp4"))?;
    eventually(
        Duration::from_secs(20),
        "two records in the feed",
        || async { Ok(hub.record_count().await? == 2) },
    )
    .await?;
    let feed = api.feed().await?;
    check_chains(&feed)?;
    for r in &feed {
        let geo = signed_geo(r)?;
        assert!(
            near(&geo["lat"], LAST_LAT) && near(&geo["lon"], LAST_LON),
            "{} record tagged {geo}",
            r["kind"]
        );
        assert_eq!(geo["quality"], "dgps", "{geo}");
        assert_eq!(geo["satellites"], 10, "{geo}");
        assert!(near(&geo["hdop"], 0.83), "{geo}");
        assert!(near(&geo["altitude_m"], 243.0), "{geo}");
        let age = geo["age_ms"].as_u64().unwrap_or(u64::MAX);
        assert!(age < 120_000, "the fix's age at ingest: {geo}");
    }
    let kinds: Vec<&str> = feed.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert!(
        kinds.contains(&"event") && kinds.contains(&"media"),
        "{kinds:?}"
    );

    // On foot: damaged sentences among valid fixes, then the receiver loses the fix.
    receiver
        .send(
            nmea_fixture("ublox_damaged_then_lost.nmea")?,
            Duration::from_secs(5),
        )
        .await?;
    let gps = agent
        .gps()
        .ok_or_else(|| anyhow::anyhow!("no GPS reader"))?;
    eventually(
        Duration::from_secs(20),
        "the receiver reporting it lost the fix",
        || async { Ok(gps.rejected_lines() == 9 && !gps.receiver_has_fix()) },
    )
    .await?;
    assert_eq!(agent.geotag(), None);
    drop_events(&spool, 1, 1)?;
    eventually(
        Duration::from_secs(20),
        "three records in the feed",
        || async { Ok(hub.record_count().await? == 3) },
    )
    .await?;
    let feed = api.feed().await?;
    check_chains(&feed)?;
    let lost = feed
        .iter()
        .find(|r| r["event"]["note"] == "file-1")
        .ok_or_else(|| anyhow::anyhow!("the event made without a fix is missing: {feed:?}"))?;
    assert_eq!(
        signed_geo(lost)?,
        Value::Null,
        "made while the receiver had no fix, yet tagged: {lost}"
    );
    let text = String::from_utf8(base64_body(lost)?)?;
    assert!(!text.contains("\"geo\""), "{text}");

    // The agent's status counts what the receiver sent.
    eventually(
        Duration::from_secs(20),
        "the GPS counters in the agent's status",
        || async {
            let devices = api.get_ok("/api/v1/devices").await?;
            let status = devices["devices"]
                .as_array()
                .and_then(|d| d.iter().find(|d| d["device_id"] == id.as_str()))
                .map(|d| d["status"]["gps"].clone())
                .unwrap_or_default();
            Ok(status["checksum_errors"] == 3
                && status["rejected_lines"] == 9
                && status["fixes"] == 24 + 10
                && status["has_fix"] == false
                && status["tagging"] == false)
        },
    )
    .await?;

    agent.shutdown().await?;
    receiver.unplug();
    hub.shutdown().await
}

/// The signed body bytes of a feed record.
fn base64_body(r: &Value) -> anyhow::Result<Vec<u8>> {
    use base64::Engine as _;
    let b64 = r["signed"]["body"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no signed body"))?;
    Ok(base64::engine::general_purpose::STANDARD.decode(b64)?)
}

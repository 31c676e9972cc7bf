//! Pooled recorders (issue 4, check-out and check-in; SPEC "the recorder is
//! cleared for the next shift only once its evidence is safe"): docking
//! checks a recorder in — its recordings are attributed to the officer who
//! carried it, then that officer is cleared from it — and `evsync-agent
//! checkout` hands a cleared recorder to the next officer by writing them
//! into it, recorded as a handover, so every recording is attributed to
//! whoever carried the recorder at the time. The dock's slots show in its
//! status at the hub.

use std::time::Duration;

use clap::Parser as _;
use evsync_agent::agent::Agent;
use evsync_agent::buffer::Holder;
use evsync_agent::dock::board::SlotState;
use evsync_e2e::recorders::{dock_config, make_recorder, record_more, require_ffmpeg, Served};
use evsync_e2e::*;
use evsync_hub::server::Hub;
use evsync_recorder_sim::faults::Faults;
use evsync_recorder_sim::storage::Storage;
use serde_json::Value;

fn events<'a>(feed: &'a [Value], recorder: &str, kind: &str) -> Vec<&'a Value> {
    feed.iter()
        .filter(|r| r["device_id"] == recorder && r["event"]["type"] == kind)
        .collect()
}

fn holder(officer: &str, name: &str) -> Holder {
    Holder {
        officer_no: officer.into(),
        unit_no: "500112000000".into(),
        officer_name: name.into(),
        unit_name: "渝北区综合行政执法支队".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_recorders_are_checked_in_on_docking_and_out_to_the_next_officer(
) -> anyhow::Result<()> {
    require_ffmpeg()?;
    let dir = test_dir("dock-checkout")?;
    let recorders = dir.path().join("recorders");
    // ZFY0201 comes back from officer 010203's shift with three recordings;
    // ZFY0202 sits in the pool, empty, with a weaker battery.
    let r1 = make_recorder(&recorders, "ZFY0201", 3, 0, false)?;
    let mut s = Storage::open(&r1, "ZFY0201")?;
    s.manifest.zfy.officer_no = "010203".into();
    s.manifest.zfy.unit_no = "500103000000".into();
    s.manifest.zfy.officer_name = "张伟".into();
    s.manifest.battery_pct = 90;
    s.save()?;
    let r2 = make_recorder(&recorders, "ZFY0202", 0, 0, false)?;
    let mut s = Storage::open(&r2, "ZFY0202")?;
    s.manifest.battery_pct = 40;
    s.save()?;

    let hub = Hub::start(hub_config(dir.path(), None)?).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let s1 = Served::start(&r1, &dir.path().join("slot1"), Faults::default())?;
    let s2 = Served::start(&r2, &dir.path().join("slot2"), Faults::default())?;
    let mut cfg = dock_config(dir.path(), &hub.mqtt_url, &hub.public_key, &[&s1, &s2]);
    cfg.dock.pooled = true;
    let config_path = dir.path().join("dock.toml");
    write_agent_toml(&cfg, &config_path)?;
    let buffer = cfg.data_dir.join("buffer.sqlite");
    let dock_id = cfg.device_id.clone();
    let agent = Agent::start(cfg).await?;

    // Check-in: recordings in 010203's name, then 010203 cleared from it.
    eventually(
        Duration::from_secs(60),
        "both recorders cleared",
        || async {
            let slots = agent.slots();
            Ok(slots.iter().all(|s| s.state == SlotState::Cleared))
        },
    )
    .await?;
    // The slot is cleared once the check-in record is in the dock's buffer;
    // the record reaches the hub a moment later.
    eventually(
        Duration::from_secs(20),
        "ZFY0201's check-in at the hub",
        || async {
            let feed = api.feed().await?;
            Ok(!events(&feed, "ZFY0201", "recorder_checked_in").is_empty())
        },
    )
    .await?;
    let feed = api.feed().await?;
    let media: Vec<&Value> = feed
        .iter()
        .filter(|r| r["device_id"] == "ZFY0201" && r["kind"] == "media")
        .collect();
    assert_eq!(media.len(), 3);
    assert!(
        media
            .iter()
            .all(|r| r["officer_id"] == "010203" && r["media_state"] == "stored"),
        "{media:#?}"
    );
    let checked_in = events(&feed, "ZFY0201", "recorder_checked_in");
    assert_eq!(checked_in.len(), 1, "{checked_in:#?}");
    assert_eq!(checked_in[0]["officer_id"], "010203");
    assert_eq!(checked_in[0]["event"]["files"], 3);
    assert!(
        events(&feed, "ZFY0202", "recorder_checked_in").is_empty(),
        "nobody carried ZFY0202: nothing to check in"
    );
    assert_eq!(Storage::peek(&r1)?.zfy.officer_no, "000000");
    assert_eq!(s1.files_left()?, 0);

    // The status at the hub shows the slots.
    eventually(
        Duration::from_secs(20),
        "slots in the dock's status",
        || async {
            let devices = api.get_ok("/api/v1/devices").await?;
            Ok(devices["devices"].as_array().is_some_and(|d| {
                d.iter().any(|x| {
                    x["device_id"] == dock_id.as_str()
                        && x["status"]["slots"][0]["recorder"] == "ZFY0201"
                        && x["status"]["slots"][0]["state"] == "cleared"
                })
            }))
        },
    )
    .await?;

    // Bad input is refused before anything is asked of the dock.
    let bad = evsync_agent::cli::main(evsync_agent::cli::Cli::parse_from([
        "evsync-agent",
        "checkout",
        "--config",
        &config_path.to_string_lossy(),
        "--officer",
        "12",
        "--unit",
        "500112000000",
    ]))
    .await;
    let e = format!(
        "{:#}",
        bad.err().ok_or_else(|| anyhow::anyhow!("accepted"))?
    );
    assert!(e.contains("--officer \"12\": expected 6 digits"), "{e}");

    // A dock of personal recorders hands none out.
    let personal = dir.path().join("personal.toml");
    let mut not_pooled = evsync_agent::config::AgentConfig::load(&config_path)?;
    not_pooled.dock.pooled = false;
    write_agent_toml(&not_pooled, &personal)?;
    let refused = evsync_agent::cli::main(evsync_agent::cli::Cli::parse_from([
        "evsync-agent",
        "checkout",
        "--config",
        &personal.to_string_lossy(),
        "--officer",
        "020304",
        "--unit",
        "500112000000",
    ]))
    .await;
    let e = format!(
        "{:#}",
        refused.err().ok_or_else(|| anyhow::anyhow!("accepted"))?
    );
    assert!(e.contains("dock.pooled = false"), "{e}");

    // Check-out: the fullest cleared recorder goes to 020304.
    let said = evsync_agent::checkout::checkout(
        &buffer,
        holder("020304", "李娜"),
        None,
        Duration::from_secs(30),
    )
    .await?;
    assert!(
        said.contains("ZFY0201") && said.contains("020304"),
        "{said}"
    );
    let zfy = Storage::peek(&r1)?.zfy;
    assert_eq!(
        (
            zfy.officer_no.as_str(),
            zfy.unit_no.as_str(),
            zfy.officer_name.as_str()
        ),
        ("020304", "500112000000", "李娜")
    );
    // The one asked for by id, even with the weaker battery.
    let said = evsync_agent::checkout::checkout(
        &buffer,
        holder("030405", "王强"),
        Some("ZFY0202".into()),
        Duration::from_secs(30),
    )
    .await?;
    assert!(said.contains("ZFY0202"), "{said}");
    assert_eq!(Storage::peek(&r2)?.zfy.officer_no, "030405");
    // Both are out: a third officer waits in vain and is told why.
    let none = evsync_agent::checkout::checkout(
        &buffer,
        holder("040506", ""),
        None,
        Duration::from_secs(2),
    )
    .await;
    let e = format!(
        "{:#}",
        none.err().ok_or_else(|| anyhow::anyhow!("handed out"))?
    );
    assert!(
        e.contains("no cleared recorder was handed out within 2 s"),
        "{e}"
    );

    // Reseated at once without a recording (or the line dropped as 020304
    // took it): still 020304's.
    s1.stop()?;
    let s1 = Served::start(&r1, &dir.path().join("slot1"), Faults::default())?;
    eventually(
        Duration::from_secs(20),
        "redocked, still checked out",
        || async { Ok(agent.slots()[0].state == SlotState::CheckedOut) },
    )
    .await?;
    assert_eq!(Storage::peek(&r1)?.zfy.officer_no, "020304");
    let feed = api.feed().await?;
    assert_eq!(events(&feed, "ZFY0201", "recorder_checked_in").len(), 1);

    // 020304's shift: two recordings, then the recorder comes back.
    s1.stop()?;
    record_more(&r1, 2)?;
    let s1 = Served::start(&r1, &dir.path().join("slot1"), Faults::default())?;
    eventually(Duration::from_secs(60), "the second check-in", || async {
        let feed = api.feed().await?;
        Ok(events(&feed, "ZFY0201", "recorder_checked_in").len() == 2 && s1.files_left()? == 0)
    })
    .await?;
    let feed = api.feed().await?;
    let out = events(&feed, "ZFY0201", "recorder_checked_out");
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0]["officer_id"], "020304");
    assert_eq!(out[0]["event"]["officer_id"], "020304");
    assert_eq!(out[0]["event"]["officer_name"], "李娜");
    let second_shift: Vec<&Value> = feed
        .iter()
        .filter(|r| {
            r["device_id"] == "ZFY0201"
                && r["kind"] == "media"
                && r["file_index"].as_u64().is_some_and(|i| i > 3)
        })
        .collect();
    assert_eq!(second_shift.len(), 2);
    assert!(
        second_shift.iter().all(|r| r["officer_id"] == "020304"),
        "attributed to whoever carried it: {second_shift:#?}"
    );
    let again = events(&feed, "ZFY0201", "recorder_checked_in");
    assert!(again
        .iter()
        .any(|r| r["officer_id"] == "020304" && r["event"]["files"] == 2));
    assert_eq!(Storage::peek(&r1)?.zfy.officer_no, "000000");
    check_chains(&feed)?;
    // Issue 5: the hub's history of ZFY0201 has 020304's check-out, closed by the check-in.
    let d = api.get_ok("/api/v1/devices/ZFY0201").await?;
    let history = d["assignments"].as_array().cloned().unwrap_or_default();
    let out = history
        .iter()
        .position(|a| a["source"] == "check_out" && a["officer_id"] == "020304")
        .ok_or_else(|| anyhow::anyhow!("no check-out in {d}"))?;
    assert!(history[out]["to"].is_string(), "closed: {d}");
    assert!(
        history[out + 1..]
            .iter()
            .any(|a| a["source"] == "check_in" && a["officer_id"].is_null()),
        "{d}"
    );

    agent.shutdown().await?;
    s1.stop()?;
    s2.stop()?;
    hub.shutdown().await
}

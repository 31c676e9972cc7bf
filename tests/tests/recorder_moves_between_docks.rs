//! A pooled recorder moves between docks (SPEC guarantees 2 and 3): each
//! dock keeps its own chain for the recorder, the hub keys chains by source
//! (recorder, dock), so both docks' records are receipted and in the feed
//! exactly once without false alerts; files lost between dockings raise a
//! file index gap alert naming them; a recording copied by both docks is one
//! blob, its second record marked a re-copy of the first.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use evsync_agent::agent::Agent;
use evsync_e2e::recorders::{
    dock_config, lose_files, make_recorder, record_more, require_ffmpeg, Served,
};
use evsync_e2e::*;
use evsync_hub::server::Hub;
use evsync_recorder_sim::faults::Faults;
use serde_json::Value;

const RECORDER: &str = "ZFY0001";

/// A hub whose gap alerts become visible after one second, so a false gap would show.
async fn start_hub(dir: &Path) -> anyhow::Result<(Hub, Api)> {
    let mut cfg = hub_config(dir, None)?;
    cfg.gap_grace_secs = 1;
    let hub = Hub::start(cfg).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    Ok((hub, api))
}

/// A dock agent with its own data folder and one slot, `slot`.
async fn start_dock(dir: &Path, hub: &Hub, slot: &Served, delete: &str) -> anyhow::Result<Agent> {
    let mut cfg = dock_config(dir, &hub.mqtt_url, &hub.public_key, &[slot]);
    cfg.dock.delete = delete.into();
    Agent::start(cfg).await
}

/// Stops both docks, the recorder and the hub.
async fn stop_all(dock_a: Agent, dock_b: Agent, slot: Served, hub: Hub) -> anyhow::Result<()> {
    dock_a.shutdown().await?;
    dock_b.shutdown().await?;
    slot.stop()?;
    hub.shutdown().await
}

/// Waits until the agent holds nothing the hub has not receipted.
async fn drained(agent: &Agent, name: &str) -> anyhow::Result<()> {
    eventually(
        Duration::from_secs(30),
        &format!("{name} holds no unreceipted record or media"),
        || async { Ok(agent.unreceipted()? == 0 && agent.media_backlog()?.files == 0) },
    )
    .await
}

/// The visible alerts, as (kind, device, agent, file_from, file_to).
async fn alerts(api: &Api) -> anyhow::Result<Vec<(String, String, Value, Value, Value)>> {
    let v = api.get_ok("/api/v1/alerts").await?;
    Ok(v["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    (
                        x["kind"].as_str().unwrap_or_default().to_owned(),
                        x["device_id"].as_str().unwrap_or_default().to_owned(),
                        x["agent_id"].clone(),
                        x["file_from"].clone(),
                        x["file_to"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The recorder's file indexes in the feed, per dock.
fn indexes_by_dock(feed: &[Value]) -> HashMap<String, BTreeSet<u64>> {
    let mut out: HashMap<String, BTreeSet<u64>> = HashMap::new();
    for r in feed.iter().filter(|r| r["kind"] == "media") {
        if let Some(i) = r["file_index"].as_u64() {
            out.entry(r["agent_id"].as_str().unwrap_or_default().to_owned())
                .or_default()
                .insert(i);
        }
    }
    out
}

/// Docks the recorder at dock A until it is emptied, then takes it out.
async fn dock_at_a_and_empty(
    dir: &Path,
    hub: &Hub,
    api: &Api,
    recorder: &Path,
    delete: &str,
    files: usize,
) -> anyhow::Result<(Agent, String)> {
    let slot = Served::start(recorder, &dir.join("slot-a"), Faults::default())?;
    let dock_a = start_dock(dir, hub, &slot, delete).await?;
    eventually(
        Duration::from_secs(90),
        "dock A's recordings stored at the hub",
        || async { Ok(api.stored_media().await? == files) },
    )
    .await?;
    if delete != "never" {
        eventually(
            Duration::from_secs(30),
            "recorder emptied by dock A",
            || async { Ok(slot.files_left()? == 0) },
        )
        .await?;
    }
    drained(&dock_a, "dock A").await?;
    slot.stop()?;
    let id = api.feed().await?[0]["agent_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok((dock_a, id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_moved_to_another_dock_is_receipted_at_both_once_without_false_alerts(
) -> anyhow::Result<()> {
    // SPEC guarantee 2 (exactly once, dedup by source) and 3 (no false gap/break/conflict alerts).
    require_ffmpeg()?;
    let dir = test_dir("moves")?;
    let recorder = make_recorder(&dir.path().join("recorders"), RECORDER, 5, 0, false)?;
    let (hub, api) = start_hub(dir.path()).await?;
    let (dock_a, a_id) =
        dock_at_a_and_empty(dir.path(), &hub, &api, &recorder, "after_media_receipt", 5).await?;

    // Out on a shift: three more recordings, #6–#8, then docked at dock B.
    assert_eq!(record_more(&recorder, 3)?, vec![6, 7, 8]);
    let slot = Served::start(&recorder, &dir.path().join("slot-b"), Faults::default())?;
    let dock_b = start_dock(dir.path(), &hub, &slot, "after_media_receipt").await?;
    eventually(
        Duration::from_secs(90),
        "all eight recordings stored at the hub",
        || async { Ok(api.stored_media().await? == 8) },
    )
    .await?;
    eventually(
        Duration::from_secs(30),
        "recorder emptied by dock B",
        || async { Ok(slot.files_left()? == 0) },
    )
    .await?;
    drained(&dock_b, "dock B").await?;
    drained(&dock_a, "dock A").await?;

    let feed = api.feed().await?;
    let chains = check_source_chains(&feed)?;
    let b_id = feed
        .iter()
        .map(|r| r["agent_id"].as_str().unwrap_or_default())
        .find(|a| *a != a_id)
        .unwrap_or_default()
        .to_owned();
    let mut sources: Vec<_> = chains.keys().cloned().collect();
    sources.sort();
    let mut want = vec![
        (RECORDER.to_owned(), a_id.clone()),
        (RECORDER.to_owned(), b_id.clone()),
    ];
    want.sort();
    assert_eq!(sources, want, "one chain per dock, each from seq 1");
    let by_dock = indexes_by_dock(&feed);
    assert_eq!(by_dock[&a_id], (1..=5).collect());
    assert_eq!(by_dock[&b_id], (6..=8).collect());
    assert!(
        feed.iter().all(|r| r.get("recopy_of").is_none()),
        "nothing was copied twice"
    );
    // Nothing refused, but for a batch that raced its dock's announcement
    // (answered `rejected`, sent again once the dock was enrolled).
    let (_, metrics) = api.get("/metrics", false).await?;
    let refused: Vec<&str> = metrics
        .as_str()
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("evsync_hub_rejected_total{") && !l.contains("unknown_device"))
        .collect();
    assert!(refused.is_empty(), "refused: {refused:?}");

    // Past the grace period: no gap, break or conflict was ever raised.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(alerts(&api).await?, vec![]);

    stop_all(dock_a, dock_b, slot, hub).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_lost_from_a_recorder_between_docks_raise_a_file_index_gap_naming_them(
) -> anyhow::Result<()> {
    // SPEC guarantee 3: a gap in a recorder's file index raises an alert the platform sees.
    require_ffmpeg()?;
    let dir = test_dir("moves-lost")?;
    let recorder = make_recorder(&dir.path().join("recorders"), RECORDER, 5, 0, false)?;
    let (hub, api) = start_hub(dir.path()).await?;
    let (dock_a, _) =
        dock_at_a_and_empty(dir.path(), &hub, &api, &recorder, "after_media_receipt", 5).await?;

    // #6–#9 recorded, then #6 and #7 deleted on the recorder before any dock saw them.
    assert_eq!(record_more(&recorder, 4)?, vec![6, 7, 8, 9]);
    lose_files(&recorder, &[6, 7])?;
    let slot = Served::start(&recorder, &dir.path().join("slot-b"), Faults::default())?;
    let dock_b = start_dock(dir.path(), &hub, &slot, "after_media_receipt").await?;
    eventually(
        Duration::from_secs(90),
        "the seven recordings left stored at the hub",
        || async { Ok(api.stored_media().await? == 7) },
    )
    .await?;
    drained(&dock_b, "dock B").await?;
    eventually(
        Duration::from_secs(20),
        "a file index gap alert for #6–#7",
        || async {
            Ok(alerts(&api).await?
                == vec![(
                    "file_index_gap".to_owned(),
                    RECORDER.to_owned(),
                    Value::Null,
                    6.into(),
                    7.into(),
                )])
        },
    )
    .await?;
    let v = api.get_ok("/api/v1/alerts").await?;
    let detail = v["alerts"][0]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("6..=7"), "{detail}");
    // Both chains are whole: the loss is of files, not of records.
    check_source_chains(&api.feed().await?)?;

    stop_all(dock_a, dock_b, slot, hub).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_copied_by_two_docks_is_stored_once_and_its_second_record_marked_a_recopy(
) -> anyhow::Result<()> {
    // SPEC guarantee 2: the same recording from two docks is not duplicated evidence.
    require_ffmpeg()?;
    let dir = test_dir("moves-recopy")?;
    let recorder = make_recorder(&dir.path().join("recorders"), RECORDER, 4, 0, false)?;
    let (hub, api) = start_hub(dir.path()).await?;
    // Dock A copies everything but deletes nothing (as if it crashed before deleting).
    let (dock_a, a_id) = dock_at_a_and_empty(dir.path(), &hub, &api, &recorder, "never", 4).await?;
    let slot = Served::start(&recorder, &dir.path().join("slot-b"), Faults::default())?;
    let dock_b = start_dock(dir.path(), &hub, &slot, "after_media_receipt").await?;
    eventually(
        Duration::from_secs(90),
        "dock B's copies receipted and the recorder emptied",
        || async { Ok(api.stored_media().await? == 8 && slot.files_left()? == 0) },
    )
    .await?;
    drained(&dock_b, "dock B").await?;

    let feed = api.feed().await?;
    check_source_chains(&feed)?;
    let media: Vec<&Value> = feed.iter().filter(|r| r["kind"] == "media").collect();
    let firsts: HashMap<u64, &Value> = media
        .iter()
        .filter(|r| r["agent_id"] == a_id.as_str())
        .map(|r| (r["file_index"].as_u64().unwrap_or_default(), *r))
        .collect();
    assert_eq!(firsts.len(), 4);
    for r in media.iter().filter(|r| r["agent_id"] != a_id.as_str()) {
        let first = firsts[&r["file_index"].as_u64().unwrap_or_default()];
        assert_eq!(r["sha256"], first["sha256"]);
        assert_eq!(r["recopy_of"], first["id"], "{r}");
        assert!(first.get("recopy_of").is_none());
    }
    let blobs = media::files_under(&dir.path().join("hub").join("blobs")).len();
    assert_eq!(blobs, 4, "each recording's bytes stored once");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(alerts(&api).await?, vec![]);

    stop_all(dock_a, dock_b, slot, hub).await
}

//! Issue 6 (sensing coverage), end to end so far: a field agent's recording
//! and its enforcement-action events reach the hub, which judges each action
//! against its officer's recordings — covered when they cover ≥ 90% of its
//! span — and answers `/api/v1/coverage` by officer and unit with numerator
//! and denominator, and `/api/v1/coverage/actions` with the cause of each
//! uncovered action.

use std::time::Duration;

use chrono::{DateTime, Utc};
use evsync_agent::agent::Agent;
use evsync_e2e::*;
use evsync_hub::server::Hub;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_inside_its_officer_s_recording_is_covered_and_one_outside_is_not_with_its_cause(
) -> anyhow::Result<()> {
    let dir = test_dir("coverage")?;
    let hub = Hub::start(hub_config(dir.path(), None)?).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let id = unique("field-cov");
    let cfg = agent_config(dir.path(), &id, &hub.mqtt_url, &hub.public_key);
    std::fs::create_dir_all(&cfg.spool_dir)?;
    let part = cfg.spool_dir.join("VID_0001.mp4.part");
    evsync_hub::demo::write_mp4(&part, 20, 2_000, 4)?;
    std::fs::rename(&part, cfg.spool_dir.join("VID_0001.mp4"))?;
    let spool = cfg.spool_dir.clone();
    let officer = cfg.officer_id.clone().unwrap_or_default();
    let unit = cfg.unit_code.clone().unwrap_or_default();
    let agent = Agent::start(cfg).await?;
    eventually(Duration::from_secs(30), "the recording stored", || async {
        Ok(api.stored_media().await? == 1)
    })
    .await?;
    let media = api.media().await?.remove(0);
    // Its start from the MP4 header, or the device time when the header has none.
    let started: DateTime<Utc> = media["started_at"]
        .as_str()
        .or(media["device_time"].as_str())
        .unwrap_or_default()
        .parse()?;
    let offset = chrono::Duration::milliseconds(media["clock_offset_ms"].as_i64().unwrap_or(0));
    let length = chrono::Duration::milliseconds(media["duration_ms"].as_i64().unwrap_or(0));
    assert!(length >= chrono::Duration::seconds(19), "{media}");
    // Real time of the recording: its start less the measured offset.
    let real = started - offset;
    // Inside it: 2 s in, 15 s long. An hour later: nothing recorded.
    let inside = (
        real + chrono::Duration::seconds(2),
        real + chrono::Duration::seconds(17),
    );
    let later = (
        real + chrono::Duration::hours(1),
        real + chrono::Duration::hours(1) + chrono::Duration::minutes(5),
    );
    for (name, (from, to), action) in [("in", inside, "act-in"), ("out", later, "act-out")] {
        drop_event(
            &spool,
            &format!("{name}-1"),
            &from.to_rfc3339(),
            json!({"type": "action_started", "action_id": action, "domain": "01"}),
        )?;
        drop_event(
            &spool,
            &format!("{name}-2"),
            &to.to_rfc3339(),
            json!({"type": "action_ended", "action_id": action}),
        )?;
    }
    eventually(Duration::from_secs(30), "both actions judged", || async {
        let v = api
            .get_ok("/api/v1/coverage/actions?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z")
            .await?;
        Ok(v["actions"].as_array().map(Vec::len) == Some(2))
    })
    .await?;
    let v = api
        .get_ok("/api/v1/coverage/actions?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z")
        .await?;
    let by_id = |id: &str| {
        v["actions"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["action_id"] == id).cloned())
            .unwrap_or_default()
    };
    let covered = by_id("act-in");
    assert_eq!(
        (covered["covered"].clone(), covered["span_ms"].as_i64()),
        (json!(true), Some(15_000)),
        "{covered}"
    );
    assert_eq!(covered["covered_ms"], covered["span_ms"]);
    let uncovered = by_id("act-out");
    assert_eq!(uncovered["covered"], false, "{uncovered}");
    // The field device is assigned to the officer (its announcement): nothing was recorded.
    assert_eq!(uncovered["cause"], "nothing_recorded", "{uncovered}");

    let window = "from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z";
    for (group, key) in [("officer", officer.as_str()), ("unit", unit.as_str())] {
        let f = api
            .get_ok(&format!("/api/v1/coverage?group_by={group}&{window}"))
            .await?;
        let g = f["groups"]
            .as_array()
            .and_then(|g| g.iter().find(|g| g["key"] == key).cloned())
            .unwrap_or_default();
        assert_eq!(g["actions"]["covered"], 1, "{f}");
        assert_eq!(g["actions"]["total"], 2, "{f}");
        assert_eq!(
            g["actions"]["uncovered_by_cause"]["nothing_recorded"], 1,
            "{f}"
        );
    }
    let (status, body) = api.get("/api/v1/coverage?group_by=district", true).await?;
    assert_eq!(status, 400, "{body}");
    agent.shutdown().await?;
    hub.shutdown().await
}

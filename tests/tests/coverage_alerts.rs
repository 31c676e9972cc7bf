//! Issue 6, end to end: the coverage alerts reach the supervision platform
//! in the alert feed and the event stream, without it having to look — an
//! enforcement action with no covering recording, an on-duty officer from
//! whose recorders nothing is heard, a recording whose bytes came after
//! their deadline — and what a case system and a roster import is judged
//! with the field device's real recording; bad imports are refused naming
//! the row and field; the figures come as CSV too.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use evsync_agent::agent::Agent;
use evsync_e2e::*;
use evsync_hub::config::CoverageConfig;
use evsync_hub::server::Hub;
use serde_json::{json, Value};

const FAR: &str = "from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z";
/// An officer on the roster with no device at all.
const NOBODY_S: &str = "300003";

fn kinds(alerts: &[Value]) -> Vec<String> {
    let mut k: Vec<String> = alerts
        .iter()
        .filter_map(|a| a["kind"].as_str().map(str::to_owned))
        .collect();
    k.sort();
    k.dedup();
    k
}

const WANTED: [&str; 3] = ["action_uncovered", "late_upload", "officer_unheard"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncovered_actions_unheard_officers_and_late_uploads_are_alerted_to_the_platform(
) -> anyhow::Result<()> {
    let dir = test_dir("coverage-alerts")?;
    let mut cfg = hub_config(dir.path(), None)?;
    cfg.coverage = CoverageConfig {
        timeliness_hours: 1,
        alert_after_mins: 0,
        unheard_after_mins: 0,
        sweep_secs: 1,
        ..CoverageConfig::default()
    };
    let hub = Hub::start(cfg).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let base = format!("http://{}", hub.http_addr);
    // The platform listens from the start.
    let stream = tokio::spawn(read_events_until(
        base.clone(),
        hub.token.clone(),
        None,
        Duration::from_secs(90),
        |got| {
            let alerts: Vec<Value> = got
                .iter()
                .filter(|e| e.event == "alert")
                .map(|e| e.data.clone())
                .collect();
            kinds(&alerts) == WANTED
        },
    ));

    // A field device with a recording made three hours ago (its file's
    // time; the MP4 header has none) whose bytes only reach the hub now:
    // two hours past its deadline of one hour after it ended.
    let id = unique("field-alerts");
    let acfg = agent_config(dir.path(), &id, &hub.mqtt_url, &hub.public_key);
    std::fs::create_dir_all(&acfg.spool_dir)?;
    let part = acfg.spool_dir.join("VID_0001.mp4.part");
    evsync_hub::demo::write_mp4(&part, 20, 2_000, 7)?;
    let three_hours_ago = SystemTime::now() - Duration::from_secs(3 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&part)?
        .set_modified(three_hours_ago)?;
    std::fs::rename(&part, acfg.spool_dir.join("VID_0001.mp4"))?;
    let spool = acfg.spool_dir.clone();
    let officer = acfg.officer_id.clone().unwrap_or_default();
    let unit = acfg.unit_code.clone().unwrap_or_default();
    let agent = Agent::start(acfg).await?;
    eventually(Duration::from_secs(30), "the recording stored", || async {
        Ok(api.stored_media().await? == 1)
    })
    .await?;
    let media = api.media().await?.remove(0);
    let started: DateTime<Utc> = media["started_at"]
        .as_str()
        .or(media["device_time"].as_str())
        .unwrap_or_default()
        .parse()?;
    let real =
        started - chrono::Duration::milliseconds(media["clock_offset_ms"].as_i64().unwrap_or(0));
    assert!(
        Utc::now() - real > chrono::Duration::minutes(170),
        "made three hours ago: {media}"
    );

    // An action an hour ago with nothing recorded.
    let ago = |m: i64| (Utc::now() - chrono::Duration::minutes(m)).to_rfc3339();
    drop_event(
        &spool,
        "gap-1",
        &ago(60),
        json!({"type": "action_started", "action_id": "act-gap", "domain": "01"}),
    )?;
    drop_event(
        &spool,
        "gap-2",
        &ago(55),
        json!({"type": "action_ended", "action_id": "act-gap"}),
    )?;

    // The case system's record of an action inside the recording (covered),
    // as CSV; and a roster putting an officer with no device on duty now.
    let inside = |s: i64| (real + chrono::Duration::seconds(s)).to_rfc3339();
    let csv = format!(
        "id,case_number,officers,unit_code,domain,start,end,place,lat,lon\n\
         CASE-1,渝北综执罚〔2026〕7号,{officer},{unit},01,{},{},龙溪街道,29.6080,106.5290\n",
        inside(3),
        inside(15)
    );
    let (status, v) = api
        .send(
            "POST",
            "/api/v1/coverage/actions",
            Some(("text/csv", csv.into_bytes())),
        )
        .await?;
    assert_eq!((status, v["imported"].as_i64()), (200, Some(1)), "{v}");
    let roster = json!({"duties": [{
        "officer_id": NOBODY_S,
        "start": ago(10),
        "end": (Utc::now() + chrono::Duration::hours(7)).to_rfc3339(),
    }]});
    let (status, v) = api
        .send_json("POST", "/api/v1/coverage/duties", &roster)
        .await?;
    assert_eq!((status, v["imported"].as_i64()), (200, Some(1)), "{v}");

    // Bad imports are refused whole, naming the row and what is wrong.
    let bad_csv = "id,officers,start,end\n\
                   OK-1,200001,2026-11-30T09:00:00+08:00,2026-11-30T09:30:00+08:00\n\
                   BAD-1,12,2026-11-30T09:00:00+08:00,2026-11-30T08:00:00+08:00\n";
    let (status, v) = api
        .send(
            "POST",
            "/api/v1/coverage/actions",
            Some(("text/csv", bad_csv.as_bytes().to_vec())),
        )
        .await?;
    let e = v["error"].as_str().unwrap_or_default();
    assert_eq!(status, 422, "{v}");
    assert!(
        e.contains("line 3")
            && e.contains("officer \"12\": expected 6 digits")
            && e.contains("is before start"),
        "{e}"
    );
    let (status, v) = api
        .send_json(
            "POST",
            "/api/v1/coverage/duties",
            &json!({"duties": [{"officer_id": "300003", "start": "2026-11-30T17:00:00+08:00", "end": "2026-11-30T08:00:00+08:00"}]}),
        )
        .await?;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("duties[0]") && e.contains("is not after start")),
        "{v}"
    );
    let imported = api
        .get_ok(&format!("/api/v1/coverage/actions?{FAR}&covered=true"))
        .await?;
    assert!(
        !imported.to_string().contains("OK-1"),
        "a refused import stores nothing: {imported}"
    );

    // The three alerts, in the alert feed ...
    eventually(
        Duration::from_secs(30),
        "the three coverage alerts",
        || async {
            let a = api.get_ok("/api/v1/alerts?limit=100").await?;
            Ok(kinds(a["alerts"].as_array().map_or(&[][..], Vec::as_slice))
                .iter()
                .filter(|k| WANTED.contains(&k.as_str()))
                .count()
                == 3)
        },
    )
    .await?;
    let alerts = api.get_ok("/api/v1/alerts?limit=100").await?;
    let alerts = alerts["alerts"].as_array().cloned().unwrap_or_default();
    let of = |kind: &str| -> Vec<&Value> { alerts.iter().filter(|a| a["kind"] == kind).collect() };
    let uncovered = of("action_uncovered");
    assert_eq!(
        uncovered.len(),
        1,
        "only the action nothing recorded: {uncovered:#?}"
    );
    assert_eq!(uncovered[0]["subject"], format!("{id}/act-gap"));
    assert_eq!(uncovered[0]["officer_id"], officer.as_str());
    assert!(
        uncovered[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("nothing_recorded")),
        "{:?}",
        uncovered[0]
    );
    let unheard = of("officer_unheard");
    assert_eq!(unheard.len(), 1, "{unheard:#?}");
    assert_eq!(unheard[0]["officer_id"], NOBODY_S);
    let late = of("late_upload");
    assert_eq!(late.len(), 1, "{late:#?}");
    assert_eq!(late[0]["subject"], media["id"]);
    assert_eq!(late[0]["device_id"], id.as_str());

    // ... and pushed to the platform's event stream.
    let pushed = stream.await??;
    let pushed: Vec<Value> = pushed
        .into_iter()
        .filter(|e| e.event == "alert")
        .map(|e| e.data)
        .collect();
    assert_eq!(kinds(&pushed), WANTED);

    // The figures show the same: the officer's imported action covered,
    // act-gap not; the rostered officer without a working recorder; the
    // late recording.
    let v = api
        .get_ok(&format!("/api/v1/coverage?group_by=officer&{FAR}"))
        .await?;
    let group = |k: &str| {
        v["groups"]
            .as_array()
            .and_then(|g| g.iter().find(|x| x["key"] == k).cloned())
            .unwrap_or(Value::Null)
    };
    let mine = group(&officer);
    assert_eq!(
        (&mine["actions"]["covered"], &mine["actions"]["total"]),
        (&json!(1), &json!(2)),
        "{mine}"
    );
    assert_eq!(mine["timeliness"]["late"], 1, "{mine}");
    let nobody = group(NOBODY_S);
    assert_eq!(
        (
            &nobody["personnel"]["covered"],
            &nobody["personnel"]["total"]
        ),
        (&json!(0), &json!(1)),
        "{nobody}"
    );
    assert_eq!(v["all"]["spatial"]["total"], 1, "the case's place: {v}");
    let officers = api
        .get_ok(&format!("/api/v1/coverage/officers?{FAR}&working=false"))
        .await?;
    assert_eq!(
        officers["officers"][0]["officer_id"], NOBODY_S,
        "{officers}"
    );
    let late_list = api.get_ok(&format!("/api/v1/coverage/late?{FAR}")).await?;
    assert_eq!(
        late_list["late"][0]["record_id"], media["id"],
        "{late_list}"
    );
    assert_eq!(late_list["truncated"], false);

    // CSV of the same figures: a header, the whole window, each officer.
    let (status, text) = api
        .get(
            &format!("/api/v1/coverage?group_by=officer&{FAR}&format=csv"),
            true,
        )
        .await?;
    assert_eq!(status, 200);
    let text = text.as_str().unwrap_or_default().to_owned();
    let mut rows = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = rows.headers()?.iter().map(str::to_owned).collect();
    assert_eq!(&header[..3], ["key", "actions_covered", "actions_total"]);
    let rows: Vec<csv::StringRecord> = rows.records().collect::<Result<_, _>>()?;
    assert_eq!(&rows[0][0], "all");
    let mine_csv = rows
        .iter()
        .find(|r| &r[0] == officer.as_str())
        .ok_or_else(|| anyhow::anyhow!("no row of {officer} in {text}"))?;
    assert_eq!((&mine_csv[1], &mine_csv[2]), ("1", "2"));
    let (status, v) = api
        .get(&format!("/api/v1/coverage?{FAR}&format=xml"), true)
        .await?;
    assert_eq!(status, 400);
    assert!(v.to_string().contains("expected json or csv"), "{v}");

    agent.shutdown().await?;
    hub.shutdown().await
}

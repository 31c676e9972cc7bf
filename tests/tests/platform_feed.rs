//! Issue 5 item 2, for the supervision platform: the records feed filtered
//! by device, officer, unit, domain, kind, time range and case number (each
//! filter returns exactly the matching records, and paging a filtered feed
//! sees each once), and new records and alerts pushed as server-sent events
//! that resume after the last event seen (`Last-Event-ID`) without a gap or
//! a repeat.

use std::time::Duration;

use evsync_agent::agent::Agent;
use evsync_e2e::*;
use evsync_hub::server::Hub;
use serde_json::{json, Value};

async fn ids(api: &Api, query: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let v = api
            .get_ok(&format!("/api/v1/records?limit=2&after={cursor}&{query}"))
            .await?;
        let page = v["records"].as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            return Ok(out);
        }
        out.extend(
            page.iter()
                .filter_map(|r| r["id"].as_str().map(str::to_owned)),
        );
        cursor = v["cursor"].as_str().unwrap_or_default().to_owned();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_feed_filter_returns_exactly_the_matching_records() -> anyhow::Result<()> {
    let dir = test_dir("feed-filters")?;
    let hub = Hub::start(hub_config(dir.path(), None)?).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let a = unique("field-a");
    let b = unique("field-b");
    let mut acfg = agent_config(dir.path(), &a, &hub.mqtt_url, &hub.public_key);
    acfg.officer_id = Some("200001".into());
    acfg.unit_code = Some("500112000001".into());
    let mut bcfg = agent_config(dir.path(), &b, &hub.mqtt_url, &hub.public_key);
    bcfg.officer_id = Some("200002".into());
    bcfg.unit_code = Some("500109000001".into());
    // Agent a: a market-regulation action with a case number, the next morning another event.
    drop_event(
        &acfg.spool_dir,
        "e1",
        "2026-11-23T09:00:00+08:00",
        json!({"type": "action_started", "action_id": "act-1", "case_number": "渝北市监罚〔2026〕17号", "domain": "01"}),
    )?;
    drop_event(
        &acfg.spool_dir,
        "e2",
        "2026-11-23T09:40:00+08:00",
        json!({"type": "action_ended", "action_id": "act-1", "case_number": "渝北市监罚〔2026〕17号"}),
    )?;
    drop_event(
        &acfg.spool_dir,
        "e3",
        "2026-11-24T08:00:00+08:00",
        json!({"type": "duty_started"}),
    )?;
    // Agent b: a city-management action on the 23rd and a recording.
    drop_event(
        &bcfg.spool_dir,
        "e1",
        "2026-11-23T10:00:00+08:00",
        json!({"type": "action_started", "action_id": "act-2", "domain": "05"}),
    )?;
    let part = bcfg.spool_dir.join("VID_0001.mp4.part");
    evsync_hub::demo::write_mp4(&part, 2, 2_000, 3)?;
    std::fs::rename(&part, bcfg.spool_dir.join("VID_0001.mp4"))?;
    // a's records first, then b's, then one more of a's: a's records are
    // not contiguous in the feed.
    let a_spool = acfg.spool_dir.clone();
    let agent_a = Agent::start(acfg).await?;
    eventually(
        Duration::from_secs(30),
        "a's 3 records in the feed",
        || async { Ok(api.feed().await?.len() == 3) },
    )
    .await?;
    let agent_b = Agent::start(bcfg).await?;
    eventually(
        Duration::from_secs(30),
        "b's 2 records in the feed",
        || async { Ok(api.feed().await?.len() == 5) },
    )
    .await?;
    drop_event(
        &a_spool,
        "e4",
        "2026-11-24T17:30:00+08:00",
        json!({"type": "duty_ended"}),
    )?;
    eventually(Duration::from_secs(30), "6 records in the feed", || async {
        Ok(api.feed().await?.len() == 6)
    })
    .await?;
    let agents = [agent_a, agent_b];
    let feed = api.feed().await?;
    let by = |pred: &dyn Fn(&Value) -> bool| -> Vec<String> {
        feed.iter()
            .filter(|r| pred(r))
            .filter_map(|r| r["id"].as_str().map(str::to_owned))
            .collect()
    };
    let case = "渝北市监罚〔2026〕17号";
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            format!("device_id={a}"),
            by(&|r| r["device_id"] == a.as_str()),
        ),
        (
            "officer_id=200002".into(),
            by(&|r| r["officer_id"] == "200002"),
        ),
        (
            "unit_code=500112000001".into(),
            by(&|r| r["unit_code"] == "500112000001"),
        ),
        ("kind=media".into(), by(&|r| r["kind"] == "media")),
        (
            "domain=05".into(),
            by(&|r| r["event"]["action_id"] == "act-2"),
        ),
        (
            "case_number=".to_owned() + &urlencode(case),
            by(&|r| r["event"]["case_number"] == case),
        ),
        (
            // The 23rd in China Standard Time.
            format!(
                "from={}&to={}",
                urlencode("2026-11-23T00:00:00+08:00"),
                urlencode("2026-11-24T00:00:00+08:00")
            ),
            by(&|r| r["event"]["action_id"].is_string()),
        ),
        (
            format!(
                "device_id={a}&from={}",
                urlencode("2026-11-24T00:00:00+08:00")
            ),
            by(&|r| {
                r["device_id"] == a.as_str()
                    && r["device_time"].as_str().is_some_and(|t| t >= "2026-11-24")
            }),
        ),
    ];
    // Newest first, paged: the same records in reverse.
    let mut newest_first = Vec::new();
    let mut cursor = String::new();
    loop {
        let v = api
            .get_ok(&format!(
                "/api/v1/records?order=desc&limit=2&after={cursor}"
            ))
            .await?;
        let page = v["records"].as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            break;
        }
        newest_first.extend(
            page.iter()
                .filter_map(|r| r["id"].as_str().map(str::to_owned)),
        );
        cursor = v["cursor"].as_str().unwrap_or_default().to_owned();
    }
    let mut oldest_first = by(&|_| true);
    oldest_first.reverse();
    assert_eq!(newest_first, oldest_first);
    let b_signed = by(&|r| r["agent_id"] == b.as_str());
    assert_eq!(ids(&api, &format!("agent_id={b}")).await?, b_signed);

    // A filtered read is in the custody trail of the records it returned, and only those.
    let (status, t) = api
        .send_json(
            "POST",
            "/api/v1/tokens",
            &json!({"name": "platform-filter", "role": "platform"}),
        )
        .await?;
    assert_eq!(status, 201, "{t}");
    let platform = api.with_token(t["token"].as_str().unwrap_or_default());
    let of_a = platform
        .get_ok(&format!("/api/v1/records?device_id={a}"))
        .await?;
    assert_eq!(of_a["records"].as_array().map(Vec::len), Some(4));
    let read_by_platform = |r: &Value| {
        r["custody"].as_array().is_some_and(|c| {
            c.iter()
                .any(|st| st["step"] == "accessed" && st["actor"] == "platform-filter")
        })
    };
    for r in &feed {
        let id = r["id"].as_str().unwrap_or_default();
        let one = api.get_ok(&format!("/api/v1/records/{id}")).await?;
        assert_eq!(
            read_by_platform(&one),
            r["device_id"] == a.as_str(),
            "{one}"
        );
    }
    for (query, want) in &cases {
        assert!(!want.is_empty(), "{query}: the fixture has matches");
        assert_eq!(&ids(&api, query).await?, want, "{query}");
    }
    for bad in [
        "kind=video",
        "from=yesterday",
        "colour=red",
        "order=sideways",
    ] {
        let (status, v) = api.get(&format!("/api/v1/records?{bad}"), true).await?;
        assert_eq!(status, 400, "{bad}: {v}");
    }
    for agent in agents {
        agent.shutdown().await?;
    }
    hub.shutdown().await
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_records_and_alerts_are_pushed_and_a_reconnect_resumes_after_the_last_event(
) -> anyhow::Result<()> {
    let dir = test_dir("push")?;
    let mut cfg = hub_config(dir.path(), None)?;
    cfg.gap_grace_secs = 0;
    let hub = Hub::start(cfg).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let base = format!("http://{}", hub.http_addr);
    let (status, t) = api
        .send_json(
            "POST",
            "/api/v1/tokens",
            &json!({"name": "platform-push", "role": "platform"}),
        )
        .await?;
    assert_eq!(status, 201, "{t}");
    let token = t["token"].as_str().unwrap_or_default().to_owned();

    // A stream opened before anything is stored.
    let first = tokio::spawn(read_events(base.clone(), token.clone(), None, 8));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = unique("field-push");
    let acfg = agent_config(dir.path(), &id, &hub.mqtt_url, &hub.public_key);
    drop_events(&acfg.spool_dir, 0, 5)?;
    let spool = acfg.spool_dir.clone();
    let agent = Agent::start(acfg).await?;
    eventually(Duration::from_secs(20), "5 records stored", || async {
        Ok(api.feed().await?.len() == 5)
    })
    .await?;
    // Then a device that skips seq 2: a sequence gap alert, pushed after its records.
    let raw = RawDevice::connect(&hub.mqtt_url, &unique("raw-push")).await?;
    raw.announce().await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let one = raw.seal(&raw.body(1, evsync_protocol::chain::GENESIS, "one"));
    let three = raw.seal(&raw.body(3, evsync_protocol::chain::GENESIS, "three"));
    raw.send(&[one, three]).await?;
    eventually(Duration::from_secs(20), "7 records stored", || async {
        Ok(api.feed().await?.len() == 7)
    })
    .await?;
    let got = tokio::time::timeout(Duration::from_secs(25), first).await???;
    let kinds: Vec<&str> = got.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        kinds,
        [["record"; 7].as_slice(), &["alert"]].concat(),
        "{got:?}"
    );
    let feed = api.feed().await?;
    for (pushed, fed) in got.iter().zip(&feed) {
        assert_eq!(pushed.data["id"], fed["id"], "pushed in feed order");
        verify_feed_record(&pushed.data)?;
    }
    assert_eq!(got[7].data["kind"], "sequence_gap", "{:?}", got[7]);

    // Resume after the 3rd event: the rest follows, once each, the alert last.
    let resumed = read_events(base.clone(), token.clone(), Some(got[2].id.clone()), 5).await?;
    let ids: Vec<&Value> = resumed.iter().map(|e| &e.data["id"]).collect();
    let expected: Vec<&Value> = got[3..].iter().map(|e| &e.data["id"]).collect();
    assert_eq!(ids, expected);
    assert_eq!(resumed[4].event, "alert");
    let (status, _) = api.get("/api/v1/events", false).await?;
    assert_eq!(status, 401);

    // Pushed records are evidence reads: each pushed record's custody shows the platform.
    for e in got.iter().filter(|e| e.event == "record") {
        let id = e.data["id"].as_str().unwrap_or_default();
        let r = api.get_ok(&format!("/api/v1/records/{id}")).await?;
        assert!(
            r["custody"].as_array().is_some_and(|c| c
                .iter()
                .any(|st| st["actor"] == "platform-push" && st["step"] == "accessed")),
            "{r}"
        );
    }

    // A token revoked while its stream is open: the stream ends, and what is
    // stored afterwards is not pushed to it.
    let (status, t) = api
        .send_json(
            "POST",
            "/api/v1/tokens",
            &json!({"name": "platform-revoked", "role": "platform"}),
        )
        .await?;
    assert_eq!(status, 201, "{t}");
    let revoked = t["token"].as_str().unwrap_or_default().to_owned();
    let open = tokio::spawn(read_events(
        base.clone(),
        revoked,
        Some(got[7].id.clone()),
        100,
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _) = api
        .send(
            "DELETE",
            &format!("/api/v1/tokens/{}", t["id"].as_str().unwrap_or_default()),
            None,
        )
        .await?;
    assert_eq!(status, 200);
    drop_events(&spool, 100, 3)?;
    eventually(Duration::from_secs(20), "3 more records stored", || async {
        Ok(api.feed().await?.len() == 10)
    })
    .await?;
    let after_revocation = tokio::time::timeout(Duration::from_secs(10), open).await???;
    assert!(
        after_revocation.is_empty(),
        "pushed after revocation: {after_revocation:?}"
    );
    agent.shutdown().await?;
    hub.shutdown().await
}

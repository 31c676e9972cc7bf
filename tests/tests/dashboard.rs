//! Issue 5, item 4, and SPEC.md "Interfaces → Web dashboard" ("served by the
//! hub for operators … tested in a real headless browser"): with real data
//! synced by a field agent (events, one in Chinese, and a recording), an open
//! alert raised by a broken hash chain, a dock's heartbeat in the middle of a
//! copy and an upload, and units and officers named in Chinese, the system's
//! headless Chromium signs in with the hub's token and renders the fleet
//! (every device with its officer and unit by name), the open alerts (kind
//! and detail as the API gives them), the transfers with their progress, a
//! device's page (assignment history, latest records) and a record's page
//! (verification and the custody trail the API gives); a wrong token lands
//! on the sign-in form with the 401 explained; and the screenshots are real
//! pictures of the window size, not blank, with the colours of the online
//! badges and the open-alert count.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use evsync_agent::agent::Agent;
use evsync_e2e::browser::*;
use evsync_e2e::*;
use evsync_hub::server::Hub;
use evsync_protocol::chain::{Hash, GENESIS};
use serde_json::Value;

/// The Chinese note of one event; it must reach the page intact.
const NOTE_ZH: &str = "现场检查：当事人拒绝签字";
/// The field agent's unit and officer, as the operators name them.
const UNIT: &str = "500112010001";
const UNIT_ZH: &str = "渝北区市场监督管理局";
const OFFICER: &str = "100001";
const OFFICER_ZH: &str = "张伟";
/// The officer the field device is handed to by an operator.
const OFFICER_2: &str = "100004";
const OFFICER_2_ZH: &str = "李娜";

fn assert_shows(dom: &str, page: &str, text: &str) {
    assert!(
        dom.contains(&in_html(text)),
        "the {page} page does not show {text:?}; its DOM:\n{dom}"
    );
}

fn signed_in(dom: &str, page: &str) {
    assert!(
        !main_of(dom).contains("id=\"login-form\""),
        "the {page} page shows the sign-in form: the token was not taken; DOM:\n{dom}"
    );
    assert!(
        !dom.contains("Could not load this page"),
        "the {page} page failed to load; DOM:\n{dom}"
    );
}

/// Writes one spool event file (write, then rename).
fn drop_event(spool: &Path, name: &str, event: Value) -> anyhow::Result<()> {
    let text = serde_json::json!({ "time": "2026-11-23T09:30:00+08:00", "event": event });
    let part = spool.join(format!("{name}.json.part"));
    std::fs::write(&part, text.to_string())?;
    std::fs::rename(&part, spool.join(format!("{name}.json")))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_real_fleet_alerts_devices_and_custody_in_headless_chromium(
) -> anyhow::Result<()> {
    let browser = chromium();
    let started = Instant::now();
    let dir = test_dir("dashboard")?;
    let hub = Hub::start(hub_config(dir.path(), None)?).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let base = format!("http://{}", hub.http_addr);

    // A field agent with events (one in Chinese, one enforcement action) and a recording.
    let field = unique("field-dash");
    let cfg = agent_config(dir.path(), &field, &hub.mqtt_url, &hub.public_key);
    let spool = cfg.spool_dir.clone();
    std::fs::create_dir_all(&spool)?;
    let agent = Agent::start(cfg).await?;
    drop_events(&spool, 0, 3)?;
    drop_event(
        &spool,
        "ev-zh",
        serde_json::json!({ "type": "marked_important", "note": NOTE_ZH }),
    )?;
    drop_event(
        &spool,
        "ev-action",
        serde_json::json!({
            "type": "action_started", "action_id": "A-DASH-1",
            "case_number": "渝500112罚〔2026〕296号", "domain": "01",
            "legal_basis": "《中华人民共和国行政处罚法》第五十一条"
        }),
    )?;
    // The directory, in Chinese as operators keep it, and the field device
    // handed to another officer: its assignment history has two entries.
    for (path, body) in [
        (
            "/api/v1/units",
            serde_json::json!({ "unit_code": UNIT, "name": UNIT_ZH, "district_code": "500112" }),
        ),
        (
            "/api/v1/officers",
            serde_json::json!({ "officer_id": OFFICER, "name": OFFICER_ZH, "unit_code": UNIT }),
        ),
        (
            "/api/v1/officers",
            serde_json::json!({ "officer_id": OFFICER_2, "name": OFFICER_2_ZH, "unit_code": UNIT }),
        ),
    ] {
        let (status, v) = api.send_json("POST", path, &body).await?;
        anyhow::ensure!((200..300).contains(&status), "POST {path}: {status} {v}");
    }
    let mp4 = dir.path().join("VID_dash.mp4");
    evsync_hub::demo::write_mp4(&mp4, 4, 640, 1)?;
    std::fs::rename(&mp4, spool.join("VID_dash.mp4"))?;

    // A device whose second record names the wrong predecessor: a chain break.
    let rogue_id = unique("field-rogue");
    let mut rogue = RawDevice::connect(&hub.mqtt_url, &rogue_id).await?;
    rogue.announce().await?;
    eventually(
        Duration::from_secs(10),
        "the rogue device enrolled",
        || async {
            let d = api.get_ok("/api/v1/devices").await?;
            Ok(d["devices"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|d| d["device_id"] == rogue_id.as_str() && d["state"] == "approved")
            }))
        },
    )
    .await?;
    let first = rogue.seal(&rogue.body(1, GENESIS, "one"));
    rogue.send(std::slice::from_ref(&first)).await?;
    rogue.receipt(&hub.public_key).await?;
    rogue
        .send(&[rogue.seal(&rogue.body(2, Hash::of(b"not the first"), "two"))])
        .await?;
    rogue.receipt(&hub.public_key).await?;

    // A dock, driven by hand, whose heartbeat (the agent's own status format)
    // catches it in the middle of copying a recorder and uploading a file.
    let dock_id = unique("dock-dash");
    let dock = RawDevice::connect(&hub.mqtt_url, &dock_id).await?;
    let announce = evsync_protocol::announce::AnnounceBody {
        v: 1,
        device_id: dock_id.clone(),
        public_key: dock.key.public().to_base64(),
        role: "dock".into(),
        officer_id: None,
        unit_code: Some(UNIT.into()),
        software: "raw-test-dock".into(),
        sent_at: chrono::Utc::now(),
    };
    dock.publish("announce", announce.seal(&dock.key)).await?;
    let recorder = unique("ZFY-dash");
    let upload_id = uuid::Uuid::now_v7().to_string();
    let heartbeat = serde_json::json!({
        "online": true,
        "at": chrono::Utc::now(),
        "backlog_records": 7,
        "backlog_bytes": 9_437_184,
        "media_backlog": { "files": 2, "bytes": 9_437_184, "failed": 0 },
        "transfers": [{
            "record_id": upload_id, "file": "ZFY_20261202_0042.MP4",
            "bytes_done": 3_145_728, "bytes_total": 8_388_608,
            "rate_bps": 1_048_576, "eta_s": 5
        }],
        "slots": [{
            "slot": 1, "port": "/dev/ttyUSB0", "state": "copying",
            "recorder": recorder, "officer": OFFICER_2, "unit": UNIT,
            "battery_pct": 64, "files_on_recorder": 4, "files_copied": 1,
            "copying": { "index": 2, "name": "ZFY_20261202_0043.MP4",
                         "bytes_done": 1_048_576, "bytes_total": 4_194_304 },
            "error": null
        }],
    });
    eventually(
        Duration::from_secs(10),
        "the dock's heartbeat at the hub",
        || async {
            dock.publish("status", heartbeat.to_string().into_bytes())
                .await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let d = api
                .get(&format!("/api/v1/devices/{dock_id}"), true)
                .await?
                .1;
            Ok(d["status"]["transfers"][0]["file"] == "ZFY_20261202_0042.MP4")
        },
    )
    .await?;
    let (status, v) = api
        .send_json(
            "PUT",
            &format!("/api/v1/devices/{field}/assignment"),
            &serde_json::json!({ "officer_id": OFFICER_2, "unit_code": UNIT, "domain": "01" }),
        )
        .await?;
    anyhow::ensure!(status == 200, "assigning {field}: {status} {v}");

    eventually(
        Duration::from_secs(30),
        "the field agent's 6 records, its recording stored, and its status at the hub",
        || async {
            let devices = api.get_ok("/api/v1/devices").await?;
            let reported = devices["devices"].as_array().is_some_and(|a| {
                a.iter().any(|d| {
                    d["device_id"] == field.as_str()
                        && d["online"] == true
                        && d["status"]["backlog_records"] == 0
                })
            });
            Ok(reported && hub.record_count().await? == 6 + 2 && api.stored_media().await? == 1)
        },
    )
    .await?;

    // What the API says, which the pages must show.
    let devices: Vec<Value> = api.get_ok("/api/v1/devices").await?["devices"]
        .as_array()
        .cloned()
        .context("devices")?;
    let open: Vec<Value> = api.get_ok("/api/v1/alerts?open=true").await?["alerts"]
        .as_array()
        .cloned()
        .context("alerts")?;
    let alert = open
        .iter()
        .find(|a| a["kind"] == "chain_break" && a["device_id"] == rogue_id.as_str())
        .with_context(|| format!("no open chain_break alert for {rogue_id}: {open:?}"))?;
    let feed: Vec<Value> = api
        .feed()
        .await?
        .into_iter()
        .filter(|r| r["device_id"] == field.as_str())
        .collect();
    check_chains(&feed)?;
    let media = feed
        .iter()
        .find(|r| r["kind"] == "media")
        .context("the recording is not in the feed")?;
    let media_id = media["id"].as_str().context("media id")?;
    let record = api.get_ok(&format!("/api/v1/records/{media_id}")).await?;
    let field_page = api.get_ok(&format!("/api/v1/devices/{field}")).await?;
    let assignments = field_page["assignments"]
        .as_array()
        .cloned()
        .context("the device has no assignment history")?;
    assert!(
        assignments.len() >= 2,
        "announced, then assigned by an operator: {assignments:?}"
    );
    let whoami = api.get_ok("/api/v1/whoami").await?;
    let token = &hub.token;

    // The page itself needs no token and holds no data; `/` leads to it.
    for path in ["/dashboard/", "/"] {
        let (status, page) = api.get(path, false).await?;
        assert_eq!(status, 200, "GET {path}");
        let page = page.as_str().unwrap_or_default();
        assert!(page.contains("<meta charset=\"utf-8\">"), "{page}");
        assert!(!page.contains(&field), "the page itself holds data: {page}");
    }

    // Fleet: every enrolled device, online, with its officer and unit.
    let dom = dump_dom(dir.path(), &format!("{base}/dashboard/#token={token}"))?;
    signed_in(&dom, "fleet");
    assert!(dom.contains("data-view=\"fleet\""), "{dom}");
    for d in &devices {
        let id = d["device_id"].as_str().context("device_id")?;
        assert_shows(&dom, "fleet", id);
        assert!(
            dom.contains(&format!("href=\"#/devices/{id}\"")),
            "no link to {id}'s page"
        );
    }
    assert_shows(&dom, "fleet", "online");
    // The field device's current officer and unit, by name and number.
    assert_shows(&dom, "fleet", OFFICER_2_ZH);
    assert_shows(&dom, "fleet", OFFICER_2);
    assert_shows(&dom, "fleet", UNIT_ZH);
    assert_shows(&dom, "fleet", UNIT);
    // The dock's backlog from its heartbeat, and the recorder in its slot.
    assert_shows(&dom, "fleet", "7 rec");
    assert!(
        dom.contains(&format!("href=\"#/devices/{recorder}\"")),
        "the dock's recorder {recorder} is not shown docked"
    );
    // Who is signed in.
    assert_shows(&dom, "fleet", whoami["role"].as_str().context("role")?);
    assert_shows(&dom, "fleet", whoami["name"].as_str().context("name")?);
    assert!(
        !dom.contains(token.as_str()),
        "the token is left in the page"
    );

    // Alerts: the open chain break, as the API words it.
    let dom = dump_dom(
        dir.path(),
        &format!("{base}/dashboard/#/alerts?token={token}"),
    )?;
    signed_in(&dom, "alerts");
    assert!(dom.contains("data-view=\"alerts\""), "{dom}");
    for a in &open {
        assert_shows(&dom, "alerts", a["kind"].as_str().context("kind")?);
        assert_shows(&dom, "alerts", a["detail"].as_str().context("detail")?);
    }
    assert_shows(&dom, "alerts", &rogue_id);
    assert_shows(&dom, "alerts", alert["detail"].as_str().unwrap_or_default());

    // Transfers: the dock's upload and its slot's copy, with their progress.
    let dom = dump_dom(
        dir.path(),
        &format!("{base}/dashboard/#/transfers?token={token}"),
    )?;
    signed_in(&dom, "transfers");
    assert!(dom.contains("data-view=\"transfers\""), "{dom}");
    for text in [
        "ZFY_20261202_0042.MP4",
        "3.0 MiB / 8.0 MiB",
        "37%",
        "1.0 MiB/s",
        "ZFY_20261202_0043.MP4",
        "1.0 MiB / 4.0 MiB",
        "25%",
        "1 / 4",
        &recorder,
        OFFICER_2_ZH,
    ] {
        assert_shows(&dom, "transfers", text);
    }
    assert!(
        dom.contains("style=\"width: 37.5%;\""),
        "no 37.5% bar: {dom}"
    );
    assert!(dom.contains("style=\"width: 25%;\""), "no 25% bar: {dom}");

    // The field device's page: its latest records, the Chinese note intact, a link to the recording.
    let dom = dump_dom(
        dir.path(),
        &format!("{base}/dashboard/#/devices/{field}?token={token}"),
    )?;
    signed_in(&dom, "device");
    assert!(dom.contains("data-view=\"device\""), "{dom}");
    assert_shows(&dom, "device", &field);
    assert_shows(&dom, "device", NOTE_ZH);
    assert_shows(&dom, "device", "渝500112罚〔2026〕296号");
    assert!(
        dom.contains(&format!("href=\"#/records/{media_id}\"")),
        "the device page does not link its recording {media_id}"
    );
    // Its assignment history, by name: announced with one officer, handed to another.
    assert_shows(&dom, "device", OFFICER_ZH);
    assert_shows(&dom, "device", OFFICER_2_ZH);
    for a in &assignments {
        assert_shows(&dom, "device", a["source"].as_str().context("source")?);
    }

    // The recording's page: its hash, its verification, and its custody trail.
    let dom = dump_dom(
        dir.path(),
        &format!("{base}/dashboard/#/records/{media_id}?token={token}"),
    )?;
    signed_in(&dom, "record");
    assert!(dom.contains("data-view=\"record\""), "{dom}");
    assert_shows(&dom, "record", media_id);
    assert_shows(&dom, "record", record["sha256"].as_str().context("sha256")?);
    assert_shows(&dom, "record", "VID_dash.mp4");
    assert_eq!(record["verification"]["signature"], "valid", "{record}");
    assert_eq!(record["verification"]["chain"], "intact", "{record}");
    assert_shows(&dom, "record", "valid");
    assert_shows(&dom, "record", "intact");
    let custody = record["custody"]
        .as_array()
        .context("the record has no custody trail")?;
    let steps: Vec<&str> = custody.iter().filter_map(|s| s["step"].as_str()).collect();
    for want in [
        "captured",
        "ingested",
        "verified",
        "receipted",
        "media_stored",
    ] {
        assert!(
            steps.contains(&want),
            "no {want} in the custody trail {steps:?}"
        );
    }
    for s in custody {
        let step = s["step"].as_str().context("step")?;
        assert_shows(&dom, "record", &step.replace('_', " "));
        assert_shows(&dom, "record", s["actor"].as_str().context("actor")?);
        assert_shows(&dom, "record", s["detail"].as_str().context("detail")?);
    }

    // A wrong token: back to the sign-in form, saying why.
    let dom = dump_dom(
        dir.path(),
        &format!("{base}/dashboard/#token=not-the-token"),
    )?;
    assert!(main_of(&dom).contains("id=\"login-form\""), "{dom}");
    assert_shows(&dom, "sign-in", "401");

    // Screenshots: real renderings of the window, with the data's colours.
    let fleet_png = dir.path().join("dashboard-fleet.png");
    let shot = screenshot(
        dir.path(),
        &format!("{base}/dashboard/#token={token}"),
        &fleet_png,
    )?;
    keep_screenshot(&fleet_png)?;
    assert_rendered("fleet", &shot);
    // The online badge's fill (--ok-bg) and the open-alert count's (--bad)
    // are drawn only when the API reports an online device and an open alert.
    assert!(
        pixels_of(&shot.2, [0xe3, 0xf4, 0xea]) > 200,
        "no online badge in the fleet screenshot"
    );
    assert!(
        pixels_of(&shot.2, [0xb4, 0x23, 0x18]) > 50,
        "no open-alert count in the fleet screenshot"
    );
    let record_png = dir.path().join("dashboard-record.png");
    let shot = screenshot(
        dir.path(),
        &format!("{base}/dashboard/#/records/{media_id}?token={token}"),
        &record_png,
    )?;
    keep_screenshot(&record_png)?;
    assert_rendered("record", &shot);
    let transfers_png = dir.path().join("dashboard-transfers.png");
    let shot = screenshot(
        dir.path(),
        &format!("{base}/dashboard/#/transfers?token={token}"),
        &transfers_png,
    )?;
    keep_screenshot(&transfers_png)?;
    assert_rendered("transfers", &shot);
    let device_png = dir.path().join("dashboard-device.png");
    let shot = screenshot(
        dir.path(),
        &format!("{base}/dashboard/#/devices/{field}?token={token}"),
        &device_png,
    )?;
    keep_screenshot(&device_png)?;
    assert_rendered("device", &shot);
    let login_png = dir.path().join("dashboard-login.png");
    let login = screenshot(dir.path(), &format!("{base}/dashboard/"), &login_png)?;
    assert_eq!(
        pixels_of(&login.2, [0xe3, 0xf4, 0xea]),
        0,
        "the sign-in page shows data"
    );

    eprintln!(
        "dashboard checked in {:?} with {}",
        started.elapsed(),
        browser.display()
    );
    agent.shutdown().await?;
    drop(rogue);
    drop(dock);
    hub.shutdown().await
}

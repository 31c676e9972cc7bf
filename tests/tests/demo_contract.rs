//! The acceptance contract of SPEC.md: `evsync-hub demo` prints one
//! `ready api=… token=… mqtt=…` line once every demo record is receipted and
//! exits 0; with `--serve` it keeps serving the feed, answering 401 without
//! the token, until SIGTERM, then stops cleanly. Ready also means the demo
//! dock has emptied its simulated recorders into the hub (guarantee 1: a
//! file leaves a recorder only once the hub holds it verified), and a rerun
//! on the same data folder docks a new shift.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use evsync_e2e::recorders::require_ffmpeg;
use evsync_e2e::*;
use evsync_recorder_sim::storage::{Manifest, Storage};

const HUB: &str = env!("CARGO_BIN_EXE_e2e-hub");
const DISTRICTS: &str = include_str!("../../data/chongqing-districts.csv");
/// The demo dock (of 北碚区城市管理局) and its three recorders, two recordings each.
const DOCK: &str = "dock-500109-01";
const RECORDERS: [&str; 3] = ["ZFY0001", "ZFY0002", "ZFY0003"];
const DOCK_ARGS: [&str; 4] = ["--recorders", "3", "--recorder-recordings", "2"];

/// The demo's simulated recorders as they are now, by serial.
fn recorders(data: &Path) -> anyhow::Result<HashMap<String, Manifest>> {
    RECORDERS
        .iter()
        .map(|s| {
            Ok((
                (*s).to_owned(),
                Storage::peek(&data.join("recorders").join(s))?,
            ))
        })
        .collect()
}

/// Every recorder emptied and, once the demo stopped, no slot link left.
fn assert_dock_done(data: &Path, stopped: bool) -> anyhow::Result<()> {
    for (serial, m) in recorders(data)? {
        assert!(m.files.is_empty(), "{serial} still holds {:?}", m.files);
    }
    for slot in 1..=RECORDERS.len() {
        let link = data.join(format!("slots/slot{slot}"));
        assert_eq!(
            link.symlink_metadata().is_ok(),
            !stopped,
            "{}: link present while serving, removed once stopped",
            link.display()
        );
    }
    Ok(())
}

fn run_demo(data: &Path) -> anyhow::Result<std::process::Output> {
    Ok(Command::new(HUB)
        .args([
            "demo",
            "--data",
            data.to_str().unwrap_or_default(),
            "--events",
            "40",
            "--recordings",
            "2",
        ])
        .args(DOCK_ARGS)
        .output()?)
}

fn ready_fields(line: &str) -> anyhow::Result<(String, String, String)> {
    let mut api = None;
    let mut token = None;
    let mut mqtt = None;
    let rest = line
        .strip_prefix("ready ")
        .ok_or_else(|| anyhow::anyhow!("not a ready line: {line}"))?;
    for part in rest.split(' ') {
        match part.split_once('=') {
            Some(("api", v)) => api = Some(v.to_owned()),
            Some(("token", v)) => token = Some(v.to_owned()),
            Some(("mqtt", v)) => mqtt = Some(v.to_owned()),
            _ => anyhow::bail!("unexpected field {part:?} in {line}"),
        }
    }
    match (api, token, mqtt) {
        (Some(a), Some(t), Some(m)) => Ok((a, t, m)),
        _ => anyhow::bail!("ready line lacks a field: {line}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_prints_one_ready_line_and_exits_0() -> anyhow::Result<()> {
    require_ffmpeg()?;
    let dir = test_dir("demo")?;
    let data = dir.path().join("data");
    let out = tokio::task::spawn_blocking({
        let data = data.clone();
        move || run_demo(&data)
    })
    .await??;
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout)?;
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "stdout must hold only the ready line: {stdout:?}"
    );
    let (api, token, mqtt) = ready_fields(lines[0])?;
    assert!(api.starts_with("http://127.0.0.1:") && mqtt.starts_with("mqtt://127.0.0.1:"));
    assert!(token.len() >= 16);
    // Secrets are generated at first run, readable by their owner only.
    for secret in [
        "hub/hub.key",
        "hub/api-token",
        "agents/field-500112-01/data/device.key",
        "agents/dock-500109-01/data/device.key",
    ] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("data").join(secret))?
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{secret} has mode {mode:o}");
    }
    assert!(
        dir.path().join("data/hub/hub.sqlite").exists(),
        "--data is where the hub keeps its store"
    );
    // Exited: the recorders were emptied and their lines are down.
    assert_dock_done(&data, true)?;

    // A rerun on the same data is the next shift: each recorder records
    // two more files after its last index, and the dock empties it again.
    let again = tokio::task::spawn_blocking({
        let data = data.clone();
        move || run_demo(&data)
    })
    .await??;
    assert!(
        again.status.success(),
        "demo rerun failed: {}",
        String::from_utf8_lossy(&again.stderr)
    );
    let stdout = String::from_utf8(again.stdout)?;
    assert_eq!(stdout.lines().count(), 1, "rerun stdout: {stdout:?}");
    ready_fields(stdout.trim())?;
    assert_dock_done(&data, true)?;
    for (serial, m) in recorders(&data)? {
        assert_eq!(m.next_index, 5, "{serial}: two shifts of two recordings");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_with_serve_keeps_serving_the_feed_until_sigterm() -> anyhow::Result<()> {
    require_ffmpeg()?;
    let dir = test_dir("demo-serve")?;
    let data = dir.path().join("data");
    let http = free_loopback_addr()?;
    let mqtt = free_loopback_addr()?;
    let mut child = Command::new(HUB)
        .args([
            "demo",
            "--serve",
            "--http",
            &http.to_string(),
            "--mqtt",
            &mqtt.to_string(),
        ])
        .args(["--data", data.to_str().unwrap_or_default()])
        .args(["--events", "40", "--recordings", "2"])
        .args(DOCK_ARGS)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut demo = Proc::adopt(child, "evsync-hub demo --serve");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(120), line).await???;
    let (api_url, token, mqtt_url) = ready_fields(line.trim())?;
    assert_eq!(api_url, format!("http://{http}"));
    assert_eq!(mqtt_url, format!("mqtt://{mqtt}"));

    // Ready means the dock has emptied its recorders; they still serve.
    assert_dock_done(&data, false)?;

    let api = Api::new(http, &token);
    let feed = api.feed().await?;
    let (field, docked): (Vec<_>, Vec<_>) = feed.iter().partition(|r| {
        r["agent_id"]
            .as_str()
            .is_some_and(|a| a.starts_with("field-"))
    });
    assert_eq!(
        field.len(),
        2 * 42,
        "two agents, 40 events and 2 recordings each"
    );
    let chains = check_chains(&feed)?;
    let media: Vec<_> = field.iter().filter(|r| r["kind"] == "media").collect();
    assert_eq!(media.len(), 4);
    check_dock_records(&data, &docked, &chains, &api).await?;
    let dock_media: Vec<_> = docked.iter().filter(|r| r["kind"] == "media").collect();
    for m in &media {
        assert!(
            m["sha256"].is_string() && m["size"].as_u64() > Some(0) && m["mime"] == "video/mp4"
        );
        assert!(m["duration_ms"].as_u64() > Some(0), "{m}");
    }
    // Ready means the recordings' bytes are there too, verified: each plays back whole.
    for m in media.iter().chain(&dock_media) {
        assert_eq!(m["media_state"], "stored", "{m}");
        let url = format!(
            "http://{http}/api/v1/records/{}/media",
            m["id"].as_str().unwrap_or_default()
        );
        let auth = ("authorization", format!("Bearer {token}"));
        let whole = tokio::task::spawn_blocking(move || {
            evsync_e2e::media::request("GET", &url, &[auth], None)
        })
        .await??;
        assert_eq!(whole.status, 200);
        assert_eq!(whole.header("content-type"), Some("video/mp4"));
        assert_eq!(
            evsync_e2e::media::sha256(&whole.body),
            m["sha256"].as_str().unwrap_or_default()
        );
    }
    assert_eq!(api.get("/api/v1/records", false).await?.0, 401);
    for path in ["/api/v1/openapi.json", "/api/v1/devices", "/api/v1/alerts"] {
        assert_eq!(api.get(path, true).await?.0, 200, "{path}");
    }

    tokio::task::spawn_blocking(move || demo.terminate(Duration::from_secs(15))).await??;
    // Stopped cleanly: the recorders' lines are down and their links gone.
    assert_dock_done(&data, true)
}

/// The dock's records in the feed: for each recorder a clock check, a status
/// and its two recordings, verified and stored, with start and duration from
/// the MP4 and officer and unit from the recorder's ZFY info (a real
/// Chongqing unit); the recorder whose clock ran two hours fast is an alert.
async fn check_dock_records(
    data: &Path,
    docked: &[&serde_json::Value],
    chains: &HashMap<String, Vec<serde_json::Value>>,
    api: &Api,
) -> anyhow::Result<()> {
    let districts: HashMap<&str, &str> = DISTRICTS
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(','))
        .collect();
    let recorders = recorders(data)?;
    assert_eq!(
        docked.len(),
        RECORDERS.len() * 4,
        "dock records: {docked:?}"
    );
    let mut drifting = Vec::new();
    for (serial, m) in &recorders {
        let z = &m.zfy;
        let district = districts.get(&z.unit_no[..6]).ok_or_else(|| {
            anyhow::anyhow!("{serial}: unit {} is in no Chongqing district", z.unit_no)
        })?;
        assert!(
            z.unit_no.len() == 12 && z.unit_name.starts_with(district),
            "{serial}: unit {} {}",
            z.unit_no,
            z.unit_name
        );
        assert!(
            !z.officer_name.is_empty()
                && z.officer_name
                    .chars()
                    .all(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
            "{serial}: officer name {:?}",
            z.officer_name
        );
        let records = chains
            .get(serial)
            .ok_or_else(|| anyhow::anyhow!("no records of recorder {serial}"))?;
        let media: Vec<_> = records.iter().filter(|r| r["kind"] == "media").collect();
        assert_eq!(media.len(), 2, "{serial}");
        for r in records {
            assert_eq!(r["agent_id"], DOCK, "{r}");
            assert_eq!(r["verified"], true, "{r}");
            assert_eq!(r["officer_id"].as_str(), Some(z.officer_no.as_str()), "{r}");
            assert_eq!(r["unit_code"].as_str(), Some(z.unit_no.as_str()), "{r}");
        }
        for r in &media {
            assert_eq!(r["media_state"], "stored", "{r}");
            assert_eq!(r["mime"], "video/mp4", "{r}");
            assert!(r["started_at"].is_string(), "{r}");
            let ms = r["duration_ms"].as_u64().unwrap_or_default();
            assert!((900..=2600).contains(&ms), "1–2 s recordings: {r}");
            assert!(r["file_index"].as_u64().is_some(), "{r}");
        }
        let check = records
            .iter()
            .find(|r| r["event"]["type"] == "clock_checked")
            .ok_or_else(|| anyhow::anyhow!("no clock check for {serial}"))?;
        let offset = check["event"]["offset_ms"].as_i64().unwrap_or_default();
        if (offset - 7_200_000).abs() < 5_000 {
            drifting.push(serial.clone());
        } else {
            assert!(offset.abs() < 5_000, "{serial}: clock {offset} ms off");
        }
    }
    assert_eq!(
        drifting,
        vec!["ZFY0003".to_owned()],
        "one recorder two hours fast"
    );
    let alerts = api.get_ok("/api/v1/alerts").await?;
    let drift = alerts["alerts"].as_array().is_some_and(|a| {
        a.iter()
            .any(|x| x["kind"] == "clock_drift" && x["device_id"] == "ZFY0003")
    });
    assert!(drift, "clock_drift alert for ZFY0003: {alerts}");
    Ok(())
}

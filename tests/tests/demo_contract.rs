//! The acceptance contract of SPEC.md: `evsync-hub demo` prints one
//! `ready api=… token=… mqtt=…` line once every demo record is receipted and
//! exits 0; with `--serve` it keeps serving the feed, answering 401 without
//! the token, until SIGTERM, then stops cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use evsync_e2e::*;

const HUB: &str = env!("CARGO_BIN_EXE_e2e-hub");

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
    let dir = test_dir("demo")?;
    let out = tokio::task::spawn_blocking({
        let data = dir.path().join("data");
        move || {
            Command::new(HUB)
                .args([
                    "demo",
                    "--data",
                    data.to_str().unwrap_or_default(),
                    "--events",
                    "40",
                    "--recordings",
                    "2",
                ])
                .output()
        }
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
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_with_serve_keeps_serving_the_feed_until_sigterm() -> anyhow::Result<()> {
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
        .args(["--events", "40", "--recordings", "2"])
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

    let api = Api::new(http, &token);
    let feed = api.feed().await?;
    assert_eq!(
        feed.len(),
        2 * 42,
        "two agents, 40 events and 2 recordings each"
    );
    check_chains(&feed)?;
    let media: Vec<_> = feed.iter().filter(|r| r["kind"] == "media").collect();
    assert_eq!(media.len(), 4);
    for m in &media {
        assert!(
            m["sha256"].is_string() && m["size"].as_u64() > Some(0) && m["mime"] == "video/mp4"
        );
        assert!(m["duration_ms"].as_u64() > Some(0), "{m}");
    }
    // Ready means the recordings' bytes are there too, verified: each plays back whole.
    for m in &media {
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

    tokio::task::spawn_blocking(move || demo.terminate(Duration::from_secs(15))).await?
}

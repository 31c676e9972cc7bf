//! Large recordings survive every interruption (issue 3): a 1 GiB recording
//! whose agent is killed with SIGKILL ten times mid-upload, whose hub is
//! killed and restarted ten times mid-upload, and whose network is cut, each
//! arrives once and verified, and the bytes sent in total stay under 1.5×
//! the file: every attempt resumed from what the hub held, never from zero.
//! The bytes are counted by a proxy between agent and hub (the "network").

use std::time::Duration;

use evsync_agent::agent::Agent;
use evsync_e2e::media::{behind_proxy, files_under, sha256_file, spool_random, Proxy};
use evsync_e2e::*;
use evsync_hub::server::Hub;

const AGENT: &str = env!("CARGO_BIN_EXE_e2e-agent");
const HUB: &str = env!("CARGO_BIN_EXE_e2e-hub");
const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// Waits until the proxy has carried `more` bytes beyond `from`.
async fn progress_past(proxy: &Proxy, from: u64, more: u64) -> anyhow::Result<u64> {
    eventually(Duration::from_secs(120), "upload progress", || async {
        Ok(proxy.upstream_bytes() >= from + more)
    })
    .await?;
    Ok(proxy.upstream_bytes())
}

/// The recording's single media record, once stored.
async fn stored_media(api: &Api, within: Duration) -> anyhow::Result<serde_json::Value> {
    eventually(within, "the recording verified and stored", || async {
        let feed = api.feed().await?;
        Ok(feed
            .iter()
            .any(|r| r["kind"] == "media" && r["media_state"] == "stored"))
    })
    .await?;
    let media: Vec<_> = api
        .feed()
        .await?
        .into_iter()
        .filter(|r| r["kind"] == "media")
        .collect();
    anyhow::ensure!(
        media.len() == 1,
        "{} media records in the feed",
        media.len()
    );
    Ok(media[0].clone())
}

/// The hub stored exactly the original bytes, once, and keeps no partials.
fn check_store(hub_dir: &std::path::Path, sha: &str) -> anyhow::Result<()> {
    let blobs = files_under(&hub_dir.join("blobs"));
    anyhow::ensure!(blobs.len() == 1, "{} blobs stored", blobs.len());
    anyhow::ensure!(
        sha256_file(&blobs[0])? == sha,
        "the stored blob is not the original"
    );
    anyhow::ensure!(
        files_under(&hub_dir.join("partials")).is_empty(),
        "partials left behind"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1gib_recording_arrives_once_though_its_agent_is_killed_10_times_mid_upload(
) -> anyhow::Result<()> {
    let dir = test_dir("media-agent-kill")?;
    let mut cfg = hub_config(dir.path(), None)?;
    let proxy = behind_proxy(&mut cfg)?;
    let hub_dir = cfg.data_dir.clone();
    let hub = Hub::start(cfg).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let acfg = agent_config(
        dir.path(),
        &unique("field-big"),
        &hub.mqtt_url,
        &hub.public_key,
    );
    let sha = spool_random(&acfg.spool_dir, "20261123_090000_0001.mp4", GIB, 11)?;
    let toml = dir.path().join("agent.toml");
    write_agent_toml(&acfg, &toml)?;
    let log = dir.path().join("agent.log");
    let args = ["run", "--config", toml.to_str().unwrap_or_default()];

    let mut seen = 0;
    for kill in 0..10 {
        let mut agent = Proc::start(AGENT, &args, &log)?;
        seen = progress_past(&proxy, seen, fastrand::u64(20 * MIB..70 * MIB))
            .await
            .map_err(|e| anyhow::anyhow!("kill {kill}: {e}\n{}", agent.log_tail(15)))?;
        agent.kill9();
        let feed = api.feed().await?;
        assert!(
            feed.iter().all(|r| r["media_state"] != "stored"),
            "kill {kill} came after the upload finished: it interrupted nothing"
        );
    }
    let mut agent = Proc::start(AGENT, &args, &log)?;
    let resumed_at = proxy.upstream_bytes();
    let record = stored_media(&api, Duration::from_secs(180))
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", agent.log_tail(20)))?;
    // SPEC.md guarantee 7: the agent streams; its memory does not grow with the file.
    let streamed = proxy.upstream_bytes() - resumed_at;
    let peak = agent.peak_rss()?;
    eprintln!("the last agent run sent {streamed} bytes with a peak RSS of {peak} bytes");
    assert!(
        streamed > 100 * MIB,
        "the last run sent only {streamed} bytes: too little to judge memory"
    );
    assert!(
        peak < 64 * MIB,
        "agent peak RSS {peak} bytes while sending {streamed}"
    );
    assert_eq!(record["sha256"], sha.as_str());
    check_store(&hub_dir, &sha)?;
    let sent = proxy.upstream_bytes();
    eprintln!("{sent} bytes sent for a {GIB}-byte recording over 11 agent runs");
    assert!(
        (sent as f64) < 1.5 * GIB as f64,
        "{sent} bytes sent for {GIB}: uploads did not resume"
    );
    // The agent lets go of its copy once receipted.
    let copy = acfg.data_dir.join("media").join(&sha);
    eventually(
        Duration::from_secs(20),
        "the agent releasing its copy",
        || async { Ok(!copy.exists()) },
    )
    .await?;
    agent.terminate(Duration::from_secs(10))?;
    hub.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1gib_recording_arrives_once_though_its_hub_is_restarted_10_times_mid_upload(
) -> anyhow::Result<()> {
    let dir = test_dir("media-hub-restart")?;
    let mut hub_cfg = hub_config(dir.path(), None)?;
    let proxy = behind_proxy(&mut hub_cfg)?;
    let hub_toml = dir.path().join("hub.toml");
    write_hub_toml(&hub_cfg, &hub_toml)?;
    let log = dir.path().join("hub.log");
    let hub_args = ["serve", "--config", hub_toml.to_str().unwrap_or_default()];
    let api = Api::new(
        hub_cfg.http.listen,
        hub_cfg.http.token.as_deref().unwrap_or_default(),
    );
    let healthy = || async {
        Ok(api
            .get("/healthz", false)
            .await
            .is_ok_and(|(s, _)| s == 200))
    };
    let mut hub = Proc::start(HUB, &hub_args, &log)?;
    eventually(Duration::from_secs(20), "the hub to answer", healthy).await?;
    let hub_key = evsync_protocol::signing::PublicKey::from_base64(&std::fs::read_to_string(
        hub_cfg.data_dir.join("hub.pub"),
    )?)?;
    let acfg = agent_config(
        dir.path(),
        &unique("field-big"),
        &format!("mqtt://{}", hub_cfg.mqtt.listen),
        &hub_key,
    );
    let sha = spool_random(&acfg.spool_dir, "20261123_100000_0002.mp4", GIB, 12)?;
    let agent = Agent::start(acfg).await?;

    let mut seen = 0;
    for restart in 0..10 {
        seen = progress_past(&proxy, seen, fastrand::u64(20 * MIB..70 * MIB))
            .await
            .map_err(|e| anyhow::anyhow!("restart {restart}: {e}\n{}", hub.log_tail(15)))?;
        hub.kill9();
        tokio::time::sleep(Duration::from_millis(fastrand::u64(50..300))).await;
        hub = Proc::start(HUB, &hub_args, &log)?;
        eventually(
            Duration::from_secs(20),
            "the restarted hub to answer",
            healthy,
        )
        .await
        .map_err(|e| anyhow::anyhow!("restart {restart}: {e}\n{}", hub.log_tail(15)))?;
        let feed = api.feed().await?;
        assert!(
            feed.iter().all(|r| r["media_state"] != "stored"),
            "restart {restart} came after the upload finished: it interrupted nothing"
        );
    }
    let record = stored_media(&api, Duration::from_secs(180))
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", hub.log_tail(20)))?;
    assert_eq!(record["sha256"], sha.as_str());
    check_store(&hub_cfg.data_dir, &sha)?;
    let sent = proxy.upstream_bytes();
    eprintln!("{sent} bytes sent for a {GIB}-byte recording across 10 hub restarts");
    assert!(
        (sent as f64) < 1.5 * GIB as f64,
        "{sent} bytes sent for {GIB}: uploads did not resume"
    );
    eventually(
        Duration::from_secs(20),
        "the media receipt at the agent",
        || async { Ok(agent.media_backlog()?.files == 0) },
    )
    .await?;
    agent.shutdown().await?;
    hub.terminate(Duration::from_secs(10))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_arrives_once_though_the_network_is_cut_repeatedly() -> anyhow::Result<()> {
    let dir = test_dir("media-net-cut")?;
    let mut cfg = hub_config(dir.path(), None)?;
    let proxy = behind_proxy(&mut cfg)?;
    let hub_dir = cfg.data_dir.clone();
    let hub = Hub::start(cfg).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let acfg = agent_config(
        dir.path(),
        &unique("field-cut"),
        &hub.mqtt_url,
        &hub.public_key,
    );
    let size = 256 * MIB;
    let sha = spool_random(&acfg.spool_dir, "VID_0004.mp4", size, 13)?;
    let agent = Agent::start(acfg).await?;
    let mut seen = 0;
    for _ in 0..6 {
        seen = progress_past(&proxy, seen, fastrand::u64(10 * MIB..30 * MIB)).await?;
        proxy.cut();
    }
    stored_media(&api, Duration::from_secs(120)).await?;
    check_store(&hub_dir, &sha)?;
    let sent = proxy.upstream_bytes();
    assert!(
        (sent as f64) < 1.5 * size as f64,
        "{sent} bytes sent for {size}"
    );
    agent.shutdown().await?;
    hub.shutdown().await
}

//! Issue 5 item 6 (operations): `evsync-hub check-config` reports every
//! problem of a configuration at once, naming each field, and passes the
//! example; the example systemd units start the binaries with arguments
//! they accept; a hub told to stop with SIGTERM while a platform holds an
//! event stream open and agents keep sending finishes what it is doing,
//! exits 0, and has lost nothing (every receipted record is in the feed).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use evsync_e2e::*;

const HUB: &str = env!("CARGO_BIN_EXE_e2e-hub");
const AGENT: &str = env!("CARGO_BIN_EXE_e2e-agent");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

#[test]
fn check_config_passes_the_example_and_names_every_problem_of_a_bad_file_at_once(
) -> anyhow::Result<()> {
    let out = Command::new(HUB)
        .args(["check-config", "--config"])
        .arg(repo("config/hub.example.toml"))
        .env_remove("EVSYNC_HUB_CONFIG")
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok (hub_id hub-1"));

    let dir = test_dir("check-config")?;
    let bad = dir.path().join("hub.toml");
    std::fs::write(
        &bad,
        "hub_id = \"bad/id\"\n[http]\nlisten = \"127.0.0.1:8480\"\ntoken = \"short\"\n[media]\nmax_mismatches = 0\n[fleet]\noffline_after_secs = 0\n",
    )?;
    let out = Command::new(HUB)
        .args(["check-config", "--config"])
        .arg(&bad)
        .env("EVSYNC_HUB_HTTP_LISTEN", "nowhere")
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "5 problem(s)",
        "EVSYNC_HUB_HTTP_LISTEN = \"nowhere\": expected host:port",
        "hub_id: ",
        "media.max_mismatches = 0: expected a positive number",
        "fleet.offline_after_secs = 0: expected a positive number",
        "http.token is 5 characters: expected at least 16",
    ] {
        assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    }
    // Two bad sections of the file are both named, not only the first.
    std::fs::write(&bad, "[http]\nlisten = 3\n[fleet]\nofline_after_secs = 5\n")?;
    let out = Command::new(HUB)
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[http]") && err.contains("[fleet]") && err.contains("ofline_after_secs"),
        "{err}"
    );
    Ok(())
}

#[test]
fn the_example_systemd_units_start_the_binaries_with_arguments_they_accept() -> anyhow::Result<()> {
    for (unit, exe, binary) in [
        (
            "config/systemd/evsync-hub.service",
            HUB,
            "/usr/local/bin/evsync-hub",
        ),
        (
            "config/systemd/evsync-agent.service",
            AGENT,
            "/usr/local/bin/evsync-agent",
        ),
    ] {
        let text = std::fs::read_to_string(repo(unit))?;
        let lines: Vec<&str> = text
            .lines()
            .filter_map(|l| {
                l.strip_prefix("ExecStart=")
                    .or_else(|| l.strip_prefix("ExecStartPre="))
            })
            .collect();
        assert!(!lines.is_empty(), "{unit} has no ExecStart");
        for line in lines {
            let args: Vec<&str> = line
                .strip_prefix(binary)
                .ok_or_else(|| anyhow::anyhow!("{unit}: {line} does not start {binary}"))?
                .split_whitespace()
                .collect();
            // --help after the arguments: clap parses them all first, so a
            // flag or subcommand the binary does not know fails here.
            let out = Command::new(exe).args(&args).arg("--help").output()?;
            assert!(
                out.status.success(),
                "{unit}: {line}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_an_event_stream_open_and_agents_sending_stops_cleanly_and_loses_nothing(
) -> anyhow::Result<()> {
    let dir = test_dir("graceful")?;
    let cfg = hub_config(dir.path(), None)?;
    let toml = dir.path().join("hub.toml");
    write_hub_toml(&cfg, &toml)?;
    let hub_args = ["serve", "--config", toml.to_str().unwrap_or_default()];
    let mut hub = Proc::start(HUB, &hub_args, &dir.path().join("hub.log"))?;
    let token = cfg.http.token.clone().unwrap_or_default();
    let api = Api::new(cfg.http.listen, &token);
    eventually(Duration::from_secs(15), "the hub answering", || async {
        Ok(api
            .get("/healthz", false)
            .await
            .is_ok_and(|(s, _)| s == 200))
    })
    .await?;
    let hub_key = std::fs::read_to_string(dir.path().join("hub/hub.pub"))?;
    let hub_key = evsync_protocol::signing::PublicKey::from_base64(hub_key.trim())?;
    let mqtt = format!("mqtt://{}", cfg.mqtt.listen);
    let id = unique("field-graceful");
    let acfg = agent_config(dir.path(), &id, &mqtt, &hub_key);
    drop_events(&acfg.spool_dir, 0, 3000)?;
    let agent = evsync_agent::agent::Agent::start(acfg.clone()).await?;

    // A platform holding the event stream open.
    let url = format!("http://{}/api/v1/events", cfg.http.listen);
    let auth = format!("Bearer {token}");
    let stream = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
        use std::io::Read;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        let mut resp = agent.get(&url).header("Authorization", auth).call()?;
        let mut body = Vec::new();
        resp.body_mut().as_reader().read_to_end(&mut body)?;
        Ok(body.len())
    });
    eventually(Duration::from_secs(30), "records flowing", || async {
        Ok(api.get("/healthz", false).await?.1["records"]
            .as_i64()
            .unwrap_or(0)
            > 200)
    })
    .await?;

    hub.terminate(Duration::from_secs(20))?;
    let streamed = tokio::time::timeout(Duration::from_secs(10), stream).await???;
    assert!(
        streamed > 0,
        "the stream carried events before it was closed"
    );

    // Restarted, the agent's remaining records arrive, each once.
    let mut hub = Proc::start(HUB, &hub_args, &dir.path().join("hub.log"))?;
    eventually(
        Duration::from_secs(60),
        "all 3000 records in the feed",
        || async {
            Ok(api
                .get("/healthz", false)
                .await
                .is_ok_and(|(_, v)| v["records"] == 3000))
        },
    )
    .await?;
    let feed = api.feed().await?;
    check_chains(&feed)?;
    let distinct: std::collections::HashSet<String> = notes(&feed).into_iter().collect();
    assert_eq!(
        (feed.len(), distinct.len()),
        (3000, 3000),
        "each event file once"
    );
    agent.shutdown().await?;
    hub.terminate(Duration::from_secs(20))
}

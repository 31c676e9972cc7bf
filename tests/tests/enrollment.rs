//! SPEC.md guarantees 1 and 5 for unknown and revoked devices: an unknown
//! device is held as pending until an operator approves it with
//! `evsync-hub devices approve`, and a revoked one is refused; in both cases
//! the agent keeps every record, and nothing is lost once it is approved.

use std::time::Duration;

use evsync_agent::agent::Agent;
use evsync_e2e::*;
use evsync_hub::server::Hub;

const HUB: &str = env!("CARGO_BIN_EXE_e2e-hub");

fn hub_cli(args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new(HUB).args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "evsync-hub {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_device_waits_as_pending_until_approved_and_a_revoked_one_is_refused_without_loss(
) -> anyhow::Result<()> {
    let dir = test_dir("enrollment")?;
    let mut cfg = hub_config(dir.path(), None)?;
    cfg.auto_approve = false;
    let toml = dir.path().join("hub.toml");
    write_hub_toml(&cfg, &toml)?;
    let config = toml.to_str().unwrap_or_default().to_owned();
    let hub = Hub::start(cfg).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let id = unique("field-new");
    let acfg = agent_config(dir.path(), &id, &hub.mqtt_url, &hub.public_key);
    drop_events(&acfg.spool_dir, 0, 20)?;
    let spool = acfg.spool_dir.clone();
    let agent = Agent::start(acfg).await?;

    eventually(
        Duration::from_secs(10),
        "the hub to refuse records of the pending device",
        || async {
            Ok(api
                .metric("evsync_hub_rejected_total{reason=\"pending_enrollment\"}")
                .await?
                >= 20.0)
        },
    )
    .await?;
    let list = hub_cli(&["devices", "list", "--json", "--config", &config])?;
    let devices: serde_json::Value = serde_json::from_str(&list)?;
    let listed = devices
        .as_array()
        .and_then(|d| d.iter().find(|d| d["device_id"] == id.as_str()));
    assert_eq!(
        listed.map(|d| d["state"].clone()),
        Some("pending".into()),
        "{list}"
    );
    assert_eq!(
        agent.backlog()?.records,
        20,
        "the agent keeps what the hub refused"
    );
    assert!(api.feed().await?.is_empty());

    let unknown = std::process::Command::new(HUB)
        .args(["devices", "approve", "no-such-device", "--config", &config])
        .output()?;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no device \"no-such-device\""));

    hub_cli(&["devices", "approve", &id, "--config", &config])?;
    eventually(
        Duration::from_secs(20),
        "the held records to arrive after approval",
        || async { Ok(agent.backlog()?.records == 0 && hub.record_count().await? == 20) },
    )
    .await?;
    check_chains(&api.feed().await?)?;

    hub_cli(&["devices", "revoke", &id, "--config", &config])?;
    drop_events(&spool, 20, 5)?;
    eventually(
        Duration::from_secs(10),
        "records of the revoked device refused",
        || async {
            Ok(api
                .metric("evsync_hub_rejected_total{reason=\"revoked\"}")
                .await?
                >= 5.0)
        },
    )
    .await?;
    assert_eq!(
        agent.backlog()?.records,
        5,
        "the agent keeps what a revoked device could not deliver"
    );
    assert_eq!(hub.record_count().await?, 20);
    agent.shutdown().await?;
    hub.shutdown().await
}

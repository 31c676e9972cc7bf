//! SPEC.md guarantee 1, "Nothing is lost", with guarantee 2 under crashes:
//! the agent killed with SIGKILL at random points while it syncs, and the
//! hub (with its embedded broker) killed and restarted while agents sync.
//! Afterwards every spool file is in the feed exactly once and every
//! source's chain is unbroken, with no alert raised.

use std::collections::HashSet;
use std::time::Duration;

use evsync_agent::agent::Agent;
use evsync_e2e::*;
use evsync_hub::server::Hub;

const AGENT: &str = env!("CARGO_BIN_EXE_e2e-agent");
const HUB: &str = env!("CARGO_BIN_EXE_e2e-hub");

fn expected_notes(n: usize) -> HashSet<String> {
    (0..n).map(|i| format!("file-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_agent_22_times_while_it_syncs_loses_and_duplicates_nothing(
) -> anyhow::Result<()> {
    let dir = test_dir("agent-kill")?;
    let hub = Hub::start(hub_config(dir.path(), None)?).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let id = unique("field-kill");
    let cfg = agent_config(dir.path(), &id, &hub.mqtt_url, &hub.public_key);
    let toml = dir.path().join("agent.toml");
    write_agent_toml(&cfg, &toml)?;
    let log = dir.path().join("agent.log");
    let args = ["run", "--config", toml.to_str().unwrap_or_default()];
    let mut events = 0;
    let mut recordings = 0;
    let mut interrupted = 0;
    for round in 0..22 {
        drop_events(&cfg.spool_dir, events, 150)?;
        events += 150;
        if round % 3 == 0 {
            // A recording of ~2-5 MB, so some kills land while it is being copied and hashed.
            let name = format!("VID_{round:04}.mp4");
            let part = cfg.spool_dir.join(format!("{name}.part"));
            evsync_hub::demo::write_mp4(&part, 30 + round, 3000, round as u8)?;
            std::fs::rename(&part, cfg.spool_dir.join(name))?;
            recordings += 1;
        }
        let mut agent = Proc::start(AGENT, &args, &log)?;
        tokio::time::sleep(Duration::from_millis(fastrand::u64(100..450))).await;
        assert!(
            agent.running(),
            "agent exited on its own in round {round}; see {}",
            log.display()
        );
        agent.kill9();
        // Did this kill interrupt work? Files still in the spool or records still unreceipted.
        let waiting_files = std::fs::read_dir(&cfg.spool_dir)?
            .filter_map(Result::ok)
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .count();
        let buffer = evsync_agent::buffer::Buffer::open(&cfg.data_dir.join("buffer.sqlite"))?;
        if waiting_files > 0 || buffer.backlog()?.records > 0 {
            interrupted += 1;
        }
    }
    let total = events + recordings;
    eprintln!("{interrupted} of 22 kills landed while the agent had work");
    assert!(
        interrupted >= 5,
        "only {interrupted} of 22 kills landed while the agent had work"
    );
    assert!(
        hub.record_count().await? > 0,
        "nothing was delivered between the kills"
    );
    let started = chrono::Utc::now();
    let mut agent = Proc::start(AGENT, &args, &log)?;
    eventually(
        Duration::from_secs(20),
        "the restarted agent's status at the hub",
        || async {
            let devices = api.get_ok("/api/v1/devices").await?;
            let at = devices["devices"]
                .as_array()
                .and_then(|d| d.iter().find(|d| d["device_id"] == id.as_str()))
                .and_then(|d| d["status"]["at"].as_str())
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            Ok(at.is_some_and(|t| t > started))
        },
    )
    .await?;
    eventually(
        Duration::from_secs(90),
        "every record at the hub",
        || async { Ok(hub.record_count().await? as usize >= total) },
    )
    .await?;
    eventually(Duration::from_secs(30), "the spool emptied", || async {
        Ok(std::fs::read_dir(&cfg.spool_dir)?
            .filter_map(Result::ok)
            .all(|e| e.file_name().to_string_lossy().starts_with('.')))
    })
    .await?;
    let buffer_path = cfg.data_dir.join("buffer.sqlite");
    eventually(
        Duration::from_secs(30),
        "every receipt applied by the agent",
        || async {
            Ok(evsync_agent::buffer::Buffer::open(&buffer_path)?
                .backlog()?
                .records
                == 0)
        },
    )
    .await?;

    let feed = api.feed().await?;
    assert_eq!(
        feed.len(),
        total,
        "feed has {} records, expected {total}",
        feed.len()
    );
    let chains = check_chains(&feed)?;
    let records = &chains[&id];
    let seen: Vec<String> = notes(records);
    assert_eq!(seen.len(), events, "event records");
    assert_eq!(
        seen.iter().cloned().collect::<HashSet<_>>(),
        expected_notes(events)
    );
    let media = records.iter().filter(|r| r["kind"] == "media").count();
    assert_eq!(media, recordings);
    // Every recording reaches the hub verified, after which the agent lets go
    // of its copies; no half-made copy is left behind by the kills.
    eventually(
        Duration::from_secs(60),
        "every recording stored at the hub",
        || async {
            let feed = api.feed().await?;
            Ok(feed
                .iter()
                .filter(|r| r["kind"] == "media")
                .all(|r| r["media_state"] == "stored"))
        },
    )
    .await?;
    let media_dir = cfg.data_dir.join("media");
    eventually(
        Duration::from_secs(30),
        "the agent releasing its copies",
        || async { Ok(std::fs::read_dir(&media_dir)?.next().is_none()) },
    )
    .await?;
    // The agent stays up until here: it lets go of a copy only when the
    // hub's media receipt reaches it, which may come after the hub stored it.
    agent.terminate(Duration::from_secs(10))?;
    let alerts = api.get_ok("/api/v1/alerts").await?;
    assert_eq!(
        alerts["alerts"].as_array().map(Vec::len),
        Some(0),
        "alerts: {alerts}"
    );
    let buffer = evsync_agent::buffer::Buffer::open(&cfg.data_dir.join("buffer.sqlite"))?;
    assert_eq!(
        buffer.backlog()?.records,
        0,
        "records left unreceipted in the agent"
    );
    hub.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_the_hub_and_its_broker_while_agents_sync_loses_and_duplicates_nothing(
) -> anyhow::Result<()> {
    let dir = test_dir("hub-restart")?;
    let hub_cfg = hub_config(dir.path(), None)?;
    let hub_toml = dir.path().join("hub.toml");
    write_hub_toml(&hub_cfg, &hub_toml)?;
    let log = dir.path().join("hub.log");
    let hub_args = ["serve", "--config", hub_toml.to_str().unwrap_or_default()];
    let token = hub_cfg.http.token.clone().unwrap_or_default();
    let api = Api::new(hub_cfg.http.listen, &token);
    let mut hub = Proc::start(HUB, &hub_args, &log)?;
    eventually(Duration::from_secs(20), "the hub to answer", || async {
        Ok(api
            .get("/healthz", false)
            .await
            .is_ok_and(|(s, _)| s == 200))
    })
    .await?;
    let key_text = std::fs::read_to_string(hub_cfg.data_dir.join("hub.pub"))?;
    let hub_key = evsync_protocol::signing::PublicKey::from_base64(&key_text)?;
    let mqtt = format!("mqtt://{}", hub_cfg.mqtt.listen);
    let mut agents = Vec::new();
    let mut spools = Vec::new();
    for n in 0..2 {
        let id = unique(&format!("field-r{n}"));
        let cfg = agent_config(dir.path(), &id, &mqtt, &hub_key);
        spools.push(cfg.spool_dir.clone());
        agents.push(Agent::start(cfg).await?);
    }
    let mut per_agent = 0;
    for round in 0..6 {
        for spool in &spools {
            drop_events(spool, per_agent, 150)?;
        }
        per_agent += 150;
        tokio::time::sleep(Duration::from_millis(fastrand::u64(100..600))).await;
        hub.kill9();
        tokio::time::sleep(Duration::from_millis(fastrand::u64(50..400))).await;
        hub = Proc::start(HUB, &hub_args, &log)?;
        eventually(
            Duration::from_secs(20),
            "the restarted hub to answer",
            || async {
                Ok(api
                    .get("/healthz", false)
                    .await
                    .is_ok_and(|(s, _)| s == 200))
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("round {round}: {e}\n{}", hub.log_tail(10)))?;
    }
    let total = per_agent * 2;
    let (_, health) = api.get("/healthz", false).await?;
    let delivered = health["records"].as_u64().unwrap_or(0) as usize;
    assert!(
        delivered > 0,
        "nothing was delivered while the hub was being restarted"
    );
    eventually(
        Duration::from_secs(90),
        "every record at the hub",
        || async {
            let (status, health) = api
                .get("/healthz", false)
                .await
                .unwrap_or((0, serde_json::Value::Null));
            Ok(status == 200 && health["records"].as_u64() == Some(total as u64))
        },
    )
    .await?;
    for a in &agents {
        eventually(Duration::from_secs(30), "agent buffers empty", || async {
            Ok(a.backlog()?.records == 0)
        })
        .await?;
    }
    let feed = api.feed().await?;
    assert_eq!(feed.len(), total);
    let chains = check_chains(&feed)?;
    assert_eq!(chains.len(), 2);
    for records in chains.values() {
        assert_eq!(
            notes(records).into_iter().collect::<HashSet<_>>(),
            expected_notes(per_agent)
        );
    }
    let alerts = api.get_ok("/api/v1/alerts").await?;
    assert_eq!(
        alerts["alerts"].as_array().map(Vec::len),
        Some(0),
        "alerts: {alerts}"
    );
    for a in agents {
        a.shutdown().await?;
    }
    hub.terminate(Duration::from_secs(10))
}

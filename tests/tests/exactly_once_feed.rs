//! SPEC.md guarantee 2, "Exactly once in the feed", and the record path of
//! guarantee 1: records from several agents reach the feed exactly once,
//! each verifiable on its own, over the embedded broker and over Mosquitto,
//! and a consumer paging while agents write sees every record once.

use std::collections::HashSet;
use std::time::Duration;

use evsync_agent::agent::Agent;
use evsync_e2e::*;
use evsync_hub::server::Hub;

async fn two_agents_deliver_1000_records(external: Option<String>) -> anyhow::Result<()> {
    let dir = test_dir("exactly-once")?;
    let hub_cfg = hub_config(dir.path(), external.clone())?;
    let hub_client = format!("evsync-hub-{}", hub_cfg.hub_id);
    let hub = Hub::start(hub_cfg).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let mut agents = Vec::new();
    for n in 0..2 {
        let id = unique(&format!("field-{n}"));
        let mut cfg = agent_config(dir.path(), &id, &hub.mqtt_url, &hub.public_key);
        if n == 1 {
            // The largest batch the protocol allows: answered by several receipts.
            cfg.uplink.batch_records = evsync_protocol::batch::MAX_RECORDS;
        }
        drop_events(&cfg.spool_dir, 0, 500)?;
        agents.push((id, Agent::start(cfg).await?));
    }
    eventually(
        Duration::from_secs(60),
        "1000 records in the feed",
        || async { Ok(hub.record_count().await? >= 1000) },
    )
    .await?;
    for (_, a) in &agents {
        eventually(Duration::from_secs(30), "empty agent buffers", || async {
            Ok(a.backlog()?.records == 0)
        })
        .await?;
    }
    let feed = api.feed().await?;
    assert_eq!(
        feed.len(),
        1000,
        "feed holds {} records, expected 1000",
        feed.len()
    );
    let chains = check_chains(&feed)?;
    for (id, _) in &agents {
        let records = &chains[id];
        assert_eq!(records.len(), 500);
        let notes: HashSet<String> = notes(records).into_iter().collect();
        assert_eq!(notes.len(), 500, "{id}: every spool file appears once");
    }
    let alerts = api.get_ok("/api/v1/alerts").await?;
    assert_eq!(
        alerts["alerts"].as_array().map(Vec::len),
        Some(0),
        "unexpected alerts: {alerts}"
    );
    if external.is_none() {
        // On a shared broker other clients' messages may be refused; on our own, nothing is.
        assert_eq!(api.metric("evsync_hub_rejected_total").await?, 0.0);
    }
    let mut clients = vec![hub_client];
    let mut retained = Vec::new();
    for (id, a) in agents {
        a.shutdown().await?;
        retained.push(format!("evsync/v1/{id}/announce"));
        retained.push(format!("evsync/v1/{id}/status"));
        clients.push(id);
    }
    hub.shutdown().await?;
    if let Some(url) = external {
        clean_shared_broker(&url, &clients, &retained).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_deliver_1000_records_exactly_once_over_the_embedded_broker(
) -> anyhow::Result<()> {
    two_agents_deliver_1000_records(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_deliver_1000_records_exactly_once_over_mosquitto() -> anyhow::Result<()> {
    let Some(url) = mosquitto_url() else {
        return Ok(());
    };
    two_agents_deliver_1000_records(Some(url)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_paging_while_agents_write_sees_every_record_exactly_once() -> anyhow::Result<()>
{
    let dir = test_dir("paging")?;
    let hub = Hub::start(hub_config(dir.path(), None)?).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let id = unique("field-pager");
    let cfg = agent_config(dir.path(), &id, &hub.mqtt_url, &hub.public_key);
    let spool = cfg.spool_dir.clone();
    let agent = Agent::start(cfg).await?;
    // The field application keeps writing while the platform pages.
    let writer = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        for round in 0..20 {
            drop_events(&spool, round * 30, 30)?;
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    });
    let mut seen = Vec::new();
    let mut cursor = String::new();
    // Proof that paging and writing overlapped: the consumer caught up (an empty
    // page) while the writer was still writing, and had records before it finished.
    let mut caught_up_during_writes = false;
    let mut seen_when_writer_done = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < 600 {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "only {} of 600 records seen",
            seen.len()
        );
        if seen_when_writer_done.is_none() && writer.is_finished() {
            seen_when_writer_done = Some(seen.len());
        }
        let (records, next) = api.page(&cursor, 7).await?;
        if records.is_empty() {
            caught_up_during_writes |= seen_when_writer_done.is_none() && !seen.is_empty();
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        seen.extend(records);
        cursor = next;
    }
    writer.await??;
    assert!(
        caught_up_during_writes,
        "the consumer never caught up with the writer"
    );
    assert!(
        seen_when_writer_done.is_some_and(|n| n > 0 && n < 600),
        "paging did not overlap writing: {seen_when_writer_done:?} records seen when the writer finished"
    );
    let (rest, _) = api.page(&cursor, 100).await?;
    assert!(rest.is_empty(), "records beyond 600 appeared: {rest:?}");
    assert_eq!(seen.len(), 600);
    check_chains(&seen)?;
    let notes: HashSet<String> = notes(&seen).into_iter().collect();
    assert_eq!(notes.len(), 600);
    agent.shutdown().await?;
    hub.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_refuses_requests_without_a_valid_token() -> anyhow::Result<()> {
    let dir = test_dir("auth")?;
    let hub = Hub::start(hub_config(dir.path(), None)?).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let (status, body) = api.get("/api/v1/records", false).await?;
    assert_eq!(status, 401);
    assert!(body["error"]
        .as_str()
        .unwrap_or_default()
        .contains("Bearer"));
    let wrong = Api::new(hub.http_addr, "not-the-token-at-all");
    assert_eq!(wrong.get("/api/v1/records", true).await?.0, 401);
    assert_eq!(api.get("/api/v1/records", true).await?.0, 200);
    assert_eq!(api.get("/api/v1/records?after=bogus", true).await?.0, 400);
    assert_eq!(api.get("/healthz", false).await?.0, 200);
    assert_eq!(api.get("/metrics", false).await?.0, 200);
    hub.shutdown().await
}

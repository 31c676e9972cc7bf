//! Issue 8, "several hubs, one broker": three hub processes consume one
//! Mosquitto through a shared subscription and keep one PostgreSQL store.
//! During a load of 10,000 records from 20 agents one hub is killed with
//! SIGKILL and restarted again and again, and a third joins late. (The
//! same at 100,000 records and 1,000 agents, with release builds, is
//! `bench/load --kill-every 5`: it checks the feed the same way.) Afterwards every
//! record is in the feed exactly once, each device's chain unbroken, and
//! the feed read page by page from the three hubs in turn (one cursor
//! handed between them) holds each record once.
//!
//! Needs both `EVSYNC_TEST_MOSQUITTO` and `EVSYNC_TEST_POSTGRES` (`.ci/run`
//! sets them on this machine); skipped with the reason printed otherwise.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use evsync_agent::agent::Agent;
use evsync_agent::buffer::Buffer;
use evsync_agent::records;
use evsync_e2e::postgres::{postgres_url, PgSchema};
use evsync_e2e::*;
use evsync_hub::config::HubConfig;
use evsync_protocol::record::{Event, Kind};

const HUB: &str = env!("CARGO_BIN_EXE_e2e-hub");
const AGENTS: usize = 20;
const PER_AGENT: usize = 500;

/// A hub process of the group and how to reach it.
struct Instance {
    cfg: HubConfig,
    toml: std::path::PathBuf,
    log: std::path::PathBuf,
    proc: Option<Proc>,
}

impl Instance {
    fn new(
        dir: &Path,
        n: usize,
        mqtt: &str,
        pg: &str,
        schema: &str,
        group: &str,
    ) -> anyhow::Result<Self> {
        let root = dir.join(format!("hub{n}"));
        std::fs::create_dir_all(&root)?;
        let mut cfg = hub_config(&root, Some(mqtt.to_owned()))?;
        cfg.store.url = Some(pg.to_owned());
        cfg.store.schema = Some(schema.to_owned());
        cfg.mqtt.share_group = Some(group.to_owned());
        let toml = root.join("hub.toml");
        write_hub_toml(&cfg, &toml)?;
        Ok(Self {
            log: root.join("hub.log"),
            cfg,
            toml,
            proc: None,
        })
    }

    fn api(&self) -> Api {
        Api::new(
            self.cfg.http.listen,
            self.cfg.http.token.as_deref().unwrap_or_default(),
        )
    }

    async fn start(&mut self) -> anyhow::Result<()> {
        let args = ["serve", "--config", self.toml.to_str().unwrap_or_default()];
        self.proc = Some(Proc::start(HUB, &args, &self.log)?);
        let api = self.api();
        // A hub starting while others ingest waits its turn for the store's
        // writer lock (it migrates and writes its thresholds first).
        eventually(Duration::from_secs(90), "a hub to answer", || async {
            Ok(api
                .get("/healthz", false)
                .await
                .is_ok_and(|(s, _)| s == 200))
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", self.log_tail()))
    }

    fn log_tail(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hubs_on_one_broker_and_one_database_keep_every_record_once_while_one_is_killed_repeatedly(
) -> anyhow::Result<()> {
    let (Some(mqtt), Some(pg)) = (mosquitto_url(), postgres_url()) else {
        return Ok(());
    };
    let dir = test_dir("multi-hub")?;
    let schema = PgSchema::new(&pg, "evsync_e2e_multi_hub");
    let group = unique("evsync-hubs");
    let mut hubs = (0..3)
        .map(|n| Instance::new(dir.path(), n, &mqtt, &pg, &schema.name, &group))
        .collect::<anyhow::Result<Vec<_>>>()?;

    // The first hub makes the key all of them sign receipts with.
    hubs[0].start().await?;
    let key_file = hubs[0].cfg.data_dir.join("hub.key");
    for h in &hubs[1..] {
        std::fs::create_dir_all(&h.cfg.data_dir)?;
        std::fs::copy(&key_file, h.cfg.data_dir.join("hub.key"))?;
    }
    hubs[1].start().await?;
    let hub_key = evsync_protocol::signing::PublicKey::from_base64(&std::fs::read_to_string(
        hubs[0].cfg.data_dir.join("hub.pub"),
    )?)?;

    // Agents whose buffers already hold their shift's signed records.
    let mut cfgs = Vec::new();
    for a in 0..AGENTS {
        let id = unique(&format!("field-mh{a:02}"));
        let cfg = agent_config(dir.path(), &id, &mqtt, &hub_key);
        std::fs::create_dir_all(&cfg.data_dir)?;
        let key = evsync_agent::agent::device_key(&cfg)?;
        let mut buffer = Buffer::open(&cfg.data_dir.join("buffer.sqlite"))?;
        let mut i = 0;
        buffer.append_many(&key, &cfg.device_id, PER_AGENT, |seq, prev| {
            let mut b = records::body(&cfg, Kind::Event, seq, prev, records::now_millis(), None);
            b.event = Some(Event::MarkedImportant {
                note: Some(format!("file-{i}")),
            });
            i += 1;
            b
        })?;
        cfgs.push(cfg);
    }
    let ids: Vec<String> = cfgs.iter().map(|c| c.device_id.clone()).collect();
    let total = AGENTS * PER_AGENT;
    let mut agents = Vec::new();
    for cfg in cfgs {
        agents.push(Agent::start(cfg).await?);
    }
    let unreceipted =
        |agents: &[Agent]| -> anyhow::Result<u64> { agents.iter().map(Agent::unreceipted).sum() };

    // The third hub joins while the load runs; the second is killed and
    // restarted at random moments until the agents are done.
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(800)).await;
    hubs[2].start().await?;
    let mut kills = 0;
    let mut kills_during_load = 0;
    while kills < 6 || unreceipted(&agents)? > 0 {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the load did not finish: {} records unreceipted after {kills} kills",
            unreceipted(&agents)?
        );
        tokio::time::sleep(Duration::from_millis(fastrand::u64(300..1500))).await;
        eprintln!(
            "{:.1} s: {} records unreceipted, {kills} kills",
            started.elapsed().as_secs_f64(),
            unreceipted(&agents)?
        );
        if kills < 6 {
            if unreceipted(&agents)? > 0 {
                kills_during_load += 1;
            }
            if let Some(p) = hubs[1].proc.as_mut() {
                p.kill9();
            }
            kills += 1;
            tokio::time::sleep(Duration::from_millis(fastrand::u64(50..500))).await;
            hubs[1].start().await?;
        }
    }
    eprintln!(
        "{total} records receipted in {:.1} s; the second hub was killed {kills} times, {kills_during_load} of them during the load",
        started.elapsed().as_secs_f64()
    );
    assert!(
        kills_during_load >= 3,
        "only {kills_during_load} kills landed during the load: the load was too short to show anything"
    );

    // The feed, paged from the three hubs in turn with one cursor.
    let apis: Vec<Api> = hubs.iter().map(Instance::api).collect();
    let mut feed = Vec::with_capacity(total);
    let mut cursor = String::new();
    for page in 0.. {
        let (records, next) = apis[page % apis.len()].page(&cursor, 1000).await?;
        if records.is_empty() {
            break;
        }
        feed.extend(records);
        cursor = next;
    }
    assert_eq!(
        feed.len(),
        total,
        "the feed holds {} records, expected {total}",
        feed.len()
    );
    // Each record verified on its own, none twice, each chain 1..=n.
    let chains = check_chains(&feed)?;
    assert_eq!(chains.len(), AGENTS);
    let expected: HashSet<String> = (0..PER_AGENT).map(|i| format!("file-{i}")).collect();
    for id in &ids {
        let records = chains.get(id).map(Vec::as_slice).unwrap_or_default();
        let seen: HashSet<String> = notes(records).into_iter().collect();
        assert_eq!(seen, expected, "{id}: every record once");
    }
    for api in &apis {
        let (_, health) = api.get("/healthz", false).await?;
        assert_eq!(health["records"].as_u64(), Some(total as u64), "{health}");
    }
    let alerts = apis[0].get_ok("/api/v1/alerts").await?;
    assert_eq!(
        alerts["alerts"].as_array().map(Vec::len),
        Some(0),
        "alerts: {alerts}"
    );

    for a in agents {
        a.shutdown().await?;
    }
    let mut clients = Vec::new();
    for h in &mut hubs {
        if let Some(mut p) = h.proc.take() {
            p.terminate(Duration::from_secs(10))?;
        }
        clients.push(format!("evsync-hub-{}", h.cfg.hub_id));
    }
    let retained: Vec<String> = ids
        .iter()
        .flat_map(|id| {
            [
                format!("evsync/v1/{id}/announce"),
                format!("evsync/v1/{id}/status"),
            ]
        })
        .collect();
    clients.extend(ids);
    clean_shared_broker(&mqtt, &clients, &retained).await?;
    drop(schema);
    Ok(())
}

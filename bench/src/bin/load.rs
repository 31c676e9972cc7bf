//! Load generator (run it through `bench/load`): an end-of-shift surge of
//! many agents against several hub processes that share one MQTT broker
//! (a shared subscription) and one PostgreSQL store.
//!
//! Every simulated agent is a real `Agent` in this process, with its own
//! signing key, SQLite buffer and MQTT session; its buffer already holds
//! the shift's signed records when it starts, as when officers dock at the
//! end of a shift. Meanwhile a few live agents record events at a steady
//! rate; their event-to-feed latency (hub `received_at` minus agent
//! `ingest_time`) is the receipt latency under the surge. Optionally one
//! hub is killed with SIGKILL and restarted every few seconds.
//!
//! Prints key=value figures: records/s through the whole path, latency
//! p50/p99, errors (refused records, duplicates the hubs absorbed, agent
//! resends), and checks the feed holds every record exactly once. Side by
//! side, the baseline: a raw TCP copy of the same bytes on loopback.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use evsync_agent::agent::Agent;
use evsync_agent::buffer::Buffer;
use evsync_agent::config::AgentConfig;
use evsync_agent::records;
use evsync_bench::{event, feed_latency_ms, free_port, get_json, percentile};
use evsync_protocol::record::Kind;
use evsync_protocol::signing::PublicKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Options.
#[derive(Debug, Parser)]
struct Opts {
    /// The hub binary to run.
    #[arg(long)]
    hub: String,
    /// Hub processes sharing the ingest.
    #[arg(long, default_value_t = 3)]
    hubs: usize,
    /// Agents in the surge.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Records waiting in each agent's buffer when the surge starts.
    #[arg(long, default_value_t = 100)]
    records: usize,
    /// Agents recording live during the surge (the latency sample).
    #[arg(long, default_value_t = 10)]
    live: usize,
    /// Events per second each live agent records.
    #[arg(long, default_value_t = 5)]
    live_rate: u64,
    /// The external broker (`host:port`), Mosquitto or another MQTT 3.1.1/5 broker.
    #[arg(long, default_value = "127.0.0.1:1883")]
    mqtt: String,
    /// The shared PostgreSQL store; each run gets a schema of its own, dropped after.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    store_url: String,
    /// Kill -9 and restart the second hub every this many seconds (0: never).
    #[arg(long, default_value_t = 0.0)]
    kill_every: f64,
    /// Records per MQTT message.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Messages each agent sends ahead of receipts.
    #[arg(long, default_value_t = 2)]
    window: usize,
    /// Seconds an agent waits for a receipt before sending again.
    #[arg(long, default_value_t = 60)]
    receipt_timeout: u64,
}

/// One hub process of the group, killed when dropped.
struct HubProc {
    child: Option<Child>,
    toml: PathBuf,
    log: PathBuf,
    exe: String,
}

impl HubProc {
    fn start(exe: &str, toml: &Path, log: &Path) -> anyhow::Result<Self> {
        let mut p = Self {
            child: None,
            toml: toml.to_path_buf(),
            log: log.to_path_buf(),
            exe: exe.to_owned(),
        };
        p.spawn()?;
        Ok(p)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        self.child = Some(
            Command::new(&self.exe)
                .args(["serve", "--config"])
                .arg(&self.toml)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {}", self.exe))?,
        );
        Ok(())
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for HubProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The sum over `hubs` of one counter on their `/metrics` (a hub killed
/// and restarted counts from zero again).
fn metric_sum(hubs: &[String], name: &str) -> f64 {
    let sum: f64 = hubs
        .iter()
        .filter_map(|api| {
            ureq::get(&format!("{api}/metrics"))
                .call()
                .ok()?
                .body_mut()
                .read_to_string()
                .ok()
        })
        .flat_map(|text| {
            text.lines()
                .filter(|l| l.starts_with(name))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .collect::<Vec<_>>()
        })
        .sum();
    // An empty sum is -0.0.
    sum + 0.0
}

fn agent_config(dir: &Path, id: &str, mqtt: &str, key: &PublicKey, o: &Opts) -> AgentConfig {
    let mut cfg = AgentConfig::field(id, &dir.join(id), mqtt, key);
    cfg.officer_id = Some("100001".into());
    cfg.unit_code = Some("500112010001".into());
    cfg.uplink.batch_records = o.batch;
    cfg.uplink.max_inflight_batches = o.window;
    cfg.uplink.receipt_timeout_secs = o.receipt_timeout;
    cfg
}

/// Prints the bytes the run's schema takes per record, then drops it (and
/// everything in it).
async fn size_and_drop_schema(
    url: &str,
    schema: &str,
    records: Option<usize>,
) -> anyhow::Result<()> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    if let Some(n) = records.filter(|&n| n > 0) {
        let row = client
            .query_one(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::BIGINT FROM pg_class c
                 JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = $1 AND c.relkind = 'r'",
                &[&schema],
            )
            .await?;
        let bytes: i64 = row.get(0);
        println!("store_bytes_per_record={:.0}", bytes as f64 / n as f64);
    }
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await?;
    Ok(())
}

/// The device ids of a run: the surge's agents and the live ones.
struct Ids {
    load: Vec<String>,
    live: Vec<String>,
}

/// Clears what a run leaves on a shared broker at `addr`: the retained
/// messages on `retained` (an empty retained message removes one) and the
/// persistent sessions of `clients` (each reconnected with a clean session).
async fn clean_broker(addr: &str, clients: &[String], retained: &[String]) -> anyhow::Result<()> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
        .with_context(|| format!("--mqtt {addr}: expected host:port"))?;
    // One session per client id, a few at a time.
    for chunk in clients.chunks(50) {
        let mut jobs = tokio::task::JoinSet::new();
        for id in chunk {
            let mut opts = MqttOptions::new(id.clone(), host.clone(), port);
            opts.set_clean_session(true);
            jobs.spawn(async move {
                let (client, mut events) = AsyncClient::new(opts, 8);
                loop {
                    if let Event::Incoming(Packet::ConnAck(_)) = events.poll().await? {
                        break;
                    }
                }
                client.disconnect().await?;
                let _ = tokio::time::timeout(Duration::from_secs(1), events.poll()).await;
                anyhow::Ok(())
            });
        }
        while let Some(done) = jobs.join_next().await {
            done??;
        }
    }
    // The retained messages, from one client; done when all are acknowledged.
    let mut opts = MqttOptions::new(
        format!("evsync-load-clean-{:08x}", fastrand::u32(..)),
        host,
        port,
    );
    opts.set_clean_session(true);
    let (client, mut events) = AsyncClient::new(opts, 64);
    let wanted = retained.len();
    let acks = tokio::spawn(async move {
        let mut acked = 0;
        while acked < wanted {
            if let Event::Incoming(Packet::PubAck(_)) = events.poll().await? {
                acked += 1;
            }
        }
        anyhow::Ok(())
    });
    for topic in retained {
        client
            .publish(topic.clone(), QoS::AtLeastOnce, true, Vec::new())
            .await?;
    }
    // The event loop ends with that task, closing the connection.
    tokio::time::timeout(Duration::from_secs(60), acks)
        .await
        .context("clearing retained messages timed out")???;
    Ok(())
}

/// Bytes per second of a plain TCP copy on loopback (the baseline).
async fn baseline_tcp_bytes_per_s(bytes: usize) -> anyhow::Result<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let reader = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0;
        loop {
            let r = s.read(&mut buf).await?;
            if r == 0 {
                return anyhow::Ok(n);
            }
            n += r;
        }
    });
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let chunk = vec![b'x'; 1 << 16];
    let t = Instant::now();
    let mut sent = 0;
    while sent < bytes {
        s.write_all(&chunk).await?;
        sent += chunk.len();
    }
    s.shutdown().await?;
    let got = reader.await??;
    anyhow::ensure!(got == sent, "baseline copy lost bytes");
    Ok(sent as f64 / t.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = Opts::parse();
    anyhow::ensure!(
        o.hubs >= 1 && o.agents >= 1,
        "--hubs and --agents must be at least 1"
    );
    // The engines this runs against must be there before anything starts.
    std::net::TcpStream::connect(&o.mqtt).with_context(|| {
        format!(
            "no MQTT broker answers at {} (start Mosquitto, or pass --mqtt host:port)",
            o.mqtt
        )
    })?;
    let (client, conn) = tokio_postgres::connect(&o.store_url, tokio_postgres::NoTls)
        .await
        .with_context(|| {
            format!(
                "no PostgreSQL at {} (pass --store-url postgres://user@host:port/db)",
                evsync_hub::store::redact_url(&o.store_url)
            )
        })?;
    drop(client);
    drop(conn);
    let dir = tempfile::Builder::new()
        .prefix("evsync-bench-load-")
        .tempdir_in(".")?;
    let schema = format!("evsync_load_{:08x}", fastrand::u32(..));
    let group = format!("evsync-load-{:08x}", fastrand::u32(..));
    let mqtt = format!("mqtt://{}", o.mqtt);
    let token = "bench-token-0123456789";

    // The hubs: the first makes the key, the others are given a copy.
    let mut hubs = Vec::new();
    let mut apis = Vec::new();
    for n in 0..o.hubs {
        let root = dir.path().join(format!("hub{n}"));
        std::fs::create_dir_all(&root)?;
        if n > 0 {
            std::fs::copy(dir.path().join("hub0/data/hub.key"), {
                std::fs::create_dir_all(root.join("data"))?;
                root.join("data/hub.key")
            })?;
        }
        let http = free_port()?;
        let toml = root.join("hub.toml");
        std::fs::write(
            &toml,
            format!(
                "hub_id = \"load-hub-{n}-{group}\"\ndata_dir = {:?}\nauto_approve = true\n\
                 [mqtt]\nembedded = false\nurl = \"{mqtt}\"\nshare_group = \"{group}\"\n\
                 [http]\nlisten = \"127.0.0.1:{http}\"\ntoken = \"{token}\"\n\
                 [store]\nurl = \"{}\"\nschema = \"{schema}\"\n",
                root.join("data"),
                o.store_url
            ),
        )?;
        let api = format!("http://127.0.0.1:{http}");
        hubs.push(HubProc::start(&o.hub, &toml, &root.join("hub.log"))?);
        let t = Instant::now();
        while get_json(&format!("{api}/healthz"), None).is_err() {
            anyhow::ensure!(
                t.elapsed() < Duration::from_secs(30),
                "hub {n} did not start; see {}",
                root.join("hub.log").display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        apis.push(api);
    }
    let name = |prefix: &str, n: usize| format!("{prefix}-{n:05}-{:04x}", fastrand::u16(..));
    let ids = Ids {
        load: (0..o.agents).map(|a| name("load", a)).collect(),
        live: (0..o.live).map(|l| name("live", l)).collect(),
    };
    let run = run(&o, dir.path(), &mqtt, &apis, &mut hubs, token, &ids).await;
    drop(hubs);
    // What the run left on the shared broker: the agents' retained
    // announcements and statuses, and every client's persistent session.
    let agents: Vec<&String> = ids.load.iter().chain(&ids.live).collect();
    let retained: Vec<String> = agents
        .iter()
        .flat_map(|id| {
            [
                format!("evsync/v1/{id}/announce"),
                format!("evsync/v1/{id}/status"),
            ]
        })
        .collect();
    let mut clients: Vec<String> = agents.iter().map(|id| id.to_string()).collect();
    clients.extend((0..o.hubs).map(|n| format!("evsync-hub-load-hub-{n}-{group}")));
    if let Err(e) = clean_broker(&o.mqtt, &clients, &retained).await {
        eprintln!("cleaning the broker after the run: {e:#}");
    }
    let records = run.as_ref().ok().map(|r| r.0);
    if let Err(e) = size_and_drop_schema(&o.store_url, &schema, records).await {
        eprintln!("dropping schema {schema}: {e:#}");
    }
    // The headline, last.
    println!("records_per_s={:.0}", run?.1);
    Ok(())
}

async fn run(
    o: &Opts,
    dir: &Path,
    mqtt: &str,
    apis: &[String],
    hubs: &mut [HubProc],
    token: &str,
    ids: &Ids,
) -> anyhow::Result<(usize, f64)> {
    let hub_key = PublicKey::from_base64(&std::fs::read_to_string(dir.join("hub0/data/hub.pub"))?)?;
    let record_bytes = 700.0;
    let tcp = baseline_tcp_bytes_per_s(512 << 20).await?;
    // The same bytes as the records, as a raw TCP copy on loopback.
    println!("baseline_tcp_copy_bytes_per_s={tcp:.0}");
    println!("baseline_tcp_copy_records_per_s={:.0}", tcp / record_bytes);

    let cfgs: Vec<AgentConfig> = ids
        .load
        .iter()
        .map(|id| agent_config(dir, id, mqtt, &hub_key, o))
        .collect();
    let live_cfgs: Vec<AgentConfig> = ids
        .live
        .iter()
        .map(|id| agent_config(dir, id, mqtt, &hub_key, o))
        .collect();
    let ours: HashSet<&str> = ids
        .load
        .iter()
        .chain(&ids.live)
        .map(String::as_str)
        .collect();

    // The fleet exists before the shift ends: every agent has announced
    // itself once and been approved.
    let t = Instant::now();
    let mut enrolling = Vec::new();
    for cfg in cfgs.iter().chain(&live_cfgs) {
        enrolling.push(Agent::start(cfg.clone()).await?);
    }
    let fleet = cfgs.len() + live_cfgs.len();
    loop {
        let devices = get_json(&format!("{}/api/v1/devices", apis[0]), Some(token))?;
        // Only this run's: a shared broker may hold other runs' announcements.
        let approved = devices["devices"].as_array().map_or(0, |d| {
            d.iter()
                .filter(|d| d["state"] == "approved")
                .filter(|d| d["device_id"].as_str().is_some_and(|id| ours.contains(id)))
                .count()
        });
        if approved >= fleet {
            break;
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(300),
            "only {approved} of {fleet} agents enrolled"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for a in enrolling {
        a.shutdown().await?;
    }
    eprintln!(
        "{fleet} agents enrolled in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // The shift's records, signed into each agent's buffer.
    let t = Instant::now();
    for cfg in &cfgs {
        let key = evsync_agent::agent::device_key(cfg)?;
        let mut buffer = Buffer::open(&cfg.data_dir.join("buffer.sqlite"))?;
        let mut i = 0;
        buffer.append_many(&key, &cfg.device_id, o.records, |seq, prev| {
            i += 1;
            let mut b = records::body(cfg, Kind::Event, seq, prev, records::now_millis(), None);
            b.event = Some(event(i));
            b
        })?;
    }
    let surge = (o.agents * o.records) as u64;
    eprintln!(
        "{surge} records signed into {} buffers in {:.1} s",
        o.agents,
        t.elapsed().as_secs_f64()
    );

    let t0 = Instant::now();
    let mut agents = Vec::new();
    for cfg in cfgs {
        agents.push(Agent::start(cfg).await?);
    }
    let mut live = Vec::new();
    let mut live_ids = HashSet::new();
    for cfg in live_cfgs {
        live_ids.insert(cfg.device_id.clone());
        live.push(Agent::start(cfg).await?);
    }
    eprintln!(
        "{} agents connected in {:.1} s",
        agents.len() + live.len(),
        t0.elapsed().as_secs_f64()
    );
    let mut live_sent = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / o.live_rate.max(1)));
    let mut next_kill =
        (o.kill_every > 0.0).then(|| Instant::now() + Duration::from_secs_f64(o.kill_every));
    let mut kills = 0;
    let mut last_report = Instant::now();
    let mut last_count = Instant::now();
    loop {
        tick.tick().await;
        for a in &live {
            a.record_event(event(live_sent), chrono::Utc::now()).await?;
            live_sent += 1;
        }
        if let Some(at) = next_kill {
            if Instant::now() >= at && hubs.len() > 1 {
                hubs[1].kill9();
                tokio::time::sleep(Duration::from_millis(200)).await;
                hubs[1].spawn()?;
                kills += 1;
                next_kill = Some(Instant::now() + Duration::from_secs_f64(o.kill_every));
            }
        }
        // Counting the backlog reads every agent's buffer: once a second.
        if last_count.elapsed() < Duration::from_secs(1) {
            continue;
        }
        last_count = Instant::now();
        let mut backlog = 0;
        for a in &agents {
            backlog += a.unreceipted()?;
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "{:.0} s: {backlog} records unreceipted",
                t0.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        if backlog == 0 {
            break;
        }
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(1800),
            "the surge did not finish in 30 minutes: {backlog} records unreceipted"
        );
    }
    let wall = t0.elapsed().as_secs_f64();
    let resends: u64 = agents
        .iter()
        .map(|a| a.stats().resends.load(Ordering::Relaxed))
        .sum();
    let refused: u64 = agents
        .iter()
        .map(|a| a.stats().refused_records.load(Ordering::Relaxed))
        .sum();
    for a in agents {
        a.shutdown().await?;
    }
    let t1 = Instant::now();
    while live
        .iter()
        .map(Agent::unreceipted)
        .sum::<anyhow::Result<u64>>()?
        > 0
    {
        anyhow::ensure!(
            t1.elapsed() < Duration::from_secs(120),
            "live records not receipted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for a in live {
        a.shutdown().await?;
    }

    // Every hub answering again (one just restarted may still be waiting
    // its turn for the store), then the feed, read once through, paging
    // across the hubs in turn.
    let t2 = Instant::now();
    while !apis
        .iter()
        .all(|api| get_json(&format!("{api}/healthz"), None).is_ok())
    {
        anyhow::ensure!(
            t2.elapsed() < Duration::from_secs(120),
            "a hub did not answer again after its last restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut ids = HashSet::new();
    let mut latencies = Vec::new();
    let mut cursor = String::new();
    let mut page = 0;
    loop {
        let v = get_json(
            &format!(
                "{}/api/v1/records?after={cursor}&limit=1000",
                apis[page % apis.len()]
            ),
            Some(token),
        )?;
        page += 1;
        let records = v["records"].as_array().cloned().unwrap_or_default();
        if records.is_empty() {
            break;
        }
        for r in &records {
            anyhow::ensure!(
                ids.insert(r["id"].to_string()),
                "record {} twice in the feed",
                r["id"]
            );
            if r["device_id"]
                .as_str()
                .is_some_and(|d| live_ids.contains(d))
            {
                latencies.push(feed_latency_ms(r)?);
            }
        }
        cursor = v["cursor"].as_str().unwrap_or_default().to_owned();
    }
    let expected = surge as usize + live_sent;
    anyhow::ensure!(
        ids.len() == expected,
        "the feed holds {} records, expected {expected}",
        ids.len()
    );
    latencies.sort_by(f64::total_cmp);
    let rate = surge as f64 / wall;
    let rejected = metric_sum(apis, "evsync_hub_rejected_total");
    let duplicates = metric_sum(apis, "evsync_hub_records_duplicate_total");
    println!(
        "hubs={} agents={} records={surge} seconds={wall:.1} kills={kills}",
        o.hubs, o.agents
    );
    println!("feed_records={} exactly_once=true", ids.len());
    println!(
        "receipt_latency_ms_p50={:.0} receipt_latency_ms_p99={:.0} live_records={}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.len()
    );
    println!(
        "errors_refused={refused} hub_rejected={rejected:.0} duplicates_absorbed={duplicates:.0} agent_resends={resends}"
    );
    println!("ratio_vs_tcp_copy={:.4}", rate / (tcp / record_bytes));
    Ok((ids.len(), rate))
}

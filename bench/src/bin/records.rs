//! Record-path benchmark (run it through `bench/records`).
//!
//! Throughput: agents whose buffers hold signed records start at once; the
//! figure is records verified, stored and receipted by a separate hub process
//! per second, with the hub's CPU use. Latency: one agent records events at a
//! steady lower rate; the figure is event-to-feed latency (hub `received_at`
//! minus agent `ingest_time`). Baselines measured in the same run: Ed25519
//! verification on one core and batched SQLite inserts with `synchronous=FULL`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use evsync_agent::agent::Agent;
use evsync_agent::buffer::Buffer;
use evsync_agent::config::AgentConfig;
use evsync_agent::records;
use evsync_bench::{event, feed_latency_ms, free_port, get_json, percentile};
use evsync_protocol::record::Kind;
use evsync_protocol::signing::{Context, PublicKey, SigningKey};

/// Options.
#[derive(Debug, Parser)]
struct Opts {
    /// The hub binary to run.
    #[arg(long)]
    hub: String,
    /// Agents in the throughput phase.
    #[arg(long, default_value_t = 4)]
    agents: usize,
    /// Records per agent in the throughput phase.
    #[arg(long, default_value_t = 25_000)]
    records: usize,
    /// Steady rate of the latency phase, records/s.
    #[arg(long, default_value_t = 2000)]
    rate: usize,
    /// Duration of the latency phase, seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Records per MQTT message.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Messages sent ahead of receipts, per agent.
    #[arg(long, default_value_t = 8)]
    window: usize,
}

fn agent_config(dir: &Path, id: &str, mqtt: &str, hub_key: &PublicKey, opts: &Opts) -> AgentConfig {
    let mut cfg = AgentConfig::field(id, &dir.join(id), mqtt, hub_key);
    cfg.officer_id = Some("100001".into());
    cfg.unit_code = Some("500112010001".into());
    cfg.uplink.batch_records = opts.batch;
    cfg.uplink.max_inflight_batches = opts.window;
    cfg
}

/// utime + stime of a process, seconds.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("odd /proc stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

fn baseline_verify_per_s() -> anyhow::Result<f64> {
    let key = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8()?)?;
    let body = vec![b'x'; 600];
    let sigs: Vec<[u8; 64]> = (0..20_000)
        .map(|_| key.sign(Context::Record, &body))
        .collect();
    let public = key.public();
    let t = Instant::now();
    for s in &sigs {
        public.verify(Context::Record, &body, s, "bench")?;
    }
    Ok(sigs.len() as f64 / t.elapsed().as_secs_f64())
}

fn baseline_sqlite_rows_per_s(dir: &Path) -> anyhow::Result<f64> {
    let conn = rusqlite::Connection::open(dir.join("baseline.sqlite"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, id TEXT UNIQUE, body BLOB)")?;
    let body = vec![b'x'; 700];
    let n = 100_000;
    let mut conn = conn;
    let t = Instant::now();
    for chunk in 0..n / 1000 {
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached("INSERT INTO t (id, body) VALUES (?1, ?2)")?;
            for i in 0..1000 {
                stmt.execute(rusqlite::params![format!("{:016}", chunk * 1000 + i), body])?;
            }
        }
        tx.commit()?;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

struct HubProc(Child);

impl Drop for HubProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = Opts::parse();
    let dir = tempfile::Builder::new()
        .prefix("evsync-bench-records-")
        .tempdir_in(".")?;
    let verify = tokio::task::spawn_blocking(baseline_verify_per_s).await??;
    let sqlite = {
        let d = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || baseline_sqlite_rows_per_s(&d)).await??
    };
    println!("baseline_ed25519_verify_per_s_one_core={verify:.0}");
    println!("baseline_sqlite_rows_per_s={sqlite:.0}");

    let (http, mqtt) = (free_port()?, free_port()?);
    let token = "bench-token-0123456789";
    let hub_dir = dir.path().join("hub");
    std::fs::write(
        dir.path().join("hub.toml"),
        format!(
            "hub_id = \"bench-hub\"\ndata_dir = {hub_dir:?}\nauto_approve = true\n[mqtt]\nlisten = \"127.0.0.1:{mqtt}\"\n[http]\nlisten = \"127.0.0.1:{http}\"\ntoken = \"{token}\"\n"
        ),
    )?;
    let hub = HubProc(
        Command::new(&opts.hub)
            .args(["serve", "--config"])
            .arg(dir.path().join("hub.toml"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("starting the hub")?,
    );
    let api = format!("http://127.0.0.1:{http}");
    let count = || -> anyhow::Result<u64> {
        get_json(&format!("{api}/healthz"), None)?["records"]
            .as_u64()
            .context("healthz records")
    };
    let started = Instant::now();
    while count().is_err() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(20),
            "hub did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hub_key = PublicKey::from_base64(&std::fs::read_to_string(hub_dir.join("hub.pub"))?)?;
    let mqtt_url = format!("mqtt://127.0.0.1:{mqtt}");

    // Throughput: prefilled buffers, all agents started at once.
    let mut cfgs = Vec::new();
    for a in 0..opts.agents {
        let cfg = agent_config(
            dir.path(),
            &format!("bench-{a:02}"),
            &mqtt_url,
            &hub_key,
            &opts,
        );
        std::fs::create_dir_all(&cfg.data_dir)?;
        let key = evsync_agent::agent::device_key(&cfg)?;
        let mut buffer = Buffer::open(&cfg.data_dir.join("buffer.sqlite"))?;
        let mut i = 0;
        buffer.append_many(&key, &cfg.device_id, opts.records, |seq, prev| {
            i += 1;
            let mut b = records::body(&cfg, Kind::Event, seq, prev, records::now_millis(), None);
            b.event = Some(event(i));
            b
        })?;
        cfgs.push(cfg);
    }
    let total = (opts.agents * opts.records) as u64;
    let cpu0 = cpu_seconds(hub.0.id())?;
    let t0 = Instant::now();
    let mut agents = Vec::new();
    for cfg in cfgs {
        agents.push(Agent::start(cfg).await?);
    }
    // Done when every record is receipted: the agents' buffers are empty.
    loop {
        let mut backlog = 0;
        for a in &agents {
            backlog += a.unreceipted()?;
        }
        if backlog == 0 {
            break;
        }
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(300),
            "throughput phase did not finish: {backlog} records unreceipted, {} stored",
            count()?
        );
        // Polling costs CPU the agents and hub share: not too often.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wall = t0.elapsed().as_secs_f64();
    let hub_cpu = cpu_seconds(hub.0.id())? - cpu0;
    let rate = total as f64 / wall;
    for a in agents {
        a.shutdown().await?;
    }
    println!("agents={} records={total} seconds={wall:.2}", opts.agents);
    println!("hub_cpu_cores={:.2}", hub_cpu / wall);
    println!("ratio_vs_verify_one_core={:.2}", rate / verify);
    println!("ratio_vs_sqlite_inserts={:.2}", rate / sqlite);

    // Latency at a steady, lower rate.
    let cfg = agent_config(dir.path(), "bench-latency", &mqtt_url, &hub_key, &opts);
    let device = cfg.device_id.clone();
    let agent = Agent::start(cfg).await?;
    let per_tick = (opts.rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let t1 = Instant::now();
    let mut sent = 0;
    while t1.elapsed() < Duration::from_secs(opts.seconds) {
        tick.tick().await;
        for _ in 0..per_tick {
            agent.record_event(event(sent), chrono::Utc::now()).await?;
            sent += 1;
        }
    }
    let steady = sent as f64 / t1.elapsed().as_secs_f64();
    while count()? < total + sent as u64 {
        anyhow::ensure!(
            t1.elapsed() < Duration::from_secs(opts.seconds + 60),
            "latency phase did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agent.shutdown().await?;
    let mut latencies = Vec::with_capacity(sent);
    let mut cursor = String::new();
    loop {
        let page = get_json(
            &format!("{api}/api/v1/records?after={cursor}&limit=1000"),
            Some(token),
        )?;
        let records = page["records"].as_array().cloned().unwrap_or_default();
        if records.is_empty() {
            break;
        }
        for r in records.iter().filter(|r| r["device_id"] == device.as_str()) {
            latencies.push(feed_latency_ms(r)?);
        }
        cursor = page["cursor"].as_str().unwrap_or_default().to_owned();
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "latency_rate_per_s={steady:.0} latency_records={}",
        latencies.len()
    );
    println!(
        "event_to_feed_ms_p50={:.0} event_to_feed_ms_p99={:.0} event_to_feed_ms_max={:.0}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    );
    drop(hub);
    println!("records_per_s={rate:.0}");
    Ok(())
}

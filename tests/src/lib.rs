//! Shared fixtures of the end-to-end tests: hubs and agents in this process
//! or as real processes that can be killed, spool filling, and a feed reader
//! that checks every record on its own (signature, hash, chain).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use evsync_agent::config::{AgentConfig, SpoolSection, UplinkSection};
use evsync_hub::config::{HttpConfig, HubConfig, MediaConfig, MqttConfig};
use evsync_protocol::chain::Hash;
use evsync_protocol::signing::{Context, PublicKey};
use serde_json::Value;

pub use evsync_hub::broker::free_loopback_addr;

pub mod browser;
pub mod gps;
pub mod media;
pub mod postgres;
pub mod recorders;
pub mod s3;

/// Runs the hub's command line `exe` (`env!("CARGO_BIN_EXE_e2e-hub")` in a
/// test) as `<args> --config <hub_toml>`, requiring success; its stdout.
pub fn hub_cli(exe: &str, hub_toml: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(exe)
        .args(args)
        .arg("--config")
        .arg(hub_toml)
        .output()
        .with_context(|| format!("starting {exe}"))?;
    anyhow::ensure!(
        out.status.success(),
        "evsync-hub {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Environment variable `.ci/run` sets to the Mosquitto address on machines that run one.
pub const MOSQUITTO_ENV: &str = "EVSYNC_TEST_MOSQUITTO";

/// The Mosquitto URL to test against, or `None` (with the reason printed) to skip.
pub fn mosquitto_url() -> Option<String> {
    match std::env::var(MOSQUITTO_ENV) {
        Ok(addr) if !addr.is_empty() => Some(format!("mqtt://{addr}")),
        _ => {
            eprintln!("SKIPPED: {MOSQUITTO_ENV} is not set, so no external Mosquitto is used (.ci/run sets it)");
            None
        }
    }
}

/// Where tests look for Mosquitto to run a private broker with.
pub const MOSQUITTO_EXE: &str = "/usr/sbin/mosquitto";

/// Starts a Mosquitto of the test's own with `conf` (its listeners, files
/// and ACL) in `dir`, run as the current user (as root Mosquitto would
/// become `mosquitto`, who cannot read the test's private files), without
/// persistence, logging to `<dir>/mosquitto.log`; returns once `addr`
/// accepts TCP. `None`, with the reason printed, when there is no
/// Mosquitto executable. Stopped when the returned [`Proc`] is dropped.
pub async fn private_mosquitto(
    dir: &Path,
    conf: &str,
    addr: SocketAddr,
) -> anyhow::Result<Option<Proc>> {
    if !Path::new(MOSQUITTO_EXE).exists() {
        eprintln!("SKIPPED: no {MOSQUITTO_EXE} to run a broker of the test's own");
        return Ok(None);
    }
    let me = Command::new("id").arg("-un").output()?;
    let me = String::from_utf8_lossy(&me.stdout).trim().to_owned();
    let path = dir.join("mosquitto-private.conf");
    std::fs::write(
        &path,
        format!("user {me}\npersistence false\nlog_dest stderr\n{conf}"),
    )?;
    let broker = Proc::start(
        MOSQUITTO_EXE,
        &["-c", &path.display().to_string()],
        &dir.join("mosquitto.log"),
    )?;
    eventually(Duration::from_secs(10), "mosquitto listening", || async {
        Ok(tokio::net::TcpStream::connect(addr).await.is_ok())
    })
    .await
    .with_context(|| format!("mosquitto log:\n{}", broker.log_tail(20)))?;
    Ok(Some(broker))
}

/// A short random suffix so parallel runs on a shared broker do not collide.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", fastrand::u32(..))
}

/// Hub configuration in `dir` with free loopback ports and auto-approve.
pub fn hub_config(dir: &Path, external_broker: Option<String>) -> anyhow::Result<HubConfig> {
    Ok(HubConfig {
        hub_id: unique("test-hub"),
        data_dir: dir.join("hub"),
        auto_approve: true,
        gap_grace_secs: 60,
        mqtt: MqttConfig {
            embedded: external_broker.is_none(),
            listen: free_loopback_addr()?,
            url: external_broker,
            ..MqttConfig::default()
        },
        http: HttpConfig {
            listen: free_loopback_addr()?,
            token: Some("test-token-0123456789".into()),
            ..HttpConfig::default()
        },
        media: MediaConfig::default(),
        store: Default::default(),
        fleet: Default::default(),
        coverage: Default::default(),
    })
}

/// Agent configuration in `dir` with quick spool pickup and short resend timers.
pub fn agent_config(
    dir: &Path,
    device_id: &str,
    mqtt_url: &str,
    hub_key: &PublicKey,
) -> AgentConfig {
    let mut cfg = AgentConfig::field(device_id, &dir.join(device_id), mqtt_url, hub_key);
    cfg.officer_id = Some("100001".into());
    cfg.unit_code = Some("500112010001".into());
    cfg.uplink = UplinkSection {
        batch_records: 100,
        max_inflight_batches: 4,
        receipt_timeout_secs: 3,
        retry_secs: 1,
        status_secs: 2,
    };
    cfg.spool = SpoolSection {
        scan_interval_ms: 50,
        settle_ms: 100,
    };
    cfg
}

/// Gives an agent its broker secret, in a file of its own in `dir`, as an
/// enrolled agent holds it (`mqtt.password_file`).
pub fn give_secret(cfg: &mut AgentConfig, dir: &Path, secret: &str) -> anyhow::Result<()> {
    let file = dir.join(format!("{}-secret", cfg.device_id));
    std::fs::write(&file, format!("{secret}\n"))?;
    cfg.mqtt.password_file = Some(file);
    Ok(())
}

/// Writes the agent config as TOML.
pub fn write_agent_toml(cfg: &AgentConfig, path: &Path) -> anyhow::Result<()> {
    std::fs::write(path, toml::to_string(cfg)?)?;
    Ok(())
}

/// Writes the hub config as TOML.
pub fn write_hub_toml(cfg: &HubConfig, path: &Path) -> anyhow::Result<()> {
    std::fs::write(path, toml::to_string(cfg)?)?;
    Ok(())
}

/// Drops `n` event files numbered from `first` into `spool` (write, then rename).
/// Each carries its number in its note, so the feed can be checked file by file.
pub fn drop_events(spool: &Path, first: usize, n: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(spool)?;
    for i in first..first + n {
        let text = serde_json::json!({
            "time": "2026-11-23T09:00:00+08:00",
            "event": { "type": "marked_important", "note": format!("file-{i}") }
        })
        .to_string();
        let part = spool.join(format!("ev-{i:06}.json.part"));
        std::fs::write(&part, text)?;
        std::fs::rename(&part, spool.join(format!("ev-{i:06}.json")))?;
    }
    Ok(())
}

/// A hub (in this process, auto-approve) with one field agent whose
/// `events` event records and one MP4 recording are synced: the recording
/// stored verified. For tests of what the hub serves about real data.
pub struct SyncedHub {
    /// The hub.
    pub hub: evsync_hub::server::Hub,
    /// The field agent (still running).
    pub agent: evsync_agent::agent::Agent,
    /// The agent's id.
    pub device_id: String,
    /// A client with the hub's bootstrap (admin) token.
    pub api: Api,
    /// The media record's id.
    pub media_id: String,
}

impl SyncedHub {
    /// Starts the hub and the agent in `dir` and waits until all is synced.
    pub async fn start(dir: &Path, prefix: &str, events: usize) -> anyhow::Result<Self> {
        let hub = evsync_hub::server::Hub::start(hub_config(dir, None)?).await?;
        let api = Api::new(hub.http_addr, &hub.token);
        let device_id = unique(prefix);
        let cfg = agent_config(dir, &device_id, &hub.mqtt_url, &hub.public_key);
        drop_events(&cfg.spool_dir, 0, events)?;
        let part = cfg.spool_dir.join("20261123_083000_0001.mp4.part");
        evsync_hub::demo::write_mp4(&part, 3, 4_000, 5)?;
        std::fs::rename(&part, cfg.spool_dir.join("20261123_083000_0001.mp4"))?;
        let agent = evsync_agent::agent::Agent::start(cfg).await?;
        eventually(
            Duration::from_secs(30),
            "events and the recording synced",
            || async {
                let feed = api.feed().await?;
                Ok(feed.len() == events + 1
                    && feed
                        .iter()
                        .any(|r| r["kind"] == "media" && r["media_state"] == "stored"))
            },
        )
        .await?;
        let media_id = api
            .media()
            .await?
            .first()
            .and_then(|r| r["id"].as_str())
            .context("no media record")?
            .to_owned();
        Ok(Self {
            hub,
            agent,
            device_id,
            api,
            media_id,
        })
    }

    /// Stops the agent, then the hub.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.agent.shutdown().await?;
        self.hub.shutdown().await
    }
}

/// Drops one event file `name.json` into `spool` (write, then rename): the
/// event at `time` (RFC 3339), as a field application would.
pub fn drop_event(spool: &Path, name: &str, time: &str, event: Value) -> anyhow::Result<()> {
    std::fs::create_dir_all(spool)?;
    let part = spool.join(format!("{name}.json.part"));
    std::fs::write(
        &part,
        serde_json::json!({ "time": time, "event": event }).to_string(),
    )?;
    std::fs::rename(&part, spool.join(format!("{name}.json")))?;
    Ok(())
}

/// A child process that is killed when dropped.
pub struct Proc {
    child: Option<Child>,
    name: String,
    log: std::path::PathBuf,
}

impl Proc {
    /// Starts `exe args…`, logging to `log`.
    pub fn start(exe: &str, args: &[&str], log: &Path) -> anyhow::Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let child = Command::new(exe)
            .args(args)
            .env("RUST_LOG", "info,rumqttd=warn")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {exe}"))?;
        Ok(Self {
            child: Some(child),
            name: exe.rsplit('/').next().unwrap_or(exe).to_owned(),
            log: log.to_path_buf(),
        })
    }

    /// Takes charge of an already started child (killed when dropped).
    pub fn adopt(child: Child, name: &str) -> Self {
        Self {
            child: Some(child),
            name: name.to_owned(),
            log: std::path::PathBuf::new(),
        }
    }

    /// The last lines of the process's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait up to `within` for a clean exit (status 0); the error carries the log's tail.
    pub fn terminate(&mut self, within: Duration) -> anyhow::Result<()> {
        let Some(mut c) = self.child.take() else {
            anyhow::bail!("{} is not running", self.name)
        };
        Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()?;
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = c.try_wait()? {
                anyhow::ensure!(
                    status.success(),
                    "{} exited with {status} on SIGTERM:\n{}",
                    self.name,
                    self.log_tail(15)
                );
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                anyhow::bail!("{} did not stop within {within:?} of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Peak resident memory of the running process so far, in bytes (`VmHWM`).
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        let pid = self
            .child
            .as_ref()
            .map(Child::id)
            .with_context(|| format!("{} is not running", self.name))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmHWM in /proc/<pid>/status")?;
        Ok(kib * 1024)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `check` every 50 ms until it returns true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client of the hub's HTTP API.
#[derive(Clone)]
pub struct Api {
    base: String,
    token: String,
    ca: Option<std::path::PathBuf>,
}

impl Api {
    /// A client for the hub at `addr`.
    pub fn new(addr: SocketAddr, token: &str) -> Self {
        Self {
            base: format!("http://{addr}"),
            token: token.to_owned(),
            ca: None,
        }
    }

    /// A client for the hub's API over HTTPS at `addr`, trusting only the CA in `ca` (for [`Api::get`]).
    pub fn https(addr: SocketAddr, token: &str, ca: &Path) -> Self {
        Self {
            base: format!("https://{addr}"),
            token: token.to_owned(),
            ca: Some(ca.to_owned()),
        }
    }

    /// GET `path` with the token; returns status and JSON (or text wrapped in a string).
    pub async fn get(&self, path: &str, with_token: bool) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let auth = with_token.then(|| format!("Bearer {}", self.token));
        let tls = evsync_agent::tls::http_tls(self.ca.as_deref())?;
        tokio::task::spawn_blocking(move || {
            let agent = ureq::Agent::config_builder()
                .tls_config(tls)
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(10)))
                .build()
                .new_agent();
            let mut req = agent.get(&url);
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            let mut resp = req.call().with_context(|| format!("GET {url}"))?;
            let status = resp.status().as_u16();
            let text = resp.body_mut().read_to_string()?;
            let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
            Ok((status, json))
        })
        .await?
    }

    /// The same hub with another token.
    pub fn with_token(&self, token: &str) -> Self {
        Self {
            base: self.base.clone(),
            token: token.to_owned(),
            ca: self.ca.clone(),
        }
    }

    /// Any request with the token (if any) and a body of `content_type`;
    /// returns status and JSON (or text wrapped in a string).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let mut headers = vec![("authorization", format!("Bearer {}", self.token))];
        let body = body.map(|(ct, b)| {
            headers.push(("content-type", ct.to_owned()));
            b
        });
        let method = method.to_owned();
        let a = tokio::task::spawn_blocking(move || media::request(&method, &url, &headers, body))
            .await??;
        let text = String::from_utf8_lossy(&a.body).into_owned();
        Ok((
            a.status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// A JSON request with the token.
    pub async fn send_json(
        &self,
        method: &str,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<(u16, Value)> {
        self.send(
            method,
            path,
            Some(("application/json", serde_json::to_vec(body)?)),
        )
        .await
    }

    /// GET with the token, requiring 200.
    pub async fn get_ok(&self, path: &str) -> anyhow::Result<Value> {
        let (status, v) = self.get(path, true).await?;
        anyhow::ensure!(status == 200, "GET {path}: {status} {v}");
        Ok(v)
    }

    /// One page of the feed: records and the next cursor.
    pub async fn page(&self, cursor: &str, limit: u32) -> anyhow::Result<(Vec<Value>, String)> {
        let v = self
            .get_ok(&format!("/api/v1/records?after={cursor}&limit={limit}"))
            .await?;
        let records = v["records"]
            .as_array()
            .cloned()
            .context("records is not an array")?;
        let cursor = v["cursor"]
            .as_str()
            .context("cursor is not a string")?
            .to_owned();
        Ok((records, cursor))
    }

    /// Pages through the whole feed from the start.
    pub async fn feed(&self) -> anyhow::Result<Vec<Value>> {
        let mut all = Vec::new();
        let mut cursor = String::new();
        loop {
            let (records, next) = self.page(&cursor, 250).await?;
            if records.is_empty() {
                return Ok(all);
            }
            all.extend(records);
            cursor = next;
        }
    }

    /// The feed's media records.
    pub async fn media(&self) -> anyhow::Result<Vec<Value>> {
        Ok(self
            .feed()
            .await?
            .into_iter()
            .filter(|r| r["kind"] == "media")
            .collect())
    }

    /// How many media records the hub holds with their bytes stored.
    pub async fn stored_media(&self) -> anyhow::Result<usize> {
        Ok(self
            .media()
            .await?
            .iter()
            .filter(|r| r["media_state"] == "stored")
            .count())
    }

    /// A counter from `/metrics` (0 when absent).
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let (_, v) = self.get("/metrics", false).await?;
        let text = v.as_str().context("metrics are not text")?.to_owned();
        Ok(text
            .lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }
}

/// Checks one feed record on its own, as a supervision platform would:
/// the signature over the exact bytes, the hash, and that the feed's fields
/// are those of the signed body. Returns the parsed body.
pub fn verify_feed_record(r: &Value) -> anyhow::Result<Value> {
    let signed = &r["signed"];
    let body = B64.decode(signed["body"].as_str().context("signed.body")?)?;
    let sig: [u8; 64] = B64
        .decode(signed["signature"].as_str().context("signed.signature")?)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("signature is not 64 bytes"))?;
    let key = PublicKey::from_base64(signed["key"].as_str().context("signed.key")?)?;
    key.verify(Context::Record, &body, &sig, "feed record")?;
    anyhow::ensure!(
        Hash::of(&body).to_hex() == r["hash"],
        "hash does not match the body"
    );
    let parsed: Value = serde_json::from_slice(&body)?;
    for field in ["id", "device_id", "seq", "kind", "prev_hash"] {
        anyhow::ensure!(
            parsed[field] == r[field],
            "{field} differs between feed and signed body"
        );
    }
    anyhow::ensure!(r["verified"] == true, "record not marked verified");
    Ok(parsed)
}

/// Checks that the feed holds, for each device, exactly seq 1..=n once per
/// source, each record verifiable, chained to its predecessor. Returns
/// records per device (all its sources together, each source in seq order).
pub fn check_chains(feed: &[Value]) -> anyhow::Result<HashMap<String, Vec<Value>>> {
    let mut by_device: HashMap<String, Vec<Value>> = HashMap::new();
    let mut sources: Vec<_> = check_source_chains(feed)?.into_iter().collect();
    sources.sort_by(|a, b| a.0.cmp(&b.0));
    for ((device, _), records) in sources {
        by_device.entry(device).or_default().extend(records);
    }
    Ok(by_device)
}

/// Checks that the feed holds, for each source (device_id, agent_id) — a
/// field device, or a recorder at one dock — exactly seq 1..=n once, each
/// record verifiable, chained to its predecessor. Returns records per source.
pub fn check_source_chains(
    feed: &[Value],
) -> anyhow::Result<HashMap<(String, String), Vec<Value>>> {
    let mut by_source: HashMap<(String, String), Vec<Value>> = HashMap::new();
    let mut ids = std::collections::HashSet::new();
    for r in feed {
        verify_feed_record(r)?;
        anyhow::ensure!(
            ids.insert(r["id"].to_string()),
            "record {} appears twice in the feed",
            r["id"]
        );
        let device = r["device_id"].as_str().context("device_id")?.to_owned();
        let agent = r["agent_id"].as_str().context("agent_id")?.to_owned();
        by_source
            .entry((device, agent))
            .or_default()
            .push(r.clone());
    }
    for ((device, agent), records) in &mut by_source {
        records.sort_by_key(|r| r["seq"].as_u64());
        let mut prev = Hash([0; 32]).to_hex();
        for (i, r) in records.iter().enumerate() {
            anyhow::ensure!(
                r["seq"].as_u64() == Some(i as u64 + 1),
                "{device} via {agent}: expected seq {} but found {}",
                i + 1,
                r["seq"]
            );
            anyhow::ensure!(
                r["prev_hash"] == prev.as_str(),
                "{device} via {agent}: chain broken at seq {}",
                i + 1
            );
            prev = r["hash"].as_str().context("hash")?.to_owned();
        }
    }
    Ok(by_source)
}

/// The notes of event records in `records` (as written by [`drop_events`]).
pub fn notes(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| r["event"]["note"].as_str().map(str::to_owned))
        .collect()
}

/// Folder of a test's temporary files; kept on failure when `EVSYNC_KEEP_TEST_DIRS` is set.
pub fn test_dir(name: &str) -> anyhow::Result<tempfile::TempDir> {
    let mut dir = tempfile::Builder::new()
        .prefix(&format!("evsync-{name}-"))
        .tempdir()?;
    if std::env::var_os("EVSYNC_KEEP_TEST_DIRS").is_some() {
        dir.disable_cleanup(true);
        eprintln!("test folder (kept): {}", dir.path().display());
    }
    Ok(dir)
}

/// Clears what a test left on a shared broker: the persistent sessions of
/// `client_ids` (reconnecting each with a clean session) and the retained
/// messages on `retained_topics`.
pub async fn clean_shared_broker(
    url: &str,
    client_ids: &[String],
    retained_topics: &[String],
) -> anyhow::Result<()> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    for (i, id) in client_ids.iter().enumerate() {
        let mut opts = MqttOptions::parse_url(format!("{url}?client_id={id}"))?;
        opts.set_clean_session(true);
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let mut published = 0;
        if i == 0 {
            for t in retained_topics {
                client
                    .publish(t.clone(), QoS::AtLeastOnce, true, Vec::new())
                    .await?;
            }
        }
        let wanted = if i == 0 { retained_topics.len() } else { 0 };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(5), eventloop.poll()).await??;
            match ev {
                Event::Incoming(Packet::PubAck(_)) => published += 1,
                Event::Incoming(Packet::ConnAck(_)) if wanted == 0 => break,
                _ => {}
            }
            if wanted > 0 && published >= wanted {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "cleaning the shared broker timed out"
            );
        }
        client.disconnect().await?;
        let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
    }
    Ok(())
}

/// A device driven by hand: it announces itself, signs whatever record
/// bodies a test builds, publishes raw payloads and reads its receipts.
/// Tests use it to send what a well-behaved agent never would.
pub struct RawDevice {
    /// Device id.
    pub id: String,
    /// Its signing key.
    pub key: evsync_protocol::signing::SigningKey,
    client: rumqttc::AsyncClient,
    receipts: tokio::sync::mpsc::Receiver<Vec<u8>>,
    grants: tokio::sync::mpsc::Receiver<Vec<u8>>,
    media_receipts: tokio::sync::mpsc::Receiver<Vec<u8>>,
    poller: tokio::task::JoinHandle<()>,
}

impl RawDevice {
    /// Connects to `url` as `id` with a fresh key and subscribes to its receipts and grants.
    pub async fn connect(url: &str, id: &str) -> anyhow::Result<Self> {
        use evsync_protocol::signing::SigningKey;
        use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
        let key = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8()?)?;
        let mut opts = MqttOptions::parse_url(format!("{url}?client_id={id}"))?;
        opts.set_max_packet_size(4 << 20, 4 << 20);
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let (tx, receipts) = tokio::sync::mpsc::channel(64);
        let (grants_tx, grants) = tokio::sync::mpsc::channel(64);
        let (media_tx, media_receipts) = tokio::sync::mpsc::channel(64);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let receipts_topic = format!("evsync/v1/{id}/receipts");
        let grants_topic = format!("evsync/v1/{id}/grants");
        client
            .subscribe(receipts_topic.clone(), QoS::AtLeastOnce)
            .await?;
        client
            .subscribe(grants_topic.clone(), QoS::AtLeastOnce)
            .await?;
        let poller = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            let mut acks = 0;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        acks += 1;
                        if acks == 2 {
                            if let Some(r) = ready.take() {
                                let _ = r.send(());
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == receipts_topic => {
                        let to = if p.payload.starts_with(evsync_protocol::media_receipt::MAGIC) {
                            &media_tx
                        } else {
                            &tx
                        };
                        let _ = to.send(p.payload.to_vec()).await;
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == grants_topic => {
                        let _ = grants_tx.send(p.payload.to_vec()).await;
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx).await??;
        Ok(Self {
            id: id.to_owned(),
            key,
            client,
            receipts,
            grants,
            media_receipts,
            poller,
        })
    }

    /// Publishes a signed announcement of this device's key.
    pub async fn announce(&self) -> anyhow::Result<()> {
        let body = evsync_protocol::announce::AnnounceBody {
            v: 1,
            device_id: self.id.clone(),
            public_key: self.key.public().to_base64(),
            role: "field".into(),
            officer_id: Some("100002".into()),
            unit_code: Some("500103060001".into()),
            software: "raw-test-device".into(),
            sent_at: chrono::Utc::now(),
        };
        self.publish("announce", body.seal(&self.key)).await
    }

    /// An event record body of this device at `seq` after `prev`.
    pub fn body(&self, seq: u64, prev: Hash, note: &str) -> evsync_protocol::record::RecordBody {
        use evsync_protocol::record::{Event, Kind, RecordBody, VERSION};
        RecordBody {
            v: VERSION,
            id: uuid::Uuid::now_v7(),
            kind: Kind::Event,
            device_id: self.id.clone(),
            agent_id: self.id.clone(),
            seq,
            prev_hash: prev.to_hex(),
            officer_id: Some("100002".into()),
            unit_code: Some("500103060001".into()),
            device_time: chrono::Utc::now(),
            ingest_time: chrono::Utc::now(),
            clock_offset_ms: 0,
            media: None,
            event: Some(Event::MarkedImportant {
                note: Some(note.into()),
            }),
            geo: None,
        }
    }

    /// Signs `body` with this device's key.
    pub fn seal(
        &self,
        body: &evsync_protocol::record::RecordBody,
    ) -> evsync_protocol::envelope::Envelope {
        evsync_protocol::envelope::Envelope::seal(&self.key, Context::Record, body.to_bytes())
    }

    /// Publishes `payload` on this device's `channel` topic (QoS 1).
    pub async fn publish(&self, channel: &str, payload: Vec<u8>) -> anyhow::Result<()> {
        self.client
            .publish(
                format!("evsync/v1/{}/{channel}", self.id),
                rumqttc::QoS::AtLeastOnce,
                false,
                payload,
            )
            .await?;
        Ok(())
    }

    /// Publishes envelopes as one record batch.
    pub async fn send(
        &self,
        records: &[evsync_protocol::envelope::Envelope],
    ) -> anyhow::Result<()> {
        self.publish("records", evsync_protocol::batch::encode(records))
            .await
    }

    /// The next receipt, verified against `hub_key`.
    pub async fn receipt(
        &mut self,
        hub_key: &PublicKey,
    ) -> anyhow::Result<evsync_protocol::receipt::ReceiptBody> {
        let payload = tokio::time::timeout(Duration::from_secs(10), self.receipts.recv())
            .await
            .context("no receipt within 10 s")?
            .context("receipt channel closed")?;
        Ok(evsync_protocol::receipt::ReceiptBody::open(
            &payload, hub_key,
        )?)
    }
}

impl RawDevice {
    /// A media record body of this device at `seq` after `prev`, for content `sha256` of `size` bytes.
    pub fn media_body(
        &self,
        seq: u64,
        prev: Hash,
        sha256: &str,
        size: u64,
    ) -> evsync_protocol::record::RecordBody {
        let mut b = self.body(seq, prev, "media");
        b.kind = evsync_protocol::record::Kind::Media;
        b.event = None;
        b.media = Some(evsync_protocol::record::Media {
            sha256: sha256.to_owned(),
            size,
            mime: "video/mp4".into(),
            file_name: format!("VID_{seq:04}.mp4"),
            file_index: Some(seq),
            started_at: None,
            duration_ms: None,
        });
        b
    }

    /// The next upload grant, verified against `hub_key`, with its HTTP token.
    pub async fn grant(
        &mut self,
        hub_key: &PublicKey,
    ) -> anyhow::Result<(evsync_protocol::grant::GrantBody, String)> {
        let payload = tokio::time::timeout(Duration::from_secs(10), self.grants.recv())
            .await
            .context("no grant within 10 s")?
            .context("grant channel closed")?;
        let (grant, env) = evsync_protocol::grant::GrantBody::open(&payload, hub_key)?;
        Ok((grant, evsync_protocol::grant::GrantBody::token(&env)))
    }

    /// Whether a grant arrives within `within` (for checking that none does).
    pub async fn grant_within(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, self.grants.recv())
            .await
            .is_ok_and(|g| g.is_some())
    }

    /// The next media receipt, verified against `hub_key`.
    pub async fn media_receipt(
        &mut self,
        hub_key: &PublicKey,
    ) -> anyhow::Result<evsync_protocol::media_receipt::MediaReceiptBody> {
        let payload = tokio::time::timeout(Duration::from_secs(10), self.media_receipts.recv())
            .await
            .context("no media receipt within 10 s")?
            .context("media receipt channel closed")?;
        Ok(evsync_protocol::media_receipt::MediaReceiptBody::open(
            &payload, hub_key,
        )?)
    }
}

impl Drop for RawDevice {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

/// One server-sent event of `/api/v1/events`.
#[derive(Debug)]
pub struct Sse {
    /// `record` or `alert`.
    pub event: String,
    /// Its id (resume with `Last-Event-ID`).
    pub id: String,
    /// The record or alert.
    pub data: Value,
}

/// Reads `n` events from `/api/v1/events` (resuming after `last_id`), then
/// hangs up; fewer if the hub ends the stream first.
pub async fn read_events(
    base: String,
    token: String,
    last_id: Option<String>,
    n: usize,
) -> anyhow::Result<Vec<Sse>> {
    read_events_until(base, token, last_id, Duration::from_secs(20), move |got| {
        got.len() == n
    })
    .await
}

/// Reads events from `/api/v1/events` (resuming after `last_id`) until
/// `enough` says so of those read, then hangs up; fewer if the hub ends the
/// stream first. Fails if that takes longer than `within`.
pub async fn read_events_until(
    base: String,
    token: String,
    last_id: Option<String>,
    within: Duration,
    enough: impl Fn(&[Sse]) -> bool + Send + 'static,
) -> anyhow::Result<Vec<Sse>> {
    tokio::task::spawn_blocking(move || {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(within))
            .build()
            .new_agent();
        let mut req = agent
            .get(format!("{base}/api/v1/events"))
            .header("Authorization", format!("Bearer {token}"));
        if let Some(id) = last_id {
            req = req.header("Last-Event-ID", id);
        }
        let mut resp = req.call()?;
        let reader = std::io::BufReader::new(resp.body_mut().as_reader());
        let mut out = Vec::new();
        let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
        for line in std::io::BufRead::lines(reader) {
            let line = line?;
            if let Some(v) = line.strip_prefix("event: ") {
                event = v.to_owned();
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = v.to_owned();
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push_str(v);
            } else if line.is_empty() && !data.is_empty() {
                out.push(Sse {
                    event: std::mem::take(&mut event),
                    id: std::mem::take(&mut id),
                    data: serde_json::from_str(&std::mem::take(&mut data))?,
                });
                if enough(&out) {
                    return Ok(out);
                }
            }
        }
        // The hub ended the stream (it stopped, or the token was revoked).
        Ok(out)
    })
    .await?
}

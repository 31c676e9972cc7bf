//! `evsync-hub demo`: the whole system on one machine. A hub with its
//! embedded broker and SQLite store, field agents in this process fed with
//! generated events and MP4 recordings from Chongqing units, and a dock
//! ([`dock`]) with simulated recorders holding real MP4s made by ffmpeg.
//! Prints `ready api=… token=… mqtt=…` once every demo record is
//! receipted, every recording is stored verified at the hub and the
//! recorders are emptied.

pub mod dock;
mod media;

pub use media::write_mp4;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use evsync_agent::agent::Agent;
use evsync_agent::config::{AgentConfig, SpoolSection};

use crate::config::{HttpConfig, HubConfig, MediaConfig, MqttConfig};
use crate::server::Hub;

const DISTRICTS: &str = include_str!("../../../data/chongqing-districts.csv");
const DOMAINS: &str = include_str!("../../../data/enforcement-domains.csv");

/// Options of the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Data folder; a temporary one when absent.
    pub data: Option<PathBuf>,
    /// Keep serving after ready until SIGINT/SIGTERM.
    pub serve: bool,
    /// API address (a free loopback port when absent).
    pub http: Option<SocketAddr>,
    /// Embedded broker address (a free loopback port when absent).
    pub mqtt: Option<SocketAddr>,
    /// Number of field agents.
    pub agents: usize,
    /// Events per agent.
    pub events: usize,
    /// Recordings per agent.
    pub recordings: usize,
    /// Simulated recorders docked in the demo dock (0: no dock).
    pub recorders: usize,
    /// New recordings on each simulated recorder per run.
    pub recorder_recordings: u32,
}

/// Index of the demo unit ([`demo_unit`]) the dock belongs to: 北碚区城市管理局.
pub const DOCK_UNIT: usize = 5;

/// A Chongqing unit for the demo: district, bureau and domain from `data/`.
#[derive(Debug, Clone)]
pub struct DemoUnit {
    /// 12-character unit code starting with the district's 6-digit code.
    pub code: String,
    /// e.g. 渝北区市场监督管理局.
    pub name: String,
    /// Two-digit domain code.
    pub domain: String,
}

/// The `n`-th demo unit, cycling through districts and domains.
pub fn demo_unit(n: usize) -> DemoUnit {
    let districts: Vec<(&str, &str)> = DISTRICTS
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(','))
        .collect();
    let domains: Vec<Vec<&str>> = DOMAINS
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let (dcode, dname) = districts[(n * 7 + 11) % districts.len()];
    let domain = &domains[n % domains.len()];
    DemoUnit {
        code: format!("{dcode}{}{:04}", domain[0], n + 1),
        name: format!("{dname}{}", domain[3]),
        domain: domain[0].to_owned(),
    }
}

/// Writes `file` into `dir` by writing `name.part` and renaming, as a careful field application does.
fn drop_file(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let part = dir.join(format!("{name}.part"));
    write(&part)?;
    std::fs::rename(&part, dir.join(name)).with_context(|| format!("renaming {}", part.display()))
}

/// Fills a spool folder with a shift's worth of events and recordings; returns how many files.
pub fn fill_spool(
    spool: &Path,
    unit: &DemoUnit,
    events: usize,
    recordings: usize,
    seed: u8,
) -> anyhow::Result<usize> {
    std::fs::create_dir_all(spool)?;
    let start = chrono::Utc::now() - chrono::Duration::hours(2);
    // Action k starts at event 4k and lasts 6 s; recording k (4 to 8 s long)
    // starts with it, so some actions are covered and some only partly
    // (docs/coverage.md); actions beyond the recordings have none.
    let action_start = |k: usize| start + chrono::Duration::seconds(k as i64 * 4 * 30);
    for i in 0..events {
        let t = if i % 4 == 3 {
            action_start(i / 4) + chrono::Duration::seconds(6)
        } else {
            start + chrono::Duration::seconds(i as i64 * 30)
        };
        let action = format!("A{seed:02}{:04}", i / 4);
        let event = match i % 4 {
            0 => {
                serde_json::json!({"type": "action_started", "action_id": action, "domain": unit.domain,
                    "case_number": format!("渝{}罚〔2026〕{}号", &unit.code[..6], 100 + i), "legal_basis": "《中华人民共和国行政处罚法》第五十一条"})
            }
            1 => {
                serde_json::json!({"type": "gps_fix", "lat": 29.56 + (i as f64) * 1e-4, "lon": 106.55 + (i as f64) * 1e-4})
            }
            2 => serde_json::json!({"type": "marked_important", "note": "现场检查"}),
            _ => serde_json::json!({"type": "action_ended", "action_id": action}),
        };
        let text = serde_json::json!({ "time": t.to_rfc3339(), "event": event }).to_string();
        drop_file(spool, &format!("event-{i:05}.json"), |p| {
            Ok(std::fs::write(p, &text)?)
        })?;
    }
    let actions = events.div_ceil(4);
    for i in 0..recordings {
        drop_file(spool, &format!("VID_{seed:02}{i:04}.mp4"), |p| {
            write_mp4(p, 4 + (i as u32 % 5), 600, seed.wrapping_add(i as u8))?;
            if i < actions {
                // Its start (the MP4 header has none): the file's time.
                std::fs::File::options()
                    .write(true)
                    .open(p)?
                    .set_modified(action_start(i).into())?;
            }
            Ok(())
        })?;
    }
    Ok(events + recordings)
}

/// Runs the demo; returns once done (or, with `serve`, once told to stop).
pub async fn run(
    mut stop: evsync_agent::cli::StopSignals,
    opts: DemoOptions,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        opts.recorders <= dock::MAX_RECORDERS,
        "--recorders {}: expected 0 to {}",
        opts.recorders,
        dock::MAX_RECORDERS
    );
    if opts.recorders > 0 {
        evsync_recorder_sim::generate::require_ffmpeg().context(
            "the demo dock's simulated recorders hold MP4s made by ffmpeg \
             (--recorders 0 runs the demo without the dock)",
        )?;
    }
    let temp;
    let root = match &opts.data {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::Builder::new().prefix("evsync-demo-").tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let mqtt_listen = match opts.mqtt {
        Some(a) => a,
        None => crate::broker::free_loopback_addr()?,
    };
    let hub_cfg = HubConfig {
        hub_id: "demo-hub".into(),
        data_dir: root.join("hub"),
        auto_approve: true,
        gap_grace_secs: 60,
        mqtt: MqttConfig {
            embedded: true,
            listen: mqtt_listen,
            url: None,
            ..MqttConfig::default()
        },
        http: HttpConfig {
            listen: opts
                .http
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
            ..HttpConfig::default()
        },
        media: MediaConfig::default(),
        store: Default::default(),
        fleet: Default::default(),
        coverage: Default::default(),
    };
    let store = hub_cfg.store_location();
    let mut hub = Hub::start(hub_cfg).await?;
    eprintln!("demo: hub up, data in {}", root.display());

    register_fleet(&store, &opts)?;
    let mut agents = Vec::new();
    // With a reused --data folder, earlier runs' records are already there.
    let mut expected = hub.record_count().await? as usize;
    for n in 0..opts.agents {
        let unit = demo_unit(n);
        let device_id = format!("field-{}-{:02}", &unit.code[..6], n + 1);
        let dir = root.join("agents").join(&device_id);
        let spool = dir.join("spool");
        expected += fill_spool(&spool, &unit, opts.events, opts.recordings, n as u8)?;
        let mut cfg = AgentConfig::field(&device_id, &dir, &hub.mqtt_url, &hub.public_key);
        cfg.officer_id = Some(format!("{:06}", 100_001 + n));
        cfg.unit_code = Some(unit.code.clone());
        cfg.spool = SpoolSection {
            scan_interval_ms: 100,
            settle_ms: 200,
        };
        eprintln!("demo: agent {device_id} of {} ({})", unit.name, unit.code);
        agents.push((device_id, Agent::start(cfg).await?));
    }

    let dock = match opts.recorders {
        0 => None,
        n => Some(
            dock::DemoDock::start(
                &root,
                &demo_unit(DOCK_UNIT),
                n,
                opts.recorder_recordings,
                &hub.mqtt_url,
                &hub.public_key,
            )
            .await?,
        ),
    };

    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let stored = hub.record_count().await?;
        let (mut backlog, mut recordings) = (0, 0);
        for (_, a) in &agents {
            backlog += a.backlog()?.records;
            recordings += a.media_backlog()?.files;
        }
        let docked = match &dock {
            Some(d) => d.progress(&hub).await?,
            None => dock::DockProgress::default(),
        };
        // Ready once every record is receipted and every recording's bytes too,
        // and the dock has emptied its recorders.
        if stored as usize >= expected && backlog == 0 && recordings == 0 && docked.done() {
            break;
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "demo: only {stored} of {expected} records receipted after 300 s (backlog {backlog}, \
                 recordings not yet uploaded {recordings}; dock: {} recordings not stored at the hub, \
                 {} files left on the recorders, backlog {}, uploads {})",
                docked.not_stored,
                docked.on_recorders,
                docked.backlog,
                docked.uploads
            );
        }
        tokio::select! {
            _ = stop.wait() => {
                eprintln!("demo: stopping before ready");
                shutdown(agents, dock, hub).await?;
                anyhow::bail!("demo: stopped by a signal before every record was receipted");
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    let api = format!("http://{}", hub.http_addr);
    if let Some(d) = &dock {
        eprintln!(
            "demo: dock {} emptied its recorders: {} recordings stored and verified at the hub",
            d.device_id,
            d.expected()
        );
    }
    eprintln!(
        "demo: all {expected} records verified, stored and receipted from {} field agents, recordings uploaded and verified\n\
         demo: feed    curl -H 'Authorization: Bearer {}' '{api}/api/v1/records?limit=5'\n\
         demo: alerts  {api}/api/v1/alerts   metrics {api}/metrics\n\
         demo: dashboard {api}/dashboard/#token={}\n\
         demo: hub key {} (also in {})",
        agents.len(),
        hub.token,
        hub.token,
        hub.public_key.to_base64(),
        root.join("hub/hub.pub").display()
    );
    println!("ready api={api} token={} mqtt={}", hub.token, hub.mqtt_url);
    if opts.serve {
        tokio::select! {
            _ = stop.wait() => {}
            e = hub.failed() => return Err(e),
        }
        eprintln!("demo: stopping");
    }
    shutdown(agents, dock, hub).await
}

/// Field officers of the demo units (姓名), one per field agent.
const FIELD_OFFICERS: &[&str] = &[
    "王芳", "李强", "张敏", "刘杰", "陈洁", "杨军", "赵磊", "黄丽",
];

/// What an operator would have set up before the shift: the demo's units and
/// officers (as an import from the district's roster would), and each field
/// device's domain.
fn register_fleet(db: &crate::store::Location, opts: &DemoOptions) -> anyhow::Result<()> {
    let mut store = crate::store::Store::connect(db)?;
    let mut units = Vec::new();
    let mut officers = Vec::new();
    for n in 0..opts.agents {
        let unit = demo_unit(n);
        officers.push(crate::store::Officer {
            officer_id: format!("{:06}", 100_001 + n),
            name: FIELD_OFFICERS[n % FIELD_OFFICERS.len()].to_owned(),
            unit_code: Some(unit.code.clone()),
            domain: Some(unit.domain.clone()),
            active: true,
        });
        units.push(unit);
    }
    if opts.recorders > 0 {
        let unit = demo_unit(DOCK_UNIT);
        for (k, name) in dock::OFFICERS.iter().take(opts.recorders).enumerate() {
            officers.push(crate::store::Officer {
                officer_id: format!("{:06}", 200_001 + k),
                name: (*name).to_owned(),
                unit_code: Some(unit.code.clone()),
                domain: Some(unit.domain.clone()),
                active: true,
            });
        }
        units.push(unit);
    }
    let units: Vec<crate::store::Unit> = units
        .into_iter()
        .map(|u| crate::store::Unit {
            district_code: Some(u.code[..6].to_owned()),
            domain: Some(u.domain),
            unit_code: u.code,
            name: u.name,
            parent_code: None,
        })
        .collect();
    store.upsert_units(&units)?;
    store.upsert_officers(&officers)?;
    // Everyone's shift, from the duty roster: the last two hours and a bit
    // (the field agents' events span the last two hours).
    let now = chrono::Utc::now();
    let shift = |o: &crate::store::Officer| crate::store::RosterDuty {
        officer_id: o.officer_id.clone(),
        start: crate::store::stamp(now - chrono::Duration::minutes(130)),
        end: crate::store::stamp(now),
    };
    let roster = officers
        .iter()
        .map(|o| {
            let duty = shift(o);
            let span = duty
                .span()
                .map_err(|e| anyhow::anyhow!("demo roster: {e}"))?;
            Ok((duty, span))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    store.import_duties(&roster)?;
    Ok(())
}

/// Stops the field agents, the dock and its recorders, then the hub.
async fn shutdown(
    agents: Vec<(String, Agent)>,
    dock: Option<dock::DemoDock>,
    hub: Hub,
) -> anyhow::Result<()> {
    for (id, a) in agents {
        a.shutdown()
            .await
            .with_context(|| format!("stopping agent {id}"))?;
    }
    if let Some(d) = dock {
        d.shutdown().await?;
    }
    hub.shutdown().await
}

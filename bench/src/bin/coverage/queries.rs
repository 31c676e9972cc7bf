//! The coverage queries over HTTP, against a hub process serving the
//! generated store, and the baseline they are compared with: a plain full
//! scan of the same store's records table.
//!
//! Every query is asked once (cold: the first time the hub is asked it; the
//! operating system's page cache is warm from generation) and then
//! `rounds` more times (warm: the median). An endpoint this hub does not
//! have (404) is reported `missing`; any other answer but 200 is a failure.
//! The hub's coverage sweeper is set to look only once a day, so that it
//! does not write while queries are timed (generation timed its sweeps).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// A coverage query: `path?query`, where `{unit}` and `{officer}` are
/// replaced by a unit code and an officer number of the district.
pub struct Endpoint {
    /// Name in the figures.
    pub name: &'static str,
    /// Path under the hub's base URL.
    pub path: &'static str,
    /// Query string, without the window.
    pub query: &'static str,
}

/// The queries timed, each with a 30-day and a 90-day window.
pub const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        name: "by_unit",
        path: "/api/v1/coverage",
        query: "group_by=unit",
    },
    Endpoint {
        name: "by_domain",
        path: "/api/v1/coverage",
        query: "group_by=domain",
    },
    Endpoint {
        name: "by_officer",
        path: "/api/v1/coverage",
        query: "group_by=officer",
    },
    Endpoint {
        name: "by_day",
        path: "/api/v1/coverage",
        query: "group_by=day",
    },
    Endpoint {
        name: "one_unit",
        path: "/api/v1/coverage",
        query: "group_by=unit&unit_code={unit}",
    },
    Endpoint {
        name: "actions_uncovered",
        path: "/api/v1/coverage/actions",
        query: "covered=false",
    },
    Endpoint {
        name: "officers_not_working",
        path: "/api/v1/coverage/officers",
        query: "working=false",
    },
    Endpoint {
        name: "late",
        path: "/api/v1/coverage/late",
        query: "",
    },
    Endpoint {
        name: "hours_unrecorded",
        path: "/api/v1/coverage/hours",
        query: "recorded=false&officer_id={officer}",
    },
    Endpoint {
        name: "cells",
        path: "/api/v1/coverage/cells",
        query: "",
    },
    Endpoint {
        name: "by_unit_csv",
        path: "/api/v1/coverage",
        query: "group_by=unit&format=csv",
    },
    Endpoint {
        name: "actions_uncovered_csv_10k",
        path: "/api/v1/coverage/actions",
        query: "covered=false&limit=10000&format=csv",
    },
];

/// Windows, in days, each query is asked over.
pub const WINDOWS: [i64; 2] = [30, 90];

/// A query whose first answer took longer than this is repeated once, not `rounds` times.
const SLOW_MS: f64 = 30_000.0;

/// How one query went.
pub enum Outcome {
    /// 200 every time.
    Answered {
        /// First request, milliseconds.
        cold_ms: f64,
        /// Median of the repeats, milliseconds.
        warm_ms: f64,
        /// Repeats made.
        repeats: usize,
        /// Size of the answer.
        bytes: usize,
        /// The first answer.
        body: Vec<u8>,
    },
    /// The hub does not have this (404).
    Missing {
        /// The status.
        status: u16,
    },
    /// Any other answer.
    Failed {
        /// The URL asked.
        url: String,
        /// The status.
        status: u16,
        /// What the hub said.
        body: String,
    },
}

/// A hub process serving a data folder, killed when dropped.
pub struct HubProcess {
    child: Child,
    /// Its base URL.
    pub base: String,
    /// Its API token.
    pub token: String,
    /// How long it took to answer `/healthz`, seconds.
    pub start_seconds: f64,
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(1800)))
        .build()
        .into()
}

impl HubProcess {
    /// Starts `hub` (`serve`) on `data_dir` and waits until it answers.
    pub fn start(hub: &Path, data_dir: &Path) -> anyhow::Result<HubProcess> {
        let (http, mqtt) = (free_port()?, free_port()?);
        let token = "bench-coverage-token-0123456789".to_owned();
        let config: PathBuf = data_dir.join("bench-hub.toml");
        std::fs::write(
            &config,
            format!(
                "hub_id = \"{}\"\ndata_dir = {data_dir:?}\n[mqtt]\nlisten = \"127.0.0.1:{mqtt}\"\n[http]\nlisten = \"127.0.0.1:{http}\"\ntoken = \"{token}\"\n[coverage]\nsweep_secs = 86400\n",
                crate::generate::HUB_ID
            ),
        )
        .with_context(|| format!("writing {}", config.display()))?;
        let log_path = data_dir.join("bench-hub.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let t0 = Instant::now();
        let child = Command::new(hub)
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting the hub {}", hub.display()))?;
        let mut proc = HubProcess {
            child,
            base: format!("http://127.0.0.1:{http}"),
            token,
            start_seconds: 0.0,
        };
        let agent = agent();
        // A hub that migrates the store to a newer schema may take long to answer.
        let limit = Duration::from_secs(3600);
        loop {
            if let Some(status) = proc.child.try_wait()? {
                let said = std::fs::read_to_string(&log_path).unwrap_or_default();
                anyhow::bail!("the hub exited while starting ({status}); its log:\n{said}");
            }
            let ok = agent
                .get(format!("{}/healthz", proc.base))
                .call()
                .is_ok_and(|r| r.status() == 200);
            if ok {
                break;
            }
            anyhow::ensure!(
                t0.elapsed() < limit,
                "the hub did not answer /healthz within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        proc.start_seconds = t0.elapsed().as_secs_f64();
        Ok(proc)
    }

    /// Waits until the hub has summed every coverage day (its
    /// `evsync_hub_coverage_stale_days` gauge reads 0), so that the queries
    /// are timed as a running hub answers them; returns the seconds waited,
    /// or none for a hub without the gauge.
    pub fn wait_summed(&self) -> anyhow::Result<Option<f64>> {
        const GAUGE: &str = "evsync_hub_coverage_stale_days ";
        let agent = agent();
        let url = format!("{}/metrics", self.base);
        let t0 = Instant::now();
        loop {
            let (status, body, _) = self.ask(&agent, &url)?;
            anyhow::ensure!(status == 200, "GET {url}: status {status}");
            let text = String::from_utf8_lossy(&body);
            let Some(line) = text.lines().find(|l| l.starts_with(GAUGE)) else {
                return Ok(None);
            };
            if line[GAUGE.len()..].trim() == "0" {
                return Ok(Some(t0.elapsed().as_secs_f64()));
            }
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(3600),
                "the hub still has stale coverage days after an hour: {line}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Asks `url` once: status, body and milliseconds to the last byte.
    fn ask(&self, agent: &ureq::Agent, url: &str) -> anyhow::Result<(u16, Vec<u8>, f64)> {
        let t = Instant::now();
        let mut response = agent
            .get(url)
            .header("Authorization", format!("Bearer {}", self.token))
            .call()
            .with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .with_context(|| format!("reading the answer to GET {url}"))?;
        Ok((status, body, t.elapsed().as_secs_f64() * 1000.0))
    }

    /// Times `path_and_query` cold and then `rounds` times warm (once when
    /// the first answer took over 30 s).
    pub fn time(&self, path_and_query: &str, rounds: usize) -> anyhow::Result<Outcome> {
        let agent = agent();
        let url = format!("{}{path_and_query}", self.base);
        let (status, body, cold_ms) = self.ask(&agent, &url)?;
        let text = || String::from_utf8_lossy(&body).into_owned();
        match status {
            200 => {}
            404 => return Ok(Outcome::Missing { status }),
            _ => {
                return Ok(Outcome::Failed {
                    url,
                    status,
                    body: text(),
                })
            }
        }
        let repeats = if cold_ms > SLOW_MS { 1 } else { rounds };
        let mut warm = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let (status, again, ms) = self.ask(&agent, &url)?;
            if status != 200 {
                return Ok(Outcome::Failed {
                    url,
                    status,
                    body: String::from_utf8_lossy(&again).into_owned(),
                });
            }
            warm.push(ms);
        }
        Ok(Outcome::Answered {
            cold_ms,
            warm_ms: median(&mut warm).unwrap_or(cold_ms),
            repeats,
            bytes: body.len(),
            body,
        })
    }
}

/// The median, or `None` of nothing.
pub fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// The baseline: `SELECT COUNT(*), SUM(length(body)) FROM records` on the
/// store, read-only, once (cold) and `rounds` more times (the median).
/// Returns (cold ms, warm ms, rows, body bytes).
pub fn baseline_scan(db: &Path, rounds: usize) -> anyhow::Result<(f64, f64, i64, i64)> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening {} read-only", db.display()))?;
    let scan = || -> anyhow::Result<(f64, i64, i64)> {
        let t = Instant::now();
        let (rows, bytes): (i64, i64) =
            conn.query_row("SELECT COUNT(*), SUM(length(body)) FROM records", [], |r| {
                Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.unwrap_or(0)))
            })?;
        Ok((t.elapsed().as_secs_f64() * 1000.0, rows, bytes))
    };
    let (cold, rows, bytes) = scan()?;
    let mut warm = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        warm.push(scan()?.0);
    }
    Ok((cold, median(&mut warm).unwrap_or(cold), rows, bytes))
}

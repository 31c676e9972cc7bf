//! Coverage benchmark (run it through `bench/coverage`).
//!
//! Generates a realistic district — by default 2,000 officers, 2,500
//! recorders at 100 docks, 90 days: ≈1,000,000 media records and 100,000
//! enforcement actions ([`district`]) — into a hub store through the hub's
//! real ingest ([`generate`]), then starts the hub on that store and times
//! every coverage query over HTTP with a 30-day and a 90-day window, cold
//! and warm ([`queries`]), side by side with a plain full scan of the same
//! store's records. Target (SPEC.md): every query answered in under 1 s.
//!
//! Prints `key=value` figures and ends with the headline
//! `slowest_query_ms=...` (the slowest cold or warm answer of any query).
//! With `--data DIR` the store is kept there, and a later run with the same
//! scale and seed times the queries again without generating.

// The crate root is this file, so its modules are named by path.
#[path = "coverage/district.rs"]
mod district;
#[path = "coverage/generate.rs"]
mod generate;
#[path = "coverage/queries.rs"]
mod queries;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;

use district::{District, Scale, DAY};
use queries::{HubProcess, Outcome, ENDPOINTS, WINDOWS};

/// Options.
#[derive(Debug, Parser)]
struct Opts {
    /// The hub binary to run.
    #[arg(long)]
    hub: PathBuf,
    /// A small district for a quick run: 100 officers, 125 recorders, 5
    /// docks, 14 days, 7,800 media records, 780 actions (each flag below
    /// still overrides).
    #[arg(long)]
    small: bool,
    /// Officers [default: 2000].
    #[arg(long)]
    officers: Option<usize>,
    /// Recorders [default: 2500].
    #[arg(long)]
    recorders: Option<usize>,
    /// Docks [default: 100].
    #[arg(long)]
    docks: Option<usize>,
    /// Days, ending yesterday [default: 90].
    #[arg(long)]
    days: Option<usize>,
    /// Media records [default: 1000000].
    #[arg(long)]
    media: Option<usize>,
    /// Enforcement actions [default: 100000].
    #[arg(long)]
    actions: Option<usize>,
    /// Seed of the district.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Warm repeats of each query (the median counts).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Keep the store in this folder; if it already holds the district of
    /// these flags, time the queries on it without generating again.
    #[arg(long)]
    data: Option<PathBuf>,
}

impl Opts {
    fn scale(&self) -> Scale {
        let pick = |v: Option<usize>, small: usize, full: usize| {
            v.unwrap_or(if self.small { small } else { full })
        };
        Scale {
            officers: pick(self.officers, 100, 2000),
            recorders: pick(self.recorders, 125, 2500),
            docks: pick(self.docks, 5, 100),
            days: pick(self.days, 14, 90),
            media: pick(self.media, 7_800, 1_000_000),
            actions: pick(self.actions, 780, 100_000),
            seed: self.seed,
        }
    }
}

/// The file in a kept data folder that says which district it holds.
const MARKER: &str = "bench-coverage.txt";

fn marker_lines(scale: &Scale, planned_at_ms: i64) -> Vec<(String, String)> {
    [
        ("officers", scale.officers.to_string()),
        ("recorders", scale.recorders.to_string()),
        ("docks", scale.docks.to_string()),
        ("days", scale.days.to_string()),
        ("media", scale.media.to_string()),
        ("actions", scale.actions.to_string()),
        ("seed", scale.seed.to_string()),
        ("planned_at_ms", planned_at_ms.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Reads a kept folder's marker: the figures of its generation by name.
fn read_marker(dir: &Path) -> anyhow::Result<Option<BTreeMap<String, String>>> {
    let path = dir.join(MARKER);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    Ok(Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect(),
    ))
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// A time in milliseconds as the hub takes it in a query string.
fn stamp(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Action figures of a `/api/v1/coverage` answer: its `all` when it has
/// one, otherwise the sum of its groups (each action once per group; by
/// day and by unit each action is in exactly one group).
fn action_figures(body: &[u8]) -> Option<(i64, i64, BTreeMap<String, i64>)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut parts: Vec<&serde_json::Value> = Vec::new();
    match v.get("all") {
        Some(all) => parts.push(&all["actions"]),
        None => parts.extend(v["groups"].as_array()?.iter().map(|g| &g["actions"])),
    }
    let (mut covered, mut total) = (0, 0);
    let mut causes = BTreeMap::new();
    for a in parts {
        covered += a["covered"].as_i64().unwrap_or(0);
        total += a["total"].as_i64().unwrap_or(0);
        if let Some(c) = a["uncovered_by_cause"].as_object() {
            for (k, n) in c {
                *causes.entry(k.clone()).or_default() += n.as_i64().unwrap_or(0);
            }
        }
    }
    Some((covered, total, causes))
}

/// The other figures of an answer's `all` (devices, personnel, time, ...), as ratios.
fn other_ratios(body: &[u8]) -> Vec<(String, f64)> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    v["all"]
        .as_object()
        .map(|all| {
            all.iter()
                .filter(|(k, _)| k.as_str() != "actions")
                .filter_map(|(k, f)| Some((k.clone(), f["ratio"].as_f64()?)))
                .collect()
        })
        .unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let opts = Opts::parse();
    let scale = opts.scale();
    let temp;
    let data_dir = match &opts.data {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("evsync-bench-coverage-")
                .tempdir_in(".")
                .context("creating a working folder here")?;
            temp.path().to_path_buf()
        }
    };
    let db = data_dir.join("hub.sqlite");

    // Generate, or reuse what a kept folder holds for the same flags.
    let kept = read_marker(&data_dir)?;
    let planned_at_ms = match &kept {
        Some(m) => {
            let wanted = marker_lines(&scale, 0);
            let differs: Vec<String> = wanted
                .iter()
                .filter(|(k, _)| k != "planned_at_ms")
                .filter(|(k, v)| m.get(k) != Some(v))
                .map(|(k, v)| {
                    format!(
                        "{k} = {} there, {v} asked",
                        m.get(k).map_or("?", String::as_str)
                    )
                })
                .collect();
            anyhow::ensure!(
                differs.is_empty(),
                "{} holds another district ({}): use another --data folder or the same flags",
                data_dir.display(),
                differs.join(", ")
            );
            m.get("planned_at_ms")
                .and_then(|v| v.parse().ok())
                .context("the marker names no planned_at_ms")?
        }
        None => {
            anyhow::ensure!(
                !db.exists(),
                "{} holds a hub store but no {MARKER}: not a folder this benchmark made",
                data_dir.display()
            );
            chrono::Utc::now().timestamp_millis()
        }
    };
    let t = std::time::Instant::now();
    let district = Arc::new(District::plan(&scale, planned_at_ms)?);
    let plan_s = t.elapsed().as_secs_f64();
    println!(
        "officers={} recorders={} docks={} units={} days={} seed={}",
        scale.officers,
        scale.recorders,
        district.docks.len(),
        district.units.len(),
        scale.days,
        scale.seed
    );
    println!(
        "planned_actions={} planned_media={} shifts={} shifts_without_recorder={} plan_s={plan_s:.1}",
        district.actions.len(),
        district.recordings.len(),
        district.shifts.len(),
        district.shifts_without_recorder()
    );
    let figures = match kept {
        Some(m) => {
            println!("generated=reused");
            m
        }
        None => {
            let g = generate::generate(district.clone(), &data_dir, scale.seed, planned_at_ms)?;
            let mut lines = marker_lines(&scale, planned_at_ms);
            lines.extend(
                [
                    ("records", g.records.to_string()),
                    ("media_records", g.media.to_string()),
                    ("event_records", g.events.to_string()),
                    ("recordings_arrived", g.arrived.to_string()),
                    ("generate_s", format!("{:.1}", g.seconds)),
                    (
                        "generate_records_per_s",
                        format!("{:.0}", g.records as f64 / g.seconds),
                    ),
                    ("ingest_s", format!("{:.1}", g.ingest_seconds)),
                    (
                        "ingest_records_per_s",
                        format!("{:.0}", g.records as f64 / g.ingest_seconds),
                    ),
                    ("arrivals_s", format!("{:.1}", g.arrival_seconds)),
                    (
                        "arrivals_per_s",
                        format!("{:.0}", g.arrived as f64 / g.arrival_seconds),
                    ),
                    ("signing_s", format!("{:.1}", g.signing_seconds)),
                    ("first_sweep_s", format!("{:.1}", g.first_sweep_seconds)),
                    ("first_sweep_alerts", g.first_sweep_alerts.to_string()),
                    ("next_sweep_s", format!("{:.2}", g.next_sweep_seconds)),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v)),
            );
            let text: String = lines.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            std::fs::write(data_dir.join(MARKER), text)
                .with_context(|| format!("writing {}", data_dir.join(MARKER).display()))?;
            println!("generated=now");
            lines.into_iter().collect()
        }
    };
    for key in [
        "records",
        "media_records",
        "event_records",
        "recordings_arrived",
        "generate_s",
        "generate_records_per_s",
        "ingest_s",
        "ingest_records_per_s",
        "arrivals_s",
        "arrivals_per_s",
        "signing_s",
        "first_sweep_s",
        "first_sweep_alerts",
        "next_sweep_s",
    ] {
        if let Some(v) = figures.get(key) {
            println!("{key}={v}");
        }
    }
    println!(
        "store_mib={:.0}",
        (file_size(&db) + file_size(&data_dir.join("hub.sqlite-wal"))) as f64 / 1048576.0
    );

    // The baseline: a plain full scan of the records.
    let (scan_cold, scan_warm, rows, bytes) = queries::baseline_scan(&db, opts.rounds)?;
    println!(
        "baseline_scan_rows={rows} baseline_scan_mib={:.0} baseline_scan_cold_ms={scan_cold:.0} baseline_scan_warm_ms={scan_warm:.0}",
        bytes as f64 / 1048576.0
    );

    // The queries.
    // Other work on the machine shows in the timings: say how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "cores={} loadavg_1m_before_queries={}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        load.split_whitespace().next().unwrap_or("?")
    );
    let hub = HubProcess::start(&opts.hub, &data_dir)?;
    println!("hub_start_s={:.1}", hub.start_seconds);
    match hub.wait_summed()? {
        Some(s) => println!("coverage_days_summed_s={s:.1}"),
        None => println!("coverage_days_summed_s=missing"),
    }
    let to = district.end_ms;
    let unit = district.busiest_unit().code.clone();
    let officer = district.officers[0].id.clone();
    println!(
        "window_to={} unit_code={unit} officer_id={officer}",
        stamp(to)
    );
    let mut failures = Vec::new();
    let mut slowest: Option<(String, f64)> = None;
    let (mut slowest_cold, mut slowest_warm) = (0.0f64, 0.0f64);
    let mut by_day: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
    for e in ENDPOINTS {
        for days in WINDOWS {
            let name = format!("{}_{days}d", e.name);
            let q = e
                .query
                .replace("{unit}", &unit)
                .replace("{officer}", &officer);
            let window = format!("from={}&to={}", stamp(to - days * DAY), stamp(to));
            let sep = if q.is_empty() { "" } else { "&" };
            let path = format!("{}?{q}{sep}{window}", e.path);
            match hub.time(&path, opts.rounds)? {
                Outcome::Answered {
                    cold_ms,
                    warm_ms,
                    repeats,
                    bytes,
                    body,
                } => {
                    let fewer = if repeats == opts.rounds {
                        String::new()
                    } else {
                        format!(" {name}_repeats={repeats}")
                    };
                    println!(
                        "{name}_cold_ms={cold_ms:.0} {name}_warm_ms={warm_ms:.0} {name}_kib={:.0} {name}_ratio_vs_scan={:.2}{fewer}",
                        bytes as f64 / 1024.0,
                        warm_ms / scan_warm.max(0.001)
                    );
                    slowest_cold = slowest_cold.max(cold_ms);
                    slowest_warm = slowest_warm.max(warm_ms);
                    let worst = cold_ms.max(warm_ms);
                    if slowest.as_ref().is_none_or(|(_, ms)| worst > *ms) {
                        slowest = Some((name.clone(), worst));
                    }
                    if e.name == "by_day" {
                        by_day.insert(days, body);
                    }
                }
                Outcome::Missing { status } => println!("{name}=missing status={status}"),
                Outcome::Failed { url, status, body } => {
                    println!("{name}=failed status={status}");
                    failures.push(format!("GET {url}: {status}: {body}"));
                }
            }
        }
    }
    drop(hub);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "loadavg_1m_after_queries={}",
        load.split_whitespace().next().unwrap_or("?")
    );

    // What the hub counted, beside what was planned.
    for (days, body) in &by_day {
        let planned = district.actions_between(to - days * DAY, to);
        print!("planned_actions_{days}d={planned}");
        if let Some((covered, total, causes)) = action_figures(body) {
            print!(
                " hub_actions_{days}d={total} hub_actions_covered_{days}d={covered} action_coverage_{days}d={:.3}",
                if total > 0 { covered as f64 / total as f64 } else { 0.0 }
            );
            for (cause, n) in causes {
                print!(" uncovered_{days}d_{cause}={n}");
            }
        }
        println!();
        let others = other_ratios(body);
        if !others.is_empty() {
            let line: Vec<String> = others
                .iter()
                .map(|(k, r)| format!("{k}_coverage_{days}d={r:.3}"))
                .collect();
            println!("{}", line.join(" "));
        }
    }
    for f in &failures {
        eprintln!("error: {f}");
    }
    let Some((name, ms)) = slowest else {
        anyhow::bail!("no coverage query answered");
    };
    println!("slowest_cold_ms={slowest_cold:.0} slowest_warm_ms={slowest_warm:.0}");
    println!("slowest_query={name}");
    println!("slowest_query_ms={ms:.0}");
    anyhow::ensure!(
        failures.is_empty(),
        "{} coverage queries failed (above)",
        failures.len()
    );
    Ok(())
}

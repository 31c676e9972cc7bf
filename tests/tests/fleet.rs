//! Issue 5 item 1 (the fleet) and SPEC.md "hub operator: one place to see
//! every device: online, backlog, …": an agent killed with SIGKILL is shown
//! offline within the configured time (its last will), one frozen with
//! SIGSTOP too (silent past `fleet.offline_after_secs`, no will needed), and
//! back online when it speaks again; units and officers are imported from
//! CSV (all rows or none, bad rows named), and a recorder changing hands
//! keeps its whole assignment history, on the CLI as on the API.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use evsync_e2e::*;
use evsync_hub::server::Hub;
use serde_json::Value;

const AGENT: &str = env!("CARGO_BIN_EXE_e2e-agent");
const HUB: &str = env!("CARGO_BIN_EXE_e2e-hub");

/// Seconds of silence after which the test hub shows an agent offline.
const OFFLINE_AFTER: u64 = 4;

async fn online(api: &Api, id: &str) -> anyhow::Result<Option<bool>> {
    let (status, d) = api.get(&format!("/api/v1/devices/{id}"), true).await?;
    Ok((status == 200).then(|| d["online"] == true))
}

/// Waits until the device's `online` is `want`; returns how long it took.
async fn until_online(
    api: &Api,
    id: &str,
    want: bool,
    within: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    eventually(within, &format!("{id} online = {want}"), || async {
        Ok(online(api, id).await? == Some(want))
    })
    .await?;
    Ok(started.elapsed())
}

fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()?;
    anyhow::ensure!(ok.success(), "kill {sig} {pid} failed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_is_offline_within_the_configured_time_and_a_frozen_one_too(
) -> anyhow::Result<()> {
    let dir = test_dir("fleet-live")?;
    let mut cfg = hub_config(dir.path(), None)?;
    cfg.fleet.offline_after_secs = OFFLINE_AFTER;
    let hub = Hub::start(cfg).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let start_agent = |name: &str| -> anyhow::Result<(String, Proc)> {
        let id = unique(name);
        let mut acfg = agent_config(dir.path(), &id, &hub.mqtt_url, &hub.public_key);
        acfg.uplink.status_secs = 1;
        let toml = dir.path().join(format!("{id}.toml"));
        write_agent_toml(&acfg, &toml)?;
        let args = ["run", "--config", toml.to_str().unwrap_or_default()];
        let proc = Proc::start(AGENT, &args, &dir.path().join(format!("{id}.log")))?;
        Ok((id, proc))
    };

    // SIGKILL: the broker sees the connection drop and publishes the last will.
    let (killed, mut proc) = start_agent("field-killed")?;
    until_online(&api, &killed, true, Duration::from_secs(15)).await?;
    proc.kill9();
    let took = until_online(&api, &killed, false, Duration::from_secs(OFFLINE_AFTER + 2)).await?;
    eprintln!("killed agent offline after {took:?}");

    // SIGSTOP: the connection stays open and no will comes; silence does it.
    let (frozen, mut proc) = start_agent("field-frozen")?;
    until_online(&api, &frozen, true, Duration::from_secs(15)).await?;
    let pid = proc.pid().ok_or_else(|| anyhow::anyhow!("no pid"))?;
    signal(pid, "-STOP")?;
    let took = until_online(&api, &frozen, false, Duration::from_secs(OFFLINE_AFTER + 3)).await?;
    assert!(
        took >= Duration::from_secs(OFFLINE_AFTER - 2),
        "offline after {took:?}: before any silence limit, so something else said so"
    );
    signal(pid, "-CONT")?;
    until_online(&api, &frozen, true, Duration::from_secs(10)).await?;
    let d = api.get_ok(&format!("/api/v1/devices/{frozen}")).await?;
    assert_eq!(d["kind"], "field", "{d}");
    assert!(
        d["backlog_records"].as_i64().is_some(),
        "backlog from heartbeats: {d}"
    );
    assert!(
        d["storage_total_bytes"].as_i64().is_some_and(|t| t > 0)
            && d["storage_free_bytes"].as_i64().is_some(),
        "the agent's storage from its heartbeat: {d}"
    );
    let (_, metrics) = api.get("/metrics", false).await?;
    let metrics = metrics.as_str().unwrap_or_default();
    for family in ["backlog_records", "backlog_bytes", "media_backlog"] {
        let series = format!("evsync_hub_{family}{{device=\"{frozen}\"}} ");
        assert!(metrics.contains(&series), "{series} not in /metrics");
    }
    proc.kill9();
    hub.shutdown().await
}

fn hub_cli(args: &[&str], config: &Path) -> anyhow::Result<std::process::Output> {
    Ok(Command::new(HUB)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()?)
}

fn ok_json(args: &[&str], config: &Path) -> anyhow::Result<Value> {
    let out = hub_cli(args, config)?;
    anyhow::ensure!(
        out.status.success(),
        "evsync-hub {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Units of a few real Chongqing districts, one bureau per enforcement domain.
fn units_csv() -> anyhow::Result<String> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data");
    let districts = std::fs::read_to_string(data.join("chongqing-districts.csv"))?;
    let domains = std::fs::read_to_string(data.join("enforcement-domains.csv"))?;
    let mut out = String::from("unit_code,name,district_code,domain\n");
    for d in districts.lines().skip(1).take(3) {
        let (code, name) = d.split_once(',').unwrap_or_default();
        for (i, dom) in domains.lines().skip(1).take(2).enumerate() {
            let cols: Vec<&str> = dom.split(',').collect();
            out.push_str(&format!(
                "{code}{:06},{name}{},{code},{}\n",
                i + 1,
                cols[3],
                cols[0]
            ));
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_district_is_imported_and_a_recorder_changing_hands_keeps_its_history(
) -> anyhow::Result<()> {
    let dir = test_dir("fleet-cli")?;
    let cfg = hub_config(dir.path(), None)?;
    let config = dir.path().join("hub.toml");
    write_hub_toml(&cfg, &config)?;

    let units = dir.path().join("units.csv");
    std::fs::write(&units, units_csv()?)?;
    let out = hub_cli(
        &["units", "import", units.to_str().unwrap_or_default()],
        &config,
    )?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = ok_json(&["units", "list", "--json"], &config)?;
    let listed = listed.as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 6);
    assert_eq!(listed[0]["unit_code"], "500101000001");
    assert_eq!(listed[0]["name"], "万州区市场监督管理局");

    // A file with bad rows imports nothing and names each problem.
    let officers = dir.path().join("officers.csv");
    std::fs::write(
        &officers,
        "officer_id,name,unit_code\n200001,王伟,500101000001\n20002,李娜,500101000001\n200003,,5001\n",
    )?;
    let out = hub_cli(
        &["officers", "import", officers.to_str().unwrap_or_default()],
        &config,
    )?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "3 problem(s), nothing imported",
        "line 3: officer_id = \"20002\": expected 6 digits",
        "line 4: name is empty",
        "line 4: unit_code = \"5001\"",
    ] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    assert_eq!(
        ok_json(&["officers", "list", "--json"], &config)?,
        serde_json::json!([])
    );
    std::fs::write(
        &officers,
        "officer_id,name,unit_code,domain\n200001,王伟,500101000001,01\n200002,李娜,500101000001,01\n",
    )?;
    ok_or_fail(hub_cli(
        &["officers", "import", officers.to_str().unwrap_or_default()],
        &config,
    )?)?;
    let of_unit = ok_json(
        &["officers", "list", "--unit", "500101000001", "--json"],
        &config,
    )?;
    assert_eq!(of_unit.as_array().map(Vec::len), Some(2));

    // A recorder registered, handed to 王伟, then to 李娜.
    ok_or_fail(hub_cli(&["devices", "register", "ZFY0101"], &config)?)?;
    for officer in ["200001", "200002"] {
        ok_or_fail(hub_cli(
            &[
                "devices",
                "assign",
                "ZFY0101",
                "--officer",
                officer,
                "--unit",
                "500101000001",
                "--domain",
                "01",
            ],
            &config,
        )?)?;
    }
    let shown = ok_json(&["devices", "show", "ZFY0101", "--json"], &config)?;
    assert_eq!(shown["kind"], "recorder");
    assert_eq!(shown["state"], "approved");
    assert_eq!(shown["officer_id"], "200002");
    let history = shown["assignments"].as_array().cloned().unwrap_or_default();
    assert_eq!(history.len(), 2, "{shown}");
    assert_eq!(history[0]["officer_id"], "200001");
    assert_eq!(
        history[0]["to"], history[1]["from"],
        "handed over without a gap"
    );
    assert_eq!(history[1]["to"], Value::Null);
    assert!(history
        .iter()
        .all(|a| a["source"] == "operator"
            && a["by"].as_str().is_some_and(|b| b.starts_with("cli:"))));
    // A bad assignment is refused naming the field; an unknown device is named.
    let out = hub_cli(
        &["devices", "assign", "ZFY0101", "--officer", "12"],
        &config,
    )?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("officer_id = \"12\": expected 6 digits"));
    let out = hub_cli(
        &["devices", "assign", "ZFY9999", "--officer", "200001"],
        &config,
    )?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("no device \"ZFY9999\""));

    // The same history over the API of the hub running on this store, and the changes in the audit log.
    let hub = Hub::start(cfg).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let d = api.get_ok("/api/v1/devices/ZFY0101").await?;
    assert_eq!(d["assignments"], shown["assignments"]);
    // Who had it when: 王伟 from the first assignment until the second, nobody before.
    let first = history[0]["from"].as_str().unwrap_or_default();
    let second = history[1]["from"].as_str().unwrap_or_default();
    let between = chrono::DateTime::parse_from_rfc3339(first)? + chrono::Duration::milliseconds(1);
    let before = chrono::DateTime::parse_from_rfc3339(first)? - chrono::Duration::seconds(1);
    let at = |t: String| {
        let api = api.clone();
        async move {
            let q = t.replace('+', "%2B");
            api.get_ok(&format!("/api/v1/devices/ZFY0101?at={q}")).await
        }
    };
    if between < chrono::DateTime::parse_from_rfc3339(second)? {
        assert_eq!(
            at(between.to_rfc3339()).await?["assigned_at"]["officer_id"],
            "200001"
        );
    }
    assert_eq!(
        at(second.to_owned()).await?["assigned_at"]["officer_id"],
        "200002"
    );
    assert_eq!(at(before.to_rfc3339()).await?["assigned_at"], Value::Null);
    let cli_at = ok_json(
        &["devices", "show", "ZFY0101", "--at", second, "--json"],
        &config,
    )?;
    assert_eq!(cli_at["assigned_at"]["officer_id"], "200002");
    let audit = api.get_ok("/api/v1/audit").await?;
    // Each change is audited before it is made; a malformed request is
    // refused before that, a request about an unknown device keeps its entry.
    let actions: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["action"].as_str()?, e["target"].as_str()?)))
        .collect();
    assert_eq!(
        actions,
        [
            ("units.import", "units"),
            ("officers.import", "officers"),
            ("device.register", "ZFY0101"),
            ("device.assign", "ZFY0101"),
            ("device.assign", "ZFY0101"),
            ("device.assign", "ZFY9999"),
        ]
    );
    hub.shutdown().await
}

fn ok_or_fail(out: std::process::Output) -> anyhow::Result<()> {
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

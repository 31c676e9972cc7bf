//! Issue 5, item 2, and SPEC.md "Interfaces → HTTP API": the API is described
//! by an OpenAPI document at /api/v1/openapi.json that matches the
//! implementation. The served document is valid OpenAPI 3, and schemathesis,
//! generating requests from it (valid and invalid ones, and chains that follow
//! ids from one answer into the next) against a hub holding real synced data —
//! a field agent's events and stored recording, an upload granted and still
//! open, an alert, devices — finds no server error and no response that
//! contradicts the document: status codes, content types, headers and bodies,
//! for every documented operation, the media Range endpoint and the
//! grant-authorised uploads included.
//!
//! Needs `st` (schemathesis) and `openapi-spec-validator` from PyPI at the
//! versions below; `scripts/setup` installs them.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use evsync_agent::agent::Agent;
use evsync_e2e::media::sha256;
use evsync_e2e::*;
use evsync_hub::server::Hub;
use evsync_protocol::chain::{Hash, GENESIS};
use evsync_protocol::receipt::Status;
use evsync_protocol::record::{FixQuality, Geo};
use serde_json::Value;

/// The versions `scripts/setup` installs (keep both in step): the seed
/// reproduces a run only with the same schemathesis.
const HUB: &str = env!("CARGO_BIN_EXE_e2e-hub");
const SCHEMATHESIS: &str = "4.32.5";
const OPENAPI_SPEC_VALIDATOR: &str = "0.9.0";
/// Fixed, so a failure can be replayed with the command line it prints.
const SEED: u64 = 20_261_202;
/// Test cases per operation and phase.
const MAX_EXAMPLES: u32 = 60;
/// Size of the recording whose upload stays open: larger than most
/// generated bodies, so one at the offset the hub holds is taken.
const UPLOAD_SIZE: u64 = 4096;
/// The whole schemathesis run is killed after this.
const RUN_LIMIT: Duration = Duration::from_secs(75);

/// Runs `exe --version` and checks it prints `want`; the error names `scripts/setup`.
fn require_tool(exe: &str, want: &str) -> anyhow::Result<()> {
    let out = std::process::Command::new(exe).arg("--version").output();
    let printed = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        Ok(o) => format!("exit status {}", o.status),
        Err(e) => format!("not runnable: {e}"),
    };
    anyhow::ensure!(
        printed == want,
        "`{exe} --version` printed {printed:?}, expected {want:?}: run scripts/setup \
         (it installs schemathesis {SCHEMATHESIS} and openapi-spec-validator \
         {OPENAPI_SPEC_VALIDATOR} from PyPI)"
    );
    Ok(())
}

/// The real rows the generated requests are pointed at.
struct Rows {
    event_id: String,
    media_id: String,
    media_sha256: String,
    media_size: u64,
    awaiting_id: String,
    grant_token: String,
    /// A feed cursor with records after it.
    cursor: String,
    /// The field agent and the hand-driven device.
    device_ids: [String; 2],
    /// A registered recorder (it has a configuration).
    recorder_id: String,
    /// A registered firmware image.
    firmware_sha256: String,
}

/// A field agent syncs three events and a recording (stored at the hub); a
/// device driven by hand signs a recording whose upload is granted but not
/// made, then skips a sequence number (an alert) with a geotagged event.
async fn real_rows(
    hub: &Hub,
    api: &Api,
    dir: &Path,
    hub_toml: &Path,
) -> anyhow::Result<(Rows, Agent)> {
    let cfg = agent_config(dir, &unique("field-api"), &hub.mqtt_url, &hub.public_key);
    drop_events(&cfg.spool_dir, 1, 3)?;
    let mp4 = dir.join("VID_0001.mp4");
    evsync_hub::demo::write_mp4(&mp4, 4, 8_000, 5)?;
    let part = cfg.spool_dir.join("20261202_083000_0001.mp4.part");
    std::fs::copy(&mp4, &part)?;
    std::fs::rename(&part, cfg.spool_dir.join("20261202_083000_0001.mp4"))?;
    let agent = Agent::start(cfg).await?;
    eventually(
        Duration::from_secs(30),
        "the agent's events and stored recording in the feed",
        || async {
            let feed = api.feed().await?;
            Ok(feed.len() == 4
                && feed
                    .iter()
                    .any(|r| r["kind"] == "media" && r["media_state"] == "stored"))
        },
    )
    .await?;
    let feed = api.feed().await?;
    let media = feed
        .iter()
        .find(|r| r["kind"] == "media")
        .context("no media record")?;
    let event = feed
        .iter()
        .find(|r| r["kind"] == "event")
        .context("no event record")?;

    let mut dev = RawDevice::connect(&hub.mqtt_url, &unique("raw-api")).await?;
    dev.announce().await?;
    eventually(Duration::from_secs(10), "the device enrolled", || async {
        let d = api.get_ok("/api/v1/devices").await?;
        Ok(d["devices"].as_array().is_some_and(|a| {
            a.iter()
                .any(|d| d["device_id"] == dev.id.as_str() && d["state"] == "approved")
        }))
    })
    .await?;
    let content: Vec<u8> = {
        let mut rng = fastrand::Rng::with_seed(7);
        (0..UPLOAD_SIZE).map(|_| rng.u8(..)).collect()
    };
    let awaiting = dev.seal(&dev.media_body(1, GENESIS, &sha256(&content), UPLOAD_SIZE));
    dev.send(std::slice::from_ref(&awaiting)).await?;
    assert_eq!(
        dev.receipt(&hub.public_key).await?.entries[0].status,
        Status::Stored
    );
    let (grant, grant_token) = dev.grant(&hub.public_key).await?;
    let skipped = dev.seal(&dev.body(2, Hash::of(&awaiting.body), "never sent"));
    let mut after_gap = dev.body(3, Hash::of(&skipped.body), "after a gap");
    after_gap.geo = Some(Geo {
        lat: 29.558_056_667,
        lon: 106.577_916_667,
        quality: FixQuality::Dgps,
        age_ms: 800,
        satellites: Some(10),
        hdop: Some(0.9),
        altitude_m: Some(243.5),
    });
    dev.send(&[dev.seal(&after_gap)]).await?;
    dev.receipt(&hub.public_key).await?;
    eventually(
        Duration::from_secs(10),
        "the sequence gap alerted",
        || async {
            let a = api.get_ok("/api/v1/alerts").await?;
            Ok(a["alerts"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["kind"] == "sequence_gap")))
        },
    )
    .await?;
    // A recorder registered ahead of its docking, and a firmware image.
    let recorder_id = "ZFY0900".to_owned();
    let (status, body) = api
        .send_json(
            "POST",
            "/api/v1/devices",
            &serde_json::json!({ "device_id": recorder_id, "kind": "recorder" }),
        )
        .await?;
    anyhow::ensure!(
        status == 201 || status == 200,
        "registering {recorder_id}: {status} {body}"
    );
    let image = dir.join("SIM-2.5.0.bin");
    std::fs::write(&image, vec![0x5a; 40_000])?;
    let image_arg = image.display().to_string();
    hub_cli(
        HUB,
        hub_toml,
        &["firmware", "add", &image_arg, "--version", "SIM-2.5.0"],
    )?;
    let firmware_sha256 = hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        &std::fs::read(&image)?,
    ));
    let text = |v: &Value| v.as_str().map(str::to_owned).context("not a string");
    let (_, cursor) = api.page("", 1).await?;
    let rows = Rows {
        event_id: text(&event["id"])?,
        media_id: text(&media["id"])?,
        media_sha256: text(&media["sha256"])?,
        media_size: media["size"].as_u64().context("media size")?,
        awaiting_id: grant.record_id.to_string(),
        grant_token,
        cursor,
        device_ids: [text(&event["device_id"])?, dev.id.clone()],
        recorder_id,
        firmware_sha256,
    };
    Ok((rows, agent))
}

/// The schemathesis configuration: the upload grant, the real rows, and
/// where a check's general expectation does not fit an operation, why.
fn schemathesis_toml(rows: &Rows, hooks: &Path) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let Rows {
        event_id,
        media_id,
        media_sha256: sha,
        media_size: size,
        awaiting_id,
        grant_token,
        cursor,
        device_ids: [agent_id, device_id],
        recorder_id,
        firmware_sha256,
    } = rows;
    format!(
        r#"# Written by tests/tests/openapi_conformance.rs for one run against a test hub.
hooks = {hooks}
# Any warning fails the run; above all an operation that only ever got 401/403
# (missing_auth) or only 404 (missing_test_data) was not really tested.
warnings = {{ fail-on = true }}

[dictionaries.records]
values = [{event_id}, {media_id}, {awaiting_id}]
[dictionaries.media]
values = [{media_id}]
[dictionaries.uploads]
values = [{awaiting_id}]
[dictionaries.devices]
values = [{agent_id}, {device_id}, {recorder_id}]
[dictionaries.firmware]
values = [{firmware_sha256}]
[dictionaries.cursors]
values = [{cursor}]
[dictionaries.offsets]
values = [0, 8, {upload_last}, {upload_size}]
[dictionaries.ranges]
values = ["bytes=0-99", "bytes=100-", "bytes=-64", "bytes=0-0", "bytes={last}-", "bytes={size}-", "bytes=9-2", "bytes=0-1,5-9", "bytes=-0"]
[dictionaries.etags]
values = [{etag}, {weak}, "*", "\"other\""]

[parameters]
"path.id" = {{ dictionary = "records", probability = 0.6 }}
"header.Range" = {{ dictionary = "ranges", probability = 0.7 }}
"header.If-Range" = {{ dictionary = "etags", probability = 0.25 }}
"header.If-None-Match" = {{ dictionary = "etags", probability = 0.25 }}
"header.Upload-Offset" = {{ dictionary = "offsets", probability = 0.6 }}
"query.after" = {{ dictionary = "cursors", probability = 0.5 }}
"query.device_id" = {{ dictionary = "devices", probability = 0.5 }}

[[operations]]
include-path-regex = "^/api/v1/devices/\\{{id\\}}"
parameters = {{ "path.id" = {{ dictionary = "devices", probability = 0.7 }} }}

# The event stream never ends: read what it has for a second, then hang up.
[[operations]]
include-path = "/api/v1/events"
request-timeout = 1
max-stream-events = 2

# Whether a range is satisfiable depends on the recording's size, which a
# schema cannot say: one that is not is refused with the documented 416.
[[operations]]
include-path = "/api/v1/records/{{id}}/media"
parameters = {{ "path.id" = {{ dictionary = "media", probability = 0.7 }} }}
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "404", "416"]

# Whether an imported action or duty is good also depends on how its fields
# relate (end after start, lat with lon, an id or a case number), which a
# schema cannot say: such a row is refused with the documented 422.
[[operations]]
include-path = "/api/v1/coverage/actions"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "422"]

[[operations]]
include-path = "/api/v1/coverage/duties"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "422"]

# Firmware images are served to docks without a token; whether a range is
# satisfiable depends on the image's size (416 as for recordings).
[[operations]]
include-path = "/firmware/{{sha256}}"
parameters = {{ "path.sha256" = {{ dictionary = "firmware", probability = 0.8 }} }}
checks.positive_data_acceptance.expected-statuses = ["2xx", "404", "416"]

# Uploads take the grant instead of the API token.
[[operations]]
include-path = "/api/v1/uploads/{{id}}"
headers = {{ Authorization = {grant_header} }}
parameters = {{ "path.id" = {{ dictionary = "uploads", probability = 0.8 }} }}

# The feed's cursor (and the event stream's Last-Event-ID) is opaque: only
# strings the hub issued are cursors, which a schema cannot say, so any other
# string is refused with the documented 400.
[[operations]]
include-path = "/api/v1/records"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401"]
[[operations]]
include-path = "/api/v1/events"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401"]

# A CSV import needs a header line naming the columns and at least one row,
# which a schema for a text body cannot say: other text is refused with the
# documented 422.
[[operations]]
include-path-regex = "^/api/v1/(officers|units)/import$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "422"]

# Whether bytes are taken depends on what the hub already holds and on the
# signed size and SHA-256, which a schema cannot say: a body at the wrong
# offset (409), past the size (413), completing a file with the wrong hash
# (422) or after too many of those (410) is refused as documented.
[[operations]]
include-path = "/api/v1/uploads/{{id}}"
include-method = "PATCH"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "410", "413", "422"]
"#,
        hooks = q(&hooks.display().to_string()),
        grant_header = q(&format!("Bearer {grant_token}")),
        event_id = q(event_id),
        media_id = q(media_id),
        awaiting_id = q(awaiting_id),
        agent_id = q(agent_id),
        device_id = q(device_id),
        recorder_id = q(recorder_id),
        firmware_sha256 = q(firmware_sha256),
        cursor = q(cursor),
        last = size - 1,
        upload_size = UPLOAD_SIZE,
        upload_last = UPLOAD_SIZE - 1,
        etag = q(&format!("\"{sha}\"")),
        weak = q(&format!("W/\"{sha}\"")),
    )
}

/// Statuses the run's HAR log holds for `method` on URLs containing `path`.
fn statuses(har: &Value, method: &str, path: &str) -> Vec<u64> {
    let mut seen: Vec<u64> = har["log"]["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["request"]["method"] == method
                && e["request"]["url"]
                    .as_str()
                    .is_some_and(|u| u.contains(path))
        })
        .filter_map(|e| e["response"]["status"].as_u64())
        .collect();
    seen.sort_unstable();
    seen.dedup();
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_response_contradicting_the_openapi_document(
) -> anyhow::Result<()> {
    require_tool("st", &format!("st, version {SCHEMATHESIS}"))?;
    require_tool(
        "openapi-spec-validator",
        &format!("openapi-spec-validator {OPENAPI_SPEC_VALIDATOR}"),
    )?;
    let started = Instant::now();
    let dir = test_dir("openapi")?;
    let mut cfg = hub_config(dir.path(), None)?;
    cfg.gap_grace_secs = 0;
    let hub_toml = dir.path().join("hub.toml");
    write_hub_toml(&cfg, &hub_toml)?;
    let hub = Hub::start(cfg).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let (rows, agent) = real_rows(&hub, &api, dir.path(), &hub_toml).await?;

    // The document as served is valid OpenAPI 3 (schemathesis alone loads
    // documents that are not).
    let doc = api.get_ok("/api/v1/openapi.json").await?;
    let doc_path = dir.path().join("openapi.json");
    std::fs::write(&doc_path, serde_json::to_vec_pretty(&doc)?)?;
    let valid = tokio::process::Command::new("openapi-spec-validator")
        .arg(&doc_path)
        .kill_on_drop(true)
        .output()
        .await?;
    assert!(
        valid.status.success(),
        "the served document is not valid OpenAPI:\n{}{}",
        String::from_utf8_lossy(&valid.stdout),
        String::from_utf8_lossy(&valid.stderr)
    );

    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemathesis/hooks.py");
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(&config, schemathesis_toml(&rows, &hooks))?;
    let har = dir.path().join("run.har");
    let url = format!("http://{}/api/v1/openapi.json", hub.http_addr);
    let seed = SEED.to_string();
    let examples = MAX_EXAMPLES.to_string();
    let auth = format!("Authorization: Bearer {}", hub.token);
    let args: Vec<&str> = vec![
        "--config-file",
        config.to_str().context("config path")?,
        "run",
        &url,
        "--header",
        &auth,
        "--checks",
        "all",
        "--max-examples",
        &examples,
        "--seed",
        &seed,
        "--workers",
        "1",
        "--continue-on-failure",
        "--generation-database",
        "none",
        "--request-timeout",
        "10",
        "--report",
        "har",
        "--report-har-path",
        har.to_str().context("har path")?,
        "--no-color",
    ];
    let log = dir.path().join("schemathesis.log");
    let out = std::fs::File::create(&log)?;
    let mut st = tokio::process::Command::new("st")
        .args(&args)
        .current_dir(dir.path())
        .env("COLUMNS", "120")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .kill_on_drop(true)
        .spawn()
        .context("starting st")?;
    let ran = Instant::now();
    let status = match tokio::time::timeout(RUN_LIMIT, st.wait()).await {
        Ok(status) => Some(status?),
        Err(_) => {
            // Interrupted, it still prints what it found so far; then it is killed.
            if let Some(pid) = st.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-INT", &pid.to_string()])
                    .status();
            }
            if tokio::time::timeout(Duration::from_secs(5), st.wait())
                .await
                .is_err()
            {
                st.kill().await?;
            }
            None
        }
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let command = format!("st {}", args.join(" "));
    match status {
        None => {
            panic!("schemathesis did not finish within {RUN_LIMIT:?}; killed.\n{command}\n{output}")
        }
        Some(s) => assert!(
            s.success(),
            "schemathesis found responses that contradict the document ({s}):\n{command}\n{output}"
        ),
    }
    eprintln!(
        "schemathesis passed in {:.1} s (whole test {:.1} s)",
        ran.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    // The real rows were reached, not only refusals.
    let har: Value = serde_json::from_slice(&std::fs::read(&har)?)?;
    let media = format!("/api/v1/records/{}/media", rows.media_id);
    let upload = format!("/api/v1/uploads/{}", rows.awaiting_id);
    for (method, path, wanted) in [
        ("GET", media.as_str(), &[200, 206, 304, 416][..]),
        ("GET", &format!("/api/v1/records/{}", rows.event_id), &[200]),
        ("HEAD", upload.as_str(), &[200]),
        ("PATCH", upload.as_str(), &[204, 409]),
        (
            "GET",
            &format!("/api/v1/devices/{}/config", rows.recorder_id),
            &[200],
        ),
        (
            "GET",
            &format!("/firmware/{}", rows.firmware_sha256),
            &[206],
        ),
    ] {
        let seen = statuses(&har, method, path);
        for want in wanted {
            assert!(
                seen.contains(want),
                "no {want} answer to {method} {path} in the run (saw {seen:?})"
            );
        }
    }
    agent.shutdown().await?;
    hub.shutdown().await
}

//! Issue 7: recorder configuration as policy, end to end. Simulated
//! recorders on pseudo-terminals docked to one dock agent, a hub with its
//! embedded broker, and the operator's `evsync-hub config` commands: a
//! policy change reaches docked recorders, is applied, read back and
//! reported; forged, older and tampered assignments are refused and
//! reported; a configuration changed behind the hub's back is an alert and
//! is put right at the next docking.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use evsync_agent::agent::Agent;
use evsync_e2e::recorders::{dock_config, make_recorder, Served};
use evsync_e2e::*;
use evsync_hub::server::Hub;
use evsync_protocol::assignment::Assignment;
use evsync_protocol::signing::SigningKey;
use evsync_recorder_sim::faults::Faults;
use evsync_recorder_sim::storage::Storage;
use firmware_config::RecorderConfig;
use serde_json::Value;

const HUB: &str = env!("CARGO_BIN_EXE_e2e-hub");

/// A hub, a dock agent and recorders docked in it.
struct Rig {
    dir: tempfile::TempDir,
    hub: Hub,
    api: Api,
    hub_toml: PathBuf,
    agent: Option<Agent>,
    served: Vec<Served>,
    storages: Vec<PathBuf>,
}

impl Rig {
    async fn start(name: &str, serials: &[&str]) -> anyhow::Result<Self> {
        let dir = test_dir(name)?;
        let cfg = hub_config(dir.path(), None)?;
        let hub_toml = dir.path().join("hub.toml");
        write_hub_toml(&cfg, &hub_toml)?;
        let hub = Hub::start(cfg).await?;
        let api = Api::new(hub.http_addr, &hub.token);
        let mut served = Vec::new();
        let mut storages = Vec::new();
        for (i, serial) in serials.iter().enumerate() {
            let storage = make_recorder(&dir.path().join("recorders"), serial, 0, 0, false)?;
            served.push(Served::start(
                &storage,
                &dir.path().join(format!("slot{}", i + 1)),
                Faults::default(),
            )?);
            storages.push(storage);
        }
        let slots: Vec<&Served> = served.iter().collect();
        let agent = Agent::start(dock_config(
            dir.path(),
            &hub.mqtt_url,
            &hub.public_key,
            &slots,
        ))
        .await?;
        let rig = Self {
            dir,
            hub,
            api,
            hub_toml,
            agent: Some(agent),
            served,
            storages,
        };
        let n = serials.len();
        eventually(
            Duration::from_secs(30),
            "the docked recorders known to the hub",
            || async {
                let fleet = rig.api.get_ok("/api/v1/devices?kind=recorder").await?;
                Ok(fleet["devices"].as_array().map_or(0, Vec::len) == n)
            },
        )
        .await?;
        Ok(rig)
    }

    /// Runs `evsync-hub config <args>` against this hub; its stdout.
    fn config(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["config"];
        all.extend_from_slice(args);
        hub_cli(HUB, &self.hub_toml, &all)
    }

    /// `evsync-hub config rollout <args> --json`: recorder → (version,
    /// the changes it was told).
    fn rollout(&self, args: &[&str]) -> anyhow::Result<BTreeMap<String, (u64, Vec<String>)>> {
        let mut all = vec!["rollout"];
        all.extend_from_slice(args);
        all.push("--json");
        let out: Value = serde_json::from_str(&self.config(&all)?)?;
        let mut issued = BTreeMap::new();
        for i in out.as_array().into_iter().flatten() {
            let changes = i["changes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect();
            issued.insert(
                i["device_id"].as_str().unwrap_or_default().to_owned(),
                (i["version"].as_u64().unwrap_or_default(), changes),
            );
        }
        Ok(issued)
    }

    /// Writes `text` to a file and sets it as a layer.
    fn set_layer(&self, scope: &[&str], text: &str) -> anyhow::Result<String> {
        let file = self.dir.path().join(format!("{}.toml", scope.join("-")));
        std::fs::write(&file, text)?;
        let mut args = vec!["set"];
        args.extend_from_slice(scope);
        let file = file.display().to_string();
        args.extend_from_slice(&["--file", &file]);
        self.config(&args)
    }

    async fn standing(&self, id: &str) -> anyhow::Result<Value> {
        self.api
            .get_ok(&format!("/api/v1/devices/{id}/config"))
            .await
    }

    /// Waits until `id` applied assignment `version` and runs it.
    async fn applied(&self, id: &str, version: u64) -> anyhow::Result<Value> {
        eventually(
            Duration::from_secs(30),
            &format!("{id} applied version {version}"),
            || async {
                let s = self.standing(id).await?;
                let a = &s["assignment"];
                Ok(a["version"] == version
                    && a["state"] == "applied"
                    && a["running_hash"] == a["config_hash"])
            },
        )
        .await?;
        self.standing(id).await
    }

    /// Config records of `id` in the feed, as (type, event).
    async fn config_records(&self, id: &str) -> anyhow::Result<Vec<(String, Value)>> {
        Ok(self
            .api
            .feed()
            .await?
            .into_iter()
            .filter(|r| r["device_id"] == id)
            .filter_map(|r| {
                let t = r["event"]["type"].as_str()?.to_owned();
                t.starts_with("config_").then(|| (t, r["event"].clone()))
            })
            .collect())
    }

    /// Stops the dock; the recorders stay plugged in for the next one.
    async fn stop_dock(&mut self) -> anyhow::Result<()> {
        match self.agent.take() {
            Some(a) => a.shutdown().await,
            None => Ok(()),
        }
    }

    /// Docks the recorders at a new dock, one that never saw them.
    async fn new_dock(&mut self) -> anyhow::Result<()> {
        self.stop_dock().await?;
        let slots: Vec<&Served> = self.served.iter().collect();
        let cfg = dock_config(
            self.dir.path(),
            &self.hub.mqtt_url,
            &self.hub.public_key,
            &slots,
        );
        self.agent = Some(Agent::start(cfg).await?);
        Ok(())
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        self.stop_dock().await?;
        for s in self.served {
            s.stop()?;
        }
        self.hub.shutdown().await
    }
}

/// The content hash of what the simulated recorder in `storage` holds.
fn held(storage: &Path) -> anyhow::Result<(String, RecorderConfig)> {
    let text = Storage::peek(storage)?.config;
    let cfg = RecorderConfig::from_toml(&text)?;
    Ok((cfg.content_hash(), cfg))
}

/// Publishes `payload` retained on `topic` of the broker at `url`, as
/// someone who is not the hub.
async fn publish_retained(url: &str, topic: &str, payload: Vec<u8>) -> anyhow::Result<()> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut opts = MqttOptions::parse_url(format!("{url}?client_id={}", unique("intruder")))?;
    opts.set_clean_session(true);
    let (client, mut eventloop) = AsyncClient::new(opts, 8);
    client
        .publish(topic, QoS::AtLeastOnce, true, payload)
        .await?;
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Event::Incoming(Packet::PubAck(_)) = eventloop.poll().await? {
                return anyhow::Ok(());
            }
        }
    })
    .await??;
    client.disconnect().await?;
    Ok(())
}

/// The retained message on `topic` of the broker at `url`.
async fn retained(url: &str, topic: &str) -> anyhow::Result<Vec<u8>> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut opts = MqttOptions::parse_url(format!("{url}?client_id={}", unique("reader")))?;
    opts.set_clean_session(true);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 8);
    client.subscribe(topic, QoS::AtLeastOnce).await?;
    let payload = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = eventloop.poll().await? {
                return anyhow::Ok(p.payload.to_vec());
            }
        }
    })
    .await??;
    client.disconnect().await?;
    Ok(payload)
}

fn version_of(standing: &Value) -> u64 {
    standing["assignment"]["version"]
        .as_u64()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_change_reaches_two_docked_recorders_is_applied_read_back_and_reported(
) -> anyhow::Result<()> {
    let rig = Rig::start("config-two", &["ZFY0001", "ZFY0002"]).await?;
    rig.set_layer(
        &["fleet"],
        "[video]\nbitrate_kbps = 6000\n[recording]\npre_record_secs = 60\n",
    )?;
    rig.set_layer(&["class", "ZFY-X1"], "[recording]\npre_record_secs = 90\n")?;
    rig.set_layer(&["device", "ZFY0001"], "[gps]\ninterval_secs = 5\n")?;
    rig.config(&["class", "ZFY0002", "ZFY-X1"])?;

    // Staged: ZFY0001 first. ZFY0002 has no assignment yet.
    let issued = rig.rollout(&["--devices", "ZFY0001"])?;
    assert_eq!(issued.keys().collect::<Vec<_>>(), ["ZFY0001"]);
    let (v1, changes) = &issued["ZFY0001"];
    assert!(
        changes.contains(&"video.bitrate_kbps: 4000 → 6000".to_owned()),
        "{changes:?}"
    );
    let first = rig.applied("ZFY0001", *v1).await?;
    let z2 = rig.standing("ZFY0002").await?;
    assert_eq!(z2["assignment"], Value::Null, "{z2}");
    assert_eq!(z2["policy_changed"], true, "{z2}");

    // Then everyone: ZFY0001's content is unchanged, so it keeps its version.
    let issued = rig.rollout(&["--all"])?;
    assert_eq!(issued.keys().collect::<Vec<_>>(), ["ZFY0002"]);
    let v2 = issued["ZFY0002"].0;
    assert!(v2 > *v1, "versions grow: {v1} then {v2}");
    let second = rig.applied("ZFY0002", v2).await?;
    assert_eq!(version_of(&rig.standing("ZFY0001").await?), *v1);

    // Where each value came from, and the recorder holds exactly it.
    for (id, standing, storage) in [
        ("ZFY0001", &first, &rig.storages[0]),
        ("ZFY0002", &second, &rig.storages[1]),
    ] {
        let sources = &standing["effective"]["sources"];
        assert_eq!(sources["video.bitrate_kbps"], "fleet", "{standing}");
        assert_eq!(sources["video.frame_rate"], "default", "{standing}");
        assert_eq!(sources["identity.device_id"], "assignment", "{standing}");
        let (hash, cfg) = held(storage)?;
        assert_eq!(
            standing["assignment"]["config_hash"], hash,
            "{id}: the hub's hash is the recorder's"
        );
        assert_eq!(standing["effective"]["config_hash"], hash, "{id}");
        assert_eq!(cfg.video.bitrate_kbps, 6000, "{id}");
        assert_eq!(cfg.identity.device_id, id);
        assert_eq!(standing["in_sync"], true, "{standing}");
    }
    assert_eq!(
        first["effective"]["sources"]["gps.interval_secs"],
        "device ZFY0001"
    );
    assert_eq!(held(&rig.storages[0])?.1.gps.interval_secs, 5);
    assert_eq!(
        second["effective"]["sources"]["recording.pre_record_secs"],
        "class ZFY-X1"
    );
    assert_eq!(held(&rig.storages[1])?.1.recording.pre_record_secs, 90);
    assert_eq!(held(&rig.storages[0])?.1.recording.pre_record_secs, 60);

    // The dock reported delivery and application, with the hub's hash.
    for (id, standing) in [("ZFY0001", &first), ("ZFY0002", &second)] {
        let records = rig.config_records(id).await?;
        let types: Vec<&str> = records.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            types,
            ["config_checked", "config_delivered", "config_applied"],
            "{id}: {records:?}"
        );
        let applied = &records[2].1;
        assert_eq!(
            applied["config_hash"],
            standing["assignment"]["config_hash"]
        );
        assert_eq!(applied["version"], standing["assignment"]["version"]);
        // What it ran before: nothing set yet.
        assert_eq!(records[0].1["config_hash"], Value::Null, "{records:?}");
    }

    // A change while docked reaches both at once, with newer versions.
    rig.set_layer(&["fleet"], "[video]\nbitrate_kbps = 8000\n")?;
    let issued = rig.rollout(&["--percent", "100"])?;
    assert_eq!(issued.len(), 2, "{issued:?}");
    let (v3, v4) = (issued["ZFY0001"].0, issued["ZFY0002"].0);
    assert!(
        v2 < v3 && v3 < v4,
        "versions grow in recorder order: {v2}, {v3}, {v4}"
    );
    assert!(
        issued["ZFY0001"]
            .1
            .contains(&"video.bitrate_kbps: 6000 → 8000".to_owned()),
        "{issued:?}"
    );
    for (i, (id, version)) in [("ZFY0001", v3), ("ZFY0002", v4)].into_iter().enumerate() {
        let s = rig.applied(id, version).await?;
        let (hash, cfg) = held(&rig.storages[i])?;
        assert_eq!(cfg.video.bitrate_kbps, 8000, "{id}");
        assert_eq!(s["assignment"]["config_hash"], hash, "{id}");
    }

    // The CLI shows the same.
    let status: Value = serde_json::from_str(&rig.config(&["status", "--json"])?)?;
    let states: Vec<(&str, &str)> = status
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["device_id"].as_str().unwrap_or_default(),
                        s["state"].as_str().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(states, [("ZFY0001", "applied"), ("ZFY0002", "applied")]);
    let shown = rig.config(&["show", "ZFY0002"])?;
    assert!(
        shown.contains("recording.pre_record_secs") && shown.contains("(class ZFY-X1)"),
        "{shown}"
    );
    // Nothing in this run is an alert.
    let alerts = rig.api.get_ok("/api/v1/alerts").await?;
    assert_eq!(alerts["alerts"], serde_json::json!([]), "{alerts}");

    // The operators' web page shows the same, in a real browser.
    let dom = evsync_e2e::browser::dump_dom(
        rig.dir.path(),
        &format!(
            "http://{}/dashboard/#/devices/ZFY0002?token={}",
            rig.hub.http_addr, rig.hub.token
        ),
    )?;
    let version_4 = format!("version {v4}");
    for shown in [
        "Configuration",
        version_4.as_str(),
        ">applied<",
        ">in sync<",
        "recording.pre_record_secs",
        "class ZFY-X1",
        "video.bitrate_kbps",
        ">fleet<",
    ] {
        assert!(
            dom.contains(shown),
            "the recorder's page lacks {shown:?}:\n{dom}"
        );
    }
    assert!(
        !dom.contains("gps.interval_secs"),
        "ZFY0001's device layer shown on ZFY0002's page"
    );
    rig.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_older_and_tampered_assignments_are_refused_and_reported() -> anyhow::Result<()> {
    let rig = Rig::start("config-refused", &["ZFY0003"]).await?;
    let id = "ZFY0003";
    let topic = format!("evsync/v1/{id}/config");
    rig.set_layer(&["fleet"], "[video]\nframe_rate = 30\n")?;
    let v1 = rig.rollout(&["--all"])?[id].0;
    rig.applied(id, v1).await?;
    rig.set_layer(&["fleet"], "[video]\nframe_rate = 15\n")?;
    let v2 = rig.rollout(&["--all"])?[id].0;
    let good = rig.applied(id, v2).await?;
    let (good_hash, _) = held(&rig.storages[0])?;
    let hub_key =
        evsync_protocol::keyfile::load_or_create(&rig.dir.path().join("hub").join("hub.key"))?.0;
    let config = |frame_rate: u32| {
        let mut c = RecorderConfig::default();
        c.video.frame_rate = frame_rate;
        c.identity.device_id = id.to_owned();
        c
    };
    let assignment = |version: u64, c: &RecorderConfig| Assignment {
        v: 1,
        hub_id: "someone".into(),
        device_id: id.into(),
        version,
        config_hash: c.content_hash(),
        config: c.to_toml(),
        firmware: None,
        issued_at: chrono::Utc::now(),
    };
    let other_key = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8()?)?;

    // Signed by another key; as the hub signed it but altered in transit
    // (a byte of its configuration changed); the hub's own version 1 again
    // (a rollback); signed by the hub key but its configuration is not what
    // the signed hash names.
    let forged = assignment(v2 + 99, &config(25)).seal(&other_key);
    let mut altered = assignment(v2 + 98, &config(25)).seal(&hub_key);
    let at = altered
        .windows(13)
        .position(|w| w == b"frame_rate = ")
        .ok_or_else(|| anyhow::anyhow!("no frame_rate in the message"))?;
    altered[at + 13] = b'3'; // 25 → 35
    let rollback = assignment(v1, &config(30)).seal(&hub_key);
    let mut mismatched = assignment(v2 + 97, &config(25));
    mismatched.config = config(30).to_toml();
    let mismatched = mismatched.seal(&hub_key);
    let rollback_reason = format!(
        "assignment version {v1} is older than version {v2}, already accepted: refused as a rollback"
    );
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "forged",
            forged,
            "signature does not verify against the key of the hub key",
        ),
        (
            "altered",
            altered,
            "signature does not verify against the key of the hub key",
        ),
        ("rollback", rollback, rollback_reason.as_str()),
        ("mismatched", mismatched, "refused as tampered"),
    ];
    for (n, (what, payload, reason)) in cases.into_iter().enumerate() {
        publish_retained(&rig.hub.mqtt_url, &topic, payload).await?;
        eventually(
            Duration::from_secs(20),
            &format!("the {what} assignment refused and reported"),
            || async {
                let failed: Vec<Value> = rig
                    .config_records(id)
                    .await?
                    .into_iter()
                    .filter(|(t, _)| t == "config_failed")
                    .map(|(_, e)| e)
                    .collect();
                Ok(failed.len() == n + 1
                    && failed[n]["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains(reason)))
            },
        )
        .await?;
        // The recorder still runs its assignment, and the hub put the
        // genuine one back on the topic.
        assert_eq!(held(&rig.storages[0])?.0, good_hash, "{what}");
        let s = rig.standing(id).await?;
        assert_eq!(s["assignment"]["state"], "applied", "{what}: {s}");
        assert_eq!(version_of(&s), v2, "{what}");
        eventually(
            Duration::from_secs(10),
            &format!("the genuine assignment back on the topic after the {what} one"),
            || async {
                let retained = retained(&rig.hub.mqtt_url, &topic).await?;
                Ok(Assignment::open(&retained, &rig.hub.public_key, id)
                    .is_ok_and(|a| a.version == v2))
            },
        )
        .await?;
    }
    // Each refusal is an alert the supervision platform sees.
    let alerts = rig.api.get_ok("/api/v1/alerts").await?;
    let failed = alerts["alerts"]
        .as_array()
        .map(|a| a.iter().filter(|x| x["kind"] == "config_failed").count())
        .unwrap_or_default();
    assert_eq!(failed, 4, "{alerts}");
    assert_eq!(good["assignment"]["config_hash"], good_hash);
    rig.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_whose_configuration_drifts_raises_an_alert_and_gets_its_own_back(
) -> anyhow::Result<()> {
    let mut rig = Rig::start("config-drift", &["ZFY0004"]).await?;
    let id = "ZFY0004";
    rig.set_layer(&["fleet"], "[storage]\nreserve_mb = 1024\n")?;
    let v1 = rig.rollout(&["--all"])?[id].0;
    rig.applied(id, v1).await?;
    let (assigned, _) = held(&rig.storages[0])?;

    // Taken out, and someone sets it to record without audio.
    let served = rig.served.remove(0);
    let link = served.link.clone();
    served.stop()?;
    let storage = rig.storages[0].clone();
    let mut changed = held(&storage)?.1;
    changed.recording.audio = false;
    let mut s = Storage::open(&storage, id)?;
    s.manifest.config = changed.to_toml();
    s.save()?;
    let drifted = changed.content_hash();
    assert_ne!(drifted, assigned);

    // Docked again: the hub hears what it ran, raises the alert, and the
    // dock puts the assignment back.
    rig.served
        .push(Served::start(&storage, &link, Faults::default())?);
    eventually(Duration::from_secs(30), "a config_drift alert", || async {
        let alerts = rig.api.get_ok("/api/v1/alerts").await?;
        Ok(alerts["alerts"].as_array().is_some_and(|a| {
            a.iter().any(|x| {
                x["kind"] == "config_drift"
                    && x["device_id"] == id
                    && x["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains(&drifted[..12]))
            })
        }))
    })
    .await?;
    eventually(
        Duration::from_secs(30),
        "the assignment applied again",
        || async { Ok(held(&storage)?.0 == assigned) },
    )
    .await?;
    let s = rig.applied(id, v1).await?;
    assert_eq!(s["assignment"]["running_hash"], assigned.as_str());
    let records = rig.config_records(id).await?;
    let checked: Vec<&Value> = records
        .iter()
        .filter(|(t, _)| t == "config_checked")
        .map(|(_, e)| e)
        .collect();
    assert_eq!(
        checked.last().map(|e| e["config_hash"].clone()),
        Some(Value::from(drifted.as_str())),
        "{records:?}"
    );
    assert_eq!(
        records.last().map(|(t, _)| t.as_str()),
        Some("config_applied"),
        "{records:?}"
    );
    rig.stop().await
}

/// Writes `size` pseudo-random bytes to `path` (a firmware image).
fn image(path: &Path, size: usize, seed: u64) -> anyhow::Result<String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let bytes: Vec<u8> = (0..size).map(|_| rng.u8(..)).collect();
    std::fs::write(path, &bytes)?;
    Ok(hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        &bytes,
    )))
}

/// Waits until `id` has `n` `firmware_failed` records, the last naming `needle`.
async fn firmware_failures(rig: &Rig, id: &str, n: usize, needle: &str) -> anyhow::Result<()> {
    eventually(
        Duration::from_secs(30),
        &format!("firmware failure {n}: {needle}"),
        || async {
            let failed: Vec<Value> = rig
                .api
                .feed()
                .await?
                .into_iter()
                .filter(|r| r["device_id"] == id && r["event"]["type"] == "firmware_failed")
                .map(|r| r["event"].clone())
                .collect();
            Ok(failed.len() == n
                && failed[n - 1]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains(needle)))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_firmware_image_is_installed_and_a_corrupt_or_older_one_is_refused(
) -> anyhow::Result<()> {
    let mut rig = Rig::start("firmware", &["ZFY0005"]).await?;
    let id = "ZFY0005";
    let storage = rig.storages[0].clone();
    assert_eq!(Storage::peek(&storage)?.firmware, "SIM-2.4.1");
    let hub = |args: &[&str]| hub_cli(HUB, &rig.hub_toml, args);
    let add = |version: &str, seed: u64| -> anyhow::Result<String> {
        let file = rig.dir.path().join(format!("{version}.bin"));
        let sha = image(&file, 300 * 1024 + 123, seed)?;
        let file = file.display().to_string();
        let out = hub(&["firmware", "add", &file, "--version", version])?;
        assert!(out.contains(&sha), "{out}");
        Ok(sha)
    };
    // An image whose bytes at the hub no longer match what was registered:
    // the dock downloads it, finds another hash, and sends nothing.
    let bad = add("SIM-2.6.0", 1)?;
    let blob = rig
        .dir
        .path()
        .join("hub/blobs")
        .join(&bad[..2])
        .join(&bad[2..4])
        .join(&bad);
    let mut bytes = std::fs::read(&blob)?;
    bytes[1000] ^= 0xff;
    std::fs::write(&blob, &bytes)?;
    let out = hub(&["firmware", "rollout", "SIM-2.6.0", "--devices", id])?;
    assert!(out.contains("firmware image: none → SIM-2.6.0"), "{out}");
    firmware_failures(&rig, id, 1, "the signed manifest says").await?;
    assert_eq!(Storage::peek(&storage)?.firmware, "SIM-2.4.1");
    let s = rig.standing(id).await?;
    assert_eq!(s["assignment"]["firmware_state"], "failed", "{s}");

    // A good image: downloaded, installed over serial, confirmed.
    let good = add("SIM-2.5.0", 2)?;
    hub(&["firmware", "rollout", "SIM-2.5.0", "--all"])?;
    eventually(
        Duration::from_secs(30),
        "SIM-2.5.0 installed on the recorder and at the hub",
        || async {
            let s = rig.standing(id).await?;
            Ok(Storage::peek(&storage)?.firmware == "SIM-2.5.0"
                && s["assignment"]["firmware_state"] == "installed")
        },
    )
    .await?;
    let installed: Vec<Value> = rig
        .api
        .feed()
        .await?
        .into_iter()
        .filter(|r| r["device_id"] == id && r["event"]["type"] == "firmware_installed")
        .map(|r| r["event"].clone())
        .collect();
    assert_eq!(
        installed,
        [serde_json::json!({"type": "firmware_installed", "version": "SIM-2.5.0", "sha256": good})]
    );
    let device = rig.api.get_ok(&format!("/api/v1/devices/{id}")).await?;
    assert_eq!(device["firmware"], "SIM-2.5.0", "{device}");

    // An older image is refused by the dock as a downgrade.
    add("SIM-2.3.0", 3)?;
    hub(&["firmware", "rollout", "SIM-2.3.0", "--devices", id])?;
    firmware_failures(&rig, id, 2, "is not newer than the running SIM-2.5.0").await?;
    // Refused by the dock itself: the recorder was never offered it.
    let log = Storage::peek(&storage)?.log;
    assert!(
        !log.iter().any(|l| l.contains("SIM-2.3.0")),
        "the dock offered the older image to the recorder: {log:?}"
    );
    assert_eq!(Storage::peek(&storage)?.firmware, "SIM-2.5.0");

    // An image half sent at an earlier docking (the recorder was pulled
    // out) goes on from where the recorder stands, not from the start.
    let resumed = add("SIM-2.8.0", 4)?;
    let served = rig.served.remove(0);
    let link = served.link.clone();
    served.stop()?;
    {
        let bytes = std::fs::read(rig.dir.path().join("SIM-2.8.0.bin"))?;
        let mut sha = [0u8; 32];
        hex::decode_to_slice(&resumed, &mut sha)?;
        let mut s = Storage::open(&storage, id)?;
        s.begin_firmware("SIM-2.8.0", bytes.len() as u64, sha)?;
        s.append_firmware(&bytes[..100_000])?;
        s.save()?;
    }
    rig.served
        .push(Served::start(&storage, &link, Faults::default())?);
    hub(&["firmware", "rollout", "SIM-2.8.0", "--devices", id])?;
    eventually(Duration::from_secs(30), "SIM-2.8.0 installed", || async {
        Ok(Storage::peek(&storage)?.firmware == "SIM-2.8.0")
    })
    .await?;
    let log = Storage::peek(&storage)?.log;
    assert!(
        !log.iter().any(|l| l.contains("SIM-2.8.0 offered")),
        "the dock began the half-sent image again instead of going on: {log:?}"
    );

    // A manifest not signed by the hub is refused with its assignment.
    let other_key = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8()?)?;
    let mut c = RecorderConfig::default();
    c.identity.device_id = id.into();
    let forged = Assignment {
        v: 1,
        hub_id: "someone".into(),
        device_id: id.into(),
        version: 1000,
        config_hash: c.content_hash(),
        config: c.to_toml(),
        firmware: Some(evsync_protocol::assignment::FirmwareImage {
            version: "SIM-9.0.0".into(),
            sha256: good.clone(),
            size: 300 * 1024 + 123,
            url: format!("http://{}/firmware/{good}", rig.hub.http_addr),
        }),
        issued_at: chrono::Utc::now(),
    };
    publish_retained(
        &rig.hub.mqtt_url,
        &format!("evsync/v1/{id}/config"),
        forged.seal(&other_key),
    )
    .await?;
    eventually(
        Duration::from_secs(30),
        "the forged manifest refused",
        || async {
            Ok(rig.config_records(id).await?.iter().any(|(t, e)| {
                t == "config_failed"
                    && e["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("signature does not verify"))
            }))
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(Storage::peek(&storage)?.firmware, "SIM-2.8.0");
    let alerts = rig.api.get_ok("/api/v1/alerts").await?;
    let kinds: Vec<&str> = alerts["alerts"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["kind"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        kinds.iter().filter(|k| **k == "firmware_failed").count(),
        2,
        "{alerts}"
    );
    rig.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_assignment_replayed_to_a_dock_that_never_saw_the_newer_one_is_alerted_and_undone(
) -> anyhow::Result<()> {
    let mut rig = Rig::start("config-replay", &["ZFY0006"]).await?;
    let id = "ZFY0006";
    let topic = format!("evsync/v1/{id}/config");
    rig.set_layer(&["fleet"], "[video]\nframe_rate = 30\n")?;
    let v1 = rig.rollout(&["--all"])?[id].0;
    rig.applied(id, v1).await?;
    // Someone keeps the hub's version-1 message off the topic...
    let old = retained(&rig.hub.mqtt_url, &topic).await?;
    assert_eq!(Assignment::open(&old, &rig.hub.public_key, id)?.version, v1);
    rig.set_layer(&["fleet"], "[video]\nframe_rate = 15\n")?;
    let v2 = rig.rollout(&["--all"])?[id].0;
    rig.applied(id, v2).await?;
    let (current, _) = held(&rig.storages[0])?;

    // ...and replays it while the recorder goes to a dock that never
    // accepted anything for it: that dock cannot know it is old.
    rig.stop_dock().await?;
    publish_retained(&rig.hub.mqtt_url, &topic, old).await?;
    rig.new_dock().await?;

    // The hub sees an older version applied after the current one was
    // issued: an alert, and the current assignment goes out again and is
    // applied over it.
    eventually(
        Duration::from_secs(30),
        "a config_failed alert naming the replay",
        || async {
            let alerts = rig.api.get_ok("/api/v1/alerts").await?;
            Ok(alerts["alerts"].as_array().is_some_and(|a| {
                a.iter().any(|x| {
                    x["kind"] == "config_failed"
                        && x["detail"].as_str().is_some_and(|d| {
                            d.contains(&format!("version {v1}")) && d.contains("replayed or stale")
                        })
                })
            }))
        },
    )
    .await?;
    eventually(
        Duration::from_secs(30),
        "the current assignment back on the recorder",
        || async { Ok(held(&rig.storages[0])?.0 == current) },
    )
    .await?;
    let s = rig.applied(id, v2).await?;
    assert_eq!(s["assignment"]["running_hash"], current.as_str());
    rig.stop().await
}

//! Dock mode under faults (SPEC guarantees 1 "nothing is lost", 2 "exactly
//! once", 3 "gaps in a recorder's file index are detected" and 5 "bad input
//! gets a clear error, never a crash and never a loss"): every fault flag of
//! the recorder simulator — damaged lines, a hanging recorder, a plug pulled
//! mid-copy, lying sizes, hostile names, a wrong password — and the
//! deletion rule (a file leaves the recorder only once the hub holds it).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use evsync_agent::agent::Agent;
use evsync_agent::dock::board::{SlotState, SlotStatus};
use evsync_e2e::recorders::{dock_config, make_recorder, record_more, require_ffmpeg, Served};
use evsync_e2e::*;
use evsync_hub::server::Hub;
use evsync_recorder_sim::faults::Faults;
use evsync_recorder_sim::storage::Storage;
use serde_json::Value;

/// Every recording on a recorder: index, the name its record carries (as
/// reported; `#<index>` for an empty one) and SHA-256.
fn recordings(storage: &Path) -> anyhow::Result<Vec<(u32, String, String)>> {
    Storage::peek(storage)?
        .files
        .iter()
        .map(|f| {
            let path = storage.join("files").join(format!("{}.bin", f.index));
            let name = if f.name.is_empty() {
                format!("#{}", f.index)
            } else {
                f.name.clone()
            };
            Ok((f.index, name, media::sha256_file(&path)?))
        })
        .collect()
}

/// Waits until the hub holds exactly `want` (index, name, sha256) of
/// `recorder` as stored media, each once and verified, and the recorder is
/// empty; returns the media records.
async fn all_stored_once(
    api: &Api,
    served: &Served,
    recorder: &str,
    want: &[(u32, String, String)],
    within: Duration,
) -> anyhow::Result<Vec<Value>> {
    eventually(within, "every recording stored at the hub", || async {
        Ok(api
            .media()
            .await?
            .iter()
            .filter(|r| r["device_id"] == recorder && r["media_state"] == "stored")
            .count()
            >= want.len())
    })
    .await?;
    eventually(Duration::from_secs(30), "the recorder emptied", || async {
        Ok(served.files_left()? == 0)
    })
    .await?;
    let held: Vec<Value> = api
        .media()
        .await?
        .into_iter()
        .filter(|r| r["device_id"] == recorder)
        .collect();
    let got: HashSet<(u64, String, String)> = held
        .iter()
        .map(|r| {
            verify_feed_record(r)?;
            Ok((
                r["file_index"].as_u64().unwrap_or_default(),
                r["file_name"].as_str().unwrap_or_default().to_owned(),
                r["sha256"].as_str().unwrap_or_default().to_owned(),
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let expected: HashSet<(u64, String, String)> = want
        .iter()
        .map(|(i, n, s)| (u64::from(*i), n.clone(), s.clone()))
        .collect();
    assert_eq!(held.len(), want.len(), "each recording once: {held:#?}");
    assert_eq!(got, expected, "the hub holds exactly the recorder's files");
    Ok(held)
}

/// A hub, and one dock agent serving `recorders` (storage folder, faults) in
/// slots of its own, with `tweak` applied to its configuration.
struct Dock {
    dir: tempfile::TempDir,
    hub: Hub,
    api: Api,
    agent: Agent,
    served: Vec<Served>,
}

impl Dock {
    async fn start(
        dir: tempfile::TempDir,
        recorders: Vec<(PathBuf, Faults)>,
        tweak: impl FnOnce(&mut evsync_agent::config::AgentConfig),
    ) -> anyhow::Result<Self> {
        let hub = Hub::start(hub_config(dir.path(), None)?).await?;
        let api = Api::new(hub.http_addr, &hub.token);
        let served = recorders
            .iter()
            .enumerate()
            .map(|(i, (storage, faults))| {
                Served::start(
                    storage,
                    &dir.path().join(format!("slot{}", i + 1)),
                    faults.clone(),
                )
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut cfg = dock_config(
            dir.path(),
            &hub.mqtt_url,
            &hub.public_key,
            &served.iter().collect::<Vec<_>>(),
        );
        tweak(&mut cfg);
        let agent = Agent::start(cfg).await?;
        Ok(Self {
            dir,
            hub,
            api,
            agent,
            served,
        })
    }

    fn agent_data(&self) -> PathBuf {
        self.agent.data_dir().to_owned()
    }

    fn slot(&self, n: usize) -> SlotStatus {
        self.agent.slots()[n - 1].clone()
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.agent.shutdown().await?;
        for s in self.served {
            s.stop()?;
        }
        self.hub.shutdown().await?;
        drop(self.dir);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_that_drops_flips_and_adds_bytes_loses_nothing_and_duplicates_nothing(
) -> anyhow::Result<()> {
    require_ffmpeg()?;
    let dir = test_dir("dock-noisy")?;
    let rec = make_recorder(&dir.path().join("recorders"), "ZFY0101", 6, 0, false)?;
    let want = recordings(&rec)?;
    let faults = Faults {
        drop_rate: 0.08,
        corrupt_rate: 0.08,
        noise_rate: 0.08,
        seed: 7,
        ..Faults::default()
    };
    let dock = Dock::start(dir, vec![(rec, faults)], |_| {}).await?;
    all_stored_once(
        &dock.api,
        &dock.served[0],
        "ZFY0101",
        &want,
        Duration::from_secs(90),
    )
    .await?;
    let slot = dock.slot(1);
    assert!(
        slot.retries > 0 && slot.damaged_frames + slot.skipped_bytes > 0,
        "the damage was noticed and answered with retries: {slot:?}"
    );
    dock.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_that_hangs_is_given_up_with_a_clear_error_and_served_when_it_answers_again(
) -> anyhow::Result<()> {
    require_ffmpeg()?;
    let dir = test_dir("dock-stall")?;
    let rec = make_recorder(&dir.path().join("recorders"), "ZFY0102", 5, 0, false)?;
    let want = recordings(&rec)?;
    // It hangs for 3 s after 15 requests: past 3 attempts of 300 ms.
    let faults = Faults {
        stall_after: Some(15),
        stall_ms: 3000,
        ..Faults::default()
    };
    let dock = Dock::start(dir, vec![(rec, faults)], |_| {}).await?;
    let seen = std::sync::Mutex::new(None);
    eventually(
        Duration::from_secs(30),
        "the slot reports the hang",
        || async {
            let slot = dock.slot(1);
            let mut seen = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            if slot.state == SlotState::Failed {
                *seen = slot.error.clone();
            }
            Ok(seen.is_some())
        },
    )
    .await?;
    let seen = seen.into_inner().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let error = seen.unwrap_or_default();
    assert!(
        error.contains("no answer") || error.contains("attempt"),
        "the error says the recorder stopped answering: {error}"
    );
    all_stored_once(
        &dock.api,
        &dock.served[0],
        "ZFY0102",
        &want,
        Duration::from_secs(60),
    )
    .await?;
    assert_eq!(dock.slot(1).error, None, "served again: {:?}", dock.slot(1));
    dock.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_unplugged_mid_copy_is_resumed_on_redocking_without_loss_or_duplicates(
) -> anyhow::Result<()> {
    require_ffmpeg()?;
    let dir = test_dir("dock-unplug")?;
    let rec = make_recorder(&dir.path().join("recorders"), "ZFY0103", 4, 0, false)?;
    let want = recordings(&rec)?;
    // Pulled halfway through the second file, plugged back in 0.5 s later.
    let sizes: Vec<u64> = (1..=2)
        .map(|i| std::fs::metadata(rec.join("files").join(format!("{i}.bin"))).map(|m| m.len()))
        .collect::<Result<_, _>>()?;
    assert!(sizes[1] > 3 * 16 * 1024, "the file spans several chunks");
    let faults = Faults {
        unplug_after_bytes: Some(sizes[0] + sizes[1] / 2),
        replug_after_ms: Some(500),
        ..Faults::default()
    };
    let dock = Dock::start(dir, vec![(rec, faults)], |_| {}).await?;
    all_stored_once(
        &dock.api,
        &dock.served[0],
        "ZFY0103",
        &want,
        Duration::from_secs(60),
    )
    .await?;
    let slot = dock.slot(1);
    assert_eq!(
        slot.resumed_copies, 1,
        "the partial copy was resumed: {slot:?}"
    );
    let media_dir = dock.agent_data().join("media");
    let partials: Vec<_> = media::files_under(&media_dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".dock-"))
        })
        .collect();
    assert!(partials.is_empty(), "no partial copy left: {partials:?}");
    dock.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorders_lying_about_file_sizes_are_copied_as_their_files_really_are(
) -> anyhow::Result<()> {
    require_ffmpeg()?;
    let dir = test_dir("dock-lie")?;
    let recorders = dir.path().join("recorders");
    let bigger = make_recorder(&recorders, "ZFY0104", 3, 0, false)?;
    let smaller = make_recorder(&recorders, "ZFY0105", 3, 0, false)?;
    let (want_big, want_small) = (recordings(&bigger)?, recordings(&smaller)?);
    // Sizes as they really are, before the dock empties the recorders.
    let real_size = |storage: &Path| -> anyhow::Result<std::collections::HashMap<u64, u64>> {
        Storage::peek(storage)?
            .files
            .iter()
            .map(|f| {
                let path = storage.join("files").join(format!("{}.bin", f.index));
                Ok((u64::from(f.index), std::fs::metadata(path)?.len()))
            })
            .collect()
    };
    let (real_big, real_small) = (real_size(&bigger)?, real_size(&smaller)?);
    let lie = |by| Faults {
        lie_size: by,
        ..Faults::default()
    };
    let dock = Dock::start(
        dir,
        vec![(bigger, lie(4096)), (smaller, lie(-1000))],
        |_| {},
    )
    .await?;
    for (served, id, want, real) in [
        (&dock.served[0], "ZFY0104", &want_big, &real_big),
        (&dock.served[1], "ZFY0105", &want_small, &real_small),
    ] {
        let held = all_stored_once(&dock.api, served, id, want, Duration::from_secs(60)).await?;
        for r in &held {
            let index = r["file_index"].as_u64().unwrap_or_default();
            assert_eq!(
                r["size"].as_u64(),
                real.get(&index).copied(),
                "{id} #{index}: the record has the size the file really has"
            );
        }
    }
    dock.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_file_names_are_kept_as_metadata_and_never_become_paths() -> anyhow::Result<()> {
    require_ffmpeg()?;
    let dir = test_dir("dock-hostile")?;
    let rec = make_recorder(&dir.path().join("recorders"), "ZFY0106", 14, 0, true)?;
    let want = recordings(&rec)?;
    let names: Vec<&str> = want.iter().map(|(_, n, _)| n.as_str()).collect();
    assert!(names.iter().any(|n| n.starts_with("../")), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with('/')), "{names:?}");
    assert!(
        names.iter().any(|n| n.chars().any(char::is_control)),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n.len() >= 255), "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with('#')),
        "an empty name: {names:?}"
    );
    let before: HashSet<PathBuf> = media::files_under(Path::new("/etc/cron.d"))
        .into_iter()
        .collect();
    let dock = Dock::start(dir, vec![(rec, Faults::default())], |_| {}).await?;
    all_stored_once(
        &dock.api,
        &dock.served[0],
        "ZFY0106",
        &want,
        Duration::from_secs(60),
    )
    .await?;
    // Everything the agent wrote is named by SHA-256 in its media folder.
    let data = dock.agent_data();
    for f in media::files_under(&data) {
        let rel = f.strip_prefix(&data)?.to_string_lossy().into_owned();
        assert!(
            !rel.contains("MP4") && !rel.contains('\u{7}') && !rel.contains("evil"),
            "a file named after the recorder's names: {rel}"
        );
    }
    let after: HashSet<PathBuf> = media::files_under(Path::new("/etc/cron.d"))
        .into_iter()
        .collect();
    assert_eq!(before, after, "nothing escaped into /etc/cron.d");
    assert!(!Path::new("/var/lib/evsync/agent.key.MP4").exists());
    dock.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_clear_error_and_the_recorder_keeps_its_files() -> anyhow::Result<()>
{
    require_ffmpeg()?;
    let dir = test_dir("dock-password")?;
    let rec = make_recorder(&dir.path().join("recorders"), "ZFY0107", 3, 0, false)?;
    let dock = Dock::start(dir, vec![(rec, Faults::default())], |cfg| {
        cfg.dock.password = "999999".into();
    })
    .await?;
    eventually(
        Duration::from_secs(20),
        "the slot reports the refusal",
        || async { Ok(dock.slot(1).state == SlotState::Failed) },
    )
    .await?;
    let error = dock.slot(1).error.unwrap_or_default();
    assert!(
        error.contains("bad_password") && error.contains("wrong admin password"),
        "the error names the refusal: {error}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(dock.served[0].files_left()?, 3, "nothing deleted");
    assert!(dock.api.media().await?.is_empty(), "nothing copied");
    dock.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_leave_the_recorder_only_once_the_hub_holds_them_and_vanished_ones_are_alerted(
) -> anyhow::Result<()> {
    require_ffmpeg()?;
    let dir = test_dir("dock-delete")?;
    let rec = make_recorder(&dir.path().join("recorders"), "ZFY0108", 4, 0, false)?;
    let want = recordings(&rec)?;
    // The hub is not up yet while the dock copies (its key exists: the dock pins it).
    let hub_cfg = hub_config(dir.path(), None)?;
    std::fs::create_dir_all(&hub_cfg.data_dir)?;
    let hub_key = evsync_hub::server::hub_key(&hub_cfg.data_dir)?.public();
    let mqtt_url = format!("mqtt://{}", hub_cfg.mqtt.listen);
    let served = Served::start(&rec, &dir.path().join("slot1"), Faults::default())?;
    let agent = Agent::start(dock_config(dir.path(), &mqtt_url, &hub_key, &[&served])).await?;
    eventually(Duration::from_secs(30), "all four copied", || async {
        let s = &agent.slots()[0];
        Ok(s.files_copied == 4 && s.state == SlotState::Waiting)
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        served.files_left()?,
        4,
        "nothing deleted before the hub holds it"
    );
    assert_eq!(agent.media_backlog()?.files, 4);

    let hub = Hub::start(hub_cfg).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    all_stored_once(&api, &served, "ZFY0108", &want, Duration::from_secs(60)).await?;
    eventually(Duration::from_secs(10), "the slot says cleared", || async {
        Ok(agent.slots()[0].state == SlotState::Cleared)
    })
    .await?;

    // Taken out; records three more; #6 is deleted on the recorder itself
    // before it comes back.
    served.stop()?;
    let new = record_more(&rec, 3)?;
    assert_eq!(new, vec![5, 6, 7]);
    let mut storage = Storage::open(&rec, "ZFY0108")?;
    storage.delete(6)?;
    storage.save()?;
    let served = Served::start(&rec, &dir.path().join("slot1"), Faults::default())?;
    eventually(Duration::from_secs(60), "the gap alerted", || async {
        let alerts = api.get_ok("/api/v1/alerts").await?;
        Ok(alerts["alerts"].as_array().is_some_and(|a| {
            a.iter().any(|x| {
                x["kind"] == "recorder_files_missing"
                    && x["device_id"] == "ZFY0108"
                    && x.to_string().contains('6')
            })
        }))
    })
    .await?;
    eventually(
        Duration::from_secs(60),
        "#5 and #7 stored, recorder empty",
        || async {
            let stored = api
                .media()
                .await?
                .iter()
                .filter(|r| r["device_id"] == "ZFY0108" && r["media_state"] == "stored")
                .filter_map(|r| r["file_index"].as_u64())
                .collect::<HashSet<_>>();
            Ok(stored == HashSet::from([1, 2, 3, 4, 5, 7]) && served.files_left()? == 0)
        },
    )
    .await?;
    let missing: Vec<Value> = api
        .feed()
        .await?
        .into_iter()
        .filter(|r| r["event"]["type"] == "files_missing")
        .collect();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(
        (
            missing[0]["event"]["from_index"].as_u64(),
            missing[0]["event"]["to_index"].as_u64()
        ),
        (Some(6), Some(6))
    );
    agent.shutdown().await?;
    served.stop()?;
    hub.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_damaged_on_the_recorder_is_refused_and_the_others_still_arrive(
) -> anyhow::Result<()> {
    require_ffmpeg()?;
    let dir = test_dir("dock-damaged")?;
    let rec = make_recorder(&dir.path().join("recorders"), "ZFY0109", 4, 0, false)?;
    let want = recordings(&rec)?;
    // #2 rots on the recorder after it was recorded: one byte flipped.
    let blob = rec.join("files").join("2.bin");
    let mut bytes = std::fs::read(&blob)?;
    bytes[1000] ^= 0x40;
    std::fs::write(&blob, bytes)?;
    let dock = Dock::start(dir, vec![(rec, Faults::default())], |_| {}).await?;
    eventually(
        Duration::from_secs(60),
        "the three sound ones stored",
        || async {
            let stored: HashSet<u64> = dock
                .api
                .media()
                .await?
                .iter()
                .filter(|r| r["media_state"] == "stored")
                .filter_map(|r| r["file_index"].as_u64())
                .collect();
            Ok(stored == HashSet::from([1, 3, 4]) && dock.served[0].files_left()? == 1)
        },
    )
    .await?;
    let slot = dock.slot(1);
    let error = slot.error.clone().unwrap_or_default();
    assert!(
        error.contains("file #2") && error.contains("does not match the recorder's digest"),
        "the slot names the file and why: {slot:?}"
    );
    assert_eq!(
        slot.state,
        SlotState::Copying,
        "not cleared: #2 is still on it"
    );
    // The damaged copy is kept nowhere as evidence, and stays on the recorder.
    let held: Vec<String> = dock
        .api
        .media()
        .await?
        .iter()
        .filter_map(|r| r["sha256"].as_str().map(str::to_owned))
        .collect();
    assert!(!held.contains(&want[1].2), "the sealed #2 never arrived");
    assert_eq!(held.len(), 3, "{held:?}");
    dock.stop().await
}

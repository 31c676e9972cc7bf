//! Issue 4 item 3 (SPEC "Interfaces — Serial": recorders that also expose USB
//! mass storage are copied from the mounted path, the serial link stays the
//! control channel), under guarantees 1 (nothing is lost: every recording
//! reaches the hub verified before the recorder is emptied), 3 (tampering is
//! detectable: bytes on the volume that differ from the recorder's own
//! digest are never accepted) and 5 (hostile file names are never used as
//! paths: they go over serial). Which files went over serial is read from
//! the simulated recorder's own log ("read #N over serial from 0").

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use evsync_agent::agent::Agent;
use evsync_e2e::recorders::{dock_config, make_recorder, require_ffmpeg, Served};
use evsync_e2e::*;
use evsync_hub::server::Hub;
use evsync_recorder_protocol::volume;
use evsync_recorder_sim::faults::Faults;
use evsync_recorder_sim::mount::MARKER;
use evsync_recorder_sim::storage::Storage;
use serde_json::Value;

/// Index → (name, SHA-256) of every recording on the recorder.
fn recordings(storage: &Path) -> anyhow::Result<HashMap<u32, (String, String)>> {
    let mut out = HashMap::new();
    for f in Storage::peek(storage)?.files {
        let path = storage.join("files").join(format!("{}.bin", f.index));
        out.insert(f.index, (f.name, media::sha256_file(&path)?));
    }
    Ok(out)
}

/// Indexes the recorder served over serial (`ReadFile` from offset 0), from its log.
fn read_over_serial(storage: &Path) -> anyhow::Result<BTreeSet<u32>> {
    Ok(Storage::peek(storage)?
        .log
        .iter()
        .filter_map(|l| l.split("read #").nth(1))
        .filter_map(|rest| rest.strip_suffix(" over serial from 0"))
        .filter_map(|n| n.parse().ok())
        .collect())
}

/// The recordings on a mass-storage volume (not the simulator's marker).
fn files_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    Ok(media::files_under(dir)
        .into_iter()
        .filter(|p| p.file_name().is_none_or(|n| n != MARKER))
        .collect())
}

/// Docks the recorder in `storage` (its volume at `mount`, with `faults`)
/// to an agent whose slot mounts it, until the hub stores `count`
/// recordings and the recorder is empty; the feed's media records.
async fn dock_with_mount(
    dir: &Path,
    storage: &Path,
    count: usize,
    faults: Faults,
) -> anyhow::Result<Vec<Value>> {
    let mount = dir.join("volume");
    let hub = Hub::start(hub_config(dir, None)?).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let served = Served::start_with_mount(storage, &dir.join("slot1"), Some(&mount), faults)?;
    let mut cfg = dock_config(dir, &hub.mqtt_url, &hub.public_key, &[&served]);
    cfg.dock.slots[0].mount = Some(mount.clone());
    let agent = Agent::start(cfg).await?;
    eventually(
        Duration::from_secs(90),
        &format!("{count} recordings stored at the hub"),
        || async { Ok(api.stored_media().await? == count) },
    )
    .await?;
    eventually(Duration::from_secs(30), "the recorder emptied", || async {
        Ok(served.files_left()? == 0)
    })
    .await?;
    eventually(
        Duration::from_secs(10),
        "the volume emptied with it",
        || async { Ok(files_under(&mount)?.is_empty()) },
    )
    .await?;
    let feed = api.feed().await?;
    check_chains(&feed)?;
    let media: Vec<Value> = feed.into_iter().filter(|r| r["kind"] == "media").collect();
    for r in &media {
        verify_feed_record(r)?;
    }
    agent.shutdown().await?;
    served.stop()?;
    hub.shutdown().await?;
    Ok(media)
}

/// Every record's (file index, SHA-256).
fn stored(media: &[Value]) -> anyhow::Result<HashMap<u32, String>> {
    media
        .iter()
        .map(|r| {
            let index = r["file_index"]
                .as_u64()
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| anyhow::anyhow!("no file index: {r}"))?;
            Ok((index, r["sha256"].as_str().unwrap_or_default().to_owned()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_names_come_off_the_mass_storage_volume_and_hostile_names_over_serial(
) -> anyhow::Result<()> {
    require_ffmpeg()?;
    let dir = test_dir("dock-mount")?;
    // 8 recordings: 4 with the recorder's own names; 4 hostile (traversal,
    // absolute, control characters, `..`). (The generator's 5th hostile
    // name, the empty one, is left out: a media record cannot carry an
    // empty file name, which is a separate problem of dock mode.)
    let rec = make_recorder(&dir.path().join("recorders"), "ZFY0031", 8, 0, true)?;
    let before = recordings(&rec)?;
    let unplain: BTreeSet<u32> = before
        .iter()
        .filter(|(_, (name, _))| !volume::is_plain(name))
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(unplain.len(), 4, "four hostile names: {before:?}");

    let media = dock_with_mount(dir.path(), &rec, 8, Faults::default()).await?;

    let got = stored(&media)?;
    assert_eq!(got.len(), 8);
    for (index, (name, sha)) in &before {
        assert_eq!(got.get(index), Some(sha), "file #{index} {name:?}");
    }
    // Only the hostile names were read over serial; the rest came off the volume.
    assert_eq!(read_over_serial(&rec)?, unplain);
    let log = Storage::peek(&rec)?.log;
    assert!(
        log.iter()
            .any(|l| l.contains("mass storage on: 4 files on the volume")),
        "{log:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_copy_that_differs_from_the_recorders_digest_is_copied_again_over_serial(
) -> anyhow::Result<()> {
    require_ffmpeg()?;
    let dir = test_dir("dock-mount-tamper")?;
    let rec = make_recorder(&dir.path().join("recorders"), "ZFY0032", 4, 0, false)?;
    let before = recordings(&rec)?;
    let first = before.keys().copied().min().unwrap_or(1);
    let tampered = first + 1;
    let faults = Faults {
        mount_tamper_index: Some(tampered),
        ..Faults::default()
    };

    let media = dock_with_mount(dir.path(), &rec, 4, faults).await?;

    // The stored evidence is what the recorder vouches for, file by file.
    let got = stored(&media)?;
    for (index, (_, sha)) in &before {
        assert_eq!(got.get(index), Some(sha), "file #{index}");
    }
    assert_eq!(read_over_serial(&rec)?, BTreeSet::from([tampered]));
    Ok(())
}

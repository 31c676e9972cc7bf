//! SPEC.md guarantees 1 and 5 at the field spool: a file still being written
//! is not taken half-written; a hostile file name stays metadata; a recording
//! becomes a media record carrying the SHA-256 of the whole file and its
//! container metadata; an invalid event file is moved aside with its reason,
//! and everything else keeps flowing.

use std::io::Write;
use std::time::Duration;

use evsync_agent::agent::Agent;
use evsync_e2e::*;
use evsync_hub::server::Hub;
use evsync_protocol::chain::Hash;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_taken_whole_recordings_carry_hash_and_metadata_and_bad_events_are_set_aside(
) -> anyhow::Result<()> {
    let dir = test_dir("spool")?;
    let hub = Hub::start(hub_config(dir.path(), None)?).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let id = unique("field-spool");
    let mut cfg = agent_config(dir.path(), &id, &hub.mqtt_url, &hub.public_key);
    // The slow writer pauses 60 ms between chunks: far below the settle time, even on a loaded machine.
    cfg.spool.settle_ms = 1500;
    std::fs::create_dir_all(&cfg.spool_dir)?;
    let spool = cfg.spool_dir.clone();
    let agent = Agent::start(cfg).await?;

    // A recording written slowly, straight under its final name (no rename).
    let slow = spool.join("VID_slow.mp4");
    let mut whole = Vec::new();
    {
        let mut f = std::fs::File::create(&slow)?;
        for i in 0..12u8 {
            let chunk = vec![i; 256 * 1024];
            f.write_all(&chunk)?;
            f.flush()?;
            whole.extend_from_slice(&chunk);
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    }
    // A real MP4 recording, an invalid event file, and a valid one after it.
    let mp4 = dir.path().join("VID_0001.mp4");
    evsync_hub::demo::write_mp4(&mp4, 6, 800, 1)?;
    let mp4_hash = Hash::of(&std::fs::read(&mp4)?).to_hex();
    std::fs::rename(&mp4, spool.join("VID_0001.mp4"))?;
    std::fs::write(
        spool.join("bad.json"),
        br#"{"event": {"type": "teleported"}}"#,
    )?;
    drop_events(&spool, 0, 1)?;
    std::fs::copy(
        spool.join("ev-000000.json"),
        dir.path().join("ev-copy.json"),
    )?;
    // An MP4 whose header says timescale 0 (the parser would divide by it).
    let corrupt = dir.path().join("corrupt.mp4");
    evsync_hub::demo::write_mp4(&corrupt, 2, 100, 9)?;
    let mut bytes = std::fs::read(&corrupt)?;
    let mvhd = bytes
        .windows(4)
        .position(|w| w == b"mvhd")
        .ok_or_else(|| anyhow::anyhow!("no mvhd"))?;
    bytes[mvhd + 16..mvhd + 20].copy_from_slice(&[0; 4]);
    std::fs::write(spool.join("VID_corrupt.mp4"), &bytes)?;
    // An event file too large for a record body: set aside, not resent forever.
    let big =
        serde_json::json!({"event": {"type": "marked_important", "note": "x".repeat(20_000)}});
    std::fs::write(spool.join("big.json"), big.to_string())?;
    // A hostile name is only ever metadata: never a path at the agent or the hub.
    let hostile = "VID_\u{202e}4pm.exe\n$(rm -rf ~);..mp4";
    std::fs::write(spool.join(hostile), b"not really a video")?;

    eventually(
        Duration::from_secs(20),
        "five records in the feed",
        || async { Ok(hub.record_count().await? == 5) },
    )
    .await?;
    let feed = api.feed().await?;
    check_chains(&feed)?;
    let by_name = |name: &str| feed.iter().find(|r| r["file_name"] == name).cloned();
    let slow_rec =
        by_name("VID_slow.mp4").ok_or_else(|| anyhow::anyhow!("slow file missing: {feed:?}"))?;
    assert_eq!(
        slow_rec["sha256"],
        Hash::of(&whole).to_hex(),
        "taken before it was complete"
    );
    assert_eq!(slow_rec["size"], whole.len());
    let mp4_rec = by_name("VID_0001.mp4").ok_or_else(|| anyhow::anyhow!("mp4 missing"))?;
    assert_eq!(mp4_rec["sha256"], mp4_hash);
    assert_eq!(mp4_rec["mime"], "video/mp4");
    assert_eq!(mp4_rec["duration_ms"], 6000);
    assert_eq!(notes(&feed), ["file-0"]);
    let broken =
        by_name("VID_corrupt.mp4").ok_or_else(|| anyhow::anyhow!("corrupt MP4 missing"))?;
    assert_eq!(
        broken["sha256"],
        Hash::of(&bytes).to_hex(),
        "a corrupt recording is still evidence"
    );
    assert!(broken["duration_ms"].is_null());
    let too_big = std::fs::read_to_string(spool.join(".rejected/big.json.error.txt"))?;
    assert!(too_big.contains("expected at most 16384"), "{too_big}");

    // The same name with the same content, written again later, is a new event.
    let again = spool.join("ev-000000.json");
    std::fs::write(&again, std::fs::read(dir.path().join("ev-copy.json"))?)?;
    eventually(
        Duration::from_secs(20),
        "the rewritten event recorded again",
        || async { Ok(hub.record_count().await? == 6) },
    )
    .await?;
    assert_eq!(notes(&api.feed().await?), ["file-0", "file-0"]);
    let odd = by_name(hostile).ok_or_else(|| anyhow::anyhow!("hostile name missing"))?;
    assert_eq!(odd["sha256"], Hash::of(b"not really a video").to_hex());
    assert!(
        odd["duration_ms"].is_null(),
        "not an MP4, so no container metadata"
    );

    let rejected = spool.join(".rejected");
    assert!(
        rejected.join("bad.json").exists(),
        "the bad event file is kept, not deleted"
    );
    let reason = std::fs::read_to_string(rejected.join("bad.json.error.txt"))?;
    assert!(
        reason.contains("teleported"),
        "the reason names the bad value: {reason}"
    );
    // The recording reaches the hub byte for byte; only then does the agent
    // let go of the copy it held.
    let rec = by_name("VID_0001.mp4").ok_or_else(|| anyhow::anyhow!("VID_0001.mp4 missing"))?;
    let path = format!(
        "/api/v1/records/{}/media",
        rec["id"].as_str().unwrap_or_default()
    );
    eventually(
        Duration::from_secs(20),
        "the recording stored at the hub",
        || async {
            let feed = api.feed().await?;
            Ok(feed
                .iter()
                .any(|r| r["id"] == rec["id"] && r["media_state"] == "stored"))
        },
    )
    .await?;
    let url = format!("http://{}{path}", hub.http_addr);
    let auth = ("authorization", format!("Bearer {}", hub.token));
    let played =
        tokio::task::spawn_blocking(move || evsync_e2e::media::request("GET", &url, &[auth], None))
            .await??;
    assert_eq!(Hash::of(&played.body).to_hex(), mp4_hash);
    let held = dir.path().join(&id).join("data/media").join(&mp4_hash);
    eventually(
        Duration::from_secs(20),
        "the agent releasing its copy",
        || async { Ok(!held.exists()) },
    )
    .await?;
    agent.shutdown().await?;
    hub.shutdown().await
}

//! Media storage that scales (issue 8): verified recordings kept in an
//! S3-compatible bucket instead of the hub's folder, and uploads that
//! continue on whichever hub takes their next chunk (partials on shared
//! storage). SPEC.md guarantees 1 (media is receipted only once verified
//! and durably stored: here, in the bucket) and 3 (altered bytes are
//! caught and never stored); the API's media endpoint plays recordings back
//! exactly, with ranges, from the bucket.
//!
//! Runs against `moto_server` (an S3-protocol server from PyPI, installed
//! by `scripts/setup`); skips, saying so, without it.

use std::path::Path;
use std::time::Duration;

use evsync_agent::agent::Agent;
use evsync_e2e::media::{self, behind_proxy, files_under, sha256, spool_random, Answer};
use evsync_e2e::s3::Moto;
use evsync_e2e::*;
use evsync_hub::config::{BlobStore, HubConfig};
use evsync_hub::media::blobs::s3::PART;
use evsync_hub::media::{Blobs, Partials};
use evsync_hub::server::Hub;
use evsync_protocol::chain::GENESIS;

/// One HTTP call off the async runtime.
async fn call(
    method: &'static str,
    url: &str,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
) -> anyhow::Result<Answer> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || media::request(method, &url, &headers, body)).await?
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

/// `PATCH`es `bytes` at offset `from` under the grant `token`.
async fn patch(url: &str, token: &str, bytes: &[u8], from: usize) -> anyhow::Result<Answer> {
    call(
        "PATCH",
        url,
        vec![bearer(token), ("upload-offset", from.to_string())],
        Some(bytes.to_vec()),
    )
    .await
}

/// A hub configuration in `dir` keeping recordings in `moto`'s bucket under `prefix`.
fn s3_hub_config(dir: &Path, moto: &Moto, prefix: &str) -> anyhow::Result<HubConfig> {
    let mut cfg = hub_config(dir, None)?;
    std::fs::create_dir_all(dir)?;
    cfg.media.store = BlobStore::S3;
    cfg.media.s3 = Some(moto.config(dir, prefix)?);
    Ok(cfg)
}

/// Checks that a hub answers a media request with exactly `content`, whole and in ranges.
async fn plays_back(url: &str, token: &str, content: &[u8]) -> anyhow::Result<()> {
    let size = content.len();
    let whole = call("GET", url, vec![bearer(token)], None).await?;
    assert_eq!(whole.status, 200, "{}", whole.text());
    assert_eq!(whole.body, content, "played back whole, exactly");
    assert_eq!(
        whole.header("content-length"),
        Some(size.to_string().as_str())
    );
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    // Across the boundary between two uploaded parts, and the last bytes.
    for (range, from, to) in [
        (
            format!("bytes={}-{}", PART - 100, PART + 99),
            PART - 100,
            PART + 100,
        ),
        ("bytes=-1000".to_owned(), size - 1000, size),
        (format!("bytes={}-", size - 5), size - 5, size),
    ] {
        let part = call(
            "GET",
            url,
            vec![bearer(token), ("range", range.clone())],
            None,
        )
        .await?;
        assert_eq!(part.status, 206, "{range}: {}", part.text());
        assert_eq!(part.body, &content[from..to], "{range}");
        assert_eq!(
            part.header("content-range"),
            Some(format!("bytes {from}-{}/{size}", to - 1).as_str()),
            "{range}"
        );
    }
    let past = call(
        "GET",
        url,
        vec![bearer(token), ("range", format!("bytes={size}-"))],
        None,
    )
    .await?;
    assert_eq!(past.status, 416, "{}", past.text());
    assert_eq!(
        past.header("content-range"),
        Some(format!("bytes */{size}").as_str())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_uploaded_through_an_agent_is_stored_in_the_bucket_under_its_sha256_and_played_back_exactly(
) -> anyhow::Result<()> {
    let Some(moto) = Moto::start("evidence")? else {
        return Ok(());
    };
    let dir = test_dir("s3-agent")?;
    let hub = Hub::start(s3_hub_config(dir.path(), &moto, "recordings")?).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let cfg = agent_config(
        dir.path(),
        &unique("field-s3"),
        &hub.mqtt_url,
        &hub.public_key,
    );
    std::fs::create_dir_all(&cfg.spool_dir)?;
    let original = dir.path().join("VID_0001.mp4");
    evsync_hub::demo::write_mp4(&original, 30, 30_000, 7)?;
    let content = std::fs::read(&original)?;
    let sha = sha256(&content);
    assert!(
        content.len() > 2 * PART,
        "the recording spans several parts of a multipart upload"
    );
    let part = cfg.spool_dir.join("20261123_083000_0001.mp4.part");
    std::fs::copy(&original, &part)?;
    std::fs::rename(&part, cfg.spool_dir.join("20261123_083000_0001.mp4"))?;
    let agent = Agent::start(cfg).await?;
    eventually(Duration::from_secs(60), "the recording stored", || async {
        let m = api.media().await?;
        Ok(m.len() == 1 && m[0]["media_state"] == "stored")
    })
    .await?;

    let object = moto
        .get(&format!("recordings/{sha}"))
        .await?
        .expect("the object under its hash");
    assert_eq!(object, content, "the bucket holds the exact bytes");
    assert!(
        files_under(&dir.path().join("hub/blobs")).is_empty(),
        "nothing stored in the hub's folder"
    );
    assert!(files_under(&dir.path().join("hub/partials")).is_empty());

    let id = api.media().await?[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let url = format!("http://{}/api/v1/records/{id}/media", hub.http_addr);
    plays_back(&url, &hub.token, &content).await?;
    let whole = call("GET", &url, vec![bearer(&hub.token)], None).await?;
    assert_eq!(whole.header("content-type"), Some("video/mp4"));
    assert_eq!(whole.header("etag"), Some(format!("\"{sha}\"").as_str()));
    agent.shutdown().await?;
    hub.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_altered_in_flight_are_refused_and_only_the_original_reaches_the_bucket(
) -> anyhow::Result<()> {
    let Some(moto) = Moto::start("evidence")? else {
        return Ok(());
    };
    let dir = test_dir("s3-altered")?;
    let mut cfg = s3_hub_config(dir.path(), &moto, "")?;
    let proxy = behind_proxy(&mut cfg)?;
    let hub = Hub::start(cfg).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let acfg = agent_config(
        dir.path(),
        &unique("field-s3-alter"),
        &hub.mqtt_url,
        &hub.public_key,
    );
    proxy.corrupt_once_at(5 << 20);
    let sha = spool_random(&acfg.spool_dir, "VID_0002.mp4", 12 << 20, 3)?;
    let agent = Agent::start(acfg).await?;
    eventually(Duration::from_secs(60), "the recording stored", || async {
        let m = api.media().await?;
        Ok(m.len() == 1 && m[0]["media_state"] == "stored")
    })
    .await?;
    assert_eq!(proxy.corrupted(), 1, "the proxy altered one byte");
    assert_eq!(api.metric("evsync_hub_media_mismatches_total").await?, 1.0);
    let object = moto.get(&sha).await?.expect("the object under its hash");
    assert_eq!(sha256(&object), sha, "the bucket holds the original bytes");
    agent.shutdown().await?;
    hub.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bucket_store_keeps_content_only_under_its_own_hash_in_one_or_many_parts(
) -> anyhow::Result<()> {
    let Some(moto) = Moto::start("blobs")? else {
        return Ok(());
    };
    let dir = test_dir("s3-store")?;
    let mut cfg = HubConfig {
        data_dir: dir.path().join("hub"),
        ..HubConfig::default()
    };
    cfg.media.store = BlobStore::S3;
    cfg.media.s3 = Some(moto.config(dir.path(), "store/test")?);
    let blobs = Blobs::open(&cfg)?;
    assert!(matches!(blobs, Blobs::S3(_)));
    let partials = Partials::open(&cfg.partials_dir())?;
    for (size, seed) in [(1000u64, 1u64), (PART as u64 * 2 + 12_345, 2)] {
        let held = partials
            .try_take(&"00".repeat(32))?
            .expect("no one else holds it");
        let sha = media::write_random(held.path(), size, seed)?;
        drop(held);
        // Named after other content: refused, nothing stored, the partial kept.
        let wrong = partials.path(&"00".repeat(32))?;
        let err = blobs.commit(&"00".repeat(32), &wrong).await.unwrap_err();
        assert!(format!("{err:#}").contains("not stored"), "{err:#}");
        assert_eq!(blobs.size(&"00".repeat(32)).await?, None);
        assert!(wrong.exists());
        let right = partials.path(&sha)?;
        std::fs::rename(&wrong, &right)?;
        assert_eq!(blobs.size(&sha).await?, None);
        blobs.commit(&sha, &right).await?;
        assert_eq!(blobs.size(&sha).await?, Some(size));
        assert!(!right.exists(), "the partial is removed once stored");
        let object = moto.get(&format!("store/test/{sha}")).await?;
        assert_eq!(object.map(|o| sha256(&o)), Some(sha));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_begun_on_one_hub_is_continued_and_finished_on_another_sharing_the_partials_and_the_bucket(
) -> anyhow::Result<()> {
    let Some(moto) = Moto::start("shared")? else {
        return Ok(());
    };
    let dir = test_dir("s3-two-hubs")?;
    // Two hub instances on one metadata store (the PostgreSQL hubs behind a
    // load balancer share, when the tests have one; else one SQLite file in
    // the shared data_dir), one key (in the shared data_dir), one partials
    // folder and one bucket; each with its own ports.
    let schema = std::env::var(evsync_e2e::postgres::POSTGRES_ENV)
        .ok()
        .filter(|u| !u.is_empty())
        .map(|url| evsync_e2e::postgres::PgSchema::new(&url, "evsync_e2e_s3_two_hubs"));
    let shared_partials = dir.path().join("shared-partials");
    let mut cfgs = Vec::new();
    for _ in 0..2 {
        let mut cfg = s3_hub_config(dir.path(), &moto, "")?;
        cfg.media.partials_dir = Some(shared_partials.clone());
        if let Some(s) = &schema {
            cfg.store.url = std::env::var(evsync_e2e::postgres::POSTGRES_ENV).ok();
            cfg.store.schema = Some(s.name.clone());
        }
        cfgs.push(cfg);
    }
    let hub_a = Hub::start(cfgs.remove(0)).await?;
    let hub_b = Hub::start(cfgs.remove(0)).await?;

    let mut dev = RawDevice::connect(&hub_a.mqtt_url, &unique("raw-s3")).await?;
    dev.announce().await?;
    let content: Vec<u8> = {
        let mut rng = fastrand::Rng::with_seed(8);
        (0..PART * 3 + 4321).map(|_| rng.u8(..)).collect()
    };
    let sha = sha256(&content);
    let size = content.len() as u64;
    let body = dev.media_body(1, GENESIS, &sha, size);
    tokio::time::sleep(Duration::from_millis(300)).await; // the announcement first
    dev.send(&[dev.seal(&body)]).await?;
    dev.receipt(&hub_a.public_key).await?;
    let (_, token) = dev.grant(&hub_a.public_key).await?;
    let path = format!("/api/v1/uploads/{}", body.id);
    let at_a = format!("http://{}{path}", hub_a.http_addr);
    let at_b = format!("http://{}{path}", hub_b.http_addr);

    // The first 5 MiB reach hub A, the next 5 MiB hub B, the next 5 MiB hub A again.
    let mib = 1usize << 20;
    for (url, from, to) in [
        (&at_a, 0, 5 * mib),
        (&at_b, 5 * mib, 10 * mib),
        (&at_a, 10 * mib, 15 * mib),
    ] {
        let head = call("HEAD", url, vec![bearer(&token)], None).await?;
        assert_eq!(
            (head.status, head.offset),
            (200, Some(from as u64)),
            "{url}"
        );
        let sent = patch(url, &token, &content[from..to], from).await?;
        assert_eq!(
            (sent.status, sent.offset),
            (204, Some(to as u64)),
            "{url}: {}",
            sent.text()
        );
    }
    // While another holder (a third hub) appends to the partial, hub B
    // waits for it to let go, then continues from what it left.
    let other = Partials::open(&shared_partials)?
        .try_take(&sha)?
        .expect("no hub holds the partial between requests");
    let mut appending = other.file();
    std::io::Write::write_all(&mut appending, &content[15 * mib..16 * mib])?;
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        drop(other);
    });
    let asked = std::time::Instant::now();
    let sent = patch(&at_b, &token, &content[16 * mib..17 * mib], 16 * mib).await?;
    assert!(
        asked.elapsed() >= Duration::from_millis(1400),
        "hub B appended while the partial was held elsewhere"
    );
    assert_eq!(
        (sent.status, sent.offset),
        (204, Some(17 * mib as u64)),
        "{}",
        sent.text()
    );
    releaser
        .join()
        .map_err(|_| anyhow::anyhow!("the releasing thread panicked"))?;

    // Hub A goes away; hub B knows where the upload stands and finishes it.
    hub_a.shutdown().await?;
    let head = call("HEAD", &at_b, vec![bearer(&token)], None).await?;
    assert_eq!((head.status, head.offset), (200, Some(17 * mib as u64)));
    let rest = patch(&at_b, &token, &content[17 * mib..], 17 * mib).await?;
    assert_eq!(
        (rest.status, rest.state.as_deref()),
        (204, Some("stored")),
        "{}",
        rest.text()
    );
    let object = moto.get(&sha).await?.expect("the object under its hash");
    assert_eq!(sha256(&object), sha);
    assert!(files_under(&shared_partials).is_empty());

    let url = format!(
        "http://{}/api/v1/records/{}/media",
        hub_b.http_addr, body.id
    );
    plays_back(&url, &hub_b.token, &content).await?;
    hub_b.shutdown().await
}

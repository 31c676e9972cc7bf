//! The media data plane (issue 3): recordings reach the hub complete and
//! verified, under hub-signed grants, resumable, stored once, and played
//! back with HTTP Range. SPEC.md guarantees 1 (the hub receipts media only
//! once it is verified and durable), 3 (altered bytes are caught) and 5
//! (bad uploads get clear refusals).

use std::path::Path;
use std::time::Duration;

use evsync_agent::agent::Agent;
use evsync_e2e::media::{
    self, behind_proxy, files_under, sha256, sha256_file, spool_random, Answer,
};
use evsync_e2e::*;
use evsync_hub::server::Hub;
use evsync_protocol::chain::GENESIS;
use evsync_protocol::grant::{GrantBody, GrantRequest};
use evsync_protocol::media_receipt::MediaStatus;
use evsync_protocol::receipt::Status;
use evsync_protocol::record::Event;

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

fn offset(n: u64) -> (&'static str, String) {
    ("upload-offset", n.to_string())
}

fn blob_files(hub_dir: &Path) -> Vec<std::path::PathBuf> {
    files_under(&hub_dir.join("hub/blobs"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_is_uploaded_verified_stored_once_and_released_by_the_agent(
) -> anyhow::Result<()> {
    let dir = test_dir("media-once")?;
    let hub = Hub::start(hub_config(dir.path(), None)?).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let cfg = agent_config(
        dir.path(),
        &unique("field-media"),
        &hub.mqtt_url,
        &hub.public_key,
    );
    std::fs::create_dir_all(&cfg.spool_dir)?;
    let original = dir.path().join("VID_0001.mp4");
    evsync_hub::demo::write_mp4(&original, 20, 24_000, 7)?;
    let sha = sha256_file(&original)?;
    let size = std::fs::metadata(&original)?.len();
    // The same recording twice under two names: two records, one blob.
    for name in ["20261123_083000_0001.mp4", "20261123_083000_0001_copy.mp4"] {
        let part = cfg.spool_dir.join(format!("{name}.part"));
        std::fs::copy(&original, &part)?;
        std::fs::rename(&part, cfg.spool_dir.join(name))?;
    }
    let agent = Agent::start(cfg.clone()).await?;

    eventually(
        Duration::from_secs(30),
        "both records' media stored",
        || async {
            let m = api.media().await?;
            Ok(m.len() == 2 && m.iter().all(|r| r["media_state"] == "stored"))
        },
    )
    .await?;
    let records = api.media().await?;
    for r in &records {
        verify_feed_record(r)?;
        assert_eq!(r["sha256"], sha.as_str());
    }
    assert_eq!(
        blob_files(dir.path()),
        vec![dir
            .path()
            .join("hub/blobs")
            .join(&sha[..2])
            .join(&sha[2..4])
            .join(&sha)],
        "the content is stored exactly once, content-addressed"
    );
    assert!(files_under(&dir.path().join("hub/partials")).is_empty());
    assert_eq!(api.metric("evsync_hub_media_stored_total").await?, 1.0);

    // Played back whole: the exact bytes, with type, length and the hash as ETag.
    let id = records[0]["id"].as_str().unwrap_or_default();
    let url = format!("http://{}/api/v1/records/{id}/media", hub.http_addr);
    let whole = call("GET", &url, vec![bearer(&hub.token)], None).await?;
    assert_eq!(whole.status, 200, "{}", whole.text());
    assert_eq!(sha256(&whole.body), sha);
    assert_eq!(whole.header("content-type"), Some("video/mp4"));
    assert_eq!(
        whole.header("content-length"),
        Some(size.to_string().as_str())
    );
    assert_eq!(whole.header("etag"), Some(format!("\"{sha}\"").as_str()));
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    let anonymous = call("GET", &url, vec![], None).await?;
    assert_eq!(anonymous.status, 401);

    // The agent lets go of its copy only on the media receipt. It commits
    // that to its buffer first, then removes the file and counts it, so wait
    // for all three.
    eventually(
        Duration::from_secs(10),
        "the agent releasing its copy",
        || async {
            Ok(agent.media_backlog()?.files == 0
                && !cfg.data_dir.join("media").join(&sha).exists()
                && agent
                    .upload_stats()
                    .receipted
                    .load(std::sync::atomic::Ordering::Relaxed)
                    >= 1)
        },
    )
    .await?;
    agent.shutdown().await?;
    hub.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_resume_from_the_offset_the_hub_holds_and_ranges_return_the_right_bytes(
) -> anyhow::Result<()> {
    let dir = test_dir("media-ranges")?;
    let hub = Hub::start(hub_config(dir.path(), None)?).await?;
    let mut dev = RawDevice::connect(&hub.mqtt_url, &unique("raw-media")).await?;
    dev.announce().await?;
    let content: Vec<u8> = {
        let mut rng = fastrand::Rng::with_seed(42);
        (0..3 * 1024 * 1024 + 17).map(|_| rng.u8(..)).collect()
    };
    let size = content.len() as u64;
    let body = dev.media_body(1, GENESIS, &sha256(&content), size);
    tokio::time::sleep(Duration::from_millis(300)).await; // the announcement first
    dev.send(&[dev.seal(&body)]).await?;
    let receipt = dev.receipt(&hub.public_key).await?;
    assert_eq!(receipt.entries[0].status, Status::Stored);
    let (grant, token) = dev.grant(&hub.public_key).await?;
    assert_eq!((grant.record_id, grant.size), (body.id, size));
    let url = grant.url.clone();

    let head = call("HEAD", &url, vec![bearer(&token)], None).await?;
    assert_eq!((head.status, head.offset), (200, Some(0)));
    assert_eq!(
        head.header("upload-length"),
        Some(size.to_string().as_str())
    );
    let first = call(
        "PATCH",
        &url,
        vec![bearer(&token), offset(0)],
        Some(content[..1 << 20].to_vec()),
    )
    .await?;
    assert_eq!(
        (first.status, first.offset),
        (204, Some(1 << 20)),
        "{}",
        first.text()
    );
    // A client that lost track is told where to continue.
    let stale = call(
        "PATCH",
        &url,
        vec![bearer(&token), offset(0)],
        Some(content[..10].to_vec()),
    )
    .await?;
    assert_eq!(
        (stale.status, stale.offset),
        (409, Some(1 << 20)),
        "{}",
        stale.text()
    );
    // Refused on its declared length, before the hub reads any of it.
    let (addr, path) = (hub.http_addr, format!("/api/v1/uploads/{}", body.id));
    let auth = format!("Bearer {token}");
    let (status, text) = tokio::task::spawn_blocking(move || {
        media::declare_only(
            addr,
            "PATCH",
            &path,
            &[
                ("Authorization", auth),
                ("Upload-Offset", (1u64 << 20).to_string()),
            ],
            size,
        )
    })
    .await??;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("size"), "{text}");
    let head = call("HEAD", &url, vec![bearer(&token)], None).await?;
    assert_eq!(
        head.offset,
        Some(1 << 20),
        "a refused request changes nothing"
    );
    let rest = call(
        "PATCH",
        &url,
        vec![bearer(&token), offset(1 << 20)],
        Some(content[1 << 20..].to_vec()),
    )
    .await?;
    assert_eq!(
        (rest.status, rest.state.as_deref()),
        (204, Some("stored")),
        "{}",
        rest.text()
    );
    let mr = dev.media_receipt(&hub.public_key).await?;
    assert_eq!(
        (mr.record_id, mr.status, mr.sha256.as_str()),
        (body.id, MediaStatus::Stored, sha256(&content).as_str())
    );

    let media = format!("http://{}/api/v1/records/{}/media", hub.http_addr, body.id);
    let auth = bearer(&hub.token);
    for _ in 0..25 {
        let a = fastrand::u64(0..size);
        let b = fastrand::u64(a..size.min(a + 300_000));
        let part = call(
            "GET",
            &media,
            vec![auth.clone(), ("range", format!("bytes={a}-{b}"))],
            None,
        )
        .await?;
        assert_eq!(part.status, 206);
        assert_eq!(part.body, content[a as usize..=b as usize], "bytes={a}-{b}");
        assert_eq!(
            part.header("content-range"),
            Some(format!("bytes {a}-{b}/{size}").as_str())
        );
        assert_eq!(part.header("content-type"), Some("video/mp4"));
    }
    let tail = call(
        "GET",
        &media,
        vec![auth.clone(), ("range", "bytes=-500".into())],
        None,
    )
    .await?;
    assert_eq!(
        (tail.status, &tail.body[..]),
        (206, &content[size as usize - 500..])
    );
    let open = call(
        "GET",
        &media,
        vec![auth.clone(), ("range", format!("bytes={}-", size - 1000))],
        None,
    )
    .await?;
    assert_eq!(
        (open.status, &open.body[..]),
        (206, &content[size as usize - 1000..])
    );
    let beyond = call(
        "GET",
        &media,
        vec![auth.clone(), ("range", format!("bytes={size}-"))],
        None,
    )
    .await?;
    assert_eq!(beyond.status, 416);
    assert_eq!(
        beyond.header("content-range"),
        Some(format!("bytes */{size}").as_str())
    );
    assert_eq!(
        beyond.header("content-type"),
        Some("application/json"),
        "a refusal is not labelled as the recording: {}",
        beyond.text()
    );
    let etag = format!("\"{}\"", sha256(&content));
    let cached = call(
        "GET",
        &media,
        vec![auth.clone(), ("if-none-match", etag.clone())],
        None,
    )
    .await?;
    assert_eq!((cached.status, cached.body.len()), (304, 0));
    let changed = call(
        "GET",
        &media,
        vec![
            auth.clone(),
            ("range", "bytes=0-9".into()),
            ("if-range", "\"other\"".into()),
        ],
        None,
    )
    .await?;
    assert_eq!(
        (changed.status, changed.body.len() as u64),
        (200, size),
        "If-Range of other content gets the whole file"
    );
    let same = call(
        "GET",
        &media,
        vec![auth, ("range", "bytes=0-9".into()), ("if-range", etag)],
        None,
    )
    .await?;
    assert_eq!((same.status, &same.body[..]), (206, &content[..10]));
    hub.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_without_a_valid_grant_or_for_another_devices_record_are_refused(
) -> anyhow::Result<()> {
    let dir = test_dir("media-grants")?;
    let hub = Hub::start(hub_config(dir.path(), None)?).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let mut a = RawDevice::connect(&hub.mqtt_url, &unique("raw-a")).await?;
    let mut b = RawDevice::connect(&hub.mqtt_url, &unique("raw-b")).await?;
    a.announce().await?;
    b.announce().await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let content = b"recording of device a".to_vec();
    let rec_a = a.media_body(1, GENESIS, &sha256(&content), content.len() as u64);
    let rec_b = b.media_body(1, GENESIS, &sha256(b"of b"), 4);
    a.send(&[a.seal(&rec_a)]).await?;
    b.send(&[b.seal(&rec_b)]).await?;
    a.receipt(&hub.public_key).await?;
    b.receipt(&hub.public_key).await?;
    let (grant_a, token_a) = a.grant(&hub.public_key).await?;
    let (_, token_b) = b.grant(&hub.public_key).await?;
    let url_a = grant_a.url.clone();
    let put = |headers: Vec<(&'static str, String)>| {
        call("PATCH", &url_a, headers, Some(content.clone()))
    };

    let none = put(vec![offset(0)]).await?;
    assert_eq!(none.status, 401);
    assert!(none.text().contains("grant"), "{}", none.text());
    let garbage = put(vec![bearer("not-a-grant"), offset(0)]).await?;
    assert_eq!(garbage.status, 401, "{}", garbage.text());
    // B's valid grant does not open A's record.
    let other = put(vec![bearer(&token_b), offset(0)]).await?;
    assert_eq!(other.status, 403, "{}", other.text());
    assert!(
        other.text().contains(&rec_a.id.to_string()),
        "{}",
        other.text()
    );
    // A grant A signed itself is not the hub's.
    let mut forged = grant_a.clone();
    forged.expires_at = chrono::Utc::now() + chrono::Duration::hours(1);
    let forged = put(vec![
        bearer(&GrantBody::token(&forged.sign(&a.key))),
        offset(0),
    ])
    .await?;
    assert_eq!(forged.status, 401);
    assert!(forged.text().contains("signature"), "{}", forged.text());
    // The hub's own signature, but expired.
    let (hub_key, _) = evsync_protocol::keyfile::load_or_create(&dir.path().join("hub/hub.key"))?;
    let mut expired = grant_a.clone();
    expired.expires_at = chrono::Utc::now() - chrono::Duration::seconds(1);
    let expired = put(vec![
        bearer(&GrantBody::token(&expired.sign(&hub_key))),
        offset(0),
    ])
    .await?;
    assert_eq!(expired.status, 401);
    assert!(expired.text().contains("expired"), "{}", expired.text());
    // A hub-signed grant for a record the hub does not hold: no bytes accepted.
    let mut phantom = grant_a.clone();
    phantom.record_id = uuid::Uuid::now_v7();
    let phantom_url = format!(
        "http://{}/api/v1/uploads/{}",
        hub.http_addr, phantom.record_id
    );
    let phantom = call(
        "PATCH",
        &phantom_url,
        vec![
            bearer(&GrantBody::token(&phantom.sign(&hub_key))),
            offset(0),
        ],
        Some(content.clone()),
    )
    .await?;
    assert_eq!(phantom.status, 404, "{}", phantom.text());
    assert!(
        files_under(&dir.path().join("hub/partials")).is_empty(),
        "refused bytes were written"
    );

    // B asking for a grant to A's record, or to one that does not exist, gets nothing.
    let ask = GrantRequest {
        v: 1,
        records: vec![rec_a.id, uuid::Uuid::now_v7()],
    };
    b.publish("uploads", ask.to_bytes()).await?;
    assert!(
        !b.grant_within(Duration::from_millis(1500)).await,
        "B was granted A's record"
    );
    assert_eq!(
        api.metric("evsync_hub_rejected_total{reason=\"not_your_record\"}")
            .await?,
        1.0
    );
    assert_eq!(
        api.metric("evsync_hub_rejected_total{reason=\"unknown_record\"}")
            .await?,
        1.0
    );

    // A, with its own grant, can.
    let ok = put(vec![bearer(&token_a), offset(0)]).await?;
    assert_eq!(
        (ok.status, ok.state.as_deref()),
        (204, Some("stored")),
        "{}",
        ok.text()
    );
    // Asking again after it is stored brings the media receipt again (one was lost, say).
    a.media_receipt(&hub.public_key).await?;
    a.publish(
        "uploads",
        GrantRequest {
            v: 1,
            records: vec![rec_a.id],
        }
        .to_bytes(),
    )
    .await?;
    assert_eq!(
        a.media_receipt(&hub.public_key).await?.status,
        MediaStatus::Stored
    );
    hub.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_altered_in_flight_are_caught_and_the_file_is_sent_again() -> anyhow::Result<()> {
    let dir = test_dir("media-altered")?;
    let mut cfg = hub_config(dir.path(), None)?;
    let proxy = behind_proxy(&mut cfg)?;
    let hub = Hub::start(cfg).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let acfg = agent_config(
        dir.path(),
        &unique("field-alter"),
        &hub.mqtt_url,
        &hub.public_key,
    );
    proxy.corrupt_once_at(5 << 20);
    let sha = spool_random(&acfg.spool_dir, "VID_0002.mp4", 16 << 20, 3)?;
    let agent = Agent::start(acfg).await?;
    eventually(Duration::from_secs(30), "the recording stored", || async {
        let m = api.media().await?;
        Ok(m.len() == 1 && m[0]["media_state"] == "stored")
    })
    .await?;
    assert_eq!(proxy.corrupted(), 1, "the proxy altered one byte");
    assert_eq!(api.metric("evsync_hub_media_mismatches_total").await?, 1.0);
    assert!(
        agent
            .upload_stats()
            .mismatches
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    let blobs = blob_files(dir.path());
    assert_eq!(blobs.len(), 1);
    assert_eq!(
        sha256_file(&blobs[0])?,
        sha,
        "the store holds the original bytes"
    );
    agent.shutdown().await?;
    hub.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_mismatches_fail_the_media_with_an_alert_and_keep_it_out_of_the_store(
) -> anyhow::Result<()> {
    let dir = test_dir("media-failed")?;
    let hub = Hub::start(hub_config(dir.path(), None)?).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let mut dev = RawDevice::connect(&hub.mqtt_url, &unique("raw-bad")).await?;
    dev.announce().await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rec = dev.media_body(1, GENESIS, &sha256(b"the real recording"), 18);
    dev.send(&[dev.seal(&rec)]).await?;
    dev.receipt(&hub.public_key).await?;
    let (grant, token) = dev.grant(&hub.public_key).await?;
    for attempt in 1..=3 {
        let a = call(
            "PATCH",
            &grant.url,
            vec![bearer(&token), offset(0)],
            Some(b"a forged recording".to_vec()),
        )
        .await?;
        let expected = if attempt < 3 { 422 } else { 410 };
        assert_eq!(a.status, expected, "attempt {attempt}: {}", a.text());
        assert!(a.text().contains("hash"), "{}", a.text());
    }
    let mr = dev.media_receipt(&hub.public_key).await?;
    assert_eq!(mr.status, MediaStatus::Failed);
    assert!(mr.reason.unwrap_or_default().contains("3 times"));
    assert!(
        blob_files(dir.path()).is_empty()
            && files_under(&dir.path().join("hub/partials")).is_empty()
    );
    let alerts = api.get_ok("/api/v1/alerts").await?;
    assert!(
        alerts["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["kind"] == "media_failed")),
        "{alerts}"
    );
    let (status, v) = api
        .get(&format!("/api/v1/records/{}/media", rec.id), true)
        .await?;
    assert_eq!(status, 404);
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("failed verification"),
        "{v}"
    );
    hub.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_partial_uploads_are_removed_after_the_configured_time() -> anyhow::Result<()> {
    let dir = test_dir("media-abandoned")?;
    let mut cfg = hub_config(dir.path(), None)?;
    cfg.media.partial_ttl_secs = 1;
    let hub = Hub::start(cfg).await?;
    let mut dev = RawDevice::connect(&hub.mqtt_url, &unique("raw-abandon")).await?;
    dev.announce().await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let content = vec![7u8; 100_000];
    let rec = dev.media_body(1, GENESIS, &sha256(&content), content.len() as u64);
    dev.send(&[dev.seal(&rec)]).await?;
    dev.receipt(&hub.public_key).await?;
    let (grant, token) = dev.grant(&hub.public_key).await?;
    let half = call(
        "PATCH",
        &grant.url,
        vec![bearer(&token), offset(0)],
        Some(content[..50_000].to_vec()),
    )
    .await?;
    assert_eq!(half.offset, Some(50_000));
    let partials = dir.path().join("hub/partials");
    assert_eq!(files_under(&partials).len(), 1);
    eventually(
        Duration::from_secs(10),
        "the abandoned partial removed",
        || async { Ok(files_under(&partials).is_empty()) },
    )
    .await?;
    let head = call("HEAD", &grant.url, vec![bearer(&token)], None).await?;
    assert_eq!(head.offset, Some(0), "the upload starts over");
    hub.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_created_during_a_large_upload_reach_the_feed_without_waiting_for_it(
) -> anyhow::Result<()> {
    let dir = test_dir("media-records-first")?;
    let hub = Hub::start(hub_config(dir.path(), None)?).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let mut cfg = agent_config(
        dir.path(),
        &unique("field-busy"),
        &hub.mqtt_url,
        &hub.public_key,
    );
    let cap = 16u64 << 20;
    cfg.upload.max_bytes_per_sec = cap;
    spool_random(&cfg.spool_dir, "VID_0003.mp4", 192 << 20, 9)?;
    let agent = Agent::start(cfg).await?;
    eventually(Duration::from_secs(30), "the upload under way", || async {
        Ok(agent
            .transfers()
            .first()
            .is_some_and(|t| t.bytes_done > 8 << 20))
    })
    .await?;
    let before = agent.transfers()[0].bytes_done;
    let t0 = std::time::Instant::now();
    for i in 0..20 {
        agent
            .record_event(
                Event::MarkedImportant {
                    note: Some(format!("during-{i}")),
                },
                chrono::Utc::now(),
            )
            .await?;
    }
    eventually(Duration::from_secs(5), "the events in the feed", || async {
        Ok(notes(&api.feed().await?)
            .iter()
            .filter(|n| n.starts_with("during-"))
            .count()
            == 20)
    })
    .await?;
    let waited = t0.elapsed();
    let transfer = agent.transfers();
    assert!(
        transfer
            .first()
            .is_some_and(|t| t.bytes_done < t.bytes_total),
        "the upload finished before the events arrived: the test proves nothing"
    );
    let media = api.media().await?;
    assert_eq!(media[0]["media_state"], "awaiting");
    // The cap holds while records flow.
    let rate = (transfer[0].bytes_done - before) as f64 / waited.as_secs_f64();
    assert!(
        rate < cap as f64 * 1.25,
        "upload ran at {rate:.0} B/s against a cap of {cap}"
    );
    agent.shutdown().await?;
    hub.shutdown().await
}

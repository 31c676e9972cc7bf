//! SPEC.md guarantees 3, "Tampering and deletion are detectable", and 5,
//! "Bad input gets a clear error, never a crash": forged, altered, replayed,
//! revoked, garbage and oversized input is refused and counted while the hub
//! keeps serving; gaps, breaks and conflicting records in a chain raise
//! alerts the supervision platform sees.

use std::time::Duration;

use evsync_e2e::*;
use evsync_hub::server::Hub;
use evsync_hub::store::{DeviceState, Store};
use evsync_protocol::chain::{Hash, GENESIS};
use evsync_protocol::receipt::Status;
use evsync_protocol::signing::PublicKey;

async fn start_hub(dir: &std::path::Path, gap_grace_secs: u64) -> anyhow::Result<(Hub, Api)> {
    let mut cfg = hub_config(dir, None)?;
    cfg.gap_grace_secs = gap_grace_secs;
    let hub = Hub::start(cfg).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    Ok((hub, api))
}

/// Reads the device's next receipt and checks that it refuses the record for `why`.
async fn refused(device: &mut RawDevice, hub_key: &PublicKey, why: &str) -> anyhow::Result<()> {
    let r = device.receipt(hub_key).await?;
    let entry = r
        .entries
        .first()
        .ok_or_else(|| anyhow::anyhow!("empty receipt"))?;
    assert_eq!(entry.status, Status::Rejected, "{entry:?}");
    let reason = entry.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains(why),
        "reason {reason:?} does not mention {why:?}"
    );
    Ok(())
}

async fn enrolled(hub: &Hub, api: &Api, id: &str) -> anyhow::Result<RawDevice> {
    let device = RawDevice::connect(&hub.mqtt_url, id).await?;
    device.announce().await?;
    eventually(Duration::from_secs(10), "the device enrolled", || async {
        let d = api.get_ok("/api/v1/devices").await?;
        Ok(d["devices"].as_array().is_some_and(|a| {
            a.iter()
                .any(|d| d["device_id"] == id && d["state"] == "approved")
        }))
    })
    .await?;
    Ok(device)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_altered_replayed_revoked_garbage_and_oversized_input_is_refused_counted_and_survived(
) -> anyhow::Result<()> {
    let dir = test_dir("tamper")?;
    let (hub, api) = start_hub(dir.path(), 60).await?;
    let key = hub.public_key;
    let mut a = enrolled(&hub, &api, &unique("field-a")).await?;
    let b = enrolled(&hub, &api, &unique("field-b")).await?;

    let first = a.seal(&a.body(1, GENESIS, "genuine"));
    a.send(std::slice::from_ref(&first)).await?;
    assert_eq!(a.receipt(&key).await?.entries[0].status, Status::Stored);
    let head = Hash::of(&first.body);

    // Forged: a's record signed by another key.
    let forged = b.seal(&a.body(2, head, "forged"));
    a.send(&[forged]).await?;
    refused(&mut a, &key, "signature").await?;

    // Altered after signing: one byte of the signed body changed.
    let mut altered = a.seal(&a.body(2, head, "altered-AAAA"));
    let at = altered
        .body
        .windows(4)
        .position(|w| w == b"AAAA")
        .ok_or_else(|| anyhow::anyhow!("marker not in body"))?;
    altered.body[at] = b'B';
    a.send(&[altered]).await?;
    refused(&mut a, &key, "signature").await?;

    // Replayed: the genuine record again. Stored once, answered as duplicate.
    a.send(std::slice::from_ref(&first)).await?;
    assert_eq!(a.receipt(&key).await?.entries[0].status, Status::Duplicate);

    // A field device signing a record for another device (only docks may).
    let mut foreign = a.body(2, head, "for another device");
    foreign.device_id = "recorder-not-mine".into();
    a.send(&[a.seal(&foreign)]).await?;
    refused(&mut a, &key, "not a dock").await?;

    // Signed by b, claiming to be a's (signer mismatch).
    let mut stolen = b.body(1, GENESIS, "impersonation");
    stolen.agent_id = a.id.clone();
    stolen.device_id = a.id.clone();
    b.send(&[b.seal(&stolen)]).await?;

    // Garbage, a valid frame with a body that is not a record, and an oversized payload.
    a.publish("records", b"\x00\x01garbage that is no batch".to_vec())
        .await?;
    let junk = evsync_protocol::envelope::Envelope::seal(
        &a.key,
        evsync_protocol::signing::Context::Record,
        b"{\"not\":\"a record\"}".to_vec(),
    );
    a.send(&[junk]).await?;
    a.publish(
        "records",
        vec![b'x'; evsync_protocol::batch::MAX_PAYLOAD + 1024],
    )
    .await?;
    a.publish("status", b"not json".to_vec()).await?;

    let counted = |expected: &'static [(&'static str, f64)]| {
        let api = api.clone();
        async move {
            let result = eventually(Duration::from_secs(10), "every refusal counted", || async {
                for (reason, n) in expected {
                    if api
                        .metric(&format!("evsync_hub_rejected_total{{reason=\"{reason}\"}}"))
                        .await?
                        != *n
                    {
                        return Ok(false);
                    }
                }
                Ok(true)
            })
            .await;
            if let Err(e) = result {
                let (_, metrics) = api.get("/metrics", false).await?;
                anyhow::bail!(
                    "{e}; expected {expected:?} in:\n{}",
                    metrics.as_str().unwrap_or_default()
                );
            }
            Ok(())
        }
    };
    counted(&[
        ("bad_signature", 2.0),
        ("signer_mismatch", 2.0),
        ("malformed", 3.0),
        ("oversized", 1.0),
    ])
    .await?;

    // Revoked: a valid, correctly chained record from a revoked device.
    Store::open(&dir.path().join("hub/hub.sqlite"))?
        .set_device_state(&a.id, DeviceState::Revoked)?;
    a.send(&[a.seal(&a.body(2, head, "after revocation"))])
        .await?;
    let r = a.receipt(&key).await?;
    assert_eq!(r.entries[0].status, Status::Rejected);
    assert!(r.entries[0]
        .reason
        .as_deref()
        .unwrap_or_default()
        .starts_with("revoked"));
    counted(&[("revoked", 1.0), ("bad_signature", 2.0)]).await?;
    assert_eq!(api.metric("evsync_hub_records_duplicate_total").await?, 1.0);
    assert_eq!(
        api.get("/healthz", false).await?.0,
        200,
        "the hub keeps serving"
    );
    let feed = api.feed().await?;
    assert_eq!(feed.len(), 1, "only the genuine record is stored: {feed:?}");
    verify_feed_record(&feed[0])?;
    assert_eq!(feed[0]["event"]["note"], "genuine");
    hub.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gaps_breaks_and_conflicting_records_raise_alerts_the_platform_sees() -> anyhow::Result<()>
{
    let dir = test_dir("alerts")?;
    let (hub, api) = start_hub(dir.path(), 0).await?;
    let key = hub.public_key;
    let mut c = enrolled(&hub, &api, &unique("field-c")).await?;

    let r1 = c.seal(&c.body(1, GENESIS, "one"));
    let r2 = c.seal(&c.body(2, Hash::of(&r1.body), "two"));
    let r3 = c.seal(&c.body(3, Hash::of(&r2.body), "three"));
    c.send(&[r1, r3]).await?;
    c.receipt(&key).await?;
    let alerts = api.get_ok("/api/v1/alerts?open=true").await?;
    let gap = &alerts["alerts"][0];
    assert_eq!(gap["kind"], "sequence_gap", "{alerts}");
    assert_eq!(
        (gap["seq_from"].as_u64(), gap["seq_to"].as_u64()),
        (Some(2), Some(2))
    );

    // The missing record arrives late: the gap is resolved, not forgotten.
    c.send(std::slice::from_ref(&r2)).await?;
    c.receipt(&key).await?;
    let alerts = api.get_ok("/api/v1/alerts").await?;
    assert!(alerts["alerts"][0]["resolved_at"].is_string(), "{alerts}");
    assert_eq!(
        api.get_ok("/api/v1/alerts?open=true").await?["alerts"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );

    // A record that names the wrong predecessor: a chain break.
    let r4 = c.seal(&c.body(4, Hash::of(b"something else"), "four"));
    c.send(std::slice::from_ref(&r4)).await?;
    assert_eq!(c.receipt(&key).await?.entries[0].status, Status::Stored);
    // A record reusing a stored record's id, in one batch with a good record:
    // refused with an alert, while the good one is stored all the same.
    let r5 = c.seal(&c.body(5, Hash::of(&r4.body), "five"));
    let mut reused = c.body(6, Hash::of(&r5.body), "six");
    reused.id = evsync_protocol::record::RecordBody::parse(&r2.body)?.id;
    c.send(&[r5, c.seal(&reused)]).await?;
    let statuses: Vec<Status> = c
        .receipt(&key)
        .await?
        .entries
        .iter()
        .map(|e| e.status)
        .collect();
    assert_eq!(statuses, [Status::Stored, Status::Rejected]);
    // A second, different record for seq 1: refused, and an alert.
    c.send(&[c.seal(&c.body(1, GENESIS, "rewritten history"))])
        .await?;
    assert_eq!(c.receipt(&key).await?.entries[0].status, Status::Rejected);

    let open = api.get_ok("/api/v1/alerts?open=true").await?;
    let kinds: Vec<&str> = open["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["seq_conflict", "seq_conflict", "chain_break"],
        "{open}"
    );
    assert_eq!(
        api.metric("evsync_hub_rejected_total{reason=\"seq_conflict\"}")
            .await?,
        2.0
    );

    // The record endpoint shows the break when the platform checks a record.
    let feed = api.feed().await?;
    let fourth = feed
        .iter()
        .find(|r| r["seq"] == 4)
        .ok_or_else(|| anyhow::anyhow!("seq 4 missing"))?;
    let one = api
        .get_ok(&format!(
            "/api/v1/records/{}",
            fourth["id"].as_str().unwrap_or_default()
        ))
        .await?;
    assert_eq!(one["verification"]["signature"], "valid");
    assert!(
        one["verification"]["chain"]
            .as_str()
            .unwrap_or_default()
            .starts_with("broken"),
        "{one}"
    );
    hub.shutdown().await
}

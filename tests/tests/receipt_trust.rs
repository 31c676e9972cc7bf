//! SPEC.md guarantee 1, "A record leaves the agent's buffer only after a
//! receipt signed by the hub's key arrives": receipts signed by another key,
//! addressed to another device, or naming another hash drop nothing; only a
//! receipt from the pinned hub key for the records held does.

use std::time::Duration;

use evsync_agent::agent::Agent;
use evsync_e2e::*;
use evsync_protocol::batch;
use evsync_protocol::chain::Hash;
use evsync_protocol::receipt::{Entry, ReceiptBody, Status};
use evsync_protocol::record::RecordBody;
use evsync_protocol::signing::SigningKey;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

fn receipt(agent: &str, records: &[RecordBody], hashes: &[Hash]) -> ReceiptBody {
    ReceiptBody {
        v: 1,
        hub_id: "hub-under-test".into(),
        agent_id: agent.to_owned(),
        issued_at: chrono::Utc::now(),
        entries: records
            .iter()
            .zip(hashes)
            .map(|(r, h)| Entry {
                id: r.id,
                device_id: r.device_id.clone(),
                seq: r.seq,
                hash: h.to_hex(),
                status: Status::Stored,
                reason: None,
            })
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_receipt_signed_by_the_pinned_hub_key_makes_the_agent_drop_records(
) -> anyhow::Result<()> {
    let dir = test_dir("receipt-trust")?;
    // A broker with no hub behind it: the test plays the hub.
    let addr = free_loopback_addr()?;
    evsync_hub::broker::start(addr, None).await?;
    let url = format!("mqtt://{addr}");
    let hub_key = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8()?)?;
    let impostor = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8()?)?;
    let id = unique("field-trust");
    let cfg = agent_config(dir.path(), &id, &url, &hub_key.public());

    let mut opts = MqttOptions::parse_url(format!("{url}?client_id=fake-hub"))?;
    opts.set_max_packet_size(4 << 20, 4 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    client
        .subscribe(format!("evsync/v1/{id}/records"), QoS::AtLeastOnce)
        .await?;
    let (tx, mut batches) = tokio::sync::mpsc::channel(64);
    let poller = tokio::spawn(async move {
        while let Ok(ev) = eventloop.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = ev {
                let _ = tx.send(p.payload.to_vec()).await;
            }
        }
    });

    drop_events(&cfg.spool_dir, 0, 5)?;
    let agent = Agent::start(cfg).await?;
    // The five records may leave in one batch or several.
    let mut envelopes = Vec::new();
    while envelopes.len() < 5 {
        let payload = tokio::time::timeout(Duration::from_secs(15), batches.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("no batch"))?;
        envelopes.extend(batch::decode(&payload)?);
    }
    assert_eq!(envelopes.len(), 5);
    let bodies: Vec<RecordBody> = envelopes
        .iter()
        .map(|e| RecordBody::parse(&e.body))
        .collect::<Result<_, _>>()?;
    let hashes: Vec<Hash> = envelopes.iter().map(|e| Hash::of(&e.body)).collect();
    let topic = format!("evsync/v1/{id}/receipts");
    let send = |payload: Vec<u8>| {
        let client = client.clone();
        let topic = topic.clone();
        async move {
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
        }
    };

    send(receipt(&id, &bodies, &hashes).seal(&impostor)).await?;
    send(receipt("someone-else", &bodies, &hashes).seal(&hub_key)).await?;
    let wrong: Vec<Hash> = hashes.iter().map(|_| Hash::of(b"other")).collect();
    send(receipt(&id, &bodies, &wrong).seal(&hub_key)).await?;
    let mut tampered = receipt(&id, &bodies, &hashes).seal(&hub_key);
    let last = tampered.len() - 1;
    tampered[last] ^= 0x40;
    send(tampered).await?;
    eventually(
        Duration::from_secs(10),
        "the bad receipts to be seen",
        || async {
            Ok(agent
                .stats()
                .bad_receipts
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 3)
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        agent.backlog()?.records,
        5,
        "a receipt the agent must not trust dropped records"
    );

    send(receipt(&id, &bodies, &hashes).seal(&hub_key)).await?;
    eventually(
        Duration::from_secs(10),
        "the genuine receipt to empty the buffer",
        || async { Ok(agent.backlog()?.records == 0) },
    )
    .await?;
    agent.shutdown().await?;
    poller.abort();
    Ok(())
}

//! Prints the test vectors of `docs/wire-protocol.md`
//! (`cargo run -p evsync-protocol --example vectors`).

use chrono::DateTime;
use evsync_protocol::batch;
use evsync_protocol::chain::{Hash, GENESIS};
use evsync_protocol::envelope::Envelope;
use evsync_protocol::receipt::{Entry, ReceiptBody, Status};
use evsync_protocol::record::{Event, FixQuality, Geo, Kind, Media, RecordBody, VERSION};
use evsync_protocol::signing::{Context, SigningKey};

fn block(name: &str, text: &str) {
    println!("```text vector:{name}\n{text}\n```\n");
}

fn hex_lines(bytes: &[u8]) -> String {
    hex::encode(bytes)
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let agent_seed: [u8; 32] = std::array::from_fn(|i| i as u8);
    let hub_seed: [u8; 32] = std::array::from_fn(|i| 0x80 + i as u8);
    let agent = SigningKey::from_seed_for_tests(&agent_seed)?;
    let hub = SigningKey::from_seed_for_tests(&hub_seed)?;
    let t = |s: &str| DateTime::parse_from_rfc3339(s).map(|d| d.to_utc());
    let body1 = RecordBody {
        v: VERSION,
        id: "01965f3a-0000-7000-8000-000000000001".parse()?,
        kind: Kind::Media,
        device_id: "field-500112-01".into(),
        agent_id: "field-500112-01".into(),
        seq: 1,
        prev_hash: GENESIS.to_hex(),
        officer_id: Some("100001".into()),
        unit_code: Some("500112010001".into()),
        device_time: t("2026-11-23T01:00:00Z")?,
        ingest_time: t("2026-11-23T01:20:00.125Z")?,
        clock_offset_ms: 0,
        media: Some(Media {
            sha256: "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef".into(),
            size: 52_428_800,
            mime: "video/mp4".into(),
            file_name: "VID_20261123_090000.mp4".into(),
            file_index: Some(17),
            started_at: Some(t("2026-11-23T01:00:00Z")?),
            duration_ms: Some(900_000),
        }),
        event: None,
        geo: None,
    };
    let b1 = body1.to_bytes();
    let h1 = Hash::of(&b1);
    let body2 = RecordBody {
        id: "01965f3a-0000-7000-8000-000000000002".parse()?,
        kind: Kind::Event,
        seq: 2,
        prev_hash: h1.to_hex(),
        device_time: t("2026-11-23T01:16:00Z")?,
        ingest_time: t("2026-11-23T01:20:00.250Z")?,
        media: None,
        event: Some(Event::ActionStarted {
            action_id: "A-0001".into(),
            case_number: Some("渝北市监罚〔2026〕101号".into()),
            domain: "01".into(),
            legal_basis: None,
        }),
        ..body1.clone()
    };
    let b2 = body2.to_bytes();
    let e1 = Envelope::seal(&agent, Context::Record, b1.clone());
    let e2 = Envelope::seal(&agent, Context::Record, b2.clone());
    // A field device's event geotagged from its GPS receiver's latest fix.
    let body3 = RecordBody {
        id: "01965f3a-0000-7000-8000-000000000003".parse()?,
        seq: 3,
        prev_hash: Hash::of(&b2).to_hex(),
        device_time: t("2026-11-23T01:21:00Z")?,
        ingest_time: t("2026-11-23T01:21:00.500Z")?,
        event: Some(Event::MarkedImportant { note: None }),
        geo: Some(Geo {
            lat: 29.558_056_667,
            lon: 106.577_916_667,
            quality: FixQuality::Dgps,
            age_ms: 420,
            satellites: Some(10),
            hdop: Some(0.83),
            altitude_m: Some(243.0),
        }),
        ..body2.clone()
    };
    let b3 = body3.to_bytes();
    let e3 = Envelope::seal(&agent, Context::Record, b3.clone());
    block("agent-seed", &hex::encode(agent_seed));
    block("agent-public-key", &hex::encode(agent.public().0));
    block("record-1-body", std::str::from_utf8(&b1)?);
    block("record-1-hash", &h1.to_hex());
    block("record-1-signature", &hex_lines(&e1.signature));
    block("record-2-body", std::str::from_utf8(&b2)?);
    block("record-2-signature", &hex_lines(&e2.signature));
    block("batch", &hex_lines(&batch::encode(&[e1, e2])));
    block("record-3-body", std::str::from_utf8(&b3)?);
    block("record-3-signature", &hex_lines(&e3.signature));
    let receipt = ReceiptBody {
        v: 1,
        hub_id: "hub-1".into(),
        agent_id: "field-500112-01".into(),
        issued_at: t("2026-11-23T01:20:01Z")?,
        entries: vec![Entry {
            id: body1.id,
            device_id: body1.device_id.clone(),
            seq: 1,
            hash: h1.to_hex(),
            status: Status::Stored,
            reason: None,
        }],
    };
    block("hub-seed", &hex::encode(hub_seed));
    block("hub-public-key", &hex::encode(hub.public().0));
    block("receipt", &hex_lines(&receipt.seal(&hub)));
    Ok(())
}

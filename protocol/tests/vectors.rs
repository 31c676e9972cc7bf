//! The test vectors in `docs/wire-protocol.md` are what this crate produces:
//! a third party implementing the format from the document can check its
//! work against them, and this test fails if the code and the document part.

use evsync_protocol::batch;
use evsync_protocol::chain::{Hash, GENESIS};
use evsync_protocol::envelope::Envelope;
use evsync_protocol::receipt::ReceiptBody;
use evsync_protocol::record::RecordBody;
use evsync_protocol::signing::{Context, PublicKey, SigningKey};

const DOC: &str = include_str!("../../docs/wire-protocol.md");

/// The content of the fenced block whose info string is `text vector:<name>`.
fn vector(name: &str) -> String {
    let fence = format!("```text vector:{name}\n");
    let start = DOC
        .find(&fence)
        .unwrap_or_else(|| panic!("vector {name} not in docs/wire-protocol.md"))
        + fence.len();
    let len = DOC[start..].find("\n```").expect("unterminated vector");
    DOC[start..start + len].to_owned()
}

fn hex_vector(name: &str) -> Vec<u8> {
    let text: String = vector(name).split_whitespace().collect();
    hex::decode(text).expect("vector is not hex")
}

fn seed(name: &str) -> [u8; 32] {
    hex_vector(name).try_into().expect("seed is not 32 bytes")
}

#[test]
fn record_vectors_match_the_document() {
    let key = SigningKey::from_seed_for_tests(&seed("agent-seed")).unwrap();
    assert_eq!(key.public().0.to_vec(), hex_vector("agent-public-key"));

    let body1 = vector("record-1-body");
    let parsed1 = RecordBody::parse(body1.as_bytes()).unwrap();
    assert_eq!(
        parsed1.to_bytes(),
        body1.as_bytes(),
        "the body is in this crate's canonical form"
    );
    assert_eq!(parsed1.prev_hash().unwrap(), GENESIS);
    let hash1 = Hash::of(body1.as_bytes());
    assert_eq!(hash1.to_hex(), vector("record-1-hash"));
    let sig1 = key.sign(Context::Record, body1.as_bytes());
    assert_eq!(sig1.to_vec(), hex_vector("record-1-signature"));

    let body2 = vector("record-2-body");
    let parsed2 = RecordBody::parse(body2.as_bytes()).unwrap();
    assert_eq!(
        parsed2.prev_hash().unwrap(),
        hash1,
        "record 2 chains to record 1"
    );
    let sig2 = key.sign(Context::Record, body2.as_bytes());
    assert_eq!(sig2.to_vec(), hex_vector("record-2-signature"));

    let body3 = vector("record-3-body");
    let parsed3 = RecordBody::parse(body3.as_bytes()).unwrap();
    assert_eq!(parsed3.to_bytes(), body3.as_bytes());
    assert_eq!(
        parsed3.prev_hash().unwrap(),
        Hash::of(body2.as_bytes()),
        "record 3 chains to record 2"
    );
    let geo = parsed3.geo.expect("record 3 is geotagged");
    assert_eq!((geo.lat, geo.lon), (29.558_056_667, 106.577_916_667));
    let sig3 = key.sign(Context::Record, body3.as_bytes());
    assert_eq!(sig3.to_vec(), hex_vector("record-3-signature"));

    let envelopes = vec![
        Envelope {
            body: body1.into_bytes(),
            signature: sig1,
        },
        Envelope {
            body: body2.into_bytes(),
            signature: sig2,
        },
    ];
    let encoded = batch::encode(&envelopes);
    assert_eq!(encoded, hex_vector("batch"));
    let public = PublicKey(key.public().0);
    for env in batch::decode(&encoded).unwrap() {
        env.verify(&public, Context::Record, "agent").unwrap();
    }
}

#[test]
fn receipt_vector_matches_the_document() {
    let hub = SigningKey::from_seed_for_tests(&seed("hub-seed")).unwrap();
    assert_eq!(hub.public().0.to_vec(), hex_vector("hub-public-key"));
    let payload = hex_vector("receipt");
    let receipt = ReceiptBody::open(&payload, &hub.public()).unwrap();
    assert_eq!(receipt.entries[0].hash, vector("record-1-hash"));
    assert_eq!(
        receipt.seal(&hub),
        payload,
        "sealing the same body gives the same bytes"
    );
}

#[test]
fn assignment_vector_matches_the_document() {
    use evsync_protocol::assignment::Assignment;
    let hub = SigningKey::from_seed_for_tests(&seed("hub-seed")).unwrap();
    let body: Assignment = serde_json::from_str(&vector("assignment-body")).unwrap();
    let payload = hex_vector("assignment");
    assert_eq!(
        hex::encode(body.seal(&hub)),
        hex::encode(&payload),
        "sealing the documented body gives the documented bytes"
    );
    assert_eq!(
        Assignment::open(&payload, &hub.public(), "ZFY0001").unwrap(),
        body
    );
    // Its configuration hashes to the signed hash.
    let config = firmware_config::RecorderConfig::from_toml(&body.config).unwrap();
    assert_eq!(config.content_hash(), body.config_hash);
}

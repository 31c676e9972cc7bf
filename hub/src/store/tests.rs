//! Store tests: chains keyed by source (device, agent), a recorder's file
//! indexes across docks, re-copies, and the migration of older stores.

use std::time::Duration;

use evsync_protocol::chain::{Hash, GENESIS};
use evsync_protocol::envelope::Envelope;
use evsync_protocol::record::{Event, Kind, Media, RecordBody, VERSION};
use evsync_protocol::signing::{Context, SigningKey};

use super::{
    expect_media, insert_record, media_delivered, Inserted, RecordFilter, Store, VerifiedRecord,
};

const LONG: Duration = Duration::from_secs(3600);

/// Builds, signs and numbers records of one source.
pub(super) struct Source {
    device: String,
    agent: String,
    key: SigningKey,
    seq: u64,
    pub(super) head: Hash,
}

impl Source {
    pub(super) fn new(device: &str, agent: &str) -> Self {
        let seed = agent.bytes().fold([1u8; 32], |mut s, b| {
            s[usize::from(b) % 32] ^= b;
            s
        });
        Self {
            device: device.into(),
            agent: agent.into(),
            key: SigningKey::from_seed_for_tests(&seed).unwrap(),
            seq: 0,
            head: GENESIS,
        }
    }

    fn body(&self, seq: u64, prev: Hash) -> RecordBody {
        RecordBody {
            v: VERSION,
            id: uuid::Uuid::now_v7(),
            kind: Kind::Event,
            device_id: self.device.clone(),
            agent_id: self.agent.clone(),
            seq,
            prev_hash: prev.to_hex(),
            officer_id: Some("200001".into()),
            unit_code: Some("500109000001".into()),
            device_time: chrono::Utc::now(),
            ingest_time: chrono::Utc::now(),
            clock_offset_ms: 0,
            media: None,
            event: Some(Event::DutyStarted),
            geo: None,
        }
    }

    fn seal(&self, body: RecordBody) -> VerifiedRecord {
        let env = Envelope::seal(&self.key, Context::Record, body.to_bytes());
        VerifiedRecord {
            hash: Hash::of(&env.body),
            body,
            bytes: env.body,
            signature: env.signature,
            signer_key: self.key.public().to_base64(),
        }
    }

    /// The next record of the chain, shaped by `f`.
    pub(super) fn next(&mut self, f: impl FnOnce(&mut RecordBody)) -> VerifiedRecord {
        self.seq += 1;
        let mut body = self.body(self.seq, self.head);
        f(&mut body);
        let rec = self.seal(body);
        self.head = rec.hash;
        rec
    }

    fn event(&mut self) -> VerifiedRecord {
        self.next(|_| {})
    }

    fn media(&mut self, file_index: u64, sha: &str) -> VerifiedRecord {
        self.next(|b| {
            b.kind = Kind::Media;
            b.event = None;
            b.media = Some(Media {
                sha256: sha.repeat(64),
                size: 100,
                mime: "video/mp4".into(),
                file_name: format!("VID_{file_index:04}.MP4"),
                file_index: Some(file_index),
                started_at: None,
                duration_ms: None,
            });
        })
    }

    fn files_missing(&mut self, from_index: u64, to_index: u64) -> VerifiedRecord {
        self.next(|b| {
            b.event = Some(Event::FilesMissing {
                from_index,
                to_index,
            })
        })
    }
}

/// An engine the store tests run on.
pub(super) enum Engine {
    /// A fresh SQLite file.
    Sqlite,
    /// A fresh schema in the PostgreSQL database at this URL.
    Postgres(String),
}

/// The engines to test: SQLite always, PostgreSQL too when
/// `EVSYNC_TEST_POSTGRES` names a database (`.ci/run` sets it when one
/// answers on 127.0.0.1:5432).
pub(super) fn engines() -> Vec<Engine> {
    match std::env::var("EVSYNC_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => vec![Engine::Sqlite, Engine::Postgres(url)],
        _ => {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                eprintln!(
                    "store tests: EVSYNC_TEST_POSTGRES is not set: running on SQLite only, not on PostgreSQL"
                )
            });
            vec![Engine::Sqlite]
        }
    }
}

/// What a store under test lives in; a PostgreSQL schema is dropped with it.
pub(super) struct Fixture {
    _dir: tempfile::TempDir,
    location: super::Location,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let super::Location::Postgres {
            url,
            schema: Some(schema),
            ..
        } = &self.location
        {
            let dropped = super::db::Connection::open_postgres(url, None, None)
                .and_then(|c| c.execute_batch(&format!("DROP SCHEMA \"{schema}\" CASCADE")));
            if let Err(e) = dropped {
                eprintln!("store tests: dropping schema {schema}: {e}");
            }
        }
    }
}

/// A fresh, empty store on `engine`.
pub(super) fn store_on(engine: &Engine) -> (Fixture, Store) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = tempfile::tempdir().unwrap();
    let location = match engine {
        Engine::Sqlite => super::Location::Sqlite(dir.path().join("hub.sqlite")),
        Engine::Postgres(url) => super::Location::Postgres {
            url: url.clone(),
            schema: Some(format!(
                "evsync_test_{}_{}_{}",
                std::process::id(),
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                chrono::Utc::now().timestamp_micros()
            )),
            password_file: None,
        },
    };
    let fixture = Fixture {
        _dir: dir,
        location,
    };
    let store = Store::connect(&fixture.location).unwrap();
    (fixture, store)
}

/// Stores records as ingest does (media bookkeeping and file index checks included).
pub(super) fn put(store: &mut Store, grace: Duration, recs: &[VerifiedRecord]) -> Vec<Inserted> {
    store
        .in_transaction(|tx| {
            recs.iter()
                .map(|r| {
                    let inserted = insert_record(tx, r, grace)?;
                    if inserted == Inserted::New && r.body.kind == Kind::Media {
                        expect_media(tx, &r.body)?;
                        media_delivered(tx, &r.body, grace)?;
                    }
                    Ok(inserted)
                })
                .collect()
        })
        .unwrap()
}

/// An alert as compared here: (kind, device, agent, file indexes).
type Seen = (String, String, Option<String>, Option<(i64, i64)>);

/// (kind, device, agent, files) of every visible alert, oldest first.
fn alerts(store: &Store, open_only: bool) -> Vec<Seen> {
    let mut out: Vec<_> = store
        .alerts(open_only, 100)
        .unwrap()
        .into_iter()
        .map(|a| {
            (
                a.kind,
                a.device_id.unwrap_or_default(),
                a.agent_id,
                a.file_from.zip(a.file_to),
            )
        })
        .collect();
    out.reverse();
    out
}

/// Pending (not yet visible) alerts of a kind.
fn pending(store: &Store, kind: &str) -> i64 {
    store
        .conn()
        .query_row(
            "SELECT COUNT(*) FROM alerts WHERE kind = ?1 AND resolved_at IS NULL",
            [kind],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn a_recorder_docked_at_two_docks_has_one_chain_per_dock_without_conflicts() {
    for e in super::tests::engines() {
        // SPEC guarantee 2: deduplication by (source, sequence) and hash, where a
        // recorder's source is (recorder, dock).
        let (_dir, mut s) = store_on(&e);
        let mut at_a = Source::new("ZFY0001", "dock-a");
        let mut at_b = Source::new("ZFY0001", "dock-b");
        let a: Vec<_> = (0..3).map(|_| at_a.event()).collect();
        let b: Vec<_> = (0..2).map(|_| at_b.event()).collect();
        assert_eq!(put(&mut s, LONG, &a), vec![Inserted::New; 3]);
        assert_eq!(
            put(&mut s, LONG, &b),
            vec![Inserted::New; 2],
            "dock B's seq 1 and 2 are its own chain, not dock A's"
        );
        assert_eq!(put(&mut s, LONG, &b[..1]), vec![Inserted::Duplicate]);
        assert_eq!(s.record_count().unwrap(), 5);
        assert_eq!(pending(&s, "sequence_gap") + pending(&s, "chain_break"), 0);
        assert!(alerts(&s, false).is_empty(), "{:?}", alerts(&s, false));
        assert_eq!(
            s.hash_at("ZFY0001", "dock-b", 2).unwrap(),
            Some(b[1].hash.to_hex())
        );
        assert_eq!(
            s.hash_at("ZFY0001", "dock-a", 2).unwrap(),
            Some(a[1].hash.to_hex())
        );

        // A different record at dock B's seq 2 is a conflict in dock B's chain only.
        let forged = at_b.seal(at_b.body(2, b[0].hash));
        assert_eq!(
            put(&mut s, LONG, &[forged]),
            vec![Inserted::Conflict { stored: b[1].hash }]
        );
        assert_eq!(
            alerts(&s, true),
            vec![(
                "seq_conflict".into(),
                "ZFY0001".into(),
                Some("dock-b".into()),
                None
            )]
        );
    }
}

#[test]
fn a_field_device_chain_still_alerts_gaps_and_breaks_naming_itself_as_agent() {
    for e in super::tests::engines() {
        // SPEC guarantee 3: a break or a gap in a source's chain raises an alert.
        let (_dir, mut s) = store_on(&e);
        let mut field = Source::new("field-1", "field-1");
        let r1 = field.event();
        let _lost = field.event();
        let r3 = field.event();
        put(&mut s, Duration::ZERO, &[r1.clone(), r3]);
        let broken = field.seal(field.body(4, r1.hash));
        put(&mut s, Duration::ZERO, &[broken]);
        let got = alerts(&s, true);
        let want: Vec<Seen> = ["sequence_gap", "chain_break"]
            .iter()
            .map(|k| {
                (
                    k.to_string(),
                    "field-1".into(),
                    Some("field-1".into()),
                    None,
                )
            })
            .collect();
        assert_eq!(got, want);
    }
}

#[test]
fn a_hole_in_a_recorders_file_indexes_across_docks_is_alerted_and_resolved_by_late_delivery() {
    for e in super::tests::engines() {
        // SPEC guarantee 3: a gap in a recorder's file index raises an alert the platform sees.
        let (_dir, mut s) = store_on(&e);
        let mut at_a = Source::new("ZFY0001", "dock-a");
        let mut at_b = Source::new("ZFY0001", "dock-b");
        let a: Vec<_> = (1..=5).map(|i| at_a.media(i, "a")).collect();
        put(&mut s, Duration::ZERO, &a);
        let b: Vec<_> = (8..=9).map(|i| at_b.media(i, "b")).collect();
        put(&mut s, Duration::ZERO, &b);
        let open = s.alerts(true, 10).unwrap();
        assert_eq!(
            alerts(&s, true),
            vec![(
                "file_index_gap".into(),
                "ZFY0001".into(),
                None,
                Some((6, 7))
            )]
        );
        assert!(
            open[0].detail.contains("6..=7")
                && open[0].detail.contains("dock-a")
                && open[0].detail.contains("dock-b"),
            "{}",
            open[0].detail
        );

        // Dock A delivers #6 late: the alert narrows to #7.
        put(&mut s, Duration::ZERO, &[at_a.media(6, "c")]);
        assert_eq!(
            alerts(&s, true),
            vec![(
                "file_index_gap".into(),
                "ZFY0001".into(),
                None,
                Some((7, 7))
            )]
        );
        // And #7: nothing is open; both alerts stay in the history, resolved.
        put(&mut s, Duration::ZERO, &[at_a.media(7, "d")]);
        assert!(alerts(&s, true).is_empty(), "{:?}", alerts(&s, true));
        assert_eq!(alerts(&s, false).len(), 2);
        assert!(s
            .alerts(false, 10)
            .unwrap()
            .iter()
            .all(|a| a.resolved_at.is_some()));
    }
}

#[test]
fn a_file_index_hole_filled_within_the_grace_period_is_never_seen() {
    for e in super::tests::engines() {
        // SPEC guarantee 3 (no false alerts): records still on their way from a dock are not a gap.
        let (_dir, mut s) = store_on(&e);
        let mut at_a = Source::new("ZFY0001", "dock-a");
        let mut at_b = Source::new("ZFY0001", "dock-b");
        put(&mut s, LONG, &[at_a.media(1, "a"), at_a.media(2, "b")]);
        put(&mut s, LONG, &[at_b.media(5, "e")]);
        assert_eq!(pending(&s, "file_index_gap"), 1, "pending, not visible");
        assert!(alerts(&s, false).is_empty());
        put(&mut s, LONG, &[at_a.media(3, "c"), at_a.media(4, "d")]);
        assert_eq!(pending(&s, "file_index_gap"), 0, "dropped unseen");
        assert!(alerts(&s, false).is_empty());
    }
}

#[test]
fn files_a_dock_reported_missing_raise_no_second_alert() {
    for e in super::tests::engines() {
        // SPEC guarantee 3: a recorder's missing files raise one alert, not two.
        let (_dir, mut s) = store_on(&e);
        let mut at_a = Source::new("ZFY0001", "dock-a");
        let mut at_b = Source::new("ZFY0001", "dock-b");
        put(
            &mut s,
            Duration::ZERO,
            &[at_a.media(1, "a"), at_a.media(2, "b")],
        );
        // The dock that saw #3–#4 vanish reported it before delivering #5.
        put(
            &mut s,
            Duration::ZERO,
            &[at_b.files_missing(3, 4), at_b.media(5, "e")],
        );
        assert_eq!(
            alerts(&s, true),
            vec![(
                "recorder_files_missing".into(),
                "ZFY0001".into(),
                Some("dock-b".into()),
                Some((3, 4))
            )]
        );
        // The other order: the hole is seen first (pending), the report then accounts for it.
        let (_dir2, mut s) = store_on(&e);
        let mut at_a = Source::new("ZFY0002", "dock-a");
        let mut at_b = Source::new("ZFY0002", "dock-b");
        put(&mut s, LONG, &[at_a.media(1, "a"), at_a.media(5, "e")]);
        assert_eq!(pending(&s, "file_index_gap"), 1);
        put(&mut s, LONG, &[at_b.files_missing(2, 3)]);
        let left: Vec<(i64, i64)> = s
        .conn()
        .prepare("SELECT file_from, file_to FROM alerts WHERE kind = 'file_index_gap' AND resolved_at IS NULL")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
        assert_eq!(left, vec![(4, 4)], "only what nobody accounted for is left");
    }
}

#[test]
fn a_recording_copied_again_by_a_second_dock_is_marked_a_recopy_and_stored_once() {
    for e in super::tests::engines() {
        // SPEC guarantee 2: the same recording delivered by two docks is one piece
        // of evidence: its second record is marked a re-copy of the first.
        let (_dir, mut s) = store_on(&e);
        let mut at_a = Source::new("ZFY0001", "dock-a");
        let mut at_b = Source::new("ZFY0001", "dock-b");
        let first = at_a.media(3, "a");
        let again = at_b.media(3, "a");
        let other = at_b.media(4, "b");
        put(&mut s, Duration::ZERO, std::slice::from_ref(&first));
        put(&mut s, Duration::ZERO, &[again.clone(), other.clone()]);
        let m = s.media(&again.body.id.to_string()).unwrap().unwrap();
        assert_eq!(m.recopy_of, Some(first.body.id.to_string()));
        assert_eq!(m.file_index, Some(3));
        assert_eq!(
            s.media(&first.body.id.to_string())
                .unwrap()
                .unwrap()
                .recopy_of,
            None
        );
        assert_eq!(
            s.media(&other.body.id.to_string())
                .unwrap()
                .unwrap()
                .recopy_of,
            None
        );
        let fed = s.record(&again.body.id.to_string()).unwrap().unwrap();
        assert_eq!(fed.recopy_of, Some(first.body.id.to_string()));
        // One upload stores the bytes for both records.
        let stored = s.blob_stored(&"a".repeat(64), 100).unwrap();
        assert_eq!(stored.len(), 2);
        let blobs: i64 = s
            .conn()
            .query_row("SELECT COUNT(*) FROM blobs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(blobs, 1);
        // A third copy after the bytes are held is stored at once, a re-copy of the first.
        let mut at_c = Source::new("ZFY0001", "dock-c");
        let third = at_c.media(3, "a");
        put(&mut s, Duration::ZERO, std::slice::from_ref(&third));
        let m = s.media(&third.body.id.to_string()).unwrap().unwrap();
        assert_eq!(m.state, super::MediaState::Stored);
        assert_eq!(m.recopy_of, Some(first.body.id.to_string()));
        assert!(alerts(&s, false).is_empty(), "{:?}", alerts(&s, false));
    }
}

#[test]
fn a_version_2_store_migrates_keeping_records_cursors_and_alerts() {
    // SPEC guarantee 1: an upgrade of the hub loses nothing already stored.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.sqlite");
    let mut at_a = Source::new("ZFY0001", "dock-a");
    let old = [at_a.event(), at_a.media(1, "a"), at_a.files_missing(2, 2)];
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("schema.sql")).unwrap();
        conn.execute_batch(include_str!("media.sql")).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        for r in &old {
            conn.execute(
                "INSERT INTO records (id, device_id, seq, agent_id, kind, hash, prev_hash, body, signature, signer_key, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, '2026-11-23T01:00:00.000Z')",
                rusqlite::params![
                    r.body.id.to_string(),
                    r.body.device_id,
                    r.body.seq as i64,
                    r.body.agent_id,
                    r.body.kind.as_str(),
                    r.hash.to_hex(),
                    r.body.prev_hash,
                    r.bytes,
                    r.signature.as_slice(),
                    r.signer_key
                ],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO media (record_id, agent_id, device_id, sha256, size, mime, state, created_at)
             VALUES (?1, 'dock-a', 'ZFY0001', ?2, 100, 'video/mp4', 'awaiting', '2026-11-23T01:00:00.000Z')",
            rusqlite::params![old[1].body.id.to_string(), "a".repeat(64)],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO alerts (kind, device_id, seq_from, seq_to, detail, raised_at, visible_after)
             VALUES ('recorder_files_missing', 'ZFY0001', 3, 3, 'old', '2026-11-23T01:00:00.000Z', '2026-11-23T01:00:00.000Z')",
            [],
        )
        .unwrap();
        // hub_seq 3 was handed out once (its record since gone): never again.
        conn.execute(
            "UPDATE sqlite_sequence SET seq = 7 WHERE name = 'records'",
            [],
        )
        .unwrap();
    }
    let mut s = Store::open(&path).unwrap();
    let version: i64 = s
        .conn()
        .sqlite()
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, super::SCHEMA_VERSION);
    // Versions 5 and 6: the old media record is a recording for coverage.
    let recordings: i64 = s
        .conn()
        .query_row("SELECT COUNT(*) FROM recordings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(recordings, 1);
    let all = s.records_after(0, 10, &RecordFilter::default()).unwrap();
    assert_eq!(
        all.iter().map(|r| r.hub_seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    // Version 4: the recorder is in the fleet, and the feed's filters see old records.
    let recorder = s.device("ZFY0001").unwrap().unwrap();
    assert_eq!(recorder.kind, super::DeviceKind::Recorder);
    let media_only = RecordFilter {
        device_id: Some("ZFY0001".into()),
        kind: Some("media".into()),
        ..RecordFilter::default()
    };
    let found = s.records_after(0, 10, &media_only).unwrap();
    assert_eq!(found.iter().map(|r| r.hub_seq).collect::<Vec<_>>(), vec![2]);
    let hour_ago = super::stamp(chrono::Utc::now() - chrono::Duration::hours(1));
    let count = |f: RecordFilter| s.records_after(0, 10, &f).unwrap().len();
    assert_eq!(
        count(RecordFilter {
            officer_id: Some("200001".into()),
            unit_code: Some("500109000001".into()),
            from: Some(hour_ago.clone()),
            ..RecordFilter::default()
        }),
        3,
        "officer, unit and time filled in for the old rows"
    );
    assert_eq!(
        count(RecordFilter {
            to: Some(hour_ago),
            ..RecordFilter::default()
        }),
        0
    );
    assert_eq!(
        s.media(&old[1].body.id.to_string())
            .unwrap()
            .unwrap()
            .file_index,
        Some(1)
    );
    let a = s.alerts(false, 10).unwrap();
    assert_eq!(a[0].agent_id.as_deref(), Some("dock-a"));
    assert_eq!((a[0].file_from, a[0].file_to), (Some(2), Some(2)));

    // The same recorder at another dock: its own chain, and the reported #2 is no gap.
    let mut at_b = Source::new("ZFY0001", "dock-b");
    let new = [at_b.event(), at_b.media(3, "c")];
    assert_eq!(put(&mut s, Duration::ZERO, &new), vec![Inserted::New; 2]);
    let all = s.records_after(0, 10, &RecordFilter::default()).unwrap();
    assert_eq!(
        all.iter().map(|r| r.hub_seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 8, 9]
    );
    assert_eq!(s.alerts(false, 10).unwrap().len(), 1, "no new alert");
    // The old unique index is gone, the new one holds.
    let dup = at_b.seal(at_b.body(1, GENESIS));
    assert!(matches!(
        put(&mut s, Duration::ZERO, &[dup])[0],
        Inserted::Conflict { .. }
    ));
}

#[test]
fn an_action_is_judged_when_it_ends_and_again_when_its_recording_s_bytes_arrive() {
    for e in super::tests::engines() {
        // Issue 6: verdicts kept at ingest. Officer 200001 (every record of this
        // source) acts 09:00-09:10 and records 09:00-09:10 on the same device.
        let (_d, mut s) = store_on(&e);
        // A recorder of its own (a field camera), known to the hub as one.
        s.register_recorder("field-cov").unwrap();
        let mut field = Source::new("field-cov", "field-cov");
        let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-23T09:00:00+08:00")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let minutes = |m: i64| t0 + chrono::Duration::minutes(m);
        let started = field.next(|b| {
            b.device_time = minutes(0);
            b.event = Some(Event::ActionStarted {
                action_id: "act-9".into(),
                case_number: Some("渝北市监罚〔2026〕9号".into()),
                domain: "01".into(),
                legal_basis: None,
            });
        });
        let ended = field.next(|b| {
            b.device_time = minutes(10);
            b.event = Some(Event::ActionEnded {
                action_id: "act-9".into(),
                case_number: None,
            });
        });
        let verdicts = |s: &Store| {
            s.judged_actions(&everything(), None, None, 100)
                .unwrap()
                .into_iter()
                .map(|a| (a.covered_ms, a.covered, a.cause))
                .collect::<Vec<_>>()
        };
        put(&mut s, Duration::ZERO, &[started]);
        assert!(verdicts(&s).is_empty(), "judged only once it has ended");
        put(&mut s, Duration::ZERO, &[ended]);
        // Its own field device reported it, so a recorder was there: nothing recorded.
        assert_eq!(
            verdicts(&s),
            vec![(0, false, Some("nothing_recorded".into()))]
        );
        // The recording's record arrives; its bytes not yet.
        let recording = field.next(|b| {
            b.kind = Kind::Media;
            b.event = None;
            b.device_time = minutes(10);
            b.media = Some(Media {
                sha256: "c".repeat(64),
                size: 100,
                mime: "video/mp4".into(),
                file_name: "VID_0009.MP4".into(),
                file_index: None,
                started_at: Some(minutes(0)),
                duration_ms: Some(10 * 60_000),
            });
        });
        put(&mut s, Duration::ZERO, &[recording]);
        assert_eq!(
            verdicts(&s),
            vec![(0, false, Some("media_not_arrived".into()))]
        );
        // Its bytes arrive verified: covered, 10 of 10 minutes.
        s.blob_stored(&"c".repeat(64), 100).unwrap();
        assert_eq!(verdicts(&s), vec![(10 * 60_000, true, None)]);
        let a = &s.judged_actions(&everything(), None, None, 100).unwrap()[0];
        assert_eq!(
            (
                a.key.as_str(),
                a.domain.as_deref(),
                a.case_number.as_deref()
            ),
            ("field-cov/act-9", Some("01"), Some("渝北市监罚〔2026〕9号"))
        );
    }
}

/// A scope of all time, no filter.
pub(super) fn everything() -> crate::store::Scope {
    crate::store::Scope {
        from: 0,
        to: i64::MAX,
        ..Default::default()
    }
}

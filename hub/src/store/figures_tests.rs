//! Every coverage figure of one small district day, worked out by hand
//! (issue 6). The scenario, 30 November 2026, China Standard Time:
//!
//! - Officer A (200001, unit U1 = 500103000000) carries field device FA,
//!   on duty 08:00–12:00. Recordings: rec1 08:10–08:50 and rec2 08:40–09:20
//!   (overlapping: together 08:10–09:20), rec3 10:00–10:30 whose bytes have
//!   not arrived. Actions: act-1 08:20–08:45, act-2 09:00–09:30, act-3
//!   10:05–10:25.
//! - Officer B (200002, unit U2 = 500112000000) carries field device FB, on
//!   duty 08:30–10:30, and was checked out recorder R1 at 08:00 — whose clock
//!   runs 2 h fast: its recording says 11:00–11:30, really 09:00–09:30.
//!   Actions: act-4 09:05–09:25, act-5 10:00–10:20, act-6 11:05–11:25.
//! - Officer C (200003, unit U1) is on the roster 09:00–11:00 with no device,
//!   and an action imported from the case system, imp-1 09:30–10:00.
//! - Recorder R2 is registered and never heard from.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use evsync_protocol::chain::Hash;
use evsync_protocol::record::{Event, FixQuality, Geo, Kind, Media, RecordBody};

use super::fleet::{assign_in, NewAssignment, Officer};
use super::tests::{put, store_on, Engine, Fixture, Source};
use super::{GroupBy, ImportedAction, Officers, RosterDuty, Scope, Store};
use crate::coverage::geohash;

const A: &str = "200001";
const B: &str = "200002";
const C: &str = "200003";
/// Officer D (unit U1) of the tests about terminals and recorders, not of the district day.
const D: &str = "200004";
const U1: &str = "500103000000";
const U2: &str = "500112000000";
const MIN: i64 = 60_000;
/// Chaotianmen, and Jiefangbei about 1.2 km away.
const X: (f64, f64) = (29.5647, 106.5862);
const Y: (f64, f64) = (29.5575, 106.5770);

/// 30 November 2026 at `h:m` China Standard Time.
fn t(h: u32, m: u32) -> DateTime<Utc> {
    day(30, h, m)
}

fn day(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    let cst = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let month = if d >= 30 { 11 } else { 12 };
    cst.with_ymd_and_hms(2026, month, d, h, m, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn geo((lat, lon): (f64, f64)) -> Geo {
    Geo {
        lat,
        lon,
        quality: FixQuality::Gps,
        age_ms: 0,
        satellites: None,
        hdop: None,
        altitude_m: None,
    }
}

fn who(b: &mut RecordBody, officer: &str, unit: &str) {
    b.officer_id = Some(officer.into());
    b.unit_code = Some(unit.into());
}

/// An event of `src` at `at` by `officer` of `unit`.
fn event(
    src: &mut Source,
    officer: &str,
    unit: &str,
    at: DateTime<Utc>,
    ev: Event,
) -> super::VerifiedRecord {
    src.next(|b| {
        who(b, officer, unit);
        b.device_time = at;
        b.event = Some(ev);
    })
}

fn started(id: &str, domain: &str) -> Event {
    Event::ActionStarted {
        action_id: id.into(),
        case_number: None,
        domain: domain.into(),
        legal_basis: None,
    }
}

fn ended(id: &str) -> Event {
    Event::ActionEnded {
        action_id: id.into(),
        case_number: None,
    }
}

/// A media record of `src`: recording from `start` (device clock) lasting
/// `minutes`, content `sha` (one hex digit, repeated).
#[allow(clippy::too_many_arguments)]
fn recording(
    src: &mut Source,
    officer: &str,
    unit: &str,
    start: DateTime<Utc>,
    minutes: i64,
    offset_ms: i64,
    sha: &str,
    at: Option<(f64, f64)>,
) -> super::VerifiedRecord {
    src.next(|b| {
        who(b, officer, unit);
        b.kind = Kind::Media;
        b.event = None;
        b.device_time = start;
        b.clock_offset_ms = offset_ms;
        b.geo = at.map(geo);
        b.media = Some(Media {
            sha256: sha.repeat(64),
            size: 100,
            mime: "video/mp4".into(),
            file_name: format!("VID_{sha}.MP4"),
            file_index: None,
            started_at: Some(start),
            duration_ms: Some((minutes * MIN) as u64),
        });
    })
}

fn assign(s: &mut Store, device: &str, officer: &str, unit: &str, from: DateTime<Utc>) {
    s.in_transaction(|tx| {
        let new = NewAssignment {
            officer_id: Some(officer.into()),
            unit_code: Some(unit.into()),
            domain: None,
        };
        assign_in(tx, device, &new, &super::stamp(from), "operator", "test")
    })
    .unwrap();
}

/// The district day, with rec3's bytes still missing.
fn district(e: &Engine) -> (Fixture, Store) {
    let (dir, mut s) = store_on(e);
    for d in ["field-a", "field-b", "ZFY0001", "ZFY0002"] {
        s.register_recorder(d).unwrap();
    }
    let officer = |id: &str, name: &str, unit: &str| Officer {
        officer_id: id.into(),
        name: name.into(),
        unit_code: Some(unit.into()),
        domain: None,
        active: true,
    };
    s.upsert_officers(&[
        officer(A, "张伟", U1),
        officer(B, "李娜", U2),
        officer(C, "王强", U1),
    ])
    .unwrap();
    assign(&mut s, "field-a", A, U1, t(7, 0));
    assign(&mut s, "field-b", B, U2, t(7, 0));
    assign(&mut s, "ZFY0001", B, U2, t(8, 0));

    let mut fa = Source::new("field-a", "field-a");
    let mut recs = vec![event(&mut fa, A, U1, t(8, 0), Event::DutyStarted)];
    // act-1 starts at Chaotianmen.
    recs.push(fa.next(|b| {
        who(b, A, U1);
        b.device_time = t(8, 20);
        b.event = Some(started("act-1", "01"));
        b.geo = Some(geo(X));
    }));
    for (at, ev) in [
        (t(8, 45), ended("act-1")),
        (t(9, 0), started("act-2", "01")),
        (t(9, 30), ended("act-2")),
        (t(10, 5), started("act-3", "01")),
        (t(10, 25), ended("act-3")),
        (t(12, 0), Event::DutyEnded),
    ] {
        recs.push(event(&mut fa, A, U1, at, ev));
    }
    recs.push(recording(&mut fa, A, U1, t(8, 10), 40, 0, "1", Some(X)));
    recs.push(recording(&mut fa, A, U1, t(8, 40), 40, 0, "2", None));
    recs.push(recording(&mut fa, A, U1, t(10, 0), 30, 0, "3", None));

    let mut fb = Source::new("field-b", "field-b");
    for (at, ev) in [
        (t(8, 30), Event::DutyStarted),
        (t(9, 5), started("act-4", "02")),
        (t(9, 25), ended("act-4")),
        (t(10, 0), started("act-5", "02")),
        (t(10, 20), ended("act-5")),
        (t(10, 30), Event::DutyEnded),
        (t(11, 5), started("act-6", "02")),
    ] {
        recs.push(event(&mut fb, B, U2, at, ev));
    }
    // Its last record names a predecessor that is not the one stored: a chain break.
    fb.head = Hash::of(b"not what came before");
    recs.push(event(&mut fb, B, U2, t(11, 25), ended("act-6")));

    // R1 through dock-1: its seq 1 never arrived (a gap); 2 h fast.
    let mut r1 = Source::new("ZFY0001", "dock-1");
    let _lost = r1.next(|_| {});
    recs.push(recording(
        &mut r1,
        B,
        U2,
        t(11, 0),
        30,
        2 * 3_600_000,
        "4",
        None,
    ));
    put(&mut s, Duration::from_secs(3600), &recs);

    let imported = ImportedAction {
        id: Some("imp-1".into()),
        case_number: Some("渝中城管罚〔2026〕1号".into()),
        officers: Officers::List(vec![C.into()]),
        unit_code: Some(U1.into()),
        domain: Some("01".into()),
        start: "2026-11-30T09:30:00+08:00".into(),
        end: "2026-11-30T10:00:00+08:00".into(),
        place: Some("解放碑".into()),
        lat: Some(Y.0),
        lon: Some(Y.1),
    };
    let span = imported.check().unwrap();
    s.import_actions(&[(imported, span)]).unwrap();
    let roster = RosterDuty {
        officer_id: C.into(),
        start: "2026-11-30T09:00:00+08:00".into(),
        end: "2026-11-30T11:00:00+08:00".into(),
    };
    let span = roster.span().unwrap();
    s.import_duties(&[(roster, span)]).unwrap();

    // Bytes arrive: rec1 the same afternoon, rec2 a day later (an hour past
    // its deadline, 24 h after A's duty ended), R1's that evening.
    s.blob_stored_at(&"1".repeat(64), 100, t(13, 0)).unwrap();
    s.blob_stored_at(&"2".repeat(64), 100, day(1, 13, 0))
        .unwrap();
    s.blob_stored_at(&"4".repeat(64), 100, t(18, 0)).unwrap();
    (dir, s)
}

fn scope() -> Scope {
    Scope {
        from: t(0, 0).timestamp_millis(),
        to: Utc
            .with_ymd_and_hms(2100, 1, 1, 0, 0, 0)
            .unwrap()
            .timestamp_millis(),
        ..Default::default()
    }
}

fn causes(pairs: &[(&str, i64)]) -> std::collections::BTreeMap<String, i64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[test]
fn each_action_has_its_hand_computed_verdict_and_cause() {
    for e in super::tests::engines() {
        let (_d, s) = district(&e);
        let got: Vec<(String, i64, i64, bool, Option<String>)> = s
            .judged_actions(&scope(), None, None, 100)
            .unwrap()
            .into_iter()
            .map(|a| {
                (
                    a.key,
                    a.covered_ms / MIN,
                    a.span_ms / MIN,
                    a.covered,
                    a.cause,
                )
            })
            .collect();
        let cause = |c: &str| Some(c.to_owned());
        assert_eq!(
            got,
            vec![
                // rec1 ∪ rec2 = 08:10–09:20 holds all of 08:20–08:45.
                ("field-a/act-1".into(), 25, 25, true, None),
                // 09:00–09:20 of 09:00–09:30: 20/30 = 67% < 90%, and nothing else of A's.
                (
                    "field-a/act-2".into(),
                    20,
                    30,
                    false,
                    cause("nothing_recorded")
                ),
                // R1's recording, moved back 2 h, is 09:00–09:30: holds 09:05–09:25.
                ("field-b/act-4".into(), 20, 20, true, None),
                // C has no device at all.
                (
                    "import/imp-1".into(),
                    0,
                    30,
                    false,
                    cause("no_recorder_assigned")
                ),
                // B's devices recorded nothing then.
                (
                    "field-b/act-5".into(),
                    0,
                    20,
                    false,
                    cause("nothing_recorded")
                ),
                // rec3 on FA touches it but its bytes have not arrived.
                (
                    "field-a/act-3".into(),
                    0,
                    20,
                    false,
                    cause("media_not_arrived")
                ),
                // At R1's own (wrong) clock, 11:00–11:30 would have covered it.
                ("field-b/act-6".into(), 0, 20, false, cause("clock_problem")),
            ]
        );
    }
}

#[test]
fn every_figure_matches_the_hand_computed_one() {
    for e in super::tests::engines() {
        let (_d, s) = district(&e);
        let (all, by_unit) = s.figures(GroupBy::Unit, &scope()).unwrap();

        // Actions: act-1 and act-4 of 7.
        assert_eq!((all.actions.covered, all.actions.total), (2, 7));
        assert_eq!(
            all.actions.uncovered_by_cause,
            causes(&[
                ("clock_problem", 1),
                ("media_not_arrived", 1),
                ("no_recorder_assigned", 1),
                ("nothing_recorded", 2),
            ])
        );
        // Devices: FA, FB and R1 were heard from; R2 not (dock-1 is not approved).
        assert_eq!((all.devices.covered, all.devices.total), (3, 4));
        // Personnel: A and B were heard from on duty (their own records), C not.
        assert_eq!((all.personnel.covered, all.personnel.total), (2, 3));
        // Time: 240 + 120 + 120 min on duty; recorded A 50 (08–09) + 20 (09–10), B 30.
        assert_eq!(all.time.on_duty_ms, 480 * MIN);
        assert_eq!(all.time.recorded_ms, 100 * MIN);
        // Hours without any recording: A 10–11 (rec3 pending), A 11–12, B 08:30–09,
        // B 10–10:30 (nothing), C 09–10 and 10–11 (no device).
        assert_eq!(
            all.time.unrecorded_hours_by_cause,
            causes(&[
                ("media_not_arrived", 1),
                ("no_recorder_assigned", 2),
                ("nothing_recorded", 3),
            ])
        );
        // Timeliness (24 h after the end of the duty): rec1 and R1's on time;
        // rec2 an hour late; rec3 never arrived and its deadline has passed.
        assert_eq!(
            (
                all.timeliness.on_time,
                all.timeliness.late,
                all.timeliness.total
            ),
            (2, 2, 4)
        );
        // Integrity: 11 records of FA, 8 of FB, 1 of R1; the break names FB's
        // last two; R1's missing seq 1 is one open gap.
        assert_eq!(
            (
                all.integrity.intact,
                all.integrity.total,
                all.integrity.gaps
            ),
            (18, 20, 1)
        );
        // Spatial: act-1 at Chaotianmen with rec1 there; imp-1 at Jiefangbei with none.
        let (cx, cy) = (
            geohash::encode(X.0, X.1, 6).unwrap(),
            geohash::encode(Y.0, Y.1, 6).unwrap(),
        );
        assert_ne!(cx, cy, "the two places are in different cells");
        assert_eq!((all.spatial.covered, all.spatial.total), (1, 2));

        let unit = |u: Option<&str>| {
            by_unit
                .iter()
                .find(|(k, _)| k.as_deref() == u)
                .map(|(_, f)| f.clone())
                .unwrap_or_default()
        };
        let (u1, u2, none) = (unit(Some(U1)), unit(Some(U2)), unit(None));
        assert_eq!((u1.actions.covered, u1.actions.total), (1, 4));
        assert_eq!((u2.actions.covered, u2.actions.total), (1, 3));
        assert_eq!(
            u2.actions.uncovered_by_cause,
            causes(&[("clock_problem", 1), ("nothing_recorded", 1)])
        );
        assert_eq!((u1.devices.covered, u1.devices.total), (1, 1));
        assert_eq!((u2.devices.covered, u2.devices.total), (2, 2));
        assert_eq!((none.devices.covered, none.devices.total), (0, 1));
        assert_eq!((u1.personnel.covered, u1.personnel.total), (1, 2));
        assert_eq!((u2.personnel.covered, u2.personnel.total), (1, 1));
        assert_eq!(
            (u1.time.recorded_ms, u1.time.on_duty_ms),
            (70 * MIN, 360 * MIN)
        );
        assert_eq!(
            (u2.time.recorded_ms, u2.time.on_duty_ms),
            (30 * MIN, 120 * MIN)
        );
        assert_eq!((u1.timeliness.on_time, u1.timeliness.total), (1, 3));
        assert_eq!((u2.timeliness.on_time, u2.timeliness.total), (1, 1));
        assert_eq!((u2.integrity.intact, u2.integrity.total), (7, 9));
        assert_eq!((u1.spatial.covered, u1.spatial.total), (1, 2));

        let (_, by_officer) = s.figures(GroupBy::Officer, &scope()).unwrap();
        let officer = |o: &str| {
            by_officer
                .iter()
                .find(|(k, _)| k.as_deref() == Some(o))
                .map(|(_, f)| (f.actions.covered, f.actions.total))
        };
        assert_eq!(
            (officer(A), officer(B), officer(C)),
            (Some((1, 3)), Some((1, 3)), Some((0, 1)))
        );
        let (_, by_day) = s.figures(GroupBy::Day, &scope()).unwrap();
        let nov30 = by_day
            .iter()
            .find(|(k, _)| k.as_deref() == Some("2026-11-30"))
            .map(|(_, f)| (f.actions.covered, f.actions.total, f.time.on_duty_ms));
        assert_eq!(nov30, Some((2, 7, 480 * MIN)));
        // A filter narrows every figure: unit U2 alone is U2's group.
        let only_u2 = Scope {
            unit_code: Some(U2.into()),
            ..scope()
        };
        let (all_u2, _) = s.figures(GroupBy::Unit, &only_u2).unwrap();
        assert_eq!(all_u2.actions, u2.actions);
        assert_eq!(all_u2.time, u2.time);
    }
}

#[test]
fn drill_downs_list_what_the_figures_count() {
    for e in super::tests::engines() {
        let (_d, s) = district(&e);
        let days = s.officer_days(&scope(), Some(false), 100).unwrap();
        assert_eq!(days.len(), 1);
        assert_eq!(
            (
                days[0].officer_id.as_str(),
                days[0].name.as_deref(),
                days[0].day.as_str()
            ),
            (C, Some("王强"), "2026-11-30")
        );
        assert!(days[0].devices.is_empty(), "{days:?}");
        let late = s.late_uploads(&scope(), 100).unwrap();
        let late: Vec<(String, Option<i64>)> = late
            .into_iter()
            .map(|l| (l.record_id, l.arrived_ms))
            .collect();
        assert_eq!(late.len(), 2);
        assert_eq!(late.iter().filter(|(_, a)| a.is_none()).count(), 1, "rec3");
        let a_hours = s
            .duty_hours(
                &Scope {
                    officer_id: Some(A.into()),
                    ..scope()
                },
                None,
                100,
            )
            .unwrap();
        let got: Vec<(i64, Option<String>)> = a_hours
            .iter()
            .map(|h| (h.recorded_ms / MIN, h.cause.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (50, None),
                (20, None),
                (0, Some("media_not_arrived".into())),
                (0, Some("nothing_recorded".into())),
            ]
        );
        let cells = s.cells(&scope(), 100).unwrap();
        assert_eq!(cells.len(), 2);
        assert_eq!(
            (cells[0].actions, cells[0].recordings),
            (1, 0),
            "uncovered first"
        );
    }
}

#[test]
fn alerts_fire_once_and_an_action_covered_later_has_its_alert_resolved() {
    for e in super::tests::engines() {
        let (_d, mut s) = district(&e);
        let late_at_arrival = |s: &Store| {
            s.alerts(false, 100)
                .unwrap()
                .into_iter()
                .filter(|a| a.kind == "late_upload")
                .count()
        };
        // rec2 came an hour past its deadline: alerted when it came.
        assert_eq!(late_at_arrival(&s), 1);
        // Two days later, at noon: within the sweep's seven days.
        let now = day(2, 12, 0).timestamp_millis();
        let hour = Duration::from_secs(3600);
        let swept = s.coverage_sweep(now, hour, hour).unwrap();
        // Five uncovered actions; C never heard from; rec3 past its deadline.
        assert_eq!((swept.actions, swept.officers, swept.late), (5, 1, 1));
        assert_eq!(
            s.coverage_sweep(now, hour, hour).unwrap(),
            super::Swept::default()
        );
        let alerts = s.alerts(false, 100).unwrap();
        let unheard = alerts.iter().find(|a| a.kind == "officer_unheard").unwrap();
        assert_eq!(unheard.officer_id.as_deref(), Some(C));
        let act3 = alerts
            .iter()
            .find(|a| a.subject.as_deref() == Some("field-a/act-3"))
            .unwrap();
        assert!(act3.detail.contains("media_not_arrived"), "{}", act3.detail);
        assert_eq!(act3.officer_id.as_deref(), Some(A));
        assert!(act3.resolved_at.is_none());
        // rec3's bytes arrive now: act-3 is covered, its alert resolved; A's
        // 10–11 hour recorded 30 min; rec3 is not alerted late a second time.
        s.blob_stored(&"3".repeat(64), 100).unwrap();
        let alerts = s.alerts(false, 100).unwrap();
        let act3 = alerts
            .iter()
            .find(|a| a.subject.as_deref() == Some("field-a/act-3"))
            .unwrap();
        assert!(act3.resolved_at.is_some());
        assert_eq!(late_at_arrival(&s), 2);
        let (all, _) = s.figures(GroupBy::Unit, &scope()).unwrap();
        assert_eq!((all.actions.covered, all.time.recorded_ms), (3, 130 * MIN));
    }
}

#[test]
fn a_sweep_leaves_what_ended_over_a_week_ago_to_the_figures() {
    for e in super::tests::engines() {
        let (_d, mut s) = district(&e);
        let hour = Duration::from_secs(3600);
        // Eight days on, the same gaps are history: no alert about them.
        let later = day(8, 12, 0).timestamp_millis();
        assert_eq!(
            s.coverage_sweep(later, hour, hour).unwrap(),
            super::Swept::default()
        );
        let (all, _) = s.figures(GroupBy::Unit, &scope()).unwrap();
        assert_eq!((all.actions.covered, all.actions.total), (2, 7));
    }
}

#[test]
fn a_recorder_heard_from_later_is_no_longer_a_missing_recorder() {
    for e in super::tests::engines() {
        let (_d, mut s) = district(&e);
        let c_hours = |s: &Store| {
            let only_c = Scope {
                officer_id: Some(C.into()),
                ..scope()
            };
            s.duty_hours(&only_c, None, 10)
                .unwrap()
                .into_iter()
                .map(|h| h.cause)
                .collect::<Vec<_>>()
        };
        let none = Some("no_recorder_assigned".to_owned());
        assert_eq!(c_hours(&s), vec![none.clone(), none.clone()]);
        // A terminal of C's that does not record reports a note at 10:05: still
        // no recorder.
        let mut tc = Source::new("term-c", "term-c");
        let note = event(
            &mut tc,
            C,
            U1,
            t(10, 5),
            Event::MarkedImportant { note: None },
        );
        put(&mut s, Duration::ZERO, &[note]);
        assert_eq!(c_hours(&s), vec![none.clone(), none.clone()]);
        // A recorder of C's reports a note at 10:15: in 10–11 C had one.
        s.register_recorder("ZFY0003").unwrap();
        let mut r3 = Source::new("ZFY0003", "dock-1");
        let note = event(
            &mut r3,
            C,
            U1,
            t(10, 15),
            Event::MarkedImportant { note: None },
        );
        put(&mut s, Duration::ZERO, &[note]);
        assert_eq!(c_hours(&s), vec![none, Some("nothing_recorded".to_owned())]);
    }
}

/// Officer D's day on terminal term-d (an agent that does not record):
/// duty 08:00–12:00, action act-7 09:00–09:20. Returns the terminal's source.
fn terminal_day(s: &mut Store) -> Source {
    let mut td = Source::new("term-d", "term-d");
    let recs: Vec<_> = [
        (t(8, 0), Event::DutyStarted),
        (t(9, 0), started("act-7", "01")),
        (t(9, 20), ended("act-7")),
        (t(12, 0), Event::DutyEnded),
    ]
    .into_iter()
    .map(|(at, ev)| event(&mut td, D, U1, at, ev))
    .collect();
    put(s, Duration::ZERO, &recs);
    td
}

#[test]
fn a_terminal_that_does_not_record_is_not_a_recorder() {
    for e in super::tests::engines() {
        // Officer D (200004, U1) starts a duty and an action on a terminal that
        // has never recorded and is not a registered recorder: nothing of D's
        // records, so D has no recorder — the action's cause says so and D's
        // officer-day is not covered (the terminal's own records are not a
        // recorder heard from).
        let (_d, mut s) = district(&e);
        let mut td = terminal_day(&mut s);
        let only_d = Scope {
            officer_id: Some(D.into()),
            ..scope()
        };
        let acts = s.judged_actions(&only_d, None, None, 10).unwrap();
        assert_eq!(acts.len(), 1);
        assert_eq!(acts[0].cause.as_deref(), Some("no_recorder_assigned"));
        let days = s.officer_days(&only_d, None, 10).unwrap();
        assert_eq!(days.len(), 1);
        assert!(
            !days[0].working,
            "a terminal's own records are no recorder heard from"
        );
        let (all, _) = s.figures(GroupBy::Unit, &only_d).unwrap();
        assert_eq!(
            all.personnel,
            super::Ratio {
                covered: 0,
                total: 1
            }
        );
        assert_eq!(
            all.time.unrecorded_hours_by_cause,
            causes(&[("no_recorder_assigned", 4)])
        );
        // A recording start it relays does not make it a recorder.
        let relayed = event(
            &mut td,
            D,
            U1,
            t(10, 0),
            Event::RecordingStarted { file_index: None },
        );
        put(&mut s, Duration::ZERO, &[relayed]);
        assert!(!s.officer_days(&only_d, None, 10).unwrap()[0].working);
        // Once the terminal records (a clip of its own at 11:00–11:10, bytes not
        // here yet), it is D's recorder: heard from on that duty, and what it
        // reported is judged again — it was with D, and nothing was recorded in act-7.
        let rec = recording(&mut td, D, U1, t(11, 0), 10, 0, "6", None);
        put(&mut s, Duration::ZERO, &[rec]);
        let days = s.officer_days(&only_d, None, 10).unwrap();
        assert!(days[0].working);
        let acts = s.judged_actions(&only_d, None, None, 10).unwrap();
        assert_eq!(acts[0].cause.as_deref(), Some("nothing_recorded"));
        let (all, _) = s.figures(GroupBy::Unit, &only_d).unwrap();
        assert_eq!(
            all.personnel,
            super::Ratio {
                covered: 1,
                total: 1
            }
        );
        assert_eq!(
            all.time.unrecorded_hours_by_cause,
            causes(&[("media_not_arrived", 2), ("nothing_recorded", 2)])
        );
    }
}

#[test]
fn a_recording_takes_its_officer_s_domain() {
    for e in super::tests::engines() {
        // A recorder does not know the enforcement domain: E's clip at
        // Chaotianmen counts in E's domain (03, from the officers list), where
        // E's action there started — so by domain that cell holds a recording.
        const E: &str = "200005";
        let (_d, mut s) = store_on(&e);
        s.upsert_officers(&[Officer {
            officer_id: E.into(),
            name: "赵敏".into(),
            unit_code: Some(U1.into()),
            domain: Some("03".into()),
            active: true,
        }])
        .unwrap();
        s.register_recorder("ZFY0005").unwrap();
        let mut cam = Source::new("ZFY0005", "ZFY0005");
        let mut recs = vec![cam.next(|b| {
            who(b, E, U1);
            b.device_time = t(9, 0);
            b.event = Some(started("act-e", "03"));
            b.geo = Some(geo(X));
        })];
        recs.push(event(&mut cam, E, U1, t(9, 10), ended("act-e")));
        recs.push(recording(&mut cam, E, U1, t(9, 0), 10, 0, "7", Some(X)));
        put(&mut s, Duration::ZERO, &recs);
        s.blob_stored_at(&"7".repeat(64), 100, t(10, 0)).unwrap();
        let (_, by_domain) = s.figures(GroupBy::Domain, &scope()).unwrap();
        let d03 = &by_domain
            .iter()
            .find(|(k, _)| k.as_deref() == Some("03"))
            .expect("domain 03")
            .1;
        assert_eq!(
            d03.spatial,
            super::Ratio {
                covered: 1,
                total: 1
            }
        );
        assert_eq!((d03.timeliness.on_time, d03.timeliness.total), (1, 1));
    }
}

#[test]
fn a_status_is_a_recorder_heard_from_only_from_a_recorder() {
    for e in super::tests::engines() {
        // Officer D, rostered around now, carries terminal term-d (an agent that
        // does not record) and recorder ZFY0008: the terminal's heartbeat says
        // nothing of D's recorder; the recorder's does.
        let (_d, mut s) = store_on(&e);
        let now = Utc::now();
        let stamp = |t: DateTime<Utc>| t.to_rfc3339();
        let roster = RosterDuty {
            officer_id: D.into(),
            start: stamp(now - chrono::Duration::hours(1)),
            end: stamp(now + chrono::Duration::hours(1)),
        };
        let span = roster.span().unwrap();
        s.import_duties(&[(roster, span)]).unwrap();
        s.conn()
            .execute(
                "INSERT INTO devices (device_id, kind, state, first_seen, changed_at)
             VALUES ('term-d', 'field', 'approved', ?1, ?1)",
                [super::now()],
            )
            .unwrap();
        s.register_recorder("ZFY0008").unwrap();
        assign(&mut s, "term-d", D, U1, now - chrono::Duration::hours(2));
        assign(&mut s, "ZFY0008", D, U1, now - chrono::Duration::hours(2));
        let around_now = Scope {
            from: (now - chrono::Duration::days(1)).timestamp_millis(),
            to: (now + chrono::Duration::days(1)).timestamp_millis(),
            ..Default::default()
        };
        let working = |s: &Store| s.officer_days(&around_now, None, 10).unwrap()[0].working;
        let online = serde_json::json!({ "online": true });
        s.device_status("term-d", &online, false).unwrap();
        assert!(
            !working(&s),
            "a terminal's heartbeat is no recorder heard from"
        );
        s.device_status("ZFY0008", &online, false).unwrap();
        assert!(working(&s));
    }
}

#[test]
fn a_version_6_store_no_longer_counts_a_terminal_as_a_recorder() {
    // Version 6 counted any device's records as a recorder heard from: D's
    // duty heard from and act-7 `nothing_recorded` on a terminal's word.
    // Migrating to 7 judges that again.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.sqlite");
    {
        let mut s = Store::open(&path).unwrap();
        terminal_day(&mut s);
        s.conn()
            .execute_batch(
                "UPDATE duties SET heard_ms = start_ms;
                 UPDATE actions SET cause = 'nothing_recorded';
                 UPDATE duty_hours SET cause = 'nothing_recorded';
                 PRAGMA user_version = 6;",
            )
            .unwrap();
    }
    let s = Store::open(&path).unwrap();
    let acts = s.judged_actions(&scope(), None, None, 10).unwrap();
    assert_eq!(acts[0].cause.as_deref(), Some("no_recorder_assigned"));
    let (all, _) = s.figures(GroupBy::Unit, &scope()).unwrap();
    assert_eq!(
        all.personnel,
        super::Ratio {
            covered: 0,
            total: 1
        }
    );
    assert_eq!(
        all.time.unrecorded_hours_by_cause,
        causes(&[("no_recorder_assigned", 4)])
    );
}

#[test]
fn every_figure_is_the_same_summed_by_day_or_counted_from_rows() {
    for e in super::tests::engines() {
        let (_d, mut s) = district(&e);
        // And a second day: A on duty 1 December 08:00–10:00, acting 08:30–08:45
        // while recording 08:20–08:50.
        let mut fa = Source::new("field-a", "field-a-2");
        let mut recs: Vec<_> = [
            (day(1, 8, 0), Event::DutyStarted),
            (day(1, 8, 30), started("act-8", "01")),
            (day(1, 8, 45), ended("act-8")),
            (day(1, 10, 0), Event::DutyEnded),
        ]
        .into_iter()
        .map(|(at, ev)| event(&mut fa, A, U1, at, ev))
        .collect();
        recs.push(recording(
            &mut fa,
            A,
            U1,
            day(1, 8, 20),
            30,
            0,
            "5",
            Some(X),
        ));
        put(&mut s, Duration::ZERO, &recs);
        s.blob_stored_at(&"5".repeat(64), 100, day(1, 11, 0))
            .unwrap();
        let ms = |t: DateTime<Utc>| t.timestamp_millis();
        let scopes = [
            scope(),
            // Whole days only.
            Scope {
                from: ms(day(29, 0, 0)),
                to: ms(day(3, 0, 0)),
                ..Default::default()
            },
            // Cut mid-day at either end (the edges counted from rows).
            Scope {
                from: ms(t(9, 10)),
                to: ms(day(2, 9, 0)),
                ..Default::default()
            },
            Scope {
                from: ms(day(29, 5, 0)),
                to: ms(t(10, 0)),
                ..Default::default()
            },
            Scope {
                unit_code: Some(U1.into()),
                ..scope()
            },
            Scope {
                officer_id: Some(B.into()),
                ..scope()
            },
            Scope {
                domain: Some("02".into()),
                ..scope()
            },
        ];
        let every = |s: &Store| {
            let mut out = Vec::new();
            for sc in &scopes {
                for by in [
                    GroupBy::Unit,
                    GroupBy::Domain,
                    GroupBy::Officer,
                    GroupBy::Day,
                ] {
                    out.push(s.figures(by, sc).unwrap());
                }
            }
            out
        };
        // Nothing summed yet: every day is counted from the rows.
        let from_rows = every(&s);
        let (summed, stale) = s.sum_coverage_days().unwrap();
        assert_eq!(summed, 2, "30 Nov and 1 Dec hold rows");
        assert_eq!(stale, 0);
        assert_eq!(every(&s), from_rows);
        // rec3's bytes arrive after the sums: its day is stale and counted from
        // the rows again, so the figures move at once.
        s.blob_stored_at(&"3".repeat(64), 100, t(13, 0)).unwrap();
        let moved = every(&s);
        assert_ne!(moved, from_rows);
        let (all, _) = s.figures(GroupBy::Unit, &scope()).unwrap();
        assert_eq!(
            all.timeliness.on_time, 4,
            "rec1, rec3, R1's and 1 Dec's in time"
        );
        let (summed, _) = s.sum_coverage_days().unwrap();
        assert_eq!(summed, 1, "only 30 Nov changed");
        assert_eq!(every(&s), moved);

        // An action of A and B imported onto the summed 1 December: nothing but
        // the action and its officers change, and that alone makes the day
        // stale. By officer it counts for each, and once in the whole.
        let (before, before_groups) = s.figures(GroupBy::Officer, &scope()).unwrap();
        let two = ImportedAction {
            id: Some("imp-2".into()),
            case_number: None,
            officers: Officers::List(vec![A.into(), B.into()]),
            unit_code: Some(U2.into()),
            domain: Some("02".into()),
            start: "2026-12-01T09:00:00+08:00".into(),
            end: "2026-12-01T09:20:00+08:00".into(),
            place: None,
            lat: None,
            lon: None,
        };
        let span = two.check().unwrap();
        s.import_actions(&[(two, span)]).unwrap();
        assert_eq!(s.coverage_stale_days().unwrap(), 1);
        let imported = every(&s);
        assert_ne!(imported, moved);
        let (after, after_groups) = s.figures(GroupBy::Officer, &scope()).unwrap();
        assert_eq!(after.actions.total, before.actions.total + 1);
        let total = |groups: &[super::figures::Group], o: &str| {
            groups
                .iter()
                .find(|(k, _)| k.as_deref() == Some(o))
                .map(|(_, f)| f.actions.total)
                .unwrap()
        };
        for o in [A, B] {
            assert_eq!(total(&after_groups, o), total(&before_groups, o) + 1, "{o}");
        }
        let (summed, _) = s.sum_coverage_days().unwrap();
        assert_eq!(summed, 1, "only 1 Dec changed");
        assert_eq!(every(&s), imported);
    }
}

#[test]
fn changed_thresholds_judge_everything_again() {
    for e in super::tests::engines() {
        let (_d, mut s) = district(&e);
        let mut th = s.thresholds().unwrap();
        assert_eq!(th, super::Thresholds::default());
        // At 60%, act-2 (20 of 30 min) is covered.
        th.judge.share_permille = 600;
        assert!(s.set_thresholds(th).unwrap());
        assert!(!s.set_thresholds(th).unwrap(), "unchanged: nothing to do");
        let (all, _) = s.figures(GroupBy::Unit, &scope()).unwrap();
        assert_eq!(all.actions.covered, 3);
    }
}

mod adding_a_recording {
    //! Property: adding a recording (of any officer, any clock, arrived or
    //! not) never lowers a coverage figure — action, personnel, time and
    //! device coverage keep their denominators and their numerators do not
    //! drop — in the whole window and in every unit.

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    struct Rec {
        officer: usize,
        start: u32,
        minutes: u32,
        fast: bool,
        arrived: bool,
    }

    fn rec() -> impl Strategy<Value = Rec> {
        (
            0..2usize,
            0..720u32,
            1..120u32,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(officer, start, minutes, fast, arrived)| Rec {
                officer,
                start,
                minutes,
                fast,
                arrived,
            })
    }

    const OFFICERS: [(&str, &str, &str); 2] = [(A, U1, "field-a"), (B, U2, "field-b")];

    /// Officer `i`'s duty and actions (minutes after 06:00), then recordings.
    fn build(
        e: &Engine,
        duties: &[(u32, u32)],
        actions: &[(usize, u32, u32)],
        recs: &[Rec],
    ) -> (Fixture, Store, Vec<Source>) {
        let (dir, mut s) = store_on(e);
        let at = |m: u32| t(6, 0) + chrono::Duration::minutes(i64::from(m));
        let mut sources: Vec<Source> = OFFICERS.iter().map(|(_, _, d)| Source::new(d, d)).collect();
        for (i, (officer, unit, device)) in OFFICERS.iter().enumerate() {
            s.register_recorder(device).unwrap();
            assign(&mut s, device, officer, unit, t(5, 0));
            let (from, len) = duties[i];
            let recs = [
                event(&mut sources[i], officer, unit, at(from), Event::DutyStarted),
                event(
                    &mut sources[i],
                    officer,
                    unit,
                    at(from + len),
                    Event::DutyEnded,
                ),
            ];
            put(&mut s, Duration::ZERO, &recs);
        }
        for (n, (i, from, len)) in actions.iter().enumerate() {
            let (officer, unit, _) = OFFICERS[*i];
            let id = format!("act-{n}");
            let recs = [
                event(
                    &mut sources[*i],
                    officer,
                    unit,
                    at(*from),
                    started(&id, "01"),
                ),
                event(&mut sources[*i], officer, unit, at(from + len), ended(&id)),
            ];
            put(&mut s, Duration::ZERO, &recs);
        }
        for (n, r) in recs.iter().enumerate() {
            add(&mut s, &mut sources, r, n);
        }
        (dir, s, sources)
    }

    fn add(s: &mut Store, sources: &mut [Source], r: &Rec, n: usize) {
        let (officer, unit, _) = OFFICERS[r.officer];
        let offset = if r.fast { 2 * 3_600_000 } else { 0 };
        let start = t(6, 0) + chrono::Duration::minutes(i64::from(r.start));
        // Each recording its own content.
        let content = format!("{:064x}", n + 1);
        let one = sources[r.officer].next(|b| {
            who(b, officer, unit);
            b.kind = Kind::Media;
            b.event = None;
            b.device_time = start;
            b.clock_offset_ms = offset;
            b.media = Some(Media {
                sha256: content.clone(),
                size: 100,
                mime: "video/mp4".into(),
                file_name: format!("VID_{n:04}.MP4"),
                file_index: None,
                started_at: Some(start),
                duration_ms: Some(u64::from(r.minutes) * 60_000),
            });
        });
        put(s, Duration::ZERO, &[one]);
        if r.arrived {
            s.blob_stored_at(&content, 100, start).unwrap();
        }
    }

    fn check(
        before: &super::super::Figures,
        after: &super::super::Figures,
    ) -> Result<(), TestCaseError> {
        prop_assert_eq!(before.actions.total, after.actions.total);
        prop_assert!(after.actions.covered >= before.actions.covered);
        prop_assert_eq!(before.personnel.total, after.personnel.total);
        prop_assert!(after.personnel.covered >= before.personnel.covered);
        prop_assert_eq!(before.time.on_duty_ms, after.time.on_duty_ms);
        prop_assert!(after.time.recorded_ms >= before.time.recorded_ms);
        prop_assert_eq!(before.devices.total, after.devices.total);
        prop_assert!(after.devices.covered >= before.devices.covered);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn never_lowers_a_figure(
            duties in proptest::collection::vec((0..300u32, 60..480u32), 2),
            actions in proptest::collection::vec((0..2usize, 0..720u32, 1..90u32), 0..5),
            recs in proptest::collection::vec(rec(), 0..5),
            extra in rec(),
        ) {
            for e in super::super::tests::engines() {
                let (_d, mut s, mut sources) = build(&e, &duties, &actions, &recs);
                // Summed by day: the extra recording's day is counted from rows after.
                s.sum_coverage_days().unwrap();
                let (before, units_before) = s.figures(GroupBy::Unit, &scope()).unwrap();
                add(&mut s, &mut sources, &extra, 99);
                let (after, units_after) = s.figures(GroupBy::Unit, &scope()).unwrap();
                check(&before, &after)?;
                for (k, b) in &units_before {
                    let a = units_after.iter().find(|(ka, _)| ka == k).map(|(_, f)| f);
                    prop_assert!(a.is_some(), "unit {:?} gone", k);
                    if let Some(a) = a {
                        check(b, a)?;
                    }
                }
            }
        }
    }
}

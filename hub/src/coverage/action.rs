//! Action coverage (全过程记录覆盖率) and its causes: whether the recordings
//! of an enforcement action's officers cover enough of its span, and when
//! they do not, why — what a supervisor acts on. Pure: the caller gathers
//! actions, recordings, assignments and recording events from the store.
//!
//! Definitions (docs/coverage.md says the same, for people):
//! - A recording covers the time from its start to its start plus its
//!   duration, both by the recorder's clock corrected by the offset the dock
//!   measured (`device time − clock_offset_ms`). Only recordings whose bytes
//!   arrived verified count.
//! - An action is covered when the union of the arrived recordings
//!   attributed to any of its officers covers at least `share_permille` of
//!   its span (`covered_ms × 1000 ≥ share_permille × span_ms`). A zero-length
//!   action is treated as lasting one millisecond.
//! - An uncovered action gets the first cause that applies, in this order:
//!   1. `clock_problem`: with the recordings at their uncorrected device
//!      times the action would be covered, or a recording of its officers
//!      that touches the action came from a recorder whose clock was off by
//!      more than the drift threshold.
//!   2. `no_recorder_assigned`: none of its officers had a device assigned
//!      at any moment of the action, nor one that recorded for them then,
//!      and it was not reported by a device of theirs (an action from a
//!      field device's events was: that device is with its officer).
//!   3. `media_not_arrived`: a recording of its officers (or of a device
//!      assigned to them then) that touches the action is known — from a
//!      media record whose bytes are not stored yet, or from recording
//!      started/stopped events — but its bytes have not arrived.
//!   4. `not_linked`: an arrived recording from a device assigned to one of
//!      its officers touches the action but is attributed to another
//!      officer or to none.
//!   5. `nothing_recorded`: none of the above.

use std::collections::HashSet;

use serde::Serialize;

use super::span::{covered_ms, union, Span};

/// An enforcement action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// Its id (the `action_id` of its events, or of the import).
    pub id: String,
    /// The officers who carried it out.
    pub officers: Vec<String>,
    /// When it happened.
    pub span: Span,
    /// The device whose events made it, when that device records: a
    /// recorder carried by its officer (none for an action imported from a
    /// case system, or reported on a device that does not record).
    pub device_id: Option<String>,
}

/// A recording as the hub holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// The media record.
    pub record_id: String,
    /// The device that recorded it.
    pub device_id: String,
    /// The officer the record is attributed to (as signed).
    pub officer_id: Option<String>,
    /// Start and start + duration by the device clock, uncorrected.
    pub device_span: Span,
    /// Device clock minus agent clock when measured, milliseconds.
    pub clock_offset_ms: i64,
    /// Whether its bytes arrived verified.
    pub arrived: bool,
}

impl Recording {
    /// When it really happened: the device span corrected by the measured offset.
    pub fn span(&self) -> Span {
        self.device_span.shifted(self.clock_offset_ms)
    }
}

/// A device assigned to an officer for a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The device.
    pub device_id: String,
    /// The officer.
    pub officer_id: String,
    /// From when to when (open ends as far as the window reaches).
    pub span: Span,
}

/// A recording a device said it made (recording started/stopped events),
/// whether or not its media arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingEvent {
    /// The device.
    pub device_id: String,
    /// The officer the events are attributed to.
    pub officer_id: Option<String>,
    /// From the start event to the stop event (corrected).
    pub span: Span,
}

/// Why an action is not covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The recordings are there but a clock put them elsewhere.
    ClockProblem,
    /// None of the officers had a device.
    NoRecorderAssigned,
    /// Recorded, but the media has not reached the hub.
    MediaNotArrived,
    /// Media arrived from the officers' devices but is attributed to someone else.
    NotLinked,
    /// Nothing was recorded.
    NothingRecorded,
}

impl Cause {
    /// Every cause, in the order the docs list them.
    pub const ALL: [Cause; 5] = [
        Self::ClockProblem,
        Self::NoRecorderAssigned,
        Self::MediaNotArrived,
        Self::NotLinked,
        Self::NothingRecorded,
    ];

    /// The name used in the store, the API and the docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClockProblem => "clock_problem",
            Self::NoRecorderAssigned => "no_recorder_assigned",
            Self::MediaNotArrived => "media_not_arrived",
            Self::NotLinked => "not_linked",
            Self::NothingRecorded => "nothing_recorded",
        }
    }
}

/// The thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Share of an action's span that must be recorded, per mille (900 = 90%).
    pub share_permille: u32,
    /// A recorder clock off by more than this (milliseconds) is suspect.
    pub drift_ms: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            share_permille: 900,
            drift_ms: 60_000,
        }
    }
}

/// One action's coverage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The action.
    pub action_id: String,
    /// Its length, milliseconds (at least 1).
    pub span_ms: i64,
    /// Milliseconds of it covered by arrived recordings of its officers.
    pub covered_ms: i64,
    /// Whether that reaches the policy's share.
    pub covered: bool,
    /// Why not, when not.
    pub cause: Option<Cause>,
    /// The recordings that cover part of it.
    pub recordings: Vec<String>,
}

/// What [`judge`] looks at besides the action itself.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// Recordings (any officer; those touching the action matter).
    pub recordings: &'a [Recording],
    /// Device assignments.
    pub assignments: &'a [Assignment],
    /// Recordings devices said they made.
    pub events: &'a [RecordingEvent],
}

fn enough(covered: i64, span: i64, policy: Policy) -> bool {
    i128::from(covered) * 1000 >= i128::from(policy.share_permille) * i128::from(span)
}

/// Judges one action.
pub fn judge(action: &Action, ev: Evidence<'_>, policy: Policy) -> Verdict {
    let span = if action.span.is_empty() {
        Span::new(action.span.start, action.span.start + 1)
    } else {
        action.span
    };
    let officers: HashSet<&str> = action.officers.iter().map(String::as_str).collect();
    let of_officers = |r: &&Recording| {
        r.officer_id
            .as_deref()
            .is_some_and(|o| officers.contains(o))
    };
    let arrived: Vec<&Recording> = ev
        .recordings
        .iter()
        .filter(of_officers)
        .filter(|r| r.arrived)
        .collect();
    let covered = covered_ms(span, &union(arrived.iter().map(|r| r.span())));
    let recordings = arrived
        .iter()
        .filter(|r| r.span().overlaps(span))
        .map(|r| r.record_id.clone())
        .collect();
    let is_covered = enough(covered, span.len(), policy);
    let device = action.device_id.as_deref();
    let cause = (!is_covered).then(|| cause(span, &officers, device, ev, policy));
    Verdict {
        action_id: action.id.clone(),
        span_ms: span.len(),
        covered_ms: covered,
        covered: is_covered,
        cause,
        recordings,
    }
}

fn cause(
    span: Span,
    officers: &HashSet<&str>,
    device: Option<&str>,
    ev: Evidence<'_>,
    policy: Policy,
) -> Cause {
    let theirs: Vec<&Recording> = ev
        .recordings
        .iter()
        .filter(|r| {
            r.officer_id
                .as_deref()
                .is_some_and(|o| officers.contains(o))
        })
        .collect();
    let raw = covered_ms(
        span,
        &union(theirs.iter().filter(|r| r.arrived).map(|r| r.device_span)),
    );
    let suspect = theirs.iter().any(|r| {
        r.clock_offset_ms.abs() > policy.drift_ms
            && (r.span().overlaps(span) || r.device_span.overlaps(span))
    });
    if enough(raw, span.len(), policy) || suspect {
        return Cause::ClockProblem;
    }
    // Their devices: the one that reported the action, those assigned to
    // them then, or that recorded for them then.
    let devices: HashSet<&str> = device
        .into_iter()
        .chain(
            ev.assignments
                .iter()
                .filter(|a| officers.contains(a.officer_id.as_str()) && a.span.overlaps(span))
                .map(|a| a.device_id.as_str())
                .chain(
                    theirs
                        .iter()
                        .filter(|r| r.span().overlaps(span))
                        .map(|r| r.device_id.as_str()),
                ),
        )
        .collect();
    if devices.is_empty() {
        return Cause::NoRecorderAssigned;
    }
    let on_their_devices = |device: &str, officer: Option<&str>| {
        devices.contains(device) || officer.is_some_and(|o| officers.contains(o))
    };
    let pending_media = ev.recordings.iter().any(|r| {
        !r.arrived
            && r.span().overlaps(span)
            && on_their_devices(&r.device_id, r.officer_id.as_deref())
    });
    let said_recording = ev
        .events
        .iter()
        .any(|e| e.span.overlaps(span) && on_their_devices(&e.device_id, e.officer_id.as_deref()));
    if pending_media || said_recording && !arrived_overlapping(ev, &devices, span) {
        return Cause::MediaNotArrived;
    }
    let elsewhere = ev.recordings.iter().any(|r| {
        r.arrived
            && devices.contains(r.device_id.as_str())
            && r.span().overlaps(span)
            && !r
                .officer_id
                .as_deref()
                .is_some_and(|o| officers.contains(o))
    });
    if elsewhere {
        return Cause::NotLinked;
    }
    Cause::NothingRecorded
}

/// Whether an arrived recording from one of `devices` touches `span`.
fn arrived_overlapping(ev: Evidence<'_>, devices: &HashSet<&str>, span: Span) -> bool {
    ev.recordings
        .iter()
        .any(|r| r.arrived && devices.contains(r.device_id.as_str()) && r.span().overlaps(span))
}

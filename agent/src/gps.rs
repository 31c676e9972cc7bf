//! Where a record was made, for field devices with a GPS receiver.
//!
//! In: NMEA 0183 lines from the receiver's serial port. Out: the latest valid
//! fix and its age, which [`Gps::tag`] hands to each record as its
//! [`Geo`] (the record body's `geo`).
//!
//! [`Tracker`] is the protocol without I/O: fed one line at a time, it parses
//! GGA and RMC with the `nmea` crate, rejects damaged lines with an error that
//! names the sentence and the fault, and keeps the latest valid fix. An
//! invalid fix (GGA quality 0, RMC status `V`) never replaces a valid one: it
//! only records that the receiver currently has no fix. A record is tagged
//! ([`Tracker::geotag`]) only while the receiver reports a fix and that fix
//! is at most `max_age` old, so no record ever carries a stale position or
//! one the receiver itself called invalid. [`reader`] is the thin task that
//! opens the port, reopens it with backoff when it goes away, and feeds the
//! tracker.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Days, NaiveDateTime, NaiveTime, TimeDelta, Utc};
use evsync_protocol::record::{FixQuality, Geo};
use nmea::sentences::rmc::RmcStatusOfFix;
use nmea::sentences::{parse_gga, parse_rmc, FixType, GgaData, RmcData};
use nmea::SentenceType;
use serde::{Deserialize, Serialize};
use std::future::Future;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_serial::SerialPortBuilderExt;

/// Longest line kept from the port, in bytes. NMEA allows 82 characters and
/// some receivers send a few more; a longer line is noise or sentences run
/// together, and is dropped whole.
pub const MAX_LINE: usize = 200;

/// First wait before reopening a port that failed; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait before reopening a port.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Rejected lines are counted always but logged at most this often: a
/// receiver at the wrong baud rate sends nothing but garbage.
const REJECT_LOG_EVERY: Duration = Duration::from_secs(60);
/// An RMC received within this time of a GGA with the same time of day
/// belongs to the same epoch (receivers that send GGA first).
const SAME_EPOCH: Duration = Duration::from_secs(60);

/// The quality of a fix (GGA field 6, or the RMC mode indicator), or `None`
/// when the receiver says it has none.
fn quality_of(fix: FixType) -> Option<FixQuality> {
    match fix {
        FixType::Invalid => None,
        FixType::Gps => Some(FixQuality::Gps),
        FixType::DGps => Some(FixQuality::Dgps),
        FixType::Pps => Some(FixQuality::Pps),
        FixType::Rtk => Some(FixQuality::Rtk),
        FixType::FloatRtk => Some(FixQuality::FloatRtk),
        FixType::Estimated => Some(FixQuality::Estimated),
        FixType::Manual => Some(FixQuality::Manual),
        FixType::Simulation => Some(FixQuality::Simulation),
    }
}

/// A valid position fix from the receiver. A report of "no fix" is never a `Fix`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fix {
    /// Latitude in degrees, WGS 84; south is negative.
    pub lat: f64,
    /// Longitude in degrees, WGS 84; west is negative.
    pub lon: f64,
    /// Altitude above mean sea level in metres (GGA only).
    pub altitude_m: Option<f64>,
    /// How the fix was computed.
    pub quality: FixQuality,
    /// Satellites used in the fix (GGA only).
    pub satellites: Option<u32>,
    /// Horizontal dilution of precision (GGA only): below 2 is good, above 5 poor.
    pub hdop: Option<f32>,
    /// UTC time of the fix: the receiver's time of day on the date of its
    /// last RMC. Before any RMC, the date is the agent's UTC date (the day
    /// that puts the time nearest to the agent's clock).
    pub at: DateTime<Utc>,
}

impl Fix {
    /// The record's geotag for this fix, `age` old at the record's ingest time.
    pub fn geo(&self, age: Duration) -> Geo {
        Geo {
            lat: self.lat,
            lon: self.lon,
            quality: self.quality,
            age_ms: u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
            satellites: self.satellites,
            hdop: self.hdop.map(widen),
            altitude_m: self.altitude_m,
        }
    }
}

/// Why a line from the receiver was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpsError {
    /// The checksum after `*` does not match the sentence: it was damaged in transit.
    Checksum {
        /// The sentence's address, e.g. `GNGGA`.
        sentence: String,
        /// The checksum the line carries.
        found: u8,
        /// The checksum of the line's contents.
        computed: u8,
    },
    /// The line is not a well-formed sentence: cut short, noise, or a field
    /// that does not parse.
    Malformed {
        /// The sentence's address (`GNRMC`), or the start of the line, quoted,
        /// when it has none.
        sentence: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for GpsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpsError::Checksum {
                sentence,
                found,
                computed,
            } => write!(
                f,
                "NMEA {sentence}: checksum *{found:02X} does not match the sentence \
                 (expected *{computed:02X}): damaged in transit"
            ),
            GpsError::Malformed { sentence, reason } => write!(f, "NMEA {sentence}: {reason}"),
        }
    }
}

impl std::error::Error for GpsError {}

/// The receiver's state as its sentences tell it, without I/O.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    /// The latest valid fix and when its first sentence was received.
    latest: Option<(Fix, Instant)>,
    /// Whether the receiver's last word was a valid fix.
    has_fix: bool,
    /// The UTC date and time of the last valid RMC that carried a date, and
    /// when it was received: the calendar for GGA, which has none.
    clock: Option<(NaiveDateTime, Instant)>,
}

impl Tracker {
    /// Takes one line from the receiver, received at `received`. Returns the
    /// new latest fix when the line is a valid GGA or RMC fix, `None` for a
    /// report of no fix and for other sentences (GSA, GSV, VTG, GLL, TXT,
    /// vendor `$P…` sentences), and an error for a damaged line, which changes
    /// nothing. Framing and checksum are checked for every standard sentence,
    /// fields only for GGA and RMC; vendor sentences are skipped unread.
    pub fn feed(&mut self, line: &str, received: Instant) -> Result<Option<Fix>, GpsError> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(None);
        }
        let address = address(line);
        let malformed = |reason: String| GpsError::Malformed {
            sentence: address.map_or_else(|| format!("line {:?}", excerpt(line)), str::to_owned),
            reason,
        };
        if !line.is_ascii() {
            return Err(malformed(
                "not ASCII text: noise or binary data on the line".into(),
            ));
        }
        if address.is_some_and(|a| a.starts_with('P')) {
            return Ok(None);
        }
        if line.len() > nmea::SENTENCE_MAX_LEN {
            return Err(malformed(format!(
                "{} characters, more than the {} a sentence may have",
                line.len(),
                nmea::SENTENCE_MAX_LEN
            )));
        }
        let sentence = nmea::parse_nmea_sentence(line).map_err(|_| {
            let expected =
                "not a complete sentence (expected `$<talker><type>,<fields>*<checksum>`)";
            // A line without an address already shows its start as the sentence.
            malformed(match address {
                Some(_) => format!("{expected}: {:?}", excerpt(line)),
                None => expected.into(),
            })
        })?;
        let computed = sentence.calc_checksum();
        if computed != sentence.checksum {
            return Err(GpsError::Checksum {
                sentence: format!("{}{}", sentence.talker_id, sentence.message_id.as_str()),
                found: sentence.checksum,
                computed,
            });
        }
        match sentence.message_id {
            SentenceType::GGA => {
                let gga = parse_gga(sentence)
                    .map_err(|e| malformed(format!("a field does not parse: {e}")))?;
                self.gga(gga, received).map_err(malformed)
            }
            SentenceType::RMC => {
                let rmc = parse_rmc(sentence)
                    .map_err(|e| malformed(format!("a field does not parse: {e}")))?;
                self.rmc(rmc, received).map_err(malformed)
            }
            _ => Ok(None),
        }
    }

    /// The latest valid fix and its age at `now`, if it is at most `max_age` old.
    pub fn latest(&self, now: Instant, max_age: Duration) -> Option<(Fix, Duration)> {
        let (fix, received) = self.latest.as_ref()?;
        let age = now.saturating_duration_since(*received);
        (age <= max_age).then(|| (fix.clone(), age))
    }

    /// The tag for a record made at `now`: the latest valid fix with its age,
    /// only while the receiver reports a fix and the fix is at most `max_age`
    /// old. `None` before the first fix, once the receiver reports losing
    /// it, and once it has aged past `max_age` (a receiver gone silent).
    pub fn geotag(&self, now: Instant, max_age: Duration) -> Option<Geo> {
        if !self.has_fix {
            return None;
        }
        let (fix, age) = self.latest(now, max_age)?;
        Some(fix.geo(age))
    }

    /// Whether the receiver's last GGA or RMC reported a valid fix. False
    /// before the first fix and after the receiver reports losing it, while
    /// [`Tracker::latest`] still offers the last valid fix as it ages.
    pub fn receiver_has_fix(&self) -> bool {
        self.has_fix
    }

    fn gga(&mut self, gga: GgaData, received: Instant) -> Result<Option<Fix>, String> {
        let Some(quality) = gga.fix_type.and_then(quality_of) else {
            self.has_fix = false;
            return Ok(None);
        };
        let (lat, lon) = position(gga.latitude, gga.longitude)?;
        let time = gga.fix_time.ok_or("reports a fix without its time")?;
        let fix = Fix {
            lat,
            lon,
            altitude_m: gga.altitude.map(widen),
            quality,
            satellites: gga.fix_satellites,
            hdop: gga.hdop,
            at: nearest_day(self.reference(received), time).and_utc(),
        };
        Ok(Some(self.keep(fix, received)))
    }

    fn rmc(&mut self, rmc: RmcData, received: Instant) -> Result<Option<Fix>, String> {
        // The NMEA 2.3 mode indicator says more than the status; a status of
        // `V` is no fix whatever the mode says.
        let quality = match (rmc.status_of_fix, rmc.faa_mode) {
            (RmcStatusOfFix::Invalid, _) => None,
            (_, Some(mode)) => quality_of(FixType::from(mode)),
            (RmcStatusOfFix::Differential, None) => Some(FixQuality::Dgps),
            (RmcStatusOfFix::Autonomous, None) => Some(FixQuality::Gps),
        };
        let Some(quality) = quality else {
            self.has_fix = false;
            return Ok(None);
        };
        let (lat, lon) = position(rmc.lat, rmc.lon)?;
        let time = rmc.fix_time.ok_or("reports a fix without its time")?;
        let at = match rmc.fix_date {
            Some(date) => {
                let at = date.and_time(time);
                self.clock = Some((at, received));
                at
            }
            None => nearest_day(self.reference(received), time),
        }
        .and_utc();
        // The GGA of the same epoch came first: it has the richer fix, and
        // this RMC only gives it its date.
        if let Some((last, when)) = &mut self.latest {
            if last.at.time() == time && received.saturating_duration_since(*when) < SAME_EPOCH {
                last.at = at;
                self.has_fix = true;
                return Ok(Some(last.clone()));
            }
        }
        let fix = Fix {
            lat,
            lon,
            altitude_m: None,
            quality,
            satellites: None,
            hdop: None,
            at,
        };
        Ok(Some(self.keep(fix, received)))
    }

    fn keep(&mut self, fix: Fix, received: Instant) -> Fix {
        self.has_fix = true;
        self.latest = Some((fix.clone(), received));
        fix
    }

    /// The receiver's UTC now, as well as it is known at `received`: its last
    /// dated RMC plus the time since, or the agent's clock before any.
    fn reference(&self, received: Instant) -> NaiveDateTime {
        self.clock
            .and_then(|(at, when)| {
                let since = TimeDelta::from_std(received.saturating_duration_since(when)).ok()?;
                at.checked_add_signed(since)
            })
            .unwrap_or_else(|| Utc::now().naive_utc())
    }
}

/// The address field of a sentence (`GNGGA` in `$GNGGA,…`), if the line has one.
fn address(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('$')?;
    let end = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    rest.get(..end).filter(|a| !a.is_empty())
}

/// The start of a line, for messages: enough to recognise it, never a flood.
fn excerpt(line: &str) -> String {
    line.chars().take(40).collect()
}

/// Both coordinates of a valid fix, on the globe.
fn position(lat: Option<f64>, lon: Option<f64>) -> Result<(f64, f64), String> {
    match (lat, lon) {
        (Some(lat), Some(lon)) if lat.abs() <= 90.0 && lon.abs() <= 180.0 => Ok((lat, lon)),
        (Some(lat), Some(lon)) => Err(format!("position {lat}, {lon} is not on the globe")),
        _ => Err("reports a fix without a position".into()),
    }
}

/// `time` on the day that puts it nearest to `reference`: a GGA of 00:00:01
/// just after an RMC of 23:59:59 belongs to the next day.
fn nearest_day(reference: NaiveDateTime, time: NaiveTime) -> NaiveDateTime {
    let same_day = reference.date().and_time(time);
    let half_day = TimeDelta::hours(12);
    let shifted = if same_day - reference > half_day {
        same_day.checked_sub_days(Days::new(1))
    } else if reference - same_day > half_day {
        same_day.checked_add_days(Days::new(1))
    } else {
        None
    };
    shifted.unwrap_or(same_day)
}

/// The parser reads altitudes and HDOP as `f32`; going through its shortest
/// decimal form keeps `247.9` as 247.9 rather than 247.899993896484375.
fn widen(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// What the reader counts, for the agent's status message.
#[derive(Debug, Default)]
pub struct Counters {
    /// Valid fixes read (GGA or RMC lines that gave one).
    pub fixes: AtomicU64,
    /// Lines rejected: damaged, cut short, noise, too long.
    pub rejected: AtomicU64,
    /// Of those, sentences whose checksum did not match: damaged in transit.
    pub checksum_errors: AtomicU64,
}

/// What records are tagged from: the reader task's tracker, shared through a
/// watch channel. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gps {
    tracker: watch::Receiver<Tracker>,
    max_age: Duration,
    counters: Arc<Counters>,
}

impl Gps {
    /// The tag for a record made now (see [`Tracker::geotag`]): the latest
    /// valid fix while the receiver reports one and it is at most
    /// `max_fix_age` old; `None` otherwise.
    pub fn tag(&self) -> Option<Geo> {
        self.tracker.borrow().geotag(Instant::now(), self.max_age)
    }

    /// The latest valid fix and its age now, however old, whatever the
    /// receiver reports since: for status and diagnostics, never for tagging.
    pub fn last_fix(&self) -> Option<(Fix, Duration)> {
        self.tracker.borrow().latest(Instant::now(), Duration::MAX)
    }

    /// Whether the receiver currently reports a valid fix.
    pub fn receiver_has_fix(&self) -> bool {
        self.tracker.borrow().receiver_has_fix()
    }

    /// Lines rejected since the start: damaged, cut short, noise, too long.
    pub fn rejected_lines(&self) -> u64 {
        self.counters.rejected.load(Ordering::Relaxed)
    }

    /// The reader's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The receiver's state for the agent's status message.
    pub fn status(&self) -> serde_json::Value {
        let c = &self.counters;
        serde_json::json!({
            "has_fix": self.receiver_has_fix(),
            "tagging": self.tag().is_some(),
            "last_fix_age_ms": self
                .last_fix()
                .map(|(_, age)| u64::try_from(age.as_millis()).unwrap_or(u64::MAX)),
            "fixes": c.fixes.load(Ordering::Relaxed),
            "rejected_lines": c.rejected.load(Ordering::Relaxed),
            "checksum_errors": c.checksum_errors.load(Ordering::Relaxed),
        })
    }
}

/// Prepares reading the receiver on serial `port` at `baud`: returns the
/// handle records are tagged from, and the reader, a future to run as a task
/// until `shutdown` changes (or its sender is dropped). The port is opened by
/// the reader, and reopened with backoff whenever it cannot be opened, fails
/// or closes, so a receiver plugged in late or unplugged for a while is
/// picked up again. The reader returns only on shutdown.
pub fn reader(
    port: String,
    baud: u32,
    max_age: Duration,
    shutdown: watch::Receiver<bool>,
) -> (Gps, impl Future<Output = ()> + Send + 'static) {
    let (tracker, tracker_rx) = watch::channel(Tracker::default());
    let counters = Arc::new(Counters::default());
    let task = read_port(port, baud, tracker, counters.clone(), shutdown);
    let gps = Gps {
        tracker: tracker_rx,
        max_age,
        counters,
    };
    (gps, task)
}

/// [`reader`], spawned on the current Tokio runtime.
pub fn spawn(
    port: String,
    baud: u32,
    max_age: Duration,
    shutdown: watch::Receiver<bool>,
) -> (Gps, JoinHandle<()>) {
    let (gps, task) = reader(port, baud, max_age, shutdown);
    (gps, tokio::spawn(task))
}

/// Opens the port, reads it until it fails or closes, and starts again, until shutdown.
async fn read_port(
    port: String,
    baud: u32,
    tracker: watch::Sender<Tracker>,
    counters: Arc<Counters>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = MIN_BACKOFF;
    let mut log = RejectLog::default();
    while !*shutdown.borrow_and_update() {
        let opened = Instant::now();
        match tokio_serial::new(&port, baud).open_native_async() {
            Ok(stream) => {
                tracing::info!(port, baud, "reading the GPS receiver");
                let ended = tokio::select! {
                    _ = shutdown.changed() => return,
                    ended = read_lines(stream, &port, &tracker, &counters, &mut log) => ended,
                };
                match ended {
                    Ok(()) => {
                        tracing::warn!(port, retry_in = ?backoff, "the GPS receiver's port closed")
                    }
                    Err(e) => {
                        tracing::warn!(port, error = %e, retry_in = ?backoff, "reading the GPS receiver failed")
                    }
                }
                // A port that worked for a while starts over with a short wait.
                if opened.elapsed() >= MAX_BACKOFF {
                    backoff = MIN_BACKOFF;
                }
            }
            Err(e) => {
                tracing::warn!(port, baud, error = %e, retry_in = ?backoff, "cannot open the GPS receiver's port");
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Feeds every line of `stream` to the tracker until the stream ends (`Ok`) or fails.
async fn read_lines(
    mut stream: impl AsyncRead + Unpin,
    port: &str,
    tracker: &watch::Sender<Tracker>,
    counters: &Counters,
    log: &mut RejectLog,
) -> std::io::Result<()> {
    let mut lines = Lines::default();
    let mut buf = [0u8; 512];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        for &byte in buf.iter().take(n) {
            let outcome = match lines.push(byte) {
                None => continue,
                Some(Line::TooLong) => Err(format!(
                    "a line longer than {MAX_LINE} bytes: noise or sentences run together; dropped"
                )),
                Some(Line::Text(text)) => {
                    let mut fed = Ok(None);
                    // Watchers are woken only by a new fix; a report of no fix
                    // is still seen by the next `borrow`.
                    tracker.send_if_modified(|t| {
                        fed = t.feed(&text, Instant::now());
                        matches!(fed, Ok(Some(_)))
                    });
                    match fed {
                        Ok(Some(_)) => {
                            counters.fixes.fetch_add(1, Ordering::Relaxed);
                            Ok(())
                        }
                        Ok(None) => Ok(()),
                        Err(e) => {
                            if matches!(e, GpsError::Checksum { .. }) {
                                counters.checksum_errors.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e.to_string())
                        }
                    }
                }
            };
            if let Err(why) = outcome {
                counters.rejected.fetch_add(1, Ordering::Relaxed);
                log.note(port, &why);
            }
        }
    }
}

/// A line split from the byte stream.
#[derive(Debug, PartialEq)]
enum Line {
    /// A complete line, without its `\n` (bytes that are not UTF-8 become U+FFFD).
    Text(String),
    /// A line passed [`MAX_LINE`]; the rest of it is dropped.
    TooLong,
}

/// Splits the serial byte stream into lines of at most [`MAX_LINE`] bytes.
#[derive(Debug, Default)]
struct Lines {
    line: Vec<u8>,
    /// Dropping the rest of an overlong line, up to its `\n`.
    overlong: bool,
}

impl Lines {
    /// Takes one byte; returns a line when it completes one, and `TooLong`
    /// once per line when it passes the limit.
    fn push(&mut self, byte: u8) -> Option<Line> {
        if byte == b'\n' {
            let text = String::from_utf8_lossy(&self.line).into_owned();
            self.line.clear();
            return (!std::mem::take(&mut self.overlong)).then_some(Line::Text(text));
        }
        if self.overlong {
            return None;
        }
        if self.line.len() == MAX_LINE {
            self.line.clear();
            self.overlong = true;
            return Some(Line::TooLong);
        }
        self.line.push(byte);
        None
    }
}

/// Logs rejected lines at most once per [`REJECT_LOG_EVERY`], with how many
/// were not logged in between.
#[derive(Debug, Default)]
struct RejectLog {
    last: Option<Instant>,
    unlogged: u64,
}

impl RejectLog {
    fn note(&mut self, port: &str, why: &str) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < REJECT_LOG_EVERY)
        {
            self.unlogged += 1;
            return;
        }
        tracing::warn!(
            port,
            unlogged_since_last = self.unlogged,
            "rejected a line from the GPS receiver: {why}"
        );
        self.last = Some(now);
        self.unlogged = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Write as _;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};

    use chrono::NaiveDate;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/nmea")
            .join(name)
    }

    /// A sentence with its checksum, for the hand-made cases.
    fn sentence(body: &str) -> String {
        let sum = body.bytes().fold(0u8, |sum, b| sum ^ b);
        format!("${body}*{sum:02X}")
    }

    fn utc(date: (i32, u32, u32), time: (u32, u32, u32)) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(date.0, date.1, date.2)
            .unwrap()
            .and_hms_opt(time.0, time.1, time.2)
            .unwrap()
            .and_utc()
    }

    fn may_17(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        utc((2024, 5, 17), (h, m, s))
    }

    fn fix(
        lat: f64,
        lon: f64,
        altitude_m: Option<f64>,
        quality: FixQuality,
        satellites: Option<u32>,
        hdop: Option<f32>,
        at: DateTime<Utc>,
    ) -> Fix {
        Fix {
            lat,
            lon,
            altitude_m,
            quality,
            satellites,
            hdop,
            at,
        }
    }

    /// Equal, with coordinates to 1e-6 degrees (about 10 cm) and altitude to 1 mm.
    fn assert_fix(got: &Fix, want: &Fix) {
        let near = |a: f64, b: f64, tol: f64| (a - b).abs() < tol;
        assert!(
            near(got.lat, want.lat, 1e-6) && near(got.lon, want.lon, 1e-6),
            "position: got {got:?}, want {want:?}"
        );
        match (got.altitude_m, want.altitude_m) {
            (Some(a), Some(b)) => assert!(near(a, b, 1e-3), "altitude: got {got:?}, want {want:?}"),
            (a, b) => assert_eq!(a, b, "altitude"),
        }
        assert_eq!(
            (got.quality, got.satellites, got.hdop, got.at),
            (want.quality, want.satellites, want.hdop, want.at),
            "got {got:?}, want {want:?}"
        );
    }

    /// A fixture fed through the line splitter and a tracker, as the reader feeds them.
    struct Run {
        /// Line number (from 1) and fix, for every line that gave one.
        fixes: Vec<(usize, Fix)>,
        /// Line number and error, for every rejected line.
        errors: Vec<(usize, GpsError)>,
        /// Line numbers of the lines dropped for being too long.
        too_long: Vec<usize>,
        tracker: Tracker,
    }

    fn run(name: &str) -> Run {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let (mut lines, mut tracker) = (Lines::default(), Tracker::default());
        let (mut fixes, mut errors, mut too_long) = (vec![], vec![], vec![]);
        let mut number = 1;
        for byte in bytes {
            match lines.push(byte) {
                Some(Line::Text(text)) => match tracker.feed(&text, Instant::now()) {
                    Ok(Some(fix)) => fixes.push((number, fix)),
                    Ok(None) => {}
                    Err(e) => errors.push((number, e)),
                },
                Some(Line::TooLong) => too_long.push(number),
                None => {}
            }
            if byte == b'\n' {
                number += 1;
            }
        }
        Run {
            fixes,
            errors,
            too_long,
            tracker,
        }
    }

    fn line_numbers<T>(items: &[(usize, T)]) -> Vec<usize> {
        items.iter().map(|(n, _)| *n).collect()
    }

    fn latest(tracker: &Tracker) -> Fix {
        tracker
            .latest(Instant::now(), Duration::from_secs(60))
            .unwrap()
            .0
    }

    /// A GPS fix at Chaotianmen, 9 satellites: the hand-made cases' valid GGA.
    const GGA_FIX: &str = "GNGGA,012930.00,2933.90000,N,10635.13000,E,1,09,0.97,212.4,M,-28.6,M,,";

    /// A tracker fed `bodies` (each given its checksum) at `at`, every line accepted.
    fn tracker_fed(bodies: &[&str], at: Instant) -> Tracker {
        let mut t = Tracker::default();
        for body in bodies {
            t.feed(&sentence(body), at)
                .unwrap_or_else(|e| panic!("{body}: {e}"));
        }
        t
    }

    /// The last fix of `ublox_cold_start.nmea`.
    fn cold_start_last() -> Fix {
        fix(
            29.557_360_667,
            106.577_110_333,
            Some(247.9),
            FixQuality::Gps,
            Some(8),
            Some(1.12),
            may_17(1, 27, 14),
        )
    }

    /// The last valid fix of `ublox_damaged_then_lost.nmea`, before the receiver loses it.
    fn damaged_last_valid() -> Fix {
        fix(
            29.565_076_0,
            106.585_511_0,
            Some(213.0),
            FixQuality::Gps,
            Some(8),
            Some(1.06),
            may_17(1, 29, 36),
        )
    }

    // ublox_cold_start.nmea: a u-blox M8 (NMEA 4.10, GN talker, RMC first in
    // each epoch) powered on at Jiefangbei, Yuzhong, Chongqing. Lines 1-12:
    // boot $GPTXT; 13-36: three epochs with no time and no fix; 37-81: five
    // epochs with time and date but no fix; 82-135: six epochs with a GPS
    // fix, 5 satellites growing to 8, standing still.
    #[test]
    fn a_cold_start_gives_no_fix_until_the_receiver_has_one() {
        let run = run("ublox_cold_start.nmea");
        assert!(run.errors.is_empty(), "{:?}", run.errors);
        assert!(run.too_long.is_empty());
        let epochs = [82, 91, 100, 109, 118, 127];
        let want_lines: Vec<usize> = epochs.iter().flat_map(|&rmc| [rmc, rmc + 2]).collect();
        assert_eq!(line_numbers(&run.fixes), want_lines);
        // The first fix is the RMC's: position, quality and date, nothing more.
        let first = fix(
            29.557_360_0,
            106.577_110_0,
            None,
            FixQuality::Gps,
            None,
            None,
            may_17(1, 27, 9),
        );
        assert_fix(&run.fixes[0].1, &first);
        // Its GGA completes it.
        let first_gga = fix(
            29.557_360_0,
            106.577_110_0,
            Some(251.8),
            FixQuality::Gps,
            Some(5),
            Some(2.43),
            may_17(1, 27, 9),
        );
        assert_fix(&run.fixes[1].1, &first_gga);
        let last = cold_start_last();
        assert_fix(&run.fixes[11].1, &last);
        assert_fix(&latest(&run.tracker), &last);
        assert!(run.tracker.receiver_has_fix());
    }

    // mediatek_drive_dgps.nmea: a MediaTek receiver (GPS only, GP talker, GGA
    // first in each epoch: GGA, GSA, 3 GSV, RMC, VTG) in a car heading
    // north-east from Jiefangbei at 36 km/h. Epochs 0-5 (lines 1-42): GPS
    // fix, 9 satellites; epochs 6-11 (lines 43-84): SBAS differential fix, 10
    // satellites.
    #[test]
    fn a_moving_track_switches_from_gps_to_dgps_and_rmc_dates_each_gga() {
        let run = run("mediatek_drive_dgps.nmea");
        assert!(run.errors.is_empty(), "{:?}", run.errors);
        let want_lines: Vec<usize> = (0..12).flat_map(|e| [e * 7 + 1, e * 7 + 6]).collect();
        assert_eq!(line_numbers(&run.fixes), want_lines);
        // The very first GGA comes before any date: the time of day is the receiver's.
        let (_, first) = &run.fixes[0];
        assert_eq!(first.at.time(), NaiveTime::from_hms_opt(1, 31, 20).unwrap());
        // The RMC of the same epoch dates it and keeps the GGA's details.
        let dated = fix(
            29.557_360_0,
            106.577_110_0,
            Some(246.3),
            FixQuality::Gps,
            Some(9),
            Some(0.92),
            may_17(1, 31, 20),
        );
        assert_fix(&run.fixes[1].1, &dated);
        // Every later GGA is dated from the last RMC.
        assert!(run.fixes[1..]
            .iter()
            .all(|(_, f)| f.at.date_naive() == NaiveDate::from_ymd_opt(2024, 5, 17).unwrap()));
        let last_gps = fix(
            29.557_676_667,
            106.577_476_667,
            Some(244.8),
            FixQuality::Gps,
            Some(9),
            Some(0.92),
            may_17(1, 31, 25),
        );
        assert_fix(&run.fixes[10].1, &last_gps);
        let first_dgps = fix(
            29.557_740_0,
            106.577_550_0,
            Some(244.5),
            FixQuality::Dgps,
            Some(10),
            Some(0.83),
            may_17(1, 31, 26),
        );
        assert_eq!(run.fixes[12].0, 43);
        assert_fix(&run.fixes[12].1, &first_dgps);
        let last = fix(
            29.558_056_667,
            106.577_916_667,
            Some(243.0),
            FixQuality::Dgps,
            Some(10),
            Some(0.83),
            may_17(1, 31, 31),
        );
        assert_fix(&run.fixes[23].1, &last);
        assert_fix(&latest(&run.tracker), &last);
    }

    // ublox_damaged_then_lost.nmea: a u-blox M8 on foot at Chaotianmen, 1 s
    // epochs 01:29:30 to 01:29:39, with:
    //   line 1   the tail of a GLL: the port opened mid-sentence
    //   line 22  GGA with a one-bit error in its latitude (bad checksum)
    //   line 29  RMC with a one-bit error in its longitude (bad checksum)
    //   line 40  GGA cut by a UART overrun, run into the next GSA (bad checksum)
    //   line 46  a binary UBX-NAV-PVT fragment
    //   line 47  line noise at the wrong baud rate
    //   line 48  NUL bytes
    //   line 49  RMC cut short, no checksum
    //   line 58  four GSV run together, 300 bytes: dropped by the splitter
    //   line 68  RMC status V and line 70 GGA quality 0, with the stale position
    //   76-91    two epochs with no position at all
    #[test]
    fn damaged_lines_are_rejected_and_losing_the_fix_keeps_the_last_valid_one() {
        let run = run("ublox_damaged_then_lost.nmea");
        let errors: Vec<(usize, &str)> = run
            .errors
            .iter()
            .map(|(n, e)| {
                let kind = match e {
                    GpsError::Checksum { .. } => "checksum",
                    GpsError::Malformed { .. } => "malformed",
                };
                (*n, kind)
            })
            .collect();
        assert_eq!(
            errors,
            [
                (1, "malformed"),
                (22, "checksum"),
                (29, "checksum"),
                (40, "checksum"),
                (46, "malformed"),
                (47, "malformed"),
                (48, "malformed"),
                (49, "malformed"),
            ]
        );
        assert_eq!(run.too_long, [58]);
        // Each error names the sentence and the fault.
        let messages: Vec<String> = run.errors.iter().map(|(_, e)| e.to_string()).collect();
        assert_eq!(
            messages[1],
            "NMEA GNGGA: checksum *6F does not match the sentence (expected *67): damaged in transit"
        );
        for (i, starts) in [
            (
                0,
                "NMEA line \"4.00000,N,10635.13000,E,012929.00,A,A*6E\": not a complete sentence",
            ),
            (2, "NMEA GNRMC: checksum *02 does not match"),
            (3, "NMEA GNGGA: checksum *0A does not match"),
            (4, "NMEA line \"\u{fffd}b"),
            (6, "NMEA line \"\\0\\0\\0\\0\": not a complete sentence"),
            (7, "NMEA GNRMC: not a complete sentence"),
        ] {
            assert!(messages[i].starts_with(starts), "{}", messages[i]);
        }
        assert!(messages[4].ends_with("not ASCII text: noise or binary data on the line"));

        // Only undamaged GGA and RMC lines give fixes; no V or quality 0 line does.
        assert_eq!(
            line_numbers(&run.fixes),
            [2, 4, 11, 13, 20, 31, 38, 51, 59, 61]
        );
        // The damaged GGA's latitude (…33.90952) never got in: epoch 32 is the RMC's.
        let rmc_32 = fix(
            29.565_025_333,
            106.585_503_667,
            None,
            FixQuality::Gps,
            None,
            None,
            may_17(1, 29, 32),
        );
        assert_fix(&run.fixes[4].1, &rmc_32);
        // Nor the damaged RMC's longitude (…35.17033): epoch 33 is the GGA's.
        let gga_33 = fix(
            29.565_038_0,
            106.585_505_5,
            Some(212.7),
            FixQuality::Gps,
            Some(9),
            Some(0.97),
            may_17(1, 29, 33),
        );
        assert_fix(&run.fixes[5].1, &gga_33);
        // Losing the fix keeps the last valid one, and says the receiver has none.
        let last_valid = damaged_last_valid();
        assert_fix(&run.fixes[9].1, &last_valid);
        assert_fix(&latest(&run.tracker), &last_valid);
        assert!(!run.tracker.receiver_has_fix());
        // So records made now are not tagged with it.
        assert_eq!(
            run.tracker.geotag(Instant::now(), Duration::from_secs(60)),
            None
        );
    }

    #[test]
    fn an_invalid_fix_never_replaces_a_valid_one() {
        let at = Instant::now();
        let mut t = tracker_fed(&[GGA_FIX], at);
        assert!(t.receiver_has_fix());
        for no_fix in [
            "GNGGA,012931.00,2940.00000,N,10640.00000,E,0,03,4.51,215.0,M,-28.6,M,,",
            "GNRMC,012931.00,V,2940.00000,N,10640.00000,E,0.512,,170524,,,N,V",
            "GNRMC,012931.00,A,2940.00000,N,10640.00000,E,0.512,,170524,,,N,V",
            "GNGGA,,,,,,0,00,99.99,,,,,,",
        ] {
            assert_eq!(t.feed(&sentence(no_fix), at), Ok(None), "{no_fix}");
            assert!(!t.receiver_has_fix(), "{no_fix}");
            let kept = latest(&t);
            assert!(
                (kept.lat - 29.565).abs() < 1e-9,
                "{no_fix} replaced the fix"
            );
        }
    }

    #[test]
    fn latest_is_offered_only_while_younger_than_max_age() {
        let t0 = Instant::now();
        assert_eq!(Tracker::default().latest(t0, Duration::from_secs(10)), None);
        let t = tracker_fed(&[GGA_FIX], t0);
        let max_age = Duration::from_secs(10);
        let (_, age) = t.latest(t0 + Duration::from_secs(4), max_age).unwrap();
        assert_eq!(age, Duration::from_secs(4));
        assert!(t.latest(t0 + max_age, max_age).is_some());
        assert_eq!(
            t.latest(t0 + max_age + Duration::from_millis(1), max_age),
            None
        );
    }

    #[test]
    fn a_gga_just_after_midnight_is_dated_the_next_day() {
        let t0 = Instant::now();
        let rmc = "GNRMC,235959.00,A,2933.90000,N,10635.13000,E,0.010,,170524,,,A,V";
        let mut t = tracker_fed(&[rmc], t0);
        let gga = "GNGGA,000000.00,2933.90000,N,10635.13000,E,1,09,0.97,212.4,M,-28.6,M,,";
        let fix = t
            .feed(&sentence(gga), t0 + Duration::from_secs(1))
            .unwrap()
            .unwrap();
        assert_eq!(fix.at, utc((2024, 5, 18), (0, 0, 0)));
    }

    #[test]
    fn a_gga_before_any_rmc_is_dated_by_the_agent_clock() {
        let mut t = Tracker::default();
        let now = Utc::now();
        let time = now.format("%H%M%S.00").to_string();
        let gga = format!("GNGGA,{time},2933.90000,N,10635.13000,E,1,09,0.97,212.4,M,-28.6,M,,");
        let fix = t.feed(&sentence(&gga), Instant::now()).unwrap().unwrap();
        assert!(
            (fix.at - now).num_seconds().abs() <= 1,
            "{} vs {now}",
            fix.at
        );
    }

    #[test]
    fn other_and_vendor_sentences_are_ignored_but_still_checked() {
        let mut t = Tracker::default();
        let at = Instant::now();
        for ignored in [
            sentence("GNGSA,A,3,05,13,15,18,23,24,29,,,,,,1.71,0.97,1.41,1"),
            sentence("GNVTG,8.30,T,,M,2.722,N,5.041,K,A"),
            sentence("GPZDA,012930.00,17,05,2024,00,00"),
            sentence("PUBX,00,012930.00,2933.90000,N,10635.13000,E,230.0,G3,2.1,2.0"),
            "  ".into(),
        ] {
            assert_eq!(t.feed(&ignored, at), Ok(None), "{ignored}");
        }
        let damaged = sentence("GNVTG,8.30,T,,M,2.722,N,5.041,K,A").replace("8.30", "8.31");
        assert!(matches!(
            t.feed(&damaged, at),
            Err(GpsError::Checksum { ref sentence, .. }) if sentence == "GNVTG"
        ));
        let bad_field = sentence(&GGA_FIX.replace(",N,", ",X,"));
        let err = t.feed(&bad_field, at).unwrap_err().to_string();
        assert!(
            err.starts_with("NMEA GNGGA: a field does not parse"),
            "{err}"
        );
        let no_time = sentence("GNGGA,,2933.90000,N,10635.13000,E,1,09,0.97,212.4,M,,M,,");
        let err = t.feed(&no_time, at).unwrap_err().to_string();
        assert_eq!(err, "NMEA GNGGA: reports a fix without its time");
        assert_eq!(t.latest(at, Duration::from_secs(60)), None);
    }

    #[test]
    fn the_splitter_drops_overlong_lines_whole_and_keeps_the_next() {
        let mut lines = Lines::default();
        let mut out = vec![];
        let input = [vec![b'x'; MAX_LINE + 50], b"\r\n$GNGLL\r\n".to_vec()].concat();
        for b in input {
            out.extend(lines.push(b));
        }
        assert_eq!(out, [Line::TooLong, Line::Text("$GNGLL\r".into())]);
        let mut exact = Lines::default();
        let fits = [vec![b'y'; MAX_LINE], b"\n".to_vec()].concat();
        let got: Vec<Line> = fits.into_iter().filter_map(|b| exact.push(b)).collect();
        assert_eq!(got, [Line::Text("y".repeat(MAX_LINE))]);
    }

    #[test]
    fn a_record_is_tagged_with_the_fix_and_its_age_at_the_time_it_is_made() {
        let t0 = Instant::now();
        let t = tracker_fed(&[GGA_FIX], t0);
        let geo = t
            .geotag(t0 + Duration::from_millis(1_250), Duration::from_secs(10))
            .unwrap();
        assert_eq!(
            geo,
            Geo {
                lat: 29.565,
                lon: 106.5855,
                quality: FixQuality::Gps,
                age_ms: 1_250,
                satellites: Some(9),
                hdop: Some(0.97),
                altitude_m: Some(212.4),
            }
        );
        assert!(geo.validate().is_ok());
        // Made at the very moment the fix arrived: age 0.
        assert_eq!(t.geotag(t0, Duration::ZERO).map(|g| g.age_ms), Some(0));
    }

    #[test]
    fn a_fix_older_than_max_age_is_never_a_tag() {
        let t0 = Instant::now();
        let max_age = Duration::from_secs(10);
        let t = tracker_fed(&[GGA_FIX], t0);
        assert!(t.geotag(t0 + max_age, max_age).is_some());
        // The receiver went silent (unplugged, or the reader is stuck): the
        // fix ages out even though its last word was a valid fix.
        assert!(t.receiver_has_fix());
        assert_eq!(
            t.geotag(t0 + max_age + Duration::from_millis(1), max_age),
            None
        );
    }

    #[test]
    fn no_tag_while_the_receiver_reports_no_fix_or_before_its_first() {
        let t0 = Instant::now();
        let recent = Duration::from_secs(60);
        assert_eq!(Tracker::default().geotag(t0, recent), None);
        // Sentences with time but no fix, as in a cold start.
        let searching = tracker_fed(
            &[
                "GNRMC,012704.00,V,,,,,,,170524,,,N,V",
                "GNGGA,012704.00,,,,,0,00,99.99,,,,,,",
            ],
            t0,
        );
        assert_eq!(searching.geotag(t0, recent), None);
        for lost in [
            "GNGGA,012931.00,2940.00000,N,10640.00000,E,0,03,4.51,215.0,M,-28.6,M,,",
            "GNRMC,012931.00,V,2940.00000,N,10640.00000,E,0.512,,170524,,,N,V",
        ] {
            let t = tracker_fed(&[GGA_FIX, lost], t0);
            assert!(t.latest(t0, recent).is_some(), "the valid fix is kept");
            assert_eq!(t.geotag(t0, recent), None, "tagged after {lost}");
            // The receiver finds a fix again: tagged with the new one.
            let mut t = t;
            let again = "GNGGA,012932.00,2933.90152,N,10635.13022,E,2,10,0.83,212.6,M,-28.6,M,,";
            t.feed(&sentence(again), t0 + Duration::from_secs(2))
                .unwrap();
            let geo = t.geotag(t0 + Duration::from_secs(2), recent).unwrap();
            assert_eq!((geo.quality, geo.age_ms), (FixQuality::Dgps, 0));
        }
        // A damaged line says nothing about the fix: the tag stays.
        let mut t = tracker_fed(&[GGA_FIX], t0);
        let damaged = sentence(GGA_FIX).replace(",1,09,", ",0,09,");
        assert!(t.feed(&damaged, t0).is_err());
        assert!(t.geotag(t0, recent).is_some());
    }

    /// socat joining two pseudo-terminals: the GPS port the reader opens,
    /// and the feeder side the test writes the receiver's bytes into. Killed
    /// and reaped however the test ends.
    struct Socat(Child);

    impl Socat {
        /// `None` when socat is not installed.
        fn start(port: &Path, feeder: &Path) -> Option<Socat> {
            // `wait-slave`: socat creates the feeder side only once the
            // reader has opened the port, so nothing written is lost.
            Command::new("socat")
                .arg(format!(
                    "pty,rawer,echo=0,wait-slave,link={}",
                    port.display()
                ))
                .arg(format!("pty,rawer,echo=0,link={}", feeder.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()
                .map(Socat)
        }
    }

    impl Drop for Socat {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    async fn wait_for(path: &Path) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !path.exists() {
            assert!(
                Instant::now() < deadline,
                "{} never appeared",
                path.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A receiver plugged into `port`: socat, and its feeder side kept open
    /// (closing it would end socat). Unplugged when dropped.
    struct Receiver {
        _feeder: std::fs::File,
        _socat: Socat,
    }

    impl Receiver {
        /// Plugs a receiver into `port` that sends the fixture `name` once the
        /// reader has opened the port; `None` when socat is not installed.
        async fn plug_in(port: &Path, name: &str) -> Option<Receiver> {
            let feeder = port.with_extension(format!("feeder-{}", next_feeder()));
            let socat = Socat::start(port, &feeder)?;
            wait_for(&feeder).await;
            let bytes = std::fs::read(fixture(name)).unwrap();
            let feeder = tokio::task::spawn_blocking(move || {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(feeder)
                    .unwrap();
                f.write_all(&bytes).unwrap();
                f
            })
            .await
            .unwrap();
            Some(Receiver {
                _feeder: feeder,
                _socat: socat,
            })
        }
    }

    /// A suffix unique within the test process, so each plug-in gets its own feeder path.
    fn next_feeder() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    async fn wait_until(gps: &Gps, what: &str, done: impl Fn(&Gps) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !done(gps) {
            assert!(
                Instant::now() < deadline,
                "never {what}: tag {:?}, has fix {}, rejected {}",
                gps.tag(),
                gps.receiver_has_fix(),
                gps.rejected_lines()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn the_reader_waits_for_its_port_reopens_it_and_publishes_the_fixes_it_reads() {
        let dir = tempfile::tempdir().unwrap();
        let port = dir.path().join("gps");
        let (stop, shutdown) = watch::channel(false);
        // The receiver is not plugged in yet: the reader retries.
        let (gps, task) = spawn(
            port.display().to_string(),
            9600,
            Duration::from_secs(60),
            shutdown,
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Some(first) = Receiver::plug_in(&port, "ublox_cold_start.nmea").await else {
            eprintln!(
                "SKIPPED: socat is not installed (apt-get install socat); \
                 this test needs it for a pair of pseudo-terminals"
            );
            return;
        };
        let cold_last = cold_start_last();
        wait_until(&gps, "the cold start's last fix", |g| {
            g.receiver_has_fix()
                && g.tag().is_some()
                && g.counters().fixes.load(Ordering::Relaxed) == 12
        })
        .await;
        let (fix, age) = gps.last_fix().unwrap();
        assert_fix(&fix, &cold_last);
        let tag = gps.tag().unwrap();
        assert_eq!(
            (tag.lat, tag.lon, tag.quality),
            (fix.lat, fix.lon, fix.quality)
        );
        assert!(
            tag.age_ms >= u64::try_from(age.as_millis()).unwrap(),
            "{tag:?}"
        );
        assert!(tag.age_ms < 15_000, "{tag:?}");
        assert_eq!(gps.rejected_lines(), 0);

        // Unplugged: the port goes away, and comes back.
        drop(first);
        let _ = std::fs::remove_file(&port);
        let _second = Receiver::plug_in(&port, "ublox_damaged_then_lost.nmea")
            .await
            .unwrap();
        let last_valid = damaged_last_valid();
        wait_until(&gps, "the damaged session's end", |g| {
            g.rejected_lines() == 9
                && !g.receiver_has_fix()
                && g.last_fix().is_some_and(|(f, _)| f.at == last_valid.at)
        })
        .await;
        assert_fix(&gps.last_fix().unwrap().0, &last_valid);
        // The receiver has lost its fix: records are not tagged.
        assert_eq!(gps.tag(), None);
        let c = gps.counters();
        assert_eq!(c.checksum_errors.load(Ordering::Relaxed), 3);
        assert_eq!(c.fixes.load(Ordering::Relaxed), 12 + 10);
        let status = gps.status();
        assert_eq!(status["has_fix"], false);
        assert_eq!(status["tagging"], false);
        assert_eq!(status["checksum_errors"], 3);

        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the reader stops on shutdown")
            .unwrap();
    }
}

//! The district: who works where and when, what they do and what their
//! recorders film — planned in full before a single record is signed, from
//! one seeded random generator, so the same `--seed` and scale give the same
//! district (and the same record bodies) on every run.
//!
//! Shape (defaults: 2,000 officers, 2,500 recorders, 100 docks, 90 days):
//! - units: one per Chongqing district or county (`data/chongqing-districts.csv`),
//!   code = the district's 6-digit code + `000000`; the nine central districts
//!   get three times the officers of the others;
//! - officers: 6-digit numbers, each in one unit and one enforcement domain
//!   (`data/enforcement-domains.csv`), one shift a day (85% day shifts from
//!   07:30–09:30, 15% night shifts from 19:30–21:00 China Standard Time,
//!   8 h ± 30 min), each with a field device (the terminal that reports duty,
//!   actions and recording start/stop as they happen);
//! - recorders: one personal recorder per officer while recorders last (85%
//!   issued — checked out at the dock — on the first day, the rest during
//!   the period: recorders are still being deployed), the rest pooled as
//!   spares at the docks; on 5% of shifts the personal one is unavailable
//!   and the officer checks a spare out and in again after the shift, or
//!   goes without when the dock has none left;
//! - actions: `--actions` of them, each in a random shift, 3–60 min long
//!   (log-uniform); filmed whole in 80% of cases (recording from up to 1 min
//!   before to 1.5 min after), started late in 6% (15–50% in), stopped early
//!   in 4% (at 50–85%), not filmed in 10%; recorders cut files at 30 min;
//! - the remaining media records are clips of 1–20 min (log-uniform) spread
//!   over the shifts that had a recorder, placed where the recorder was free;
//! - recorders: 3% with a clock off by 2 min–3 h (2 in 3 of them measured by
//!   the dock and so corrected by the hub, the rest not), 40% with GPS;
//!   2% of media never arrive, and 2% of a spare's recordings carry no
//!   officer (its identity was not written at check-out);
//! - bytes arrive 2–30 min after docking, except on 3% of dock-days (a dock
//!   on a slow link: its records get through, its uploads wait) when they
//!   arrive 1–4 days later — late uploads;
//! - records go to the hub day by day: a field device's as they happen, a
//!   recorder's when it is docked after the shift; then the bytes of the
//!   day's recordings arrive (all but the 2%).

use std::collections::BTreeMap;

/// Milliseconds in a minute, an hour and a day.
pub const MINUTE: i64 = 60_000;
/// Milliseconds in an hour.
pub const HOUR: i64 = 60 * MINUTE;
/// Milliseconds in a day.
pub const DAY: i64 = 24 * HOUR;
/// China Standard Time is UTC+8.
pub const CST: i64 = 8 * HOUR;
/// Longest file a recorder writes before it starts the next.
const FILE_MS: i64 = 30 * MINUTE;
/// Bytes a recorder writes per second of video (≈ 3.2 Mbit/s).
const BYTES_PER_S: u64 = 400_000;

const DISTRICTS: &str = include_str!("../../../../data/chongqing-districts.csv");
const DOMAINS: &str = include_str!("../../../../data/enforcement-domains.csv");
/// Central districts: more officers, close together.
const CENTRAL: [&str; 9] = [
    "500103", "500104", "500105", "500106", "500107", "500108", "500109", "500112", "500113",
];
/// Weights of the domains (市场监管, 生态环境, 文化市场, 交通运输, 农业农村,
/// 城市管理, 应急管理, 自然资源, 卫生健康, 水利): market and urban management busiest.
const DOMAIN_WEIGHTS: [u32; 10] = [20, 8, 6, 15, 8, 20, 8, 6, 6, 3];
const SURNAMES: &str = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤";
const GIVEN: &str = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏建文辉力斌宇浩凯晨瑶婷雪琳欣怡涵博鑫俊峰波";

/// How big a district to plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    /// Officers.
    pub officers: usize,
    /// Recorders (personal first, the rest spares).
    pub recorders: usize,
    /// Docks (at least one per unit with officers).
    pub docks: usize,
    /// Days, ending with yesterday (China Standard Time).
    pub days: usize,
    /// Media records wanted in all (at least those that film the actions).
    pub media: usize,
    /// Enforcement actions.
    pub actions: usize,
    /// Seed of everything random.
    pub seed: u64,
}

/// An enforcement unit (执法主体).
#[derive(Debug, Clone)]
pub struct Unit {
    /// 12-character unit number: district code + `000000`.
    pub code: String,
    /// Name, e.g. 渝中区综合行政执法局.
    pub name: String,
    /// District name without 区/县, for case numbers.
    pub short: String,
    /// Where its officers work: latitude, longitude.
    pub center: (f64, f64),
}

/// An enforcement domain (执法领域).
#[derive(Debug, Clone)]
pub struct Domain {
    /// Two-digit code.
    pub code: String,
    /// Two characters for case numbers, e.g. 市监.
    pub abbrev: String,
}

/// An officer.
#[derive(Debug, Clone)]
pub struct Officer {
    /// 6-digit officer number.
    pub id: String,
    /// Name.
    pub name: String,
    /// Index into [`District::units`].
    pub unit: usize,
    /// Index into [`District::domains`].
    pub domain: usize,
    /// Index into [`District::docks`]: where the officer's recorders dock.
    pub dock: usize,
    /// The field device's id (its own agent).
    pub field_device: String,
    /// Index of the personal recorder, if there are enough recorders.
    pub personal: Option<usize>,
    /// The day the personal recorder is issued (checked out).
    pub issued_day: usize,
    /// Night shifts instead of day shifts.
    pub nights: bool,
}

/// A dock (采集站): signs for the recorders docked in it.
#[derive(Debug, Clone)]
pub struct Dock {
    /// Agent id.
    pub id: String,
    /// Index into [`District::units`].
    pub unit: usize,
}

/// A recorder (执法记录仪).
#[derive(Debug, Clone)]
pub struct Recorder {
    /// Device id, e.g. ZFY00001.
    pub id: String,
    /// Index into [`District::docks`]: its home dock.
    pub dock: usize,
    /// Its clock minus real time, milliseconds.
    pub offset_ms: i64,
    /// Whether the dock measures that offset (and so the records carry it).
    pub offset_measured: bool,
    /// Whether it geotags its recordings.
    pub gps: bool,
}

impl Recorder {
    /// The offset its records carry.
    pub fn reported_offset_ms(&self) -> i64 {
        if self.offset_measured {
            self.offset_ms
        } else {
            0
        }
    }
}

/// One officer's shift on one day.
#[derive(Debug, Clone)]
pub struct Shift {
    /// Index into [`District::officers`].
    pub officer: usize,
    /// On duty from, milliseconds since the epoch.
    pub start: i64,
    /// Until.
    pub end: i64,
    /// The recorder carried, if any.
    pub recorder: Option<usize>,
    /// When it was checked out at the dock, for a spare or a personal
    /// recorder being issued.
    pub check_out: Option<i64>,
    /// Whether it is a spare, checked in again after docking.
    pub spare: bool,
    /// When the recorder was docked after the shift and its files taken off.
    pub docked: i64,
    /// When the bytes of its recordings arrive at the hub (those that do).
    pub uploaded: i64,
    /// Indexes into [`District::actions`], by start.
    pub actions: Vec<usize>,
    /// Indexes into [`District::recordings`], by start.
    pub recordings: Vec<usize>,
}

/// An enforcement action.
#[derive(Debug, Clone)]
pub struct Action {
    /// Sequential number (the action id is derived from it).
    pub number: usize,
    /// Start, milliseconds since the epoch (real time).
    pub start: i64,
    /// End.
    pub end: i64,
    /// Index into [`District::domains`].
    pub domain: usize,
    /// Case number, when a case was opened.
    pub case_number: Option<String>,
    /// Where: latitude, longitude.
    pub place: (f64, f64),
    /// The recording the officer made of it (start, stop), if any.
    pub filmed: Option<(i64, i64)>,
}

/// One recording file (one media record).
#[derive(Debug, Clone)]
pub struct Recording {
    /// Start, milliseconds since the epoch (real time).
    pub start: i64,
    /// End (real time).
    pub end: i64,
    /// SHA-256 of the (imagined) file.
    pub sha256: [u8; 32],
    /// Its size.
    pub size: u64,
    /// Whether its bytes ever reach the hub.
    pub arrives: bool,
    /// Whether the record names the officer (false: the recorder's identity was empty).
    pub linked: bool,
    /// Where, when the recorder has GPS.
    pub place: Option<(f64, f64)>,
    /// The recorder's file index.
    pub file_index: u64,
}

/// The whole plan.
pub struct District {
    /// Units in use (those with officers).
    pub units: Vec<Unit>,
    /// Enforcement domains.
    pub domains: Vec<Domain>,
    /// Officers.
    pub officers: Vec<Officer>,
    /// Docks.
    pub docks: Vec<Dock>,
    /// Recorders.
    pub recorders: Vec<Recorder>,
    /// Every shift, day after day.
    pub shifts: Vec<Shift>,
    /// Shifts of day `d`: `shifts[days[d].0..days[d].1]`.
    pub days: Vec<(usize, usize)>,
    /// Every action.
    pub actions: Vec<Action>,
    /// Every recording.
    pub recordings: Vec<Recording>,
    /// Midnight (CST) that starts day 0, milliseconds since the epoch.
    pub start_ms: i64,
    /// Midnight (CST) after the last day.
    pub end_ms: i64,
}

/// A uniform float in `[lo, hi)`.
fn uniform(rng: &mut fastrand::Rng, lo: f64, hi: f64) -> f64 {
    lo + rng.f64() * (hi - lo)
}

/// Log-uniform milliseconds between `lo` and `hi`.
fn log_uniform(rng: &mut fastrand::Rng, lo: i64, hi: i64) -> i64 {
    let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
    uniform(rng, l, h).exp() as i64
}

/// Index drawn with the given weights.
fn weighted(rng: &mut fastrand::Rng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    let mut pick = rng.u32(0..total.max(1));
    for (i, w) in weights.iter().enumerate() {
        if pick < *w {
            return i;
        }
        pick -= w;
    }
    weights.len().saturating_sub(1)
}

/// A point within `radius` degrees of `c`.
fn near(rng: &mut fastrand::Rng, c: (f64, f64), radius: f64) -> (f64, f64) {
    (
        c.0 + uniform(rng, -radius, radius),
        c.1 + uniform(rng, -radius, radius) * 1.15,
    )
}

/// Rows of a CSV file without its header: plain fields, no quoting in these files.
fn rows(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(str::trim).collect())
}

fn reference_units(rng: &mut fastrand::Rng) -> Vec<(Unit, u32)> {
    rows(DISTRICTS)
        .filter(|r| r.len() >= 2)
        .map(|r| {
            let (code, name) = (r[0], r[1]);
            let central = CENTRAL.contains(&code);
            let center = if central {
                (uniform(rng, 29.45, 29.75), uniform(rng, 106.35, 106.75))
            } else {
                (uniform(rng, 28.7, 31.3), uniform(rng, 105.7, 109.4))
            };
            let short: String = {
                let chars: Vec<char> = name.chars().collect();
                chars[..chars.len().min(2)].iter().collect()
            };
            let unit = Unit {
                code: format!("{code}000000"),
                name: format!("{name}综合行政执法局"),
                short,
                center,
            };
            (unit, if central { 3 } else { 1 })
        })
        .collect()
}

fn reference_domains() -> Vec<Domain> {
    rows(DOMAINS)
        .filter(|r| r.len() >= 2)
        .map(|r| {
            let chars: Vec<char> = r[1].chars().collect();
            let abbrev = match chars.as_slice() {
                [a, _, c, ..] => format!("{a}{c}"),
                other => other.iter().collect(),
            };
            Domain {
                code: r[0].to_owned(),
                abbrev,
            }
        })
        .collect()
}

impl District {
    /// Plans the district for the days ending before `now_ms`.
    pub fn plan(scale: &Scale, now_ms: i64) -> anyhow::Result<District> {
        anyhow::ensure!(
            scale.officers > 0 && scale.officers <= 899_999,
            "--officers {}: expected 1 to 899999 (6-digit officer numbers)",
            scale.officers
        );
        anyhow::ensure!(
            scale.recorders <= 99_999,
            "--recorders {}: expected at most 99999 (ZFY00001..ZFY99999)",
            scale.recorders
        );
        anyhow::ensure!(scale.days > 0, "--days 0: expected at least one day");
        let mut rng = fastrand::Rng::with_seed(scale.seed);
        let start_ms = (now_ms + CST).div_euclid(DAY) * DAY - CST - scale.days as i64 * DAY;
        let end_ms = start_ms + scale.days as i64 * DAY;

        // Units: as many as make about 25 officers each, central districts first.
        let mut reference = reference_units(&mut rng);
        anyhow::ensure!(
            !reference.is_empty(),
            "data/chongqing-districts.csv holds no districts"
        );
        reference.sort_by_key(|(_, w)| std::cmp::Reverse(*w));
        reference.truncate((scale.officers / 25).clamp(1, reference.len()));
        let weights: Vec<u32> = reference.iter().map(|(_, w)| *w).collect();
        let units: Vec<Unit> = reference.into_iter().map(|(u, _)| u).collect();
        let domains = reference_domains();
        anyhow::ensure!(
            domains.len() == DOMAIN_WEIGHTS.len(),
            "data/enforcement-domains.csv holds {} domains: expected {}",
            domains.len(),
            DOMAIN_WEIGHTS.len()
        );

        // Officers by unit; docks in proportion to them, at least one per unit.
        let surnames: Vec<char> = SURNAMES.chars().collect();
        let given: Vec<char> = GIVEN.chars().collect();
        let mut officer_units: Vec<usize> = (0..scale.officers)
            .map(|i| {
                if i < units.len() {
                    i // every unit has someone
                } else {
                    weighted(&mut rng, &weights)
                }
            })
            .collect();
        officer_units.sort_unstable();
        let mut per_unit = vec![0usize; units.len()];
        for &u in &officer_units {
            per_unit[u] += 1;
        }
        let dock_count = scale.docks.max(units.len());
        let mut docks_per_unit = vec![1usize; units.len()];
        for _ in units.len()..dock_count {
            // The unit with the most officers per dock gets the next dock.
            let busiest = (0..units.len())
                .max_by(|&a, &b| {
                    (per_unit[a] * docks_per_unit[b]).cmp(&(per_unit[b] * docks_per_unit[a]))
                })
                .unwrap_or(0);
            docks_per_unit[busiest] += 1;
        }
        let mut docks = Vec::with_capacity(dock_count);
        let mut unit_docks: Vec<Vec<usize>> = vec![Vec::new(); units.len()];
        for (u, &n) in docks_per_unit.iter().enumerate() {
            for k in 0..n {
                unit_docks[u].push(docks.len());
                docks.push(Dock {
                    id: format!("CJZ-{}-{:02}", &units[u].code[..6], k + 1),
                    unit: u,
                });
            }
        }
        let mut seen_in_unit = vec![0usize; units.len()];
        let personal = scale.officers.min(scale.recorders);
        let officers: Vec<Officer> = officer_units
            .iter()
            .enumerate()
            .map(|(i, &unit)| {
                let id = format!("{}", 100_001 + i);
                let dock = unit_docks[unit][seen_in_unit[unit] % unit_docks[unit].len()];
                seen_in_unit[unit] += 1;
                let mut name = String::new();
                name.push(surnames[rng.usize(0..surnames.len())]);
                for _ in 0..rng.usize(1..=2) {
                    name.push(given[rng.usize(0..given.len())]);
                }
                let issued_day = if rng.f64() < 0.85 {
                    0
                } else {
                    rng.usize(0..scale.days)
                };
                Officer {
                    field_device: format!("ZD-{id}"),
                    id,
                    name,
                    unit,
                    domain: weighted(&mut rng, &DOMAIN_WEIGHTS),
                    dock,
                    personal: (i < personal).then_some(i),
                    issued_day,
                    nights: rng.f64() < 0.15,
                }
            })
            .collect();

        // Recorders: personal ones dock where their officer does; spares
        // go to docks in proportion to the officers who use them.
        let mut officers_at_dock = vec![0u32; docks.len()];
        for o in &officers {
            officers_at_dock[o.dock] += 1;
        }
        let mut spares: Vec<Vec<usize>> = vec![Vec::new(); docks.len()];
        let recorders: Vec<Recorder> = (0..scale.recorders)
            .map(|r| {
                let dock = if r < personal {
                    officers[r].dock
                } else {
                    let d = weighted(&mut rng, &officers_at_dock);
                    spares[d].push(r);
                    d
                };
                let off = rng.f64() < 0.03;
                let offset_ms = if off {
                    let m = log_uniform(&mut rng, 2 * MINUTE, 3 * HOUR);
                    if rng.bool() {
                        m
                    } else {
                        -m
                    }
                } else {
                    0
                };
                Recorder {
                    id: format!("ZFY{:05}", r + 1),
                    dock,
                    offset_ms,
                    offset_measured: !off || rng.f64() < 2.0 / 3.0,
                    gps: rng.f64() < 0.4,
                }
            })
            .collect();

        // Shifts, day by day, with the recorder each officer carries.
        let mut shifts = Vec::with_capacity(scale.days * scale.officers);
        let mut days = Vec::with_capacity(scale.days);
        for day in 0..scale.days {
            let first = shifts.len();
            let midnight = start_ms + day as i64 * DAY;
            let mut free: Vec<Vec<usize>> = spares.clone();
            let slow_link: Vec<i64> = (0..docks.len())
                .map(|_| {
                    if rng.f64() < 0.03 {
                        rng.i64(DAY..=4 * DAY)
                    } else {
                        0
                    }
                })
                .collect();
            for (o, officer) in officers.iter().enumerate() {
                let hour = if officer.nights {
                    uniform(&mut rng, 19.5, 21.0)
                } else {
                    uniform(&mut rng, 7.5, 9.5)
                };
                let start = midnight + (hour * HOUR as f64) as i64;
                let end = start + 8 * HOUR + rng.i64(-30 * MINUTE..=30 * MINUTE);
                let docked = end + rng.i64(5 * MINUTE..=40 * MINUTE);
                let uploaded = docked + rng.i64(2 * MINUTE..=30 * MINUTE) + slow_link[officer.dock];
                // Draw every choice even for a shift left out, so the rest stays the same.
                let available = rng.f64() >= 0.05;
                if docked + HOUR > now_ms {
                    continue; // not over yet
                }
                let personal_ok = officer.personal.is_some() && day >= officer.issued_day;
                let (recorder, spare) = match officer.personal {
                    Some(p) if personal_ok && available => (Some(p), false),
                    _ => match free[officer.dock].pop() {
                        Some(s) => (Some(s), true),
                        None => (None, false),
                    },
                };
                let issuing = !spare && recorder.is_some() && day == officer.issued_day;
                let check_out =
                    (spare || issuing).then(|| start - rng.i64(5 * MINUTE..=20 * MINUTE));
                shifts.push(Shift {
                    officer: o,
                    start,
                    end,
                    recorder,
                    check_out,
                    spare,
                    docked,
                    uploaded,
                    actions: Vec::new(),
                    recordings: Vec::new(),
                });
            }
            days.push((first, shifts.len()));
        }
        anyhow::ensure!(
            !shifts.is_empty(),
            "no shift of {} days has ended yet",
            scale.days
        );

        // Actions in random shifts, and the recordings that film them.
        let mut actions = Vec::with_capacity(scale.actions);
        let mut spans: Vec<Vec<(i64, i64)>> = vec![Vec::new(); shifts.len()];
        for number in 0..scale.actions {
            let s = rng.usize(0..shifts.len());
            let shift = &mut shifts[s];
            let officer = &officers[shift.officer];
            let length = log_uniform(&mut rng, 3 * MINUTE, HOUR);
            let start = shift.start + rng.i64(0..=(shift.end - shift.start - length).max(0));
            let end = start + length;
            let domain = if rng.f64() < 0.9 {
                officer.domain
            } else {
                weighted(&mut rng, &DOMAIN_WEIGHTS)
            };
            let case_number = (rng.f64() < 0.6).then(|| {
                let unit = &units[officer.unit];
                format!(
                    "{}{}罚〔2026〕{}号",
                    unit.short,
                    domains[domain].abbrev,
                    number + 1
                )
            });
            let place = near(&mut rng, units[officer.unit].center, 0.03);
            let outcome = rng.f64();
            let filmed = if shift.recorder.is_none() || outcome >= 0.9 {
                None
            } else if outcome < 0.8 {
                Some((start - rng.i64(0..=MINUTE), end + rng.i64(0..=90_000)))
            } else if outcome < 0.86 {
                let late = (length as f64 * uniform(&mut rng, 0.15, 0.5)) as i64;
                Some((start + late, end + rng.i64(0..=MINUTE)))
            } else {
                let kept = (length as f64 * uniform(&mut rng, 0.5, 0.85)) as i64;
                Some((start - rng.i64(0..=30_000), start + kept))
            };
            if let Some((from, to)) = filmed {
                let mut t = from;
                while t < to {
                    let file_end = (t + FILE_MS).min(to);
                    spans[s].push((t, file_end));
                    t = file_end;
                }
            }
            shift.actions.push(actions.len());
            actions.push(Action {
                number,
                start,
                end,
                domain,
                case_number,
                place,
                filmed,
            });
        }

        // Clips for the rest, where the recorder was free.
        let with_recorder: Vec<usize> = (0..shifts.len())
            .filter(|&s| shifts[s].recorder.is_some())
            .collect();
        let filmed: usize = spans.iter().map(Vec::len).sum();
        if !with_recorder.is_empty() {
            for _ in filmed..scale.media {
                let s = with_recorder[rng.usize(0..with_recorder.len())];
                let (from, to) = (shifts[s].start, shifts[s].end);
                let length = log_uniform(&mut rng, MINUTE, 20 * MINUTE);
                let mut span = (0, 0);
                for _ in 0..3 {
                    let start = from + rng.i64(0..=(to - from - length).max(0));
                    span = (start, start + length);
                    if !spans[s].iter().any(|&(a, b)| a < span.1 && span.0 < b) {
                        break;
                    }
                }
                spans[s].push(span);
            }
        }

        // Files in recording order per recorder, each with its fate.
        let mut file_index = vec![0u64; recorders.len()];
        let mut recordings = Vec::with_capacity(filmed.max(scale.media));
        for (s, shift) in shifts.iter_mut().enumerate() {
            shift.actions.sort_by_key(|&a| actions[a].start);
            let Some(r) = shift.recorder else {
                continue;
            };
            let recorder = &recorders[r];
            let center = units[officers[shift.officer].unit].center;
            let mut own = std::mem::take(&mut spans[s]);
            own.sort_unstable();
            for (start, end) in own {
                file_index[r] += 1;
                let mut sha256 = [0u8; 32];
                rng.fill(&mut sha256);
                let at_action = shift
                    .actions
                    .iter()
                    .map(|&a| &actions[a])
                    .find(|a| a.start < end && start < a.end)
                    .map(|a| a.place);
                let place = match at_action {
                    Some(p) => near(&mut rng, p, 0.0005),
                    None => near(&mut rng, center, 0.03),
                };
                let arrives = rng.f64() >= 0.02;
                let linked = !shift.spare || rng.f64() >= 0.02;
                shift.recordings.push(recordings.len());
                recordings.push(Recording {
                    start,
                    end,
                    sha256,
                    size: (end - start).max(1000) as u64 / 1000 * BYTES_PER_S,
                    arrives,
                    linked,
                    place: recorder.gps.then_some(place),
                    file_index: file_index[r],
                });
            }
        }
        Ok(District {
            units,
            domains,
            officers,
            docks,
            recorders,
            shifts,
            days,
            actions,
            recordings,
            start_ms,
            end_ms,
        })
    }

    /// Actions that start in `[from, to)`.
    pub fn actions_between(&self, from: i64, to: i64) -> usize {
        self.actions
            .iter()
            .filter(|a| a.start >= from && a.start < to)
            .count()
    }

    /// The unit with the most officers.
    pub fn busiest_unit(&self) -> &Unit {
        let mut count: BTreeMap<usize, usize> = BTreeMap::new();
        for o in &self.officers {
            *count.entry(o.unit).or_default() += 1;
        }
        let best = count
            .iter()
            .max_by_key(|&(u, n)| (*n, std::cmp::Reverse(*u)))
            .map_or(0, |(u, _)| *u);
        &self.units[best]
    }

    /// Shifts without a recorder.
    pub fn shifts_without_recorder(&self) -> usize {
        self.shifts.iter().filter(|s| s.recorder.is_none()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> Scale {
        Scale {
            officers: 60,
            recorders: 70,
            docks: 4,
            days: 5,
            media: 1500,
            actions: 150,
            seed,
        }
    }

    #[test]
    fn the_same_seed_plans_the_same_district_and_the_counts_are_what_was_asked() {
        let now = 1_795_000_000_000;
        let a = District::plan(&small(7), now).unwrap();
        let b = District::plan(&small(7), now).unwrap();
        assert_eq!(a.recordings.len(), b.recordings.len());
        assert!(a
            .recordings
            .iter()
            .zip(&b.recordings)
            .all(|(x, y)| x.sha256 == y.sha256 && x.start == y.start));
        assert_eq!(a.actions.len(), 150);
        assert_eq!(a.recordings.len(), 1500);
        assert!(a.shifts.iter().all(|s| s.end + HOUR < now));
        assert_eq!(a.end_ms - a.start_ms, 5 * DAY);
        let c = District::plan(&small(8), now).unwrap();
        assert_ne!(a.recordings[0].sha256, c.recordings[0].sha256);
    }
}

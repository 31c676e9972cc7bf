//! The demo's docking station (采集站): one dock agent of a Chongqing unit
//! with a slot per simulated recorder. Each recorder (evsync-recorder-sim)
//! is assigned to an officer of the unit, holds a shift of real MP4s made
//! by ffmpeg and serves the recorder serial protocol on a pseudo-terminal
//! behind a link in the demo's data folder; the last one's clock runs two
//! hours fast, so the dock corrects it and the hub raises `clock_drift`.
//!
//! Every run is a new shift: a recorder left by an earlier run with the same
//! `--data` keeps its identity and file numbering and records new files
//! after its last index (the dock remembers which indexes it took), and the
//! drifting recorder's clock is set off again.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use chrono::Duration as ChronoDuration;
use evsync_agent::agent::Agent;
use evsync_agent::config::{AgentConfig, SlotSection};
use evsync_protocol::signing::PublicKey;
use evsync_recorder_protocol::message::ZfyInfo;
use evsync_recorder_sim::device::Device;
use evsync_recorder_sim::faults::Faults;
use evsync_recorder_sim::generate::{self, Plan};
use evsync_recorder_sim::serve::{Background, Options};
use evsync_recorder_sim::storage::{Storage, ZfyInfoRecord};

use super::DemoUnit;

/// Most recorders the demo dock takes (its serials have four digits, its
/// officers numbers of one series).
pub const MAX_RECORDERS: usize = 16;

/// How far the drifting recorder's clock runs ahead, seconds.
pub const DRIFT_SECS: i64 = 2 * 3600;

/// Officers of the dock's unit the recorders are assigned to (姓名).
pub const OFFICERS: &[&str] = &[
    "张伟", "李娜", "王磊", "刘洋", "陈静", "杨帆", "赵敏", "黄强", "周杰", "吴婷", "徐斌", "孙丽",
    "马骏", "朱琳", "胡军", "郭蕾",
];

/// One simulated recorder of the demo dock, as assigned by the operator.
#[derive(Debug, Clone)]
pub struct DemoRecorder {
    /// Identity and assignment written into the recorder (GA/T 947 `ZFY_INFO`).
    pub zfy: ZfyInfoRecord,
    /// Recorder clock minus true time at docking, seconds.
    pub clock_offset_secs: i64,
}

/// The `count` recorders of a dock of `unit`: serials `ZFY0001`…, officers
/// `200001`… with Chinese names, the unit's number and name; the last one's
/// clock [`DRIFT_SECS`] fast.
pub fn demo_recorders(unit: &DemoUnit, count: usize) -> Vec<DemoRecorder> {
    (0..count)
        .map(|k| DemoRecorder {
            zfy: ZfyInfoRecord {
                serial: format!("ZFY{:04}", k + 1),
                officer_no: format!("{:06}", 200_001 + k),
                unit_no: unit.code.clone(),
                officer_name: OFFICERS[k % OFFICERS.len()].to_owned(),
                unit_name: unit.name.clone(),
            },
            clock_offset_secs: if k + 1 == count { DRIFT_SECS } else { 0 },
        })
        .collect()
}

/// Prepares recorder `r` in `dir` for this run: creates it if new, writes
/// its assignment and clock offset, records `recordings` new MP4s (1–2 s,
/// 160×120) ending `ended_ago` before now by its clock. Returns the SHA-256
/// of every file it now holds (earlier runs' leftovers included).
fn prepare_recorder(
    dir: &Path,
    r: &DemoRecorder,
    recordings: u32,
    ended_ago: ChronoDuration,
) -> anyhow::Result<Vec<String>> {
    ZfyInfo::from(&r.zfy)
        .validate()
        .map_err(|e| anyhow::anyhow!("demo recorder {}: {e}", r.zfy.serial))?;
    let mut storage = Storage::open(dir, &r.zfy.serial)?;
    anyhow::ensure!(
        storage.manifest.zfy.serial == r.zfy.serial,
        "{} holds recorder {}, not {}",
        dir.display(),
        storage.manifest.zfy.serial,
        r.zfy.serial
    );
    storage.manifest.zfy = r.zfy.clone();
    storage.manifest.clock_offset_ms = r.clock_offset_secs.saturating_mul(1000);
    storage.save()?;
    let device = Device::new(storage, Faults::default(), 512);
    let clock_now = device.clock() - ended_ago;
    let mut storage = device.storage;
    let plan = Plan {
        count: recordings,
        seconds: 1,
        size: "160x120".into(),
        hostile_names: false,
        important_every: 0,
    };
    generate::fill(&mut storage, &plan, clock_now)
        .with_context(|| format!("recording demo MP4s onto {}", r.zfy.serial))?;
    let indexes: Vec<u32> = storage.manifest.files.iter().map(|f| f.index).collect();
    indexes
        .into_iter()
        .map(|i| Ok(hex::encode(storage.digest(i)?.0)))
        .collect()
}

/// The demo's dock: its agent and the recorders docked in its slots.
pub struct DemoDock {
    /// The dock agent's device id.
    pub device_id: String,
    agent: Agent,
    recorders: Vec<(String, PathBuf, Background)>,
    expected: HashSet<String>,
}

/// What the dock has left to do before the demo is ready.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DockProgress {
    /// Recordings on the recorders that the hub does not yet hold stored and verified.
    pub not_stored: usize,
    /// Files still on the recorders.
    pub on_recorders: usize,
    /// Records in the dock's buffer without a receipt.
    pub backlog: u64,
    /// Recordings the dock still has to upload.
    pub uploads: u64,
}

impl DockProgress {
    /// Every recording stored verified at the hub, every record receipted,
    /// every recorder emptied.
    pub fn done(&self) -> bool {
        *self == Self::default()
    }
}

/// Where the dock and its recorders live under the demo's data folder `root`.
#[derive(Debug, Clone)]
pub struct DockPaths {
    /// The dock agent's folder (key, buffer, copies).
    pub agent: PathBuf,
    /// Recorder storage folders, one per serial.
    pub recorders: PathBuf,
    /// Slot port links (`slot1`, …), symlinks to the recorders' pseudo-terminals.
    pub slots: PathBuf,
}

impl DockPaths {
    /// The layout for dock `device_id` under `root`.
    pub fn new(root: &Path, device_id: &str) -> Self {
        Self {
            agent: root.join("agents").join(device_id),
            recorders: root.join("recorders"),
            slots: root.join("slots"),
        }
    }
}

impl DemoDock {
    /// Prepares the recorders (ffmpeg runs here), serves each on a
    /// pseudo-terminal and starts the dock agent of `unit` with one slot each.
    pub async fn start(
        root: &Path,
        unit: &DemoUnit,
        recorders: usize,
        recordings: u32,
        mqtt_url: &str,
        hub_key: &PublicKey,
    ) -> anyhow::Result<Self> {
        let device_id = format!("dock-{}-01", &unit.code[..6]);
        let paths = DockPaths::new(root, &device_id);
        std::fs::create_dir_all(&paths.slots)
            .with_context(|| format!("creating {}", paths.slots.display()))?;
        let plan = demo_recorders(unit, recorders);
        // ffmpeg for all recorders at once; each recorder's shift ended a little earlier.
        let mut jobs = tokio::task::JoinSet::new();
        for (k, r) in plan.iter().cloned().enumerate() {
            let dir = paths.recorders.join(&r.zfy.serial);
            let ago = ChronoDuration::minutes(3 * k as i64);
            jobs.spawn_blocking(move || prepare_recorder(&dir, &r, recordings, ago));
        }
        let mut expected = HashSet::new();
        while let Some(done) = jobs.join_next().await {
            expected.extend(done.context("preparing a demo recorder")??);
        }

        let mut served = Vec::new();
        let mut slots = Vec::new();
        for (k, r) in plan.iter().enumerate() {
            let storage = paths.recorders.join(&r.zfy.serial);
            let link = paths.slots.join(format!("slot{}", k + 1));
            // The first recorder also shows its USB mass storage: the fast path.
            let mount = (k == 0).then(|| paths.slots.join(format!("volume{}", k + 1)));
            let opts = Options {
                storage: storage.clone(),
                serial: r.zfy.serial.clone(),
                device: None,
                link: Some(link.clone()),
                mount: mount.clone(),
                max_chunk: 16 * 1024,
                faults: Faults::default(),
            };
            let line = Background::start(opts, Duration::from_secs(5))?;
            eprintln!(
                "demo: recorder {} of {} {} ({}) in {}{}",
                r.zfy.serial,
                r.zfy.officer_no,
                r.zfy.officer_name,
                r.zfy.unit_name,
                link.display(),
                if r.clock_offset_secs != 0 {
                    format!(", clock {} s off", r.clock_offset_secs)
                } else {
                    String::new()
                }
            );
            served.push((r.zfy.serial.clone(), storage, line));
            slots.push(SlotSection {
                port: link,
                baud: 115_200,
                mount,
            });
        }

        let mut cfg = AgentConfig::field(&device_id, &paths.agent, mqtt_url, hub_key);
        cfg.role = "dock".into();
        cfg.unit_code = Some(unit.code.clone());
        cfg.dock.slots = slots;
        cfg.dock.poll_ms = 100;
        eprintln!(
            "demo: dock {device_id} of {} ({}) with {} recorders",
            unit.name,
            unit.code,
            served.len()
        );
        let agent = Agent::start(cfg)
            .await
            .with_context(|| format!("starting the demo dock {device_id}"))?;
        Ok(Self {
            device_id,
            agent,
            recorders: served,
            expected,
        })
    }

    /// Recordings the dock is expected to deliver in this run.
    pub fn expected(&self) -> usize {
        self.expected.len()
    }

    /// Where the dock stands, as the hub and the recorders see it.
    pub async fn progress(&self, hub: &crate::server::Hub) -> anyhow::Result<DockProgress> {
        let stored: HashSet<String> = hub
            .stored_media(&self.device_id)
            .await?
            .into_iter()
            .collect();
        let mut on_recorders = 0;
        for (serial, storage, line) in &self.recorders {
            anyhow::ensure!(line.is_running(), "demo recorder {serial} stopped serving");
            on_recorders += Storage::peek(storage)?.files.len();
        }
        Ok(DockProgress {
            not_stored: self.expected.difference(&stored).count(),
            on_recorders,
            backlog: self.agent.backlog()?.records,
            uploads: self.agent.media_backlog()?.files,
        })
    }

    /// Stops the dock agent, then every recorder (threads joined, links removed).
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let stopped = self
            .agent
            .shutdown()
            .await
            .with_context(|| format!("stopping the dock {}", self.device_id));
        let recorders = tokio::task::spawn_blocking(move || {
            let mut first_err = None;
            for (serial, _, line) in self.recorders {
                if let Err(e) = line.stop() {
                    first_err.get_or_insert(e.context(format!("stopping recorder {serial}")));
                }
            }
            first_err.map_or(Ok(()), Err)
        })
        .await
        .context("stopping the demo recorders")?;
        stopped.and(recorders)
    }
}

//! Dock-ingest benchmark (run it through `bench/dock`).
//!
//! A simulated recorder (in this process, on a pseudo-terminal) holds
//! `--files` recordings of `--file-mib` MiB each of **random bytes** (not
//! MP4s: the size is what matters here; the agent's MP4 probe finds no
//! header and keeps them as evidence without container metadata). Its
//! mass-storage volume is a folder where, on `SetMSDC`, the recordings
//! appear as hard links to the recorder's own files. Per round, interleaved:
//!
//! (a) the baseline: a plain copy of the same files from the volume into a
//!     folder on the same disk, each file fsynced, then the folder —
//!     `std::fs::copy` (copy_file_range, as `cp` does) and, for reference, a
//!     read/write loop with 4 MiB buffers; the faster of the two counts;
//! (b) the agent in dock mode (in this process, no hub: its MQTT address is
//!     closed, so records simply stay in its buffer): docking, `SetMSDC`,
//!     copy from the volume while hashing, fsync, the recorder's
//!     `FileDigest` over serial, MP4 probe, signing and committing each
//!     `media` record — timed from the agent's start until every file's
//!     record is committed in its SQLite buffer;
//! (c) the serial path for reference: one `--serial-mib` file, no volume,
//!     `ReadFile` over the pty in 32 KiB chunks, until its record is committed.
//!
//! `sync` runs before each timed phase; each phase deletes what it wrote.
//! The recorder's files stay in the page cache for both (a) and (b).
//! Prints each round's rates, the medians, and ends with the headline
//! `ratio_vs_copy=`: median (b) over median (a).

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use evsync_agent::agent::Agent;
use evsync_agent::config::{AgentConfig, SlotSection};
use evsync_protocol::signing::SigningKey;
use evsync_recorder_sim::faults::Faults;
use evsync_recorder_sim::serve::{self, Ended, Options};
use evsync_recorder_sim::storage::Storage;

/// Options.
#[derive(Debug, Parser)]
struct Opts {
    /// Recordings on the recorder.
    #[arg(long, default_value_t = 8)]
    files: u32,
    /// Size of each, MiB.
    #[arg(long, default_value_t = 128)]
    file_mib: u64,
    /// Size of the file for the serial-path reference, MiB.
    #[arg(long, default_value_t = 16)]
    serial_mib: u64,
    /// Rounds of the phases, interleaved; the figures are the medians.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Folder to work in (default: a new one in the system's temporary folder).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seconds a phase may take before the benchmark gives up.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

const CHUNK: usize = 4 * 1024 * 1024;

fn mb_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

fn median(values: &[f64]) -> anyhow::Result<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    anyhow::ensure!(n > 0, "no figures");
    Ok(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn sync_disk() -> anyhow::Result<()> {
    let status = std::process::Command::new("sync")
        .status()
        .context("running sync")?;
    anyhow::ensure!(status.success(), "sync exited with {status}");
    Ok(())
}

/// A recorder in `dir` with `count` files of `mib` MiB of random bytes, synced to disk.
fn make_recorder(dir: &Path, serial: &str, count: u32, mib: u64) -> anyhow::Result<PathBuf> {
    let storage_dir = dir.join(serial);
    let mut storage = Storage::open(&storage_dir, serial)?;
    let src = dir.join("random.tmp");
    let mut rng = fastrand::Rng::new();
    let mut buf = vec![0u8; 1024 * 1024];
    let t0 = chrono::Utc::now().naive_utc() - chrono::Duration::hours(2);
    for i in 0..count {
        let mut out = File::create(&src)?;
        for _ in 0..mib {
            rng.fill(&mut buf);
            out.write_all(&buf)?;
        }
        out.sync_all()?;
        let t = t0 + chrono::Duration::minutes(5 * i64::from(i));
        let name = format!("{serial}_{}_{:04}.MP4", t.format("%Y%m%d%H%M%S"), i + 1);
        storage.add(&src, &name, t, false)?;
    }
    fs::remove_file(&src).ok();
    for f in &storage.manifest.files {
        File::open(storage.blob(f.index))?.sync_all()?;
    }
    Ok(storage_dir)
}

/// The simulated recorder, served in a thread.
struct Served {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<Ended>>>,
    link: PathBuf,
}

impl Served {
    fn start(storage: &Path, link: &Path, mount: Option<&Path>) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let opts = Options {
            storage: storage.to_owned(),
            serial: Storage::peek(storage)?.zfy.serial,
            device: None,
            link: Some(link.to_owned()),
            mount: mount.map(Path::to_owned),
            max_chunk: 32 * 1024,
            faults: Faults::default(),
        };
        let flag = stop.clone();
        let thread = std::thread::spawn(move || serve::run(&opts, &flag, |_| {}));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !link.exists() {
            anyhow::ensure!(Instant::now() < deadline, "the recorder did not come up");
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Self {
            stop,
            thread: Some(thread),
            link: link.to_owned(),
        })
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// (a): `srcs` into `dst`, each fsynced, then `dst`; by `std::fs::copy`
/// or a read/write loop; seconds.
fn plain_copy(srcs: &[PathBuf], dst: &Path, read_write: bool) -> anyhow::Result<f64> {
    fs::create_dir_all(dst)?;
    let t = Instant::now();
    let mut buf = vec![0u8; CHUNK];
    for (i, src) in srcs.iter().enumerate() {
        let to = dst.join(format!("{i}.bin"));
        if read_write {
            let mut from = File::open(src)?;
            let mut out = File::create(&to)?;
            loop {
                let n = from.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n])?;
            }
            out.sync_all()?;
        } else {
            fs::copy(src, &to).with_context(|| format!("copying {}", src.display()))?;
            File::open(&to)?.sync_all()?;
        }
    }
    File::open(dst)?.sync_all()?;
    let secs = t.elapsed().as_secs_f64();
    fs::remove_dir_all(dst)?;
    Ok(secs)
}

/// (b)/(c): an agent docks the recorder behind `link` (mounting `mount`)
/// until `files` media records are committed; seconds.
async fn agent_phase(
    dir: &Path,
    storage: &Path,
    mount: Option<&Path>,
    files: u64,
    timeout: Duration,
) -> anyhow::Result<f64> {
    let work = dir.join("agent");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    let hub_key = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8()?)?.public();
    // Nothing listens on port 9: records stay in the buffer.
    let mut cfg = AgentConfig::field("dock-bench", &work, "mqtt://127.0.0.1:9", &hub_key);
    cfg.role = "dock".into();
    cfg.dock.delete = "never".into();
    cfg.dock.poll_ms = 10;
    cfg.dock.request_timeout_ms = 10_000;
    let served = Served::start(storage, &dir.join("slot"), mount)?;
    cfg.dock.slots = vec![SlotSection {
        port: served.link.clone(),
        baud: 115_200,
        mount: mount.map(Path::to_owned),
    }];
    let db = cfg.data_dir.join("buffer.sqlite");
    sync_disk()?;
    let t = Instant::now();
    let agent = Agent::start(cfg).await?;
    let deadline = t + timeout;
    loop {
        if agent.media_backlog()?.files >= files {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the agent took too long");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let secs = t.elapsed().as_secs_f64();
    agent.shutdown().await?;
    drop(served);
    anyhow::ensure!(db.exists(), "no buffer at {}", db.display());
    fs::remove_dir_all(&work)?;
    Ok(secs)
}

/// Indexes the recorder served over serial, from its log; the log is then cleared.
fn read_over_serial(storage: &Path) -> anyhow::Result<usize> {
    let mut s = Storage::open(storage, "unused")?;
    let n = s
        .manifest
        .log
        .iter()
        .filter(|l| l.contains("over serial from 0"))
        .count();
    s.manifest.log.clear();
    s.save()?;
    Ok(n)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let opts = Opts::parse();
    let tmp;
    let dir = match &opts.dir {
        Some(d) => {
            fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("evsync-dock-bench")
                .tempdir()?;
            tmp.path().to_owned()
        }
    };
    let timeout = Duration::from_secs(opts.timeout_secs);
    let bulk = make_recorder(&dir.join("recorders"), "ZFY0101", opts.files, opts.file_mib)?;
    let small = make_recorder(&dir.join("recorders"), "ZFY0102", 1, opts.serial_mib)?;
    let srcs: Vec<PathBuf> = {
        let s = Storage::open(&bulk, "ZFY0101")?;
        s.manifest.files.iter().map(|f| s.blob(f.index)).collect()
    };
    let total = opts.file_mib * 1024 * 1024 * u64::from(opts.files);
    let serial_bytes = opts.serial_mib * 1024 * 1024;
    println!(
        "files={} file_mib={} content=random_bytes",
        opts.files, opts.file_mib
    );
    println!("rounds={}", opts.rounds);
    let mount = dir.join("volume");
    let (mut copy, mut dock, mut serial) = (Vec::new(), Vec::new(), Vec::new());
    read_over_serial(&bulk)?;
    for round in 1..=opts.rounds {
        sync_disk()?;
        let cp = mb_s(total, plain_copy(&srcs, &dir.join("copy"), false)?);
        sync_disk()?;
        let rw = mb_s(total, plain_copy(&srcs, &dir.join("copy"), true)?);
        let best = cp.max(rw);
        println!("round{round}_cp_mb_s={cp:.0} round{round}_read_write_mb_s={rw:.0}");
        copy.push(best);
        let secs = agent_phase(&dir, &bulk, Some(&mount), u64::from(opts.files), timeout).await?;
        let over_serial = read_over_serial(&bulk)?;
        anyhow::ensure!(
            over_serial == 0,
            "{over_serial} files went over serial in the mass-storage phase"
        );
        let rate = mb_s(total, secs);
        println!("round{round}_dock_mass_storage_mb_s={rate:.0}");
        dock.push(rate);
        let secs = agent_phase(&dir, &small, None, 1, timeout).await?;
        let rate = mb_s(serial_bytes, secs);
        println!("round{round}_dock_serial_mb_s={rate:.1}");
        serial.push(rate);
    }
    let (copy, dock, serial) = (median(&copy)?, median(&dock)?, median(&serial)?);
    println!("plain_copy_mb_s={copy:.0}");
    println!(
        "dock_serial_mb_s={serial:.1} serial_file_mib={}",
        opts.serial_mib
    );
    println!("dock_mass_storage_mb_s={dock:.0}");
    println!("fast_path_used=yes");
    println!("ratio_vs_copy={:.2}", dock / copy);
    Ok(())
}

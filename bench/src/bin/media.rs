//! Media-path benchmark (run it through `bench/media`).
//!
//! One file of random bytes travels three ways on loopback, one after the
//! other, each into a fsynced file on the same disk: (a) a raw TCP copy into a
//! file — the plain limit; (b) `rsync --whole-file --fsync`; (c) the evsync
//! media path: an agent process whose buffer already holds the recording
//! uploads it to a separate hub process, timed from the agent's start to the
//! hub's signed media receipt (hash-verified and durably stored).
//!
//! The disk is noisy, so the three phases run `--rounds` times, interleaved
//! (a, b, c, a, b, c, ...), each with fresh destinations and, for (c), a fresh
//! hub and a freshly pre-spooled agent; `sync` runs before each timed phase
//! and each phase deletes what it wrote. Prints each round's rates, then the
//! median rates, the agent's peak RSS (the largest over the rounds) and both
//! sides' median CPU use per GiB, and ends with the headline
//! `ratio_vs_tcp=`: median (c) over median (a).

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use evsync_agent::buffer::Buffer;
use evsync_agent::config::AgentConfig;
use evsync_agent::spool::Spool;
use evsync_protocol::signing::PublicKey;

/// Options.
#[derive(Debug, Parser)]
struct Opts {
    /// The hub binary to run.
    #[arg(long)]
    hub: PathBuf,
    /// The agent binary to run.
    #[arg(long)]
    agent: PathBuf,
    /// Size of the file, MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Rounds of the three phases, interleaved; the figures are the medians.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Seconds the evsync phase may take before the benchmark gives up.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

/// The log line the agent writes when the hub's signed media receipt arrives.
const RECEIPTED: &str = "recording receipted by the hub; local copy released";
/// Buffer size of the plain TCP copy.
const CHUNK: usize = 1024 * 1024;
/// Lines of a process's log shown when something goes wrong.
const TAIL: usize = 40;

fn mb_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

/// The median of `values` (the mean of the middle two for an even count);
/// `None` when there are none.
fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Runs the `sync` command, so that writeback left over from the previous
/// phase (its data, its deletions) does not compete with the next one.
fn sync_disk() -> anyhow::Result<()> {
    let status = Command::new("sync").status().context("running sync")?;
    anyhow::ensure!(status.success(), "sync exited with {status}");
    Ok(())
}

/// Writes `size` random bytes to `path` and fsyncs them, so that no writeback
/// of the source competes with the phases; the bytes stay in the page cache.
fn write_source(path: &Path, size: u64) -> anyhow::Result<()> {
    let mut out = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut rng = fastrand::Rng::new();
    let mut buf = vec![0u8; CHUNK];
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        rng.fill(&mut buf[..n]);
        out.write_all(&buf[..n])
            .with_context(|| format!("writing {}", path.display()))?;
        left -= n as u64;
    }
    out.sync_all()
        .with_context(|| format!("syncing {}", path.display()))
}

/// (a) The plain limit: `src` over a loopback TCP socket into `dst`, fsynced.
/// Seconds from connect to the end of the fsync.
fn tcp_copy(src: &Path, dst: &Path) -> anyhow::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback listener")?;
    let addr = listener.local_addr()?;
    let dst = dst.to_path_buf();
    let receiver = std::thread::spawn(move || -> anyhow::Result<u64> {
        let (mut conn, _) = listener.accept().context("accepting the copy")?;
        let mut out = File::create(&dst).with_context(|| format!("creating {}", dst.display()))?;
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            let n = conn.read(&mut buf).context("reading the socket")?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])
                .with_context(|| format!("writing {}", dst.display()))?;
            total += n as u64;
        }
        out.sync_all()
            .with_context(|| format!("syncing {}", dst.display()))?;
        Ok(total)
    });
    let mut input = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    let expected = input.metadata()?.len();
    let t = Instant::now();
    let mut conn = TcpStream::connect(addr).context("connecting to the listener")?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = input
            .read(&mut buf)
            .with_context(|| format!("reading {}", src.display()))?;
        if n == 0 {
            break;
        }
        conn.write_all(&buf[..n]).context("writing the socket")?;
    }
    drop(conn);
    let received = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("the TCP receiver thread panicked"))??;
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        received == expected,
        "TCP copy received {received} bytes: expected {expected}"
    );
    Ok(secs)
}

/// (b) `rsync --whole-file --fsync src dst`: seconds, or why there is no figure.
fn rsync_copy(src: &Path, dst: &Path) -> Result<f64, String> {
    let t = Instant::now();
    let out = Command::new("rsync")
        .args(["--whole-file", "--fsync"])
        .arg(src)
        .arg(dst)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    let secs = t.elapsed().as_secs_f64();
    match out {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("absent".into()),
        Err(e) => {
            eprintln!("media-bench: running rsync: {e}");
            Err("failed".into())
        }
        Ok(o) if !o.status.success() => {
            eprintln!(
                "media-bench: rsync {}: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            );
            Err("failed".into())
        }
        Ok(_) => Ok(secs),
    }
}

/// utime + stime of a process, seconds (fields 14 and 15 of `/proc/<pid>/stat`).
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("odd /proc stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short /proc stat")?.parse::<f64>()?)
    };
    Ok((field(11)? + field(12)?) / 100.0)
}

/// A `VmHWM`-style line of `/proc/<pid>/status`, MiB.
fn status_mib(pid: u32, key: &str) -> anyhow::Result<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .with_context(|| format!("no {key} in /proc/{pid}/status"))?;
    let kib: f64 = line
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("{key} = {line:?}: expected a size in kB"))?;
    Ok(kib / 1024.0)
}

/// A child process, stopped with SIGTERM (then SIGKILL) when dropped.
struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    /// Sends SIGTERM and waits up to 20 s for the exit, then kills it.
    fn stop(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .with_context(|| format!("sending SIGTERM to the {}", self.name))?;
        let t = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    eprintln!("media-bench: the {} exited with {status}", self.name);
                }
                return Ok(());
            }
            if t.elapsed() > Duration::from_secs(20) {
                eprintln!(
                    "media-bench: the {} did not stop within 20 s of SIGTERM; killed",
                    self.name
                );
                self.child.kill()?;
                self.child.wait()?;
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The last `n` lines of a log file, for error messages.
fn tail_of_file(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Reads the agent's stderr line by line, stamping each line with when it was
/// read. Keeps reading after the receiver is gone so the agent never blocks on a full pipe.
fn read_lines(stderr: ChildStderr) -> mpsc::Receiver<(Instant, String)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send((Instant::now(), line));
        }
    });
    rx
}

/// Starts the hub and waits until it has written its key and answers `/healthz`.
fn start_hub(opts: &Opts, dir: &Path) -> anyhow::Result<(Proc, PathBuf, u16)> {
    let (http, mqtt) = (free_port()?, free_port()?);
    let hub_dir = dir.join("hub");
    let config = dir.join("hub.toml");
    fs::write(
        &config,
        format!(
            "hub_id = \"bench-hub\"\ndata_dir = {hub_dir:?}\nauto_approve = true\n[mqtt]\nlisten = \"127.0.0.1:{mqtt}\"\n[http]\nlisten = \"127.0.0.1:{http}\"\ntoken = \"bench-token-0123456789\"\n"
        ),
    )
    .context("writing hub.toml")?;
    let log = File::create(dir.join("hub.log")).context("creating hub.log")?;
    let mut hub = Proc {
        name: "hub",
        child: Command::new(&opts.hub)
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info,rumqttd=off")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting the hub {}", opts.hub.display()))?,
    };
    let healthz = format!("http://127.0.0.1:{http}/healthz");
    let t = Instant::now();
    loop {
        if hub_dir.join("hub.pub").exists() && ureq::get(&healthz).call().is_ok() {
            return Ok((hub, hub_dir, mqtt));
        }
        if let Some(status) = hub.child.try_wait()? {
            anyhow::bail!(
                "the hub exited with {status} while starting; its log:\n{}",
                tail_of_file(&dir.join("hub.log"), TAIL)
            );
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(20),
            "the hub did not answer {healthz} within 20 s; its log:\n{}",
            tail_of_file(&dir.join("hub.log"), TAIL)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Records `src` through the agent library's own spool, so the agent process
/// only has to upload. Returns the configuration and the recording's SHA-256.
fn prespool(
    dir: &Path,
    src: &Path,
    mqtt: u16,
    hub_key: &PublicKey,
) -> anyhow::Result<(AgentConfig, String)> {
    let mut cfg = AgentConfig::field(
        "bench-media",
        &dir.join("agent"),
        &format!("mqtt://127.0.0.1:{mqtt}"),
        hub_key,
    );
    cfg.spool.settle_ms = 10;
    cfg.validate()?;
    fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    fs::create_dir_all(&cfg.spool_dir)
        .with_context(|| format!("creating {}", cfg.spool_dir.display()))?;
    let linked = cfg.spool_dir.join("bench.bin");
    fs::hard_link(src, &linked)
        .with_context(|| format!("linking {} to {}", src.display(), linked.display()))?;
    let key = Arc::new(evsync_agent::agent::device_key(&cfg)?);
    let buffer = Arc::new(Mutex::new(Buffer::open(
        &cfg.data_dir.join("buffer.sqlite"),
    )?));
    let mut spool = Spool::new(cfg.clone(), key, buffer)?;
    let t = Instant::now();
    while spool.scan()? == 0 {
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(120),
            "the spool did not take {} within 120 s",
            linked.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The held copy is named by its SHA-256.
    let media_dir = cfg.data_dir.join("media");
    let mut held = Vec::new();
    for entry in fs::read_dir(&media_dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            held.push(name);
        }
    }
    anyhow::ensure!(
        held.len() == 1,
        "{} holds {held:?}: expected one recording",
        media_dir.display()
    );
    let sha = held.remove(0);
    Ok((cfg, sha))
}

/// Figures of the evsync phase.
struct Evsync {
    secs: f64,
    agent_peak_rss_mib: f64,
    agent_cpu_s: f64,
    hub_cpu_s: f64,
}

/// (c) The evsync media path, from the agent process's start to the hub's receipt.
fn evsync(opts: &Opts, dir: &Path, src: &Path, size: u64) -> anyhow::Result<Evsync> {
    let (mut hub, hub_dir, mqtt) = start_hub(opts, dir)?;
    let hub_pub = fs::read_to_string(hub_dir.join("hub.pub")).context("reading hub.pub")?;
    let hub_key =
        PublicKey::from_base64(hub_pub.trim()).map_err(|e| anyhow::anyhow!("hub.pub: {e}"))?;
    // The spool takes its own fsynced copy; the source stays for later rounds.
    let (cfg, sha) = prespool(dir, src, mqtt, &hub_key)?;
    let config = dir.join("agent.toml");
    fs::write(
        &config,
        toml::to_string(&cfg).context("writing agent.toml")?,
    )
    .context("writing agent.toml")?;

    let hub_log = dir.join("hub.log");
    sync_disk()?;
    let hub_cpu0 = cpu_seconds(hub.child.id())?;
    let t0 = Instant::now();
    let mut agent = Proc {
        name: "agent",
        child: Command::new(&opts.agent)
            .args(["--log-json", "run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting the agent {}", opts.agent.display()))?,
    };
    let lines = read_lines(agent.child.stderr.take().context("the agent's stderr")?);
    let mut tail: Vec<String> = Vec::new();
    let failure = |what: String, tail: &[String]| {
        anyhow::anyhow!(
            "{what}\n--- agent stderr (last {TAIL} lines) ---\n{}\n--- hub log (last {TAIL} lines) ---\n{}",
            tail.join("\n"),
            tail_of_file(&hub_log, TAIL)
        )
    };
    let (receipted_at, receipt) = loop {
        match lines.recv_timeout(Duration::from_millis(100)) {
            Ok((at, line)) => {
                let parsed: Option<serde_json::Value> = serde_json::from_str(&line).ok();
                tail.push(line);
                if tail.len() > TAIL {
                    tail.remove(0);
                }
                if let Some(v) = parsed {
                    if v["fields"]["message"] == RECEIPTED {
                        break (at, v);
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = agent.child.wait()?;
                return Err(failure(
                    format!("the agent exited with {status} before the receipt"),
                    &tail,
                ));
            }
        }
        if t0.elapsed() > Duration::from_secs(opts.timeout_secs) {
            return Err(failure(
                format!(
                    "no receipt within {} s of the agent's start",
                    opts.timeout_secs
                ),
                &tail,
            ));
        }
    };
    let secs = receipted_at.duration_since(t0).as_secs_f64();
    let hub_cpu_s = cpu_seconds(hub.child.id())? - hub_cpu0;
    let agent_pid = agent.child.id();
    let agent_peak_rss_mib = status_mib(agent_pid, "VmHWM")?;
    let agent_cpu_s = cpu_seconds(agent_pid)?;
    agent.stop()?;
    hub.stop()?;

    // The hub holds exactly the recording: at its content address, whole.
    let logged = receipt["fields"]["sha256"].as_str().unwrap_or_default();
    anyhow::ensure!(
        logged == sha,
        "the receipt names sha256 {logged:?}: expected {sha}"
    );
    let blob = hub_dir
        .join("blobs")
        .join(&sha[..2])
        .join(&sha[2..4])
        .join(&sha);
    let stored = fs::metadata(&blob)
        .with_context(|| format!("the hub's blob {}", blob.display()))?
        .len();
    anyhow::ensure!(
        stored == size,
        "{} is {stored} bytes: expected {size}",
        blob.display()
    );
    Ok(Evsync {
        secs,
        agent_peak_rss_mib,
        agent_cpu_s,
        hub_cpu_s,
    })
}

/// Phase (a) of round `round`: seconds.
fn tcp_phase(dir: &Path, src: &Path, round: u32) -> anyhow::Result<f64> {
    let dst = dir.join(format!("tcp-copy-{round}.bin"));
    let secs = tcp_copy(src, &dst);
    let _ = fs::remove_file(&dst);
    secs
}

/// Phase (b) of round `round`: seconds, or why there is no figure.
fn rsync_phase(dir: &Path, src: &Path, round: u32) -> Result<f64, String> {
    let dst = dir.join(format!("rsync-copy-{round}.bin"));
    let secs = rsync_copy(src, &dst);
    let _ = fs::remove_file(&dst);
    secs
}

/// Phase (c) of round `round`: a fresh hub and agent in their own folder,
/// removed afterwards.
fn evsync_phase(
    opts: &Opts,
    dir: &Path,
    src: &Path,
    size: u64,
    round: u32,
) -> anyhow::Result<Evsync> {
    let round_dir = dir.join(format!("round{round}"));
    fs::create_dir(&round_dir).with_context(|| format!("creating {}", round_dir.display()))?;
    let ev = evsync(opts, &round_dir, src, size)
        .with_context(|| format!("the evsync phase of round {round}"))?;
    fs::remove_dir_all(&round_dir).with_context(|| format!("removing {}", round_dir.display()))?;
    Ok(ev)
}

fn main() -> anyhow::Result<()> {
    let opts = Opts::parse();
    anyhow::ensure!(opts.size_mib > 0, "--size-mib 0: expected at least 1");
    anyhow::ensure!(opts.rounds > 0, "--rounds 0: expected at least 1");
    let size = opts.size_mib * 1024 * 1024;
    let gib = size as f64 / (1u64 << 30) as f64;
    fs::create_dir_all("target").context("creating target/")?;
    let temp = tempfile::Builder::new()
        .prefix("evsync-bench-media-")
        .tempdir_in("target")
        .context("creating the temporary folder in target/")?;
    let dir = temp
        .path()
        .canonicalize()
        .context("resolving the temporary folder")?;
    let src = dir.join("source.bin");
    write_source(&src, size)?;
    println!("file_mib={}", opts.size_mib);
    println!("rounds={}", opts.rounds);

    let mut tcp = Vec::new();
    let mut rsync = Vec::new();
    let mut rsync_why = None;
    let mut evsync = Vec::new();
    let mut agent_peak_rss_mib = 0f64;
    let mut agent_cpu = Vec::new();
    let mut hub_cpu = Vec::new();
    for round in 1..=opts.rounds {
        sync_disk()?;
        let rate = mb_s(size, tcp_phase(&dir, &src, round)?);
        println!("round{round}_tcp_copy_mb_s={rate:.0}");
        tcp.push(rate);

        sync_disk()?;
        match rsync_phase(&dir, &src, round) {
            Ok(secs) => {
                let rate = mb_s(size, secs);
                println!("round{round}_rsync_mb_s={rate:.0}");
                rsync.push(rate);
            }
            Err(why) => {
                println!("round{round}_rsync_mb_s={why}");
                rsync_why.get_or_insert(why);
            }
        }

        // The evsync phase syncs again once its hub and agent are set up.
        sync_disk()?;
        let ev = evsync_phase(&opts, &dir, &src, size, round)?;
        let rate = mb_s(size, ev.secs);
        println!("round{round}_evsync_mb_s={rate:.0}");
        evsync.push(rate);
        agent_peak_rss_mib = agent_peak_rss_mib.max(ev.agent_peak_rss_mib);
        agent_cpu.push(ev.agent_cpu_s / gib);
        hub_cpu.push(ev.hub_cpu_s / gib);
    }

    // Every round's phases have run: the vectors hold one figure per round
    // (rsync's may be short when it failed or is absent).
    let some = |v: &[f64]| median(v).context("no rounds");
    let tcp = some(&tcp)?;
    let evsync = some(&evsync)?;
    println!("tcp_copy_mb_s={tcp:.0}");
    let rsync = median(&rsync);
    match (rsync, &rsync_why) {
        (Some(r), None) => println!("rsync_mb_s={r:.0}"),
        (Some(r), Some(why)) => {
            println!("rsync_mb_s={r:.0}");
            eprintln!("media-bench: rsync {why} in some rounds; its median is over the others");
        }
        (None, why) => println!("rsync_mb_s={}", why.as_deref().unwrap_or("failed")),
    }
    println!("evsync_mb_s={evsync:.0}");
    // A round whose hub did not hold the whole recording at its address ended the run.
    println!("verified=yes");
    println!("agent_peak_rss_mib={agent_peak_rss_mib:.1}");
    println!("agent_cpu_s_per_gib={:.2}", some(&agent_cpu)?);
    println!("hub_cpu_s_per_gib={:.2}", some(&hub_cpu)?);
    match rsync {
        Some(r) => println!("ratio_vs_rsync={:.2}", evsync / r),
        None => println!("ratio_vs_rsync=n/a"),
    }
    temp.close().context("removing the temporary folder")?;
    println!("ratio_vs_tcp={:.2}", evsync / tcp);
    Ok(())
}

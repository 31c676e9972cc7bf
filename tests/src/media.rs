//! Fixtures of the media tests: big files, a TCP proxy that counts, cuts and
//! corrupts what passes through it (the "network" between agent and hub),
//! and raw HTTP calls to the upload and media endpoints.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use evsync_protocol::chain::Hash;

/// Drops a recording of `size` seeded random bytes named `name` into
/// `spool` as a field application does (written under a temporary name, then
/// renamed); returns its SHA-256 (hex).
pub fn spool_random(spool: &Path, name: &str, size: u64, seed: u64) -> anyhow::Result<String> {
    std::fs::create_dir_all(spool)?;
    let part = spool.join(format!("{name}.part"));
    let sha = write_random(&part, size, seed)?;
    std::fs::rename(&part, spool.join(name))?;
    Ok(sha)
}

/// Puts a proxy in front of the hub's HTTP port and makes the hub's grants
/// point at it, so every upload byte crosses it.
pub fn behind_proxy(cfg: &mut evsync_hub::config::HubConfig) -> anyhow::Result<Proxy> {
    let proxy = Proxy::start(cfg.http.listen)?;
    cfg.media.public_url = Some(format!("http://{}", proxy.addr));
    Ok(proxy)
}

/// Writes `size` pseudo-random bytes (seeded) to `path`; returns their SHA-256 (hex).
pub fn write_random(path: &Path, size: u64, seed: u64) -> anyhow::Result<String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        ctx.update(&buf[..n]);
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(hex::encode(ctx.finish()))
}

/// SHA-256 (hex) of a file, streamed.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(ctx.finish()));
        }
        ctx.update(&buf[..n]);
    }
}

/// SHA-256 (hex) of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    Hash::of(bytes).to_hex()
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

struct ProxyState {
    upstream_bytes: AtomicU64,
    stop: AtomicBool,
    /// Flip the byte at this position of a connection's client→server stream, once.
    corrupt_at: Mutex<Option<u64>>,
    corrupted: AtomicU64,
    /// Clones of each open connection's sockets, for [`Proxy::cut`].
    conns: Mutex<HashMap<u64, [TcpStream; 2]>>,
}

/// A loopback TCP proxy in front of `target`.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    state: Arc<ProxyState>,
}

fn pump(mut from: TcpStream, mut to: TcpStream, state: Arc<ProxyState>, upstream: bool, id: u64) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut pos = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if upstream {
            state.upstream_bytes.fetch_add(n as u64, Ordering::Relaxed);
            let mut at = state.corrupt_at.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(target) = *at {
                if target >= pos && target < pos + n as u64 {
                    buf[(target - pos) as usize] ^= 0x5a;
                    *at = None;
                    state.corrupted.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        pos += n as u64;
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    // Either side gone: the other sees its connection closed (reset, when
    // it has unread bytes), as it would without a proxy when a process dies.
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
    state
        .conns
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
}

impl Proxy {
    /// Starts forwarding connections to `target`.
    pub fn start(target: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ProxyState {
            upstream_bytes: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            corrupt_at: Mutex::new(None),
            corrupted: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
        });
        let s = state.clone();
        std::thread::spawn(move || {
            let mut next_id = 0u64;
            while !s.stop.load(Ordering::Relaxed) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect(target) else {
                    continue; // the hub is down: the client sees its connection close
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                next_id += 1;
                let id = next_id;
                if let (Ok(a), Ok(b)) = (client.try_clone(), server.try_clone()) {
                    s.conns
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id, [a, b]);
                }
                let up = s.clone();
                let down = s.clone();
                std::thread::spawn(move || pump(client, server, up, true, id));
                std::thread::spawn(move || pump(s2, c2, down, false, id));
            }
        });
        Ok(Self { addr, state })
    }

    /// Bytes clients sent towards the target so far.
    pub fn upstream_bytes(&self) -> u64 {
        self.state.upstream_bytes.load(Ordering::Relaxed)
    }

    /// Flips one byte at `position` of the next connection stream that gets that far.
    pub fn corrupt_once_at(&self, position: u64) {
        *self
            .state
            .corrupt_at
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(position);
    }

    /// Bytes flipped so far.
    pub fn corrupted(&self) -> u64 {
        self.state.corrupted.load(Ordering::Relaxed)
    }

    /// Breaks every open connection (a network loss).
    pub fn cut(&self) {
        let mut conns = self.state.conns.lock().unwrap_or_else(|p| p.into_inner());
        for [a, b] in conns.values() {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
        conns.clear();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        self.cut();
    }
}

/// A raw HTTP answer.
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// `Upload-Offset`, when given.
    pub offset: Option<u64>,
    /// `Upload-State`, when given.
    pub state: Option<String>,
    /// Every header, lowercase names.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request with `headers` and `body` and reads the whole answer (blocking).
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> anyhow::Result<Answer> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent();
    let verb: ureq::http::Method = method.parse()?;
    let mut req = ureq::http::Request::builder().method(verb).uri(url);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let mut resp = match body {
        Some(b) => agent.run(req.body(b)?),
        None => agent.run(req.body(())?),
    }
    .with_context(|| format!("{method} {url}"))?;
    let status = resp.status().as_u16();
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let body = resp
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .unwrap_or_default();
    let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    Ok(Answer {
        status,
        offset: find("upload-offset").and_then(|v| v.parse().ok()),
        state: find("upload-state"),
        headers,
        body,
    })
}

/// Sends only the head of a request that declares `content_length` body
/// bytes, and reads the answer: for refusals a server gives before reading
/// a body (a client still sending would see its connection closed).
/// Returns the status and the body text.
pub fn declare_only(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    content_length: u64,
) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {content_length}\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    let mut answer = Vec::new();
    // The server closes after answering; a reset after the answer is fine.
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no HTTP status in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

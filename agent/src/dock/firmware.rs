//! A docked recorder's firmware: the image the hub's signed assignment
//! names, downloaded from the hub (HTTP with ranges, resumed from what is
//! on disk), checked against the signed SHA-256 and size, and handed to the
//! recorder over the serial line (`FirmwareStatus` to go on with an image
//! half received at an earlier docking, else `FirmwareBegin`; then
//! `FirmwareWrite` from where the recorder stands, `FirmwareCommit`), then
//! confirmed with `Identify`. An image that is not newer than the running firmware (no
//! downgrade, no re-install), or whose bytes do not match, never reaches
//! the recorder. Each outcome is recorded: `firmware_installed` or
//! `firmware_failed` with the reason.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use evsync_protocol::assignment::FirmwareImage;
use evsync_protocol::chain::Hash;
use evsync_protocol::record::Event;
use evsync_recorder_protocol::firmware::check_upgrade;
use evsync_recorder_protocol::message::{Request, Response};

use super::configure::record;
use super::docking::{Docked, Shared};
use super::link::{LinkError, RecorderLink};
use crate::buffer::with_buffer;

/// Downloads that fail on the way (the hub unreachable, a 5xx) are tried
/// this many times per docking before the failure is recorded.
const DOWNLOAD_ATTEMPTS: u32 = 3;

/// Longest a firmware download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// Installs the image the recorder's assignment names, once per docking,
/// unless it runs that version already (then says so once). A download
/// that fails on the way is tried again at the next passes, then recorded
/// as failed; anything else is an outcome, recorded.
pub async fn install_assigned(
    shared: &Shared,
    link: &mut RecorderLink,
    docked: &mut Docked,
) -> anyhow::Result<()> {
    let Some(image) = docked.firmware_wanted.clone() else {
        return Ok(());
    };
    if docked.firmware_done.as_deref() == Some(&image.sha256) {
        return Ok(());
    }
    if docked.firmware == image.version {
        // Installed before (at an install whose confirmation was lost, or
        // elsewhere): said once, so the hub's standing gets there.
        docked.firmware_done = Some(image.sha256.clone());
        let id = docked.id.clone();
        let reported = with_buffer(&shared.buffer, move |b| b.firmware_reported(&id)).await?;
        if reported.as_deref() != Some(image.version.as_str()) {
            installed(shared, docked, &image).await?;
        }
        return Ok(());
    }
    let failed = |reason: String| Event::FirmwareFailed {
        version: image.version.clone(),
        reason,
    };
    if let Err(e) = check_upgrade(&docked.firmware, &image.version) {
        docked.firmware_done = Some(image.sha256.clone());
        return record(shared, docked, failed(e.to_string())).await;
    }
    let dir = shared.cfg.data_dir.join("firmware");
    let wanted = image.clone();
    let ca = shared.cfg.upload.ca_file.clone();
    let downloaded = tokio::task::spawn_blocking(move || download(&wanted, &dir, ca.as_deref()))
        .await
        .context("firmware download task")?;
    let path = match downloaded {
        Ok(Ok(path)) => path,
        Ok(Err(reason)) => {
            docked.firmware_done = Some(image.sha256.clone());
            tracing::warn!(
                recorder = docked.id,
                version = image.version,
                reason,
                "firmware image refused"
            );
            return record(shared, docked, failed(reason)).await;
        }
        Err(e) => {
            docked.firmware_attempts += 1;
            let e = format!("{e:#}");
            tracing::warn!(
                recorder = docked.id,
                version = image.version,
                error = e,
                attempt = docked.firmware_attempts,
                "firmware download failed"
            );
            if docked.firmware_attempts < DOWNLOAD_ATTEMPTS {
                return Ok(());
            }
            docked.firmware_done = Some(image.sha256.clone());
            let reason =
                format!("could not download the image after {DOWNLOAD_ATTEMPTS} attempts: {e}");
            return record(shared, docked, failed(reason)).await;
        }
    };
    docked.firmware_done = Some(image.sha256.clone());
    match write_image(link, &image, &path, docked.max_chunk).await? {
        Ok(running) if running == image.version => {
            tracing::info!(
                recorder = docked.id,
                version = running,
                "firmware installed"
            );
            docked.firmware = running;
            installed(shared, docked, &image).await
        }
        Ok(running) => {
            let reason = format!(
                "the recorder took the image but reports firmware {running}, not {}",
                image.version
            );
            record(shared, docked, failed(reason)).await
        }
        Err(reason) => {
            tracing::warn!(
                recorder = docked.id,
                version = image.version,
                reason,
                "firmware not installed"
            );
            record(shared, docked, failed(reason)).await
        }
    }
}

/// Records that the recorder runs `image` (`firmware_installed`), and that
/// it was said.
async fn installed(shared: &Shared, docked: &Docked, image: &FirmwareImage) -> anyhow::Result<()> {
    record(
        shared,
        docked,
        Event::FirmwareInstalled {
            version: image.version.clone(),
            sha256: image.sha256.clone(),
        },
    )
    .await?;
    let (id, version) = (docked.id.clone(), image.version.clone());
    with_buffer(&shared.buffer, move |b| {
        b.note_firmware_reported(&id, &version)
    })
    .await
}

/// The image in `dir/<sha256>.bin`, downloaded (resuming `<sha256>.part`)
/// if needed and checked against the signed size and SHA-256 each time it
/// is used. `Ok(Err(reason))`: the hub refused it, or the bytes are not the
/// signed ones. `Err`: a failure on the way, worth trying again. An
/// `https://` image URL (the hub's API over TLS) must chain to the CA in
/// `ca_file` (`upload.ca_file`).
fn download(
    image: &FirmwareImage,
    dir: &Path,
    ca_file: Option<&Path>,
) -> anyhow::Result<Result<PathBuf, String>> {
    if Hash::from_hex(&image.sha256).is_none() {
        return Ok(Err(format!(
            "the manifest's sha256 {:?} is not 64 lowercase hex digits",
            image.sha256
        )));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let done = dir.join(format!("{}.bin", image.sha256));
    if done.exists() {
        if matches_manifest(&done, image)? {
            return Ok(Ok(done));
        }
        tracing::warn!(path = %done.display(), "a kept firmware image no longer matches its manifest; downloading it again");
        std::fs::remove_file(&done).with_context(|| format!("removing {}", done.display()))?;
    }
    let part = dir.join(format!("{}.part", image.sha256));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&part)
        .with_context(|| format!("opening {}", part.display()))?;
    let mut have = file.metadata()?.len();
    if have > image.size {
        file.set_len(0)?;
        have = 0;
    }
    if have < image.size {
        let http: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(crate::tls::http_tls(ca_file).context("upload.ca_file")?)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(DOWNLOAD_TIMEOUT))
            .build()
            .into();
        let mut resp = http
            .get(&image.url)
            .header("Range", format!("bytes={have}-"))
            .call()
            .with_context(|| format!("downloading {}", image.url))?;
        let status = resp.status().as_u16();
        let starts_at = resp
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes "))
            .and_then(|v| v.split('-').next())
            .and_then(|v| v.parse::<u64>().ok());
        match status {
            206 if starts_at == Some(have) => {}
            206 => {
                // Not the range asked for: start over, at the next attempt.
                file.set_len(0)?;
                anyhow::bail!(
                    "downloading {}: asked for bytes {have}-, the hub sent another range ({starts_at:?})",
                    image.url
                );
            }
            // The whole image again.
            200 => {
                file.set_len(0)?;
                have = 0;
            }
            400..=499 => {
                return Ok(Err(format!(
                    "the hub refused the download of {}: HTTP {status}: {}",
                    image.url,
                    resp.body_mut().read_to_string().unwrap_or_default()
                )))
            }
            _ => anyhow::bail!(
                "downloading {}: HTTP {status}: {}",
                image.url,
                resp.body_mut().read_to_string().unwrap_or_default()
            ),
        }
        file.seek(SeekFrom::Start(have))?;
        // At most what is missing: a server sending more cannot fill the disk.
        let mut body = resp.body_mut().as_reader().take(image.size - have + 1);
        std::io::copy(&mut body, &mut file)
            .with_context(|| format!("downloading {}", image.url))?;
        file.sync_all()?;
    }
    drop(file);
    if !matches_manifest(&part, image)? {
        let (hash, size) = hash_of(&part)?;
        let _ = std::fs::remove_file(&part);
        return Ok(Err(format!(
            "the image downloaded from {} hashes to {} ({size} bytes); the signed manifest says {} ({} bytes): refused",
            image.url,
            hash.to_hex(),
            image.sha256,
            image.size
        )));
    }
    std::fs::rename(&part, &done)
        .with_context(|| format!("moving {} to {}", part.display(), done.display()))?;
    Ok(Ok(done))
}

/// SHA-256 and size of the file at `path`.
fn hash_of(path: &Path) -> anyhow::Result<(Hash, u64)> {
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    Hash::of_stream(&mut f, &mut std::io::sink())
        .with_context(|| format!("reading {}", path.display()))
}

/// Whether the file at `path` has the manifest's size and SHA-256.
fn matches_manifest(path: &Path, image: &FirmwareImage) -> anyhow::Result<bool> {
    let (hash, size) = hash_of(path)?;
    Ok(size == image.size && hash.to_hex() == image.sha256)
}

/// Sends the image at `path` to the recorder and installs it: `Ok(version
/// running afterwards)`, or `Err(reason)` when the recorder refuses.
async fn write_image(
    link: &mut RecorderLink,
    image: &FirmwareImage,
    path: &Path,
    max_chunk: u32,
) -> anyhow::Result<Result<String, String>> {
    let mut sha256 = [0u8; 32];
    hex::decode_to_slice(&image.sha256, &mut sha256)
        .context("the signed manifest's SHA-256 is not 64 hex digits")?;
    let refused = |what: &str, e: LinkError| -> anyhow::Result<Result<String, String>> {
        match e {
            e @ LinkError::Refused { .. } => Ok(Err(format!("the recorder refused {what}: {e}"))),
            e => Err(e.into()),
        }
    };
    // The same image half received at an earlier docking goes on from
    // where the recorder stands; anything else starts again.
    let pending = match link.call(Request::FirmwareStatus).await {
        Ok(Response::FirmwareImage(i))
            if i.version == image.version && i.size == image.size && i.sha256 == sha256 =>
        {
            Some(i.received)
        }
        Ok(_) | Err(LinkError::Refused { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let mut received = match pending {
        Some(received) => received,
        None => match link
            .call(Request::FirmwareBegin {
                version: image.version.clone(),
                size: image.size,
                sha256,
            })
            .await
        {
            Ok(Response::FirmwareImage(i)) => i.received,
            Ok(other) => anyhow::bail!("recorder answered FirmwareBegin with {other:?}"),
            Err(e) => return refused("FirmwareBegin", e),
        },
    };
    let mut file =
        std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut buf = vec![0u8; max_chunk as usize];
    while received < image.size {
        file.seek(SeekFrom::Start(received))?;
        let want = (image.size - received).min(u64::from(max_chunk)) as usize;
        file.read_exact(&mut buf[..want])
            .with_context(|| format!("reading {}", path.display()))?;
        received = match link
            .call(Request::FirmwareWrite {
                offset: received,
                data: buf[..want].to_vec(),
            })
            .await
        {
            Ok(Response::FirmwareImage(i)) => i.received,
            Ok(other) => anyhow::bail!("recorder answered FirmwareWrite with {other:?}"),
            Err(e) => return refused("FirmwareWrite", e),
        };
    }
    match link.call(Request::FirmwareCommit).await {
        Ok(Response::FirmwareInstalled { .. }) => {}
        Ok(other) => anyhow::bail!("recorder answered FirmwareCommit with {other:?}"),
        Err(e) => return refused("FirmwareCommit", e),
    }
    let Response::Identity(identity) = link.call(Request::Identify).await? else {
        anyhow::bail!("recorder answered Identify with something else");
    };
    Ok(Ok(identity.firmware))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// A one-shot HTTP server per answer: `answers[i]` is the whole raw
    /// response to request `i`, written and then the connection closed.
    /// Returns the URL and the requests' `Range` headers as received.
    fn server(answers: Vec<Vec<u8>>) -> (String, std::thread::JoinHandle<Vec<Option<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/firmware/x", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut ranges = Vec::new();
            for answer in answers {
                let (mut conn, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut range = None;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("range:") {
                        range = Some(v.trim().to_owned());
                    }
                }
                ranges.push(range);
                conn.write_all(&answer).unwrap();
            }
            ranges
        });
        (url, handle)
    }

    fn image_of(bytes: &[u8], url: String) -> FirmwareImage {
        FirmwareImage {
            version: "SIM-2.5.0".into(),
            sha256: hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes)),
            size: bytes.len() as u64,
            url,
        }
    }

    #[test]
    fn a_download_cut_short_resumes_from_the_bytes_on_disk() {
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let half = 40_000;
        let mut first = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            bytes.len()
        )
        .into_bytes();
        first.extend_from_slice(&bytes[..half]);
        let mut second = format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {half}-{}/{}\r\nConnection: close\r\n\r\n",
            bytes.len() - half,
            bytes.len() - 1,
            bytes.len()
        )
        .into_bytes();
        second.extend_from_slice(&bytes[half..]);
        let (url, server) = server(vec![first, second]);
        let dir = tempfile::tempdir().unwrap();
        let image = image_of(&bytes, url);
        assert!(
            download(&image, dir.path(), None).is_err(),
            "the cut is an error"
        );
        let path = download(&image, dir.path(), None).unwrap().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        let ranges = server.join().unwrap();
        assert_eq!(
            ranges,
            [Some("bytes=0-".to_owned()), Some(format!("bytes={half}-"))]
        );
        // Held now: no third request.
        assert_eq!(download(&image, dir.path(), None).unwrap().unwrap(), path);
    }

    #[test]
    fn bytes_that_are_not_the_signed_ones_are_refused_and_not_kept() {
        let bytes = vec![7u8; 5000];
        let mut other = bytes.clone();
        other[4999] = 8;
        let mut answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            other.len()
        )
        .into_bytes();
        answer.extend_from_slice(&other);
        let (url, server) = server(vec![answer]);
        let dir = tempfile::tempdir().unwrap();
        let image = image_of(&bytes, url);
        let reason = download(&image, dir.path(), None).unwrap().unwrap_err();
        assert!(reason.contains("the signed manifest says"), "{reason}");
        assert!(reason.contains(&image.sha256), "{reason}");
        server.join().unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing kept"
        );
    }
}

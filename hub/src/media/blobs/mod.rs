//! The content-addressed media store: verified content under its SHA-256,
//! in a local folder ([`local`], the default) or in an S3-compatible bucket
//! ([`s3`]), as `media.store` says. Content only ever enters from a finished,
//! verified, fsynced partial upload ([`super::partials`]), so whatever is
//! stored under a hash is complete and is that content.

use std::path::Path;

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse as _, Response};
use tower::ServiceExt as _;
use tower_http::services::ServeFile;

use crate::config::{BlobStore, HubConfig};

pub mod local;
pub mod s3;

pub use local::LocalBlobs;
pub use s3::S3Blobs;

/// Where verified content is kept.
#[derive(Debug, Clone)]
pub enum Blobs {
    /// `<data_dir>/blobs/ab/cd/<sha256>`.
    Local(LocalBlobs),
    /// `s3://<bucket>/<prefix>/<sha256>`.
    S3(S3Blobs),
}

/// Refuses anything but a SHA-256 in lowercase hex, so only hashes name files and objects.
pub(crate) fn check_sha(sha256: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{sha256:?} is not a SHA-256 in lowercase hex"
    );
    Ok(())
}

/// One byte range `bytes=first-last`, `bytes=first-` or `bytes=-suffix`
/// of content `size` bytes long, as a half-open range; `None` for anything
/// else (several ranges, a malformed or unsatisfiable one).
fn one_range(value: &str, size: u64) -> Option<std::ops::Range<u64>> {
    let spec = value.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        size.saturating_sub(suffix)..size
    } else {
        let first: u64 = first.parse().ok()?;
        let end = if last.is_empty() {
            size
        } else {
            let last: u64 = last.parse().ok()?;
            if last < first {
                return None;
            }
            last.saturating_add(1).min(size)
        };
        first..end
    };
    (range.start < range.end).then_some(range)
}

impl Blobs {
    /// The store `cfg` names: `<data_dir>/blobs`, or the bucket of `media.s3`
    /// (reading its credentials file).
    pub fn open(cfg: &HubConfig) -> anyhow::Result<Self> {
        match (cfg.media.store, &cfg.media.s3) {
            (BlobStore::Local, _) => Ok(Self::Local(LocalBlobs::open(&cfg.data_dir)?)),
            (BlobStore::S3, Some(s3)) => Ok(Self::S3(S3Blobs::open(s3)?)),
            (BlobStore::S3, None) => {
                anyhow::bail!("media.store = \"s3\" needs a [media.s3] section with the bucket")
            }
        }
    }

    /// The size of stored content `sha256`, if it is stored.
    pub async fn size(&self, sha256: &str) -> anyhow::Result<Option<u64>> {
        match self {
            Self::Local(l) => {
                let l = l.clone();
                let sha256 = sha256.to_owned();
                tokio::task::spawn_blocking(move || l.size(&sha256))
                    .await
                    .context("blocking task")?
            }
            Self::S3(s) => s.size(sha256).await,
        }
    }

    /// Stores the finished partial `from` as `sha256` and removes the
    /// partial. The local store moves the file (its caller has verified
    /// the hash while receiving it); the bucket hashes it again on the way
    /// up and refuses other content.
    pub async fn commit(&self, sha256: &str, from: &Path) -> anyhow::Result<()> {
        match self {
            Self::Local(l) => {
                let (l, sha256, from) = (l.clone(), sha256.to_owned(), from.to_path_buf());
                tokio::task::spawn_blocking(move || l.commit(&sha256, &from))
                    .await
                    .context("blocking task")?
            }
            Self::S3(s) => s.commit(sha256, from).await,
        }
    }

    /// Answers `req` with content `sha256`: `200` with all of it, `206` with
    /// the one range asked for, `416` (with `Content-Range: bytes */size`)
    /// for a range that cannot be served, `404` when it is not stored.
    pub async fn serve(&self, sha256: &str, req: Request) -> anyhow::Result<Response> {
        match self {
            Self::Local(l) => {
                let path = l.path(sha256)?;
                let served = ServeFile::new(&path)
                    .oneshot(req)
                    .await
                    .with_context(|| format!("serving {}", path.display()))?;
                Ok(served.map(Body::new))
            }
            Self::S3(s) => {
                let Some(size) = s.size(sha256).await? else {
                    return Ok(StatusCode::NOT_FOUND.into_response());
                };
                let asked = req
                    .headers()
                    .get(header::RANGE)
                    .map(|v| v.to_str().ok().and_then(|v| one_range(v, size)));
                let (status, range) = match asked {
                    None => (StatusCode::OK, None),
                    Some(Some(r)) => (StatusCode::PARTIAL_CONTENT, Some(r)),
                    Some(None) => {
                        let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                        r.headers_mut().insert(
                            header::CONTENT_RANGE,
                            HeaderValue::from_str(&format!("bytes */{size}"))?,
                        );
                        return Ok(r);
                    }
                };
                let len = range.as_ref().map_or(size, |r| r.end - r.start);
                let body = if req.method() == Method::HEAD || len == 0 {
                    Body::empty()
                } else {
                    Body::from_stream(s.read(sha256, range.clone()).await?)
                };
                let mut r = body.into_response();
                *r.status_mut() = status;
                let h = r.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
                h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
                if let Some(r) = range {
                    h.insert(
                        header::CONTENT_RANGE,
                        HeaderValue::from_str(&format!("bytes {}-{}/{size}", r.start, r.end - 1))?,
                    );
                }
                Ok(r)
            }
        }
    }
}

#[cfg(test)]
mod tests;

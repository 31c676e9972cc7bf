//! The S3-compatible blob store: verified content as the object
//! `<prefix>/<sha256>` in one bucket (AWS S3, MinIO, Ceph, ...), through the
//! `object_store` crate. Content goes up from a finished partial, hashed
//! again on the way, in one PUT or, past [`PART`] bytes, as a multipart
//! upload of [`PART`]-byte parts; a mismatch aborts the upload, so an
//! object under a hash always holds that content.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, PutPayload, WriteMultipart};
use ring::digest;
use tokio::io::AsyncReadExt as _;

use super::check_sha;
use crate::config::S3Config;

/// Size of one part of a multipart upload (and the largest single PUT).
pub const PART: usize = 8 << 20;
/// Parts in flight at once during a multipart upload.
const PARTS_IN_FLIGHT: usize = 4;

/// The access key pair, from `media.s3.credentials_file`. Never printed.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Credentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .finish()
    }
}

impl S3Credentials {
    /// Reads `file`: TOML with `access_key_id` and `secret_access_key`.
    /// The file must be readable by its owner only (0600 or stricter).
    pub fn read(file: &Path) -> anyhow::Result<Self> {
        use std::os::unix::fs::PermissionsExt as _;
        let shown = file.display();
        let meta = std::fs::metadata(file).with_context(|| {
            format!("media.s3.credentials_file = {shown}: expected a file with the access key pair")
        })?;
        let mode = meta.permissions().mode() & 0o777;
        anyhow::ensure!(
            mode & 0o077 == 0,
            "media.s3.credentials_file = {shown}: mode {mode:03o}; expected 0600: it holds a secret (chmod 600 {shown})"
        );
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("media.s3.credentials_file = {shown}: cannot read it"))?;
        // The parser's message quotes the text, which holds the secret: not shown.
        let creds: Self = toml::from_str(&text).map_err(|_| {
            anyhow::anyhow!(
                "media.s3.credentials_file = {shown}: expected TOML with access_key_id = \"...\" and secret_access_key = \"...\" and nothing else"
            )
        })?;
        anyhow::ensure!(
            !creds.access_key_id.is_empty() && !creds.secret_access_key.is_empty(),
            "media.s3.credentials_file = {shown}: access_key_id or secret_access_key is empty"
        );
        Ok(creds)
    }
}

/// A bucket holding blobs.
#[derive(Debug, Clone)]
pub struct S3Blobs {
    store: Arc<dyn ObjectStore>,
    /// For playback: no limit on a whole request's time, which a large
    /// recording streamed to a slow client may take (connecting is still
    /// bounded).
    reader: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: String,
}

impl S3Blobs {
    /// A client for the bucket in `cfg`. Without a credentials file the
    /// usual AWS environment (variables, instance role) supplies them.
    /// Nothing is sent until the first request.
    pub fn open(cfg: &S3Config) -> anyhow::Result<Self> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            .with_allow_http(cfg.allow_http);
        if let Some(endpoint) = &cfg.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(file) = &cfg.credentials_file {
            let creds = S3Credentials::read(file)?;
            builder = builder
                .with_access_key_id(creds.access_key_id)
                .with_secret_access_key(creds.secret_access_key);
        }
        let setting_up = || format!("media.s3: setting up the client for bucket {}", cfg.bucket);
        let reader = builder
            .clone()
            .with_client_options(ClientOptions::new().with_timeout_disabled())
            .with_allow_http(cfg.allow_http)
            .build()
            .with_context(setting_up)?;
        let store = builder.build().with_context(setting_up)?;
        Ok(Self {
            store: Arc::new(store),
            reader: Arc::new(reader),
            bucket: cfg.bucket.clone(),
            prefix: cfg.prefix.clone(),
        })
    }

    /// The object key of content `sha256`.
    pub fn key(&self, sha256: &str) -> anyhow::Result<Key> {
        check_sha(sha256)?;
        Ok(if self.prefix.is_empty() {
            Key::from(sha256)
        } else {
            Key::from(format!("{}/{sha256}", self.prefix))
        })
    }

    /// The size of stored content `sha256`, if it is stored.
    pub async fn size(&self, sha256: &str) -> anyhow::Result<Option<u64>> {
        let key = self.key(sha256)?;
        match self.store.head(&key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("looking up s3://{}/{key}", self.bucket)),
        }
    }

    /// Uploads the finished partial `from` as `sha256`, hashing it on the
    /// way: content that does not hash to `sha256` is refused and nothing
    /// is stored. Then removes the partial.
    pub async fn commit(&self, sha256: &str, from: &Path) -> anyhow::Result<()> {
        let key = self.key(sha256)?;
        let size = std::fs::metadata(from)
            .with_context(|| format!("looking at {}", from.display()))?
            .len();
        // Content-addressed: the same bytes stored before need no upload.
        if self.size(sha256).await? != Some(size) {
            self.upload(sha256, &key, from, size).await?;
        }
        tokio::fs::remove_file(from)
            .await
            .with_context(|| format!("removing {}", from.display()))
    }

    async fn upload(&self, sha256: &str, key: &Key, from: &Path, size: u64) -> anyhow::Result<()> {
        let at = || format!("s3://{}/{key}", self.bucket);
        let mut file = tokio::fs::File::open(from)
            .await
            .with_context(|| format!("opening {}", from.display()))?;
        let mut ctx = digest::Context::new(&digest::SHA256);
        if size <= PART as u64 {
            let mut buf = Vec::with_capacity(size as usize);
            file.read_to_end(&mut buf)
                .await
                .with_context(|| format!("reading {}", from.display()))?;
            ctx.update(&buf);
            verify(sha256, ctx, from)?;
            self.store
                .put(key, PutPayload::from(buf))
                .await
                .with_context(|| format!("storing {}", at()))?;
            return Ok(());
        }
        let upload = self
            .store
            .put_multipart(key)
            .await
            .with_context(|| format!("starting a multipart upload to {}", at()))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let sent: anyhow::Result<()> = async {
            loop {
                let mut buf = Vec::with_capacity(PART);
                while buf.len() < PART {
                    let n = (&mut file)
                        .take((PART - buf.len()) as u64)
                        .read_to_end(&mut buf)
                        .await
                        .with_context(|| format!("reading {}", from.display()))?;
                    if n == 0 {
                        break;
                    }
                }
                if buf.is_empty() {
                    break;
                }
                ctx.update(&buf);
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .with_context(|| format!("uploading a part to {}", at()))?;
                writer.put(Bytes::from(buf));
            }
            Ok(())
        }
        .await;
        if let Err(e) = sent.and_then(|()| verify(sha256, ctx, from)) {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(key = %key, error = %abort, "aborting a refused multipart upload failed");
            }
            return Err(e);
        }
        writer
            .finish()
            .await
            .with_context(|| format!("completing the multipart upload to {}", at()))?;
        Ok(())
    }

    /// Bytes `range` of content `sha256` (the whole of it without a range).
    pub async fn read(
        &self,
        sha256: &str,
        range: Option<Range<u64>>,
    ) -> anyhow::Result<BoxStream<'static, std::io::Result<Bytes>>> {
        let key = self.key(sha256)?;
        let got = self
            .reader
            .get_opts(
                &key,
                GetOptions {
                    range: range.map(GetRange::Bounded),
                    ..GetOptions::default()
                },
            )
            .await
            .with_context(|| format!("reading s3://{}/{key}", self.bucket))?;
        Ok(got.into_stream().map_err(std::io::Error::other).boxed())
    }
}

fn verify(sha256: &str, ctx: digest::Context, from: &Path) -> anyhow::Result<()> {
    let got = hex::encode(ctx.finish());
    anyhow::ensure!(
        got == sha256,
        "{} hashes to {got}, not to {sha256}: not stored",
        from.display()
    );
    Ok(())
}

//! An S3-protocol server for the media store tests: `moto_server` (moto,
//! from PyPI; `scripts/setup` installs it) on a free loopback port with one
//! empty bucket, stopped when dropped. Without `moto_server` on PATH the
//! tests that need it skip, saying why.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use evsync_hub::config::S3Config;

use crate::media::request;

/// The program.
const MOTO: &str = "moto_server";

/// A running `moto_server` holding one bucket.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The bucket made for the test.
    pub bucket: String,
}

impl Moto {
    /// Starts the server and makes `bucket`; `None` (with the reason
    /// printed) when `moto_server` is not installed.
    pub fn start(bucket: &str) -> anyhow::Result<Option<Self>> {
        let found = Command::new(MOTO)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !found.is_ok_and(|s| s.success()) {
            eprintln!(
                "SKIPPED: {MOTO} is not on PATH, so there is no S3-protocol server to test against (scripts/setup installs moto[server])"
            );
            return Ok(None);
        }
        let addr = crate::free_loopback_addr()?;
        let child = Command::new(MOTO)
            .args(["-H", "127.0.0.1", "-p", &addr.port().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {MOTO}"))?;
        let mut moto = Self {
            child,
            endpoint: format!("http://{addr}"),
            bucket: bucket.to_owned(),
        };
        let started = Instant::now();
        loop {
            match request("PUT", &moto.url(""), &[], None) {
                Ok(a) if a.status == 200 => break,
                Ok(a) => anyhow::bail!(
                    "{MOTO}: making bucket {bucket}: status {}: {}",
                    a.status,
                    a.text()
                ),
                Err(_) if started.elapsed() < Duration::from_secs(30) => {
                    if let Some(status) = moto.child.try_wait()? {
                        anyhow::bail!("{MOTO} exited at start: {status}");
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e).context(format!("{MOTO} did not answer in 30 s")),
            }
        }
        Ok(Some(moto))
    }

    /// The URL of `key` in the bucket (path style; the bucket itself for "").
    pub fn url(&self, key: &str) -> String {
        if key.is_empty() {
            format!("{}/{}", self.endpoint, self.bucket)
        } else {
            format!("{}/{}/{key}", self.endpoint, self.bucket)
        }
    }

    /// Object `key`, read straight from the server with a client of the
    /// test's own (not the hub's); `None` when there is no such object.
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        use object_store::ObjectStore as _;
        let store = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(&self.bucket)
            .with_endpoint(&self.endpoint)
            .with_region("us-east-1")
            .with_access_key_id("testing")
            .with_secret_access_key("testing")
            .with_allow_http(true)
            .build()?;
        match store.get(&object_store::path::Path::from(key)).await {
            Ok(got) => Ok(Some(got.bytes().await?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {key} from {}", self.url(""))),
        }
    }

    /// Hub settings for this bucket, with a 0600 credentials file in `dir`.
    pub fn config(&self, dir: &Path, prefix: &str) -> anyhow::Result<S3Config> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let file = dir.join("s3-credentials");
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&file)
            .and_then(|mut f| {
                f.write_all(b"access_key_id = \"testing\"\nsecret_access_key = \"testing\"\n")
            })
            .with_context(|| format!("writing {}", file.display()))?;
        Ok(S3Config {
            bucket: self.bucket.clone(),
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".into(),
            prefix: prefix.into(),
            credentials_file: Some(file),
            allow_http: true,
        })
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! `hub.toml`: where the hub keeps its data, which broker it uses, where it
//! serves HTTP. Every field has a default; `EVSYNC_HUB_*` environment
//! variables override the file. Validation reports every problem at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The hub's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubConfig {
    /// Name of this hub instance, written into receipts.
    pub hub_id: String,
    /// Folder for the store, keys and API token.
    pub data_dir: PathBuf,
    /// Approve devices on their first announcement (demo only).
    pub auto_approve: bool,
    /// Seconds a sequence gap may stay open before it is a visible alert
    /// (records resent after a reconnect may arrive out of order).
    pub gap_grace_secs: u64,
    /// Where the metadata store is: SQLite in `data_dir` (default) or PostgreSQL.
    pub store: StoreConfig,
    /// The MQTT side.
    pub mqtt: MqttConfig,
    /// The HTTP side.
    pub http: HttpConfig,
    /// The media data plane: upload grants, uploads, the blob store.
    pub media: MediaConfig,
    /// How the fleet's liveness is judged.
    pub fleet: FleetConfig,
    /// Sensing coverage thresholds and alerts.
    pub coverage: CoverageConfig,
}

/// The metadata store (docs/operations.md, "Several hubs").
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// PostgreSQL connection URL (`postgres://user@host:5432/db`); without
    /// it the store is `<data_dir>/hub.sqlite`. Hubs that share the ingest
    /// must share this database.
    pub url: Option<String>,
    /// File holding the database password (keep it 0600), so the URL and
    /// this file need not carry it.
    pub password_file: Option<PathBuf>,
    /// Schema the tables live in (created if missing); default: the
    /// server's `search_path`.
    pub schema: Option<String>,
}

/// Sensing coverage settings (docs/coverage.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoverageConfig {
    /// Share of an action's span its officers' recordings must cover for it
    /// to count as covered, per mille (900 = 90%).
    pub share_permille: u32,
    /// A recorder clock off by more than this many seconds is suspect
    /// (the `clock_problem` cause).
    pub drift_secs: u32,
    /// Hours after the end of the duty a recording was made in (or of the
    /// recording, outside a duty) within which its bytes must arrive.
    pub timeliness_hours: u32,
    /// Minutes after its end an action still not covered is alerted
    /// (`action_uncovered`).
    pub alert_after_mins: u32,
    /// Minutes into a duty with nothing heard from the officer's recorders
    /// before it is alerted (`officer_unheard`).
    pub unheard_after_mins: u32,
    /// Seconds between looks for these alerts (and between sums of the
    /// days whose coverage figures changed).
    pub sweep_secs: u32,
}

impl Default for CoverageConfig {
    fn default() -> Self {
        Self {
            share_permille: 900,
            drift_secs: 60,
            timeliness_hours: 24,
            alert_after_mins: 60,
            unheard_after_mins: 30,
            sweep_secs: 60,
        }
    }
}

impl CoverageConfig {
    /// The thresholds verdicts are judged with.
    pub fn thresholds(&self) -> crate::store::Thresholds {
        crate::store::Thresholds {
            judge: crate::coverage::action::Policy {
                share_permille: self.share_permille,
                drift_ms: i64::from(self.drift_secs) * 1000,
            },
            timeliness_hours: i64::from(self.timeliness_hours),
        }
    }
}

/// Fleet settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// An agent not heard from for this many seconds is shown offline, even
    /// without a last will (a connection that died silently). Keep it above
    /// the agents' `uplink.status_secs` (default 10).
    pub offline_after_secs: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            offline_after_secs: 60,
        }
    }
}

/// Media data plane settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Base URL agents upload to, as they reach the hub (behind a proxy or
    /// load balancer, its address). Default: `http://<http.listen>`.
    pub public_url: Option<String>,
    /// Seconds an upload grant stays valid (an upload under way finishes; a
    /// new request after expiry needs a new grant).
    pub grant_ttl_secs: u64,
    /// Uploads the hub receives at once; more are answered 503 with Retry-After.
    pub max_concurrent_uploads: usize,
    /// Hash mismatches after which a record's media is failed and alerted.
    pub max_mismatches: u32,
    /// Seconds an upload may stay silent before the hub gives up on it.
    pub idle_timeout_secs: u64,
    /// Seconds after its last write a partial upload is abandoned and deleted.
    pub partial_ttl_secs: u64,
    /// Where verified recordings are kept: `"local"` (`<data_dir>/blobs`,
    /// the default) or `"s3"` (the bucket of `[media.s3]`).
    pub store: BlobStore,
    /// Folder of unfinished uploads (default `<data_dir>/partials`). Hubs
    /// behind one address share it (NFS), so an upload continues on
    /// whichever hub receives its next chunk.
    pub partials_dir: Option<PathBuf>,
    /// The bucket, when `store = "s3"`.
    pub s3: Option<S3Config>,
}

/// Where verified recordings are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobStore {
    /// `<data_dir>/blobs/ab/cd/<sha256>`.
    #[default]
    Local,
    /// An S3-compatible bucket, `[media.s3]`.
    S3,
}

/// An S3-compatible bucket for recordings (`[media.s3]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// The bucket (it must exist).
    pub bucket: String,
    /// The service's URL, e.g. `https://s3.eu-west-1.amazonaws.com` or
    /// `http://127.0.0.1:9000`; default: AWS S3 for `region`.
    pub endpoint: Option<String>,
    /// The region (S3-compatible servers mostly accept any).
    pub region: String,
    /// Key prefix: objects are `<prefix>/<sha256>` (just `<sha256>` when empty).
    pub prefix: String,
    /// File (0600) with `access_key_id = "..."` and `secret_access_key = "..."`,
    /// read at start. Without it the AWS environment variables or the
    /// instance's role supply the credentials.
    pub credentials_file: Option<PathBuf>,
    /// Allow an `http://` endpoint (a server on the same host or network only).
    pub allow_http: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            bucket: String::new(),
            endpoint: None,
            region: "us-east-1".into(),
            prefix: String::new(),
            credentials_file: None,
            allow_http: false,
        }
    }
}

impl S3Config {
    fn problems(&self, p: &mut Vec<String>) {
        let b = &self.bucket;
        if b.is_empty() {
            p.push("media.s3.bucket is missing: expected the name of an existing bucket".into());
        } else if !(3..=63).contains(&b.len())
            || !b
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
            || !b.starts_with(|c: char| c.is_ascii_alphanumeric())
            || !b.ends_with(|c: char| c.is_ascii_alphanumeric())
        {
            p.push(format!(
                "media.s3.bucket = {b:?}: expected 3 to 63 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit"
            ));
        }
        if let Some(e) = &self.endpoint {
            if e.starts_with("http://") {
                if !self.allow_http {
                    p.push(format!(
                        "media.s3.endpoint = {e:?}: plain http needs media.s3.allow_http = true (only for a server on the same host or network)"
                    ));
                }
            } else if !e.starts_with("https://") {
                p.push(format!(
                    "media.s3.endpoint = {e:?}: expected https://host[:port] (or http:// with allow_http)"
                ));
            }
            if e.contains('@') {
                p.push("media.s3.endpoint carries credentials: expected them in media.s3.credentials_file".into());
            }
        }
        if self.region.is_empty() {
            p.push("media.s3.region is empty: expected a region such as us-east-1".into());
        }
        let prefix = &self.prefix;
        if prefix.starts_with('/') || prefix.ends_with('/') || prefix.contains("//") {
            p.push(format!(
                "media.s3.prefix = {prefix:?}: expected key segments joined by '/', with no leading, trailing or doubled '/'"
            ));
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            public_url: None,
            grant_ttl_secs: 900,
            max_concurrent_uploads: 8,
            max_mismatches: 3,
            idle_timeout_secs: 60,
            partial_ttl_secs: 24 * 3600,
            store: BlobStore::Local,
            partials_dir: None,
            s3: None,
        }
    }
}

/// Broker settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Run the embedded broker (default) or use the external one at `url`.
    pub embedded: bool,
    /// Address the embedded broker listens on.
    pub listen: SocketAddr,
    /// External broker, `mqtt://host:port`, used when `embedded = false`.
    pub url: Option<String>,
    /// User name at the external broker (default `evsync-hub-<hub_id>`).
    pub username: Option<String>,
    /// File holding the hub's secret at the external broker (made, 0600,
    /// by `evsync-hub broker mosquitto`); without it the hub connects
    /// without credentials.
    pub password_file: Option<PathBuf>,
    /// Several hubs sharing one store and one external broker: the name of
    /// their shared subscription group. Each message from the agents then
    /// goes to one hub of the group. Every hub of the group needs its own
    /// `hub_id` and the same hub key (`<data_dir>/hub.key`).
    pub share_group: Option<String>,
    /// Embedded broker: let in only enrolled agents with their own
    /// credential (user name = client id = device id), each confined to its
    /// own `evsync/v1/<device-id>/` topics (docs/operations.md, "Transport
    /// security"). Off by default so the demo runs without enrollment: then
    /// any client may connect, as any id, to any topic.
    pub require_auth: bool,
    /// Embedded broker: refuse clients that do not speak TLS (needs
    /// `tls_cert` and `tls_key`).
    pub require_tls: bool,
    /// Embedded broker: certificate chain (PEM) of its TLS listener. With
    /// `tls_key`, clients may connect over TLS on `listen`.
    pub tls_cert: Option<PathBuf>,
    /// Embedded broker: private key (PEM, keep it 0600) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// External broker at an `mqtts://` URL: the CA certificate (PEM) its
    /// certificate must chain to.
    pub ca_file: Option<PathBuf>,
}

/// HTTP settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address of the API.
    pub listen: SocketAddr,
    /// Bearer token of the API. Generated into `<data_dir>/api-token` when absent.
    pub token: Option<String>,
    /// Certificate chain (PEM): with `tls_key`, the API (and uploads) are
    /// served over HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM, keep it 0600) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            hub_id: "hub-1".into(),
            data_dir: PathBuf::from("evsync-hub-data"),
            auto_approve: false,
            gap_grace_secs: 60,
            store: StoreConfig::default(),
            mqtt: MqttConfig::default(),
            http: HttpConfig::default(),
            media: MediaConfig::default(),
            fleet: FleetConfig::default(),
            coverage: CoverageConfig::default(),
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            embedded: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 1884)),
            url: None,
            username: None,
            password_file: None,
            share_group: None,
            require_auth: false,
            require_tls: false,
            tls_cert: None,
            tls_key: None,
            ca_file: None,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8480)),
            token: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl HubConfig {
    /// The hub's user name at an external broker.
    pub fn mqtt_user(&self) -> String {
        self.mqtt
            .username
            .clone()
            .unwrap_or_else(|| format!("evsync-hub-{}", self.hub_id))
    }

    /// Where the hub's secret at an external broker is (or will be) kept.
    pub fn mqtt_password_file(&self) -> PathBuf {
        self.mqtt
            .password_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("mqtt-secret"))
    }

    /// Where unfinished uploads are kept.
    pub fn partials_dir(&self) -> PathBuf {
        self.media
            .partials_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("partials"))
    }

    /// Where the store is.
    pub fn store_location(&self) -> crate::store::Location {
        match &self.store.url {
            Some(url) => crate::store::Location::Postgres {
                url: url.clone(),
                schema: self.store.schema.clone(),
                password_file: self.store.password_file.clone(),
            },
            None => crate::store::Location::Sqlite(self.data_dir.join("hub.sqlite")),
        }
    }

    /// Reads `path` (if given), applies `EVSYNC_HUB_*` overrides and validates.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let origin = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "hub config".into());
        match Self::check(path) {
            Ok(cfg) => Ok(cfg),
            Err(problems) => anyhow::bail!(
                "{origin}: {} problem(s):\n  {}",
                problems.len(),
                problems.join("\n  ")
            ),
        }
    }

    /// Like [`HubConfig::load`], but returns every problem found: in the
    /// file (each section checked on its own, so one bad section does not
    /// hide another), in the environment overrides, and in the values.
    pub fn check(path: Option<&Path>) -> Result<Self, Vec<String>> {
        let mut cfg = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| vec![format!("reading {}: {e}", p.display())])?;
                match Self::parse(&text) {
                    Ok(cfg) => cfg,
                    Err(mut problems) => {
                        // The overrides are checked too, so one run names everything.
                        problems.extend(HubConfig::default().apply_env());
                        return Err(problems);
                    }
                }
            }
            None => HubConfig::default(),
        };
        let mut problems = cfg.apply_env();
        problems.extend(cfg.problems());
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(problems)
        }
    }

    /// Parses TOML text; on failure, checks each section alone to name every bad one.
    fn parse(text: &str) -> Result<Self, Vec<String>> {
        let table: toml::Table = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        if let Ok(cfg) = HubConfig::deserialize(toml::Value::Table(table.clone())) {
            return Ok(cfg);
        }
        fn section<T: serde::de::DeserializeOwned>(
            name: &str,
            v: &toml::Value,
            out: &mut Vec<String>,
        ) {
            if let Err(e) = T::deserialize(v.clone()) {
                out.push(format!("[{name}]: {}", e.message().trim()));
            }
        }
        let mut problems = Vec::new();
        let mut top = toml::Table::new();
        for (key, value) in &table {
            match key.as_str() {
                "store" => section::<StoreConfig>(key, value, &mut problems),
                "mqtt" => section::<MqttConfig>(key, value, &mut problems),
                "http" => section::<HttpConfig>(key, value, &mut problems),
                "media" => section::<MediaConfig>(key, value, &mut problems),
                "fleet" => section::<FleetConfig>(key, value, &mut problems),
                "coverage" => section::<CoverageConfig>(key, value, &mut problems),
                _ => {
                    top.insert(key.clone(), value.clone());
                }
            }
        }
        // Top-level keys one at a time, so each bad one is named.
        for (key, value) in top {
            let mut alone = toml::Table::new();
            alone.insert(key.clone(), value);
            if let Err(e) = HubConfig::deserialize(toml::Value::Table(alone)) {
                problems.push(format!("{key}: {}", e.message().trim()));
            }
        }
        Err(problems)
    }

    fn apply_env(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut addr = |name: &str, slot: &mut SocketAddr| {
            if let Some(v) = env(name) {
                match v.parse() {
                    Ok(a) => *slot = a,
                    Err(_) => problems.push(format!(
                        "{name} = {v:?}: expected host:port, e.g. 127.0.0.1:8480"
                    )),
                }
            }
        };
        addr("EVSYNC_HUB_HTTP_LISTEN", &mut self.http.listen);
        addr("EVSYNC_HUB_MQTT_LISTEN", &mut self.mqtt.listen);
        if let Some(v) = env("EVSYNC_HUB_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = env("EVSYNC_HUB_ID") {
            self.hub_id = v;
        }
        if let Some(v) = env("EVSYNC_HUB_API_TOKEN") {
            self.http.token = Some(v);
        }
        if let Some(v) = env("EVSYNC_HUB_STORE_URL") {
            self.store.url = Some(v);
        }
        if let Some(v) = env("EVSYNC_HUB_STORE_SCHEMA") {
            self.store.schema = Some(v);
        }
        if let Some(v) = env("EVSYNC_HUB_MQTT_URL") {
            self.mqtt.url = Some(v);
            self.mqtt.embedded = false;
        }
        if let Some(v) = env("EVSYNC_HUB_MQTT_SHARE_GROUP") {
            self.mqtt.share_group = Some(v);
        }
        if let Some(v) = env("EVSYNC_HUB_MQTT_USERNAME") {
            self.mqtt.username = Some(v);
        }
        if let Some(v) = env("EVSYNC_HUB_MQTT_PASSWORD_FILE") {
            self.mqtt.password_file = Some(v.into());
        }
        if let Some(v) = env("EVSYNC_HUB_PUBLIC_URL") {
            self.media.public_url = Some(v);
        }
        if let Some(v) = env("EVSYNC_HUB_AUTO_APPROVE") {
            match v.as_str() {
                "1" | "true" => self.auto_approve = true,
                "0" | "false" => self.auto_approve = false,
                _ => problems.push(format!(
                    "EVSYNC_HUB_AUTO_APPROVE = {v:?}: expected true or false"
                )),
            }
        }
        problems
    }

    /// What `problems` cannot check without the files the configuration
    /// names, which serving needs but other commands may be about to make
    /// (the hub's broker secret): `check-config` reports these too.
    pub fn serve_problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (field, cert, key) in [
            ("mqtt", &self.mqtt.tls_cert, &self.mqtt.tls_key),
            ("http", &self.http.tls_cert, &self.http.tls_key),
        ] {
            if let (Some(cert), Some(key)) = (cert, key) {
                if let Err(e) = crate::tls::server_config(cert, key) {
                    p.push(format!("{field}.tls_cert / {field}.tls_key: {e:#}"));
                }
            }
        }
        if let Some(ca) = &self.mqtt.ca_file {
            if let Err(e) = evsync_agent::tls::client_config(ca) {
                p.push(format!("mqtt.ca_file: {e:#}"));
            }
        }
        if let (false, Some(f)) = (self.mqtt.embedded, &self.mqtt.password_file) {
            match std::fs::read_to_string(f) {
                Ok(s) if s.trim().is_empty() => p.push(format!(
                    "mqtt.password_file = {}: the file is empty; expected the hub's broker secret",
                    f.display()
                )),
                Ok(_) => {}
                Err(e) => p.push(format!(
                    "mqtt.password_file = {}: {e}; expected the hub's broker secret (`evsync-hub broker mosquitto` makes it)",
                    f.display()
                )),
            }
        }
        if let (BlobStore::S3, Some(s3)) = (self.media.store, &self.media.s3) {
            if let Some(f) = &s3.credentials_file {
                if let Err(e) = crate::media::blobs::s3::S3Credentials::read(f) {
                    p.push(format!("{e:#}"));
                }
            }
        }
        p
    }

    /// Every problem with the configuration, each naming the field.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Err(e) = evsync_protocol::topic::validate_device_id(&self.hub_id) {
            p.push(format!("hub_id: {e}"));
        }
        if self.data_dir.as_os_str().is_empty() {
            p.push("data_dir is empty: expected a folder path".into());
        }
        match (&self.mqtt.url, self.mqtt.embedded) {
            (None, false) => p.push(
                "mqtt.url is missing: expected mqtt://host:port when mqtt.embedded = false".into(),
            ),
            (Some(u), false) if !u.starts_with("mqtt://") && !u.starts_with("mqtts://") => p.push(
                format!("mqtt.url = {u:?}: expected mqtt://host:port or mqtts://host:port"),
            ),
            (Some(u), false) if u.starts_with("mqtts://") && self.mqtt.ca_file.is_none() => {
                p.push(format!(
                    "mqtt.url = {u:?} is mqtts://: expected mqtt.ca_file, the broker's CA certificate (PEM)"
                ))
            }
            _ => {}
        }
        let m = &self.mqtt;
        if !m.embedded && (m.require_auth || m.require_tls || m.tls_cert.is_some()) {
            p.push("mqtt.require_auth, require_tls and tls_cert are for the embedded broker; an external broker enforces its own (`evsync-hub broker mosquitto --tls-port`)".into());
        }
        if m.tls_cert.is_some() != m.tls_key.is_some() {
            p.push("mqtt.tls_cert and mqtt.tls_key: expected both or neither".into());
        }
        if m.require_tls && m.tls_cert.is_none() {
            p.push("mqtt.require_tls = true: expected mqtt.tls_cert and mqtt.tls_key".into());
        }
        if self.http.tls_cert.is_some() != self.http.tls_key.is_some() {
            p.push("http.tls_cert and http.tls_key: expected both or neither".into());
        }
        if let Some(g) = &self.mqtt.share_group {
            if g.is_empty() || g.contains(['/', '+', '#']) {
                p.push(format!(
                    "mqtt.share_group = {g:?}: expected a name without '/', '+' or '#'"
                ));
            }
            if self.mqtt.embedded {
                p.push("mqtt.share_group needs an external broker (mqtt.embedded = false): hubs share one broker".into());
            }
            if self.store.url.is_none() {
                p.push("mqtt.share_group needs store.url: hubs that share the ingest share one PostgreSQL store".into());
            }
        }
        if let Some(u) = &self.store.url {
            if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) {
                p.push(format!(
                    "store.url = {:?}: expected postgres://user@host:port/database",
                    crate::store::redact_url(u)
                ));
            } else if let Err(e) = u.parse::<tokio_postgres::Config>() {
                p.push(format!(
                    "store.url = {:?}: {e}; expected postgres://user@host:port/database",
                    crate::store::redact_url(u)
                ));
            }
        }
        if let Some(schema) = &self.store.schema {
            if schema.is_empty()
                || schema.len() > 63
                || !schema
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                p.push(format!(
                    "store.schema = {schema:?}: expected 1 to 63 letters, digits or underscores"
                ));
            }
        }
        if let (None, Some(_)) = (&self.store.url, &self.store.schema) {
            p.push("store.schema is set without store.url: a schema is for PostgreSQL".into());
        }
        let m = &self.media;
        if let Some(u) = &m.public_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) || u.ends_with('/') {
                p.push(format!(
                    "media.public_url = {u:?}: expected http(s)://host:port with no trailing slash"
                ));
            }
        }
        match (m.store, &m.s3) {
            (BlobStore::S3, Some(s3)) => s3.problems(&mut p),
            (BlobStore::S3, None) => p.push(
                "media.store = \"s3\" needs a [media.s3] section: expected at least bucket = \"...\"".into(),
            ),
            (BlobStore::Local, Some(_)) => p.push(
                "[media.s3] is set but media.store = \"local\": expected store = \"s3\" to use the bucket, or no [media.s3]".into(),
            ),
            (BlobStore::Local, None) => {}
        }
        if m.partials_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            p.push(
                "media.partials_dir is empty: expected a folder path (default <data_dir>/partials)"
                    .into(),
            );
        }
        for (name, v) in [
            ("media.grant_ttl_secs", m.grant_ttl_secs),
            (
                "media.max_concurrent_uploads",
                m.max_concurrent_uploads as u64,
            ),
            ("media.max_mismatches", u64::from(m.max_mismatches)),
            ("media.idle_timeout_secs", m.idle_timeout_secs),
            ("media.partial_ttl_secs", m.partial_ttl_secs),
            ("fleet.offline_after_secs", self.fleet.offline_after_secs),
            ("coverage.sweep_secs", u64::from(self.coverage.sweep_secs)),
            (
                "coverage.timeliness_hours",
                u64::from(self.coverage.timeliness_hours),
            ),
        ] {
            if v == 0 {
                p.push(format!("{name} = 0: expected a positive number"));
            }
        }
        if !(1..=1000).contains(&self.coverage.share_permille) {
            p.push(format!(
                "coverage.share_permille = {}: expected 1 to 1000 (900 = 90%)",
                self.coverage.share_permille
            ));
        }
        if let Some(t) = &self.http.token {
            if t.len() < 16 {
                p.push(format!(
                    "http.token is {} characters: expected at least 16",
                    t.len()
                ));
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_thresholds_out_of_range_are_named() {
        let cfg = HubConfig {
            coverage: CoverageConfig {
                share_permille: 1001,
                sweep_secs: 0,
                ..CoverageConfig::default()
            },
            ..HubConfig::default()
        };
        let p = cfg.problems();
        assert!(
            p.iter()
                .any(|x| x.contains("coverage.share_permille = 1001: expected 1 to 1000")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|x| x == "coverage.sweep_secs = 0: expected a positive number"),
            "{p:?}"
        );
        let th = CoverageConfig {
            share_permille: 850,
            drift_secs: 30,
            timeliness_hours: 48,
            ..CoverageConfig::default()
        }
        .thresholds();
        assert_eq!(
            (
                th.judge.share_permille,
                th.judge.drift_ms,
                th.timeliness_hours
            ),
            (850, 30_000, 48)
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_field() {
        let cfg = HubConfig {
            hub_id: "bad/id".into(),
            mqtt: MqttConfig {
                embedded: false,
                url: Some("tcp://x".into()),
                ..MqttConfig::default()
            },
            http: HttpConfig {
                token: Some("short".into()),
                ..HttpConfig::default()
            },
            ..HubConfig::default()
        };
        let p = cfg.problems();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("hub_id"));
        assert!(p[1].contains("mqtt.url = \"tcp://x\""));
        assert!(p[2].contains("at least 16"));
    }

    #[test]
    fn the_example_configuration_loads() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/hub.example.toml");
        let cfg = HubConfig::load(Some(&path)).unwrap();
        assert_eq!(cfg.mqtt.listen.port(), 1884);
    }

    #[test]
    fn a_missing_broker_secret_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = HubConfig {
            mqtt: MqttConfig {
                embedded: false,
                url: Some("mqtt://127.0.0.1:1883".into()),
                password_file: Some(dir.path().join("nope")),
                ..MqttConfig::default()
            },
            ..HubConfig::default()
        };
        assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
        let p = cfg.serve_problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("mqtt.password_file = "), "{p:?}");
        assert!(p[0].contains("expected the hub's broker secret"), "{p:?}");
    }

    #[test]
    fn tls_settings_are_checked_together_and_their_files_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = HubConfig {
            mqtt: MqttConfig {
                require_tls: true,
                tls_key: Some(dir.path().join("server.key")),
                ..MqttConfig::default()
            },
            http: HttpConfig {
                tls_cert: Some(dir.path().join("server.pem")),
                tls_key: Some(dir.path().join("server.key")),
                ..HttpConfig::default()
            },
            ..HubConfig::default()
        };
        let p = cfg.problems();
        assert!(
            p.iter()
                .any(|x| x.starts_with("mqtt.tls_cert and mqtt.tls_key")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|x| x.starts_with("mqtt.require_tls = true")),
            "{p:?}"
        );
        let p = cfg.serve_problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("http.tls_cert / http.tls_key: "), "{p:?}");
        crate::tls::init(dir.path(), &["localhost".into()]).unwrap();
        assert!(cfg.serve_problems().is_empty());
        let external = HubConfig {
            mqtt: MqttConfig {
                embedded: false,
                url: Some("mqtts://broker:8883".into()),
                require_auth: true,
                ..MqttConfig::default()
            },
            ..HubConfig::default()
        };
        let p = external.problems();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("expected mqtt.ca_file"), "{p:?}");
        assert!(p[1].contains("are for the embedded broker"), "{p:?}");
    }

    #[test]
    fn check_config_names_every_bad_section_and_key_of_the_file_at_once() {
        let text = "hub_id = 5\ngap_grace_secs = \"soon\"\n[http]\nlisten = \"nowhere\"\n[media]\ngrant_ttl_secs = -1\n[fleet]\noffline_after = 3\n";
        let problems = HubConfig::parse(text).unwrap_err();
        let all = problems.join("\n");
        assert_eq!(problems.len(), 5, "{all}");
        for needle in [
            "[http]",
            "[media]",
            "[fleet]",
            "hub_id",
            "gap_grace_secs",
            "offline_after",
        ] {
            assert!(all.contains(needle), "{needle} not named in:\n{all}");
        }
    }

    #[test]
    fn an_s3_media_store_is_checked_field_by_field() {
        let text = "[media]\nstore = \"s3\"\npartials_dir = \"/shared/partials\"\n[media.s3]\nbucket = \"Evidence_Bucket\"\nendpoint = \"http://127.0.0.1:9000\"\nregion = \"\"\nprefix = \"/blobs\"\n";
        let cfg = HubConfig::parse(text).unwrap();
        assert_eq!(cfg.partials_dir(), PathBuf::from("/shared/partials"));
        let p = cfg.problems();
        let all = p.join("\n");
        assert_eq!(p.len(), 4, "{all}");
        for needle in [
            "media.s3.bucket = \"Evidence_Bucket\": expected 3 to 63 lowercase",
            "media.s3.endpoint = \"http://127.0.0.1:9000\": plain http needs media.s3.allow_http = true",
            "media.s3.region is empty",
            "media.s3.prefix = \"/blobs\"",
        ] {
            assert!(all.contains(needle), "{needle} not in:\n{all}");
        }
        let missing = HubConfig::parse("[media]\nstore = \"s3\"\n").unwrap();
        assert!(missing.problems()[0].contains("needs a [media.s3] section"));
        let unused = HubConfig::parse("[media.s3]\nbucket = \"b-1\"\n").unwrap();
        assert!(unused.problems()[0].contains("media.store = \"local\""));
        let bad = HubConfig::parse("[media]\nstore = \"nfs\"\n").unwrap_err();
        assert!(
            bad[0].contains("[media]") && bad[0].contains("nfs"),
            "{bad:?}"
        );
        let local = HubConfig::default();
        assert_eq!(local.partials_dir(), local.data_dir.join("partials"));
    }

    #[test]
    fn s3_credentials_must_be_private_and_are_never_shown() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s3-credentials");
        std::fs::write(
            &file,
            "access_key_id = \"AKIDEXAMPLE\"\nsecret_access_key = \"very-secret-key\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut cfg = HubConfig::parse(&format!(
            "[media]\nstore = \"s3\"\n[media.s3]\nbucket = \"evidence\"\ncredentials_file = {:?}\n",
            file.display().to_string()
        ))
        .unwrap();
        assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
        let p = cfg.serve_problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("mode 644; expected 0600"), "{p:?}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(cfg.serve_problems().is_empty());
        std::fs::write(&file, "secret_access_key = \"very-secret-key\"\n").unwrap();
        let p = cfg.serve_problems();
        assert!(p[0].contains("expected TOML with access_key_id"), "{p:?}");
        assert!(
            !p[0].contains("very-secret-key"),
            "the secret was shown: {p:?}"
        );
        let creds = crate::media::blobs::s3::S3Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "very-secret-key".into(),
        };
        assert!(!format!("{creds:?}").contains("very-secret-key"));
        cfg.media.s3 = None;
        assert!(cfg.serve_problems().is_empty());
    }

    #[test]
    fn unknown_fields_in_the_file_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(
            &path,
            "hub_id = \"h\"\n[http]\nlisten = \"127.0.0.1:1\"\nport = 3\n",
        )
        .unwrap();
        let err = HubConfig::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("port"), "{err}");
    }
}

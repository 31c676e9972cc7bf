//! The hub's metadata store (SQLite, WAL, `synchronous=FULL`): devices,
//! verified records with their exact signed bytes, media bookkeeping,
//! alerts and rejects. Versioned migrations: `schema.sql` (1), `media.sql` (2),
//! `chains.sql` (3: a chain's source is (device_id, agent_id); file indexes
//! of recorders across docks; re-copies), `fleet.sql` (4: device kinds and
//! live figures, units, officers, assignment history, API tokens, the audit
//! log, filter columns of the feed), `coverage.sql` (5: recordings as spans
//! of time, enforcement actions and their cached coverage verdicts),
//! `figures.sql` (6: duties, duty hours and the rest of what the coverage
//! figures count), `coverage_days.sql` (7: those figures summed by day),
//! `coverage_groups.sql` (8: each day's sums rolled up per group, actions too),
//! `recorder_config.sql` (9: recorder configuration policy, signed
//! assignments and where each recorder stands), `credentials.sql` (10:
//! agents' broker credentials).
//!
//! One writer (the ingest worker) and any number of readers (API, CLI), each
//! with its own connection. A record is durable once the transaction that
//! inserted it has committed; receipts are issued only after that.

mod alerts;
mod audit;
mod coverage;
mod coverage_days;
mod coverage_groups;
mod credentials;
pub(crate) mod db;
mod devices;
mod duty;
mod figures;
#[cfg(test)]
mod figures_tests;
mod file_index;
mod firmware;
mod fleet;
mod imported;
mod media;
mod recorder_config;
#[cfg(test)]
mod recorder_config_tests;
mod records;
mod sweep;
#[cfg(test)]
mod tests;
mod tokens;

pub use alerts::{Alert, AlertKind};
pub use audit::{AuditCheck, AuditEntry, AuditEvent};
pub use coverage::{cst_day, Thresholds};
pub use credentials::{BrokerCredential, BrokerUser};
pub use db::redact as redact_url;
pub use devices::{apply_liveness, Announced, Announcement, DeviceKind, DeviceRow, DeviceState};
pub use duty::{parse_roster_csv, RosterDuty};
pub use figures::{
    ActionCoverage, Cell, DutyHour, Figures, GroupBy, Integrity, JudgedAction, LateUpload,
    OfficerDay, Ratio, Scope, TimeCoverage, Timeliness, MAX_ROWS,
};
pub(crate) use file_index::delivered as media_delivered;
pub use firmware::{download_path as firmware_download_path, FirmwareRow};
pub use fleet::{
    parse_officers_csv, parse_units_csv, Assignment, NewAssignment, Officer, Roster, Unit,
};
pub use imported::{check_actions, parse_actions_csv, ImportedAction, Officers};
pub(crate) use media::expect as expect_media;
pub use media::{MediaRow, MediaState};
pub use recorder_config::{
    bucket, ConfigStatus, Issued, Issuer, LayerRow, LayerScope, Planned, Rollout,
};
pub use records::RecordFilter;
pub(crate) use records::{insert as insert_record, source_name};
pub use records::{Inserted, StoredRecord, VerifiedRecord};
pub use sweep::Swept;
pub use tokens::{token_hash, NewToken, Role, TokenRow};

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::{SecondsFormat, Utc};
use db::{Connection, Transaction};

const SCHEMA_VERSION: i64 = 10;

/// A connection to the hub store.
pub struct Store {
    conn: Connection,
}

/// Current time as stored: RFC 3339, milliseconds, UTC (so text order is time order).
pub fn now() -> String {
    stamp(Utc::now())
}

/// A time as stored.
pub fn stamp(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An RFC 3339 time given by a person or a client as `name`; the error
/// names it and shows what is expected.
pub fn parse_time(name: &str, text: &str) -> Result<chrono::DateTime<Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            format!("{name} = {text:?}: expected an RFC 3339 time, e.g. 2026-11-23T09:00:00+08:00")
        })
}

/// Where a store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite file (the embedded default).
    Sqlite(PathBuf),
    /// A PostgreSQL database, shared by several hubs.
    Postgres {
        /// Connection URL (`postgres://user:password@host:port/db` or
        /// `host=... user=...`).
        url: String,
        /// The schema the store's tables are in (created if missing); the
        /// server's `search_path` when not given.
        schema: Option<String>,
        /// File holding the password, if the URL does not.
        password_file: Option<PathBuf>,
    },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres { url, schema, .. } => {
                write!(f, "{}", db::redact(url))?;
                match schema {
                    Some(s) => write!(f, " (schema {s})"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Migrations of the PostgreSQL store: (version, script). Version 1 is the
/// SQLite store's version 10.
const PG_STEPS: [(i64, &str); 1] = [(1, include_str!("pg/schema.sql"))];

impl Store {
    /// Opens (creating and migrating if needed) the SQLite store at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Self::connect(&Location::Sqlite(path.to_owned()))
    }

    /// Opens (creating and migrating if needed) the store at `location`.
    pub fn connect(location: &Location) -> anyhow::Result<Self> {
        let conn = match location {
            Location::Sqlite(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating the store folder {}", dir.display()))?;
                }
                Connection::open_sqlite(path)
                    .with_context(|| format!("opening the hub store {}", path.display()))?
            }
            Location::Postgres {
                url,
                schema,
                password_file,
            } => {
                let password = match password_file {
                    Some(f) => Some(
                        std::fs::read_to_string(f)
                            .with_context(|| {
                                format!("store.password_file = {}: cannot read it", f.display())
                            })?
                            .trim()
                            .to_owned(),
                    ),
                    None => None,
                };
                Connection::open_postgres(url, schema.as_deref(), password.as_deref())
                    .with_context(|| format!("opening the hub store {location}"))?
            }
        };
        let mut store = Self { conn };
        match location {
            Location::Sqlite(_) => store.migrate_sqlite(),
            Location::Postgres { .. } => store.migrate_postgres(),
        }
        .with_context(|| format!("migrating the hub store {location}"))?;
        Ok(store)
    }

    fn migrate_sqlite(&mut self) -> anyhow::Result<()> {
        let sqlite = self
            .conn
            .sqlite()
            .context("an SQLite store has an SQLite connection")?;
        let version: i64 = sqlite.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            anyhow::bail!(
                "store schema version {version} is newer than this hub understands ({SCHEMA_VERSION}): upgrade the hub"
            );
        }
        let steps: [(i64, &str); 10] = [
            (1, include_str!("schema.sql")),
            (2, include_str!("media.sql")),
            (3, include_str!("chains.sql")),
            (4, include_str!("fleet.sql")),
            (5, include_str!("coverage.sql")),
            (6, include_str!("figures.sql")),
            (7, include_str!("coverage_days.sql")),
            (8, include_str!("coverage_groups.sql")),
            (9, include_str!("recorder_config.sql")),
            (10, include_str!("credentials.sql")),
        ];
        for (to, sql) in steps.into_iter().filter(|(to, _)| *to > version) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)
                .with_context(|| format!("migrating to schema version {to}"))?;
            if to == 6 {
                coverage::backfill(&tx).context("filling in coverage for the records held")?;
            } else if to == 9 {
                recorder_config::add_device_class(&tx)?;
            } else if to == 7 && version == 6 {
                // Version 7 counts only recorders as heard from (a field
                // device's own events no longer do): judge what version 6 judged again.
                duty::judge_again_for_recorders(&tx).context("judging coverage again")?;
            }
            tx.execute_batch(&format!("PRAGMA user_version = {to}"))?;
            tx.commit()?;
        }
        Ok(())
    }

    fn migrate_postgres(&mut self) -> anyhow::Result<()> {
        // A writing transaction: hubs starting together migrate one at a time.
        let tx = self.conn.transaction()?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS evsync_schema_version (version BIGINT NOT NULL)",
        )?;
        let version: Option<i64> =
            tx.query_row("SELECT MAX(version) FROM evsync_schema_version", [], |r| {
                r.get(0)
            })?;
        let version = version.unwrap_or(0);
        let newest = PG_STEPS.last().map_or(0, |(v, _)| *v);
        if version > newest {
            anyhow::bail!(
                "store schema version {version} is newer than this hub understands ({newest}): upgrade the hub"
            );
        }
        for (to, sql) in PG_STEPS.into_iter().filter(|(to, _)| *to > version) {
            tx.execute_batch(sql)
                .with_context(|| format!("migrating to schema version {to}"))?;
            tx.execute(
                "INSERT INTO evsync_schema_version (version) VALUES (?1)",
                [to],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Records a refused message (also counted in metrics by the caller).
    pub fn log_reject(&self, topic: &str, reason: &str, detail: &str) -> anyhow::Result<()> {
        self.conn.execute(
            "INSERT INTO rejects (at, topic, reason, detail) VALUES (?1, ?2, ?3, ?4)",
            (now(), topic, reason, detail),
        )?;
        Ok(())
    }

    /// Runs `f` in one transaction, committed only if `f` succeeds.
    pub fn in_transaction<T>(
        &mut self,
        f: impl FnOnce(&Transaction<'_>) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let tx = self.conn.transaction()?;
        let out = f(&tx)?;
        tx.commit().context("committing to the hub store")?;
        Ok(out)
    }

    /// The underlying connection, for read queries in this crate.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

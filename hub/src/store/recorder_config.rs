//! Recorder configuration as policy: layers of overrides, the signed
//! assignments issued from them, and where each recorder stands.
//!
//! An operator writes overrides at four layers (fleet, unit, device class,
//! device); `firmware-config` resolves them with the recorder's assignment
//! into one effective configuration. Issuing it signs an assignment with a
//! version that only grows, and queues it for the publisher (the retained
//! config topic of the recorder). Docks report what they did with it as
//! records; [`on_event`] turns those into the recorder's standing and raises
//! `config_failed` and `config_drift` alerts.

use super::db::{params, OptionalExtension, Transaction};
use anyhow::Context as _;
use evsync_protocol::assignment::{Assignment, FirmwareImage};
use evsync_protocol::record::{Event, RecordBody};
use evsync_protocol::signing::SigningKey;
use firmware_config::{Change, Effective, Overrides, Policy, RecorderConfig, Target};
use serde::Serialize;

use super::alerts::{raise, AlertKind, Subject};
use super::{now, stamp, Store};

/// A layer of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerScope {
    /// Every recorder.
    Fleet,
    /// The recorders of one unit.
    Unit,
    /// The recorders of one class (model or batch).
    Class,
    /// One recorder.
    Device,
}

impl LayerScope {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fleet => "fleet",
            Self::Unit => "unit",
            Self::Class => "class",
            Self::Device => "device",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Fleet, Self::Unit, Self::Class, Self::Device]
            .into_iter()
            .find(|l| l.as_str() == s)
    }
}

/// One layer as stored.
#[derive(Debug, Clone, Serialize)]
pub struct LayerRow {
    /// Which layer.
    pub scope: LayerScope,
    /// Unit code, class or device id; empty for the fleet.
    pub key: String,
    /// The overrides, TOML.
    pub overrides: String,
    /// Last change.
    pub updated_at: String,
    /// Who made it.
    pub by_whom: String,
}

/// Where a recorder stands against its current assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigStatus {
    /// The recorder.
    pub device_id: String,
    /// Version of its current assignment.
    pub version: u64,
    /// Content hash of the assigned configuration.
    pub config_hash: String,
    /// `assigned` (issued), `delivered` (a dock verified it), `applied`
    /// (written and read back), `failed` (refused or not applied).
    pub state: String,
    /// Why it failed.
    pub reason: Option<String>,
    /// When the state last changed.
    pub state_at: String,
    /// When the hub last put it on the recorder's config topic.
    pub published_at: Option<String>,
    /// Content hash of the configuration a dock last read from the recorder.
    pub running_hash: Option<String>,
    /// When that was read (device time).
    pub running_at: Option<String>,
    /// The dock that read it.
    pub reported_by: Option<String>,
    /// The firmware version the current assignment names.
    pub firmware_version: Option<String>,
    /// `assigned`, `installed` or `failed`.
    pub firmware_state: Option<String>,
    /// Why installing it failed.
    pub firmware_reason: Option<String>,
}

impl ConfigStatus {
    /// Whether the recorder was last seen running the assigned configuration.
    pub fn in_sync(&self) -> bool {
        self.running_hash.as_deref() == Some(self.config_hash.as_str())
    }
}

/// An assignment just issued.
#[derive(Debug, Clone, Serialize)]
pub struct Issued {
    /// The recorder.
    pub device_id: String,
    /// Its version.
    pub version: u64,
    /// Content hash of the configuration.
    pub config_hash: String,
    /// What changed from the previous assignment (every setting for a first one).
    pub changes: Vec<Change>,
}

/// What a new assignment of a recorder would hold.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The effective configuration.
    pub config: RecorderConfig,
    /// Its content hash.
    pub hash: String,
    /// The firmware image it names.
    pub firmware: Option<FirmwareImage>,
    /// What changes from the current assignment (every setting for a first one).
    pub changes: Vec<Change>,
}

/// Who issues assignments, and where docks download firmware from.
#[derive(Debug, Clone, Copy)]
pub struct Issuer<'a> {
    /// The hub's id, named in every assignment.
    pub hub_id: &'a str,
    /// Who is issuing (audit name).
    pub by: &'a str,
    /// The hub's HTTP address as docks reach it (firmware downloads).
    pub base_url: &'a str,
}

/// Which recorders a rollout reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// Every recorder.
    All,
    /// A stable share of the recorders: those whose id falls in the first
    /// `n` of 100 buckets (a larger share always includes a smaller one).
    Percent(u8),
    /// The recorders of these units.
    Units(Vec<String>),
    /// These recorders.
    Devices(Vec<String>),
}

impl std::fmt::Display for Rollout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::Percent(n) => write!(f, "{n}%"),
            Self::Units(u) => write!(f, "units {}", u.join(",")),
            Self::Devices(d) => write!(f, "devices {}", d.join(",")),
        }
    }
}

/// The bucket (0..100) of a recorder in percentage rollouts: stable, and
/// independent of how many recorders there are.
pub fn bucket(device_id: &str) -> u8 {
    let d = ring::digest::digest(&ring::digest::SHA256, device_id.as_bytes());
    let b = d.as_ref();
    (u16::from_be_bytes([b[0], b[1]]) % 100) as u8
}

const STATUS_COLUMNS: &str = "device_id, version, config_hash, state, reason, state_at, \
     published_at, running_hash, running_at, reported_by, \
     json_extract(firmware_image, '$.version'), firmware_state, \
     firmware_reason";

fn status_row(r: &super::db::Row) -> super::db::Result<ConfigStatus> {
    Ok(ConfigStatus {
        device_id: r.get(0)?,
        version: r.get::<_, i64>(1)? as u64,
        config_hash: r.get(2)?,
        state: r.get(3)?,
        reason: r.get(4)?,
        state_at: r.get(5)?,
        published_at: r.get(6)?,
        running_hash: r.get(7)?,
        running_at: r.get(8)?,
        reported_by: r.get(9)?,
        firmware_version: r.get(10)?,
        firmware_state: r.get(11)?,
        firmware_reason: r.get(12)?,
    })
}

impl Store {
    /// Replaces the overrides of one layer (`key`: unit code, class or
    /// device id; empty for the fleet). Refused, naming every problem, if
    /// the overrides do not parse or validate.
    pub fn set_config_layer(
        &mut self,
        scope: LayerScope,
        key: &str,
        overrides: &str,
        by: &str,
    ) -> anyhow::Result<Overrides> {
        check_key(scope, key)?;
        let parsed = Overrides::from_toml(overrides)
            .with_context(|| format!("the {} layer {key:?}", scope.as_str()))?;
        self.conn().execute(
            "INSERT INTO config_layers (scope, key, overrides, updated_at, by_whom)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (scope, key) DO UPDATE SET overrides = ?3, updated_at = ?4, by_whom = ?5",
            params![scope.as_str(), key, parsed.to_toml(), now(), by],
        )?;
        Ok(parsed)
    }

    /// Removes one layer; false if there was none.
    pub fn clear_config_layer(&mut self, scope: LayerScope, key: &str) -> anyhow::Result<bool> {
        check_key(scope, key)?;
        let n = self.conn().execute(
            "DELETE FROM config_layers WHERE scope = ?1 AND key = ?2",
            params![scope.as_str(), key],
        )?;
        Ok(n > 0)
    }

    /// Every layer, fleet first.
    pub fn config_layers(&self) -> anyhow::Result<Vec<LayerRow>> {
        let mut stmt = self.conn().prepare(
            "SELECT scope, key, overrides, updated_at, by_whom FROM config_layers
             ORDER BY CASE scope WHEN 'fleet' THEN 0 WHEN 'unit' THEN 1 WHEN 'class' THEN 2 ELSE 3 END, key",
        )?;
        let rows = stmt.query_map([], |r| {
            let scope: String = r.get(0)?;
            Ok((scope, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (scope, key, overrides, updated_at, by_whom) = row?;
            let scope = LayerScope::parse(&scope)
                .with_context(|| format!("config_layers holds an unknown scope {scope:?}"))?;
            out.push(LayerRow {
                scope,
                key,
                overrides,
                updated_at,
                by_whom,
            });
        }
        Ok(out)
    }

    /// The policy: every layer, parsed.
    pub fn config_policy(&self) -> anyhow::Result<Policy> {
        let mut policy = Policy::default();
        for layer in self.config_layers()? {
            let o = Overrides::from_toml(&layer.overrides).with_context(|| {
                format!(
                    "the stored {} layer {:?} no longer parses",
                    layer.scope.as_str(),
                    layer.key
                )
            })?;
            match layer.scope {
                LayerScope::Fleet => policy.fleet = o,
                LayerScope::Unit => {
                    policy.units.insert(layer.key, o);
                }
                LayerScope::Class => {
                    policy.classes.insert(layer.key, o);
                }
                LayerScope::Device => {
                    policy.devices.insert(layer.key, o);
                }
            }
        }
        Ok(policy)
    }

    /// Sets a recorder's class (`None` clears it).
    pub fn set_device_class(&mut self, device_id: &str, class: Option<&str>) -> anyhow::Result<()> {
        let n = self.conn().execute(
            "UPDATE devices SET device_class = ?2 WHERE device_id = ?1 AND kind = 'recorder'",
            params![device_id, class],
        )?;
        anyhow::ensure!(n == 1, "no recorder {device_id:?} in the fleet");
        Ok(())
    }

    /// What the policy makes of one recorder, and where each value came from.
    pub fn config_effective(&self, device_id: &str) -> anyhow::Result<Effective> {
        let target = self
            .conn()
            .query_row(
                "SELECT unit_code, device_class, officer_id FROM devices
                 WHERE device_id = ?1 AND kind = 'recorder'",
                [device_id],
                |r| {
                    Ok(Target {
                        device_id: device_id.to_owned(),
                        unit_code: r.get(0)?,
                        class: r.get(1)?,
                        officer_id: r.get(2)?,
                    })
                },
            )
            .optional()?
            .with_context(|| {
                format!("no recorder {device_id:?} in the fleet (see `evsync-hub devices list`)")
            })?;
        Ok(firmware_config::resolve(&self.config_policy()?, &target)?)
    }

    /// The recorders a rollout reaches (revoked ones never), in id order.
    pub fn rollout_targets(&self, rollout: &Rollout) -> anyhow::Result<Vec<String>> {
        let mut stmt = self.conn().prepare(
            "SELECT device_id, unit_code FROM devices
             WHERE kind = 'recorder' AND state <> 'revoked' ORDER BY device_id",
        )?;
        let all = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        if let Rollout::Devices(ids) = rollout {
            let unknown: Vec<&str> = ids
                .iter()
                .filter(|id| !all.iter().any(|(d, _)| d == *id))
                .map(String::as_str)
                .collect();
            anyhow::ensure!(
                unknown.is_empty(),
                "not recorders of the fleet (or revoked): {}",
                unknown.join(", ")
            );
        }
        Ok(all
            .into_iter()
            .filter(|(id, unit)| match rollout {
                Rollout::All => true,
                Rollout::Percent(n) => bucket(id) < *n,
                Rollout::Units(units) => unit.as_ref().is_some_and(|u| units.contains(u)),
                Rollout::Devices(ids) => ids.contains(id),
            })
            .map(|(id, _)| id)
            .collect())
    }

    /// Issues the recorder's effective configuration, with the firmware
    /// image it is to run, as a new signed assignment, unless its current
    /// assignment already has that content (`None`). Queued for the
    /// publisher.
    pub fn issue_config(
        &mut self,
        device_id: &str,
        key: &SigningKey,
        issuer: &Issuer<'_>,
        rollout: &Rollout,
    ) -> anyhow::Result<Option<Issued>> {
        let Some(Planned {
            config,
            hash,
            firmware,
            changes,
        }) = self.planned(device_id, issuer.base_url)?
        else {
            return Ok(None);
        };
        let firmware_version = firmware.as_ref().map(|f| f.version.clone());
        let text = config.to_toml();
        let issued_at = chrono::Utc::now();
        let firmware_json = firmware.as_ref().map(serde_json::to_string).transpose()?;
        let version = self.in_transaction(|tx| {
            // Larger than every earlier version, and than the time in ms:
            // a store restored from a backup still issues newer versions.
            let last: Option<i64> =
                tx.query_row("SELECT MAX(version) FROM config_assignments", [], |r| {
                    r.get(0)
                })?;
            let version = (last.unwrap_or(0) + 1).max(issued_at.timestamp_millis());
            tx.execute(
                "INSERT INTO config_assignments (version, device_id, config_hash, config, message, issued_at, by_whom, rollout)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    version,
                    device_id,
                    hash,
                    text,
                    Vec::<u8>::new(),
                    stamp(issued_at),
                    issuer.by,
                    rollout.to_string()
                ],
            )?;
            let message = Assignment {
                v: 1,
                hub_id: issuer.hub_id.to_owned(),
                device_id: device_id.to_owned(),
                version: version as u64,
                config_hash: hash.clone(),
                config: text.clone(),
                firmware,
                issued_at,
            }
            .seal(key);
            tx.execute(
                "UPDATE config_assignments SET message = ?2 WHERE version = ?1",
                params![version, message],
            )?;
            // The firmware standing starts over only when the version changes.
            tx.execute(
                "INSERT INTO config_status (device_id, version, config_hash, state, state_at,
                                            firmware_image, firmware_state)
                 VALUES (?1, ?2, ?3, 'assigned', ?4, ?5, CASE WHEN CAST(?6 AS TEXT) IS NULL THEN NULL ELSE 'assigned' END)
                 ON CONFLICT (device_id) DO UPDATE SET version = ?2, config_hash = ?3,
                     state = 'assigned', reason = NULL, state_at = ?4, published_at = NULL,
                     firmware_state = CASE WHEN json_extract(config_status.firmware_image, '$.version') IS NOT DISTINCT FROM CAST(?6 AS TEXT) THEN config_status.firmware_state
                                           WHEN CAST(?6 AS TEXT) IS NULL THEN NULL ELSE 'assigned' END,
                     firmware_reason = CASE WHEN json_extract(config_status.firmware_image, '$.version') IS NOT DISTINCT FROM CAST(?6 AS TEXT)
                                            THEN config_status.firmware_reason END,
                     firmware_image = ?5",
                params![device_id, version, hash, stamp(issued_at), firmware_json, firmware_version],
            )?;
            Ok(version as u64)
        })?;
        Ok(Some(Issued {
            device_id: device_id.to_owned(),
            version,
            config_hash: hash,
            changes,
        }))
    }

    /// What a new assignment of `device_id` would hold and change, or
    /// `None` when its current assignment already holds exactly that.
    pub fn planned(&self, device_id: &str, base_url: &str) -> anyhow::Result<Option<Planned>> {
        let config = self.config_effective(device_id)?.config;
        let hash = config.content_hash();
        let firmware = self.firmware_target(device_id, base_url)?;
        if let Some(f) = &firmware {
            config
                .firmware_allowed(&f.version)
                .map_err(|e| anyhow::anyhow!("recorder {device_id}: {e}"))?;
        }
        let firmware_json = firmware.as_ref().map(serde_json::to_string).transpose()?;
        let current = self.config_status(device_id)?;
        let current_image: Option<String> = self
            .conn()
            .query_row(
                "SELECT firmware_image FROM config_status WHERE device_id = ?1",
                [device_id],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        // The same content and the same image manifest (its URL too).
        if current.as_ref().is_some_and(|c| c.config_hash == hash) && current_image == firmware_json
        {
            return Ok(None);
        }
        let before = match &current {
            Some(c) => self.assigned_config(c.version)?,
            None => RecorderConfig::default(),
        };
        let mut changes = before.diff(&config);
        if current_image != firmware_json {
            let image_before: Option<FirmwareImage> = current_image
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok());
            let name = |i: Option<&FirmwareImage>, other: Option<&FirmwareImage>| match i {
                None => "none".to_owned(),
                // The same version from elsewhere: say where.
                Some(i) if other.is_some_and(|o| o.version == i.version) => {
                    format!("{} from {}", i.version, i.url)
                }
                Some(i) => i.version.clone(),
            };
            changes.push(Change {
                field: "firmware image".into(),
                from: name(image_before.as_ref(), firmware.as_ref()),
                to: name(firmware.as_ref(), image_before.as_ref()),
            });
        }
        Ok(Some(Planned {
            config,
            hash,
            firmware,
            changes,
        }))
    }

    /// The configuration of assignment `version`.
    pub fn assigned_config(&self, version: u64) -> anyhow::Result<RecorderConfig> {
        let text: String = self.conn().query_row(
            "SELECT config FROM config_assignments WHERE version = ?1",
            [version as i64],
            |r| r.get(0),
        )?;
        RecorderConfig::from_toml(&text)
            .with_context(|| format!("stored assignment {version} no longer parses"))
    }

    /// Where one recorder stands; `None` before its first assignment.
    pub fn config_status(&self, device_id: &str) -> anyhow::Result<Option<ConfigStatus>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {STATUS_COLUMNS} FROM config_status WHERE device_id = ?1"),
                [device_id],
                status_row,
            )
            .optional()?)
    }

    /// Where every assigned recorder stands, in id order.
    pub fn config_statuses(&self) -> anyhow::Result<Vec<ConfigStatus>> {
        let mut stmt = self.conn().prepare(&format!(
            "SELECT {STATUS_COLUMNS} FROM config_status ORDER BY device_id"
        ))?;
        let rows = stmt.query_map([], status_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Current assignments to put on config topics: those not yet
    /// published, or (`all`, after the hub connects to the broker) every one.
    /// `(device_id, version, message)`.
    pub fn config_to_publish(&self, all: bool) -> anyhow::Result<Vec<(String, u64, Vec<u8>)>> {
        let mut stmt = self.conn().prepare(
            "SELECT s.device_id, s.version, a.message FROM config_status s
             JOIN config_assignments a ON a.version = s.version
             WHERE ?1 OR s.published_at IS NULL ORDER BY s.version",
        )?;
        let rows = stmt.query_map([all], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Notes that assignment `version` of `device_id` is on its topic.
    pub fn config_published(&mut self, device_id: &str, version: u64) -> anyhow::Result<()> {
        self.conn().execute(
            "UPDATE config_status SET published_at = ?3 WHERE device_id = ?1 AND version = ?2",
            params![device_id, version as i64, now()],
        )?;
        Ok(())
    }
}

/// Adds `devices.device_class` unless the store has it already.
pub(super) fn add_device_class(tx: &Transaction<'_>) -> anyhow::Result<()> {
    let has: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('devices') WHERE name = 'device_class')",
        [],
        |r| r.get(0),
    )?;
    if !has {
        tx.execute_batch("ALTER TABLE devices ADD COLUMN device_class TEXT")?;
    }
    Ok(())
}

fn check_key(scope: LayerScope, key: &str) -> anyhow::Result<()> {
    match (scope, key.is_empty()) {
        (LayerScope::Fleet, false) => {
            anyhow::bail!("the fleet layer has no key (got {key:?})")
        }
        (LayerScope::Fleet, true) => Ok(()),
        (_, true) => anyhow::bail!(
            "the {} layer needs a key: the {}",
            scope.as_str(),
            match scope {
                LayerScope::Unit => "unit code",
                LayerScope::Class => "class name",
                _ => "device id",
            }
        ),
        (_, false) => Ok(()),
    }
}

/// What a record about a recorder's configuration changes, inside the
/// ingest transaction: its standing, what it runs, and alerts.
///
/// Reports can arrive late and out of order (a dock offline for a day,
/// recorders moving between docks): the standing only moves forward with
/// reports newer than the newest taken into account, but every report's
/// alerts are judged on their own, against every assignment the recorder
/// was ever given.
pub(super) fn on_event(tx: &Transaction<'_>, b: &RecordBody) -> anyhow::Result<()> {
    let device = b.device_id.as_str();
    let event = match &b.event {
        Some(
            e @ (Event::ConfigApplied { .. }
            | Event::ConfigDelivered { .. }
            | Event::ConfigFailed { .. }
            | Event::ConfigChecked { .. }),
        ) => e,
        _ => return Ok(()),
    };
    // When it happened by the dock's clock, never later than now: a dock
    // whose clock runs ahead cannot hold a recorder's standing still.
    let occurred =
        (b.device_time - chrono::Duration::milliseconds(b.clock_offset_ms)).min(chrono::Utc::now());
    let at = stamp(occurred);
    let status = tx
        .prepare_cached(&format!(
            "SELECT {STATUS_COLUMNS} FROM config_status WHERE device_id = ?1"
        ))?
        .query_row([device], status_row)
        .optional()?;
    let Some(status) = status else {
        // Never assigned: what it runs is all there is to know.
        if let Event::ConfigApplied { version, .. } = event {
            tx.execute(
                "UPDATE devices SET config_version = ?2 WHERE device_id = ?1",
                params![device, version.to_string()],
            )?;
        }
        return Ok(());
    };
    let (reported_at, applied_hash, applied_at, first_applied_at): Reported = tx
        .prepare_cached(
            "SELECT reported_at, applied_hash, applied_at, first_applied_at FROM config_status WHERE device_id = ?1",
        )?
        .query_row([device], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    let newer = reported_at.as_deref().is_none_or(|r| r <= at.as_str());
    if newer {
        tx.execute(
            "UPDATE config_status SET reported_at = ?2, reported_by = ?3 WHERE device_id = ?1",
            params![device, at, b.agent_id],
        )?;
    }
    let set_state = |state: &str, reason: Option<&str>| -> anyhow::Result<()> {
        tx.execute(
            "UPDATE config_status SET state = ?2, reason = ?3, state_at = ?4 WHERE device_id = ?1",
            params![device, state, reason, at],
        )?;
        Ok(())
    };
    let alert = |kind: AlertKind, detail: &str| {
        raise(
            tx,
            kind,
            Subject::source(device, &b.agent_id, Some((b.seq, b.seq))),
            detail,
            std::time::Duration::ZERO,
        )
    };
    let current_since: String = tx
        .prepare_cached("SELECT issued_at FROM config_assignments WHERE version = ?1")?
        .query_row([status.version as i64], |r| r.get(0))?;
    // A version other than the current one, taken by a dock after the
    // current one was issued: something else was on the config topic.
    let stranger =
        |version: u64| version != status.version && at.as_str() >= current_since.as_str();
    let set_running = |hash: Option<&str>| -> anyhow::Result<()> {
        tx.execute(
            "UPDATE config_status SET running_hash = ?2, running_at = ?3 WHERE device_id = ?1",
            params![device, hash, at],
        )?;
        Ok(())
    };
    let republish = || -> anyhow::Result<()> {
        tx.execute(
            "UPDATE config_status SET published_at = NULL WHERE device_id = ?1",
            [device],
        )?;
        Ok(())
    };
    match event {
        Event::ConfigDelivered { version, .. } if stranger(*version) => {
            republish()?;
            alert(
                AlertKind::ConfigFailed,
                &format!(
                    "{} accepted assignment version {version} for recorder {device}, but version {} is current since {current_since}: a replayed or stale assignment was on its config topic; the current one is published again",
                    b.agent_id, status.version
                ),
            )?;
        }
        Event::ConfigDelivered { version, .. }
            if newer && *version == status.version && status.state == "assigned" =>
        {
            set_state("delivered", None)?;
        }
        Event::ConfigApplied {
            version,
            config_hash,
        } => {
            if newer {
                set_running(Some(config_hash))?;
                tx.execute(
                    "UPDATE devices SET config_version = ?2 WHERE device_id = ?1",
                    params![device, version.to_string()],
                )?;
            }
            if applied_at.as_deref().is_none_or(|a| a <= at.as_str()) {
                tx.execute(
                    "UPDATE config_status SET applied_hash = ?2, applied_at = ?3 WHERE device_id = ?1",
                    params![device, config_hash, at],
                )?;
            }
            if first_applied_at.as_deref().is_none_or(|a| a > at.as_str()) {
                tx.execute(
                    "UPDATE config_status SET first_applied_at = ?2 WHERE device_id = ?1",
                    params![device, at],
                )?;
            }
            if *version == status.version && *config_hash == status.config_hash {
                if newer {
                    set_state("applied", None)?;
                }
            } else if stranger(*version) {
                republish()?;
                alert(
                    AlertKind::ConfigFailed,
                    &format!(
                        "{} applied assignment version {version} ({}) to recorder {device}, but version {} ({}) is current since {current_since}: a replayed or stale assignment was on its config topic; the current one is published again",
                        b.agent_id,
                        short(config_hash),
                        status.version,
                        short(&status.config_hash)
                    ),
                )?;
            }
        }
        Event::ConfigFailed {
            version,
            config_hash,
            reason,
        } => {
            let genuine = *version == Some(status.version)
                && config_hash.as_deref() == Some(status.config_hash.as_str());
            let detail = if genuine {
                // The current assignment did not land on the recorder.
                if newer {
                    set_state("failed", Some(reason))?;
                }
                format!(
                    "configuration version {} was not applied to recorder {device} (reported by {}): {reason}",
                    status.version, b.agent_id
                )
            } else {
                // Something other than the current assignment was on the
                // recorder's config topic (forged, replayed, altered): the
                // recorder keeps what it runs, and the publisher puts the
                // current assignment back.
                republish()?;
                format!(
                    "an assignment{} on the config topic of recorder {device} was refused by {}: {reason}",
                    version
                        .map(|v| format!(" claiming version {v}"))
                        .unwrap_or_default(),
                    b.agent_id
                )
            };
            alert(AlertKind::ConfigFailed, &detail)?;
        }
        Event::ConfigChecked {
            config_hash,
            reason,
        } => {
            if newer {
                set_running(config_hash.as_deref())?;
                if config_hash.as_deref() == Some(status.config_hash.as_str())
                    && status.state != "applied"
                {
                    // Applied at some docking whose report this is the first news of.
                    set_state("applied", None)?;
                }
            }
            // Once it applied an assignment, a recorder must run one the hub
            // gave it, and none older than the last applied one.
            let judged = first_applied_at
                .as_deref()
                .is_some_and(|f| f <= at.as_str());
            if let (Some(applied), true) = (&applied_hash, judged) {
                let version_of = |hash: &str| -> anyhow::Result<Option<i64>> {
                    Ok(tx
                        .prepare_cached(
                            "SELECT MAX(version) FROM config_assignments WHERE device_id = ?1 AND config_hash = ?2",
                        )?
                        .query_row(params![device, hash], |r| r.get::<_, Option<i64>>(0))?)
                };
                let given = match config_hash {
                    Some(h) => version_of(h)?,
                    None => None,
                };
                let after_applied = applied_at.as_deref().is_some_and(|a| a <= at.as_str());
                let runs = match (config_hash, reason) {
                    (Some(h), _) => format!("runs configuration {}", short(h)),
                    (None, Some(r)) => format!("holds no readable configuration ({r})"),
                    (None, None) => "holds no readable configuration".to_owned(),
                };
                let drift = match given {
                    None => Some("that the hub never assigned it"),
                    Some(v) if after_applied && Some(v) < version_of(applied)? => {
                        Some("an older assignment than the one applied to it")
                    }
                    _ => None,
                };
                if let Some(what) = drift {
                    alert(
                        AlertKind::ConfigDrift,
                        &format!(
                            "recorder {device} {runs}, {what} ({} applied at {}): changed behind the hub's back (read by {} at {at})",
                            short(applied),
                            applied_at.as_deref().unwrap_or("?"),
                            b.agent_id
                        ),
                    )?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// `reported_at`, `applied_hash`, `applied_at`, `first_applied_at` of a recorder.
type Reported = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

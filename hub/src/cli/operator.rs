//! The operator's commands on the hub machine: devices, officers, units,
//! tokens, the audit log and configuration checks. They work on the store
//! directly (the hub may be running); every change is written to the audit
//! log as `cli:<user>`, signed with the hub key like the API's entries.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{AuditAction, BrokerAction, DevicesAction, OfficersAction, TokensAction, UnitsAction};
use crate::config::HubConfig;
use crate::server::hub_key;
use crate::store::{
    apply_liveness, AuditEvent, DeviceKind, DeviceState, NewAssignment, Officer, Role, Roster,
    Store, Unit,
};

/// The store and who is acting (the hub key is loaded when a change is audited).
pub(super) struct Operator {
    pub(super) store: Store,
    pub(super) actor: String,
    pub(super) cfg: HubConfig,
}

impl Operator {
    pub(super) fn open(config: Option<PathBuf>) -> anyhow::Result<Self> {
        let cfg = HubConfig::load(config.as_deref())?;
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("data_dir = {}: cannot create it", cfg.data_dir.display()))?;
        let store = Store::connect(&cfg.store_location())?;
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Ok(Self {
            store,
            actor: format!("cli:{user}"),
            cfg,
        })
    }

    /// Writes an audit entry for a change made from the command line, before
    /// it is made (so none lands without its entry; a refused one keeps it).
    pub(super) fn audited(
        &mut self,
        action: &str,
        target: &str,
        detail: String,
    ) -> anyhow::Result<()> {
        let ev = AuditEvent {
            actor: self.actor.clone(),
            role: "admin".into(),
            action: action.into(),
            target: target.into(),
            remote: "cli".into(),
            detail,
            records: Vec::new(),
        };
        let key = hub_key(&self.cfg.data_dir)?;
        self.store.audit(&key, &ev)?;
        Ok(())
    }

    /// Adds or replaces one officer or unit.
    fn put<T: Roster>(&mut self, item: T) -> anyhow::Result<()> {
        let p = item.problems();
        anyhow::ensure!(p.is_empty(), "{}", p.join("; "));
        self.audited(&format!("{}.put", T::KIND), item.key(), String::new())?;
        T::upsert(&mut self.store, std::slice::from_ref(&item))?;
        println!("{} {} saved", T::KIND, item.key());
        Ok(())
    }

    /// Imports officers or units from a CSV file: all rows or none.
    fn import<T: Roster>(&mut self, file: &Path) -> anyhow::Result<()> {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let rows = T::parse_csv(&text).map_err(|p| {
            anyhow::anyhow!(
                "{}: {} problem(s), nothing imported:\n  {}",
                file.display(),
                p.len(),
                p.join("\n  ")
            )
        })?;
        let kind = format!("{}s", T::KIND);
        self.audited(
            &format!("{kind}.import"),
            &kind,
            format!("{} rows from {}", rows.len(), file.display()),
        )?;
        let n = T::upsert(&mut self.store, &rows)?;
        println!("{n} {kind} imported from {}", file.display());
        Ok(())
    }

    /// The hub's public key, from the key the hub made at its first run.
    fn public_key(&self) -> anyhow::Result<evsync_protocol::signing::PublicKey> {
        let path = self.cfg.data_dir.join("hub.key");
        anyhow::ensure!(
            path.exists(),
            "no hub key at {}: data_dir = {} is not where this hub keeps its data",
            path.display(),
            self.cfg.data_dir.display()
        );
        Ok(hub_key(&self.cfg.data_dir)?.public())
    }
}

pub(super) fn json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub(super) fn or_dash<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// `evsync-hub devices …`
pub fn devices(config: Option<PathBuf>, action: DevicesAction) -> anyhow::Result<()> {
    let mut op = Operator::open(config)?;
    let offline_after = std::time::Duration::from_secs(op.cfg.fleet.offline_after_secs);
    match action {
        DevicesAction::List {
            kind,
            json: as_json,
        } => {
            let mut list = op.store.devices()?;
            apply_liveness(&mut list, offline_after);
            if let Some(k) = &kind {
                anyhow::ensure!(
                    crate::store::DeviceKind::from_name(k).is_some(),
                    "--kind {k:?}: expected dock, field or recorder"
                );
                list.retain(|d| d.kind.as_str() == k);
            }
            if as_json {
                return json(&list);
            }
            println!(
                "{:<24} {:<8} {:<8} {:<7} {:<7} {:<12} {:<4} {:>7} {:>9} {:<16} last seen",
                "device",
                "kind",
                "state",
                "online",
                "officer",
                "unit",
                "dom",
                "battery",
                "backlog",
                "docked in"
            );
            for d in list {
                println!(
                    "{:<24} {:<8} {:<8} {:<7} {:<7} {:<12} {:<4} {:>7} {:>9} {:<16} {}",
                    d.device_id,
                    d.kind.as_str(),
                    d.state.as_str(),
                    if d.online { "online" } else { "offline" },
                    or_dash(&d.officer_id),
                    or_dash(&d.unit_code),
                    or_dash(&d.domain),
                    d.battery_pct.map_or("-".into(), |b| format!("{b}%")),
                    or_dash(&d.backlog_records),
                    or_dash(&d.docked_in),
                    or_dash(&d.last_seen)
                );
            }
        }
        DevicesAction::Show {
            device_id,
            at,
            json: as_json,
        } => {
            let at = at
                .map(|t| crate::store::parse_time("--at", &t).map(crate::store::stamp))
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let mut all = op.store.devices()?;
            apply_liveness(&mut all, offline_after);
            let d = all
                .into_iter()
                .find(|d| d.device_id == device_id)
                .with_context(|| {
                    format!("no device {device_id:?} (see `evsync-hub devices list`)")
                })?;
            let history = op.store.assignments(&device_id)?;
            let then = match &at {
                Some(t) => Some((t.clone(), op.store.assignment_at(&device_id, t)?)),
                None => None,
            };
            if as_json {
                let mut v = serde_json::json!(d);
                v["assignments"] = serde_json::json!(history);
                if let Some((_, a)) = &then {
                    v["assigned_at"] = serde_json::json!(a);
                }
                return json(&v);
            }
            println!(
                "device      {} ({}, {})",
                d.device_id,
                d.kind.as_str(),
                d.state.as_str()
            );
            println!(
                "online      {} (last seen {})",
                d.online,
                or_dash(&d.last_seen)
            );
            println!("key         {}", or_dash(&d.public_key));
            println!(
                "software    {}  firmware {}  config {}",
                or_dash(&d.software),
                or_dash(&d.firmware),
                or_dash(&d.config_version)
            );
            println!(
                "assigned    officer {}  unit {}  domain {}",
                or_dash(&d.officer_id),
                or_dash(&d.unit_code),
                or_dash(&d.domain)
            );
            println!(
                "status      battery {}  storage {}/{} bytes free  clock offset {} ms  backlog {} records / {} bytes  docked in {}",
                or_dash(&d.battery_pct),
                or_dash(&d.storage_free_bytes),
                or_dash(&d.storage_total_bytes),
                or_dash(&d.clock_offset_ms),
                or_dash(&d.backlog_records),
                or_dash(&d.backlog_bytes),
                or_dash(&d.docked_in)
            );
            if let Some((t, a)) = &then {
                match a {
                    Some(a) => println!(
                        "at {t}  officer {}  unit {}  domain {}  ({} by {})",
                        or_dash(&a.officer_id),
                        or_dash(&a.unit_code),
                        or_dash(&a.domain),
                        a.source,
                        a.by
                    ),
                    None => println!("at {t}  assigned to nobody"),
                }
            }
            println!("history");
            for a in history {
                println!(
                    "  {} .. {}  officer {}  unit {}  domain {}  ({} by {})",
                    a.from,
                    a.to.as_deref().unwrap_or("now"),
                    or_dash(&a.officer_id),
                    or_dash(&a.unit_code),
                    or_dash(&a.domain),
                    a.source,
                    a.by
                );
            }
        }
        DevicesAction::Approve { device_id } => {
            op.audited("device.approve", &device_id, String::new())?;
            let d = op
                .store
                .set_device_state(&device_id, DeviceState::Approved)?;
            println!(
                "{} approved ({})",
                d.device_id,
                d.public_key.map_or(
                    "a recorder: its dock signs its records".into(),
                    |k| format!("key {k}")
                )
            );
        }
        DevicesAction::Revoke { device_id } => {
            op.audited("device.revoke", &device_id, String::new())?;
            let d = op
                .store
                .set_device_state(&device_id, DeviceState::Revoked)?;
            println!("{} revoked", d.device_id);
        }
        DevicesAction::Register { device_id } => {
            op.audited("device.register", &device_id, String::new())?;
            let d = op.store.register_recorder(&device_id)?;
            println!("recorder {} registered ({})", d.device_id, d.state.as_str());
        }
        DevicesAction::Credential { device_id, kind } => {
            let kind = DeviceKind::from_name(&kind)
                .filter(|k| k.is_agent())
                .ok_or_else(|| anyhow::anyhow!("--kind {kind:?}: expected dock or field"))?;
            let secret = crate::mosquitto::new_secret()?;
            let hash = crate::mosquitto::password_hash(&secret)?;
            op.audited("device.credential", &device_id, kind.as_str().to_owned())?;
            let actor = op.actor.clone();
            op.store.set_credential(&device_id, kind, &hash, &actor)?;
            println!("{secret}");
            eprintln!(
                "broker credential of {device_id} (user {device_id}); shown this once: put it in the file the agent's mqtt.password_file names (mode 0600), then run `evsync-hub broker mosquitto`. Its first announcement pins its key; approve it then (`evsync-hub devices approve {device_id}`) unless auto_approve is on"
            );
        }
        DevicesAction::Assign {
            device_id,
            officer,
            unit,
            domain,
        } => {
            let a = NewAssignment {
                officer_id: officer,
                unit_code: unit,
                domain,
            };
            let actor = op.actor.clone();
            let p = a.problems();
            anyhow::ensure!(p.is_empty(), "{}", p.join("; "));
            op.audited("device.assign", &device_id, serde_json::to_string(&a)?)?;
            op.store.assign(&device_id, &a, &actor)?;
            println!(
                "{device_id} assigned to officer {} of unit {} (domain {})",
                or_dash(&a.officer_id),
                or_dash(&a.unit_code),
                or_dash(&a.domain)
            );
        }
    }
    Ok(())
}

/// `evsync-hub officers …`
pub fn officers(config: Option<PathBuf>, action: OfficersAction) -> anyhow::Result<()> {
    let mut op = Operator::open(config)?;
    match action {
        OfficersAction::List {
            unit,
            json: as_json,
        } => {
            let list = op.store.officers(unit.as_deref())?;
            if as_json {
                return json(&list);
            }
            println!(
                "{:<8} {:<12} {:<14} {:<6} active",
                "officer", "name", "unit", "domain"
            );
            for o in list {
                println!(
                    "{:<8} {:<12} {:<14} {:<6} {}",
                    o.officer_id,
                    o.name,
                    or_dash(&o.unit_code),
                    or_dash(&o.domain),
                    o.active
                );
            }
        }
        OfficersAction::Add {
            id,
            name,
            unit,
            domain,
        } => {
            let o = Officer {
                officer_id: id,
                name,
                unit_code: unit,
                domain,
                active: true,
            };
            op.put(o)?;
        }
        OfficersAction::Import { file } => {
            op.import::<Officer>(&file)?;
        }
    }
    Ok(())
}

/// `evsync-hub units …`
pub fn units(config: Option<PathBuf>, action: UnitsAction) -> anyhow::Result<()> {
    let mut op = Operator::open(config)?;
    match action {
        UnitsAction::List { json: as_json } => {
            let list = op.store.units()?;
            if as_json {
                return json(&list);
            }
            println!("{:<14} {:<8} {:<6} name", "unit", "district", "domain");
            for u in list {
                println!(
                    "{:<14} {:<8} {:<6} {}",
                    u.unit_code,
                    or_dash(&u.district_code),
                    or_dash(&u.domain),
                    u.name
                );
            }
        }
        UnitsAction::Add {
            code,
            name,
            district,
            domain,
        } => {
            let u = Unit {
                unit_code: code,
                name,
                district_code: district,
                domain,
                parent_code: None,
            };
            op.put(u)?;
        }
        UnitsAction::Import { file } => {
            op.import::<Unit>(&file)?;
        }
    }
    Ok(())
}

/// `evsync-hub tokens …`
pub fn tokens(config: Option<PathBuf>, action: TokensAction) -> anyhow::Result<()> {
    let mut op = Operator::open(config)?;
    match action {
        TokensAction::Create {
            name,
            role,
            json: as_json,
        } => {
            let role = Role::parse(&role)?;
            let actor = op.actor.clone();
            op.audited("token.create", &name, format!("role {}", role.as_str()))?;
            let t = op.store.create_token(&name, role, &actor)?;
            if as_json {
                return json(&t);
            }
            eprintln!(
                "token {} for {} with role {}; shown this once, keep it safe:",
                t.row.id,
                t.row.name,
                role.as_str()
            );
            println!("{}", t.token);
        }
        TokensAction::List { json: as_json } => {
            let list = op.store.tokens()?;
            if as_json {
                return json(&list);
            }
            println!(
                "{:<9} {:<20} {:<9} {:<25} revoked",
                "id", "name", "role", "created"
            );
            for t in list {
                println!(
                    "{:<9} {:<20} {:<9} {:<25} {}",
                    t.id,
                    t.name,
                    t.role.as_str(),
                    t.created_at,
                    or_dash(&t.revoked_at)
                );
            }
        }
        TokensAction::Revoke { id } => {
            op.audited("token.revoke", &id, String::new())?;
            let t = op.store.revoke_token(&id)?;
            println!("token {} ({}) revoked", t.id, t.name);
        }
    }
    Ok(())
}

/// `evsync-hub audit …`
pub fn audit(config: Option<PathBuf>, action: AuditAction) -> anyhow::Result<()> {
    let op = Operator::open(config)?;
    match action {
        AuditAction::Verify { json: as_json } => {
            let check = op.store.verify_audit(&op.public_key()?)?;
            if as_json {
                json(&check)?;
            } else if check.intact {
                println!(
                    "audit log intact: {} entries, head {}",
                    check.entries, check.head
                );
            }
            if let (Some(seq), Some(problem)) = (check.first_bad_seq, &check.problem) {
                anyhow::bail!("audit log broken at entry {seq}: {problem}");
            }
        }
        AuditAction::List {
            after,
            limit,
            json: as_json,
        } => {
            let entries = op.store.audit_entries(after, limit)?;
            if as_json {
                return json(&entries);
            }
            for e in entries {
                println!(
                    "{:>6} {} {:<20} {:<9} {:<16} {} from {} {}",
                    e.seq, e.at, e.actor, e.role, e.action, e.target, e.remote, e.detail
                );
            }
        }
    }
    Ok(())
}

/// A URL with any `user:password@` shown as `***@`.
/// `evsync-hub broker …`
pub fn broker(config: Option<PathBuf>, action: BrokerAction) -> anyhow::Result<()> {
    if let BrokerAction::TlsInit { dir, names } = &action {
        let f = crate::tls::init(dir, names)?;
        println!(
            "wrote {} (agents trust it: mqtt.ca_file, upload.ca_file), {} (keep it offline), {} and {} (for {})",
            f.ca_cert.display(),
            f.ca_key.display(),
            f.server_cert.display(),
            f.server_key.display(),
            names.join(", ")
        );
        return Ok(());
    }
    let op = Operator::open(config)?;
    match action {
        BrokerAction::TlsInit { .. } => {}
        BrokerAction::Mosquitto {
            dir,
            tls_port,
            tls_dir,
            plain_port,
            bind,
        } => {
            let user = op.cfg.mqtt_user();
            let secret_file = op.cfg.mqtt_password_file();
            let secret = crate::mosquitto::hub_secret(&secret_file)?;
            let users = op.store.broker_users()?;
            let (passwd, acl) = crate::mosquitto::write_files(&dir, &user, &secret, &users)?;
            println!(
                "wrote {} and {} ({} agent(s) and the hub as {user}). In mosquitto.conf:\n  allow_anonymous false\n  password_file {}\n  acl_file {}\nand in hub.toml [mqtt]: password_file = {:?}. Send Mosquitto SIGHUP to load them.",
                passwd.display(),
                acl.display(),
                users.len(),
                passwd.display(),
                acl.display(),
                secret_file.display().to_string()
            );
            if tls_port.is_some() || plain_port.is_some() {
                let listeners = crate::mosquitto::Listeners {
                    tls: tls_port.zip(tls_dir),
                    plain: plain_port,
                    bind,
                };
                let conf = crate::mosquitto::write_conf(&dir, &listeners)?;
                println!(
                    "wrote {} (run: mosquitto -c {})",
                    conf.display(),
                    conf.display()
                );
            }
        }
    }
    Ok(())
}

fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority = rest.find('/').unwrap_or(rest.len());
    match rest[..authority].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// `evsync-hub check-config`: every problem at once, exit 1 if any.
pub fn check_config(config: Option<&Path>) -> anyhow::Result<()> {
    let origin = config.map_or_else(|| "defaults".to_owned(), |p| p.display().to_string());
    match HubConfig::check(config).and_then(|cfg| {
        let p = cfg.serve_problems();
        if p.is_empty() {
            Ok(cfg)
        } else {
            Err(p)
        }
    }) {
        Ok(cfg) => {
            println!(
                "{origin}: ok (hub_id {}, data_dir {}, broker {}, api {}, media {})",
                cfg.hub_id,
                cfg.data_dir.display(),
                if cfg.mqtt.embedded {
                    let m = &cfg.mqtt;
                    format!(
                        "embedded on {} ({}, {})",
                        m.listen,
                        if m.require_auth {
                            "device credentials required"
                        } else {
                            "open: require_auth = false"
                        },
                        match (m.require_tls, m.tls_cert.is_some()) {
                            (true, _) => "TLS required",
                            (false, true) => "TLS offered",
                            (false, false) => "no TLS",
                        }
                    )
                } else {
                    redacted(cfg.mqtt.url.as_deref().unwrap_or_default())
                },
                if cfg.http.tls_cert.is_some() {
                    format!("https://{}", cfg.http.listen)
                } else {
                    cfg.http.listen.to_string()
                },
                match (&cfg.media.store, &cfg.media.s3) {
                    (crate::config::BlobStore::S3, Some(s3)) => format!(
                        "in s3://{}/{}<sha256>, partials in {}",
                        s3.bucket,
                        if s3.prefix.is_empty() {
                            String::new()
                        } else {
                            format!("{}/", s3.prefix)
                        },
                        cfg.partials_dir().display()
                    ),
                    _ => format!(
                        "in {}, partials in {}",
                        cfg.data_dir.join("blobs").display(),
                        cfg.partials_dir().display()
                    ),
                }
            );
            Ok(())
        }
        Err(p) => anyhow::bail!("{origin}: {} problem(s):\n  {}", p.len(), p.join("\n  ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_broker_url_are_not_printed() {
        assert_eq!(
            redacted("mqtt://hub:s3cret@10.1.2.3:1883"),
            "mqtt://***@10.1.2.3:1883"
        );
        assert_eq!(redacted("mqtt://127.0.0.1:1883"), "mqtt://127.0.0.1:1883");
        assert_eq!(redacted("mqtt://h:1883/a@b"), "mqtt://h:1883/a@b");
    }
}

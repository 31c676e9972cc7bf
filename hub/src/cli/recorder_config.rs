//! `evsync-hub config …`: the recorder configuration policy (layers),
//! what it makes of one recorder and why, staged rollouts of signed
//! assignments, and where every recorder stands.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

use super::operator::{json, or_dash, Operator};
use crate::server::hub_key;
use crate::store::{Issuer, LayerScope, Rollout};

/// Recorder configuration subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Set the overrides of one layer from a TOML file of recorder settings (see `config show`).
    Set {
        /// fleet, unit, class or device.
        #[arg(value_parser = scope)]
        scope: LayerScope,
        /// Unit code, class name or device id (none for the fleet).
        key: Option<String>,
        /// The overrides: a partial recorder configuration, e.g. `[video]\nbitrate_kbps = 6000`.
        #[arg(long)]
        file: PathBuf,
    },
    /// Remove one layer.
    Clear {
        /// fleet, unit, class or device.
        #[arg(value_parser = scope)]
        scope: LayerScope,
        /// Unit code, class name or device id (none for the fleet).
        key: Option<String>,
    },
    /// List the layers with their overrides.
    Layers {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Put a recorder in a class (a model or batch), the layer between unit and device.
    Class {
        /// Recorder id.
        device_id: String,
        /// Class name; omit with --clear.
        class: Option<String>,
        /// Take the recorder out of its class.
        #[arg(long, conflicts_with = "class")]
        clear: bool,
    },
    /// A recorder's effective configuration, where each value came from, and where it stands.
    Show {
        /// Recorder id.
        device_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign and publish the effective configuration of some recorders (those whose configuration changed).
    Rollout {
        /// Which recorders.
        #[command(flatten)]
        to: Targets,
        /// Say what would change; sign and publish nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Where every recorder with an assignment stands: assigned, delivered, applied or failed.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Which recorders a rollout reaches: exactly one of these.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct Targets {
    /// Every recorder.
    #[arg(long)]
    all: bool,
    /// A stable share of the recorders, 1 to 100 (a larger share includes a smaller one).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100))]
    percent: Option<u8>,
    /// The recorders of these units (comma-separated unit codes).
    #[arg(long, value_delimiter = ',')]
    units: Vec<String>,
    /// These recorders (comma-separated ids).
    #[arg(long, value_delimiter = ',')]
    devices: Vec<String>,
}

impl Targets {
    /// The rollout these arguments name.
    pub fn rollout(self) -> Rollout {
        match (self.all, self.percent) {
            (true, _) => Rollout::All,
            (false, Some(n)) => Rollout::Percent(n),
            _ if !self.units.is_empty() => Rollout::Units(self.units),
            _ => Rollout::Devices(self.devices),
        }
    }
}

/// The hub's HTTP address as docks reach it: `media.public_url`, or the
/// listening address.
pub fn base_url(cfg: &crate::config::HubConfig) -> String {
    cfg.media
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", cfg.http.listen))
}

fn scope(s: &str) -> Result<LayerScope, String> {
    match s {
        "fleet" => Ok(LayerScope::Fleet),
        "unit" => Ok(LayerScope::Unit),
        "class" => Ok(LayerScope::Class),
        "device" => Ok(LayerScope::Device),
        other => Err(format!("{other:?}: expected fleet, unit, class or device")),
    }
}

/// `evsync-hub config …`
pub fn run(config: Option<PathBuf>, action: ConfigAction) -> anyhow::Result<()> {
    let mut op = Operator::open(config)?;
    match action {
        ConfigAction::Set { scope, key, file } => {
            let key = key.unwrap_or_default();
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            // Checked before the audit entry, so a refused file leaves none.
            firmware_config::Overrides::from_toml(&text)
                .with_context(|| format!("{}", file.display()))?;
            op.audited("config.set", &layer_name(scope, &key), text.clone())?;
            let actor = op.actor.clone();
            let set = op.store.set_config_layer(scope, &key, &text, &actor)?;
            println!(
                "{} set: {} setting(s); `evsync-hub config rollout` assigns it",
                layer_name(scope, &key),
                set.paths().count()
            );
        }
        ConfigAction::Clear { scope, key } => {
            let key = key.unwrap_or_default();
            op.audited("config.clear", &layer_name(scope, &key), String::new())?;
            if op.store.clear_config_layer(scope, &key)? {
                println!("{} cleared", layer_name(scope, &key));
            } else {
                println!("{} had no overrides", layer_name(scope, &key));
            }
        }
        ConfigAction::Layers { json: as_json } => {
            let layers = op.store.config_layers()?;
            if as_json {
                return json(&layers);
            }
            if layers.is_empty() {
                println!("no layers: every recorder gets the defaults (see `evsync-hub config show <recorder>`)");
            }
            for l in layers {
                println!(
                    "# {} (by {}, {})\n{}",
                    layer_name(l.scope, &l.key),
                    l.by_whom,
                    l.updated_at,
                    l.overrides
                );
            }
        }
        ConfigAction::Class {
            device_id,
            class,
            clear,
        } => {
            anyhow::ensure!(
                class.is_some() || clear,
                "give a class name, or --clear to take {device_id} out of its class"
            );
            op.audited(
                "config.class",
                &device_id,
                class.clone().unwrap_or_default(),
            )?;
            op.store.set_device_class(&device_id, class.as_deref())?;
            match class {
                Some(c) => println!("{device_id} is in class {c}"),
                None => println!("{device_id} is in no class"),
            }
        }
        ConfigAction::Show {
            device_id,
            json: as_json,
        } => {
            let effective = op.store.config_effective(&device_id)?;
            let status = op.store.config_status(&device_id)?;
            let hash = effective.config.content_hash();
            if as_json {
                return json(&serde_json::json!({
                    "device_id": device_id,
                    "effective": {
                        "config_hash": hash,
                        "config": effective.config.to_toml(),
                        "sources": effective.sources.iter().map(|(k, v)| (k.clone(), v.to_string())).collect::<std::collections::BTreeMap<_, _>>(),
                    },
                    "assignment": status,
                }));
            }
            println!("{}", effective.explain());
            println!("effective hash {hash}");
            match status {
                None => {
                    println!("never assigned: `evsync-hub config rollout --devices {device_id}`")
                }
                Some(s) => {
                    println!(
                        "assigned version {} ({}): {}{} since {}",
                        s.version,
                        s.config_hash,
                        s.state,
                        s.reason
                            .as_ref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default(),
                        s.state_at
                    );
                    println!(
                        "running {} (read {} by {})",
                        or_dash(&s.running_hash),
                        or_dash(&s.running_at),
                        or_dash(&s.reported_by)
                    );
                    if let Some(v) = &s.firmware_version {
                        println!(
                            "firmware {v}: {}{}",
                            or_dash(&s.firmware_state),
                            s.firmware_reason
                                .as_ref()
                                .map(|r| format!(": {r}"))
                                .unwrap_or_default()
                        );
                    }
                    if s.config_hash != hash {
                        println!("the policy changed since: `evsync-hub config rollout --devices {device_id}` assigns it");
                    }
                }
            }
        }
        ConfigAction::Rollout {
            to,
            dry_run,
            json: as_json,
        } => rollout_to(&mut op, &to.rollout(), dry_run, as_json)?,
        ConfigAction::Status { json: as_json } => {
            let statuses = op.store.config_statuses()?;
            if as_json {
                return json(&statuses);
            }
            println!(
                "{:<20} {:>7}  {:<9} {:<13} {:<13} {:<24} reason",
                "recorder", "version", "state", "assigned", "running", "since"
            );
            for s in statuses {
                println!(
                    "{:<20} {:>7}  {:<9} {:<13} {:<13} {:<24} {}",
                    s.device_id,
                    s.version,
                    s.state,
                    &s.config_hash[..12.min(s.config_hash.len())],
                    s.running_hash
                        .as_deref()
                        .map_or("-", |h| &h[..12.min(h.len())]),
                    s.state_at,
                    s.reason.as_deref().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}

fn layer_name(scope: LayerScope, key: &str) -> String {
    if key.is_empty() {
        scope.as_str().to_owned()
    } else {
        format!("{} {key}", scope.as_str())
    }
}

pub(super) fn rollout_to(
    op: &mut Operator,
    rollout: &Rollout,
    dry_run: bool,
    as_json: bool,
) -> anyhow::Result<()> {
    let targets = op.store.rollout_targets(rollout)?;
    anyhow::ensure!(
        !targets.is_empty(),
        "no recorder of the fleet matches {rollout}"
    );
    let mut out = Vec::new();
    if dry_run {
        let base = base_url(&op.cfg);
        for id in &targets {
            if let Some(p) = op.store.planned(id, &base)? {
                out.push(serde_json::json!({
                    "device_id": id,
                    "config_hash": p.hash,
                    "changes": p.changes.iter().map(ToString::to_string).collect::<Vec<_>>(),
                }));
            }
        }
    } else {
        op.audited(
            "config.rollout",
            &rollout.to_string(),
            format!("{} recorder(s)", targets.len()),
        )?;
        let key = hub_key(&op.cfg.data_dir)?;
        let (hub_id, actor, base) = (op.cfg.hub_id.clone(), op.actor.clone(), base_url(&op.cfg));
        let issuer = Issuer {
            hub_id: &hub_id,
            by: &actor,
            base_url: &base,
        };
        for id in &targets {
            if let Some(issued) = op.store.issue_config(id, &key, &issuer, rollout)? {
                out.push(serde_json::json!({
                    "device_id": issued.device_id,
                    "version": issued.version,
                    "config_hash": issued.config_hash,
                    "changes": issued.changes.iter().map(ToString::to_string).collect::<Vec<_>>(),
                }));
            }
        }
    }
    if as_json {
        return json(&out);
    }
    for o in &out {
        println!(
            "{} {}{}",
            o["device_id"].as_str().unwrap_or_default(),
            o["version"]
                .as_u64()
                .map_or_else(|| "would change".to_owned(), |v| format!("version {v}")),
            o["changes"]
                .as_array()
                .map(|c| c
                    .iter()
                    .filter_map(|c| c.as_str())
                    .map(|c| format!("\n    {c}"))
                    .collect::<String>())
                .unwrap_or_default()
        );
    }
    println!(
        "{} of {} recorder(s) matching {rollout} {}",
        out.len(),
        targets.len(),
        if dry_run {
            "would get a new assignment"
        } else {
            "got a new assignment (the running hub publishes it within a second)"
        }
    );
    Ok(())
}

//! The `evsync-hub` command line: serve, demo, and the operator's commands
//! (devices, officers, units, tokens, audit, recorder configuration and
//! firmware, check-config).

mod firmware;
mod operator;
mod recorder_config;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use evsync_agent::cli::{exit_code, init_logging, StopSignals};

use crate::config::HubConfig;
use crate::demo::{self, DemoOptions};
use crate::server::{hub_key, Hub};
pub use firmware::FirmwareAction;
use operator::{audit, check_config, devices, officers, tokens, units};
pub use recorder_config::ConfigAction;

/// evsync hub: embedded MQTT broker, verification and storage of records,
/// the records feed for the supervision platform, and device enrollment.
#[derive(Debug, Parser)]
#[command(name = "evsync-hub", version)]
pub struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub until SIGINT/SIGTERM.
    Serve {
        /// The hub's TOML configuration (defaults apply without one).
        #[arg(long, short, env = "EVSYNC_HUB_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run the whole system on this machine: hub, embedded broker, field agents with generated data, and a dock with simulated recorders.
    Demo {
        /// Data folder (a temporary one if absent).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Keep serving after `ready` until SIGINT/SIGTERM.
        #[arg(long)]
        serve: bool,
        /// API address (default: a free loopback port).
        #[arg(long)]
        http: Option<SocketAddr>,
        /// Embedded broker address (default: a free loopback port).
        #[arg(long)]
        mqtt: Option<SocketAddr>,
        /// Number of field agents.
        #[arg(long, default_value_t = 2)]
        agents: usize,
        /// Events per agent.
        #[arg(long, default_value_t = 200)]
        events: usize,
        /// MP4 recordings per agent.
        #[arg(long, default_value_t = 5)]
        recordings: usize,
        /// Simulated recorders docked in the demo dock, one per slot (0: no dock; needs ffmpeg otherwise).
        #[arg(long, default_value_t = 3)]
        recorders: usize,
        /// New MP4 recordings on each simulated recorder per run.
        #[arg(long, default_value_t = 3)]
        recorder_recordings: u32,
    },
    /// The fleet's devices: list, show, approve, revoke, register recorders, assign.
    Devices {
        /// The hub's TOML configuration.
        #[arg(long, short, env = "EVSYNC_HUB_CONFIG", global = true)]
        config: Option<PathBuf>,
        /// What to do with devices.
        #[command(subcommand)]
        action: DevicesAction,
    },
    /// Enforcement officers: list, add, import from CSV.
    Officers {
        /// The hub's TOML configuration.
        #[arg(long, short, env = "EVSYNC_HUB_CONFIG", global = true)]
        config: Option<PathBuf>,
        /// What to do with officers.
        #[command(subcommand)]
        action: OfficersAction,
    },
    /// Enforcement units: list, add, import from CSV.
    Units {
        /// The hub's TOML configuration.
        #[arg(long, short, env = "EVSYNC_HUB_CONFIG", global = true)]
        config: Option<PathBuf>,
        /// What to do with units.
        #[command(subcommand)]
        action: UnitsAction,
    },
    /// API tokens with roles (admin, operator, platform, auditor).
    Tokens {
        /// The hub's TOML configuration.
        #[arg(long, short, env = "EVSYNC_HUB_CONFIG", global = true)]
        config: Option<PathBuf>,
        /// What to do with tokens.
        #[command(subcommand)]
        action: TokensAction,
    },
    /// The audit log of evidence reads and operator actions.
    Audit {
        /// The hub's TOML configuration.
        #[arg(long, short, env = "EVSYNC_HUB_CONFIG", global = true)]
        config: Option<PathBuf>,
        /// What to do with the audit log.
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Recorder configuration: policy layers, what a recorder gets and why, staged rollouts, status.
    Config {
        /// The hub's TOML configuration.
        #[arg(long, short, env = "EVSYNC_HUB_CONFIG", global = true)]
        config: Option<PathBuf>,
        /// What to do with recorder configuration.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Recorder firmware images: register, list, roll out.
    Firmware {
        /// The hub's TOML configuration.
        #[arg(long, short, env = "EVSYNC_HUB_CONFIG", global = true)]
        config: Option<PathBuf>,
        /// What to do with firmware.
        #[command(subcommand)]
        action: FirmwareAction,
    },
    /// An external broker's files: Mosquitto's password file and ACL, from the agents' credentials.
    Broker {
        /// The hub's TOML configuration.
        #[arg(long, short, env = "EVSYNC_HUB_CONFIG", global = true)]
        config: Option<PathBuf>,
        /// What to write.
        #[command(subcommand)]
        action: BrokerAction,
    },
    /// Check a configuration file and the environment overrides; report every problem at once.
    CheckConfig {
        /// The hub's TOML configuration.
        #[arg(long, short, env = "EVSYNC_HUB_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the hub's public key (creating the key at first use); agents pin it.
    Key {
        /// The hub's TOML configuration.
        #[arg(long, short, env = "EVSYNC_HUB_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// Device subcommands.
#[derive(Debug, Subcommand)]
pub enum DevicesAction {
    /// List devices with kind, enrollment, assignment and live status.
    List {
        /// Only this kind: dock, field or recorder.
        #[arg(long)]
        kind: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One device with its live status and assignment history.
    Show {
        /// Device id.
        device_id: String,
        /// Also say who had it at this time (RFC 3339, e.g. 2026-11-23T09:00:00+08:00).
        #[arg(long)]
        at: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Trust a pending device's key: its records are accepted from now on.
    Approve {
        /// Device id.
        device_id: String,
    },
    /// Stop trusting a device: its records are refused from now on.
    Revoke {
        /// Device id.
        device_id: String,
    },
    /// Register a recorder before its first docking (approved).
    Register {
        /// Recorder id (its product serial).
        device_id: String,
    },
    /// Issue an agent's broker credential (printed once; only its hash is kept), enrolling it (pending) if new; then write the broker files again (`broker mosquitto`).
    Credential {
        /// The agent's device id (its MQTT user name and client id).
        device_id: String,
        /// dock or field.
        #[arg(long, default_value = "field")]
        kind: String,
    },
    /// Assign a device to an officer, unit and domain (closes the previous assignment).
    Assign {
        /// Device id.
        device_id: String,
        /// Officer number (6 digits); none to unassign.
        #[arg(long)]
        officer: Option<String>,
        /// Unit number (12 characters).
        #[arg(long)]
        unit: Option<String>,
        /// Enforcement domain (2 digits).
        #[arg(long)]
        domain: Option<String>,
    },
}

/// Broker subcommands.
#[derive(Debug, Subcommand)]
pub enum BrokerAction {
    /// Write `passwd` and `acl` for Mosquitto into a folder: each agent may use only its own
    /// topics, docks may also read recorders' config topics, the hub everything. Send Mosquitto
    /// SIGHUP afterwards.
    Mosquitto {
        /// The folder Mosquitto's `password_file` and `acl_file` point into.
        #[arg(long)]
        dir: PathBuf,
        /// Also write `<dir>/mosquitto.conf` with a TLS listener on this port
        /// (certificates from `--tls-dir`), authenticated and confined by the files.
        #[arg(long, requires = "tls_dir")]
        tls_port: Option<u16>,
        /// Folder with `ca.pem`, `server.pem` and `server.key` (`broker tls-init` makes them).
        #[arg(long)]
        tls_dir: Option<PathBuf>,
        /// Also a plain (unencrypted) listener on this port in `mosquitto.conf`, only if asked.
        #[arg(long)]
        plain_port: Option<u16>,
        /// Address the listeners of `mosquitto.conf` bind to (default: every interface).
        #[arg(long)]
        bind: Option<String>,
    },
    /// Make a private CA and a server certificate signed by it in a folder:
    /// `ca.pem` (give it to agents: `mqtt.ca_file`, `upload.ca_file`), `ca.key`
    /// (keep it offline), `server.pem` and `server.key` (for `mqtt.tls_cert` /
    /// `tls_key`, `http.tls_cert` / `tls_key`, or Mosquitto). Keys are 0600;
    /// nothing is overwritten.
    TlsInit {
        /// The folder to write into.
        dir: PathBuf,
        /// Names agents reach the hub by (DNS names or IP addresses); repeat for several.
        #[arg(long = "name", default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned()])]
        names: Vec<String>,
    },
}

/// Officer subcommands.
#[derive(Debug, Subcommand)]
pub enum OfficersAction {
    /// List officers.
    List {
        /// Only officers of this unit.
        #[arg(long)]
        unit: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add or replace one officer.
    Add {
        /// Officer number (6 digits).
        #[arg(long)]
        id: String,
        /// Name.
        #[arg(long)]
        name: String,
        /// Unit number (12 characters).
        #[arg(long)]
        unit: Option<String>,
        /// Enforcement domain (2 digits).
        #[arg(long)]
        domain: Option<String>,
    },
    /// Import officers from CSV (header: officer_id,name[,unit_code,domain,active]); all rows or none.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
}

/// Unit subcommands.
#[derive(Debug, Subcommand)]
pub enum UnitsAction {
    /// List units.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add or replace one unit.
    Add {
        /// Unit number (12 characters, the district's 6-digit code first).
        #[arg(long)]
        code: String,
        /// Name, e.g. 渝北区市场监督管理局.
        #[arg(long)]
        name: String,
        /// District division code (6 digits).
        #[arg(long)]
        district: Option<String>,
        /// Enforcement domain (2 digits).
        #[arg(long)]
        domain: Option<String>,
    },
    /// Import units from CSV (header: unit_code,name[,district_code,domain,parent_code]); all rows or none.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
}

/// Token subcommands.
#[derive(Debug, Subcommand)]
pub enum TokensAction {
    /// Create a token; it is printed this once (only its SHA-256 is kept).
    Create {
        /// Who holds it, e.g. platform-prod.
        #[arg(long)]
        name: String,
        /// admin, operator, platform or auditor.
        #[arg(long)]
        role: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token at once.
    Revoke {
        /// Token id.
        id: String,
    },
}

/// Audit subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Check the whole chain against the hub key; exit 1 if it is broken.
    Verify {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print entries.
    List {
        /// Entries after this position.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// The whole program: parses the command line, runs it, and turns an error
/// into a message on stderr and exit status 1.
pub async fn entry() -> std::process::ExitCode {
    exit_code("evsync-hub", main(Cli::parse()).await)
}

/// Runs the command line.
pub async fn main(cli: Cli) -> anyhow::Result<()> {
    init_logging(cli.log_json, None);
    match cli.command {
        Command::Serve { config } => {
            let mut stop = StopSignals::install()?;
            let cfg = HubConfig::load(config.as_deref())?;
            let mut hub = Hub::start(cfg).await?;
            eprintln!(
                "evsync-hub: api http://{0}  dashboard http://{0}/dashboard/  mqtt {1}  hub key {2}",
                hub.http_addr,
                hub.mqtt_url,
                hub.public_key.to_base64()
            );
            tokio::select! {
                _ = stop.wait() => {}
                e = hub.failed() => return Err(e),
            }
            tracing::info!("stopping");
            hub.shutdown().await
        }
        Command::Demo {
            data,
            serve,
            http,
            mqtt,
            agents,
            events,
            recordings,
            recorders,
            recorder_recordings,
        } => {
            let stop = StopSignals::install()?;
            demo::run(
                stop,
                DemoOptions {
                    data,
                    serve,
                    http,
                    mqtt,
                    agents,
                    events,
                    recordings,
                    recorders,
                    recorder_recordings,
                },
            )
            .await
        }
        Command::Devices { config, action } => devices(config, action),
        Command::Officers { config, action } => officers(config, action),
        Command::Units { config, action } => units(config, action),
        Command::Tokens { config, action } => tokens(config, action),
        Command::Audit { config, action } => audit(config, action),
        Command::Config { config, action } => recorder_config::run(config, action),
        Command::Broker { config, action } => operator::broker(config, action),
        Command::Firmware { config, action } => firmware::run(config, action),
        Command::CheckConfig { config } => check_config(config.as_deref()),
        Command::Key { config } => {
            let cfg = HubConfig::load(config.as_deref())?;
            std::fs::create_dir_all(&cfg.data_dir)?;
            println!("{}", hub_key(&cfg.data_dir)?.public().to_base64());
            Ok(())
        }
    }
}

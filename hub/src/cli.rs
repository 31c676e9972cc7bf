//! The `evsync-hub` command line: serve, demo, and device enrollment.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use evsync_agent::cli::{exit_code, init_logging, StopSignals};

use crate::config::HubConfig;
use crate::demo::{self, DemoOptions};
use crate::server::{hub_key, Hub};
use crate::store::{DeviceState, Store};

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
    /// Device enrollment.
    Devices {
        /// The hub's TOML configuration.
        #[arg(long, short, env = "EVSYNC_HUB_CONFIG", global = true)]
        config: Option<PathBuf>,
        /// What to do with devices.
        #[command(subcommand)]
        action: DevicesAction,
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
    /// List devices with their enrollment state.
    List {
        /// Print JSON instead of a table.
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
                "evsync-hub: api http://{}  mqtt {}  hub key {}",
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
        Command::Devices { config, action } => {
            let cfg = HubConfig::load(config.as_deref())?;
            let store = Store::open(&cfg.data_dir.join("hub.sqlite"))?;
            match action {
                DevicesAction::List { json } => {
                    let devices = store.devices()?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&devices)?);
                    } else {
                        println!(
                            "{:<28} {:<9} {:<7} {:<8} {:<13} last seen",
                            "device", "state", "role", "officer", "unit"
                        );
                        for d in devices {
                            println!(
                                "{:<28} {:<9} {:<7} {:<8} {:<13} {}",
                                d.device_id,
                                d.state.as_str(),
                                d.role.as_deref().unwrap_or("-"),
                                d.officer_id.as_deref().unwrap_or("-"),
                                d.unit_code.as_deref().unwrap_or("-"),
                                d.last_seen.as_deref().unwrap_or("-")
                            );
                        }
                    }
                }
                DevicesAction::Approve { device_id } => {
                    let d = store.set_device_state(&device_id, DeviceState::Approved)?;
                    println!("{} approved (key {})", d.device_id, d.public_key);
                }
                DevicesAction::Revoke { device_id } => {
                    let d = store.set_device_state(&device_id, DeviceState::Revoked)?;
                    println!("{} revoked", d.device_id);
                }
            }
            Ok(())
        }
        Command::Key { config } => {
            let cfg = HubConfig::load(config.as_deref())?;
            std::fs::create_dir_all(&cfg.data_dir)?;
            println!("{}", hub_key(&cfg.data_dir)?.public().to_base64());
            Ok(())
        }
    }
}

//! The `evsync-agent` command line.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::agent::{device_key, Agent};
use crate::config::AgentConfig;

/// evsync edge agent: picks up recordings and events, signs them, buffers
/// them durably and syncs them to the hub over MQTT.
#[derive(Debug, Parser)]
#[command(name = "evsync-agent", version)]
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
    /// Run the agent until SIGINT/SIGTERM.
    Run {
        /// The agent's TOML configuration.
        #[arg(long, short, env = "EVSYNC_AGENT_CONFIG")]
        config: PathBuf,
    },
    /// Print this device's public key (creating the key at first use), for enrollment.
    Key {
        /// The agent's TOML configuration.
        #[arg(long, short, env = "EVSYNC_AGENT_CONFIG")]
        config: PathBuf,
    },
    /// Print what waits in the buffer.
    Backlog {
        /// The agent's TOML configuration.
        #[arg(long, short, env = "EVSYNC_AGENT_CONFIG")]
        config: PathBuf,
    },
}

/// Sets up logging (text, or JSON lines), filtered by `RUST_LOG`. The default is
/// `info` with the embedded broker's own logs off: rumqttd logs every ordinary
/// disconnect as an error (`RUST_LOG=info,rumqttd=info` shows them).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// SIGINT and SIGTERM handlers, installed before anything starts so that a
/// signal arriving during start-up still leads to a clean stop.
pub struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Installs the handlers.
    pub fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    /// Waits for SIGINT or SIGTERM.
    pub async fn wait(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

/// The whole program: parses the command line, runs it, and turns an error
/// into a message on stderr and exit status 1.
pub async fn entry() -> std::process::ExitCode {
    exit_code("evsync-agent", main(Cli::parse()).await)
}

/// Exit status of a program's run: 0, or 1 with `program: error (causes)` on stderr.
pub fn exit_code(program: &str, result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the command line.
pub async fn main(cli: Cli) -> anyhow::Result<()> {
    init_logging(cli.log_json);
    match cli.command {
        Command::Run { config } => {
            let mut stop = StopSignals::install()?;
            let cfg = AgentConfig::load(&config)?;
            let mut agent = Agent::start(cfg).await?;
            tokio::select! {
                _ = stop.wait() => {}
                e = agent.failed() => return Err(e),
            }
            tracing::info!("stopping");
            agent.shutdown().await
        }
        Command::Key { config } => {
            let cfg = AgentConfig::load(&config)?;
            println!("{}", device_key(&cfg)?.public().to_base64());
            Ok(())
        }
        Command::Backlog { config } => {
            let cfg = AgentConfig::load(&config)?;
            let b = crate::buffer::Buffer::open(&cfg.data_dir.join("buffer.sqlite"))?.backlog()?;
            println!("{}", serde_json::to_string(&b)?);
            Ok(())
        }
    }
}

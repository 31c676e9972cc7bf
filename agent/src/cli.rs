//! The `evsync-agent` command line.

use std::path::PathBuf;

use std::io::IsTerminal as _;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use indicatif::MultiProgress;

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
    /// Print what waits in the buffer: records, and recordings not yet receipted.
    Backlog {
        /// The agent's TOML configuration.
        #[arg(long, short, env = "EVSYNC_AGENT_CONFIG")]
        config: PathBuf,
    },
    /// Check a pooled recorder out of the running dock to an officer: the
    /// dock writes the officer and unit into a cleared recorder (every
    /// recording on it safe at the hub) and records the handover.
    Checkout {
        /// The dock's TOML configuration.
        #[arg(long, short, env = "EVSYNC_AGENT_CONFIG")]
        config: PathBuf,
        /// Officer number (警号), 6 digits.
        #[arg(long)]
        officer: String,
        /// Unit number (单位编号), 12 digits.
        #[arg(long)]
        unit: String,
        /// Officer name, at most 32 characters.
        #[arg(long, default_value = "")]
        officer_name: String,
        /// Unit name, at most 32 characters.
        #[arg(long, default_value = "")]
        unit_name: String,
        /// This recorder (device id); otherwise the cleared one with the fullest battery.
        #[arg(long)]
        recorder: Option<String>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 60)]
        wait_secs: u64,
    },
}

/// Log lines to stderr; with progress bars on the terminal, the bars are
/// lifted while a line is written so the two never garble each other.
#[derive(Clone)]
struct Stderr {
    bars: Option<MultiProgress>,
}

impl std::io::Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &self.bars {
            Some(bars) => bars.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Sets up logging (text, or JSON lines), filtered by `RUST_LOG`, around
/// `bars` if progress bars are drawn. The default is `info` with the embedded
/// broker's own logs off: rumqttd logs every ordinary disconnect as an error
/// (`RUST_LOG=info,rumqttd=info` shows them).
pub fn init_logging(json: bool, bars: Option<MultiProgress>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Stderr { bars });
    // Only the first call installs a subscriber (an embedding program or a
    // test may have one already).
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
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
    // Upload progress bars when a person watches a terminal (not with JSON logs).
    let bars = (matches!(cli.command, Command::Run { .. })
        && !cli.log_json
        && std::io::stderr().is_terminal())
    .then(MultiProgress::new);
    init_logging(cli.log_json, bars.clone());
    match cli.command {
        Command::Run { config } => {
            let mut stop = StopSignals::install()?;
            let cfg = AgentConfig::load(&config)?;
            let mut agent = Agent::start_with_bars(cfg, bars).await?;
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
            let buffer = crate::buffer::Buffer::open(&cfg.data_dir.join("buffer.sqlite"))?;
            let b = buffer.backlog()?;
            let m = buffer.media_backlog()?;
            println!(
                "{}",
                serde_json::json!({ "records": b.records, "bytes": b.bytes, "media": m })
            );
            Ok(())
        }
        Command::Checkout {
            config,
            officer,
            unit,
            officer_name,
            unit_name,
            recorder,
            wait_secs,
        } => {
            let cfg = AgentConfig::load(&config)?;
            anyhow::ensure!(
                cfg.role == "dock",
                "{}: role = {:?}: check-out needs a dock (role = \"dock\")",
                config.display(),
                cfg.role
            );
            anyhow::ensure!(
                cfg.dock.pooled,
                "{}: dock.pooled = false: this dock's recorders are personal, not handed out (set dock.pooled = true for a pool)",
                config.display()
            );
            let holder = crate::buffer::Holder {
                officer_no: officer,
                unit_no: unit,
                officer_name,
                unit_name,
            };
            let said = crate::checkout::checkout(
                &cfg.data_dir.join("buffer.sqlite"),
                holder,
                recorder,
                std::time::Duration::from_secs(wait_secs),
            )
            .await?;
            println!("{said}");
            Ok(())
        }
    }
}

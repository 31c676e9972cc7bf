//! The agent binary, built inside the e2e crate so its tests can start and
//! kill it as a real process (`CARGO_BIN_EXE_e2e-agent`).

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match evsync_agent::cli::main(evsync_agent::cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("evsync-agent: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

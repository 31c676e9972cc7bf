//! The hub binary, built inside the e2e crate so its tests can start and
//! kill it as a real process (`CARGO_BIN_EXE_e2e-hub`).

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match evsync_hub::cli::main(evsync_hub::cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("evsync-hub: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

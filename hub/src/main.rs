//! `evsync-hub`: see `evsync-hub --help`.

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

//! `evsync-agent`: see `evsync-agent --help`.

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

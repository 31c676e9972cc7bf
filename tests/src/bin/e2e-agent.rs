//! The agent binary, built inside the e2e crate so its tests can start and
//! kill it as a real process (`CARGO_BIN_EXE_e2e-agent`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    evsync_agent::cli::entry().await
}

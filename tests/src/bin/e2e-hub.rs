//! The hub binary, built inside the e2e crate so its tests can start and
//! kill it as a real process (`CARGO_BIN_EXE_e2e-hub`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    evsync_hub::cli::entry().await
}

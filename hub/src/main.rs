//! `evsync-hub`: see `evsync-hub --help`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    evsync_hub::cli::entry().await
}

//! `evsync-agent`: see `evsync-agent --help`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    evsync_agent::cli::entry().await
}

//! `evsync-agent checkout`: an officer asks the running dock for a pooled
//! recorder by officer number. The request goes into the dock's buffer;
//! the slot holding the best cleared recorder (or the one asked for)
//! writes the officer into it and answers; this waits for that answer.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use evsync_recorder_protocol::message::ZfyInfo;

use crate::buffer::{Buffer, Holder};

/// How long past `--wait-secs` a claimed request (a slot is writing the
/// recorder) is waited for before giving up.
const CLAIM_GRACE: Duration = Duration::from_secs(30);

/// Checks `holder` against the recorder's field rules (GA/T 947 `ZFY_INFO`):
/// every problem at once, each naming the field and what was expected.
pub fn validate(holder: &Holder) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    let fields = [
        ("--officer", &holder.officer_no, 6),
        ("--unit", &holder.unit_no, 12),
    ];
    for (flag, value, len) in fields {
        if value.len() != len || !value.bytes().all(|b| b.is_ascii_digit()) {
            problems.push(format!("{flag} {value:?}: expected {len} digits"));
        }
    }
    if holder.officer_no.bytes().all(|b| b == b'0') && holder.officer_no.len() == 6 {
        problems.push("--officer 000000: that number means \"nobody\"".to_owned());
    }
    let probe = ZfyInfo {
        serial: "0000000".into(),
        officer_no: "000000".into(),
        unit_no: "000000000000".into(),
        officer_name: holder.officer_name.clone(),
        unit_name: holder.unit_name.clone(),
    };
    if let Err(e) = probe.validate() {
        problems.push(format!("name: {e}"));
    }
    anyhow::ensure!(problems.is_empty(), "{}", problems.join("; "));
    Ok(())
}

/// Files the request in the buffer at `buffer_path` and waits up to `wait`
/// for the dock to answer. Returns the dock's answer on success.
pub async fn checkout(
    buffer_path: &Path,
    holder: Holder,
    recorder: Option<String>,
    wait: Duration,
) -> anyhow::Result<String> {
    validate(&holder)?;
    let too_long = || anyhow::anyhow!("--wait-secs {}: expected at most a day", wait.as_secs());
    anyhow::ensure!(wait <= Duration::from_secs(86_400), too_long());
    let expires = Utc::now() + chrono::Duration::from_std(wait).map_err(|_| too_long())?;
    let path = buffer_path.to_owned();
    // One connection for the whole wait; SQLite calls block, so all of it
    // runs on a blocking thread.
    tokio::task::spawn_blocking(move || {
        let mut buffer = Buffer::open(&path)?;
        let id = buffer.request_checkout(&holder, recorder.as_deref(), expires)?;
        let deadline = std::time::Instant::now() + wait;
        loop {
            let now = buffer
                .checkout(id)?
                .with_context(|| format!("check-out request {id} vanished from the buffer"))?;
            match now.state.as_str() {
                "done" => return Ok(now.result.unwrap_or_default()),
                "refused" => anyhow::bail!(
                    "check-out refused: {}",
                    now.result.unwrap_or_else(|| "no reason given".into())
                ),
                _ => {}
            }
            if std::time::Instant::now() >= deadline + CLAIM_GRACE {
                anyhow::bail!(
                    "check-out request {id} is still {} after {} s: look at the recorder in the dock's slot status before handing it over",
                    now.state,
                    (wait + CLAIM_GRACE).as_secs()
                );
            }
            if std::time::Instant::now() >= deadline && now.state == "pending" {
                if buffer.withdraw_checkout(id)? {
                    anyhow::bail!(
                        "no cleared recorder was handed out within {} s: is the dock running, and is a recorder docked whose recordings are all safe at the hub?",
                        wait.as_secs()
                    );
                }
                continue;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
    .await
    .context("check-out request")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_field_is_named_with_what_was_expected() {
        let bad = Holder {
            officer_no: "12a".into(),
            unit_no: "5001".into(),
            officer_name: "x".repeat(40),
            unit_name: String::new(),
        };
        let e = format!("{:#}", validate(&bad).unwrap_err());
        assert!(e.contains("--officer \"12a\": expected 6 digits"), "{e}");
        assert!(e.contains("--unit \"5001\": expected 12 digits"), "{e}");
        assert!(e.contains("32 characters"), "{e}");
        let good = Holder {
            officer_no: "010203".into(),
            unit_no: "500103000000".into(),
            officer_name: "张伟".into(),
            unit_name: "渝中区综合行政执法支队".into(),
        };
        assert!(validate(&good).is_ok());
    }
}

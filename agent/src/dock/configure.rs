//! A docked recorder's configuration: the hub's assignment for it applied
//! over the serial line, and what the recorder ran when it came in.
//!
//! An assignment is applied only if it verifies against the pinned hub key,
//! names this recorder, is not older than the newest one accepted for it
//! (kept in the buffer across restarts), and its configuration validates,
//! names this recorder and hashes to the hash the hub signed. Then it is
//! recorded as `config_delivered`, written with `SetConfig` (compact form),
//! read back with `GetConfig` and recorded as `config_applied` when the
//! recorder holds exactly it. Anything else is recorded as `config_failed`
//! with the reason. When a recorder has an assignment (one arrives, or this
//! dock accepted one for it before), what it ran when it came in is
//! recorded first (`config_checked`), so the hub sees a configuration
//! changed behind its back; the recorder then gets its assignment again. A
//! recorder never assigned one gets no records.

use chrono::Utc;
use evsync_protocol::assignment::{check_newer, Assignment};
use evsync_protocol::record::{Event, Kind};
use evsync_recorder_protocol::message::{Request, Response};
use firmware_config::RecorderConfig;

use super::docking::{body, chained, Docked, Shared};
use super::link::{LinkError, RecorderLink};
use crate::buffer::with_buffer;

/// What the recorder holds, as its content hash, or why there is none.
pub type Running = Result<String, String>;

/// Reads the recorder's configuration. A refusal or an unreadable
/// configuration is an answer (`Err(reason)`); a dead line is an error.
pub async fn read_running(link: &mut RecorderLink) -> anyhow::Result<Running> {
    let (format, data) = match link.call(Request::GetConfig).await {
        Ok(Response::Config { format, data }) => (format, data),
        Ok(other) => anyhow::bail!("recorder answered GetConfig with {other:?}"),
        Err(e @ LinkError::Refused { .. }) => {
            return Ok(Err(format!("the recorder refused GetConfig: {e}")))
        }
        Err(e) => return Err(e.into()),
    };
    if data.is_empty() {
        return Ok(Err("the recorder holds no configuration".into()));
    }
    Ok(RecorderConfig::from_serial(format, &data)
        .map(|c| c.content_hash())
        .map_err(|e| format!("the recorder holds an invalid configuration: {e}")))
}

/// Applies the newest assignment the hub published for the recorder, if
/// there is one this docking has not dealt with yet, or if the recorder
/// runs something other than the assignment accepted for it.
pub async fn apply_assigned(
    shared: &Shared,
    link: &mut RecorderLink,
    docked: &mut Docked,
) -> anyhow::Result<()> {
    let Some(payload) = shared.assignments.latest(&docked.id)? else {
        return Ok(());
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, &payload);
    let fingerprint = digest.as_ref().to_vec();
    if docked.assignment_seen.as_deref() == Some(&fingerprint[..]) {
        return Ok(());
    }
    docked.assignment_seen = Some(fingerprint);
    let id = docked.id.clone();
    let accepted = with_buffer(&shared.buffer, move |b| b.accepted_config(&id)).await?;
    let (assignment, config) = match check(shared, &docked.id, &payload, accepted.as_ref()) {
        Ok(ok) => ok,
        Err(failed) => {
            tracing::warn!(
                recorder = docked.id,
                reason = failed.reason,
                "configuration assignment refused"
            );
            return record(shared, docked, failed.into_event()).await;
        }
    };
    docked.firmware_wanted = match &assignment.firmware {
        Some(image) => match config.firmware_allowed(&image.version) {
            Ok(()) => Some(image.clone()),
            Err(e) => {
                let event = Event::FirmwareFailed {
                    version: image.version.clone(),
                    reason: format!("the assigned configuration does not allow it: {e}"),
                };
                record(shared, docked, event).await?;
                None
            }
        },
        None => None,
    };
    record_running(shared, docked).await?;
    let known = accepted.is_some_and(|(v, _)| v == assignment.version);
    if !known {
        let (id, version, hash) = (
            docked.id.clone(),
            assignment.version,
            assignment.config_hash.clone(),
        );
        with_buffer(&shared.buffer, move |b| {
            b.accept_config(&id, version, &hash)
        })
        .await?;
    }
    if docked.running.as_ref().ok() == Some(&assignment.config_hash) {
        return Ok(()); // runs it already (applied here or at another dock)
    }
    if !known {
        record(
            shared,
            docked,
            Event::ConfigDelivered {
                config_hash: assignment.config_hash.clone(),
                version: assignment.version,
            },
        )
        .await?;
    }
    let outcome = write_and_read_back(link, &config, &assignment.config_hash).await?;
    let event = match outcome {
        Ok(()) => {
            tracing::info!(
                recorder = docked.id,
                version = assignment.version,
                hash = assignment.config_hash,
                "configuration applied"
            );
            docked.running = Ok(assignment.config_hash.clone());
            Event::ConfigApplied {
                config_hash: assignment.config_hash,
                version: assignment.version,
            }
        }
        Err(reason) => {
            tracing::warn!(
                recorder = docked.id,
                version = assignment.version,
                reason,
                "configuration not applied"
            );
            Failed {
                version: Some(assignment.version),
                config_hash: Some(assignment.config_hash),
                reason,
            }
            .into_event()
        }
    };
    record(shared, docked, event).await
}

/// Records what the recorder ran when it came in (`config_checked`), once
/// per docking.
async fn record_running(shared: &Shared, docked: &mut Docked) -> anyhow::Result<()> {
    if docked.running_recorded {
        return Ok(());
    }
    let event = match &docked.running {
        Ok(hash) => Event::ConfigChecked {
            config_hash: Some(hash.clone()),
            reason: None,
        },
        Err(reason) => Event::ConfigChecked {
            config_hash: None,
            reason: Some(reason.clone()),
        },
    };
    record(shared, docked, event).await?;
    docked.running_recorded = true;
    Ok(())
}

/// Records what the recorder runs at once on docking if it was ever given
/// an assignment here: the hub hears of a changed configuration even when
/// no assignment arrives at this docking (the broker away, say).
pub async fn record_running_if_assigned(
    shared: &Shared,
    docked: &mut Docked,
) -> anyhow::Result<()> {
    let id = docked.id.clone();
    if with_buffer(&shared.buffer, move |b| b.accepted_config(&id))
        .await?
        .is_some()
    {
        record_running(shared, docked).await?;
    }
    Ok(())
}

/// Why an assignment is not applied.
struct Failed {
    version: Option<u64>,
    config_hash: Option<String>,
    reason: String,
}

impl Failed {
    fn into_event(self) -> Event {
        Event::ConfigFailed {
            version: self.version,
            config_hash: self.config_hash,
            reason: self.reason,
        }
    }
}

/// The checks an assignment must pass before it reaches the recorder.
fn check(
    shared: &Shared,
    recorder: &str,
    payload: &[u8],
    accepted: Option<&(u64, String)>,
) -> Result<(Assignment, RecorderConfig), Failed> {
    let unnamed = |reason: String| Failed {
        version: None,
        config_hash: None,
        reason,
    };
    let hub_key = shared
        .cfg
        .hub_key()
        .map_err(|e| unnamed(format!("{e:#}")))?;
    let a = Assignment::open(payload, &hub_key, recorder).map_err(|e| unnamed(e.to_string()))?;
    let named = |reason: String| Failed {
        version: Some(a.version),
        config_hash: Some(a.config_hash.clone()),
        reason,
    };
    check_newer(a.version, accepted.map(|(v, _)| *v)).map_err(|e| named(e.to_string()))?;
    let config = RecorderConfig::from_toml(&a.config)
        .map_err(|e| named(format!("the assigned configuration is refused: {e}")))?;
    let hash = config.content_hash();
    if hash != a.config_hash {
        return Err(named(format!(
            "the assigned configuration hashes to {hash}, not to the signed {}: refused as tampered",
            a.config_hash
        )));
    }
    if config.identity.device_id != recorder {
        return Err(named(format!(
            "the assigned configuration has identity.device_id = {:?}: expected {recorder:?}",
            config.identity.device_id
        )));
    }
    Ok((a, config))
}

/// Writes `config` in compact form and reads it back: `Err(reason)` when
/// the recorder refuses it or holds something else afterwards.
async fn write_and_read_back(
    link: &mut RecorderLink,
    config: &RecorderConfig,
    hash: &str,
) -> anyhow::Result<Result<(), String>> {
    match link
        .call(Request::SetConfig {
            format: firmware_config::serial_format::COMPACT,
            data: config.to_compact(),
        })
        .await
    {
        Ok(_) => {}
        Err(e @ LinkError::Refused { .. }) => {
            return Ok(Err(format!("the recorder refused SetConfig: {e}")))
        }
        Err(e) => return Err(e.into()),
    }
    Ok(match read_running(link).await? {
        Ok(h) if h == hash => Ok(()),
        Ok(h) => Err(format!(
            "read back configuration {h} from the recorder, expected {hash}"
        )),
        Err(reason) => Err(format!("reading the configuration back: {reason}")),
    })
}

/// Records `event` about the docked recorder, now.
pub(super) async fn record(shared: &Shared, docked: &Docked, event: Event) -> anyhow::Result<()> {
    let at = Utc::now() + chrono::Duration::milliseconds(docked.clock_offset_ms);
    let mut template = body(shared, docked, Kind::Event, at);
    template.event = Some(event);
    let (key, id) = (shared.key.clone(), docked.id.clone());
    with_buffer(&shared.buffer, move |b| {
        b.append_recorder_event(&key, &id, None, chained(template))
            .map(drop)
    })
    .await?;
    shared.new_records.notify_one();
    Ok(())
}

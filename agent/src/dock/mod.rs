//! Dock mode: recorders docked in the slots' serial ports are identified,
//! their clocks corrected, their recordings copied, recorded and, once
//! their evidence is safe, deleted from them. One task per slot; copies
//! across slots are bounded by `dock.parallel_copies`.
//!
//! [`link`] is the serial line (the protocol lives in
//! `evsync-recorder-protocol`); [`docking`] is what happens on docking;
//! [`copy`] takes one file off over serial; [`mount`] takes it off the
//! recorder's USB mass-storage volume when its slot has one (the fast
//! path); [`gaps`] finds files that vanished; [`board`] is what every slot
//! is doing, for status and progress bars; [`configure`] applies the
//! hub's configuration assignments to docked recorders, and [`firmware`]
//! installs the firmware images they name.

pub mod board;
pub mod configure;
pub mod copy;
pub mod docking;
pub mod firmware;
pub mod gaps;
pub mod link;
pub mod mount;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::SlotSection;
use board::{SlotHandle, SlotState};
use docking::Shared;
use link::RecorderLink;

/// Watches one slot until the agent stops: waits for a recorder, serves
/// it, and after it is taken out (or the line fails) waits for the next.
pub async fn run_slot(
    shared: Arc<Shared>,
    slot: SlotSection,
    handle: SlotHandle,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let dock = &shared.cfg.dock;
    let poll = Duration::from_millis(dock.poll_ms);
    let timeout = Duration::from_millis(dock.request_timeout_ms);
    let mut last_error = String::new();
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        if slot.port.exists() {
            match RecorderLink::open(&slot.port, slot.baud, timeout, dock.attempts) {
                Ok(mut link) => {
                    link.volume = slot
                        .mount
                        .clone()
                        .map(|m| mount::Volume::new(m, Duration::from_millis(dock.mount_wait_ms)));
                    let served = docking::serve(&shared, &mut link, &mut shutdown, &handle).await;
                    let (skipped_bytes, damaged_frames) = link.damage();
                    let (from_volume, over_serial) = link
                        .volume
                        .as_ref()
                        .map_or((0, 0), |v| (v.from_volume, v.over_serial));
                    match served {
                        Ok(()) => return Ok(()),
                        Err(e) => {
                            let e = format!("{e:#}");
                            // Taken out (the line went away) or refused.
                            let gone = !slot.port.exists();
                            handle.update(|s| {
                                s.state = if gone {
                                    SlotState::Empty
                                } else {
                                    SlotState::Failed
                                };
                                s.error = Some(e.clone());
                                s.copying = None;
                                if gone {
                                    s.recorder = None;
                                    s.officer = None;
                                    s.unit = None;
                                    s.battery_pct = None;
                                    s.firmware = None;
                                    s.clock_offset_ms = None;
                                    s.files_on_recorder = 0;
                                }
                            });
                            tracing::warn!(
                                port = %slot.port.display(),
                                error = e,
                                retries = link.retries(),
                                skipped_bytes,
                                damaged_frames,
                                from_volume,
                                over_serial,
                                "recorder link ended; waiting for a recorder"
                            );
                            last_error = e;
                        }
                    }
                }
                Err(e) => {
                    let e = format!("{e:#}");
                    if e != last_error {
                        tracing::debug!(port = %slot.port.display(), error = e, "slot not ready");
                        last_error = e;
                    }
                }
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

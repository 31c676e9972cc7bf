//! The dock's slot board: what each slot is doing right now (which
//! recorder, whose, which file it is copying and how far, whether the
//! recorder is cleared for the next shift, what went wrong last). Slot tasks
//! write it; the status message publishes it to the hub, check-out reads it
//! to pick a recorder, and on a terminal each slot is drawn as a bar.

use std::sync::{Arc, Mutex, MutexGuard};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;

/// What a slot is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotState {
    /// No recorder docked (or none answering).
    Empty,
    /// A recorder is docked and being opened, identified and its clock checked.
    Identifying,
    /// Recordings are being copied off it.
    Copying,
    /// Everything is copied; waiting until the hub holds it so it can be cleared.
    Waiting,
    /// Its evidence is safe and it is cleared for the next shift.
    Cleared,
    /// Checked out to an officer at this docking; waiting to be taken.
    CheckedOut,
    /// The recorder refused the dock or the line failed; see `error`.
    Failed,
}

/// The file a slot is copying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Copying {
    /// File index on the recorder.
    pub index: u32,
    /// Its name on the recorder.
    pub name: String,
    /// Bytes copied so far (including a resumed partial copy).
    pub bytes_done: u64,
    /// Size the recorder listed.
    pub bytes_total: u64,
}

/// One slot's figures, as published in the status message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotStatus {
    /// Slot number, from 1, in configuration order.
    pub slot: usize,
    /// Its serial port.
    pub port: String,
    /// What it is doing.
    pub state: SlotState,
    /// The docked recorder's device id.
    pub recorder: Option<String>,
    /// Officer the recorder is assigned to now.
    pub officer: Option<String>,
    /// Unit the recorder is assigned to now.
    pub unit: Option<String>,
    /// Battery charge, percent.
    pub battery_pct: Option<u8>,
    /// The docked recorder's firmware version.
    pub firmware: Option<String>,
    /// Recorder clock minus dock clock as measured on docking, milliseconds.
    pub clock_offset_ms: Option<i64>,
    /// Files on the recorder at the last listing.
    pub files_on_recorder: usize,
    /// Files copied off it since it was docked.
    pub files_copied: u64,
    /// Copies resumed from a partial copy (after an unplug) since the agent started.
    pub resumed_copies: u64,
    /// The copy under way.
    pub copying: Option<Copying>,
    /// Requests sent again over this slot's line since the agent started.
    pub retries: u64,
    /// Damaged frames seen on this slot's line since the agent started.
    pub damaged_frames: u64,
    /// Bytes of line noise skipped on this slot's line since the agent started.
    pub skipped_bytes: u64,
    /// Why the last docking failed, if it did.
    pub error: Option<String>,
}

impl SlotStatus {
    fn empty(slot: usize, port: String) -> Self {
        Self {
            slot,
            port,
            state: SlotState::Empty,
            recorder: None,
            officer: None,
            unit: None,
            battery_pct: None,
            firmware: None,
            clock_offset_ms: None,
            files_on_recorder: 0,
            files_copied: 0,
            resumed_copies: 0,
            copying: None,
            retries: 0,
            damaged_frames: 0,
            skipped_bytes: 0,
            error: None,
        }
    }
}

/// Every slot of the dock.
pub struct Board {
    slots: Mutex<Vec<SlotStatus>>,
    bars: Vec<Option<ProgressBar>>,
    /// Told when a slot changes state, so the heartbeat can say so soon.
    changed: tokio::sync::Notify,
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:24!} {msg:40!} [{bar:24}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

impl Board {
    /// A board for slots on `ports`, drawn on `bars` when given (a terminal).
    pub fn new(ports: &[String], bars: Option<&MultiProgress>) -> Self {
        let slots = ports
            .iter()
            .enumerate()
            .map(|(i, p)| SlotStatus::empty(i + 1, p.clone()))
            .collect();
        let bars = ports
            .iter()
            .enumerate()
            .map(|(i, _)| {
                bars.map(|m| {
                    let b = m.add(ProgressBar::new(0));
                    b.set_style(style());
                    b.set_prefix(format!("slot {}", i + 1));
                    b.set_message("empty");
                    b
                })
            })
            .collect();
        Self {
            slots: Mutex::new(slots),
            bars,
            changed: tokio::sync::Notify::new(),
        }
    }

    /// Waits until a slot changes state (a recorder docked, identified,
    /// emptied, pulled).
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    fn lock(&self) -> MutexGuard<'_, Vec<SlotStatus>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every slot's figures.
    pub fn snapshot(&self) -> Vec<SlotStatus> {
        self.lock().clone()
    }

    /// Changes slot `slot` (from 1) with `f` and redraws its bar.
    pub fn update(&self, slot: usize, f: impl FnOnce(&mut SlotStatus)) {
        let bar = self.bars.get(slot.wrapping_sub(1)).and_then(Option::as_ref);
        let drawn = {
            let mut slots = self.lock();
            let Some(s) = slots.get_mut(slot.wrapping_sub(1)) else {
                return;
            };
            let before = s.state;
            f(s);
            if s.state != before {
                self.changed.notify_one();
            }
            // Copied out only to draw (this runs for every chunk copied).
            match bar {
                Some(_) => s.clone(),
                None => return,
            }
        };
        if let Some(bar) = bar {
            let who = drawn.recorder.as_deref().unwrap_or("");
            bar.set_prefix(format!("slot {} {who}", drawn.slot));
            match &drawn.copying {
                Some(c) => {
                    bar.set_length(c.bytes_total.max(c.bytes_done));
                    bar.set_position(c.bytes_done);
                    bar.set_message(format!("copying #{} {}", c.index, c.name));
                }
                None => {
                    bar.set_length(0);
                    bar.set_position(0);
                    bar.set_message(match (&drawn.state, &drawn.error) {
                        (SlotState::Failed, Some(e)) => format!("failed: {e}"),
                        (state, _) => format!(
                            "{} ({} copied)",
                            serde_json::to_value(state)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_owned))
                                .unwrap_or_default(),
                            drawn.files_copied
                        ),
                    });
                }
            }
        }
    }

    /// Whether slot `slot` holds the best recorder to hand out among those
    /// `cleared`: the fullest battery, then the lowest slot number.
    pub fn best_cleared(&self, slot: usize) -> bool {
        let slots = self.lock();
        let mine = match slots.get(slot.wrapping_sub(1)) {
            Some(s) if s.state == SlotState::Cleared => s.battery_pct.unwrap_or(0),
            _ => return false,
        };
        !slots.iter().any(|s| {
            s.slot != slot
                && s.state == SlotState::Cleared
                && (s.battery_pct.unwrap_or(0), std::cmp::Reverse(s.slot))
                    > (mine, std::cmp::Reverse(slot))
        })
    }
}

/// A slot's handle on the board, for the copy loop.
#[derive(Clone)]
pub struct SlotHandle {
    board: Arc<Board>,
    slot: usize,
}

impl SlotHandle {
    /// The handle of slot `slot` (from 1).
    pub fn new(board: Arc<Board>, slot: usize) -> Self {
        Self { board, slot }
    }

    /// Slot number.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// Changes this slot's figures.
    pub fn update(&self, f: impl FnOnce(&mut SlotStatus)) {
        self.board.update(self.slot, f);
    }

    /// This slot's figures now.
    pub fn status(&self) -> Option<SlotStatus> {
        self.board
            .snapshot()
            .into_iter()
            .nth(self.slot.wrapping_sub(1))
    }

    /// Whether this slot holds the best cleared recorder to hand out.
    pub fn best_cleared(&self) -> bool {
        self.board.best_cleared(self.slot)
    }

    /// Counts `n` more bytes of the file being copied.
    pub fn copied(&self, n: u64) {
        self.update(|s| {
            if let Some(c) = &mut s.copying {
                c.bytes_done += n;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::{InMemoryTerm, ProgressDrawTarget};

    fn board(n: usize, bars: Option<&MultiProgress>) -> Arc<Board> {
        let ports: Vec<String> = (1..=n).map(|i| format!("/dev/ttyACM{i}")).collect();
        Arc::new(Board::new(&ports, bars))
    }

    #[tokio::test]
    async fn a_change_of_state_is_told_and_bytes_copied_are_not() {
        let b = board(1, None);
        let told = |b: &Arc<Board>| {
            let b = b.clone();
            async move {
                tokio::time::timeout(std::time::Duration::from_millis(50), b.changed())
                    .await
                    .is_ok()
            }
        };
        b.update(1, |s| s.files_on_recorder = 3);
        assert!(!told(&b).await, "no state change");
        b.update(1, |s| s.state = SlotState::Copying);
        assert!(told(&b).await);
        b.update(1, |s| s.files_copied += 1);
        assert!(!told(&b).await, "progress within a state");
    }

    #[test]
    fn a_copy_reports_its_file_and_bytes_and_ends_cleared() {
        let b = board(2, None);
        let h = SlotHandle::new(b.clone(), 2);
        h.update(|s| {
            s.state = SlotState::Copying;
            s.recorder = Some("ZFY0001".into());
            s.copying = Some(Copying {
                index: 7,
                name: "20261123_0007.mp4".into(),
                bytes_done: 100,
                bytes_total: 1000,
            });
        });
        h.copied(400);
        let s = b.snapshot();
        assert_eq!(s[0].state, SlotState::Empty);
        assert_eq!(s[1].copying.as_ref().map(|c| c.bytes_done), Some(500));
        let json = serde_json::to_value(&s[1]).unwrap_or_default();
        assert_eq!(json["state"], "copying");
        assert_eq!(json["copying"]["bytes_total"], 1000);
    }

    #[test]
    fn the_cleared_recorder_with_the_fullest_battery_is_handed_out_first() {
        let b = board(3, None);
        for (slot, state, battery) in [
            (1, SlotState::Cleared, 60),
            (2, SlotState::Cleared, 90),
            (3, SlotState::Waiting, 100),
        ] {
            b.update(slot, |s| {
                s.state = state;
                s.battery_pct = Some(battery);
            });
        }
        assert!(!b.best_cleared(1));
        assert!(b.best_cleared(2));
        assert!(
            !b.best_cleared(3),
            "not cleared: its evidence is not safe yet"
        );
        // A tie goes to the lower slot.
        b.update(1, |s| s.battery_pct = Some(90));
        assert!(b.best_cleared(1) && !b.best_cleared(2));
    }

    #[test]
    fn on_a_terminal_each_slot_is_a_bar_with_its_recorder_and_file() {
        let term = InMemoryTerm::new(4, 140);
        let bars =
            MultiProgress::with_draw_target(ProgressDrawTarget::term_like(Box::new(term.clone())));
        let b = board(2, Some(&bars));
        b.update(1, |s| {
            s.recorder = Some("ZFY0001".into());
            s.state = SlotState::Copying;
            s.copying = Some(Copying {
                index: 3,
                name: "A.mp4".into(),
                bytes_done: 1 << 20,
                bytes_total: 2 << 20,
            });
        });
        b.update(2, |s| {
            s.state = SlotState::Failed;
            s.error = Some("wrong admin password".into());
        });
        let shown = term.contents();
        assert!(shown.contains("slot 1 ZFY0001"), "{shown}");
        assert!(shown.contains("copying #3 A.mp4"), "{shown}");
        assert!(shown.contains("1.00 MiB/2.00 MiB"), "{shown}");
        assert!(shown.contains("failed: wrong admin password"), "{shown}");
    }
}

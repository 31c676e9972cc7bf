//! Transfer progress: bytes done and total, rate and time left for every
//! recording being uploaded. Published in the agent's status (the hub shows
//! it) and, when the agent runs on a terminal, drawn as one bar per file.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;
use uuid::Uuid;

/// One file's figures as published in status messages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transfer {
    /// The media record.
    pub record_id: Uuid,
    /// The recording's file name.
    pub file: String,
    /// Bytes the hub holds or has been sent so far.
    pub bytes_done: u64,
    /// The recording's size.
    pub bytes_total: u64,
    /// Bytes per second since this attempt started.
    pub rate_bps: u64,
    /// Seconds left at that rate, when there is a rate.
    pub eta_s: Option<u64>,
}

struct Entry {
    file: String,
    total: u64,
    done: Arc<AtomicU64>,
    resumed_at: u64,
    started: Instant,
    bar: Option<ProgressBar>,
}

/// Progress of every upload under way.
#[derive(Default)]
pub struct Progress {
    entries: Mutex<BTreeMap<Uuid, Entry>>,
    bars: Option<MultiProgress>,
}

/// The handle an upload reports its bytes through.
pub struct Tracker {
    done: Arc<AtomicU64>,
    bar: Option<ProgressBar>,
}

impl Tracker {
    /// Counts `n` more bytes sent.
    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:32!} [{bar:30}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

impl Progress {
    /// Progress drawn on `bars` (a terminal), or only published.
    pub fn new(bars: Option<MultiProgress>) -> Self {
        Self {
            entries: Mutex::new(BTreeMap::new()),
            bars,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Uuid, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An upload of `file` (`total` bytes) starts at `offset`.
    pub fn start(&self, record_id: Uuid, file: &str, total: u64, offset: u64) -> Tracker {
        let done = Arc::new(AtomicU64::new(offset));
        let bar = self.bars.as_ref().map(|m| {
            let b = m.add(ProgressBar::new(total));
            b.set_style(style());
            b.set_prefix(file.to_owned());
            b.set_position(offset);
            b.reset_eta();
            b
        });
        let entry = Entry {
            file: file.to_owned(),
            total,
            done: done.clone(),
            resumed_at: offset,
            started: Instant::now(),
            bar: bar.clone(),
        };
        if let Some(old) = self.lock().insert(record_id, entry) {
            if let Some(b) = old.bar {
                b.finish_and_clear();
            }
        }
        Tracker { done, bar }
    }

    /// The upload of `record_id` ended (done or to be retried).
    pub fn finish(&self, record_id: &Uuid) {
        if let Some(e) = self.lock().remove(record_id) {
            if let Some(b) = e.bar {
                b.finish_and_clear();
            }
        }
    }

    /// Figures of every upload under way.
    pub fn snapshot(&self) -> Vec<Transfer> {
        self.lock()
            .iter()
            .map(|(id, e)| {
                let done = e.done.load(Ordering::Relaxed);
                let secs = e.started.elapsed().as_secs_f64();
                let rate = if secs > 0.0 {
                    ((done - e.resumed_at) as f64 / secs) as u64
                } else {
                    0
                };
                Transfer {
                    record_id: *id,
                    file: e.file.clone(),
                    bytes_done: done,
                    bytes_total: e.total,
                    rate_bps: rate,
                    eta_s: (rate > 0).then(|| e.total.saturating_sub(done) / rate),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::{InMemoryTerm, ProgressDrawTarget};

    #[test]
    fn a_resumed_upload_reports_what_is_done_and_what_is_left() {
        let p = Progress::new(None);
        let id = Uuid::now_v7();
        let t = p.start(id, "20261123_0001.mp4", 1000, 400);
        std::thread::sleep(std::time::Duration::from_millis(20));
        t.add(100);
        let s = p.snapshot();
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].bytes_done, s[0].bytes_total), (500, 1000));
        assert!(s[0].rate_bps > 0 && s[0].rate_bps <= 100 * 50, "{s:?}");
        assert!(s[0].eta_s.is_some());
        p.finish(&id);
        assert!(p.snapshot().is_empty());
    }

    #[test]
    fn on_a_terminal_each_file_gets_a_bar_with_its_name_and_bytes() {
        let term = InMemoryTerm::new(4, 120);
        let bars =
            MultiProgress::with_draw_target(ProgressDrawTarget::term_like(Box::new(term.clone())));
        let p = Progress::new(Some(bars));
        let a = p.start(Uuid::now_v7(), "A_IMP.mp4", 2 << 20, 0);
        let _b = p.start(Uuid::now_v7(), "B.mp4", 4 << 20, 1 << 20);
        a.add(1 << 20);
        let shown = term.contents();
        assert!(
            shown.contains("A_IMP.mp4") && shown.contains("B.mp4"),
            "{shown}"
        );
        assert!(shown.contains("1.00 MiB/2.00 MiB"), "{shown}");
        assert!(shown.contains("1.00 MiB/4.00 MiB"), "{shown}");
    }
}

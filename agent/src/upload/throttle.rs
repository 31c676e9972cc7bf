//! A byte-rate cap shared by every upload of an agent. Each read reserves
//! its bytes on one timeline (`next_free`) and waits for its turn, so the
//! uploads together never pass the cap, however many run, and the bytes are
//! shared fairly between them. (A token bucket without the bucket: the
//! "virtual scheduling" form of the generic cell-rate algorithm.)

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Idle time banked for a burst after a pause.
const BURST: Duration = Duration::from_millis(50);

/// The cap.
#[derive(Debug)]
pub struct Throttle {
    bytes_per_sec: u64,
    next_free: Mutex<Instant>,
}

impl Throttle {
    /// A cap of `bytes_per_sec`; 0 means none.
    pub fn new(bytes_per_sec: u64) -> Self {
        Self {
            bytes_per_sec,
            next_free: Mutex::new(Instant::now()),
        }
    }

    /// How long the caller must wait before sending `n` more bytes (and
    /// reserves them). Zero when there is no cap.
    pub fn reserve(&self, n: usize) -> Duration {
        if self.bytes_per_sec == 0 || n == 0 {
            return Duration::ZERO;
        }
        let now = Instant::now();
        let mut next = self.next_free.lock().unwrap_or_else(|p| p.into_inner());
        // Idle time is not banked beyond a short burst.
        let floor = now.checked_sub(BURST).unwrap_or(now);
        let start = (*next).max(floor);
        *next = start + Duration::from_secs_f64(n as f64 / self.bytes_per_sec as f64);
        start.saturating_duration_since(now)
    }

    /// Blocks until `n` more bytes may be sent.
    pub fn take(&self, n: usize) {
        let wait = self.reserve(n);
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_space_bytes_at_the_cap_across_callers() {
        let t = Throttle::new(1_000_000);
        // 10 reservations of 100 kB: the last may start only ~0.9 s after the first.
        let waits: Vec<Duration> = (0..10).map(|_| t.reserve(100_000)).collect();
        let last = waits[9].as_secs_f64();
        assert!((0.8..=0.95).contains(&last), "last wait {last} s");
        assert!(waits.windows(2).all(|w| w[1] > w[0]), "{waits:?}");
    }

    #[test]
    fn no_cap_never_waits() {
        let t = Throttle::new(0);
        assert!((0..100).all(|_| t.reserve(1 << 20).is_zero()));
    }
}

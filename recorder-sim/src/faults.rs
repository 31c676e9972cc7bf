//! Fault injection: what a worn cable, a busy recorder, a yanked plug or a
//! buggy firmware does to the link. Seeded, so a failing run can be repeated.

use std::time::Duration;

/// Faults to inject; all off by default.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Faults {
    /// Share of answer frames that lose one byte on the way (0.0–1.0).
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Share of answer frames with one bit flipped on the way (0.0–1.0).
    #[arg(long, default_value_t = 0.0)]
    pub corrupt_rate: f64,
    /// Share of answer frames preceded by a burst of line noise (0.0–1.0).
    #[arg(long, default_value_t = 0.0)]
    pub noise_rate: f64,
    /// Stop answering after this many requests (the recorder hangs)...
    #[arg(long)]
    pub stall_after: Option<u64>,
    /// ...for this many milliseconds, then carry on.
    #[arg(long, default_value_t = 3000)]
    pub stall_ms: u64,
    /// Pull the plug once this many bytes of file data have been sent.
    #[arg(long)]
    pub unplug_after_bytes: Option<u64>,
    /// Plug back in this many milliseconds after being pulled (a new
    /// pseudo-terminal behind the same link path); without it, exit.
    #[arg(long)]
    pub replug_after_ms: Option<u64>,
    /// Report every file size off by this many bytes (negative: smaller).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub lie_size: i64,
    /// With a mass-storage volume (`--mount`): show file #INDEX there with
    /// one byte changed (a damaged volume; the recording itself is intact).
    #[arg(long, value_name = "INDEX")]
    pub mount_tamper_index: Option<u32>,
    /// Seed for the random faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl Faults {
    /// The file size as this recorder reports it.
    pub fn reported_size(&self, actual: u64) -> u64 {
        actual.saturating_add_signed(self.lie_size)
    }

    /// How long to hang before handling request number `n` (counted from 1), if at all.
    pub fn stall_before(&self, n: u64) -> Option<Duration> {
        (self.stall_after.map(|a| a + 1) == Some(n)).then(|| Duration::from_millis(self.stall_ms))
    }
}

/// Damages outgoing frames as [`Faults`] says.
#[derive(Debug)]
pub struct Line {
    faults: Faults,
    rng: fastrand::Rng,
    /// Frames damaged so far (dropped byte, flipped bit or noise).
    pub damaged: u64,
}

impl Line {
    /// A line with these faults.
    pub fn new(faults: &Faults) -> Self {
        Self {
            faults: faults.clone(),
            rng: fastrand::Rng::with_seed(faults.seed),
            damaged: 0,
        }
    }

    /// The bytes that reach the host when the recorder sends `frame`.
    pub fn transmit(&mut self, mut frame: Vec<u8>) -> Vec<u8> {
        let mut hit = false;
        if self.rng.f64() < self.faults.noise_rate {
            let mut noise: Vec<u8> = (0..self.rng.usize(1..64))
                .map(|_| self.rng.u8(..))
                .collect();
            noise.extend_from_slice(&frame);
            frame = noise;
            hit = true;
        }
        if !frame.is_empty() && self.rng.f64() < self.faults.drop_rate {
            let at = self.rng.usize(..frame.len());
            frame.remove(at);
            hit = true;
        }
        if !frame.is_empty() && self.rng.f64() < self.faults.corrupt_rate {
            let at = self.rng.usize(..frame.len());
            frame[at] ^= 1 << self.rng.u8(..8);
            hit = true;
        }
        self.damaged += u64::from(hit);
        frame
    }
}

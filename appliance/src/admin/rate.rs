//! Calls per second over a sliding window, from samples of a cumulative counter.
//!
//! The server samples `calls_total` once a second; the gauge is
//! `(newest - oldest within the window) / (their time distance)`. Invariants: at most
//! `capacity` samples are kept; a counter that goes backwards (restart) resets the window.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Window of the `portcullis_calls_per_second` gauge.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Sampled counter with a sliding window.
#[derive(Debug)]
pub struct RateWindow {
    window: Duration,
    samples: VecDeque<(Instant, u64)>,
    capacity: usize,
}

impl RateWindow {
    /// A window of `window`, keeping at most `capacity` samples (≥ 2).
    #[must_use]
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self {
            window,
            samples: VecDeque::new(),
            capacity: capacity.max(2),
        }
    }

    /// Records `total` at `now` (`now` must not go backwards; earlier samples are ignored).
    pub fn record(&mut self, now: Instant, total: u64) {
        if let Some(&(t, v)) = self.samples.back() {
            if now < t {
                return;
            }
            if total < v {
                self.samples.clear();
            }
        }
        self.samples.push_back((now, total));
        // Keep one sample at or before the window start so the rate spans the full window.
        while self.samples.len() > 2 {
            let second = self.samples.get(1).map(|s| s.0);
            match second {
                Some(t) if now.saturating_duration_since(t) >= self.window => {
                    self.samples.pop_front();
                }
                _ => break,
            }
        }
        while self.samples.len() > self.capacity {
            self.samples.pop_front();
        }
    }

    /// Events per second over the window ending at the newest sample; 0 with fewer than two
    /// samples.
    #[must_use]
    pub fn rate(&self) -> f64 {
        let (Some(&(t0, v0)), Some(&(t1, v1))) = (self.samples.front(), self.samples.back()) else {
            return 0.0;
        };
        let dt = t1.saturating_duration_since(t0).as_secs_f64();
        if dt <= 0.0 {
            return 0.0;
        }
        // u64 → f64 loses precision only above 2^53 calls.
        #[allow(clippy::cast_precision_loss)]
        let dv = v1.saturating_sub(v0) as f64;
        dv / dt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_rate() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(RATE_WINDOW, 64);
        assert!(w.rate().abs() < f64::EPSILON);
        for s in 0..=30u64 {
            w.record(t0 + Duration::from_secs(s), s * 5);
        }
        assert!((w.rate() - 5.0).abs() < 1e-9, "{}", w.rate());
    }

    #[test]
    fn window_forgets_old_bursts() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(RATE_WINDOW, 64);
        w.record(t0, 0);
        w.record(t0 + Duration::from_secs(1), 1000);
        for s in 2..=20u64 {
            w.record(t0 + Duration::from_secs(s), 1000);
        }
        assert!(w.rate().abs() < f64::EPSILON, "{}", w.rate());
    }

    #[test]
    fn counter_reset_restarts() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(RATE_WINDOW, 64);
        w.record(t0, 100);
        w.record(t0 + Duration::from_secs(1), 0);
        assert!(w.rate().abs() < f64::EPSILON);
        w.record(t0 + Duration::from_secs(2), 4);
        assert!((w.rate() - 4.0).abs() < 1e-9);
    }
}

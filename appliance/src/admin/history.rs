//! The dashboard's time series: calls/s and concurrent calls over the last hour, and the
//! per-worker data plane rates, from samples the admin server takes every second.
//!
//! Invariants: one [`HistoryPoint`] per [`HISTORY_PERIOD`] and at most [`HISTORY_POINTS`]
//! (one hour; the oldest go first); a counter that goes backwards (restart) restarts the
//! series without a negative rate; worker rates are over the last two samples only.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Distance between two points of the call history.
pub const HISTORY_PERIOD: Duration = Duration::from_secs(5);

/// Points kept: one hour.
pub const HISTORY_POINTS: usize = 720;

/// One point of `GET /api/v1/history`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    /// End of the period (ms since the UNIX epoch).
    pub t_ms: u64,
    /// Call attempts per second over the period.
    pub calls_per_second: f64,
    /// Live calls at the end of the period.
    pub calls_active: u64,
}

/// Cumulative counters of one data plane worker at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerSample {
    /// Worker id.
    pub worker: usize,
    /// CPU core it is pinned to (`None`: not pinned).
    pub core: Option<usize>,
    /// Backend in use (`io_uring`, `mmsg`; empty before it started).
    pub backend: String,
    /// Armed stream pairs.
    pub active_pairs: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets dropped, every reason.
    pub drops: u64,
    /// CPU time the worker thread used so far, ms (`None`: not readable).
    pub cpu_ms: Option<u64>,
}

/// One worker in `GET /api/v1/dataplane`: its counters as rates over the last second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerLoad {
    /// Worker id.
    pub worker: usize,
    /// CPU core it is pinned to.
    pub core: Option<usize>,
    /// Backend in use.
    pub backend: String,
    /// Armed stream pairs.
    pub active_pairs: u64,
    /// Packets received per second.
    pub rx_pps: f64,
    /// Packets sent per second.
    pub tx_pps: f64,
    /// Received bits per second.
    pub rx_bps: f64,
    /// Drops per second.
    pub drops_per_s: f64,
    /// Share of one core the worker thread used, percent (`None`: not readable).
    pub cpu_pct: Option<f64>,
}

/// The series (kept by the admin server, fed by its sampler).
#[derive(Debug, Default)]
pub struct History {
    points: VecDeque<HistoryPoint>,
    /// Start of the current period: `(instant, calls_total)`.
    period_start: Option<(Instant, u64)>,
    workers_prev: Option<(Instant, Vec<WorkerSample>)>,
    workers_last: Option<(Instant, Vec<WorkerSample>)>,
}

/// `(b - a) / dt`, 0 when the counter went backwards.
fn per_second(a: u64, b: u64, dt: f64) -> f64 {
    // Counters stay far below 2^53: the conversion is exact.
    #[allow(clippy::cast_precision_loss)]
    let d = b.saturating_sub(a) as f64;
    if dt > 0.0 {
        d / dt
    } else {
        0.0
    }
}

impl History {
    /// Records the call counters at `now` (`wall_ms`: the same instant on the CDR clock);
    /// closes a period once [`HISTORY_PERIOD`] has passed since the last one.
    pub fn record_calls(&mut self, now: Instant, wall_ms: u64, total: u64, active: u64) {
        let Some((t0, v0)) = self.period_start else {
            self.period_start = Some((now, total));
            return;
        };
        if total < v0 {
            self.period_start = Some((now, total));
            return;
        }
        let dt = now.saturating_duration_since(t0);
        if dt < HISTORY_PERIOD {
            return;
        }
        while self.points.len() >= HISTORY_POINTS {
            self.points.pop_front();
        }
        self.points.push_back(HistoryPoint {
            t_ms: wall_ms,
            calls_per_second: per_second(v0, total, dt.as_secs_f64()),
            calls_active: active,
        });
        self.period_start = Some((now, total));
    }

    /// The points, oldest first.
    #[must_use]
    pub fn points(&self) -> Vec<HistoryPoint> {
        self.points.iter().copied().collect()
    }

    /// Records every worker's counters at `now`.
    pub fn record_workers(&mut self, now: Instant, samples: Vec<WorkerSample>) {
        self.workers_prev = self.workers_last.take();
        self.workers_last = Some((now, samples));
    }

    /// Every worker's rates over the last two samples (zeros with one sample).
    #[must_use]
    pub fn worker_loads(&self) -> Vec<WorkerLoad> {
        let Some((t1, last)) = &self.workers_last else {
            return Vec::new();
        };
        last.iter()
            .map(|w| {
                let prev = self
                    .workers_prev
                    .as_ref()
                    .and_then(|(t0, p)| Some((*t0, p.iter().find(|x| x.worker == w.worker)?)));
                let dt = prev.map_or(0.0, |(t0, _)| {
                    t1.saturating_duration_since(t0).as_secs_f64()
                });
                let p = prev.map(|(_, p)| p);
                let rate =
                    |f: fn(&WorkerSample) -> u64| p.map_or(0.0, |p| per_second(f(p), f(w), dt));
                let cpu_pct = match (p.and_then(|p| p.cpu_ms), w.cpu_ms) {
                    (Some(a), Some(b)) if dt > 0.0 => Some(per_second(a, b, dt) / 10.0),
                    _ => None,
                };
                WorkerLoad {
                    worker: w.worker,
                    core: w.core,
                    backend: w.backend.clone(),
                    active_pairs: w.active_pairs,
                    rx_pps: rate(|x| x.rx_packets),
                    tx_pps: rate(|x| x.tx_packets),
                    rx_bps: rate(|x| x.rx_bytes) * 8.0,
                    drops_per_s: rate(|x| x.drops),
                    cpu_pct,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_point_per_period_bounded_to_an_hour() {
        let t0 = Instant::now();
        let mut h = History::default();
        // Two calls a second, ten live: one point every 5 s.
        for s in 0..=(HISTORY_POINTS as u64 * 5 + 100) {
            h.record_calls(t0 + Duration::from_secs(s), 1000 * s, 2 * s, 10);
        }
        let p = h.points();
        assert_eq!(p.len(), HISTORY_POINTS);
        assert!(p
            .iter()
            .all(|x| (x.calls_per_second - 2.0).abs() < 1e-9 && x.calls_active == 10));
        assert!(p.windows(2).all(|w| w[1].t_ms - w[0].t_ms == 5000));
        assert_eq!(
            p.last().map(|x| x.t_ms),
            Some(1000 * (HISTORY_POINTS as u64 * 5 + 100))
        );
    }

    #[test]
    fn counter_reset_restarts_the_period() {
        let t0 = Instant::now();
        let mut h = History::default();
        h.record_calls(t0, 0, 100, 0);
        h.record_calls(t0 + Duration::from_secs(5), 5000, 3, 1);
        assert!(h.points().is_empty());
        h.record_calls(t0 + Duration::from_secs(10), 10_000, 13, 1);
        assert_eq!(h.points().len(), 1);
        assert!((h.points()[0].calls_per_second - 2.0).abs() < 1e-9);
    }

    #[test]
    fn worker_rates() {
        let t0 = Instant::now();
        let mut h = History::default();
        let s = |rx: u64, cpu: u64| WorkerSample {
            worker: 0,
            core: Some(3),
            backend: "io_uring".into(),
            active_pairs: 2,
            rx_packets: rx,
            tx_packets: rx,
            rx_bytes: rx * 100,
            drops: 0,
            cpu_ms: Some(cpu),
        };
        h.record_workers(t0, vec![s(1000, 100)]);
        assert!(h.worker_loads()[0].rx_pps.abs() < f64::EPSILON);
        h.record_workers(t0 + Duration::from_secs(2), vec![s(3000, 600)]);
        let l = &h.worker_loads()[0];
        assert!((l.rx_pps - 1000.0).abs() < 1e-9, "{l:?}");
        assert!((l.rx_bps - 800_000.0).abs() < 1e-6, "{l:?}");
        assert_eq!(l.cpu_pct, Some(25.0));
        assert_eq!((l.core, l.active_pairs), (Some(3), 2));
    }
}

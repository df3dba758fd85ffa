//! The final report (JSON and text), the per-second timeline, and the appliance's CPU and
//! memory read through `procfs` (utime + stime in the kernel's clock ticks, converted with
//! the system's tick rate; `VmRSS`). The charts are drawn in [`crate::chart`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::stats::Totals;

/// CPU time (µs) and RSS (KiB) of a process at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ProcSample {
    /// utime + stime, µs.
    pub cpu_us: u64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
}

/// CPU time and RSS of process `pid`; `None` when the process is gone.
pub fn proc_sample(pid: u32) -> Option<ProcSample> {
    let p = procfs::process::Process::new(i32::try_from(pid).ok()?).ok()?;
    let stat = p.stat().ok()?;
    let rss_kib = p.status().ok()?.vmrss.unwrap_or(0);
    let hz = procfs::ticks_per_second().max(1);
    let cpu_us = u64::try_from(u128::from(stat.utime + stat.stime) * 1_000_000 / u128::from(hz))
        .unwrap_or(u64::MAX);
    Some(ProcSample { cpu_us, rss_kib })
}

/// One second of the run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Tick {
    /// Seconds since start.
    pub t: f64,
    /// Calls up (signalled and not ended).
    pub calls: u64,
    /// Calls started in this second.
    pub cps: f64,
    /// Packets received per second.
    pub pps: f64,
    /// Mean one-way latency of packets received in this second, µs.
    pub latency_us: f64,
    /// Median one-way latency of packets received in this second, µs.
    pub latency_p50_us: f64,
    /// 99th percentile of the one-way latency of packets received in this second, µs.
    pub latency_p99_us: f64,
    /// Failures so far.
    pub failures: u64,
    /// Loss so far (sent - received) / sent, cumulative, in the live view.
    pub loss: f64,
    /// Relay CPU (all its threads, user + system) per packet received in this second, µs;
    /// 0 when no relay process is measured.
    pub cpu_us_per_packet: f64,
}

/// Percentiles of a histogram.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Minimum.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 90th.
    pub p90: u64,
    /// 99th.
    pub p99: u64,
    /// 99.9th.
    pub p999: u64,
    /// Maximum.
    pub max: u64,
}

impl Percentiles {
    /// Reads the percentiles of `h`.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            min: h.min(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// Relay process accounting over the measured interval.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RelayCost {
    /// pid measured.
    pub pid: u32,
    /// CPU time consumed during the run, µs.
    pub cpu_us: u64,
    /// CPU µs per packet relayed (packets received by us); 0 when no media ran.
    pub cpu_us_per_packet: f64,
    /// CPU µs per call.
    pub cpu_us_per_call: f64,
    /// RSS at start, KiB.
    pub rss_start_kib: u64,
    /// Highest RSS seen, KiB.
    pub rss_peak_kib: u64,
    /// (peak - start) / peak concurrent calls, bytes.
    pub rss_bytes_per_call: f64,
}

/// The final report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// `appliance`, `rtpengine`, `raw` or `direct`.
    pub mode: String,
    /// Command line.
    pub command: String,
    /// Wall time of the run, s.
    pub duration_s: f64,
    /// Calls started.
    pub calls_started: u64,
    /// Calls answered.
    pub calls_answered: u64,
    /// Calls that ended as planned.
    pub calls_completed: u64,
    /// Highest concurrent calls.
    pub peak_calls: u64,
    /// Failures by reason.
    pub failures: BTreeMap<String, u64>,
    /// SIP retransmissions sent.
    pub retransmissions: u64,
    /// re-INVITEs (holds, session refreshes) answered with 2xx.
    pub reinvites_ok: u64,
    /// Media totals.
    pub media: Totals,
    /// Media send errors.
    pub send_errors: u64,
    /// SRTP packets refused by the generator (authentication, replay, never keyed).
    pub srtp_errors: u64,
    /// SRTP on which side: `none`, `caller`, `callee` or `both`.
    pub srtp: String,
    /// Packetisation time, ms.
    pub ptime_ms: u32,
    /// Loss ratio (lost / sent).
    pub loss_ratio: f64,
    /// Mean packets received per second over the whole run.
    pub packets_per_s: f64,
    /// INVITE → 200 setup time, µs.
    pub setup_us: Percentiles,
    /// One-way latency, µs.
    pub latency_us: Percentiles,
    /// Per-stream final RFC 3550 jitter, µs.
    pub jitter_us: Percentiles,
    /// Per-stream longest time between two arrivals, µs (how long media stopped).
    pub max_gap_us: Percentiles,
    /// Relay process cost, when a pid was known.
    pub relay: Option<RelayCost>,
    /// Per-second samples.
    pub timeline: Vec<Tick>,
    /// The media workers' packet I/O: `socket` or `af_xdp`.
    pub generator: String,
    /// Packets that reached the generator but that it dropped before reading them (the
    /// AF_XDP socket's ring full or out of chunks; 0 for sockets, where the kernel does not
    /// say): counted as lost, and not the relay's loss.
    pub generator_rx_dropped: u64,
}

impl Report {
    /// Human-readable summary.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "mode {}  duration {:.1} s  ptime {} ms  srtp {}  generator {}",
            self.mode, self.duration_s, self.ptime_ms, self.srtp, self.generator
        );
        let _ = writeln!(
            s,
            "calls: started {} answered {} completed {} peak {} failed {}",
            self.calls_started,
            self.calls_answered,
            self.calls_completed,
            self.peak_calls,
            self.failures.values().sum::<u64>()
        );
        let _ = writeln!(
            s,
            "sip: re-INVITEs ok {} retransmissions {}",
            self.reinvites_ok, self.retransmissions
        );
        for (k, v) in &self.failures {
            let _ = writeln!(s, "  failure {k}: {v}");
        }
        let m = &self.media;
        let _ = writeln!(
            s,
            "media: streams {} sent {} received {} lost {} ({:.4}%; head {} tail {}) dup {} reordered {} send_errors {} srtp_errors {} generator_rx_dropped {} pps {:.0}",
            m.streams,
            m.sent,
            m.received,
            m.lost,
            self.loss_ratio * 100.0,
            m.lost_head,
            m.lost_tail,
            m.duplicates,
            m.reordered,
            self.send_errors,
            self.srtp_errors,
            self.generator_rx_dropped,
            self.packets_per_s
        );
        for (name, p) in [
            ("setup INVITE->200 (us)", &self.setup_us),
            ("one-way latency (us)", &self.latency_us),
            ("jitter RFC3550 (us)", &self.jitter_us),
            ("longest media gap per stream (us)", &self.max_gap_us),
        ] {
            let _ = writeln!(
                s,
                "{name}: n={} min {} p50 {} p90 {} p99 {} p99.9 {} max {}",
                p.count, p.min, p.p50, p.p90, p.p99, p.p999, p.max
            );
        }
        if let Some(r) = &self.relay {
            let _ = writeln!(
                s,
                "relay pid {}: cpu {} us, {:.3} us/packet, {:.1} us/call, rss {}..{} KiB ({:.0} B/call)",
                r.pid,
                r.cpu_us,
                r.cpu_us_per_packet,
                r.cpu_us_per_call,
                r.rss_start_kib,
                r.rss_peak_kib,
                r.rss_bytes_per_call
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_readable_and_its_cpu_time_grows() {
        let a = proc_sample(std::process::id()).unwrap();
        assert!(a.rss_kib > 0);
        // Burn CPU until the sample grows by a tick's worth (bounded: 10 s of wall time,
        // far more than a tick of CPU even on a loaded machine).
        let t0 = std::time::Instant::now();
        let mut x = 0u64;
        let mut b = a;
        while b.cpu_us <= a.cpu_us && t0.elapsed() < std::time::Duration::from_secs(10) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            b = proc_sample(std::process::id()).unwrap();
        }
        assert!(b.cpu_us > a.cpu_us, "{a:?} -> {b:?}");
        assert!(proc_sample(u32::MAX).is_none());
    }

    #[test]
    fn percentiles_of_known_distribution() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 1_000_000, 3).unwrap();
        for v in 1..=1000u64 {
            h.record(v).unwrap();
        }
        let p = Percentiles::of(&h);
        assert_eq!((p.count, p.min, p.max), (1000, 1, 1000));
        assert!((499..=501).contains(&p.p50), "{}", p.p50);
        assert!((989..=991).contains(&p.p99), "{}", p.p99);
        assert_eq!(Percentiles::of(&Histogram::<u64>::new(3).unwrap()).count, 0);
    }
}

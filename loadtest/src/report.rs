//! The final report (JSON and text), the per-second timeline, the hand-written SVG plot,
//! and the appliance's CPU and memory read from procfs (`/proc/<pid>/stat` fields 14–15,
//! utime and stime in clock ticks; `/proc/<pid>/status` `VmRSS`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::stats::Totals;

/// Linux reports `/proc/<pid>/stat` times in USER_HZ, which is 100 on every architecture
/// the kernel ABI exposes to user space.
const USER_HZ: f64 = 100.0;

/// CPU time (µs) and RSS (KiB) of a process at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ProcSample {
    /// utime + stime, µs.
    pub cpu_us: u64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`; `None` when the process is gone.
pub fn proc_sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_proc(&stat, &status)
}

/// Parses the two files (split out for tests). The command name in `stat` may contain
/// spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_proc(stat: &str, status: &str) -> Option<ProcSample> {
    let after = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ")": field 3 (state) is index 0, so utime (14) is index 11, stime (15) is 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cpu_us = ((utime + stime) as f64 / USER_HZ * 1e6) as u64;
    Some(ProcSample { cpu_us, rss_kib })
}

/// A plotted series: title, value of a tick, colour.
type Series = (&'static str, fn(&Tick) -> f64, &'static str);

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
    /// Failures so far.
    pub failures: u64,
    /// Loss so far (sent - received) / sent, cumulative, in the live view.
    pub loss: f64,
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
    /// Relay process cost, when a pid was known.
    pub relay: Option<RelayCost>,
    /// Per-second samples.
    pub timeline: Vec<Tick>,
}

impl Report {
    /// Human-readable summary.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "mode {}  duration {:.1} s  ptime {} ms  srtp {}",
            self.mode, self.duration_s, self.ptime_ms, self.srtp
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
            "media: streams {} sent {} received {} lost {} ({:.4}%; head {} tail {}) dup {} reordered {} send_errors {} srtp_errors {} pps {:.0}",
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
            self.packets_per_s
        );
        for (name, p) in [
            ("setup INVITE->200 (us)", &self.setup_us),
            ("one-way latency (us)", &self.latency_us),
            ("jitter RFC3550 (us)", &self.jitter_us),
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

    /// An SVG with four stacked panels (calls, calls/s, packets/s, latency) over time.
    pub fn svg(&self) -> String {
        let (w, ph, pad) = (800.0f64, 150.0f64, 40.0f64);
        let series: [Series; 4] = [
            ("concurrent calls", |t| t.calls as f64, "#1f77b4"),
            ("calls/s", |t| t.cps, "#ff7f0e"),
            ("packets/s received", |t| t.pps, "#2ca02c"),
            ("mean one-way latency (us)", |t| t.latency_us, "#d62728"),
        ];
        let height = series.len() as f64 * (ph + pad) + pad;
        let tmax = self.timeline.last().map(|t| t.t).unwrap_or(1.0).max(1.0);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" \
             font-family=\"sans-serif\" font-size=\"12\">"
        );
        let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
        for (i, (name, f, color)) in series.iter().enumerate() {
            let top = pad + i as f64 * (ph + pad);
            let vmax = self.timeline.iter().map(f).fold(0.0f64, f64::max).max(1e-9);
            let x0 = 60.0;
            let pw = w - x0 - 20.0;
            let _ = writeln!(
                s,
                "<text x=\"{x0}\" y=\"{}\">{name} (max {vmax:.1})</text>",
                top - 6.0
            );
            let _ = writeln!(
                s,
                "<rect x=\"{x0}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#999\"/>"
            );
            let pts: Vec<String> = self
                .timeline
                .iter()
                .map(|t| {
                    let x = x0 + t.t / tmax * pw;
                    let y = top + ph - f(t) / vmax * ph;
                    format!("{x:.1},{y:.1}")
                })
                .collect();
            let _ = writeln!(
                s,
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
                pts.join(" ")
            );
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{tmax:.0} s</text>",
                x0 + pw,
                top + ph + 14.0
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_parsing_counts_fields_after_the_command_name() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t  4321 kB\n";
        let p = parse_proc(stat, status).unwrap();
        assert_eq!(p.cpu_us, 3_000_000);
        assert_eq!(p.rss_kib, 4321);
        assert!(parse_proc("garbage", "").is_none());
    }

    #[test]
    fn own_process_is_readable() {
        let p = proc_sample(std::process::id()).unwrap();
        assert!(p.rss_kib > 0);
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

    #[test]
    fn svg_has_one_polyline_per_series() {
        let mut r = Report::default();
        for i in 0..5 {
            r.timeline.push(Tick {
                t: f64::from(i),
                calls: 10 * i as u64,
                ..Tick::default()
            });
        }
        let svg = r.svg();
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }
}

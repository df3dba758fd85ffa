//! `/metrics` families of the XDP fast path (`[media] fast_path`): rendered only while it
//! is on. The per-worker figures come from the workers' counters (read from the
//! program's maps at each housekeeping visit of a promoted pair and at demotion); the
//! verdicts are the program's own per-CPU counters.

use portcullis_xdp::{FastPathStats, Stat};

use super::metrics::{fam, Encoder, Family, Kind, Value};
use super::MetricsSnapshot;

/// The fast path's families (declared beside [`super::metrics::FAMILIES`]).
pub const FAMILIES: &[Family] = &[
    fam(
        "portcullis_fastpath_promoted_ports",
        Kind::Gauge,
        "Media ports forwarded by the XDP fast path now, per worker (two per plain-RTP leg \
         without rtcp-mux, one with it).",
    ),
    fam(
        "portcullis_fastpath_packets_total",
        Kind::Counter,
        "Media packets the XDP fast path forwarded for a worker's ports.",
    ),
    fam(
        "portcullis_fastpath_bytes_total",
        Kind::Counter,
        "UDP payload bytes the XDP fast path forwarded for a worker's ports.",
    ),
    fam(
        "portcullis_fastpath_promotion_failures_total",
        Kind::Counter,
        "Promotions the kernel refused, per worker (the legs stay with the worker).",
    ),
    fam(
        "portcullis_fastpath_program_packets_total",
        Kind::Counter,
        "Packets of promoted ports seen by the XDP program, by verdict: forwarded (tx, \
         redirect) or passed up to the workers and why.",
    ),
];

/// Renders the fast path's families when it is on.
pub(crate) fn render(e: &mut Encoder, snap: &MetricsSnapshot) {
    let Some(stats) = &snap.fast_path else { return };
    let ids: Vec<String> = (0..snap.workers.len()).map(|i| i.to_string()).collect();
    let per_worker =
        |e: &mut Encoder, name: &str, f: &dyn Fn(&portcullis_dataplane::WorkerStats) -> u64| {
            e.family(name);
            for (id, w) in ids.iter().zip(&snap.workers) {
                e.sample(&[("worker", id.as_str())], Value::Int(f(w)));
            }
        };
    per_worker(e, "portcullis_fastpath_promoted_ports", &|w| w.fast_ports);
    per_worker(e, "portcullis_fastpath_packets_total", &|w| w.fast_packets);
    per_worker(e, "portcullis_fastpath_bytes_total", &|w| w.fast_bytes);
    per_worker(e, "portcullis_fastpath_promotion_failures_total", &|w| {
        w.fast_errors
    });
    render_program(e, stats);
}

fn render_program(e: &mut Encoder, stats: &FastPathStats) {
    e.family("portcullis_fastpath_program_packets_total");
    for s in Stat::ALL {
        e.sample(&[("verdict", s.label())], Value::Int(stats.get(s)));
    }
}

//! Prometheus text exposition (format 0.0.4) of a [`MetricsSnapshot`].
//!
//! A small encoder of our own: the exposition is a handful of families rendered from a
//! snapshot on each scrape, so a registry (with its own atomics and locking) would only
//! duplicate the counters that already live in the engine, the drivers and the per-core
//! data plane blocks.
//!
//! Format rules kept here (<https://prometheus.io/docs/instrumenting/exposition_formats/>):
//! every family is preceded by one `# HELP` and one `# TYPE` line and its samples are
//! contiguous; label values escape `\`, `"` and newline; HELP text escapes `\` and newline;
//! counters end in `_total`. Every family is declared in [`FAMILIES`] and a sample for an
//! undeclared name is a bug caught by the tests.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use portcullis_dataplane::{Backend, DropReason};
use portcullis_net::Transport;

use super::{MetricsSnapshot, TeamsProxyStatus};

/// Metric type, as written on the `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic.
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// One metric family: name, type and help text.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// Full metric name.
    pub name: &'static str,
    /// Type.
    pub kind: Kind,
    /// `# HELP` text.
    pub help: &'static str,
}

pub(crate) use super::metric_families::fam;
pub use super::metric_families::FAMILIES;

/// Looks a family up by name (in [`FAMILIES`] and the families of the fast path module).
#[must_use]
pub fn family(name: &str) -> Option<&'static Family> {
    all_families().find(|f| f.name == name)
}

/// [`FAMILIES`] and the families declared beside this module (registrations, the
/// active/standby pair).
pub fn all_families() -> impl Iterator<Item = &'static Family> {
    FAMILIES
        .iter()
        .chain(super::registrations::FAMILIES)
        .chain(super::metrics_fastpath::FAMILIES.iter())
        .chain(super::metrics_afxdp::FAMILIES.iter())
        .chain(super::interwork_metrics::FAMILIES)
        .chain(super::metrics_traces::FAMILIES.iter())
        .chain(super::ha_metrics::FAMILIES)
}

/// Appends `s` to `out` escaped as a label value (`\` → `\\`, `"` → `\"`, LF → `\n`).
pub fn escape_label_value(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Appends `s` escaped as HELP text (`\` → `\\`, LF → `\n`).
fn escape_help(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A sample value.
#[derive(Debug, Clone, Copy)]
pub enum Value {
    /// Integer (counters, most gauges).
    Int(u64),
    /// Float (rates).
    Float(f64),
}

/// Writes families in the text format. Invariant: samples of one family are written
/// between its [`Encoder::family`] call and the next one.
#[derive(Debug, Default)]
pub struct Encoder {
    out: String,
    current: Option<&'static str>,
}

impl Encoder {
    /// Starts family `name` (writes HELP and TYPE). Returns `false` (and writes nothing)
    /// for a name missing from [`FAMILIES`]; samples up to the next family are then dropped.
    pub fn family(&mut self, name: &str) -> bool {
        let Some(f) = family(name) else {
            self.current = None;
            return false;
        };
        self.current = Some(f.name);
        let _ = write!(self.out, "# HELP {} ", f.name);
        escape_help(&mut self.out, f.help);
        let _ = writeln!(self.out, "\n# TYPE {} {}", f.name, f.kind.as_str());
        true
    }

    /// Writes one sample of the current family.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: Value) {
        let Some(name) = self.current else { return };
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_label_value(&mut self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        match value {
            Value::Int(v) => {
                let _ = write!(self.out, "{v}");
            }
            Value::Float(v) if v.is_nan() => self.out.push_str("NaN"),
            Value::Float(v) if v.is_infinite() => {
                self.out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
            }
            Value::Float(v) => {
                let _ = write!(self.out, "{v}");
            }
        }
        self.out.push('\n');
    }

    /// A family with one unlabelled integer sample.
    pub fn single(&mut self, name: &str, v: u64) {
        if self.family(name) {
            self.sample(&[], Value::Int(v));
        }
    }

    /// The exposition text.
    #[must_use]
    pub fn finish(self) -> String {
        self.out
    }
}

/// Stable label of a transport.
fn transport_label(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
        Transport::Mtls => "mtls",
    }
}

/// Stable label of a data plane backend.
#[must_use]
pub fn backend_label(b: Backend) -> &'static str {
    match b {
        Backend::Auto => "auto",
        Backend::IoUring => "io_uring",
        Backend::Mmsg => "mmsg",
        Backend::AfXdp => "af_xdp",
    }
}

/// Status class labels, by index (0 = unparsable).
const CLASSES: [&str; 7] = ["invalid", "1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

/// Renders `snap` (with `calls_per_second` from the sampler) as exposition text.
#[must_use]
pub fn render(snap: &MetricsSnapshot, calls_per_second: f64) -> String {
    let mut e = Encoder::default();
    if e.family("portcullis_build_info") {
        e.sample(&[("version", env!("CARGO_PKG_VERSION"))], Value::Int(1));
    }
    e.single("portcullis_config_generation", snap.config_generation);
    e.single("portcullis_calls_started_total", snap.calls_total);
    e.single("portcullis_calls_active", snap.calls_active);
    if e.family("portcullis_calls_per_second") {
        e.sample(&[], Value::Float(calls_per_second));
    }
    render_trunks(&mut e, snap);
    render_sip(&mut e, snap);
    render_net(&mut e, snap);
    render_dataplane(&mut e, snap);
    super::metrics_fastpath::render(&mut e, snap);
    super::metrics_afxdp::render(&mut e, snap);
    e.single("portcullis_media_events_lost_total", snap.media_events_lost);
    e.single("portcullis_media_errors_total", snap.media_errors);
    e.single("portcullis_media_bypassed_total", snap.media_bypassed);
    render_teams(&mut e, snap);
    super::trunk_metrics::render(&mut e, &snap.trunk_targets);
    super::registrations::render(&mut e, &snap.registrations);
    super::interwork_metrics::render(&mut e, snap);
    e.single("portcullis_cdr_written_total", snap.cdr_written);
    e.single("portcullis_cdr_errors_total", snap.cdr_errors);
    if let Some((sent, dropped)) = snap.capture {
        e.single("portcullis_capture_sent_total", sent);
        e.single("portcullis_capture_dropped_total", dropped);
    }
    e.single("portcullis_cdr_queue_depth", snap.cdr_queue_depth);
    e.single(
        "portcullis_cdr_backpressure",
        u64::from(snap.cdr_backpressure),
    );
    e.single(
        "portcullis_cdr_backpressure_rejects_total",
        snap.cdr_backpressure_rejects,
    );
    e.single("portcullis_cdr_recovered_total", snap.cdr_recovered);
    e.single("portcullis_log_lines_dropped_total", snap.log_lines_dropped);
    super::metrics_traces::render(&mut e, snap.traces.as_ref());
    if let Some(ng) = &snap.ng {
        crate::ng::counters::render(&mut e, ng);
    }
    if let Some(ha) = &snap.ha {
        super::ha_metrics::render(&mut e, ha);
    }
    if let Some(filter) = &snap.log_filter {
        if e.family("portcullis_log_filter_info") {
            e.sample(&[("filter", filter.as_str())], Value::Int(1));
        }
    }
    e.finish()
}

/// Teams families, only when `[teams]` is configured.
fn render_teams(e: &mut Encoder, snap: &MetricsSnapshot) {
    let Some(t) = &snap.teams else { return };
    let flag = |b: bool| Value::Int(u64::from(b));
    let per_proxy = |e: &mut Encoder, name: &str, f: &dyn Fn(&TeamsProxyStatus) -> Value| {
        e.family(name);
        for p in &t.proxies {
            e.sample(&[("proxy", p.proxy.as_str())], f(p));
        }
    };
    per_proxy(e, "portcullis_teams_proxy_up", &|p| flag(p.state == "up"));
    per_proxy(e, "portcullis_teams_proxy_selected", &|p| flag(p.selected));
    per_proxy(e, "portcullis_teams_proxy_held_off", &|p| {
        flag(p.held_off_s.is_some())
    });
    per_proxy(e, "portcullis_teams_options_sent_total", &|p| {
        Value::Int(p.options_sent)
    });
    per_proxy(e, "portcullis_teams_options_answered_total", &|p| {
        Value::Int(p.options_answered)
    });
    per_proxy(e, "portcullis_teams_options_misses_total", &|p| {
        Value::Int(p.options_missed)
    });
    e.single("portcullis_teams_failovers_total", t.failovers);
}

fn render_trunks(e: &mut Encoder, snap: &MetricsSnapshot) {
    if snap.trunks.is_empty() {
        return;
    }
    e.family("portcullis_trunk_calls_active");
    for (name, t) in &snap.trunks {
        e.sample(&[("trunk", name.as_str())], Value::Int(t.active));
    }
    e.family("portcullis_trunk_calls_total");
    for (name, t) in &snap.trunks {
        e.sample(
            &[("trunk", name.as_str()), ("direction", "inbound")],
            Value::Int(t.inbound),
        );
        e.sample(
            &[("trunk", name.as_str()), ("direction", "outbound")],
            Value::Int(t.outbound),
        );
    }
    if snap.trunks.values().any(|t| !t.outcomes.is_empty()) {
        e.family("portcullis_trunk_call_outcomes_total");
        for (name, t) in &snap.trunks {
            for (outcome, n) in &t.outcomes {
                e.sample(
                    &[("trunk", name.as_str()), ("outcome", *outcome)],
                    Value::Int(*n),
                );
            }
        }
    }
}

fn render_sip(e: &mut Encoder, snap: &MetricsSnapshot) {
    let s = &snap.sip;
    if !s.requests_in.is_empty() || !s.requests_out.is_empty() {
        e.family("portcullis_sip_requests_total");
        for (dir, map) in [("in", &s.requests_in), ("out", &s.requests_out)] {
            for (method, n) in map {
                e.sample(&[("method", *method), ("direction", dir)], Value::Int(*n));
            }
        }
    }
    e.family("portcullis_sip_responses_total");
    for (dir, arr) in [("in", &s.responses_in), ("out", &s.responses_out)] {
        for (class, n) in CLASSES.iter().zip(arr.iter()) {
            e.sample(&[("class", *class), ("direction", dir)], Value::Int(*n));
        }
    }
    e.single(
        "portcullis_sip_transaction_timeouts_total",
        s.transaction_timeouts,
    );
    e.single("portcullis_sip_parse_errors_total", s.parse_errors);
    e.single("portcullis_policy_rejects_total", s.policy_rejects);
    e.single("portcullis_policy_bans_total", s.bans);
    e.single("portcullis_policy_dropped_total", s.dropped);
    e.single("portcullis_sip_auth_replays_total", s.auth_replays);
    e.single("portcullis_codec_rejects_total", s.codec_rejects);
    e.single(
        "portcullis_header_rules_applied_total",
        s.header_rules_applied,
    );
    e.single(
        "portcullis_delayed_offer_reoffers_total",
        s.delayed_offer_reoffers,
    );
    render_admission(e, s);
}

fn render_admission(e: &mut Encoder, s: &super::SipCounters) {
    if !s.rejected.is_empty() {
        e.family("portcullis_sip_rejected_total");
        for ((status, reason), n) in &s.rejected {
            let status = status.to_string();
            e.sample(
                &[("status", status.as_str()), ("reason", *reason)],
                Value::Int(*n),
            );
        }
    }
    if !s.limit_rejects.is_empty() {
        e.family("portcullis_sip_limit_rejects_total");
        for (limit, n) in &s.limit_rejects {
            e.sample(&[("limit", *limit)], Value::Int(*n));
        }
    }
    if !s.options_unavailable.is_empty() {
        e.family("portcullis_sip_options_unavailable_total");
        for (reason, n) in &s.options_unavailable {
            e.sample(&[("reason", *reason)], Value::Int(*n));
        }
    }
    e.single("portcullis_sip_transactions", s.transactions);
    e.single("portcullis_policy_bans_active", s.bans_active);
}

fn render_net(e: &mut Encoder, snap: &MetricsSnapshot) {
    let Some(net) = &snap.net else { return };
    // `for_each` interleaves families per transport; group them so each is contiguous.
    let mut by_name: BTreeMap<&'static str, Vec<(Option<Transport>, u64)>> = BTreeMap::new();
    net.for_each(|name, t, v| by_name.entry(name).or_default().push((t, v)));
    let mut full = String::new();
    for (name, samples) in by_name {
        full.clear();
        full.push_str("portcullis_sip_transport_");
        full.push_str(name);
        if !e.family(&full) {
            continue;
        }
        for (t, v) in samples {
            match t {
                Some(t) => e.sample(&[("transport", transport_label(t))], Value::Int(v)),
                None => e.sample(&[], Value::Int(v)),
            }
        }
    }
}

fn render_dataplane(e: &mut Encoder, snap: &MetricsSnapshot) {
    if e.family("portcullis_dataplane_info") {
        e.sample(
            &[
                ("backend", snap.dataplane_backend.as_str()),
                ("workers", snap.workers.len().to_string().as_str()),
            ],
            Value::Int(1),
        );
    }
    if snap.workers.is_empty() {
        return;
    }
    let ids: Vec<String> = (0..snap.workers.len()).map(|i| i.to_string()).collect();
    let per_worker =
        |e: &mut Encoder, name: &str, f: &dyn Fn(&portcullis_dataplane::WorkerStats) -> u64| {
            e.family(name);
            for (id, w) in ids.iter().zip(&snap.workers) {
                e.sample(&[("worker", id.as_str())], Value::Int(f(w)));
            }
        };
    e.family("portcullis_dataplane_packets_total");
    for (id, w) in ids.iter().zip(&snap.workers) {
        e.sample(
            &[("worker", id.as_str()), ("direction", "rx")],
            Value::Int(w.rx_packets),
        );
        e.sample(
            &[("worker", id.as_str()), ("direction", "tx")],
            Value::Int(w.tx_packets),
        );
    }
    e.family("portcullis_dataplane_bytes_total");
    for (id, w) in ids.iter().zip(&snap.workers) {
        e.sample(
            &[("worker", id.as_str()), ("direction", "rx")],
            Value::Int(w.rx_bytes),
        );
        e.sample(
            &[("worker", id.as_str()), ("direction", "tx")],
            Value::Int(w.tx_bytes),
        );
    }
    e.family("portcullis_dataplane_drops_total");
    for (id, w) in ids.iter().zip(&snap.workers) {
        for r in DropReason::ALL {
            e.sample(
                &[("worker", id.as_str()), ("reason", r.label())],
                Value::Int(w.dropped(r)),
            );
        }
    }
    per_worker(e, "portcullis_dataplane_rtp_source_rejected_total", &|w| {
        w.dropped(DropReason::RtpSourceRejected)
    });
    per_worker(e, "portcullis_dataplane_srtp_failures_total", &|w| {
        w.srtp_failures
    });
    per_worker(e, "portcullis_dataplane_active_pairs", &|w| w.active_pairs);
    per_worker(e, "portcullis_dataplane_commands_total", &|w| w.commands);
    per_worker(e, "portcullis_dataplane_stale_commands_total", &|w| {
        w.stale_commands
    });
    per_worker(e, "portcullis_dataplane_event_ring_overflows_total", &|w| {
        w.events_lost
    });
    per_worker(e, "portcullis_dataplane_connected_sockets", &|w| {
        w.connected_sockets
    });
    per_worker(e, "portcullis_dataplane_send_only_sockets", &|w| {
        w.send_only_sockets
    });
    per_worker(e, "portcullis_dataplane_connect_failures_total", &|w| {
        w.connect_failures
    });
    per_worker(e, "portcullis_dataplane_uring_rearms_total", &|w| w.rearms);
    per_worker(e, "portcullis_dataplane_uring_enobufs_total", &|w| {
        w.enobufs
    });
    render_rings(e, &snap.rings);
}

fn render_rings(e: &mut Encoder, rings: &[portcullis_dataplane::RingDepth]) {
    if rings.is_empty() {
        return;
    }
    let ids: Vec<String> = (0..rings.len()).map(|i| i.to_string()).collect();
    e.family("portcullis_dataplane_command_ring_overflows_total");
    for (id, r) in ids.iter().zip(rings) {
        e.sample(&[("worker", id.as_str())], Value::Int(r.command_overflows));
    }
    e.family("portcullis_dataplane_ring_depth");
    for (id, r) in ids.iter().zip(rings) {
        for (ring, n) in [("command", r.commands), ("event", r.events)] {
            e.sample(
                &[("worker", id.as_str()), ("ring", ring)],
                Value::Int(n as u64),
            );
        }
    }
    e.family("portcullis_dataplane_ring_capacity");
    for (id, r) in ids.iter().zip(rings) {
        e.sample(&[("worker", id.as_str())], Value::Int(r.capacity as u64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut s = String::new();
        escape_label_value(&mut s, "a\\b\"c\nd");
        assert_eq!(s, "a\\\\b\\\"c\\nd");
    }

    #[test]
    fn families_are_well_named_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for f in all_families() {
            assert!(seen.insert(f.name), "duplicate {}", f.name);
            assert!(f.name.starts_with("portcullis_"), "{}", f.name);
            assert!(
                f.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                f.name
            );
            assert_eq!(
                f.kind == Kind::Counter,
                f.name.ends_with("_total"),
                "{}",
                f.name
            );
        }
    }

    #[test]
    fn every_net_counter_is_declared() {
        let snap = portcullis_net::NetCountersSnapshot::default();
        let mut missing = Vec::new();
        snap.for_each(|name, _, _| {
            let full = format!("portcullis_sip_transport_{name}");
            if family(&full).is_none() {
                missing.push(full);
            }
        });
        assert!(missing.is_empty(), "undeclared: {missing:?}");
    }

    #[test]
    fn undeclared_family_writes_nothing() {
        let mut e = Encoder::default();
        assert!(!e.family("portcullis_nope_total"));
        e.sample(&[], Value::Int(1));
        assert_eq!(e.finish(), "");
    }

    #[test]
    fn float_values() {
        let mut e = Encoder::default();
        e.family("portcullis_calls_per_second");
        e.sample(&[], Value::Float(0.5));
        e.sample(&[], Value::Float(f64::INFINITY));
        e.sample(&[], Value::Float(f64::NAN));
        let t = e.finish();
        assert!(t.contains("portcullis_calls_per_second 0.5\n"), "{t}");
        assert!(t.contains("portcullis_calls_per_second +Inf\n"), "{t}");
        assert!(t.contains("portcullis_calls_per_second NaN\n"), "{t}");
    }
}

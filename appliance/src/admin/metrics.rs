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

const fn fam(name: &'static str, kind: Kind, help: &'static str) -> Family {
    Family { name, kind, help }
}

use Kind::{Counter as C, Gauge as G};

/// Every family the appliance exports. The SIP driver families (`portcullis_sip_transport_*`)
/// mirror `NetCountersSnapshot::for_each` names one to one.
pub const FAMILIES: &[Family] = &[
    fam("portcullis_build_info", G, "Build information (value 1)."),
    fam(
        "portcullis_config_generation",
        G,
        "Configuration generation: 1 at start, +1 per successful reload.",
    ),
    fam(
        "portcullis_calls_started_total",
        C,
        "Call attempts seen by the call engine.",
    ),
    fam("portcullis_calls_active", G, "Live calls."),
    fam(
        "portcullis_calls_per_second",
        G,
        "Call attempts per second over the last 10 seconds.",
    ),
    fam(
        "portcullis_trunk_calls_active",
        G,
        "Live calls touching the trunk (inbound or outbound).",
    ),
    fam(
        "portcullis_trunk_calls_total",
        C,
        "Calls from (inbound) or attempts toward (outbound) the trunk.",
    ),
    fam(
        "portcullis_trunk_call_outcomes_total",
        C,
        "Outcomes of calls that arrived from the trunk.",
    ),
    fam(
        "portcullis_sip_requests_total",
        C,
        "SIP requests by method and direction.",
    ),
    fam(
        "portcullis_sip_responses_total",
        C,
        "SIP responses by status class and direction.",
    ),
    fam(
        "portcullis_sip_transaction_timeouts_total",
        C,
        "Client transactions that timed out (RFC 3261 Timers B, F; RFC 6026 Timer L).",
    ),
    fam(
        "portcullis_sip_parse_errors_total",
        C,
        "Malformed SIP messages (answered 400 when possible).",
    ),
    fam(
        "portcullis_policy_rejects_total",
        C,
        "Requests refused by policy (ACL, rate limit, authentication).",
    ),
    fam(
        "portcullis_sip_auth_replays_total",
        C,
        "Digest credentials refused as replays (nonce count not increasing, nonce reused).",
    ),
    fam(
        "portcullis_policy_bans_total",
        C,
        "Sources banned by the rate limiter.",
    ),
    fam(
        "portcullis_policy_dropped_total",
        C,
        "Requests dropped silently (unknown source in drop mode, banned source).",
    ),
    // Admission under flood.
    fam(
        "portcullis_sip_rejected_total",
        C,
        "Requests refused before a call existed, by status and reason phrase \
         (unknown source, drain, limits, unknown dialog).",
    ),
    fam(
        "portcullis_sip_limit_rejects_total",
        C,
        "New requests answered 503 with Retry-After by a load limit \
         (transactions, transactions_per_source, calls).",
    ),
    fam(
        "portcullis_sip_options_unavailable_total",
        C,
        "OPTIONS answered 503 so a load balancer sends new calls elsewhere \
         (draining, overload).",
    ),
    fam(
        "portcullis_sip_transactions",
        G,
        "Live SIP transactions (bounded by sip.limits.max_transactions).",
    ),
    fam(
        "portcullis_policy_bans_active",
        G,
        "Bans in force, hosts and widened prefixes.",
    ),
    fam(
        "portcullis_sip_transport_messages_in_total",
        C,
        "SIP messages received by the transport drivers.",
    ),
    fam(
        "portcullis_sip_transport_messages_out_total",
        C,
        "SIP messages sent by the transport drivers.",
    ),
    fam(
        "portcullis_sip_transport_bytes_in_total",
        C,
        "SIP bytes received by the transport drivers.",
    ),
    fam(
        "portcullis_sip_transport_bytes_out_total",
        C,
        "SIP bytes sent by the transport drivers.",
    ),
    fam(
        "portcullis_sip_transport_connections_open",
        G,
        "Open TCP/TLS connections.",
    ),
    fam(
        "portcullis_sip_transport_connections_total",
        C,
        "TCP/TLS connections opened.",
    ),
    fam(
        "portcullis_sip_transport_connections_refused_total",
        C,
        "TCP/TLS connections refused (limits, banned sources).",
    ),
    fam(
        "portcullis_sip_transport_idle_closes_total",
        C,
        "Connections closed for idleness.",
    ),
    fam(
        "portcullis_sip_transport_oversize_drops_total",
        C,
        "Messages dropped for exceeding the size limit.",
    ),
    fam(
        "portcullis_sip_transport_framing_errors_total",
        C,
        "Stream framing errors (bad Content-Length).",
    ),
    fam(
        "portcullis_sip_transport_tls_handshake_failures_total",
        C,
        "Failed TLS handshakes.",
    ),
    fam(
        "portcullis_sip_transport_tls_name_rejections_total",
        C,
        "TLS peers refused for their certificate names.",
    ),
    fam(
        "portcullis_sip_transport_keepalives_total",
        C,
        "CRLF keep-alives answered (RFC 5626 section 4.4.1) and UDP keep-alives absorbed.",
    ),
    fam(
        "portcullis_sip_transport_event_queue_drops_total",
        C,
        "Inbound UDP messages dropped because their engine queue (trunks, or other sources) was full.",
    ),
    fam(
        "portcullis_sip_transport_trunk_queue_drops_total",
        C,
        "Of those, UDP messages from configured trunks (their own queue was full).",
    ),
    fam(
        "portcullis_sip_transport_send_failures_total",
        C,
        "Sends that failed.",
    ),
    // Transport edge guards ([sip.limits]).
    fam(
        "portcullis_sip_transport_banned_drops_total",
        C,
        "UDP datagrams from sources banned by the policy, dropped before the engine queue.",
    ),
    fam(
        "portcullis_sip_transport_source_rate_drops_total",
        C,
        "UDP datagrams from non-trunk sources over sip.limits.unknown_source_rate, dropped before the engine queue.",
    ),
    fam(
        "portcullis_sip_transport_rate_limited_total",
        C,
        "TCP/TLS messages over sip.limits.per_connection_rate (requests answered 503), not passed to the engine.",
    ),
    fam(
        "portcullis_sip_transport_buffer_closes_total",
        C,
        "TCP/TLS connections closed because a pending message outgrew sip.limits.per_connection_buffer.",
    ),
    fam(
        "portcullis_sip_transport_slow_closes_total",
        C,
        "TCP/TLS connections closed because a message missed sip.limits.header_timeout or min_receive_rate.",
    ),
    fam(
        "portcullis_sip_transport_reserve_refusals_total",
        C,
        "TCP/TLS connections from non-trunk sources refused because only sip.limits.trunk_connection_reserve was left.",
    ),
    fam(
        "portcullis_dataplane_info",
        G,
        "Data plane I/O backend in use (value 1).",
    ),
    fam(
        "portcullis_dataplane_packets_total",
        C,
        "Media packets per worker and direction.",
    ),
    fam(
        "portcullis_dataplane_bytes_total",
        C,
        "Media bytes per worker and direction.",
    ),
    fam(
        "portcullis_dataplane_drops_total",
        C,
        "Media packets dropped per worker and reason.",
    ),
    fam(
        "portcullis_dataplane_rtp_source_rejected_total",
        C,
        "Media packets refused for their source per worker: not from the leg's peer and not \
         taken by endpoint learning (spoofed or stray streams; also in drops_total).",
    ),
    fam(
        "portcullis_dataplane_srtp_failures_total",
        C,
        "SRTP/SRTCP failures (authentication, replay, other) per worker.",
    ),
    fam(
        "portcullis_dataplane_active_pairs",
        G,
        "Armed stream pairs per worker.",
    ),
    fam(
        "portcullis_dataplane_commands_total",
        C,
        "Ring commands applied per worker.",
    ),
    fam(
        "portcullis_dataplane_stale_commands_total",
        C,
        "Ring commands ignored for a stale generation per worker.",
    ),
    fam(
        "portcullis_dataplane_connected_sockets",
        G,
        "Connected send sockets in use (one per forwarding leg; io_uring backend).",
    ),
    fam(
        "portcullis_dataplane_send_only_sockets",
        G,
        "Connected send sockets never read, each beside a receive socket for the same peer.",
    ),
    fam(
        "portcullis_dataplane_connect_failures_total",
        C,
        "Connected send sockets that could not be made (the leg sends unconnected).",
    ),
    fam(
        "portcullis_dataplane_uring_rearms_total",
        C,
        "io_uring multishot receives re-armed after the kernel ended them (io_uring backend).",
    ),
    fam(
        "portcullis_dataplane_uring_enobufs_total",
        C,
        "io_uring receives that found no free packet buffer (a burst beyond the buffer pool; \
         the datagram waits in the socket until re-armed).",
    ),
    fam(
        "portcullis_dataplane_event_ring_overflows_total",
        C,
        "Events a worker lost because its event ring was full.",
    ),
    fam(
        "portcullis_dataplane_command_ring_overflows_total",
        C,
        "Commands refused because the worker's command ring was full (the call got 503).",
    ),
    fam(
        "portcullis_dataplane_ring_depth",
        G,
        "Messages waiting in a worker's command or event ring.",
    ),
    fam(
        "portcullis_dataplane_ring_capacity",
        G,
        "Capacity of each of a worker's rings.",
    ),
    fam(
        "portcullis_media_events_lost_total",
        C,
        "Data plane events the control plane saw lost to full rings.",
    ),
    fam(
        "portcullis_media_errors_total",
        C,
        "Calls refused for media reasons (no capacity, full command ring).",
    ),
    fam(
        "portcullis_media_bypassed_total",
        C,
        "Calls set up with media bypass: SDP relayed unchanged, no data plane ports.",
    ),
    fam(
        "portcullis_teams_proxy_up",
        G,
        "Teams SIP proxy health: 1 up (answers OPTIONS), 0 down.",
    ),
    fam(
        "portcullis_teams_proxy_selected",
        G,
        "1 for the Teams proxy new calls go to now.",
    ),
    fam(
        "portcullis_teams_proxy_held_off",
        G,
        "1 while a 503 Retry-After keeps the Teams proxy out of the failover order.",
    ),
    fam(
        "portcullis_teams_options_sent_total",
        C,
        "OPTIONS pings sent to the Teams proxy.",
    ),
    fam(
        "portcullis_teams_options_answered_total",
        C,
        "Final answers to OPTIONS pings from the Teams proxy.",
    ),
    fam(
        "portcullis_teams_options_misses_total",
        C,
        "OPTIONS pings to the Teams proxy left unanswered (timeout or broken connection).",
    ),
    fam(
        "portcullis_teams_failovers_total",
        C,
        "Times new calls toward Teams were moved to another proxy.",
    ),
    fam("portcullis_cdr_written_total", C, "CDR lines written."),
    fam(
        "portcullis_cdr_errors_total",
        C,
        "CDR write or sync failures.",
    ),
    fam(
        "portcullis_capture_sent_total",
        C,
        "SIP messages sent to the HEP collector ([capture] hep).",
    ),
    fam(
        "portcullis_capture_dropped_total",
        C,
        "SIP messages not captured: the collector's socket could not take them at once, or too large for HEP.",
    ),
    fam(
        "portcullis_log_filter_info",
        G,
        "Log filter in force (value 1); changed by PUT /api/v1/log-level or a reload.",
    ),
];

/// Looks a family up by name.
#[must_use]
pub fn family(name: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| f.name == name)
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
    e.single("portcullis_media_events_lost_total", snap.media_events_lost);
    e.single("portcullis_media_errors_total", snap.media_errors);
    e.single("portcullis_media_bypassed_total", snap.media_bypassed);
    render_teams(&mut e, snap);
    e.single("portcullis_cdr_written_total", snap.cdr_written);
    e.single("portcullis_cdr_errors_total", snap.cdr_errors);
    if let Some((sent, dropped)) = snap.capture {
        e.single("portcullis_capture_sent_total", sent);
        e.single("portcullis_capture_dropped_total", dropped);
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
        for f in FAMILIES {
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

//! The serde layer: the TOML file as written, before any semantic check.
//!
//! Every struct denies unknown fields so a typo is an error with a position, never a silently
//! ignored setting. Values that need checking (addresses, durations, paths, names) stay
//! strings here; `super::check` turns them into checked types and collects every problem.
//! Defaults live here so that the documentation (docs/configuration.md) and the code agree in
//! one place.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[node]`
    #[serde(default)]
    pub node: RawNode,
    /// `[sip]`
    #[serde(default)]
    pub sip: RawSip,
    /// `[media]`
    #[serde(default)]
    pub media: RawMedia,
    /// `[admin]`
    #[serde(default)]
    pub admin: RawAdmin,
    /// `[cdr]`
    #[serde(default)]
    pub cdr: RawCdr,
    /// `[log]`
    #[serde(default)]
    pub log: RawLog,
    /// `[policy]`
    #[serde(default)]
    pub policy: RawPolicy,
    /// `[[trunk]]`
    #[serde(default)]
    pub trunk: Vec<RawTrunk>,
    /// `[[route]]`
    #[serde(default)]
    pub route: Vec<RawRoute>,
    /// `[teams]`
    pub teams: Option<RawTeams>,
    /// `[capture]`
    #[serde(default)]
    pub capture: RawCapture,
}

fn s(v: &str) -> String {
    v.to_owned()
}

/// `[node]`: identity of this appliance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    /// Short name used in logs, CDRs and metrics.
    #[serde(default = "default_node_name")]
    pub name: String,
    /// Public FQDN of the appliance, used in Via/Record-Route when set.
    pub fqdn: Option<String>,
}

fn default_node_name() -> String {
    s("portcullis")
}

impl Default for RawNode {
    fn default() -> Self {
        Self {
            name: default_node_name(),
            fqdn: None,
        }
    }
}

/// `[sip]`: listeners, limits, drain and session timers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSip {
    /// `[[sip.listener]]`
    #[serde(default)]
    pub listener: Vec<RawListener>,
    /// How long a SIGTERM drain waits for calls to end.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: String,
    /// The least time a SIGTERM drain keeps answering 503 before the process stops, calls
    /// or not (a load balancer's probe must see it).
    #[serde(default = "default_drain_notice")]
    pub drain_notice: String,
    /// `[sip.limits]`
    #[serde(default)]
    pub limits: RawSipLimits,
    /// `[sip.session_timer]`
    #[serde(default)]
    pub session_timer: RawSessionTimer,
}

fn default_drain_timeout() -> String {
    s("30s")
}

fn default_drain_notice() -> String {
    s("0s")
}

impl Default for RawSip {
    fn default() -> Self {
        Self {
            listener: Vec::new(),
            drain_timeout: default_drain_timeout(),
            drain_notice: default_drain_notice(),
            limits: RawSipLimits::default(),
            session_timer: RawSessionTimer::default(),
        }
    }
}

/// SIP transport of a listener or a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// RFC 3261 §18 over UDP.
    Udp,
    /// RFC 3261 §18 over TCP.
    Tcp,
    /// SIP over TLS (RFC 3261 §26.2), server certificate only.
    Tls,
    /// SIP over TLS with client certificates required (mutual TLS).
    Mtls,
}

impl Transport {
    /// True for the transports that run over a TCP socket.
    pub fn is_stream(self) -> bool {
        !matches!(self, Self::Udp)
    }

    /// True for tls and mtls.
    pub fn is_tls(self) -> bool {
        matches!(self, Self::Tls | Self::Mtls)
    }

    /// The lower-case name as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Mtls => "mtls",
        }
    }
}

/// `[[sip.listener]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    /// udp | tcp | tls | mtls
    pub transport: Transport,
    /// `ip:port` to bind.
    pub address: String,
    /// PEM certificate chain (tls, mtls).
    pub cert: Option<String>,
    /// PEM private key (tls, mtls).
    pub key: Option<String>,
    /// PEM CA bundle that client certificates must chain to (mtls).
    pub client_ca: Option<String>,
    /// Names one of which the client certificate must carry (mtls; empty = any).
    #[serde(default)]
    pub client_names: Vec<String>,
}

/// `[sip.limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSipLimits {
    /// Largest SIP message accepted, in bytes.
    #[serde(default = "default_max_message_size")]
    pub max_message_size: u32,
    /// Concurrent TCP/TLS connections, all sources together.
    #[serde(default = "default_max_tcp_connections")]
    pub max_tcp_connections: u32,
    /// Concurrent TCP/TLS connections from one source IP.
    #[serde(default = "default_max_connections_per_source")]
    pub max_connections_per_source: u32,
    /// Messages per second accepted on one connection.
    #[serde(default = "default_per_connection_rate")]
    pub per_connection_rate: u32,
    /// Bytes of unparsed data buffered per connection.
    #[serde(default = "default_per_connection_buffer")]
    pub per_connection_buffer: u32,
    /// Idle time after which a TCP/TLS connection is closed.
    #[serde(default = "default_tcp_idle_timeout")]
    pub tcp_idle_timeout: String,

    // Admission limits of the call engine.
    /// Calls in progress, all trunks together (absent = unlimited).
    pub max_calls: Option<u32>,
    /// Live calls from which OPTIONS are answered 503 (overload), so a load balancer
    /// probing with OPTIONS sends new calls elsewhere (absent = never).
    pub overload_calls: Option<u32>,
    /// Live server transactions, all sources together.
    #[serde(default = "default_max_transactions")]
    pub max_transactions: u32,
    /// Live server transactions created by one source IP (trunks included).
    #[serde(default = "default_max_transactions_per_source")]
    pub max_transactions_per_source: u32,
    // Transport edge guards: slow messages, the trunks' connection reserve, and the
    // receive-path rate of unknown UDP sources.
    /// Time from a stream message's first byte to the end of its headers.
    #[serde(default = "default_header_timeout")]
    pub header_timeout: String,
    /// Slowest a stream message may arrive, bytes per second.
    #[serde(default = "default_min_receive_rate")]
    pub min_receive_rate: u32,
    /// TCP/TLS connections kept for configured trunks; absent: a tenth of
    /// `max_tcp_connections`.
    #[serde(default)]
    pub trunk_connection_reserve: Option<u32>,
    /// Datagrams per second from one source that is not a configured trunk.
    #[serde(default = "default_unknown_source_rate")]
    pub unknown_source_rate: u32,
    /// Messages waiting for the call engine, per queue (trunks, other sources).
    #[serde(default = "default_engine_queue")]
    pub engine_queue: u32,
}

fn default_max_transactions() -> u32 {
    100_000
}
fn default_max_transactions_per_source() -> u32 {
    20_000
}

fn default_max_message_size() -> u32 {
    65_535
}
fn default_max_tcp_connections() -> u32 {
    10_000
}
fn default_max_connections_per_source() -> u32 {
    64
}
fn default_per_connection_rate() -> u32 {
    200
}
fn default_per_connection_buffer() -> u32 {
    262_144
}
fn default_tcp_idle_timeout() -> String {
    s("5m")
}
fn default_header_timeout() -> String {
    s("10s")
}
fn default_min_receive_rate() -> u32 {
    1024
}
fn default_unknown_source_rate() -> u32 {
    100
}
fn default_engine_queue() -> u32 {
    8192
}

impl Default for RawSipLimits {
    fn default() -> Self {
        Self {
            max_message_size: default_max_message_size(),
            max_tcp_connections: default_max_tcp_connections(),
            max_connections_per_source: default_max_connections_per_source(),
            per_connection_rate: default_per_connection_rate(),
            per_connection_buffer: default_per_connection_buffer(),
            tcp_idle_timeout: default_tcp_idle_timeout(),
            max_calls: None,
            overload_calls: None,
            max_transactions: default_max_transactions(),
            max_transactions_per_source: default_max_transactions_per_source(),
            header_timeout: default_header_timeout(),
            min_receive_rate: default_min_receive_rate(),
            trunk_connection_reserve: None,
            unknown_source_rate: default_unknown_source_rate(),
            engine_queue: default_engine_queue(),
        }
    }
}

/// `[sip.session_timer]` (RFC 4028).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSessionTimer {
    /// Offer session timers on outgoing INVITEs.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Session-Expires we request (RFC 4028 §4 recommends 1800 s).
    #[serde(default = "default_session_expires")]
    pub session_expires: String,
    /// Smallest Session-Expires we accept (Min-SE, RFC 4028 §5: at least 90 s).
    #[serde(default = "default_min_se")]
    pub min_se: String,
}

fn yes() -> bool {
    true
}
fn default_session_expires() -> String {
    s("30m")
}
fn default_min_se() -> String {
    s("90s")
}

impl Default for RawSessionTimer {
    fn default() -> Self {
        Self {
            enabled: true,
            session_expires: default_session_expires(),
            min_se: default_min_se(),
        }
    }
}

/// Dataplane I/O backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// io_uring when the kernel allows it, mmsg otherwise.
    #[default]
    Auto,
    /// io_uring only (fails at start if unavailable).
    IoUring,
    /// epoll + recvmmsg/sendmmsg.
    Mmsg,
}

/// `[media]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMedia {
    /// IP written into SDP `c=` lines (defaults to `bind_ip` when that is a specific address).
    pub advertised_ip: Option<String>,
    /// IP the media sockets bind to (defaults to `0.0.0.0`).
    pub bind_ip: Option<String>,
    /// First media port (even).
    #[serde(default = "default_port_min")]
    pub port_min: u16,
    /// Last media port (inclusive).
    #[serde(default = "default_port_max")]
    pub port_max: u16,
    /// Dataplane cores: a list of CPU ids, a cpulist string, "auto" or "auto:N".
    #[serde(default = "default_cores")]
    pub cores: RawCores,
    /// auto | io_uring | mmsg
    #[serde(default)]
    pub backend: Backend,
    /// A stream without packets for this long ends its call.
    #[serde(default = "default_inactivity_timeout")]
    pub inactivity_timeout: String,
    /// Slots in each command and event ring.
    #[serde(default = "default_ring_capacity")]
    pub ring_capacity: u32,
    /// Endpoint learning window after each offer/answer (see `endpoint_learning`).
    #[serde(default = "default_learning_window")]
    pub learning_window: String,
}

/// The `media.cores` value: a TOML array of CPU ids or a string.
#[derive(Debug, Clone)]
pub enum RawCores {
    /// `[2, 3]`
    List(Vec<i64>),
    /// `"2-5,8"`, `"auto"`, `"auto:2"`
    Text(String),
}

impl<'de> Deserialize<'de> for RawCores {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawCores;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    r#"a list of CPU ids like [2, 3] or a string like "2-5", "auto" or "auto:2""#,
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawCores, E> {
                Ok(RawCores::Text(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawCores, A::Error> {
                let mut out = Vec::new();
                while let Some(n) = seq.next_element::<i64>()? {
                    out.push(n);
                }
                Ok(RawCores::List(out))
            }
        }
        d.deserialize_any(V)
    }
}

fn default_port_min() -> u16 {
    20_000
}
fn default_port_max() -> u16 {
    29_999
}
fn default_cores() -> RawCores {
    RawCores::Text(s("auto:2"))
}
fn default_inactivity_timeout() -> String {
    s("60s")
}
fn default_ring_capacity() -> u32 {
    4096
}
fn default_learning_window() -> String {
    s("3s")
}

impl Default for RawMedia {
    fn default() -> Self {
        Self {
            advertised_ip: None,
            bind_ip: None,
            port_min: default_port_min(),
            port_max: default_port_max(),
            cores: default_cores(),
            backend: Backend::Auto,
            inactivity_timeout: default_inactivity_timeout(),
            ring_capacity: default_ring_capacity(),
            learning_window: default_learning_window(),
        }
    }
}

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// `ip:port` of the admin HTTP API.
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    /// Bearer token required on every admin request.
    pub token: Option<String>,
}

fn default_admin_listen() -> String {
    s("127.0.0.1:8080")
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
            token: None,
        }
    }
}

/// When CDR records reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// fsync after every record (no record lost on power failure).
    #[default]
    Always,
    /// fsync at most every `cdr.fsync_interval`.
    Interval,
    /// Leave it to the kernel.
    Never,
}

/// `[cdr]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCdr {
    /// JSON-lines file the CDRs are appended to.
    #[serde(default = "default_cdr_path")]
    pub path: String,
    /// always | interval | never
    #[serde(default)]
    pub fsync: FsyncPolicy,
    /// Period of the `interval` policy.
    #[serde(default = "default_fsync_interval")]
    pub fsync_interval: String,
}

fn default_cdr_path() -> String {
    s("/var/lib/portcullis/cdr.jsonl")
}
fn default_fsync_interval() -> String {
    s("1s")
}

impl Default for RawCdr {
    fn default() -> Self {
        Self {
            path: default_cdr_path(),
            fsync: FsyncPolicy::Always,
            fsync_interval: default_fsync_interval(),
        }
    }
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// Normal operation.
    #[default]
    Info,
    /// Troubleshooting.
    Debug,
    /// Everything.
    Trace,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// error | warn | info | debug | trace
    #[serde(default)]
    pub level: LogLevel,
    /// text | json
    #[serde(default)]
    pub format: LogFormat,
}

/// What happens to a request from a source that matches no trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownSourceAction {
    /// Answer 403 Forbidden.
    Reject,
    /// Send nothing (scanners learn nothing).
    #[default]
    Drop,
}

/// `[policy]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// reject | drop
    #[serde(default)]
    pub unknown_source: UnknownSourceAction,
    /// Requests per second accepted from one source IP; above it the source is banned.
    #[serde(default = "default_rate_limit")]
    pub rate_limit: u32,
    /// How long a source that exceeded the rate limit stays banned.
    #[serde(default = "default_ban_duration")]
    pub ban_duration: String,

    // Flood admission.
    /// Requests a source no trunk claims may send per `unknown_source_window`
    /// before it is banned.
    #[serde(default = "default_unknown_source_budget")]
    pub unknown_source_budget: u32,
    /// Window of `unknown_source_budget`.
    #[serde(default = "default_unknown_source_window")]
    pub unknown_source_window: String,
    /// Bans held per prefix level before new ones widen to the prefix.
    #[serde(default = "default_max_bans")]
    pub max_bans: u32,
}

fn default_unknown_source_budget() -> u32 {
    20
}
fn default_unknown_source_window() -> String {
    s("60s")
}
fn default_max_bans() -> u32 {
    65_536
}

fn default_rate_limit() -> u32 {
    50
}
fn default_ban_duration() -> String {
    s("5m")
}

impl Default for RawPolicy {
    fn default() -> Self {
        Self {
            unknown_source: UnknownSourceAction::Drop,
            rate_limit: default_rate_limit(),
            ban_duration: default_ban_duration(),
            unknown_source_budget: default_unknown_source_budget(),
            unknown_source_window: default_unknown_source_window(),
            max_bans: default_max_bans(),
        }
    }
}

/// Media protection toward a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaProtection {
    /// Plain RTP (RFC 3550).
    #[default]
    Rtp,
    /// SDES SRTP (RFC 3711, keys per RFC 4568).
    Srtp,
    /// Not anchored: calls between `bypass` trunks keep their SDP unchanged
    /// and take no media ports (a route mixing modes anchors, as `rtp`).
    Bypass,
}

/// How a leg learns its media peer from packets (rtpengine's `--endpoint-learning`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointLearning {
    /// In the learning window, a valid stream is taken at once and the SDP address
    /// (and port) wins over any other; then the leg is locked.
    #[default]
    Heuristic,
    /// Only the SDP address and port.
    Strict,
    /// Decided at the end of the window, preferring the SDP address.
    Delayed,
    /// Never learn, never check: send to the SDP address, take media from anywhere.
    Off,
}

/// `[[trunk]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrunk {
    /// Unique name used by routes.
    pub name: String,
    /// `host:port` of the peer.
    pub address: String,
    /// udp | tcp | tls (mtls: tls presenting our certificate)
    #[serde(default = "default_trunk_transport")]
    pub transport: Transport,
    /// rtp | srtp | bypass
    #[serde(default)]
    pub media: MediaProtection,
    /// Source networks accepted as this trunk (empty = the address itself when it is an IP).
    #[serde(default)]
    pub acl: Vec<String>,
    /// Concurrent calls through this trunk, both directions (absent = unlimited).
    pub max_calls: Option<u32>,
    /// Interval of SIP OPTIONS keep-alives (absent = no OPTIONS).
    pub options_interval: Option<String>,
    /// `[trunk.credentials]`
    pub credentials: Option<RawCredentials>,
    /// heuristic | strict | delayed | off
    #[serde(default)]
    pub endpoint_learning: EndpointLearning,
    /// NAT rebinding after this much silence from the locked peer (absent = never).
    pub relearn_after: Option<String>,
}

fn default_trunk_transport() -> Transport {
    Transport::Udp
}

/// `[trunk.credentials]`: HTTP digest (RFC 3261 §22, RFC 8760).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredentials {
    /// Digest user name.
    pub username: String,
    /// Digest password.
    pub password: String,
    /// Realm we challenge with (inbound); absent = the node FQDN or name.
    pub realm: Option<String>,
    /// Challenge requests that come from this trunk (401/407).
    #[serde(default)]
    pub challenge_inbound: bool,
    /// Answer 401/407 challenges that this trunk sends us.
    #[serde(default = "yes")]
    pub answer_upstream: bool,
}

/// What to do with a 3xx answer on the outgoing leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedirectPolicy {
    /// Pass the 3xx back to the caller (Contact rewritten for topology hiding).
    #[default]
    Relay,
    /// Retry toward the Contact, but only through the route's own target trunks.
    Follow,
    /// Treat it as a failure and move to the next target.
    Reject,
}

/// `[[route]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Unique name (logs, CDRs).
    pub name: String,
    /// Inbound trunks this route applies to.
    pub from: Vec<String>,
    /// Called number prefix to match.
    pub called_prefix: Option<String>,
    /// Called number regex to match.
    pub called_regex: Option<String>,
    /// Rules applied to the called number, in order.
    #[serde(default)]
    pub translate_called: Vec<RawTranslation>,
    /// Rules applied to the calling number, in order.
    #[serde(default)]
    pub translate_calling: Vec<RawTranslation>,
    /// Outbound trunks, tried in order.
    pub targets: Vec<String>,
    /// relay | follow | reject
    #[serde(default)]
    pub redirect: RedirectPolicy,
}

/// One number translation rule: exactly one of `strip_prefix`, `add_prefix`, or
/// `regex` with `replace`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTranslation {
    /// Remove this prefix when present.
    pub strip_prefix: Option<String>,
    /// Prepend this.
    pub add_prefix: Option<String>,
    /// Pattern for a regex rewrite.
    pub regex: Option<String>,
    /// Replacement (`$1`, `${name}`) for `regex`.
    pub replace: Option<String>,
}

/// `[teams]`: Microsoft Teams Direct Routing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTeams {
    /// The SBC FQDN paired in the Teams tenant (required; checked semantically).
    pub sbc_fqdn: Option<String>,
    /// PEM certificate chain for the SBC FQDN (required).
    pub cert_chain: Option<String>,
    /// PEM private key (required).
    pub key: Option<String>,
    /// PEM roots the Microsoft proxies' certificates must chain to (required).
    pub trusted_roots: Option<String>,
    /// SIP proxies in order of preference.
    #[serde(default = "default_teams_proxies")]
    pub proxies: Vec<String>,
    /// OPTIONS period toward each proxy.
    #[serde(default = "default_teams_options_interval")]
    pub options_interval: String,
    /// Unanswered OPTIONS in a row before a proxy is demoted.
    #[serde(default = "default_miss_threshold")]
    pub miss_threshold: u32,
    /// Media bypass (ICE-lite on the media ports).
    #[serde(default)]
    pub media_bypass: bool,
    /// Name → `ip:port` overrides used instead of DNS (tests, lab).
    #[serde(default)]
    pub resolve: BTreeMap<String, String>,
    /// heuristic | strict | delayed | off, for the legs facing Microsoft.
    #[serde(default)]
    pub endpoint_learning: EndpointLearning,
    /// NAT rebinding after this much silence from the locked peer (absent = never).
    pub relearn_after: Option<String>,
}

/// The three Microsoft SIP proxies of Direct Routing, in order.
pub const TEAMS_PROXIES: [&str; 3] = [
    "sip.pstnhub.microsoft.com:5061",
    "sip2.pstnhub.microsoft.com:5061",
    "sip3.pstnhub.microsoft.com:5061",
];

fn default_teams_proxies() -> Vec<String> {
    TEAMS_PROXIES.iter().map(|p| s(p)).collect()
}
fn default_teams_options_interval() -> String {
    s("60s")
}
fn default_miss_threshold() -> u32 {
    3
}

/// `[capture]`: SIP capture to a HEP collector (Homer).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapture {
    /// Collector address (`host:port`, UDP); unset: no capture.
    pub hep: Option<String>,
    /// Capture agent id written in every packet (HEP chunk 0x000c).
    #[serde(default = "default_capture_id")]
    pub capture_id: u32,
    /// Authentication key the collector expects (HEP chunk 0x000e); unset: none sent.
    pub password: Option<String>,
}

fn default_capture_id() -> u32 {
    2001
}

//! `[sip]` as written in the file: listeners, limits, session timers (see [`super::raw`]).

use serde::Deserialize;

fn s(v: &str) -> String {
    v.to_owned()
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
    /// Name trunks refer to (`[[trunk]] listener`); optional.
    pub name: Option<String>,
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

pub(super) fn yes() -> bool {
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

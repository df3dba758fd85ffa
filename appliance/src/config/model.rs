//! The runtime configuration: immutable, fully checked, cheap to share behind an `Arc` and to
//! swap as a whole on reload. Nothing here can be invalid: every field was produced by
//! `super::check` from a file that passed every check.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;

pub use super::raw::{
    Backend, EndpointLearning, FastPathMode, FsyncPolicy, LogFormat, LogLevel, MediaProtection,
    RedirectPolicy, Strategy, Transport, UnknownSourceAction,
};
use super::types::{CoreList, Fqdn, HostPort, PortRange, TrunkName};
use ipnet::IpNet;

/// A secret string (password, bearer token) whose `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: String) -> Self {
        Self(s)
    }

    /// The secret itself; call only where it is used (digest computation, token comparison).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The complete, checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[node]`
    pub node: NodeConfig,
    /// `[sip]`
    pub sip: SipConfig,
    /// `[media]`
    pub media: MediaConfig,
    /// `[admin]`
    pub admin: AdminConfig,
    /// `[cdr]`
    pub cdr: CdrConfig,
    /// `[log]`
    pub log: LogConfig,
    /// `[policy]`
    pub policy: PolicyConfig,
    /// `[[trunk]]`, in file order; names are unique and never `teams`.
    pub trunks: Vec<TrunkConfig>,
    /// `[[route]]`, in file order (first match wins); every trunk name they hold exists.
    pub routes: Vec<RouteConfig>,
    /// `[teams]`, when Direct Routing is enabled.
    pub teams: Option<TeamsConfig>,
    /// `[capture]`: HEP export of every SIP message, when a collector is set.
    pub capture: Option<CaptureConfig>,
    /// `[dns]`: resolver of trunk names and domains.
    pub dns: DnsConfig,
    /// `[ng]`: the rtpengine ng control protocol listener, when set.
    pub ng: Option<NgConfig>,
    /// `[otel]`: traces of call setup exported over OTLP/HTTP, when set.
    pub otel: Option<OtelConfig>,
    /// `[ha]`: an active/standby pair, when set.
    pub ha: Option<HaConfig>,
}

/// The role of a node of an active/standby pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HaRole {
    /// Carries calls, replicates them to Redis.
    Active,
    /// Waits for the takeover order.
    Standby,
}

/// `[ha]`: an active/standby pair (see `docs/ha.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaConfig {
    /// Role at start.
    pub role: HaRole,
    /// The other node (shown in status).
    pub peer: String,
    /// `redis://` or `rediss://` URL (a password in it is accepted, a file preferred).
    pub redis_url: String,
    /// File holding the Redis password.
    pub redis_password_file: Option<PathBuf>,
    /// CA of the Redis server's certificate (`rediss://`).
    pub redis_ca_file: Option<PathBuf>,
    /// The pair's shared record key (64 hex digits).
    pub key_file: PathBuf,
    /// Prefix of this pair's Redis keys.
    pub key_prefix: String,
    /// Writes queued for the Redis writer at most.
    pub queue: usize,
    /// Expiry of a call's state after its last write or refresh.
    pub state_ttl: Duration,
    /// Period of the rewrite of calls with SRTP legs (their SRTP indexes).
    pub media_refresh: Duration,
    /// Timeout of one Redis command or pipelined batch.
    pub redis_timeout: Duration,
}

impl Config {
    /// The trunk with this name (`teams` is not a trunk: see [`Config::teams`]).
    pub fn trunk(&self, name: &str) -> Option<&TrunkConfig> {
        self.trunks.iter().find(|t| t.name.as_str() == name)
    }

    /// The first route that applies to a call from `from` to `called`, whatever
    /// the calling number.
    pub fn route_for(&self, from: &TrunkName, called: &str) -> Option<&RouteConfig> {
        self.routes
            .iter()
            .find(|r| r.from.contains(from) && r.called.matches(called))
    }

    /// The first route that applies to a call from `from`, `calling` to `called`.
    pub fn route_for_call(
        &self,
        from: &TrunkName,
        calling: &str,
        called: &str,
    ) -> Option<&RouteConfig> {
        self.routes.iter().find(|r| {
            r.from.contains(from) && r.called.matches(called) && r.calling.matches(calling)
        })
    }

    /// Valid but probably unintended settings, one sentence each: a route mixing
    /// `media = "bypass"` trunks with anchored ones (`teams` is always anchored),
    /// whose calls are all anchored (the bypass trunks then treated as `rtp`).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.routes {
            let (mut bypass, mut anchored) = (Vec::new(), Vec::new());
            for name in r.from.iter().chain(&r.targets) {
                let is_bypass = self
                    .trunk(name.as_str())
                    .is_some_and(|t| t.media == MediaProtection::Bypass);
                let list = if is_bypass {
                    &mut bypass
                } else {
                    &mut anchored
                };
                if !list.contains(&name.as_str()) {
                    list.push(name.as_str());
                }
            }
            if !bypass.is_empty() && !anchored.is_empty() {
                out.push(format!(
                    "route {:?} mixes media \"bypass\" trunks ({}) with anchored ones ({}): \
                     its calls are anchored, the bypass trunks treated as \"rtp\"",
                    r.name,
                    bypass.join(", "),
                    anchored.join(", ")
                ));
            }
        }
        out
    }
}

/// `[node]`
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Short name (logs, CDRs, metrics).
    pub name: String,
    /// Public FQDN, when set.
    pub fqdn: Option<Fqdn>,
}

/// `[sip]`
#[derive(Debug, Clone)]
pub struct SipConfig {
    /// At least one listener; no two share a socket.
    pub listeners: Vec<ListenerConfig>,
    /// How long SIGTERM waits for calls to end.
    pub drain_timeout: Duration,
    /// The least time a SIGTERM drain lasts, calls or not (≤ `drain_timeout`).
    pub drain_notice: Duration,
    /// Resource limits.
    pub limits: SipLimits,
    /// RFC 4028 defaults.
    pub session_timer: SessionTimerConfig,
}

/// One `[[sip.listener]]`.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Transport.
    pub transport: Transport,
    /// Bound address.
    pub address: SocketAddr,
    /// Present exactly when the transport is tls or mtls.
    pub tls: Option<TlsFiles>,
    /// Present exactly when the transport is mtls.
    pub client_auth: Option<ClientAuth>,
}

/// A certificate chain and its private key (PEM files that were readable at load time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// mTLS client verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// PEM CA bundle client certificates must chain to.
    pub ca: PathBuf,
    /// Accepted names (SAN DNS); empty = any certificate that chains to `ca`.
    pub names: Vec<Fqdn>,
}

/// `[sip.limits]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipLimits {
    /// Largest message, bytes.
    pub max_message_size: usize,
    /// Concurrent stream connections.
    pub max_tcp_connections: u32,
    /// Concurrent stream connections per source IP (≤ `max_tcp_connections`).
    pub max_connections_per_source: u32,
    /// Messages per second per connection.
    pub per_connection_rate: u32,
    /// Buffered bytes per connection (≥ `max_message_size`).
    pub per_connection_buffer: usize,
    /// Idle stream connections are closed after this.
    pub tcp_idle_timeout: Duration,
    /// Calls in progress, all trunks together (`None`: unlimited).
    pub max_calls: Option<u32>,
    /// Live calls from which OPTIONS get 503 (1..=`max_calls`; `None`: never).
    pub overload_calls: Option<u32>,
    /// Live server transactions, all sources together (≥ 1).
    pub max_transactions: u32,
    /// Live server transactions per source IP (1..=`max_transactions`).
    pub max_transactions_per_source: u32,
    /// A stream message's headers must be whole this long after its first byte.
    pub header_timeout: Duration,
    /// Slowest a stream message may arrive, bytes per second (≥ 1).
    pub min_receive_rate: u32,
    /// Connections of `max_tcp_connections` kept for configured trunks (≤ it).
    pub trunk_connection_reserve: u32,
    /// UDP datagrams per second accepted from one source that is not a trunk (≥ 1).
    pub unknown_source_rate: u32,
    /// Messages waiting for the call engine, per queue (≥ 1).
    pub engine_queue: usize,
}

/// `[sip.session_timer]` (RFC 4028).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTimerConfig {
    /// Offer timers on outgoing INVITEs.
    pub enabled: bool,
    /// Requested Session-Expires (≥ `min_se`).
    pub session_expires: Duration,
    /// Min-SE (≥ 90 s, RFC 4028 §4).
    pub min_se: Duration,
}

/// `[media]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// Address written into SDP toward the first realm's peers (`realms[0]`'s).
    pub advertised_ip: IpAddr,
    /// Address the first realm's media sockets bind to (`realms[0]`'s).
    pub bind_ip: IpAddr,
    /// Port range of the first realm (`realms[0]`'s).
    pub ports: PortRange,
    /// The media realms, never empty: the `[[media.realm]]` entries in file order, or one
    /// realm named `default` made of `[media]`'s addresses and range.
    pub realms: Vec<MediaRealm>,
    /// One dataplane worker per core; `ports.pairs() / cores.len() >= MIN_STREAMS_PER_CORE`.
    pub cores: CoreList,
    /// I/O backend.
    pub backend: Backend,
    /// Media inactivity timeout.
    pub inactivity_timeout: Duration,
    /// Ring slots (power of two).
    pub ring_capacity: usize,
    /// Endpoint learning window (within [`LEARNING_WINDOW_BOUNDS`]).
    pub learning_window: Duration,
    /// XDP fast path.
    pub fast_path: FastPathMode,
    /// Interfaces for the XDP program (empty: the one holding the media address).
    pub interfaces: Vec<String>,
}

/// `[[media.realm]]`: one interface's media addresses and ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRealm {
    /// Unique name.
    pub name: String,
    /// Local address its sockets bind to (on this host, or a wildcard).
    pub bind_ip: IpAddr,
    /// Address written into SDP toward its peers (same family as `bind_ip` unless that is
    /// `::`).
    pub advertised_ip: IpAddr,
    /// Its port range (split evenly between the cores); ranges of realms sharing an
    /// address do not overlap.
    pub ports: PortRange,
}

/// Smallest and largest `media.learning_window`.
pub const LEARNING_WINDOW_BOUNDS: (Duration, Duration) =
    (Duration::from_millis(500), Duration::from_secs(30));
/// Smallest `relearn_after` (a shorter silence is ordinary jitter or DTX).
pub const MIN_RELEARN_AFTER: Duration = Duration::from_secs(1);

/// Media trust toward a peer: how its legs learn their media address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LearningConfig {
    /// Endpoint learning mode.
    pub endpoint_learning: EndpointLearning,
    /// NAT rebinding after this much silence (≥ [`MIN_RELEARN_AFTER`]); `None`: never.
    pub relearn_after: Option<Duration>,
}

/// `[admin]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// Bearer token; always present when `listen` is not a loopback address.
    pub token: Option<Secret>,
}

/// `[cdr]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdrConfig {
    /// JSON-lines file (relative paths already resolved against the config file directory).
    pub path: PathBuf,
    /// Durability policy.
    pub fsync: FsyncPolicy,
    /// Period for [`FsyncPolicy::Interval`].
    pub fsync_interval: Duration,
    /// Entries queued for the writer (channel capacity; new calls are refused at
    /// three quarters of it, see `runtime::cdr_writer`).
    pub queue_capacity: usize,
}

/// `[log]`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Verbosity.
    pub level: LogLevel,
    /// Line format.
    pub format: LogFormat,
    /// Lines buffered for the output before new ones are dropped (see `logging`).
    pub buffer_lines: usize,
}

/// `[policy]`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Requests from no known trunk.
    pub unknown_source: UnknownSourceAction,
    /// Requests per second per source (≥ 1).
    pub rate_limit: u32,
    /// Ban after exceeding the rate.
    pub ban_duration: Duration,
    /// Requests per `unknown_source_window` from a source no trunk claims (≥ 1).
    pub unknown_source_budget: u32,
    /// Window of the unknown-source budget (≥ 1 s).
    pub unknown_source_window: Duration,
    /// Bans per prefix level (≥ 1).
    pub max_bans: u32,
}

/// One `[[trunk]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkConfig {
    /// Unique name.
    pub name: TrunkName,
    /// Where requests go: fixed targets, a name (A/AAAA) or a domain (RFC 3263).
    pub address: TrunkAddress,
    /// How targets share new calls.
    pub strategy: Strategy,
    /// Transport toward the peer.
    pub transport: Transport,
    /// Media protection toward the peer.
    pub media: MediaProtection,
    /// Networks accepted as this trunk; empty = the address (or what its name resolves to).
    pub acl: Vec<IpNet>,
    /// Concurrent-call cap.
    pub max_calls: Option<u32>,
    /// OPTIONS keep-alive period.
    pub options_interval: Option<Duration>,
    /// Unanswered OPTIONS in a row before a target is down (≥ 1).
    pub miss_threshold: u32,
    /// Answered OPTIONS in a row before a down target is up (≥ 1).
    pub recovery_count: u32,
    /// Digest credentials.
    pub credentials: Option<Credentials>,
    /// Media endpoint learning toward the peer.
    pub learning: LearningConfig,
    /// Registration toward the carrier.
    pub register: Option<RegisterConfig>,
    /// RFC 3325 trust, header rules and codec policy (compiled).
    pub policy: portcullis_engine::trunk_policy::TrunkPolicy,
    /// Media realm of its legs (index in [`MediaConfig::realms`]).
    pub realm: usize,
    /// The SIP listener its signalling uses (index in [`SipConfig::listeners`], of its
    /// transport); `None`: the first of its transport.
    pub listener: Option<usize>,
}

/// One configured target of a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrunkTarget {
    /// Where requests go.
    pub address: std::net::SocketAddr,
    /// Lower is preferred.
    pub priority: u16,
    /// Share among equal priorities.
    pub weight: u16,
}

/// Where a trunk's requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrunkAddress {
    /// IP literal targets (`address = "ip:port"` or `targets`).
    Fixed(Vec<TrunkTarget>),
    /// `host:port` with a name: every A/AAAA record is a target (RFC 3263 §4.2).
    Host(HostPort),
    /// A domain without port: NAPTR → SRV → A/AAAA (RFC 3263 §4.1, RFC 2782).
    Domain(Fqdn),
}

impl TrunkAddress {
    /// Where REGISTERs go when `[trunk.register] registrar` is not set: the first target,
    /// the host and port, or a domain on the SIP port (RFC 3263 is not applied to it).
    pub fn registrar_default(&self) -> Option<HostPort> {
        match self {
            Self::Fixed(t) => t.first().map(|t| HostPort {
                host: super::types::Host::Ip(t.address.ip()),
                port: t.address.port(),
            }),
            Self::Host(hp) => Some(hp.clone()),
            Self::Domain(d) => Some(HostPort {
                host: super::types::Host::Name(d.clone()),
                port: 5060,
            }),
        }
    }

    /// The name resolved by DNS, if any.
    pub fn dns_name(&self) -> Option<String> {
        match self {
            Self::Fixed(_) => None,
            Self::Host(hp) => Some(hp.host.to_string()),
            Self::Domain(d) => Some(d.to_string()),
        }
    }
}

impl std::fmt::Display for TrunkAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fixed(t) => {
                let v: Vec<String> = t.iter().map(|t| t.address.to_string()).collect();
                write!(f, "{}", v.join(","))
            }
            Self::Host(hp) => write!(f, "{hp}"),
            Self::Domain(d) => write!(f, "{d}"),
        }
    }
}

/// `[dns]`: the resolver of trunk names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// DNS servers; empty = the system's.
    pub servers: Vec<std::net::SocketAddr>,
    /// Answers are kept at least this long.
    pub min_ttl: Duration,
    /// Answers are kept at most this long.
    pub max_ttl: Duration,
}

/// `[trunk.register]`: REGISTER toward the carrier (RFC 3261 §10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterConfig {
    /// Where REGISTERs go (the trunk address unless set).
    pub registrar: HostPort,
    /// Address of record (`sip:user@domain`).
    pub aor: String,
    /// Domain of the AOR: the REGISTER's Request-URI is `sip:<domain>`.
    pub domain: String,
    /// User part of our Contact (requests to it are this trunk's).
    pub contact_user: String,
    /// Expiry asked for.
    pub expires: Duration,
    /// Back-off after a failure: first delay, doubled up to `retry_max`.
    pub retry_min: Duration,
    /// Longest delay between attempts.
    pub retry_max: Duration,
}

/// Digest credentials of a trunk (RFC 3261 §22).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: Secret,
    /// Realm used when challenging.
    pub realm: Option<String>,
    /// Challenge the trunk's requests.
    pub challenge_inbound: bool,
    /// Answer the trunk's challenges.
    pub answer_upstream: bool,
}

/// One `[[route]]`.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Unique name.
    pub name: String,
    /// Inbound trunks (may include `teams`).
    pub from: Vec<TrunkName>,
    /// Called number condition.
    pub called: NumberMatch,
    /// Calling number condition.
    pub calling: NumberMatch,
    /// Applied in order to the called number.
    pub translate_called: Vec<Translation>,
    /// Applied in order to the calling number.
    pub translate_calling: Vec<Translation>,
    /// Outbound trunks in failover order (non-empty).
    pub targets: Vec<TrunkName>,
    /// 3xx handling.
    pub redirect: RedirectPolicy,
}

impl RouteConfig {
    /// The called number after `translate_called`.
    pub fn translate_called(&self, number: &str) -> String {
        Translation::apply_all(&self.translate_called, number)
    }

    /// The calling number after `translate_calling`.
    pub fn translate_calling(&self, number: &str) -> String {
        Translation::apply_all(&self.translate_calling, number)
    }
}

/// Condition on the called or calling number.
#[derive(Debug, Clone)]
pub enum NumberMatch {
    /// Every number.
    Any,
    /// Numbers starting with this.
    Prefix(String),
    /// Numbers the regex matches (unanchored unless the pattern anchors itself).
    Regex(Regex),
}

impl NumberMatch {
    /// True when `number` satisfies the condition.
    pub fn matches(&self, number: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Prefix(p) => number.starts_with(p.as_str()),
            Self::Regex(r) => r.is_match(number),
        }
    }
}

/// A number rewriting rule.
#[derive(Debug, Clone)]
pub enum Translation {
    /// Remove the prefix when the number starts with it.
    StripPrefix(String),
    /// Prepend.
    AddPrefix(String),
    /// Replace the first match of `regex` with `replace` (`$1`, `${name}`).
    Replace {
        /// Pattern.
        regex: Regex,
        /// Replacement; every group it names exists in `regex`.
        replace: String,
    },
}

impl Translation {
    /// Applies one rule.
    pub fn apply(&self, number: &str) -> String {
        match self {
            Self::StripPrefix(p) => number.strip_prefix(p.as_str()).unwrap_or(number).to_owned(),
            Self::AddPrefix(p) => format!("{p}{number}"),
            Self::Replace { regex, replace } => {
                regex.replace(number, replace.as_str()).into_owned()
            }
        }
    }

    /// Applies rules in order.
    pub fn apply_all(rules: &[Self], number: &str) -> String {
        rules.iter().fold(number.to_owned(), |n, r| r.apply(&n))
    }
}

/// `[teams]`: Microsoft Teams Direct Routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamsConfig {
    /// SBC FQDN (at least two labels), used in Contact and Record-Route.
    pub sbc_fqdn: Fqdn,
    /// Certificate chain for `sbc_fqdn`.
    pub tls: TlsFiles,
    /// PEM roots for the Microsoft proxies.
    pub trusted_roots: PathBuf,
    /// Proxies in order of preference (non-empty).
    pub proxies: Vec<HostPort>,
    /// OPTIONS period.
    pub options_interval: Duration,
    /// Misses before demotion (≥ 1).
    pub miss_threshold: u32,
    /// ICE-lite media bypass.
    pub media_bypass: bool,
    /// DNS overrides.
    pub resolve: BTreeMap<Fqdn, SocketAddr>,
    /// Media endpoint learning toward Microsoft.
    pub learning: LearningConfig,
    /// Media realm of the legs facing Teams (index in [`MediaConfig::realms`]).
    pub realm: usize,
    /// The TLS listener Teams signalling uses (index in [`SipConfig::listeners`]).
    pub listener: Option<usize>,
}

/// `[capture]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    /// HEP collector (UDP).
    pub hep: SocketAddr,
    /// Capture agent id.
    pub capture_id: u32,
    /// Authentication key sent to the collector.
    pub password: Option<Secret>,
}

/// `[ng]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NgConfig {
    /// UDP listen address.
    pub listen: SocketAddr,
    /// Most sessions at once (≥ 1).
    pub max_sessions: u32,
    /// Idle session timeout (no media, no command).
    pub timeout: Duration,
    /// Idle timeout of a held session.
    pub silent_timeout: Duration,
    /// Largest request, bytes.
    pub max_message_size: u32,
    /// Interface names accepted in `direction`.
    pub interfaces: Vec<String>,
}

/// `[otel]`: one trace per call, exported over OTLP/HTTP (protobuf).
#[derive(Debug, Clone, PartialEq)]
pub struct OtelConfig {
    /// Where spans are posted: the collector's base URL + `/v1/traces`.
    pub traces_url: String,
    /// `service.name` of the resource.
    pub service_name: String,
    /// Share of calls traced, 0 to 1.
    pub sample_ratio: f64,
    /// Ended spans waiting for export at most.
    pub queue_spans: usize,
    /// Longest one export (retries included) may take.
    pub timeout: Duration,
}

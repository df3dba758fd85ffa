//! The serde layer: the TOML file as written, before any semantic check.
//!
//! Every struct denies unknown fields so a typo is an error with a position, never a silently
//! ignored setting. Values that need checking (addresses, durations, paths, names) stay
//! strings here; `super::check` turns them into checked types and collects every problem.
//! Defaults live here so that the documentation (docs/configuration.md) and the code agree in
//! one place.

use std::collections::BTreeMap;

use serde::Deserialize;

pub use super::raw_otel::RawOtel;
use super::raw_sip::yes;
pub use super::raw_sip::{RawListener, RawSessionTimer, RawSip, RawSipLimits, Transport};
use super::raw_targets::{default_recovery_count, default_trunk_miss_threshold};
pub use super::raw_targets::{RawDns, RawTarget, Strategy};

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
    /// `[dns]`
    #[serde(default)]
    pub dns: RawDns,
    /// `[ng]`: rtpengine's ng control protocol (media node).
    pub ng: Option<RawNg>,
    /// `[otel]`: traces of call setup over OTLP.
    pub otel: Option<RawOtel>,
    /// `[ha]`: an active/standby pair (`super::raw_ha`).
    pub ha: Option<super::raw_ha::RawHa>,
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
    /// AF_XDP sockets fed by the XDP program on the media interfaces (fails at start if
    /// the program cannot be attached or a worker's queue cannot be bound).
    AfXdp,
}

/// `[media]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMedia {
    /// IP written into SDP `c=` lines (defaults to `bind_ip` when that is a specific address).
    pub advertised_ip: Option<String>,
    /// IP the media sockets bind to (defaults to `0.0.0.0`).
    pub bind_ip: Option<String>,
    /// First media port (even; default 20000).
    pub port_min: Option<u16>,
    /// Last media port (inclusive; default 29999).
    pub port_max: Option<u16>,
    /// Dataplane cores: a list of CPU ids, a cpulist string, "auto" or "auto:N".
    #[serde(default = "default_cores")]
    pub cores: RawCores,
    /// auto | io_uring | mmsg | af_xdp
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
    // XDP fast path.
    /// auto | xdp | off
    #[serde(default)]
    pub fast_path: FastPathMode,
    /// Interfaces the XDP program attaches to (empty: the one holding the media address).
    #[serde(default)]
    pub interfaces: Vec<String>,

    // Interfaces and media realms (see `super::check_realms`).
    /// `[[media.realm]]`: one per interface (address and port range each); none = the
    /// `[media]` addresses and range are the only realm.
    #[serde(default)]
    pub realm: Vec<RawRealm>,
}

/// `media.fast_path`: forwarding of locked plain-RTP legs in the kernel (XDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FastPathMode {
    /// XDP when the build, the interfaces and the privileges allow it, else off (logged).
    Auto,
    /// XDP, or the appliance does not start.
    Xdp,
    /// The workers forward everything.
    #[default]
    Off,
}

/// `[[media.realm]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRealm {
    /// Unique name trunks refer to (`[[trunk]] realm`, `[teams] realm`).
    pub name: String,
    /// Local address the realm's media sockets bind to (IPv4 or IPv6).
    pub bind_ip: String,
    /// Address written into SDP toward the realm's peers (defaults to `bind_ip`).
    pub advertised_ip: Option<String>,
    /// First port of the realm's range (even).
    pub port_min: u16,
    /// Last port of the realm's range (inclusive).
    pub port_max: u16,
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

pub(super) fn default_port_min() -> u16 {
    20_000
}
pub(super) fn default_port_max() -> u16 {
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
            port_min: None,
            port_max: None,
            cores: default_cores(),
            backend: Backend::Auto,
            inactivity_timeout: default_inactivity_timeout(),
            ring_capacity: default_ring_capacity(),
            learning_window: default_learning_window(),
            fast_path: FastPathMode::Off,
            interfaces: Vec::new(),
            realm: Vec::new(),
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
    /// Entries the engine may queue for the writer before new calls are refused.
    #[serde(default = "default_cdr_queue_capacity")]
    pub queue_capacity: u32,
}

fn default_cdr_path() -> String {
    s("/var/lib/portcullis/cdr.jsonl")
}
fn default_fsync_interval() -> String {
    s("1s")
}
fn default_cdr_queue_capacity() -> u32 {
    8192
}

impl Default for RawCdr {
    fn default() -> Self {
        Self {
            path: default_cdr_path(),
            fsync: FsyncPolicy::Always,
            fsync_interval: default_fsync_interval(),
            queue_capacity: default_cdr_queue_capacity(),
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// error | warn | info | debug | trace
    #[serde(default)]
    pub level: LogLevel,
    /// text | json
    #[serde(default)]
    pub format: LogFormat,
    /// Lines waiting for the log output before new ones are dropped (counted).
    #[serde(default = "default_log_buffer_lines")]
    pub buffer_lines: u32,
}

fn default_log_buffer_lines() -> u32 {
    16_384
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            level: LogLevel::default(),
            format: LogFormat::default(),
            buffer_lines: default_log_buffer_lines(),
        }
    }
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
    /// `ip:port`, `host:port` (A/AAAA) or a domain (RFC 3263 NAPTR/SRV); or `targets`.
    pub address: Option<String>,
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

    // Targets, load balancing and health.
    /// Several `ip:port` targets with priority and weight (instead of `address`).
    #[serde(default)]
    pub targets: Vec<RawTarget>,
    /// priority | weighted | least_calls
    #[serde(default)]
    pub strategy: Strategy,
    /// Unanswered OPTIONS in a row before a target is down.
    #[serde(default = "default_trunk_miss_threshold")]
    pub miss_threshold: u32,
    /// Answered OPTIONS in a row before a down target is up again.
    #[serde(default = "default_recovery_count")]
    pub recovery_count: u32,

    /// `[trunk.credentials]`
    pub credentials: Option<RawCredentials>,
    /// heuristic | strict | delayed | off
    #[serde(default)]
    pub endpoint_learning: EndpointLearning,
    /// NAT rebinding after this much silence from the locked peer (absent = never).
    pub relearn_after: Option<String>,
    /// `[trunk.register]`
    pub register: Option<RawRegister>,

    // Signalling policy (see `super::raw_policy`).
    /// A member of the RFC 3325 trust domain (asserted identities kept).
    #[serde(default)]
    pub trusted: bool,
    /// Allowed codecs in preference order (empty = any, as offered).
    #[serde(default)]
    pub codecs: Vec<String>,
    /// Codecs never used.
    #[serde(default)]
    pub codecs_deny: Vec<String>,
    /// keep | add
    #[serde(default)]
    pub telephone_event: super::raw_policy::RawTelephoneEvent,
    /// `[[trunk.headers]]`
    #[serde(default)]
    pub headers: Vec<super::raw_policy::RawHeaderRule>,

    // Media interworking.
    /// passthrough | rfc4733 | info | both
    #[serde(default)]
    pub dtmf: super::raw_policy::RawDtmf,

    // Interfaces and media realms (see `super::check_realms`).
    /// Media realm of the legs facing the trunk (a `[[media.realm]]` name; absent = the
    /// first realm).
    pub realm: Option<String>,
    /// SIP listener the trunk's signalling uses: a `[[sip.listener]]` name or index.
    pub listener: Option<RawListenerRef>,
}

/// A `[[sip.listener]]` by name (`"outside"`) or by index in the file (`0`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RawListenerRef {
    /// Position in `[[sip.listener]]` (from 0).
    Index(u32),
    /// The listener's `name`.
    Name(String),
}

/// `[trunk.register]`: registration toward the carrier (RFC 3261 §10).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegister {
    /// `host:port` of the registrar (absent = the trunk address).
    pub registrar: Option<String>,
    /// Address of record, `sip:user@domain`.
    pub aor: String,
    /// User part of our Contact (absent = the AOR's user).
    pub contact_user: Option<String>,
    /// Expiry asked for.
    #[serde(default = "default_register_expires")]
    pub expires: String,
    /// First retry delay after a failure.
    #[serde(default = "default_register_retry_min")]
    pub retry_min: String,
    /// Longest retry delay.
    #[serde(default = "default_register_retry_max")]
    pub retry_max: String,
}

fn default_register_expires() -> String {
    "1h".into()
}

fn default_register_retry_min() -> String {
    "5s".into()
}

fn default_register_retry_max() -> String {
    "5m".into()
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
    /// Calling number prefix to match.
    pub calling_prefix: Option<String>,
    /// Calling number regex to match.
    pub calling_regex: Option<String>,
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
    /// Media realm of the legs facing Teams (a `[[media.realm]]` name; absent = the first).
    pub realm: Option<String>,
    /// SIP listener Teams signalling uses (name or index; absent = the first TLS one).
    pub listener: Option<RawListenerRef>,
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

/// `[ng]`: answer rtpengine's ng control protocol (bencode over UDP) so Kamailio's
/// `rtpengine` module drives this node's data plane.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNg {
    /// UDP address of the ng listener (`rtpengine_sock` in Kamailio points here).
    pub listen: String,
    /// Most ng sessions (calls) at once; an offer beyond is refused (`load limit`).
    #[serde(default = "default_ng_max_sessions")]
    pub max_sessions: u32,
    /// A session with no media and no command for this long is deleted.
    #[serde(default = "default_ng_timeout")]
    pub timeout: String,
    /// As `timeout`, for sessions on hold (a stream not `sendrecv`).
    #[serde(default = "default_ng_silent_timeout")]
    pub silent_timeout: String,
    /// Largest request accepted, bytes; a larger one is answered with an error.
    #[serde(default = "default_ng_max_message_size")]
    pub max_message_size: u32,
    /// Interface names a `direction` flag may use; all of them mean this node's one
    /// media address (`[media] advertised_ip`).
    #[serde(default = "default_ng_interfaces")]
    pub interfaces: Vec<String>,
}

fn default_ng_max_sessions() -> u32 {
    10_000
}
fn default_ng_timeout() -> String {
    s("60s")
}
fn default_ng_silent_timeout() -> String {
    s("1h")
}
fn default_ng_max_message_size() -> u32 {
    16_384
}
fn default_ng_interfaces() -> Vec<String> {
    vec![s("default")]
}

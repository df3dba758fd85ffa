//! Admin HTTP API, Prometheus metrics and the operator CLI client.
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `GET /health` | open | `200 {"ready":true,"reasons":[]}` or `503 {"ready":false,"reasons":[..]}` |
//! | `GET /metrics` | token | Prometheus text exposition format 0.0.4 ([`metrics`]) |
//! | `GET /api/v1/calls` | token | JSON list of [`CallInfo`] |
//! | `DELETE /api/v1/calls/{id}` | token | `200 {"terminated":id}`, `404` when no such live call |
//! | `GET /api/v1/trunks` | token | JSON list of [`TrunkInfo`] |
//! | `GET /api/v1/teams` | token | [`TeamsInfo`]: Teams proxies, their health and the one in use |
//! | `GET /api/v1/registrations` | token | JSON list of [`RegistrationInfo`]: registrations toward carriers |
//! | `POST /api/v1/reload` | token | `200 {"generation":n}` or `422 {"errors":[..]}` (old config kept) |
//! | `GET /api/v1/overview` | token | [`dashboard::Overview`]: node, version, readiness, generation, calls, calls/s |
//! | `GET /api/v1/history` | token | `{"period_s":5,"points":[`[`HistoryPoint`]`]}`: calls/s and live calls, last hour |
//! | `GET /api/v1/dataplane` | token | JSON list of [`WorkerLoad`]: per worker core, CPU %, packet rates |
//! | `GET /api/v1/failures` | token | JSON list of [`Failure`], newest first (at most [`recent::FAILURES_KEPT`]) |
//! | `GET /api/v1/cdrs?number=&trunk=&since_ms=&until_ms=&failed=&limit=` | token | [`CdrSearch`] over the last day; `400 {"error":..}` for a bad query; `503` when [`server::CDR_SEARCHES`] run |
//! | `GET /api/v1/log-level` | token | `200 {"level":"info"}` (the filter in force) |
//! | `PUT /api/v1/log-level` | token | body `{"level":"debug"}` or plain `debug` (or directives `info,portcullis_net=debug`): `200 {"level":..}`, `400 {"error":..}` (filter kept) |
//! | `GET /` | open | the dashboard page ([`dashboard`]): static, no data |
//! | `GET /dashboard/app.js`, `GET /dashboard/app.css` | open | its script and stylesheet |
//! | `GET /dashboard/auth` | open | `{"token_required":bool}` (what a `401` says too) |
//!
//! Authentication: when `[admin] token` is set, every route except `/health` and the
//! dashboard's static page and assets requires `Authorization: Bearer <token>` (`401`
//! otherwise, with `WWW-Authenticate: Bearer`). `/health` stays open so load balancers and
//! Kamailio-style probes need no secret; it reveals only readiness and its reasons. The
//! dashboard's page holds no data: its script asks the operator for the token and calls
//! the protected routes with it. Without a token every route is open (the configuration
//! allows that on loopback only).
//!
//! The server is generic over [`AdminBackend`], implemented for the running appliance in
//! [`backend`] and by fakes in tests. The CLI client (`portcullis status`, `portcullis
//! calls`) is in [`client`].

pub mod backend;
pub mod cdr_search;
pub mod client;
pub mod dashboard;
mod ha;
pub mod ha_metrics;
pub mod history;
pub mod interwork_metrics;
pub mod metric_families;
pub mod metrics;
pub mod metrics_afxdp;
pub mod metrics_fastpath;
pub mod metrics_traces;
pub mod quality;
pub mod rate;
pub mod recent;
pub mod registrations;
pub mod server;
mod trunk_metrics;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;

use portcullis_dataplane::{RingDepth, WorkerStats};
use portcullis_net::NetCountersSnapshot;
use serde::{Deserialize, Serialize};

pub use self::cdr_search::{CdrHit, CdrQuery, CdrSearch};
pub use self::history::{HistoryPoint, WorkerLoad, WorkerSample};
pub use self::recent::Failure;
pub use self::registrations::RegistrationInfo;
pub use self::server::{spawn, AdminServer, AdminServerConfig};
pub use crate::runtime::teams::TeamsProxyStatus;

/// Readiness of the appliance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Both planes up, engine answering, not draining.
    pub ready: bool,
    /// Why not ready (empty when ready).
    pub reasons: Vec<String>,
}

/// One live call, as listed by `GET /api/v1/calls`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallInfo {
    /// Engine call id (the `{id}` of `DELETE /api/v1/calls/{id}`).
    pub id: u64,
    /// Trunk the call came from.
    pub inbound_trunk: String,
    /// Trunk the call currently goes to (`None` before a target was tried).
    pub outbound_trunk: Option<String>,
    /// Calling number (after translation).
    pub calling: String,
    /// Called number (after translation).
    pub called: String,
    /// Whether the call was answered.
    pub answered: bool,
    /// Seconds since the INVITE arrived.
    pub duration_s: u64,
    /// Codec, SRTP, packet counters and quality of each leg (`None`: media bypassed or
    /// not known to this backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<CallMedia>,
}

/// Media of a live call, per leg (A: the caller's side, B: the callee's).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallMedia {
    /// The caller's leg.
    pub a: LegMedia,
    /// The callee's leg.
    pub b: LegMedia,
}

/// One leg of a live call: what its peer sends us (`rx_*`, loss, jitter, quality) and what
/// we send it (`tx_*`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LegMedia {
    /// Codec the peer sends (`PCMU/8000`), from its last SDP.
    pub codec: Option<String>,
    /// SRTP suite on this leg (`None`: plain RTP).
    pub srtp: Option<String>,
    /// Packets received from the peer.
    pub rx_packets: u64,
    /// Bytes received from the peer.
    pub rx_bytes: u64,
    /// Packets sent to the peer.
    pub tx_packets: u64,
    /// Bytes sent to the peer.
    pub tx_bytes: u64,
    /// RTP packets from the peer lost (RFC 3550 §6.4.1); `None` before its first RTP packet.
    pub lost: Option<u64>,
    /// Interarrival jitter of the peer's RTP, milliseconds.
    pub jitter_ms: Option<f64>,
    /// Quality estimate of the peer's stream ([`quality`]); `None` before its first RTP
    /// packet.
    pub quality: Option<quality::Quality>,
}

/// Health of a trunk as a call target, from what its calls saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrunkHealth {
    /// `down` (no usable target: every target down or held off, or its name not
    /// resolved), `held_off` (out of routing after a `503` with `Retry-After`), `failing` (its last
    /// attempt timed out or got a 5xx), `up` (its last attempt got an answer, or a 4xx/6xx
    /// from the callee) or `unknown` (no call tried it since the start).
    pub state: String,
    /// Seconds left of a `Retry-After` hold-off.
    pub held_off_s: Option<u64>,
    /// When the last call that tried it ended (ms since the UNIX epoch).
    pub last_attempt_ms: Option<u64>,
    /// Final status of that call when it was not answered.
    pub last_status: Option<u16>,
    /// Attempts in a row that timed out or got a 5xx.
    pub failures_in_row: u32,
}

/// One configured trunk, as listed by `GET /api/v1/trunks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrunkInfo {
    /// Configured name.
    pub name: String,
    /// Address as configured (`host:port`).
    pub address: String,
    /// `udp`, `tcp`, `tls`.
    pub transport: String,
    /// `rtp` or `srtp`.
    pub media: String,
    /// Concurrent call limit, if any.
    pub max_calls: Option<u32>,
    /// Live calls touching the trunk (inbound or outbound).
    pub active_calls: u64,
    /// Health as a call target (`None`: not known to this backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<TrunkHealth>,
    /// Its targets, their OPTIONS health and DNS resolution (`None`: not known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<crate::runtime::trunk_status::TrunkTargetsStatus>,
}

/// Per-trunk call counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrunkCounters {
    /// Live calls touching the trunk (gauge).
    pub active: u64,
    /// Calls that arrived from the trunk.
    pub inbound: u64,
    /// Attempts toward the trunk.
    pub outbound: u64,
    /// Outcomes of calls from the trunk, keyed by a stable label (`answered`, `failed`, ...).
    pub outcomes: BTreeMap<&'static str, u64>,
}

/// SIP counters of the call engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SipCounters {
    /// Requests received by method (`OTHER` for unknown methods).
    pub requests_in: BTreeMap<&'static str, u64>,
    /// Requests sent by method.
    pub requests_out: BTreeMap<&'static str, u64>,
    /// Responses received by class (index 1 = 1xx ... 6 = 6xx, 0 = unparsable).
    pub responses_in: [u64; 7],
    /// Responses sent by class.
    pub responses_out: [u64; 7],
    /// Client transactions that timed out (Timer B/F/L).
    pub transaction_timeouts: u64,
    /// Malformed messages.
    pub parse_errors: u64,
    /// Requests refused by policy.
    pub policy_rejects: u64,
    /// Digest credentials refused as replays.
    pub auth_replays: u64,
    /// Offers refused `488` for want of a codec both trunks allow.
    pub codec_rejects: u64,
    /// Trunk header rules that changed a relayed message.
    pub header_rules_applied: u64,
    /// re-INVITEs carrying a delayed-offer answer to the side that answered our offer.
    pub delayed_offer_reoffers: u64,
    /// RFC 4733 events sent on as SIP INFO.
    pub dtmf_to_info: u64,
    /// SIP INFO digits played as RFC 4733 events.
    pub dtmf_to_rfc4733: u64,
    /// DTMF digits that could not be converted.
    pub dtmf_failed: u64,
    /// Sources banned by the rate limiter (cumulative).
    pub bans: u64,
    /// Requests dropped silently.
    pub dropped: u64,

    // Admission under flood.
    /// Requests refused before a call existed, by status and reason phrase.
    pub rejected: BTreeMap<(u16, &'static str), u64>,
    /// New requests refused with 503 by a load limit, by limit
    /// (`transactions`, `transactions_per_source`, `calls`).
    pub limit_rejects: BTreeMap<&'static str, u64>,
    /// OPTIONS answered 503 for a load balancer, by reason (`draining`, `overload`).
    pub options_unavailable: BTreeMap<&'static str, u64>,
    /// Live SIP transactions (gauge).
    pub transactions: u64,
    /// Bans in force, hosts and widened prefixes (gauge).
    pub bans_active: u64,
}

/// Everything `/metrics` exports, copied out of the appliance at one instant.
///
/// Families whose source is `None`/empty are left out of the exposition (not exported as 0).
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    /// Configuration generation (1 at start, +1 per successful reload).
    pub config_generation: u64,
    /// Call attempts seen by the engine (cumulative).
    pub calls_total: u64,
    /// Live calls (gauge).
    pub calls_active: u64,
    /// Per configured trunk.
    pub trunks: BTreeMap<String, TrunkCounters>,
    /// Engine SIP counters.
    pub sip: SipCounters,
    /// SIP driver counters.
    pub net: Option<NetCountersSnapshot>,
    /// Data plane workers, indexed by worker id.
    pub workers: Vec<WorkerStats>,
    /// Data plane backend in use (`io_uring`, `mmsg`).
    pub dataplane_backend: String,
    /// Data plane events the control plane lost to full event rings.
    pub media_events_lost: u64,
    /// Call refusals caused by media errors (no capacity, full command ring).
    pub media_errors: u64,
    /// Calls set up with media bypass (trunks in `media = "bypass"`).
    pub media_bypassed: u64,
    /// CDR lines written and write failures.
    pub cdr_written: u64,
    /// CDR write/sync failures.
    pub cdr_errors: u64,
    /// CDR entries waiting for the writer (gauge).
    pub cdr_queue_depth: u64,
    /// Whether new calls are refused because the CDR writer is behind.
    pub cdr_backpressure: bool,
    /// New calls refused with 503 because the CDR writer was behind.
    pub cdr_backpressure_rejects: u64,
    /// Records written at start, ended by restart, for calls cut by the last stop.
    pub cdr_recovered: u64,
    /// Log lines dropped because the log output was behind.
    pub log_lines_dropped: u64,
    /// Ring occupancy and command-ring overflows per data plane worker.
    pub rings: Vec<RingDepth>,
    /// HEP capture: messages sent to the collector and dropped (`None`: capture off).
    pub capture: Option<(u64, u64)>,
    /// rtpengine ng protocol counters (`None` without `[ng]`).
    pub ng: Option<crate::ng::NgStats>,
    /// Log filter in force (`None`: no subscriber of ours in this process).
    pub log_filter: Option<String>,
    /// Teams Direct Routing proxies (`None` without `[teams]`).
    pub teams: Option<TeamsMetrics>,
    /// Every trunk's targets and their health.
    pub trunk_targets: Vec<crate::runtime::trunk_status::TrunkTargetsStatus>,
    /// Registrations toward carriers (empty without `[trunk.register]`).
    pub registrations: Vec<RegistrationInfo>,
    /// The XDP program's counters (`None`: fast path off).
    pub fast_path: Option<portcullis_xdp::FastPathStats>,
    /// Call trace spans exported and dropped (`None`: `[otel]` off).
    pub traces: Option<crate::traces::TraceCounts>,
    /// The active/standby pair (`None` without `[ha]`).
    pub ha: Option<crate::ha::HaStatus>,
}

/// Teams Direct Routing health for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TeamsMetrics {
    /// Per proxy, in failover order.
    pub proxies: Vec<TeamsProxyStatus>,
    /// Times new calls were moved to another proxy.
    pub failovers: u64,
}

/// `GET /api/v1/teams`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamsInfo {
    /// Whether `[teams]` is configured.
    pub configured: bool,
    /// The SBC FQDN (`[teams] sbc_fqdn`).
    pub sbc_fqdn: Option<String>,
    /// The proxy new calls go to now (`None`: no proxy usable).
    pub selected: Option<String>,
    /// Per proxy, in failover order.
    pub proxies: Vec<TeamsProxyStatus>,
}

/// What the admin API needs from the running appliance.
///
/// Futures are `Send` so the axum handlers can run on any runtime thread.
pub trait AdminBackend: Clone + Send + Sync + 'static {
    /// Readiness.
    fn health(&self) -> impl Future<Output = Health> + Send;
    /// Every counter.
    fn metrics(&self) -> impl Future<Output = MetricsSnapshot> + Send;
    /// Call attempts so far (sampled every second for the calls/s gauge).
    fn calls_total(&self) -> impl Future<Output = u64> + Send;
    /// Live calls.
    fn calls(&self) -> impl Future<Output = Vec<CallInfo>> + Send;
    /// Tears a call down; `false` when no such live call.
    fn terminate(&self, id: u64) -> impl Future<Output = bool> + Send;
    /// Configured trunks with their live call counts.
    fn trunks(&self) -> impl Future<Output = Vec<TrunkInfo>> + Send;
    /// Reloads the configuration: the new generation, or every reason it was refused (the
    /// running configuration stays).
    fn reload(&self) -> impl Future<Output = Result<u64, Vec<String>>> + Send;
    /// The log filter in force; `None` when this process installed no subscriber.
    fn log_filter(&self) -> Option<String> {
        crate::logging::current()
    }
    /// Replaces the log filter (a level or `target=level` directives); the new filter.
    ///
    /// # Errors
    /// The filter does not parse (the running one stays), or logging is not set up.
    fn set_log_filter(&self, filter: &str) -> Result<String, crate::logging::LogError> {
        crate::logging::set_filter(filter)
    }
    /// `(calls_total, calls_active)`, sampled every second for the calls/s gauge and the
    /// dashboard's history.
    fn call_counts(&self) -> impl Future<Output = (u64, u64)> + Send {
        async {
            let total = self.calls_total().await;
            (total, self.calls().await.len() as u64)
        }
    }
    /// The node name (`[node] name`).
    fn node_name(&self) -> String {
        "portcullis".to_owned()
    }
    /// Cumulative counters of every data plane worker (sampled for the dashboard's rates).
    fn workers(&self) -> impl Future<Output = Vec<WorkerSample>> + Send {
        std::future::ready(Vec::new())
    }
    /// Recent failed calls and refused requests, newest first.
    fn failures(&self) -> Vec<Failure> {
        Vec::new()
    }
    /// The CDR files to search, oldest first (`[cdr] path` and its rotated predecessor).
    fn cdr_files(&self) -> Vec<PathBuf> {
        Vec::new()
    }
    /// Unix milliseconds now, on the clock of the CDRs.
    fn wall_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
    /// Registrations toward carriers. Backends without any answer an empty list.
    fn registrations(&self) -> impl Future<Output = Vec<RegistrationInfo>> + Send {
        std::future::ready(Vec::new())
    }
    /// The active/standby pair's status; `None` without `[ha]`.
    fn ha_status(&self) -> Option<crate::ha::HaStatus> {
        None
    }
    /// Takes the pair's calls over (keepalived made this node master).
    fn ha_takeover(
        &self,
    ) -> impl Future<Output = Result<crate::ha::TakeoverReport, String>> + Send {
        std::future::ready(Err("no [ha] section".to_owned()))
    }
    /// Teams Direct Routing proxy health. Backends without Teams answer "not configured".
    fn teams(&self) -> impl Future<Output = TeamsInfo> + Send {
        std::future::ready(TeamsInfo {
            configured: false,
            sbc_fqdn: None,
            selected: None,
            proxies: Vec::new(),
        })
    }
}

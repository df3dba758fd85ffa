//! The engine's checked runtime configuration ([`EngineConfig`]).
//!
//! The appliance builds it from its TOML provisioning model and hands it over
//! behind an `Arc`; a reload swaps the `Arc` ([`crate::b2bua::B2bua::set_config`]):
//! new calls use the new config, calls in progress keep the one they started with.
//!
//! Invariants checked by [`EngineConfig::validate`]: trunk names are unique and
//! non-empty, every route names known trunks and has at least one target, at
//! least one listener exists, timers are non-zero and `min_se <= session_expires`,
//! `min_se >= 90 s` (RFC 4028 §4).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::transaction::Transport;

/// Index of a trunk in [`EngineConfig::trunks`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrunkId(pub usize);

/// Configuration errors (we are misconfigured).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("no SIP listener configured")]
    NoListener,
    #[error("trunk name {0:?} is empty or duplicated")]
    BadTrunkName(String),
    #[error("route {route:?} names unknown trunk {trunk:?}")]
    UnknownTrunk { route: String, trunk: String },
    #[error("route {0:?} has no target")]
    NoTargets(String),
    #[error("invalid timer setting: {0}")]
    Timer(&'static str),
    #[error("routing: {0}")]
    Routing(String),
    #[error("trunk {0:?}: {1}")]
    Health(String, &'static str),
    #[error("registration: {0}")]
    Registration(String),
    #[error("invalid limit: {0}")]
    Limit(&'static str),
    #[error("trunk {0:?} names listener {1}, which does not exist or is not of its transport")]
    BadListener(String, usize),
}

/// An IP network (`addr/prefix`), for trunk ACLs: the `ipnet` crate's.
pub use ipnet::IpNet;

/// Node identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSettings {
    pub name: String,
    /// FQDN used in Contact/Record-Route when set (Teams needs it).
    pub fqdn: Option<String>,
    /// `User-Agent` / `Server` header value of every message we originate.
    pub user_agent: String,
}

/// A SIP listener (Via sent-by and Contact of our legs on that transport).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerInfo {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// Media mode of a trunk: what the far side speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaMode {
    /// Plain RTP (`RTP/AVP`, crypto lines removed).
    Rtp,
    /// SDES-SRTP (`RTP/SAVP`, `a=crypto` AES_CM_128_HMAC_SHA1_80, RFC 4568).
    Srtp,
    /// Media not anchored: a call whose inbound trunk and every trunk its
    /// route may try are `Bypass` takes no data-plane ports and its SDP
    /// crosses the B2BUA unchanged. When such a call must be anchored anyway
    /// (a route mixing modes, a delayed offer) the trunk is treated as `Rtp`.
    Bypass,
}

impl MediaMode {
    /// The mode the SDP rewrite applies to an anchored leg on this trunk.
    #[must_use]
    pub const fn anchored(self) -> Self {
        match self {
            Self::Bypass => Self::Rtp,
            m => m,
        }
    }
}

/// How a leg facing a trunk learns its peer's media address from packets
/// (rtpengine's `--endpoint-learning`); the data plane applies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum EndpointLearning {
    /// Inside the learning window after the offer/answer, the first valid
    /// stream is taken at once, and a source matching the SDP address and port
    /// (else the address, else the port) replaces an earlier one; then locked.
    #[default]
    Heuristic,
    /// Only the SDP address and port, ever.
    Strict,
    /// Like `Heuristic`, but the choice is made at the end of the window (the
    /// SDP address when it sent); until then media goes to the SDP address.
    Delayed,
    /// Never learn, never check the source: media goes to the SDP address and
    /// is taken from anywhere.
    Off,
}

/// Media trust toward a trunk: endpoint learning and NAT rebinding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MediaLearning {
    pub endpoint_learning: EndpointLearning,
    /// NAT rebinding: a locked leg whose peer was silent this long moves to a
    /// new source sending a valid RTP stream. `None`: never.
    pub relearn_after: Option<Duration>,
}

/// Digest credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// Realm we challenge with (inbound); ignored outbound (the challenge names it).
    pub realm: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials {{ username: {:?}, password: <secret> }}",
            self.username
        )
    }
}

/// A SIP peer we exchange calls with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrunkConfig {
    pub name: String,
    /// Where requests to the trunk go (resolved by the appliance).
    pub address: SocketAddr,
    pub transport: Transport,
    pub media: MediaMode,
    /// Source networks classified as this trunk; empty means `address`'s IP only.
    pub acl: Vec<IpNet>,
    /// Concurrent calls (inbound + outbound) allowed on the trunk.
    pub max_calls: Option<u32>,
    /// Challenge INVITEs from the trunk (RFC 3261 §22, digest).
    pub auth_inbound: Option<Credentials>,
    /// Answer the trunk's 401/407 with these.
    pub auth_outbound: Option<Credentials>,
    /// SNI / certificate name for TLS toward the trunk.
    pub tls_server_name: Option<String>,
    /// Host part of our Contact toward the trunk (Teams: the SBC FQDN).
    pub fqdn_contact: Option<String>,
    /// How the leg facing the trunk learns its media peer.
    pub learning: MediaLearning,
    /// Several targets, a domain resolved by DNS, the strategy sharing calls
    /// between them and their OPTIONS health (default: `address` alone, never pinged).
    pub targets: TargetsConfig,
    /// Trust domain, header rules and codec policy ([`crate::trunk_policy`]).
    pub policy: crate::trunk_policy::TrunkPolicy,
    /// Media realm of the legs facing the trunk (their ports and advertised address).
    pub realm: crate::media::RealmId,
    /// The SIP listener (index in [`EngineConfig::listeners`]) the trunk's signalling
    /// uses: our Via sent-by and Contact toward it, and the socket requests to it leave
    /// from. `None`: the first listener of the trunk's transport.
    pub listener: Option<usize>,
}

/// The targets of a trunk ([`crate::routing::TargetTable`]).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TargetsConfig {
    /// How targets share new calls.
    pub strategy: crate::routing::Strategy,
    /// The targets; empty = `address` alone (ignored when `dns` is set).
    pub fixed: Vec<crate::routing::TargetSpec>,
    /// A domain the appliance resolves (RFC 3263); its answers reach the engine
    /// through `B2bua::set_trunk_targets`. Until the first one the trunk has no target.
    pub dns: Option<String>,
    /// OPTIONS pings and up/down thresholds of each target.
    pub health: crate::routing::HealthPolicy,
}

impl TrunkConfig {
    /// Whether a request from `ip` belongs to this trunk.
    #[must_use]
    pub fn matches_source(&self, ip: IpAddr) -> bool {
        // IPv4-mapped IPv6 sources (dual-stack sockets) match IPv4 networks.
        let ip = ip.to_canonical();
        if self.acl.is_empty() {
            self.address.ip().to_canonical() == ip
        } else {
            self.acl.iter().any(|n| n.contains(&ip))
        }
    }
}

/// What to do with a 3xx from a target (RFC 3261 §8.1.3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RedirectMode {
    /// Try the Contact of the 3xx as a new target (same trunk transport).
    #[default]
    Follow,
    /// Relay the 3xx to the caller as a final failure.
    Relay,
}

/// One routing rule (the routing module interprets it; first match wins).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteConfig {
    pub name: String,
    /// Inbound trunks the rule applies to; empty = any.
    pub from_trunks: Vec<String>,
    /// Called-number prefix (`""` matches everything).
    pub called_prefix: String,
    /// Digits removed from the front of the called number, then `prepend` added.
    pub strip: usize,
    pub prepend: String,
    /// Outbound trunks in failover order.
    pub targets: Vec<String>,
    pub redirect: RedirectMode,
}

/// A condition on a number (as configured).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum NumberMatch {
    /// Every number.
    #[default]
    Any,
    /// Numbers starting with this (the empty prefix matches everything).
    Prefix(String),
    /// Numbers the regular expression matches as a whole (`^(?:re)$`).
    Regex(String),
}

/// A number rewriting step (as configured), applied in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TranslationRule {
    /// Remove the first N characters (all of them if shorter).
    StripDigits(usize),
    /// Remove this prefix when present.
    StripPrefix(String),
    /// Prepend this.
    AddPrefix(String),
    /// Replace the first match of `pattern` with `replacement` (`$1`,
    /// `${name}` refer to capture groups). Anchor the pattern with `^`/`$`
    /// to rewrite the whole number.
    Replace {
        /// Regular expression.
        pattern: String,
        /// Replacement with capture references.
        replacement: String,
    },
    /// Normalise to E.164 ([`crate::routing::to_e164`]); numbers that cannot be normalised
    /// are left unchanged.
    E164 {
        /// Country calling code without `+` (`"49"`, `"1"`).
        country_code: String,
        /// National trunk prefix (`"0"` in most of Europe, `"1"` in NANP).
        trunk_prefix: String,
        /// International access prefix (`"00"`, `"011"`).
        international_prefix: String,
    },
}

/// One routing rule; the router tries them in configuration order and the
/// first whose conditions all hold wins.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RouteRule {
    /// Name (for logs and CDRs).
    pub name: String,
    /// Inbound trunk names; empty = any trunk.
    pub from_trunks: Vec<String>,
    /// Condition on the called number (as received).
    pub called: NumberMatch,
    /// Condition on the calling number (as received).
    pub calling: NumberMatch,
    /// Applied in order to the called number.
    pub translate_called: Vec<TranslationRule>,
    /// Applied in order to the calling number.
    pub translate_calling: Vec<TranslationRule>,
    /// Outbound trunk names in failover order. Empty with `reject` set.
    pub targets: Vec<String>,
    /// Extra called-number steps for one target trunk, applied after
    /// `translate_called` (e.g. E.164 toward Teams, national toward a carrier).
    pub target_translate_called: Vec<(String, Vec<TranslationRule>)>,
    /// Refuse matching calls with this status instead of routing them
    /// (e.g. 403 for a barred range).
    pub reject: Option<u16>,
    /// 3xx handling.
    pub redirect: RedirectMode,
}

impl From<&RouteConfig> for RouteRule {
    /// The engine config's route: prefix condition, then strip N and prepend.
    fn from(r: &RouteConfig) -> Self {
        let mut translate_called = Vec::new();
        if r.strip > 0 {
            translate_called.push(TranslationRule::StripDigits(r.strip));
        }
        if !r.prepend.is_empty() {
            translate_called.push(TranslationRule::AddPrefix(r.prepend.clone()));
        }
        Self {
            name: r.name.clone(),
            from_trunks: r.from_trunks.clone(),
            called: if r.called_prefix.is_empty() {
                NumberMatch::Any
            } else {
                NumberMatch::Prefix(r.called_prefix.clone())
            },
            calling: NumberMatch::Any,
            translate_called,
            translate_calling: Vec::new(),
            targets: r.targets.clone(),
            target_translate_called: Vec::new(),
            reject: None,
            redirect: r.redirect,
        }
    }
}

/// What to do with requests from a source no trunk claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UnknownSource {
    /// Answer `403 Forbidden`.
    #[default]
    Reject403,
    /// Drop silently (no response: scanners learn nothing).
    Drop,
}

/// Policy knobs (rate limits and bans are interpreted by the policy module,
/// the admission limits by the B2BUA and its transaction layer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyConfig {
    pub unknown_source: UnknownSource,
    /// Requests per second per source IP before a ban; `None` = unlimited
    /// (and no unknown-source budget, no bans).
    pub rate_limit_per_source: Option<u32>,
    pub ban_duration: Duration,
    /// Requests a source no trunk claims may send per `unknown_source_window`
    /// before it is banned.
    pub unknown_source_budget: u32,
    /// Window of `unknown_source_budget`.
    pub unknown_source_window: Duration,
    /// Bans held per prefix level before new ones widen (IPv4 /24, IPv6 /48, ...).
    pub max_bans: usize,
    /// Calls in progress, all trunks together (bypassed calls included);
    /// `None` = unlimited. Over it a new INVITE gets `503` + `Retry-After`.
    pub max_calls: Option<u32>,
    /// Live calls from which out-of-dialog OPTIONS are answered `503` (overload), so a
    /// load balancer probing with OPTIONS sends new calls elsewhere; INVITEs are still
    /// admitted up to `max_calls`. `None` = never (OPTIONS get `503` only when draining).
    pub overload_calls: Option<u32>,
    /// Live server transactions, all sources together (the transaction
    /// table's bound; requests from sources no trunk claims never take one).
    pub max_transactions: usize,
    /// Live server transactions per source IP (trunks included).
    pub max_transactions_per_source: usize,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            unknown_source: UnknownSource::Reject403,
            rate_limit_per_source: None,
            ban_duration: Duration::from_secs(600),
            unknown_source_budget: 20,
            unknown_source_window: Duration::from_secs(60),
            max_bans: 65_536,
            max_calls: None,
            overload_calls: None,
            max_transactions: 100_000,
            max_transactions_per_source: 20_000,
        }
    }
}

/// Timers (RFC 3261 §17 T1/T2/T4, RFC 4028 session timers, call limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerSettings {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
    /// Session-Expires we ask for (RFC 4028 §4), default 1800 s.
    pub session_expires: Duration,
    /// Smallest Session-Expires we accept (RFC 4028: at least 90 s).
    pub min_se: Duration,
    /// Ringing longer than this cancels the callee and answers the caller 480.
    pub no_answer: Duration,
}

impl Default for TimerSettings {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            session_expires: Duration::from_secs(1800),
            min_se: Duration::from_secs(90),
            no_answer: Duration::from_secs(180),
        }
    }
}

/// Microsoft Teams Direct Routing settings the call engine needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeamsSettings {
    pub sbc_fqdn: String,
    pub options_interval: Duration,
    /// Media bypass (`[teams] media_bypass`): ICE-lite toward Teams trunks
    /// (`a=ice-lite`, one host candidate, STUN checks answered by the data
    /// plane). Off: no ICE attributes at all toward Teams.
    pub media_bypass: bool,
    /// The proxies as configured, `(FQDN, port)`: the Request-URI and To of a
    /// new leg toward Teams name the proxy in use with its configured port
    /// (not the port of the address it resolved to).
    pub proxies: Vec<(String, u16)>,
}

/// The whole runtime configuration of the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    pub node: NodeSettings,
    pub listeners: Vec<ListenerInfo>,
    pub trunks: Vec<TrunkConfig>,
    pub routes: Vec<RouteConfig>,
    /// Full routing rules (anchored regex conditions, translations of the
    /// called and calling numbers, reject rules). When non-empty the router
    /// uses these, in order, instead of `routes`.
    pub route_rules: Vec<RouteRule>,
    pub policy: PolicyConfig,
    pub timers: TimerSettings,
    pub teams: Option<TeamsSettings>,
    /// Registrations toward carriers (`[trunk.register]`).
    pub registrations: Vec<crate::registration::RegistrationConfig>,
}

impl EngineConfig {
    /// Whether `id` is a Microsoft Teams Direct Routing trunk: Teams settings
    /// are present and the trunk's TLS name is a Teams SIP proxy
    /// (`*.pstnhub.microsoft.com`, or the government clouds' `pstnhub.*`).
    /// Such trunks get an FQDN Contact, `X-MS-SBC` and History-Info pass-through.
    #[must_use]
    pub fn is_teams_trunk(&self, id: TrunkId) -> bool {
        self.teams.is_some()
            && self
                .trunk(id)
                .and_then(|t| t.tls_server_name.as_deref())
                .is_some_and(|n| n.to_ascii_lowercase().contains("pstnhub."))
    }

    /// Whether calls on Teams trunk `id` use media bypass (ICE-lite).
    #[must_use]
    pub fn is_teams_bypass(&self, id: TrunkId) -> bool {
        self.is_teams_trunk(id) && self.teams.as_ref().is_some_and(|t| t.media_bypass)
    }

    /// Checks the invariants listed in the module docs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listeners.is_empty() {
            return Err(ConfigError::NoListener);
        }
        let mut names = BTreeSet::new();
        for t in &self.trunks {
            if t.name.is_empty() || !names.insert(t.name.as_str()) {
                return Err(ConfigError::BadTrunkName(t.name.clone()));
            }
            t.targets
                .health
                .validate()
                .map_err(|e| ConfigError::Health(t.name.clone(), e))?;
            if let Some(l) = t.listener {
                if self
                    .listeners
                    .get(l)
                    .is_none_or(|x| x.transport != t.transport)
                {
                    return Err(ConfigError::BadListener(t.name.clone(), l));
                }
            }
        }
        for r in &self.routes {
            if r.targets.is_empty() {
                return Err(ConfigError::NoTargets(r.name.clone()));
            }
            for t in r.targets.iter().chain(&r.from_trunks) {
                if !names.contains(t.as_str()) {
                    return Err(ConfigError::UnknownTrunk {
                        route: r.name.clone(),
                        trunk: t.clone(),
                    });
                }
            }
        }
        let t = &self.timers;
        if t.t1.is_zero() || t.t2 < t.t1 || t.t4.is_zero() {
            return Err(ConfigError::Timer("T1 > 0, T2 >= T1, T4 > 0"));
        }
        if t.min_se < Duration::from_secs(90) || t.session_expires < t.min_se {
            return Err(ConfigError::Timer("90 s <= min_se <= session_expires"));
        }
        if t.no_answer.is_zero() {
            return Err(ConfigError::Timer("no_answer > 0"));
        }
        let p = &self.policy;
        if let Some(o) = p.overload_calls {
            if o == 0 || p.max_calls.is_some_and(|m| o > m) {
                return Err(ConfigError::Limit("1 <= overload_calls <= max_calls"));
            }
        }
        let mut users = BTreeSet::new();
        for r in &self.registrations {
            if !names.contains(r.trunk.as_str()) {
                return Err(ConfigError::Registration(format!(
                    "names unknown trunk {:?}",
                    r.trunk
                )));
            }
            if r.contact_user.is_empty() || !users.insert(r.contact_user.as_str()) {
                return Err(ConfigError::Registration(format!(
                    "contact user {:?} of trunk {:?} is empty or used twice",
                    r.contact_user, r.trunk
                )));
            }
            if r.expires.is_zero() || r.retry_min.is_zero() || r.retry_max < r.retry_min {
                return Err(ConfigError::Registration(format!(
                    "trunk {:?}: expires > 0 and 0 < retry_min <= retry_max",
                    r.trunk
                )));
            }
        }
        Ok(())
    }

    /// Trunk by id.
    #[must_use]
    pub fn trunk(&self, id: TrunkId) -> Option<&TrunkConfig> {
        self.trunks.get(id.0)
    }

    /// Trunk id by name.
    #[must_use]
    pub fn trunk_by_name(&self, name: &str) -> Option<TrunkId> {
        self.trunks.iter().position(|t| t.name == name).map(TrunkId)
    }

    /// The listener of a leg toward `trunk` on `transport`: the trunk's own
    /// (`[[trunk]] listener`) when it is of that transport, else [`Self::listener`].
    #[must_use]
    pub fn trunk_listener(&self, trunk: TrunkId, transport: Transport) -> Option<&ListenerInfo> {
        self.trunk(trunk)
            .and_then(|t| t.listener)
            .and_then(|i| self.listeners.get(i))
            .filter(|l| l.transport == transport)
            .or_else(|| self.listener(transport))
    }

    /// The media realm of the legs facing `trunk` (the default realm for an unknown one).
    #[must_use]
    pub fn trunk_realm(&self, trunk: TrunkId) -> crate::media::RealmId {
        self.trunk(trunk).map(|t| t.realm).unwrap_or_default()
    }

    /// The listener used for a leg on `transport` (first of that transport, else the first).
    #[must_use]
    pub fn listener(&self, transport: Transport) -> Option<&ListenerInfo> {
        self.listeners
            .iter()
            .find(|l| l.transport == transport)
            .or_else(|| self.listeners.first())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_matching_with_ipnet() {
        let mut t = TrunkConfig {
            name: "t".into(),
            address: "192.0.2.1:5060".parse().unwrap(),
            transport: crate::transaction::Transport::Udp,
            media: MediaMode::Rtp,
            acl: Vec::new(),
            max_calls: None,
            auth_inbound: None,
            auth_outbound: None,
            tls_server_name: None,
            fqdn_contact: None,
            learning: MediaLearning::default(),
            targets: TargetsConfig::default(),
            policy: crate::trunk_policy::TrunkPolicy::default(),
            realm: Default::default(),
            listener: None,
        };
        // No ACL: the trunk's own address only (IPv4-mapped form included).
        assert!(t.matches_source("192.0.2.1".parse().unwrap()));
        assert!(t.matches_source("::ffff:192.0.2.1".parse().unwrap()));
        assert!(!t.matches_source("192.0.2.2".parse().unwrap()));
        t.acl = vec![
            "10.1.0.0/16".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ];
        assert!(t.matches_source("10.1.2.3".parse().unwrap()));
        assert!(t.matches_source("::ffff:10.1.9.9".parse().unwrap()));
        assert!(!t.matches_source("10.2.0.1".parse().unwrap()));
        assert!(t.matches_source("2001:db8::1".parse().unwrap()));
        assert!(!t.matches_source("2001:db9::1".parse().unwrap()));
        assert!(
            !t.matches_source("192.0.2.1".parse().unwrap()),
            "the ACL replaces the address"
        );
    }
}

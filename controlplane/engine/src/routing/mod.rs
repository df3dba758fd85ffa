//! Source classification and call routing (sans-IO, config in, decisions out).
//!
//! - [`Router::classify_source`]: which trunk a request belongs to, from its
//!   source address and transport (the trunk's ACL, default its address), or
//!   for TLS trunks with an expected certificate name, from the names of the
//!   peer's certificate ([`tls_name_matches`]; RFC 5922 §7.2).
//! - [`Router::route`]: the first [`RouteRule`] (configuration order) whose
//!   inbound-trunk, called- and calling-number conditions hold; numbers are
//!   translated ([`TranslationRule`], [`to_e164`]); targets come out in
//!   failover order. The B2BUA walks them (408/5xx/timeout → next; 603 stops).
//! - [`TargetTable`]: the targets of each trunk (configured, or resolved by the
//!   appliance per RFC 3263), each with its health ([`Probe`]: OPTIONS up/down,
//!   `503` + Retry-After hold-off), and the choice of one per new call
//!   ([`Strategy`]: priority, weighted, least calls).
//!
//! Invariants: every trunk name in a rule exists; regexes are compiled once in
//! [`Router::new`]; routing never allocates more than the decision it returns.

mod health;
mod rules;
mod targets;
mod tls;

use std::net::SocketAddr;

use crate::config::{EngineConfig, RedirectMode, TrunkConfig, TrunkId};
use crate::transaction::Transport;

pub use crate::config::{NumberMatch, RouteRule, TranslationRule};
pub use health::{HealthPolicy, Probe, ProbeCounters, TargetState, Transition, MAX_HOLD_OFF};
pub use rules::to_e164;
pub use targets::{
    Resolution, Strategy, TargetEntry, TargetSpec, TargetTable, TargetUpdate, TrunkTargets,
};
pub use tls::{any_tls_name_matches, tls_name_matches};

use rules::{translate, Matcher, Step};

/// Errors building a router (we are misconfigured).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// A rule names a trunk that does not exist.
    #[error("route {route:?} names unknown trunk {trunk:?}")]
    UnknownTrunk {
        /// Rule name.
        route: String,
        /// The unknown trunk.
        trunk: String,
    },
    /// A regular expression does not compile.
    #[error("route {route:?}: bad regular expression: {error}")]
    BadRegex {
        /// Rule name.
        route: String,
        /// The regex crate's message.
        error: String,
    },
    /// A rule has neither targets nor a reject status, or both.
    #[error("route {0:?} needs either targets or a reject status")]
    NoTargets(String),
    /// A reject status that is not a final failure (400..=699).
    #[error("route {route:?}: reject status {status} is not 4xx-6xx")]
    BadRejectStatus {
        /// Rule name.
        route: String,
        /// The status.
        status: u16,
    },
    /// An E.164 country code that is not digits.
    #[error("route {route:?}: country code {code:?} is not digits")]
    BadCountryCode {
        /// Rule name.
        route: String,
        /// The code.
        code: String,
    },
}

/// Why a call cannot be routed; [`RouteReject::status`] is the SIP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteReject {
    /// No rule matched (`404 Not Found`).
    #[error("no route")]
    NoRoute,
    /// The called number translated to nothing (`484 Address Incomplete`).
    #[error("called number empty after translation (route {0:?})")]
    EmptyNumber(String),
    /// A rule refuses the call with a status.
    #[error("route {route:?} rejects with {status}")]
    Rejected {
        /// Rule name.
        route: String,
        /// The status to answer.
        status: u16,
    },
}

impl RouteReject {
    /// The final status for the caller.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::NoRoute => 404,
            Self::EmptyNumber(_) => 484,
            Self::Rejected { status, .. } => *status,
        }
    }
}

/// One outbound target of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTarget {
    /// The trunk to send to.
    pub trunk: TrunkId,
    /// Called number for this target (translated).
    pub called: String,
}

/// The outcome of routing one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDecision {
    /// Name of the rule that matched.
    pub route: String,
    /// Targets in failover order (at least one).
    pub targets: Vec<RouteTarget>,
    /// Called number after translation.
    pub called: String,
    /// Calling number after translation.
    pub calling: String,
    /// What to do with a 3xx from a target.
    pub redirect: RedirectMode,
}

#[derive(Debug, Clone)]
struct CompiledRoute {
    name: String,
    /// `None` = any inbound trunk.
    from: Option<Vec<TrunkId>>,
    called: Matcher,
    calling: Matcher,
    translate_called: Vec<Step>,
    translate_calling: Vec<Step>,
    /// Per target: its trunk and its extra called-number steps.
    targets: Vec<(TrunkId, Vec<Step>)>,
    reject: Option<u16>,
    redirect: RedirectMode,
}

#[derive(Debug, Clone)]
struct TrunkMatch {
    transport: Transport,
    acl_explicit: bool,
    /// Expected certificate names (TLS trunks; empty = classify by address).
    tls_names: Vec<String>,
    trunk: TrunkConfig,
}

/// Certificate names a TLS trunk's peers may present. The Teams trunk points
/// at one proxy of a pool (`sip`, `sip2`, `sip3`.pstnhub.microsoft.com) that
/// the runtime moves as proxies fail, while calls from Teams may come from any
/// of them: every name of the proxy's domain (`*.pstnhub.microsoft.com`) is
/// accepted. The mTLS listener has already checked the chain and its own list
/// of names (`client_names`).
fn expected_tls_names(t: &TrunkConfig) -> Vec<String> {
    let mut names: Vec<String> = t.tls_server_name.iter().cloned().collect();
    if t.name == crate::teams::TEAMS_TRUNK {
        let domain = t
            .tls_server_name
            .as_deref()
            .and_then(|n| n.split_once('.'))
            .map(|(_, d)| d)
            .filter(|d| d.contains('.'));
        if let Some(d) = domain {
            names.push(format!("*.{d}"));
        }
    }
    names
}

/// Classifies sources and routes calls for one configuration generation.
#[derive(Debug, Clone)]
pub struct Router {
    trunks: Vec<TrunkMatch>,
    routes: Vec<CompiledRoute>,
}

impl Router {
    /// A router for the engine config's trunks and routes.
    pub fn new(cfg: &EngineConfig) -> Result<Self, RoutingError> {
        if !cfg.route_rules.is_empty() {
            return Self::with_rules(&cfg.trunks, &cfg.route_rules);
        }
        let rules: Vec<RouteRule> = cfg.routes.iter().map(RouteRule::from).collect();
        Self::with_rules(&cfg.trunks, &rules)
    }

    /// A router for `trunks` (indexed by [`TrunkId`]) and richer `rules`
    /// (regex conditions, translations, reject rules).
    pub fn with_rules(trunks: &[TrunkConfig], rules: &[RouteRule]) -> Result<Self, RoutingError> {
        let by_name = |route: &str, name: &str| {
            trunks
                .iter()
                .position(|t| t.name == name)
                .map(TrunkId)
                .ok_or_else(|| RoutingError::UnknownTrunk {
                    route: route.to_owned(),
                    trunk: name.to_owned(),
                })
        };
        let mut routes = Vec::with_capacity(rules.len());
        for r in rules {
            let n = r.name.as_str();
            match (r.targets.is_empty(), r.reject) {
                (true, None) | (false, Some(_)) => {
                    return Err(RoutingError::NoTargets(r.name.clone()))
                }
                (_, Some(status)) if !(400..=699).contains(&status) => {
                    return Err(RoutingError::BadRejectStatus {
                        route: r.name.clone(),
                        status,
                    })
                }
                _ => {}
            }
            if let Some((bad, _)) = r
                .target_translate_called
                .iter()
                .find(|(name, _)| !r.targets.contains(name))
            {
                return Err(RoutingError::UnknownTrunk {
                    route: r.name.clone(),
                    trunk: bad.clone(),
                });
            }
            let from = if r.from_trunks.is_empty() {
                None
            } else {
                Some(
                    r.from_trunks
                        .iter()
                        .map(|t| by_name(n, t))
                        .collect::<Result<Vec<_>, _>>()?,
                )
            };
            routes.push(CompiledRoute {
                name: r.name.clone(),
                from,
                called: Matcher::compile(n, &r.called)?,
                calling: Matcher::compile(n, &r.calling)?,
                translate_called: r
                    .translate_called
                    .iter()
                    .map(|t| Step::compile(n, t))
                    .collect::<Result<_, _>>()?,
                translate_calling: r
                    .translate_calling
                    .iter()
                    .map(|t| Step::compile(n, t))
                    .collect::<Result<_, _>>()?,
                targets: r
                    .targets
                    .iter()
                    .map(|t| {
                        let steps = r
                            .target_translate_called
                            .iter()
                            .filter(|(name, _)| name == t)
                            .flat_map(|(_, rules)| rules)
                            .map(|rule| Step::compile(n, rule))
                            .collect::<Result<Vec<_>, _>>()?;
                        Ok((by_name(n, t)?, steps))
                    })
                    .collect::<Result<_, RoutingError>>()?,
                reject: r.reject,
                redirect: r.redirect,
            });
        }
        let trunks = trunks
            .iter()
            .map(|t| TrunkMatch {
                transport: t.transport,
                acl_explicit: !t.acl.is_empty(),
                tls_names: expected_tls_names(t),
                trunk: t.clone(),
            })
            .collect();
        Ok(Self { trunks, routes })
    }

    /// The trunk a request belongs to, among trunks on `transport`:
    /// - a TLS trunk with an expected certificate name (`tls_server_name`),
    ///   when the peer presented certificate names (`tls_peer_names`, mTLS):
    ///   one of them must match ([`tls_name_matches`], RFC 5922 §7.2), and the
    ///   source must be in the trunk's ACL if one is configured explicitly
    ///   (TLS peers such as Teams come from many addresses);
    /// - any other trunk (or no certificate presented): by address. First a
    ///   trunk without explicit ACL whose address is exactly `src` (several
    ///   trunks on one host, told apart by port), then the first trunk (config
    ///   order) whose ACL (default: its address's IP) holds the source IP.
    #[must_use]
    pub fn classify_source(
        &self,
        src: SocketAddr,
        transport: Transport,
        tls_peer_names: Option<&[String]>,
    ) -> Option<TrunkId> {
        let ip = src.ip();
        let presented = tls_peer_names.filter(|p| !p.is_empty());
        let by_name = |t: &TrunkMatch| {
            transport == Transport::Tls && !t.tls_names.is_empty() && presented.is_some()
        };
        let exact = self.trunks.iter().position(|t| {
            t.transport == transport && !by_name(t) && !t.acl_explicit && t.trunk.address == src
        });
        exact
            .or_else(|| {
                self.trunks.iter().position(|t| {
                    if t.transport != transport {
                        return false;
                    }
                    match presented {
                        Some(names) if by_name(t) => {
                            any_tls_name_matches(&t.tls_names, names)
                                && (!t.acl_explicit || t.trunk.matches_source(ip))
                        }
                        _ => t.trunk.matches_source(ip),
                    }
                })
            })
            .map(TrunkId)
    }

    /// Routes a call from trunk `inbound` with the numbers as received
    /// (user parts of the Request-URI and From, without visual
    /// separators removed). First matching rule wins.
    pub fn route(
        &self,
        inbound: TrunkId,
        called: &str,
        calling: &str,
    ) -> Result<RouteDecision, RouteReject> {
        let r = self
            .routes
            .iter()
            .find(|r| {
                r.from.as_ref().is_none_or(|f| f.contains(&inbound))
                    && r.called.matches(called)
                    && r.calling.matches(calling)
            })
            .ok_or(RouteReject::NoRoute)?;
        if let Some(status) = r.reject {
            return Err(RouteReject::Rejected {
                route: r.name.clone(),
                status,
            });
        }
        let called_out = translate(&r.translate_called, called);
        if called_out.is_empty() {
            return Err(RouteReject::EmptyNumber(r.name.clone()));
        }
        let calling_out = translate(&r.translate_calling, calling);
        let targets: Vec<RouteTarget> = r
            .targets
            .iter()
            .map(|(trunk, steps)| RouteTarget {
                trunk: *trunk,
                called: if steps.is_empty() {
                    called_out.clone()
                } else {
                    translate(steps, &called_out)
                },
            })
            .filter(|t| !t.called.is_empty())
            .collect();
        if targets.is_empty() {
            return Err(RouteReject::EmptyNumber(r.name.clone()));
        }
        Ok(RouteDecision {
            route: r.name.clone(),
            targets,
            called: called_out,
            calling: calling_out,
            redirect: r.redirect,
        })
    }

    /// Number of trunks.
    #[must_use]
    pub fn trunk_count(&self) -> usize {
        self.trunks.len()
    }

    /// The number translations of the rule named `route` (the first of that
    /// name), for numbers a call carries besides its own: Diversion and
    /// History-Info entries take the called-number rules, an asserted
    /// identity the calling-number rules. Owned, so a call keeps them
    /// across a reload.
    #[must_use]
    pub fn translations(&self, route: &str) -> Option<Translations> {
        let r = self.routes.iter().find(|r| r.name == route)?;
        Some(Translations {
            called: r.translate_called.clone(),
            calling: r.translate_calling.clone(),
            targets: r.targets.clone(),
        })
    }
}

/// The number translations of one rule ([`Router::translations`]).
#[derive(Debug, Clone)]
pub struct Translations {
    called: Vec<Step>,
    calling: Vec<Step>,
    targets: Vec<(TrunkId, Vec<Step>)>,
}

impl Translations {
    /// `number` as the rule translates a called number toward `target`.
    #[must_use]
    pub fn called(&self, target: TrunkId, number: &str) -> String {
        let n = translate(&self.called, number);
        match self
            .targets
            .iter()
            .find(|(t, s)| *t == target && !s.is_empty())
        {
            Some((_, steps)) => translate(steps, &n),
            None => n,
        }
    }

    /// `number` as the rule translates a calling number.
    #[must_use]
    pub fn calling(&self, number: &str) -> String {
        translate(&self.calling, number)
    }
}

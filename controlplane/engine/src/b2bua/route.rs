//! Source classification and routing used by the B2BUA.
//!
//! Interim implementation of the semantics of [`crate::config::RouteConfig`]
//! until the policy engineer's `crate::routing::Router` lands: first trunk
//! whose ACL contains the source; first route whose `from_trunks` contains the
//! inbound trunk (or is empty) and whose prefix matches the called number;
//! `strip` then `prepend`; targets in order.

use std::net::IpAddr;

use crate::config::{EngineConfig, RedirectMode, TrunkId};

/// One target of a routing decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub trunk: TrunkId,
    pub called: String,
    /// Contact of a followed 3xx: send there instead of the trunk address.
    pub redirect: Option<std::net::SocketAddr>,
}

/// A routing decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    pub route: String,
    pub targets: Vec<Target>,
    pub calling: String,
    pub redirect: RedirectMode,
}

/// The trunk a request from `ip` belongs to.
pub(crate) fn classify(cfg: &EngineConfig, ip: IpAddr) -> Option<TrunkId> {
    cfg.trunks
        .iter()
        .position(|t| t.matches_source(ip))
        .map(TrunkId)
}

/// Routes a call from `inbound` to `called`.
pub(crate) fn route(
    cfg: &EngineConfig,
    inbound: TrunkId,
    called: &str,
    calling: &str,
) -> Option<Decision> {
    let from = cfg.trunk(inbound)?.name.as_str();
    let r = cfg.routes.iter().find(|r| {
        (r.from_trunks.is_empty() || r.from_trunks.iter().any(|t| t == from))
            && called.starts_with(r.called_prefix.as_str())
    })?;
    let stripped = called.get(r.strip..).unwrap_or("");
    let translated = format!("{}{}", r.prepend, stripped);
    let targets = r
        .targets
        .iter()
        .filter_map(|t| cfg.trunk_by_name(t))
        .map(|trunk| Target {
            trunk,
            called: translated.clone(),
            redirect: None,
        })
        .collect::<Vec<_>>();
    (!targets.is_empty()).then(|| Decision {
        route: r.name.clone(),
        targets,
        calling: calling.to_owned(),
        redirect: r.redirect,
    })
}

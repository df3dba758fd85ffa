//! Source classification and routing used by the B2BUA.
//!
//! Interim implementation of the semantics of [`crate::config::RouteConfig`]
//! until the policy engineer's `crate::routing::Router` lands: first trunk
//! whose ACL contains the source; first route whose `from_trunks` contains the
//! inbound trunk (or is empty) and whose prefix matches the called number;
//! `strip` then `prepend`; targets in order.

use std::net::SocketAddr;

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

/// The trunk a request from `src` belongs to: a trunk whose address is
/// exactly `src` first (several trunks on one host, e.g. local test peers),
/// else the first whose ACL (default: its address's IP) contains the IP.
pub(crate) fn classify(cfg: &EngineConfig, src: SocketAddr) -> Option<TrunkId> {
    cfg.trunks
        .iter()
        .position(|t| t.acl.is_empty() && t.address == src)
        .or_else(|| cfg.trunks.iter().position(|t| t.matches_source(src.ip())))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        EngineConfig, ListenerInfo, MediaMode, NodeSettings, PolicyConfig, RouteConfig,
        TimerSettings, TrunkConfig,
    };
    use crate::transaction::Transport;

    fn trunk(name: &str, addr: &str) -> TrunkConfig {
        TrunkConfig {
            name: name.into(),
            address: addr.parse().unwrap(),
            transport: Transport::Udp,
            media: MediaMode::Rtp,
            acl: Vec::new(),
            max_calls: None,
            auth_inbound: None,
            auth_outbound: None,
            tls_server_name: None,
            fqdn_contact: None,
        }
    }

    fn cfg() -> EngineConfig {
        EngineConfig {
            node: NodeSettings {
                name: "n".into(),
                fqdn: None,
                user_agent: "ua".into(),
            },
            listeners: vec![ListenerInfo {
                transport: Transport::Udp,
                addr: "127.0.0.1:5060".parse().unwrap(),
            }],
            trunks: vec![trunk("a", "127.0.0.1:5070"), trunk("b", "127.0.0.1:5080")],
            routes: vec![RouteConfig {
                name: "r".into(),
                from_trunks: vec!["b".into()],
                called_prefix: "00".into(),
                strip: 2,
                prepend: "+".into(),
                targets: vec!["a".into()],
                redirect: RedirectMode::Relay,
            }],
            policy: PolicyConfig::default(),
            timers: TimerSettings::default(),
            teams: None,
        }
    }

    #[test]
    fn exact_address_wins_on_a_shared_host() {
        let c = cfg();
        assert_eq!(
            classify(&c, "127.0.0.1:5080".parse().unwrap()),
            Some(TrunkId(1))
        );
        assert_eq!(
            classify(&c, "127.0.0.1:5070".parse().unwrap()),
            Some(TrunkId(0))
        );
        assert_eq!(
            classify(&c, "127.0.0.1:9999".parse().unwrap()),
            Some(TrunkId(0))
        );
        assert_eq!(classify(&c, "10.0.0.1:5080".parse().unwrap()), None);
    }

    #[test]
    fn route_translates_and_filters_by_trunk() {
        let c = cfg();
        let d = route(&c, TrunkId(1), "004930123", "555").unwrap();
        assert_eq!(d.targets[0].called, "+4930123");
        assert_eq!(d.targets[0].trunk, TrunkId(0));
        assert!(route(&c, TrunkId(0), "004930123", "555").is_none());
        assert!(route(&c, TrunkId(1), "14930123", "555").is_none());
    }
}

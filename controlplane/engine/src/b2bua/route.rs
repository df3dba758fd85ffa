//! Source classification and routing glue over [`crate::routing::Router`].
//!
//! Classification prefers a trunk whose configured address is exactly the
//! source (no explicit ACL, same transport): several trunks on one host (local
//! test peers, an SBC pair) are told apart by port; otherwise the router
//! decides (ACL, transport, TLS certificate names).

use std::net::SocketAddr;

use crate::config::{EngineConfig, TrunkId};
use crate::routing::{Router, TargetTable};
use crate::transaction::Transport;

/// One target of a routing decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub trunk: TrunkId,
    pub called: String,
    /// Contact of a followed 3xx: send there instead of the trunk address.
    pub redirect: Option<std::net::SocketAddr>,
    /// The trunk target chosen for this attempt ([`crate::routing::TargetTable::select`]).
    pub addr: Option<std::net::SocketAddr>,
}

/// The trunk a request from `src` belongs to; last, a trunk without ACL one of
/// whose targets (configured or resolved) is the source.
pub(crate) fn classify(
    cfg: &EngineConfig,
    router: &Router,
    targets: &TargetTable,
    src: SocketAddr,
    transport: Transport,
    tls_peer_names: Option<&[String]>,
) -> Option<TrunkId> {
    cfg.trunks
        .iter()
        .position(|t| t.acl.is_empty() && t.address == src && t.transport == transport)
        .map(TrunkId)
        .or_else(|| router.classify_source(src, transport, tls_peer_names))
        .or_else(|| {
            let name = targets.trunk_of(src)?;
            let id = cfg.trunk_by_name(name)?;
            cfg.trunk(id)
                .filter(|t| t.acl.is_empty() && t.transport == transport)
                .map(|_| id)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        EngineConfig, ListenerInfo, MediaMode, NodeSettings, PolicyConfig, RedirectMode,
        RouteConfig, TimerSettings, TrunkConfig,
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
            learning: Default::default(),
            targets: Default::default(),
            policy: crate::trunk_policy::TrunkPolicy::default(),
            realm: Default::default(),
            listener: None,
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
            route_rules: Vec::new(),
            policy: PolicyConfig::default(),
            timers: TimerSettings::default(),
            teams: None,
            registrations: Vec::new(),
        }
    }

    #[test]
    fn exact_address_wins_on_a_shared_host() {
        let c = cfg();
        let r = Router::new(&c).unwrap();
        let tt = TargetTable::default();
        let cl = |s: &str| classify(&c, &r, &tt, s.parse().unwrap(), Transport::Udp, None);
        assert_eq!(cl("127.0.0.1:5080"), Some(TrunkId(1)));
        assert_eq!(cl("127.0.0.1:5070"), Some(TrunkId(0)));
        assert_eq!(cl("127.0.0.1:9999"), Some(TrunkId(0)));
        assert_eq!(cl("10.0.0.1:5080"), None);
    }
}

//! Glue between [`ProxyHealth`] and the engine configuration.
//!
//! The B2BUA sends calls toward the trunk named [`TEAMS_TRUNK`] to that
//! trunk's `address` with SNI `tls_server_name`. The runtime keeps that trunk
//! pointed at the proxy [`ProxyHealth::pick`] chooses: on every
//! [`super::HealthEvent`] (and when a hold-off expires) it calls
//! [`retarget`] and, when a new config comes back, hands it to
//! `B2bua::set_config` (new calls only; calls in progress keep their proxy).

use crate::config::EngineConfig;
use crate::time::Timestamp;

use super::ProxyHealth;

/// The reserved trunk name of the Teams peer in routes.
pub const TEAMS_TRUNK: &str = "teams";

/// A copy of `cfg` whose `teams` trunk points at the proxy `health` picks at
/// `now`; `None` when nothing changes (no `teams` trunk, no usable proxy, or
/// already pointed there). When no proxy is usable the trunk is left as is:
/// the attempt then fails over by the B2BUA's own rules (timeout, 503).
#[must_use]
pub fn retarget(cfg: &EngineConfig, health: &ProxyHealth, now: Timestamp) -> Option<EngineConfig> {
    let id = health.pick(now)?;
    let target = health.target(id)?;
    let idx = cfg.trunks.iter().position(|t| t.name == TEAMS_TRUNK)?;
    let trunk = cfg.trunks.get(idx)?;
    if trunk.address == target.addr && trunk.tls_server_name.as_deref() == Some(&target.host) {
        return None;
    }
    let mut out = cfg.clone();
    if let Some(t) = out.trunks.get_mut(idx) {
        t.address = target.addr;
        t.tls_server_name = Some(target.host.clone());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{
        ListenerInfo, MediaMode, NodeSettings, PolicyConfig, TimerSettings, TrunkConfig,
    };
    use crate::entropy::SeededEntropy;
    use crate::teams::{HealthConfig, ProxyId, ProxyTarget};
    use crate::transaction::Transport;

    fn cfg() -> EngineConfig {
        EngineConfig {
            node: NodeSettings {
                name: "n".into(),
                fqdn: Some("sbc1.example.com".into()),
                user_agent: "ua".into(),
            },
            listeners: vec![ListenerInfo {
                transport: Transport::Tls,
                addr: "127.0.0.1:5061".parse().unwrap(),
            }],
            trunks: vec![TrunkConfig {
                name: TEAMS_TRUNK.into(),
                address: "127.0.0.1:15061".parse().unwrap(),
                transport: Transport::Tls,
                media: MediaMode::Srtp,
                acl: Vec::new(),
                max_calls: None,
                auth_inbound: None,
                auth_outbound: None,
                tls_server_name: Some("sip.pstnhub.microsoft.com".into()),
                fqdn_contact: Some("sbc1.example.com".into()),
                learning: Default::default(),
                targets: Default::default(),
                policy: crate::trunk_policy::TrunkPolicy::default(),
                realm: Default::default(),
                listener: None,
            }],
            routes: Vec::new(),
            route_rules: Vec::new(),
            policy: PolicyConfig::default(),
            timers: TimerSettings::default(),
            teams: None,
            registrations: Vec::new(),
        }
    }

    #[test]
    fn follows_the_picked_proxy() {
        let targets = vec![
            ProxyTarget {
                host: "sip.pstnhub.microsoft.com".into(),
                port: 5061,
                addr: "127.0.0.1:15061".parse().unwrap(),
            },
            ProxyTarget {
                host: "sip2.pstnhub.microsoft.com".into(),
                port: 5061,
                addr: "127.0.0.1:15062".parse().unwrap(),
            },
        ];
        let mut hc = HealthConfig::new("sbc1.example.com", Duration::from_secs(60));
        hc.miss_threshold = 1;
        let mut h = ProxyHealth::new(hc, targets, Timestamp::ZERO, SeededEntropy::new(1)).unwrap();
        let c = cfg();
        assert_eq!(retarget(&c, &h, Timestamp::ZERO), None, "already on sip");
        h.handle_timeout(Timestamp::ZERO);
        h.handle_transport_error(Timestamp::ZERO, ProxyId(0));
        let moved = retarget(&c, &h, Timestamp::ZERO).expect("moves to sip2");
        assert_eq!(moved.trunks[0].address, "127.0.0.1:15062".parse().unwrap());
        assert_eq!(
            moved.trunks[0].tls_server_name.as_deref(),
            Some("sip2.pstnhub.microsoft.com")
        );
        assert_eq!(moved.trunks[0].fqdn_contact, c.trunks[0].fqdn_contact);
        assert_eq!(retarget(&moved, &h, Timestamp::ZERO), None);
    }
}

//! Who we say we are on each leg: Via sent-by, Contact, the Request-URI of a
//! new leg, and `X-MS-SBC` on responses toward Teams.
//!
//! One identity per leg, `host:port`:
//!
//! - toward a Teams Direct Routing trunk: the SBC FQDN (the trunk's
//!   `fqdn_contact`, else `teams.sbc_fqdn`) with the port of our TLS listener,
//!   the port Teams opens its connections to (`<sip:sbc@FQDN:PORT;transport=tls>`);
//! - toward any other trunk: the trunk's `fqdn_contact` with our listener's port
//!   when set, else our listener's address (`ip:port`), so a trunk reaches us
//!   without DNS.
//!
//! "Our listener" is the trunk's own (`[[trunk]] listener`: the interface facing
//! it, IPv4 or IPv6) when set, else the first listener of the leg's transport; the
//! same listener sends the requests to the trunk ([`B2bua::poll_transmit`]).
//!
//! The Via sent-by of every request on a leg is that identity, as is the host and
//! port of our Contact. We never add Record-Route: a B2BUA terminates both dialogs,
//! so our Contact is already the remote target of each (RFC 3261 §12.1.1); a
//! Record-Route would only be needed by a proxy that stays on the path of a dialog
//! it does not own. `node.fqdn` names the node in From (and P-Asserted-Identity)
//! and in the B leg's Call-ID, and is the default digest realm; it is not a
//! Contact host toward plain trunks.
//!
//! Toward Teams the Request-URI and To of a new leg name the proxy by FQDN with
//! its configured port (`teams.proxies`), not the port of the address it resolved
//! to. Every response we build for a request that came from Teams carries
//! `X-MS-SBC` (the transaction layer's own `100 Trying` excepted).

use std::collections::HashSet;

use super::B2bua;
use crate::config::{EngineConfig, TrunkId};
use crate::media::{MediaControl, Side};
use crate::transaction::{PeerAddr, SipMsg, Transport, TxId, Via};

/// `;transport=` parameter of our URIs on `transport` (none for UDP).
pub(super) const fn transport_param(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "",
        Transport::Tcp => ";transport=tcp",
        Transport::Tls => ";transport=tls",
    }
}

/// Server transactions whose request came from a Teams trunk (their responses
/// carry `X-MS-SBC`). Bounded by the live transactions: entries of ended
/// transactions are purged by [`B2bua::shrink`].
#[derive(Debug, Default)]
pub(super) struct TeamsServerTxs(HashSet<TxId>);

impl TeamsServerTxs {
    pub(super) fn insert(&mut self, tx: TxId) {
        self.0.insert(tx);
    }

    pub(super) fn contains(&self, tx: TxId) -> bool {
        self.0.contains(&tx)
    }

    pub(super) fn retain(&mut self, live: impl Fn(TxId) -> bool) {
        self.0.retain(|t| live(*t));
        if self.0.capacity() > 4 * self.0.len() + 1024 {
            self.0.shrink_to(2 * self.0.len());
        }
    }
}

/// Our FQDN toward `trunk`, when it has one: its `fqdn_contact`, else the
/// SBC FQDN when it is a Teams trunk.
pub(super) fn leg_fqdn(cfg: &EngineConfig, trunk: TrunkId) -> Option<String> {
    cfg.trunk(trunk)
        .and_then(|t| t.fqdn_contact.clone())
        .or_else(|| {
            cfg.is_teams_trunk(trunk)
                .then(|| cfg.teams.as_ref().map(|t| t.sbc_fqdn.clone()))
                .flatten()
        })
}

/// Our (host, port) on a leg toward `trunk` over `transport` (see the module docs);
/// an IPv6 host is written bare (Via) and bracketed by [`hostport`].
pub(super) fn leg_identity(
    cfg: &EngineConfig,
    trunk: TrunkId,
    transport: Transport,
) -> (String, Option<u16>) {
    let listener = cfg.trunk_listener(trunk, transport).map(|l| l.addr);
    let port = listener.map(|a| a.port());
    match (leg_fqdn(cfg, trunk), listener) {
        (Some(h), _) => (h, port),
        (None, Some(a)) => (a.ip().to_string(), port),
        (None, None) => (String::from("0.0.0.0"), None),
    }
}

/// `host[:port]` for a URI (IPv6 in brackets).
pub(super) fn hostport(host: &str, port: Option<u16>) -> String {
    let h = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    match port {
        Some(p) => format!("{h}:{p}"),
        None => h,
    }
}

/// Our `host:port` on a leg toward `trunk` over `transport`.
pub(super) fn leg_hostport(cfg: &EngineConfig, trunk: TrunkId, transport: Transport) -> String {
    let (h, p) = leg_identity(cfg, trunk, transport);
    hostport(&h, p)
}

/// Our Contact on a leg toward `trunk` over `transport`.
pub(super) fn leg_contact(cfg: &EngineConfig, trunk: TrunkId, transport: Transport) -> String {
    format!(
        "<sip:sbc@{}{}>",
        leg_hostport(cfg, trunk, transport),
        transport_param(transport)
    )
}

/// The `host:port` of the Request-URI and To of a new leg toward `trunk` sent to
/// `dest`: a named trunk by its name (a Teams proxy with its configured port),
/// a redirect target or an IP trunk by address.
pub(super) fn target_hostport(
    cfg: &EngineConfig,
    trunk: TrunkId,
    dest: std::net::SocketAddr,
    redirected: bool,
) -> String {
    let Some(name) = cfg
        .trunk(trunk)
        .and_then(|t| t.tls_server_name.as_deref())
        .filter(|_| !redirected)
    else {
        return dest.to_string();
    };
    let port = cfg
        .teams
        .as_ref()
        .filter(|_| cfg.is_teams_trunk(trunk))
        .and_then(|t| {
            t.proxies
                .iter()
                .find(|(h, _)| h.eq_ignore_ascii_case(name))
                .map(|(_, p)| *p)
        })
        .unwrap_or_else(|| dest.port());
    format!("{name}:{port}")
}

impl<M: MediaControl> B2bua<M> {
    /// A fresh Via for a request on a leg toward `trunk` (sent-by: the leg's identity).
    pub(super) fn via_on(
        &mut self,
        cfg: &EngineConfig,
        trunk: TrunkId,
        transport: Transport,
    ) -> Via {
        let branch = self.txn.new_branch();
        let (host, port) = leg_identity(cfg, trunk, transport);
        Via::new(transport, host, port, &branch)
    }

    /// A fresh Via for a request of `call` sent to `dest`: the identity of the
    /// call's leg reached there (A, B, or a transfer's new leg), else our listener.
    pub(super) fn via_to(&mut self, call: u64, dest: PeerAddr) -> Via {
        let found = self.calls.get(&call).and_then(|c| {
            let same = |p: PeerAddr| p.addr == dest.addr && p.transport == dest.transport;
            let trunk = [Side::A, Side::B]
                .into_iter()
                .find(|s| c.dest(*s).is_some_and(same))
                .and_then(|s| Self::leg_trunk(c, s))
                .or_else(|| {
                    c.transfer
                        .as_ref()
                        .filter(|t| same(t.leg.dest))
                        .map(|t| t.leg.target.trunk)
                });
            trunk.map(|t| (c.cfg.clone(), t))
        });
        match found {
            Some((cfg, trunk)) => self.via_on(&cfg, trunk, dest.transport),
            None => self.via(dest.transport),
        }
    }

    /// Marks server transaction `tx` as answering a request from Teams.
    pub(super) fn note_teams_request(&mut self, tx: TxId) {
        if self
            .current_trunk
            .is_some_and(|t| self.cfg.is_teams_trunk(t))
        {
            self.teams_server_txs.insert(tx);
        }
    }

    /// `X-MS-SBC` on a response of a transaction from Teams.
    pub(super) fn stamp_teams_response(&self, tx: TxId, r: &mut SipMsg) {
        if self.teams_server_txs.contains(tx) && r.header("X-MS-SBC").is_none() {
            r.push_header("X-MS-SBC", super::x_ms_sbc());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{
        ListenerInfo, MediaMode, NodeSettings, PolicyConfig, TeamsSettings, TimerSettings,
        TrunkConfig,
    };

    fn cfg() -> EngineConfig {
        let trunk = |name: &str, addr: &str, tls: Option<&str>| TrunkConfig {
            name: name.into(),
            address: addr.parse().unwrap(),
            transport: if tls.is_some() {
                Transport::Tls
            } else {
                Transport::Udp
            },
            media: MediaMode::Rtp,
            acl: Vec::new(),
            max_calls: None,
            auth_inbound: None,
            auth_outbound: None,
            tls_server_name: tls.map(str::to_owned),
            fqdn_contact: None,
            learning: Default::default(),
            targets: Default::default(),
            policy: Default::default(),
            realm: Default::default(),
            listener: None,
        };
        EngineConfig {
            node: NodeSettings {
                name: "n".into(),
                fqdn: Some("node.example.net".into()),
                user_agent: "ua".into(),
            },
            listeners: vec![
                ListenerInfo {
                    transport: Transport::Udp,
                    addr: "192.0.2.1:5060".parse().unwrap(),
                },
                ListenerInfo {
                    transport: Transport::Tls,
                    addr: "192.0.2.1:5067".parse().unwrap(),
                },
            ],
            trunks: vec![
                trunk("carrier", "198.51.100.1:5060", None),
                trunk(
                    "teams",
                    "127.0.0.1:17011",
                    Some("sip.pstnhub.microsoft.com"),
                ),
            ],
            routes: Vec::new(),
            route_rules: Vec::new(),
            policy: PolicyConfig::default(),
            timers: TimerSettings::default(),
            teams: Some(TeamsSettings {
                sbc_fqdn: "sbc1.example.com".into(),
                options_interval: Duration::from_secs(60),
                media_bypass: false,
                proxies: vec![("sip.pstnhub.microsoft.com".into(), 5061)],
            }),
            registrations: Vec::new(),
        }
    }

    #[test]
    fn teams_legs_name_the_fqdn_and_our_tls_port() {
        let c = cfg();
        let teams = TrunkId(1);
        assert_eq!(
            leg_contact(&c, teams, Transport::Tls),
            "<sip:sbc@sbc1.example.com:5067;transport=tls>"
        );
        assert_eq!(
            target_hostport(&c, teams, "127.0.0.1:17011".parse().unwrap(), false),
            "sip.pstnhub.microsoft.com:5061"
        );
    }

    #[test]
    fn plain_legs_name_the_listener_not_the_node_fqdn() {
        let c = cfg();
        let carrier = TrunkId(0);
        assert_eq!(
            leg_contact(&c, carrier, Transport::Udp),
            "<sip:sbc@192.0.2.1:5060>"
        );
        assert_eq!(
            target_hostport(&c, carrier, "198.51.100.1:5060".parse().unwrap(), false),
            "198.51.100.1:5060"
        );
    }
}

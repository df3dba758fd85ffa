//! Appliance [`Config`] → the configurations of each plane: the engine's
//! [`EngineConfig`], the data plane's [`DataplaneConfig`] and the SIP drivers'
//! [`TransportConfig`].
//!
//! Invariant: a `Config` that passed every check converts (routes become full
//! engine routing rules: prefix or regex matches, translations of both numbers).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use portcullis_dataplane::{Backend as DpBackend, DataplaneConfig, RealmConfig};
use portcullis_engine::config::{
    Credentials as EngineCredentials, EndpointLearning as EngineLearning, EngineConfig,
    ListenerInfo, MediaLearning, MediaMode, NodeSettings, PolicyConfig as EnginePolicy,
    RedirectMode, TargetsConfig, TeamsSettings, TimerSettings, TrunkConfig as EngineTrunk,
    UnknownSource,
};
use portcullis_engine::registration::RegistrationConfig;
use portcullis_engine::routing::{
    HealthPolicy, NumberMatch as EngineMatch, RouteRule, Strategy as EngineStrategy, TargetSpec,
    TranslationRule,
};
use portcullis_engine::teams::{HealthConfig, ProxyTarget};
use portcullis_engine::transaction::Transport as TxTransport;
use portcullis_net::{
    ClientCertificate, Limits, ListenerConfig as NetListener, TlsClientSettings, TlsServerSettings,
    Transport as NetTransport, TransportConfig, TrunkSources,
};

use super::teams::TeamsPlan;
use crate::config::{
    Backend, Config, EndpointLearning, Host, HostPort, LearningConfig, MediaProtection,
    NumberMatch, RedirectPolicy, Strategy, Translation, Transport, TrunkAddress,
    UnknownSourceAction,
};

/// Why a checked configuration cannot be handed to the planes.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A host name did not resolve.
    #[error("cannot resolve {what} {host}: {reason}")]
    Resolve {
        /// Which setting.
        what: String,
        /// The name.
        host: String,
        /// Resolver message.
        reason: String,
    },
    /// The engine refused the converted configuration.
    #[error("engine configuration: {0}")]
    Engine(#[from] portcullis_engine::config::ConfigError),
}

/// `User-Agent` / `Server` of every message we originate.
pub fn user_agent() -> String {
    format!("Portcullis/{}", env!("CARGO_PKG_VERSION"))
}

fn tx_transport(t: Transport) -> TxTransport {
    match t {
        Transport::Udp => TxTransport::Udp,
        Transport::Tcp => TxTransport::Tcp,
        Transport::Tls | Transport::Mtls => TxTransport::Tls,
    }
}

/// Driver transport of a configured listener or trunk.
pub fn net_transport(t: Transport) -> NetTransport {
    match t {
        Transport::Udp => NetTransport::Udp,
        Transport::Tcp => NetTransport::Tcp,
        Transport::Tls => NetTransport::Tls,
        Transport::Mtls => NetTransport::Mtls,
    }
}

/// Resolves `hp` (IP literal, a `[teams.resolve]` override, else the system resolver).
fn resolve(cfg: &Config, what: &str, hp: &HostPort) -> Result<SocketAddr, ConvertError> {
    match &hp.host {
        Host::Ip(ip) => Ok(SocketAddr::new(*ip, hp.port)),
        Host::Name(name) => {
            if let Some(sa) = cfg.teams.as_ref().and_then(|t| t.resolve.get(name)) {
                return Ok(*sa);
            }
            let err = |reason: String| ConvertError::Resolve {
                what: what.to_owned(),
                host: name.to_string(),
                reason,
            };
            (name.as_str(), hp.port)
                .to_socket_addrs()
                .map_err(|e| err(e.to_string()))?
                .next()
                .ok_or_else(|| err("no address".into()))
        }
    }
}

/// The engine's view of a trunk's targets: its first address (classification,
/// `0.0.0.0:port` until DNS answers) and its targets, strategy and health policy.
/// A name with a `[teams.resolve]` override is a fixed target.
fn trunk_targets(cfg: &Config, t: &crate::config::TrunkConfig) -> (SocketAddr, TargetsConfig) {
    let health = match t.options_interval {
        Some(i) => HealthPolicy::pinged(i, t.miss_threshold, t.recovery_count),
        None => HealthPolicy::unpinged(),
    };
    let strategy = match t.strategy {
        Strategy::Priority => EngineStrategy::Priority,
        Strategy::Weighted => EngineStrategy::Weighted,
        Strategy::LeastCalls => EngineStrategy::LeastCalls,
    };
    let override_of = |hp: &HostPort| match &hp.host {
        Host::Name(n) => cfg.teams.as_ref().and_then(|tm| tm.resolve.get(n)).copied(),
        Host::Ip(_) => None,
    };
    let fixed: Vec<TargetSpec> = match &t.address {
        TrunkAddress::Fixed(v) => v
            .iter()
            .map(|t| TargetSpec {
                addr: t.address,
                priority: t.priority,
                weight: t.weight,
            })
            .collect(),
        TrunkAddress::Host(hp) => override_of(hp)
            .map(|addr| TargetSpec {
                addr,
                priority: 0,
                weight: 1,
            })
            .into_iter()
            .collect(),
        TrunkAddress::Domain(_) => Vec::new(),
    };
    let dns = fixed.is_empty().then(|| t.address.dns_name()).flatten();
    let port = match &t.address {
        TrunkAddress::Host(hp) => hp.port,
        _ if t.transport.is_tls() => 5061,
        _ => 5060,
    };
    let address = fixed.first().map_or_else(
        || SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), port),
        |f| f.addr,
    );
    (
        address,
        TargetsConfig {
            strategy,
            fixed,
            dns,
            health,
        },
    )
}

/// What the DNS task resolves for each trunk (a name without `[teams.resolve]` override).
pub fn dns_plan(cfg: &Config) -> super::dns::DnsPlan {
    let jobs = cfg
        .trunks
        .iter()
        .filter_map(|t| {
            let query = match &t.address {
                TrunkAddress::Fixed(_) => return None,
                TrunkAddress::Host(hp) => {
                    if let Host::Name(n) = &hp.host {
                        if cfg
                            .teams
                            .as_ref()
                            .is_some_and(|tm| tm.resolve.contains_key(n))
                        {
                            return None;
                        }
                    }
                    super::dns::Query::Host {
                        name: hp.host.to_string(),
                        port: hp.port,
                    }
                }
                TrunkAddress::Domain(d) => super::dns::Query::Domain {
                    name: d.to_string(),
                    transport: t.transport,
                },
            };
            Some(super::dns::DnsJob {
                trunk: t.name.to_string(),
                query,
            })
        })
        .collect();
    super::dns::DnsPlan {
        servers: cfg.dns.servers.clone(),
        min_ttl: cfg.dns.min_ttl,
        max_ttl: cfg.dns.max_ttl,
        jobs,
    }
}

/// The address written in Via/Contact for a listener: a wildcard bind shows the
/// advertised media address instead (never `0.0.0.0` on the wire).
fn visible(addr: SocketAddr, advertised: IpAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(advertised, addr.port())
    } else {
        addr
    }
}

/// A peer's media learning for the engine.
fn learning(l: LearningConfig) -> MediaLearning {
    MediaLearning {
        endpoint_learning: match l.endpoint_learning {
            EndpointLearning::Heuristic => EngineLearning::Heuristic,
            EndpointLearning::Strict => EngineLearning::Strict,
            EndpointLearning::Delayed => EngineLearning::Delayed,
            EndpointLearning::Off => EngineLearning::Off,
        },
        relearn_after: l.relearn_after,
    }
}

/// The engine's (and data plane's) id of realm `i` of [`crate::config::model::MediaConfig::realms`].
fn realm_id(i: usize) -> portcullis_engine::media::RealmId {
    portcullis_engine::media::RealmId(u16::try_from(i).unwrap_or(0))
}

/// The advertised address of every media realm, in realm order (what the media
/// controller writes into SDP toward each realm).
pub fn realm_addresses(cfg: &Config) -> Vec<std::net::IpAddr> {
    cfg.media.realms.iter().map(|r| r.advertised_ip).collect()
}

/// The engine's view of `cfg`.
pub fn engine_config(cfg: &Config) -> Result<EngineConfig, ConvertError> {
    let listeners = cfg
        .sip
        .listeners
        .iter()
        .map(|l| ListenerInfo {
            transport: tx_transport(l.transport),
            addr: visible(l.address, cfg.media.advertised_ip),
        })
        .collect();
    let mut trunks = Vec::with_capacity(cfg.trunks.len() + 1);
    let mut registrations = Vec::new();
    for t in &cfg.trunks {
        let (address, targets) = trunk_targets(cfg, t);
        let creds = t.credentials.as_ref();
        let to_engine = |c: &crate::config::Credentials| EngineCredentials {
            username: c.username.clone(),
            password: c.password.expose().to_owned(),
            realm: c.realm.clone(),
        };
        trunks.push(EngineTrunk {
            name: t.name.as_str().to_owned(),
            address,
            transport: tx_transport(t.transport),
            media: match t.media {
                MediaProtection::Rtp => MediaMode::Rtp,
                MediaProtection::Srtp => MediaMode::Srtp,
                MediaProtection::Bypass => MediaMode::Bypass,
            },
            acl: t.acl.clone(),
            max_calls: t.max_calls,
            auth_inbound: creds.filter(|c| c.challenge_inbound).map(to_engine),
            auth_outbound: creds.filter(|c| c.answer_upstream).map(to_engine),
            tls_server_name: t.address.dns_name(),
            fqdn_contact: None,
            learning: learning(t.learning),
            targets,
            policy: t.policy.clone(),
            realm: realm_id(t.realm),
            listener: t.listener,
        });
        if let Some(r) = &t.register {
            registrations.push(registration(cfg, t, r, creds.map(to_engine))?);
        }
    }
    let mut teams = None;
    if let Some(tm) = &cfg.teams {
        let mut addrs = Vec::new();
        for p in &tm.proxies {
            addrs.push(resolve(cfg, "teams proxy", p)?);
        }
        let first = tm.proxies.first();
        if let (Some(&address), Some(hp)) = (addrs.first(), first) {
            trunks.push(EngineTrunk {
                name: "teams".into(),
                address,
                transport: TxTransport::Tls,
                media: MediaMode::Srtp,
                // No address ACL: Microsoft connects from anywhere in its signalling
                // ranges, not only from the proxies' DNS addresses. Calls from Teams
                // are recognised by the certificate names the mTLS listener verified
                // (chain to `client_ca`, `client_names`); without names, by the
                // address of the proxy in use.
                acl: Vec::new(),
                max_calls: None,
                auth_inbound: None,
                auth_outbound: None,
                tls_server_name: Some(hp.host.to_string()),
                fqdn_contact: Some(tm.sbc_fqdn.to_string()),
                learning: learning(tm.learning),
                targets: TargetsConfig::default(),
                policy: portcullis_engine::trunk_policy::TrunkPolicy {
                    trusted: true,
                    ..Default::default()
                },
                realm: realm_id(tm.realm),
                listener: tm.listener,
            });
        }
        teams = Some(TeamsSettings {
            sbc_fqdn: tm.sbc_fqdn.to_string(),
            options_interval: tm.options_interval,
            media_bypass: tm.media_bypass,
            proxies: tm
                .proxies
                .iter()
                .map(|p| (p.host.to_string(), p.port))
                .collect(),
        });
    }
    let route_rules = cfg.routes.iter().map(route).collect();
    let st = &cfg.sip.session_timer;
    let timers = TimerSettings {
        session_expires: st.session_expires,
        min_se: st.min_se,
        ..TimerSettings::default()
    };
    let ec = EngineConfig {
        node: NodeSettings {
            name: cfg.node.name.clone(),
            fqdn: cfg
                .node
                .fqdn
                .as_ref()
                .map(ToString::to_string)
                .or_else(|| cfg.teams.as_ref().map(|t| t.sbc_fqdn.to_string())),
            user_agent: user_agent(),
        },
        listeners,
        trunks,
        routes: Vec::new(),
        route_rules,
        policy: EnginePolicy {
            unknown_source: match cfg.policy.unknown_source {
                UnknownSourceAction::Reject => UnknownSource::Reject403,
                UnknownSourceAction::Drop => UnknownSource::Drop,
            },
            rate_limit_per_source: Some(cfg.policy.rate_limit),
            ban_duration: cfg.policy.ban_duration,
            unknown_source_budget: cfg.policy.unknown_source_budget,
            unknown_source_window: cfg.policy.unknown_source_window,
            max_bans: usize::try_from(cfg.policy.max_bans).unwrap_or(usize::MAX),
            max_calls: cfg.sip.limits.max_calls,
            overload_calls: cfg.sip.limits.overload_calls,
            max_transactions: usize::try_from(cfg.sip.limits.max_transactions)
                .unwrap_or(usize::MAX),
            max_transactions_per_source: usize::try_from(
                cfg.sip.limits.max_transactions_per_source,
            )
            .unwrap_or(usize::MAX),
        },
        timers,
        teams,
        registrations,
    };
    ec.validate()?;
    Ok(ec)
}

/// The engine's registration of trunk `t` (`[trunk.register]`): REGISTERs go to the
/// registrar (resolved now) over the trunk's transport, answering challenges with the
/// trunk's credentials.
fn registration(
    cfg: &Config,
    t: &crate::config::TrunkConfig,
    r: &crate::config::RegisterConfig,
    credentials: Option<EngineCredentials>,
) -> Result<RegistrationConfig, ConvertError> {
    Ok(RegistrationConfig {
        trunk: t.name.as_str().to_owned(),
        registrar: resolve(cfg, &format!("trunk {} registrar", t.name), &r.registrar)?,
        tls_server_name: match &r.registrar.host {
            Host::Name(n) => Some(n.to_string()),
            Host::Ip(_) => None,
        },
        transport: tx_transport(t.transport),
        registrar_uri: format!("sip:{}", r.domain),
        aor: r.aor.clone(),
        contact_user: r.contact_user.clone(),
        expires: r.expires,
        credentials,
        retry_min: r.retry_min,
        retry_max: r.retry_max,
    })
}

/// The Teams proxies to watch, resolved (`None` without `[teams]`).
///
/// The SBC identity in the OPTIONS (Contact, From, Via) names `sbc_fqdn` and
/// the port of the first TLS/mTLS listener (Teams dials that back), 5061 when
/// there is none.
///
/// # Errors
/// A proxy name does not resolve.
pub fn teams_plan(cfg: &Config) -> Result<Option<TeamsPlan>, ConvertError> {
    let Some(tm) = &cfg.teams else {
        return Ok(None);
    };
    let mut proxies = Vec::with_capacity(tm.proxies.len());
    for p in &tm.proxies {
        proxies.push(ProxyTarget {
            host: p.host.to_string(),
            port: p.port,
            addr: resolve(cfg, "teams proxy", p)?,
        });
    }
    let mut health = HealthConfig::new(tm.sbc_fqdn.as_str(), tm.options_interval);
    health.miss_threshold = tm.miss_threshold;
    health.identity.user_agent = user_agent();
    if let Some(l) = cfg
        .sip
        .listeners
        .iter()
        .find(|l| matches!(l.transport, Transport::Tls | Transport::Mtls))
    {
        health.identity.port = l.address.port();
    }
    Ok(Some(TeamsPlan { health, proxies }))
}

/// One route as a full engine routing rule.
///
/// The appliance's regex conditions are unanchored unless the pattern
/// anchors itself; the engine anchors every condition (`^(?:re)$`), so the
/// pattern is wrapped to keep the documented meaning.
fn route(r: &crate::config::RouteConfig) -> RouteRule {
    let translate = |rules: &[Translation]| {
        rules
            .iter()
            .map(|t| match t {
                Translation::StripPrefix(p) => TranslationRule::StripPrefix(p.clone()),
                Translation::AddPrefix(p) => TranslationRule::AddPrefix(p.clone()),
                Translation::Replace { regex, replace } => TranslationRule::Replace {
                    pattern: regex.as_str().to_owned(),
                    replacement: replace.clone(),
                },
            })
            .collect()
    };
    let number_match = |m: &NumberMatch| match m {
        NumberMatch::Any => EngineMatch::Any,
        NumberMatch::Prefix(p) => EngineMatch::Prefix(p.clone()),
        NumberMatch::Regex(re) => EngineMatch::Regex(format!("(?s:.*?)(?:{})(?s:.*)", re.as_str())),
    };
    RouteRule {
        name: r.name.clone(),
        from_trunks: r.from.iter().map(|t| t.as_str().to_owned()).collect(),
        called: number_match(&r.called),
        calling: number_match(&r.calling),
        translate_called: translate(&r.translate_called),
        translate_calling: translate(&r.translate_calling),
        targets: r.targets.iter().map(|t| t.as_str().to_owned()).collect(),
        target_translate_called: Vec::new(),
        reject: None,
        redirect: match r.redirect {
            RedirectPolicy::Follow => RedirectMode::Follow,
            RedirectPolicy::Relay | RedirectPolicy::Reject => RedirectMode::Relay,
        },
    }
}

/// The data plane's view of `cfg`.
pub fn dataplane_config(cfg: &Config) -> DataplaneConfig {
    let m = &cfg.media;
    DataplaneConfig {
        cores: m.cores.as_slice().to_vec(),
        port_min: m.ports.min(),
        port_max: m.ports.max(),
        bind_ip: m.bind_ip,
        realms: m
            .realms
            .iter()
            .skip(1)
            .map(|r| RealmConfig {
                bind_ip: r.bind_ip,
                port_min: r.ports.min(),
                port_max: r.ports.max(),
            })
            .collect(),
        backend: match m.backend {
            Backend::Auto => DpBackend::Auto,
            Backend::IoUring => DpBackend::IoUring,
            Backend::Mmsg => DpBackend::Mmsg,
            Backend::AfXdp => DpBackend::AfXdp,
        },
        inactivity_timeout: m.inactivity_timeout,
        ring_capacity: m.ring_capacity,
        learning_window: m.learning_window,
        ..DataplaneConfig::default()
    }
}

/// The SIP drivers' view of `cfg`.
pub fn transport_config(cfg: &Config) -> TransportConfig {
    let listeners = cfg
        .sip
        .listeners
        .iter()
        .map(|l| NetListener {
            transport: net_transport(l.transport),
            addr: l.address,
            tls: l.tls.as_ref().map(|t| TlsServerSettings {
                cert_chain_pem: t.cert.clone(),
                key_pem: t.key.clone(),
                client_ca: l.client_auth.as_ref().map(|c| c.ca.clone()),
                expected_client_names: l
                    .client_auth
                    .as_ref()
                    .map(|c| c.names.iter().map(ToString::to_string).collect())
                    .unwrap_or_default(),
            }),
        })
        .collect();
    let lim = &cfg.sip.limits;
    let limits = Limits {
        max_message_bytes: lim.max_message_size,
        max_tcp_connections: usize::try_from(lim.max_tcp_connections).unwrap_or(usize::MAX),
        max_connections_per_ip: usize::try_from(lim.max_connections_per_source)
            .unwrap_or(usize::MAX),
        tcp_idle_timeout: lim.tcp_idle_timeout,
        per_connection_rate: lim.per_connection_rate,
        per_connection_buffer: lim.per_connection_buffer,
        header_timeout: lim.header_timeout,
        min_receive_rate: lim.min_receive_rate,
        trunk_connection_reserve: usize::try_from(lim.trunk_connection_reserve)
            .unwrap_or(usize::MAX),
        unknown_source_rate: lim.unknown_source_rate,
        ..Limits::default()
    };
    let tls_client = cfg.teams.as_ref().map(|t| TlsClientSettings {
        roots: t.trusted_roots.clone(),
        client_cert: Some(ClientCertificate {
            cert_chain_pem: t.tls.cert.clone(),
            key_pem: t.tls.key.clone(),
        }),
    });
    TransportConfig {
        listeners,
        limits,
        tls_client,
        event_queue: lim.engine_queue,
        ..TransportConfig::default()
    }
}

/// The drivers' classification of configured peers, from the engine's trunks: the
/// networks of a trunk's ACL, or its address when the ACL is empty (as
/// `TrunkConfig::matches_source` classifies requests); and every Teams proxy address.
pub fn trunk_sources(ec: &EngineConfig, teams: Option<&TeamsPlan>) -> TrunkSources {
    let proxies: Vec<IpAddr> = teams
        .into_iter()
        .flat_map(|t| t.proxies.iter().map(|p| p.addr.ip().to_canonical()))
        .collect();
    let trunks = ec.trunks.clone();
    TrunkSources::new(move |ip| {
        trunks.iter().any(|t| t.matches_source(ip)) || proxies.contains(&ip.to_canonical())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LoadOptions;

    #[test]
    fn embedded_default_converts() {
        let cfg = Config::embedded_default(&LoadOptions::default()).unwrap();
        let ec = engine_config(&cfg).unwrap();
        assert_eq!(ec.trunks.len(), 2);
        assert_eq!(ec.trunks[0].address, "127.0.0.1:5070".parse().unwrap());
        assert_eq!(ec.route_rules[0].targets, vec!["right".to_owned()]);
        assert_eq!(ec.listeners.len(), 2);
        let dp = dataplane_config(&cfg);
        assert_eq!((dp.port_min, dp.port_max), (20000, 29999));
        let tc = transport_config(&cfg);
        assert_eq!(tc.listeners.len(), 2);
    }

    const TEAMS_TOML: &str = r#"
[node]
name = "sbc1"

[[sip.listener]]
transport = "mtls"
address = "127.0.0.1:5061"
cert = "/nonexistent/chain.pem"
key = "/nonexistent/key.pem"
client_ca = "/nonexistent/roots.pem"
client_names = ["sip.pstnhub.microsoft.com", "sip2.pstnhub.microsoft.com", "sip3.pstnhub.microsoft.com"]

[[sip.listener]]
transport = "udp"
address = "127.0.0.1:5060"

[media]
advertised_ip = "127.0.0.1"
port_min = 20000
port_max = 20999
cores = "auto:1"

[[trunk]]
name = "carrier"
address = "198.51.100.20:5060"

[[route]]
name = "teams-to-carrier"
from = ["teams"]
targets = ["carrier"]

[teams]
sbc_fqdn = "sbc1.example.com"
cert_chain = "/nonexistent/chain.pem"
key = "/nonexistent/key.pem"
trusted_roots = "/nonexistent/roots.pem"

[teams.resolve]
"sip.pstnhub.microsoft.com" = "52.114.148.0:5061"
"sip2.pstnhub.microsoft.com" = "52.114.132.46:5061"
"sip3.pstnhub.microsoft.com" = "52.114.75.24:5061"
"#;

    fn teams_config() -> Config {
        let opts = LoadOptions {
            check_files: false,
            ..LoadOptions::default()
        };
        Config::from_toml(TEAMS_TOML, std::path::Path::new("."), &opts).unwrap()
    }

    #[test]
    fn teams_plan_names_the_proxies_and_our_tls_port() {
        let plan = teams_plan(&teams_config()).unwrap().unwrap();
        let hosts: Vec<&str> = plan.proxies.iter().map(|p| p.host.as_str()).collect();
        assert_eq!(
            hosts,
            [
                "sip.pstnhub.microsoft.com",
                "sip2.pstnhub.microsoft.com",
                "sip3.pstnhub.microsoft.com"
            ]
        );
        assert_eq!(plan.proxies[1].addr, "52.114.132.46:5061".parse().unwrap());
        assert_eq!(plan.proxies[1].port, 5061);
        assert_eq!(plan.health.identity.fqdn, "sbc1.example.com");
        assert_eq!(plan.health.identity.port, 5061);
        assert_eq!(plan.health.miss_threshold, 3);
        assert_eq!(plan.health.options_interval.as_secs(), 60);
        let none = Config::embedded_default(&LoadOptions::default()).unwrap();
        assert!(teams_plan(&none).unwrap().is_none());
    }

    #[test]
    fn every_teams_proxy_is_a_configured_peer() {
        let cfg = teams_config();
        let plan = teams_plan(&cfg).unwrap();
        let trunks = trunk_sources(&engine_config(&cfg).unwrap(), plan.as_ref());
        for a in [
            "52.114.148.0",
            "52.114.132.46",
            "52.114.75.24",
            "198.51.100.20",
        ] {
            assert!(trunks.contains(a.parse().unwrap()), "{a}");
        }
        assert!(!trunks.contains("52.113.7.9".parse().unwrap()));
    }

    #[test]
    fn calls_from_teams_are_recognised_by_certificate_from_any_address() {
        let ec = engine_config(&teams_config()).unwrap();
        let teams = ec.trunks.iter().position(|t| t.name == "teams").unwrap();
        let router = portcullis_engine::routing::Router::new(&ec).unwrap();
        let classify = |src: &str, names: &[&str]| {
            let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            router.classify_source(src.parse().unwrap(), TxTransport::Tls, Some(&names))
        };
        // Microsoft's signalling range, not a proxy's DNS address; any proxy's name.
        for name in ["sip.pstnhub.microsoft.com", "sip3.pstnhub.microsoft.com"] {
            assert_eq!(
                classify("52.113.7.9:40123", &[name]),
                Some(portcullis_engine::config::TrunkId(teams)),
                "{name}"
            );
        }
        assert_eq!(classify("52.113.7.9:40123", &["sip.example.org"]), None);
    }

    #[test]
    fn limits_and_trunk_sources_reach_the_drivers() {
        let src = crate::config::DEFAULT_TOML.replace(
            "[media]",
            "[sip.limits]\nmax_tcp_connections = 500\nper_connection_rate = 7\n\
             per_connection_buffer = 70000\nheader_timeout = \"3s\"\nmin_receive_rate = 9\n\
             unknown_source_rate = 11\nengine_queue = 13\n\n[media]",
        );
        let src = src.replacen(
            "address = \"127.0.0.1:5080\"",
            "address = \"127.0.0.1:5080\"\nacl = [\"10.1.0.0/16\"]",
            1,
        );
        let cfg =
            Config::from_toml(&src, std::path::Path::new("."), &LoadOptions::default()).unwrap();
        let tc = transport_config(&cfg);
        assert_eq!(tc.event_queue, 13);
        let l = tc.limits;
        assert_eq!(l.per_connection_rate, 7);
        assert_eq!(l.per_connection_buffer, 70000);
        assert_eq!(l.header_timeout, std::time::Duration::from_secs(3));
        assert_eq!(l.min_receive_rate, 9);
        assert_eq!(l.unknown_source_rate, 11);
        assert_eq!(
            l.trunk_connection_reserve, 50,
            "a tenth of max_tcp_connections"
        );
        let trunks = trunk_sources(&engine_config(&cfg).unwrap(), None);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(
            trunks.contains(ip("127.0.0.1")),
            "the address of a trunk without ACL"
        );
        assert!(trunks.contains(ip("10.1.2.3")), "inside a trunk's ACL");
        assert!(!trunks.contains(ip("127.0.0.2")));
        assert!(!trunks.contains(ip("10.2.0.1")));
    }

    #[test]
    fn prefix_strip_and_add() {
        let src = crate::config::DEFAULT_TOML.replace(
            "name = \"left-to-right\"\nfrom = [\"left\"]",
            "name = \"left-to-right\"\nfrom = [\"left\"]\ncalled_prefix = \"00\"\ntranslate_called = [{ strip_prefix = \"00\" }, { add_prefix = \"+\" }]",
        );
        let cfg =
            Config::from_toml(&src, std::path::Path::new("."), &LoadOptions::default()).unwrap();
        let ec = engine_config(&cfg).unwrap();
        let router = portcullis_engine::routing::Router::new(&ec).unwrap();
        let d = router
            .route(portcullis_engine::config::TrunkId(0), "0049301234", "100")
            .unwrap();
        assert_eq!(d.targets[0].called, "+49301234");
        assert!(router
            .route(portcullis_engine::config::TrunkId(0), "49301234", "100")
            .is_err());
    }
}

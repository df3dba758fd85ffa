//! Semantic checks of trunk targets (`trunk.address`, `trunk.targets`) and of `[dns]`.

use std::time::Duration;

use super::checker::Checker;
use super::model::{DnsConfig, TrunkAddress, TrunkTarget};
use super::raw::{RawConfig, RawTrunk};
use super::types::{Fqdn, Host, HostPort};

/// Most targets listed for one trunk.
pub const MAX_TARGETS: usize = 64;

/// Exactly one of `address` and `targets`: an `ip:port`, a `host:port` (A/AAAA), a domain
/// without port (RFC 3263 NAPTR/SRV), or IP literal targets.
pub(super) fn address(p: &str, t: &RawTrunk, c: &mut Checker<'_>) -> Option<TrunkAddress> {
    match (&t.address, t.targets.is_empty()) {
        (Some(_), false) => {
            c.err(format!("{p}.targets"), "set address or targets, not both");
            None
        }
        (None, true) => {
            c.err(
                format!("{p}.address"),
                "missing: an ip:port, a host:port, a domain (RFC 3263 lookup) or targets",
            );
            None
        }
        (Some(a), true) => {
            let path = format!("{p}.address");
            if !a.contains(':') || (a.starts_with('[') && a.ends_with(']')) {
                if a.parse::<std::net::IpAddr>().is_ok() || a.starts_with('[') {
                    c.err(&path, format!("{a:?}: an IP address needs its port"));
                    return None;
                }
                let d = c.ok(&path, Fqdn::parse(a))?;
                return Some(TrunkAddress::Domain(d));
            }
            match c.ok(&path, HostPort::parse(a))? {
                HostPort {
                    host: Host::Ip(ip),
                    port,
                } => Some(TrunkAddress::Fixed(vec![TrunkTarget {
                    address: std::net::SocketAddr::new(ip, port),
                    priority: 0,
                    weight: 1,
                }])),
                hp => Some(TrunkAddress::Host(hp)),
            }
        }
        (None, false) => {
            if t.targets.len() > MAX_TARGETS {
                c.err(
                    format!("{p}.targets"),
                    format!("at most {MAX_TARGETS} targets"),
                );
                return None;
            }
            let mut out = Vec::new();
            let mut ok = true;
            for (j, rt) in t.targets.iter().enumerate() {
                let path = format!("{p}.targets[{j}].address");
                let Some(sa) = c.sockaddr(&path, &rt.address) else {
                    ok = false;
                    continue;
                };
                if sa.port() == 0 {
                    c.err(&path, "port 0 is not allowed");
                    ok = false;
                } else if out.iter().any(|o: &TrunkTarget| o.address == sa) {
                    c.err(&path, format!("{sa} is listed twice"));
                    ok = false;
                }
                out.push(TrunkTarget {
                    address: sa,
                    priority: rt.priority,
                    weight: rt.weight,
                });
            }
            ok.then_some(TrunkAddress::Fixed(out))
        }
    }
}

/// `[dns]`.
pub(super) fn dns(raw: &RawConfig, c: &mut Checker<'_>) -> Option<DnsConfig> {
    let d = &raw.dns;
    let mut ok = true;
    let mut servers = Vec::new();
    for (i, s) in d.servers.iter().enumerate() {
        match c.sockaddr(&format!("dns.servers[{i}]"), s) {
            Some(sa) if sa.port() == 0 => {
                c.err(format!("dns.servers[{i}]"), "needs a port (53 is usual)");
                ok = false;
            }
            Some(sa) => servers.push(sa),
            None => ok = false,
        }
    }
    let min_ttl = c.duration("dns.min_ttl", &d.min_ttl, Duration::from_secs(1));
    let max_ttl = c.duration("dns.max_ttl", &d.max_ttl, Duration::from_secs(1));
    if let (Some(lo), Some(hi)) = (min_ttl, max_ttl) {
        if hi < lo {
            c.err("dns.max_ttl", "must not be below dns.min_ttl");
            ok = false;
        }
    }
    ok.then_some(())?;
    Some(DnsConfig {
        servers,
        min_ttl: min_ttl?,
        max_ttl: max_ttl?,
    })
}

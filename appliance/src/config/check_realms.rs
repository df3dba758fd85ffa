//! Interfaces and media realms: `[[media.realm]]`, and the realm and SIP listener each
//! trunk (and Teams) names.
//!
//! A realm is one interface's media: a local address (on this host), the address written
//! into SDP toward its peers, and a port range. Realms on one address may not share ports
//! (the data plane's rule, [`portcullis_dataplane::realm::realms_collide`]). A trunk names
//! its realm (absent: the first) and its listener by name or index (absent: the first of
//! its transport); the targets of a route share one realm, since a call's outbound media
//! ports are taken in that realm before the first target is tried.

use std::net::IpAddr;

use portcullis_dataplane::RealmConfig;

use super::checker::Checker;
use super::model::{Config, MediaRealm, SipConfig};
use super::raw::{RawConfig, RawListenerRef, RawMedia, Transport};
use super::types::PortRange;

/// The realms: `first` (the `default` realm of `[media]`'s addresses, when set) then
/// those of `[[media.realm]]`, checked. `cores`: dataplane cores, when known (each needs
/// room in every realm).
pub(super) fn realms(
    m: &RawMedia,
    first: Option<MediaRealm>,
    cores: Option<usize>,
    c: &mut Checker<'_>,
) -> Option<Vec<MediaRealm>> {
    if first.is_none() {
        for (key, set) in [
            ("port_min", m.port_min.is_some()),
            ("port_max", m.port_max.is_some()),
        ] {
            if set {
                c.err(
                    format!("media.{key}"),
                    "without media.bind_ip or media.advertised_ip there is no default realm: \
                     set the ports in each [[media.realm]]",
                );
            }
        }
    }
    let mut out: Vec<MediaRealm> = first.into_iter().collect();
    let offset = out.len();
    let mut ok = true;
    for (i, r) in m.realm.iter().enumerate() {
        let p = format!("media.realm[{i}]");
        let good_name = !r.name.is_empty()
            && r.name.len() <= 64
            && r.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !good_name {
            c.err(format!("{p}.name"), "1 to 64 letters, digits, '-' or '_'");
            ok = false;
        } else if out.iter().take(offset).any(|o| o.name == r.name)
            || m.realm.iter().take(i).any(|o| o.name == r.name)
        {
            c.err(
                format!("{p}.name"),
                format!("realm {:?} is declared twice", r.name),
            );
            ok = false;
        }
        match realm(&p, r, cores, c) {
            Some(x) => out.push(x),
            None => ok = false,
        }
    }
    for (j, b) in out.iter().enumerate().skip(offset) {
        if let Some(a) = out.iter().take(j).find(|a| realms_collide(a, b)) {
            c.err(
                format!("media.realm[{}].port_min", j - offset),
                format!(
                    "ports {} on {} overlap realm {:?}'s ({} on {})",
                    b.ports, b.bind_ip, a.name, a.ports, a.bind_ip
                ),
            );
            ok = false;
        }
    }
    ok.then_some(out)
}

fn realms_collide(a: &MediaRealm, b: &MediaRealm) -> bool {
    let dp = |r: &MediaRealm| RealmConfig {
        bind_ip: r.bind_ip,
        port_min: r.ports.min(),
        port_max: r.ports.max(),
    };
    portcullis_dataplane::realm::realms_collide(&dp(a), &dp(b))
}

/// One `[[media.realm]]` at `p`.
fn realm(
    p: &str,
    r: &super::raw::RawRealm,
    cores: Option<usize>,
    c: &mut Checker<'_>,
) -> Option<MediaRealm> {
    let bind_ip = c.ip(&format!("{p}.bind_ip"), &r.bind_ip)?;
    let advertised_ip = match &r.advertised_ip {
        Some(a) => c.ip(&format!("{p}.advertised_ip"), a)?,
        None if !bind_ip.is_unspecified() => bind_ip,
        None => {
            c.err(
                format!("{p}.advertised_ip"),
                "required (the address peers send media to) unless bind_ip is a specific address",
            );
            return None;
        }
    };
    let mut ok = true;
    if advertised_ip.is_unspecified() || advertised_ip.is_multicast() {
        c.err(
            format!("{p}.advertised_ip"),
            format!("{advertised_ip} cannot be advertised in SDP"),
        );
        ok = false;
    }
    let dual_stack = bind_ip.is_ipv6() && bind_ip.is_unspecified();
    if bind_ip.is_ipv4() != advertised_ip.is_ipv4() && !dual_stack {
        c.err(
            format!("{p}.bind_ip"),
            "must be of the same address family as advertised_ip (or \"::\", dual stack)",
        );
        ok = false;
    }
    let here = c
        .opts
        .check_files
        .then(|| c.opts.host.addresses.clone())
        .flatten();
    if let Some(local) = &here {
        if !bind_ip.is_unspecified() && !local.contains(&bind_ip) {
            let list: Vec<String> = local.iter().map(IpAddr::to_string).collect();
            c.err(
                format!("{p}.bind_ip"),
                format!(
                    "{bind_ip} is not an address of this host (its addresses: {})",
                    list.join(", ")
                ),
            );
            ok = false;
        }
    }
    let ports = c.ok(
        &format!("{p}.port_min"),
        PortRange::new(r.port_min, r.port_max),
    )?;
    if let Some(k) = cores {
        let need = super::check_media::MIN_STREAMS_PER_CORE * k;
        if ports.pairs() < need {
            c.err(
                format!("{p}.port_max"),
                format!(
                    "port range {ports} holds {} port pairs; {k} dataplane core(s) need at least \
                     {need} in every realm: raise port_max to {} or more",
                    ports.pairs(),
                    usize::from(ports.min()) + 2 * need - 1
                ),
            );
            ok = false;
        }
    }
    ok.then(|| MediaRealm {
        name: r.name.clone(),
        bind_ip,
        advertised_ip,
        ports,
    })
}

/// Resolve the `realm` and `listener` names of every trunk and of Teams into `cfg`, and
/// check that every route's targets share a realm.
pub(super) fn apply(raw: &RawConfig, cfg: &mut Config, c: &mut Checker<'_>) {
    let names: Vec<&str> = cfg.media.realms.iter().map(|r| r.name.as_str()).collect();
    for (i, l) in raw.sip.listener.iter().enumerate() {
        if let Some(n) = &l.name {
            if raw
                .sip
                .listener
                .iter()
                .take(i)
                .any(|o| o.name.as_ref() == Some(n))
            {
                c.err(
                    format!("sip.listener[{i}].name"),
                    format!("listener {n:?} is named twice"),
                );
            }
        }
    }
    for (i, (t, rt)) in cfg.trunks.iter_mut().zip(&raw.trunk).enumerate() {
        let p = format!("trunk[{i}]");
        if let Some(r) = realm_index(&p, rt.realm.as_deref(), &names, c) {
            t.realm = r;
        }
        if let Some(l) = &rt.listener {
            t.listener = listener_index(&p, l, rt.transport, &cfg.sip, raw, c);
        }
    }
    if let (Some(t), Some(rt)) = (cfg.teams.as_mut(), raw.teams.as_ref()) {
        if let Some(r) = realm_index("teams", rt.realm.as_deref(), &names, c) {
            t.realm = r;
        }
        if let Some(l) = &rt.listener {
            t.listener = listener_index("teams", l, Transport::Tls, &cfg.sip, raw, c);
        }
    }
    for (i, r) in raw.route.iter().enumerate() {
        let realm_of = |n: &String| -> Option<usize> {
            if n == "teams" {
                return cfg.teams.as_ref().map(|t| t.realm);
            }
            cfg.trunks
                .iter()
                .find(|t| t.name.as_str() == n)
                .map(|t| t.realm)
        };
        let mut seen: Vec<(usize, &String)> = Vec::new();
        for n in &r.targets {
            if let Some(x) = realm_of(n) {
                if let Some((_, first)) = seen.iter().find(|(y, _)| *y != x) {
                    c.err(
                        format!("route[{i}].targets"),
                        format!(
                            "targets {first:?} and {n:?} are in different media realms ({:?}, {:?}): \
                             a route's targets share one realm",
                            names.get(seen.first().map_or(0, |s| s.0)).unwrap_or(&"?"),
                            names.get(x).unwrap_or(&"?"),
                        ),
                    );
                    break;
                }
                seen.push((x, n));
            }
        }
    }
}

fn realm_index(p: &str, name: Option<&str>, names: &[&str], c: &mut Checker<'_>) -> Option<usize> {
    let n = name?;
    let i = names.iter().position(|x| *x == n);
    if i.is_none() {
        c.err(
            format!("{p}.realm"),
            format!("unknown media realm {n:?} (realms: {})", names.join(", ")),
        );
    }
    i
}

/// The listener `l` names for a peer using `transport` (a TLS peer may use an mTLS one).
fn listener_index(
    p: &str,
    l: &RawListenerRef,
    transport: Transport,
    sip: &SipConfig,
    raw: &RawConfig,
    c: &mut Checker<'_>,
) -> Option<usize> {
    let path = format!("{p}.listener");
    let i = match l {
        RawListenerRef::Index(n) => usize::try_from(*n)
            .ok()
            .filter(|&n| n < sip.listeners.len()),
        RawListenerRef::Name(n) => raw
            .sip
            .listener
            .iter()
            .position(|x| x.name.as_ref() == Some(n)),
    };
    let Some(i) = i else {
        c.err(path, format!("no [[sip.listener]] {l}"));
        return None;
    };
    let lt = sip.listeners.get(i)?.transport;
    let fits = match transport {
        Transport::Udp | Transport::Tcp => lt == transport,
        Transport::Tls | Transport::Mtls => matches!(lt, Transport::Tls | Transport::Mtls),
    };
    if !fits {
        c.err(
            path,
            format!("listener {l} is {lt:?}, the peer uses {transport:?}"),
        );
        return None;
    }
    Some(i)
}

impl std::fmt::Display for RawListenerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Index(n) => write!(f, "{n}"),
            Self::Name(n) => write!(f, "{n:?}"),
        }
    }
}

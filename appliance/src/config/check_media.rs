//! Semantic checks of `[media]`: cores, the default realm's addresses and port range,
//! timers, the ring and the interface list.

use std::net::IpAddr;
use std::time::Duration;

use super::checker::Checker;
use super::model::{MediaConfig, MediaRealm, LEARNING_WINDOW_BOUNDS};
use super::raw::{RawCores, RawMedia};
use super::types::{parse_cpulist, CoreList, PortRange};

/// Each dataplane core needs room for at least this many concurrent streams. A stream takes a
/// port pair (even RTP port, odd RTCP port: RFC 3550 §11), so the media port range must hold
/// at least `2 * MIN_STREAMS_PER_CORE * cores` ports.
pub const MIN_STREAMS_PER_CORE: usize = 64;
/// Bounds of `media.ring_capacity`.
pub const RING_CAPACITY_BOUNDS: (u32, u32) = (64, 1 << 20);

fn cores(m: &RawMedia, c: &mut Checker<'_>) -> Option<CoreList> {
    let host = c.opts.host.clone();
    let list = match &m.cores {
        RawCores::List(v) => {
            let mut out = Vec::new();
            for (i, &n) in v.iter().enumerate() {
                match usize::try_from(n) {
                    Ok(n) => out.push(n),
                    Err(_) => c.err(
                        format!("media.cores[{i}]"),
                        format!("{n} is not a CPU number"),
                    ),
                }
            }
            (out.len() == v.len()).then_some(out)?
        }
        RawCores::Text(t) if t == "auto" => host.allowed_cpus.clone(),
        RawCores::Text(t) if t.starts_with("auto:") => {
            let n = t
                .get(5..)
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n > 0);
            let n = c.ok(
                "media.cores",
                n.ok_or_else(|| format!("{t:?}: write \"auto:N\" with N >= 1")),
            )?;
            host.allowed_cpus.iter().copied().take(n).collect()
        }
        RawCores::Text(t) => c.ok("media.cores", parse_cpulist(t))?,
    };
    let list = c.ok("media.cores", CoreList::new(list))?;
    let outside: Vec<String> = list
        .as_slice()
        .iter()
        .filter(|n| !host.online_cpus.contains(n))
        .map(ToString::to_string)
        .collect();
    if !outside.is_empty() {
        let online: Vec<String> = host.online_cpus.iter().map(ToString::to_string).collect();
        c.err(
            "media.cores",
            format!(
                "core(s) {} are not online CPUs of this machine (online: {})",
                outside.join(", "),
                online.join(",")
            ),
        );
        return None;
    }
    Some(list)
}

pub(super) fn media(m: &RawMedia, c: &mut Checker<'_>) -> Option<MediaConfig> {
    let cores = cores(m, c);
    // `[media]`'s addresses are the `default` realm: the only one without
    // `[[media.realm]]`, the first one when they are set beside it.
    let has_default = m.realm.is_empty() || m.bind_ip.is_some() || m.advertised_ip.is_some();
    let first = if has_default {
        let r = default_realm(m, cores.as_ref(), c);
        r.as_ref()?;
        r
    } else {
        None
    };
    let realms = if m.realm.is_empty() {
        first.map(|r| vec![r])
    } else {
        super::check_realms::realms(m, first, cores.as_ref().map(CoreList::len), c)
    };
    let inactivity = c.duration(
        "media.inactivity_timeout",
        &m.inactivity_timeout,
        Duration::from_secs(1),
    );
    let (wmin, wmax) = LEARNING_WINDOW_BOUNDS;
    let window = c.duration("media.learning_window", &m.learning_window, wmin);
    if window.is_some_and(|w| w > wmax) {
        c.err(
            "media.learning_window",
            format!(
                "{:?} is longer than the maximum {wmax:?}",
                m.learning_window
            ),
        );
    }
    let (lo, hi) = RING_CAPACITY_BOUNDS;
    if !m.ring_capacity.is_power_of_two() || !(lo..=hi).contains(&m.ring_capacity) {
        c.err(
            "media.ring_capacity",
            format!("must be a power of two between {lo} and {hi}"),
        );
    }
    let interfaces = interfaces(m, c);
    let realms = realms?;
    let first = realms.first()?.clone();
    Some(MediaConfig {
        advertised_ip: first.advertised_ip,
        bind_ip: first.bind_ip,
        ports: first.ports,
        realms,
        cores: cores?,
        backend: m.backend,
        inactivity_timeout: inactivity?,
        ring_capacity: usize::try_from(m.ring_capacity).ok()?,
        learning_window: window.filter(|w| *w <= wmax)?,
        fast_path: m.fast_path,
        interfaces: interfaces?,
    })
}

/// The one realm of a `[media]` without `[[media.realm]]`: its addresses and range.
fn default_realm(
    m: &RawMedia,
    cores: Option<&CoreList>,
    c: &mut Checker<'_>,
) -> Option<MediaRealm> {
    let bind_ip = match &m.bind_ip {
        Some(b) => c.ip("media.bind_ip", b),
        None => Some(IpAddr::from([0, 0, 0, 0])),
    };
    let advertised_ip = match (&m.advertised_ip, bind_ip) {
        (Some(a), _) => c.ip("media.advertised_ip", a),
        (None, Some(b)) if !b.is_unspecified() => Some(b),
        (None, None) => None, // bind_ip is wrong: already reported.
        (None, Some(_)) => {
            c.err(
                "media.advertised_ip",
                "required (the address peers send media to) unless bind_ip is a specific address",
            );
            None
        }
    };
    if let Some(a) = advertised_ip {
        if a.is_unspecified() || a.is_multicast() {
            c.err(
                "media.advertised_ip",
                format!("{a} cannot be advertised in SDP"),
            );
        }
        // `::` is dual stack: IPv4 peers reach it, so it may advertise an IPv4 address.
        let dual_stack = bind_ip.is_some_and(|b| b.is_ipv6() && b.is_unspecified());
        if bind_ip.is_some_and(|b| b.is_ipv4() != a.is_ipv4()) && !dual_stack {
            c.err(
                "media.bind_ip",
                "must be of the same address family as advertised_ip (or \"::\", dual stack)",
            );
        }
    }
    let port_min = m.port_min.unwrap_or_else(super::raw::default_port_min);
    let port_max = m.port_max.unwrap_or_else(super::raw::default_port_max);
    let ports = c.ok("media.port_min", PortRange::new(port_min, port_max));
    if let (Some(p), Some(k)) = (ports, cores) {
        let need = MIN_STREAMS_PER_CORE * k.len();
        if p.pairs() < need {
            c.err(
                "media.port_max",
                format!(
                    "port range {p} holds {} port pairs; {} dataplane core(s) need at least {need} \
                     ({MIN_STREAMS_PER_CORE} streams per core, 2 ports per stream): raise port_max to {} or more",
                    p.pairs(),
                    k.len(),
                    usize::from(p.min()) + 2 * need - 1
                ),
            );
        }
    }
    Some(MediaRealm {
        name: String::from("default"),
        bind_ip: bind_ip?,
        advertised_ip: advertised_ip?,
        ports: ports?,
    })
}

/// `media.interfaces`: Linux interface names (at most 15 bytes, no `/`, no blank), each
/// once.
fn interfaces(m: &RawMedia, c: &mut Checker<'_>) -> Option<Vec<String>> {
    let mut ok = true;
    for (i, name) in m.interfaces.iter().enumerate() {
        let bad = name.is_empty()
            || name.len() > 15
            || name == "."
            || name == ".."
            || name
                .bytes()
                .any(|b| b == b'/' || b == b':' || !b.is_ascii_graphic());
        let why = if bad {
            Some(format!(
                "{name:?} is not an interface name (1 to 15 printable characters, no '/', ':' or blank)"
            ))
        } else if m.interfaces[..i].contains(name) {
            Some(format!("{name:?} is listed twice"))
        } else {
            None
        };
        if let Some(why) = why {
            c.err(format!("media.interfaces[{i}]"), why);
            ok = false;
        }
    }
    ok.then(|| m.interfaces.clone())
}

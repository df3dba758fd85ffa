//! Semantic checks: raw serde structs → checked [`Config`]. Every problem is collected (the
//! checker never stops at the first one) with its TOML path and position.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::checker::Checker;
use super::host::{check_key_matches, PemKind};
use super::model::{
    AdminConfig, CaptureConfig, CdrConfig, ClientAuth, Config, ListenerConfig, LogConfig,
    MediaConfig, MediaRealm, NgConfig, NodeConfig, PolicyConfig, Secret, SessionTimerConfig,
    SipConfig, SipLimits, TlsFiles, LEARNING_WINDOW_BOUNDS,
};
use super::raw::{RawConfig, RawCores, RawListener, RawMedia, RawSip, Transport};
use super::types::{parse_cpulist, CoreList, PortRange};

/// Each dataplane core needs room for at least this many concurrent streams. A stream takes a
/// port pair (even RTP port, odd RTCP port: RFC 3550 §11), so the media port range must hold
/// at least `2 * MIN_STREAMS_PER_CORE * cores` ports.
pub const MIN_STREAMS_PER_CORE: usize = 64;
/// Shortest accepted admin bearer token.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;
/// RFC 4028 §4: Min-SE MUST NOT be below 90 seconds.
pub const RFC4028_MIN_SE: Duration = Duration::from_secs(90);
/// Bounds of `sip.limits.max_message_size`.
pub const MESSAGE_SIZE_BOUNDS: (u32, u32) = (1024, 1 << 20);
/// Bounds of `cdr.queue_capacity`.
pub const CDR_QUEUE_BOUNDS: (u32, u32) = (16, 1 << 20);
/// Bounds of `log.buffer_lines`.
pub const LOG_BUFFER_BOUNDS: (u32, u32) = (64, 1 << 20);
/// Bounds of `media.ring_capacity`.
pub const RING_CAPACITY_BOUNDS: (u32, u32) = (64, 1 << 20);

/// Converts and checks the whole file. Returns the config only when no diagnostic was raised.
pub(super) fn check(raw: &RawConfig, c: &mut Checker<'_>) -> Option<Config> {
    let node = node(raw, c);
    let sip = sip(&raw.sip, raw.ng.is_some(), c);
    let media = media(&raw.media, c);
    let admin = admin(raw, c);
    let cdr = cdr(raw, c);
    let policy = policy(raw, c);
    let trunks = super::check_peers::trunks(raw, sip.as_ref(), c);
    let routes = super::check_peers::routes(raw, c);
    let teams = super::check_peers::teams(raw, sip.as_ref(), c);
    let capture = capture(raw, c);
    let dns = super::check_targets::dns(raw, c);
    let ng = ng(raw, c);
    let otel = super::check_otel::otel(raw, c);
    let ha = super::check_ha::ha(raw.ha.as_ref(), c);
    if let (Some(sip), Some(media)) = (&sip, &media) {
        // Every listener was valid, so listener indices match the file.
        for (i, l) in sip.listeners.iter().enumerate() {
            let port = l.address.port();
            for r in &media.realms {
                let (lo, hi) = (r.ports.min(), r.ports.max());
                if !l.transport.is_stream()
                    && (lo..=hi).contains(&port)
                    && media_overlaps(r.bind_ip, l.address.ip())
                {
                    c.err(
                        format!("sip.listener[{i}].address"),
                        format!(
                            "UDP port {port} lies inside the media port range {}",
                            r.ports
                        ),
                    );
                }
            }
        }
    }
    if let (Some(sip), Some(admin)) = (&sip, &admin) {
        admin_clash(sip, admin.listen, c);
    }
    let (lo, hi) = LOG_BUFFER_BOUNDS;
    if !(lo..=hi).contains(&raw.log.buffer_lines) {
        c.err(
            "log.buffer_lines",
            format!("must be between {lo} and {hi} lines"),
        );
    }
    if let (Some(Some(ng)), Some(media)) = (&ng, &media) {
        let (lo, hi) = (media.ports.min(), media.ports.max());
        let port = ng.listen.port();
        if (lo..=hi).contains(&port) && media_overlaps(media.bind_ip, ng.listen.ip()) {
            c.err(
                "ng.listen",
                format!(
                    "UDP port {port} lies inside the media port range {}",
                    media.ports
                ),
            );
        }
    }
    if !c.diags.is_empty() {
        return None;
    }
    let log = LogConfig {
        level: raw.log.level,
        format: raw.log.format,
        buffer_lines: usize::try_from(raw.log.buffer_lines).ok()?,
    };
    let mut cfg = Config {
        node: node?,
        sip: sip?,
        media: media?,
        admin: admin?,
        cdr: cdr?,
        log,
        policy: policy?,
        trunks: trunks?,
        routes: routes?,
        teams: teams?,
        capture: capture?,
        dns: dns?,
        ng: ng?,
        otel: otel?,
        ha: ha?,
    };
    super::check_realms::apply(raw, &mut cfg, c);
    c.diags.is_empty().then_some(cfg)
}

fn node(raw: &RawConfig, c: &mut Checker<'_>) -> Option<NodeConfig> {
    let name = &raw.node.name;
    let mut ok = true;
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        c.err(
            "node.name",
            format!("{name:?} must be 1 to 64 printable characters without spaces"),
        );
        ok = false;
    }
    let fqdn = match &raw.node.fqdn {
        Some(f) => Some(c.fqdn("node.fqdn", f, 2)?),
        None => None,
    };
    ok.then(|| NodeConfig {
        name: name.clone(),
        fqdn,
    })
}

/// `has_ng`: the file has an `[ng]` section, so it may describe a media node without SIP.
fn sip(raw: &RawSip, has_ng: bool, c: &mut Checker<'_>) -> Option<SipConfig> {
    let mut listeners = Vec::new();
    let mut ok = true;
    if raw.listener.is_empty() && !has_ng {
        c.err(
            "sip",
            "at least one [[sip.listener]] is required (or an [ng] section for a media node)",
        );
        ok = false;
    }
    for (i, l) in raw.listener.iter().enumerate() {
        match listener(i, l, c) {
            Some(l) => listeners.push((i, l)),
            None => ok = false,
        }
    }
    // Two listeners may not share a socket: UDP with UDP, or any two TCP-based transports.
    for (n, (i, a)) in listeners.iter().enumerate() {
        if let Some((j, b)) = listeners.iter().take(n).find(|(_, b)| {
            sockets_overlap(b.address, a.address)
                && b.transport.is_stream() == a.transport.is_stream()
        }) {
            c.err(
                format!("sip.listener[{i}].address"),
                format!(
                    "{} {} uses the same socket as sip.listener[{j}] ({})",
                    a.transport.as_str(),
                    a.address,
                    b.transport.as_str()
                ),
            );
            ok = false;
        }
    }
    let drain_timeout = c.duration("sip.drain_timeout", &raw.drain_timeout, Duration::ZERO);
    let drain_notice = c.duration("sip.drain_notice", &raw.drain_notice, Duration::ZERO);
    if let (Some(notice), Some(timeout)) = (drain_notice, drain_timeout) {
        if notice > timeout {
            c.err("sip.drain_notice", "must not exceed drain_timeout");
            ok = false;
        }
    }
    let limits = limits(raw, c);
    let st = &raw.session_timer;
    let se = c.duration(
        "sip.session_timer.session_expires",
        &st.session_expires,
        RFC4028_MIN_SE,
    );
    let min_se = c.duration("sip.session_timer.min_se", &st.min_se, RFC4028_MIN_SE);
    if let (Some(se), Some(min)) = (se, min_se) {
        if se < min {
            c.err(
                "sip.session_timer.session_expires",
                "must not be shorter than min_se (RFC 4028 §5)",
            );
            ok = false;
        }
    }
    let session_timer = SessionTimerConfig {
        enabled: st.enabled,
        session_expires: se?,
        min_se: min_se?,
    };
    ok.then_some(())?;
    Some(SipConfig {
        listeners: listeners.into_iter().map(|(_, l)| l).collect(),
        drain_timeout: drain_timeout?,
        drain_notice: drain_notice?,
        limits: limits?,
        session_timer,
    })
}

/// True when binding both addresses would collide: same address, or same port where one
/// side is the wildcard of the same family.
/// The admin API listens on TCP: it may not share a port with a TCP-based SIP listener
/// (UDP on the same port is another socket). Its socket is dual stack, like the media's.
fn admin_clash(sip: &SipConfig, admin: SocketAddr, c: &mut Checker<'_>) {
    let clash = sip.listeners.iter().enumerate().find(|(_, l)| {
        l.transport.is_stream()
            && l.address.port() == admin.port()
            && media_overlaps(admin.ip(), l.address.ip())
    });
    if let Some((i, l)) = clash {
        c.err(
            "admin.listen",
            format!(
                "{admin} uses the same TCP port as sip.listener[{i}] ({} {}): give the admin API its own port",
                l.transport.as_str(),
                l.address
            ),
        );
    }
}

fn sockets_overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && ips_overlap(a.ip(), b.ip())
}

fn ips_overlap(a: IpAddr, b: IpAddr) -> bool {
    a == b || (a.is_ipv4() == b.is_ipv4() && (a.is_unspecified() || b.is_unspecified()))
}

/// Like [`ips_overlap`] for a media socket bound to `media`: the media sockets are dual
/// stack, so `::` takes the port on every IPv4 address too (SIP sockets are IPv6-only).
fn media_overlaps(media: IpAddr, ip: IpAddr) -> bool {
    ips_overlap(media, ip) || (media.is_ipv6() && media.is_unspecified())
}

fn listener(i: usize, l: &RawListener, c: &mut Checker<'_>) -> Option<ListenerConfig> {
    let p = format!("sip.listener[{i}]");
    let address = c.sockaddr(&format!("{p}.address"), &l.address);
    let mut ok = true;
    let tls = if l.transport.is_tls() {
        let why = format!(
            "a {} listener needs a certificate chain",
            l.transport.as_str()
        );
        let cert = c.pem(
            &format!("{p}.cert"),
            l.cert.as_deref(),
            PemKind::Certificates,
            &why,
        );
        let why = format!("a {} listener needs a private key", l.transport.as_str());
        let key = c.pem(
            &format!("{p}.key"),
            l.key.as_deref(),
            PemKind::PrivateKey,
            &why,
        );
        Some((cert, key))
    } else {
        for (k, v) in [("cert", &l.cert), ("key", &l.key)] {
            if v.is_some() {
                c.err(
                    format!("{p}.{k}"),
                    format!("only tls and mtls listeners take a {k}"),
                );
                ok = false;
            }
        }
        None
    };
    let client_auth = if l.transport == Transport::Mtls {
        let ca = c.pem(
            &format!("{p}.client_ca"),
            l.client_ca.as_deref(),
            PemKind::Certificates,
            "an mtls listener needs the CA bundle that client certificates must chain to",
        );
        let mut names = Vec::new();
        for (j, n) in l.client_names.iter().enumerate() {
            match c.fqdn(&format!("{p}.client_names[{j}]"), n, 1) {
                Some(f) => names.push(f),
                None => ok = false,
            }
        }
        Some((ca, names))
    } else {
        if l.client_ca.is_some() {
            c.err(
                format!("{p}.client_ca"),
                "only mtls listeners take a client_ca",
            );
            ok = false;
        }
        if !l.client_names.is_empty() {
            c.err(
                format!("{p}.client_names"),
                "only mtls listeners take client_names",
            );
            ok = false;
        }
        None
    };
    if let (Some((Some(cert), Some(key))), true) = (&tls, c.opts.check_files) {
        if c.ok(&format!("{p}.key"), check_key_matches(cert, key))
            .is_none()
        {
            ok = false;
        }
    }
    let tls = match tls {
        Some((Some(cert), Some(key))) => Some(TlsFiles { cert, key }),
        Some(_) => return None,
        None => None,
    };
    let client_auth = match client_auth {
        Some((Some(ca), names)) => Some(ClientAuth { ca, names }),
        Some((None, _)) => return None,
        None => None,
    };
    ok.then_some(())?;
    Some(ListenerConfig {
        transport: l.transport,
        address: address?,
        tls,
        client_auth,
    })
}

fn limits(raw: &RawSip, c: &mut Checker<'_>) -> Option<SipLimits> {
    let l = &raw.limits;
    let mut ok = true;
    let (lo, hi) = MESSAGE_SIZE_BOUNDS;
    if !(lo..=hi).contains(&l.max_message_size) {
        c.err(
            "sip.limits.max_message_size",
            format!("must be between {lo} and {hi} bytes"),
        );
        ok = false;
    }
    for (k, v) in [
        ("max_tcp_connections", l.max_tcp_connections),
        ("max_connections_per_source", l.max_connections_per_source),
        ("per_connection_rate", l.per_connection_rate),
        ("min_receive_rate", l.min_receive_rate),
        ("unknown_source_rate", l.unknown_source_rate),
        ("engine_queue", l.engine_queue),
    ] {
        if v == 0 {
            c.err(format!("sip.limits.{k}"), "must be at least 1");
            ok = false;
        }
    }
    for (k, v) in [
        ("max_transactions", l.max_transactions),
        ("max_transactions_per_source", l.max_transactions_per_source),
    ] {
        if v == 0 {
            c.err(format!("sip.limits.{k}"), "must be at least 1");
            ok = false;
        }
    }
    match (l.overload_calls, l.max_calls) {
        (Some(0), _) => {
            c.err("sip.limits.overload_calls", "must be at least 1");
            ok = false;
        }
        (Some(o), Some(max)) if o > max => {
            c.err(
                "sip.limits.overload_calls",
                format!("must not exceed max_calls ({max})"),
            );
            ok = false;
        }
        _ => {}
    }
    if l.max_transactions_per_source > l.max_transactions {
        c.err(
            "sip.limits.max_transactions_per_source",
            "must not exceed max_transactions",
        );
        ok = false;
    }
    if l.max_connections_per_source > l.max_tcp_connections {
        c.err(
            "sip.limits.max_connections_per_source",
            "must not exceed max_tcp_connections",
        );
        ok = false;
    }
    if l.per_connection_buffer < l.max_message_size {
        c.err(
            "sip.limits.per_connection_buffer",
            format!(
                "must hold at least one whole message (max_message_size = {})",
                l.max_message_size
            ),
        );
        ok = false;
    }
    let reserve = l
        .trunk_connection_reserve
        .unwrap_or(l.max_tcp_connections / 10);
    if reserve > l.max_tcp_connections {
        c.err(
            "sip.limits.trunk_connection_reserve",
            format!(
                "must not exceed max_tcp_connections ({})",
                l.max_tcp_connections
            ),
        );
        ok = false;
    }
    let idle = c.duration(
        "sip.limits.tcp_idle_timeout",
        &l.tcp_idle_timeout,
        Duration::from_secs(1),
    );
    let header_timeout = c.duration(
        "sip.limits.header_timeout",
        &l.header_timeout,
        Duration::from_secs(1),
    );
    ok.then_some(())?;
    Some(SipLimits {
        max_message_size: usize::try_from(l.max_message_size).ok()?,
        max_tcp_connections: l.max_tcp_connections,
        max_connections_per_source: l.max_connections_per_source,
        per_connection_rate: l.per_connection_rate,
        per_connection_buffer: usize::try_from(l.per_connection_buffer).ok()?,
        tcp_idle_timeout: idle?,
        max_calls: l.max_calls,
        overload_calls: l.overload_calls,
        max_transactions: l.max_transactions,
        max_transactions_per_source: l.max_transactions_per_source,
        header_timeout: header_timeout?,
        min_receive_rate: l.min_receive_rate,
        trunk_connection_reserve: reserve,
        unknown_source_rate: l.unknown_source_rate,
        engine_queue: usize::try_from(l.engine_queue).ok()?,
    })
}

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

fn media(m: &RawMedia, c: &mut Checker<'_>) -> Option<MediaConfig> {
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

fn admin(raw: &RawConfig, c: &mut Checker<'_>) -> Option<AdminConfig> {
    let listen = c.sockaddr("admin.listen", &raw.admin.listen);
    let token = match &raw.admin.token {
        Some(t) if t.len() < MIN_ADMIN_TOKEN_LEN => {
            c.err(
                "admin.token",
                format!(
                    "is {} characters; use at least {MIN_ADMIN_TOKEN_LEN}",
                    t.len()
                ),
            );
            None
        }
        Some(t) if !t.bytes().all(|b| b.is_ascii_graphic()) => {
            c.err(
                "admin.token",
                "may only hold printable ASCII without spaces",
            );
            None
        }
        Some(t) => Some(Some(Secret::new(t.clone()))),
        None => Some(None),
    };
    if let (Some(l), Some(None)) = (listen, &token) {
        if !l.ip().is_loopback() {
            c.err(
                "admin.listen",
                format!("{l} is not a loopback address: set admin.token"),
            );
        }
    }
    Some(AdminConfig {
        listen: listen?,
        token: token?,
    })
}

fn cdr(raw: &RawConfig, c: &mut Checker<'_>) -> Option<CdrConfig> {
    if raw.cdr.path.is_empty() {
        c.err("cdr.path", "the file name is empty");
    }
    let interval = c.duration(
        "cdr.fsync_interval",
        &raw.cdr.fsync_interval,
        Duration::from_millis(1),
    );
    let (lo, hi) = CDR_QUEUE_BOUNDS;
    let queue_ok = (lo..=hi).contains(&raw.cdr.queue_capacity);
    if !queue_ok {
        c.err(
            "cdr.queue_capacity",
            format!("must be between {lo} and {hi} entries"),
        );
    }
    (!raw.cdr.path.is_empty() && queue_ok).then_some(())?;
    Some(CdrConfig {
        path: c.resolve_path(&raw.cdr.path),
        fsync: raw.cdr.fsync,
        fsync_interval: interval?,
        queue_capacity: usize::try_from(raw.cdr.queue_capacity).ok()?,
    })
}

fn policy(raw: &RawConfig, c: &mut Checker<'_>) -> Option<PolicyConfig> {
    let p = &raw.policy;
    if p.rate_limit == 0 {
        c.err("policy.rate_limit", "must be at least 1 request per second");
    }
    let ban = c.duration("policy.ban_duration", &p.ban_duration, Duration::ZERO);
    if p.unknown_source_budget == 0 {
        c.err("policy.unknown_source_budget", "must be at least 1 request");
    }
    if p.max_bans == 0 {
        c.err("policy.max_bans", "must be at least 1");
    }
    let window = c.duration(
        "policy.unknown_source_window",
        &p.unknown_source_window,
        Duration::from_secs(1),
    );
    (p.rate_limit > 0 && p.unknown_source_budget > 0 && p.max_bans > 0).then_some(())?;
    Some(PolicyConfig {
        unknown_source: p.unknown_source,
        rate_limit: p.rate_limit,
        ban_duration: ban?,
        unknown_source_budget: p.unknown_source_budget,
        unknown_source_window: window?,
        max_bans: p.max_bans,
    })
}

fn capture(raw: &RawConfig, c: &mut Checker<'_>) -> Option<Option<CaptureConfig>> {
    let cap = &raw.capture;
    let Some(hep) = &cap.hep else {
        return Some(None);
    };
    let hep = c.sockaddr("capture.hep", hep)?;
    if hep.port() == 0 {
        c.err("capture.hep", "needs the collector's port (9060 is usual)");
        return None;
    }
    Some(Some(CaptureConfig {
        hep,
        capture_id: cap.capture_id,
        password: cap.password.clone().map(Secret::new),
    }))
}

/// Bounds of `ng.max_message_size`: an SDP offer fits in the lower one; the upper one is
/// the largest UDP payload.
pub const NG_MESSAGE_SIZE_BOUNDS: (u32, u32) = (1024, 65_507);

fn ng(raw: &RawConfig, c: &mut Checker<'_>) -> Option<Option<NgConfig>> {
    let Some(ng) = &raw.ng else {
        return Some(None);
    };
    let listen = c.sockaddr("ng.listen", &ng.listen);
    let timeout = c.duration("ng.timeout", &ng.timeout, Duration::from_secs(1));
    let silent = c.duration(
        "ng.silent_timeout",
        &ng.silent_timeout,
        Duration::from_secs(1),
    );
    let mut ok = true;
    if ng.max_sessions == 0 {
        c.err("ng.max_sessions", "must be at least 1");
        ok = false;
    }
    let (lo, hi) = NG_MESSAGE_SIZE_BOUNDS;
    if !(lo..=hi).contains(&ng.max_message_size) {
        c.err(
            "ng.max_message_size",
            format!("must be between {lo} and {hi} bytes"),
        );
        ok = false;
    }
    for (i, name) in ng.interfaces.iter().enumerate() {
        if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_graphic()) {
            c.err(
                format!("ng.interfaces[{i}]"),
                format!("{name:?} must be 1 to 64 printable characters without spaces"),
            );
            ok = false;
        }
    }
    let listen = listen?;
    if listen.port() == 0 {
        c.err("ng.listen", "needs a port (rtpengine uses 22222)");
        return None;
    }
    ok.then_some(())?;
    Some(Some(NgConfig {
        listen,
        max_sessions: ng.max_sessions,
        timeout: timeout?,
        silent_timeout: silent?,
        max_message_size: ng.max_message_size,
        interfaces: ng.interfaces.clone(),
    }))
}

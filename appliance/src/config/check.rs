//! Semantic checks: raw serde structs → checked [`Config`]. Every problem is collected (the
//! checker never stops at the first one) with its TOML path and position.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::checker::Checker;
use super::model::{
    AdminConfig, CaptureConfig, CdrConfig, Config, LogConfig, NgConfig, NodeConfig, PolicyConfig,
    Secret, SipConfig,
};
use super::raw::RawConfig;

/// Shortest accepted admin bearer token.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;
/// Bounds of `cdr.queue_capacity`.
pub const CDR_QUEUE_BOUNDS: (u32, u32) = (16, 1 << 20);
/// Bounds of `log.buffer_lines`.
pub const LOG_BUFFER_BOUNDS: (u32, u32) = (64, 1 << 20);

/// Converts and checks the whole file. Returns the config only when no diagnostic was raised.
pub(super) fn check(raw: &RawConfig, c: &mut Checker<'_>) -> Option<Config> {
    let node = node(raw, c);
    let sip = super::check_sip::sip(&raw.sip, raw.ng.is_some(), c);
    let media = super::check_media::media(&raw.media, c);
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

/// True when binding both addresses would collide: same address, or same port where one
/// side is the wildcard of the same family.
pub(super) fn sockets_overlap(a: SocketAddr, b: SocketAddr) -> bool {
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

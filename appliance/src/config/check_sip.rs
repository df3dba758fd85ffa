//! Semantic checks of `[sip]`: listeners (transport, TLS files, client authentication),
//! `[sip.limits]` and the session timer.

use std::time::Duration;

use super::check::sockets_overlap;
use super::checker::Checker;
use super::host::{check_key_matches, PemKind};
use super::model::{
    ClientAuth, ListenerConfig, SessionTimerConfig, SipConfig, SipLimits, TlsFiles,
};
use super::raw::{RawListener, RawSip, Transport};

/// RFC 4028 §4: Min-SE MUST NOT be below 90 seconds.
pub const RFC4028_MIN_SE: Duration = Duration::from_secs(90);
/// Bounds of `sip.limits.max_message_size`.
pub const MESSAGE_SIZE_BOUNDS: (u32, u32) = (1024, 1 << 20);

/// `has_ng`: the file has an `[ng]` section, so it may describe a media node without SIP.
pub(super) fn sip(raw: &RawSip, has_ng: bool, c: &mut Checker<'_>) -> Option<SipConfig> {
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

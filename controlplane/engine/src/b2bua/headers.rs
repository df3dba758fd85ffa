//! Header policy of the B2BUA: what crosses from one leg to the other.
//!
//! Topology hiding (the SBC's reason to exist): Via, Route, Record-Route,
//! Contact, Call-ID, tags, CSeq and Max-Forwards are always per leg. From/To
//! keep only the display name and the (translated) user part, with our host.
//! A short whitelist of end-to-end headers is copied here; `User-Agent`/`Server`
//! are replaced by ours. What else crosses — asserted identities (RFC 3325
//! trust domain), Diversion and History-Info (translated, our host),
//! User-to-User, and each trunk's keep/drop/add/rewrite rules — is
//! `header_rules`; anything neither names (`X-` headers among them) is dropped.

use std::net::SocketAddr;

use crate::transaction::message::addr_uri;
use crate::transaction::SipMsg;

/// Headers copied on requests relayed to the other leg.
const REQUEST_WHITELIST: &[&str] = &[
    "Content-Type",
    "Content-Disposition",
    "Allow",
    "Supported",
    "Require",
    "Accept",
    "Session-Expires",
    "Min-SE",
    "Privacy",
    "Event",
    "Subscription-State",
    "Info-Package",
    "Recv-Info",
    "Reason",
    "Priority",
];

/// Headers copied on responses relayed to the other leg.
const RESPONSE_WHITELIST: &[&str] = &[
    "Content-Type",
    "Content-Disposition",
    "Allow",
    "Supported",
    "Require",
    "Accept",
    "Session-Expires",
    "Min-SE",
    "Retry-After",
    "Unsupported",
    "Warning",
    "Reason",
];

/// Option tags we do not pass through (we do not implement them end to end).
const STRIPPED_OPTIONS: &[&str] = &["100rel", "replaces", "gruu", "path", "outbound"];

/// Copies the whitelisted headers of `src` into `dst` (requests or responses).
/// `with_body` false drops Content-Type/Disposition.
pub(crate) fn copy_safe(src: &SipMsg, dst: &mut SipMsg, with_body: bool) {
    let list = if src.method().is_some() {
        REQUEST_WHITELIST
    } else {
        RESPONSE_WHITELIST
    };
    for name in list {
        let is_body = name.starts_with("Content-");
        if is_body && !with_body {
            continue;
        }
        if matches!(*name, "Supported" | "Require") {
            let tokens: Vec<&str> = src
                .header_values(name)
                .filter(|t| {
                    !STRIPPED_OPTIONS
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(t.trim()))
                })
                .collect();
            if !tokens.is_empty() {
                dst.push_header(name, tokens.join(", "));
            }
            continue;
        }
        if *name == "Session-Expires" || *name == "Min-SE" {
            // Session timers are negotiated per leg (see timers.rs).
            continue;
        }
        let values: Vec<String> = src.header_values(name).map(str::to_owned).collect();
        for v in values {
            dst.push_header(name, v);
        }
    }
}

/// Option tags of `Require` we cannot honour (RFC 3261 §8.2.2.3 → 420).
pub(crate) fn unsupported_required(req: &SipMsg) -> Vec<String> {
    const OURS: &[&str] = &["timer", "100rel", "replaces"];
    req.header_values("Require")
        .map(str::trim)
        .filter(|t| !OURS.iter().any(|o| o.eq_ignore_ascii_case(t)))
        .map(str::to_owned)
        .collect()
}

/// The user part of a SIP/SIPS/tel URI (`sip:+4930123@h;p` → `+4930123`).
#[must_use]
pub(crate) fn user_of(uri: &str) -> &str {
    let uri = addr_uri(uri);
    let lower = uri
        .get(..5)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let rest = if lower.starts_with("sips:") {
        uri.get(5..).unwrap_or("")
    } else if lower.starts_with("sip:") || lower.starts_with("tel:") {
        uri.get(4..).unwrap_or("")
    } else {
        uri
    };
    let rest = match rest.split_once('@') {
        Some((u, _)) => u,
        None if lower.starts_with("tel:") => rest,
        None => "",
    };
    rest.split([';', '?']).next().unwrap_or("")
}

/// The display name of a name-addr (quoted or token form), when present.
#[must_use]
pub(crate) fn display_of(value: &str) -> Option<&str> {
    let (head, _) = value.split_once('<')?;
    let d = head.trim();
    (!d.is_empty()).then_some(d)
}

/// `["Display" ]<sip:user@host>` with only characters safe in a user part.
#[must_use]
pub(crate) fn name_addr(display: Option<&str>, user: &str, host: &str) -> String {
    let user: String = user
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/%#".contains(*c))
        .collect();
    let uri = if user.is_empty() {
        format!("sip:{host}")
    } else {
        format!("sip:{user}@{host}")
    };
    match display {
        Some(d) => format!("{d} <{uri}>"),
        None => format!("<{uri}>"),
    }
}

/// `host:port` of a SIP URI when the host is an IP literal (3xx Contact targets).
#[must_use]
pub(crate) fn socket_of(uri: &str, default_port: u16) -> Option<SocketAddr> {
    let uri = addr_uri(uri);
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))?;
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let hostport = hostport.split([';', '?']).next()?;
    if let Ok(sa) = hostport.parse::<SocketAddr>() {
        return Some(sa);
    }
    let ip = hostport.trim_start_matches('[').trim_end_matches(']');
    ip.parse().ok().map(|ip| SocketAddr::new(ip, default_port))
}

/// Whether the message body is SDP.
#[must_use]
pub(crate) fn has_sdp(msg: &SipMsg) -> bool {
    !msg.body().is_empty()
        && msg
            .header("Content-Type")
            .is_some_and(|c| c.trim().to_ascii_lowercase().starts_with("application/sdp"))
}

/// First integer of Retry-After (RFC 3261 §20.33), seconds.
#[must_use]
pub(crate) fn retry_after(msg: &SipMsg) -> Option<u64> {
    let v = msg.header("Retry-After")?;
    let digits: String = v.trim().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_hosts() {
        assert_eq!(user_of("sip:+4930@10.0.0.1;user=phone"), "+4930");
        assert_eq!(user_of("<sips:bob@example.com>"), "bob");
        assert_eq!(user_of("tel:+123;phone-context=x"), "+123");
        assert_eq!(user_of("sip:example.com"), "");
        assert_eq!(display_of("\"Alice\" <sip:a@b>"), Some("\"Alice\""));
        assert_eq!(display_of("<sip:a@b>"), None);
        assert_eq!(name_addr(None, "12<>3", "h"), "<sip:123@h>");
        assert_eq!(
            socket_of("<sip:x@192.0.2.9:5070;transport=udp>", 5060),
            Some("192.0.2.9:5070".parse().unwrap())
        );
        assert_eq!(
            socket_of("sip:192.0.2.9", 5060),
            Some("192.0.2.9:5060".parse().unwrap())
        );
        assert_eq!(socket_of("sip:host.example", 5060), None);
    }
}

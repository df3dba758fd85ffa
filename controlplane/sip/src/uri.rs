//! SIP, SIPS (RFC 3261 §19.1, §25.1) and TEL (RFC 3966) URIs over borrowed text,
//! with IPv6 references validated as in RFC 5118 and `%HH` escapes checked.
//!
//! The parsed view keeps the original text ([`Uri::as_str`]); serialising a parsed
//! URI writes that text back unchanged.

use std::borrow::Cow;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::error::UriError;
use crate::grammar::find_byte;

/// Any URI that may appear in a Request-URI or a name-addr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uri<'a> {
    /// `sip:` or `sips:`.
    Sip(SipUri<'a>),
    /// `tel:`.
    Tel(TelUri<'a>),
    /// Any other `absoluteURI` (RFC 3261 §25.1), kept opaque.
    Other {
        /// Scheme as written.
        scheme: &'a str,
        /// The whole URI.
        raw: &'a str,
    },
}

impl<'a> Uri<'a> {
    /// Parses a complete URI (no surrounding white space or brackets).
    pub fn parse(s: &'a str) -> Result<Self, UriError> {
        let colon = find_byte(s, b':').ok_or(UriError::MissingScheme)?;
        let scheme = &s[..colon];
        let rest = &s[colon + 1..];
        let mut sb = scheme.bytes();
        match sb.next() {
            Some(b) if b.is_ascii_alphabetic() => {}
            _ => return Err(UriError::MissingScheme),
        }
        if !sb.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')) {
            return Err(UriError::MissingScheme);
        }
        if scheme.eq_ignore_ascii_case("sip") {
            SipUri::parse_rest(s, false, rest).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("sips") {
            SipUri::parse_rest(s, true, rest).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            TelUri::parse_rest(s, rest).map(Uri::Tel)
        } else {
            if rest.is_empty()
                || !rest
                    .bytes()
                    .all(|b| b > b' ' && b != 0x7f && !matches!(b, b'<' | b'>' | b'"'))
            {
                return Err(UriError::BadChar);
            }
            Ok(Uri::Other { scheme, raw: s })
        }
    }

    /// The URI text as received.
    pub fn as_str(&self) -> &'a str {
        match self {
            Uri::Sip(u) => u.raw,
            Uri::Tel(t) => t.raw,
            Uri::Other { raw, .. } => raw,
        }
    }

    /// The SIP/SIPS view, if it is one.
    pub fn as_sip(&self) -> Option<&SipUri<'a>> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The host of a SIP URI or Via sent-by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    /// A host name as written.
    Domain(&'a str),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 reference (written in brackets, RFC 5118).
    V6(Ipv6Addr),
}

impl<'a> Host<'a> {
    /// Parses `hostname / IPv4address / IPv6reference`.
    pub fn parse(s: &'a str) -> Result<Self, UriError> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(UriError::BadHost)?;
            // RFC 5118 §4.10: `2001:db8:::192.0.2.1` is not an IPv6 address even
            // though RFC 3261's ABNF admits it; std's parser follows RFC 4291.
            return inner.parse().map(Host::V6).map_err(|_| UriError::BadHost);
        }
        if s.is_empty() {
            return Err(UriError::BadHost);
        }
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return s.parse().map(Host::V4).map_err(|_| UriError::BadHost);
        }
        let ok = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !ok || s.starts_with('.') || s.starts_with('-') {
            return Err(UriError::BadHost);
        }
        Ok(Host::Domain(s))
    }

    /// Parses `host [":" port]`.
    pub fn parse_hostport(s: &'a str) -> Result<(Self, Option<u16>), UriError> {
        let (host, port) = if s.starts_with('[') {
            let close = find_byte(s, b']').ok_or(UriError::BadHost)?;
            let (h, p) = s.split_at(close + 1);
            if p.is_empty() {
                (h, None)
            } else {
                (h, Some(p.strip_prefix(':').ok_or(UriError::BadPort)?))
            }
        } else {
            match find_byte(s, b':') {
                Some(c) => (&s[..c], Some(&s[c + 1..])),
                None => (s, None),
            }
        };
        let port = match port {
            Some(p) => Some(parse_port(p)?),
            None => None,
        };
        Ok((Host::parse(host)?, port))
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// `port = 1*DIGIT`, at most 5 digits and within u16.
pub(crate) fn parse_port(p: &str) -> Result<u16, UriError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UriError::BadPort);
    }
    p.parse().map_err(|_| UriError::BadPort)
}

/// A `sip:`/`sips:` URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipUri<'a> {
    raw: &'a str,
    /// `sips:`.
    pub secure: bool,
    /// User part, still %-escaped.
    pub user: Option<&'a str>,
    /// Password, still %-escaped.
    pub password: Option<&'a str>,
    /// Host.
    pub host: Host<'a>,
    /// Host as written (brackets kept for IPv6).
    pub host_raw: &'a str,
    /// Port.
    pub port: Option<u16>,
    /// `uri-parameters`.
    pub params: UriParams<'a>,
    /// `headers` after `?`, still escaped.
    pub headers: Option<&'a str>,
}

/// `unreserved = alphanum / mark` (RFC 3261 §25.1) as a lookup table.
static UNRESERVED: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            );
        c += 1;
    }
    t
};

fn is_unreserved(b: u8) -> bool {
    UNRESERVED[usize::from(b)]
}

/// Checks that every byte is unreserved, in `extra`, or part of a valid `%HH`.
fn check_escaped(s: &str, extra: &[u8]) -> Result<(), UriError> {
    let b = s.as_bytes();
    let mut k = 0;
    while let Some(&c) = b.get(k) {
        if c == b'%' {
            match (b.get(k + 1), b.get(k + 2)) {
                (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => k += 3,
                _ => return Err(UriError::BadEscape),
            }
        } else if is_unreserved(c) || extra.contains(&c) {
            k += 1;
        } else {
            return Err(UriError::BadChar);
        }
    }
    Ok(())
}

impl<'a> SipUri<'a> {
    /// Parses a SIP or SIPS URI.
    pub fn parse(s: &'a str) -> Result<Self, UriError> {
        match Uri::parse(s)? {
            Uri::Sip(u) => Ok(u),
            _ => Err(UriError::NotSip),
        }
    }

    fn parse_rest(raw: &'a str, secure: bool, s: &'a str) -> Result<Self, UriError> {
        let (userinfo, rest) = match find_byte(s, b'@') {
            Some(a) => (Some(&s[..a]), &s[a + 1..]),
            None => (None, s),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                let (u, p) = match find_byte(ui, b':') {
                    Some(c) => (&ui[..c], Some(&ui[c + 1..])),
                    None => (ui, None),
                };
                if u.is_empty() {
                    return Err(UriError::BadUser);
                }
                check_escaped(u, b"&=+$,;?/").map_err(|_| UriError::BadUser)?;
                if let Some(p) = p {
                    check_escaped(p, b"&=+$,").map_err(|_| UriError::BadUser)?;
                }
                (Some(u), p)
            }
        };
        let (before_headers, headers) = match find_byte(rest, b'?') {
            Some(q) => (&rest[..q], Some(&rest[q + 1..])),
            None => (rest, None),
        };
        let (hostport, params) = match find_byte(before_headers, b';') {
            Some(c) => (&before_headers[..c], &before_headers[c..]),
            None => (before_headers, ""),
        };
        let (host, port) = Host::parse_hostport(hostport)?;
        let host_raw = match hostport.rfind(':') {
            Some(c) if port.is_some() => &hostport[..c],
            _ => hostport,
        };
        let params = UriParams::parse(params)?;
        if let Some(h) = headers {
            for hv in h.split('&') {
                let (n, v) = hv.split_once('=').ok_or(UriError::BadHeaders)?;
                if n.is_empty() {
                    return Err(UriError::BadHeaders);
                }
                check_escaped(n, b"[]/?:+$").map_err(|_| UriError::BadHeaders)?;
                check_escaped(v, b"[]/?:+$").map_err(|_| UriError::BadHeaders)?;
            }
        }
        Ok(SipUri {
            raw,
            secure,
            user,
            password,
            host,
            host_raw,
            port,
            params,
            headers,
        })
    }

    /// The URI text as received.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// The user part with escapes decoded (may contain any byte, even NUL).
    pub fn user_decoded(&self) -> Option<Cow<'a, [u8]>> {
        self.user.map(percent_decode)
    }

    /// `transport` parameter.
    pub fn transport(&self) -> Option<&'a str> {
        self.params.value("transport")
    }

    /// `lr` flag (RFC 3261 §19.1.1, loose routing).
    pub fn lr(&self) -> bool {
        self.params.get("lr").is_some()
    }

    /// `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.value("maddr")
    }

    /// `user` parameter (`phone`, `ip`).
    pub fn user_param(&self) -> Option<&'a str> {
        self.params.value("user")
    }

    /// The port to use when none is given: 5061 for SIPS, else 5060 (RFC 3263 §4.2).
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(if self.secure { 5061 } else { 5060 })
    }
}

impl fmt::Display for SipUri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

/// `uri-parameters` of a SIP or TEL URI: `;name[=value]`, no LWS, escapes kept.
///
/// Invariant: `raw` was checked by `UriParams::parse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UriParams<'a> {
    raw: &'a str,
}

impl<'a> UriParams<'a> {
    fn parse(raw: &'a str) -> Result<Self, UriError> {
        if raw.is_empty() {
            return Ok(Self { raw });
        }
        let body = raw.strip_prefix(';').ok_or(UriError::BadParam)?;
        for p in body.split(';') {
            let (n, v) = match p.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (p, None),
            };
            if n.is_empty() || v == Some("") {
                return Err(UriError::BadParam);
            }
            check_escaped(n, b"[]/:&+$").map_err(|_| UriError::BadParam)?;
            if let Some(v) = v {
                check_escaped(v, b"[]/:&+$").map_err(|_| UriError::BadParam)?;
            }
        }
        Ok(Self { raw })
    }

    /// Raw text starting at `;` (empty when none).
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// Iterates `(name, value)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> {
        self.raw
            .split(';')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (p, None),
            })
    }

    /// Case-insensitive lookup: `Some(None)` for a flag.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The value of a parameter that has one.
    pub fn value(&self, name: &str) -> Option<&'a str> {
        self.get(name).flatten()
    }
}

/// A `tel:` URI (RFC 3966).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelUri<'a> {
    raw: &'a str,
    /// The number as written (`+1-201-555-0123` or a local number).
    pub number: &'a str,
    /// Parameters (`phone-context`, `ext`, `isub`, ...).
    pub params: UriParams<'a>,
}

impl<'a> TelUri<'a> {
    fn parse_rest(raw: &'a str, s: &'a str) -> Result<Self, UriError> {
        let (number, params) = match find_byte(s, b';') {
            Some(c) => (&s[..c], &s[c..]),
            None => (s, ""),
        };
        let visual = |b: u8| matches!(b, b'-' | b'.' | b'(' | b')');
        let ok = if let Some(g) = number.strip_prefix('+') {
            g.bytes().any(|b| b.is_ascii_digit())
                && g.bytes().all(|b| b.is_ascii_digit() || visual(b))
        } else {
            number
                .bytes()
                .any(|b| b.is_ascii_hexdigit() || b == b'*' || b == b'#')
                && number
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b'*' || b == b'#' || visual(b))
        };
        if !ok {
            return Err(UriError::BadTelNumber);
        }
        Ok(TelUri {
            raw,
            number,
            params: UriParams::parse(params)?,
        })
    }

    /// The URI text as received.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// Whether the number is global (`+` E.164).
    pub fn is_global(&self) -> bool {
        self.number.starts_with('+')
    }

    /// The digits only (visual separators removed), `+` kept for global numbers.
    pub fn digits(&self) -> String {
        self.number
            .chars()
            .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
            .collect()
    }
}

/// Decodes `%HH` escapes; invalid escapes are kept literally.
pub fn percent_decode(s: &str) -> Cow<'_, [u8]> {
    if !s.contains('%') {
        return Cow::Borrowed(s.as_bytes());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut k = 0;
    while let Some(&c) = b.get(k) {
        if c == b'%' {
            if let (Some(h), Some(l)) = (
                b.get(k + 1).and_then(|x| (*x as char).to_digit(16)),
                b.get(k + 2).and_then(|x| (*x as char).to_digit(16)),
            ) {
                // Two hex digits: the value is below 256.
                out.push((h * 16 + l) as u8);
                k += 3;
                continue;
            }
        }
        out.push(c);
        k += 1;
    }
    Cow::Owned(out)
}

/// Appends `bytes` to `out` escaping everything that may not appear literally in a
/// SIP URI user part (RFC 3261 §25.1 `user`).
pub fn escape_user(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if is_unreserved(b) || b"&=+$,;?/".contains(&b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri<'_> {
        SipUri::parse(s).unwrap()
    }

    #[test]
    fn basic_sip_uri() {
        let u = sip("sip:alice:pw@example.com:5070;transport=tcp;lr?subject=hi&x=");
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("pw"));
        assert_eq!(u.host, Host::Domain("example.com"));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.transport(), Some("tcp"));
        assert!(u.lr());
        assert_eq!(u.headers, Some("subject=hi&x="));
        assert!(!u.secure);
        assert!(sip("SIPS:example.com").secure);
        assert_eq!(sip("sips:h").port_or_default(), 5061);
    }

    #[test]
    fn escapes_and_odd_users() {
        let u = sip("sip:sips%3Auser%40example.com@example.net");
        assert_eq!(&*u.user_decoded().unwrap(), b"sips:user@example.com");
        let n = sip("sip:null-%00-null@example.com");
        assert_eq!(&*n.user_decoded().unwrap(), b"null-\0-null");
        let s = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(s.user, Some("user;par=u%40example.net"));
        assert!(SipUri::parse("sip:%zz@example.com").is_err());
        let w = sip("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com");
        assert_eq!(
            w.password,
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        let mut out = String::new();
        escape_user(b"a b@c", &mut out);
        assert_eq!(out, "a%20b%40c");
    }

    #[test]
    fn ipv6_references_rfc5118() {
        let u = sip("sip:[2001:db8::10]:5070");
        assert_eq!(u.host, Host::V6("2001:db8::10".parse().unwrap()));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.host_raw, "[2001:db8::10]");
        assert_eq!(sip("sip:[2001:db8::10:5070]").port, None);
        assert!(SipUri::parse("sip:2001:db8::10").is_err());
        assert!(SipUri::parse("sip:user@[2001:db8:::192.0.2.1]").is_err());
        assert!(SipUri::parse("sip:user@[2001:db8::192.0.2.1]").is_ok());
        assert_eq!(sip("sip:[::1]").host.to_string(), "[::1]");
    }

    #[test]
    fn hosts_and_ports() {
        assert_eq!(
            sip("sip:192.0.2.1:5060").host,
            Host::V4(Ipv4Addr::new(192, 0, 2, 1))
        );
        assert!(SipUri::parse("sip:example.com:").is_err());
        assert!(SipUri::parse("sip:example.com:70000").is_err());
        assert!(SipUri::parse("sip:exa mple.com").is_err());
        assert!(SipUri::parse("sip:").is_err());
        assert!(SipUri::parse("sip:a@").is_err());
        assert!(SipUri::parse("sip:h;=x").is_err());
    }

    #[test]
    fn tel_and_other_schemes() {
        match Uri::parse("tel:+1-201-555-0123;ext=4").unwrap() {
            Uri::Tel(t) => {
                assert!(t.is_global());
                assert_eq!(t.digits(), "+12015550123");
                assert_eq!(t.params.value("ext"), Some("4"));
            }
            other => panic!("{other:?}"),
        }
        assert!(Uri::parse("tel:+").is_err());
        assert!(matches!(
            Uri::parse("soap.beep://192.0.2.103:3002"),
            Ok(Uri::Other {
                scheme: "soap.beep",
                ..
            })
        ));
        assert!(Uri::parse("<sip:a@b>").is_err());
        assert!(Uri::parse("nocolon").is_err());
    }
}

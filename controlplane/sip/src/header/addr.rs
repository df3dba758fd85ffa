//! `name-addr / addr-spec` headers: From, To (§20.20, §20.39), Contact (§20.10),
//! Route/Record-Route (§20.34, §20.30), Refer-To (RFC 3515), P-Asserted-Identity
//! (RFC 3325).

use crate::error::ParseError;
use crate::grammar::{is_lws, is_token_char, quoted_string, sws, trim_lws, unquote};
use crate::header::HeaderName;
use crate::params::{params, Params};
use crate::uri::Uri;
use std::borrow::Cow;

/// `( name-addr / addr-spec ) *( SEMI param )`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name: the inside of the quotes (escapes kept) or the token words.
    pub display_name: Option<&'a str>,
    /// Whether the display name was a quoted-string.
    pub display_quoted: bool,
    /// The URI.
    pub uri: Uri<'a>,
    /// Whether the URI was in `<>` (name-addr form).
    pub bracketed: bool,
    /// Header parameters after the address (`tag`, `expires`, ...).
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// Parses one element. `kind` only labels the error.
    ///
    /// RFC 3261 §20.10: an addr-spec (no `<>`) ends at the first `;` (the rest are
    /// header parameters) and may not contain `,` or `?` (RFC 4475 §3.1.2.13).
    pub fn parse(s: &'a str, kind: HeaderName) -> Result<Self, ParseError> {
        Self::parse_inner(s).ok_or(ParseError::BadHeader(kind))
    }

    fn parse_inner(s: &'a str) -> Option<Self> {
        let s = trim_lws(s);
        let (display_name, display_quoted, rest) = if s.starts_with('"') {
            let (r, dn) = quoted_string(s).ok()?;
            let (r, _) = sws(r).ok()?;
            if !r.starts_with('<') {
                return None;
            }
            (Some(dn), true, r)
        } else if let Some(lt) = crate::grammar::find_byte(s, b'<') {
            let dn = trim_lws(&s[..lt]);
            // display-name = *(token LWS): only token characters and white space.
            if !dn.chars().all(|c| is_token_char(c) || is_lws(c)) {
                return None;
            }
            (if dn.is_empty() { None } else { Some(dn) }, false, &s[lt..])
        } else {
            (None, false, s)
        };
        let (uri, bracketed, rest) = if let Some(inner) = rest.strip_prefix('<') {
            let gt = crate::grammar::find_byte(inner, b'>')?;
            let u = &inner[..gt];
            // RFC 4475 §3.1.2.14: no white space inside the brackets.
            if u.bytes().any(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n')) {
                return None;
            }
            (Uri::parse(u).ok()?, true, &inner[gt + 1..])
        } else {
            let end = rest
                .find(|c: char| c == ';' || is_lws(c))
                .unwrap_or(rest.len());
            let u = &rest[..end];
            if u.contains([',', '?']) {
                return None;
            }
            (Uri::parse(u).ok()?, false, &rest[end..])
        };
        let (rest, params) = params(rest).ok()?;
        let (rest, _) = sws(rest).ok()?;
        if !rest.is_empty() {
            return None;
        }
        Some(NameAddr {
            display_name,
            display_quoted,
            uri,
            bracketed,
            params,
        })
    }

    /// `tag` parameter (RFC 3261 §19.3).
    pub fn tag(&self) -> Option<&'a str> {
        self.params.value("tag")
    }

    /// The display name without quotes and with quoted-pairs resolved.
    pub fn display(&self) -> Option<Cow<'a, str>> {
        self.display_name.map(|d| {
            if self.display_quoted {
                unquote(d)
            } else {
                Cow::Borrowed(d)
            }
        })
    }
}

/// One Contact element: `*` or an address (RFC 3261 §20.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact<'a> {
    /// `Contact: *` (REGISTER removal of all bindings, §10.2.2).
    Star,
    /// An address with `expires` / `q` checked.
    Addr(NameAddr<'a>),
}

impl<'a> Contact<'a> {
    /// Parses one element; `expires` must fit in u32 and `q` be a qvalue.
    pub fn parse(s: &'a str) -> Result<Self, ParseError> {
        if trim_lws(s) == "*" {
            return Ok(Contact::Star);
        }
        let bad = ParseError::BadHeader(HeaderName::Contact);
        let na = NameAddr::parse(s, HeaderName::Contact)?;
        if let Some(e) = na.params.get("expires") {
            e.and_then(crate::grammar::parse_u32).ok_or(bad.clone())?;
        }
        if let Some(q) = na.params.get("q") {
            q.and_then(parse_qvalue).ok_or(bad)?;
        }
        Ok(Contact::Addr(na))
    }

    /// The address, unless `*`.
    pub fn addr(&self) -> Option<&NameAddr<'a>> {
        match self {
            Contact::Star => None,
            Contact::Addr(a) => Some(a),
        }
    }

    /// `expires` parameter in seconds.
    pub fn expires(&self) -> Option<u32> {
        self.addr()?
            .params
            .value("expires")
            .and_then(crate::grammar::parse_u32)
    }

    /// `q` parameter in thousandths (`q=0.5` → 500).
    pub fn q(&self) -> Option<u16> {
        self.addr()?.params.value("q").and_then(parse_qvalue)
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` in thousandths.
pub(crate) fn parse_qvalue(s: &str) -> Option<u16> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut f: u16 = 0;
    for k in 0..3 {
        f = f * 10 + frac.as_bytes().get(k).map_or(0, |b| u16::from(b - b'0'));
    }
    match int {
        "0" => Some(f),
        "1" if f == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn na(s: &str) -> NameAddr<'_> {
        NameAddr::parse(s, HeaderName::From).unwrap()
    }

    #[test]
    fn from_to_forms() {
        let a = na(
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8",
        );
        assert_eq!(a.display().unwrap(), "J Rosenberg \\\"");
        assert_eq!(a.tag(), Some("98asjd8"));
        assert!(a.bracketed);
        let b = na("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n");
        assert_eq!(b.uri.as_str(), "sip:vivekg@chair-dnrc.example.com");
        assert_eq!(b.tag(), Some("1918181833n"));
        assert!(!b.bracketed);
        let c = na("caller<sip:caller@example.com>;tag=323");
        assert_eq!(c.display_name, Some("caller"));
        let d = na("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;tag=x");
        assert_eq!(d.display_name, Some("token1~` token2'+_ token3*%!.-"));
        assert_eq!(na("<tel:+15551234>").uri.as_str(), "tel:+15551234");
        assert_eq!(
            na("A. Bell <sip:a.g.bell@example.com>").display_name,
            Some("A. Bell")
        );
    }

    #[test]
    fn rejects_rfc4475_invalid_forms() {
        for bad in [
            "\"Mr. J. User <sip:j.user@example.com>",
            "\"Watson, Thomas\" < sip:t.watson@example.org >",
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "\"Joe\" <sip:joe@example.org>;;;;",
            "<sip:a@b",
            "",
        ] {
            assert!(NameAddr::parse(bad, HeaderName::To).is_err(), "{bad}");
        }
    }

    #[test]
    fn contact_star_expires_q() {
        assert_eq!(Contact::parse(" * ").unwrap(), Contact::Star);
        let c = Contact::parse("\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33").unwrap();
        assert_eq!(c.q(), Some(330));
        assert_eq!(c.expires(), None);
        let e = Contact::parse("<sip:u@h>;expires=3600;q=1").unwrap();
        assert_eq!(e.expires(), Some(3600));
        assert_eq!(e.q(), Some(1000));
        assert!(Contact::parse("<sip:u@h>;expires=280297596632815").is_err());
        assert!(Contact::parse("<sip:u@h>;q=1.5").is_err());
        let p = Contact::parse("sip:+19725552222@gw1.example.net;unknownparam").unwrap();
        assert_eq!(
            p.addr().unwrap().uri.as_str(),
            "sip:+19725552222@gw1.example.net"
        );
        assert!(p.addr().unwrap().params.contains("unknownparam"));
    }

    #[test]
    fn qvalues() {
        assert_eq!(parse_qvalue("0"), Some(0));
        assert_eq!(parse_qvalue("0.7"), Some(700));
        assert_eq!(parse_qvalue("1.000"), Some(1000));
        assert_eq!(parse_qvalue("1.001"), None);
        assert_eq!(parse_qvalue("0.1234"), None);
    }
}

//! Digest challenges and credentials (RFC 3261 §20.7, §20.27, §20.28, §20.44, §22.4)
//! and `Replaces` (RFC 3891 §6.1).

use crate::error::ParseError;
use crate::grammar::{quoted_string, sep, sws, token, trim_lws, unquote};
use crate::header::HeaderName;
use crate::params::{params, Params};
use nom::bytes::complete::take_while1;
use std::borrow::Cow;

/// `challenge` or `credentials`: `auth-scheme LWS auth-param *(COMMA auth-param)`.
///
/// Invariant: `raw_params` was accepted by the parser, so iteration cannot fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Auth<'a> {
    /// `Digest` or any other scheme token.
    pub scheme: &'a str,
    raw_params: &'a str,
}

/// One `auth-param`; quoted values without quotes (escapes kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthParam<'a> {
    /// Name (`realm`, `nonce`, ...).
    pub name: &'a str,
    /// Value.
    pub value: &'a str,
    /// Whether it was quoted.
    pub quoted: bool,
}

fn auth_param(i: &str) -> nom::IResult<&str, AuthParam<'_>> {
    let (i, name) = token(i)?;
    let (i, _) = sep('=')(i)?;
    if i.starts_with('"') {
        let (i, v) = quoted_string(i)?;
        Ok((
            i,
            AuthParam {
                name,
                value: v,
                quoted: true,
            },
        ))
    } else {
        // token, or the token68-ish values some peers send unquoted (`/`, `=`).
        let (i, v) = take_while1(|c: char| {
            crate::grammar::is_token_char(c) || matches!(c, '/' | '=' | ':')
        })(i)?;
        Ok((
            i,
            AuthParam {
                name,
                value: v,
                quoted: false,
            },
        ))
    }
}

impl<'a> Auth<'a> {
    /// Parses a WWW-/Proxy-Authenticate or (Proxy-)Authorization value.
    pub fn parse(s: &'a str, kind: HeaderName) -> Result<Self, ParseError> {
        let bad = || ParseError::BadHeader(kind);
        let s = trim_lws(s);
        let (i, scheme) = token(s).map_err(|_| bad())?;
        let raw_params = trim_lws(i);
        if raw_params.len() == i.len() && !i.is_empty() {
            return Err(bad()); // no LWS between scheme and params
        }
        let mut rest = raw_params;
        let mut first = true;
        while !rest.is_empty() {
            if !first {
                let (r, _) = sep(',')(rest).map_err(|_| bad())?;
                rest = r;
            }
            let (r, _) = auth_param(rest).map_err(|_| bad())?;
            let (r, _) = sws(r).map_err(|_| bad())?;
            rest = r;
            first = false;
        }
        Ok(Auth { scheme, raw_params })
    }

    /// Whether the scheme is Digest.
    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }

    /// Iterates the parameters in order.
    pub fn params(&self) -> impl Iterator<Item = AuthParam<'a>> {
        let mut rest = self.raw_params;
        let mut first = true;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            if !first {
                rest = sep(',')(rest).ok()?.0;
            }
            first = false;
            let (r, p) = auth_param(rest).ok()?;
            rest = sws(r).ok()?.0;
            Some(p)
        })
    }

    /// A parameter's value (case-insensitive name), quotes removed, escapes resolved.
    pub fn param(&self, name: &str) -> Option<Cow<'a, str>> {
        self.params()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| {
                if p.quoted {
                    unquote(p.value)
                } else {
                    Cow::Borrowed(p.value)
                }
            })
    }

    /// `realm`.
    pub fn realm(&self) -> Option<Cow<'a, str>> {
        self.param("realm")
    }

    /// `nonce`.
    pub fn nonce(&self) -> Option<Cow<'a, str>> {
        self.param("nonce")
    }

    /// `qop` (challenge: a quoted list; credentials: a token).
    pub fn qop(&self) -> Option<Cow<'a, str>> {
        self.param("qop")
    }
}

/// `Replaces: callid *(SEMI replaces-param)` (RFC 3891 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replaces<'a> {
    /// Call-ID of the dialog to replace.
    pub call_id: &'a str,
    /// `to-tag`.
    pub to_tag: &'a str,
    /// `from-tag`.
    pub from_tag: &'a str,
    /// `early-only` flag.
    pub early_only: bool,
    /// All parameters.
    pub params: Params<'a>,
}

impl<'a> Replaces<'a> {
    /// Parses the value; `to-tag` and `from-tag` are mandatory.
    pub fn parse(s: &'a str) -> Result<Self, ParseError> {
        let bad = || ParseError::BadHeader(HeaderName::Replaces);
        let s = trim_lws(s);
        let end = s
            .find(|c: char| c == ';' || crate::grammar::is_lws(c))
            .unwrap_or(s.len());
        let call_id = &s[..end];
        if !valid_call_id(call_id) {
            return Err(bad());
        }
        let (rest, params) = params(&s[end..]).map_err(|_| bad())?;
        if !trim_lws(rest).is_empty() {
            return Err(bad());
        }
        Ok(Replaces {
            call_id,
            to_tag: params.value("to-tag").ok_or_else(bad)?,
            from_tag: params.value("from-tag").ok_or_else(bad)?,
            early_only: params.contains("early-only"),
            params,
        })
    }
}

/// `callid = word [ "@" word ]` (RFC 3261 §25.1).
pub(crate) fn valid_call_id(s: &str) -> bool {
    fn is_word(c: char) -> bool {
        crate::grammar::is_token_char(c)
            || matches!(
                c,
                '(' | ')' | '<' | '>' | ':' | '\\' | '"' | '/' | '[' | ']' | '?' | '{' | '}'
            )
    }
    let (a, b) = match s.split_once('@') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    !a.is_empty()
        && a.chars().all(is_word)
        && b.is_none_or(|b| !b.is_empty() && b.chars().all(is_word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_challenge_and_credentials() {
        let c = Auth::parse(
            "Digest realm=\"atlanta.com\", domain=\"sip:ss1.carrier.com\", qop=\"auth\",\r\n nonce=\"f84f1cec41e6cbe5aea9c8e88d359\", opaque=\"\", stale=FALSE, algorithm=MD5",
            HeaderName::WwwAuthenticate,
        )
        .unwrap();
        assert!(c.is_digest());
        assert_eq!(c.realm().unwrap(), "atlanta.com");
        assert_eq!(c.nonce().unwrap(), "f84f1cec41e6cbe5aea9c8e88d359");
        assert_eq!(c.param("OPAQUE").unwrap(), "");
        assert_eq!(c.param("algorithm").unwrap(), "MD5");
        assert_eq!(c.params().count(), 7);
        let a = Auth::parse(
            "Digest username=\"bob\", realm=\"b.com\", nonce=\"n\", uri=\"sip:b.com\", response=\"0123\", nc=00000001, cnonce=\"x\", qop=auth",
            HeaderName::Authorization,
        )
        .unwrap();
        assert_eq!(a.param("username").unwrap(), "bob");
        assert_eq!(a.qop().unwrap(), "auth");
        assert_eq!(a.param("nc").unwrap(), "00000001");
        let u = Auth::parse(
            "NoOneKnowsThisScheme opaque-data=here",
            HeaderName::Authorization,
        )
        .unwrap();
        assert_eq!(u.scheme, "NoOneKnowsThisScheme");
        assert!(Auth::parse("Digest realm=\"x", HeaderName::Authorization).is_err());
        assert!(Auth::parse("Digest realm=x,,nonce=y", HeaderName::Authorization).is_err());
    }

    #[test]
    fn replaces() {
        let r = Replaces::parse("425928@bobster.example.org;to-tag=7743;from-tag=6472;early-only")
            .unwrap();
        assert_eq!(r.call_id, "425928@bobster.example.org");
        assert_eq!(r.to_tag, "7743");
        assert_eq!(r.from_tag, "6472");
        assert!(r.early_only);
        assert!(Replaces::parse("abc;to-tag=1").is_err());
    }

    #[test]
    fn call_ids() {
        assert!(valid_call_id(
            "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
        ));
        assert!(!valid_call_id("a b"));
        assert!(!valid_call_id("a@"));
    }
}

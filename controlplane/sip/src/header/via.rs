//! `Via` (RFC 3261 §20.42, §18.2.1, RFC 3581 rport, RFC 5118 §4.5).

use std::net::IpAddr;

use nom::bytes::complete::{take_while, take_while1};

use crate::error::ParseError;
use crate::grammar::{is_lws, sep, sws, token};
use crate::header::HeaderName;
use crate::params::{params_checked, Params};
use crate::uri::{parse_port, Host};

/// RFC 3261 §8.1.1.7 magic cookie that marks an RFC 3261 branch.
pub const BRANCH_MAGIC: &str = "z9hG4bK";

/// The `rport` parameter (RFC 3581): requested by the client, or filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RPort {
    /// `;rport` without value: the client asks for it.
    Requested,
    /// `;rport=1234`.
    Port(u16),
}

/// One `via-parm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// Transport (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, or any token).
    pub transport: &'a str,
    /// sent-by host.
    pub host: Host<'a>,
    /// sent-by host as written.
    pub host_raw: &'a str,
    /// sent-by port.
    pub port: Option<u16>,
    /// Parameters (validated: `ttl`, `rport`, `received`, `maddr`).
    pub params: Params<'a>,
    branch: Option<&'a str>,
}

fn bad() -> ParseError {
    ParseError::BadHeader(HeaderName::Via)
}

impl<'a> Via<'a> {
    /// Parses one Via element (`SIP / 2.0 / UDP host:port;params`, LWS allowed
    /// around the slashes and colon, RFC 4475 §3.1.1.1).
    pub fn parse(s: &'a str) -> Result<Self, ParseError> {
        Self::parse_inner(s, true).ok_or_else(bad)
    }

    /// As [`Via::parse`] but accepting any `SIP/x.y` version, so that a `505` can
    /// still be routed back (RFC 3261 §8.2.2).
    pub(crate) fn parse_any_version(s: &'a str) -> Result<Self, ParseError> {
        Self::parse_inner(s, false).ok_or_else(bad)
    }

    fn parse_inner(s: &'a str, strict_version: bool) -> Option<Self> {
        let (i, _) = sws(s).ok()?;
        let (i, name) = token(i).ok()?;
        let (i, _) = sep('/')(i).ok()?;
        let (i, version) = token(i).ok()?;
        let (i, _) = sep('/')(i).ok()?;
        let (i, transport) = token(i).ok()?;
        if !name.eq_ignore_ascii_case("SIP") || (strict_version && version != "2.0") {
            return None;
        }
        let (i, _) = take_while1::<_, _, ()>(is_lws)(i).ok()?;
        let (i, host_raw) = if i.starts_with('[') {
            let end = i.find(']')?;
            (&i[end + 1..], &i[..=end])
        } else {
            take_while::<_, _, ()>(|c: char| {
                c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')
            })(i)
            .ok()?
        };
        let host = Host::parse(host_raw).ok()?;
        let (i, port) = match sep(':')(i) {
            Ok((i, _)) => {
                let (i, p) = take_while1::<_, _, ()>(|c: char| c.is_ascii_digit())(i).ok()?;
                (i, Some(parse_port(p).ok()?))
            }
            Err(_) => (i, None),
        };
        // One pass over the parameters validates the typed ones and remembers
        // the branch (the transaction key, RFC 3261 §17.2.3).
        let mut branch = None;
        let (i, params) = params_checked(i, |p| {
            let n = p.name;
            let val = p.value;
            match n.len() {
                6 if n.eq_ignore_ascii_case("branch") => {
                    branch = val;
                    val.is_some() && !p.quoted
                }
                3 if n.eq_ignore_ascii_case("ttl") => val
                    .and_then(crate::grammar::parse_u32)
                    .is_some_and(|t| t <= 255),
                5 if n.eq_ignore_ascii_case("rport") => val.is_none_or(|x| parse_port(x).is_ok()),
                8 if n.eq_ignore_ascii_case("received") => {
                    val.is_some_and(|x| parse_received(x).is_some())
                }
                5 if n.eq_ignore_ascii_case("maddr") => val.is_some_and(|x| Host::parse(x).is_ok()),
                _ => true,
            }
        })
        .ok()?;
        let (i, _) = sws(i).ok()?;
        if !i.is_empty() {
            return None;
        }
        Some(Via {
            transport,
            host,
            host_raw,
            port,
            params,
            branch,
        })
    }

    /// `branch` parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.branch
    }

    /// Whether the branch starts with the RFC 3261 magic cookie and has more after it.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > BRANCH_MAGIC.len() && b.starts_with(BRANCH_MAGIC))
    }

    /// `received` parameter as written (brackets tolerated, RFC 5118 §4.5).
    pub fn received(&self) -> Option<&'a str> {
        self.params.value("received")
    }

    /// `received` as an address.
    pub fn received_ip(&self) -> Option<IpAddr> {
        self.received().and_then(parse_received)
    }

    /// `rport` (RFC 3581).
    pub fn rport(&self) -> Option<RPort> {
        match self.params.get("rport")? {
            None => Some(RPort::Requested),
            Some(v) => parse_port(v).ok().map(RPort::Port),
        }
    }

    /// `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.value("maddr")
    }

    /// `ttl` parameter.
    pub fn ttl(&self) -> Option<u8> {
        self.params
            .value("ttl")
            .and_then(crate::grammar::parse_u32)
            .and_then(|t| u8::try_from(t).ok())
    }

    /// sent-by port, or the transport default (5061 for TLS, else 5060; RFC 3261 §18.2.2).
    pub fn port_or_default(&self) -> u16 {
        self.port
            .unwrap_or(if self.transport.eq_ignore_ascii_case("TLS") {
                5061
            } else {
                5060
            })
    }
}

fn parse_received(x: &str) -> Option<IpAddr> {
    let x = x
        .strip_prefix('[')
        .and_then(|y| y.strip_suffix(']'))
        .unwrap_or(x);
    x.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn simple_via() {
        let v = Via::parse("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport;received=192.0.2.9")
            .unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, Host::V4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch(), Some("z9hG4bKabc"));
        assert!(v.has_rfc3261_branch());
        assert_eq!(v.rport(), Some(RPort::Requested));
        assert_eq!(
            v.received_ip(),
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)))
        );
        assert_eq!(v.ttl(), None);
    }

    #[test]
    fn tortuous_lws_rfc4475() {
        let v = Via::parse("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert!(!v.has_rfc3261_branch());
        let w = Via::parse(
            "SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8",
        )
        .unwrap();
        assert_eq!(w.host, Host::Domain("spindle.example.com"));
        assert_eq!(w.branch(), Some("z9hG4bK9ikj8"));
        assert!(!Via::parse("SIP/2.0/UDP x;branch=z9hG4bK")
            .unwrap()
            .has_rfc3261_branch());
    }

    #[test]
    fn ipv6_and_params() {
        let v = Via::parse("SIP/2.0/UDP [2001:db8::9:1]:5061;branch=z9hG4bKas;received=[2001:db8::9:255];rport=5066;ttl=16;maddr=224.2.0.1").unwrap();
        assert_eq!(v.port, Some(5061));
        assert!(matches!(v.host, Host::V6(_)));
        assert_eq!(v.received(), Some("[2001:db8::9:255]"));
        assert!(v.received_ip().is_some());
        assert_eq!(v.rport(), Some(RPort::Port(5066)));
        assert_eq!(v.ttl(), Some(16));
        assert_eq!(v.maddr(), Some("224.2.0.1"));
        let n = Via::parse("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas")
            .unwrap();
        assert_eq!(n.received(), Some("2001:db8::9:255"));
        assert_eq!(n.port_or_default(), 5060);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "SIP/2.0/UDP 192.0.2.15;;,;,,",
            "SIP/7.0/UDP c.example.com",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP h;ttl=300",
            "SIP/2.0/UDP h;rport=x",
            "SIP/2.0/UDP h;received=nothost",
            "SIP/2.0/UDP h:99999",
            "SIP/2.0 UDP h",
        ] {
            assert!(Via::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Via::parse("SIP/2.0/TLS h").unwrap().port_or_default(), 5061);
    }
}

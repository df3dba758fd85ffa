//! Session-level value types: `o=`, `c=`, `b=`, `t=`, the `m=` transport protocol, and
//! lines kept verbatim.
//!
//! Each type has a `parse` over the line value (the text after `<type>=`, with trailing
//! whitespace already removed) and a [`Display`](fmt::Display) that writes the value
//! back in RFC 8866 §9 form, so `parse(x.to_string()) == x`.

use std::fmt;
use std::net::IpAddr;

use super::error::{invalid, missing, SdpErrorKind};

/// Parses a decimal field of a known line.
pub(crate) fn num<T: std::str::FromStr>(
    line_type: &'static str,
    field: &'static str,
    text: &str,
) -> Result<T, SdpErrorKind> {
    // `str::parse` accepts a leading '+', the SDP grammar does not.
    if !text.bytes().all(|b| b.is_ascii_digit()) || text.is_empty() {
        return Err(invalid(line_type, field, text));
    }
    text.parse().map_err(|_| invalid(line_type, field, text))
}

/// Takes the next whitespace-separated field or reports it missing.
pub(crate) fn field<'a>(
    it: &mut std::str::SplitAsciiWhitespace<'a>,
    line_type: &'static str,
    name: &'static str,
) -> Result<&'a str, SdpErrorKind> {
    it.next().ok_or_else(|| missing(line_type, name))
}

/// `<addrtype>` of `o=`, `c=` and `a=rtcp` (RFC 8866 §5.7).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AddrType {
    /// `IP4`
    Ip4,
    /// `IP6`
    Ip6,
    /// Any other token, kept as sent.
    Other(String),
}

impl AddrType {
    fn parse(s: &str) -> Self {
        match s {
            "IP4" => Self::Ip4,
            "IP6" => Self::Ip6,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The address type that carries `ip`.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self::Ip4,
            IpAddr::V6(_) => Self::Ip6,
        }
    }
}

impl fmt::Display for AddrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip4 => f.write_str("IP4"),
            Self::Ip6 => f.write_str("IP6"),
            Self::Other(s) => f.write_str(s),
        }
    }
}

/// `<nettype> <addrtype> <address>`: the address triple shared by `o=`, `c=` (RFC 8866
/// §5.7) and `a=rtcp` (RFC 3605).
///
/// `address` is kept as text because the grammar allows an FQDN and, for multicast,
/// `/ttl` and `/count` suffixes. [`Connection::ip`] gives the parsed unicast address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Connection {
    /// `<nettype>`, `IN` for the Internet.
    pub net_type: String,
    /// `<addrtype>`.
    pub addr_type: AddrType,
    /// `<connection-address>` as sent (IP literal, FQDN, or multicast with suffixes).
    pub address: String,
}

impl Connection {
    /// `IN IP4 <ip>` or `IN IP6 <ip>`.
    pub fn new(ip: IpAddr) -> Self {
        Self {
            net_type: "IN".to_owned(),
            addr_type: AddrType::of(ip),
            address: ip.to_string(),
        }
    }

    /// The address as an IP, ignoring a multicast `/ttl[/count]` suffix. `None` for an
    /// FQDN or a literal that does not match the address type.
    pub fn ip(&self) -> Option<IpAddr> {
        let base = self.address.split('/').next().unwrap_or_default();
        let ip: IpAddr = base.parse().ok()?;
        match (&self.addr_type, ip) {
            (AddrType::Ip4, IpAddr::V4(_)) | (AddrType::Ip6, IpAddr::V6(_)) => Some(ip),
            _ => None,
        }
    }

    /// Parses the triple from three fields (`line_type` names the line in errors).
    ///
    /// An IP4/IP6 address must be an IP literal of that family (optionally with
    /// multicast suffixes) or a domain name; anything else is rejected.
    pub(crate) fn from_fields(
        line_type: &'static str,
        net_type: &str,
        addr_type: &str,
        address: &str,
    ) -> Result<Self, SdpErrorKind> {
        let addr_type = AddrType::parse(addr_type);
        let base = address.split('/').next().unwrap_or_default();
        let ok = match &addr_type {
            AddrType::Ip4 => {
                base.parse::<std::net::Ipv4Addr>().is_ok()
                    || is_padded_ipv4(base)
                    || (base.parse::<IpAddr>().is_err() && is_fqdn(base))
            }
            AddrType::Ip6 => {
                // A link-local literal may carry a zone (`fe80::1%eth0`).
                let literal = base.split_once('%').map_or(base, |(a, _)| a);
                literal.parse::<std::net::Ipv6Addr>().is_ok() || is_fqdn(base)
            }
            AddrType::Other(_) => !address.is_empty(),
        };
        if !ok || !is_token(net_type) {
            return Err(invalid(line_type, "connection-address", address));
        }
        Ok(Self {
            net_type: net_type.to_owned(),
            addr_type,
            address: address.to_owned(),
        })
    }

    /// Parses a `c=` value: `<nettype> <addrtype> <connection-address>`.
    pub fn parse(value: &str) -> Result<Self, SdpErrorKind> {
        let mut it = value.split_ascii_whitespace();
        let n = field(&mut it, "c", "nettype")?;
        let a = field(&mut it, "c", "addrtype")?;
        let addr = field(&mut it, "c", "connection-address")?;
        if it.next().is_some() {
            return Err(SdpErrorKind::TrailingFields("c"));
        }
        Self::from_fields("c", n, a, addr)
    }
}

/// A dotted quad with zero-padded octets (`192.168.001.010`), which some old stacks
/// send and `Ipv4Addr` rejects: accepted as an address, but [`Connection::ip`] gives
/// `None` for it.
fn is_padded_ipv4(s: &str) -> bool {
    let mut n = 0;
    let ok = s.split('.').all(|o| {
        n += 1;
        (1..=3).contains(&o.len())
            && o.bytes().all(|b| b.is_ascii_digit())
            && o.parse::<u16>().is_ok_and(|v| v <= 255)
    });
    ok && n == 4
}

/// A host name as RFC 8866 §9 `FQDN` allows (letters, digits, '-', '.'), at least one
/// character that makes it not an IP literal.
fn is_fqdn(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && s.bytes().any(|b| b.is_ascii_alphabetic() || b == b'-')
}

/// RFC 8866 §9 `token`: visible ASCII except the separators it excludes.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`{|}~".contains(&b))
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.net_type, self.addr_type, self.address)
    }
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`
/// (RFC 8866 §5.2).
///
/// `sess_id` is kept as text (it only has to be unique); `sess_version` is numeric
/// because an SBC must increase it when it changes the description (RFC 3264 §8).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// `<username>`, `-` when the host has no user ids.
    pub username: String,
    /// `<sess-id>`: a numeric string.
    pub session_id: String,
    /// `<sess-version>`.
    pub session_version: u64,
    /// `<nettype> <addrtype> <unicast-address>`.
    pub address: Connection,
}

impl Origin {
    /// Parses an `o=` value.
    pub fn parse(value: &str) -> Result<Self, SdpErrorKind> {
        let mut it = value.split_ascii_whitespace();
        let username = field(&mut it, "o", "username")?;
        let session_id = field(&mut it, "o", "sess-id")?;
        let version = field(&mut it, "o", "sess-version")?;
        let n = field(&mut it, "o", "nettype")?;
        let a = field(&mut it, "o", "addrtype")?;
        let addr = field(&mut it, "o", "unicast-address")?;
        if it.next().is_some() {
            return Err(SdpErrorKind::TrailingFields("o"));
        }
        // Some peers (SIPp among them) bracket an IPv6 origin address as in a URI;
        // `o=` only names the session's originator, so it is read without the brackets.
        let addr = match addr.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
            Some(inner) if a == "IP6" => inner,
            _ => addr,
        };
        if !session_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("o", "sess-id", session_id));
        }
        Ok(Self {
            username: username.to_owned(),
            session_id: session_id.to_owned(),
            session_version: num("o", "sess-version", version)?,
            address: Connection::from_fields("o", n, a, addr)?,
        })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.username, self.session_id, self.session_version, self.address
        )
    }
}

/// `b=<bwtype>:<bandwidth>` (RFC 8866 §5.8), bandwidth in kbit/s for `AS`/`CT`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bandwidth {
    /// `<bwtype>`: `CT`, `AS`, `TIAS`, `RS`, `RR`, ...
    pub bw_type: String,
    /// `<bandwidth>`.
    pub value: u64,
}

impl Bandwidth {
    /// Parses a `b=` value.
    pub fn parse(value: &str) -> Result<Self, SdpErrorKind> {
        let (t, v) = value
            .split_once(':')
            .ok_or_else(|| missing("b", "bandwidth"))?;
        if !is_token(t) {
            return Err(invalid("b", "bwtype", t));
        }
        Ok(Self {
            bw_type: t.to_owned(),
            value: num("b", "bandwidth", v.trim())?,
        })
    }
}

impl fmt::Display for Bandwidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.bw_type, self.value)
    }
}

/// `t=<start-time> <stop-time>` (RFC 8866 §5.9) with its `r=` lines (§5.10) kept
/// verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Timing {
    /// `<start-time>` (NTP seconds, 0 = unbounded).
    pub start: u64,
    /// `<stop-time>` (NTP seconds, 0 = unbounded).
    pub stop: u64,
    /// The values of the `r=` lines that follow this `t=`, in order.
    pub repeats: Vec<String>,
}

impl Timing {
    /// Parses a `t=` value.
    pub fn parse(value: &str) -> Result<Self, SdpErrorKind> {
        let mut it = value.split_ascii_whitespace();
        let start = num("t", "start-time", field(&mut it, "t", "start-time")?)?;
        let stop = num("t", "stop-time", field(&mut it, "t", "stop-time")?)?;
        if it.next().is_some() {
            return Err(SdpErrorKind::TrailingFields("t"));
        }
        Ok(Self {
            start,
            stop,
            repeats: Vec::new(),
        })
    }
}

/// The `<proto>` field of `m=` (RFC 8866 §5.14, RFC 3711, RFC 5124, RFC 5764).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Proto {
    /// `RTP/AVP`: plain RTP.
    RtpAvp,
    /// `RTP/AVPF`: plain RTP with RTCP feedback.
    RtpAvpf,
    /// `RTP/SAVP`: SRTP (SDES keys when `a=crypto` is present).
    RtpSavp,
    /// `RTP/SAVPF`: SRTP with RTCP feedback.
    RtpSavpf,
    /// `UDP/TLS/RTP/SAVP`: DTLS-SRTP.
    UdpTlsRtpSavp,
    /// `UDP/TLS/RTP/SAVPF`: DTLS-SRTP with feedback.
    UdpTlsRtpSavpf,
    /// `udp` (e.g. T.38 over UDPTL uses `udptl`, kept as `Other`).
    Udp,
    /// Any other protocol, kept as sent.
    Other(String),
}

impl Proto {
    /// Maps the text of the field to a variant (case-sensitive as in the registry).
    pub fn parse(s: &str) -> Self {
        match s {
            "RTP/AVP" => Self::RtpAvp,
            "RTP/AVPF" => Self::RtpAvpf,
            "RTP/SAVP" => Self::RtpSavp,
            "RTP/SAVPF" => Self::RtpSavpf,
            "UDP/TLS/RTP/SAVP" => Self::UdpTlsRtpSavp,
            "UDP/TLS/RTP/SAVPF" => Self::UdpTlsRtpSavpf,
            "udp" => Self::Udp,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The field as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::RtpAvp => "RTP/AVP",
            Self::RtpAvpf => "RTP/AVPF",
            Self::RtpSavp => "RTP/SAVP",
            Self::RtpSavpf => "RTP/SAVPF",
            Self::UdpTlsRtpSavp => "UDP/TLS/RTP/SAVP",
            Self::UdpTlsRtpSavpf => "UDP/TLS/RTP/SAVPF",
            Self::Udp => "udp",
            Self::Other(s) => s,
        }
    }

    /// True for any RTP profile (plain, secure, with or without feedback, DTLS).
    pub fn is_rtp(&self) -> bool {
        !matches!(self, Self::Udp | Self::Other(_))
    }

    /// True for the SRTP profiles (SDES or DTLS keyed).
    pub fn is_secure(&self) -> bool {
        matches!(
            self,
            Self::RtpSavp | Self::RtpSavpf | Self::UdpTlsRtpSavp | Self::UdpTlsRtpSavpf
        )
    }

    /// The SDES-keyed secure profile for an RTP profile: `RTP/AVP` → `RTP/SAVP`,
    /// `RTP/AVPF` → `RTP/SAVPF`; DTLS profiles map to the SDES one with the same
    /// feedback; non-RTP protocols are returned unchanged.
    pub fn to_secure(&self) -> Self {
        match self {
            Self::RtpAvp | Self::RtpSavp | Self::UdpTlsRtpSavp => Self::RtpSavp,
            Self::RtpAvpf | Self::RtpSavpf | Self::UdpTlsRtpSavpf => Self::RtpSavpf,
            other => other.clone(),
        }
    }

    /// The plain profile for an RTP profile: `RTP/SAVP` → `RTP/AVP`, `RTP/SAVPF` →
    /// `RTP/AVPF`; non-RTP protocols are returned unchanged.
    pub fn to_plain(&self) -> Self {
        match self {
            Self::RtpAvp | Self::RtpSavp | Self::UdpTlsRtpSavp => Self::RtpAvp,
            Self::RtpAvpf | Self::RtpSavpf | Self::UdpTlsRtpSavpf => Self::RtpAvpf,
            other => other.clone(),
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A line kept verbatim: either a line type this codec does not interpret
/// (RFC 8866 §5 lets a parser keep what it does not understand) or one it keeps as text
/// (`z=`, `k=`, `u=`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawLine {
    /// The type letter.
    pub kind: char,
    /// The value after `=`, trailing whitespace removed.
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_all_fields() {
        let o = Origin::parse("jdoe 3724394400 3724394405 IN IP4 198.51.100.1").unwrap();
        assert_eq!(o.username, "jdoe");
        assert_eq!(o.session_id, "3724394400");
        assert_eq!(o.session_version, 3_724_394_405);
        assert_eq!(o.address.addr_type, AddrType::Ip4);
        assert_eq!(o.address.ip(), Some("198.51.100.1".parse().unwrap()));
        assert_eq!(
            o.to_string(),
            "jdoe 3724394400 3724394405 IN IP4 198.51.100.1"
        );
        assert!(Origin::parse("jdoe 1 x IN IP4 1.2.3.4").is_err());
        assert!(Origin::parse("jdoe 1 2 IN IP4").is_err());
        assert!(Origin::parse("jdoe 1 2 IN IP4 1.2.3.4 extra").is_err());
        assert!(Origin::parse("jdoe a1 2 IN IP4 1.2.3.4").is_err());
    }

    #[test]
    fn connection_families() {
        let c = Connection::parse("IN IP6 2001:db8::20").unwrap();
        assert_eq!(c.ip(), Some("2001:db8::20".parse().unwrap()));
        let c = Connection::parse("IN IP4 224.2.1.1/127/3").unwrap();
        assert_eq!(c.ip(), Some("224.2.1.1".parse().unwrap()));
        assert_eq!(c.to_string(), "IN IP4 224.2.1.1/127/3");
        let c = Connection::parse("IN IP4 media.example.com").unwrap();
        assert_eq!(c.ip(), None);
        assert!(Connection::parse("IN IP4 2001:db8::1").is_err());
        assert!(Connection::parse("IN IP6 1.2.3.4").is_err());
        assert!(Connection::parse("IN IP4 1.2.3.4.5").is_err());
        assert!(Connection::parse("IN IP4 1.2.3.256").is_err());
        let padded = Connection::parse("IN IP4 192.168.001.010").unwrap();
        assert_eq!(padded.ip(), None);
        let zoned = Connection::parse("IN IP6 fe80::1%eth0").unwrap();
        assert_eq!(zoned.to_string(), "IN IP6 fe80::1%eth0");
        assert!(Connection::parse("IN IP6 fe80::zz%eth0").is_err());
        assert!(Connection::parse("IN IP4").is_err());
        assert!(Connection::parse("IN IP4 1.2.3.4 x").is_err());
        assert_eq!(
            Connection::new("::1".parse().unwrap()).to_string(),
            "IN IP6 ::1"
        );
    }

    #[test]
    fn bandwidth_and_timing() {
        let b = Bandwidth::parse("AS:64").unwrap();
        assert_eq!((b.bw_type.as_str(), b.value), ("AS", 64));
        assert_eq!(b.to_string(), "AS:64");
        assert!(Bandwidth::parse("AS").is_err());
        assert!(Bandwidth::parse("AS:-1").is_err());
        let t = Timing::parse("3338481189 3370017201").unwrap();
        assert_eq!((t.start, t.stop), (3_338_481_189, 3_370_017_201));
        assert!(Timing::parse("0").is_err());
        assert!(Timing::parse("0 +1").is_err());
    }

    #[test]
    fn proto_mapping() {
        for s in [
            "RTP/AVP",
            "RTP/AVPF",
            "RTP/SAVP",
            "RTP/SAVPF",
            "UDP/TLS/RTP/SAVP",
            "UDP/TLS/RTP/SAVPF",
            "udp",
            "udptl",
        ] {
            assert_eq!(Proto::parse(s).as_str(), s);
        }
        assert_eq!(Proto::RtpAvp.to_secure(), Proto::RtpSavp);
        assert_eq!(Proto::RtpSavpf.to_plain(), Proto::RtpAvpf);
        assert_eq!(Proto::UdpTlsRtpSavp.to_secure(), Proto::RtpSavp);
        assert!(Proto::RtpSavp.is_secure() && !Proto::RtpAvp.is_secure());
        assert!(!Proto::parse("udptl").is_rtp());
    }
}

//! `a=` attributes (RFC 8866 §5.13, §6) and the typed forms of the ones an SBC reads or
//! rewrites. Anything else is kept as [`Attribute::Other`], byte for byte.
//!
//! Invariant: for every attribute `a`, `Attribute::parse(&a.to_string()) == Ok(a)`
//! (the `Display` output is the value after `a=`).

use std::fmt;

use super::crypto::Crypto;
use super::error::{invalid, missing, SdpErrorKind};
use super::ice::Candidate;
use super::types::{field, is_token, num, Connection};

/// Media direction (RFC 8866 §6.7, RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `a=sendrecv` (the default when no direction attribute is present).
    #[default]
    SendRecv,
    /// `a=sendonly`
    SendOnly,
    /// `a=recvonly`
    RecvOnly,
    /// `a=inactive` (Teams hold, RFC 3264 §8.4)
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    /// The direction the answerer uses toward an offer with this direction
    /// (RFC 3264 §6.1): sendonly ↔ recvonly, the others unchanged.
    pub fn reversed(self) -> Self {
        match self {
            Self::SendOnly => Self::RecvOnly,
            Self::RecvOnly => Self::SendOnly,
            other => other,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "sendrecv" => Self::SendRecv,
            "sendonly" => Self::SendOnly,
            "recvonly" => Self::RecvOnly,
            "inactive" => Self::Inactive,
            _ => return None,
        })
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]`
/// (RFC 8866 §6.6).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RtpMap {
    /// RTP payload type, 0..=127.
    pub payload_type: u8,
    /// Encoding name (`PCMU`, `opus`, `telephone-event`, ...), case kept as sent.
    pub encoding: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Encoding parameters (the channel count for audio), as sent.
    pub params: Option<String>,
}

impl RtpMap {
    fn parse(v: &str) -> Result<Self, SdpErrorKind> {
        let mut it = v.split_ascii_whitespace();
        let pt = field(&mut it, "rtpmap", "payload-type")?;
        let enc = field(&mut it, "rtpmap", "encoding")?;
        if it.next().is_some() {
            return Err(SdpErrorKind::TrailingFields("rtpmap"));
        }
        let payload_type = payload_type("rtpmap", pt)?;
        let mut parts = enc.splitn(3, '/');
        let encoding = parts.next().unwrap_or_default();
        if !is_token(encoding) {
            return Err(invalid("rtpmap", "encoding-name", encoding));
        }
        let rate = parts
            .next()
            .ok_or_else(|| missing("rtpmap", "clock-rate"))?;
        let clock_rate = num("rtpmap", "clock-rate", rate)?;
        let params = match parts.next() {
            Some(p) if p.is_empty() || p.contains('/') => {
                return Err(invalid("rtpmap", "encoding-params", p))
            }
            Some(p) => Some(p.to_owned()),
            None => None,
        };
        Ok(Self {
            payload_type,
            encoding: encoding.to_owned(),
            clock_rate,
            params,
        })
    }
}

impl fmt::Display for RtpMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{}",
            self.payload_type, self.encoding, self.clock_rate
        )?;
        if let Some(p) = &self.params {
            write!(f, "/{p}")?;
        }
        Ok(())
    }
}

/// `<payload type> <encoding name>` with no `/<clock rate>`.
fn rtpmap_without_rate(v: &str) -> bool {
    let mut it = v.split_ascii_whitespace();
    matches!((it.next(), it.next(), it.next()),
        (Some(pt), Some(enc), None) if payload_type("rtpmap", pt).is_ok() && is_token(enc))
}

/// A payload type field: decimal 0..=127 (RFC 3551 §3).
pub(crate) fn payload_type(attr: &'static str, s: &str) -> Result<u8, SdpErrorKind> {
    let pt: u8 = num(attr, "payload-type", s)?;
    if pt > 127 {
        return Err(invalid(attr, "payload-type", s));
    }
    Ok(pt)
}

/// `a=fmtp:<format> <format specific parameters>` (RFC 8866 §6.15). The parameters
/// are kept as one string because their syntax depends on the codec.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fmtp {
    /// The format (payload type for RTP) the parameters apply to.
    pub format: String,
    /// The parameters as sent (may be empty).
    pub params: String,
}

impl fmt::Display for Fmtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.params.is_empty() {
            f.write_str(&self.format)
        } else {
            write!(f, "{} {}", self.format, self.params)
        }
    }
}

/// `a=rtcp:<port> [<nettype> <addrtype> <connection-address>]` (RFC 3605 §2.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rtcp {
    /// RTCP port.
    pub port: u16,
    /// RTCP address when it differs from the media `c=`.
    pub address: Option<Connection>,
}

impl Rtcp {
    fn parse(v: &str) -> Result<Self, SdpErrorKind> {
        let mut it = v.split_ascii_whitespace();
        let port = num("rtcp", "port", field(&mut it, "rtcp", "port")?)?;
        let address = match it.next() {
            None => None,
            Some(n) => {
                let a = field(&mut it, "rtcp", "addrtype")?;
                let addr = field(&mut it, "rtcp", "connection-address")?;
                Some(Connection::from_fields("rtcp", n, a, addr)?)
            }
        };
        if it.next().is_some() {
            return Err(SdpErrorKind::TrailingFields("rtcp"));
        }
        Ok(Self { port, address })
    }
}

impl fmt::Display for Rtcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.port)?;
        if let Some(a) = &self.address {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

/// `a=ssrc:<ssrc-id> <attribute>[:<value>]` (RFC 5576 §4.1): the id is typed, the
/// source attribute kept as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ssrc {
    /// The SSRC.
    pub id: u32,
    /// `<attribute>[:<value>]` as sent (`cname:xyz`, `msid:a b`, ...).
    pub attribute: String,
}

impl fmt::Display for Ssrc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.id, self.attribute)
    }
}

/// One `a=` line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attribute {
    /// `a=rtpmap:` (RFC 8866 §6.6)
    RtpMap(RtpMap),
    /// `a=fmtp:` (RFC 8866 §6.15)
    Fmtp(Fmtp),
    /// `a=ptime:` in milliseconds (RFC 8866 §6.4)
    Ptime(u32),
    /// `a=maxptime:` in milliseconds (RFC 8866 §6.5)
    MaxPtime(u32),
    /// `a=sendrecv` / `sendonly` / `recvonly` / `inactive` (RFC 8866 §6.7)
    Direction(Direction),
    /// `a=rtcp:` (RFC 3605)
    Rtcp(Rtcp),
    /// `a=rtcp-mux` (RFC 5761 §5.1.1)
    RtcpMux,
    /// `a=crypto:` (RFC 4568 §9.1), boxed to keep `Attribute` small.
    Crypto(Box<Crypto>),
    /// `a=ice-ufrag:` (RFC 8839 §5.4)
    IceUfrag(String),
    /// `a=ice-pwd:` (RFC 8839 §5.4)
    IcePwd(String),
    /// `a=ice-lite` (RFC 8839 §5.3, session level)
    IceLite,
    /// `a=candidate:` (RFC 8839 §5.1), boxed to keep `Attribute` small.
    Candidate(Box<Candidate>),
    /// `a=mid:` (RFC 5888 §4)
    Mid(String),
    /// `a=ssrc:` (RFC 5576 §4.1)
    Ssrc(Ssrc),
    /// Any other attribute, kept verbatim: `a=<name>` or `a=<name>:<value>`.
    Other {
        /// `<attribute-name>`.
        name: String,
        /// The text after the first `:`, `None` for a property attribute.
        value: Option<String>,
    },
}

impl Attribute {
    /// Parses the value of an `a=` line (the text after `a=`), strictly.
    ///
    /// Known attributes with a malformed value are an error; unknown names, and known
    /// property names that unexpectedly carry a value, become [`Attribute::Other`].
    /// ([`SessionDescription::parse`](super::SessionDescription::parse) is lenient: it
    /// keeps a malformed known attribute as [`Attribute::Other`].)
    pub fn parse(line: &str) -> Result<Self, SdpErrorKind> {
        let (name, value) = match line.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (line, None),
        };
        if !is_token(name) {
            return Err(invalid("a", "attribute-name", name));
        }
        let attr = match (name, value) {
            ("rtcp-mux", None) => Self::RtcpMux,
            ("ice-lite", None) => Self::IceLite,
            (n, None) if Direction::from_name(n).is_some() => {
                Self::Direction(Direction::from_name(n).unwrap_or_default())
            }
            // RFC 4475 §3.3.15 (sdp01.dat) and old stacks send `a=rtpmap:31 LPC` with no
            // clock rate: kept verbatim instead of rejecting the whole offer.
            ("rtpmap", Some(v)) if !v.contains('/') && rtpmap_without_rate(v) => Self::Other {
                name: name.to_owned(),
                value: Some(v.to_owned()),
            },
            ("rtpmap", Some(v)) => Self::RtpMap(RtpMap::parse(v)?),
            ("fmtp", Some(v)) => {
                let (format, params) = v.split_once(' ').unwrap_or((v, ""));
                if !is_token(format) {
                    return Err(invalid("fmtp", "format", format));
                }
                Self::Fmtp(Fmtp {
                    format: format.to_owned(),
                    params: params.trim_start().to_owned(),
                })
            }
            ("ptime", Some(v)) => Self::Ptime(num("ptime", "packet-time", v.trim())?),
            ("maxptime", Some(v)) => Self::MaxPtime(num("maxptime", "packet-time", v.trim())?),
            ("rtcp", Some(v)) => Self::Rtcp(Rtcp::parse(v)?),
            ("crypto", Some(v)) => Self::Crypto(Box::new(Crypto::parse(v)?)),
            ("ice-ufrag", Some(v)) => Self::IceUfrag(ice_chars("ice-ufrag", v)?),
            ("ice-pwd", Some(v)) => Self::IcePwd(ice_chars("ice-pwd", v)?),
            ("candidate", Some(v)) => Self::Candidate(Box::new(Candidate::parse(v)?)),
            ("mid", Some(v)) => {
                if v.is_empty() || v.bytes().any(|b| b.is_ascii_whitespace()) {
                    return Err(invalid("mid", "identification-tag", v));
                }
                Self::Mid(v.to_owned())
            }
            ("ssrc", Some(v)) => {
                let (id, rest) = v
                    .split_once(' ')
                    .ok_or_else(|| missing("ssrc", "attribute"))?;
                let rest = rest.trim_start();
                if rest.is_empty() {
                    return Err(missing("ssrc", "attribute"));
                }
                Self::Ssrc(Ssrc {
                    id: num("ssrc", "ssrc-id", id)?,
                    attribute: rest.to_owned(),
                })
            }
            (n, v) => Self::Other {
                name: n.to_owned(),
                value: v.map(str::to_owned),
            },
        };
        Ok(attr)
    }

    /// The attribute name as on the wire.
    pub fn name(&self) -> &str {
        match self {
            Self::RtpMap(_) => "rtpmap",
            Self::Fmtp(_) => "fmtp",
            Self::Ptime(_) => "ptime",
            Self::MaxPtime(_) => "maxptime",
            Self::Direction(d) => d.as_str(),
            Self::Rtcp(_) => "rtcp",
            Self::RtcpMux => "rtcp-mux",
            Self::Crypto(_) => "crypto",
            Self::IceUfrag(_) => "ice-ufrag",
            Self::IcePwd(_) => "ice-pwd",
            Self::IceLite => "ice-lite",
            Self::Candidate(_) => "candidate",
            Self::Mid(_) => "mid",
            Self::Ssrc(_) => "ssrc",
            Self::Other { name, .. } => name,
        }
    }
}

/// `ice-ufrag` / `ice-pwd` value. RFC 8839 §5.4 allows only `ice-char` (ALPHA / DIGIT /
/// "+" / "/"), but stacks in the field also use `-`, `_` or `=`; any visible ASCII is
/// accepted since the value is only echoed in STUN USERNAME. Lengths are not enforced.
fn ice_chars(attr: &'static str, v: &str) -> Result<String, SdpErrorKind> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(attr, "ice-chars", v));
    }
    Ok(v.to_owned())
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        match self {
            Self::RtpMap(x) => write!(f, "{name}:{x}"),
            Self::Fmtp(x) => write!(f, "{name}:{x}"),
            Self::Ptime(x) | Self::MaxPtime(x) => write!(f, "{name}:{x}"),
            Self::Rtcp(x) => write!(f, "{name}:{x}"),
            Self::Crypto(x) => write!(f, "{name}:{x}"),
            Self::Candidate(x) => write!(f, "{name}:{x}"),
            Self::Ssrc(x) => write!(f, "{name}:{x}"),
            Self::IceUfrag(x) | Self::IcePwd(x) | Self::Mid(x) => write!(f, "{name}:{x}"),
            Self::Direction(_) | Self::RtcpMux | Self::IceLite => f.write_str(name),
            Self::Other { value: None, .. } => f.write_str(name),
            Self::Other { value: Some(v), .. } => write!(f, "{name}:{v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(s: &str) -> Attribute {
        let a = Attribute::parse(s).unwrap();
        assert_eq!(a.to_string(), s, "display of {s}");
        assert_eq!(Attribute::parse(&a.to_string()).unwrap(), a);
        a
    }

    #[test]
    fn rtpmap() {
        let Attribute::RtpMap(m) = rt("rtpmap:96 opus/48000/2") else {
            panic!("not rtpmap")
        };
        assert_eq!(m.payload_type, 96);
        assert_eq!(m.encoding, "opus");
        assert_eq!(m.clock_rate, 48_000);
        assert_eq!(m.params.as_deref(), Some("2"));
        rt("rtpmap:101 telephone-event/8000");
        // No clock rate (RFC 4475 sdp01): kept verbatim, not typed.
        assert_eq!(
            rt("rtpmap:31 LPC"),
            Attribute::Other {
                name: "rtpmap".into(),
                value: Some("31 LPC".into())
            }
        );
        assert!(Attribute::parse("rtpmap:x LPC").is_err());
        assert!(Attribute::parse("rtpmap:0 PCMU/").is_err());
        for bad in [
            "rtpmap:128 PCMU/8000",
            "rtpmap:x PCMU/8000",
            "rtpmap:0 PCMU/abc",
            "rtpmap:0",
            "rtpmap:0 PCMU/8000 x",
            "rtpmap:0 PCMU/8000/",
        ] {
            assert!(Attribute::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fmtp_ptime_maxptime() {
        let Attribute::Fmtp(f) = rt("fmtp:101 0-15") else {
            panic!("not fmtp")
        };
        assert_eq!((f.format.as_str(), f.params.as_str()), ("101", "0-15"));
        rt("fmtp:18 annexb=no");
        rt("fmtp:111 minptime=10;useinbandfec=1");
        assert_eq!(rt("ptime:20"), Attribute::Ptime(20));
        assert_eq!(rt("maxptime:40"), Attribute::MaxPtime(40));
        assert!(Attribute::parse("ptime:x").is_err());
        assert!(Attribute::parse("maxptime:").is_err());
    }

    #[test]
    fn directions_and_flags() {
        assert_eq!(rt("sendrecv"), Attribute::Direction(Direction::SendRecv));
        assert_eq!(rt("sendonly"), Attribute::Direction(Direction::SendOnly));
        assert_eq!(rt("recvonly"), Attribute::Direction(Direction::RecvOnly));
        assert_eq!(rt("inactive"), Attribute::Direction(Direction::Inactive));
        assert_eq!(rt("rtcp-mux"), Attribute::RtcpMux);
        assert_eq!(rt("ice-lite"), Attribute::IceLite);
        assert_eq!(Direction::SendOnly.reversed(), Direction::RecvOnly);
        assert_eq!(Direction::Inactive.reversed(), Direction::Inactive);
    }

    #[test]
    fn rtcp_port_and_address() {
        assert_eq!(
            rt("rtcp:53020"),
            Attribute::Rtcp(Rtcp {
                port: 53020,
                address: None
            })
        );
        let Attribute::Rtcp(r) = rt("rtcp:53020 IN IP6 2001:db8::1") else {
            panic!("not rtcp")
        };
        assert_eq!(
            r.address.and_then(|a| a.ip()),
            Some("2001:db8::1".parse().unwrap())
        );
        assert!(Attribute::parse("rtcp:70000").is_err());
        assert!(Attribute::parse("rtcp:5000 IN IP4").is_err());
        assert!(Attribute::parse("rtcp:5000 IN IP4 1.2.3.4 x").is_err());
    }

    #[test]
    fn ice_mid_ssrc() {
        assert_eq!(rt("ice-ufrag:F7gI"), Attribute::IceUfrag("F7gI".into()));
        assert_eq!(
            rt("ice-pwd:x9cml/YzichV2+XlhiMu8g"),
            Attribute::IcePwd("x9cml/YzichV2+XlhiMu8g".into())
        );
        assert!(Attribute::parse("ice-ufrag:a b").is_err());
        assert!(Attribute::parse("ice-ufrag:a\u{e9}").is_err());
        assert_eq!(rt("ice-ufrag:a-b_c="), Attribute::IceUfrag("a-b_c=".into()));
        assert!(Attribute::parse("ice-pwd:").is_err());
        assert_eq!(rt("mid:audio"), Attribute::Mid("audio".into()));
        let Attribute::Ssrc(s) = rt("ssrc:3735928559 cname:user@host") else {
            panic!("not ssrc")
        };
        assert_eq!(
            (s.id, s.attribute.as_str()),
            (0xDEAD_BEEF, "cname:user@host")
        );
        assert!(Attribute::parse("ssrc:1").is_err());
        assert!(Attribute::parse("ssrc:99999999999 cname:x").is_err());
    }

    #[test]
    fn attribute_stays_small() {
        // Lean representation: the large typed values are boxed.
        assert!(
            std::mem::size_of::<Attribute>() <= 80,
            "{}",
            std::mem::size_of::<Attribute>()
        );
    }

    #[test]
    fn unknown_kept_verbatim() {
        assert_eq!(
            rt("x-custom:some value: with colons"),
            Attribute::Other {
                name: "x-custom".into(),
                value: Some("some value: with colons".into())
            }
        );
        rt("label:1");
        rt("record:off");
        rt("end-of-candidates");
        rt("sendrecv:odd"); // a property name with a value is kept, not typed
        rt("x-empty:");
        assert!(Attribute::parse("").is_err());
        assert!(Attribute::parse(":x").is_err());
        assert!(Attribute::parse("a b:c").is_err());
    }
}

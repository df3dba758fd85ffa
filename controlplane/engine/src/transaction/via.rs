//! Via handling: parsing, `received`/`rport` stamping (RFC 3261 §18.2.1,
//! RFC 3581 §4) and the response destination rules of RFC 3261 §18.2.2 /
//! RFC 3581 §4.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::{MsgError, PeerAddr, Transport};

/// RFC 3261 §8.1.1.7 magic cookie that marks an RFC 3261 branch.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// One Via value (RFC 3261 §20.42).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    /// Transport token as sent (`UDP`, `TCP`, `TLS`, ...), upper-cased.
    pub transport: String,
    /// sent-by host (IPv6 references keep their brackets).
    pub host: String,
    /// sent-by port, when present.
    pub port: Option<u16>,
    /// Parameters in order; names as received.
    pub params: Vec<(String, Option<String>)>,
}

impl Via {
    /// Parses one Via element (`SIP/2.0/UDP host[:port][;params]`) with the
    /// `portcullis-sip` grammar (LWS around `/` and `:`, validated `received`,
    /// `rport`, `maddr`, `ttl`), then copies it into this editable form.
    pub fn parse(value: &str) -> Result<Self, MsgError> {
        let v = portcullis_sip::Via::parse(value)?;
        let params = v
            .params
            .iter()
            .map(|p| {
                let value = p.value.map(|s| {
                    if p.quoted && !s.starts_with('"') {
                        format!("\"{s}\"")
                    } else {
                        s.to_owned()
                    }
                });
                (p.name.to_owned(), value)
            })
            .collect();
        Ok(Self {
            transport: v.transport.to_ascii_uppercase(),
            host: v.host_raw.to_owned(),
            port: v.port,
            params,
        })
    }

    /// A Via for a request we originate.
    #[must_use]
    pub fn new(
        transport: Transport,
        host: impl Into<String>,
        port: Option<u16>,
        branch: &str,
    ) -> Self {
        Self {
            transport: transport.as_via_token().to_owned(),
            host: host.into(),
            port,
            params: vec![
                ("branch".to_owned(), Some(branch.to_owned())),
                ("rport".to_owned(), None),
            ],
        }
    }

    /// A parameter: `None` when absent, `Some(None)` when present without value.
    #[must_use]
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// Sets (or replaces) a parameter.
    pub fn set_param(&mut self, name: &str, value: Option<String>) {
        match self
            .params
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.params.push((name.to_owned(), value)),
        }
    }

    /// The branch parameter.
    #[must_use]
    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }

    /// The branch when it is an RFC 3261 transaction id: starts with the magic
    /// cookie *and* carries something after it. A bare `z9hG4bK` (RFC 4475
    /// §3.4.1 badbranch) is treated as RFC 2543 style.
    #[must_use]
    pub fn rfc3261_branch(&self) -> Option<&str> {
        self.branch()
            .filter(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }

    /// `host[:port]` as written, lower-cased host: the sent-by used in keys.
    #[must_use]
    pub fn sent_by(&self) -> String {
        let host = self.host.to_ascii_lowercase();
        match self.port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }
    }

    /// Transport parsed from the Via token.
    #[must_use]
    pub fn transport_kind(&self) -> Option<Transport> {
        Transport::from_via_token(&self.transport)
    }

    /// RFC 3261 §18.2.1 + RFC 3581 §4: stamp the top Via of a received request
    /// with `received` when sent-by is not the packet's source IP, and fill an
    /// empty `rport` with the source port.
    pub fn stamp_received(&mut self, source: SocketAddr) {
        let ip = source.ip();
        let host_ip = self
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        let rport_requested = self.param("rport").is_some();
        if host_ip != Some(ip) || rport_requested {
            // RFC 3581 §4: with rport, received is added even when sent-by matches.
            self.set_param("received", Some(ip.to_string()));
        }
        if rport_requested {
            self.set_param("rport", Some(source.port().to_string()));
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // RFC 3261 §25.1: an IPv6 sent-by is an `IPv6reference`, in brackets.
        if self.host.contains(':') && !self.host.starts_with('[') {
            write!(f, "SIP/2.0/{} [{}]", self.transport, self.host)?;
        } else {
            write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        for (k, v) in &self.params {
            match v {
                Some(v) => write!(f, ";{k}={v}")?,
                None => write!(f, ";{k}")?,
            }
        }
        Ok(())
    }
}

/// Where a response must go (RFC 3261 §18.2.2, RFC 3581 §4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseTarget {
    /// Send to this socket address (over `transport`, on `conn` when reliable and still open).
    Addr(PeerAddr),
    /// `maddr` or an unresolved sent-by host: the driver must resolve it (RFC 3263 §5).
    Resolve {
        transport: Transport,
        host: String,
        port: u16,
    },
}

/// Computes the response destination from the (stamped) top Via and the peer
/// the request arrived from.
///
/// - reliable transport: the connection the request came on (§18.2.2 bullet 1);
/// - `maddr` present: that address, port from sent-by or 5060 (bullet 2);
/// - unreliable: `received` IP with `rport` value when present (RFC 3581 §4),
///   otherwise the sent-by port (bullet 3, default 5060).
#[must_use]
pub fn response_target(via: &Via, from: &PeerAddr) -> ResponseTarget {
    if from.transport.is_reliable() {
        return ResponseTarget::Addr(*from);
    }
    let default_port = from.transport.default_port();
    if let Some(Some(maddr)) = via.param("maddr") {
        let port = via.port.unwrap_or(default_port);
        return match maddr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => ResponseTarget::Addr(PeerAddr {
                transport: from.transport,
                addr: SocketAddr::new(ip, port),
                conn: None,
            }),
            Err(_) => ResponseTarget::Resolve {
                transport: from.transport,
                host: maddr.to_owned(),
                port,
            },
        };
    }
    let rport = via
        .param("rport")
        .flatten()
        .and_then(|p| p.parse::<u16>().ok());
    let received = via
        .param("received")
        .flatten()
        .and_then(|r| r.parse::<IpAddr>().ok());
    let host_ip = via
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok();
    match (received.or(host_ip), rport) {
        (Some(ip), Some(port)) => ResponseTarget::Addr(PeerAddr {
            transport: from.transport,
            addr: SocketAddr::new(ip, port),
            conn: None,
        }),
        (Some(ip), None) => ResponseTarget::Addr(PeerAddr {
            transport: from.transport,
            addr: SocketAddr::new(ip, via.port.unwrap_or(default_port)),
            conn: None,
        }),
        (None, _) => ResponseTarget::Resolve {
            transport: from.transport,
            host: via.host.clone(),
            port: via.port.unwrap_or(default_port),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::ConnId;

    fn udp(addr: &str) -> PeerAddr {
        PeerAddr {
            transport: Transport::Udp,
            addr: addr.parse().unwrap(),
            conn: None,
        }
    }

    #[test]
    fn parse_and_display_round_trip() {
        let v = Via::parse("SIP/2.0/udp pc33.example.com:5066;branch=z9hG4bK776;rport").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.port, Some(5066));
        assert_eq!(v.branch(), Some("z9hG4bK776"));
        assert_eq!(v.param("rport"), Some(None));
        assert_eq!(
            v.to_string(),
            "SIP/2.0/UDP pc33.example.com:5066;branch=z9hG4bK776;rport"
        );
        let v6 = Via::parse("SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bKx").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("[2001:db8::1]", Some(5070)));
        // A bare IPv6 sent-by (an address from a listener) is written in brackets.
        let ours = Via::new(Transport::Udp, "fd77:1::1", Some(5060), "z9hG4bKy");
        assert!(
            ours.to_string()
                .starts_with("SIP/2.0/UDP [fd77:1::1]:5060;"),
            "{ours}"
        );
        let back = Via::parse(&ours.to_string()).unwrap();
        assert_eq!((back.host.as_str(), back.port), ("[fd77:1::1]", Some(5060)));
        assert!(Via::parse("SIP/3.0/UDP h").is_err());
        assert!(Via::parse("SIP/2.0/UDP h:notaport").is_err());
    }

    #[test]
    fn bare_cookie_is_not_a_3261_branch() {
        let v = Via::parse("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK").unwrap();
        assert_eq!(v.branch(), Some("z9hG4bK"));
        assert_eq!(v.rfc3261_branch(), None);
    }

    #[test]
    fn received_and_rport_stamping() {
        let mut v = Via::parse("SIP/2.0/UDP pc.example.com:5060;branch=z9hG4bK1;rport").unwrap();
        v.stamp_received("192.0.2.7:40000".parse().unwrap());
        assert_eq!(v.param("received"), Some(Some("192.0.2.7")));
        assert_eq!(v.param("rport"), Some(Some("40000")));
        assert_eq!(
            response_target(&v, &udp("192.0.2.7:40000")),
            ResponseTarget::Addr(udp("192.0.2.7:40000"))
        );
        // No rport, sent-by is the source IP: nothing added, reply to sent-by port.
        let mut v = Via::parse("SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK1").unwrap();
        v.stamp_received("192.0.2.7:40000".parse().unwrap());
        assert_eq!(v.param("received"), None);
        assert_eq!(
            response_target(&v, &udp("192.0.2.7:40000")),
            ResponseTarget::Addr(udp("192.0.2.7:5062"))
        );
    }

    #[test]
    fn reliable_reuses_connection_and_maddr_wins_on_udp() {
        let tcp = PeerAddr {
            transport: Transport::Tcp,
            addr: "192.0.2.9:33000".parse().unwrap(),
            conn: Some(ConnId(4)),
        };
        let v = Via::parse("SIP/2.0/TCP h.example.com;branch=z9hG4bK1;maddr=239.1.1.1").unwrap();
        assert_eq!(response_target(&v, &tcp), ResponseTarget::Addr(tcp));
        let v =
            Via::parse("SIP/2.0/UDP h.example.com:5070;branch=z9hG4bK1;maddr=239.1.1.1").unwrap();
        assert_eq!(
            response_target(&v, &udp("192.0.2.9:1")),
            ResponseTarget::Addr(udp("239.1.1.1:5070"))
        );
        let v = Via::parse("SIP/2.0/UDP h.example.com;branch=z9hG4bK1").unwrap();
        assert_eq!(
            response_target(&v, &udp("192.0.2.9:1")),
            ResponseTarget::Resolve {
                transport: Transport::Udp,
                host: "h.example.com".into(),
                port: 5060
            }
        );
    }
}

//! ICE candidate attribute (RFC 8839 §5.1).
//!
//! ```text
//! candidate:<foundation> <component-id> <transport> <priority> <connection-address>
//!           <port> typ <cand-type> [raddr <addr>] [rport <port>] *(<ext-name> <ext-value>)
//! ```

use std::fmt;
use std::net::IpAddr;

use super::error::{invalid, missing, SdpErrorKind};
use super::types::{field, is_token, num};

/// `<cand-type>` (RFC 8839 §5.1, RFC 8445 §5.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CandidateType {
    /// `host`
    Host,
    /// `srflx`: server reflexive.
    Srflx,
    /// `prflx`: peer reflexive.
    Prflx,
    /// `relay`: TURN relayed.
    Relay,
    /// Any other token, kept.
    Other(String),
}

impl CandidateType {
    /// The token as on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Host => "host",
            Self::Srflx => "srflx",
            Self::Prflx => "prflx",
            Self::Relay => "relay",
            Self::Other(s) => s,
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "host" => Self::Host,
            "srflx" => Self::Srflx,
            "prflx" => Self::Prflx,
            "relay" => Self::Relay,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// One `a=candidate:` line.
///
/// Invariant: the `address` is an IP literal or a host name (FQDN / mDNS `.local`), not
/// checked against an address family because the line carries none.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// `<foundation>`: 1..=32 ice-chars.
    pub foundation: String,
    /// `<component-id>`: 1 = RTP, 2 = RTCP; 1..=256.
    pub component: u16,
    /// `<transport>`: `UDP` (or `TCP`, RFC 6544), case kept as sent.
    pub transport: String,
    /// `<priority>`.
    pub priority: u32,
    /// `<connection-address>`.
    pub address: String,
    /// `<port>`.
    pub port: u16,
    /// `typ <cand-type>`.
    pub kind: CandidateType,
    /// `raddr <connection-address>`.
    pub related_address: Option<String>,
    /// `rport <port>`.
    pub related_port: Option<u16>,
    /// Extension name/value pairs in order (`generation 0`, `tcptype passive`, ...).
    pub extensions: Vec<(String, String)>,
}

impl Candidate {
    /// A host candidate for `ip:port`, component `component`, `UDP`, with the RFC 8445
    /// §5.1.2.1 recommended priority for a host candidate with local preference 65535.
    pub fn host(foundation: &str, component: u16, ip: IpAddr, port: u16) -> Self {
        let type_pref: u32 = 126;
        let local_pref: u32 = 65_535;
        let comp = u32::from(component.clamp(1, 256));
        Self {
            foundation: foundation.to_owned(),
            component,
            transport: "UDP".to_owned(),
            priority: (type_pref << 24) + (local_pref << 8) + (256 - comp),
            address: ip.to_string(),
            port,
            kind: CandidateType::Host,
            related_address: None,
            related_port: None,
            extensions: Vec::new(),
        }
    }

    /// The candidate address as an IP; `None` for a host name.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.parse().ok()
    }

    /// Parses the value of `a=candidate:`.
    pub fn parse(v: &str) -> Result<Self, SdpErrorKind> {
        const A: &str = "candidate";
        let mut it = v.split_ascii_whitespace();
        let foundation = field(&mut it, A, "foundation")?;
        if foundation.len() > 32
            || !foundation
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        {
            return Err(invalid(A, "foundation", foundation));
        }
        let comp_s = field(&mut it, A, "component-id")?;
        let component: u16 = num(A, "component-id", comp_s)?;
        if !(1..=256).contains(&component) {
            return Err(invalid(A, "component-id", comp_s));
        }
        let transport = field(&mut it, A, "transport")?;
        if !is_token(transport) {
            return Err(invalid(A, "transport", transport));
        }
        let priority = num(A, "priority", field(&mut it, A, "priority")?)?;
        let address = field(&mut it, A, "connection-address")?;
        check_addr(address)?;
        let port = num(A, "port", field(&mut it, A, "port")?)?;
        let typ = field(&mut it, A, "typ")?;
        if typ != "typ" {
            return Err(invalid(A, "typ", typ));
        }
        let kind = field(&mut it, A, "cand-type")?;
        if !is_token(kind) {
            return Err(invalid(A, "cand-type", kind));
        }
        let mut c = Self {
            foundation: foundation.to_owned(),
            component,
            transport: transport.to_owned(),
            priority,
            address: address.to_owned(),
            port,
            kind: CandidateType::parse(kind),
            related_address: None,
            related_port: None,
            extensions: Vec::new(),
        };
        while let Some(name) = it.next() {
            let value = it.next().ok_or_else(|| missing(A, "extension-att-value"))?;
            match name {
                "raddr" if c.related_address.is_none() && c.extensions.is_empty() => {
                    check_addr(value)?;
                    c.related_address = Some(value.to_owned());
                }
                "rport" if c.related_port.is_none() && c.extensions.is_empty() => {
                    c.related_port = Some(num(A, "rel-port", value)?);
                }
                _ if is_token(name) => c.extensions.push((name.to_owned(), value.to_owned())),
                _ => return Err(invalid(A, "extension-att-name", name)),
            }
        }
        Ok(c)
    }
}

fn check_addr(a: &str) -> Result<(), SdpErrorKind> {
    let ok = a.parse::<IpAddr>().is_ok()
        || a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if a.is_empty() || !ok {
        return Err(invalid("candidate", "connection-address", a));
    }
    Ok(())
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {} typ {}",
            self.foundation,
            self.component,
            self.transport,
            self.priority,
            self.address,
            self.port,
            self.kind.as_str()
        )?;
        if let Some(a) = &self.related_address {
            write!(f, " raddr {a}")?;
        }
        if let Some(p) = self.related_port {
            write!(f, " rport {p}")?;
        }
        for (n, v) in &self.extensions {
            write!(f, " {n} {v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8839_examples() {
        let s = "1 1 UDP 2130706431 203.0.113.141 8998 typ host";
        let c = Candidate::parse(s).unwrap();
        assert_eq!(c.foundation, "1");
        assert_eq!(c.component, 1);
        assert_eq!(c.transport, "UDP");
        assert_eq!(c.priority, 2_130_706_431);
        assert_eq!(c.ip(), Some("203.0.113.141".parse().unwrap()));
        assert_eq!(c.port, 8998);
        assert_eq!(c.kind, CandidateType::Host);
        assert_eq!(c.to_string(), s);

        let s = "2 1 UDP 1694498815 192.0.2.3 45664 typ srflx raddr 203.0.113.141 rport 8998";
        let c = Candidate::parse(s).unwrap();
        assert_eq!(c.kind, CandidateType::Srflx);
        assert_eq!(c.related_address.as_deref(), Some("203.0.113.141"));
        assert_eq!(c.related_port, Some(8998));
        assert_eq!(c.to_string(), s);
    }

    #[test]
    fn extensions_and_tcp() {
        let s = "842163049 1 tcp 1518280447 192.168.1.2 9 typ host tcptype active generation 0";
        let c = Candidate::parse(s).unwrap();
        assert_eq!(
            c.extensions,
            [
                ("tcptype".into(), "active".into()),
                ("generation".into(), "0".into())
            ]
        );
        assert_eq!(c.to_string(), s);
        let s = "1 1 UDP 2122260223 a1b2c3d4-0000-1111-2222-333344445555.local 54321 typ host";
        assert_eq!(Candidate::parse(s).unwrap().ip(), None);
        let s = "3 2 UDP 16777214 2001:db8::7 3479 typ relay raddr 2001:db8::1 rport 50000";
        assert_eq!(Candidate::parse(s).unwrap().to_string(), s);
    }

    #[test]
    fn malformed_rejected() {
        for bad in [
            "",
            "1 1 UDP 1 1.2.3.4 5",
            "1 1 UDP 1 1.2.3.4 5 host",
            "1 1 UDP 1 1.2.3.4 5 typ",
            "1 0 UDP 1 1.2.3.4 5 typ host",
            "1 257 UDP 1 1.2.3.4 5 typ host",
            "1 1 UDP 4294967296 1.2.3.4 5 typ host",
            "1 1 UDP 1 1.2.3.4 65536 typ host",
            "1 1 UDP 1 1.2.3.4 5 typ host raddr",
            "1 1 UDP 1 1.2.3.4 5 typ host rport x",
            "1 1 UDP 1 1.2.3.4 5 typ host raddr a_b",
            "f@o 1 UDP 1 1.2.3.4 5 typ host",
            "123456789012345678901234567890123 1 UDP 1 1.2.3.4 5 typ host",
        ] {
            assert!(Candidate::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn host_builder() {
        let c = Candidate::host("1", 1, "198.51.100.7".parse().unwrap(), 40000);
        assert_eq!(c.priority, 2_130_706_431);
        assert_eq!(
            c.to_string(),
            "1 1 UDP 2130706431 198.51.100.7 40000 typ host"
        );
        assert_eq!(Candidate::parse(&c.to_string()).unwrap(), c);
    }
}

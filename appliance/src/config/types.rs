//! Checked value types of the provisioning model.
//!
//! Each type is built by a `parse` constructor that enforces its invariant; once built the
//! value is valid for the life of the process (a `PortRange` always starts on an even port,
//! an `Fqdn` always has well-formed labels, ...). Constructors return a human-readable
//! message on failure; the checker wraps it with the TOML path and position.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

/// Longest name accepted by [`Fqdn`] (RFC 1035 §2.3.4: 255 octets on the wire, 253 as text).
pub const MAX_FQDN_LEN: usize = 253;
/// Longest label of an [`Fqdn`] (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// Longest [`TrunkName`].
pub const MAX_TRUNK_NAME_LEN: usize = 32;

/// A fully qualified domain name: dot-separated LDH labels (RFC 1035 §2.3.1, RFC 1123 §2.1),
/// stored lower-case without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fqdn(String);

impl Fqdn {
    /// Parses and normalises a domain name. A single label (`localhost`) is accepted; callers
    /// that need a dotted name check [`Fqdn::label_count`].
    pub fn parse(s: &str) -> Result<Self, String> {
        let trimmed = s.strip_suffix('.').unwrap_or(s);
        if trimmed.is_empty() {
            return Err("domain name is empty".into());
        }
        if trimmed.len() > MAX_FQDN_LEN {
            return Err(format!(
                "domain name is longer than {MAX_FQDN_LEN} characters"
            ));
        }
        for label in trimmed.split('.') {
            if label.is_empty() {
                return Err(format!("domain name {s:?} has an empty label"));
            }
            if label.len() > MAX_LABEL_LEN {
                return Err(format!(
                    "label {label:?} is longer than {MAX_LABEL_LEN} characters"
                ));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(format!(
                    "label {label:?} may only hold letters, digits and '-'"
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(format!("label {label:?} may not start or end with '-'"));
            }
        }
        if trimmed.parse::<IpAddr>().is_ok()
            || trimmed.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        {
            return Err(format!("{s:?} is an IP address, not a domain name"));
        }
        Ok(Self(trimmed.to_ascii_lowercase()))
    }

    /// The name as text (lower-case, no trailing dot).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Number of labels (`sbc.example.com` has 3).
    pub fn label_count(&self) -> usize {
        self.0.split('.').count()
    }
}

impl fmt::Display for Fqdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The host part of a `host:port` address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A literal IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A name resolved at run time (or through `[teams.resolve]`).
    Name(Fqdn),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Self::Ip(ip) => write!(f, "{ip}"),
            Self::Name(n) => write!(f, "{n}"),
        }
    }
}

/// `host:port` where host is an IP literal (IPv6 in brackets) or a domain name; the port is
/// mandatory and non-zero.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Address or name.
    pub host: Host,
    /// Port, never 0.
    pub port: u16,
}

impl HostPort {
    /// Parses `192.0.2.1:5060`, `[2001:db8::1]:5061` or `sip.example.com:5061`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Ok(sa) = s.parse::<SocketAddr>() {
            if sa.port() == 0 {
                return Err(format!("{s:?}: port 0 is not allowed"));
            }
            return Ok(Self {
                host: Host::Ip(sa.ip()),
                port: sa.port(),
            });
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?} is not host:port (the port is mandatory)"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{s:?}: {port:?} is not a port number"))?;
        if port == 0 {
            return Err(format!("{s:?}: port 0 is not allowed"));
        }
        if host.contains(':') || host.starts_with('[') {
            return Err(format!(
                "{s:?}: an IPv6 address must be written [addr]:port"
            ));
        }
        let host = Fqdn::parse(host).map_err(|e| format!("{s:?}: {e}"))?;
        Ok(Self {
            host: Host::Name(host),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Name of a `[[trunk]]`: 1 to 32 characters from `[A-Za-z0-9_-]`, case-sensitive.
/// The name `teams` is reserved for the Direct Routing peer defined by `[teams]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrunkName(String);

impl TrunkName {
    /// The reserved name that designates the `[teams]` peer in routes.
    pub const TEAMS: &'static str = "teams";

    /// Checks the character set and length.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > MAX_TRUNK_NAME_LEN {
            return Err(format!(
                "trunk name {s:?} must be 1 to {MAX_TRUNK_NAME_LEN} characters"
            ));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "trunk name {s:?} may only hold letters, digits, '_' and '-'"
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the reserved name `teams`.
    pub fn is_teams(&self) -> bool {
        self.0 == Self::TEAMS
    }
}

impl fmt::Display for TrunkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Inclusive UDP port range for media. Invariant: `min` is even (RTP on even ports,
/// RFC 3550 §11), `1024 <= min < max`, and the range holds at least one pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    min: u16,
    max: u16,
}

impl PortRange {
    /// Builds the range, checking the invariant.
    pub fn new(min: u16, max: u16) -> Result<Self, String> {
        if min < 1024 {
            return Err(format!(
                "port_min {min} is below 1024 (privileged ports are not used for media)"
            ));
        }
        if !min.is_multiple_of(2) {
            return Err(format!(
                "port_min {min} is odd; RTP uses even ports (RFC 3550 §11), start at {}",
                min - 1
            ));
        }
        if max <= min {
            return Err(format!(
                "port_max {max} must be greater than port_min {min}"
            ));
        }
        Ok(Self { min, max })
    }

    /// First port (even).
    pub fn min(self) -> u16 {
        self.min
    }

    /// Last port (inclusive).
    pub fn max(self) -> u16 {
        self.max
    }

    /// Number of whole even/odd port pairs in the range.
    pub fn pairs(self) -> usize {
        let ports = usize::from(self.max) - usize::from(self.min) + 1;
        ports / 2
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.min, self.max)
    }
}

/// The dataplane cores: a non-empty, sorted list of distinct CPU ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CoreList(Vec<usize>);

impl CoreList {
    /// Builds the list; rejects empty lists and duplicates, sorts the rest.
    pub fn new(mut cores: Vec<usize>) -> Result<Self, String> {
        if cores.is_empty() {
            return Err("the core list is empty".into());
        }
        cores.sort_unstable();
        if let Some(w) = cores.windows(2).find(|w| w.first() == w.get(1)) {
            return Err(format!(
                "core {} is listed twice",
                w.first().copied().unwrap_or(0)
            ));
        }
        Ok(Self(cores))
    }

    /// The CPU ids, ascending.
    pub fn as_slice(&self) -> &[usize] {
        &self.0
    }

    /// Number of dataplane workers (one per core).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false (the invariant forbids empty lists); present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Parses a Linux cpulist such as `0-3,8,10-11` (the format of `/sys/devices/system/cpu/online`).
pub fn parse_cpulist(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.trim().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("{part:?} is not a CPU number or range like 2-5");
        if let Some((a, b)) = part.split_once('-') {
            let a: usize = a.trim().parse().map_err(|_| bad())?;
            let b: usize = b.trim().parse().map_err(|_| bad())?;
            if b < a || b - a > 4096 {
                return Err(bad());
            }
            out.extend(a..=b);
        } else {
            out.push(part.parse().map_err(|_| bad())?);
        }
    }
    Ok(out)
}

/// Parses a CIDR network (`192.0.2.0/24`, `2001:db8::/32`) or a bare address (a host
/// route, `/32` or `/128`) into an [`IpNet`] (the `ipnet` crate). Host bits beyond the
/// prefix are an error that names the intended network.
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let net = match s.split_once('/') {
        None => s
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("{s:?} is not a CIDR network (expected e.g. 192.0.2.0/24)"))?,
        Some((a, p)) => {
            let addr: IpAddr = a
                .parse()
                .map_err(|_| format!("{s:?} is not a CIDR network (expected e.g. 192.0.2.0/24)"))?;
            let bits = if addr.is_ipv4() { 32 } else { 128 };
            p.parse::<u8>()
                .ok()
                .and_then(|v| IpNet::new(addr, v).ok())
                .ok_or_else(|| format!("{s:?}: prefix length must be 0 to {bits}"))?
        }
    };
    if net.trunc() != net {
        return Err(format!(
            "{s:?} has host bits set; did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Parses a duration written as one or more `<integer><unit>` groups, units `ms`, `s`, `m`,
/// `h`, `d`: `"250ms"`, `"60s"`, `"5m"`, `"1h30m"`. A unit is mandatory (a bare `"60"` is
/// rejected so that nobody has to guess whether it means seconds or milliseconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!("{s:?} is not a duration; write a number with a unit, e.g. \"250ms\", \"60s\", \"5m\", \"1h\"")
    };
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let (num, tail) = rest.split_at(digits);
        let n: u64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(unit_len);
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
            "d" => Duration::from_secs(n.checked_mul(86_400).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = tail.trim_start();
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("60").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn fqdn() {
        assert_eq!(
            Fqdn::parse("SBC.Example.com.").map(|f| f.to_string()),
            Ok("sbc.example.com".into())
        );
        assert!(Fqdn::parse("a..b").is_err());
        assert!(Fqdn::parse("-a.b").is_err());
        assert!(Fqdn::parse("a_b.c").is_err());
        assert!(Fqdn::parse("10.0.0.1").is_err());
        assert!(Fqdn::parse(&"a".repeat(64)).is_err());
    }

    #[test]
    fn host_port() {
        let hp = HostPort::parse("[::1]:5061").map(|h| h.to_string());
        assert_eq!(hp, Ok("[::1]:5061".into()));
        assert!(HostPort::parse("sip.example.com").is_err());
        assert!(HostPort::parse("sip.example.com:0").is_err());
        assert!(HostPort::parse("::1:5060").is_err());
        assert_eq!(
            HostPort::parse("sip.pstnhub.microsoft.com:5061").map(|h| h.port),
            Ok(5061)
        );
    }

    #[test]
    fn cidr() {
        let n = parse_cidr("10.1.0.0/16");
        assert!(n.is_ok_and(|n| n.contains(&"10.1.200.3".parse().unwrap_or(IpAddr::from([0; 4])))));
        assert!(parse_cidr("10.1.0.1/16").is_err_and(|e| e.contains("10.1.0.0/16")));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("2001:db8::/32").is_ok());
        assert!(parse_cidr("0.0.0.0/0").is_ok());
        assert_eq!(parse_cidr("192.0.2.7").map(|n| n.prefix_len()), Ok(32));
        assert_eq!(parse_cidr("2001:db8::7").map(|n| n.prefix_len()), Ok(128));
        assert!(parse_cidr("banana/8").is_err());
        assert!(parse_cidr("10.0.0.0/x").is_err());
    }

    #[test]
    fn ports_and_cores() {
        assert!(PortRange::new(30001, 40000).is_err());
        assert!(PortRange::new(80, 400).is_err());
        assert!(PortRange::new(30000, 30000).is_err());
        assert_eq!(PortRange::new(30000, 39999).map(PortRange::pairs), Ok(5000));
        assert_eq!(PortRange::new(30000, 30002).map(PortRange::pairs), Ok(1));
        assert!(CoreList::new(vec![]).is_err());
        assert!(CoreList::new(vec![1, 1]).is_err());
        assert_eq!(
            CoreList::new(vec![3, 1]).map(|c| c.as_slice().to_vec()),
            Ok(vec![1, 3])
        );
        assert_eq!(parse_cpulist("0-2,5\n"), Ok(vec![0, 1, 2, 5]));
        assert!(parse_cpulist("3-1").is_err());
        assert!(TrunkName::parse("left").is_ok());
        assert!(TrunkName::parse("bad name").is_err());
    }
}

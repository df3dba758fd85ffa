//! Which attached interface a forwarded packet leaves from.
//!
//! The egress of a forwarded packet is the attached interface that holds our address on
//! the outgoing leg (the worker's socket for that leg is bound to it). The kernel's FIB
//! lookup then resolves the next hop and its MAC on that interface, so routes and the
//! neighbour table stay the kernel's.
//!
//! The addresses of the attached interfaces are read when an interface is attached (in
//! the namespace it is attached in) and read again when a promotion names an address not
//! seen yet.

use std::net::IpAddr;

/// Addresses of the attached interfaces: IP → ifindex, ifindex → MAC.
#[derive(Debug, Default)]
pub(crate) struct Addresses {
    ips: Vec<(IpAddr, u32)>,
    macs: Vec<(u32, [u8; 6])>,
}

impl Addresses {
    /// Re-reads the addresses of the interfaces `attached` (name, ifindex).
    pub(crate) fn refresh(&mut self, attached: &[(&str, u32)]) {
        let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
            return;
        };
        self.ips.clear();
        self.macs.clear();
        for a in addrs {
            let Some(addr) = a.address else { continue };
            let Some(&(_, ifindex)) = attached.iter().find(|(n, _)| *n == a.interface_name) else {
                continue;
            };
            let ip = if let Some(s) = addr.as_sockaddr_in() {
                IpAddr::V4(s.ip())
            } else if let Some(s) = addr.as_sockaddr_in6() {
                IpAddr::V6(s.ip())
            } else {
                if let Some(mac) = addr.as_link_addr().and_then(|l| l.addr()) {
                    self.macs.push((ifindex, mac));
                }
                continue;
            };
            self.ips.push((ip, ifindex));
        }
    }

    /// The ifindex and MAC of the attached interface that holds `ip`, if any.
    pub(crate) fn holder(&self, ip: IpAddr) -> Option<(u32, [u8; 6])> {
        let ifindex = self.ips.iter().find(|(a, _)| *a == ip).map(|(_, i)| *i)?;
        let mac = self
            .macs
            .iter()
            .find(|(i, _)| *i == ifindex)
            .map(|(_, m)| *m)?;
        Some((ifindex, mac))
    }
}

/// The interfaces (of this network namespace) that hold `ip`, in the order the kernel
/// lists them.
#[must_use]
pub fn interfaces_holding(ip: IpAddr) -> Vec<String> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for a in addrs {
        let Some(addr) = a.address else { continue };
        let held = if let Some(s) = addr.as_sockaddr_in() {
            IpAddr::V4(s.ip()) == ip
        } else if let Some(s) = addr.as_sockaddr_in6() {
            IpAddr::V6(s.ip()) == ip
        } else {
            false
        };
        if held && !out.contains(&a.interface_name) {
            out.push(a.interface_name);
        }
    }
    out
}

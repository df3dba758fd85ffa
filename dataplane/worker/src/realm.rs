//! Media realms in a worker: the local address and port of every socket of its slice.
//!
//! A realm is a local address and a port range (`[[media.realm]]`: an interface facing
//! one network, IPv4 or IPv6). Each worker owns a slice of every realm's range, taken in
//! blocks of four ports as a single range always was. Its sockets are numbered realm after
//! realm, two per *leg slot* (RTP on the even port, RTCP on the next), so socket `s` is
//! leg slot `s / 2` whatever its realm, and a port is found by the same arithmetic as
//! before within its realm's segment.
//!
//! A pair slot takes one leg slot for each side, each from the realm of that side's trunk:
//! leg A on realm "outside" (IPv4) and leg B on realm "inside" (IPv6) is one pair. The
//! relay maps a receiving leg slot to its pair and side with one table load and finds the
//! sending socket in the pair (see [`crate::relay`]); nothing on the packet path asks
//! which realm a socket is in. With one realm and a fresh table, pair `p` gets leg slots
//! `2p` and `2p + 1`: the ports of a single range are those it always had.

use std::net::{IpAddr, SocketAddr};

use socket2::Socket;

use crate::sock;
use crate::types::{DataplaneError, RealmConfig, RealmId};

/// The part of one realm's range a worker owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    /// The realm.
    pub(crate) realm: RealmId,
    /// Local address of its sockets.
    pub(crate) ip: IpAddr,
    /// Port of its first leg slot's RTP socket (even).
    pub(crate) base_port: u16,
    /// Its first leg slot in the worker's numbering.
    pub(crate) first_leg: u32,
    /// Leg slots (two ports each).
    pub(crate) legs: u32,
}

/// Where every socket of one worker lives: one segment (address, first port, leg slots)
/// per realm, in realm order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SocketPlan {
    segs: Vec<Segment>,
}

impl SocketPlan {
    /// One realm bound on `ip` with `pairs` pairs (four ports each) from `base_port`.
    #[must_use]
    pub fn single(ip: IpAddr, base_port: u16, pairs: u32) -> SocketPlan {
        let mut p = SocketPlan::default();
        p.push(RealmId(0), ip, base_port, pairs * 2);
        p
    }

    /// Append realm `realm`'s segment of `legs` leg slots from `base_port` on `ip`.
    pub(crate) fn push(&mut self, realm: RealmId, ip: IpAddr, base_port: u16, legs: u32) {
        let first_leg = self.legs();
        self.segs.push(Segment {
            realm,
            ip,
            base_port,
            first_leg,
            legs,
        });
    }

    /// Leg slots of every realm together.
    #[must_use]
    pub fn legs(&self) -> u32 {
        self.segs.last().map_or(0, |s| s.first_leg + s.legs)
    }

    /// Sockets (ports) of every realm together.
    #[must_use]
    pub fn sockets(&self) -> u32 {
        self.legs() * 2
    }

    /// Pair slots: as many as the leg slots can fill, whichever realms the pairs use.
    #[must_use]
    pub fn pairs(&self) -> u32 {
        self.legs() / 2
    }

    /// The segments, in realm order.
    pub(crate) fn segments(&self) -> &[Segment] {
        &self.segs
    }

    fn segment_of_leg(&self, leg: u32) -> Option<&Segment> {
        self.segs
            .iter()
            .find(|s| leg >= s.first_leg && leg - s.first_leg < s.legs)
    }

    /// The realm of leg slot `leg`.
    pub(crate) fn realm_of_leg(&self, leg: u32) -> Option<RealmId> {
        self.segment_of_leg(leg).map(|s| s.realm)
    }

    /// RTP port of leg slot `leg` (0 when out of range).
    #[must_use]
    pub fn port_of_leg(&self, leg: u32) -> u16 {
        self.segment_of_leg(leg)
            .and_then(|s| {
                let port = u32::from(s.base_port) + (leg - s.first_leg) * 2;
                u16::try_from(port).ok()
            })
            .unwrap_or(0)
    }

    /// The leg slot whose RTP port is `port` in realm `realm`'s segment (`None`: not an
    /// RTP port of this slice in that realm).
    #[must_use]
    pub fn leg_at(&self, realm: RealmId, port: u16) -> Option<u32> {
        let s = self.segs.iter().find(|s| s.realm == realm)?;
        let off = u32::from(port.checked_sub(s.base_port)?);
        (off % 2 == 0 && off / 2 < s.legs).then(|| s.first_leg + off / 2)
    }

    /// The socket whose port is `port` in realm `realm`'s segment (RTP or RTCP; `None`:
    /// not a port of this slice in that realm).
    pub(crate) fn socket_at(&self, realm: RealmId, port: u16) -> Option<u32> {
        let s = self.segs.iter().find(|s| s.realm == realm)?;
        let off = u32::from(port.checked_sub(s.base_port)?);
        (off < s.legs * 2).then(|| s.first_leg * 2 + off)
    }

    /// Local address of socket `sock` (leg slot `sock / 2`, RTCP when odd).
    #[must_use]
    pub fn addr(&self, sock: u32) -> Option<SocketAddr> {
        let s = self.segment_of_leg(sock / 2)?;
        let port = u32::from(s.base_port) + (sock - s.first_leg * 2);
        Some(SocketAddr::new(s.ip, u16::try_from(port).ok()?))
    }

    /// The local address of the first realm (for checks made once per worker).
    pub(crate) fn first_ip(&self) -> Option<IpAddr> {
        self.segs.first().map(|s| s.ip)
    }

    /// Bind socket `sock` of the slice.
    pub(crate) fn bind(&self, sock: u32) -> Result<Socket, DataplaneError> {
        let addr = self
            .addr(sock)
            .ok_or(DataplaneError::Config("socket beyond the worker's slice"))?;
        sock::bind_udp(addr, sock::SOCKET_BUFFER)
    }
}

/// Pairs (blocks of four ports) of a realm's range, and its first port (`port_min`
/// rounded up to even).
pub(crate) fn realm_blocks(r: &RealmConfig) -> (u16, u32) {
    let base = r.port_min.saturating_add(r.port_min & 1);
    if r.port_max < base {
        return (base, 0);
    }
    (base, (u32::from(r.port_max) - u32::from(base) + 1) / 4)
}

/// The socket plan of every worker: an equal share of every realm's blocks each, the last
/// worker taking each realm's remainder.
pub(crate) fn worker_plans(
    realms: &[RealmConfig],
    n_workers: u32,
) -> Result<Vec<SocketPlan>, DataplaneError> {
    let mut plans = vec![SocketPlan::default(); n_workers as usize];
    for (r, realm_cfg) in (0u16..).zip(realms) {
        let (base, blocks) = realm_blocks(realm_cfg);
        let per = blocks / n_workers;
        for (w, plan) in (0u32..).zip(plans.iter_mut()) {
            let wbase = u16::try_from(u32::from(base) + per * w * 4)
                .map_err(|_| DataplaneError::Config("port overflow"))?;
            let pairs = slice_pairs(blocks, n_workers, w);
            plan.push(RealmId(r), realm_cfg.bind_ip, wbase, pairs * 2);
        }
    }
    Ok(plans)
}

/// Pairs of worker `w` of `n`: an equal share, the last one taking the remainder.
fn slice_pairs(total: u32, n: u32, w: u32) -> u32 {
    let per = total / n;
    if w + 1 == n {
        total - per * w
    } else {
        per
    }
}

/// Whether two realms could take the same local port: their ranges meet and their
/// addresses can be the same socket address (equal, or one is the wildcard of the
/// other's family, or `::`, which is dual stack).
#[must_use]
pub fn realms_collide(a: &RealmConfig, b: &RealmConfig) -> bool {
    let ranges_meet = a.port_min <= b.port_max && b.port_min <= a.port_max;
    let wild =
        |x: IpAddr, y: IpAddr| x.is_unspecified() && (x.is_ipv4() == y.is_ipv4() || x.is_ipv6());
    let same = a.bind_ip == b.bind_ip || wild(a.bind_ip, b.bind_ip) || wild(b.bind_ip, a.bind_ip);
    ranges_meet && same
}

#[cfg(test)]
mod tests {
    use super::*;

    fn realm(ip: &str, min: u16, max: u16) -> RealmConfig {
        RealmConfig {
            bind_ip: ip.parse().unwrap(),
            port_min: min,
            port_max: max,
        }
    }

    #[test]
    fn sockets_are_numbered_realm_after_realm() {
        let mut p = SocketPlan::default();
        p.push(RealmId(0), "192.0.2.1".parse().unwrap(), 20000, 4);
        p.push(RealmId(1), "2001:db8::1".parse().unwrap(), 40000, 6);
        assert_eq!((p.legs(), p.sockets(), p.pairs()), (10, 20, 5));
        assert_eq!(p.addr(0), Some("192.0.2.1:20000".parse().unwrap()));
        assert_eq!(p.addr(7), Some("192.0.2.1:20007".parse().unwrap()));
        assert_eq!(p.addr(8), Some("[2001:db8::1]:40000".parse().unwrap()));
        assert_eq!(p.addr(19), Some("[2001:db8::1]:40011".parse().unwrap()));
        assert_eq!(p.addr(20), None);
        assert_eq!(p.port_of_leg(3), 20006);
        assert_eq!(p.port_of_leg(4), 40000);
        assert_eq!(p.port_of_leg(10), 0);
        assert_eq!(p.realm_of_leg(3), Some(RealmId(0)));
        assert_eq!(p.realm_of_leg(9), Some(RealmId(1)));
        assert_eq!(p.realm_of_leg(10), None);
        assert_eq!(p.leg_at(RealmId(0), 20006), Some(3));
        assert_eq!(p.leg_at(RealmId(1), 40000), Some(4));
        assert_eq!(p.leg_at(RealmId(1), 40010), Some(9));
        assert_eq!(p.leg_at(RealmId(1), 40001), None, "an RTCP port");
        assert_eq!(p.leg_at(RealmId(1), 40012), None, "past the segment");
        assert_eq!(p.leg_at(RealmId(0), 40000), None, "another realm's port");
        assert_eq!(p.leg_at(RealmId(2), 20000), None, "no such realm");
        for sock in 0..p.sockets() {
            let a = p.addr(sock).unwrap();
            let realm = p.realm_of_leg(sock / 2).unwrap();
            assert_eq!(p.socket_at(realm, a.port()), Some(sock));
        }
        assert_eq!(p.socket_at(RealmId(0), 20008), None, "past the segment");
        assert_eq!(p.socket_at(RealmId(1), 39999), None, "before the segment");
    }

    #[test]
    fn a_single_realm_keeps_the_ports_of_a_single_range() {
        let p = SocketPlan::single("127.0.0.1".parse().unwrap(), 30000, 3);
        for sock in 0..12 {
            assert_eq!(p.addr(sock).map(|a| a.port()), Some(30000 + sock as u16));
        }
        assert_eq!(p.pairs(), 3);
    }

    #[test]
    fn realms_collide_on_shared_addresses_and_ports_only() {
        let a = realm("192.0.2.1", 20000, 20999);
        assert!(realms_collide(&a, &realm("192.0.2.1", 20998, 21999)));
        assert!(!realms_collide(&a, &realm("192.0.2.1", 21000, 21999)));
        assert!(!realms_collide(&a, &realm("192.0.2.2", 20000, 20999)));
        assert!(realms_collide(&a, &realm("0.0.0.0", 20000, 20999)));
        assert!(realms_collide(&a, &realm("::", 20500, 20600)));
        assert!(!realms_collide(&a, &realm("2001:db8::1", 20000, 20999)));
        assert!(!realms_collide(
            &realm("0.0.0.0", 20000, 20999),
            &realm("2001:db8::1", 20000, 20999)
        ));
    }

    #[test]
    fn blocks_are_four_ports_from_an_even_start() {
        assert_eq!(realm_blocks(&realm("::1", 20001, 20010)), (20002, 2));
        assert_eq!(realm_blocks(&realm("::1", 20000, 20003)), (20000, 1));
        assert_eq!(realm_blocks(&realm("::1", 20000, 19999)), (20000, 0));
    }
}

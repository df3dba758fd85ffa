//! Ethernet / IPv4 / IPv6 / UDP frames of the AF_XDP backend: the view of a received frame
//! (every length checked against the frame before it is used, checksums verified as the
//! kernel's UDP stack would) and the headers of a frame to send, written in place in front
//! of the payload the relay left in the same UMEM chunk.
//!
//! Only what the XDP program redirects is expected here: Ethernet II without VLAN tags,
//! IPv4 without fragmentation, IPv6 with UDP as the first next header. Anything else is
//! refused (`None`) and counted as malformed by the caller.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Ethernet header length (no VLAN tag).
pub(crate) const ETH_LEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const IPV4_LEN: usize = 20;
const IPV6_LEN: usize = 40;
const UDP_LEN: usize = 8;
const PROTO_UDP: u8 = 17;
/// TTL / hop limit of a frame we send (the Linux default a socket's send carries).
const TTL: u8 = 64;

/// A received UDP datagram: addresses, the sender's MAC and where the payload lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UdpFrame {
    /// Source address and port.
    pub(crate) src: SocketAddr,
    /// Destination (ours) address and port.
    pub(crate) dst: SocketAddr,
    /// Source MAC: the next hop toward `src`.
    pub(crate) src_mac: [u8; 6],
    /// Offset of the UDP payload in the frame.
    pub(crate) payload: usize,
    /// Its length.
    pub(crate) len: usize,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let x = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([*x.first()?, *x.get(1)?]))
}

fn mac(b: &[u8], at: usize) -> Option<[u8; 6]> {
    b.get(at..at + 6)?.try_into().ok()
}

/// One's complement sum of `data` as big-endian 16-bit words (RFC 1071), odd byte padded.
fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut words = data.chunks_exact(2);
    for w in words.by_ref() {
        if let [hi, lo] = w {
            acc = acc.wrapping_add(u32::from(u16::from_be_bytes([*hi, *lo])));
        }
    }
    if let [last] = words.remainder() {
        acc = acc.wrapping_add(u32::from(*last) << 8);
    }
    // Fold now and then so a jumbo payload cannot overflow.
    (acc & 0xffff) + (acc >> 16)
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// RFC 768 pseudo-header sum (IPv4) or RFC 8200 §8.1 (IPv6), without the UDP bytes.
fn pseudo(src: IpAddr, dst: IpAddr, udp_len: usize) -> u32 {
    let mut acc = 0;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            acc = sum(acc, &s.octets());
            acc = sum(acc, &d.octets());
        }
        (s, d) => {
            acc = sum(acc, &v6(s).octets());
            acc = sum(acc, &v6(d).octets());
        }
    }
    let len = u32::try_from(udp_len).unwrap_or(0);
    acc + u32::from(PROTO_UDP) + (len >> 16) + (len & 0xffff)
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V6(a) => a,
        IpAddr::V4(a) => a.to_ipv6_mapped(),
    }
}

/// Parses a received frame. `None`: not Ethernet/IPv4-or-IPv6/UDP, truncated, a fragment,
/// or a header or UDP checksum that does not verify.
pub(crate) fn parse(f: &[u8]) -> Option<UdpFrame> {
    let src_mac = mac(f, 6)?;
    let (src_ip, dst_ip, udp_at, ip_end) = match be16(f, 12)? {
        ETHERTYPE_IPV4 => {
            let ip = f.get(ETH_LEN..)?;
            let vihl = *ip.first()?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            if vihl >> 4 != 4 || ihl < IPV4_LEN || *ip.get(9)? != PROTO_UDP {
                return None;
            }
            let total = usize::from(be16(ip, 2)?);
            // MF or a fragment offset: the kernel reassembles those.
            if be16(ip, 6)? & 0x3fff != 0 || total < ihl + UDP_LEN || total > ip.len() {
                return None;
            }
            if fold(sum(0, ip.get(..ihl)?)) != 0xffff {
                return None;
            }
            let s: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let d: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            let (s, d) = (Ipv4Addr::from(s), Ipv4Addr::from(d));
            (IpAddr::V4(s), IpAddr::V4(d), ETH_LEN + ihl, ETH_LEN + total)
        }
        ETHERTYPE_IPV6 => {
            let ip = f.get(ETH_LEN..)?;
            if *ip.first()? >> 4 != 6 || *ip.get(6)? != PROTO_UDP {
                return None;
            }
            let payload = usize::from(be16(ip, 4)?);
            if payload < UDP_LEN || IPV6_LEN + payload > ip.len() {
                return None;
            }
            let s: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let d: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            let (s, d) = (Ipv6Addr::from(s), Ipv6Addr::from(d));
            (
                IpAddr::V6(s),
                IpAddr::V6(d),
                ETH_LEN + IPV6_LEN,
                ETH_LEN + IPV6_LEN + payload,
            )
        }
        _ => return None,
    };
    let udp_len = usize::from(be16(f, udp_at + 4)?);
    if udp_len < UDP_LEN || udp_at + udp_len > ip_end {
        return None;
    }
    let check = be16(f, udp_at + 6)?;
    // RFC 768: 0 is "no checksum" over IPv4; RFC 8200 §8.1: mandatory over IPv6.
    if check != 0 || src_ip.is_ipv6() {
        let acc = sum(
            pseudo(src_ip, dst_ip, udp_len),
            f.get(udp_at..udp_at + udp_len)?,
        );
        if fold(acc) != 0xffff {
            return None;
        }
    }
    Some(UdpFrame {
        src: SocketAddr::new(src_ip, be16(f, udp_at)?),
        dst: SocketAddr::new(dst_ip, be16(f, udp_at + 2)?),
        src_mac,
        payload: udp_at + UDP_LEN,
        len: udp_len - UDP_LEN,
    })
}

/// Header bytes in front of the payload of a frame sent from `src`'s family.
pub(crate) fn header_len(src: SocketAddr) -> usize {
    ETH_LEN + if src.is_ipv4() { IPV4_LEN } else { IPV6_LEN } + UDP_LEN
}

/// The link layer of a frame to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Link {
    /// Our MAC on the egress interface.
    pub(crate) src: [u8; 6],
    /// The next hop's.
    pub(crate) dst: [u8; 6],
}

/// Writes Ethernet, IP and UDP headers from `src` to `dst` in front of the `len` payload
/// bytes at `payload` in `f`, with the IPv4 header and UDP checksums. Returns the frame's
/// first byte and length; `None` when the families differ, the headers do not fit in
/// front of the payload, or the payload runs past `f`.
pub(crate) fn build(
    f: &mut [u8],
    payload: usize,
    len: usize,
    src: SocketAddr,
    dst: SocketAddr,
    link: Link,
) -> Option<(usize, usize)> {
    if src.is_ipv4() != dst.is_ipv4() || payload + len > f.len() {
        return None;
    }
    let start = payload.checked_sub(header_len(src))?;
    let udp_len = u16::try_from(UDP_LEN + len).ok()?;
    let frame = f.get_mut(start..payload + len)?;
    let (eth, rest) = frame.split_at_mut(ETH_LEN);
    eth.get_mut(..6)?.copy_from_slice(&link.dst);
    eth.get_mut(6..12)?.copy_from_slice(&link.src);
    let ip_len = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            eth.get_mut(12..14)?
                .copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
            let ip = rest.get_mut(..IPV4_LEN)?;
            let total = u16::try_from(IPV4_LEN).ok()? + udp_len;
            ip.copy_from_slice(&[
                0x45, 0, 0, 0, 0, 0, 0x40, 0, TTL, PROTO_UDP, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ]);
            ip.get_mut(2..4)?.copy_from_slice(&total.to_be_bytes());
            ip.get_mut(12..16)?.copy_from_slice(&s.octets());
            ip.get_mut(16..20)?.copy_from_slice(&d.octets());
            let check = !fold(sum(0, ip));
            ip.get_mut(10..12)?.copy_from_slice(&check.to_be_bytes());
            IPV4_LEN
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            eth.get_mut(12..14)?
                .copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
            let ip = rest.get_mut(..IPV6_LEN)?;
            ip.fill(0);
            *ip.first_mut()? = 0x60;
            ip.get_mut(4..6)?.copy_from_slice(&udp_len.to_be_bytes());
            *ip.get_mut(6)? = PROTO_UDP;
            *ip.get_mut(7)? = TTL;
            ip.get_mut(8..24)?.copy_from_slice(&s.octets());
            ip.get_mut(24..40)?.copy_from_slice(&d.octets());
            IPV6_LEN
        }
        _ => return None,
    };
    let udp = rest.get_mut(ip_len..)?;
    udp.get_mut(0..2)?
        .copy_from_slice(&src.port().to_be_bytes());
    udp.get_mut(2..4)?
        .copy_from_slice(&dst.port().to_be_bytes());
    udp.get_mut(4..6)?.copy_from_slice(&udp_len.to_be_bytes());
    udp.get_mut(6..8)?.copy_from_slice(&[0, 0]);
    let acc = sum(pseudo(src.ip(), dst.ip(), usize::from(udp_len)), udp);
    let mut check = !fold(acc);
    if check == 0 {
        // RFC 768: a computed 0 is sent as all ones.
        check = 0xffff;
    }
    udp.get_mut(6..8)?.copy_from_slice(&check.to_be_bytes());
    Some((start, payload + len - start))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: Link = Link {
        src: [2, 0, 0, 0, 0, 1],
        dst: [2, 0, 0, 0, 0, 2],
    };

    fn roundtrip(src: &str, dst: &str) {
        let (src, dst): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        let mut f = vec![0u8; 512];
        let payload = 200;
        for (i, b) in f[payload..payload + 171].iter_mut().enumerate() {
            *b = i as u8;
        }
        let (start, len) = build(&mut f, payload, 171, src, dst, LINK).unwrap();
        assert_eq!(start + len, payload + 171);
        let u = parse(&f[start..start + len]).expect("our own frame parses");
        assert_eq!((u.src, u.dst, u.src_mac, u.len), (src, dst, LINK.src, 171));
        assert_eq!(start + u.payload, payload);
        // One flipped bit anywhere in the IP or UDP part is refused, but in the fields no
        // checksum covers: IPv6 traffic class, flow label and hop limit (RFC 8200 §8.1).
        let unprotected = |at: usize| {
            src.is_ipv6() && ((ETH_LEN + 1..ETH_LEN + 4).contains(&at) || at == ETH_LEN + 7)
        };
        for at in (ETH_LEN..len).filter(|&at| !unprotected(at)) {
            let mut g = f[start..start + len].to_vec();
            g[at] ^= 0x10;
            assert_eq!(parse(&g), None, "bit flip at {at} went unseen");
        }
    }

    #[test]
    fn frames_built_here_parse_back_and_checksums_catch_corruption() {
        roundtrip("192.0.2.2:40000", "192.0.2.1:30000");
        roundtrip("[2001:db8::2]:40002", "[2001:db8::1]:30000");
    }

    #[test]
    fn truncated_fragmented_and_foreign_frames_are_refused() {
        let (src, dst) = (
            "192.0.2.2:40000".parse().unwrap(),
            "192.0.2.1:30000".parse().unwrap(),
        );
        let mut f = vec![0u8; 256];
        let (start, len) = build(&mut f, 100, 40, src, dst, LINK).unwrap();
        let good = f[start..start + len].to_vec();
        assert!(parse(&good).is_some());
        for cut in 0..len {
            assert_eq!(parse(&good[..cut]), None, "truncated to {cut}");
        }
        // ARP, a fragment (MF set, header checksum fixed), TCP.
        let mut arp = good.clone();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(parse(&arp), None);
        let mut frag = good.clone();
        frag[ETH_LEN + 6] |= 0x20;
        frag[ETH_LEN + 10..ETH_LEN + 12].fill(0);
        let c = !fold(sum(0, &frag[ETH_LEN..ETH_LEN + IPV4_LEN]));
        frag[ETH_LEN + 10..ETH_LEN + 12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(parse(&frag), None);
        // A UDP length beyond the IP packet.
        let mut long = good.clone();
        long[ETH_LEN + IPV4_LEN + 4..ETH_LEN + IPV4_LEN + 6]
            .copy_from_slice(&(u16::try_from(len).unwrap()).to_be_bytes());
        assert_eq!(parse(&long), None);
        // No checksum over IPv4 is accepted; over IPv6 it is not.
        let mut none = good;
        none[ETH_LEN + IPV4_LEN + 6..ETH_LEN + IPV4_LEN + 8].fill(0);
        assert!(parse(&none).is_some());
        let (s6, d6) = (
            "[2001:db8::2]:1".parse().unwrap(),
            "[2001:db8::1]:2".parse().unwrap(),
        );
        let (start, len) = build(&mut f, 100, 40, s6, d6, LINK).unwrap();
        let mut v6 = f[start..start + len].to_vec();
        v6[ETH_LEN + IPV6_LEN + 6..ETH_LEN + IPV6_LEN + 8].fill(0);
        assert_eq!(parse(&v6), None);
    }

    proptest::proptest! {
        /// Any bytes: no panic, and what parses names a payload inside the frame.
        #[test]
        fn parse_never_panics_and_stays_in_bounds(f in proptest::collection::vec(0u8..=255, 0..200)) {
            if let Some(u) = parse(&f) {
                proptest::prop_assert!(u.payload + u.len <= f.len());
                proptest::prop_assert!(u.payload >= ETH_LEN + IPV4_LEN + UDP_LEN);
            }
        }

        /// A valid frame with any one byte changed after the Ethernet header: no panic,
        /// and still in bounds when it parses.
        #[test]
        fn mutated_frames_stay_in_bounds(at in 0usize..90, v in 0u8..=255, v6 in proptest::bool::ANY) {
            let (src, dst): (SocketAddr, SocketAddr) = if v6 {
                ("[2001:db8::2]:40000".parse().unwrap(), "[2001:db8::1]:30000".parse().unwrap())
            } else {
                ("192.0.2.2:40000".parse().unwrap(), "192.0.2.1:30000".parse().unwrap())
            };
            let mut f = vec![0u8; 256];
            let (start, len) = build(&mut f, 100, 40, src, dst, LINK).unwrap();
            let mut g = f[start..start + len].to_vec();
            if let Some(b) = g.get_mut(ETH_LEN + at) {
                *b = v;
            }
            if let Some(u) = parse(&g) {
                proptest::prop_assert!(u.payload + u.len <= g.len());
            }
        }
    }

    #[test]
    fn build_refuses_what_does_not_fit() {
        let mut f = vec![0u8; 128];
        let (v4, v6): (SocketAddr, SocketAddr) = (
            "192.0.2.2:1".parse().unwrap(),
            "[2001:db8::1]:2".parse().unwrap(),
        );
        assert_eq!(build(&mut f, 100, 10, v4, v6, LINK), None, "families");
        assert_eq!(build(&mut f, 41, 10, v4, v4, LINK), None, "no headroom");
        assert!(build(&mut f, 42, 10, v4, v4, LINK).is_some());
        assert_eq!(build(&mut f, 100, 29, v4, v4, LINK), None, "past the end");
    }
}

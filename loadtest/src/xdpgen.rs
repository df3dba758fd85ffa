//! The AF_XDP generator (`--generator af_xdp --ifname IF`): a media worker's packets
//! leave and come back through one AF_XDP socket on the generator's interface instead of
//! the kernel's UDP stack, so one core produces and takes far more packets per second.
//!
//! - **Send.** The worker writes the RTP packet into a chunk of the socket's UMEM, 42
//!   bytes in; [`XdpIo::push`] writes the Ethernet, IPv4 and UDP headers in front
//!   (`etherparse`, checksums complete): source the worker socket's address and port,
//!   destination the stream's, destination MAC the neighbour table's entry for the
//!   destination (read from `/proc/net/arp` once per address, after a datagram through the
//!   kernel made it resolve; the destination must be on the interface's link).
//! - **Receive.** The data plane's XDP program (`portcullis_xdp::FastPath`, loaded
//!   without promoted legs, so it only redirects) is attached to the interface, the socket
//!   is in its XSKMAP and every worker socket address is claimed for it: the relayed
//!   packets to those addresses come up through the socket; everything else (SIP, ARP)
//!   goes to the kernel's stack. Frames are parsed with every length checked and the IPv4
//!   and UDP checksums verified (a UDP checksum left partial by the sender's offload
//!   passes, as the kernel lets it): a frame that fails is counted as foreign, as the
//!   kernel would have dropped it.
//! - The worker's UDP sockets stay bound: they keep the ports reserved.
//!
//! IPv4 only, one worker (queue 0), copy mode (a veth has no zero-copy).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use etherparse::{
    EtherType, Ethernet2Header, IpNumber, Ipv4Header, NetSlice, SlicedPacket, TransportSlice,
    UdpHeader,
};
use nix::poll::{PollFd, PollFlags};
use nix::sys::time::TimeSpec;
use portcullis_xdp::{AttachMode, FastPath, XskTarget};

use crate::media::{Clock, MediaIo, OnDatagram};
use crate::xsk::GenXsk;

/// Ethernet (14) + IPv4 (20) + UDP (8): where the RTP packet starts in a chunk.
pub const HEADERS: usize = 42;
/// Frames read per [`MediaIo::receive`].
const RX_BUDGET: u32 = 512;
/// How long a destination's MAC is waited for.
const RESOLVE_WAIT: Duration = Duration::from_secs(2);
/// Slot of the socket in the program's XSKMAP.
const XSK_SLOT: u32 = 0;

/// A destination's next hop: its MAC, or `None` when it could not be resolved (its
/// packets count as send errors).
#[derive(Debug, Clone, Copy)]
struct Neighbour {
    ip: IpAddr,
    mac: Option<[u8; 6]>,
}

/// A media worker's I/O through one AF_XDP socket (see the module doc).
pub struct XdpIo {
    xsk: GenXsk,
    ifname: String,
    mac: [u8; 6],
    /// The worker sockets' addresses, by socket index.
    locals: Vec<SocketAddrV4>,
    neighbours: Vec<Neighbour>,
    /// The chunk handed out by `slot` and not pushed yet.
    current: Option<u64>,
    /// Frames to transmit: `(UMEM offset, length)`.
    queued: Vec<(u64, u32)>,
    /// Packets refused before the TX ring (no MAC) since the last flush.
    refused: usize,
    // Dropped after the socket is out of the map: detaches the program.
    _program: FastPath,
    _sockets: Vec<UdpSocket>,
}

impl std::fmt::Debug for XdpIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpIo")
            .field("ifname", &self.ifname)
            .field("locals", &self.locals)
            .finish_non_exhaustive()
    }
}

impl XdpIo {
    /// Attaches the redirecting program to `ifname`, binds the AF_XDP socket and claims
    /// the addresses of `sockets` (the worker's, by index) for it.
    pub fn open(ifname: &str, sockets: Vec<UdpSocket>) -> anyhow::Result<XdpIo> {
        let ifindex = nix::net::if_::if_nametoindex(ifname).map_err(|_| {
            anyhow::anyhow!("--ifname {ifname}: no such interface in this network namespace")
        })?;
        let mut locals = Vec::new();
        for s in &sockets {
            match s.local_addr()? {
                SocketAddr::V4(a) => locals.push(a),
                SocketAddr::V6(a) => bail!("--generator af_xdp: IPv4 only ({a} is IPv6)"),
            }
        }
        let mac = interface_mac(ifname)
            .with_context(|| format!("--ifname {ifname}: no Ethernet address"))?;
        FastPath::built().context("--generator af_xdp")?;
        let program = FastPath::attach(ifname, AttachMode::Auto).with_context(|| {
            format!(
                "--generator af_xdp: XDP program on {ifname} (needs root: CAP_BPF, CAP_NET_ADMIN)"
            )
        })?;
        let xsk = GenXsk::bind(ifname, ifindex)
            .with_context(|| format!("--generator af_xdp: AF_XDP socket on {ifname}"))?;
        let mut registry = program.xsk()?;
        // SAFETY: the descriptor is the AF_XDP socket's, open for as long as `xsk`, which
        // outlives this borrow (it only lends the number to the map update).
        let fd = unsafe { BorrowedFd::borrow_raw(xsk.raw_fd()) };
        registry.set_socket(XSK_SLOT, &fd)?;
        for l in &locals {
            let to = XskTarget {
                ifindex,
                queue: 0,
                index: XSK_SLOT,
            };
            registry.claim(SocketAddr::V4(*l), to)?;
        }
        Ok(XdpIo {
            xsk,
            ifname: ifname.to_owned(),
            mac,
            locals,
            neighbours: Vec::new(),
            current: None,
            queued: Vec::with_capacity(crate::mmsg::BATCH),
            refused: 0,
            _program: program,
            _sockets: sockets,
        })
    }

    fn next_hop(&self, ip: IpAddr) -> Option<[u8; 6]> {
        self.neighbours.iter().find(|n| n.ip == ip)?.mac
    }
}

impl MediaIo for XdpIo {
    fn slot(&mut self, _socket: usize) -> Option<&mut [u8]> {
        if self.queued.len() >= crate::mmsg::BATCH {
            return None;
        }
        let addr = match self.current {
            Some(a) => a,
            None => {
                let a = self.xsk.take_tx()?;
                self.current = Some(a);
                a
            }
        };
        self.xsk.chunk_mut(addr)?.get_mut(HEADERS..)
    }

    fn push(&mut self, socket: usize, len: usize, dest: SocketAddr) {
        let Some(addr) = self.current.take() else {
            return;
        };
        let (Some(src), SocketAddr::V4(dst), Some(dst_mac)) = (
            self.locals.get(socket).copied(),
            dest,
            self.next_hop(dest.ip()),
        ) else {
            self.xsk.recycle(addr);
            self.refused += 1;
            return;
        };
        let src_mac = self.mac;
        let frame = self
            .xsk
            .chunk_mut(addr)
            .and_then(|c| write_headers(c, src_mac, dst_mac, src, dst, len));
        match frame.and_then(|n| u32::try_from(n).ok()) {
            Some(n) => self.queued.push((addr, n)),
            None => {
                self.xsk.recycle(addr);
                self.refused += 1;
            }
        }
    }

    fn flush(&mut self) -> (usize, usize) {
        let sent = self.xsk.transmit(&self.queued);
        for &(addr, _) in self.queued.get(sent..).unwrap_or(&[]) {
            self.xsk.recycle(addr);
        }
        let failed = self.queued.len() - sent + std::mem::take(&mut self.refused);
        self.queued.clear();
        (sent, failed)
    }

    fn prepare(&mut self, dest: SocketAddr) {
        let ip = dest.ip();
        if self.neighbours.iter().any(|n| n.ip == ip) {
            return;
        }
        let mac = match ip {
            IpAddr::V4(v4) => resolve(&self.ifname, v4, self.locals.first().copied()),
            IpAddr::V6(_) => None,
        };
        if mac.is_none() {
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "af_xdp generator: no neighbour entry for {ip} on {} (packets to it are send errors)",
                    self.ifname
                );
            }
        }
        self.neighbours.push(Neighbour { ip, mac });
    }

    fn receive(&mut self, clock: Clock, f: &mut OnDatagram<'_>) -> usize {
        let locals = &self.locals;
        self.xsk.receive(RX_BUDGET, |frame| {
            let arrival = clock.ns();
            match parse_frame(frame) {
                Some((dst, at, len)) => {
                    let socket = locals.iter().position(|l| *l == dst);
                    match frame.get_mut(at..at + len) {
                        Some(p) if socket.is_some() => f(socket, p, arrival),
                        _ => f(None, &mut [], arrival),
                    }
                }
                None => f(None, &mut [], arrival),
            }
        })
    }

    fn wait(&mut self, timeout: Duration) {
        // SAFETY: the AF_XDP socket's descriptor stays open while `self.xsk` lives, which
        // outlives this call.
        let fd = unsafe { BorrowedFd::borrow_raw(self.xsk.raw_fd()) };
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        let _ = nix::poll::ppoll(&mut fds, Some(TimeSpec::from_duration(timeout)), None);
    }

    fn rx_dropped(&self) -> u64 {
        self.xsk.rx_dropped()
    }
}

/// Writes the Ethernet, IPv4 and UDP headers in front of the `payload_len` bytes at
/// [`HEADERS`] in `chunk`; returns the frame's length.
pub fn write_headers(
    chunk: &mut [u8],
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload_len: usize,
) -> Option<usize> {
    let (head, rest) = chunk.split_at_mut_checked(HEADERS)?;
    let payload = rest.get(..payload_len)?;
    let udp_len = u16::try_from(UdpHeader::LEN + payload_len).ok()?;
    let mut ip = Ipv4Header::new(
        udp_len,
        64,
        IpNumber::UDP,
        src.ip().octets(),
        dst.ip().octets(),
    )
    .ok()?;
    ip.header_checksum = ip.calc_header_checksum();
    let udp = UdpHeader::with_ipv4_checksum(src.port(), dst.port(), &ip, payload).ok()?;
    let eth = Ethernet2Header {
        source: src_mac,
        destination: dst_mac,
        ether_type: EtherType::IPV4,
    };
    head.get_mut(..14)?.copy_from_slice(&eth.to_bytes());
    head.get_mut(14..34)?.copy_from_slice(&ip.to_bytes());
    head.get_mut(34..42)?.copy_from_slice(&udp.to_bytes());
    Some(HEADERS + payload_len)
}

/// A received frame's IPv4 UDP destination and where its payload lies (offset, length);
/// `None` for anything else, a truncated frame, or a bad IPv4 or UDP checksum.
pub fn parse_frame(frame: &[u8]) -> Option<(SocketAddrV4, usize, usize)> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Udp(udp))) = (p.net, p.transport) else {
        return None;
    };
    let iph = ip.header().to_header();
    if iph.calc_header_checksum() != iph.header_checksum {
        return None;
    }
    let payload = udp.payload();
    let sum = udp.checksum();
    if sum != 0
        && udp.to_header().calc_checksum_ipv4(&iph, payload).ok()? != sum
        && pseudo_header_sum(&iph, udp.length()) != sum
    {
        return None;
    }
    let at = (payload.as_ptr() as usize).checked_sub(frame.as_ptr() as usize)?;
    let dst = SocketAddrV4::new(Ipv4Addr::from(iph.destination), udp.destination_port());
    Some((dst, at, payload.len()))
}

/// The UDP checksum field a sender with checksum offload leaves for the NIC to complete:
/// the folded ones' complement sum of the pseudo-header (RFC 768) alone. A veth delivers
/// such a packet as it is (the kernel's socket path trusts it; an AF_XDP socket cannot
/// tell), so it is accepted as well as a complete checksum.
fn pseudo_header_sum(ip: &Ipv4Header, udp_len: u16) -> u16 {
    let words = [
        u16::from_be_bytes([ip.source[0], ip.source[1]]),
        u16::from_be_bytes([ip.source[2], ip.source[3]]),
        u16::from_be_bytes([ip.destination[0], ip.destination[1]]),
        u16::from_be_bytes([ip.destination[2], ip.destination[3]]),
        u16::from(IpNumber::UDP.0),
        udp_len,
    ];
    let mut sum: u32 = words.iter().map(|&w| u32::from(w)).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The MAC of interface `ifname`.
fn interface_mac(ifname: &str) -> Option<[u8; 6]> {
    nix::ifaddrs::getifaddrs()
        .ok()?
        .filter(|a| a.interface_name == ifname)
        .find_map(|a| a.address?.as_link_addr()?.addr())
}

/// The complete neighbour entry for `ip` on `ifname` in `/proc/net/arp`.
fn arp_entry(ifname: &str, ip: Ipv4Addr) -> Option<[u8; 6]> {
    let table = std::fs::read_to_string("/proc/net/arp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // IP address, HW type, Flags, HW address, Mask, Device; flag 0x2: complete.
        let (addr, flags, mac, dev) = (f.first()?, f.get(2)?, f.get(3)?, f.get(5)?);
        let complete = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()? & 2 != 0;
        if *dev != ifname || addr.parse::<Ipv4Addr>().ok()? != ip || !complete {
            return None;
        }
        let mut out = [0u8; 6];
        let mut parts = mac.split(':');
        for b in &mut out {
            *b = u8::from_str_radix(parts.next()?, 16).ok()?;
        }
        Some(out)
    })
}

/// `ip`'s MAC on `ifname`: the neighbour table's entry, after a datagram sent through the
/// kernel (from `from`'s address to the discard port) made it resolve when it had none.
fn resolve(ifname: &str, ip: Ipv4Addr, from: Option<SocketAddrV4>) -> Option<[u8; 6]> {
    if let Some(mac) = arp_entry(ifname, ip) {
        return Some(mac);
    }
    let local = from.map_or(Ipv4Addr::UNSPECIFIED, |a| *a.ip());
    if let Ok(s) = UdpSocket::bind((local, 0)) {
        let _ = s.send_to(&[], (ip, 9));
    }
    let start = Instant::now();
    while start.elapsed() < RESOLVE_WAIT {
        std::thread::sleep(Duration::from_millis(10));
        if let Some(mac) = arp_entry(ifname, ip) {
            return Some(mac);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_checksums_are_checked() {
        let mut chunk = [0u8; 2048];
        let payload = b"\x80\x00\x00\x01rtp-payload-bytes";
        chunk[HEADERS..HEADERS + payload.len()].copy_from_slice(payload);
        let src = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 40_000);
        let dst = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 20_002);
        let n = write_headers(&mut chunk, [2; 6], [4; 6], src, dst, payload.len()).unwrap();
        assert_eq!(n, HEADERS + payload.len());
        let (to, at, len) = parse_frame(&chunk[..n]).unwrap();
        assert_eq!((to, &chunk[at..at + len]), (dst, &payload[..]));
        assert_eq!(&chunk[..6], &[4; 6], "destination MAC first");
        // A flipped payload bit fails the UDP checksum; a flipped TTL the IPv4 one.
        let mut bad = chunk;
        bad[HEADERS + 5] ^= 1;
        assert!(parse_frame(&bad[..n]).is_none());
        let mut bad = chunk;
        bad[22] ^= 1;
        assert!(parse_frame(&bad[..n]).is_none());
        assert!(parse_frame(&chunk[..HEADERS - 1]).is_none());
        // The pseudo-header sum alone (a checksum the sender's offload left partial) is
        // accepted: c000 + 0201 + c000 + 0202 + 0011 + UDP length 0x1d, folded.
        let mut partial = chunk;
        partial[40..42].copy_from_slice(&0x8432u16.to_be_bytes());
        assert_eq!(parse_frame(&partial[..n]).map(|p| p.0), Some(dst));
        partial[41] ^= 1;
        assert!(parse_frame(&partial[..n]).is_none());
        assert!(write_headers(&mut [0u8; 50], [0; 6], [0; 6], src, dst, 20).is_none());
    }

    #[test]
    fn a_missing_interface_is_a_clear_error() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = XdpIo::open("pc-no-such0", vec![s]).unwrap_err();
        assert!(
            format!("{e:#}").contains("--ifname pc-no-such0: no such interface"),
            "{e:#}"
        );
    }
}

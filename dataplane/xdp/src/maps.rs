//! The map layouts shared with `bpf/fastpath.c` (`struct pc_leg_key`, `struct pc_leg`,
//! `struct pc_counters`, `enum pc_stat`). A change is made on both sides; the C file
//! checks the sizes with `_Static_assert`, this file with `const` assertions.

use std::net::{IpAddr, SocketAddr};

/// `PC_FAMILY_V4` / `PC_FAMILY_V6`.
pub(crate) const FAMILY_V4: u8 = 4;
pub(crate) const FAMILY_V6: u8 = 6;

/// The map form of `addr`'s family.
pub(crate) fn family(addr: SocketAddr) -> u8 {
    if addr.is_ipv4() {
        FAMILY_V4
    } else {
        FAMILY_V6
    }
}

/// `PC_LEG_RTP`: the port carries RTP (sequence and jitter are tracked).
pub(crate) const LEG_RTP: u8 = 1;

/// `user_pt` value meaning "no payload type is passed up".
pub(crate) const NO_USER_PT: u8 = 0xff;

/// Key of the `legs` and `counters` maps: a local UDP port and its IP family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct LegKey {
    /// Local UDP port, host order.
    pub port: u16,
    family: u8,
    pad: u8,
}

impl LegKey {
    /// The key of the local socket address a leg's packets arrive on.
    #[must_use]
    pub fn new(local: SocketAddr) -> LegKey {
        LegKey {
            port: local.port(),
            family: family(local),
            pad: 0,
        }
    }

    /// True for an IPv6 port.
    #[must_use]
    pub fn is_ipv6(&self) -> bool {
        self.family == FAMILY_V6
    }
}

impl From<SocketAddr> for LegKey {
    fn from(local: SocketAddr) -> LegKey {
        LegKey::new(local)
    }
}

// SAFETY: `repr(C)`, plain integers, no padding (2 + 1 + 1 bytes); any bit pattern is valid.
unsafe impl aya::Pod for LegKey {}

/// Value of the `legs` map (`struct pc_leg`). Addresses are in network order; an IPv4
/// address fills the first four bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct LegValue {
    pub local_addr: [u8; 16],
    pub peer_addr: [u8; 16],
    pub out_src_addr: [u8; 16],
    pub out_dst_addr: [u8; 16],
    /// Network order.
    pub peer_port: u16,
    /// Network order.
    pub out_src_port: u16,
    /// Network order.
    pub out_dst_port: u16,
    pub user_pt: u8,
    pub flags: u8,
    pub clock_rate: u32,
    pub out_ifindex: u32,
    pub out_src_mac: [u8; 6],
    pub pad: [u8; 2],
}

const _: () = assert!(std::mem::size_of::<LegValue>() == 88);
const _: () = assert!(std::mem::size_of::<LegKey>() == 4);

// SAFETY: `repr(C)`, byte arrays and integers laid out without padding (64 + 6 + 2 + 8 +
// 8 = 88 bytes, the size asserted above and in the C file); any bit pattern is valid.
unsafe impl aya::Pod for LegValue {}

/// Network-order bytes of an address in the 16-byte map form.
pub(crate) fn addr_bytes(ip: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match ip {
        IpAddr::V4(a) => {
            if let Some(head) = out.get_mut(..4) {
                head.copy_from_slice(&a.octets());
            }
        }
        IpAddr::V6(a) => out = a.octets(),
    }
    out
}

/// Value of the per-CPU `counters` map (`struct pc_counters`): one CPU's share.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct CpuCounters {
    pub packets: u64,
    pub bytes: u64,
    pub last_seen_ns: u64,
    pub rtp_received: u64,
    pub jitter_q4: u64,
    pub base_seq: u32,
    pub cycles: u32,
    pub bad_seq: u32,
    pub transit: u32,
    pub max_seq: u16,
    pub started: u8,
    pub pad: [u8; 5],
}

const _: () = assert!(std::mem::size_of::<CpuCounters>() == 64);

// SAFETY: `repr(C)`, integers and a byte array without padding (40 + 16 + 8 = 64 bytes,
// asserted above and in the C file); any bit pattern is valid.
unsafe impl aya::Pod for CpuCounters {}

impl CpuCounters {
    /// RFC 3550 A.1: extended highest sequence number (cycles + max_seq).
    fn extended_max(&self) -> u64 {
        u64::from(self.cycles) + u64::from(self.max_seq)
    }
}

/// A leg's fast-path figures, all CPUs merged. They cover the packets the XDP program
/// forwarded since the leg was promoted; the worker adds them to what it counted itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LegCounters {
    /// Packets forwarded.
    pub packets: u64,
    /// UDP payload bytes forwarded (as the worker counts `rx_bytes`).
    pub bytes: u64,
    /// `CLOCK_MONOTONIC` time of the last forwarded packet in ns (0: none yet); compare
    /// with [`monotonic_now_ns`](crate::monotonic_now_ns).
    pub last_seen_ns: u64,
    /// RTP packets counted by RFC 3550 A.1 (duplicates included, as A.3 counts them).
    pub rtp_received: u64,
    /// RTP packets expected (A.3: extended highest − base + 1).
    pub rtp_expected: u64,
    /// Interarrival jitter in RTP clock units (A.8).
    pub rtp_jitter: u32,
}

impl LegCounters {
    /// Packets lost (A.3: expected − received, 0 when duplicates outnumber losses).
    #[must_use]
    pub fn rtp_lost(&self) -> u64 {
        self.rtp_expected.saturating_sub(self.rtp_received)
    }

    /// Merges the per-CPU shares. Packets, bytes and RTP received add up; last-seen is the
    /// latest. A flow normally stays on one CPU (RSS and RPS hash the 5-tuple); should it
    /// move, expected spans the lowest base to the highest extended sequence any CPU saw,
    /// and the jitter is the estimate of the CPU that saw the most RTP packets.
    pub(crate) fn merge(cpus: &[CpuCounters]) -> LegCounters {
        let mut out = LegCounters::default();
        let mut base = u64::MAX;
        let mut max = 0u64;
        let mut busiest = 0u64;
        for c in cpus {
            out.packets += c.packets;
            out.bytes += c.bytes;
            out.last_seen_ns = out.last_seen_ns.max(c.last_seen_ns);
            if c.started == 0 {
                continue;
            }
            out.rtp_received += c.rtp_received;
            base = base.min(u64::from(c.base_seq));
            max = max.max(c.extended_max());
            if c.rtp_received >= busiest {
                busiest = c.rtp_received;
                out.rtp_jitter = u32::try_from(c.jitter_q4 >> 4).unwrap_or(u32::MAX);
            }
        }
        if base != u64::MAX {
            out.rtp_expected = (max + 1).saturating_sub(base);
        }
        out
    }
}

/// Why the program forwarded or passed a packet of a promoted leg (`enum pc_stat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Stat {
    /// Forwarded out of the interface it came in on (`XDP_TX`).
    Tx = 0,
    /// Forwarded to another interface (`XDP_REDIRECT` through the devmap).
    Redirect,
    /// The source was not the leg's locked peer: passed up to the worker.
    PeerMismatch,
    /// Not RTP/RTCP version 2 (STUN, DTLS, too short): passed up.
    NotRtp,
    /// The leg's user payload type (telephone-event, for DTMF detection): passed up.
    UserPayloadType,
    /// The next hop toward the destination peer is not learned yet (no packet from that
    /// peer on the egress interface since its leg was promoted): passed up.
    NoPeerMac,
    /// The egress interface is not one the program can send on: passed up.
    NoTxPort,
}

/// Number of [`Stat`] values (`PC_STAT_MAX`).
pub const STATS: usize = 7;

impl Stat {
    /// Every value, in map index order.
    pub const ALL: [Stat; STATS] = [
        Stat::Tx,
        Stat::Redirect,
        Stat::PeerMismatch,
        Stat::NotRtp,
        Stat::UserPayloadType,
        Stat::NoPeerMac,
        Stat::NoTxPort,
    ];

    /// Stable metric label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Stat::Tx => "tx",
            Stat::Redirect => "redirect",
            Stat::PeerMismatch => "peer_mismatch",
            Stat::NotRtp => "not_rtp",
            Stat::UserPayloadType => "user_payload_type",
            Stat::NoPeerMac => "no_peer_mac",
            Stat::NoTxPort => "no_tx_port",
        }
    }
}

/// Program-wide counters, all CPUs merged, indexed by [`Stat`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FastPathStats(pub [u64; STATS]);

impl FastPathStats {
    /// One counter.
    #[must_use]
    pub fn get(&self, stat: Stat) -> u64 {
        self.0.get(stat as usize).copied().unwrap_or(0)
    }

    /// Packets forwarded in the kernel (TX + redirect).
    #[must_use]
    pub fn forwarded(&self) -> u64 {
        self.get(Stat::Tx) + self.get(Stat::Redirect)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(packets: u64, base: u32, cycles: u32, max: u16, received: u64) -> CpuCounters {
        CpuCounters {
            packets,
            bytes: packets * 160,
            last_seen_ns: packets,
            rtp_received: received,
            jitter_q4: received * 16,
            base_seq: base,
            cycles,
            max_seq: max,
            started: 1,
            ..CpuCounters::default()
        }
    }

    #[test]
    fn merge_adds_counts_and_spans_sequences() {
        let idle = CpuCounters::default();
        let a = cpu(10, 100, 0, 109, 10);
        let b = cpu(5, 110, 0, 119, 4);
        let m = LegCounters::merge(&[idle, a, b]);
        assert_eq!(m.packets, 15);
        assert_eq!(m.bytes, 15 * 160);
        assert_eq!(m.last_seen_ns, 10);
        assert_eq!(m.rtp_received, 14);
        assert_eq!(m.rtp_expected, 20);
        assert_eq!(m.rtp_lost(), 6);
        // The busiest CPU's jitter.
        assert_eq!(m.rtp_jitter, 10);
    }

    #[test]
    fn merge_counts_sequence_cycles() {
        let a = cpu(3, 65534, 1 << 16, 1, 4);
        let m = LegCounters::merge(&[a]);
        assert_eq!(m.rtp_expected, 4);
        assert_eq!(m.rtp_lost(), 0);
    }

    #[test]
    fn no_rtp_means_no_expected() {
        let c = CpuCounters {
            packets: 3,
            ..CpuCounters::default()
        };
        let m = LegCounters::merge(&[c]);
        assert_eq!((m.packets, m.rtp_expected, m.rtp_received), (3, 0, 0));
    }

    #[test]
    fn keys_and_addresses() {
        let k = LegKey::new("192.0.2.1:4000".parse().unwrap());
        assert_eq!((k.port, k.is_ipv6()), (4000, false));
        assert!(LegKey::new("[2001:db8::1]:4000".parse().unwrap()).is_ipv6());
        let b = addr_bytes("192.0.2.7".parse().unwrap());
        assert_eq!(&b[..4], &[192, 0, 2, 7]);
        assert!(b[4..].iter().all(|&x| x == 0));
    }
}

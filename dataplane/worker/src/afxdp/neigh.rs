//! Next hops of the AF_XDP backend: the MAC to put on a frame toward a peer.
//!
//! The same rule as the XDP program's `peer_macs`: the source MAC of a packet from a peer
//! is the next hop toward that peer on the interface it came in on (the peer itself on
//! the segment, else the router it came through). Only packets the relay accepted teach
//! (a source it refused never moves a next hop). Until a peer's next hop is known the
//! worker sends toward it through its UDP socket, whose send resolves the neighbour the
//! usual way (ARP, NDP), so the kernel's neighbour table stays the authority for first
//! packets.
//!
//! Bounded: at most [`CAPACITY`] peers, the table starts over when it is full (each peer
//! is learned again from its next packet). No allocation after creation.

use std::collections::HashMap;
use std::net::IpAddr;

/// Peers remembered per worker.
pub(crate) const CAPACITY: usize = 4096;

/// Learned next hops: peer address → (interface index, MAC).
#[derive(Debug)]
pub(crate) struct Neighbours {
    map: HashMap<IpAddr, (u32, [u8; 6])>,
}

impl Neighbours {
    pub(crate) fn new() -> Neighbours {
        Neighbours {
            map: HashMap::with_capacity(CAPACITY),
        }
    }

    /// A packet the relay accepted came from `peer` with source MAC `mac` on `ifindex`.
    pub(crate) fn learn(&mut self, peer: IpAddr, ifindex: u32, mac: [u8; 6]) {
        if self.map.get(&peer) == Some(&(ifindex, mac)) {
            return;
        }
        if self.map.len() >= CAPACITY && !self.map.contains_key(&peer) {
            // Keeps the capacity: no allocation on the packet path.
            self.map.clear();
        }
        self.map.insert(peer, (ifindex, mac));
    }

    /// The next hop toward `peer` when it was learned on `ifindex`.
    pub(crate) fn next_hop(&self, peer: IpAddr, ifindex: u32) -> Option<[u8; 6]> {
        match self.map.get(&peer) {
            Some(&(i, mac)) if i == ifindex => Some(mac),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_moves_and_stays_bounded() {
        let mut n = Neighbours::new();
        let p: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(n.next_hop(p, 2), None);
        n.learn(p, 2, [1; 6]);
        assert_eq!(n.next_hop(p, 2), Some([1; 6]));
        assert_eq!(n.next_hop(p, 3), None, "learned on another interface");
        n.learn(p, 2, [7; 6]);
        assert_eq!(n.next_hop(p, 2), Some([7; 6]));
        let cap = n.map.capacity();
        for i in 0..(CAPACITY as u32 + 10) {
            n.learn(IpAddr::from(i.to_be_bytes()), 2, [2; 6]);
        }
        assert!(n.map.len() <= CAPACITY);
        assert_eq!(n.map.capacity(), cap, "no growth");
    }
}

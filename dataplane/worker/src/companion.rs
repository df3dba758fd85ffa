//! Connected send sockets ("companions") for the io_uring backend.
//!
//! An unconnected UDP `sendmsg` looks the route up for every packet (FIB lookup, xfrm
//! check, source address): about 5 % of the relay's cost per packet (docs/PERFORMANCE.md,
//! "Where the relay's cost goes"). A connected socket keeps its route. But a connected
//! UDP socket only receives from its peer, so a leg's own unconnected socket stays as it is
//! and a second socket joins it on the same port (`SO_REUSEPORT`), connected to the leg's
//! current peer. The kernel hands the peer's datagrams to the connected socket (in a
//! reuseport group with a connected member the lookup is scored, and the pick by hash skips
//! connected members) and everything else to the leg's socket, as before. Both are read,
//! and a datagram is handled the same whichever of the two it came in on.
//!
//! A companion is asked for when a leg forwards to a peer it has none for; that packet
//! leaves the usual way. It is made at the end of the loop iteration, at most
//! [`BUDGET`] per iteration (a few syscalls each, once per leg and peer), and lives in a
//! slot of the ring's registered-file table after the slice's own sockets. When the leg's
//! peer changes (re-latch, new SDP address) the old one's receive is cancelled and its slot
//! freed once the cancel completes. Without a free slot, or when a socket call fails, the
//! leg goes on sending from its own socket (counted in `connect_failures`) until its peer
//! changes. A removed pair's companions are closed when the backend sees the removal.
//!
//! Sending from a socket that is also read costs a wake-up per packet: each send's
//! completion (`sock_wfree`) finds the multishot receive's waiter on the socket's wait queue
//! and calls it (about 6 % of the relay's cost per packet, docs/PERFORMANCE.md, "Connected
//! companions"). So where the kernel allows, a companion is two sockets: a send socket,
//! connected first and never read, and a receive socket, connected second to the same
//! peer. Among connected sockets with the same four addresses the kernel delivers to the
//! one connected last (Linux ≥ 6.13 keeps them in a 4-tuple hash, newest first), so every
//! datagram from the peer reaches the receive socket. Whether it does is checked once per
//! worker at start ([`newest_connected_wins`]); where it does not, a companion is one
//! socket as above. A datagram that reached the send socket before the receive socket was
//! connected is read by a drain ([`crate::ring::arm_drain`]) that ends without waiting.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use io_uring::{opcode, types, IoUring};

use crate::counters::Counter;
use crate::fixed::SockRef;
use crate::ring::{arm_drain, arm_multishot, push, ud, UringState, K_CANCEL, K_RECV_C};
use crate::worker::WorkerCtx;

/// Companions made per loop iteration at most.
pub(crate) const BUDGET: usize = 16;
/// Marks a companion in the backend's re-arm list (which otherwise holds socket indices).
pub(crate) const REARM_BIT: u32 = 1 << 31;
/// Spare slots beyond one per RTP port, for companions whose cancel is still in flight.
pub(crate) const SLACK: u32 = 64;

const NONE: u32 = u32::MAX;
/// The `bid` field of a drain's user data (a receive's is 0).
const DRAIN: u16 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    Active,
    /// Receive cancelled; the slot is freed when its last completion arrives.
    Closing,
}

#[derive(Clone, Copy, Debug)]
struct Comp {
    /// Leg slot (`socket / 2`) whose RTP port it shares.
    leg: u32,
    state: State,
    /// Its multishot receive is in flight.
    armed: bool,
    /// The drain of its send socket is in flight.
    draining: bool,
    /// Its receive ended and waits in the re-arm list.
    rearm_pending: bool,
}

impl Comp {
    const FREE: Comp = Comp {
        leg: NONE,
        state: State::Free,
        armed: false,
        draining: false,
        rearm_pending: false,
    };
}

/// Where a leg's forwards go: the companion in use and the peer it is connected to, in
/// 32 aligned bytes, so [`Companions::route`] reads one line per packet (not the leg's
/// state and then the companion's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(32))]
struct Route {
    /// The peer's address; IPv4 as its IPv4-mapped form, told apart by `v6`.
    ip: [u8; 16],
    scope_id: u32,
    /// Companion index, or `NONE`.
    comp: u32,
    port: u16,
    v6: bool,
}

impl Route {
    const NONE: Route = Route {
        ip: [0; 16],
        scope_id: 0,
        comp: NONE,
        port: 0,
        v6: false,
    };

    fn new(comp: u32, peer: SocketAddr) -> Route {
        let (ip, scope_id, v6) = match peer {
            SocketAddr::V4(a) => (a.ip().to_ipv6_mapped().octets(), 0, false),
            SocketAddr::V6(a) => (a.ip().octets(), a.scope_id(), true),
        };
        Route {
            ip,
            scope_id,
            comp,
            port: peer.port(),
            v6,
        }
    }

    /// The companion, if this route leads to `to` (a v6 flow label plays no part).
    #[inline]
    fn to(&self, to: SocketAddr) -> Option<u32> {
        let hit = match to {
            SocketAddr::V4(a) => !self.v6 && self.ip == a.ip().to_ipv6_mapped().octets(),
            SocketAddr::V6(a) => {
                self.v6 && self.ip == a.ip().octets() && self.scope_id == a.scope_id()
            }
        };
        (hit && self.port == to.port() && self.comp != NONE).then_some(self.comp)
    }
}

/// A leg's companion bookkeeping; the companion in use is its [`Route`]'s `comp`.
#[derive(Clone, Copy, Debug)]
struct LegState {
    /// Peer a companion was asked for (queued in `wanted`).
    wanted: Option<SocketAddr>,
    /// Peer for which making one failed: not retried until the peer changes.
    failed: Option<SocketAddr>,
}

/// The companions of one worker.
pub(crate) struct Companions {
    first_slot: u32,
    /// A companion is a send and a receive socket.
    split: bool,
    /// Registered slot of companion 0's send socket: after the receive sockets when
    /// split, else `first_slot` (one socket does both).
    send_slot: u32,
    comps: Vec<Comp>,
    legs: Vec<LegState>,
    /// Per leg, the companion in use and its peer.
    routes: Vec<Route>,
    free: Vec<u32>,
    wanted: Vec<u32>,
}

impl Companions {
    /// Registered-file slots wanted for a slice of `sockets`: one companion per RTP port
    /// plus [`SLACK`], each two sockets when split.
    pub(crate) fn slots_for(sockets: u32) -> u32 {
        2 * (sockets / 2 + SLACK)
    }

    /// `slots` registered-file slots from `first_slot` on, for a slice of `sockets`;
    /// `split`: a companion is a send and a receive socket (half the slots each).
    pub(crate) fn new(first_slot: u32, slots: u32, sockets: u32, split: bool) -> Companions {
        let legs = (sockets / 2) as usize;
        let count = if split { slots / 2 } else { slots };
        Companions {
            first_slot,
            split,
            send_slot: if split {
                first_slot + count
            } else {
                first_slot
            },
            comps: vec![Comp::FREE; count as usize],
            legs: vec![
                LegState {
                    wanted: None,
                    failed: None,
                };
                legs
            ],
            routes: vec![Route::NONE; legs],
            free: (0..count).rev().collect(),
            wanted: Vec::with_capacity(legs),
        }
    }

    /// The registered slot of the companion connected to `to` on socket `sock`'s port.
    #[inline]
    pub(crate) fn route(&self, sock: u32, to: SocketAddr) -> Option<u32> {
        if sock & 1 == 1 {
            return None;
        }
        // A route is set when its companion becomes active and cleared when it closes.
        let c = self.routes.get((sock / 2) as usize)?.to(to)?;
        Some(self.send_slot + c)
    }

    /// Ask for a companion on socket `sock`'s port connected to `to` (an RTP port that
    /// just forwarded to `to` without one). No allocation: `wanted` holds every leg.
    #[inline]
    pub(crate) fn want(&mut self, sock: u32, to: SocketAddr) {
        if sock & 1 == 1 || self.comps.is_empty() {
            return;
        }
        let leg = sock / 2;
        let Some(l) = self.legs.get_mut(leg as usize) else {
            return;
        };
        if l.failed == Some(to) {
            return;
        }
        if l.wanted.is_none() && self.wanted.len() < self.wanted.capacity() {
            self.wanted.push(leg);
        }
        l.wanted = Some(to);
    }

    /// Make the companions asked for (at most [`BUDGET`]), closing the ones they replace.
    pub(crate) fn service(&mut self, ctx: &WorkerCtx, ring: &mut IoUring, st: &mut UringState) {
        for _ in 0..BUDGET {
            let Some(leg) = self.wanted.pop() else {
                break;
            };
            let Some(peer) = self
                .legs
                .get_mut(leg as usize)
                .and_then(|l| l.wanted.take())
            else {
                continue;
            };
            let old = self.active(leg);
            if old != NONE && !self.close(ctx, ring, old) {
                // The ring is full: ask again next iteration.
                if let Some(l) = self.legs.get_mut(leg as usize) {
                    l.wanted = Some(peer);
                }
                self.wanted.push(leg);
                break;
            }
            let made = self.open(ctx, ring, st, leg, peer);
            if let Some(l) = self.legs.get_mut(leg as usize) {
                l.failed = if made { None } else { Some(peer) };
            }
            if !made {
                ctx.shared.worker.connect_failures.add(1);
            }
        }
    }

    /// Close the companions of leg slot `leg` (its pair was removed).
    pub(crate) fn close_leg(&mut self, ctx: &WorkerCtx, ring: &mut IoUring, leg: u32) {
        let Some(l) = self.legs.get_mut(leg as usize) else {
            return;
        };
        l.wanted = None;
        l.failed = None;
        let c = self.active(leg);
        if c != NONE {
            // A full ring leaves it to be replaced when the port forwards again.
            let _ = self.close(ctx, ring, c);
        }
    }

    /// The companion `leg` uses, or `NONE`.
    fn active(&self, leg: u32) -> u32 {
        self.routes.get(leg as usize).map_or(NONE, |r| r.comp)
    }

    /// Bind, connect and install a companion for `leg`, and arm its receive.
    fn open(
        &mut self,
        ctx: &WorkerCtx,
        ring: &mut IoUring,
        st: &mut UringState,
        leg: u32,
        peer: SocketAddr,
    ) -> bool {
        let Some(c) = self.free.pop() else {
            return false;
        };
        let slot = self.first_slot + c;
        let split = self.split;
        // The send socket first: the peer's datagrams go to the one connected last.
        let installed = (!split || install(ctx, ring, leg, peer, self.send_slot + c))
            && install(ctx, ring, leg, peer, slot);
        if !installed {
            self.release(ring, c);
            self.free.push(c);
            return false;
        }
        if !arm_multishot(ring, st, SockRef::Fixed(slot), ud(K_RECV_C, c, 0)) {
            self.release(ring, c);
            self.free.push(c);
            return false;
        }
        // A full ring leaves the drain out: at worst a datagram that came in while the
        // receive socket was not yet connected stays unread.
        let draining = split
            && arm_drain(
                ring,
                st,
                SockRef::Fixed(self.send_slot + c),
                ud(K_RECV_C, c, DRAIN),
            );
        if let Some(comp) = self.comps.get_mut(c as usize) {
            *comp = Comp {
                leg,
                state: State::Active,
                armed: true,
                draining,
                rearm_pending: false,
            };
        }
        if split {
            ctx.shared.worker.send_only_sockets.add(1);
        }
        if let Some(r) = self.routes.get_mut(leg as usize) {
            *r = Route::new(c, peer);
        }
        ctx.shared.worker.connected_sockets.add(1);
        true
    }

    /// Retire companion `c`. Its slot is freed by whichever comes next for it: the last
    /// completion of its receive, cancelled here, or (a receive that had ended) its entry
    /// in the re-arm list, which an active companion without a receive always has. Never
    /// freed here, so a stale re-arm entry cannot arm a slot handed to a new companion.
    /// `false` when the cancel found no room in the ring (the companion stays as it was).
    fn close(&mut self, ctx: &WorkerCtx, ring: &mut IoUring, c: u32) -> bool {
        let Some(comp) = self.comps.get(c as usize).copied() else {
            return true;
        };
        if comp.state != State::Active {
            return true;
        }
        let cancel = |u: u64| {
            opcode::AsyncCancel2::new(types::CancelBuilder::user_data(u))
                .build()
                .user_data(ud(K_CANCEL, 0, 0))
        };
        if comp.armed && !push(ring, &cancel(ud(K_RECV_C, c, 0))) {
            return false;
        }
        // A drain ends by itself; cancelling it too only hastens the slot's release.
        if comp.draining {
            let _ = push(ring, &cancel(ud(K_RECV_C, c, DRAIN)));
        }
        if let Some(r) = self.routes.get_mut(comp.leg as usize) {
            if r.comp == c {
                *r = Route::NONE;
            }
        }
        let w = &ctx.shared.worker;
        w.connected_sockets
            .set(w.connected_sockets.get().saturating_sub(1));
        if self.split {
            w.send_only_sockets
                .set(w.send_only_sockets.get().saturating_sub(1));
        }
        if let Some(m) = self.comps.get_mut(c as usize) {
            m.state = State::Closing;
        }
        true
    }

    /// Free closing companion `c`'s slots once nothing of it is in flight or queued.
    fn settle(&mut self, ring: &IoUring, c: u32) {
        let Some(comp) = self.comps.get_mut(c as usize) else {
            return;
        };
        if comp.state == State::Closing && !comp.armed && !comp.draining && !comp.rearm_pending {
            *comp = Comp::FREE;
            self.release(ring, c);
            self.free.push(c);
        }
    }

    /// Empty companion `c`'s registered slots.
    fn release(&self, ring: &IoUring, c: u32) {
        release_slot(ring, self.first_slot + c);
        if self.split {
            release_slot(ring, self.send_slot + c);
        }
    }

    /// A completion of companion `c`'s receive (`bid` 0) or drain (`bid` [`DRAIN`]):
    /// returns the socket index of the port it shares (for the packet, if any), and
    /// handles the end of the multishot: re-arm (via `rearm`) an active companion's
    /// receive, free a closing one's slots.
    pub(crate) fn on_completion(
        &mut self,
        ring: &IoUring,
        c: u32,
        bid: u16,
        more: bool,
        stop: bool,
        rearm: &mut Vec<u32>,
    ) -> Option<u32> {
        let comp = self.comps.get_mut(c as usize)?;
        let sock = (comp.leg != NONE).then_some(comp.leg * 2);
        if more {
            return sock;
        }
        if bid == DRAIN {
            comp.draining = false;
        } else {
            comp.armed = false;
            if comp.state == State::Active && !stop && rearm.len() < rearm.capacity() {
                rearm.push(c | REARM_BIT);
                comp.rearm_pending = true;
            }
        }
        self.settle(ring, c);
        sock
    }

    /// Re-arm companion `c`'s receive (from the re-arm list), counted in `rearms`; `false`
    /// when the ring is full (try again next iteration). A companion closed meanwhile gets
    /// its slot freed.
    pub(crate) fn rearm(
        &mut self,
        ring: &mut IoUring,
        st: &mut UringState,
        c: u32,
        rearms: &Counter,
    ) -> bool {
        let Some(comp) = self.comps.get(c as usize).copied() else {
            return true;
        };
        match comp.state {
            State::Active => {
                let target = SockRef::Fixed(self.first_slot + c);
                if !arm_multishot(ring, st, target, ud(K_RECV_C, c, 0)) {
                    return false;
                }
                if let Some(m) = self.comps.get_mut(c as usize) {
                    m.armed = true;
                    m.rearm_pending = false;
                }
                rearms.add(1);
                true
            }
            State::Closing => {
                if let Some(m) = self.comps.get_mut(c as usize) {
                    m.rearm_pending = false;
                }
                self.settle(ring, c);
                true
            }
            State::Free => true,
        }
    }

    /// User data of every companion receive and drain in flight (for the teardown's
    /// cancels).
    pub(crate) fn armed(&self) -> impl Iterator<Item = u64> + '_ {
        (0u32..).zip(&self.comps).flat_map(|(i, c)| {
            let recv = c.armed.then(|| ud(K_RECV_C, i, 0));
            let drain = c.draining.then(|| ud(K_RECV_C, i, DRAIN));
            recv.into_iter().chain(drain)
        })
    }
}

/// Empty registered slot `slot` (the table's reference to the socket goes, closing it).
fn release_slot(ring: &IoUring, slot: u32) {
    let _ = ring.submitter().register_files_update(slot, &[-1]);
}

/// Bind a socket on `leg`'s RTP port, connect it to `peer` and install it in `slot`.
fn install(ctx: &WorkerCtx, ring: &IoUring, leg: u32, peer: SocketAddr, slot: u32) -> bool {
    let made = ctx.plan.bind(leg * 2).and_then(|s| {
        s.connect(&peer.into())
            .map_err(|e| crate::types::DataplaneError::io("connect", e))?;
        ring.submitter()
            .register_files_update(slot, &[s.as_raw_fd()])
            .map_err(|e| crate::types::DataplaneError::io("install companion", e))
        // `s` closes here; the table keeps the socket.
    });
    matches!(made, Ok(1))
}

/// Whether, on this kernel, a peer's datagrams reach the socket connected to it last among
/// several on one port: the set-up of a companion (a socket bound to the port unconnected,
/// then two connected to the peer) tried on loopback, or on `bind_ip` when it names an
/// address. `false` when the check cannot be made.
pub(crate) fn newest_connected_wins(bind_ip: IpAddr) -> bool {
    let local = match bind_ip {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        a => a,
    };
    let check = || -> Option<bool> {
        let peer = UdpSocket::bind(SocketAddr::new(local, 0)).ok()?;
        let bind = |port: u16| crate::sock::bind_udp(SocketAddr::new(bind_ip, port), 4096).ok();
        let base = bind(0)?;
        let port = base.local_addr().ok()?.as_socket()?.port();
        let to = peer.local_addr().ok()?.into();
        let older = bind(port)?;
        older.connect(&to).ok()?;
        let newer = bind(port)?;
        newer.connect(&to).ok()?;
        peer.send_to(b"probe", SocketAddr::new(local, port)).ok()?;
        let newer: UdpSocket = newer.into();
        newer
            .set_read_timeout(Some(Duration::from_millis(200)))
            .ok()?;
        let mut buf = [0u8; 8];
        Some(newer.recv(&mut buf).is_ok_and(|n| n == 5))
    };
    check().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_leads_only_to_its_exact_peer() {
        let v4: SocketAddr = "192.0.2.7:4000".parse().expect("v4");
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:4000".parse().expect("mapped");
        let v6: SocketAddr = "[fe80::1%3]:4000".parse().expect("v6");
        let r = Route::new(5, v4);
        assert_eq!(r.to(v4), Some(5));
        assert_eq!(r.to("192.0.2.7:4001".parse().expect("port")), None);
        assert_eq!(r.to("192.0.2.8:4000".parse().expect("ip")), None);
        assert_eq!(r.to(mapped), None, "another family is another peer");
        let r = Route::new(9, v6);
        assert_eq!(r.to(v6), Some(9));
        assert_eq!(r.to("[fe80::1%4]:4000".parse().expect("scope")), None);
        assert_eq!(r.to("[fe80::2%3]:4000".parse().expect("ip")), None);
        assert_eq!(Route::NONE.to("0.0.0.0:0".parse().expect("any")), None);
        assert_eq!(std::mem::size_of::<Route>(), 32);
    }

    /// Linux keeps connected UDP sockets in a 4-tuple hash, newest first, since 6.13: from
    /// there on the check must find it so, on loopback and on the wildcard address alike.
    #[test]
    fn the_newest_connected_socket_gets_the_peer_s_datagrams_on_recent_kernels() {
        let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("release");
        let recent = crate::ring::kernel_version(&rel) >= (6, 13);
        for ip in ["127.0.0.1", "0.0.0.0", "::1"] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(newest_connected_wins(ip), recent, "{ip} on {rel}");
        }
    }
}

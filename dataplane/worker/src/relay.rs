//! The per-packet relay decision, shared by both I/O backends.
//!
//! No I/O here: a backend hands in the receiving socket index, the source address and the
//! buffer (with tailroom for the SRTP trailer), and gets back a `Verdict` saying which
//! socket should send how many bytes of *the same buffer* to which address. Everything on
//! the packet path works on preallocated state: no allocation, no lock, no syscall.
//!
//! Port layout of a worker slice (all relative to `base`, which is even):
//! `sock = port - base`, leg slot `= sock / 2` (even port RTP, odd port RTCP),
//! pair `= leg / 2`, side `= leg % 2` (A then B).

use std::net::SocketAddr;
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use portcullis_rtp::rtp::{classify, rtcp_sender_ssrc, PacketKind, RtpPacket};
use portcullis_rtp::srtp::{SrtpError, SrtpKeys, SrtpSession};
use portcullis_rtp::stats::RtpStats;
use portcullis_rtp::stun::{answer_binding, IceCredentials};

use crate::counters::{DropReason, StreamCounters, WorkerShared};
use crate::types::{Command, Event, Side, StreamFlags, StreamPairHandle, StreamParams, WorkerId};

/// Housekeeping calls per walk of the whole pair table (see [`Relay::housekeeping`]).
pub(crate) const SWEEP_SLICES: usize = 100;
/// Commands applied per loop iteration at most (practice 9: every loop has a budget); it
/// also bounds the removals a loop iteration hands the backend ([`Relay::removed`]).
pub(crate) const COMMAND_BUDGET: usize = 64;

/// Largest datagram accepted; the rest of a buffer is tailroom for the SRTP trailer.
pub const MAX_DATAGRAM: usize = 1500;
/// Size of every packet buffer (datagram + SRTP/SRTCP trailer tailroom).
pub const BUF_SIZE: usize = 2048;

/// What to do with a received packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send `len` bytes from the start of the buffer out of socket `sock` to `to`.
    /// `forward`: `to` is the sending leg's current RTP peer (media relayed to it, not a
    /// STUN answer to whoever asked), so a socket connected to it may carry the packet.
    Send {
        sock: u32,
        to: SocketAddr,
        len: usize,
        forward: bool,
    },
    /// Dropped (already counted).
    Drop,
}

/// One leg's state.
///
/// `repr(C)`, 64-byte aligned, in three parts:
/// - line 0, what a packet reads of the leg it came in on and of the leg it leaves by:
///   peer, SRTP contexts, latching state, flags;
/// - line 1, what a packet received on this leg writes: RTP statistics, the time it
///   came, SRTP failures;
/// - the rest, for RTCP, commands and housekeeping.
///
/// So a relayed RTP packet reads three lines of the pair: two of its own leg and the
/// first of the other. The SRTP contexts (~2 KB each) and ICE credentials are boxed.
#[repr(C, align(64))]
struct Leg {
    // Line 0.
    /// Where RTP (and muxed RTCP) for this leg's peer goes.
    peer: Option<SocketAddr>,
    srtp_in: Option<Box<SrtpSession>>,
    srtp_out: Option<Box<SrtpSession>>,
    latched_ssrc: Option<u32>,
    flags: StreamFlags,
    latched: bool,
    rtcp_latched: bool,
    /// The pair is allocated: set on both legs together (see [`Pair::armed`]), so the
    /// packet path reads it from the line it needs anyway.
    armed: bool,
    // Line 1.
    stats: RtpStats,
    clock_rate: u32,
    /// When this leg last received media (µs, the worker's clock).
    last_rx_us: u64,
    srtp_failures: u64,
    // Cold: RTCP, the command path and housekeeping.
    /// Where non-muxed RTCP goes (RTP port + 1 until an RTCP source is latched).
    rtcp_peer: Option<SocketAddr>,
    srtp_failures_reported: u64,
    /// Signalled peer from the last update (to detect a changed SDP).
    signalled: Option<SocketAddr>,
    keys_in: Option<SrtpKeys>,
    keys_out: Option<SrtpKeys>,
    ice: Option<Box<IceCredentials>>,
}

// The layout above, checked when building for x86-64 (where it was measured).
#[cfg(target_arch = "x86_64")]
const _: () = {
    use std::mem::{align_of, offset_of};
    assert!(align_of::<Leg>() == 64);
    assert!(offset_of!(Leg, armed) < 64);
    assert!(offset_of!(Leg, stats) == 64);
    assert!(offset_of!(Leg, srtp_failures) + 8 <= 128);
};

impl Leg {
    fn new() -> Leg {
        Leg {
            peer: None,
            rtcp_peer: None,
            signalled: None,
            latched: false,
            latched_ssrc: None,
            rtcp_latched: false,
            flags: StreamFlags::default(),
            clock_rate: 8000,
            keys_in: None,
            keys_out: None,
            srtp_in: None,
            srtp_out: None,
            ice: None,
            stats: RtpStats::new(),
            armed: false,
            last_rx_us: 0,
            srtp_failures: 0,
            srtp_failures_reported: 0,
        }
    }

    /// Apply parameters. `fresh` = a new allocation of the slot (forget everything).
    fn apply(&mut self, p: &StreamParams, fresh: bool) {
        if fresh {
            *self = Leg::new();
        }
        let peer_changed = p.peer != self.signalled;
        self.signalled = p.peer;
        self.flags = p.flags;
        self.clock_rate = p.clock_rate.max(1);
        if peer_changed || !p.flags.latching {
            // A new SDP address (or no latching): start from the signalled peer again.
            self.latched = false;
            self.latched_ssrc = None;
            self.rtcp_latched = false;
            self.peer = p.peer;
            self.rtcp_peer = p.peer.map(rtcp_of);
        }
        if !same_keys(self.keys_in.as_ref(), p.srtp_in.as_ref()) {
            self.keys_in = p.srtp_in;
            self.srtp_in = p.srtp_in.as_ref().map(|k| Box::new(SrtpSession::new(k)));
        }
        if !same_keys(self.keys_out.as_ref(), p.srtp_out.as_ref()) {
            self.keys_out = p.srtp_out;
            self.srtp_out = p.srtp_out.as_ref().map(|k| Box::new(SrtpSession::new(k)));
        }
        self.ice = p
            .ice
            .and_then(|c| IceCredentials::new(c.ufrag(), c.pwd()).ok())
            .map(Box::new);
    }
}

fn same_keys(a: Option<&SrtpKeys>, b: Option<&SrtpKeys>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.profile == b.profile && a.master_key == b.master_key && a.master_salt == b.master_salt
        }
        _ => false,
    }
}

/// Default RTCP destination for an RTP address (RFC 3550 §11: RTP port + 1).
fn rtcp_of(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip(), a.port().wrapping_add(1))
}

#[repr(C)]
struct Pair {
    legs: [Leg; 2],
    generation: u32,
    /// The pair's last media time when its inactivity was reported: reported again
    /// only after newer media (so the packet path writes nothing for it).
    inactive_reported_at: Option<u64>,
}

impl Pair {
    /// The pair is allocated (both legs carry the flag).
    fn armed(&self) -> bool {
        self.legs[0].armed
    }

    /// When either leg last received media.
    fn last_rx_us(&self) -> u64 {
        self.legs[0].last_rx_us.max(self.legs[1].last_rx_us)
    }
}

/// Map an SRTP error to the drop reason counted for it.
fn srtp_reason(e: &SrtpError) -> DropReason {
    match e {
        SrtpError::AuthFailed => DropReason::SrtpAuth,
        SrtpError::Replay | SrtpError::TooOld => DropReason::Replay,
        _ => DropReason::SrtpOther,
    }
}

/// The session table of one worker plus the decision logic.
pub(crate) struct Relay {
    worker: WorkerId,
    base_port: u16,
    pairs: Vec<Pair>,
    shared: Arc<WorkerShared>,
    events: Arc<ArrayQueue<Event>>,
    inactivity_us: u64,
    srtp_fail_threshold: u64,
    /// Copy of a STUN request while the answer is written over the receive buffer.
    scratch: Box<[u8; BUF_SIZE]>,
    /// Next pair housekeeping visits (it walks the table a slice at a time).
    sweep_next: usize,
    /// Pairs removed since the backend last looked (see [`Relay::track_removals`]); holds
    /// one command budget's worth, which is all one drain can remove.
    pub(crate) removed: Vec<u32>,
    track_removed: bool,
}

impl Relay {
    pub(crate) fn new(
        worker: WorkerId,
        base_port: u16,
        pairs: u32,
        shared: Arc<WorkerShared>,
        events: Arc<ArrayQueue<Event>>,
        inactivity_us: u64,
        srtp_fail_threshold: u64,
    ) -> Relay {
        Relay {
            worker,
            base_port,
            pairs: (0..pairs)
                .map(|_| Pair {
                    generation: 0,
                    legs: [Leg::new(), Leg::new()],
                    inactive_reported_at: None,
                })
                .collect(),
            shared,
            events,
            inactivity_us,
            srtp_fail_threshold: srtp_fail_threshold.max(1),
            scratch: Box::new([0; BUF_SIZE]),
            sweep_next: 0,
            removed: Vec::with_capacity(COMMAND_BUDGET),
            track_removed: false,
        }
    }

    /// Record removed pairs in [`Relay::removed`] from now on (for a backend that keeps
    /// per-port state of its own, which it drops when the pair goes).
    pub(crate) fn track_removals(&mut self) {
        self.track_removed = true;
    }

    /// Number of sockets (ports) in the slice.
    pub(crate) fn sockets(&self) -> u32 {
        u32::try_from(self.pairs.len() * 4).unwrap_or(u32::MAX)
    }

    /// Apply one control command. Stale generations are counted and ignored.
    pub(crate) fn apply(&mut self, cmd: &Command, now_us: u64) {
        let w = &self.shared.worker;
        match *cmd {
            Command::Update {
                pair,
                generation,
                ref params,
            } => {
                let Some(p) = self.pairs.get_mut(pair as usize) else {
                    w.stale_commands.add(1);
                    return;
                };
                let newer = (generation.wrapping_sub(p.generation) as i32) > 0;
                let armed = p.armed();
                let fresh = newer || (!armed && p.generation == 0 && generation == 0);
                if !(fresh || (armed && generation == p.generation)) {
                    w.stale_commands.add(1);
                    return;
                }
                if fresh {
                    p.generation = generation;
                    p.inactive_reported_at = None;
                    for leg in 0..2u32 {
                        if let Some(c) = self.shared.legs.get((pair * 2 + leg) as usize) {
                            c.reset(generation);
                        }
                    }
                    if !armed {
                        w.active_pairs.add(1);
                    }
                }
                for (i, (leg, prm)) in (0..).zip(p.legs.iter_mut().zip(params)) {
                    leg.apply(prm, fresh);
                    leg.armed = true;
                    if fresh {
                        leg.last_rx_us = now_us;
                    }
                    if let Some(c) = self.shared.legs.get((pair * 2 + i) as usize) {
                        c.rtp_clock_rate.set(u64::from(leg.clock_rate));
                    }
                }
                w.commands.add(1);
            }
            Command::Remove { pair, generation } => {
                match self.pairs.get_mut(pair as usize) {
                    Some(p) if p.armed() && p.generation == generation => {
                        // Drop key material and per-leg state now (and the armed flag).
                        p.legs = [Leg::new(), Leg::new()];
                        w.active_pairs.set(w.active_pairs.get().saturating_sub(1));
                        w.commands.add(1);
                        if self.track_removed && self.removed.len() < self.removed.capacity() {
                            self.removed.push(pair);
                        }
                    }
                    _ => w.stale_commands.add(1),
                }
            }
            Command::Shutdown | Command::Quiesce { .. } => w.commands.add(1),
        }
    }

    /// Periodic work on the next slice of the pair table: raise inactivity and
    /// SRTP-failure events (RTP statistics are published by the packet path itself).
    /// Each call visits `ceil(pairs / SWEEP_SLICES)` pairs, carrying on where the last
    /// call stopped, so every pair is visited once per [`SWEEP_SLICES`] calls. Not the
    /// whole table at once: a sweep of 20,000 pairs with cold caches takes about 2.5 ms,
    /// a stall every packet queued behind it would feel.
    pub(crate) fn housekeeping(&mut self, now_us: u64) {
        let n = self.pairs.len();
        if n == 0 {
            return;
        }
        let start = self.sweep_next.min(n - 1);
        let end = (start + n.div_ceil(SWEEP_SLICES)).min(n);
        self.sweep_next = if end == n { 0 } else { end };
        let w = &self.shared.worker;
        for i in start..end {
            let Some(p) = self.pairs.get_mut(i) else {
                break;
            };
            if !p.armed() {
                continue;
            }
            let h = make_handle(self.worker, self.base_port, i, p.generation);
            let last = p.last_rx_us();
            let inactive = now_us.saturating_sub(last) >= self.inactivity_us;
            if inactive && p.inactive_reported_at != Some(last) {
                p.inactive_reported_at = Some(last);
                if self.events.push(Event::Inactive { handle: h }).is_err() {
                    w.events_lost.add(1);
                }
            }
            for (s, leg) in p.legs.iter_mut().enumerate() {
                if leg.srtp_failures - leg.srtp_failures_reported >= self.srtp_fail_threshold {
                    leg.srtp_failures_reported = leg.srtp_failures;
                    let ev = Event::SrtpAuthFailures {
                        handle: h,
                        side: if s == 0 { Side::A } else { Side::B },
                        count: leg.srtp_failures,
                    };
                    if self.events.push(ev).is_err() {
                        w.events_lost.add(1);
                    }
                }
            }
        }
    }

    /// Count a failed send of a packet that `on_packet` had accepted for socket `sock`.
    pub(crate) fn on_send_error(&self, sock: u32) {
        let w = &self.shared.worker;
        w.drops[DropReason::SendError as usize].add(1);
        if let Some(c) = self.shared.legs.get((sock / 2) as usize) {
            c.drops[DropReason::SendError as usize].add(1);
        }
    }

    /// Count a datagram that could not be decoded (truncated, unknown address family).
    pub(crate) fn on_malformed(&self, sock: u32) {
        let w = &self.shared.worker;
        w.rx_packets.add(1);
        w.drops[DropReason::Malformed as usize].add(1);
        if let Some(c) = self.shared.legs.get((sock / 2) as usize) {
            c.drops[DropReason::Malformed as usize].add(1);
        }
    }

    /// Count a packet lost for lack of a submission slot on socket `sock`.
    pub(crate) fn on_ring_full(&self, sock: u32) {
        let w = &self.shared.worker;
        w.drops[DropReason::RingFull as usize].add(1);
        if let Some(c) = self.shared.legs.get((sock / 2) as usize) {
            c.drops[DropReason::RingFull as usize].add(1);
        }
    }

    /// Decide what to do with `buf[..len]`, received on socket `sock` from `from`.
    ///
    /// `buf` must be at least `len + SRTP_MAX_TRAILER` long (tailroom for protection).
    /// The packet may be transformed in place; on [`Verdict::Send`] the bytes to send are
    /// `buf[..len]` of the returned `len`.
    #[inline]
    pub(crate) fn on_packet(
        &mut self,
        sock: u32,
        from: SocketAddr,
        buf: &mut [u8],
        len: usize,
        now_us: u64,
    ) -> Verdict {
        let shared = &*self.shared;
        let w = &shared.worker;
        w.rx_packets.add(1);
        w.rx_bytes.add(len as u64);
        let leg_slot = (sock / 2) as usize;
        let rtcp_port = sock & 1 == 1;
        let side = leg_slot & 1;
        let Some(pair) = self.pairs.get_mut(leg_slot / 2) else {
            return drop_w(shared, None, DropReason::NoStream);
        };
        if !pair.legs[side].armed {
            return drop_w(shared, None, DropReason::NoStream);
        }
        let lc = shared.legs.get(leg_slot).map(|c| &**c);
        if let Some(c) = lc {
            c.rx_packets.add(1);
            c.rx_bytes.add(len as u64);
        }
        let Some(data) = buf.get(..len) else {
            return drop_w(shared, lc, DropReason::Malformed);
        };
        let kind = classify(data);
        let [a, b] = &mut pair.legs;
        let (leg, out) = if side == 0 { (a, b) } else { (b, a) };
        match kind {
            PacketKind::Stun => {
                let Some(creds) = leg.ice.as_ref() else {
                    return drop_w(shared, lc, DropReason::Stun);
                };
                let Some(req) = self.scratch.get_mut(..len) else {
                    return drop_w(shared, lc, DropReason::Malformed);
                };
                req.copy_from_slice(data);
                match answer_binding(req, from, creds, buf) {
                    Ok(n) => {
                        if let Some(c) = lc {
                            c.stun_answered.add(1);
                            c.stun_answer_bytes.add(n as u64);
                        }
                        w.tx_packets.add(1);
                        w.tx_bytes.add(n as u64);
                        Verdict::Send {
                            sock,
                            to: from,
                            len: n,
                            forward: false,
                        }
                    }
                    Err(_) => drop_w(shared, lc, DropReason::Stun),
                }
            }
            PacketKind::Rtp if !rtcp_port => {
                let ssrc = match RtpPacket::new_header_checked(data) {
                    Ok(h) => h.ssrc(),
                    Err(_) => return drop_w(shared, lc, DropReason::Malformed),
                };
                let mut relatch = false;
                if leg.flags.latching && leg.latched && Some(from) != leg.peer {
                    if leg.flags.allow_relatch_on_ssrc_change && Some(ssrc) != leg.latched_ssrc {
                        relatch = true;
                    } else {
                        return drop_w(shared, lc, DropReason::NotLatchedSource);
                    }
                }
                let mut plen = len;
                if let Some(s) = leg.srtp_in.as_mut() {
                    match s.unprotect_rtp(buf, len) {
                        Ok(n) => plen = n,
                        Err(e) => return unprotect_failed(shared, lc, &mut leg.srtp_failures, &e),
                    }
                }
                // Authenticated (or plain) RTP from now on.
                if let Some(p) = buf.get(..plen).and_then(|d| RtpPacket::new_checked(d).ok()) {
                    let arrival = now_us.wrapping_mul(u64::from(leg.clock_rate)) / 1_000_000;
                    leg.stats
                        .update(p.sequence(), p.timestamp(), arrival as u32);
                    // Published with every packet, into the line its rx counters are in:
                    // a CDR read at any moment has the call's figures up to that packet.
                    // Received before expected, so a reader (expected first) never sees
                    // more lost than there were.
                    if let Some(c) = lc {
                        c.rtp_received.set(leg.stats.received());
                        c.rtp_expected.set(leg.stats.expected());
                        c.rtp_jitter.set(u64::from(leg.stats.jitter()));
                    }
                }
                if leg.flags.latching && (!leg.latched || relatch) {
                    leg.latched = true;
                    leg.latched_ssrc = Some(ssrc);
                    leg.peer = Some(from);
                    leg.rtcp_latched = false;
                    leg.rtcp_peer = Some(rtcp_of(from));
                    let ev = Event::Latched {
                        handle: make_handle(
                            self.worker,
                            self.base_port,
                            leg_slot / 2,
                            pair.generation,
                        ),
                        side: if side == 0 { Side::A } else { Side::B },
                        addr: from,
                    };
                    if self.events.push(ev).is_err() {
                        w.events_lost.add(1);
                    }
                }
                leg.last_rx_us = now_us;
                let Some(to) = out.peer else {
                    return drop_w(shared, lc, DropReason::NoPeer);
                };
                send_out(shared, lc, out, leg_slot ^ 1, false, false, to, buf, plen)
            }
            PacketKind::Rtcp => {
                let Some(sender) = rtcp_sender_ssrc(data) else {
                    return drop_w(shared, lc, DropReason::Malformed);
                };
                if leg.flags.latching {
                    if rtcp_port {
                        if leg.rtcp_latched
                            && Some(from) != leg.rtcp_peer
                            && !(leg.flags.allow_relatch_on_ssrc_change
                                && Some(sender) != leg.latched_ssrc)
                        {
                            return drop_w(shared, lc, DropReason::NotLatchedSource);
                        }
                    } else if leg.latched && Some(from) != leg.peer {
                        return drop_w(shared, lc, DropReason::NotLatchedSource);
                    }
                }
                let mut plen = len;
                if let Some(s) = leg.srtp_in.as_mut() {
                    match s.unprotect_rtcp(buf, len) {
                        Ok(n) => plen = n,
                        Err(e) => return unprotect_failed(shared, lc, &mut leg.srtp_failures, &e),
                    }
                }
                if rtcp_port && leg.flags.latching {
                    leg.rtcp_latched = true;
                    leg.rtcp_peer = Some(from);
                }
                leg.last_rx_us = now_us;
                let dest = if out.flags.rtcp_mux {
                    out.peer
                } else {
                    out.rtcp_peer
                };
                let Some(to) = dest else {
                    return drop_w(shared, lc, DropReason::NoPeer);
                };
                let mux = out.flags.rtcp_mux;
                send_out(shared, lc, out, leg_slot ^ 1, true, !mux, to, buf, plen)
            }
            _ => drop_w(shared, lc, DropReason::Malformed),
        }
    }
}

/// The public handle of pair slot `pair` of a worker whose slice starts at `base_port`.
pub(crate) fn make_handle(
    worker: WorkerId,
    base_port: u16,
    pair: usize,
    generation: u32,
) -> StreamPairHandle {
    let p = u32::try_from(pair).unwrap_or(u32::MAX);
    let base = u32::from(base_port).saturating_add(p.saturating_mul(4));
    StreamPairHandle {
        worker,
        pair: p,
        generation,
        port_a: u16::try_from(base).unwrap_or(0),
        port_b: u16::try_from(base + 2).unwrap_or(0),
    }
}

/// Count a packet that failed SRTP/SRTCP unprotection and drop it. Only authentication
/// failures feed the leg's alarm (`failures`); replays are often benign duplicates.
#[cold]
fn unprotect_failed(
    shared: &WorkerShared,
    lc: Option<&StreamCounters>,
    failures: &mut u64,
    e: &SrtpError,
) -> Verdict {
    let reason = srtp_reason(e);
    if reason == DropReason::SrtpAuth {
        *failures += 1;
    }
    shared.worker.srtp_failures.add(1);
    drop_w(shared, lc, reason)
}

/// Count a drop on the worker and (when known) on the leg.
#[inline]
fn drop_w(shared: &WorkerShared, leg: Option<&StreamCounters>, reason: DropReason) -> Verdict {
    if let Some(c) = shared.worker.drops.get(reason as usize) {
        c.add(1);
    }
    if let Some(c) = leg.and_then(|l| l.drops.get(reason as usize)) {
        c.add(1);
    }
    Verdict::Drop
}

/// Protect for the outgoing leg when it uses SRTP, count, and build the send verdict.
#[allow(clippy::too_many_arguments)]
#[inline]
fn send_out(
    shared: &WorkerShared,
    lc: Option<&StreamCounters>,
    out: &mut Leg,
    out_leg_slot: usize,
    rtcp: bool,
    rtcp_sock: bool,
    to: SocketAddr,
    buf: &mut [u8],
    plen: usize,
) -> Verdict {
    let mut n = plen;
    if let Some(s) = out.srtp_out.as_mut() {
        let r = if rtcp {
            s.protect_rtcp(buf, plen)
        } else {
            s.protect_rtp(buf, plen)
        };
        match r {
            Ok(m) => n = m,
            Err(_) => {
                shared.worker.srtp_failures.add(1);
                return drop_w(shared, lc, DropReason::SrtpOther);
            }
        }
    }
    let w = &shared.worker;
    w.tx_packets.add(1);
    w.tx_bytes.add(n as u64);
    // Counted on the receiving leg, in the line `on_packet` already wrote: it is the
    // sending leg's tx (`PairStats::read`), without touching that leg's block.
    if let Some(c) = lc {
        c.relayed_packets.add(1);
        c.relayed_bytes.add(n as u64);
    }
    let sock = u32::try_from(out_leg_slot * 2).unwrap_or(u32::MAX) + u32::from(rtcp_sock);
    Verdict::Send {
        sock,
        to,
        len: n,
        forward: !rtcp_sock,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::PairStats;
    use std::net::{IpAddr, Ipv4Addr};

    fn relay(pairs: u32) -> (Relay, Arc<WorkerShared>, Arc<ArrayQueue<Event>>) {
        let shared = Arc::new(WorkerShared::new(pairs as usize * 2));
        let events = Arc::new(ArrayQueue::new(16));
        let r = Relay::new(
            WorkerId(0),
            30000,
            pairs,
            shared.clone(),
            events.clone(),
            1_000_000,
            2,
        );
        (r, shared, events)
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    }

    fn rtp(seq: u16, ssrc: u32) -> [u8; BUF_SIZE] {
        let mut b = [0u8; BUF_SIZE];
        b[0] = 0x80;
        b[2..4].copy_from_slice(&seq.to_be_bytes());
        b[8..12].copy_from_slice(&ssrc.to_be_bytes());
        b
    }

    fn update(pair: u32, generation: u32, b_peer: Option<SocketAddr>) -> Command {
        Command::Update {
            pair,
            generation,
            params: [
                StreamParams::default(),
                StreamParams {
                    peer: b_peer,
                    ..StreamParams::default()
                },
            ],
        }
    }

    #[test]
    fn port_layout_maps_socket_to_pair_and_side() {
        let h = make_handle(WorkerId(3), 30000, 5, 9);
        assert_eq!(
            (h.port_a, h.port_b, h.pair, h.generation),
            (30020, 30022, 5, 9)
        );
        let (mut r, shared, _) = relay(6);
        assert_eq!(r.sockets(), 24);
        r.apply(&update(5, 1, Some(addr(9))), 0);
        let mut b = rtp(1, 7);
        // Socket 20 = pair 5 leg A RTP → out of socket 22 (leg B RTP).
        assert_eq!(
            r.on_packet(20, addr(1000), &mut b, 32, 1),
            Verdict::Send {
                sock: 22,
                to: addr(9),
                len: 32,
                forward: true,
            }
        );
        let stats = PairStats::read(&shared.legs[10], &shared.legs[11]);
        assert_eq!(stats.a.rx_packets, 1);
        assert_eq!(stats.b.tx_packets, 1);
        assert_eq!(stats.b.tx_bytes, 32);
        assert_eq!((stats.a.tx_packets, stats.b.rx_packets), (0, 0));
    }

    #[test]
    fn unarmed_short_and_unknown_packets_are_counted_drops() {
        let (mut r, shared, _) = relay(2);
        let mut b = rtp(1, 1);
        assert_eq!(r.on_packet(0, addr(1), &mut b, 32, 0), Verdict::Drop);
        assert_eq!(r.on_packet(999, addr(1), &mut b, 32, 0), Verdict::Drop);
        assert_eq!(shared.worker.drops[DropReason::NoStream as usize].get(), 2);
        r.apply(&update(0, 1, Some(addr(9))), 0);
        assert_eq!(r.on_packet(0, addr(1), &mut b, 5, 0), Verdict::Drop);
        assert_eq!(
            r.on_packet(0, addr(1), &mut b, BUF_SIZE + 1, 0),
            Verdict::Drop
        );
        // RTP on the RTCP port is malformed.
        assert_eq!(r.on_packet(1, addr(1), &mut b, 32, 0), Verdict::Drop);
        assert_eq!(
            shared.legs[0].drops[DropReason::Malformed as usize].get(),
            3
        );
    }

    #[test]
    fn generations_gate_commands() {
        let (mut r, shared, _) = relay(1);
        r.apply(&update(0, 2, None), 0);
        assert_eq!(shared.worker.active_pairs.get(), 1);
        r.apply(&update(0, 1, Some(addr(5))), 0); // older: stale
        r.apply(
            &Command::Remove {
                pair: 0,
                generation: 1,
            },
            0,
        ); // stale
        assert_eq!(shared.worker.stale_commands.get(), 2);
        r.apply(
            &Command::Remove {
                pair: 0,
                generation: 2,
            },
            0,
        );
        assert_eq!(shared.worker.active_pairs.get(), 0);
        r.apply(&update(0, 2, None), 0); // removed generation cannot come back
        assert_eq!(shared.worker.stale_commands.get(), 3);
        let mut b = rtp(1, 1);
        assert_eq!(r.on_packet(0, addr(1), &mut b, 32, 0), Verdict::Drop);
        r.apply(&update(0, u32::MAX, None), 0); // "older" in wrapping order
        assert_eq!(shared.worker.stale_commands.get(), 4);
    }

    #[test]
    fn inactivity_and_latch_events_carry_the_generation() {
        let (mut r, _, events) = relay(1);
        r.apply(&update(0, 4, Some(addr(9))), 0);
        let mut b = rtp(1, 1);
        assert!(matches!(
            r.on_packet(0, addr(1), &mut b, 32, 10),
            Verdict::Send { .. }
        ));
        match events.pop() {
            Some(Event::Latched {
                handle,
                side,
                addr: a,
            }) => {
                assert_eq!((handle.generation, side, a), (4, Side::A, addr(1)));
            }
            other => panic!("expected Latched, got {other:?}"),
        }
        r.housekeeping(500_000);
        assert!(events.pop().is_none(), "not inactive yet");
        r.housekeeping(1_000_011);
        assert!(matches!(events.pop(), Some(Event::Inactive { handle }) if handle.generation == 4));
        r.housekeeping(3_000_000);
        assert!(events.pop().is_none(), "reported once");
        // Media again, this time from B: reported again a timeout after it, once.
        let mut b = rtp(2, 1);
        assert!(matches!(
            r.on_packet(2, addr(9), &mut b, 32, 3_500_000),
            Verdict::Send { .. }
        ));
        let _ = events.pop(); // B latched
        r.housekeeping(4_000_000);
        assert!(events.pop().is_none(), "active again");
        r.housekeeping(4_500_001);
        assert!(matches!(events.pop(), Some(Event::Inactive { .. })));
        r.housekeeping(9_000_000);
        assert!(events.pop().is_none(), "reported once");
    }

    /// One housekeeping run visits one slice of the table, and `SWEEP_SLICES` runs visit
    /// every pair exactly once (here: every pair is inactive, one event per visit).
    #[test]
    fn housekeeping_walks_the_table_a_slice_at_a_time() {
        let pairs = 1050u32;
        let shared = Arc::new(WorkerShared::new(pairs as usize * 2));
        let events = Arc::new(ArrayQueue::new(pairs as usize));
        let mut r = Relay::new(WorkerId(0), 30000, pairs, shared, events.clone(), 1_000, 2);
        for p in 0..pairs {
            r.apply(&update(p, 1, None), 0);
        }
        r.housekeeping(10_000);
        let slice = (pairs as usize).div_ceil(SWEEP_SLICES);
        assert_eq!(events.len(), slice, "one run, one slice");
        for _ in 1..SWEEP_SLICES {
            r.housekeeping(10_000);
        }
        let mut seen: Vec<u32> = std::iter::from_fn(|| events.pop())
            .map(|e| match e {
                Event::Inactive { handle } => handle.pair,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), pairs as usize, "every pair visited in one walk");
    }
}
#[cfg(test)]
mod layout {
    /// The session table stays compact: SRTP contexts are boxed, not inline (they made a
    /// pair 9.5 KB). A pair is two 5-line legs and a line of its own.
    #[test]
    fn pair_stays_small() {
        let pair = std::mem::size_of::<super::Pair>();
        assert!(pair <= 704, "Pair grew to {pair} bytes");
    }
}

/// The packet path without I/O, for a benchmark of what it costs per packet
/// (`benches/benches/relay_path.rs`): the relay decision, counters, RTP statistics and
/// SRTP of one worker, fed datagrams by hand. Not an API.
#[doc(hidden)]
pub struct PathBench {
    relay: Relay,
}

impl std::fmt::Debug for PathBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PathBench")
            .field("pairs", &self.relay.pairs.len())
            .finish_non_exhaustive()
    }
}

#[doc(hidden)]
impl PathBench {
    /// A worker slice of `pairs` pairs (socket `4p` is pair `p`'s leg A RTP port, `4p + 2`
    /// leg B's).
    #[must_use]
    pub fn new(pairs: u32) -> PathBench {
        let shared = Arc::new(WorkerShared::new(pairs as usize * 2));
        let events = Arc::new(ArrayQueue::new(pairs as usize * 4 + 16));
        PathBench {
            relay: Relay::new(WorkerId(0), 30000, pairs, shared, events, u64::MAX, 1),
        }
    }

    /// Arm pair `pair` with these leg parameters.
    pub fn update(&mut self, pair: u32, a: StreamParams, b: StreamParams) {
        let cmd = Command::Update {
            pair,
            generation: 1,
            params: [a, b],
        };
        self.relay.apply(&cmd, 0);
    }

    /// Hand in a datagram received on socket `sock` from `from`: the length to send, or
    /// `None` when it was dropped.
    pub fn packet(
        &mut self,
        sock: u32,
        from: SocketAddr,
        buf: &mut [u8],
        len: usize,
        now_us: u64,
    ) -> Option<usize> {
        match self.relay.on_packet(sock, from, buf, len, now_us) {
            Verdict::Send { len, .. } => Some(len),
            Verdict::Drop => None,
        }
    }
}

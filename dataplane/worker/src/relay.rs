//! The per-packet relay decision, shared by both I/O backends.
//!
//! No I/O here: a backend hands in the receiving socket index, the source address and the
//! buffer (with tailroom for the SRTP trailer), and gets back a `Verdict` saying which
//! socket should send how many bytes of *the same buffer* to which address. Everything on
//! the packet path works on preallocated state: no allocation, no lock, no syscall.
//!
//! Socket layout of a worker slice ([`crate::realm`]): realm after realm, leg slot
//! `= sock / 2` (even port RTP, odd port RTCP). A pair takes one leg slot per side, each in
//! its side's realm; the pair's *leg index* `= pair * 2 + side` (A then B) names its
//! state and counters. A received packet costs one load to go from leg slot to leg index
//! (`owner`), and the sending socket is the other side's leg slot, kept in the pair.

mod control;
mod resume;

pub(crate) use resume::read as resume_read;

use std::net::SocketAddr;
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use portcullis_rtp::rtp::{classify, rtcp_sender_ssrc, PacketKind, RtpPacket};
use portcullis_rtp::srtp::SrtpError;
use portcullis_rtp::stun::answer_binding_detailed;

use crate::counters::{DropReason, StreamCounters, WorkerShared};
use crate::fastpath::FastSync;
use crate::learning::Admit;
use crate::leg::Leg;
use crate::realm::SocketPlan;
use crate::types::{
    Command, EndpointLearning, Event, LegState, Side, StreamPairHandle, StreamParams, WorkerId,
};

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

#[repr(C)]
struct Pair {
    legs: [Leg; 2],
    generation: u32,
    /// Leg slots of sides A and B (from the pair's latest update).
    slots: [u32; 2],
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

/// The worker-wide limits of the relay decision (from [`crate::DataplaneConfig`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RelayLimits {
    /// A pair with no media for this long is reported inactive (µs).
    pub(crate) inactivity_us: u64,
    /// SRTP authentication failures on a leg before they are reported.
    pub(crate) srtp_fail_threshold: u64,
    /// Endpoint learning window (µs).
    pub(crate) learning_window_us: u64,
}

/// The session table of one worker plus the decision logic.
pub(crate) struct Relay {
    worker: WorkerId,
    /// Address and port of every socket (for handles and ports; never per packet).
    plan: Arc<SocketPlan>,
    pairs: Vec<Pair>,
    /// Leg index (`pair * 2 + side`) of each leg slot, [`NO_LEG`] when no pair holds it.
    owner: Vec<u32>,
    shared: Arc<WorkerShared>,
    events: Arc<ArrayQueue<Event>>,
    inactivity_us: u64,
    srtp_fail_threshold: u64,
    window_us: u64,
    /// Copy of a STUN request while the answer is written over the receive buffer.
    scratch: Box<[u8; BUF_SIZE]>,
    /// Next pair housekeeping visits (it walks the table a slice at a time).
    sweep_next: usize,
    /// Leg slots of the pairs removed since the backend last looked (see
    /// [`Relay::track_removals`]); holds one command budget's worth of pairs, which is all
    /// one drain can remove.
    pub(crate) removed: Vec<u32>,
    track_removed: bool,
    /// The XDP fast path's promoted ports of this slice (`None`: fast path off).
    pub(crate) fast: Option<FastSync>,
}

impl Relay {
    pub(crate) fn new(
        worker: WorkerId,
        plan: Arc<SocketPlan>,
        shared: Arc<WorkerShared>,
        events: Arc<ArrayQueue<Event>>,
        limits: RelayLimits,
    ) -> Relay {
        let pairs = plan.pairs();
        Relay {
            worker,
            pairs: (0..pairs)
                .map(|_| Pair {
                    generation: 0,
                    legs: [Leg::new(), Leg::new()],
                    slots: [NO_LEG; 2],
                    inactive_reported_at: None,
                })
                .collect(),
            owner: vec![NO_LEG; plan.legs() as usize],
            plan,
            shared,
            events,
            inactivity_us: limits.inactivity_us,
            srtp_fail_threshold: limits.srtp_fail_threshold.max(1),
            window_us: limits.learning_window_us,
            scratch: Box::new([0; BUF_SIZE]),
            sweep_next: 0,
            removed: Vec::with_capacity(COMMAND_BUDGET * 2),
            track_removed: false,
            fast: None,
        }
    }

    /// Record removed pairs in [`Relay::removed`] from now on (for a backend that keeps
    /// per-port state of its own, which it drops when the pair goes).
    pub(crate) fn track_removals(&mut self) {
        self.track_removed = true;
    }

    /// Number of sockets (ports) in the slice.
    pub(crate) fn sockets(&self) -> u32 {
        self.plan.sockets()
    }

    /// Leg index (`pair * 2 + side`) of the leg on socket `sock`; [`NO_LEG`] when none.
    #[inline]
    fn leg_of(&self, sock: u32) -> u32 {
        self.owner
            .get((sock / 2) as usize)
            .copied()
            .unwrap_or(NO_LEG)
    }

    /// Count a failed send of a packet that `on_packet` had accepted for socket `sock`.
    pub(crate) fn on_send_error(&self, sock: u32) {
        let w = &self.shared.worker;
        w.drops[DropReason::SendError as usize].add(1);
        if let Some(c) = self.shared.legs.get(self.leg_of(sock) as usize) {
            c.drops[DropReason::SendError as usize].add(1);
        }
    }

    /// Count a datagram that could not be decoded (truncated, unknown address family).
    pub(crate) fn on_malformed(&self, sock: u32) {
        let w = &self.shared.worker;
        w.rx_packets.add(1);
        w.drops[DropReason::Malformed as usize].add(1);
        if let Some(c) = self.shared.legs.get(self.leg_of(sock) as usize) {
            c.drops[DropReason::Malformed as usize].add(1);
        }
    }

    /// Count a packet lost for lack of a submission slot on socket `sock`.
    pub(crate) fn on_ring_full(&self, sock: u32) {
        let w = &self.shared.worker;
        w.drops[DropReason::RingFull as usize].add(1);
        if let Some(c) = self.shared.legs.get(self.leg_of(sock) as usize) {
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
        let leg_slot = self
            .owner
            .get((sock / 2) as usize)
            .copied()
            .unwrap_or(NO_LEG) as usize;
        let rtcp_port = sock & 1 == 1;
        let side = leg_slot & 1;
        let plan = &*self.plan;
        let Some(pair) = self.pairs.get_mut(leg_slot / 2) else {
            return drop_w(shared, None, DropReason::NoStream);
        };
        let (slots, out_slot) = (pair.slots, pair.slots[side ^ 1] as usize);
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
        let [a, b] = &mut pair.legs;
        let (leg, out) = if side == 0 { (a, b) } else { (b, a) };
        let (worker, generation) = (self.worker, pair.generation);
        let handle = move || make_handle(worker, plan, leg_slot / 2, generation, slots);
        if leg.flags.udptl {
            let arrival = crate::opaque::Arrival {
                shared,
                lc,
                events: &self.events,
                handle: &handle,
                leg_index: leg_slot,
                out_slot,
                rtcp_port,
                from,
                len,
                now_us,
                window_us: self.window_us,
            };
            return crate::opaque::on_datagram(&arrival, data, leg, out);
        }
        let kind = classify(data);
        match kind {
            PacketKind::Stun => {
                let Some(creds) = leg.ice.as_ref() else {
                    return drop_w(shared, lc, DropReason::Stun);
                };
                let Some(req) = self.scratch.get_mut(..len) else {
                    return drop_w(shared, lc, DropReason::Malformed);
                };
                req.copy_from_slice(data);
                match answer_binding_detailed(req, from, creds, buf) {
                    Ok(ans) => {
                        let n = ans.len;
                        if let Some(c) = lc {
                            c.stun_answered.add(1);
                            c.stun_answer_bytes.add(n as u64);
                        }
                        // RFC 8445 §7.3.1.5: the controlling agent nominated this pair;
                        // the request carried our credentials, so it is signalling's word.
                        if ans.use_candidate {
                            if let Some(to) = leg.nominated(from) {
                                latched(&self.events, shared, handle(), side, to);
                            }
                            if let Some(c) = lc {
                                publish_state(c, leg.state());
                            }
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
                let (ssrc, seq) = match RtpPacket::new_header_checked(data) {
                    Ok(h) => (h.ssrc(), h.sequence()),
                    Err(_) => return drop_w(shared, lc, DropReason::Malformed),
                };
                // Media from the peer costs this one comparison; anything else is judged
                // by endpoint learning (cold).
                let admit = if leg.peer == Some(from) {
                    Admit::Peer
                } else if leg.flags.learning == EndpointLearning::Off {
                    Admit::Relay
                } else {
                    let (admit, moved) = leg.judge(from, ssrc, seq, now_us, self.window_us);
                    if let Some(c) = lc {
                        publish_state(c, leg.state());
                    }
                    if let Some(to) = moved {
                        latched(&self.events, shared, handle(), side, to);
                    }
                    if admit == Admit::Reject {
                        return drop_w(shared, lc, DropReason::RtpSourceRejected);
                    }
                    admit
                };
                let mut plen = len;
                if let Some(s) = leg.srtp_in.as_mut() {
                    match s.unprotect_rtp(buf, len) {
                        Ok(n) => plen = n,
                        Err(e) => {
                            if admit == Admit::Learn {
                                leg.learn.unproven();
                            }
                            return unprotect_failed(shared, lc, &mut leg.srtp_failures, &e);
                        }
                    }
                }
                // Authenticated (or plain) RTP from now on.
                match admit {
                    // The peer's first packet confirms it (reported once, as a latch).
                    Admit::Peer if !leg.heard => {
                        leg.heard = true;
                        latched(&self.events, shared, handle(), side, from);
                    }
                    Admit::Learn => {
                        if let Some(to) = leg.learned(from) {
                            latched(&self.events, shared, handle(), side, to);
                        }
                        if let Some(c) = lc {
                            publish_state(c, leg.state());
                        }
                    }
                    Admit::Peer | Admit::Relay | Admit::Reject => {}
                }
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
                leg.last_rx_us = now_us;
                if let Some(pt) = leg.flags.dtmf.detect {
                    if buf.get(1).is_some_and(|b| b & 0x7f == pt) {
                        let drop = leg.flags.dtmf.drop_events;
                        dtmf_event(&self.events, shared, handle(), side, leg, buf, plen);
                        if drop {
                            return Verdict::Drop;
                        }
                    }
                }
                let Some(to) = out.peer else {
                    return drop_w(shared, lc, DropReason::NoPeer);
                };
                if out.injecting {
                    plen = out.inject_dtmf(buf, plen);
                }
                send_out(shared, lc, out, out_slot, false, false, to, buf, plen)
            }
            PacketKind::Rtcp => {
                if rtcp_sender_ssrc(data).is_none() {
                    return drop_w(shared, lc, DropReason::Malformed);
                }
                if !leg.rtcp_source_ok(rtcp_port, from) {
                    return drop_w(shared, lc, DropReason::RtpSourceRejected);
                }
                let mut plen = len;
                if let Some(s) = leg.srtp_in.as_mut() {
                    match s.unprotect_rtcp(buf, len) {
                        Ok(n) => plen = n,
                        Err(e) => return unprotect_failed(shared, lc, &mut leg.srtp_failures, &e),
                    }
                }
                if rtcp_port
                    && leg.rtcp_peer != Some(from)
                    && leg.flags.learning != EndpointLearning::Off
                {
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
                send_out(shared, lc, out, out_slot, true, !mux, to, buf, plen)
            }
            _ => drop_w(shared, lc, DropReason::Malformed),
        }
    }
}

/// An RFC 4733 packet `buf[..len]` (plain) from leg `side`'s peer: report the event
/// once it ended.
#[cold]
fn dtmf_event(
    events: &ArrayQueue<Event>,
    shared: &WorkerShared,
    handle: StreamPairHandle,
    side: usize,
    leg: &mut Leg,
    buf: &[u8],
    len: usize,
) {
    let Some(p) = buf.get(..len).and_then(|d| RtpPacket::new_checked(d).ok()) else {
        return;
    };
    let Some(d) = leg.dtmf.as_mut() else {
        return;
    };
    if let Some((event, duration)) = d.detector.observe(&p) {
        shared.worker.dtmf_detected.add(1);
        let ev = Event::Dtmf {
            handle,
            side: if side == 0 { Side::A } else { Side::B },
            event,
            duration,
        };
        if events.push(ev).is_err() {
            shared.worker.events_lost.add(1);
        }
    }
}

/// Report that leg `side` (0 = A) of the pair `handle` now sends to `addr`.
#[cold]
pub(crate) fn latched(
    events: &ArrayQueue<Event>,
    shared: &WorkerShared,
    handle: StreamPairHandle,
    side: usize,
    addr: SocketAddr,
) {
    let ev = Event::Latched {
        handle,
        side: if side == 0 { Side::A } else { Side::B },
        addr,
    };
    if events.push(ev).is_err() {
        shared.worker.events_lost.add(1);
    }
}

/// Publish a leg's learning state to its counters (`1` locked, `0` learning).
pub(crate) fn publish_state(c: &StreamCounters, state: LegState) {
    c.locked.set(u64::from(state == LegState::Locked));
}

/// Marks a leg slot no pair holds (and a pair's sides before its first update).
pub(crate) const NO_LEG: u32 = u32::MAX;

/// The public handle of pair slot `pair` whose sides hold leg slots `legs` (A, B).
pub(crate) fn make_handle(
    worker: WorkerId,
    plan: &SocketPlan,
    pair: usize,
    generation: u32,
    legs: [u32; 2],
) -> StreamPairHandle {
    StreamPairHandle {
        worker,
        pair: u32::try_from(pair).unwrap_or(u32::MAX),
        generation,
        port_a: plan.port_of_leg(legs[0]),
        port_b: plan.port_of_leg(legs[1]),
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
pub(crate) fn drop_w(
    shared: &WorkerShared,
    leg: Option<&StreamCounters>,
    reason: DropReason,
) -> Verdict {
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
        let plan = SocketPlan::single(std::net::Ipv4Addr::LOCALHOST.into(), 30000, pairs);
        PathBench {
            relay: Relay::new(
                WorkerId(0),
                Arc::new(plan),
                shared,
                events,
                RelayLimits {
                    inactivity_us: u64::MAX,
                    srtp_fail_threshold: 1,
                    learning_window_us: 3_000_000,
                },
            ),
        }
    }

    /// Arm pair `pair` with these leg parameters.
    pub fn update(&mut self, pair: u32, a: StreamParams, b: StreamParams) {
        let cmd = Command::Update {
            pair,
            generation: 1,
            params: [a, b],
            legs: [pair * 2, pair * 2 + 1],
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

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;

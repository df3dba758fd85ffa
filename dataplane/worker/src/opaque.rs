//! Opaque UDP legs: T.38 fax over UDPTL (ITU-T T.38 §9.1), relayed datagram for
//! datagram.
//!
//! A leg flagged `udptl` ([`crate::StreamFlags::udptl`]) carries no RTP: whatever its
//! peer sends on the leg's even port is relayed as it is to the other leg's peer, out
//! of the other leg's even port (UDPTL has no RTCP; the odd port drops everything). No
//! SRTP, no STUN, no RTP statistics.
//!
//! Who may send follows the RTP rules of [`crate::learning`]: the signalled peer at
//! once, another source only inside the learning window (or after the silence NAT
//! rebinding needs) and only once it sent a valid stream. With no SSRC to follow, a
//! valid UDPTL stream is [`crate::learning::VALID_STREAM_PACKETS`] datagrams from one
//! source whose UDPTL sequence numbers (the first two octets, T.38 §9.1.2) follow each
//! other.

use std::net::SocketAddr;

use crossbeam_queue::ArrayQueue;

use crate::counters::{DropReason, StreamCounters, WorkerShared};
use crate::learning::Admit;
use crate::leg::Leg;
use crate::relay::{drop_w, latched, publish_state, Verdict};
use crate::types::{EndpointLearning, Event, StreamPairHandle};

/// Where an opaque datagram came in.
pub(crate) struct Arrival<'a> {
    pub(crate) shared: &'a WorkerShared,
    pub(crate) lc: Option<&'a StreamCounters>,
    pub(crate) events: &'a ArrayQueue<Event>,
    /// The pair's handle (made only for an event: it looks the ports up in the plan).
    pub(crate) handle: &'a dyn Fn() -> StreamPairHandle,
    /// Leg index (pair * 2 + side) of the receiving leg.
    pub(crate) leg_index: usize,
    /// Leg slot of the pair's other leg (it sends from that slot's RTP socket).
    pub(crate) out_slot: usize,
    /// Received on the leg's odd (RTCP) port.
    pub(crate) rtcp_port: bool,
    pub(crate) from: SocketAddr,
    pub(crate) len: usize,
    pub(crate) now_us: u64,
    pub(crate) window_us: u64,
}

/// Relay decision for a datagram `data` on an opaque leg `leg` (its pair's other leg
/// is `out`).
#[cold]
pub(crate) fn on_datagram(a: &Arrival<'_>, data: &[u8], leg: &mut Leg, out: &Leg) -> Verdict {
    let (shared, lc, side) = (a.shared, a.lc, a.leg_index & 1);
    if a.rtcp_port {
        return drop_w(shared, lc, DropReason::Malformed);
    }
    let (Some(&s0), Some(&s1)) = (data.first(), data.get(1)) else {
        return drop_w(shared, lc, DropReason::Malformed);
    };
    let seq = u16::from_be_bytes([s0, s1]);
    let admit = if leg.peer == Some(a.from) {
        Admit::Peer
    } else if leg.flags.learning == EndpointLearning::Off {
        Admit::Relay
    } else {
        let (admit, moved) = leg.judge(a.from, 0, seq, a.now_us, a.window_us);
        if let Some(c) = lc {
            publish_state(c, leg.state());
        }
        if let Some(to) = moved {
            latched(a.events, shared, (a.handle)(), side, to);
        }
        admit
    };
    match admit {
        Admit::Reject => return drop_w(shared, lc, DropReason::RtpSourceRejected),
        Admit::Peer if !leg.heard => {
            leg.heard = true;
            latched(a.events, shared, (a.handle)(), side, a.from);
        }
        Admit::Learn => {
            if let Some(to) = leg.learned(a.from) {
                latched(a.events, shared, (a.handle)(), side, to);
            }
            if let Some(c) = lc {
                publish_state(c, leg.state());
            }
        }
        Admit::Peer | Admit::Relay => {}
    }
    leg.last_rx_us = a.now_us;
    let Some(to) = out.peer else {
        return drop_w(shared, lc, DropReason::NoPeer);
    };
    let w = &shared.worker;
    w.tx_packets.add(1);
    w.tx_bytes.add(a.len as u64);
    if let Some(c) = lc {
        c.relayed_packets.add(1);
        c.relayed_bytes.add(a.len as u64);
    }
    Verdict::Send {
        sock: u32::try_from(a.out_slot * 2).unwrap_or(u32::MAX),
        to,
        len: a.len,
        forward: true,
    }
}

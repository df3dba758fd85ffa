//! Endpoint learning: which sources a leg takes media from, and when its peer moves.
//!
//! Media follows signalling; packets only confirm it. A leg sends to the address its
//! peer signalled (SDP `c=`/`m=`) until media says otherwise, and media may say so only:
//! - inside the learning window ([`LegState::Learning`]) that opens when the signalled
//!   address is set or changes, and again at each later offer/answer step of the pair
//!   while the leg has not heard from its peer (a caller behind NAT that starts sending
//!   only once answered);
//! - after it ([`LegState::Locked`]) only where the trunk allows NAT rebinding, once the
//!   peer has been silent for `relearn_after`.
//!
//! Sources rank as rtpengine's heuristic ranks them: the signalled address and port,
//! then the same address, then the same port, then any. A source other than the
//! signalled address and port is taken only once it sent a valid stream:
//! [`VALID_STREAM_PACKETS`] RTP packets in sequence with one SSRC (and, on an SRTP leg,
//! the packet that completes the stream authenticates). A spray of packets with fresh
//! SSRCs never qualifies, whatever its rate; an SSRC change alone never moves a leg.
//!
//! Everything here runs only for packets that do not come from the leg's peer: the
//! packet path's cost for media from the peer is the one address comparison it already
//! made, and a rejected packet costs a few compares (no SRTP, no statistics).

use std::net::SocketAddr;
use std::time::Duration;

use crate::types::{EndpointLearning, LegState};

/// In-sequence RTP packets of one SSRC from one source that make it a valid stream
/// (RFC 3550 §A.1 probation takes two; one more here).
pub(crate) const VALID_STREAM_PACKETS: u8 = 3;

/// How well a source matches the signalled address (higher is better).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Any,
    SamePort,
    SameIp,
    Exact,
}

fn rank(src: SocketAddr, signalled: Option<SocketAddr>) -> Rank {
    match signalled {
        Some(s) if s == src => Rank::Exact,
        Some(s) if s.ip() == src.ip() => Rank::SameIp,
        Some(s) if s.port() == src.port() => Rank::SamePort,
        _ => Rank::Any,
    }
}

/// A source on probation: the packets it sent in sequence so far.
#[derive(Clone, Copy, Debug, Default)]
struct Probe {
    from: Option<SocketAddr>,
    ssrc: u32,
    next_seq: u16,
    count: u8,
}

impl Probe {
    /// Count one packet; true once its source sent a valid stream. A packet out of
    /// sequence, with another SSRC or from another source starts a new probation (the
    /// latest source holds the slot).
    fn feed(&mut self, from: SocketAddr, ssrc: u32, seq: u16) -> bool {
        if self.from == Some(from) && self.ssrc == ssrc && self.next_seq == seq {
            self.count = self.count.saturating_add(1);
        } else {
            *self = Probe {
                from: Some(from),
                ssrc,
                next_seq: seq,
                count: 1,
            };
        }
        self.next_seq = seq.wrapping_add(1);
        self.count >= VALID_STREAM_PACKETS
    }
}

/// What to do with a packet that does not come from the leg's peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Drop it, counted as `rtp_source_rejected`.
    Reject,
    /// It comes from the peer after all (the window just ended on it).
    Peer,
    /// Relay it; the peer stays (`off`, or the source `delayed` learning chose so far).
    Relay,
    /// Relay it and learn its source, once it is authentic (after SRTP).
    Learn,
}

/// What a leg knows of its current peer, for [`Learner::admit`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Current {
    /// Where the leg sends.
    pub(crate) peer: Option<SocketAddr>,
    /// Media came from `peer` since it was set.
    pub(crate) heard: bool,
    /// When the leg last took media (µs).
    pub(crate) last_rx_us: u64,
}

/// The learning state of one leg (cold: the packet path reads it only for packets that
/// do not come from the peer).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Learner {
    state: LegState,
    /// The signalled address of the last update.
    signalled: Option<SocketAddr>,
    /// `delayed`: the best source seen in the window, adopted when it ends.
    pending: Option<SocketAddr>,
    probe: Probe,
    /// NAT rebinding after this much silence (µs); `u64::MAX`: never.
    relearn_after_us: u64,
}

impl Learner {
    pub(crate) fn new() -> Learner {
        Learner {
            state: LegState::Locked,
            signalled: None,
            pending: None,
            probe: Probe::default(),
            relearn_after_us: u64::MAX,
        }
    }

    /// Where the leg stands.
    pub(crate) fn state(&self) -> LegState {
        self.state
    }

    /// The signalled address of the last update.
    pub(crate) fn signalled(&self) -> Option<SocketAddr> {
        self.signalled
    }

    /// A new signalled address (or a new learning mode): forget what was learnt; a
    /// learning mode opens the window at `now_us`.
    pub(crate) fn reset(
        &mut self,
        mode: EndpointLearning,
        signalled: Option<SocketAddr>,
        now_us: u64,
    ) {
        *self = Learner {
            state: match mode {
                EndpointLearning::Heuristic | EndpointLearning::Delayed => {
                    LegState::Learning { since_us: now_us }
                }
                EndpointLearning::Strict | EndpointLearning::Off => LegState::Locked,
            },
            signalled,
            relearn_after_us: self.relearn_after_us,
            ..Learner::new()
        };
    }

    /// Another offer/answer step of the pair (the other leg's address changed): a leg
    /// still learning, or locked without having heard from its peer, learns for another
    /// window from `now_us`.
    pub(crate) fn reopen(&mut self, mode: EndpointLearning, heard: bool, now_us: u64) {
        let learns = matches!(
            mode,
            EndpointLearning::Heuristic | EndpointLearning::Delayed
        );
        let open = matches!(self.state, LegState::Learning { .. }) || !heard;
        if learns && open {
            self.state = LegState::Learning { since_us: now_us };
        }
    }

    /// Whether the leg may move by NAT rebinding (`relearn_after` is set).
    pub(crate) fn rebinds(&self) -> bool {
        self.relearn_after_us != u64::MAX
    }

    /// The learning window is over (a leg carried on from another node, whose peer
    /// was latched there): the peer moves only by signalling from now on.
    pub(crate) fn lock(&mut self) {
        self.state = LegState::Locked;
        self.pending = None;
        self.probe = Probe::default();
    }

    /// NAT rebinding allowance (`None`: never).
    pub(crate) fn set_relearn_after(&mut self, d: Option<Duration>) {
        self.relearn_after_us = d.map_or(u64::MAX, |d| {
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
        });
    }

    /// Close the window once `window_us` has passed since it opened. Returns the source
    /// `delayed` learning adopts then (the best one seen, unless the signalled peer was
    /// heard), which becomes the peer.
    pub(crate) fn expire(
        &mut self,
        mode: EndpointLearning,
        heard: bool,
        now_us: u64,
        window_us: u64,
    ) -> Option<SocketAddr> {
        let LegState::Learning { since_us } = self.state else {
            return None;
        };
        if now_us.saturating_sub(since_us) < window_us {
            return None;
        }
        self.state = LegState::Locked;
        self.probe = Probe::default();
        let pending = self.pending.take();
        (mode == EndpointLearning::Delayed && !heard)
            .then_some(pending)
            .flatten()
    }

    /// Judge an RTP packet (`ssrc`, `seq`) from `from`, which is not the peer.
    pub(crate) fn admit(
        &mut self,
        mode: EndpointLearning,
        cur: Current,
        from: SocketAddr,
        ssrc: u32,
        seq: u16,
        now_us: u64,
    ) -> Admit {
        match (mode, self.state) {
            (EndpointLearning::Off, _) => Admit::Relay,
            (EndpointLearning::Strict, _) => Admit::Reject,
            (_, LegState::Learning { .. }) => {
                if self.pending == Some(from) {
                    return Admit::Relay;
                }
                let r = rank(from, self.signalled);
                let peer = cur
                    .peer
                    .filter(|_| cur.heard)
                    .map(|p| rank(p, self.signalled));
                let best = peer.max(self.pending.map(|p| rank(p, self.signalled)));
                if best.is_some_and(|b| r <= b) {
                    Admit::Reject
                } else if r == Rank::Exact || self.probe.feed(from, ssrc, seq) {
                    Admit::Learn
                } else {
                    Admit::Reject
                }
            }
            (_, LegState::Locked) => {
                let silent = now_us.saturating_sub(cur.last_rx_us) >= self.relearn_after_us;
                if silent && self.probe.feed(from, ssrc, seq) {
                    Admit::Learn
                } else {
                    Admit::Reject
                }
            }
        }
    }

    /// A source [`Admit::Learn`] named turned out not authentic (SRTP): its stream
    /// starts over.
    pub(crate) fn unproven(&mut self) {
        self.probe = Probe::default();
    }

    /// `from`, judged [`Admit::Learn`], is authentic. Returns the new peer, or `None`
    /// when the leg does not move yet (`delayed`: it becomes the window's choice).
    /// The signalled address ends the window: nothing can rank above it.
    pub(crate) fn learned(
        &mut self,
        mode: EndpointLearning,
        from: SocketAddr,
    ) -> Option<SocketAddr> {
        self.probe = Probe::default();
        match self.state {
            LegState::Learning { .. } if mode == EndpointLearning::Delayed => {
                self.pending = Some(from);
                None
            }
            LegState::Learning { .. } => {
                if rank(from, self.signalled) == Rank::Exact {
                    self.state = LegState::Locked;
                }
                Some(from)
            }
            LegState::Locked => Some(from),
        }
    }

    /// An ICE nomination (a Binding request with USE-CANDIDATE that carried our
    /// credentials) from `from`: the pair the controlling agent chose is final. Only the
    /// learning modes follow it; `strict` and `off` keep the signalled address.
    pub(crate) fn nominated(&mut self, mode: EndpointLearning) -> bool {
        let follows = matches!(
            mode,
            EndpointLearning::Heuristic | EndpointLearning::Delayed
        );
        if follows {
            self.state = LegState::Locked;
            self.pending = None;
            self.probe = Probe::default();
        }
        follows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    const W: u64 = 3_000_000;

    fn a(ip: u8, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, ip)), port)
    }

    fn cur(peer: Option<SocketAddr>, heard: bool) -> Current {
        Current {
            peer,
            heard,
            last_rx_us: 0,
        }
    }

    #[test]
    fn ranks_follow_rtpengine() {
        let s = Some(a(1, 4000));
        assert_eq!(rank(a(1, 4000), s), Rank::Exact);
        assert_eq!(rank(a(1, 5000), s), Rank::SameIp);
        assert_eq!(rank(a(2, 4000), s), Rank::SamePort);
        assert_eq!(rank(a(2, 5000), s), Rank::Any);
        assert_eq!(rank(a(1, 4000), None), Rank::Any);
        assert!(Rank::Exact > Rank::SameIp && Rank::SameIp > Rank::SamePort);
    }

    #[test]
    fn fresh_ssrcs_never_make_a_stream() {
        let mut l = Learner::new();
        l.reset(EndpointLearning::Heuristic, Some(a(1, 4000)), 0);
        for i in 0..100u16 {
            let got = l.admit(
                EndpointLearning::Heuristic,
                cur(Some(a(1, 4000)), false),
                a(9, 7000),
                u32::from(i),
                i,
                10,
            );
            assert_eq!(got, Admit::Reject, "packet {i}");
        }
    }

    #[test]
    fn a_valid_stream_is_learnt_in_the_window() {
        let mut l = Learner::new();
        l.reset(EndpointLearning::Heuristic, Some(a(1, 4000)), 0);
        let c = cur(Some(a(1, 4000)), false);
        let m = EndpointLearning::Heuristic;
        assert_eq!(l.admit(m, c, a(9, 7000), 5, 10, 1), Admit::Reject);
        assert_eq!(l.admit(m, c, a(9, 7000), 5, 11, 2), Admit::Reject);
        assert_eq!(l.admit(m, c, a(9, 7000), 5, 12, 3), Admit::Learn);
        assert_eq!(l.learned(m, a(9, 7000)), Some(a(9, 7000)));
        assert!(matches!(l.state(), LegState::Learning { .. }), "a guess");
        // The signalled address still wins in the window, with one packet, and locks.
        let c = cur(Some(a(9, 7000)), true);
        assert_eq!(l.admit(m, c, a(1, 4000), 1, 1, 4), Admit::Learn);
        assert_eq!(l.learned(m, a(1, 4000)), Some(a(1, 4000)));
        assert_eq!(l.state(), LegState::Locked);
    }

    #[test]
    fn a_lower_rank_never_replaces_a_higher_one() {
        let mut l = Learner::new();
        let m = EndpointLearning::Heuristic;
        l.reset(m, Some(a(1, 4000)), 0);
        // Learnt a same-address source; a valid stream from elsewhere ranks lower.
        let c = cur(Some(a(1, 5000)), true);
        for seq in 0..5 {
            assert_eq!(l.admit(m, c, a(9, 7000), 5, seq, 1), Admit::Reject);
        }
        // A same-port one too; an exact one does not.
        for seq in 0..5 {
            assert_eq!(l.admit(m, c, a(9, 4000), 5, seq, 1), Admit::Reject);
        }
        assert_eq!(l.admit(m, c, a(1, 4000), 5, 0, 1), Admit::Learn);
    }

    #[test]
    fn the_window_locks_the_leg() {
        let mut l = Learner::new();
        let m = EndpointLearning::Heuristic;
        l.reset(m, Some(a(1, 4000)), 100);
        assert_eq!(l.expire(m, false, 100 + W - 1, W), None);
        assert!(matches!(l.state(), LegState::Learning { since_us: 100 }));
        assert_eq!(l.expire(m, false, 100 + W, W), None);
        assert_eq!(l.state(), LegState::Locked);
        // Locked, no rebinding: a valid stream from anywhere is refused.
        let c = cur(Some(a(1, 4000)), false);
        for seq in 0..10 {
            assert_eq!(l.admit(m, c, a(1, 5000), 5, seq, W * 10), Admit::Reject);
        }
    }

    #[test]
    fn strict_and_off() {
        let mut l = Learner::new();
        l.reset(EndpointLearning::Strict, Some(a(1, 4000)), 0);
        assert_eq!(l.state(), LegState::Locked);
        let c = cur(Some(a(1, 4000)), false);
        for seq in 0..5 {
            let got = l.admit(EndpointLearning::Strict, c, a(1, 5000), 1, seq, 1);
            assert_eq!(got, Admit::Reject);
        }
        l.reset(EndpointLearning::Off, Some(a(1, 4000)), 0);
        let got = l.admit(EndpointLearning::Off, c, a(9, 9), 1, 1, 1);
        assert_eq!(got, Admit::Relay);
    }

    #[test]
    fn delayed_adopts_at_the_end_of_the_window() {
        let mut l = Learner::new();
        let m = EndpointLearning::Delayed;
        l.reset(m, Some(a(1, 4000)), 0);
        let c = cur(Some(a(1, 4000)), false);
        for seq in 0..2 {
            assert_eq!(l.admit(m, c, a(9, 7000), 5, seq, 1), Admit::Reject);
        }
        assert_eq!(l.admit(m, c, a(9, 7000), 5, 2, 1), Admit::Learn);
        assert_eq!(l.learned(m, a(9, 7000)), None, "not yet");
        assert_eq!(l.admit(m, c, a(9, 7000), 5, 3, 2), Admit::Relay);
        assert_eq!(l.expire(m, false, W, W), Some(a(9, 7000)));
        assert_eq!(l.state(), LegState::Locked);
        // The signalled peer heard in the window wins over the pending source.
        l.reset(m, Some(a(1, 4000)), 0);
        for seq in 0..3 {
            let _ = l.admit(m, c, a(9, 7000), 5, seq, 1);
        }
        assert_eq!(l.learned(m, a(9, 7000)), None);
        assert_eq!(l.expire(m, true, W, W), None);
    }

    #[test]
    fn rebinding_needs_silence_and_a_stream() {
        let mut l = Learner::new();
        let m = EndpointLearning::Heuristic;
        l.set_relearn_after(Some(Duration::from_secs(5)));
        l.reset(m, Some(a(1, 4000)), 0);
        let _ = l.expire(m, true, W, W);
        let mut c = cur(Some(a(1, 4000)), true);
        c.last_rx_us = 10_000_000;
        // Peer heard 1 s ago: no rebinding, whatever the stream.
        for seq in 0..5 {
            assert_eq!(l.admit(m, c, a(2, 6000), 9, seq, 11_000_000), Admit::Reject);
        }
        // Silent for 5 s: a valid stream moves it, a single packet does not.
        let t = 15_000_000;
        assert_eq!(l.admit(m, c, a(2, 6000), 9, 100, t), Admit::Reject);
        assert_eq!(l.admit(m, c, a(3, 6000), 9, 101, t), Admit::Reject);
        assert_eq!(l.admit(m, c, a(2, 6000), 9, 102, t), Admit::Reject);
        assert_eq!(l.admit(m, c, a(2, 6000), 9, 103, t), Admit::Reject);
        assert_eq!(l.admit(m, c, a(2, 6000), 9, 104, t), Admit::Learn);
        assert_eq!(l.learned(m, a(2, 6000)), Some(a(2, 6000)));
        assert_eq!(l.state(), LegState::Locked);
    }

    #[test]
    fn reopening_follows_the_offer_answer() {
        let mut l = Learner::new();
        let m = EndpointLearning::Heuristic;
        l.reset(m, Some(a(1, 4000)), 0);
        let _ = l.expire(m, false, W, W);
        // Locked without hearing its peer: the answer opens another window.
        l.reopen(m, false, 20_000_000);
        assert_eq!(
            l.state(),
            LegState::Learning {
                since_us: 20_000_000
            }
        );
        let _ = l.expire(m, true, 30_000_000, W);
        // Locked on a heard peer: stays locked.
        l.reopen(m, true, 40_000_000);
        assert_eq!(l.state(), LegState::Locked);
        l.reset(EndpointLearning::Strict, None, 0);
        l.reopen(EndpointLearning::Strict, false, 1);
        assert_eq!(l.state(), LegState::Locked);
    }

    #[test]
    fn nominations_lock_learning_modes_only() {
        let mut l = Learner::new();
        l.reset(EndpointLearning::Heuristic, None, 0);
        assert!(l.nominated(EndpointLearning::Heuristic));
        assert_eq!(l.state(), LegState::Locked);
        l.reset(EndpointLearning::Strict, None, 0);
        assert!(!l.nominated(EndpointLearning::Strict));
    }
}

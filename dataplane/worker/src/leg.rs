//! One leg of a pair: its layout on the packet path, its parameters, and the glue
//! between the relay decision and endpoint learning ([`crate::learning`]).

use std::net::SocketAddr;

use portcullis_rtp::srtp::{SrtpKeys, SrtpSession};
use portcullis_rtp::stats::RtpStats;
use portcullis_rtp::stun::IceCredentials;

use crate::dtmf::{Detector, Player};
use crate::learning::{Admit, Current, Learner};
use crate::types::{EndpointLearning, LegState, StreamFlags, StreamParams};

/// One leg's state.
///
/// `repr(C)`, 64-byte aligned, in three parts:
/// - line 0, what a packet reads of the leg it came in on and of the leg it leaves by:
///   peer, SRTP contexts, RTCP latch, flags;
/// - line 1, what a packet received on this leg writes: RTP statistics, the time it
///   came, whether the peer was heard, SRTP failures;
/// - the rest, for RTCP, endpoint learning, commands and housekeeping.
///
/// So a relayed RTP packet from the peer reads three lines of the pair: two of its own
/// leg and the first of the other. A packet from another source reads the learning
/// state too (cold). The SRTP contexts (~2 KB each) and ICE credentials are boxed.
#[repr(C, align(64))]
pub(crate) struct Leg {
    // Line 0.
    /// Where RTP (and muxed RTCP) for this leg's peer goes: the signalled address until
    /// endpoint learning moves it.
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) srtp_in: Option<Box<Srtp>>,
    pub(crate) srtp_out: Option<Box<Srtp>>,
    pub(crate) flags: StreamFlags,
    pub(crate) rtcp_latched: bool,
    /// The pair is allocated: set on both legs together (see `Pair::armed`), so the
    /// packet path reads it from the line it needs anyway.
    pub(crate) armed: bool,
    /// DTMF events are queued or playing toward this leg (`player`).
    pub(crate) injecting: bool,
    // Line 1.
    _line1: CacheLine,
    pub(crate) stats: RtpStats,
    pub(crate) clock_rate: u32,
    /// Media came from `peer` since it was set (written with every packet from it).
    pub(crate) heard: bool,
    /// When this leg last received media (µs, the worker's clock).
    pub(crate) last_rx_us: u64,
    pub(crate) srtp_failures: u64,
    // Cold: RTCP, learning, the command path and housekeeping.
    /// Where non-muxed RTCP goes (RTP port + 1 until an RTCP source is latched).
    pub(crate) rtcp_peer: Option<SocketAddr>,
    pub(crate) srtp_failures_reported: u64,
    pub(crate) learn: Learner,
    pub(crate) ice: Option<Box<IceCredentials>>,
    /// RFC 4733 detection and playing, boxed while the leg has a DTMF flag.
    pub(crate) dtmf: Option<Box<Dtmf>>,
}

/// DTMF state of a leg with a DTMF flag (see [`crate::dtmf`]).
#[derive(Debug)]
pub(crate) struct Dtmf {
    /// Detection of what the peer sends (`flags.dtmf.detect`).
    pub(crate) detector: Detector,
    /// Events played toward the peer (`flags.dtmf.generate`).
    pub(crate) player: Player,
}

/// A zero-sized field that starts a new cache line in a `repr(C)` struct.
#[derive(Clone, Copy, Default)]
#[repr(align(64))]
struct CacheLine;

// The layout above, checked when building for x86-64 (where it was measured).
#[cfg(target_arch = "x86_64")]
const _: () = {
    use std::mem::{align_of, offset_of};
    assert!(align_of::<Leg>() == 64);
    assert!(offset_of!(Leg, armed) < 64);
    assert!(offset_of!(Leg, injecting) < 64);
    assert!(offset_of!(Leg, flags) + std::mem::size_of::<StreamFlags>() <= 64);
    assert!(offset_of!(Leg, stats) == 64);
    assert!(offset_of!(Leg, srtp_failures) + 8 <= 128);
};

impl Leg {
    pub(crate) fn new() -> Leg {
        Leg {
            peer: None,
            rtcp_peer: None,
            rtcp_latched: false,
            flags: StreamFlags::default(),
            clock_rate: 8000,
            heard: false,
            srtp_in: None,
            srtp_out: None,
            ice: None,
            stats: RtpStats::new(),
            armed: false,
            injecting: false,
            _line1: CacheLine,
            last_rx_us: 0,
            srtp_failures: 0,
            srtp_failures_reported: 0,
            learn: Learner::new(),
            dtmf: None,
        }
    }

    /// Apply parameters at `now_us`. `fresh` = a new allocation of the slot (forget
    /// everything); `reopen` = the pair's signalling moved (either leg's address
    /// changed), which gives a leg that has not heard its peer another learning window.
    pub(crate) fn apply(&mut self, p: &StreamParams, fresh: bool, reopen: bool, now_us: u64) {
        if fresh {
            *self = Leg::new();
        }
        // A new SDP address, learning mode or kind of stream (audio to T.38 and back).
        let reset = fresh
            || p.peer != self.learn.signalled()
            || p.flags.learning != self.flags.learning
            || p.flags.udptl != self.flags.udptl;
        self.flags = p.flags;
        let d = p.flags.dtmf;
        if d.detect.is_none() && d.generate.is_none() {
            self.dtmf = None;
        } else if self.dtmf.is_none() {
            self.dtmf = Some(Box::new(Dtmf {
                detector: Detector::default(),
                player: Player::new(),
            }));
        }
        if d.generate.is_none() {
            // Nothing plays toward a leg that takes no events any more.
            if let Some(s) = self.dtmf.as_mut() {
                s.player = Player::new();
            }
            self.injecting = false;
        }
        self.clock_rate = p.clock_rate.max(1);
        self.learn.set_relearn_after(p.relearn_after);
        if reset {
            // A new SDP address (or learning mode): start from the signalled peer again.
            self.set_peer(p.peer, false);
            self.learn.reset(p.flags.learning, p.peer, now_us);
        } else if reopen {
            self.learn.reopen(p.flags.learning, self.heard, now_us);
        }
        // Same keys: the context (rollover counter, replay window) carries on.
        if !Srtp::same(self.srtp_in.as_deref(), p.srtp_in.as_ref()) {
            self.srtp_in = p.srtp_in.as_ref().map(Srtp::boxed);
        }
        if !Srtp::same(self.srtp_out.as_deref(), p.srtp_out.as_ref()) {
            self.srtp_out = p.srtp_out.as_ref().map(Srtp::boxed);
        }
        self.ice = p
            .ice
            .and_then(|c| IceCredentials::new(c.ufrag(), c.pwd()).ok())
            .map(Box::new);
    }

    /// Queues an event to play toward the peer; false when the leg plays none (no
    /// `generate` flag) or its queue is full.
    pub(crate) fn queue_dtmf(&mut self, event: u8, duration: u16) -> bool {
        let ok = match (self.flags.dtmf.generate, self.dtmf.as_mut()) {
            (Some(_), Some(s)) => s.player.push(event, duration),
            _ => false,
        };
        self.injecting |= ok;
        ok
    }

    /// The next event packet in place of the relayed RTP packet `buf[..len]` (plain,
    /// before protection); returns the length to send.
    #[cold]
    pub(crate) fn inject_dtmf(&mut self, buf: &mut [u8], len: usize) -> usize {
        let (Some(pt), Some(s)) = (self.flags.dtmf.generate, self.dtmf.as_mut()) else {
            self.injecting = false;
            return len;
        };
        let n = s.player.inject(pt, buf, len);
        self.injecting = s.player.busy();
        n
    }

    /// Whether the signalled address (with its SDP) of `p` differs from this leg's.
    pub(crate) fn signalling_moves(&self, p: &StreamParams) -> bool {
        p.peer != self.learn.signalled()
    }

    /// Where the leg stands in endpoint learning.
    pub(crate) fn state(&self) -> LegState {
        self.learn.state()
    }

    /// Send to `peer` from now on; RTCP follows it (port + 1 until latched).
    fn set_peer(&mut self, peer: Option<SocketAddr>, heard: bool) {
        self.peer = peer;
        self.heard = heard;
        self.rtcp_latched = false;
        self.rtcp_peer = peer.map(rtcp_of);
    }

    /// Close the learning window when it is over; returns the new peer when closing it
    /// moved the leg (`delayed`).
    pub(crate) fn expire(&mut self, now_us: u64, window_us: u64) -> Option<SocketAddr> {
        let to = self
            .learn
            .expire(self.flags.learning, self.heard, now_us, window_us)?;
        self.set_peer(Some(to), true);
        Some(to)
    }

    /// Judge an RTP packet (`ssrc`, `seq`) from `from`, which is not the peer. The
    /// second value is the peer the window's end moved the leg to, if it just ended.
    #[cold]
    #[inline(never)]
    pub(crate) fn judge(
        &mut self,
        from: SocketAddr,
        ssrc: u32,
        seq: u16,
        now_us: u64,
        window_us: u64,
    ) -> (Admit, Option<SocketAddr>) {
        let moved = self.expire(now_us, window_us);
        if self.peer == Some(from) {
            return (Admit::Peer, moved);
        }
        let cur = Current {
            peer: self.peer,
            heard: self.heard,
            last_rx_us: self.last_rx_us,
        };
        let a = self
            .learn
            .admit(self.flags.learning, cur, from, ssrc, seq, now_us);
        (a, moved)
    }

    /// `from`, judged [`Admit::Learn`], is authentic: returns the new peer if the leg moves.
    #[cold]
    pub(crate) fn learned(&mut self, from: SocketAddr) -> Option<SocketAddr> {
        let to = self.learn.learned(self.flags.learning, from)?;
        self.set_peer(Some(to), true);
        Some(to)
    }

    /// An ICE nomination from `from` (authenticated Binding request with USE-CANDIDATE):
    /// returns the new peer if the leg moves.
    #[cold]
    pub(crate) fn nominated(&mut self, from: SocketAddr) -> Option<SocketAddr> {
        if !self.learn.nominated(self.flags.learning) {
            return None;
        }
        if self.peer == Some(from) {
            self.heard = true;
            return None;
        }
        self.set_peer(Some(from), true);
        Some(from)
    }

    /// Whether RTCP from `from` is accepted on this leg (`rtcp_port`: on RTP port + 1,
    /// else multiplexed). RTCP obeys the RTP lock and never moves the RTP peer: muxed, it
    /// comes from the peer; on port + 1 from the RTCP peer, or, once, from the RTP
    /// peer's address once that peer was heard (a NAT maps the RTCP port elsewhere).
    pub(crate) fn rtcp_source_ok(&self, rtcp_port: bool, from: SocketAddr) -> bool {
        match self.flags.learning {
            EndpointLearning::Off => true,
            _ if !rtcp_port => self.peer == Some(from),
            _ if self.rtcp_peer == Some(from) => true,
            EndpointLearning::Strict => false,
            _ => !self.rtcp_latched && self.heard && self.peer.is_some_and(|p| p.ip() == from.ip()),
        }
    }
}

/// An SRTP context with the master keys it was made from (to tell whether an update
/// changes them), boxed together so the leg carries one pointer per direction.
pub(crate) struct Srtp {
    session: SrtpSession,
    keys: SrtpKeys,
}

impl Srtp {
    fn boxed(k: &SrtpKeys) -> Box<Srtp> {
        Box::new(Srtp {
            session: SrtpSession::new(k),
            keys: *k,
        })
    }

    /// Whether `cur` was made from `keys` (both absent counts as the same).
    fn same(cur: Option<&Srtp>, keys: Option<&SrtpKeys>) -> bool {
        match (cur.map(|s| &s.keys), keys) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                a.profile == b.profile
                    && a.master_key == b.master_key
                    && a.master_salt == b.master_salt
            }
            _ => false,
        }
    }
}

impl std::ops::Deref for Srtp {
    type Target = SrtpSession;
    fn deref(&self) -> &SrtpSession {
        &self.session
    }
}

impl std::ops::DerefMut for Srtp {
    fn deref_mut(&mut self) -> &mut SrtpSession {
        &mut self.session
    }
}

/// Default RTCP destination for an RTP address (RFC 3550 §11: RTP port + 1).
pub(crate) fn rtcp_of(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip(), a.port().wrapping_add(1))
}

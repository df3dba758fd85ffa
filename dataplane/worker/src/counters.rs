//! Per-worker and per-stream counters.
//!
//! Each counter has exactly one writer (the owning worker thread), so an increment is a
//! relaxed load + store, not a locked read-modify-write; readers on the control plane see
//! monotonically increasing values. Every block is cache-padded so two workers (or a worker
//! and a reader) never share a line.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

/// A single-writer monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Add `n` (worker thread only: single writer).
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Overwrite (worker thread only; for gauges and resets).
    #[inline]
    pub(crate) fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// Current value.
    #[inline]
    #[must_use]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Why a packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum DropReason {
    /// The port has no armed stream (unallocated or removed).
    NoStream = 0,
    /// No destination known yet for the other leg (no signalled peer, nothing latched).
    NoPeer,
    /// The packet came from a source the leg does not take media from: not its peer,
    /// and not one endpoint learning accepts (see `EndpointLearning`).
    RtpSourceRejected,
    /// SRTP/SRTCP authentication tag did not verify.
    SrtpAuth,
    /// SRTP/SRTCP replay-window rejection (RFC 3711 §3.3.2).
    Replay,
    /// Other SRTP failure (protect error, unknown key…).
    SrtpOther,
    /// Not RTP/RTCP/STUN, truncated or too short.
    Malformed,
    /// STUN on a leg without ICE credentials, or a request we cannot answer.
    Stun,
    /// `sendmsg`/`sendmmsg` failed.
    SendError,
    /// No submission slot for the send (io_uring submission queue full after a submit).
    RingFull,
}

/// Number of [`DropReason`] variants.
pub const DROP_REASONS: usize = 10;

impl DropReason {
    /// Every reason, in index order.
    pub const ALL: [DropReason; DROP_REASONS] = [
        DropReason::NoStream,
        DropReason::NoPeer,
        DropReason::RtpSourceRejected,
        DropReason::SrtpAuth,
        DropReason::Replay,
        DropReason::SrtpOther,
        DropReason::Malformed,
        DropReason::Stun,
        DropReason::SendError,
        DropReason::RingFull,
    ];

    /// Stable metric label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            DropReason::NoStream => "no_stream",
            DropReason::NoPeer => "no_peer",
            DropReason::RtpSourceRejected => "rtp_source_rejected",
            DropReason::SrtpAuth => "srtp_auth",
            DropReason::Replay => "replay",
            DropReason::SrtpOther => "srtp_other",
            DropReason::Malformed => "malformed",
            DropReason::Stun => "stun",
            DropReason::SendError => "send_error",
            DropReason::RingFull => "ring_full",
        }
    }
}

/// Counters of one leg (indexed by leg slot in the worker's slice).
///
/// `repr(C)`: the first line holds everything the packet path writes for a relayed
/// packet, all in the block of the leg it was received on. What a leg sends is what its
/// partner relayed to it, so its `tx` figures are read from the partner's `relayed_*`
/// ([`PairStats::read`]) instead of being written into a second block per packet.
#[derive(Debug, Default)]
#[repr(C)]
pub struct StreamCounters {
    /// Packets received on this leg's ports.
    pub rx_packets: Counter,
    /// Bytes received on this leg's ports.
    pub rx_bytes: Counter,
    /// Packets received on this leg and relayed out of the other leg's ports.
    pub relayed_packets: Counter,
    /// Bytes relayed out of the other leg's ports (after SRTP protection).
    pub relayed_bytes: Counter,
    /// RTP packets expected from the peer (RFC 3550 A.3), updated with every RTP packet.
    pub rtp_expected: Counter,
    /// RTP packets received from the peer, updated with every RTP packet.
    pub rtp_received: Counter,
    /// Interarrival jitter in RTP timestamp units (RFC 3550 §6.4.1), updated with every
    /// RTP packet.
    pub rtp_jitter: Counter,
    /// The leg's RTP clock rate (Hz), set with its parameters: converts the jitter to time.
    pub rtp_clock_rate: Counter,
    /// Drops of packets received on this leg, by [`DropReason`] index.
    pub drops: [Counter; DROP_REASONS],
    /// STUN binding requests answered (each answer is sent out of this leg's port).
    pub stun_answered: Counter,
    /// Bytes of those answers.
    pub stun_answer_bytes: Counter,
    /// `1` once the leg is locked (endpoint learning over), `0` while it learns.
    pub locked: Counter,
    /// SRTP state published by housekeeping for a standby (see `LegResume`): per
    /// direction (in, out), the highest packet index with bit 63 set when known, and
    /// the SSRC with the next SRTCP index in the high half.
    pub(crate) srtp_index: [Counter; 2],
    pub(crate) srtp_ssrc: [Counter; 2],
    /// Pair generation these values belong to (set when the worker arms the pair).
    pub(crate) generation: AtomicU32,
}

impl StreamCounters {
    pub(crate) fn reset(&self, generation: u32) {
        for c in [
            &self.rx_packets,
            &self.rx_bytes,
            &self.relayed_packets,
            &self.relayed_bytes,
            &self.stun_answered,
            &self.stun_answer_bytes,
            &self.rtp_expected,
            &self.rtp_received,
            &self.rtp_jitter,
            &self.rtp_clock_rate,
            &self.locked,
            &self.srtp_index[0],
            &self.srtp_index[1],
            &self.srtp_ssrc[0],
            &self.srtp_ssrc[1],
        ] {
            c.set(0);
        }
        for d in &self.drops {
            d.set(0);
        }
        self.generation.store(generation, Ordering::Release);
    }

    /// The pair generation these counters belong to.
    pub(crate) fn generation(&self) -> u32 {
        self.generation.load(Ordering::Acquire)
    }

    /// Copy the current values out; `partner` is the other leg of the pair, whose relayed
    /// packets are the ones this leg sent.
    #[must_use]
    fn snapshot(&self, partner: &StreamCounters) -> LegStats {
        let mut drops = [0; DROP_REASONS];
        for (d, c) in drops.iter_mut().zip(&self.drops) {
            *d = c.get();
        }
        let (expected, received) = (self.rtp_expected.get(), self.rtp_received.get());
        let jitter = self.rtp_jitter.get();
        let stun_answered = self.stun_answered.get();
        LegStats {
            rx_packets: self.rx_packets.get(),
            rx_bytes: self.rx_bytes.get(),
            tx_packets: partner.relayed_packets.get().wrapping_add(stun_answered),
            tx_bytes: partner
                .relayed_bytes
                .get()
                .wrapping_add(self.stun_answer_bytes.get()),
            drops,
            stun_answered,
            rtp_expected: expected,
            rtp_received: received,
            // Duplicates can make it negative (RFC 3550 A.3); reported as 0.
            rtp_lost: expected.saturating_sub(received),
            rtp_jitter: jitter,
            rtp_jitter_us: jitter.saturating_mul(1_000_000) / self.rtp_clock_rate.get().max(1),
            locked: self.locked.get() == 1,
        }
    }
}

/// A point-in-time copy of one leg's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LegStats {
    /// Packets received on this leg's ports.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets sent out of this leg's ports.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Drops by [`DropReason`] index.
    pub drops: [u64; DROP_REASONS],
    /// STUN binding requests answered.
    pub stun_answered: u64,
    /// RTP packets expected.
    pub rtp_expected: u64,
    /// RTP packets received.
    pub rtp_received: u64,
    /// RTP packets lost.
    pub rtp_lost: u64,
    /// Interarrival jitter (RTP timestamp units).
    pub rtp_jitter: u64,
    /// Interarrival jitter in microseconds.
    pub rtp_jitter_us: u64,
    /// Endpoint learning is over: the leg's peer moves only by signalling (or NAT
    /// rebinding where allowed).
    pub locked: bool,
}

impl LegStats {
    /// Drops for one reason.
    #[must_use]
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops.get(reason as usize).copied().unwrap_or(0)
    }

    /// Packets refused for their source (endpoint learning).
    #[must_use]
    pub fn rtp_source_rejected(&self) -> u64 {
        self.dropped(DropReason::RtpSourceRejected)
    }
}

/// Both legs of a pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PairStats {
    /// Leg A.
    pub a: LegStats,
    /// Leg B.
    pub b: LegStats,
}

impl PairStats {
    /// Read the counters of legs `a` and `b` of one pair: each leg's sent figures are
    /// its partner's relayed ones plus its own STUN answers.
    #[must_use]
    pub fn read(a: &StreamCounters, b: &StreamCounters) -> PairStats {
        PairStats {
            a: a.snapshot(b),
            b: b.snapshot(a),
        }
    }
}

/// Counters of one worker.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// Packets received on any port of the slice.
    pub rx_packets: Counter,
    /// Bytes received.
    pub rx_bytes: Counter,
    /// Packets sent.
    pub tx_packets: Counter,
    /// Bytes sent.
    pub tx_bytes: Counter,
    /// Drops by [`DropReason`] index.
    pub drops: [Counter; DROP_REASONS],
    /// SRTP/SRTCP failures (auth + replay + other).
    pub srtp_failures: Counter,
    /// Commands applied.
    pub commands: Counter,
    /// Commands ignored because their generation was stale.
    pub stale_commands: Counter,
    /// Events lost because the event ring was full.
    pub events_lost: Counter,
    /// Loop iterations.
    pub loops: Counter,
    /// Armed pairs (gauge).
    pub active_pairs: Counter,
    /// `1` for io_uring, `2` for mmsg, `0` before the worker started.
    pub backend: Counter,
    /// Times the io_uring multishot receive had to be re-armed.
    pub rearms: Counter,
    /// io_uring receive completions with `ENOBUFS` (buffer ring empty; data stays queued).
    pub enobufs: Counter,
    /// io_uring teardowns that did not get every request back within their bound (the
    /// buffers were leaked rather than freed under the kernel).
    pub teardown_leaks: Counter,
    /// Connected send sockets in use (gauge; io_uring backend, see `companion`).
    pub connected_sockets: Counter,
    /// Connected send sockets that could not be made (no free slot, or a socket call
    /// failed): the leg sends from its unconnected socket instead.
    pub connect_failures: Counter,
    /// Connected send sockets that are never read (gauge): each has a receive socket
    /// beside it, where the kernel allows (see `companion`).
    pub send_only_sockets: Counter,
    /// Kernel thread id of the worker (for CPU accounting).
    pub tid: Counter,
}

/// A point-in-time copy of one worker's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Drops by [`DropReason`] index.
    pub drops: [u64; DROP_REASONS],
    /// SRTP failures.
    pub srtp_failures: u64,
    /// Commands applied.
    pub commands: u64,
    /// Stale commands ignored.
    pub stale_commands: u64,
    /// Events lost to a full event ring.
    pub events_lost: u64,
    /// Loop iterations.
    pub loops: u64,
    /// Armed pairs.
    pub active_pairs: u64,
    /// Backend in use (`None` until the worker started).
    pub backend: Option<crate::Backend>,
    /// io_uring multishot re-arms.
    pub rearms: u64,
    /// io_uring `ENOBUFS` receive completions.
    pub enobufs: u64,
    /// io_uring teardowns that leaked their buffers (requests still in flight).
    pub teardown_leaks: u64,
    /// Connected send sockets in use.
    pub connected_sockets: u64,
    /// Connected send sockets that could not be made.
    pub connect_failures: u64,
    /// Connected send sockets that are never read.
    pub send_only_sockets: u64,
    /// Kernel thread id.
    pub tid: u64,
}

impl WorkerStats {
    /// Drops for one reason.
    #[must_use]
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops.get(reason as usize).copied().unwrap_or(0)
    }
}

impl WorkerCounters {
    /// Copy the current values out.
    #[must_use]
    pub fn snapshot(&self) -> WorkerStats {
        let mut drops = [0; DROP_REASONS];
        for (d, c) in drops.iter_mut().zip(&self.drops) {
            *d = c.get();
        }
        WorkerStats {
            rx_packets: self.rx_packets.get(),
            rx_bytes: self.rx_bytes.get(),
            tx_packets: self.tx_packets.get(),
            tx_bytes: self.tx_bytes.get(),
            drops,
            srtp_failures: self.srtp_failures.get(),
            commands: self.commands.get(),
            stale_commands: self.stale_commands.get(),
            events_lost: self.events_lost.get(),
            loops: self.loops.get(),
            active_pairs: self.active_pairs.get(),
            backend: match self.backend.get() {
                1 => Some(crate::Backend::IoUring),
                2 => Some(crate::Backend::Mmsg),
                _ => None,
            },
            rearms: self.rearms.get(),
            enobufs: self.enobufs.get(),
            teardown_leaks: self.teardown_leaks.get(),
            connected_sockets: self.connected_sockets.get(),
            connect_failures: self.connect_failures.get(),
            send_only_sockets: self.send_only_sockets.get(),
            tid: self.tid.get(),
        }
    }
}

/// All counters of one worker: the worker block plus one block per leg slot.
#[derive(Debug)]
pub struct WorkerShared {
    /// Worker totals.
    pub worker: CachePadded<WorkerCounters>,
    /// Per-leg counters, indexed by leg slot (`(port - base) / 2`).
    pub legs: Box<[CachePadded<StreamCounters>]>,
}

impl WorkerShared {
    pub(crate) fn new(legs: usize) -> WorkerShared {
        WorkerShared {
            worker: CachePadded::new(WorkerCounters::default()),
            legs: (0..legs)
                .map(|_| CachePadded::new(StreamCounters::default()))
                .collect(),
        }
    }
}

//! Per-worker and per-stream counters.
//!
//! Each counter has exactly one writer (the owning worker thread), so an increment is a
//! relaxed load + store, not a locked read-modify-write; readers on the control plane see
//! monotonically increasing values. Every block is cache-padded so two workers (or a worker
//! and a reader) never share a line.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

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
    /// The XDP fast path's share, written only by the worker between the two steps of
    /// [`StreamCounters::fast_write`] (a sequence lock, so a reader never sees a port's
    /// counters both live and banked). See `crate::fastpath`.
    pub(crate) fast: FastBank,
}

/// What the fast path adds to a leg's counters: the figures of its demoted ports, and
/// which ports are promoted now (their live figures are in the program's maps).
#[derive(Debug, Default)]
pub(crate) struct FastBank {
    seq: AtomicU32,
    /// Promoted ports: bit 0 the RTP port, bit 1 the RTCP port.
    pub(crate) ports: Counter,
    /// Packets the program forwarded on ports since demoted.
    pub(crate) packets: Counter,
    /// Their bytes.
    pub(crate) bytes: Counter,
    /// RTP expected / received of closed measurement periods (the worker's before and
    /// between promotions, the program's of demoted ports): each promotion and demotion
    /// closes one, so no sequence range is counted twice.
    pub(crate) rtp_expected: Counter,
    pub(crate) rtp_received: Counter,
    /// Jitter of the last closed period that measured RTP.
    pub(crate) rtp_jitter: Counter,
}

/// Bit of [`FastBank::ports`] for the RTP port.
pub(crate) const FAST_RTP: u64 = 1;
/// Bit of [`FastBank::ports`] for the RTCP port.
pub(crate) const FAST_RTCP: u64 = 2;

/// The live figures of a leg's promoted ports, merged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FastLive {
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    pub(crate) rtp_expected: u64,
    pub(crate) rtp_received: u64,
    pub(crate) rtp_jitter: u64,
}

/// A consistent read of a leg's RTP figures and fast-path share.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FastRead {
    /// Forwarded by the program (banked + live).
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    /// RTP figures of the whole call (worker and program).
    pub(crate) rtp_expected: u64,
    pub(crate) rtp_received: u64,
    pub(crate) rtp_jitter: u64,
}

/// Sequence-lock read attempts before the last one is taken as it is.
const READ_ATTEMPTS: usize = 8;

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
            &self.fast.ports,
            &self.fast.packets,
            &self.fast.bytes,
            &self.fast.rtp_expected,
            &self.fast.rtp_received,
            &self.fast.rtp_jitter,
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

    /// Runs `f`, which moves figures between the worker's RTP counters and the fast-path
    /// bank, as one step for [`StreamCounters::fast_read`] (worker thread only).
    pub(crate) fn fast_write<R>(&self, f: impl FnOnce(&StreamCounters) -> R) -> R {
        let s = self.fast.seq.load(Ordering::Relaxed);
        self.fast.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        let r = f(self);
        self.fast.seq.store(s.wrapping_add(2), Ordering::Release);
        r
    }

    /// The leg's RTP figures and fast-path share, `live` giving the live figures of the
    /// promoted ports named by a [`FastBank::ports`] mask. Retried while the worker moves
    /// figures (bounded: the last attempt is taken as it is).
    pub(crate) fn fast_read(&self, live: &dyn Fn(u64) -> FastLive) -> FastRead {
        let mut out = FastRead::default();
        for _ in 0..READ_ATTEMPTS {
            let s1 = self.fast.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::thread::yield_now();
                continue;
            }
            let ports = self.fast.ports.get();
            let l = if ports == 0 {
                FastLive::default()
            } else {
                live(ports)
            };
            let (own_expected, own_received) = (self.rtp_expected.get(), self.rtp_received.get());
            let own_jitter = self.rtp_jitter.get();
            let b = &self.fast;
            let (bank_received, bank_jitter) = (b.rtp_received.get(), b.rtp_jitter.get());
            out = FastRead {
                packets: b.packets.get() + l.packets,
                bytes: b.bytes.get() + l.bytes,
                rtp_expected: b.rtp_expected.get() + own_expected + l.rtp_expected,
                rtp_received: bank_received + own_received + l.rtp_received,
                // The period measuring now: the program's, else the worker's, else the
                // last closed one.
                rtp_jitter: if l.rtp_received > 0 {
                    l.rtp_jitter
                } else if own_received > 0 {
                    own_jitter
                } else {
                    bank_jitter
                },
            };
            fence(Ordering::Acquire);
            if self.fast.seq.load(Ordering::Relaxed) == s1 {
                break;
            }
        }
        out
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

    /// [`PairStats::read`] with the fast path's share: what the program forwarded is
    /// received on one leg and sent on the other, and the RTP figures span the worker's
    /// and the program's measurements. `live(side, ports)` reads the live figures of a
    /// leg's promoted ports (side 0 = A).
    pub(crate) fn read_fast(
        a: &StreamCounters,
        b: &StreamCounters,
        live: &dyn Fn(usize, u64) -> FastLive,
    ) -> PairStats {
        let mut s = PairStats::read(a, b);
        let fa = a.fast_read(&|ports| live(0, ports));
        let fb = b.fast_read(&|ports| live(1, ports));
        for (leg, f, clock) in [
            (&mut s.a, fa, &a.rtp_clock_rate),
            (&mut s.b, fb, &b.rtp_clock_rate),
        ] {
            leg.rx_packets += f.packets;
            leg.rx_bytes += f.bytes;
            leg.rtp_expected = f.rtp_expected;
            leg.rtp_received = f.rtp_received;
            leg.rtp_lost = f.rtp_expected.saturating_sub(f.rtp_received);
            leg.rtp_jitter = f.rtp_jitter;
            leg.rtp_jitter_us = f.rtp_jitter.saturating_mul(1_000_000) / clock.get().max(1);
        }
        s.a.tx_packets += fb.packets;
        s.a.tx_bytes += fb.bytes;
        s.b.tx_packets += fa.packets;
        s.b.tx_bytes += fa.bytes;
        s
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
    /// `1` for io_uring, `2` for mmsg, `3` for AF_XDP, `0` before the worker started.
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
    /// Ports forwarded by the XDP fast path now (gauge).
    pub fast_ports: Counter,
    /// Packets the XDP fast path forwarded for this worker's ports (read at each
    /// housekeeping visit and at demotion).
    pub fast_packets: Counter,
    /// Their bytes (UDP payload).
    pub fast_bytes: Counter,
    /// Promotions the kernel refused (the ports stay with the worker).
    pub fast_errors: Counter,
    /// RFC 4733 events detected on legs flagged for detection (one per event).
    pub dtmf_detected: Counter,
    /// RFC 4733 events queued to play toward a leg.
    pub dtmf_queued: Counter,
    /// Events to play refused: the leg plays none (no `generate` flag), or its queue
    /// was full.
    pub dtmf_refused: Counter,
    /// Frames received through the worker's AF_XDP sockets.
    pub xsk_rx: Counter,
    /// Frames sent through them.
    pub xsk_tx: Counter,
    /// Packets received through AF_XDP and sent through the UDP socket instead (next hop
    /// not learned yet, over the MTU, TX ring full, no free chunk on the egress interface).
    pub xsk_kernel_tx: Counter,
    /// Frames the kernel dropped on their way to the worker's AF_XDP sockets (no free
    /// chunk in a fill ring, or an RX ring full), read from the sockets every 100 ms.
    pub xsk_rx_dropped: Counter,
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
    /// Ports forwarded by the XDP fast path now.
    pub fast_ports: u64,
    /// Packets the XDP fast path forwarded.
    pub fast_packets: u64,
    /// Bytes the XDP fast path forwarded.
    pub fast_bytes: u64,
    /// Promotions the kernel refused.
    pub fast_errors: u64,
    /// RFC 4733 events detected.
    pub dtmf_detected: u64,
    /// RFC 4733 events queued to play.
    pub dtmf_queued: u64,
    /// Events to play refused.
    pub dtmf_refused: u64,
    /// Frames received through AF_XDP.
    pub xsk_rx: u64,
    /// Frames sent through AF_XDP.
    pub xsk_tx: u64,
    /// AF_XDP packets sent through the UDP socket.
    pub xsk_kernel_tx: u64,
    /// Frames the kernel dropped before the worker's AF_XDP RX rings.
    pub xsk_rx_dropped: u64,
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
                3 => Some(crate::Backend::AfXdp),
                _ => None,
            },
            rearms: self.rearms.get(),
            enobufs: self.enobufs.get(),
            teardown_leaks: self.teardown_leaks.get(),
            connected_sockets: self.connected_sockets.get(),
            connect_failures: self.connect_failures.get(),
            send_only_sockets: self.send_only_sockets.get(),
            fast_ports: self.fast_ports.get(),
            fast_packets: self.fast_packets.get(),
            fast_bytes: self.fast_bytes.get(),
            fast_errors: self.fast_errors.get(),
            dtmf_detected: self.dtmf_detected.get(),
            dtmf_queued: self.dtmf_queued.get(),
            dtmf_refused: self.dtmf_refused.get(),
            xsk_rx: self.xsk_rx.get(),
            xsk_tx: self.xsk_tx.get(),
            xsk_kernel_tx: self.xsk_kernel_tx.get(),
            xsk_rx_dropped: self.xsk_rx_dropped.get(),
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

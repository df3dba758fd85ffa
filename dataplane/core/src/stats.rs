//! Receiver statistics: RFC 3550 Appendix A.1 (sequence number validity, extended
//! highest sequence, expected and lost packets) and A.8 (interarrival jitter).
//!
//! Difference from A.1: there is no probation period (`MIN_SEQUENTIAL = 0`); the
//! relay has already latched and (for SRTP) authenticated the source, so the first
//! packet initialises the state and is counted.

/// A.1 `MAX_DROPOUT`: a forward jump larger than this is treated as a restart.
const MAX_DROPOUT: u16 = 3000;
/// A.1 `MAX_MISORDER`: a backward jump larger than this is treated as a restart.
const MAX_MISORDER: u16 = 100;
/// A.1 `RTP_SEQ_MOD`.
const RTP_SEQ_MOD: u32 = 1 << 16;

/// Per-source sequence, loss and jitter state (RFC 3550 A.1 `source` struct).
#[derive(Clone, Copy, Debug, Default)]
pub struct RtpStats {
    started: bool,
    max_seq: u16,
    /// Shifted count of sequence number cycles (multiple of 2^16).
    cycles: u32,
    base_seq: u32,
    /// Last "bad" sequence number + 1, or `RTP_SEQ_MOD + 1` when none.
    bad_seq: u32,
    received: u64,
    /// Jitter estimate scaled by 16 (A.8 integer form). u64 because it converges to
    /// 16·|D| and |D| can reach 2^31 with hostile timestamps.
    jitter_q4: u64,
    /// Relative transit time of the previous packet (A.8), in RTP units.
    transit: u32,
}

impl RtpStats {
    /// A source with no packet yet.
    pub fn new() -> Self {
        Self {
            bad_seq: RTP_SEQ_MOD + 1,
            ..Self::default()
        }
    }

    /// A.1 `init_seq`.
    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
    }

    /// Account one packet: A.1 `update_seq` then A.8 jitter with
    /// `transit = arrival - rtp_ts` (both in RTP clock units, wrapping).
    pub fn update(&mut self, seq: u16, rtp_ts: u32, arrival: u32) {
        let transit = arrival.wrapping_sub(rtp_ts);
        if !self.started {
            self.started = true;
            self.init_seq(seq);
            self.received = 1;
            self.transit = transit;
            return;
        }
        if !self.update_seq(seq) {
            return;
        }
        // A.8: D(i-1,i) = (Rj-Ri) - (Sj-Si); J += (|D| - J)/16, kept scaled by 16.
        let d = transit.wrapping_sub(self.transit) as i32;
        self.transit = transit;
        let d = u64::from(d.unsigned_abs());
        // J_q4 <= 16·max|D| < 2^36, so neither step can overflow.
        self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
    }

    /// A.1 `update_seq`; false when the packet is discarded as bad.
    fn update_seq(&mut self, seq: u16) -> bool {
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta < MAX_DROPOUT {
            // In order, with permissible gap.
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(RTP_SEQ_MOD);
            }
            self.max_seq = seq;
        } else if udelta <= (RTP_SEQ_MOD - u32::from(MAX_MISORDER)) as u16 {
            // The sequence number made a very large jump.
            if u32::from(seq) == self.bad_seq {
                // Two sequential packets: assume the other side restarted.
                self.init_seq(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                return false;
            }
        }
        // else: duplicate or reordered packet, counted below.
        self.received += 1;
        true
    }

    /// Extended highest sequence number received (A.1: cycles + max_seq).
    pub fn extended_max(&self) -> u64 {
        u64::from(self.cycles) + u64::from(self.max_seq)
    }

    /// Packets expected: extended max − base + 1 (A.3); 0 before the first packet.
    pub fn expected(&self) -> u64 {
        if !self.started {
            return 0;
        }
        (self.extended_max() + 1).saturating_sub(u64::from(self.base_seq))
    }

    /// Packets received (duplicates included, as A.3 counts them).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Cumulative number of packets lost (A.3): expected − received, negative when
    /// duplicates outnumber losses.
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Interarrival jitter in RTP clock units (A.8: `jitter >> 4`).
    pub fn jitter(&self) -> u32 {
        u32::try_from(self.jitter_q4 >> 4).unwrap_or(u32::MAX)
    }
}

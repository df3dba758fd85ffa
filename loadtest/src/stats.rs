//! Per-stream receive statistics: loss, duplicates, reordering and interarrival jitter.
//!
//! Every generated payload carries a per-stream sequence number (`u32`, starting at 0) and
//! the monotonic send time in nanoseconds (see [`crate::media::Probe`]), so the receiver
//! can tell a duplicate from a late packet exactly, without the 16-bit RTP sequence wrap.
//!
//! Jitter follows RFC 3550 §6.4.1 / Appendix A.8: for consecutive arrivals `i`, `j` the
//! transit difference `D(i,j) = (Rj - Ri) - (Sj - Si)` feeds `J += (|D| - J) / 16`. The
//! send time `S` is the probe's nanosecond stamp (not the RTP timestamp), so the result is
//! in nanoseconds of wall time and independent of the payload clock rate.

/// Highest per-stream sequence number tracked for duplicate detection (bounded memory:
/// 2^21 packets is 11.6 hours at 20 ms).
pub const MAX_TRACKED_SEQ: u32 = 1 << 21;

/// What the receiver learned about one stream.
#[derive(Debug, Clone, Default)]
pub struct StreamRx {
    /// Packets received, duplicates included.
    pub received: u64,
    /// Distinct sequence numbers received.
    pub unique: u64,
    /// Packets whose sequence was already seen.
    pub duplicates: u64,
    /// Packets that arrived after a higher sequence number (not duplicates).
    pub reordered: u64,
    /// Highest sequence seen.
    pub highest: Option<u32>,
    /// Lowest sequence seen (above 0: the stream's first packets were lost).
    pub lowest: Option<u32>,
    /// RFC 3550 A.8 interarrival jitter estimate, in nanoseconds (J as a float).
    pub jitter_ns: f64,
    /// Longest time between two consecutive arrivals (ns): how long media stopped at
    /// worst (a failover drill reads it).
    pub max_gap_ns: u64,
    /// Arrival time of the previous packet (ns).
    last_arrival: Option<u64>,
    /// Transit time (arrival - send, ns) of the previous packet, for the jitter update.
    last_transit: Option<i64>,
    /// One bit per sequence number seen.
    seen: Vec<u64>,
}

/// The outcome of recording one arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// First copy of this sequence, in order.
    InOrder,
    /// First copy, but after a higher sequence number.
    Reordered,
    /// Already seen.
    Duplicate,
    /// Sequence beyond [`MAX_TRACKED_SEQ`]: counted as received, not tracked.
    Untracked,
}

impl StreamRx {
    /// Records one packet with sequence `seq`, sent at `sent_ns`, received at `arrival_ns`.
    pub fn record(&mut self, seq: u32, sent_ns: u64, arrival_ns: u64) -> Arrival {
        self.received += 1;
        if let Some(prev) = self.last_arrival {
            self.max_gap_ns = self.max_gap_ns.max(arrival_ns.saturating_sub(prev));
        }
        self.last_arrival = Some(self.last_arrival.map_or(arrival_ns, |p| p.max(arrival_ns)));
        if seq >= MAX_TRACKED_SEQ {
            return Arrival::Untracked;
        }
        let word = (seq / 64) as usize;
        let bit = 1u64 << (seq % 64);
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        let Some(slot) = self.seen.get_mut(word) else {
            return Arrival::Untracked;
        };
        if *slot & bit != 0 {
            self.duplicates += 1;
            return Arrival::Duplicate;
        }
        *slot |= bit;
        self.unique += 1;
        self.lowest = Some(self.lowest.map_or(seq, |l| l.min(seq)));
        // RFC 3550 A.8: jitter over distinct packets in arrival order.
        let transit = arrival_ns as i64 - sent_ns as i64;
        if let Some(prev) = self.last_transit {
            let d = (transit - prev).unsigned_abs() as f64;
            self.jitter_ns += (d - self.jitter_ns) / 16.0;
        }
        self.last_transit = Some(transit);
        match self.highest {
            Some(h) if seq < h => {
                self.reordered += 1;
                Arrival::Reordered
            }
            _ => {
                self.highest = Some(seq);
                Arrival::InOrder
            }
        }
    }

    /// Packets lost given that the sender sent `sent` packets (sequences `0..sent`).
    pub fn lost(&self, sent: u64) -> u64 {
        sent.saturating_sub(self.unique)
    }
}

/// Totals over many streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Totals {
    /// Streams that sent at least one packet.
    pub streams: u64,
    /// Packets sent.
    pub sent: u64,
    /// Packets received (duplicates included).
    pub received: u64,
    /// Packets sent but never received.
    pub lost: u64,
    /// Duplicate arrivals.
    pub duplicates: u64,
    /// Reordered arrivals.
    pub reordered: u64,
    /// Of `lost`: packets before each stream's first arrival (setup, latching).
    pub lost_head: u64,
    /// Of `lost`: packets after each stream's last arrival (teardown).
    pub lost_tail: u64,
}

impl Totals {
    /// Adds one stream.
    pub fn add(&mut self, sent: u64, rx: Option<&StreamRx>) {
        self.streams += 1;
        self.sent += sent;
        match rx {
            Some(r) => {
                self.received += r.received;
                self.lost += r.lost(sent);
                self.duplicates += r.duplicates;
                self.reordered += r.reordered;
                if r.unique > 0 {
                    self.lost_head += u64::from(r.lowest.unwrap_or(0));
                    let last = u64::from(r.highest.unwrap_or(0)) + 1;
                    self.lost_tail += sent.saturating_sub(last);
                }
            }
            None => self.lost += sent,
        }
    }

    /// Loss as a fraction of packets sent (0 when nothing was sent).
    pub fn loss_ratio(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.lost as f64 / self.sent as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 20_000_000;

    #[test]
    fn in_order_stream_has_no_loss_and_no_jitter() {
        let mut s = StreamRx::default();
        for i in 0..100u32 {
            let sent = u64::from(i) * P;
            assert_eq!(s.record(i, sent, sent + 1_000_000), Arrival::InOrder);
        }
        assert_eq!(
            (s.received, s.unique, s.duplicates, s.reordered),
            (100, 100, 0, 0)
        );
        assert_eq!(s.lost(100), 0);
        assert_eq!(s.jitter_ns, 0.0);
        assert_eq!(s.max_gap_ns, P, "one ptime between arrivals");
    }

    #[test]
    fn longest_gap_is_the_outage() {
        // 50 packets, then nothing for 1.5 s (a failover), then 50 more.
        let mut s = StreamRx::default();
        let outage = 1_500_000_000u64;
        for i in 0..100u32 {
            let sent = u64::from(i) * P + if i >= 50 { outage } else { 0 };
            s.record(i, sent, sent + 1_000_000);
        }
        assert_eq!(s.max_gap_ns, P + outage);
    }

    #[test]
    fn loss_duplicates_and_reordering_are_counted_separately() {
        let mut s = StreamRx::default();
        // Sent 0..10; 3 and 7 lost, 5 duplicated, 8 arrives after 9.
        let order = [0u32, 1, 2, 4, 5, 5, 6, 9, 8];
        let got: Vec<Arrival> = order
            .iter()
            .map(|&q| s.record(q, u64::from(q) * P, u64::from(q) * P + 10))
            .collect();
        assert_eq!(got[5], Arrival::Duplicate);
        assert_eq!(got[8], Arrival::Reordered);
        assert_eq!(s.received, 9);
        assert_eq!(s.unique, 8);
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.reordered, 1);
        assert_eq!(s.lost(10), 2);
        let mut t = Totals::default();
        t.add(10, Some(&s));
        // 0 arrived first and 9 last: nothing lost at the head; none after 9 of 0..10.
        assert_eq!((t.lost_head, t.lost_tail), (0, 0));
        let mut late = StreamRx::default();
        for q in 3..7u32 {
            late.record(q, 0, 0);
        }
        let mut u = Totals::default();
        u.add(10, Some(&late));
        assert_eq!((u.lost, u.lost_head, u.lost_tail), (6, 3, 3));
        t.add(5, None);
        assert_eq!((t.streams, t.sent, t.lost, t.received), (2, 15, 7, 9));
        assert!((t.loss_ratio() - 7.0 / 15.0).abs() < 1e-12);
    }

    #[test]
    fn jitter_follows_rfc3550_a8_recurrence() {
        // Transit alternates 1 ms, 3 ms: |D| = 2 ms every packet after the first.
        let mut s = StreamRx::default();
        let mut expect = 0.0f64;
        for i in 0..200u32 {
            let sent = u64::from(i) * P;
            let transit = if i % 2 == 0 { 1_000_000 } else { 3_000_000 };
            s.record(i, sent, sent + transit);
            if i > 0 {
                expect += (2_000_000.0 - expect) / 16.0;
            }
        }
        assert!((s.jitter_ns - expect).abs() < 1e-6);
        // The recurrence converges on |D|.
        assert!(
            (s.jitter_ns - 2_000_000.0).abs() < 1_000.0,
            "{}",
            s.jitter_ns
        );
    }

    #[test]
    fn constant_delay_shift_gives_one_step() {
        let mut s = StreamRx::default();
        s.record(0, 0, 1_000);
        s.record(1, P, P + 17_000);
        assert!((s.jitter_ns - 1_000.0).abs() < 1e-9);
    }

    #[test]
    fn huge_sequence_is_untracked_not_a_panic() {
        let mut s = StreamRx::default();
        assert_eq!(s.record(u32::MAX, 0, 0), Arrival::Untracked);
        assert_eq!(s.received, 1);
        assert_eq!(s.unique, 0);
    }
}

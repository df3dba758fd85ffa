//! RFC 4733 DTMF in the worker: detecting events a leg's peer sends, and playing
//! events into the stream relayed to a leg.
//!
//! Both are off unless the control plane flags the leg ([`crate::DtmfFlags`]): a leg
//! with neither flag pays one flag test per packet, nothing else.
//!
//! Detection (`detect = Some(pt)`): an RTP packet of payload type `pt` from the peer is
//! an event packet (RFC 4733 §2.3: event, E bit, volume, duration). The first packet of
//! an event with the E bit set is reported once ([`crate::Event::Dtmf`]: event and
//! duration in timestamp units); its retransmissions (same SSRC and timestamp, §2.5.1.4
//! sends the end packet three times) are not. With `drop_events` the event packets are
//! not relayed: the other leg takes DTMF as SIP INFO.
//!
//! Playing (`generate = Some(pt)`): events queued by [`crate::Dataplane::dtmf`] (at most
//! [`QUEUE`] per leg; more are refused and counted) are played in the stream relayed to
//! the leg: while one plays, each RTP packet relayed to the leg is replaced by the next
//! event packet, keeping its SSRC and sequence number (so the receiver sees one
//! continuous stream), with the timestamp of the event's first packet (§2.5.1.2), the
//! marker bit on that first packet, a duration growing with the stream's timestamps
//! (§2.5.1.3), and the end packet sent three times with the final duration
//! (§2.5.1.4). The event therefore plays at the pace of the relayed stream: a stream
//! that pauses (silence suppression) pauses the event with it.

use portcullis_rtp::rtp::RtpPacket;

/// Events queued per leg.
pub const QUEUE: usize = 8;
/// End packets sent per event (RFC 4733 §2.5.1.4: three).
pub(crate) const END_PACKETS: u8 = 3;
/// Size of an event payload.
const EVENT_LEN: usize = 4;
/// RTP fixed header.
const HEADER_LEN: usize = 12;
/// Volume of played events (RFC 4733 §2.3.4: -10 dBm0).
const VOLUME: u8 = 10;
/// Timestamp step assumed until two relayed packets show it (20 ms at 8 kHz).
const DEFAULT_STEP: u32 = 160;
/// Largest believable step between two relayed packets (1 s at 8 kHz).
const MAX_STEP: u32 = 8000;

/// Detection state of one leg: the event last reported.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Detector {
    last: Option<(u32, u32)>,
}

impl Detector {
    /// An event packet `p` from the leg's peer: `(event, duration)` the first time an
    /// event's end is seen.
    #[cold]
    pub(crate) fn observe(&mut self, p: &RtpPacket<'_>) -> Option<(u8, u16)> {
        let &[event, flags, d0, d1, ..] = p.payload() else {
            return None;
        };
        if flags & 0x80 == 0 {
            return None;
        }
        let key = (p.ssrc(), p.timestamp());
        if self.last == Some(key) {
            return None;
        }
        self.last = Some(key);
        Some((event, u16::from_be_bytes([d0, d1])))
    }
}

/// The event being played.
#[derive(Clone, Copy, Debug)]
struct Playing {
    event: u8,
    /// Final duration (timestamp units).
    duration: u16,
    start_ts: u32,
    /// Packets written so far, and end packets among them.
    sent: u32,
    ends: u8,
}

/// Events queued and playing toward one leg.
#[derive(Debug)]
pub(crate) struct Player {
    queue: [(u8, u16); QUEUE],
    head: usize,
    len: usize,
    current: Option<Playing>,
    last_ts: Option<u32>,
}

impl Player {
    pub(crate) fn new() -> Player {
        Player {
            queue: [(0, 0); QUEUE],
            head: 0,
            len: 0,
            current: None,
            last_ts: None,
        }
    }

    /// Queues an event; false when the queue is full.
    pub(crate) fn push(&mut self, event: u8, duration: u16) -> bool {
        if self.len == QUEUE {
            return false;
        }
        if let Some(slot) = self.queue.get_mut((self.head + self.len) % QUEUE) {
            *slot = (event, duration.max(1));
            self.len += 1;
        }
        true
    }

    /// Whether anything is left to play.
    pub(crate) fn busy(&self) -> bool {
        self.current.is_some() || self.len > 0
    }

    fn pop(&mut self) -> Option<(u8, u16)> {
        if self.len == 0 {
            return None;
        }
        let e = self.queue.get(self.head).copied();
        self.head = (self.head + 1) % QUEUE;
        self.len -= 1;
        e
    }

    /// Replaces the plain RTP packet `buf[..len]`, about to be relayed to the leg, with
    /// the next event packet in payload type `pt`; returns the new length (`len` when
    /// nothing plays, or the packet is not RTP).
    #[cold]
    pub(crate) fn inject(&mut self, pt: u8, buf: &mut [u8], len: usize) -> usize {
        let Some(ts) = buf
            .get(..len)
            .and_then(|d| RtpPacket::new_header_checked(d).ok())
            .map(|p| p.timestamp())
        else {
            return len;
        };
        let step = self
            .last_ts
            .map(|l| ts.wrapping_sub(l))
            .filter(|s| (1..=MAX_STEP).contains(s))
            .unwrap_or(DEFAULT_STEP);
        self.last_ts = Some(ts);
        if self.current.is_none() {
            self.current = self.pop().map(|(event, duration)| Playing {
                event,
                duration,
                start_ts: ts,
                sent: 0,
                ends: 0,
            });
        }
        let Some(p) = self.current.as_mut() else {
            return len;
        };
        let grown = ts.wrapping_sub(p.start_ts).saturating_add(step);
        let end = p.ends > 0 || grown >= u32::from(p.duration);
        let duration = if end {
            p.duration
        } else {
            u16::try_from(grown).unwrap_or(p.duration)
        };
        let first = p.sent == 0;
        p.sent += 1;
        let (event, start_ts) = (p.event, p.start_ts);
        if end {
            p.ends += 1;
            if p.ends >= END_PACKETS {
                self.current = None;
            }
        }
        let Some(out) = buf.get_mut(..HEADER_LEN + EVENT_LEN) else {
            return len;
        };
        // V=2, no padding, no extension, no CSRC; SSRC and sequence kept.
        out[0] = 0x80;
        out[1] = (u8::from(first) << 7) | (pt & 0x7f);
        out[4..8].copy_from_slice(&start_ts.to_be_bytes());
        out[12] = event;
        out[13] = (u8::from(end) << 7) | VOLUME;
        out[14..16].copy_from_slice(&duration.to_be_bytes());
        HEADER_LEN + EVENT_LEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(seq: u16, ts: u32) -> Vec<u8> {
        let mut b = vec![0u8; 2048];
        b[0] = 0x80;
        b[1] = 0;
        b[2..4].copy_from_slice(&seq.to_be_bytes());
        b[4..8].copy_from_slice(&ts.to_be_bytes());
        b[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        b
    }

    #[test]
    fn an_event_replaces_packets_then_ends_three_times() {
        let mut p = Player::new();
        assert!(p.push(5, 800));
        let mut out = Vec::new();
        for i in 0..10u16 {
            let mut b = audio(100 + i, 1000 + u32::from(i) * 160);
            let n = p.inject(101, &mut b, 172);
            out.push((n, b));
        }
        // 800 units at 160 per packet: durations 160..640, then 800 three times.
        let events: Vec<_> = out.iter().filter(|(n, _)| *n == 16).collect();
        assert_eq!(events.len(), 4 + 3);
        for (i, (_, b)) in events.iter().enumerate() {
            let pkt = RtpPacket::new_checked(&b[..16]).unwrap();
            assert_eq!(pkt.payload_type(), 101);
            assert_eq!(pkt.marker(), i == 0);
            assert_eq!(
                pkt.sequence(),
                100 + u16::try_from(i).unwrap(),
                "sequence kept"
            );
            assert_eq!(pkt.ssrc(), 0x1234_5678);
            assert_eq!(pkt.timestamp(), 1000, "the event's start");
            let pl = pkt.payload();
            assert_eq!(pl[0], 5);
            let end = pl[1] & 0x80 != 0;
            let dur = u16::from_be_bytes([pl[2], pl[3]]);
            if i < 4 {
                assert!(!end);
                assert_eq!(dur, 160 * (u16::try_from(i).unwrap() + 1));
            } else {
                assert!(end);
                assert_eq!(dur, 800);
            }
        }
        assert!(out[7..].iter().all(|(n, _)| *n == 172), "audio again");
        assert!(!p.busy());
    }

    #[test]
    fn the_queue_is_bounded_and_plays_in_order() {
        let mut p = Player::new();
        for i in 0..QUEUE {
            assert!(p.push(u8::try_from(i).unwrap(), 160));
        }
        assert!(!p.push(9, 160), "full");
        let mut seen = Vec::new();
        for i in 0..200u16 {
            let mut b = audio(i, u32::from(i) * 160);
            if p.inject(101, &mut b, 172) == 16 && b[13] & 0x80 != 0 && !seen.contains(&b[12]) {
                seen.push(b[12]);
            }
        }
        assert_eq!(seen, (0..8).collect::<Vec<u8>>());
    }

    #[test]
    fn end_retransmissions_are_reported_once() {
        let mut d = Detector::default();
        let pkt = |ts: u32, end: bool, dur: u16| {
            let mut b = audio(1, ts);
            b[1] = 101;
            b[12] = 7;
            b[13] = if end { 0x8a } else { 0x0a };
            b[14..16].copy_from_slice(&dur.to_be_bytes());
            b.truncate(16);
            b
        };
        let b = pkt(500, false, 160);
        assert_eq!(d.observe(&RtpPacket::new_checked(&b).unwrap()), None);
        let b = pkt(500, true, 960);
        assert_eq!(
            d.observe(&RtpPacket::new_checked(&b).unwrap()),
            Some((7, 960))
        );
        assert_eq!(d.observe(&RtpPacket::new_checked(&b).unwrap()), None);
        assert_eq!(d.observe(&RtpPacket::new_checked(&b).unwrap()), None);
        let b = pkt(2000, true, 320);
        assert_eq!(
            d.observe(&RtpPacket::new_checked(&b).unwrap()),
            Some((7, 320))
        );
    }
}

//! Per-SSRC cryptographic state: packet index estimation, rollover counter and the
//! replay windows (RFC 3711 §3.3.1, §3.3.2, Appendix A), kept in a small
//! fixed table with least-recently-used replacement.

use super::SrtpError;

/// SSRCs tracked per session. A leg normally carries one; a few more cover SSRC
/// changes (re-INVITE, transfer) without heap allocation.
pub const MAX_STREAMS: usize = 4;
/// Replay window size in packets (RFC 3711 §3.3.2 requires at least 64).
pub const REPLAY_WINDOW: u64 = 128;
/// SRTCP indexes are 31 bits (RFC 3711 §3.4).
pub const SRTCP_INDEX_MASK: u32 = 0x7fff_ffff;
/// Largest 48-bit SRTP packet index.
const MAX_INDEX: u64 = (1 << 48) - 1;

/// Sliding window over the highest index seen: bit `k` of `bits` stands for index
/// `highest - k`. Invariant: bit 0 is set once `started`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Window {
    started: bool,
    highest: u64,
    bits: u128,
}

impl Window {
    /// `Err(Replay)` if `index` was already accepted, `Err(TooOld)` if it is left of
    /// the window (RFC 3711 §3.3.2).
    pub(crate) fn check(&self, index: u64) -> Result<(), SrtpError> {
        if !self.started || index > self.highest {
            return Ok(());
        }
        let age = self.highest - index;
        if age >= REPLAY_WINDOW {
            Err(SrtpError::TooOld)
        } else if self.bits & (1u128 << age) != 0 {
            Err(SrtpError::Replay)
        } else {
            Ok(())
        }
    }

    /// Record `index` as accepted (only after authentication succeeded).
    pub(crate) fn commit(&mut self, index: u64) {
        if !self.started {
            *self = Self {
                started: true,
                highest: index,
                bits: 1,
            };
        } else if index > self.highest {
            let shift = index - self.highest;
            self.bits = if shift >= REPLAY_WINDOW {
                0
            } else {
                self.bits << shift
            };
            self.bits |= 1;
            self.highest = index;
        } else {
            let age = self.highest - index;
            if age < REPLAY_WINDOW {
                self.bits |= 1u128 << age;
            }
        }
    }

    pub(crate) fn highest(&self) -> Option<u64> {
        self.started.then_some(self.highest)
    }
}

/// SRTP state of one SSRC: the window carries `s_l` and the ROC as the highest
/// 48-bit index `ROC · 2^16 + s_l`; `roc_seed` is the ROC to assume before the
/// first packet (0 unless signalled, e.g. by the test vectors).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RtpState {
    pub(crate) window: Window,
    pub(crate) roc_seed: u32,
}

impl RtpState {
    /// RFC 3711 Appendix A: guess the ROC `v` for `seq` from `s_l` and the ROC,
    /// and return the 48-bit index `v · 2^16 + seq`. `None` when the guess would be
    /// negative (a packet from before the start) or past 2^48.
    pub(crate) fn estimate(&self, seq: u16) -> Option<u64> {
        let Some(highest) = self.window.highest() else {
            return Some((u64::from(self.roc_seed) << 16) | u64::from(seq));
        };
        let roc = highest >> 16;
        let s_l = highest & 0xffff;
        let seq = u64::from(seq);
        let v = if s_l < 0x8000 {
            if seq > s_l + 0x8000 {
                roc.checked_sub(1)?
            } else {
                roc
            }
        } else if s_l - 0x8000 > seq {
            roc + 1
        } else {
            roc
        };
        let index = (v << 16) | seq;
        (index <= MAX_INDEX).then_some(index)
    }
}

/// Everything kept for one SSRC.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StreamState {
    pub(crate) ssrc: u32,
    pub(crate) rtp: RtpState,
    /// Next SRTCP index to send (RFC 3711 §3.3.2: starts at 0, +1 mod 2^31).
    pub(crate) srtcp_next: u32,
    pub(crate) srtcp_rx: Window,
}

impl StreamState {
    pub(crate) fn new(ssrc: u32) -> Self {
        Self {
            ssrc,
            ..Self::default()
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    in_use: bool,
    last_used: u64,
    state: StreamState,
}

/// Fixed table of [`MAX_STREAMS`] SSRC states with LRU replacement.
#[derive(Clone, Debug, Default)]
pub(crate) struct StreamTable {
    slots: [Slot; MAX_STREAMS],
    tick: u64,
}

impl StreamTable {
    fn position(&self, ssrc: u32) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.in_use && s.state.ssrc == ssrc)
    }

    /// The state of `ssrc`, if tracked.
    pub(crate) fn get(&self, ssrc: u32) -> Option<&StreamState> {
        self.slots
            .iter()
            .find(|s| s.in_use && s.state.ssrc == ssrc)
            .map(|s| &s.state)
    }

    /// The state of `ssrc`, created (evicting the least recently used SSRC when the
    /// table is full) if absent. Marks it most recently used.
    pub(crate) fn entry(&mut self, ssrc: u32) -> &mut StreamState {
        self.tick += 1;
        let i = match self.position(ssrc) {
            Some(i) => i,
            None => {
                let i = self.victim();
                self.slots[i] = Slot {
                    in_use: true,
                    last_used: 0,
                    state: StreamState::new(ssrc),
                };
                i
            }
        };
        let slot = &mut self.slots[i];
        slot.last_used = self.tick;
        &mut slot.state
    }

    /// Forget `ssrc` (its next packet starts a fresh index/replay history).
    pub(crate) fn remove(&mut self, ssrc: u32) {
        if let Some(i) = self.position(ssrc) {
            self.slots[i].in_use = false;
        }
    }

    /// A free slot, or else the least recently used one.
    fn victim(&self) -> usize {
        let mut best = 0;
        for (i, s) in self.slots.iter().enumerate() {
            if !s.in_use {
                return i;
            }
            if s.last_used < self.slots[best].last_used {
                best = i;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_rejects_replay_and_old() {
        let mut w = Window::default();
        assert!(w.check(1000).is_ok());
        w.commit(1000);
        assert_eq!(w.check(1000), Err(SrtpError::Replay));
        assert!(w.check(999).is_ok());
        w.commit(999);
        assert_eq!(w.check(999), Err(SrtpError::Replay));
        assert!(w.check(1000 - 127).is_ok());
        assert_eq!(w.check(1000 - 128), Err(SrtpError::TooOld));
        w.commit(1200);
        assert_eq!(w.check(1000), Err(SrtpError::TooOld));
        assert_eq!(w.check(1200), Err(SrtpError::Replay));
        assert!(w.check(1199).is_ok());
        w.commit(1_000_000);
        assert!(w.check(999_999).is_ok());
    }

    #[test]
    fn estimate_follows_appendix_a() {
        let mut st = RtpState::default();
        assert_eq!(st.estimate(65534), Some(65534));
        st.window.commit(65534);
        assert_eq!(st.estimate(65535), Some(65535));
        assert_eq!(st.estimate(0), Some(65536));
        assert_eq!(st.estimate(1), Some(65537));
        st.window.commit(65537);
        // a late packet from before the wrap keeps ROC 0
        assert_eq!(st.estimate(65533), Some(65533));
        // a packet before index 0 is impossible
        let mut st = RtpState::default();
        st.window.commit(5);
        assert_eq!(st.estimate(60000), None);
        let seeded = RtpState {
            roc_seed: 7,
            ..RtpState::default()
        };
        assert_eq!(seeded.estimate(3), Some((7 << 16) | 3));
    }

    #[test]
    fn table_evicts_lru() {
        let mut t = StreamTable::default();
        for ssrc in 1..=4 {
            t.entry(ssrc).srtcp_next = ssrc;
        }
        t.entry(1); // 2 is now the least recently used
        t.entry(5);
        assert!(t.get(2).is_none());
        assert_eq!(t.get(1).map(|s| s.srtcp_next), Some(1));
        assert_eq!(t.get(5).map(|s| s.srtcp_next), Some(0));
        t.remove(5);
        assert!(t.get(5).is_none());
    }
}

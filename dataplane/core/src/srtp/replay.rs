//! Per-SSRC cryptographic state: packet index estimation, rollover counter and the
//! replay windows (RFC 3711 §3.3.1, §3.3.2, Appendix A), kept in a small
//! fixed table with least-recently-used replacement.
//!
//! Sized for the packet path's cache lines: a window is 32 bytes (its bit mask is two
//! `u64`s, so nothing needs 16-byte alignment), and the table keeps its SSRCs in a
//! separate array, most recently used first, so the usual packet compares one SSRC and
//! reads the state right after it.

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

/// Sliding window over the highest index seen: bit `k` of the mask stands for index
/// `highest - k`. Invariant: bit 0 is set once `started`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Window {
    started: bool,
    highest: u64,
    /// The 128-bit mask, low half first.
    bits: [u64; 2],
}

impl Window {
    fn mask(&self) -> u128 {
        u128::from(self.bits[0]) | (u128::from(self.bits[1]) << 64)
    }

    fn set_mask(&mut self, m: u128) {
        // Truncations intended: the two halves of the mask.
        self.bits = [m as u64, (m >> 64) as u64];
    }

    /// `Err(Replay)` if `index` was already accepted, `Err(TooOld)` if it is left of
    /// the window (RFC 3711 §3.3.2).
    pub(crate) fn check(&self, index: u64) -> Result<(), SrtpError> {
        if !self.started || index > self.highest {
            return Ok(());
        }
        let age = self.highest - index;
        if age >= REPLAY_WINDOW {
            Err(SrtpError::TooOld)
        } else if self.mask() & (1u128 << age) != 0 {
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
                bits: [1, 0],
            };
        } else if index > self.highest {
            let shift = index - self.highest;
            let m = if shift >= REPLAY_WINDOW {
                0
            } else {
                self.mask() << shift
            };
            self.set_mask(m | 1);
            self.highest = index;
        } else {
            let age = self.highest - index;
            if age < REPLAY_WINDOW {
                self.set_mask(self.mask() | 1u128 << age);
            }
        }
    }

    pub(crate) fn highest(&self) -> Option<u64> {
        self.started.then_some(self.highest)
    }
}

/// SRTP state of one SSRC: the window carries `s_l` and the ROC as the highest
/// 48-bit index `ROC · 2^16 + s_l`.
///
/// Before the first packet the window is not started, and its `highest` holds the ROC
/// to assume as `ROC · 2^16` (0 unless signalled, e.g. by the test vectors). The seed
/// needs no field of its own, so the state is 32 bytes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RtpState {
    pub(crate) window: Window,
}

impl RtpState {
    /// A state whose first packet gets rollover counter `roc`.
    pub(crate) fn seeded(roc: u32) -> Self {
        Self {
            window: Window {
                highest: u64::from(roc) << 16,
                ..Window::default()
            },
        }
    }

    /// A state carried on from another node whose highest index was `index`: the
    /// window starts there (that index counts as received), so the next packets'
    /// indexes are estimated from it (RFC 3711 Appendix A), across a rollover too.
    pub(crate) fn resumed(index: u64) -> Self {
        Self {
            window: Window {
                started: true,
                highest: index.min(MAX_INDEX),
                bits: [1, 0],
            },
        }
    }

    /// The ROC of the highest index accepted, or the seed before the first packet.
    pub(crate) fn roc(&self) -> u32 {
        // Indexes are 48 bits: the shift leaves at most 32.
        (self.window.highest >> 16) as u32
    }

    /// RFC 3711 Appendix A: guess the ROC `v` for `seq` from `s_l` and the ROC,
    /// and return the 48-bit index `v · 2^16 + seq`. `None` when the guess would be
    /// negative (a packet from before the start) or past 2^48.
    pub(crate) fn estimate(&self, seq: u16) -> Option<u64> {
        let Some(highest) = self.window.highest() else {
            return Some(self.window.highest | u64::from(seq));
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

/// Everything kept for one SSRC (its SSRC is in [`StreamTable`]'s key array), the RTP
/// state first.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub(crate) struct StreamState {
    pub(crate) rtp: RtpState,
    /// Next SRTCP index to send (RFC 3711 §3.3.2: starts at 0, +1 mod 2^31).
    pub(crate) srtcp_next: u32,
    pub(crate) srtcp_rx: Window,
}

/// Fixed table of [`MAX_STREAMS`] SSRC states, most recently used first; the last one
/// is evicted when a new SSRC needs room.
///
/// `repr(C)`: the SSRCs, then the states, so the usual lookup (the SSRC of the previous
/// packet, in front) reads one line for the key and the state after it.
#[derive(Clone, Debug, Default)]
#[repr(C)]
pub(crate) struct StreamTable {
    ssrc: [u32; MAX_STREAMS],
    len: u8,
    state: [StreamState; MAX_STREAMS],
}

impl StreamTable {
    /// Bytes from the start of the table to the end of the front SSRC's RTP state.
    #[cfg(target_arch = "x86_64")]
    pub(crate) const FRONT_RTP_END: usize =
        std::mem::offset_of!(StreamTable, state) + std::mem::size_of::<RtpState>();

    fn position(&self, ssrc: u32) -> Option<usize> {
        self.ssrc
            .get(..usize::from(self.len))?
            .iter()
            .position(|&s| s == ssrc)
    }

    /// The state of `ssrc`, if tracked.
    pub(crate) fn get(&self, ssrc: u32) -> Option<&StreamState> {
        self.state.get(self.position(ssrc)?)
    }

    /// The state of `ssrc`, created (evicting the least recently used SSRC when the
    /// table is full) if absent. Moves it to the front.
    pub(crate) fn entry(&mut self, ssrc: u32) -> &mut StreamState {
        match self.position(ssrc) {
            Some(0) => {}
            Some(i) => {
                self.ssrc[..=i].rotate_right(1);
                self.state[..=i].rotate_right(1);
            }
            None => {
                // A free slot at the end, or else the least recently used: rotated to
                // the front and overwritten.
                let n = (usize::from(self.len) + 1).min(MAX_STREAMS);
                self.len = n as u8;
                self.ssrc[..n].rotate_right(1);
                self.state[..n].rotate_right(1);
                self.ssrc[0] = ssrc;
                self.state[0] = StreamState::default();
            }
        }
        &mut self.state[0]
    }

    /// The most recently used SSRC and its state.
    pub(crate) fn front(&self) -> Option<(u32, &StreamState)> {
        (self.len > 0).then(|| (self.ssrc[0], &self.state[0]))
    }

    /// Forget `ssrc` (its next packet starts a fresh index/replay history).
    pub(crate) fn remove(&mut self, ssrc: u32) {
        if let Some(i) = self.position(ssrc) {
            let n = usize::from(self.len);
            self.ssrc[i..n].rotate_left(1);
            self.state[i..n].rotate_left(1);
            self.len -= 1;
        }
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
        let seeded = RtpState::seeded(7);
        assert_eq!(seeded.roc(), 7);
        assert_eq!(seeded.estimate(3), Some((7 << 16) | 3));
        let mut st = seeded;
        st.window.commit((7 << 16) | 65535);
        assert_eq!(st.estimate(2), Some((8 << 16) | 2));
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
        // 1, 4, 3 are left; a lookup does not reorder, an entry does.
        for ssrc in [1, 3, 4] {
            assert_eq!(t.get(ssrc).map(|s| s.srtcp_next), Some(ssrc));
        }
        t.entry(6);
        t.entry(7); // evicts 3, the least recently used
        assert!(t.get(3).is_none());
        for ssrc in [1, 4] {
            assert_eq!(t.get(ssrc).map(|s| s.srtcp_next), Some(ssrc));
        }
    }
}

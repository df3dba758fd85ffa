//! Carrying a pair over a takeover of an active/standby pair: the SRTP state a leg
//! publishes for a standby (housekeeping, about once a second per pair), and the
//! `Restore` command that picks it up on the standby.
//!
//! Invariant: only the owning worker writes a leg's published state; a reader may see
//! the index of one publication with the SSRC of the next (two words), which only
//! happens when the leg's stream changed SSRC in between.

use std::net::SocketAddr;

use portcullis_rtp::srtp::{SrtpResume, SrtpSession};

use super::Relay;
use crate::counters::StreamCounters;
use crate::leg::{rtcp_of, Leg};
use crate::types::{LegResume, LegState};

/// Marks a published index as present.
const KNOWN: u64 = 1 << 63;

/// Publish `leg`'s SRTP state into its counters (housekeeping).
pub(crate) fn publish(c: &StreamCounters, leg: &Leg) {
    let dirs: [Option<&SrtpSession>; 2] =
        [leg.srtp_in.as_deref(), leg.srtp_out.as_deref()].map(|s| s.map(|s| &**s));
    for (d, s) in dirs.into_iter().enumerate() {
        let r = s.and_then(SrtpSession::resume_state);
        let (index, ssrc) = match r {
            Some(r) => (
                r.index | KNOWN,
                u64::from(r.ssrc) | (u64::from(r.srtcp_next) << 32),
            ),
            None => (0, 0),
        };
        if let (Some(ci), Some(cs)) = (c.srtp_index.get(d), c.srtp_ssrc.get(d)) {
            ci.set(index);
            cs.set(ssrc);
        }
    }
}

/// What `c` holds for direction `d` (0 in, 1 out).
pub(crate) fn read(c: &StreamCounters, d: usize) -> Option<SrtpResume> {
    let index = c.srtp_index.get(d)?.get();
    let ssrc = c.srtp_ssrc.get(d)?.get();
    (index & KNOWN != 0).then_some(SrtpResume {
        ssrc: (ssrc & 0xffff_ffff) as u32,
        index: index & !KNOWN,
        srtcp_next: (ssrc >> 32) as u32,
    })
}

impl Relay {
    /// After a `Restore`'s update armed pair `pair`: seed its SRTP contexts and lock
    /// its legs on the latched peers (stale generations are ignored, as updates are).
    pub(crate) fn resume(&mut self, pair: u32, generation: u32, resume: &[LegResume; 2]) {
        let Some(p) = self.pairs.get_mut(pair as usize) else {
            return;
        };
        if p.generation != generation || !p.armed() {
            return;
        }
        for (i, (leg, r)) in p.legs.iter_mut().zip(resume).enumerate() {
            if let (Some(s), Some(st)) = (leg.srtp_in.as_mut(), r.srtp_in.as_ref()) {
                s.resume(st);
            }
            if let (Some(s), Some(st)) = (leg.srtp_out.as_mut(), r.srtp_out.as_ref()) {
                s.resume(st);
            }
            if let Some(peer) = r.latched {
                lock_on(leg, peer);
            }
            if let Some(c) = self.shared.legs.get(pair as usize * 2 + i) {
                c.locked.set(u64::from(leg.state() == LegState::Locked));
                publish(c, leg);
            }
        }
    }
}

/// Send to `peer` and stop learning (it was latched on the other node).
fn lock_on(leg: &mut Leg, peer: SocketAddr) {
    leg.peer = Some(peer);
    leg.heard = true;
    leg.rtcp_latched = false;
    leg.rtcp_peer = Some(rtcp_of(peer));
    leg.learn.lock();
}

//! The data plane side of a takeover in an active/standby pair: reserve a pair by its
//! port (the one the call's SDP advertised), arm it with the state the other node
//! published ([`LegResume`]), and read that state on the active node.

use crate::relay::{self, make_handle};
use crate::types::Command;
use crate::{Dataplane, DataplaneError, LegResume, StreamPairHandle, StreamParams};

impl Dataplane {
    /// Reserve the pair whose leg A RTP port is `port_a` (its leg B port is
    /// `port_a + 2`), as [`allocate_pair`](Self::allocate_pair) would have.
    ///
    /// # Errors
    /// [`DataplaneError::PortUnavailable`] when no worker's slice has a pair there or it
    /// is taken.
    pub fn allocate_at(&self, port_a: u16) -> Result<StreamPairHandle, DataplaneError> {
        let mut slots = self.slots();
        for (w, table) in self.workers.iter().zip(slots.iter_mut()) {
            let Some(off) = port_a.checked_sub(w.base_port) else {
                continue;
            };
            let pair = u32::from(off / 4);
            if off % 4 != 0 || pair as usize >= table.in_use.len() {
                continue;
            }
            let (Some(g), Some(u)) = (
                table.generation.get_mut(pair as usize),
                table.in_use.get_mut(pair as usize),
            ) else {
                break;
            };
            if *u {
                break;
            }
            *g = g.wrapping_add(1);
            *u = true;
            table.free.retain(|&p| p != pair);
            return Ok(make_handle(w.id, w.base_port, pair as usize, *g));
        }
        Err(DataplaneError::PortUnavailable(port_a))
    }

    /// Arm both legs of a pair as [`update`](Self::update) does, then carry on the
    /// state another node published: SRTP indexes per direction (index estimation
    /// continues from them, SRTCP jumps ahead) and latched peers (the leg is locked on
    /// them).
    ///
    /// # Errors
    /// As [`update`](Self::update).
    pub fn restore(
        &self,
        handle: &StreamPairHandle,
        params: [StreamParams; 2],
        resume: [LegResume; 2],
    ) -> Result<(), DataplaneError> {
        let w = self.check(handle)?;
        Self::push(
            w,
            Command::Restore {
                pair: handle.pair,
                generation: handle.generation,
                params,
                resume,
            },
        )
    }

    /// The SRTP state each leg last published (about once a second) for a standby;
    /// `latched` is left `None` (the control plane knows it from
    /// [`Event::Latched`](crate::Event::Latched)). `None` for a stale handle.
    #[must_use]
    pub fn resume_state(&self, handle: &StreamPairHandle) -> Option<[LegResume; 2]> {
        let w = self.workers.get(usize::from(handle.worker.0))?;
        let leg = |i: usize| {
            let c = w.shared.legs.get(handle.pair as usize * 2 + i)?;
            (c.generation() == handle.generation).then(|| LegResume {
                srtp_in: relay::resume_read(c, 0),
                srtp_out: relay::resume_read(c, 1),
                latched: None,
            })
        };
        Some([leg(0)?, leg(1)?])
    }
}

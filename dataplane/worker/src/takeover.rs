//! The data plane side of a takeover in an active/standby pair: reserve a pair by its
//! ports (those the call's SDP advertised, each in its side's realm), arm it with the state the other node
//! published ([`LegResume`]), and read that state on the active node.

use crate::relay::{self, make_handle};
use crate::types::Command;
use crate::{Dataplane, DataplaneError, LegResume, RealmId, StreamPairHandle, StreamParams};

impl Dataplane {
    /// Reserve the pair whose leg A RTP port is `ports[0]` in realm `realms[0]` and
    /// whose leg B RTP port is `ports[1]` in realm `realms[1]`, as
    /// [`allocate_pair_in`](Self::allocate_pair_in) had handed them out: each port names
    /// a leg slot of one worker's slice through its [`SocketPlan`](crate::SocketPlan),
    /// and both must be free on the same worker.
    ///
    /// # Errors
    /// [`DataplaneError::UnknownRealm`]; [`DataplaneError::PortUnavailable`] (naming the
    /// first port at fault) when no worker's slice has a leg slot at a port, the two are
    /// on different workers, or one is taken.
    pub fn allocate_at(
        &self,
        realms: [RealmId; 2],
        ports: [u16; 2],
    ) -> Result<StreamPairHandle, DataplaneError> {
        for r in realms {
            if usize::from(r.0) >= self.realms {
                return Err(DataplaneError::UnknownRealm(r.0));
            }
        }
        let mut slots = self.slots();
        for (w, table) in self.workers.iter().zip(slots.iter_mut()) {
            let a = w.plan.leg_at(realms[0], ports[0]);
            let b = w.plan.leg_at(realms[1], ports[1]);
            let (Some(la), Some(lb)) = (a, b) else {
                if a.is_some() || b.is_some() {
                    // One side here, the other elsewhere or nowhere.
                    let bad = if a.is_some() { ports[1] } else { ports[0] };
                    return Err(DataplaneError::PortUnavailable(bad));
                }
                continue;
            };
            return match table.take_at(realms, [la, lb]) {
                Ok((pair, generation)) => Ok(make_handle(
                    w.id,
                    &w.plan,
                    pair as usize,
                    generation,
                    [la, lb],
                )),
                Err(side) => Err(DataplaneError::PortUnavailable(ports[side])),
            };
        }
        Err(DataplaneError::PortUnavailable(ports[0]))
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
        let (w, legs) = self.check(handle)?;
        Self::push(
            w,
            Command::Restore {
                pair: handle.pair,
                generation: handle.generation,
                params,
                legs,
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

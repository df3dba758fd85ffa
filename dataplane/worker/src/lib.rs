//! Pinned-core RTP/SRTP relay workers over io_uring, recvmmsg or AF_XDP.
//!
//! `unsafe` lives only where the kernel interface needs it (io_uring submissions
//! and buffer rings, `recvmmsg`/`sendmmsg`, socket addresses, the AF_XDP UMEM); each
//! block names its invariant.
//!
//! The control plane drives the data plane through [`Dataplane`]:
//! [`allocate_pair_in`](Dataplane::allocate_pair_in) reserves two legs on the least-loaded
//! worker, each in the media realm of its side ([`realm`]), [`update`](Dataplane::update) arms them, [`remove`](Dataplane::remove) tears
//! them down, [`poll_events`](Dataplane::poll_events) reports latching, inactivity and SRTP
//! failures. Commands and events travel on bounded lock-free rings, one pair per worker;
//! a full ring is an error ([`DataplaneError::RingFull`]), never a wait.

mod afxdp;
mod companion;
pub mod counters;
mod dtmf;
mod epoll;
mod fastpath;
mod fixed;
mod huge;
mod learning;
mod leg;
mod mmsg;
mod opaque;
pub mod realm;
pub mod relay;
mod ring;
mod slots;
mod sock;
mod start;
mod takeover;
mod types;
mod uring;
mod worker;

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_queue::ArrayQueue;
use nix::sys::eventfd::EventFd;

pub use counters::{DropReason, LegStats, PairStats, WorkerShared, WorkerStats, DROP_REASONS};
pub use dtmf::QUEUE as DTMF_QUEUE;
pub use realm::SocketPlan;
pub use types::{
    Backend, DataplaneConfig, DataplaneError, DtmfFlags, EndpointLearning, Event, FastPathConfig,
    IceLite, LegResume, LegState, RealmConfig, RealmId, Side, StreamFlags, StreamPairHandle,
    StreamParams, WorkerId, ICE_PWD_MAX, ICE_UFRAG_MAX,
};

use slots::SlotTable;
use types::Command;

/// The kernel-interface building blocks the workers are made of (io_uring ring and
/// provided-buffer set-up and submissions, `recvmmsg`/`sendmmsg` batches, socket set-up),
/// shared with the raw baseline forwarder in `portcullis-benches` so the baseline runs the
/// same kernel calls. Not a stable interface.
#[doc(hidden)]
pub mod raw {
    pub use crate::fixed::SockRef;
    pub use crate::mmsg::{Batch, BATCH};
    pub use crate::relay::BUF_SIZE;
    pub use crate::ring::{
        arm_recv, arm_timer, build_ring, push, quiesce, send_connected, send_to, ud, ud_bid,
        ud_kind, ud_sock, UringState, BGID, K_RECV, K_SEND, K_TIMER, NBUF, PAYLOAD_OFF,
    };
    pub use crate::sock::{bind_udp, gettid, to_storage, SOCKET_BUFFER};
}

/// Control-plane view of one worker.
struct WorkerHandle {
    id: WorkerId,
    /// Address and port of every socket of the worker, realm by realm.
    plan: Arc<SocketPlan>,
    cmds: Arc<ArrayQueue<Command>>,
    events: Arc<ArrayQueue<Event>>,
    doorbell: Arc<EventFd>,
    shared: Arc<WorkerShared>,
    /// Commands refused because the command ring was full.
    cmd_ring_full: std::sync::atomic::AtomicU64,
    thread: Option<JoinHandle<Result<(), DataplaneError>>>,
}

/// Occupancy of one worker's rings, sampled by [`Dataplane::ring_depths`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingDepth {
    /// Commands queued, not yet taken by the worker.
    pub commands: usize,
    /// Events queued, not yet polled by the control plane.
    pub events: usize,
    /// Capacity of each ring (`[media] ring_capacity`).
    pub capacity: usize,
    /// Commands refused so far because the command ring was full (cumulative).
    pub command_overflows: u64,
}

impl std::fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerHandle")
            .field("id", &self.id)
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

/// The running data plane: worker threads plus their rings.
#[derive(Debug)]
pub struct Dataplane {
    workers: Vec<WorkerHandle>,
    realms: usize,
    slots: Mutex<Vec<SlotTable>>,
    backend: Backend,
    /// The XDP fast path (`None`: off).
    fast: Option<fastpath::FastReader>,
}

/// Check that `io_uring` can be used: create a ring and probe the opcodes the worker needs.
///
/// # Errors
/// [`DataplaneError::IoUringUnavailable`] with the reason.
pub fn probe_io_uring() -> Result<(), DataplaneError> {
    ring::probe()
}

impl Dataplane {
    /// Backend the workers run (after `Auto` resolution).
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Number of workers.
    #[must_use]
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    fn slots(&self) -> MutexGuard<'_, Vec<SlotTable>> {
        // The table holds plain data; a panic elsewhere cannot leave it inconsistent.
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reserve a pair (two legs, four ports) on the least-loaded worker, both legs in
    /// realm 0.
    ///
    /// Nothing is relayed until [`update`](Self::update) arms the pair.
    ///
    /// # Errors
    /// [`DataplaneError::Exhausted`] when every slot is taken.
    pub fn allocate_pair(&self) -> Result<StreamPairHandle, DataplaneError> {
        self.allocate_pair_in(RealmId(0), RealmId(0))
    }

    /// Reserve a pair on the least-loaded worker with a free leg slot in realm `a` for
    /// leg A and one in realm `b` for leg B.
    ///
    /// # Errors
    /// [`DataplaneError::UnknownRealm`], [`DataplaneError::Exhausted`] when no worker has
    /// room in those realms.
    pub fn allocate_pair_in(
        &self,
        a: RealmId,
        b: RealmId,
    ) -> Result<StreamPairHandle, DataplaneError> {
        for r in [a, b] {
            if usize::from(r.0) >= self.realms {
                return Err(DataplaneError::UnknownRealm(r.0));
            }
        }
        let mut slots = self.slots();
        let best = slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.fits(a, b))
            .min_by_key(|(_, s)| s.in_use.len() - s.free.len())
            .map(|(i, _)| i)
            .ok_or(DataplaneError::Exhausted)?;
        let (Some(table), Some(w)) = (slots.get_mut(best), self.workers.get(best)) else {
            return Err(DataplaneError::Exhausted);
        };
        let (pair, legs, generation) = table.take(a, b).ok_or(DataplaneError::Exhausted)?;
        Ok(relay::make_handle(
            w.id,
            &w.plan,
            pair as usize,
            generation,
            legs,
        ))
    }

    /// The worker of a live handle, and the pair's leg slots.
    fn check(&self, h: &StreamPairHandle) -> Result<(&WorkerHandle, [u32; 2]), DataplaneError> {
        let slots = self.slots();
        let t = slots
            .get(usize::from(h.worker.0))
            .ok_or(DataplaneError::Stale)?;
        let live = t.in_use.get(h.pair as usize) == Some(&true)
            && t.generation.get(h.pair as usize) == Some(&h.generation);
        let legs = t.legs.get(h.pair as usize).copied();
        let (true, Some(legs)) = (live, legs) else {
            return Err(DataplaneError::Stale);
        };
        let w = self
            .workers
            .get(usize::from(h.worker.0))
            .ok_or(DataplaneError::Stale)?;
        Ok((w, legs))
    }

    fn push(w: &WorkerHandle, cmd: Command) -> Result<(), DataplaneError> {
        w.cmds.push(cmd).map_err(|_| {
            w.cmd_ring_full
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            DataplaneError::RingFull(w.id)
        })?;
        // Doorbell: wakes a worker sleeping in epoll_wait / io_uring_enter. A failed
        // write only means the counter is saturated, which already signals.
        let _ = w.doorbell.write(1);
        Ok(())
    }

    /// Arm or re-arm both legs of a pair.
    ///
    /// # Errors
    /// [`DataplaneError::Stale`] for a removed handle, [`DataplaneError::RingFull`] when the
    /// worker's command ring is full (refuse the call).
    pub fn update(
        &self,
        handle: &StreamPairHandle,
        a: StreamParams,
        b: StreamParams,
    ) -> Result<(), DataplaneError> {
        let (w, legs) = self.check(handle)?;
        Self::push(w, Command::update(handle, legs, [a, b]))
    }

    /// Push an update whatever the handle's state: for tests of the worker's stale-command
    /// path. The worker decides by generation.
    ///
    /// # Errors
    /// [`DataplaneError::RingFull`].
    #[doc(hidden)]
    pub fn update_unchecked(
        &self,
        handle: &StreamPairHandle,
        a: StreamParams,
        b: StreamParams,
    ) -> Result<(), DataplaneError> {
        let w = self
            .workers
            .get(usize::from(handle.worker.0))
            .ok_or(DataplaneError::Stale)?;
        let legs = self
            .slots()
            .get(usize::from(handle.worker.0))
            .and_then(|t| t.legs.get(handle.pair as usize).copied())
            .unwrap_or([handle.pair * 2, handle.pair * 2 + 1]);
        Self::push(w, Command::update(handle, legs, [a, b]))
    }

    /// Play an RFC 4733 event (`event` 0-15, `duration` in timestamp units) toward leg
    /// `side`'s peer, in the payload type of its `dtmf.generate` flag (events for a leg
    /// without it, or beyond a full queue of [`DTMF_QUEUE`], are counted and dropped by
    /// the worker).
    ///
    /// # Errors
    /// [`DataplaneError::Stale`], [`DataplaneError::RingFull`].
    pub fn dtmf(
        &self,
        handle: &StreamPairHandle,
        side: Side,
        event: u8,
        duration: u16,
    ) -> Result<(), DataplaneError> {
        let (w, _) = self.check(handle)?;
        Self::push(
            w,
            Command::Dtmf {
                pair: handle.pair,
                generation: handle.generation,
                side,
                event,
                duration,
            },
        )
    }

    /// Hold worker `id` still for `pause` (capped at one second) once it reaches this
    /// command: a maintenance hook, also how tests fill a ring deterministically.
    ///
    /// # Errors
    /// [`DataplaneError::RingFull`], [`DataplaneError::Stale`] for an unknown worker.
    pub fn quiesce(&self, id: WorkerId, pause: std::time::Duration) -> Result<(), DataplaneError> {
        let w = self
            .workers
            .get(usize::from(id.0))
            .ok_or(DataplaneError::Stale)?;
        let micros = u32::try_from(pause.as_micros()).unwrap_or(u32::MAX);
        Self::push(w, Command::Quiesce { micros })
    }

    /// Tear a pair down and free its slot for reuse (with a new generation).
    ///
    /// # Errors
    /// [`DataplaneError::Stale`], or [`DataplaneError::RingFull`] (the slot stays reserved;
    /// retry later).
    pub fn remove(&self, handle: &StreamPairHandle) -> Result<(), DataplaneError> {
        let (w, _) = self.check(handle)?;
        Self::push(
            w,
            Command::Remove {
                pair: handle.pair,
                generation: handle.generation,
            },
        )?;
        let mut slots = self.slots();
        if let Some(t) = slots.get_mut(usize::from(handle.worker.0)) {
            t.give_back(handle.pair, &w.plan);
        }
        Ok(())
    }

    /// Drain every worker's event ring (bounded by the rings' lengths at call time), plus a
    /// [`Event::RingOverflow`] per worker that lost events since the previous call.
    pub fn poll_events(&self) -> impl Iterator<Item = Event> + '_ {
        let mut overflow = Vec::new();
        {
            let mut slots = self.slots();
            for (w, t) in self.workers.iter().zip(slots.iter_mut()) {
                let lost = w.shared.worker.events_lost.get();
                if lost > t.lost_reported {
                    overflow.push(Event::RingOverflow {
                        worker: w.id,
                        lost: lost - t.lost_reported,
                    });
                    t.lost_reported = lost;
                }
            }
        }
        let drained = self.workers.iter().flat_map(|w| {
            let n = w.events.len();
            (0..n).map_while(move |_| w.events.pop())
        });
        overflow.into_iter().chain(drained)
    }

    /// Counters of both legs; `None` for a stale handle or before the worker applied the
    /// pair's first update.
    #[must_use]
    pub fn stats(&self, handle: &StreamPairHandle) -> Option<PairStats> {
        let w = self.workers.get(usize::from(handle.worker.0))?;
        let a = w.shared.legs.get(handle.pair as usize * 2)?;
        let b = w.shared.legs.get(handle.pair as usize * 2 + 1)?;
        if a.generation() != handle.generation || b.generation() != handle.generation {
            return None;
        }
        Some(match &self.fast {
            Some(f) => {
                // Which realm each side's ports are in: the pair's leg slots.
                let legs = *self
                    .slots()
                    .get(usize::from(handle.worker.0))?
                    .legs
                    .get(handle.pair as usize)?;
                f.pair_stats(&w.plan, legs, a, b)
            }
            None => PairStats::read(a, b),
        })
    }

    /// Snapshot of every worker's counters, indexed by [`WorkerId`].
    #[must_use]
    pub fn worker_stats(&self) -> Vec<WorkerStats> {
        self.workers
            .iter()
            .map(|w| w.shared.worker.snapshot())
            .collect()
    }

    /// Ring occupancy of every worker now, indexed by [`WorkerId`].
    #[must_use]
    pub fn ring_depths(&self) -> Vec<RingDepth> {
        self.workers
            .iter()
            .map(|w| RingDepth {
                commands: w.cmds.len(),
                events: w.events.len(),
                capacity: w.cmds.capacity(),
                command_overflows: w.cmd_ring_full.load(std::sync::atomic::Ordering::Relaxed),
            })
            .collect()
    }

    /// Shared counter memory of one worker (for a metrics exporter).
    #[must_use]
    pub fn worker_counters(&self, id: WorkerId) -> Option<Arc<WorkerShared>> {
        self.workers
            .get(usize::from(id.0))
            .map(|w| w.shared.clone())
    }

    /// Stop every worker and join the threads. Idempotent; also done on drop.
    pub fn shutdown(&self) {
        for w in &self.workers {
            // Budgeted retries: the worker drains 64 commands per iteration.
            let deadline = Instant::now() + std::time::Duration::from_secs(2);
            while w.cmds.push(Command::Shutdown).is_err() && Instant::now() < deadline {
                let _ = w.doorbell.write(1);
                std::thread::yield_now();
            }
            let _ = w.doorbell.write(1);
        }
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.shutdown();
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                match t.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(worker = w.id.0, error = %e, "worker failed"),
                    Err(_) => tracing::error!(worker = w.id.0, "worker panicked"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    /// The control plane shares one `Dataplane` between tasks.
    #[test]
    fn dataplane_is_send_and_sync() {
        assert_send_sync::<Dataplane>();
    }
}

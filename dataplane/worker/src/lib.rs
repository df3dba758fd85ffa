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
mod takeover;
mod types;
mod uring;
mod worker;

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_queue::ArrayQueue;
use nix::sys::eventfd::{EfdFlags, EventFd};

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
    /// Bind every port of every realm's range, spawn one pinned worker per configured core.
    ///
    /// Each realm's range is split into blocks of four ports (two leg slots: RTP and RTCP
    /// each) starting at its `port_min` rounded up to even; each worker owns a contiguous run
    /// of every realm's blocks ([`realm`]).
    ///
    /// # Errors
    /// Bad configuration, a port that cannot be bound, io_uring requested but unavailable.
    #[allow(clippy::needless_pass_by_value)] // the data plane takes ownership of its config
    pub fn start(cfg: DataplaneConfig) -> Result<Dataplane, DataplaneError> {
        if !cfg.uring_buffers.is_power_of_two() || cfg.uring_buffers > 32768 {
            return Err(DataplaneError::Config(
                "uring_buffers must be a power of two up to 32768",
            ));
        }
        if cfg.ring_capacity == 0 {
            return Err(DataplaneError::Config("zero ring capacity"));
        }
        let realms = cfg.realm_list();
        if realms.len() > usize::from(u16::MAX) {
            return Err(DataplaneError::Config("too many media realms"));
        }
        let n_workers = u32::try_from(cfg.cores.len().max(1)).unwrap_or(1);
        for (i, r) in realms.iter().enumerate() {
            let (base, blocks) = realm::realm_blocks(r);
            if r.port_max < base {
                return Err(DataplaneError::Config("empty port range"));
            }
            if blocks < n_workers {
                return Err(DataplaneError::Config(
                    "port range too small: need four ports per pair per worker",
                ));
            }
            if realms
                .iter()
                .skip(i + 1)
                .any(|o| realm::realms_collide(r, o))
            {
                return Err(DataplaneError::Config(
                    "media realms overlap: two realms share a local address and ports",
                ));
            }
        }
        let backend = match cfg.backend {
            Backend::Mmsg => Backend::Mmsg,
            Backend::AfXdp => {
                if cfg.af_xdp.is_none() {
                    return Err(DataplaneError::AfXdp(
                        "no XDP program attached to the media interfaces".to_owned(),
                    ));
                }
                Backend::AfXdp
            }
            Backend::IoUring => {
                ring::probe()?;
                Backend::IoUring
            }
            Backend::Auto => match ring::probe() {
                Ok(()) => Backend::IoUring,
                Err(e) => {
                    tracing::info!(reason = %e, "io_uring unavailable, using mmsg backend");
                    Backend::Mmsg
                }
            },
        };
        tracing::info!(
            ?backend,
            workers = n_workers,
            realms = realms.len(),
            "data plane starting"
        );
        for r in &realms {
            warn_if_ephemeral_overlap(realm::realm_blocks(r).0, r.port_max);
        }
        let plans = realm::worker_plans(&realms, n_workers)?;
        sock::raise_nofile_limit();
        if let Some(limit) = sock::nofile_limit() {
            let slices = plans.iter().map(|p| p.pairs());
            check_descriptors(backend, slices, sock::open_descriptors(), limit)?;
        }
        let inactivity_us = u64::try_from(cfg.inactivity_timeout.as_micros()).unwrap_or(u64::MAX);
        let fast = cfg
            .fast_path
            .as_ref()
            .map(|f| fastpath::FastReader::new(f, &realms))
            .transpose()?;
        let mut workers = Vec::new();
        let mut slots = Vec::new();
        let mut dp_err = None;
        for (w, plan) in (0u16..).zip(plans) {
            let plan = Arc::new(plan);
            let table = SlotTable::new(&plan, realms.len());
            let spawned = spawn_worker(
                &cfg,
                WorkerId(w),
                plan,
                backend,
                inactivity_us,
                fast.as_ref(),
            );
            match spawned {
                Ok(h) => {
                    workers.push(h);
                    slots.push(table);
                }
                Err(e) => {
                    dp_err = Some(e);
                    break;
                }
            }
        }
        let dp = Dataplane {
            workers,
            realms: realms.len(),
            slots: Mutex::new(slots),
            backend,
            fast,
        };
        if let Some(e) = dp_err {
            dp.shutdown();
            return Err(e);
        }
        Ok(dp)
    }

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
        Self::push(
            w,
            Command::Update {
                pair: handle.pair,
                generation: handle.generation,
                params: [a, b],
                legs,
            },
        )
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
        Self::push(
            w,
            Command::Update {
                pair: handle.pair,
                generation: handle.generation,
                params: [a, b],
                legs,
            },
        )
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

/// Descriptors kept free beyond the media sockets (eventfds, rings, SIP, admin, logs, and
/// the few sockets an io_uring worker holds while installing them as registered files).
const FD_RESERVE: u64 = 64;

/// Refuse a range whose sockets cannot all be opened, with the numbers, instead of
/// failing on the first `EMFILE` half-way through binding. `slices`: pairs per worker.
///
/// mmsg holds one descriptor per port. io_uring registers each worker's sockets in its
/// ring's file table, which the kernel caps at `limit` entries per ring but which takes no
/// descriptor: only the sockets beyond each worker's table count.
fn check_descriptors(
    backend: Backend,
    slices: impl Iterator<Item = u32>,
    open: u64,
    limit: u64,
) -> Result<(), DataplaneError> {
    let (in_fds, counted, remedy): (u64, _, _) = match backend {
        Backend::Mmsg | Backend::AfXdp => (
            slices.map(|p| u64::from(p) * 4).sum(),
            "one socket per port with the mmsg and af_xdp backends",
            "",
        ),
        Backend::IoUring | Backend::Auto => (
            slices
                .map(|p| u64::from(fixed::overflow(p.saturating_mul(4), Some(limit))))
                .sum(),
            "the sockets beyond each io_uring worker's registered-file table, which holds at \
             most RLIMIT_NOFILE sockets",
            ", spread the range over more media cores (one table per worker)",
        ),
    };
    let needed = in_fds + open + FD_RESERVE;
    if needed > limit {
        return Err(DataplaneError::TooFewDescriptors {
            needed,
            open,
            limit,
            counted,
            remedy,
        });
    }
    Ok(())
}

/// Media ports inside the kernel's ephemeral range can be handed to an auto-bound socket
/// with `SO_REUSEPORT`, which would then share (and steal) media: warn about it.
fn warn_if_ephemeral_overlap(min: u16, max: u16) {
    let Ok(s) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") else {
        return;
    };
    let mut it = s
        .split_ascii_whitespace()
        .filter_map(|x| x.parse::<u16>().ok());
    if let (Some(lo), Some(hi)) = (it.next(), it.next()) {
        if min <= hi && lo <= max {
            tracing::warn!(
                port_min = min,
                port_max = max,
                ephemeral_lo = lo,
                ephemeral_hi = hi,
                "media port range overlaps net.ipv4.ip_local_port_range"
            );
        }
    }
}

fn spawn_worker(
    cfg: &DataplaneConfig,
    id: WorkerId,
    plan: Arc<SocketPlan>,
    backend: Backend,
    inactivity_us: u64,
    fast: Option<&fastpath::FastReader>,
) -> Result<WorkerHandle, DataplaneError> {
    // mmsg binds here, one descriptor per port. An io_uring worker binds its slice itself,
    // into its ring's registered-file table (`uring::bind_slice`), and reports errors
    // through the ready channel.
    let mut sockets = Vec::new();
    if matches!(backend, Backend::Mmsg | Backend::AfXdp) {
        let n_socks = plan.sockets();
        sockets.reserve_exact(n_socks as usize);
        for i in 0..n_socks {
            sockets.push(plan.bind(i)?);
        }
    }
    let cmds = Arc::new(ArrayQueue::new(cfg.ring_capacity));
    let events = Arc::new(ArrayQueue::new(cfg.ring_capacity));
    let doorbell = Arc::new(
        EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
            .map_err(|e| DataplaneError::io("eventfd", e.into()))?,
    );
    let shared = Arc::new(WorkerShared::new(plan.pairs() as usize * 2));
    let mut relay = relay::Relay::new(
        id,
        plan.clone(),
        shared.clone(),
        events.clone(),
        relay::RelayLimits {
            inactivity_us,
            srtp_fail_threshold: cfg.srtp_fail_threshold,
            learning_window_us: u64::try_from(cfg.learning_window.as_micros()).unwrap_or(u64::MAX),
        },
    );
    if let Some(f) = fast {
        relay.fast = Some(f.for_worker(plan.clone())?);
    }
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let ctx = worker::WorkerCtx {
        id,
        relay,
        plan: plan.clone(),
        fixed: 0,
        sockets,
        cmds: cmds.clone(),
        doorbell: doorbell.clone(),
        shared: shared.clone(),
        start: Instant::now(),
        next_housekeeping_us: 0,
        stop: false,
        af_xdp: cfg.af_xdp.clone().filter(|_| backend == Backend::AfXdp),
        uring_buffers: cfg.uring_buffers,
        ready: Some(ready_tx),
    };
    let core = cfg.cores.get(usize::from(id.0)).copied();
    let on_start = cfg.on_worker_start;
    let thread = std::thread::Builder::new()
        .name(format!("dp-worker-{}", id.0))
        .spawn(move || worker_main(ctx, core, backend, on_start))
        .map_err(|e| DataplaneError::io("spawn worker", e))?;
    // Wait (bounded) until the backend is set up, so a refused io_uring or epoll set-up,
    // or a port an io_uring worker cannot bind, fails `start` instead of leaving a dead
    // worker behind. Binding tens of thousands of sockets on a loaded machine takes a while.
    match ready_rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(e);
        }
        Err(_) => {
            return Err(DataplaneError::WorkerStart(
                "worker did not report ready".to_string(),
            ))
        }
    }
    Ok(WorkerHandle {
        id,
        plan,
        cmds,
        events,
        doorbell,
        shared,
        cmd_ring_full: std::sync::atomic::AtomicU64::new(0),
        thread: Some(thread),
    })
}

/// Thread body: pin, pick the backend, run until shutdown.
fn worker_main(
    mut ctx: worker::WorkerCtx,
    core: Option<usize>,
    backend: Backend,
    on_start: Option<fn(WorkerId)>,
) -> Result<(), DataplaneError> {
    if let Some(c) = core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
            tracing::warn!(worker = ctx.id.0, core = c, "could not pin worker");
        }
    }
    ctx.shared.worker.tid.set(crate::sock::gettid());
    if let Some(f) = on_start {
        f(ctx.id);
    }
    let r = match backend {
        Backend::Mmsg => {
            ctx.shared.worker.backend.set(2);
            crate::mmsg::run(&mut ctx)
        }
        Backend::AfXdp => {
            ctx.shared.worker.backend.set(3);
            crate::afxdp::run(&mut ctx)
        }
        Backend::IoUring | Backend::Auto => {
            ctx.shared.worker.backend.set(1);
            crate::uring::run(&mut ctx)
        }
    };
    // Set-up failed before the loop started: hand the error itself to `Dataplane::start`.
    match (ctx.ready.take(), r) {
        (Some(tx), Err(e)) => {
            let msg = e.to_string();
            let _ = tx.send(Err(e));
            Err(DataplaneError::WorkerStart(msg))
        }
        (_, r) => r,
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

    #[test]
    fn a_range_beyond_the_descriptor_limit_is_refused_with_the_numbers() {
        let one = |pairs: u32| std::iter::once(pairs);
        assert!(check_descriptors(Backend::Mmsg, one(4750), 20, 20_000).is_ok());
        let e = check_descriptors(Backend::Mmsg, one(6500), 20, 20_000).unwrap_err();
        assert!(matches!(
            e,
            DataplaneError::TooFewDescriptors {
                needed: 26_084,
                open: 20,
                limit: 20_000,
                ..
            }
        ));
        let msg = e.to_string();
        assert!(msg.contains("26084") && msg.contains("20000"), "{msg}");
        assert!(msg.contains("LimitNOFILE") && msg.contains("mmsg"), "{msg}");
        // The reserve counts: exactly at the limit passes, one more does not.
        // 232 pairs = 928 sockets; 928 + 8 + 64 = 1000.
        assert!(check_descriptors(Backend::Mmsg, one(232), 8, 1000).is_ok());
        assert!(check_descriptors(Backend::Mmsg, one(232), 9, 1000).is_err());
    }

    #[test]
    fn io_uring_counts_only_the_sockets_beyond_each_rings_table() {
        // 20000-60999 on two workers: 5,125 pairs (20,500 sockets) each, 500 beyond each
        // table of 20,000: 1,000 descriptors.
        let two = [5125u32, 5125];
        assert!(check_descriptors(Backend::IoUring, two.into_iter(), 30, 20_000).is_ok());
        assert!(check_descriptors(Backend::Mmsg, two.into_iter(), 30, 20_000).is_err());
        // One worker with the whole range: 41,000 sockets, 21,000 beyond its table.
        let e =
            check_descriptors(Backend::IoUring, std::iter::once(10_250), 30, 20_000).unwrap_err();
        assert!(matches!(
            e,
            DataplaneError::TooFewDescriptors {
                needed: 21_094,
                open: 30,
                limit: 20_000,
                ..
            }
        ));
        let msg = e.to_string();
        assert!(
            msg.contains("21094") && msg.contains("registered-file table"),
            "{msg}"
        );
        assert!(msg.contains("more media cores"), "{msg}");
    }

    #[test]
    fn bad_configs_are_refused() {
        let bad = [
            DataplaneConfig {
                port_min: 5000,
                port_max: 4000,
                ..DataplaneConfig::default()
            },
            DataplaneConfig {
                ring_capacity: 0,
                ..DataplaneConfig::default()
            },
            DataplaneConfig {
                uring_buffers: 100,
                ..DataplaneConfig::default()
            },
            DataplaneConfig {
                port_min: 5000,
                port_max: 5002,
                ..DataplaneConfig::default()
            },
        ];
        for cfg in bad {
            assert!(matches!(
                Dataplane::start(cfg),
                Err(DataplaneError::Config(_))
            ));
        }
    }
}

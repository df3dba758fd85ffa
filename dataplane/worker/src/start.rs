//! Starting the data plane: the configuration checks, the descriptor budget, and one
//! worker thread per configured core (its rings, doorbell and counters, then the backend
//! loop on the pinned thread).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_queue::ArrayQueue;
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::slots::SlotTable;
use crate::{
    fastpath, fixed, realm, relay, ring, sock, worker, Backend, Dataplane, DataplaneConfig,
    DataplaneError, SocketPlan, WorkerHandle, WorkerId, WorkerShared,
};

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

//! What a worker thread owns ([`WorkerCtx`]), and the parts of the loop both backends
//! share: the command drain with a budget, the housekeeping cadence, naming a socket. The
//! thread body (pinning, backend choice) is `worker_main` in `start.rs`.

use std::os::fd::AsRawFd;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use nix::sys::eventfd::EventFd;
use socket2::Socket;

use crate::counters::WorkerShared;
use crate::fixed::SockRef;
use crate::realm::SocketPlan;
use crate::relay::{Relay, COMMAND_BUDGET};
use crate::types::{Command, DataplaneError, WorkerId};

/// Housekeeping cadence: each run takes the next slice of the pair table (inactivity
/// checks, SRTP-failure alarms), so every pair is visited once per
/// `HOUSEKEEPING × SWEEP_SLICES` = 1 s.
pub(crate) const HOUSEKEEPING: Duration = Duration::from_millis(10);

/// Everything a worker thread owns.
pub(crate) struct WorkerCtx {
    pub(crate) id: WorkerId,
    pub(crate) relay: Relay,
    /// Local address and port of every socket of the slice, realm by realm.
    pub(crate) plan: Arc<SocketPlan>,
    /// Sockets `0..fixed` live only in the io_uring ring's registered-file table, slot =
    /// socket index (see [`crate::fixed`]); always 0 for the mmsg backend.
    pub(crate) fixed: u32,
    /// Ordinary descriptors of sockets `fixed..`, at index `socket - fixed`.
    pub(crate) sockets: Vec<Socket>,
    pub(crate) cmds: Arc<ArrayQueue<Command>>,
    pub(crate) doorbell: Arc<EventFd>,
    pub(crate) shared: Arc<WorkerShared>,
    pub(crate) start: Instant,
    pub(crate) next_housekeeping_us: u64,
    pub(crate) stop: bool,
    /// The XDP program the AF_XDP backend takes packets from (`None` for the others).
    pub(crate) af_xdp: Option<crate::types::FastPathConfig>,
    /// Provided buffers for the io_uring backend.
    pub(crate) uring_buffers: u16,
    /// Start-up report to `Dataplane::start`: `Ok` once the backend is set up, or the
    /// set-up error. Taken on first use.
    pub(crate) ready: Option<SyncSender<Result<(), DataplaneError>>>,
}

impl WorkerCtx {
    /// Microseconds since the worker started (one clock read per loop iteration).
    #[inline]
    pub(crate) fn now_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Apply up to [`COMMAND_BUDGET`] commands. Sets `stop` on [`Command::Shutdown`].
    pub(crate) fn drain_commands(&mut self, now_us: u64) {
        for _ in 0..COMMAND_BUDGET {
            let Some(cmd) = self.cmds.pop() else {
                break;
            };
            match cmd {
                Command::Shutdown => self.stop = true,
                Command::Quiesce { micros } => {
                    std::thread::sleep(Duration::from_micros(u64::from(micros.min(1_000_000))));
                }
                _ => {}
            }
            self.relay.apply(&cmd, now_us);
        }
    }

    /// Run housekeeping when due; returns microseconds until the next run.
    pub(crate) fn tick(&mut self, now_us: u64) -> u64 {
        if now_us >= self.next_housekeeping_us {
            self.relay.housekeeping(now_us);
            let step = u64::try_from(HOUSEKEEPING.as_micros()).unwrap_or(10_000);
            self.next_housekeeping_us = now_us + step;
        }
        self.next_housekeeping_us.saturating_sub(now_us)
    }

    /// Report a successful backend set-up (once).
    pub(crate) fn signal_ready(&mut self) {
        if let Some(tx) = self.ready.take() {
            let _ = tx.send(Ok(()));
        }
    }

    /// Descriptor of socket `sock`; `None` for a registered (fixed) socket or out of range.
    pub(crate) fn raw_fd(&self, sock: u32) -> Option<i32> {
        let i = sock.checked_sub(self.fixed)?;
        self.sockets.get(i as usize).map(AsRawFd::as_raw_fd)
    }

    /// How an io_uring submission names socket `sock`.
    pub(crate) fn sock_ref(&self, sock: u32) -> Option<SockRef> {
        if sock < self.fixed {
            Some(SockRef::Fixed(sock))
        } else {
            self.raw_fd(sock).map(SockRef::Fd)
        }
    }
}

//! The readiness side the epoll-driven backends share (mmsg, AF_XDP): one epoll set over
//! the worker's ordinary sockets and its doorbell, and the turn every loop iteration
//! starts with (commands, housekeeping, a wait bounded by the next housekeeping run).

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::EventFd;

use crate::types::DataplaneError;
use crate::worker::WorkerCtx;

/// Ready descriptors handled per `epoll_wait`.
const EVENTS: usize = 256;
/// epoll token of the doorbell; an ordinary socket's token is its index.
const DOORBELL: u64 = u64::MAX;

/// An epoll set, room for one wait's events, and the doorbell it reads.
pub(crate) struct Readiness {
    epoll: Epoll,
    events: Vec<EpollEvent>,
    doorbell: Arc<EventFd>,
}

impl Readiness {
    /// Every ordinary socket of `ctx` (token = socket index) and its doorbell,
    /// level-triggered for input.
    pub(crate) fn new(ctx: &WorkerCtx) -> Result<Readiness, DataplaneError> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
            .map_err(|e| DataplaneError::io("epoll_create", e.into()))?;
        for (i, s) in ctx.sockets.iter().enumerate() {
            epoll
                .add(s.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, i as u64))
                .map_err(|e| DataplaneError::io("epoll_ctl", e.into()))?;
        }
        epoll
            .add(
                ctx.doorbell.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, DOORBELL),
            )
            .map_err(|e| DataplaneError::io("epoll_ctl doorbell", e.into()))?;
        Ok(Readiness {
            epoll,
            events: vec![EpollEvent::empty(); EVENTS],
            doorbell: ctx.doorbell.clone(),
        })
    }

    /// Adds `fd` for input under `token`; `what` names the call in the error.
    pub(crate) fn add(
        &self,
        fd: BorrowedFd<'_>,
        token: u64,
        what: &'static str,
    ) -> Result<(), DataplaneError> {
        self.epoll
            .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))
            .map_err(|e| DataplaneError::io(what, e.into()))
    }

    /// One turn of the loop: applies queued commands, runs housekeeping when due, waits
    /// for readiness until the next housekeeping run (an interrupted wait is a wait with
    /// nothing ready) and counts the turn. Returns the tokens of the ready descriptors, in
    /// the order the wait gave them, the doorbell's read (it only wakes the loop) and left
    /// out; and the clock after the wait.
    pub(crate) fn turn(
        &mut self,
        ctx: &mut WorkerCtx,
    ) -> Result<(impl Iterator<Item = u64> + '_, u64), DataplaneError> {
        let now = ctx.now_us();
        ctx.drain_commands(now);
        let wait_us = ctx.tick(now);
        let timeout_ms = u16::try_from(wait_us.div_ceil(1000)).unwrap_or(u16::MAX);
        let ready = match self.epoll.wait(&mut self.events, timeout_ms) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => return Err(DataplaneError::io("epoll_wait", e.into())),
        };
        ctx.shared.worker.loops.add(1);
        let doorbell = &self.doorbell;
        let tokens = self.events.iter().take(ready).filter_map(move |ev| {
            let token = ev.data();
            if token == DOORBELL {
                let _ = doorbell.read();
                return None;
            }
            Some(token)
        });
        Ok((tokens, ctx.now_us()))
    }
}

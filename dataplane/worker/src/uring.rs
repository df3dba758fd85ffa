//! io_uring backend: multishot `recvmsg` on every socket of the slice, fed by one
//! registered provided-buffer ring; the relay decision runs in place on the received
//! buffer and that same buffer is sent with `sendmsg`, returning to the ring when the send
//! completes. The sockets are registered files of the ring where the descriptor limit
//! allows ([`bind_slice`]): no `fdget`/`fdput` per operation and no descriptor per port.
//! One `io_uring_enter` per loop iteration (`submit_and_wait`), an eventfd read as
//! doorbell and a timeout SQE for housekeeping. The plumbing (buffers, arming, sends,
//! quiesce, and the buffer life cycle they keep) is in [`crate::ring`].

use std::os::fd::AsRawFd;

use io_uring::{cqueue, types, IoUring};
use socket2::Socket;

use crate::companion::{Companions, REARM_BIT};
use crate::fixed::{table_size, SockRef, INSTALL_BATCH};
use crate::relay::{Verdict, BUF_SIZE};
use crate::ring::{
    arm_bell, arm_recv_ref, arm_timer, build_ring, parse_name, push, quiesce, send_connected,
    send_to, ud, ud_bid, ud_kind, ud_sock, UringState, BGID, K_BELL, K_RECV, K_RECV_C, K_SEND,
    K_TIMER, PAYLOAD_OFF, PROVIDED_LEN,
};
use crate::sock;
use crate::types::DataplaneError;
use crate::worker::WorkerCtx;

/// The io_uring worker loop.
pub(crate) fn run(ctx: &mut WorkerCtx) -> Result<(), DataplaneError> {
    let nbuf = ctx.uring_buffers;
    let mut st = UringState::new(nbuf)?;
    let mut ring = build_ring(1024, nbuf)?;
    // SAFETY: the ring memory is page aligned, holds `nbuf` entries and lives in `st`, which
    // outlives `ring` (quiesced and dropped before `st` at the end of this function).
    unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(st.ring_mem.base as u64, nbuf, BGID, 0)
            .map_err(|e| DataplaneError::io("register buffer ring", e))?;
    }
    let companion_slots = match bind_slice(&ring, ctx) {
        Ok(n) => n,
        Err(e) => {
            // Nothing in flight yet: release the sockets already installed now, not when
            // the ring's teardown gets to it.
            let _ = ring.submitter().unregister_files();
            return Err(e);
        }
    };
    let n_socks = ctx.relay.sockets();
    let split = ctx
        .plan
        .first_ip()
        .is_some_and(crate::companion::newest_connected_wins);
    if split {
        tracing::info!(
            worker = ctx.id.0,
            "companions: a send-only and a receive socket each"
        );
    } else {
        tracing::info!(
            worker = ctx.id.0,
            "companions: one socket each (this kernel does not deliver to the newest connected socket)"
        );
    }
    let mut comps = Companions::new(ctx.fixed, companion_slots, n_socks, split);
    ctx.relay.track_removals();
    let mut rearm: Vec<u32> = Vec::with_capacity((n_socks + companion_slots) as usize);
    for s in 0..n_socks {
        if let Some(target) = ctx.sock_ref(s) {
            if !arm_recv_ref(&mut ring, &mut st, s, target) {
                rearm.push(s);
            }
        }
    }
    let bell_fd = ctx.doorbell.as_raw_fd();
    arm_bell(&mut ring, &mut st, bell_fd);
    arm_timer(&mut ring, &mut st);
    ctx.signal_ready();
    let result = event_loop(ctx, &mut ring, &mut st, &mut rearm, &mut comps);
    quiesce(&mut ring, &mut st, n_socks, comps.armed());
    if st.inflight > 0 {
        // The kernel may still own buffers: never free memory it could write to.
        ctx.shared.worker.teardown_leaks.add(1);
        tracing::error!(
            worker = ctx.id.0,
            "io_uring did not quiesce; leaking its buffers"
        );
        drop(ring);
        Box::leak(Box::new(st));
        return result;
    }
    let _ = ring.submitter().unregister_buf_ring(BGID);
    // Close the registered sockets now (their ports free at once for a restart), not
    // whenever the ring's asynchronous teardown runs.
    if ctx.fixed > 0 || companion_slots > 0 {
        let _ = ring.submitter().unregister_files();
    }
    drop(ring);
    drop(st);
    result
}

fn event_loop(
    ctx: &mut WorkerCtx,
    ring: &mut IoUring,
    st: &mut UringState,
    rearm: &mut Vec<u32>,
    comps: &mut Companions,
) -> Result<(), DataplaneError> {
    let mut spare_list: Vec<u32> = Vec::with_capacity(rearm.capacity());
    let spare = &mut spare_list;
    let bell_fd = ctx.doorbell.as_raw_fd();
    while !ctx.stop {
        let now = ctx.now_us();
        ctx.drain_commands(now);
        if ctx.stop {
            break;
        }
        for i in 0..ctx.relay.removed.len() {
            if let Some(&leg) = ctx.relay.removed.get(i) {
                comps.close_leg(ctx, ring, leg);
            }
        }
        ctx.relay.removed.clear();
        ctx.tick(now);
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => return Err(DataplaneError::io("io_uring_enter", e)),
        }
        ctx.shared.worker.loops.add(1);
        let now = ctx.now_us();
        // Budget: what is in the CQ now (bounded by its size), not an unbounded drain.
        let ready = ring.completion().len();
        for _ in 0..ready {
            let Some(cqe) = ring.completion().next() else {
                break;
            };
            handle_cqe(ctx, ring, st, rearm, comps, &cqe, now, bell_fd);
        }
        st.flush_recycled();
        // Re-arm terminated multishots after buffers went back to the ring. Both lists
        // were sized for every socket and companion at start, so this never allocates.
        std::mem::swap(rearm, spare);
        for s in spare.drain(..) {
            if s & REARM_BIT != 0 {
                if !comps.rearm(ring, st, s & !REARM_BIT, &ctx.shared.worker.rearms) {
                    rearm.push(s);
                }
                continue;
            }
            match ctx.sock_ref(s) {
                Some(target) if arm_recv_ref(ring, st, s, target) => {
                    ctx.shared.worker.rearms.add(1);
                }
                Some(_) => rearm.push(s),
                None => {}
            }
        }
        comps.service(ctx, ring, st);
    }
    Ok(())
}

#[inline]
#[allow(clippy::too_many_arguments)]
fn handle_cqe(
    ctx: &mut WorkerCtx,
    ring: &mut IoUring,
    st: &mut UringState,
    rearm: &mut Vec<u32>,
    comps: &mut Companions,
    cqe: &cqueue::Entry,
    now: u64,
    bell_fd: i32,
) {
    let u = cqe.user_data();
    let res = cqe.result();
    let flags = cqe.flags();
    match ud_kind(u) {
        kind @ (K_RECV | K_RECV_C) => {
            let more = cqueue::more(flags);
            if !more {
                st.inflight = st.inflight.saturating_sub(1);
            }
            // The socket index the datagram belongs to: a companion's is its leg's port.
            let sock = if kind == K_RECV {
                let sock = ud_sock(u);
                if !more && !ctx.stop {
                    rearm.push(sock);
                }
                Some(sock)
            } else {
                comps.on_completion(ring, ud_sock(u), ud_bid(u), more, ctx.stop, rearm)
            };
            if res < 0 {
                if res == -libc::ENOBUFS {
                    // Not a loss: the datagram stays queued on the socket until re-armed.
                    ctx.shared.worker.enobufs.add(1);
                }
                return;
            }
            let Some(bid) = cqueue::buffer_select(flags) else {
                return;
            };
            match sock {
                Some(sock) => on_recv(ctx, ring, st, comps, sock, bid, now),
                None => st.recycle(bid),
            }
        }
        K_SEND => {
            st.inflight = st.inflight.saturating_sub(1);
            if res < 0 {
                ctx.relay.on_send_error(ud_sock(u));
            }
            st.recycle(ud_bid(u));
        }
        K_BELL => {
            st.inflight = st.inflight.saturating_sub(1);
            if !ctx.stop {
                arm_bell(ring, st, bell_fd);
            }
        }
        K_TIMER => {
            st.inflight = st.inflight.saturating_sub(1);
            if !ctx.stop {
                arm_timer(ring, st);
            }
        }
        _ => {}
    }
}

#[inline]
fn on_recv(
    ctx: &mut WorkerCtx,
    ring: &mut IoUring,
    st: &mut UringState,
    comps: &mut Companions,
    sock: u32,
    bid: u16,
    now: u64,
) {
    let off = usize::from(bid) * BUF_SIZE;
    let Some(buf) = st.bufs.get_mut(off..off + BUF_SIZE) else {
        return;
    };
    let parsed = {
        let Some(view) = buf.get(..PROVIDED_LEN) else {
            return;
        };
        types::RecvMsgOut::parse(view, &st.recv_hdr)
            .ok()
            .filter(|m| !m.is_payload_truncated() && !m.is_name_data_truncated())
            .and_then(|m| Some((parse_name(m.name_data())?, m.payload_data().len())))
    };
    let Some((from, len)) = parsed else {
        ctx.relay.on_malformed(sock);
        st.recycle(bid);
        return;
    };
    let Some(pkt) = buf.get_mut(PAYLOAD_OFF..) else {
        st.recycle(bid);
        return;
    };
    match ctx.relay.on_packet(sock, from, pkt, len, now) {
        Verdict::Drop => st.recycle(bid),
        Verdict::Send {
            sock: out,
            to,
            len,
            forward,
        } => {
            // A forward to the leg's peer leaves from the companion connected to it when
            // there is one (no route lookup), or asks for one.
            let connected = if forward {
                let slot = comps.route(out, to);
                if slot.is_none() {
                    comps.want(out, to);
                }
                slot
            } else {
                None
            };
            let target = match connected {
                Some(slot) => SockRef::Fixed(slot),
                None => match ctx.sock_ref(out) {
                    Some(t) => t,
                    None => {
                        ctx.relay.on_send_error(out);
                        st.recycle(bid);
                        return;
                    }
                },
            };
            let data = pkt.as_mut_ptr();
            let e = if connected.is_some() {
                // Connected: a plain `send` of the buffer, no message header for the
                // kernel to copy in and no per-buffer send slot to touch.
                send_connected(target, data, len)
            } else {
                let Some(slot) = st.sends.get_mut(usize::from(bid)) else {
                    st.recycle(bid);
                    return;
                };
                send_to(target, slot, data, len, to)
            }
            .user_data(ud(K_SEND, out, bid));
            if push(ring, &e) {
                st.inflight += 1;
            } else {
                ctx.relay.on_ring_full(out);
                st.recycle(bid);
            }
        }
    }
}

/// Bind the worker's whole slice: sockets `0..table` into `ring`'s registered-file table,
/// the rest as ordinary descriptors in `ctx.sockets`. Sets `ctx.fixed`. The table gets
/// room after the slice's sockets, where the limit allows, for one connected companion
/// (two sockets) per RTP port plus some slack ([`crate::companion`]); returns that number
/// of slots.
///
/// On error the table may hold some sockets; the caller unregisters it.
pub(crate) fn bind_slice(ring: &IoUring, ctx: &mut WorkerCtx) -> Result<u32, DataplaneError> {
    let n = ctx.relay.sockets();
    let limit = sock::nofile_limit();
    let table = table_size(n, limit);
    let companions = if table == n {
        table_size(n + Companions::slots_for(n), limit) - n
    } else {
        0
    };
    if table + companions > 0 {
        ring.submitter()
            .register_files_sparse(table + companions)
            .map_err(|e| DataplaneError::io("register fixed-file table", e))?;
    }
    let mut held: Vec<Socket> = Vec::with_capacity(INSTALL_BATCH);
    let mut fds = [-1; INSTALL_BATCH];
    let mut next = 0u32;
    while next < table {
        let end = next.saturating_add(INSTALL_BATCH as u32).min(table);
        held.clear();
        for s in next..end {
            held.push(ctx.plan.bind(s)?);
        }
        for (fd, s) in fds.iter_mut().zip(&held) {
            *fd = s.as_raw_fd();
        }
        let want = held.len();
        let done = ring
            .submitter()
            .register_files_update(next, fds.get(..want).unwrap_or(&[]))
            .map_err(|e| DataplaneError::io("install fixed file", e))?;
        if done != want {
            return Err(DataplaneError::io(
                "install fixed file",
                std::io::Error::other(format!("kernel installed {done} of {want}")),
            ));
        }
        // The table holds its own references: closing the descriptors keeps the sockets.
        held.clear();
        next = end;
    }
    ctx.fixed = table;
    ctx.sockets.clear();
    ctx.sockets.reserve_exact((n - table) as usize);
    for s in table..n {
        let sock = ctx.plan.bind(s)?;
        ctx.sockets.push(sock);
    }
    Ok(companions)
}

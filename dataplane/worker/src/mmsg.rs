//! epoll + `recvmmsg`/`sendmmsg` backend.
//!
//! Level-triggered epoll over every socket of the slice plus the doorbell eventfd. Each
//! iteration reads at most one batch per ready socket (so a flooded port cannot starve the
//! others), runs [`Relay::on_packet`](crate::relay::Relay::on_packet) in place on each
//! buffer, and sends the accepted packets with `sendmmsg`, grouping runs that leave through
//! the same socket.

use crate::epoll::Readiness;
use crate::relay::{Verdict, BUF_SIZE, MAX_DATAGRAM};
use crate::sock::{from_storage, to_storage, zero_storage};
use crate::types::DataplaneError;
use crate::worker::WorkerCtx;

/// Datagrams per `recvmmsg`/`sendmmsg` call.
pub const BATCH: usize = 32;

impl Default for Batch {
    fn default() -> Self {
        Batch::new()
    }
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").finish_non_exhaustive()
    }
}

/// Preallocated batch state (the kernel sees pointers into it, re-derived every call so
/// the struct may move between calls).
pub struct Batch {
    bufs: Box<[[u8; BUF_SIZE]]>,
    addrs: Box<[libc::sockaddr_storage]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    out_addrs: Box<[libc::sockaddr_storage]>,
    out_iovs: Box<[libc::iovec]>,
    out_hdrs: Box<[libc::mmsghdr]>,
    out_sock: Box<[u32]>,
    out_n: usize,
}

fn zero_mmsghdr() -> libc::mmsghdr {
    // SAFETY: mmsghdr is plain old data (pointers may be null, lengths zero).
    unsafe { std::mem::zeroed() }
}

fn zero_iovec() -> libc::iovec {
    libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }
}

impl Batch {
    pub fn new() -> Batch {
        Batch {
            bufs: vec![[0u8; BUF_SIZE]; BATCH].into_boxed_slice(),
            addrs: (0..BATCH).map(|_| zero_storage()).collect(),
            iovs: (0..BATCH).map(|_| zero_iovec()).collect(),
            hdrs: (0..BATCH).map(|_| zero_mmsghdr()).collect(),
            out_addrs: (0..BATCH).map(|_| zero_storage()).collect(),
            out_iovs: (0..BATCH).map(|_| zero_iovec()).collect(),
            out_hdrs: (0..BATCH).map(|_| zero_mmsghdr()).collect(),
            out_sock: vec![0; BATCH].into_boxed_slice(),
            out_n: 0,
        }
    }

    /// `recvmmsg` up to [`BATCH`] datagrams from `fd` without blocking. Returns the count.
    /// Buffer `i`, for a generator to fill before [`queue`](Self::queue).
    pub fn buf_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        self.bufs.get_mut(i).map(|b| &mut b[..MAX_DATAGRAM])
    }

    /// Length and source-address validity of received datagram `i`.
    pub fn received_len(&self, i: usize) -> usize {
        self.hdrs.get(i).map_or(0, |h| h.msg_len as usize)
    }

    pub fn recv(&mut self, fd: i32, flags: i32) -> usize {
        for i in 0..BATCH {
            let (Some(buf), Some(iov), Some(addr), Some(h)) = (
                self.bufs.get_mut(i),
                self.iovs.get_mut(i),
                self.addrs.get_mut(i),
                self.hdrs.get_mut(i),
            ) else {
                return 0;
            };
            iov.iov_base = buf.as_mut_ptr().cast();
            // Only MAX_DATAGRAM bytes are offered: the rest is SRTP tailroom.
            iov.iov_len = MAX_DATAGRAM;
            h.msg_hdr.msg_name = (addr as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = std::ptr::null_mut();
            h.msg_hdr.msg_controllen = 0;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        // SAFETY: every header points at a buffer, iovec and address owned by `self`, all
        // live and exclusively borrowed for the duration of this synchronous call; the
        // count passed equals the array length.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                BATCH as u32,
                flags,
                std::ptr::null_mut(),
            )
        };
        usize::try_from(n).unwrap_or(0)
    }

    /// Queue buffer `i` (already transformed in place) for sending.
    pub fn queue(&mut self, i: usize, sock: u32, to: std::net::SocketAddr, len: usize) {
        let o = self.out_n;
        let (Some(buf), Some(iov), Some(addr), Some(h), Some(s)) = (
            self.bufs.get_mut(i),
            self.out_iovs.get_mut(o),
            self.out_addrs.get_mut(o),
            self.out_hdrs.get_mut(o),
            self.out_sock.get_mut(o),
        ) else {
            return;
        };
        iov.iov_base = buf.as_mut_ptr().cast();
        iov.iov_len = len.min(BUF_SIZE);
        h.msg_hdr.msg_namelen = to_storage(to, addr);
        h.msg_hdr.msg_name = (addr as *mut libc::sockaddr_storage).cast();
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
        h.msg_hdr.msg_control = std::ptr::null_mut();
        h.msg_hdr.msg_controllen = 0;
        h.msg_hdr.msg_flags = 0;
        *s = sock;
        self.out_n += 1;
    }

    /// Send every queued packet, one `sendmmsg` per run of packets leaving through the
    /// same socket. Returns the sockets of packets that failed, via `on_fail`.
    pub fn flush(&mut self, fd_of: impl Fn(u32) -> Option<i32>, mut on_fail: impl FnMut(u32)) {
        let n = self.out_n;
        self.out_n = 0;
        let mut start = 0;
        while start < n {
            let sock = self.out_sock.get(start).copied().unwrap_or(u32::MAX);
            let mut end = start + 1;
            while end < n && self.out_sock.get(end) == Some(&sock) {
                end += 1;
            }
            let Some(fd) = fd_of(sock) else {
                (start..end).for_each(|_| on_fail(sock));
                start = end;
                continue;
            };
            let mut sent = start;
            // Retry a partial send once per remaining packet at most (bounded).
            let mut attempts = end - start;
            while sent < end && attempts > 0 {
                attempts -= 1;
                let Some(hdrs) = self.out_hdrs.get_mut(sent..end) else {
                    break;
                };
                // SAFETY: the headers point at buffers/iovecs/addresses owned by `self`,
                // initialised by `queue` and not touched until this synchronous call returns.
                let r = unsafe {
                    libc::sendmmsg(fd, hdrs.as_mut_ptr(), hdrs.len() as u32, libc::MSG_DONTWAIT)
                };
                if r <= 0 {
                    // Skip the packet that failed (EAGAIN, EPERM…) and go on.
                    on_fail(sock);
                    sent += 1;
                } else {
                    sent += usize::try_from(r).unwrap_or(1);
                }
            }
            (sent..end).for_each(|_| on_fail(sock));
            start = end;
        }
    }
}

/// Relay every datagram of one `recvmmsg` batch received on `sock` and send the results.
fn relay_batch(ctx: &mut WorkerCtx, batch: &mut Batch, sock: u32, n: usize, now: u64) {
    for i in 0..n {
        let (Some(h), Some(addr), Some(buf)) =
            (batch.hdrs.get(i), batch.addrs.get(i), batch.bufs.get_mut(i))
        else {
            break;
        };
        let len = h.msg_len as usize;
        let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        let from = from_storage(addr, h.msg_hdr.msg_namelen as usize);
        let verdict = match from {
            Some(from) if !truncated => ctx.relay.on_packet(sock, from, buf, len, now),
            _ => {
                ctx.relay.on_malformed(sock);
                Verdict::Drop
            }
        };
        if let Verdict::Send { sock, to, len, .. } = verdict {
            batch.queue(i, sock, to, len);
        }
    }
    let relay = &ctx.relay;
    batch.flush(|s| ctx.raw_fd(s), |s| relay.on_send_error(s));
}

/// Read one batch from the ordinary socket epoll names `token` and relay it.
pub(crate) fn relay_ready(ctx: &mut WorkerCtx, batch: &mut Batch, token: u64, now: u64) {
    let sock = u32::try_from(token).unwrap_or(u32::MAX);
    let Some(fd) = ctx.raw_fd(sock) else {
        return;
    };
    let n = batch.recv(fd, libc::MSG_DONTWAIT);
    relay_batch(ctx, batch, sock, n, now);
}

/// The mmsg worker loop.
pub(crate) fn run(ctx: &mut WorkerCtx) -> Result<(), DataplaneError> {
    let mut readiness = Readiness::new(ctx)?;
    let mut batch = Batch::new();
    ctx.signal_ready();
    while !ctx.stop {
        let (tokens, now) = readiness.turn(ctx)?;
        for token in tokens {
            relay_ready(ctx, &mut batch, token, now);
        }
    }
    Ok(())
}

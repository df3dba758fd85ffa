//! io_uring plumbing shared by the relay's io_uring backend ([`crate::uring`]), its
//! connected companions ([`crate::companion`]) and the raw baseline forwarder in
//! `portcullis-benches` (through [`crate::raw`]): the ring and its set-up, the
//! provided-buffer ring and the per-buffer send slots ([`UringState`]), user-data packing, arming receives, the doorbell
//! and the timer, building sends, and the quiesce before teardown.
//!
//! Buffer life cycle (the invariant every `unsafe` below relies on): a buffer id is either
//! (a) in the provided ring, owned by the kernel, (b) delivered in a receive completion and
//! owned by the loop until it either recycles it or (c) hands it to exactly one `sendmsg`,
//! after whose completion it is recycled. Buffer memory, the buffer ring, the per-buffer send
//! headers, the doorbell word and the timespec live in [`UringState`], which outlives the
//! ring's in-flight operations (see [`quiesce`]).

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::fixed::SockRef;
use crate::relay::{BUF_SIZE, MAX_DATAGRAM};
use crate::sock::{to_storage, zero_storage};
use crate::types::DataplaneError;
use crate::worker::HOUSEKEEPING;

/// Default provided buffers per worker (power of two, ≤ 32768).
pub const NBUF: u16 = 4096;
pub const BGID: u16 = 0;
/// Size of `struct io_uring_recvmsg_out` that precedes the name in each buffer.
pub const RECVMSG_OUT: usize = 16;
/// Room reserved for the source address in each buffer (`sockaddr_in6` fits v4 and v6).
pub const NAMELEN: usize = std::mem::size_of::<libc::sockaddr_in6>();
/// Where the datagram starts inside a provided buffer.
pub const PAYLOAD_OFF: usize = RECVMSG_OUT + NAMELEN;
/// Length offered to the kernel per buffer: header + name + one datagram. The rest of the
/// buffer stays as SRTP tailroom.
pub const PROVIDED_LEN: usize = PAYLOAD_OFF + MAX_DATAGRAM;

pub const K_RECV: u64 = 1;
pub const K_SEND: u64 = 2;
pub const K_BELL: u64 = 3;
pub const K_TIMER: u64 = 4;
pub const K_CANCEL: u64 = 5;
/// User-data kind of a companion's multishot receive (the socket field is the companion).
pub const K_RECV_C: u64 = 6;

pub fn ud(kind: u64, sock: u32, bid: u16) -> u64 {
    (kind << 56) | (u64::from(sock) << 16) | u64::from(bid)
}

pub fn ud_kind(u: u64) -> u64 {
    u >> 56
}

pub fn ud_sock(u: u64) -> u32 {
    ((u >> 16) & 0xffff_ffff) as u32
}

pub fn ud_bid(u: u64) -> u16 {
    (u & 0xffff) as u16
}

/// Check that io_uring is usable: kernel ≥ 6.0 (multishot recvmsg), ring creation allowed,
/// the opcodes we submit supported, and a provided-buffer ring can be registered.
pub fn probe() -> Result<(), DataplaneError> {
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_err(|e| DataplaneError::IoUringUnavailable(format!("kernel release: {e}")))?;
    let (major, _) = kernel_version(&rel);
    if major < 6 {
        return Err(DataplaneError::IoUringUnavailable(format!(
            "kernel {rel} lacks multishot recvmsg (needs 6.0)"
        )));
    }
    let ring = IoUring::new(8)
        .map_err(|e| DataplaneError::IoUringUnavailable(format!("io_uring_setup: {e}")))?;
    let mut p = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut p)
        .map_err(|e| DataplaneError::IoUringUnavailable(format!("probe: {e}")))?;
    for (code, name) in [
        (opcode::RecvMsgMulti::CODE, "recvmsg"),
        (opcode::SendMsg::CODE, "sendmsg"),
        (opcode::Send::CODE, "send"),
        (opcode::Read::CODE, "read"),
        (opcode::Timeout::CODE, "timeout"),
        (opcode::AsyncCancel2::CODE, "async_cancel"),
    ] {
        if !p.is_supported(code) {
            return Err(DataplaneError::IoUringUnavailable(format!(
                "opcode {name} not supported"
            )));
        }
    }
    let br = BufRing::new(8)?;
    // SAFETY: `br` is a page-aligned ring of 8 entries that outlives the registration,
    // which is removed just below before `br` is dropped.
    unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(br.base as u64, 8, 7, 0)
            .map_err(|e| DataplaneError::IoUringUnavailable(format!("buffer ring: {e}")))?;
    }
    let _ = ring.submitter().unregister_buf_ring(7);
    ring.submitter()
        .register_files_sparse(1)
        .map_err(|e| DataplaneError::IoUringUnavailable(format!("registered files: {e}")))?;
    Ok(())
}

/// Major and minor of a kernel release string (`/proc/sys/kernel/osrelease`); 0 where a
/// part is missing.
pub fn kernel_version(release: &str) -> (u32, u32) {
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

impl std::fmt::Debug for BufRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufRing").finish_non_exhaustive()
    }
}

/// Page-aligned memory of a provided-buffer ring.
pub struct BufRing {
    pub base: *mut types::BufRingEntry,
    entries: u16,
    layout: Layout,
}

impl BufRing {
    fn new(entries: u16) -> Result<BufRing, DataplaneError> {
        let size = usize::from(entries) * std::mem::size_of::<types::BufRingEntry>();
        let layout = Layout::from_size_align(size, 4096)
            .map_err(|_| DataplaneError::Config("buffer ring layout"))?;
        // SAFETY: the layout has non-zero size (entries ≥ 1).
        let base = unsafe { alloc_zeroed(layout) }.cast::<types::BufRingEntry>();
        if base.is_null() {
            return Err(DataplaneError::Config("buffer ring allocation failed"));
        }
        Ok(BufRing {
            base,
            entries,
            layout,
        })
    }

    fn tail(&self) -> &AtomicU16 {
        // SAFETY: `base` is the first entry of an initialised (zeroed) ring; the tail field
        // overlays the `resv` field of entry 0 and is a naturally aligned u16 that the
        // kernel only reads, so viewing it as an AtomicU16 is sound.
        unsafe { &*types::BufRingEntry::tail(self.base).cast::<AtomicU16>() }
    }

    /// Write entry `(tail + offset) & mask` for buffer `bid` (not yet published).
    fn put(&self, offset: u16, bid: u16, addr: *mut u8, len: u32) {
        let mask = self.entries - 1;
        let idx = self.tail().load(Ordering::Relaxed).wrapping_add(offset) & mask;
        // SAFETY: idx < entries, so the entry is inside the allocation; entries between
        // the published tail and tail + offset are not read by the kernel until published.
        let e = unsafe { &mut *self.base.add(usize::from(idx)) };
        e.set_addr(addr as u64);
        e.set_len(len);
        e.set_bid(bid);
    }

    fn publish(&self, n: u16) {
        let t = self.tail();
        t.store(t.load(Ordering::Relaxed).wrapping_add(n), Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this exact layout, freed once.
        unsafe { dealloc(self.base.cast(), self.layout) };
    }
}

impl std::fmt::Debug for SendSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendSlot").finish_non_exhaustive()
    }
}

/// Per-buffer `sendmsg` arguments: stable addresses until the send completes.
pub struct SendSlot {
    pub hdr: libc::msghdr,
    pub iov: libc::iovec,
    pub addr: libc::sockaddr_storage,
}

impl std::fmt::Debug for UringState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringState").finish_non_exhaustive()
    }
}

/// Memory the kernel may touch while operations are in flight.
pub struct UringState {
    /// On huge pages (`huge.rs`): the ring hands these out in turn.
    pub bufs: memmap2::MmapMut,
    pub ring_mem: BufRing,
    pub sends: Box<[SendSlot]>,
    pub recv_hdr: Box<libc::msghdr>,
    bell: Box<u64>,
    ts: Box<types::Timespec>,
    /// Buffers recycled this iteration, published at once.
    pending: u16,
    /// Operations submitted and not yet completed for good (for quiesce).
    pub inflight: usize,
}

impl UringState {
    /// `nbuf` must be a power of two (checked by the caller's config validation).
    pub fn new(nbuf: u16) -> Result<UringState, DataplaneError> {
        let ring_mem = BufRing::new(nbuf)?;
        // SAFETY: msghdr is plain old data; zero is a valid empty header.
        let mut recv_hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        recv_hdr.msg_namelen = NAMELEN as u32;
        recv_hdr.msg_controllen = 0;
        let step = u64::try_from(HOUSEKEEPING.as_nanos()).unwrap_or(10_000_000);
        let ts = Box::new(
            types::Timespec::new()
                .sec(step / 1_000_000_000)
                .nsec((step % 1_000_000_000) as u32),
        );
        let mut st = UringState {
            bufs: crate::huge::zeroed(usize::from(nbuf) * BUF_SIZE)?,
            ring_mem,
            sends: (0..nbuf)
                .map(|_| SendSlot {
                    // SAFETY: as above.
                    hdr: unsafe { std::mem::zeroed() },
                    iov: libc::iovec {
                        iov_base: std::ptr::null_mut(),
                        iov_len: 0,
                    },
                    addr: zero_storage(),
                })
                .collect(),
            recv_hdr,
            bell: Box::new(0),
            ts,
            pending: 0,
            inflight: 0,
        };
        for bid in 0..nbuf {
            st.recycle(bid);
        }
        st.flush_recycled();
        Ok(st)
    }

    pub fn buf_ptr(&mut self, bid: u16) -> *mut u8 {
        let off = usize::from(bid) * BUF_SIZE;
        self.bufs
            .get_mut(off..)
            .map_or(std::ptr::null_mut(), <[u8]>::as_mut_ptr)
    }

    /// Give buffer `bid` back to the kernel (published by [`flush_recycled`]).
    pub fn recycle(&mut self, bid: u16) {
        let p = self.buf_ptr(bid);
        self.ring_mem.put(self.pending, bid, p, PROVIDED_LEN as u32);
        self.pending += 1;
    }

    pub fn flush_recycled(&mut self) {
        if self.pending > 0 {
            self.ring_mem.publish(self.pending);
            self.pending = 0;
        }
    }
}

/// Push an SQE, submitting first if the queue is full. `false` if it still does not fit.
pub fn push(ring: &mut IoUring, e: &squeue::Entry) -> bool {
    // SAFETY: every pointer inside the entries built in this module targets memory owned
    // by `UringState`, which outlives all in-flight operations (see the module docs).
    let first = unsafe { ring.submission().push(e) };
    if first.is_ok() {
        return true;
    }
    let _ = ring.submit();
    // SAFETY: as above.
    let second = unsafe { ring.submission().push(e) };
    second.is_ok()
}

pub fn arm_recv(ring: &mut IoUring, st: &mut UringState, sock: u32, fd: i32) -> bool {
    arm_recv_ref(ring, st, sock, SockRef::Fd(fd))
}

pub fn arm_recv_ref(ring: &mut IoUring, st: &mut UringState, sock: u32, target: SockRef) -> bool {
    arm_multishot(ring, st, target, ud(K_RECV, sock, 0))
}

/// Arm a multishot `recvmsg` on `target` from the provided-buffer ring, tagged
/// `user_data`; `false` when the submission queue has no room.
pub fn arm_multishot(
    ring: &mut IoUring,
    st: &mut UringState,
    target: SockRef,
    user_data: u64,
) -> bool {
    arm_multishot_flags(ring, st, target, user_data, 0)
}

/// A multishot `recvmsg` like [`arm_multishot`] that takes what `target` holds queued now
/// and then ends (`MSG_DONTWAIT`: the kernel completes it with `EAGAIN` instead of waiting,
/// so it leaves no waiter on the socket); `false` when the submission queue has no room.
pub fn arm_drain(ring: &mut IoUring, st: &mut UringState, target: SockRef, user_data: u64) -> bool {
    arm_multishot_flags(ring, st, target, user_data, libc::MSG_DONTWAIT as u32)
}

fn arm_multishot_flags(
    ring: &mut IoUring,
    st: &mut UringState,
    target: SockRef,
    user_data: u64,
    flags: u32,
) -> bool {
    let e = match target {
        SockRef::Fixed(slot) => opcode::RecvMsgMulti::new(types::Fixed(slot), &*st.recv_hdr, BGID),
        SockRef::Fd(fd) => opcode::RecvMsgMulti::new(types::Fd(fd), &*st.recv_hdr, BGID),
    }
    .flags(flags)
    .build()
    .user_data(user_data);
    let ok = push(ring, &e);
    if ok {
        st.inflight += 1;
    }
    ok
}

pub fn arm_bell(ring: &mut IoUring, st: &mut UringState, fd: i32) {
    let e = opcode::Read::new(types::Fd(fd), (&mut *st.bell as *mut u64).cast(), 8)
        .build()
        .user_data(ud(K_BELL, 0, 0));
    if push(ring, &e) {
        st.inflight += 1;
    }
}

pub fn arm_timer(ring: &mut IoUring, st: &mut UringState) {
    let e = opcode::Timeout::new(&*st.ts)
        .build()
        .user_data(ud(K_TIMER, 0, 0));
    if push(ring, &e) {
        st.inflight += 1;
    }
}

/// Decode the source address the kernel wrote into a buffer (`sockaddr_in`/`in6` bytes);
/// a v4-mapped IPv6 address comes back as IPv4, as in [`crate::sock::from_storage`].
pub fn parse_name(b: &[u8]) -> Option<std::net::SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    let fam = i32::from(u16::from_ne_bytes([*b.first()?, *b.get(1)?]));
    let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
    if fam == libc::AF_INET {
        let ip: [u8; 4] = b.get(4..8)?.try_into().ok()?;
        Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
    } else if fam == libc::AF_INET6 {
        let flow = u32::from_ne_bytes(b.get(4..8)?.try_into().ok()?);
        let ip: [u8; 16] = b.get(8..24)?.try_into().ok()?;
        let scope = u32::from_ne_bytes(b.get(24..28)?.try_into().ok()?);
        let ip = Ipv6Addr::from(ip);
        // An IPv4 peer of a dual-stack socket: handled as the IPv4 address it is.
        if let Some(v4) = ip.to_ipv4_mapped() {
            return Some(SocketAddr::V4(SocketAddrV4::new(v4, port)));
        }
        Some(SocketAddr::V6(SocketAddrV6::new(ip, port, flow, scope)))
    } else {
        None
    }
}

pub fn build_ring(entries: u32, nbuf: u16) -> Result<IoUring, DataplaneError> {
    let cq = (u32::from(nbuf) * 4).max(4096);
    let fast = IoUring::builder()
        .setup_cqsize(cq)
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(entries);
    match fast {
        Ok(r) => Ok(r),
        Err(_) => IoUring::builder()
            .setup_cqsize(cq)
            .build(entries)
            .map_err(|e| DataplaneError::io("io_uring_setup", e)),
    }
}

/// A `sendmsg` of `len` bytes at `data` to `to`, its header and address written into
/// `slot`, the send slot of the buffer holding `data` (both stay put until the
/// completion: the buffer is recycled only then).
pub fn send_to(
    target: SockRef,
    slot: &mut SendSlot,
    data: *mut u8,
    len: usize,
    to: std::net::SocketAddr,
) -> squeue::Entry {
    slot.iov.iov_base = data.cast();
    slot.iov.iov_len = len;
    slot.hdr.msg_namelen = to_storage(to, &mut slot.addr);
    slot.hdr.msg_name = (&mut slot.addr as *mut libc::sockaddr_storage).cast();
    slot.hdr.msg_iov = &mut slot.iov;
    slot.hdr.msg_iovlen = 1;
    match target {
        SockRef::Fixed(i) => opcode::SendMsg::new(types::Fixed(i), &slot.hdr),
        SockRef::Fd(fd) => opcode::SendMsg::new(types::Fd(fd), &slot.hdr),
    }
    .build()
}

/// A `send` of `len` bytes at `data` on a connected socket. The buffer must stay put
/// until the completion (it is a provided buffer, recycled only then).
pub fn send_connected(target: SockRef, data: *const u8, len: usize) -> squeue::Entry {
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    match target {
        SockRef::Fixed(i) => opcode::Send::new(types::Fixed(i), data, len).build(),
        SockRef::Fd(fd) => opcode::Send::new(types::Fd(fd), data, len).build(),
    }
}

/// Cancel the multishot receive of every socket `0..sockets`, the doorbell read and the
/// timer (a cancel for one that is not armed finds nothing), each by its own user data,
/// then reap until nothing is in flight (bounded: 2 s). Sends in flight complete by
/// themselves. Not one cancel-all: the kernel finds each request of a cancel-all by a
/// scan of everything in flight, so its cost grows with the square of the sockets (15 s
/// for 21,000); a cancel by user data stops at its own request.
pub fn quiesce(
    ring: &mut IoUring,
    st: &mut UringState,
    sockets: u32,
    others: impl IntoIterator<Item = u64>,
) {
    let targets = (0..sockets)
        .map(|s| ud(K_RECV, s, 0))
        .chain(others)
        .chain([ud(K_BELL, 0, 0), ud(K_TIMER, 0, 0)]);
    for target in targets {
        let e = opcode::AsyncCancel2::new(types::CancelBuilder::user_data(target))
            .build()
            .user_data(ud(K_CANCEL, 0, 0));
        while !push(ring, &e) {
            // Submission queue full: hand these to the kernel and make room.
            let _ = ring.submit();
            reap_ready(ring, st);
        }
    }
    reap_until_idle(ring, st);
}

fn reap_until_idle(ring: &mut IoUring, st: &mut UringState) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let ts = types::Timespec::new().nsec(10_000_000);
    let args = types::SubmitArgs::new().timespec(&ts);
    while st.inflight > 0 && std::time::Instant::now() < deadline {
        let _ = ring.submitter().submit_with_args(1, &args);
        reap_ready(ring, st);
    }
}

/// Takes every completion ready now, giving buffers back and counting requests ended.
fn reap_ready(ring: &mut IoUring, st: &mut UringState) {
    while let Some(cqe) = ring.completion().next() {
        let u = cqe.user_data();
        match ud_kind(u) {
            K_RECV | K_RECV_C => {
                if let Some(bid) = cqueue::buffer_select(cqe.flags()) {
                    st.recycle(bid);
                }
                if !cqueue::more(cqe.flags()) {
                    st.inflight = st.inflight.saturating_sub(1);
                }
            }
            K_SEND => {
                st.inflight = st.inflight.saturating_sub(1);
                st.recycle(ud_bid(u));
            }
            K_BELL | K_TIMER => st.inflight = st.inflight.saturating_sub(1),
            _ => {}
        }
    }
    st.flush_recycled();
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    use super::*;

    /// A ring and its provided buffers, as the relay sets them up.
    fn ring_with_buffers() -> (IoUring, UringState) {
        let st = UringState::new(16).expect("state");
        let ring = build_ring(64, 16).expect("ring");
        // SAFETY: the buffer ring lives in `st`, dropped after `ring` by the caller.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(st.ring_mem.base as u64, 16, BGID, 0)
                .expect("buffer ring");
        }
        (ring, st)
    }

    /// Completions within `wait`: (result, more) each, buffers recycled.
    fn reap(ring: &mut IoUring, st: &mut UringState, wait: u32) -> Vec<(i32, bool)> {
        let ts = types::Timespec::new().nsec(wait * 1_000_000);
        let args = types::SubmitArgs::new().timespec(&ts);
        let _ = ring.submitter().submit_with_args(1, &args);
        let mut out = Vec::new();
        while let Some(c) = ring.completion().next() {
            if let Some(bid) = cqueue::buffer_select(c.flags()) {
                st.recycle(bid);
            }
            out.push((c.result(), cqueue::more(c.flags())));
        }
        st.flush_recycled();
        out
    }

    #[test]
    fn a_drain_takes_what_is_queued_then_ends_without_waiting() {
        let (mut ring, mut st) = ring_with_buffers();
        let rx = UdpSocket::bind("127.0.0.1:0").expect("rx");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("tx");
        for _ in 0..2 {
            tx.send_to(b"queued", rx.local_addr().expect("addr"))
                .expect("send");
        }
        assert!(arm_drain(
            &mut ring,
            &mut st,
            SockRef::Fd(rx.as_raw_fd()),
            9
        ));
        let got = reap(&mut ring, &mut st, 200);
        let data = PAYLOAD_OFF as i32 + 6;
        assert_eq!(
            got,
            vec![(data, true), (data, true), (-libc::EAGAIN, false)]
        );
        // Ended: a datagram arriving now completes nothing.
        tx.send_to(b"late", rx.local_addr().expect("addr"))
            .expect("send");
        assert!(reap(&mut ring, &mut st, 50).is_empty());
        // An empty socket ends it at once.
        let mut buf = [0u8; 16];
        rx.recv(&mut buf).expect("late datagram still queued");
        assert!(arm_drain(
            &mut ring,
            &mut st,
            SockRef::Fd(rx.as_raw_fd()),
            9
        ));
        assert_eq!(reap(&mut ring, &mut st, 200), vec![(-libc::EAGAIN, false)]);
        drop(ring);
    }
}

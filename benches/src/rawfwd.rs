//! Raw baseline forwarders: the tightest loops the kernel interface allows, with no session
//! logic. Benchmarks and the load test compare the relay against these.
//!
//! Two layouts: *single* ([`run_mmsg`], [`run_uring`]: one socket, every datagram sent back
//! out of it to one fixed peer — the kernel's best case, many packets per wake-up from one hot
//! socket) and *multi* ([`run_mmsg_multi`], [`run_uring_multi`]: N [`Leg`]s, each receiving
//! on its own port and sending out of a second port of its own to its own fixed peer — the
//! relay's socket layout, one port per leg as SDP requires, without any session logic).

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use io_uring::{cqueue, opcode, types};
pub use socket2::Socket;

use portcullis_dataplane::raw::{
    arm_recv, arm_timer, build_ring, push, quiesce, send_connected, send_to, to_storage, ud,
    ud_bid, ud_kind, ud_sock, Batch, SockRef, UringState, BATCH, BGID, BUF_SIZE, K_RECV, K_SEND,
    K_TIMER, NBUF, PAYLOAD_OFF,
};
use portcullis_dataplane::DataplaneError;

/// What a raw forwarder did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawStats {
    /// Datagrams received.
    pub rx_packets: u64,
    /// Datagrams handed to the kernel for sending.
    pub tx_packets: u64,
    /// Sends that failed.
    pub send_errors: u64,
}

/// `recvmmsg` (blocking, `MSG_WAITFORONE`, 50 ms timeout to notice `stop`) then `sendmmsg`
/// of the same buffers to `peer`, until `stop` is set.
///
/// # Errors
/// Socket option failures.
pub fn run_mmsg(
    sock: &Socket,
    peer: SocketAddr,
    stop: &AtomicBool,
) -> Result<RawStats, DataplaneError> {
    sock.set_nonblocking(false)
        .map_err(|e| DataplaneError::io("blocking", e))?;
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(|e| DataplaneError::io("SO_RCVTIMEO", e))?;
    let fd = sock.as_raw_fd();
    let mut batch = Batch::new();
    let mut st = RawStats::default();
    while !stop.load(Ordering::Relaxed) {
        let n = batch.recv(fd, libc::MSG_WAITFORONE);
        st.rx_packets += n as u64;
        for i in 0..n.min(BATCH) {
            let len = batch.received_len(i);
            batch.queue(i, 0, peer, len);
        }
        st.tx_packets += n as u64;
        let mut fails = 0u64;
        batch.flush(|_| Some(fd), |_| fails += 1);
        st.send_errors += fails;
        st.tx_packets -= fails;
    }
    Ok(st)
}

/// Multishot `recvmsg` with a provided-buffer ring, `sendmsg` of the received buffer to
/// `peer`, buffer recycled on send completion; one `submit_and_wait` per iteration and a
/// 50 ms timeout SQE to notice `stop`.
///
/// # Errors
/// Ring creation or buffer-ring registration failures.
pub fn run_uring(
    sock: &Socket,
    peer: SocketAddr,
    stop: &AtomicBool,
) -> Result<RawStats, DataplaneError> {
    let mut st = UringState::new(NBUF)?;
    let mut ring = build_ring(1024, NBUF)?;
    // SAFETY: the ring memory is page aligned, holds NBUF entries and lives in `st`, which
    // is only dropped after `quiesce` and the ring itself.
    unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(st.ring_mem.base as u64, NBUF, BGID, 0)
            .map_err(|e| DataplaneError::io("register buffer ring", e))?;
    }
    // Every send slot targets the same peer: fill addresses once.
    for slot in st.sends.iter_mut() {
        slot.hdr.msg_namelen = to_storage(peer, &mut slot.addr);
        slot.hdr.msg_name = (&mut slot.addr as *mut libc::sockaddr_storage).cast();
        slot.hdr.msg_iov = &mut slot.iov;
        slot.hdr.msg_iovlen = 1;
    }
    let fd = sock.as_raw_fd();
    let mut stats = RawStats::default();
    let mut armed = arm_recv(&mut ring, &mut st, 0, fd);
    arm_timer(&mut ring, &mut st);
    while !stop.load(Ordering::Relaxed) {
        if !armed {
            armed = arm_recv(&mut ring, &mut st, 0, fd);
        }
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
            Err(e) => return Err(DataplaneError::io("io_uring_enter", e)),
        }
        let ready = ring.completion().len();
        for _ in 0..ready {
            let Some(cqe) = ring.completion().next() else {
                break;
            };
            let (u, res, flags) = (cqe.user_data(), cqe.result(), cqe.flags());
            match ud_kind(u) {
                K_RECV => {
                    if !cqueue::more(flags) {
                        st.inflight = st.inflight.saturating_sub(1);
                        armed = false;
                    }
                    let Some(bid) = cqueue::buffer_select(flags) else {
                        continue;
                    };
                    if res < 0 {
                        continue;
                    }
                    stats.rx_packets += 1;
                    // payloadlen is the third u32 of io_uring_recvmsg_out.
                    let off = usize::from(bid) * BUF_SIZE;
                    let len = st
                        .bufs
                        .get(off + 8..off + 12)
                        .and_then(|b| b.try_into().ok())
                        .map_or(0, |b| u32::from_ne_bytes(b) as usize);
                    let data = st.buf_ptr(bid).wrapping_add(PAYLOAD_OFF);
                    let Some(slot) = st.sends.get_mut(usize::from(bid)) else {
                        continue;
                    };
                    slot.iov.iov_base = data.cast();
                    slot.iov.iov_len = len;
                    let e = opcode::SendMsg::new(types::Fd(fd), &slot.hdr)
                        .build()
                        .user_data(ud(K_SEND, 0, bid));
                    if push(&mut ring, &e) {
                        st.inflight += 1;
                        stats.tx_packets += 1;
                    } else {
                        stats.send_errors += 1;
                        st.recycle(bid);
                    }
                }
                K_SEND => {
                    st.inflight = st.inflight.saturating_sub(1);
                    if res < 0 {
                        stats.send_errors += 1;
                        stats.tx_packets = stats.tx_packets.saturating_sub(1);
                    }
                    st.recycle(ud_bid(u));
                }
                K_TIMER => {
                    st.inflight = st.inflight.saturating_sub(1);
                    arm_timer(&mut ring, &mut st);
                }
                _ => {}
            }
        }
        st.flush_recycled();
    }
    quiesce(&mut ring, &mut st, 1, []);
    if st.inflight > 0 {
        drop(ring);
        Box::leak(Box::new(st));
        return Ok(stats);
    }
    let _ = ring.submitter().unregister_buf_ring(BGID);
    Ok(stats)
}

/// One leg of a multi-socket raw forwarder: datagrams received on `rx` leave through `tx`
/// to `peer`, as a relay stream enters on one leg's port and leaves through the other's.
#[derive(Debug)]
pub struct Leg {
    /// Receiving socket.
    pub rx: Socket,
    /// Sending socket.
    pub tx: Socket,
    /// Fixed destination of everything received on `rx`.
    pub peer: SocketAddr,
}

/// Bind `n` legs on `ip`: leg `i` receives on `first_port + 2i` and sends from
/// `first_port + 2i + 1`, all to `peer`.
///
/// # Errors
/// A port outside `u16` or a bind failure.
pub fn bind_legs(
    ip: std::net::IpAddr,
    first_port: u16,
    n: usize,
    peer: SocketAddr,
) -> Result<Vec<Leg>, DataplaneError> {
    (0..n)
        .map(|i| {
            let port = |k: usize| {
                u16::try_from(usize::from(first_port) + 2 * i + k)
                    .map_err(|_| DataplaneError::Config("raw legs exceed the port range"))
            };
            Ok(Leg {
                rx: bind(SocketAddr::new(ip, port(0)?))?,
                tx: bind(SocketAddr::new(ip, port(1)?))?,
                peer,
            })
        })
        .collect()
}

/// Multi-socket `recvmmsg`/`sendmmsg`: level-triggered epoll over every leg's `rx`, at most
/// one `recvmmsg` batch per ready socket per wake-up, the batch sent with one `sendmmsg` out
/// of the leg's `tx` to its peer (the relay's mmsg backend minus the relay), until `stop`.
///
/// # Errors
/// epoll creation or registration failures.
pub fn run_mmsg_multi(legs: &[Leg], stop: &AtomicBool) -> Result<RawStats, DataplaneError> {
    use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
    use std::os::fd::AsFd;
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
        .map_err(|e| DataplaneError::io("epoll_create", e.into()))?;
    for (i, l) in legs.iter().enumerate() {
        epoll
            .add(l.rx.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, i as u64))
            .map_err(|e| DataplaneError::io("epoll_ctl", e.into()))?;
    }
    let mut events = vec![EpollEvent::empty(); 256];
    let mut batch = Batch::new();
    let mut st = RawStats::default();
    while !stop.load(Ordering::Relaxed) {
        let ready = match epoll.wait(&mut events, 50u16) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => return Err(DataplaneError::io("epoll_wait", e.into())),
        };
        for ev in events.iter().take(ready) {
            let Some(leg) = usize::try_from(ev.data()).ok().and_then(|i| legs.get(i)) else {
                continue;
            };
            let n = batch.recv(leg.rx.as_raw_fd(), libc::MSG_DONTWAIT);
            st.rx_packets += n as u64;
            for i in 0..n.min(BATCH) {
                let len = batch.received_len(i);
                batch.queue(i, 0, leg.peer, len);
            }
            let tx = leg.tx.as_raw_fd();
            let mut fails = 0u64;
            batch.flush(|_| Some(tx), |_| fails += 1);
            st.tx_packets += (n as u64).saturating_sub(fails);
            st.send_errors += fails;
        }
    }
    Ok(st)
}

/// Multi-socket io_uring: one multishot `recvmsg` per leg's `rx` fed by one provided-buffer
/// ring, each received buffer sent with `sendmsg` out of the leg's `tx` to its peer and
/// recycled on send completion; terminated multishots re-armed after the buffers went back
/// (the relay's io_uring backend minus the relay), until `stop`.
///
/// # Errors
/// Ring creation or buffer-ring registration failures.
pub fn run_uring_multi(legs: &[Leg], stop: &AtomicBool) -> Result<RawStats, DataplaneError> {
    uring_multi(legs, false, false, stop)
}

/// [`run_uring_multi`] with every leg's `tx` connected to its peer first and a plain
/// `send` without an address: no route lookup per packet, as the relay does with its
/// connected companions (the fairest baseline for it).
///
/// # Errors
/// Ring creation, buffer-ring registration or `connect` failures.
pub fn run_uring_multi_connected(
    legs: &[Leg],
    stop: &AtomicBool,
) -> Result<RawStats, DataplaneError> {
    connect_tx(legs)?;
    uring_multi(legs, true, false, stop)
}

/// Connect every leg's `tx` to its peer.
fn connect_tx(legs: &[Leg]) -> Result<(), DataplaneError> {
    for l in legs {
        l.tx.connect(&l.peer.into())
            .map_err(|e| DataplaneError::io("connect", e))?;
    }
    Ok(())
}

/// [`run_uring_multi_connected`] with a multishot receive armed on every `tx` port as
/// well: the socket layout of a forwarder of two-way streams, which must read the ports it
/// sends from (the relay does; the one-way loops above never read theirs). What arrives on
/// a `tx` port is counted in `rx_packets` and dropped: this loop keeps no state to know
/// where it would go.
///
/// # Errors
/// Ring creation, buffer-ring registration or `connect` failures.
pub fn run_uring_multi_two_way(
    legs: &[Leg],
    stop: &AtomicBool,
) -> Result<RawStats, DataplaneError> {
    connect_tx(legs)?;
    uring_multi(legs, true, true, stop)
}

/// Socket `s` of the multi-leg loops: `0..n` the legs' `rx`, `n..2n` their `tx`.
fn multi_sock(legs: &[Leg], s: u32) -> Option<i32> {
    let n = legs.len();
    let s = s as usize;
    match legs.get(s) {
        Some(l) => Some(l.rx.as_raw_fd()),
        None => legs.get(s.checked_sub(n)?).map(|l| l.tx.as_raw_fd()),
    }
}

fn uring_multi(
    legs: &[Leg],
    connected: bool,
    read_tx: bool,
    stop: &AtomicBool,
) -> Result<RawStats, DataplaneError> {
    let mut st = UringState::new(NBUF)?;
    let mut ring = build_ring(1024, NBUF)?;
    // SAFETY: the ring memory is page aligned, holds NBUF entries and lives in `st`, which
    // is only dropped after `quiesce` and the ring itself.
    unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(st.ring_mem.base as u64, NBUF, BGID, 0)
            .map_err(|e| DataplaneError::io("register buffer ring", e))?;
    }
    let n = u32::try_from(legs.len()).map_err(|_| DataplaneError::Config("too many legs"))?;
    let socks = if read_tx { 2 * n } else { n };
    let mut rearm: Vec<u32> = Vec::with_capacity(socks as usize);
    let mut spare: Vec<u32> = Vec::with_capacity(socks as usize);
    for i in 0..socks {
        if let Some(fd) = multi_sock(legs, i) {
            if !arm_recv(&mut ring, &mut st, i, fd) {
                rearm.push(i);
            }
        }
    }
    arm_timer(&mut ring, &mut st);
    let mut stats = RawStats::default();
    while !stop.load(Ordering::Relaxed) {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
            Err(e) => return Err(DataplaneError::io("io_uring_enter", e)),
        }
        let ready = ring.completion().len();
        for _ in 0..ready {
            let Some(cqe) = ring.completion().next() else {
                break;
            };
            let (u, res, flags) = (cqe.user_data(), cqe.result(), cqe.flags());
            match ud_kind(u) {
                K_RECV => {
                    let sock = ud_sock(u);
                    if !cqueue::more(flags) {
                        st.inflight = st.inflight.saturating_sub(1);
                        rearm.push(sock);
                    }
                    let Some(bid) = cqueue::buffer_select(flags) else {
                        continue;
                    };
                    if res < 0 {
                        continue;
                    }
                    stats.rx_packets += 1;
                    // A datagram on a `tx` port (two-way layout) is dropped: see
                    // `run_uring_multi_two_way`.
                    let Some(leg) = legs.get(sock as usize) else {
                        st.recycle(bid);
                        continue;
                    };
                    // payloadlen is the third u32 of io_uring_recvmsg_out.
                    let off = usize::from(bid) * BUF_SIZE;
                    let len = st
                        .bufs
                        .get(off + 8..off + 12)
                        .and_then(|b| b.try_into().ok())
                        .map_or(0, |b| u32::from_ne_bytes(b) as usize);
                    let data = st.buf_ptr(bid).wrapping_add(PAYLOAD_OFF);
                    let tx = SockRef::Fd(leg.tx.as_raw_fd());
                    let e = if connected {
                        send_connected(tx, data, len)
                    } else {
                        let Some(slot) = st.sends.get_mut(usize::from(bid)) else {
                            st.recycle(bid);
                            continue;
                        };
                        send_to(tx, slot, data, len, leg.peer)
                    }
                    .user_data(ud(K_SEND, sock, bid));
                    if push(&mut ring, &e) {
                        st.inflight += 1;
                        stats.tx_packets += 1;
                    } else {
                        stats.send_errors += 1;
                        st.recycle(bid);
                    }
                }
                K_SEND => {
                    st.inflight = st.inflight.saturating_sub(1);
                    if res < 0 {
                        stats.send_errors += 1;
                        stats.tx_packets = stats.tx_packets.saturating_sub(1);
                    }
                    st.recycle(ud_bid(u));
                }
                K_TIMER => {
                    st.inflight = st.inflight.saturating_sub(1);
                    arm_timer(&mut ring, &mut st);
                }
                _ => {}
            }
        }
        st.flush_recycled();
        std::mem::swap(&mut rearm, &mut spare);
        for s in spare.drain(..) {
            match multi_sock(legs, s) {
                Some(fd) if !arm_recv(&mut ring, &mut st, s, fd) => rearm.push(s),
                _ => {}
            }
        }
    }
    quiesce(&mut ring, &mut st, socks, []);
    if st.inflight > 0 {
        drop(ring);
        Box::leak(Box::new(st));
        return Ok(stats);
    }
    let _ = ring.submitter().unregister_buf_ring(BGID);
    Ok(stats)
}

/// Bind the raw forwarder's socket (same options as the media sockets).
///
/// # Errors
/// Bind failures.
pub fn bind(addr: SocketAddr) -> Result<Socket, DataplaneError> {
    portcullis_dataplane::raw::bind_udp(addr, portcullis_dataplane::raw::SOCKET_BUFFER)
}

/// A `sendmmsg` load generator for benchmarks and load tests: copies packets into
/// preallocated buffers and sends them in batches (one destination per packet).
pub struct Blaster {
    batch: Batch,
}

impl std::fmt::Debug for Blaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blaster").finish_non_exhaustive()
    }
}

impl Default for Blaster {
    fn default() -> Self {
        Blaster {
            batch: Batch::new(),
        }
    }
}

impl Blaster {
    /// Maximum packets per [`send`](Self::send) call.
    pub const BATCH: usize = BATCH;

    /// Send up to [`Self::BATCH`] packets produced by `fill(i, buf) -> (dest, len)` out of
    /// `sock` in one `sendmmsg` (retried on partial sends). Returns packets accepted.
    pub fn send(
        &mut self,
        sock: &Socket,
        n: usize,
        mut fill: impl FnMut(usize, &mut [u8]) -> (SocketAddr, usize),
    ) -> usize {
        let fd = sock.as_raw_fd();
        let n = n.min(BATCH);
        for i in 0..n {
            let (dest, len) = match self.batch.buf_mut(i) {
                Some(b) => fill(i, b),
                None => break,
            };
            self.batch.queue(i, 0, dest, len);
        }
        let mut fails = 0;
        self.batch.flush(|_| Some(fd), |_| fails += 1);
        n - fails.min(n)
    }
}

/// Pin the calling thread to CPU `core`; `false` if the kernel refused.
#[must_use]
pub fn pin_current(core: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: core })
}

/// Kernel thread id of the calling thread.
#[must_use]
pub fn current_tid() -> u64 {
    portcullis_dataplane::raw::gettid()
}

/// Time core `core` has spent so far busy (user, system, interrupts, softirq) and stolen
/// (the hypervisor running something else while it wanted to run), from `/proc/stat`
/// (clock-tick resolution; idle itself is exact on a tickless kernel). Unlike
/// [`thread_cpu_time`] the busy part includes work done on the core outside the thread,
/// such as softirq packet delivery run from the idle task.
#[must_use]
pub fn core_time(core: usize) -> Option<(Duration, Duration)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let tag = format!("cpu{core} ");
    let line = stat.lines().find(|l| l.starts_with(&tag))?;
    // user nice system idle iowait irq softirq steal guest guest_nice. Not idle, not
    // iowait (an io_uring wait counts there); guest time is inside user already.
    let f: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    let busy = at(0) + at(1) + at(2) + at(5) + at(6);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0)?;
    let d = |t: u64| Duration::from_micros(t * 1_000_000 / hz);
    Some((d(busy), d(at(7))))
}

/// CPU time (user + system) consumed so far by thread `tid` of this process, from
/// `/proc/self/task/<tid>/stat` (clock-tick resolution).
#[must_use]
pub fn thread_cpu_time(tid: u64) -> Option<Duration> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = s.get(s.rfind(')')? + 2..)?;
    let mut f = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0)?;
    Some(Duration::from_micros((utime + stime) * 1_000_000 / hz))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, UdpSocket};
    use std::sync::Arc;

    const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[derive(Clone, Copy, PartialEq)]
    enum Multi {
        Mmsg,
        Uring,
        UringConnected,
        UringTwoWay,
    }

    /// Every leg forwards what it receives, unchanged, out of its own `tx` port to its peer.
    /// The two-way loop also reads its `tx` ports: a datagram sent to one is received and
    /// dropped.
    fn multi_forwards(kind: Multi, first_port: u16) {
        let sink = UdpSocket::bind((LO, 0)).expect("sink");
        sink.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let dest = sink.local_addr().expect("sink addr");
        let legs = bind_legs(LO, first_port, 4, dest).expect("legs");
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let t = std::thread::spawn(move || match kind {
            Multi::Mmsg => run_mmsg_multi(&legs, &s2),
            Multi::Uring => run_uring_multi(&legs, &s2),
            Multi::UringConnected => run_uring_multi_connected(&legs, &s2),
            Multi::UringTwoWay => run_uring_multi_two_way(&legs, &s2),
        });
        std::thread::sleep(Duration::from_millis(100));
        let gen = UdpSocket::bind((LO, 0)).expect("generator");
        let mut buf = [0u8; 256];
        for i in 0..40u16 {
            let leg = i % 4;
            let p = [leg as u8, (i >> 8) as u8, i as u8, 0xd5];
            gen.send_to(&p, (LO, first_port + 2 * leg)).expect("send");
            let (n, from) = sink.recv_from(&mut buf).expect("forwarded");
            assert_eq!(buf.get(..n), Some(&p[..]));
            // Sent out of the leg's own tx port.
            assert_eq!(from.port(), first_port + 2 * leg + 1);
        }
        let mut reverse = 0;
        if kind == Multi::UringTwoWay {
            // From the tx port's peer (the sink), as the far end of a call would send.
            for leg in 0..4u16 {
                sink.send_to(&[0xee, leg as u8], (LO, first_port + 2 * leg + 1))
                    .expect("send reverse");
            }
            reverse = 4;
        }
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
        let st = t.join().expect("join").expect("raw loop");
        assert_eq!(
            (st.rx_packets, st.tx_packets, st.send_errors),
            (40 + reverse, 40, 0)
        );
    }

    #[test]
    fn raw_mmsg_multi_forwards() {
        multi_forwards(Multi::Mmsg, 14100);
    }

    #[test]
    fn raw_uring_multi_forwards() {
        multi_forwards(Multi::Uring, 14120);
    }

    #[test]
    fn raw_uring_multi_connected_forwards() {
        multi_forwards(Multi::UringConnected, 14140);
    }

    #[test]
    fn raw_uring_multi_two_way_forwards_and_reads_its_tx_ports() {
        multi_forwards(Multi::UringTwoWay, 14160);
    }
}

//! Batched UDP I/O with `sendmmsg`/`recvmmsg` through nix's safe wrappers: one system
//! call per batch instead of one per datagram; [`SocketIo`] is a media worker's I/O over it.

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags};
use nix::sys::time::TimeSpec;

use nix::sys::socket::{
    recvmmsg, sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage,
};

use crate::media::{Clock, MediaIo, OnDatagram};

/// Datagrams per system call.
pub const BATCH: usize = 64;
/// Datagrams drained from one socket per [`MediaIo::receive`].
const RX_BUDGET: usize = 512;
/// Bytes reserved per datagram.
pub const SLOT: usize = 2048;

/// Datagrams queued for one socket.
pub struct SendBatch {
    buf: Vec<u8>,
    lens: Vec<usize>,
    addrs: Vec<Option<SockaddrStorage>>,
    hdrs: MultiHeaders<SockaddrStorage>,
}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch")
            .field("queued", &self.lens.len())
            .finish()
    }
}

impl Default for SendBatch {
    fn default() -> Self {
        Self {
            buf: vec![0; BATCH * SLOT],
            lens: Vec::with_capacity(BATCH),
            addrs: Vec::with_capacity(BATCH),
            hdrs: MultiHeaders::preallocate(BATCH, None),
        }
    }
}

impl SendBatch {
    /// The next free slot, or `None` when the batch is full (flush first).
    pub fn slot(&mut self) -> Option<&mut [u8]> {
        let i = self.lens.len();
        if i >= BATCH {
            return None;
        }
        self.buf.get_mut(i * SLOT..(i + 1) * SLOT)
    }

    /// Commits the slot just written (`len` bytes) for `dest`.
    pub fn push(&mut self, len: usize, dest: SocketAddr) {
        if self.lens.len() < BATCH {
            self.lens.push(len.min(SLOT));
            self.addrs.push(Some(SockaddrStorage::from(dest)));
        }
    }

    /// Sends everything queued; returns `(sent, failed)`.
    pub fn flush(&mut self, sock: &UdpSocket) -> (usize, usize) {
        let n = self.lens.len();
        if n == 0 {
            return (0, 0);
        }
        let Self {
            buf,
            lens,
            addrs,
            hdrs,
        } = self;
        let iovs: Vec<[IoSlice<'_>; 1]> = lens
            .iter()
            .enumerate()
            .map(|(i, &l)| [IoSlice::new(buf.get(i * SLOT..i * SLOT + l).unwrap_or(&[]))])
            .collect();
        let cmsgs: [ControlMessage<'_>; 0] = [];
        let mut sent = 0;
        // A partial send leaves the rest for one more attempt.
        let mut start = 0;
        for _ in 0..2 {
            let res = sendmmsg(
                sock.as_raw_fd(),
                hdrs,
                iovs.get(start..).unwrap_or(&[]),
                addrs.get(start..).unwrap_or(&[]),
                cmsgs,
                MsgFlags::empty(),
            );
            match res {
                Ok(r) => {
                    let k = r.count();
                    sent += k;
                    start += k;
                    if start >= n || k == 0 {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        lens.clear();
        addrs.clear();
        (sent, n - sent)
    }
}

/// Receive buffers for one `recvmmsg` call.
pub struct RecvBatch {
    buf: Vec<u8>,
    hdrs: MultiHeaders<SockaddrStorage>,
    lens: Vec<usize>,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch").finish()
    }
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self {
            buf: vec![0; BATCH * SLOT],
            hdrs: MultiHeaders::preallocate(BATCH, None),
            lens: Vec::with_capacity(BATCH),
        }
    }
}

impl RecvBatch {
    /// Receives up to [`BATCH`] datagrams without blocking; returns how many. Read them
    /// with `get`.
    pub fn recv(&mut self, sock: &UdpSocket) -> usize {
        let Self { buf, hdrs, lens } = self;
        lens.clear();
        let mut iovs: Vec<[IoSliceMut<'_>; 1]> =
            buf.chunks_mut(SLOT).map(|c| [IoSliceMut::new(c)]).collect();
        if let Ok(res) = recvmmsg(
            sock.as_raw_fd(),
            hdrs,
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        ) {
            for m in res {
                lens.push(m.bytes);
            }
        }
        lens.len()
    }

    /// Datagram `i` of the last [`RecvBatch::recv`].
    #[cfg(test)]
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let len = *self.lens.get(i)?;
        self.buf.get(i * SLOT..i * SLOT + len.min(SLOT))
    }

    /// Datagram `i` of the last [`RecvBatch::recv`], writable (in-place SRTP unprotect).
    pub fn get_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        let len = *self.lens.get(i)?;
        self.buf.get_mut(i * SLOT..i * SLOT + len.min(SLOT))
    }
}

/// A media worker's UDP sockets (the default generator).
#[derive(Debug)]
pub struct SocketIo {
    sockets: Vec<UdpSocket>,
    batches: Vec<SendBatch>,
    rx: RecvBatch,
}

impl SocketIo {
    /// The worker's sockets, made non-blocking.
    pub fn new(sockets: Vec<UdpSocket>) -> std::io::Result<SocketIo> {
        for s in &sockets {
            s.set_nonblocking(true)?;
        }
        Ok(SocketIo {
            batches: sockets.iter().map(|_| SendBatch::default()).collect(),
            sockets,
            rx: RecvBatch::default(),
        })
    }
}

impl MediaIo for SocketIo {
    fn slot(&mut self, socket: usize) -> Option<&mut [u8]> {
        self.batches.get_mut(socket)?.slot()
    }

    fn push(&mut self, socket: usize, len: usize, dest: SocketAddr) {
        if let Some(b) = self.batches.get_mut(socket) {
            b.push(len, dest);
        }
    }

    fn flush(&mut self) -> (usize, usize) {
        let (mut ok, mut failed) = (0, 0);
        for (b, s) in self.batches.iter_mut().zip(&self.sockets) {
            let (o, f) = b.flush(s);
            ok += o;
            failed += f;
        }
        (ok, failed)
    }

    fn receive(&mut self, clock: Clock, f: &mut OnDatagram<'_>) -> usize {
        let mut total = 0;
        for (si, sock) in self.sockets.iter().enumerate() {
            for _ in 0..RX_BUDGET / BATCH {
                let n = self.rx.recv(sock);
                if n == 0 {
                    break;
                }
                let arrival = clock.ns();
                for i in 0..n {
                    if let Some(pkt) = self.rx.get_mut(i) {
                        f(Some(si), pkt, arrival);
                    }
                }
                total += n;
                if n < BATCH {
                    break;
                }
            }
        }
        total
    }

    fn wait(&mut self, timeout: Duration) {
        let mut fds: Vec<PollFd<'_>> = self
            .sockets
            .iter()
            .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN))
            .collect();
        let _ = nix::poll::ppoll(&mut fds, Some(TimeSpec::from_duration(timeout)), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_round_trip_over_loopback() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dest = b.local_addr().unwrap();
        let mut s = SendBatch::default();
        for i in 0..BATCH {
            let slot = s.slot().unwrap();
            slot[..4].copy_from_slice(&(i as u32).to_be_bytes());
            s.push(4 + i, dest);
        }
        assert!(s.slot().is_none(), "full batch has no free slot");
        assert_eq!(s.flush(&a), (BATCH, 0));
        assert_eq!(s.lens.len(), 0);
        let mut r = RecvBatch::default();
        let mut got = Vec::new();
        for _ in 0..100 {
            let n = r.recv(&b);
            for i in 0..n {
                got.push(r.get(i).unwrap().to_vec());
            }
            if got.len() == BATCH {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(got.len(), BATCH);
        for (i, d) in got.iter().enumerate() {
            assert_eq!(d.len(), 4 + i);
            assert_eq!(&d[..4], &(i as u32).to_be_bytes());
        }
    }
}

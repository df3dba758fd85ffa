//! One AF_XDP socket of a worker: its UMEM (an anonymous mapping of [`FRAME`]-byte
//! chunks), the fill and completion rings of its device queue, and its RX and TX rings
//! (`xdpilone` drives the rings; nothing of the ring protocol is written here).
//!
//! Every chunk is at all times in exactly one place: the free list, the fill ring, the RX
//! ring, the worker's hands (between [`Xsk::receive`] and [`Xsk::transmit`] or
//! [`Xsk::recycle`]), or the TX ring until its completion. Only chunks in the worker's
//! hands are read or written from user space ([`Xsk::chunk_mut`]).

use std::num::NonZeroU32;
use std::ptr::NonNull;

use memmap2::MmapMut;
use xdpilone::xdp::XdpDesc;
use xdpilone::{
    BufIdx, DeviceQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, UmemConfig, User,
};

use crate::types::DataplaneError;

/// Bytes per UMEM chunk (one frame each; the kernel puts a received frame 256 bytes in).
pub(crate) const FRAME: u32 = 4096;
/// Descriptors per ring (fill, RX, TX).
const RING: u32 = 4096;
/// Completion ring: room for every chunk outside the fill ring (in copy mode a frame
/// completes only once the kernel freed its copy, which may sit in a peer's socket queue).
const COMPLETION: u32 = 2 * RING;

/// How the socket ended up bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum XskMode {
    /// The driver reads and writes the UMEM itself.
    ZeroCopy,
    /// The kernel copies frames between its buffers and the UMEM.
    Copy,
}

/// One AF_XDP socket bound to one queue of one interface, with its own UMEM.
pub(crate) struct Xsk {
    // Field order is drop order: the rings and sockets go before the mapping they point into.
    rx: RingRx,
    tx: RingTx,
    device: DeviceQueue,
    user: User,
    umem: Umem,
    /// Chunk offsets owned by user space and unused.
    free: Vec<u64>,
    /// Chunks on the TX ring, not completed yet.
    in_flight: u32,
    pub(crate) mode: XskMode,
    pub(crate) ifindex: u32,
    /// The mapping `umem` is registered over; dropped last.
    _area: MmapMut,
}

impl std::fmt::Debug for Xsk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xsk")
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .field("free", &self.free.len())
            .finish_non_exhaustive()
    }
}

fn xerr(what: &'static str) -> impl Fn(xdpilone::Errno) -> DataplaneError {
    move |e| DataplaneError::io(what, std::io::Error::from_raw_os_error(e.get_raw()))
}

impl Xsk {
    /// A socket with `frames` chunks bound to `queue` of interface `ifindex`: zero-copy
    /// when the driver has it, copy mode otherwise.
    pub(crate) fn bind(ifindex: u32, queue: u32, frames: u32) -> Result<Xsk, DataplaneError> {
        Xsk::bind_as(ifindex, queue, frames, XskMode::ZeroCopy)
            .or_else(|_| Xsk::bind_as(ifindex, queue, frames, XskMode::Copy))
    }

    fn bind_as(
        ifindex: u32,
        queue: u32,
        frames: u32,
        mode: XskMode,
    ) -> Result<Xsk, DataplaneError> {
        let bytes = usize::try_from(u64::from(frames) * u64::from(FRAME))
            .map_err(|_| DataplaneError::Config("af_xdp UMEM too large"))?;
        let mut area = MmapMut::map_anon(bytes).map_err(|e| DataplaneError::io("UMEM mmap", e))?;
        let ptr = NonNull::new(std::ptr::slice_from_raw_parts_mut(
            area.as_mut_ptr(),
            area.len(),
        ))
        .ok_or(DataplaneError::Config("af_xdp UMEM mapping"))?;
        let config = UmemConfig {
            fill_size: RING,
            complete_size: COMPLETION,
            frame_size: FRAME,
            headroom: 0,
            flags: 0,
        };
        // SAFETY: `ptr` covers the whole anonymous mapping `area`, which mmap aligns to a
        // page and which the returned `Xsk` owns in `_area`, declared after every field
        // that refers to it, so it outlives the UMEM registration and the rings.
        let umem = unsafe { Umem::new(config, ptr) }.map_err(xerr("XDP_UMEM_REG"))?;
        let mut info = IfInfo::invalid();
        info.from_ifindex(ifindex)
            .map_err(xerr("AF_XDP interface"))?;
        info.set_queue(queue);
        let sock = Socket::with_shared(&info, &umem).map_err(xerr("AF_XDP socket"))?;
        let device = umem
            .fq_cq(&sock)
            .map_err(xerr("AF_XDP fill/completion rings"))?;
        let ring = NonZeroU32::new(RING);
        let flags = match mode {
            XskMode::ZeroCopy => SocketConfig::XDP_BIND_ZEROCOPY,
            XskMode::Copy => SocketConfig::XDP_BIND_COPY,
        };
        let user = umem
            .rx_tx(
                &sock,
                &SocketConfig {
                    rx_size: ring,
                    tx_size: ring,
                    bind_flags: SocketConfig::XDP_BIND_NEED_WAKEUP | flags,
                },
            )
            .map_err(xerr("AF_XDP rings"))?;
        let rx = user.map_rx().map_err(xerr("AF_XDP RX ring"))?;
        let tx = user.map_tx().map_err(xerr("AF_XDP TX ring"))?;
        umem.bind(&user).map_err(|e| {
            if e.get_raw() == libc::EINVAL {
                DataplaneError::AfXdp(format!(
                    "cannot bind an AF_XDP socket to queue {queue} of interface index \
                     {ifindex} (no such queue? each worker takes the queue of its index: \
                     use fewer media cores, or more queues with ethtool -L)"
                ))
            } else {
                xerr("AF_XDP bind")(e)
            }
        })?;
        let n = umem.len_frames();
        let free = (0..n)
            .filter_map(|i| umem.frame(BufIdx(i)).map(|c| c.offset))
            .rev()
            .collect();
        let mut x = Xsk {
            rx,
            tx,
            device,
            user,
            umem,
            free,
            in_flight: 0,
            mode,
            ifindex,
            _area: area,
        };
        x.refill();
        Ok(x)
    }

    /// The socket's descriptor (for the XSKMAP and epoll).
    pub(crate) fn fd(&self) -> i32 {
        self.user.as_raw_fd()
    }

    /// Hands free chunks to the kernel for receiving (as many as the fill ring takes).
    pub(crate) fn refill(&mut self) {
        let want = u32::try_from(self.free.len()).unwrap_or(u32::MAX).min(RING);
        if want == 0 {
            return;
        }
        let mut w = self.device.fill(want);
        let n = w.insert(self.free.iter().rev().copied());
        w.commit();
        drop(w);
        self.free.truncate(self.free.len() - n as usize);
        if self.device.needs_wakeup() {
            self.device.wake();
        }
    }

    /// Takes back the chunks the kernel finished sending.
    pub(crate) fn reap(&mut self) {
        if self.in_flight == 0 {
            return;
        }
        let mut c = self.device.complete(self.in_flight);
        while let Some(addr) = c.read() {
            self.free.push(addr - addr % u64::from(FRAME));
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        c.release();
    }

    /// Up to `out.capacity()` received frames (descriptors) into `out`, which is cleared
    /// first. Each chunk is the caller's until it transmits or recycles it.
    pub(crate) fn receive(&mut self, out: &mut Vec<XdpDesc>) {
        out.clear();
        let budget = u32::try_from(out.capacity()).unwrap_or(u32::MAX);
        let mut r = self.rx.receive(budget);
        while let Some(d) = r.read() {
            out.push(d);
        }
        r.release();
    }

    /// The chunk holding UMEM offset `addr`, and `addr`'s offset within it; `None` for an
    /// offset outside the UMEM.
    ///
    /// Only for a chunk in the caller's hands (received and not yet handed back).
    pub(crate) fn chunk_mut(&mut self, addr: u64) -> Option<(&mut [u8], usize)> {
        let idx = u32::try_from(addr / u64::from(FRAME)).ok()?;
        let at = usize::try_from(addr % u64::from(FRAME)).ok()?;
        let mut chunk = self.umem.frame(BufIdx(idx))?;
        // SAFETY: the chunk lies inside the mapping this `Xsk` owns (`frame` checks the
        // bounds). The caller holds it (it came off the RX ring and has not been put on
        // the fill or TX ring since), so the kernel does not touch it, and the `&mut self`
        // borrow makes this the only reference into the UMEM for its lifetime.
        let bytes = unsafe { chunk.addr.as_mut() };
        Some((bytes, at))
    }

    /// Frames the kernel dropped on their way to this socket so far: no free chunk in the
    /// fill ring, or the RX ring full (`XDP_STATISTICS`; 0 when it cannot be read).
    pub(crate) fn dropped(&self) -> u64 {
        self.user
            .statistics_v2()
            .map_or(0, |s| s.rx_dropped + s.rx_ring_full)
    }

    /// A free chunk (its UMEM offset) for a frame built here; the caller transmits or
    /// recycles it.
    pub(crate) fn take_free(&mut self) -> Option<u64> {
        self.free.pop()
    }

    /// Gives a chunk back unused.
    pub(crate) fn recycle(&mut self, addr: u64) {
        if self.free.len() < self.free.capacity() {
            self.free.push(addr - addr % u64::from(FRAME));
        }
    }

    /// Queues frames for sending (`(UMEM offset, length)`), then wakes the kernel so it
    /// sends them. Returns how many the TX ring took; the caller recycles the others.
    pub(crate) fn transmit(&mut self, frames: &[(u64, u32)]) -> usize {
        if frames.is_empty() {
            return 0;
        }
        // The ring re-reads the kernel's consumer index only when its cached view has no
        // room at all, so a reservation can come back short with room free: a second one
        // re-reads it.
        let mut n = 0;
        for _ in 0..2 {
            let rest = frames.get(n as usize..).unwrap_or(&[]);
            if rest.is_empty() {
                break;
            }
            let mut w = self
                .tx
                .transmit(u32::try_from(rest.len()).unwrap_or(u32::MAX));
            n += w.insert(rest.iter().map(|&(addr, len)| XdpDesc {
                addr,
                len,
                options: 0,
            }));
            w.commit();
        }
        self.in_flight += n;
        // Copy mode sends a bounded batch per wake-up: wake until the ring is drained
        // (bounded by the ring's size in batches).
        for _ in 0..(RING / 32) {
            if !self.tx.needs_wakeup() || self.tx.pending() == 0 {
                break;
            }
            self.tx.wake();
        }
        n as usize
    }
}

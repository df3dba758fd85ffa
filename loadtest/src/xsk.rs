//! The generator's AF_XDP socket: one socket on queue 0 of one interface, copy mode, its
//! own UMEM split in two fixed pools (`xdpilone` drives the rings).
//!
//! - The receive pool ([`RX_FRAMES`] chunks) lives in the fill and RX rings: a received
//!   chunk is read and handed straight back to the fill ring ([`GenXsk::receive`]).
//! - The send pool (the other chunks) lives in the free list, the generator's hands
//!   (between [`GenXsk::take_tx`] and [`GenXsk::transmit`]) or the TX ring until the kernel
//!   completes it (in copy mode once it freed its copy, which may wait in the relay's
//!   socket queue).
//!
//! Only a chunk in the generator's hands is written from user space; a received chunk is
//! read only between its RX descriptor and its return to the fill ring.

use std::num::NonZeroU32;
use std::ptr::NonNull;

use anyhow::{bail, Context};
use memmap2::MmapMut;
use xdpilone::xdp::XdpDesc;
use xdpilone::{
    BufIdx, DeviceQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, UmemConfig, User,
};

/// Bytes per UMEM chunk: a 1514-byte frame after the kernel's 256 bytes of headroom.
pub const CHUNK: u32 = 2048;
/// Chunks of the receive pool (and the size of the fill and RX rings).
pub const RX_FRAMES: u32 = 4096;
/// Chunks of the send pool: at 2 M packets/s, 8 ms of frames in flight.
const TX_FRAMES: u32 = 16_384;
/// Descriptors of the TX ring.
const TX_RING: u32 = 4096;

fn xerr(what: &'static str) -> impl Fn(xdpilone::Errno) -> anyhow::Error {
    move |e| anyhow::Error::new(std::io::Error::from_raw_os_error(e.get_raw())).context(what)
}

/// One AF_XDP socket bound in copy mode to queue 0 of an interface.
pub struct GenXsk {
    // Field order is drop order: the rings and the socket go before the mapping.
    rx: RingRx,
    tx: RingTx,
    device: DeviceQueue,
    user: User,
    umem: Umem,
    /// Send-pool chunks (UMEM offsets) that are free.
    free: Vec<u64>,
    /// Send-pool chunks on the TX ring, not completed yet.
    in_flight: u32,
    /// Received chunks to give back to the fill ring.
    refill: Vec<u64>,
    /// The mapping the UMEM is registered over; dropped last.
    _area: MmapMut,
}

impl std::fmt::Debug for GenXsk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenXsk")
            .field("free", &self.free.len())
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl GenXsk {
    /// Binds a socket to queue 0 of interface `ifindex` (`ifname` names it in errors).
    pub fn bind(ifname: &str, ifindex: u32) -> anyhow::Result<GenXsk> {
        let frames = RX_FRAMES + TX_FRAMES;
        let bytes = usize::try_from(u64::from(frames) * u64::from(CHUNK))?;
        let mut area = MmapMut::map_anon(bytes).context("UMEM mmap")?;
        let Some(ptr) = NonNull::new(std::ptr::slice_from_raw_parts_mut(
            area.as_mut_ptr(),
            area.len(),
        )) else {
            bail!("UMEM mapping at address 0");
        };
        let config = UmemConfig {
            fill_size: RX_FRAMES,
            complete_size: TX_FRAMES,
            frame_size: CHUNK,
            headroom: 0,
            flags: 0,
        };
        // SAFETY: `ptr` covers the whole anonymous mapping `area` (page aligned by mmap),
        // which the returned `GenXsk` owns in `_area`, its last field, so the mapping
        // outlives the UMEM registration and every ring that points into it.
        let umem = unsafe { Umem::new(config, ptr) }
            .map_err(xerr("XDP_UMEM_REG (AF_XDP needs root: CAP_NET_RAW)"))?;
        let mut info = IfInfo::invalid();
        info.from_ifindex(ifindex)
            .map_err(xerr("AF_XDP interface"))?;
        info.set_queue(0);
        let sock = Socket::with_shared(&info, &umem)
            .map_err(xerr("AF_XDP socket (needs root: CAP_NET_RAW)"))?;
        let device = umem
            .fq_cq(&sock)
            .map_err(xerr("AF_XDP fill/completion rings"))?;
        let user = umem
            .rx_tx(
                &sock,
                &SocketConfig {
                    rx_size: NonZeroU32::new(RX_FRAMES),
                    tx_size: NonZeroU32::new(TX_RING),
                    bind_flags: SocketConfig::XDP_BIND_NEED_WAKEUP | SocketConfig::XDP_BIND_COPY,
                },
            )
            .map_err(xerr("AF_XDP rings"))?;
        let rx = user.map_rx().map_err(xerr("AF_XDP RX ring"))?;
        let tx = user.map_tx().map_err(xerr("AF_XDP TX ring"))?;
        umem.bind(&user)
            .map_err(xerr("AF_XDP bind"))
            .with_context(|| format!("binding an AF_XDP socket to queue 0 of {ifname}"))?;
        let offsets: Vec<u64> = (0..frames)
            .filter_map(|i| umem.frame(BufIdx(i)).map(|c| c.offset))
            .collect();
        let (rx_pool, tx_pool) = offsets.split_at(RX_FRAMES.min(frames) as usize);
        let mut x = GenXsk {
            rx,
            tx,
            device,
            user,
            umem,
            free: tx_pool.iter().rev().copied().collect(),
            in_flight: 0,
            refill: rx_pool.to_vec(),
            _area: area,
        };
        x.give_back();
        if !x.refill.is_empty() {
            bail!(
                "the fill ring took {} of {RX_FRAMES} chunks",
                RX_FRAMES as usize - x.refill.len()
            );
        }
        Ok(x)
    }

    /// The socket's descriptor (for the XSKMAP and `poll`).
    pub fn raw_fd(&self) -> i32 {
        self.user.as_raw_fd()
    }

    /// Hands the received chunks back to the fill ring.
    fn give_back(&mut self) {
        if self.refill.is_empty() {
            return;
        }
        let want = u32::try_from(self.refill.len()).unwrap_or(u32::MAX);
        let mut w = self.device.fill(want);
        let n = w.insert(self.refill.iter().copied());
        w.commit();
        drop(w);
        self.refill.drain(..n as usize);
        if self.device.needs_wakeup() {
            self.device.wake();
        }
    }

    /// Takes back the send-pool chunks the kernel finished with.
    fn reap(&mut self) {
        if self.in_flight == 0 {
            return;
        }
        let mut c = self.device.complete(self.in_flight);
        while let Some(addr) = c.read() {
            self.free.push(addr - addr % u64::from(CHUNK));
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        c.release();
    }

    /// A free send-pool chunk (its UMEM offset), `None` when all are in flight.
    pub fn take_tx(&mut self) -> Option<u64> {
        if self.free.is_empty() {
            self.reap();
        }
        self.free.pop()
    }

    /// Gives a send-pool chunk back unsent.
    pub fn recycle(&mut self, addr: u64) {
        self.free.push(addr - addr % u64::from(CHUNK));
    }

    /// The bytes from UMEM offset `addr` to the end of its chunk.
    ///
    /// Only for a chunk in the caller's hands (from [`GenXsk::take_tx`] and not yet
    /// transmitted, or a received descriptor during [`GenXsk::receive`]'s callback).
    pub fn chunk_mut(&mut self, addr: u64) -> Option<&mut [u8]> {
        let idx = u32::try_from(addr / u64::from(CHUNK)).ok()?;
        let at = usize::try_from(addr % u64::from(CHUNK)).ok()?;
        let mut chunk = self.umem.frame(BufIdx(idx))?;
        // SAFETY: `frame` bounds the chunk inside the mapping this socket owns. The caller
        // holds the chunk (see above): it is on no ring, so the kernel neither reads nor
        // writes it now, and the `&mut self` borrow makes this the only reference into
        // the UMEM while it lives.
        let bytes = unsafe { chunk.addr.as_mut() };
        bytes.get_mut(at..)
    }

    /// Queues frames (`(UMEM offset, length)`) on the TX ring and wakes the kernel until
    /// it has taken them (bounded). Returns how many the ring took; the caller recycles the
    /// rest.
    pub fn transmit(&mut self, frames: &[(u64, u32)]) -> usize {
        if frames.is_empty() {
            return 0;
        }
        self.reap();
        // The ring re-reads the kernel's consumer index only when its cached view has no
        // room at all: a short reservation is followed by another, which re-reads it.
        let mut n = 0;
        for _ in 0..2 {
            let rest = frames.get(n..).unwrap_or(&[]);
            if rest.is_empty() {
                break;
            }
            let mut w = self
                .tx
                .transmit(u32::try_from(rest.len()).unwrap_or(u32::MAX));
            let k = w.insert(rest.iter().map(|&(addr, len)| XdpDesc {
                addr,
                len,
                options: 0,
            }));
            w.commit();
            drop(w);
            n += k as usize;
        }
        self.in_flight += n as u32;
        // Copy mode sends a bounded batch per wake-up.
        for _ in 0..(TX_RING / 16) {
            if !self.tx.needs_wakeup() || self.tx.pending() == 0 {
                break;
            }
            self.tx.wake();
        }
        n
    }

    /// Reads up to `budget` received frames, calling `f(frame)` on each, then returns
    /// their chunks to the fill ring. Returns how many were read.
    pub fn receive(&mut self, budget: u32, mut f: impl FnMut(&mut [u8])) -> usize {
        let mut descs: [XdpDesc; 64] = [XdpDesc::default(); 64];
        let mut total = 0;
        let mut left = budget;
        while left > 0 {
            let mut n = 0;
            {
                let mut r = self.rx.receive(left.min(64));
                while let Some(d) = r.read() {
                    if let Some(slot) = descs.get_mut(n) {
                        *slot = d;
                        n += 1;
                    }
                }
                r.release();
            }
            if n == 0 {
                break;
            }
            for d in descs.iter().take(n) {
                let len = d.len as usize;
                if let Some(frame) = self.chunk_mut(d.addr).and_then(|c| c.get_mut(..len)) {
                    f(frame);
                }
                self.refill.push(d.addr - d.addr % u64::from(CHUNK));
            }
            total += n;
            left = left.saturating_sub(n as u32);
        }
        self.give_back();
        total
    }

    /// Frames the kernel dropped before this socket saw them: no chunk in the fill ring,
    /// or the RX ring full (`XDP_STATISTICS`; 0 when it cannot be read).
    pub fn rx_dropped(&self) -> u64 {
        self.user
            .statistics_v2()
            .map_or(0, |s| s.rx_dropped + s.rx_ring_full)
    }
}

//! The AF_XDP backend's packet path: one batch from an AF_XDP socket through the relay and
//! out (see the module doc of [`super`]).

use std::net::SocketAddr;

use socket2::SockAddr;
use xdpilone::xdp::XdpDesc;

use super::{frame, local_of, neigh, socket_of, Port, RealmLink};
use crate::relay::{Verdict, BUF_SIZE, MAX_DATAGRAM};
use crate::worker::WorkerCtx;

/// Frames taken from one RX ring per loop iteration.
const RX_BATCH: usize = 64;
/// Where a payload copied into another interface's chunk starts (room for any header).
const COPY_AT: usize = 256;

/// What a frame needs of the interface it leaves by.
#[derive(Clone, Copy, Debug)]
pub(super) struct Link {
    pub(super) ifindex: u32,
    pub(super) mac: [u8; 6],
    pub(super) mtu: usize,
}

/// A frame built for a TX ring, and what the UDP socket needs to send its payload instead
/// when the ring is full.
#[derive(Clone, Copy, Debug)]
struct TxFrame {
    /// UMEM offset and length of the whole frame.
    addr: u64,
    len: u32,
    /// Sending socket, destination, UMEM offset and length of the UDP payload.
    sock: u32,
    to: SocketAddr,
    payload: u64,
    payload_len: usize,
}

/// Scratch space reused every iteration (no allocation on the packet path).
pub(super) struct Scratch {
    descs: Vec<XdpDesc>,
    /// Frames to send, per port (AF_XDP socket), each list at most one batch.
    tx: Vec<Vec<TxFrame>>,
    /// One list as the TX ring takes it.
    ring: Vec<(u64, u32)>,
    /// A payload on its way to another interface's UMEM.
    copy: Box<[u8; BUF_SIZE]>,
    /// Each port's interface.
    links: Vec<Link>,
    neigh: neigh::Neighbours,
}

impl Scratch {
    pub(super) fn new(links: Vec<Link>) -> Scratch {
        Scratch {
            descs: Vec::with_capacity(RX_BATCH),
            tx: links.iter().map(|_| Vec::with_capacity(RX_BATCH)).collect(),
            ring: Vec::with_capacity(RX_BATCH),
            copy: Box::new([0; BUF_SIZE]),
            links,
            neigh: neigh::Neighbours::new(),
        }
    }
}

/// Receives one batch from AF_XDP socket `pi`, relays it and sends the results: on the TX
/// ring of the interface each leaves by, or through the UDP socket for what a ring cannot
/// take (the kernel has not completed enough earlier frames yet), so a burst is not lost.
pub(super) fn service(
    ctx: &mut WorkerCtx,
    realms: &[Option<RealmLink>],
    ports: &mut [Port],
    pi: usize,
    st: &mut Scratch,
    now: u64,
) {
    let Some(port) = ports.get_mut(pi) else {
        return;
    };
    port.xsk.reap();
    port.xsk.receive(&mut st.descs);
    ctx.shared.worker.xsk_rx.add(st.descs.len() as u64);
    for i in 0..st.descs.len() {
        let Some(d) = st.descs.get(i).copied() else {
            break;
        };
        let out = relay_frame(ctx, realms, ports, pi, st, d, now);
        if let Some((pe, f)) = out {
            if let Some(list) = st.tx.get_mut(pe) {
                list.push(f);
            }
        }
        // The received chunk is free again unless its frame is on our own TX list.
        if !matches!(out, Some((pe, _)) if pe == pi) {
            if let Some(p) = ports.get_mut(pi) {
                p.xsk.recycle(d.addr);
            }
        }
    }
    flush(ctx, ports, st);
    if let Some(p) = ports.get_mut(pi) {
        p.xsk.refill();
    }
}

/// Puts every port's TX list on its ring; the UDP socket sends what a ring did not take.
fn flush(ctx: &WorkerCtx, ports: &mut [Port], st: &mut Scratch) {
    for (port, list) in ports.iter_mut().zip(st.tx.iter_mut()) {
        if list.is_empty() {
            continue;
        }
        st.ring.clear();
        st.ring.extend(list.iter().map(|f| (f.addr, f.len)));
        let sent = port.xsk.transmit(&st.ring);
        ctx.shared.worker.xsk_tx.add(sent as u64);
        for f in list.iter().skip(sent) {
            if let Some((chunk, at)) = port.xsk.chunk_mut(f.payload) {
                if let Some(data) = chunk.get(at..at + f.payload_len) {
                    kernel_send(ctx, f.sock, f.to, data);
                }
            }
            port.xsk.recycle(f.addr);
        }
        list.clear();
    }
}

/// Sends `data` to `to` through the UDP socket `sock` (counted as `xsk_kernel_tx`).
fn kernel_send(ctx: &WorkerCtx, sock: u32, to: SocketAddr, data: &[u8]) {
    ctx.shared.worker.xsk_kernel_tx.add(1);
    let sent = ctx
        .sockets
        .get(sock as usize)
        .map(|s| s.send_to(data, &SockAddr::from(to)));
    if !matches!(sent, Some(Ok(n)) if n == data.len()) {
        ctx.relay.on_send_error(sock);
    }
}

/// Relays one frame received on port `pi`: `Some((port, frame))` to put on that port's TX
/// ring (in the received chunk when it leaves by the same interface, else in a chunk of the
/// egress port), or `None` when nothing goes on a ring (dropped, or sent through the UDP
/// socket).
fn relay_frame(
    ctx: &mut WorkerCtx,
    realms: &[Option<RealmLink>],
    ports: &mut [Port],
    pi: usize,
    st: &mut Scratch,
    d: XdpDesc,
    now: u64,
) -> Option<(usize, TxFrame)> {
    let ingress = st.links.get(pi).copied()?;
    let (chunk, at) = ports.get_mut(pi)?.xsk.chunk_mut(d.addr)?;
    let chunk_base = d.addr - at as u64;
    let end = at + d.len as usize;
    let Some(u) = chunk.get(at..end).and_then(frame::parse) else {
        ctx.relay.on_malformed(u32::MAX);
        return None;
    };
    let Some(sock) = socket_of(&ctx.plan, realms, u.dst) else {
        ctx.relay.on_malformed(u32::MAX);
        return None;
    };
    let payload = at + u.payload;
    if u.len > MAX_DATAGRAM {
        ctx.relay.on_malformed(sock);
        return None;
    }
    let buf = chunk.get_mut(payload..payload + BUF_SIZE)?;
    let Verdict::Send {
        sock: out, to, len, ..
    } = ctx.relay.on_packet(sock, u.src, buf, u.len, now)
    else {
        return None;
    };
    // Accepted: its source MAC is the next hop toward its sender.
    st.neigh.learn(u.src.ip(), ingress.ifindex, u.src_mac);
    // It leaves by the interface holding the sending realm's address, toward the next hop
    // learned there, when it fits that interface's MTU.
    let hop = local_of(&ctx.plan, realms, out).and_then(|src| {
        let realm = ctx.plan.realm_of_leg(out / 2)?;
        let pe = realms.get(usize::from(realm.0)).copied().flatten()?.port;
        let egress = st.links.get(pe)?;
        let dst = st.neigh.next_hop(to.ip(), egress.ifindex)?;
        let fits = frame::header_len(src) - frame::ETH_LEN + len <= egress.mtu;
        let link = frame::Link {
            src: egress.mac,
            dst,
        };
        fits.then_some((src, pe, link))
    });
    match hop {
        Some((src, pe, link)) if pe == pi => {
            if let Some((start, flen)) = frame::build(chunk, payload, len, src, to, link) {
                let f = TxFrame {
                    addr: chunk_base + start as u64,
                    len: u32::try_from(flen).ok()?,
                    sock: out,
                    to,
                    payload: chunk_base + payload as u64,
                    payload_len: len,
                };
                return Some((pi, f));
            }
        }
        Some((src, pe, link)) => {
            // Another interface: into a chunk of its own UMEM.
            let copy = st.copy.get_mut(..len)?;
            copy.copy_from_slice(chunk.get(payload..payload + len)?);
            if let Some(f) = copy_out(ports.get_mut(pe)?, copy, out, src, to, link) {
                return Some((pe, f));
            }
            kernel_send(ctx, out, to, copy);
            return None;
        }
        None => {}
    }
    // Through the kernel: the next hop is not known yet, or larger than the MTU.
    kernel_send(ctx, out, to, chunk.get(payload..payload + len)?);
    None
}

/// A frame from `src` to `to` carrying `payload`, built in a free chunk of `port`; `None`
/// (the chunk back on the free list) when it has none free or the frame does not fit.
fn copy_out(
    port: &mut Port,
    payload: &[u8],
    sock: u32,
    src: SocketAddr,
    to: SocketAddr,
    link: frame::Link,
) -> Option<TxFrame> {
    let addr = port.xsk.take_free()?;
    let built = port.xsk.chunk_mut(addr).and_then(|(chunk, _)| {
        chunk
            .get_mut(COPY_AT..COPY_AT + payload.len())?
            .copy_from_slice(payload);
        frame::build(chunk, COPY_AT, payload.len(), src, to, link)
    });
    let Some((start, flen)) = built else {
        port.xsk.recycle(addr);
        return None;
    };
    Some(TxFrame {
        addr: addr + start as u64,
        len: u32::try_from(flen).ok()?,
        sock,
        to,
        payload: addr + COPY_AT as u64,
        payload_len: payload.len(),
    })
}

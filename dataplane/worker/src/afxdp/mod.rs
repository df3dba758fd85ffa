//! AF_XDP backend: the worker receives and sends the packets of its ports through AF_XDP
//! sockets, and runs the same relay decision as the other backends on them
//! ([`Relay::on_packet`](crate::relay::Relay::on_packet)); only the packet I/O differs.
//!
//! Set-up ([`run`]): for every interface that holds one of the worker's realm addresses
//! (the XDP program is attached to it, [`crate::FastPathConfig`]), one AF_XDP socket on the
//! queue of the worker's index, with a UMEM of its own ([`xsk`]), zero-copy where the driver
//! has it and copy mode otherwise; the socket goes into the program's XSKMAP and every port
//! of the slice on that address is claimed for it (`portcullis_xdp::XskRegistry`). The
//! UDP sockets of the slice stay bound and polled as with the mmsg backend: they keep the
//! ports reserved, take whatever the program passes to the kernel (a port's packet arriving
//! on another queue), and send what cannot leave through AF_XDP yet.
//!
//! Receive: each frame is parsed with every length checked ([`frame::parse`]: Ethernet,
//! IPv4 or IPv6, UDP, checksums verified); its destination names the socket
//! ([`SocketPlan::socket_at`]); the relay transforms the payload in place in the UMEM
//! chunk (SRTP tailroom included). Send ([`path`]): the relay's verdict names the sending
//! socket and the destination; the frame leaves by the interface holding the sending
//! realm's address, its headers written in front of the payload in the same chunk when
//! that is the interface it came in on ([`frame::build`]), else in a free chunk of that
//! interface's UMEM the payload is copied to. The next hop's MAC is the one the
//! destination's own accepted packets came from on that interface ([`neigh`]); until one
//! has come, when the packet is larger than the interface's MTU, or when the TX ring is
//! full (copy mode completes a frame only once the kernel freed its copy), it is sent
//! through the UDP socket instead (the kernel resolves the neighbour, fragments, queues).
//! On exit the claims and the XSKMAP entries are removed: the ports go back to the
//! kernel's stack.

mod frame;
mod neigh;
mod path;
mod xsk;

use std::net::{IpAddr, SocketAddr};
use std::os::fd::BorrowedFd;

use portcullis_xdp::{XskRegistry, XskTarget, MAX_XSK_SOCKETS};

use crate::epoll::Readiness;
use crate::mmsg::{relay_ready, Batch};
use crate::realm::SocketPlan;
use crate::types::{DataplaneError, FastPathConfig, RealmId};
use crate::worker::WorkerCtx;

/// UMEM chunks per AF_XDP socket (32 MiB): the fill ring's, and as many for frames in
/// the worker's hands and in flight.
const FRAMES: u32 = 8192;
/// How often the sockets' kernel drop counters are read (µs).
const STATS_EVERY_US: u64 = 100_000;
/// epoll tokens of the AF_XDP sockets start here (below: UDP socket indexes).
const XSK_TOKEN: u64 = 1 << 40;

/// One AF_XDP socket of the worker and the interface it is bound to.
struct Port {
    xsk: xsk::Xsk,
    /// Slot in the program's XSKMAP.
    slot: u32,
    /// Our MAC on the interface.
    mac: [u8; 6],
    /// Its MTU: a larger packet leaves through the UDP socket (the kernel fragments it).
    mtu: usize,
}

/// Where each realm's packets come in and leave: its address on the attached interfaces
/// and the port (AF_XDP socket) of the interface holding it.
#[derive(Clone, Copy, Debug)]
struct RealmLink {
    ip: IpAddr,
    port: usize,
}

/// Removes the worker's claims and sockets from the program's maps on exit.
struct Claims<'a> {
    registry: XskRegistry,
    plan: &'a SocketPlan,
    realms: &'a [Option<RealmLink>],
    slots: Vec<u32>,
}

impl Drop for Claims<'_> {
    fn drop(&mut self) {
        for s in 0..self.plan.sockets() {
            if let Some(local) = local_of(self.plan, self.realms, s) {
                self.registry.release(local);
            }
        }
        for &slot in &self.slots {
            self.registry.unset_socket(slot);
        }
    }
}

/// Our address and port of socket `sock` as the program sees it (the realm's address on
/// the attached interfaces); `None` for a realm off them.
fn local_of(plan: &SocketPlan, realms: &[Option<RealmLink>], sock: u32) -> Option<SocketAddr> {
    let realm = plan.realm_of_leg(sock / 2)?;
    let link = (*realms.get(usize::from(realm.0))?)?;
    Some(SocketAddr::new(link.ip, plan.addr(sock)?.port()))
}

fn xdp_err(e: &portcullis_xdp::FastPathError) -> DataplaneError {
    DataplaneError::AfXdp(e.to_string())
}

/// Binds the worker's AF_XDP sockets, one per interface holding a realm's address, and
/// says where each realm (by index: the plan's segments are in realm order) comes in.
fn set_up(
    ctx: &WorkerCtx,
    cfg: &FastPathConfig,
    registry: &mut XskRegistry,
) -> Result<(Vec<Port>, Vec<Option<RealmLink>>), DataplaneError> {
    let queue = u32::from(ctx.id.0);
    let mut ports: Vec<Port> = Vec::new();
    let mut ifaces: Vec<u32> = Vec::new();
    let mut realms = Vec::new();
    for seg in ctx.plan.segments() {
        let ip = cfg
            .local_ips
            .get(usize::from(seg.realm.0))
            .copied()
            .flatten();
        let Some(ip) = ip else {
            realms.push(None);
            continue;
        };
        let Some((ifindex, mac)) = cfg.program.holder(ip) else {
            realms.push(None);
            continue;
        };
        let port = match ifaces.iter().position(|&i| i == ifindex) {
            Some(p) => p,
            None => {
                let n = cfg.program.interfaces().len().max(1) as u32;
                let slot = queue * n + ifaces.len() as u32;
                if slot >= MAX_XSK_SOCKETS {
                    return Err(DataplaneError::AfXdp(format!(
                        "{} AF_XDP sockets at most (media cores × interfaces)",
                        MAX_XSK_SOCKETS
                    )));
                }
                let xsk = xsk::Xsk::bind(ifindex, queue, FRAMES)?;
                registry
                    .set_socket(slot, &xsk.fd())
                    .map_err(|e| xdp_err(&e))?;
                tracing::info!(
                    worker = ctx.id.0,
                    ifindex,
                    queue,
                    mode = ?xsk.mode,
                    "AF_XDP socket bound"
                );
                ifaces.push(ifindex);
                let mtu = mtu_of(cfg, ifindex);
                ports.push(Port {
                    xsk,
                    slot,
                    mac,
                    mtu,
                });
                ports.len() - 1
            }
        };
        realms.push(Some(RealmLink { ip, port }));
    }
    if ports.is_empty() {
        return Err(DataplaneError::AfXdp(
            "no media realm address is on an interface the XDP program is attached to".to_owned(),
        ));
    }
    Ok((ports, realms))
}

/// The MTU of attached interface `ifindex` (1500 when it cannot be read).
fn mtu_of(cfg: &FastPathConfig, ifindex: u32) -> usize {
    cfg.program
        .interfaces()
        .iter()
        .find(|i| i.ifindex == ifindex)
        .and_then(|i| std::fs::read_to_string(format!("/sys/class/net/{}/mtu", i.name)).ok())
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(1500)
}

fn claim_all(
    plan: &SocketPlan,
    realms: &[Option<RealmLink>],
    ports: &[Port],
    registry: &mut XskRegistry,
    queue: u32,
) -> Result<(), DataplaneError> {
    for s in 0..plan.sockets() {
        let Some(local) = local_of(plan, realms, s) else {
            continue;
        };
        let Some(port) = plan
            .realm_of_leg(s / 2)
            .and_then(|r| realms.get(usize::from(r.0)).copied().flatten())
            .and_then(|l| ports.get(l.port))
        else {
            continue;
        };
        let to = XskTarget {
            ifindex: port.xsk.ifindex,
            queue,
            index: port.slot,
        };
        registry.claim(local, to).map_err(|e| xdp_err(&e))?;
    }
    Ok(())
}

/// The AF_XDP worker loop.
pub(crate) fn run(ctx: &mut WorkerCtx) -> Result<(), DataplaneError> {
    let cfg = ctx.af_xdp.clone().ok_or_else(|| {
        DataplaneError::AfXdp("the af_xdp backend needs the XDP program".to_owned())
    })?;
    let mut registry = cfg.program.xsk().map_err(|e| xdp_err(&e))?;
    let (mut ports, realms) = set_up(ctx, &cfg, &mut registry)?;
    let plan = ctx.plan.clone();
    let slots = ports.iter().map(|p| p.slot).collect();
    let mut claims = Claims {
        registry,
        plan: &plan,
        realms: &realms,
        slots,
    };
    claim_all(
        &plan,
        &realms,
        &ports,
        &mut claims.registry,
        u32::from(ctx.id.0),
    )?;
    let mut readiness = Readiness::new(ctx)?;
    for (i, p) in ports.iter().enumerate() {
        // SAFETY: the descriptor belongs to `p.xsk`, which outlives `readiness` (both live
        // until this function returns; `readiness` is declared after `ports`, dropped
        // first).
        let fd = unsafe { BorrowedFd::borrow_raw(p.xsk.fd()) };
        readiness.add(fd, XSK_TOKEN + i as u64, "epoll_ctl AF_XDP")?;
    }
    let mut batch = Batch::new();
    let links: Vec<path::Link> = ports
        .iter()
        .map(|p| path::Link {
            ifindex: p.xsk.ifindex,
            mac: p.mac,
            mtu: p.mtu,
        })
        .collect();
    let mut st = path::Scratch::new(links);
    let mut next_stats_us = 0;
    ctx.signal_ready();
    while !ctx.stop {
        let (tokens, now) = readiness.turn(ctx)?;
        for token in tokens {
            if let Some(i) = token.checked_sub(XSK_TOKEN) {
                path::service(ctx, &realms, &mut ports, i as usize, &mut st, now);
            } else {
                relay_ready(ctx, &mut batch, token, now);
            }
        }
        for p in &mut ports {
            p.xsk.reap();
            p.xsk.refill();
        }
        if now >= next_stats_us {
            let dropped = ports.iter().map(|p| p.xsk.dropped()).sum();
            ctx.shared.worker.xsk_rx_dropped.set(dropped);
            next_stats_us = now + STATS_EVERY_US;
        }
    }
    drop(readiness);
    drop(claims);
    Ok(())
}

/// The socket of the slice a frame for `dst` is for: the realm whose address on the
/// attached interfaces is `dst`'s, and the port's place in its segment.
fn socket_of(plan: &SocketPlan, realms: &[Option<RealmLink>], dst: SocketAddr) -> Option<u32> {
    let realm = realms
        .iter()
        .position(|l| l.is_some_and(|l| l.ip == dst.ip()))?;
    plan.socket_at(RealmId(u16::try_from(realm).ok()?), dst.port())
}

//! UDP listeners: N sockets on one address with SO_REUSEPORT, each drained by its own task
//! (RFC 3261 §18.2.1: one datagram is one message).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use crate::border::Admission;
use crate::config::Transport;
use crate::counters::inc;
use crate::error::NetError;
use crate::event::{Inbound, TransportEvent};
use crate::queue::{Class, Refused};
use crate::shared::Shared;

/// Largest UDP payload over IPv4/IPv6 (without jumbograms).
const MAX_DATAGRAM: usize = 65_535;
/// Datagrams received per wake-up before the task yields.
const RECV_BUDGET: usize = 1024;
/// Pause after a receive error.
const RECV_ERROR_BACKOFF: std::time::Duration = std::time::Duration::from_millis(1);

/// The sockets of one UDP listener. All are bound to `local`; the kernel spreads incoming
/// datagrams over them by flow hash (SO_REUSEPORT).
#[derive(Debug)]
pub(crate) struct UdpListener {
    pub(crate) local: SocketAddr,
    pub(crate) sockets: Vec<Arc<UdpSocket>>,
    next: AtomicUsize,
}

fn reuseport_socket(addr: SocketAddr, buffer: usize) -> std::io::Result<std::net::UdpSocket> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    let _ = sock.set_recv_buffer_size(buffer);
    let _ = sock.set_send_buffer_size(buffer);
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    Ok(sock.into())
}

impl UdpListener {
    /// Binds `count` (at least 1) sockets on `addr`. With port 0 the first socket picks the
    /// port and the others join it.
    pub(crate) fn bind(addr: SocketAddr, count: usize, buffer: usize) -> Result<Self, NetError> {
        let err = |source| NetError::Bind {
            transport: Transport::Udp,
            addr,
            source,
        };
        let first = reuseport_socket(addr, buffer).map_err(err)?;
        let local = first.local_addr().map_err(err)?;
        let mut sockets = vec![Arc::new(UdpSocket::from_std(first).map_err(err)?)];
        for _ in 1..count.max(1) {
            let s = reuseport_socket(local, buffer).map_err(err)?;
            sockets.push(Arc::new(UdpSocket::from_std(s).map_err(err)?));
        }
        Ok(UdpListener {
            local,
            sockets,
            next: AtomicUsize::new(0),
        })
    }

    /// Sends one datagram without waiting, from the sockets in turn.
    pub(crate) fn try_send(&self, bytes: &[u8], remote: SocketAddr) -> Result<(), NetError> {
        let n = self.sockets.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = NetError::WouldBlock;
        for i in 0..n {
            let Some(sock) = self.sockets.get((start + i) % n) else {
                continue;
            };
            match sock.try_send_to(bytes, remote) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    // tokio answers WouldBlock until its reactor first saw the socket
                    // writable (right after bind, before any turn of the reactor): ask
                    // the non-blocking socket itself, which only refuses when its send
                    // buffer is really full.
                    match socket2::SockRef::from(sock).send_to(bytes, &remote.into()) {
                        Ok(_) => return Ok(()),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => last = NetError::Io(e),
                    }
                }
                Err(e) => last = NetError::Io(e),
            }
        }
        Err(last)
    }
}

/// Whether a datagram holds only whitespace: a keepalive some user agents send over UDP.
fn is_keepalive(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
}

/// Receives datagrams on one socket until shutdown or until the event queues close.
///
/// Before a datagram takes a place in a queue: a banned source's is dropped, an unknown
/// source's over `unknown_source_rate` is dropped (both counted), a configured peer's
/// goes to the peers' queue and any other to the shared one ([`crate::TransportEvents`]).
///
/// Each wake-up drains the socket, up to [`RECV_BUDGET`] datagrams, before yielding: the
/// work per datagram here is small, so the socket's kernel buffer (shared by every
/// source, first come first served) stays empty and overload is met at the event queues,
/// where configured peers have their own.
pub(crate) async fn recv_loop(shared: Arc<Shared>, sock: Arc<UdpSocket>, local: SocketAddr) {
    let mut shutdown = shared.shutdown_rx();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            r = sock.readable() => if r.is_err() {
                tokio::time::sleep(RECV_ERROR_BACKOFF).await;
                continue;
            },
            _ = shutdown.changed() => return,
        }
        let mut drained = false;
        for _ in 0..RECV_BUDGET {
            let (n, remote) = match sock.try_recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    drained = true;
                    break;
                }
                // Transient faults (ENOMEM, ICMP-reported errors): keep going, without
                // spinning if the error persists.
                Err(_) => {
                    tokio::time::sleep(RECV_ERROR_BACKOFF).await;
                    break;
                }
            };
            if !datagram(&shared, local, buf.get(..n).unwrap_or_default(), remote) {
                return;
            }
        }
        if !drained {
            tokio::task::yield_now().await;
        }
    }
}

/// Handles one datagram; `false` once the consumer is gone.
fn datagram(shared: &Shared, local: SocketAddr, data: &[u8], remote: SocketAddr) -> bool {
    let n = data.len();
    let now = Instant::now();
    let class = match shared.border.admit_datagram(remote.ip(), now) {
        Admission::Banned => {
            inc(&shared.counters.banned_drops);
            return true;
        }
        Admission::OverRate => {
            inc(&shared.counters.source_rate_drops);
            return true;
        }
        Admission::Trunk => Class::Trunk,
        Admission::Unknown => Class::Other,
    };
    if n > shared.limits.max_message_bytes {
        inc(&shared.counters.oversize_drops);
        return true;
    }
    if is_keepalive(data) {
        inc(&shared.counters.keepalives);
        return true;
    }
    // A full queue drops the datagram before it is copied.
    if !shared.events.has_room(class) {
        return queue_full(shared, class);
    }
    let ev = TransportEvent::Message(Inbound {
        transport: Transport::Udp,
        local,
        remote,
        conn: None,
        bytes: data.to_vec(),
        tls_peer_names: None,
        received_at: now,
    });
    match shared.events.try_send(class, ev) {
        Ok(()) => shared.counters.message_in(Transport::Udp, n),
        Err(Refused::Full) => return queue_full(shared, class),
        Err(Refused::Closed) => return false,
    }
    true
}

fn queue_full(shared: &Shared, class: Class) -> bool {
    inc(&shared.counters.event_queue_drops);
    if class == Class::Trunk {
        inc(&shared.counters.trunk_queue_drops);
    }
    true
}

//! State shared by the transports handle and every driver task ([`Shared`]): the
//! counters, limits and event queues, the admission state ([`Border`]), the connection
//! table under its caps, the TLS client config, and the TLS server side of each listener.

use rustls::{ClientConfig, ServerConfig};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use tokio::sync::{mpsc, watch};

use crate::border::Border;
use crate::config::{Limits, TlsServerSettings, Transport};
use crate::conn::ConnId;
use crate::counters::{dec, inc, NetCounters};
use crate::error::TlsConfigError;
use crate::event::Outbound;
use crate::queue::{Class, EventQueues};
use crate::tls;

/// The TLS side of one listener: the settings it was built from and the rustls config.
#[derive(Debug)]
pub(crate) struct ServerTls {
    pub(crate) transport: Transport,
    pub(crate) settings: TlsServerSettings,
    pub(crate) config: Arc<ServerConfig>,
}

impl ServerTls {
    pub(crate) fn build(
        transport: Transport,
        settings: TlsServerSettings,
    ) -> Result<Self, TlsConfigError> {
        Ok(ServerTls {
            transport,
            config: tls::server_config(transport, &settings)?,
            settings,
        })
    }
}

/// A hot-swappable TLS server side: new handshakes (and their name check) use the current
/// value, established connections keep theirs.
pub(crate) type ServerConfigCell = Arc<RwLock<Arc<ServerTls>>>;

/// An open (or opening) stream connection as the send path sees it.
#[derive(Debug)]
pub(crate) struct ConnEntry {
    transport: Transport,
    remote: SocketAddr,
    /// TLS connections we opened: the name the server certificate was verified against.
    server_name: Option<String>,
    pub(crate) tx: mpsc::Sender<Vec<u8>>,
}

/// Invariant: `by_remote` lists exactly the ids of `by_id` (per transport and remote), and
/// `open`/`per_ip` count the live [`ConnSlot`]s.
#[derive(Debug, Default)]
pub(crate) struct ConnTable {
    pub(crate) by_id: HashMap<ConnId, ConnEntry>,
    pub(crate) by_remote: HashMap<SocketAddr, Vec<ConnId>>,
    open: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// State shared by the handle and every driver task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) counters: NetCounters,
    pub(crate) limits: Limits,
    pub(crate) events: EventQueues,
    pub(crate) border: Border,
    pub(crate) shutdown: watch::Receiver<bool>,
    conns: Mutex<ConnTable>,
    next_conn: AtomicU64,
    pub(crate) tls_client: RwLock<Option<Arc<ClientConfig>>>,
    pub(crate) runtime: tokio::runtime::Handle,
}

/// A reserved place under the connection caps; released on drop (also when the task
/// owning it is aborted), together with the connection's table entry.
#[derive(Debug)]
pub(crate) struct ConnSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
    id: Option<ConnId>,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut t = self.shared.table();
        if let Some(id) = self.id {
            if let Some(e) = t.by_id.remove(&id) {
                if let Some(v) = t.by_remote.get_mut(&e.remote) {
                    v.retain(|c| *c != id);
                    if v.is_empty() {
                        t.by_remote.remove(&e.remote);
                    }
                }
            }
            dec(&self.shared.counters.connections_open);
        }
        t.open = t.open.saturating_sub(1);
        if let Some(n) = t.per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                t.per_ip.remove(&self.ip);
            }
        }
    }
}

impl ConnSlot {
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Shared {
    pub(crate) fn new(
        limits: Limits,
        events: EventQueues,
        shutdown: watch::Receiver<bool>,
        tls_client: Option<Arc<ClientConfig>>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Shared {
            counters: NetCounters::default(),
            limits,
            events,
            border: Border::new(limits.unknown_source_rate),
            shutdown,
            conns: Mutex::new(ConnTable::default()),
            next_conn: AtomicU64::new(1),
            tls_client: RwLock::new(tls_client),
            runtime,
        }
    }

    pub(crate) fn table(&self) -> MutexGuard<'_, ConnTable> {
        // A panic while holding the lock leaves the table consistent (no multi-step
        // updates span a panic point), so a poisoned lock is still usable.
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `ip` is banned now.
    pub(crate) fn is_refused(&self, ip: IpAddr) -> bool {
        self.border.is_banned(ip, std::time::Instant::now())
    }

    /// The event queue of a connection with `ip`.
    pub(crate) fn class_of(&self, ip: IpAddr) -> Class {
        if self.border.is_trunk(ip) {
            Class::Trunk
        } else {
            Class::Other
        }
    }

    pub(crate) fn shutdown_rx(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// Takes a slot under the global cap and, for inbound connections, the per-IP cap;
    /// inbound connections from sources that are not configured peers (`trunk` false)
    /// stop short of the `trunk_connection_reserve`.
    pub(crate) fn reserve(
        self: &Arc<Self>,
        ip: IpAddr,
        inbound: bool,
        trunk: bool,
    ) -> Option<ConnSlot> {
        let mut t = self.table();
        let per_ip = t.per_ip.get(&ip).copied().unwrap_or(0);
        let max = self.limits.max_tcp_connections;
        let unknown_max = max.saturating_sub(self.limits.trunk_connection_reserve);
        let reserved = inbound && !trunk && t.open >= unknown_max;
        if t.open >= max || (inbound && per_ip >= self.limits.max_connections_per_ip) || reserved {
            if reserved && t.open < max {
                inc(&self.counters.reserve_refusals);
            }
            inc(&self.counters.connections_refused);
            return None;
        }
        t.open += 1;
        *t.per_ip.entry(ip).or_insert(0) += 1;
        Some(ConnSlot {
            shared: Arc::clone(self),
            ip,
            id: None,
        })
    }

    /// Makes a connection reachable by [`SipTransports::send`] and returns its receiver.
    pub(crate) fn register(
        &self,
        slot: &mut ConnSlot,
        transport: Transport,
        remote: SocketAddr,
        server_name: Option<String>,
    ) -> (ConnId, mpsc::Sender<Vec<u8>>, mpsc::Receiver<Vec<u8>>) {
        let id = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::channel(self.limits.per_connection_queue.max(1));
        let mut t = self.table();
        t.by_id.insert(
            id,
            ConnEntry {
                transport,
                remote,
                server_name,
                tx: tx.clone(),
            },
        );
        t.by_remote.entry(remote).or_default().push(id);
        slot.id = Some(id);
        inc(&self.counters.connections_open);
        (id, tx, rx)
    }

    pub(crate) fn find_conn(
        &self,
        out: &Outbound,
    ) -> Option<(ConnId, Transport, mpsc::Sender<Vec<u8>>)> {
        let t = self.table();
        if let Some(id) = out.conn {
            if let Some(e) = t.by_id.get(&id) {
                return Some((id, e.transport, e.tx.clone()));
            }
        }
        t.by_remote.get(&out.remote)?.iter().rev().find_map(|id| {
            let e = t.by_id.get(id)?;
            // A TLS connection is reused only for the name it was verified against
            // (RFC 5923 §5 ties reuse to the authenticated identity).
            let name_ok = match (&out.tls_server_name, &e.server_name) {
                (None, _) => true,
                (Some(want), Some(have)) => want.eq_ignore_ascii_case(have),
                (Some(_), None) => false,
            };
            (e.transport.same_wire(out.transport) && (name_ok || !out.transport.is_tls()))
                .then(|| (*id, e.transport, e.tx.clone()))
        })
    }
}

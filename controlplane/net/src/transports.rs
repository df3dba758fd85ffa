//! [`SipTransports`]: the set of listeners and connections, and RFC 3261 §18 send logic.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::border::TrunkSources;
use crate::config::{
    ListenerConfig, TlsClientSettings, TlsServerSettings, Transport, TransportConfig,
};
use crate::conn::ConnId;
use crate::counters::{inc, NetCounters};
use crate::error::{NetError, TlsConfigError};
use crate::event::Outbound;
use crate::queue::{self, TransportEvents};
use crate::shared::{ConnTable, ServerConfigCell, ServerTls, Shared};
use crate::stream;
use crate::tls;
use crate::udp::{self, UdpListener};

/// A bound TLS listener: where it was asked to listen, where it listens, its live side.
#[derive(Debug)]
struct TlsListener {
    configured: SocketAddr,
    local: SocketAddr,
    cell: ServerConfigCell,
}

/// TLS material read from disk and checked by [`SipTransports::prepare_tls`], swapped in
/// by [`SipTransports::apply_tls`]. Holding it changes nothing.
#[derive(Debug)]
pub struct PreparedTls {
    servers: Vec<(ServerConfigCell, Arc<ServerTls>)>,
    client: Option<Arc<ClientConfig>>,
    client_settings: Option<TlsClientSettings>,
}

impl PreparedTls {
    /// Number of listeners whose material this replaces.
    pub fn listeners(&self) -> usize {
        self.servers.len()
    }
}

/// Handle to all SIP listeners and connections. Cheap to clone; when the last clone is
/// dropped every task stops and the event channel closes.
#[derive(Debug, Clone)]
pub struct SipTransports {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    /// The UDP listeners, for the send path (their receive tasks hold the sockets too).
    udp: Vec<UdpListener>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    local_addrs: Vec<(Transport, SocketAddr)>,
    /// One per TLS listener, in listener order.
    tls_servers: Vec<TlsListener>,
    tls_client_settings: Mutex<Option<TlsClientSettings>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        let tasks = self.tasks.get_mut().unwrap_or_else(|p| p.into_inner());
        for t in tasks.drain(..) {
            t.abort();
        }
    }
}

/// Ends a connection's writer once its queue is drained (the table's sender is dropped).
fn close_entry(t: &mut ConnTable, conn: ConnId) -> bool {
    match t.by_id.get_mut(&conn) {
        Some(e) => {
            let (dead, _) = mpsc::channel(1);
            e.tx = dead;
            true
        }
        None => false,
    }
}

impl SipTransports {
    /// Opens every listener and starts its tasks on the current tokio runtime.
    ///
    /// Errors: a listener that cannot bind, TLS material that cannot be loaded.
    pub async fn bind(
        config: TransportConfig,
    ) -> Result<(SipTransports, TransportEvents), NetError> {
        let runtime = tokio::runtime::Handle::current();
        let per_listener = config
            .udp_sockets_per_listener
            .unwrap_or_else(|| runtime.metrics().num_workers())
            .max(1);
        let tls_client = match &config.tls_client {
            Some(s) => Some(tls::client_config(s)?),
            None => None,
        };

        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        let mut tls_servers = Vec::new();
        let mut local_addrs = Vec::new();
        for l in &config.listeners {
            if l.transport == Transport::Udp {
                let u = UdpListener::bind(l.addr, per_listener, config.udp_buffer_bytes)?;
                local_addrs.push((Transport::Udp, u.local));
                udp.push(u);
                continue;
            }
            let cell = if l.transport.is_tls() {
                let s = l
                    .tls
                    .as_ref()
                    .ok_or(TlsConfigError::MissingSettings(l.addr))?;
                let side = ServerTls::build(l.transport, s.clone())?;
                Some(Arc::new(RwLock::new(Arc::new(side))))
            } else {
                None
            };
            let listener = bind_tcp(l.addr).map_err(|source| NetError::Bind {
                transport: l.transport,
                addr: l.addr,
                source,
            })?;
            let local = listener.local_addr()?;
            local_addrs.push((l.transport, local));
            if let Some(c) = &cell {
                tls_servers.push(TlsListener {
                    configured: l.addr,
                    local,
                    cell: Arc::clone(c),
                });
            }
            tcp.push((listener, l.transport, local, cell));
        }

        let (events, rx) = queue::channel(config.event_queue);
        let (shutdown_tx, shutdown) = watch::channel(false);
        let shared = Arc::new(Shared::new(
            config.limits,
            events,
            shutdown,
            tls_client,
            runtime,
        ));

        let mut tasks = Vec::new();
        for l in &udp {
            for s in &l.sockets {
                let fut = udp::recv_loop(Arc::clone(&shared), Arc::clone(s), l.local);
                tasks.push(shared.runtime.spawn(fut));
            }
        }
        for (listener, transport, local, cell) in tcp {
            let fut = stream::accept_loop(Arc::clone(&shared), listener, transport, local, cell);
            tasks.push(shared.runtime.spawn(fut));
        }

        let t = SipTransports {
            inner: Arc::new(Inner {
                shared,
                udp,
                shutdown_tx,
                tasks: Mutex::new(tasks),
                local_addrs,
                tls_servers,
                tls_client_settings: Mutex::new(config.tls_client),
            }),
        };
        Ok((t, rx))
    }

    /// The bound addresses, in listener order (ports resolved when 0 was asked).
    pub fn local_addrs(&self) -> &[(Transport, SocketAddr)] {
        &self.inner.local_addrs
    }

    /// The first bound address of a transport.
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.inner
            .local_addrs
            .iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, a)| *a)
    }

    /// Number of UDP sockets bound (all listeners together).
    pub fn udp_socket_count(&self) -> usize {
        self.inner.udp.iter().map(|l| l.sockets.len()).sum()
    }

    /// Live counters.
    pub fn counters(&self) -> &NetCounters {
        &self.inner.shared.counters
    }

    /// Stream connections open now (including ones still connecting).
    pub fn connection_count(&self) -> usize {
        self.inner.shared.table().by_id.len()
    }

    /// Queues one message (RFC 3261 §18.1.1 / §18.2.2). Never waits.
    ///
    /// - UDP: sent at once from the listener bound to `out.local` (else the first one of
    ///   the destination's address family).
    /// - TCP/TLS: on connection `out.conn` if open, else on an open connection to
    ///   `out.remote` of the same transport, else on a new connection (TLS: SNI and
    ///   certificate check against `out.tls_server_name`, or the IP address when `None`).
    ///   Returns the connection used. A failure after this returns `Ok` (connect, handshake,
    ///   write) is reported as [`crate::TransportEvent::SendFailed`].
    pub fn send(&self, out: Outbound) -> Result<Option<ConnId>, NetError> {
        let shared = &self.inner.shared;
        let r = self.send_inner(out);
        if r.is_err() {
            inc(&shared.counters.send_failures);
        }
        r
    }

    fn send_inner(&self, out: Outbound) -> Result<Option<ConnId>, NetError> {
        let shared = &self.inner.shared;
        let len = out.bytes.len();
        if len > shared.limits.max_message_bytes {
            return Err(NetError::TooLarge {
                len,
                limit: shared.limits.max_message_bytes,
            });
        }
        if *shared.shutdown.borrow() {
            return Err(NetError::Shutdown);
        }
        if out.transport == Transport::Udp {
            let l = self
                .inner
                .udp
                .iter()
                .find(|l| Some(l.local) == out.local)
                .or_else(|| {
                    self.inner
                        .udp
                        .iter()
                        .find(|l| l.local.is_ipv4() == out.remote.is_ipv4())
                })
                .ok_or(NetError::NoListener {
                    transport: out.transport,
                    remote: out.remote,
                })?;
            l.try_send(&out.bytes, out.remote)?;
            shared.counters.message_out(Transport::Udp, len);
            return Ok(None);
        }
        if let Some((id, _, tx)) = shared.find_conn(&out) {
            return match tx.try_send(out.bytes) {
                Ok(()) => Ok(Some(id)),
                Err(mpsc::error::TrySendError::Full(_)) => Err(NetError::QueueFull(id)),
                Err(mpsc::error::TrySendError::Closed(_)) => Err(NetError::UnknownConnection(id)),
            };
        }
        self.connect_and_send(out)
    }

    fn connect_and_send(&self, out: Outbound) -> Result<Option<ConnId>, NetError> {
        let shared = &self.inner.shared;
        let tls = if out.transport.is_tls() {
            let cfg = shared
                .tls_client
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .ok_or(NetError::TlsClientNotConfigured)?;
            let name = match &out.tls_server_name {
                Some(n) => rustls::pki_types::ServerName::try_from(n.clone())
                    .map_err(|_| NetError::InvalidServerName(n.clone()))?,
                None => rustls::pki_types::ServerName::IpAddress(out.remote.ip().into()),
            };
            Some((cfg, name))
        } else {
            None
        };
        let mut slot = shared
            .reserve(out.remote.ip(), false, true)
            .ok_or(NetError::ConnectionLimit)?;
        let name = out
            .tls_server_name
            .clone()
            .filter(|_| out.transport.is_tls());
        let (id, tx, rx) = shared.register(&mut slot, out.transport, out.remote, name);
        tx.try_send(out.bytes)
            .map_err(|_| NetError::QueueFull(id))?;
        drop(tx);
        let fut = stream::connect(slot, id, out.transport, out.remote, tls, rx);
        shared.runtime.spawn(fut);
        Ok(Some(id))
    }

    /// Closes a connection: queued messages are still written, then the socket is shut
    /// down and [`crate::TransportEvent::ConnectionClosed`] is reported.
    pub fn close(&self, conn: ConnId) -> bool {
        let mut t = self.inner.shared.table();
        close_entry(&mut t, conn)
    }

    /// Refuses `ip` for `duration` (a policy ban; a later end wins over an earlier one):
    /// its UDP datagrams are dropped before the event queues (`banned_drops`), new stream
    /// connections are closed at accept (counted as refused), open ones are closed as by
    /// [`SipTransports::close`], and neither a framing error nor an over-rate message from
    /// that source is answered. Returns how many open connections were closed.
    pub fn refuse(&self, ip: IpAddr, duration: Duration) -> usize {
        let shared = &self.inner.shared;
        let now = Instant::now();
        shared.border.ban(ip, now + duration, now);
        let mut t = shared.table();
        let open: Vec<ConnId> = t
            .by_remote
            .iter()
            .filter(|(remote, _)| remote.ip() == ip)
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect();
        open.into_iter()
            .filter(|id| close_entry(&mut t, *id))
            .count()
    }

    /// Sources refused at this moment.
    pub fn refused_sources(&self) -> usize {
        self.inner.shared.border.banned(Instant::now())
    }

    /// Replaces the classification of configured peers (trunk ACLs and addresses; on
    /// reload). Datagrams and new connections use it at once; an open connection keeps
    /// the queue it was given when it opened.
    pub fn set_trunk_sources(&self, sources: TrunkSources) {
        self.inner.shared.border.set_trunks(sources);
    }

    /// Re-reads the PEM files of every TLS listener and of the client settings, and swaps
    /// the configurations in. All-or-nothing: on error nothing changes. New handshakes use
    /// the new certificates; established connections are kept.
    pub fn reload_tls(&self) -> Result<(), NetError> {
        let listeners: Vec<ListenerConfig> = self
            .inner
            .tls_servers
            .iter()
            .map(|l| {
                let cur = Arc::clone(&l.cell.read().unwrap_or_else(|p| p.into_inner()));
                ListenerConfig {
                    transport: cur.transport,
                    addr: l.configured,
                    tls: Some(cur.settings.clone()),
                }
            })
            .collect();
        let client = self
            .inner
            .tls_client_settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let prepared = self.prepare_tls(&listeners, client)?;
        self.apply_tls(prepared);
        Ok(())
    }

    /// Reads and checks the TLS material of a reload without changing anything: for every
    /// bound TLS listener, the entry of `listeners` with the same transport and configured
    /// address (its files are read again even when the paths are unchanged, so files
    /// replaced in place are picked up); and the outbound settings `client`. Bound
    /// listeners absent from `listeners` (moved or removed: a restart applies that) keep
    /// what they have. Blocking file I/O: call it off the async workers.
    ///
    /// # Errors
    /// The first listener or client whose certificate, key or roots cannot be loaded, or
    /// whose key does not match its certificate, naming the listener and the file.
    pub fn prepare_tls(
        &self,
        listeners: &[ListenerConfig],
        client: Option<TlsClientSettings>,
    ) -> Result<PreparedTls, NetError> {
        let mut servers = Vec::new();
        for l in &self.inner.tls_servers {
            let transport = l.cell.read().unwrap_or_else(|p| p.into_inner()).transport;
            let Some(want) = listeners
                .iter()
                .find(|c| c.transport == transport && c.addr == l.configured)
            else {
                continue;
            };
            let err = |source| NetError::ListenerTls {
                addr: l.configured,
                source: Box::new(source),
            };
            let settings = want
                .tls
                .clone()
                .ok_or_else(|| err(TlsConfigError::MissingSettings(l.configured)))?;
            let side = ServerTls::build(transport, settings).map_err(err)?;
            servers.push((Arc::clone(&l.cell), Arc::new(side)));
        }
        let client_cfg = match &client {
            Some(s) => Some(tls::client_config(s).map_err(NetError::ClientTls)?),
            None => None,
        };
        Ok(PreparedTls {
            servers,
            client: client_cfg,
            client_settings: client,
        })
    }

    /// Swaps in what [`Self::prepare_tls`] read: new TLS handshakes, inbound and outbound,
    /// use it; established connections keep the material they were made with.
    pub fn apply_tls(&self, prepared: PreparedTls) {
        for (cell, side) in prepared.servers {
            *cell.write().unwrap_or_else(|p| p.into_inner()) = side;
        }
        *self
            .inner
            .shared
            .tls_client
            .write()
            .unwrap_or_else(|p| p.into_inner()) = prepared.client;
        *self
            .inner
            .tls_client_settings
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = prepared.client_settings;
    }

    /// Replaces the TLS settings of the listener bound to `local` (certificate, key,
    /// client CA, expected client names). On error nothing changes.
    pub fn set_listener_tls(
        &self,
        local: SocketAddr,
        settings: TlsServerSettings,
    ) -> Result<(), NetError> {
        let cell = self
            .inner
            .tls_servers
            .iter()
            .find(|l| l.local == local)
            .map(|l| &l.cell)
            .ok_or(NetError::UnknownListener(local))?;
        let transport = cell.read().unwrap_or_else(|p| p.into_inner()).transport;
        let side = ServerTls::build(transport, settings)?;
        *cell.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(side);
        Ok(())
    }

    /// Replaces the outbound TLS settings (e.g. a renewed Teams client certificate).
    pub fn set_tls_client(&self, settings: Option<TlsClientSettings>) -> Result<(), NetError> {
        let cfg = match &settings {
            Some(s) => Some(tls::client_config(s)?),
            None => None,
        };
        *self
            .inner
            .shared
            .tls_client
            .write()
            .unwrap_or_else(|p| p.into_inner()) = cfg;
        *self
            .inner
            .tls_client_settings
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = settings;
        Ok(())
    }

    /// Stops accepting and receiving, and closes every connection. The event channel
    /// closes once the tasks have ended.
    pub fn shutdown(&self) {
        let _ = self.inner.shutdown_tx.send(true);
        let mut tasks = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for t in tasks.drain(..) {
            t.abort();
        }
    }
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    TcpListener::from_std(sock.into())
}

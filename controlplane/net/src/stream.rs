//! TCP and TLS connections: accept (with caps, the trunk reserve and the mTLS name check),
//! connect (with SNI and server-name verification), and the per-connection task that
//! frames inbound bytes (RFC 3261 §18.3), answers CRLFCRLF keepalive pings (RFC 5626
//! §3.5.1, §4.4.1), writes queued messages and enforces the idle timeout and the receive
//! guards ([`crate::guard`]: message rate, buffer cap, slow messages).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_sip::{Frame, FramerLimits, StreamFramer};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::Transport;
use crate::conn::ConnId;
use crate::counters::inc;
use crate::error::NetError;
use crate::event::{CloseReason, Inbound, TransportEvent};
use crate::guard::{rate_limited_response, ConnGuard};
use crate::queue::Class;
use crate::shared::{ConnSlot, ServerConfigCell, Shared};
use crate::tls;

/// Read size per syscall; the framer keeps partial messages across reads.
const READ_CHUNK: usize = 16 * 1024;
/// After a framing error (answered by the driver), how long queued answers to earlier
/// messages may still be written before the connection closes.
const FRAMING_GRACE: Duration = Duration::from_secs(2);
/// Pause after an accept error (EMFILE, ENFILE...) so a full fd table does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);
/// The CRLFCRLF ping (RFC 5626 §4.4.1).
const PING: &[u8] = b"\r\n\r\n";
/// The CRLF pong (RFC 5626 §4.4.1).
const PONG: &[u8] = b"\r\n";

/// What a connection task knows about its connection.
#[derive(Debug, Clone)]
struct ConnInfo {
    id: ConnId,
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
    tls_peer_names: Option<Arc<[String]>>,
    /// The event queue of the connection's events (configured peer or not).
    class: Class,
}

/// Accepts connections on one TCP/TLS/mTLS listener until shutdown.
pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    transport: Transport,
    local: SocketAddr,
    tls: Option<ServerConfigCell>,
) {
    let mut shutdown = shared.shutdown_rx();
    loop {
        let (sock, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        // A refused (banned) source or over a cap: the socket is dropped at once, i.e.
        // closed (RST if data is pending). Configured peers may use the reserve.
        if shared.is_refused(remote.ip()) {
            inc(&shared.counters.connections_refused);
            continue;
        }
        let class = shared.class_of(remote.ip());
        let Some(slot) = shared.reserve(remote.ip(), true, class == Class::Trunk) else {
            continue;
        };
        let cell = tls.clone();
        tokio::spawn(async move {
            accepted(slot, sock, (transport, local, remote, class), cell).await;
        });
    }
}

async fn accepted(
    mut slot: ConnSlot,
    sock: TcpStream,
    (transport, local, remote, class): (Transport, SocketAddr, SocketAddr, Class),
    tls: Option<ServerConfigCell>,
) {
    let shared = Arc::clone(slot.shared());
    let _ = sock.set_nodelay(true);
    let Some(cell) = tls else {
        let (id, _tx, rx) = shared.register(&mut slot, Transport::Tcp, remote, None);
        let info = ConnInfo {
            id,
            transport: Transport::Tcp,
            local,
            remote,
            tls_peer_names: None,
            class,
        };
        drop(_tx);
        opened_then_run(slot, sock, info, rx).await;
        return;
    };
    let side = Arc::clone(&cell.read().unwrap_or_else(|p| p.into_inner()));
    let handshake = TlsAcceptor::from(Arc::clone(&side.config)).accept(sock);
    let stream = match timeout(shared.limits.connect_timeout, handshake).await {
        Ok(Ok(s)) => s,
        Ok(Err(_)) | Err(_) => {
            inc(&shared.counters.tls_handshake_failures);
            return;
        }
    };
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first());
    let names = leaf.map(|leaf| tls::leaf_dns_names(leaf).unwrap_or_default());
    let expected = side.settings.expected_client_names.as_slice();
    if transport == Transport::Mtls || leaf.is_some() {
        let ok = leaf.is_some_and(|leaf| tls::leaf_acceptable(expected, leaf));
        if !ok {
            inc(&shared.counters.tls_name_rejections);
            let mut stream = stream;
            let _ = timeout(Duration::from_secs(1), stream.shutdown()).await;
            return;
        }
    }
    let (id, tx, rx) = shared.register(&mut slot, transport, remote, None);
    drop(tx);
    let info = ConnInfo {
        id,
        transport,
        local,
        remote,
        tls_peer_names: names.map(Arc::from),
        class,
    };
    opened_then_run(slot, stream, info, rx).await;
}

/// Opens a connection for [`crate::SipTransports::send`] and runs it. On failure every
/// queued message is reported as [`TransportEvent::SendFailed`].
pub(crate) async fn connect(
    slot: ConnSlot,
    id: ConnId,
    transport: Transport,
    remote: SocketAddr,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    mut rx: mpsc::Receiver<Vec<u8>>,
) {
    let shared = Arc::clone(slot.shared());
    let class = shared.class_of(remote.ip());
    let connect = async {
        let sock = TcpStream::connect(remote)
            .await
            .map_err(|source| NetError::Connect { remote, source })?;
        let _ = sock.set_nodelay(true);
        let local = sock.local_addr()?;
        match tls {
            None => Ok((local, Conn::Plain(sock))),
            Some((cfg, name)) => {
                let s = TlsConnector::from(cfg)
                    .connect(name, sock)
                    .await
                    .map_err(|source| {
                        inc(&shared.counters.tls_handshake_failures);
                        NetError::Handshake { remote, source }
                    })?;
                Ok((local, Conn::Tls(Box::new(s))))
            }
        }
    };
    let res = match timeout(shared.limits.connect_timeout, connect).await {
        Ok(r) => r,
        Err(_) => Err(NetError::Timeout(remote)),
    };
    let (local, conn) = match res {
        Ok(x) => x,
        Err(e) => {
            let what = e.to_string();
            let kind = match &e {
                NetError::Connect { source, .. } | NetError::Handshake { source, .. } => {
                    source.kind()
                }
                NetError::Timeout(_) => std::io::ErrorKind::TimedOut,
                _ => std::io::ErrorKind::Other,
            };
            let mut first = Some(e);
            fail_queued(&shared, (id, transport, remote, class), &mut rx, || {
                first
                    .take()
                    .unwrap_or_else(|| NetError::Io(std::io::Error::new(kind, what.clone())))
            })
            .await;
            drop(slot);
            let closed = TransportEvent::ConnectionClosed {
                conn: id,
                transport,
                remote,
                reason: CloseReason::ConnectFailed,
            };
            let _ = shared.events.send(class, closed).await;
            return;
        }
    };
    let tls_peer_names = match &conn {
        Conn::Plain(_) => None,
        Conn::Tls(s) => s
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|leaf| Arc::from(tls::leaf_dns_names(leaf).unwrap_or_default())),
    };
    let info = ConnInfo {
        id,
        transport,
        local,
        remote,
        tls_peer_names,
        class,
    };
    match conn {
        Conn::Plain(s) => opened_then_run(slot, s, info, rx).await,
        Conn::Tls(s) => opened_then_run(slot, *s, info, rx).await,
    }
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Reports every message still queued toward a dead connection.
async fn fail_queued(
    shared: &Shared,
    (conn, transport, remote, class): (ConnId, Transport, SocketAddr, Class),
    rx: &mut mpsc::Receiver<Vec<u8>>,
    mut error: impl FnMut() -> NetError,
) {
    rx.close();
    while let Ok(bytes) = rx.try_recv() {
        inc(&shared.counters.send_failures);
        let ev = TransportEvent::SendFailed {
            conn,
            transport,
            remote,
            bytes,
            error: error(),
        };
        if shared.events.send(class, ev).await.is_err() {
            return;
        }
    }
}

async fn opened_then_run<S>(slot: ConnSlot, stream: S, info: ConnInfo, rx: mpsc::Receiver<Vec<u8>>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let shared = Arc::clone(slot.shared());
    inc(&shared.counters.connections_total);
    let opened = TransportEvent::ConnectionOpened {
        conn: info.id,
        transport: info.transport,
        local: info.local,
        remote: info.remote,
        tls_peer_names: info.tls_peer_names.clone(),
    };
    if shared.events.send(info.class, opened).await.is_err() {
        return;
    }
    let reason = run(&shared, stream, &info, rx).await;
    // Unregister before reporting, so a send racing with the event fails cleanly.
    drop(slot);
    let closed = TransportEvent::ConnectionClosed {
        conn: info.id,
        transport: info.transport,
        remote: info.remote,
        reason,
    };
    let _ = shared.events.send(info.class, closed).await;
}

/// What one frame asks the connection task to do (the frame's borrow ends here).
enum Step {
    Deliver(Vec<u8>),
    Ping,
    Pong,
    Broken(portcullis_sip::FramingError),
    Drained,
}

fn next_step(framer: &mut StreamFramer) -> Step {
    match framer.next_frame() {
        Ok(Some(Frame::Message(m))) => Step::Deliver(m.to_vec()),
        Ok(Some(Frame::Ping)) => Step::Ping,
        Ok(Some(Frame::Pong)) => Step::Pong,
        Ok(None) => Step::Drained,
        Err(e) => Step::Broken(e),
    }
}

/// The connection task proper. Returns why it ended; pending messages are reported failed.
async fn run<S>(
    shared: &Arc<Shared>,
    stream: S,
    info: &ConnInfo,
    mut rx: mpsc::Receiver<Vec<u8>>,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limits = shared.limits;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut framer = StreamFramer::new(FramerLimits {
        max_header_bytes: limits.max_header_bytes,
        max_body_bytes: limits.max_message_bytes,
    });
    let mut guard = ConnGuard::new(&limits);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut shutdown = shared.shutdown_rx();
    let idle = tokio::time::sleep(limits.tcp_idle_timeout);
    tokio::pin!(idle);
    // Set after a framing error: reading stops, writes continue until this deadline.
    let mut broken: Option<portcullis_sip::FramingError> = None;
    let reason = 'conn: loop {
        let reading = broken.is_none();
        let (room, slow_at) = if reading {
            let Some(room) = guard.read_room(framer.buffered(), READ_CHUNK) else {
                inc(&shared.counters.buffer_closes);
                tracing::debug!(conn = %info.id, remote = %info.remote, "stream buffer cap reached");
                break CloseReason::BufferFull;
            };
            (room, guard.deadline(framer.pending(), framer.buffered()))
        } else {
            (READ_CHUNK, None)
        };
        let slow = tokio::time::sleep_until(slow_at.unwrap_or_else(tokio::time::Instant::now));
        tokio::select! {
            r = rd.read(buf.get_mut(..room).unwrap_or_default()), if reading => {
                let n = match r {
                    Ok(0) => break CloseReason::PeerClosed,
                    Ok(n) => n,
                    Err(e) => break CloseReason::Io(e),
                };
                idle.as_mut().reset(tokio::time::Instant::now() + limits.tcp_idle_timeout);
                framer.push(buf.get(..n).unwrap_or_default());
                let mut completed = false;
                loop {
                    match next_step(&mut framer) {
                        Step::Drained => break,
                        Step::Pong => {
                            let ev = TransportEvent::KeepalivePong {
                                conn: info.id,
                                remote: info.remote,
                                received_at: Instant::now(),
                            };
                            if shared.events.send(info.class, ev).await.is_err() {
                                break 'conn CloseReason::Local;
                            }
                        }
                        Step::Ping => {
                            inc(&shared.counters.keepalives);
                            if let Err(e) = write(&mut wr, PONG, limits.tcp_idle_timeout).await {
                                break 'conn CloseReason::Io(e);
                            }
                        }
                        Step::Deliver(bytes) => {
                            completed = true;
                            if !guard.admit_message() {
                                if let Err(e) = over_rate(shared, info, &mut wr, &bytes).await {
                                    break 'conn CloseReason::Io(e);
                                }
                                continue;
                            }
                            let len = bytes.len();
                            let ev = TransportEvent::Message(Inbound {
                                transport: info.transport,
                                local: info.local,
                                remote: info.remote,
                                conn: Some(info.id),
                                bytes,
                                tls_peer_names: info.tls_peer_names.clone(),
                                received_at: Instant::now(),
                            });
                            // Waiting here is TCP back-pressure on the peer.
                            if shared.events.send(info.class, ev).await.is_err() {
                                break 'conn CloseReason::Local;
                            }
                            shared.counters.message_in(info.transport, len);
                        }
                        Step::Broken(error) => {
                            let counter = match error {
                                portcullis_sip::FramingError::HeadersTooLarge { .. }
                                | portcullis_sip::FramingError::BodyTooLarge { .. } => {
                                    &shared.counters.oversize_drops
                                }
                                _ => &shared.counters.framing_errors,
                            };
                            inc(counter);
                            // The message never reaches the core: answer it here with the
                            // codec's stateless response (RFC 3261 §18.3), on this connection,
                            // unless the source is refused (banned): it learns nothing.
                            let reply = match portcullis_sip::framing_error_response(
                                framer.failed_head(),
                                error,
                            ) {
                                _ if shared.is_refused(info.remote.ip()) => None,
                                portcullis_sip::ErrorAction::Respond(b) => Some(b),
                                portcullis_sip::ErrorAction::Drop => None,
                            };
                            let status = reply.as_ref().and(error.status());
                            tracing::debug!(
                                conn = %info.id,
                                remote = %info.remote,
                                %error,
                                ?status,
                                "stream framing error"
                            );
                            if let Some(reply) = reply {
                                if let Err(e) = write(&mut wr, &reply, FRAMING_GRACE).await {
                                    inc(&shared.counters.send_failures);
                                    break 'conn CloseReason::Io(e);
                                }
                                shared.counters.message_out(info.transport, reply.len());
                            }
                            let ev = TransportEvent::FramingError {
                                conn: info.id,
                                remote: info.remote,
                                error,
                                status,
                            };
                            if shared.events.send(info.class, ev).await.is_err() {
                                break 'conn CloseReason::Framing(error);
                            }
                            broken = Some(error);
                            idle.as_mut().reset(tokio::time::Instant::now() + FRAMING_GRACE);
                            break;
                        }
                    }
                }
                guard.after_read(tokio::time::Instant::now(), completed, framer.pending());
            }
            () = slow, if slow_at.is_some() => {
                inc(&shared.counters.slow_closes);
                tracing::debug!(
                    conn = %info.id,
                    remote = %info.remote,
                    pending = ?framer.pending(),
                    buffered = framer.buffered(),
                    "stream message too slow"
                );
                break CloseReason::TooSlow;
            }
            m = rx.recv() => {
                let Some(bytes) = m else { break CloseReason::Local };
                if let Err(e) = write(&mut wr, &bytes, limits.tcp_idle_timeout).await {
                    inc(&shared.counters.send_failures);
                    let ev = TransportEvent::SendFailed {
                        conn: info.id,
                        transport: info.transport,
                        remote: info.remote,
                        bytes,
                        error: NetError::Io(std::io::Error::new(e.kind(), e.to_string())),
                    };
                    let _ = shared.events.send(info.class, ev).await;
                    fail_queued(shared, info.key(), &mut rx, || {
                        NetError::UnknownConnection(info.id)
                    }).await;
                    break CloseReason::Io(e);
                }
                if bytes == PING {
                    // A lone CRLF from the peer is now a pong, not half a ping.
                    framer.ping_sent();
                } else {
                    shared.counters.message_out(info.transport, bytes.len());
                }
                // After a framing error the close deadline stays: queued answers to
                // earlier messages still go out until then.
                if broken.is_none() {
                    idle.as_mut().reset(tokio::time::Instant::now() + limits.tcp_idle_timeout);
                }
            }
            _ = &mut idle => {
                if let Some(e) = broken {
                    break CloseReason::Framing(e);
                }
                inc(&shared.counters.idle_closes);
                break CloseReason::Idle;
            }
            _ = shutdown.changed() => break CloseReason::Local,
        }
    };
    fail_queued(shared, info.key(), &mut rx, || {
        NetError::UnknownConnection(info.id)
    })
    .await;
    let _ = timeout(Duration::from_secs(1), wr.shutdown()).await;
    reason
}

/// A message over `per_connection_rate`: counted, never queued; a request is answered
/// `503` with `Retry-After` (not to a banned source: it learns nothing).
async fn over_rate<W: AsyncWrite + Unpin>(
    shared: &Shared,
    info: &ConnInfo,
    wr: &mut W,
    bytes: &[u8],
) -> std::io::Result<()> {
    inc(&shared.counters.rate_limited);
    if shared.is_refused(info.remote.ip()) {
        return Ok(());
    }
    let Some(reply) = rate_limited_response(bytes) else {
        return Ok(());
    };
    if let Err(e) = write(wr, &reply, shared.limits.tcp_idle_timeout).await {
        inc(&shared.counters.send_failures);
        return Err(e);
    }
    shared.counters.message_out(info.transport, reply.len());
    Ok(())
}

impl ConnInfo {
    fn key(&self) -> (ConnId, Transport, SocketAddr, Class) {
        (self.id, self.transport, self.remote, self.class)
    }
}

/// Writes all of `bytes`, failing when the peer does not take them within `limit`.
async fn write<W: AsyncWrite + Unpin>(
    wr: &mut W,
    bytes: &[u8],
    limit: Duration,
) -> std::io::Result<()> {
    match timeout(limit, async {
        wr.write_all(bytes).await?;
        wr.flush().await
    })
    .await
    {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

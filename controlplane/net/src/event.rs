//! What the drivers report (events) and what they are asked to send.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use portcullis_sip::FramingError;

use crate::config::Transport;
use crate::conn::ConnId;
use crate::error::NetError;

/// One SIP message as received: bytes, where from, and when. The driver made no protocol
/// decision about it; parsing, Via `received`/`rport` stamping (RFC 3261 §18.2.1,
/// RFC 3581 §4) and everything else is the sans-IO core's job.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// Transport it arrived on (`Mtls` when the listener required a client certificate).
    pub transport: Transport,
    /// Our address it arrived at.
    pub local: SocketAddr,
    /// The peer (source address of the datagram or connection).
    pub remote: SocketAddr,
    /// The connection, for stream transports: send the response back on it (RFC 3261 §18.2.2).
    pub conn: Option<ConnId>,
    /// One whole message: a datagram, or a Content-Length framed stream message.
    pub bytes: Vec<u8>,
    /// SAN DNS names of the verified peer certificate (TLS/mTLS with a client certificate).
    pub tls_peer_names: Option<Arc<[String]>>,
    /// When the driver read it.
    pub received_at: Instant,
}

/// Why a connection ended.
#[derive(Debug)]
pub enum CloseReason {
    /// The peer closed its side.
    PeerClosed,
    /// No traffic for `tcp_idle_timeout`.
    Idle,
    /// The byte stream could not be framed (too large, bad Content-Length); reported in a
    /// [`TransportEvent::FramingError`] first.
    Framing(FramingError),
    /// A pending message outgrew `per_connection_buffer`.
    BufferFull,
    /// A message missed `header_timeout` or arrived slower than `min_receive_rate`.
    TooSlow,
    /// Read or write failed.
    Io(std::io::Error),
    /// Opening the connection failed; pending messages were reported as
    /// [`TransportEvent::SendFailed`].
    ConnectFailed,
    /// [`crate::SipTransports::close`] or shutdown.
    Local,
}

/// Everything the drivers report, in the order it happened per connection.
#[derive(Debug)]
pub enum TransportEvent {
    /// A message arrived.
    Message(Inbound),
    /// A stream connection is established (accepted, or opened by a send).
    ConnectionOpened {
        /// The connection.
        conn: ConnId,
        /// Its transport.
        transport: Transport,
        /// Our address.
        local: SocketAddr,
        /// The peer.
        remote: SocketAddr,
        /// SAN DNS names of the verified peer certificate.
        tls_peer_names: Option<Arc<[String]>>,
    },
    /// A stream connection ended; further sends on it fail with
    /// [`NetError::UnknownConnection`].
    ConnectionClosed {
        /// The connection.
        conn: ConnId,
        /// Its transport.
        transport: Transport,
        /// The peer.
        remote: SocketAddr,
        /// Why.
        reason: CloseReason,
    },
    /// The stream broke at a message the framer could not accept. The driver has already
    /// answered it on `conn` with the codec's stateless response (RFC 3261 §21.4.1 400,
    /// §21.5.14 513) when one could be formed; it stops reading and closes the connection
    /// after a short grace, during which messages queued on `conn` are still written.
    FramingError {
        /// The connection.
        conn: ConnId,
        /// The peer.
        remote: SocketAddr,
        /// What went wrong.
        error: FramingError,
        /// The status the driver answered with; `None` when no response could be formed
        /// (garbage, a response, an ACK, missing Via/From/To/Call-ID/CSeq).
        status: Option<u16>,
    },
    /// A lone CRLF arrived on a stream: the pong to a CRLFCRLF ping the core sent with
    /// [`crate::SipTransports::send`] (RFC 5626 §4.4.1), or a stray CRLF between
    /// messages (RFC 3261 §7.5). Pings from the peer are answered by the driver itself.
    KeepalivePong {
        /// The connection.
        conn: ConnId,
        /// The peer.
        remote: SocketAddr,
        /// When it was read.
        received_at: Instant,
    },
    /// Bytes accepted by [`crate::SipTransports::send`] could not be delivered: the
    /// connection could not be opened or broke before they were written. The transaction
    /// layer treats this as a transport error (RFC 3261 §17.1.4, §18.4).
    SendFailed {
        /// The connection that was to carry them.
        conn: ConnId,
        /// Its transport.
        transport: Transport,
        /// Destination.
        remote: SocketAddr,
        /// The message.
        bytes: Vec<u8>,
        /// Cause.
        error: NetError,
    },
}

/// A message to send (RFC 3261 §18.1.1 requests, §18.2.2 responses).
#[derive(Debug, Clone)]
pub struct Outbound {
    /// Transport to use.
    pub transport: Transport,
    /// Destination.
    pub remote: SocketAddr,
    /// Connection to reuse (e.g. the one a request arrived on). When it is closed the send
    /// falls back to an open connection to `remote` of the same transport (TLS: one opened
    /// for the same `tls_server_name`), then to a new one.
    pub conn: Option<ConnId>,
    /// UDP: send from the listener bound to this address (the one the request arrived on).
    /// `None`: the first UDP listener of the right address family.
    pub local: Option<SocketAddr>,
    /// The message.
    pub bytes: Vec<u8>,
    /// TLS: the name sent in SNI and checked against the server certificate
    /// (RFC 5922 §7). Required to open a new TLS connection.
    pub tls_server_name: Option<String>,
}

impl Outbound {
    /// A send with no connection or local address preference.
    pub fn new(transport: Transport, remote: SocketAddr, bytes: Vec<u8>) -> Self {
        Outbound {
            transport,
            remote,
            conn: None,
            local: None,
            bytes,
            tls_server_name: None,
        }
    }
}

//! Errors of the transport layer. Who is to blame is in the variant name: the operator's
//! configuration (`Bind`, `TlsConfig`, `NoListener`, `TlsClientNotConfigured`), our own
//! load (`ConnectionLimit`, `QueueFull`, `WouldBlock`), or the peer/network (`Connect`,
//! `Handshake`, `PeerName`, `Io`, `Timeout`).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

use crate::config::Transport;
use crate::conn::ConnId;

/// Errors from binding, sending and connecting.
#[derive(Debug, Error)]
pub enum NetError {
    /// A listener could not be opened.
    #[error("cannot bind {transport:?} listener on {addr}: {source}")]
    Bind {
        /// Transport of the listener.
        transport: Transport,
        /// Address asked for.
        addr: SocketAddr,
        /// OS error.
        source: io::Error,
    },
    /// Certificates, keys or roots could not be loaded.
    #[error(transparent)]
    TlsConfig(#[from] TlsConfigError),
    /// No UDP listener can send to this address family / local address.
    #[error("no {transport:?} listener to send to {remote} from")]
    NoListener {
        /// Transport asked for.
        transport: Transport,
        /// Destination.
        remote: SocketAddr,
    },
    /// No TLS listener is bound to this address.
    #[error("no TLS listener on {0}")]
    UnknownListener(SocketAddr),
    /// The new TLS material of a listener could not be loaded (reload refused).
    #[error("TLS listener {addr}: {source}")]
    ListenerTls {
        /// Configured address of the listener.
        addr: SocketAddr,
        /// What is wrong with its files.
        source: Box<TlsConfigError>,
    },
    /// The new material for TLS connections we open could not be loaded (reload refused).
    #[error("outbound TLS (client certificate, roots): {0}")]
    ClientTls(TlsConfigError),
    /// The connection named by `conn` is closed (RFC 3261 §18.2.2: the response must then
    /// go to a new connection or fail).
    #[error("connection {0} is closed")]
    UnknownConnection(ConnId),
    /// The writer of this connection is too far behind.
    #[error("send queue of connection {0} is full")]
    QueueFull(ConnId),
    /// The UDP socket send buffer is full; the message was not sent.
    #[error("UDP socket buffer full")]
    WouldBlock,
    /// The message is larger than `max_message_bytes`.
    #[error("message of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Message length.
        len: usize,
        /// Configured limit.
        limit: usize,
    },
    /// The global or per-IP connection cap refused a new connection.
    #[error("connection limit reached")]
    ConnectionLimit,
    /// A TLS send was asked for without [`crate::TransportConfig::tls_client`].
    #[error("outbound TLS is not configured")]
    TlsClientNotConfigured,
    /// TLS needs a server name to verify (SNI and RFC 5922 §7 / RFC 6125 name check).
    #[error("invalid or missing TLS server name {0:?}")]
    InvalidServerName(String),
    /// TCP connect failed.
    #[error("connect to {remote} failed: {source}")]
    Connect {
        /// Destination.
        remote: SocketAddr,
        /// OS error.
        source: io::Error,
    },
    /// TLS handshake failed (includes certificate and server-name verification failures).
    #[error("TLS handshake with {remote} failed: {source}")]
    Handshake {
        /// Peer.
        remote: SocketAddr,
        /// rustls error, wrapped by tokio-rustls.
        source: io::Error,
    },
    /// The verified peer certificate names none of the expected names.
    #[error("peer certificate names {names:?}, none matches the expected names")]
    PeerName {
        /// SAN DNS names the certificate carries.
        names: Vec<String>,
    },
    /// Connect or handshake did not finish in time.
    #[error("connect/handshake with {0} timed out")]
    Timeout(SocketAddr),
    /// Socket I/O error on an established connection or a UDP socket.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The transports were shut down.
    #[error("transports shut down")]
    Shutdown,
}

/// Errors loading TLS material.
#[derive(Debug, Error)]
pub enum TlsConfigError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// The PEM file holds no certificate.
    #[error("no certificate in {0}")]
    NoCertificate(PathBuf),
    /// The PEM file holds no private key.
    #[error("no private key in {0}")]
    NoKey(PathBuf),
    /// A root certificate was rejected.
    #[error("bad root certificate in {path}: {source}")]
    BadRoot {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: rustls::Error,
    },
    /// rustls refused the configuration (unsupported protocol versions, ...).
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// The private key is not the key of the leaf certificate.
    #[error("key {key} does not match the certificate {cert}")]
    KeyMismatch {
        /// The certificate chain file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the certificate and key pair (unsupported key type, bad DER, ...).
    #[error("certificate {cert} with key {key} refused: {source}")]
    CertKey {
        /// The certificate chain file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Cause.
        source: rustls::Error,
    },
    /// The client verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(String),
    /// A `Tls`/`Mtls` listener without `tls` settings, or `Mtls` without `client_ca`.
    #[error("listener {0} lacks TLS settings (certificate, key, and client CA for mTLS)")]
    MissingSettings(SocketAddr),
}

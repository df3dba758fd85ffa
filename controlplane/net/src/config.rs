//! Transport configuration: which sockets to open and the limits that bound what a peer can
//! make us hold.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A SIP transport (RFC 3261 §18). `Mtls` is TLS whose server side requires and checks a
/// client certificate; on the wire and in a Via it is `TLS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Datagrams, one message each (RFC 3261 §18.1.1, §18.2.1).
    Udp,
    /// A byte stream framed by Content-Length (RFC 3261 §18.3).
    Tcp,
    /// TCP inside TLS 1.2/1.3 (RFC 3261 §26.2.1, RFC 5630).
    Tls,
    /// TLS with mutual certificate authentication (Microsoft Teams Direct Routing).
    Mtls,
}

impl Transport {
    /// All transports, in counter index order.
    pub const ALL: [Transport; 4] = [
        Transport::Udp,
        Transport::Tcp,
        Transport::Tls,
        Transport::Mtls,
    ];

    /// Index into per-transport counter arrays.
    pub fn index(self) -> usize {
        match self {
            Transport::Udp => 0,
            Transport::Tcp => 1,
            Transport::Tls => 2,
            Transport::Mtls => 3,
        }
    }

    /// Whether this transport is connection oriented (framed by Content-Length).
    pub fn is_stream(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// Whether the stream is encrypted.
    pub fn is_tls(self) -> bool {
        matches!(self, Transport::Tls | Transport::Mtls)
    }

    /// The transport token of a Via header (RFC 3261 §20.42): `UDP`, `TCP` or `TLS`.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls | Transport::Mtls => "TLS",
        }
    }

    /// Whether a connection carrying `self` may serve a send asked for on `wanted`:
    /// `Tls` and `Mtls` are the same wire protocol.
    pub(crate) fn same_wire(self, wanted: Transport) -> bool {
        self == wanted || (self.is_tls() && wanted.is_tls())
    }
}

/// Server-side TLS material (PEM files), read at bind and on [`crate::SipTransports::reload_tls`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsServerSettings {
    /// Our certificate chain, leaf first.
    pub cert_chain_pem: PathBuf,
    /// The private key of the leaf (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: PathBuf,
    /// Roots that client certificates must chain to. Required for [`Transport::Mtls`].
    pub client_ca: Option<PathBuf>,
    /// After the handshake, the client leaf certificate must be valid for one of these DNS
    /// names (see [`crate::tls::leaf_valid_for`]). Empty: any name the roots vouch for is
    /// accepted.
    pub expected_client_names: Vec<String>,
}

/// Client-side TLS material for connections we open (TLS toward trunks, mTLS toward Teams).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsClientSettings {
    /// Roots that server certificates must chain to (PEM bundle).
    pub roots: PathBuf,
    /// Our client certificate chain and key, presented when the server asks (mTLS).
    pub client_cert: Option<ClientCertificate>,
}

/// A certificate chain and its key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// Chain, leaf first.
    pub cert_chain_pem: PathBuf,
    /// Key of the leaf.
    pub key_pem: PathBuf,
}

/// One listening socket (UDP) or acceptor (TCP/TLS/mTLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Transport of the listener.
    pub transport: Transport,
    /// Local address; port 0 picks a free port (see [`crate::SipTransports::local_addrs`]).
    pub addr: SocketAddr,
    /// Required for `Tls` and `Mtls`, ignored otherwise.
    pub tls: Option<TlsServerSettings>,
}

/// Limits that bound memory and file descriptors per peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message (headers and body); larger datagrams are dropped and counted,
    /// a larger stream message closes its connection.
    pub max_message_bytes: usize,
    /// Largest header section on a stream transport.
    pub max_header_bytes: usize,
    /// Cap on open TCP/TLS connections, inbound and outbound together.
    pub max_tcp_connections: usize,
    /// Cap on open connections from one remote IP address.
    pub max_connections_per_ip: usize,
    /// A connection with no traffic either way for this long is closed.
    pub tcp_idle_timeout: Duration,
    /// Time allowed for a TCP connect plus a TLS handshake.
    pub connect_timeout: Duration,
    /// Messages queued toward one connection before [`crate::NetError::QueueFull`].
    pub per_connection_queue: usize,
    /// Messages per second accepted on one stream connection (a token bucket holding one
    /// second's worth). A request over the rate is answered `503 Service Unavailable` with
    /// `Retry-After` by the driver (an ACK or a response over the rate is dropped); none
    /// reaches the event channel. 0: no limit.
    pub per_connection_rate: u32,
    /// Bytes of one stream connection held before they form a whole message; a
    /// connection whose pending message outgrows it is closed.
    pub per_connection_buffer: usize,
    /// Time from the first byte of a stream message to the end of its header section;
    /// a connection whose message takes longer is closed.
    pub header_timeout: Duration,
    /// Slowest a stream message may arrive, in bytes per second: a message must be whole
    /// within `header_timeout` plus one second per `min_receive_rate` bytes received so
    /// far, or its connection is closed. 0: no minimum.
    pub min_receive_rate: u32,
    /// Connections of [`Limits::max_tcp_connections`] kept for configured peers (see
    /// [`crate::TrunkSources`]) and for connections we open: inbound connections from
    /// other sources are refused once `max_tcp_connections - trunk_connection_reserve`
    /// are open.
    pub trunk_connection_reserve: usize,
    /// Datagrams per second accepted from one source address that is not a configured
    /// peer, before the event channel (a token bucket holding one second's worth); the
    /// rest are dropped and counted. 0: no limit.
    pub unknown_source_rate: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
            max_tcp_connections: 10_000,
            max_connections_per_ip: 256,
            tcp_idle_timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(10),
            per_connection_queue: 256,
            per_connection_rate: 200,
            per_connection_buffer: 256 * 1024,
            header_timeout: Duration::from_secs(10),
            min_receive_rate: 1024,
            trunk_connection_reserve: 0,
            unknown_source_rate: 0,
        }
    }
}

/// Everything [`crate::SipTransports::bind`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    /// Sockets to open.
    pub listeners: Vec<ListenerConfig>,
    /// Limits on peers.
    pub limits: Limits,
    /// UDP sockets bound with SO_REUSEPORT per UDP listener, each with its own receive task.
    /// `None`: one per tokio worker thread.
    pub udp_sockets_per_listener: Option<usize>,
    /// Settings for TLS connections we open. `None`: outbound TLS is refused.
    pub tls_client: Option<TlsClientSettings>,
    /// Capacity of each of the two event queues behind [`crate::TransportEvents`] (one
    /// for configured peers, one for every other source). UDP messages arriving while
    /// their queue is full are dropped and counted; stream readers wait (TCP
    /// back-pressure).
    pub event_queue: usize,
    /// Kernel socket buffer size asked for on UDP sockets (SO_RCVBUF / SO_SNDBUF).
    pub udp_buffer_bytes: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            listeners: Vec::new(),
            limits: Limits::default(),
            udp_sockets_per_listener: None,
            tls_client: None,
            event_queue: 8192,
            udp_buffer_bytes: 4 * 1024 * 1024,
        }
    }
}

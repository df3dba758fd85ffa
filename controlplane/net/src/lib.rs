//! Tokio drivers for SIP over UDP, TCP, TLS and mTLS (RFC 3261 §18, RFC 5626 §3.5.1,
//! RFC 5630, RFC 5922 §7).
//!
//! The drivers make no protocol decision. They move bytes and report
//! `(transport, local, remote, connection, bytes, now)` to one event channel, and send bytes
//! where told. Parsing, Via `received`/`rport` handling (RFC 3261 §18.2.1, RFC 3581) and
//! choosing where a response goes (§18.2.2) belong to the sans-IO core (`portcullis-sip`,
//! `portcullis-engine`). One exception: a stream message that cannot be framed never
//! reaches the core, so the connection task writes the codec's stateless answer to it
//! ([`portcullis_sip::framing_error_response`]) on that connection itself.
//!
//! # API overview
//!
//! | need | use |
//! |---|---|
//! | open the listeners | [`SipTransports::bind`]`(TransportConfig) -> Result<(SipTransports, `[`TransportEvents`]`), NetError>` (async; spawns on the current runtime) |
//! | what to open | [`TransportConfig`] { `listeners: Vec<`[`ListenerConfig`]`>`, `limits: `[`Limits`], `udp_sockets_per_listener`, `tls_client: Option<`[`TlsClientSettings`]`>`, `event_queue`, `udp_buffer_bytes` } |
//! | server TLS / mTLS material | [`TlsServerSettings`] { `cert_chain_pem`, `key_pem`, `client_ca`, `expected_client_names` } |
//! | where ports landed (port 0) | [`SipTransports::local_addrs`], [`SipTransports::local_addr`] |
//! | receive | [`TransportEvents::recv`] / [`TransportEvents::try_recv`]: [`TransportEvent::Message`]`(`[`Inbound`]`)`, plus `ConnectionOpened`, `ConnectionClosed`, `FramingError`, `SendFailed` |
//! | configured peers (trunks), swapped on reload | [`SipTransports::set_trunk_sources`]`(`[`TrunkSources`]`)` |
//! | a policy ban | [`SipTransports::refuse`]`(ip, duration)` |
//! | send (never waits) | [`SipTransports::send`]`(`[`Outbound`]`) -> Result<Option<ConnId>, NetError>` |
//! | close a connection | [`SipTransports::close`]`(ConnId) -> bool` |
//! | reload certificates (SIGHUP) | [`SipTransports::prepare_tls`]`(&[ListenerConfig], Option<TlsClientSettings>) -> Result<`[`PreparedTls`]`, NetError>` (read and check, changes nothing) then [`SipTransports::apply_tls`] (swap); [`SipTransports::reload_tls`] (re-read the same files), [`SipTransports::set_listener_tls`]`(local, TlsServerSettings)`, [`SipTransports::set_tls_client`]`(Option<TlsClientSettings>)` |
//! | counters for metrics | [`SipTransports::counters`]`().snapshot() -> `[`NetCountersSnapshot`] |
//! | stop | [`SipTransports::shutdown`], or drop the last clone |
//!
//! # Behaviour
//!
//! - **Event queues** ([`TransportEvents`]): two bounded queues of `event_queue` events,
//!   one for configured peers ([`TrunkSources`]: trunk ACLs and addresses) and one for
//!   every other source, served [`TRUNK_SHARE`] to 1 when both hold events, so a flood
//!   from unknown sources never takes a trunk's place. A connection's events all go to
//!   the queue of its peer as classified when it opened.
//! - **Before the queues** (UDP): a source banned by [`SipTransports::refuse`] is dropped
//!   (`banned_drops`); an unknown source over `unknown_source_rate` datagrams per second
//!   is dropped (`source_rate_drops`); configured peers are never rate-limited here.
//! - **UDP** (RFC 3261 §18.1.1, §18.2.1): each listener is `udp_sockets_per_listener`
//!   sockets (default: one per tokio worker) bound to the same address with SO_REUSEPORT
//!   and large kernel buffers, each drained by its own task. A datagram over
//!   `max_message_bytes` is dropped and counted; whitespace-only keepalives are absorbed.
//!   When their event queue is full, datagrams are dropped and counted (never block).
//!   Sends go from the listener whose address is `Outbound::local`.
//! - **TCP/TLS** (RFC 3261 §18.3): accepted under a global cap (`max_tcp_connections`,
//!   inbound and outbound together) and a per-remote-IP cap; refused sockets are closed at
//!   once and counted. Bytes are framed by [`portcullis_sip::StreamFramer`] (Content-Length,
//!   header and body limits); a CRLFCRLF ping is answered with a CRLF pong (RFC 5626
//!   §4.4.1). A framing error (bad, missing or conflicting Content-Length, headers or body
//!   over the limits, a start line with control characters such as binary garbage or a
//!   TLS ClientHello) is counted (`framing_errors`, or `oversize_drops` for the limits) and
//!   answered on the connection by the driver with `400 Bad Request (<what>)` or
//!   `513 Message Too Large (<what>)` when the header section holds what a response needs
//!   (Via, From, To, Call-ID, CSeq; never to a response or an ACK), then reported as
//!   [`TransportEvent::FramingError`] (`status`: what was answered, `None` when nothing
//!   could be). The connection then stops reading, still writes what the core queues
//!   (answers to earlier messages) and closes after a 2 s grace. Other connections are
//!   not affected.
//!   Receive guards per connection: a request over `per_connection_rate` messages per
//!   second is answered `503 Service Unavailable (connection rate limit)` with
//!   `Retry-After: 1` and not queued (ACKs and responses over the rate are dropped;
//!   `rate_limited`); a message that would make the connection hold more than
//!   `per_connection_buffer` bytes closes it (`buffer_closes`, [`CloseReason::BufferFull`]);
//!   a message whose header section is not complete `header_timeout` after its first
//!   byte, or which is not whole within that plus one second per `min_receive_rate` bytes
//!   received, closes it (`slow_closes`, [`CloseReason::TooSlow`]; a keepalive CRLF is not
//!   timed). Inbound connections from unknown sources stop at `max_tcp_connections -
//!   trunk_connection_reserve` (`reserve_refusals`); configured peers and our own
//!   connections may use the rest.
//!   To probe a connection, send the bytes `\r\n\r\n` on it; the pong comes back as
//!   [`TransportEvent::KeepalivePong`].
//!   No traffic either way for `tcp_idle_timeout` closes the connection.
//! - **Sending on streams** (RFC 3261 §18.1.1, §18.2.2): connection `Outbound::conn` if
//!   open; else an open connection to `Outbound::remote` of the same transport (for TLS,
//!   only one opened for the same `tls_server_name`); else a new connection, opened in the
//!   background. Errors after `send` returned `Ok` come back as
//!   [`TransportEvent::SendFailed`] carrying the bytes, so the transaction layer can treat
//!   them as transport errors (RFC 3261 §17.1.4).
//! - **TLS** (rustls, ring provider, TLS 1.2 and 1.3 only, never renegotiated: a new
//!   ClientHello on an established TLS 1.2 session gets the `no_renegotiation` alert): the server configuration of
//!   each listener lives behind a lock and is swapped by [`SipTransports::reload_tls`]; new
//!   handshakes use the new certificates. Outbound TLS sends SNI and verifies the server
//!   certificate for `tls_server_name` (or the IP address when `None`) against
//!   `TlsClientSettings::roots`, presenting the client certificate when configured (mTLS
//!   toward Microsoft Teams).
//! - **mTLS listeners**: the client chain must verify against `client_ca`
//!   (`WebPkiClientVerifier`, during the handshake); then the leaf must be valid for one of
//!   `expected_client_names` ([`tls::leaf_valid_for`]: webpki's name check, a SAN wildcard
//!   `*.domain` standing for exactly one label).
//!   The verified names travel with every message as `Inbound::tls_peer_names`.
//!
//! Counters ([`NetCounters`]): messages and bytes in/out per transport, connections
//! open/total/refused, idle closes, oversize drops, framing errors, TLS handshake
//! failures, mTLS name rejections, keepalives, event-queue drops, send failures, banned
//! and over-rate datagrams, rate-limited stream messages, buffer and slow closes, reserve
//! refusals.
#![forbid(unsafe_code)]

mod border;
mod config;
mod conn;
mod counters;
mod error;
mod event;
mod guard;
mod queue;
mod shared;
mod stream;
pub mod tls;
mod transports;
mod udp;

pub use border::TrunkSources;
pub use config::{
    ClientCertificate, Limits, ListenerConfig, TlsClientSettings, TlsServerSettings, Transport,
    TransportConfig,
};
pub use conn::ConnId;
pub use counters::{NetCounters, NetCountersSnapshot, TransportCounters};
pub use error::{NetError, TlsConfigError};
pub use event::{CloseReason, Inbound, Outbound, TransportEvent};
pub use queue::{TransportEvents, TRUNK_SHARE};
pub use transports::{PreparedTls, SipTransports};

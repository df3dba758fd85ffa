//! Sans-IO SIP transaction layer (RFC 3261 §17, RFC 6026).
//!
//! [`TransactionLayer`] owns every client and server transaction of one SIP
//! endpoint. Inputs are pushed with `now`:
//! [`TransactionLayer::handle_message`], [`TransactionLayer::handle_timeout`],
//! [`TransactionLayer::handle_transport_error`]; the transaction user (TU)
//! starts client transactions with [`TransactionLayer::send_request`] /
//! [`TransactionLayer::send_cancel`] and answers server transactions with
//! [`TransactionLayer::respond`]. Outputs are pulled:
//! [`TransactionLayer::poll_transmit`], [`TransactionLayer::poll_timeout`],
//! [`TransactionLayer::poll_event`].
//!
//! The four RFC 3261 state machines live in their own modules; each one
//! consumes its old state on every transition. RFC 6026 "Accepted" states are
//! used for INVITE 2xx: the client transaction absorbs 2xx retransmissions
//! (re-sending the TU's ACK), and the server transaction retransmits the 2xx
//! itself (the UAS core duty of RFC 3261 §13.3.1.4) until the ACK arrives.

mod build;
mod ctx;
mod invite_client;
mod invite_server;
mod key;
mod layer;
pub mod message;
mod non_invite_client;
mod non_invite_server;
mod stats;
pub mod timer;
pub mod via;
mod wire;

use std::fmt;
use std::net::SocketAddr;

pub use build::{build_cancel, make_response};
pub use invite_client::InviteClientState;
pub use invite_server::InviteServerState;
pub use layer::{TransactionLayer, TxConfig};
pub use message::{CSeq, Method, SipMsg};
pub use non_invite_client::NonInviteClientState;
pub use non_invite_server::NonInviteServerState;
pub use stats::TxStats;
pub use timer::{Timer, TimerConfig};
pub use via::{response_target, ResponseTarget, Via, MAGIC_COOKIE};
pub use wire::parse_message;

/// SIP transport (RFC 3261 §18).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    /// Reliable transports disable retransmissions and zero Timers D, I, J, K (§17).
    #[must_use]
    pub const fn is_reliable(self) -> bool {
        !matches!(self, Self::Udp)
    }

    /// Token used in Via (§20.42).
    #[must_use]
    pub const fn as_via_token(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
        }
    }

    /// Parses a Via transport token.
    #[must_use]
    pub fn from_via_token(s: &str) -> Option<Self> {
        [Self::Udp, Self::Tcp, Self::Tls]
            .into_iter()
            .find(|t| t.as_via_token().eq_ignore_ascii_case(s))
    }

    /// Default port (RFC 3261 §19.1.2: 5060, 5061 for TLS).
    #[must_use]
    pub const fn default_port(self) -> u16 {
        match self {
            Self::Tls => 5061,
            _ => 5060,
        }
    }
}

/// Handle of a connection owned by a driver (reliable transports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// A remote peer as seen by the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddr {
    pub transport: Transport,
    pub addr: SocketAddr,
    /// The connection a message arrived on / must leave on, when reliable.
    pub conn: Option<ConnId>,
}

/// Handle of one transaction inside a [`TransactionLayer`]; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub u64);

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tx#{}", self.0)
    }
}

/// The four RFC 3261 §17 transaction kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxKind {
    InviteClient,
    NonInviteClient,
    InviteServer,
    NonInviteServer,
}

impl TxKind {
    /// Every kind, in counter order.
    pub const ALL: [TxKind; 4] = [
        Self::InviteClient,
        Self::NonInviteClient,
        Self::InviteServer,
        Self::NonInviteServer,
    ];
}

/// Current state of a transaction, for inspection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxState {
    InviteClient(InviteClientState),
    NonInviteClient(NonInviteClientState),
    InviteServer(InviteServerState),
    NonInviteServer(NonInviteServerState),
}

/// Bytes the driver must send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub dest: SocketAddr,
    pub transport: Transport,
    /// Connection to reuse for reliable transports (RFC 3261 §18.2.2).
    pub conn: Option<ConnId>,
    /// Transaction that produced the bytes; report send failures with
    /// [`TransactionLayer::handle_transport_error`].
    pub tx: Option<TxId>,
    pub bytes: Vec<u8>,
}

/// What the transaction layer tells its user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxEvent {
    /// A new server transaction was created for `request` (never ACK). The TU
    /// must answer it with [`TransactionLayer::respond`]. For CANCEL,
    /// `cancels` names the INVITE server transaction it matched (§9.2); when
    /// `None` the TU answers 481.
    Request {
        tx: TxId,
        from: PeerAddr,
        request: SipMsg,
        cancels: Option<TxId>,
    },
    /// A response for a client transaction (each one once; retransmissions absorbed).
    Response { tx: TxId, response: SipMsg },
    /// The ACK for a 2xx sent by INVITE server transaction `tx` (RFC 6026 §7.1), once.
    Ack {
        tx: TxId,
        from: PeerAddr,
        request: SipMsg,
    },
    /// An ACK matching no transaction (late 2xx ACK, or stray): the dialog layer decides.
    StrayAck { from: PeerAddr, request: SipMsg },
    /// Timer B/F (client gave up), H (no ACK for a non-2xx) or L (no ACK for a 2xx,
    /// the TU should send BYE per §13.3.1.4) fired.
    Timeout { tx: TxId, timer: Timer },
    /// The driver reported that a message of `tx` could not be sent (§17.1.4, §17.2.4).
    TransportError { tx: TxId },
}

/// Malformed or incomplete message (peer's fault). Maps to `400 Bad Request`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MsgError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("invalid {0}")]
    Invalid(&'static str),
    #[error("malformed message: {0}")]
    Syntax(&'static str),
    #[error("codec: {0}")]
    Codec(#[from] portcullis_sip::ParseError),
}

/// Errors of the transaction layer API (the TU's fault or a stale handle).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("unknown or terminated transaction {0}")]
    UnknownTransaction(TxId),
    #[error("{0} is not allowed in the current state")]
    InvalidState(&'static str),
    #[error("request without an RFC 3261 branch (use TransactionLayer::new_branch)")]
    MissingBranch,
    #[error("a transaction with the same branch and method already exists")]
    DuplicateTransaction,
    #[error("bad message: {0}")]
    Message(#[from] MsgError),
}

//! rtpengine's ng control protocol: Portcullis as a media node driven by Kamailio's
//! `rtpengine` module (or anything else speaking ng), over the same data plane the B2BUA
//! uses.
//!
//! ```text
//!  Kamailio (rtpengine module) ──UDP: cookie + bencode──► driver (tokio, one task)
//!                                                           │ NgServer (sans-IO): cookie,
//!                                                           │ reply cache, limits, counters
//!                                                           │ NgCalls (sans-IO): call-id +
//!                                                           │ tags → streams, SDP rewrite
//!                                                           ▼
//!                                   DataplaneMedia → data plane workers (rings)
//! ```
//!
//! Commands: `ping`, `offer`, `answer`, `delete`, `query`, `list`. The keys and flags
//! Kamailio sends in common configurations are implemented (`replace` origin and
//! session-connection, `ICE=remove`, `transport-protocol` RTP/AVP ↔ RTP/SAVP with SDES,
//! `trust-address`, `symmetric`/`asymmetric`, `SIP-source-address`, `media-address`,
//! `direction`, `record-call=no`, `to-tag`, `via-branch`); anything else is answered
//! with an error naming it ([`request`]).
//!
//! [`server`], [`calls`], [`sdp`] and [`request`] do no I/O and read no clock (time is a
//! [`calls::Now`] parameter, randomness a fill function); [`driver`] is the thin tokio
//! loop and [`node`] the `portcullis media-node` runtime.

pub mod bencode;
pub mod calls;
pub mod counters;
pub mod driver;
pub mod node;
pub mod request;
pub mod sdp;
pub mod server;
#[cfg(test)]
mod tests;

pub use calls::{NgCalls, NgSettings, Now};
pub use counters::{ErrorKind, NgCounters, NgStats};
pub use server::NgServer;

/// Why a request was refused; the text is the reply's `error-reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NgError {
    /// Not a well-formed request.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// Larger than `ng.max_message_size`.
    #[error("message of {0} bytes exceeds ng.max_message_size ({1})")]
    Oversized(usize, usize),
    /// Not implemented by this node (names the command, key, flag or value).
    #[error("not implemented: {0}")]
    Unsupported(String),
    /// A required key is missing.
    #[error("missing key: {0}")]
    Missing(&'static str),
    /// No such call or tag.
    #[error("unknown call: {0}")]
    UnknownCall(String),
    /// The SDP cannot be parsed or does not fit the call.
    #[error("SDP: {0}")]
    Sdp(String),
    /// No room: sessions, media ports or the data plane's command ring.
    #[error("no capacity: {0}")]
    Capacity(String),
}

impl NgError {
    /// The metric label of the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            NgError::Malformed(_) => ErrorKind::Malformed,
            NgError::Oversized(..) => ErrorKind::Oversized,
            NgError::Unsupported(_) => ErrorKind::Unsupported,
            NgError::Missing(_) => ErrorKind::Missing,
            NgError::UnknownCall(_) => ErrorKind::UnknownCall,
            NgError::Sdp(_) => ErrorKind::Sdp,
            NgError::Capacity(_) => ErrorKind::Capacity,
        }
    }
}

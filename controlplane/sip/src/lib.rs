//! Sans-IO SIP wire codec (RFC 3261) and SDP codec (RFC 8866).
//!
//! No sockets, no clocks: bytes in, views and bytes out.
//!
//! # API overview
//!
//! | need | use |
//! |---|---|
//! | parse a datagram or a framed stream message | [`Message::parse`]`(&[u8]) -> Result<Message<'_>, ParseError>` |
//! | start line | [`Message::method`], [`Message::request_uri`], [`Message::status`], [`Message::reason`] |
//! | typed headers (parsed on access) | [`Message::top_via`], [`Message::vias`], [`Message::from`], [`Message::to`], [`Message::call_id`], [`Message::cseq`], [`Message::contacts`], [`Message::routes`], [`Message::max_forwards`], [`Message::content_type`], [`Message::expires`], [`Message::session_expires`], [`Message::min_se`], [`Message::auth`], [`Message::refer_to`], [`Message::replaces`], [`Message::asserted_identities`], [`Message::retry_after`], [`Message::has_option`], [`Message::allows`] |
//! | raw headers, unknown ones in order | [`Message::headers`], [`Message::get`], [`Message::get_by_name`], [`Message::elements`] |
//! | check a request/response before a transaction or UA uses it | [`validate_request`], [`validate_response`] |
//! | answer a malformed request (or decide to drop) | [`error_response`] → [`ErrorAction`] |
//! | TCP/TLS framing, CRLF keepalive (RFC 5626 §3.5.1) | [`StreamFramer`] → [`Frame`] |
//! | build / edit / serialise | [`Request::builder`], [`Response::to`] (RFC 3261 §8.2.6), [`OwnedMessage`] (`request`, `response_to`, `from_message`, `push`, `push_front`, `set`, `remove`, `set_header_uri`, `set_to_tag`, `set_request_uri`, `set_body`, `to_bytes`, `write_to_slice`) |
//! | URIs | [`Uri`], [`SipUri`], [`TelUri`], [`Host`], [`percent_decode`], [`escape_user`] |
//! | SDP | [`sdp`] |
//!
//! Parse errors are [`ParseError`]; [`ParseError::status`] and [`ParseError::reason`]
//! give the response to send (e.g. `400 Bad Request (Content-Length mismatch)`).
//!
//! ```
//! use portcullis_sip::{validate_request, HeaderName, Message, Response};
//!
//! let wire = b"OPTIONS sip:sbc.example.com SIP/2.0\r\n\
//! Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK77;rport\r\n\
//! From: <sip:ping@example.net>;tag=a1\r\nTo: <sip:sbc.example.com>\r\n\
//! Call-ID: 42@192.0.2.1\r\nCSeq: 7 OPTIONS\r\nMax-Forwards: 70\r\nl: 0\r\n\r\n";
//! let req = Message::parse(wire)?;
//! validate_request(&req)?;
//! assert_eq!(req.top_via()?.branch(), Some("z9hG4bK77"));
//! let mut ok = Response::to(&req, 200, "OK");
//! ok.set_to_tag("b2").push(HeaderName::Allow, "INVITE, ACK, BYE, CANCEL, OPTIONS");
//! let bytes = ok.to_bytes();
//! assert!(bytes.starts_with(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060"));
//! # Ok::<(), portcullis_sip::ParseError>(())
//! ```
#![forbid(unsafe_code)]

mod error;
mod framer;
pub mod grammar;
pub mod header;
mod message;
mod method;
mod owned;
mod params;
pub mod sdp;
mod uri;
mod validate;

pub use error::{BufferTooSmall, ParseError, UriError};
pub use framer::{
    framing_error_response, Frame, FramerLimits, FramingError, Pending, StreamFramer,
};
pub use header::{
    Auth, CSeq, Contact, Header, HeaderName, MediaType, NameAddr, RPort, Replaces, RetryAfter,
    SessionExpires, Via,
};
pub use message::{Message, RequestLine, StartLine, StatusLine};
pub use method::Method;
pub use owned::{OwnedMessage, Request, Response};
pub use params::{Param, Params};
pub use uri::{escape_user, percent_decode, Host, SipUri, TelUri, Uri, UriParams};
pub use validate::{error_response, validate_request, validate_response, ErrorAction};

//! Bytes ↔ [`SipMsg`] through the `portcullis-sip` codec.
//!
//! Incoming bytes are parsed by [`portcullis_sip::Message::parse`] (borrowed
//! views) and checked with [`portcullis_sip::validate_request`] /
//! [`portcullis_sip::validate_response`] (RFC 3261 §8.1.3, §8.2) before the
//! transaction layer copies the start line and headers once into its owned
//! model. Malformed requests get the codec's stateless error response
//! ([`portcullis_sip::error_response`]).

use portcullis_sip::{validate_request, validate_response, ErrorAction, Message, OwnedMessage};

use super::message::SipMsg;
use super::MsgError;

/// Parses and validates one complete SIP message (datagram or framed stream message).
pub fn parse_message(bytes: &[u8]) -> Result<SipMsg, MsgError> {
    let msg = Message::parse(bytes)?;
    if msg.is_request() {
        validate_request(&msg)?;
    } else {
        validate_response(&msg)?;
    }
    Ok(SipMsg::from_wire(&msg))
}

/// The stateless answer to bytes that failed [`parse_message`], if one can be formed.
pub(crate) fn error_reply(bytes: &[u8], err: &MsgError) -> Option<Vec<u8>> {
    let MsgError::Codec(e) = err else { return None };
    match portcullis_sip::error_response(bytes, e) {
        ErrorAction::Respond(b) => Some(b),
        ErrorAction::Drop => None,
    }
}

impl SipMsg {
    /// Copies a parsed codec message (the header section is copied once, not per header).
    #[must_use]
    pub fn from_wire(msg: &Message<'_>) -> Self {
        Self::from_owned(OwnedMessage::from_message(msg))
    }

    /// The codec's owned, editable form of this message.
    #[must_use]
    pub fn to_owned_message(&self) -> OwnedMessage {
        self.as_owned().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::Method;

    #[test]
    fn round_trip() {
        let raw = b"INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nf: <sip:a@a>;tag=1\r\nt: <sip:b@h>\r\ni: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nl: 3\r\n\r\nabcdef";
        let m = parse_message(raw).unwrap();
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(m.body(), b"abc");
        let again = parse_message(&m.to_bytes()).unwrap();
        assert_eq!(again.body(), b"abc");
        assert_eq!(again.top_via().unwrap().branch(), Some("z9hG4bK1"));
        let owned = m.to_owned_message();
        assert_eq!(SipMsg::from_owned(owned).call_id().unwrap(), "c1");
    }

    #[test]
    fn malformed_input_is_an_error_with_a_reply_when_possible() {
        assert!(parse_message(b"garbage\r\n\r\n").is_err());
        assert!(parse_message(b"SIP/2.0 99 x\r\n\r\n").is_err());
        let no_cseq = b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nFrom: <sip:a@a>;tag=1\r\nTo: <sip:x>\r\nCall-ID: c\r\n\r\n";
        let err = parse_message(no_cseq).unwrap_err();
        assert_eq!(
            error_reply(no_cseq, &err),
            None,
            "no CSeq: no response can be formed"
        );
        let bad_cl = b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nFrom: <sip:a@a>;tag=1\r\nTo: <sip:x>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 50\r\n\r\nab";
        let err = parse_message(bad_cl).unwrap_err();
        let reply = error_reply(bad_cl, &err).expect("400 can be formed");
        assert!(reply.starts_with(b"SIP/2.0 400"));
    }
}

//! Checks a transaction or UA core applies after parsing (RFC 3261 §8.1.1, §8.2,
//! §16.3), and the error response for messages that fail.
//!
//! [`crate::Message::parse`] only checks framing and the start line so that a
//! proxy can relay what it does not understand. Before a request enters a
//! transaction, [`validate_request`] checks the mandatory headers and every header
//! the core relies on; it returns the [`ParseError`] whose status and reason to
//! answer with.

use crate::error::ParseError;
use crate::header::{
    check_date, check_token_list, parse_max_forwards, parse_scalar, Auth, CSeq, Contact,
    HeaderName, MediaType, NameAddr, RetryAfter, SessionExpires, Via,
};
use crate::message::Message;
use crate::owned::OwnedMessage;

/// Headers that may appear at most once (RFC 3261 §7.3.1: not a comma list).
const SINGLE: [HeaderName; 7] = [
    HeaderName::To,
    HeaderName::From,
    HeaderName::CallId,
    HeaderName::CSeq,
    HeaderName::MaxForwards,
    HeaderName::ContentLength,
    HeaderName::ContentType,
];

fn common(msg: &Message<'_>) -> Result<(), ParseError> {
    for kind in [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ] {
        if msg.get(kind).is_none() {
            return Err(ParseError::MissingHeader(kind));
        }
    }
    for kind in SINGLE {
        if msg.headers_of(kind).nth(1).is_some() {
            return Err(ParseError::DuplicateHeader(kind));
        }
    }
    if msg.content_length_conflict() {
        return Err(ParseError::DuplicateHeader(HeaderName::ContentLength));
    }
    for v in msg.vias() {
        v?;
    }
    msg.from()?;
    msg.to()?;
    let call_id = msg.call_id().unwrap_or_default();
    if !crate::header::valid_call_id(call_id) {
        return Err(ParseError::BadHeader(HeaderName::CallId));
    }
    msg.cseq()?;
    for h in msg.headers() {
        match h.kind {
            HeaderName::Contact => {
                for e in h.elements() {
                    Contact::parse(e)?;
                }
            }
            HeaderName::Route | HeaderName::RecordRoute | HeaderName::PAssertedIdentity => {
                for e in h.elements() {
                    NameAddr::parse(e, h.kind)?;
                }
            }
            HeaderName::ReferTo => {
                NameAddr::parse(h.value, h.kind)?;
            }
            HeaderName::MaxForwards => {
                parse_max_forwards(h.value)?;
            }
            HeaderName::Expires | HeaderName::RSeq => {
                parse_scalar(h.value, h.kind)?;
            }
            HeaderName::ContentType => {
                MediaType::parse(h.value)?;
            }
            HeaderName::Allow
            | HeaderName::Supported
            | HeaderName::Require
            | HeaderName::ProxyRequire
            | HeaderName::Unsupported => check_token_list(h.value, h.kind)?,
            HeaderName::SessionExpires | HeaderName::MinSe => {
                SessionExpires::parse(h.value, h.kind)?;
            }
            HeaderName::RetryAfter => {
                RetryAfter::parse(h.value)?;
            }
            HeaderName::WwwAuthenticate
            | HeaderName::ProxyAuthenticate
            | HeaderName::Authorization
            | HeaderName::ProxyAuthorization => {
                Auth::parse(h.value, h.kind)?;
            }
            HeaderName::Replaces => {
                crate::header::Replaces::parse(h.value)?;
            }
            HeaderName::Date => check_date(h.value)?,
            _ => {}
        }
    }
    Ok(())
}

/// Validates a parsed request for a transaction/UA core (RFC 3261 §8.2, §16.3):
/// mandatory Via/From/To/Call-ID/CSeq present once, every typed header the core
/// uses well formed (Max-Forwards ≤ 255, CSeq in 32 bits, Expires/contact
/// `expires` in 32 bits, Date in GMT), and the CSeq method equal to the request
/// method (§8.1.1.5). Max-Forwards may be absent (RFC 2543 peers, RFC 4475 §3.4.1).
pub fn validate_request(msg: &Message<'_>) -> Result<(), ParseError> {
    let Some(method) = msg.method() else {
        return Err(ParseError::BadRequestLine);
    };
    common(msg)?;
    let cseq: CSeq<'_> = msg.cseq()?;
    if cseq.method != method {
        return Err(ParseError::CSeqMethodMismatch);
    }
    Ok(())
}

/// Validates a parsed response before it is matched to a client transaction
/// (RFC 3261 §8.1.3). A failing response is dropped, never answered.
pub fn validate_response(msg: &Message<'_>) -> Result<(), ParseError> {
    if msg.status().is_none() {
        return Err(ParseError::BadStatusLine);
    }
    common(msg)
}

/// What the transport does with a message it could not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorAction {
    /// Send these bytes back (a stateless 4xx/5xx to the request).
    Respond(Vec<u8>),
    /// Drop silently (responses, or requests without the headers a response needs).
    Drop,
}

/// Forms the error response for `buf` that failed with `err`, when possible.
///
/// A response can be formed only for a request whose top Via parses (it routes the
/// response, RFC 3261 §18.2.2) and that has exactly one From, To, Call-ID and CSeq
/// (copied verbatim even when malformed, §8.2.6.2); the request line itself may
/// be broken (e.g. an unsupported version gets `505`). ACK is never answered. Responses are never answered
/// (RFC 3261 §18.1.2: a bad response is discarded).
pub fn error_response(buf: &[u8], err: &ParseError) -> ErrorAction {
    let Some(parts) = salvage(buf) else {
        return ErrorAction::Drop;
    };
    let mut r = OwnedMessage::response(err.status(), &err.reason());
    for (kind, value) in parts.iter() {
        r.push(*kind, value);
    }
    ErrorAction::Respond(r.to_bytes())
}

/// The headers of a request needed for a response, read leniently.
fn salvage(buf: &[u8]) -> Option<Vec<(HeaderName, &str)>> {
    let end = memchr::memmem::find(buf, b"\r\n\r\n").map_or(buf.len(), |e| e + 2);
    let head = std::str::from_utf8(buf.get(..end)?).ok()?;
    let head = head.trim_start_matches("\r\n");
    let (first, rest) = head.split_once("\r\n")?;
    if first.len() < 4 || first.get(..4)?.eq_ignore_ascii_case("SIP/") {
        return None;
    }
    let method = first.split(' ').next()?;
    let mut out: Vec<(HeaderName, &str)> = Vec::new();
    // Unfold by walking lines: a line starting with SP/HT continues the previous one.
    let mut fields: Vec<(usize, usize)> = Vec::new();
    let mut off = 0;
    for line in rest.split("\r\n") {
        let start = off;
        off += line.len() + 2;
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.1 = start + line.len();
            }
        } else if !line.is_empty() {
            fields.push((start, start + line.len()));
        }
    }
    for (s, e) in fields {
        let field = rest.get(s..e)?;
        let Some((name, value)) = field.split_once(':') else {
            continue;
        };
        let kind = HeaderName::from_name(name.trim_end_matches([' ', '\t']));
        let value = crate::grammar::trim_lws(value);
        if matches!(
            kind,
            HeaderName::Via
                | HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
        ) {
            out.push((kind, value));
        }
    }
    let one = |k: HeaderName| out.iter().filter(|(h, _)| *h == k).count() == 1;
    let ok = out
        .iter()
        .filter(|(k, _)| *k == HeaderName::Via)
        .flat_map(|(_, v)| crate::grammar::CommaSplit::new(v))
        .next()
        .is_some_and(|v| Via::parse_any_version(v).is_ok())
        && one(HeaderName::From)
        && one(HeaderName::To)
        && one(HeaderName::CallId)
        && one(HeaderName::CSeq);
    // ACK is never answered (RFC 3261 §17.2.1 / §8.2.6: no response to ACK).
    (ok && method != "ACK").then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "OPTIONS sip:u@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:u@example.com>\r\nCall-ID: x@y\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n";

    fn msg_with(extra: &str) -> Vec<u8> {
        format!("{GOOD}{extra}Content-Length: 0\r\n\r\n").into_bytes()
    }

    #[test]
    fn good_request_passes() {
        let b = msg_with("");
        assert_eq!(validate_request(&Message::parse(&b).unwrap()), Ok(()));
    }

    #[test]
    fn typed_failures() {
        for (extra, err) in [
            (
                "Max-Forwards: 300\r\n",
                ParseError::DuplicateHeader(HeaderName::MaxForwards),
            ),
            (
                "Expires: 99999999999\r\n",
                ParseError::BadHeader(HeaderName::Expires),
            ),
            (
                "Date: Fri, 01 Jan 2010 16:00:00 EST\r\n",
                ParseError::BadHeader(HeaderName::Date),
            ),
            (
                "Contact: <sip:a@b>;expires=x\r\n",
                ParseError::BadHeader(HeaderName::Contact),
            ),
            (
                "Call-ID: other\r\n",
                ParseError::DuplicateHeader(HeaderName::CallId),
            ),
            (
                "Supported: a b\r\n",
                ParseError::BadHeader(HeaderName::Supported),
            ),
        ] {
            let b = msg_with(extra);
            assert_eq!(
                validate_request(&Message::parse(&b).unwrap()),
                Err(err),
                "{extra}"
            );
        }
        let mismatch = GOOD.replace("1 OPTIONS", "1 INVITE") + "\r\n";
        assert_eq!(
            validate_request(&Message::parse(mismatch.as_bytes()).unwrap()),
            Err(ParseError::CSeqMethodMismatch)
        );
        let missing = GOOD.replace("Call-ID: x@y\r\n", "") + "\r\n";
        assert_eq!(
            validate_request(&Message::parse(missing.as_bytes()).unwrap()),
            Err(ParseError::MissingHeader(HeaderName::CallId))
        );
    }

    #[test]
    fn error_response_for_bad_version_and_drop_otherwise() {
        let b = GOOD.replace("SIP/2.0\r\n", "SIP/7.0\r\n") + "\r\n";
        let err = Message::parse(b.as_bytes()).unwrap_err();
        assert_eq!(err, ParseError::VersionNotSupported);
        let ErrorAction::Respond(resp) = error_response(b.as_bytes(), &err) else {
            panic!("expected a response");
        };
        let r = Message::parse(&resp).unwrap();
        assert_eq!(r.status(), Some(505));
        assert_eq!(r.reason(), Some("Version Not Supported"));
        assert_eq!(r.call_id(), Some("x@y"));
        assert_eq!(r.cseq().unwrap().seq, 1);

        let cl = format!("{GOOD}Content-Length: 10\r\n\r\nabc");
        let err = Message::parse(cl.as_bytes()).unwrap_err();
        let ErrorAction::Respond(resp) = error_response(cl.as_bytes(), &err) else {
            panic!("expected a response");
        };
        assert!(resp.starts_with(b"SIP/2.0 400 Bad Request (Content-Length mismatch)\r\n"));

        let no_callid = GOOD.replace("Call-ID: x@y\r\n", "") + "\r\n";
        assert_eq!(
            error_response(no_callid.as_bytes(), &ParseError::BadRequestLine),
            ErrorAction::Drop
        );
        let resp = b"SIP/2.0 4294967301 x\r\nVia: SIP/2.0/UDP h\r\n\r\n";
        assert_eq!(
            error_response(resp, &ParseError::BadStatusCode),
            ErrorAction::Drop
        );
        assert_eq!(
            error_response(b"\xff\xfe", &ParseError::InvalidUtf8),
            ErrorAction::Drop
        );
    }
}

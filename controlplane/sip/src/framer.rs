//! Message framing for stream transports (TCP, TLS, RFC 3261 §18.3) and the CRLF
//! keepalive of RFC 5626 §3.5.1.
//!
//! Feed bytes with [`StreamFramer::push`], then call [`StreamFramer::next_frame`]
//! until it returns `Ok(None)`. A returned [`Frame::Message`] borrows the framer's
//! buffer and holds exactly one message (start line to end of body), ready for
//! [`crate::Message::parse`]. Any [`FramingError`] means the byte stream cannot be
//! resynchronised: the caller answers with [`framing_error_response`] (built from
//! [`StreamFramer::failed_head`]) when a response can be formed, then closes the connection.

use memchr::memmem;
use thiserror::Error;

use crate::error::ParseError;
use crate::grammar::trim_lws;
use crate::header::HeaderName;
use crate::validate::{error_response, ErrorAction};

/// Limits that bound the memory a connection can make us hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramerLimits {
    /// Start line plus headers plus the empty line.
    pub max_header_bytes: usize,
    /// Content-Length.
    pub max_body_bytes: usize,
}

impl Default for FramerLimits {
    fn default() -> Self {
        FramerLimits {
            max_header_bytes: 32 * 1024,
            max_body_bytes: 256 * 1024,
        }
    }
}

/// What the stream held next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// One complete message.
    Message(&'a [u8]),
    /// A CRLFCRLF keepalive ping: answer it with a single CRLF pong (RFC 5626 §4.4.1).
    Ping,
    /// A lone CRLF: the pong to our ping (after [`StreamFramer::ping_sent`]) or a
    /// stray CRLF before a message (RFC 3261 §7.5), to be ignored.
    Pong,
}

/// What a [`StreamFramer`] holds between frames ([`StreamFramer::pending`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// Nothing.
    Nothing,
    /// Only CR and LF: a CRLFCRLF ping or a stray CRLF still arriving.
    Keepalive,
    /// The start of a message whose header section is not complete.
    Headers,
    /// A message whose header section is complete; its body is still arriving.
    Body,
}

/// The stream is broken and the connection must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FramingError {
    /// No end of headers within the limit.
    #[error("header section exceeds {limit} bytes")]
    HeadersTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// Content-Length above the limit.
    #[error("body of {len} bytes exceeds {limit}")]
    BodyTooLarge {
        /// Announced length.
        len: u64,
        /// The configured limit.
        limit: usize,
    },
    /// Stream messages must carry Content-Length (RFC 3261 §18.3, §20.14).
    #[error("missing Content-Length on a stream transport")]
    MissingContentLength,
    /// Content-Length not a number.
    #[error("invalid Content-Length")]
    BadContentLength,
    /// Several different Content-Length values (RFC 4475 §3.3.9).
    #[error("conflicting Content-Length headers")]
    ConflictingContentLength,
    /// The bytes where a start line should begin hold a control character (binary
    /// garbage, a TLS ClientHello sent to a TCP port): no SIP message can follow.
    #[error("not a SIP start line")]
    BadStartLine,
    /// An earlier error already broke this stream.
    #[error("stream already failed")]
    Failed,
}

impl FramingError {
    /// The status to send before closing, when one makes sense.
    pub fn status(&self) -> Option<u16> {
        match self {
            FramingError::HeadersTooLarge { .. } | FramingError::BodyTooLarge { .. } => Some(513),
            FramingError::MissingContentLength
            | FramingError::BadContentLength
            | FramingError::ConflictingContentLength
            | FramingError::BadStartLine => Some(400),
            FramingError::Failed => None,
        }
    }

    /// The codec error a response to the refused message reports (status and reason
    /// phrase, [`ParseError::status`] / [`ParseError::reason`]); `None` for `Failed`.
    #[must_use]
    pub fn as_parse_error(&self) -> Option<ParseError> {
        match self {
            FramingError::HeadersTooLarge { .. } => Some(ParseError::HeadersTooLarge),
            FramingError::BodyTooLarge { .. } => Some(ParseError::BodyTooLarge),
            FramingError::MissingContentLength => {
                Some(ParseError::MissingHeader(HeaderName::ContentLength))
            }
            FramingError::BadContentLength => Some(ParseError::BadContentLength),
            FramingError::ConflictingContentLength => {
                Some(ParseError::DuplicateHeader(HeaderName::ContentLength))
            }
            FramingError::BadStartLine => Some(ParseError::BadRequestLine),
            FramingError::Failed => None,
        }
    }
}

/// The stateless answer to a stream message the framer refused with `err`, formed from
/// `head` ([`StreamFramer::failed_head`]) like [`error_response`]: `400 Bad Request
/// (<what>)` or `513 Message Too Large (<what>)` with the request's Via, From, To,
/// Call-ID and CSeq, or [`ErrorAction::Drop`] when no response can be formed (garbage,
/// a response, an ACK, missing mandatory headers) or for [`FramingError::Failed`].
#[must_use]
pub fn framing_error_response(head: &[u8], err: FramingError) -> ErrorAction {
    match err.as_parse_error() {
        Some(e) => error_response(head, &e),
        None => ErrorAction::Drop,
    }
}

/// Splits a byte stream into SIP messages and keepalives.
///
/// Invariant: `buf[..consumed]` has been handed out and is dropped at the next call.
#[derive(Debug, Clone, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
    consumed: usize,
    /// Where the search for CRLFCRLF resumes (bytes before it were already searched).
    scanned: usize,
    /// Total length of the message whose header section is already framed.
    pending_total: Option<usize>,
    limits: FramerLimits,
    failed: bool,
    awaiting_pong: bool,
    /// After a failure: the header section of the refused message (see `failed_head`).
    failed_head: Vec<u8>,
}

impl StreamFramer {
    /// A framer with the given limits.
    pub fn new(limits: FramerLimits) -> Self {
        StreamFramer {
            limits,
            ..Default::default()
        }
    }

    fn compact(&mut self) {
        if self.consumed > 0 {
            let n = self.consumed.min(self.buf.len());
            self.buf.drain(..n);
            self.consumed = 0;
            self.scanned = 0;
            self.pending_total = None;
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.compact();
        if !self.failed {
            self.buf.extend_from_slice(data);
        }
    }

    /// Tells the framer that we sent a CRLFCRLF ping (RFC 5626 §4.4.1), so a lone
    /// CRLF is reported as [`Frame::Pong`] at once instead of waiting to see
    /// whether it starts a ping.
    pub fn ping_sent(&mut self) {
        self.awaiting_pong = true;
    }

    /// Bytes held and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len().saturating_sub(self.consumed)
    }

    /// What the bytes held and not yet returned are: the transport times a message
    /// being received, its headers and its body, but not a keepalive in progress.
    #[must_use]
    pub fn pending(&self) -> Pending {
        let b = self.buf.get(self.consumed..).unwrap_or_default();
        if b.is_empty() {
            Pending::Nothing
        } else if self.pending_total.is_some() && self.consumed == 0 {
            Pending::Body
        } else if b.iter().all(|c| matches!(c, b'\r' | b'\n')) {
            Pending::Keepalive
        } else {
            Pending::Headers
        }
    }

    /// Bytes of the refused message's header section, kept after a [`FramingError`] so
    /// a response can be formed ([`framing_error_response`]): up to and including the
    /// empty line, or, when the headers exceeded the limit, up to the last complete line
    /// within it. Empty before any failure.
    #[must_use]
    pub fn failed_head(&self) -> &[u8] {
        &self.failed_head
    }

    fn fail(&mut self, e: FramingError) -> FramingError {
        self.failed = true;
        let b = self.buf.get(self.consumed..).unwrap_or_default();
        let window = b.get(..self.limits.max_header_bytes).unwrap_or(b);
        let end = match memmem::find(window, b"\r\n\r\n") {
            Some(h) => h + 4,
            None => memmem::rfind(window, b"\r\n").map_or(0, |k| k + 2),
        };
        self.failed_head = window.get(..end).unwrap_or_default().to_vec();
        self.buf = Vec::new();
        self.consumed = 0;
        e
    }

    /// The next frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, FramingError> {
        self.compact();
        if self.failed {
            return Err(FramingError::Failed);
        }
        let b = self.buf.as_slice();
        if let Some(total) = self.pending_total {
            if b.len() < total {
                return Ok(None);
            }
            self.consumed = total;
            return Ok(Some(Frame::Message(
                self.buf.get(..total).unwrap_or_default(),
            )));
        }
        if b.starts_with(b"\r\n\r\n") {
            self.consumed = 4;
            return Ok(Some(Frame::Ping));
        }
        match b {
            [] | [b'\r'] | [b'\r', b'\n', b'\r'] => return Ok(None),
            // A lone CRLF is a pong only when we pinged; otherwise it may be the
            // first half of a ping split across segments.
            [b'\r', b'\n'] if !self.awaiting_pong => return Ok(None),
            [b'\r', b'\n', ..] => {
                self.consumed = 2;
                self.awaiting_pong = false;
                return Ok(Some(Frame::Pong));
            }
            _ => {}
        }
        if !plausible_start_line(b) {
            return Err(self.fail(FramingError::BadStartLine));
        }
        let from = self.scanned.saturating_sub(3);
        let search_end = b.len().min(self.limits.max_header_bytes);
        let found = b
            .get(from..search_end)
            .and_then(|w| memmem::find(w, b"\r\n\r\n"))
            .map(|k| k + from);
        let Some(h) = found else {
            if b.len() >= self.limits.max_header_bytes {
                let limit = self.limits.max_header_bytes;
                return Err(self.fail(FramingError::HeadersTooLarge { limit }));
            }
            self.scanned = b.len();
            return Ok(None);
        };
        let cl = match content_length(b.get(..h + 2).unwrap_or_default()) {
            Ok(cl) => cl,
            Err(e) => return Err(self.fail(e)),
        };
        if cl > self.limits.max_body_bytes as u64 {
            let limit = self.limits.max_body_bytes;
            return Err(self.fail(FramingError::BodyTooLarge { len: cl, limit }));
        }
        // cl fits in usize: it is at most max_body_bytes.
        let total = h + 4 + cl as usize;
        if b.len() < total {
            self.pending_total = Some(total);
            return Ok(None);
        }
        self.consumed = total;
        Ok(Some(Frame::Message(
            self.buf.get(..total).unwrap_or_default(),
        )))
    }
}

/// Whether the bytes up to the first LF (all of `b` when there is none yet) can begin a
/// SIP start line: no control character but HTAB, and CR only right before the LF or as
/// the last byte received (RFC 3261 §7.1, §7.2, §25.1).
fn plausible_start_line(b: &[u8]) -> bool {
    let line = memchr::memchr(b'\n', b).map_or(b, |n| b.get(..n).unwrap_or_default());
    let (body, last) = match line.split_last() {
        Some((b'\r', rest)) => (rest, true),
        _ => (line, false),
    };
    // A CR anywhere but last, or a lone LF with no CR before it, is not a line end.
    let lf_ok = last || line.len() == b.len();
    lf_ok && body.iter().all(|&c| c == b'\t' || (c >= 0x20 && c != 0x7f))
}

/// Finds the Content-Length in a header section (long or compact name, folding
/// allowed). Several equal values are accepted; different ones are not.
fn content_length(head: &[u8]) -> Result<u64, FramingError> {
    let mut found: Option<u64> = None;
    let mut lines = head.split(|&c| c == b'\n').skip(1).peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = line.get(..colon).unwrap_or_default();
        let name = std::str::from_utf8(name)
            .unwrap_or("")
            .trim_end_matches([' ', '\t']);
        if HeaderName::from_name(name) != HeaderName::ContentLength {
            continue;
        }
        let mut value: Vec<u8> = line.get(colon + 1..).unwrap_or_default().to_vec();
        while let Some(next) = lines.peek() {
            if next.first().is_some_and(|c| *c == b' ' || *c == b'\t') {
                value.extend_from_slice(next.strip_suffix(b"\r").unwrap_or(next));
                lines.next();
            } else {
                break;
            }
        }
        let text = std::str::from_utf8(&value).map_err(|_| FramingError::BadContentLength)?;
        let t = trim_lws(text);
        if t.is_empty() || t.len() > 19 || !t.bytes().all(|c| c.is_ascii_digit()) {
            return Err(FramingError::BadContentLength);
        }
        let v: u64 = t.parse().map_err(|_| FramingError::BadContentLength)?;
        match found {
            Some(prev) if prev != v => return Err(FramingError::ConflictingContentLength),
            _ => found = Some(v),
        }
    }
    found.ok_or(FramingError::MissingContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nl: 5\r\nCall-ID: x\r\n\r\nhello";

    fn collect(f: &mut StreamFramer) -> Vec<Result<Option<Vec<u8>>, FramingError>> {
        let mut out = Vec::new();
        loop {
            match f.next_frame() {
                Ok(None) => break,
                Ok(Some(Frame::Message(m))) => out.push(Ok(Some(m.to_vec()))),
                Ok(Some(Frame::Ping)) => out.push(Ok(Some(b"PING".to_vec()))),
                Ok(Some(Frame::Pong)) => out.push(Ok(Some(b"PONG".to_vec()))),
                Err(e) => {
                    out.push(Err(e));
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn byte_by_byte_and_pipelined() {
        let mut f = StreamFramer::default();
        let mut stream = Vec::new();
        stream.extend_from_slice(MSG);
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(MSG);
        let mut got = Vec::new();
        for b in &stream {
            f.push(std::slice::from_ref(b));
            got.extend(collect(&mut f));
        }
        assert_eq!(
            got,
            vec![
                Ok(Some(MSG.to_vec())),
                Ok(Some(b"PING".to_vec())),
                Ok(Some(MSG.to_vec()))
            ]
        );
        f.push(&stream);
        assert_eq!(collect(&mut f).len(), 3);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn pending_tells_keepalive_headers_and_body_apart() {
        let mut f = StreamFramer::default();
        assert_eq!(f.pending(), Pending::Nothing);
        f.push(b"\r\n");
        assert_eq!(f.next_frame(), Ok(None));
        assert_eq!(f.pending(), Pending::Keepalive);
        f.push(b"\r\n");
        assert_eq!(f.next_frame(), Ok(Some(Frame::Ping)));
        assert_eq!(f.next_frame(), Ok(None));
        assert_eq!(f.pending(), Pending::Nothing);
        let split = MSG.len() - 5;
        f.push(&MSG[..split - 1]);
        assert_eq!(f.next_frame(), Ok(None));
        assert_eq!(f.pending(), Pending::Headers, "headers not complete yet");
        f.push(&MSG[split - 1..split + 1]);
        assert_eq!(f.next_frame(), Ok(None));
        assert_eq!(f.pending(), Pending::Body);
        f.push(&MSG[split + 1..]);
        assert_eq!(f.next_frame(), Ok(Some(Frame::Message(MSG))));
        assert_eq!(f.pending(), Pending::Nothing);
        assert_eq!(f.next_frame(), Ok(None));
        assert_eq!(f.pending(), Pending::Nothing);
    }

    #[test]
    fn pong_and_partial_body() {
        let mut f = StreamFramer::default();
        f.push(b"\r\n");
        assert_eq!(f.next_frame(), Ok(None));
        f.ping_sent();
        assert_eq!(f.next_frame(), Ok(Some(Frame::Pong)));
        f.push(b"\r\n");
        f.push(MSG);
        assert_eq!(f.next_frame(), Ok(Some(Frame::Pong)));
        assert_eq!(f.next_frame(), Ok(Some(Frame::Message(MSG))));
        f.push(&MSG[..MSG.len() - 1]);
        assert_eq!(f.next_frame(), Ok(None));
        f.push(&MSG[MSG.len() - 1..]);
        assert_eq!(f.next_frame(), Ok(Some(Frame::Message(MSG))));
    }

    #[test]
    fn limits_and_errors() {
        let mut f = StreamFramer::new(FramerLimits {
            max_header_bytes: 64,
            max_body_bytes: 4,
        });
        f.push(MSG);
        assert_eq!(
            f.next_frame(),
            Err(FramingError::BodyTooLarge { len: 5, limit: 4 })
        );
        assert_eq!(f.next_frame(), Err(FramingError::Failed));

        let mut g = StreamFramer::new(FramerLimits {
            max_header_bytes: 16,
            max_body_bytes: 4,
        });
        g.push(b"OPTIONS sip:a@b SIP/2.0\r\nX: yyyyyyyyyyy");
        assert_eq!(
            g.next_frame(),
            Err(FramingError::HeadersTooLarge { limit: 16 })
        );

        for (input, err) in [
            (
                &b"A sip:a SIP/2.0\r\nX: 1\r\n\r\n"[..],
                FramingError::MissingContentLength,
            ),
            (
                b"A sip:a SIP/2.0\r\nContent-Length: -999\r\n\r\n",
                FramingError::BadContentLength,
            ),
            (
                b"A sip:a SIP/2.0\r\nContent-Length: 13\r\nl: 5\r\n\r\n",
                FramingError::ConflictingContentLength,
            ),
        ] {
            let mut f = StreamFramer::default();
            f.push(input);
            assert_eq!(f.next_frame(), Err(err));
            assert!(err.status().is_some());
        }
        let mut folded = StreamFramer::default();
        folded.push(b"A sip:a SIP/2.0\r\nContent-Length:\r\n 2\r\n\r\nok");
        assert!(matches!(folded.next_frame(), Ok(Some(Frame::Message(_)))));
    }

    const REQ_HEAD: &str = "OPTIONS sip:u@h SIP/2.0\r\nVia: SIP/2.0/TCP c.example;branch=z9hG4bK7\r\nFrom: <sip:a@c.example>;tag=f1\r\nTo: <sip:u@h>\r\nCall-ID: cid-7\r\nCSeq: 7 OPTIONS\r\n";

    fn respond(f: &StreamFramer, e: FramingError) -> String {
        match framing_error_response(f.failed_head(), e) {
            ErrorAction::Respond(b) => String::from_utf8(b).expect("utf8"),
            ErrorAction::Drop => panic!("no response formed for {e:?}"),
        }
    }

    #[test]
    fn refused_messages_get_a_response_with_a_reason_phrase() {
        for (extra, err, start) in [
            (
                "Content-Length: x1\r\n",
                FramingError::BadContentLength,
                "SIP/2.0 400 Bad Request (invalid Content-Length)\r\n",
            ),
            (
                "",
                FramingError::MissingContentLength,
                "SIP/2.0 400 Bad Request (missing Content-Length header)\r\n",
            ),
            (
                "Content-Length: 1\r\nl: 2\r\n",
                FramingError::ConflictingContentLength,
                "SIP/2.0 400 Bad Request (multiple Content-Length headers)\r\n",
            ),
            (
                "Content-Length: 99999\r\n",
                FramingError::BodyTooLarge {
                    len: 99_999,
                    limit: 100,
                },
                "SIP/2.0 513 Message Too Large (body too large)\r\n",
            ),
        ] {
            let mut f = StreamFramer::new(FramerLimits {
                max_header_bytes: 1024,
                max_body_bytes: 100,
            });
            // A good message first: the head kept is the refused one's.
            f.push(MSG);
            assert_eq!(f.next_frame(), Ok(Some(Frame::Message(MSG))));
            f.push(format!("{REQ_HEAD}{extra}\r\nbody").as_bytes());
            assert_eq!(f.next_frame(), Err(err));
            assert_eq!(f.failed_head(), format!("{REQ_HEAD}{extra}\r\n").as_bytes());
            let r = respond(&f, err);
            assert!(r.starts_with(start), "{err:?}: {r}");
            for h in [
                "Via: SIP/2.0/TCP c.example;branch=z9hG4bK7\r\n",
                "Call-ID: cid-7\r\n",
                "CSeq: 7 OPTIONS\r\n",
            ] {
                assert!(r.contains(h), "{err:?}: {h} missing in {r}");
            }
            // The stream stays failed and keeps the head.
            f.push(MSG);
            assert_eq!(f.next_frame(), Err(FramingError::Failed));
            assert!(!f.failed_head().is_empty());
        }
    }

    #[test]
    fn binary_garbage_fails_at_once() {
        // A TLS ClientHello prefix: no CRLF, so without this check the framer would wait
        // for 16 KiB or the idle timeout.
        for input in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
            b"OPTIONS sip:a SIP/2.0\r",
            b"OPTIONS sip:a\x00 SIP/2.0\r\n",
            b"OPTIONS sip:a SIP/2.0\nVia: x\n\n",
            b"OPT\rIONS sip:a SIP/2.0\r\n",
        ] {
            let mut f = StreamFramer::default();
            f.push(input);
            let r = f.next_frame();
            if input.ends_with(b"SIP/2.0\r") {
                assert_eq!(r, Ok(None), "a CR at the end may start the line end");
                f.push(b"\n");
                assert_eq!(f.next_frame(), Ok(None));
                continue;
            }
            assert_eq!(r, Err(FramingError::BadStartLine), "{input:?}");
            assert_eq!(FramingError::BadStartLine.status(), Some(400));
        }
        // Tabs and UTF-8 are fine in a start line (reason phrases).
        let mut f = StreamFramer::default();
        f.push("SIP/2.0 200 Très\tbien\r\nl: 0\r\n\r\n".as_bytes());
        assert!(matches!(f.next_frame(), Ok(Some(Frame::Message(_)))));
    }

    #[test]
    fn oversize_headers_keep_complete_lines_only() {
        let mut f = StreamFramer::new(FramerLimits {
            max_header_bytes: REQ_HEAD.len() + 10,
            max_body_bytes: 100,
        });
        f.push(format!("{REQ_HEAD}X-Long: {}", "y".repeat(200)).as_bytes());
        let err = f.next_frame().expect_err("too large");
        assert!(matches!(err, FramingError::HeadersTooLarge { .. }));
        assert_eq!(f.failed_head(), REQ_HEAD.as_bytes());
        assert!(respond(&f, err)
            .starts_with("SIP/2.0 513 Message Too Large (header section too large)\r\n"));
    }

    #[test]
    fn no_response_for_garbage_responses_and_acks() {
        for input in [
            &b"\x16\x03\x01garbage\r\n\r\n"[..],
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\r\n",
            b"ACK sip:u@h SIP/2.0\r\nVia: SIP/2.0/TCP c;branch=z9hG4bK1\r\nFrom: <sip:a@c>;tag=1\r\nTo: <sip:u@h>\r\nCall-ID: c\r\nCSeq: 1 ACK\r\n\r\n",
            b"OPTIONS sip:u@h SIP/2.0\r\nCall-ID: no-via\r\n\r\n",
        ] {
            let mut f = StreamFramer::default();
            f.push(input);
            let err = f.next_frame().expect_err("refused");
            assert!(
                matches!(
                    err,
                    FramingError::MissingContentLength | FramingError::BadStartLine
                ),
                "{err:?}"
            );
            assert_eq!(framing_error_response(f.failed_head(), err), ErrorAction::Drop);
        }
        assert_eq!(
            framing_error_response(REQ_HEAD.as_bytes(), FramingError::Failed),
            ErrorAction::Drop
        );
    }
}

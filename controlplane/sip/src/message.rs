//! The parsed message view (RFC 3261 §7) borrowing from the receive buffer.
//!
//! Parsing checks the framing (start line, header lines, folding, Content-Length)
//! and keeps each header as a slice; typed views are parsed on access. One `Vec`
//! of [`Header`] per message is the only allocation (capacity [`INLINE_HEADERS`]).

use memchr::memmem;

use crate::error::ParseError;
use crate::grammar::{is_token_byte, parse_u32};
use crate::header::{CSeq, Contact, Header, HeaderName, NameAddr, Via};
use crate::uri::Uri;

/// Capacity reserved for headers up front; a typical INVITE has fewer.
pub const INLINE_HEADERS: usize = 24;

/// Request-Line (RFC 3261 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLine<'a> {
    /// Method token as written (case-sensitive).
    pub method: &'a str,
    /// Request-URI.
    pub uri: Uri<'a>,
}

/// Status-Line (RFC 3261 §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusLine<'a> {
    /// 100..=699.
    pub code: u16,
    /// Reason phrase (may be empty, may be UTF-8).
    pub reason: &'a str,
}

/// Request or response start line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine<'a> {
    /// A request.
    Request(RequestLine<'a>),
    /// A response.
    Response(StatusLine<'a>),
}

/// A parsed SIP message borrowing from the buffer it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The header section (start line included, final CRLF of the last line included).
    pub(crate) head: &'a str,
    pub(crate) start: StartLine<'a>,
    pub(crate) headers: Vec<Header<'a>>,
    pub(crate) body: &'a [u8],
    /// Several Content-Length headers were present (framing ambiguous, §7.5).
    pub(crate) content_length_conflict: bool,
    /// Bytes of the buffer this message used (trailing datagram bytes excluded).
    pub(crate) len: usize,
}

impl<'a> Message<'a> {
    /// Parses one message from a datagram (RFC 3261 §18.3): a body longer than
    /// Content-Length is truncated to it, a shorter one is an error, and without
    /// Content-Length the body is the rest of the datagram. Also used for the
    /// exact frames a [`crate::StreamFramer`] yields.
    ///
    /// Leading CRLFs are skipped (RFC 3261 §7.5).
    pub fn parse(buf: &'a [u8]) -> Result<Self, ParseError> {
        let skip = buf.chunks(2).take_while(|c| *c == b"\r\n").count() * 2;
        let b = buf.get(skip..).unwrap_or_default();
        if b.is_empty() {
            return Err(ParseError::Empty);
        }
        let head_end = memmem::find(b, b"\r\n\r\n").ok_or(ParseError::Unterminated)?;
        // The header section including the CRLF that ends its last line.
        let head_bytes = b.get(..head_end + 2).ok_or(ParseError::Unterminated)?;
        let head = std::str::from_utf8(head_bytes).map_err(|_| ParseError::InvalidUtf8)?;
        let line_end = head.find("\r\n").ok_or(ParseError::Unterminated)?;
        let start = parse_start_line(&head[..line_end])?;

        let mut headers = Vec::with_capacity(INLINE_HEADERS);
        let mut content_length: Option<u32> = None;
        let mut content_length_conflict = false;
        let hb = head.as_bytes();
        let mut pos = line_end + 2;
        while pos < hb.len() {
            // field-name: token, then optional SP/HT, then ':' (RFC 3261 §7.3.1).
            let ns = pos;
            let mut k = pos;
            while hb.get(k).is_some_and(|c| is_token_byte(*c)) {
                k += 1;
            }
            let name_end = k;
            while let Some(b' ' | b'\t') = hb.get(k) {
                k += 1;
            }
            if name_end == ns || hb.get(k) != Some(&b':') {
                return Err(ParseError::BadHeaderLine);
            }
            let vs = k + 1;
            // The value runs to a CRLF not followed by SP/HT; a CR or LF anywhere
            // else is malformed.
            let mut k = vs;
            let ve = loop {
                let at = k + memchr::memchr2(b'\r', b'\n', hb.get(k..).unwrap_or_default())
                    .ok_or(ParseError::BadHeaderLine)?;
                if hb.get(at) != Some(&b'\r') || hb.get(at + 1) != Some(&b'\n') {
                    return Err(ParseError::BadHeaderLine);
                }
                match hb.get(at + 2) {
                    Some(b' ' | b'\t') => k = at + 2,
                    _ => break at,
                }
            };
            pos = ve + 2;
            // Every index above follows an ASCII byte: char boundaries.
            let name = head.get(ns..name_end).ok_or(ParseError::BadHeaderLine)?;
            let value =
                crate::grammar::trim_lws(head.get(vs..ve).ok_or(ParseError::BadHeaderLine)?);
            let kind = HeaderName::from_name(name);
            if kind == HeaderName::ContentLength {
                let v = crate::header::misc_parse_content_length(value)?;
                if content_length.is_some() {
                    content_length_conflict = true;
                } else {
                    content_length = Some(v);
                }
            }
            headers.push(Header { name, kind, value });
        }

        let body_start = head_end + 4;
        let rest = b.get(body_start..).unwrap_or_default();
        let body = match content_length {
            Some(cl) if !content_length_conflict => {
                let cl = cl as usize;
                rest.get(..cl).ok_or(ParseError::ContentLengthMismatch)?
            }
            _ => rest,
        };
        Ok(Message {
            head,
            start,
            headers,
            body,
            content_length_conflict,
            len: skip + body_start + body.len(),
        })
    }

    /// The start line.
    pub fn start_line(&self) -> &StartLine<'a> {
        &self.start
    }

    /// The request line, for requests.
    pub fn request_line(&self) -> Option<&RequestLine<'a>> {
        match &self.start {
            StartLine::Request(r) => Some(r),
            StartLine::Response(_) => None,
        }
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request(_))
    }

    /// Method token of a request.
    pub fn method(&self) -> Option<&'a str> {
        self.request_line().map(|r| r.method)
    }

    /// Request-URI of a request.
    pub fn request_uri(&self) -> Option<&Uri<'a>> {
        self.request_line().map(|r| &r.uri)
    }

    /// Status code of a response.
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response(s) => Some(s.code),
            StartLine::Request(_) => None,
        }
    }

    /// Reason phrase of a response.
    pub fn reason(&self) -> Option<&'a str> {
        match &self.start {
            StartLine::Response(s) => Some(s.reason),
            StartLine::Request(_) => None,
        }
    }

    /// All header fields in order, unknown ones included.
    pub fn headers(&self) -> &[Header<'a>] {
        &self.headers
    }

    /// The body (truncated to Content-Length).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Bytes of the input this message occupies (leading CRLFs included).
    pub fn wire_len(&self) -> usize {
        self.len
    }

    /// Whether several Content-Length headers were present.
    pub fn content_length_conflict(&self) -> bool {
        self.content_length_conflict
    }

    /// All headers of a known kind, in order.
    pub fn headers_of(&self, kind: HeaderName) -> impl Iterator<Item = &Header<'a>> + '_ {
        self.headers.iter().filter(move |h| h.kind == kind)
    }

    /// The first value of a known header.
    pub fn get(&self, kind: HeaderName) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|h| h.kind == kind)
            .map(|h| h.value)
    }

    /// The first value of a header by name (unknown names compared case-insensitively).
    pub fn get_by_name(&self, name: &str) -> Option<&'a str> {
        let kind = HeaderName::from_name(name);
        self.headers
            .iter()
            .find(|h| h.is(kind, name))
            .map(|h| h.value)
    }

    /// All comma-separated elements of every header of `kind`, in order.
    pub fn elements(&self, kind: HeaderName) -> impl Iterator<Item = &'a str> + '_ {
        self.headers_of(kind).flat_map(|h| h.elements())
    }

    /// `Call-ID` (first one).
    pub fn call_id(&self) -> Option<&'a str> {
        self.get(HeaderName::CallId)
    }

    /// `CSeq`.
    pub fn cseq(&self) -> Result<CSeq<'a>, ParseError> {
        CSeq::parse(
            self.get(HeaderName::CSeq)
                .ok_or(ParseError::MissingHeader(HeaderName::CSeq))?,
        )
    }

    /// The topmost Via element (RFC 3261 §8.2.6.2, §17.2.3).
    pub fn top_via(&self) -> Result<Via<'a>, ParseError> {
        Via::parse(
            self.elements(HeaderName::Via)
                .next()
                .ok_or(ParseError::MissingHeader(HeaderName::Via))?,
        )
    }

    /// Every Via element, top first.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'a>, ParseError>> + '_ {
        self.elements(HeaderName::Via).map(Via::parse)
    }

    /// `From`.
    pub fn from(&self) -> Result<NameAddr<'a>, ParseError> {
        self.name_addr(HeaderName::From)
    }

    /// `To`.
    pub fn to(&self) -> Result<NameAddr<'a>, ParseError> {
        self.name_addr(HeaderName::To)
    }

    fn name_addr(&self, kind: HeaderName) -> Result<NameAddr<'a>, ParseError> {
        NameAddr::parse(self.get(kind).ok_or(ParseError::MissingHeader(kind))?, kind)
    }

    /// Every Contact element.
    pub fn contacts(&self) -> impl Iterator<Item = Result<Contact<'a>, ParseError>> + '_ {
        self.elements(HeaderName::Contact).map(Contact::parse)
    }

    /// Route (or Record-Route with `kind`) elements in order.
    pub fn routes(
        &self,
        kind: HeaderName,
    ) -> impl Iterator<Item = Result<NameAddr<'a>, ParseError>> + '_ {
        self.elements(kind).map(move |e| NameAddr::parse(e, kind))
    }

    /// `Max-Forwards`, if present.
    pub fn max_forwards(&self) -> Option<Result<u8, ParseError>> {
        self.get(HeaderName::MaxForwards)
            .map(crate::header::parse_max_forwards)
    }

    /// `Content-Length` header value, if present.
    pub fn content_length(&self) -> Option<Result<u32, ParseError>> {
        self.get(HeaderName::ContentLength)
            .map(crate::header::misc_parse_content_length)
    }

    /// `Content-Type`.
    pub fn content_type(&self) -> Option<Result<crate::header::MediaType<'a>, ParseError>> {
        self.get(HeaderName::ContentType)
            .map(crate::header::MediaType::parse)
    }

    /// `Expires`.
    pub fn expires(&self) -> Option<Result<u32, ParseError>> {
        self.get(HeaderName::Expires)
            .map(|v| crate::header::parse_scalar(v, HeaderName::Expires))
    }

    /// Whether an option tag is listed in any Supported (or `kind`) header.
    pub fn has_option(&self, kind: HeaderName, tag: &str) -> bool {
        self.elements(kind).any(|t| t.eq_ignore_ascii_case(tag))
    }

    /// Whether a method is listed in Allow.
    pub fn allows(&self, method: &str) -> bool {
        self.elements(HeaderName::Allow).any(|t| t == method)
    }

    /// `Session-Expires`.
    pub fn session_expires(&self) -> Option<Result<crate::header::SessionExpires<'a>, ParseError>> {
        self.get(HeaderName::SessionExpires)
            .map(|v| crate::header::SessionExpires::parse(v, HeaderName::SessionExpires))
    }

    /// `Min-SE`.
    pub fn min_se(&self) -> Option<Result<u32, ParseError>> {
        self.get(HeaderName::MinSe)
            .map(|v| crate::header::SessionExpires::parse(v, HeaderName::MinSe).map(|s| s.delta))
    }

    /// A challenge or credentials header (`kind` one of the four auth headers).
    pub fn auth(&self, kind: HeaderName) -> Option<Result<crate::header::Auth<'a>, ParseError>> {
        self.get(kind).map(|v| crate::header::Auth::parse(v, kind))
    }

    /// `Refer-To`.
    pub fn refer_to(&self) -> Option<Result<NameAddr<'a>, ParseError>> {
        self.get(HeaderName::ReferTo)
            .map(|v| NameAddr::parse(v, HeaderName::ReferTo))
    }

    /// `Replaces`.
    pub fn replaces(&self) -> Option<Result<crate::header::Replaces<'a>, ParseError>> {
        self.get(HeaderName::Replaces)
            .map(crate::header::Replaces::parse)
    }

    /// `P-Asserted-Identity` elements.
    pub fn asserted_identities(
        &self,
    ) -> impl Iterator<Item = Result<NameAddr<'a>, ParseError>> + '_ {
        self.elements(HeaderName::PAssertedIdentity)
            .map(|e| NameAddr::parse(e, HeaderName::PAssertedIdentity))
    }

    /// `Retry-After`.
    pub fn retry_after(&self) -> Option<Result<crate::header::RetryAfter<'a>, ParseError>> {
        self.get(HeaderName::RetryAfter)
            .map(crate::header::RetryAfter::parse)
    }
}

/// `Request-Line = Method SP Request-URI SP SIP-Version` or
/// `Status-Line = SIP-Version SP Status-Code SP Reason-Phrase`; single SPs only
/// (RFC 4475 §3.1.2.9, §3.1.2.10).
fn parse_start_line(line: &str) -> Result<StartLine<'_>, ParseError> {
    if line.len() >= 4 && line.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/") {
        let (version, rest) = line.split_once(' ').ok_or(ParseError::BadStatusLine)?;
        check_version(version, ParseError::BadStatusLine)?;
        let (code, reason) = rest.split_once(' ').ok_or(ParseError::BadStatusLine)?;
        if code.len() != 3 {
            return Err(ParseError::BadStatusCode);
        }
        let code = parse_u32(code).ok_or(ParseError::BadStatusCode)?;
        if !(100..=699).contains(&code) {
            return Err(ParseError::BadStatusCode);
        }
        if reason.bytes().any(|b| b < b' ' && b != b'\t') {
            return Err(ParseError::BadStatusLine);
        }
        return Ok(StartLine::Response(StatusLine {
            code: code as u16,
            reason,
        }));
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::BadRequestLine);
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(ParseError::BadRequestLine);
    }
    check_version(version, ParseError::BadRequestLine)?;
    let uri = Uri::parse(uri).map_err(ParseError::BadRequestUri)?;
    if let Uri::Sip(s) = &uri {
        // RFC 3261 §19.1.1 table: headers are not allowed in a Request-URI.
        if s.headers.is_some() {
            return Err(ParseError::BadRequestUri(
                crate::error::UriError::BadHeaders,
            ));
        }
    }
    Ok(StartLine::Request(RequestLine { method, uri }))
}

/// `SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT`; only 2.0 is supported (→ 505).
fn check_version(v: &str, malformed: ParseError) -> Result<(), ParseError> {
    let Some(num) = v
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("SIP/"))
        .and(v.get(4..))
    else {
        return Err(malformed);
    };
    let Some((maj, min)) = num.split_once('.') else {
        return Err(malformed);
    };
    if parse_u32(maj).is_none() || parse_u32(min).is_none() {
        return Err(malformed);
    }
    if num == "2.0" {
        Ok(())
    } else {
        Err(ParseError::VersionNotSupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_folded_repeated_and_unknown_headers() {
        let raw = b"\r\n\r\nINVITE sip:bob@example.com SIP/2.0\r\n\
v: SIP/2.0/UDP a.example.com;branch=z9hG4bK1,SIP/2.0/TCP b.example.com;branch=z9hG4bK2\r\n\
Via: SIP/2.0/UDP c.example.com;branch=z9hG4bK3\r\n\
f: <sip:alice@example.com>;tag=1\r\n\
t: <sip:bob@example.com>\r\n\
i: cid@example.com\r\n\
CSeq: 1\r\n INVITE\r\n\
X-Zeta: 1\r\n\
m: <sip:a@192.0.2.1>, *\r\n\
X-Alpha:   two words  \r\n\
k: timer, 100rel\r\n\
c: application/sdp\r\n\
l: 3\r\n\
\r\n\
abcTRAILING";
        let m = Message::parse(raw).unwrap();
        assert_eq!(m.method(), Some("INVITE"));
        assert_eq!(m.vias().count(), 3);
        assert_eq!(m.vias().nth(1).unwrap().unwrap().transport, "TCP");
        assert_eq!(m.call_id(), Some("cid@example.com"));
        assert_eq!(
            m.cseq().unwrap(),
            CSeq {
                seq: 1,
                method: "INVITE"
            }
        );
        assert_eq!(m.from().unwrap().tag(), Some("1"));
        assert_eq!(m.contacts().nth(1), Some(Ok(Contact::Star)));
        assert!(m.has_option(HeaderName::Supported, "100rel"));
        assert!(m.content_type().unwrap().unwrap().is_sdp());
        assert_eq!(m.body(), b"abc");
        assert_eq!(m.wire_len(), raw.len() - b"TRAILING".len());
        let unknown: Vec<_> = m
            .headers()
            .iter()
            .filter(|h| h.kind == HeaderName::Other)
            .map(|h| (h.name, h.value))
            .collect();
        assert_eq!(unknown, vec![("X-Zeta", "1"), ("X-Alpha", "two words")]);
        assert_eq!(m.get_by_name("x-alpha"), Some("two words"));
        assert_eq!(m.get_by_name("Call-ID"), Some("cid@example.com"));
    }

    #[test]
    fn datagram_body_rules_rfc3261_18_3() {
        let no_cl = b"OPTIONS sip:a@b SIP/2.0\r\nX: 1\r\n\r\nrest";
        assert_eq!(Message::parse(no_cl).unwrap().body(), b"rest");
        let short = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\nrest";
        assert_eq!(
            Message::parse(short),
            Err(ParseError::ContentLengthMismatch)
        );
        let neg = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n";
        assert_eq!(Message::parse(neg), Err(ParseError::BadContentLength));
    }

    #[test]
    fn start_lines() {
        let r = Message::parse(b"SIP/2.0 180 Ringing\r\n\r\n").unwrap();
        assert_eq!((r.status(), r.reason()), (Some(180), Some("Ringing")));
        assert!(!r.is_request());
        let empty_reason = Message::parse(b"SIP/2.0 100 \r\n\r\n").unwrap();
        assert_eq!(empty_reason.reason(), Some(""));
        for (bad, err) in [
            (&b"SIP/2.0 99 Low\r\n\r\n"[..], ParseError::BadStatusCode),
            (b"SIP/2.0 700 High\r\n\r\n", ParseError::BadStatusCode),
            (b"SIP/2.0 200\r\n\r\n", ParseError::BadStatusLine),
            (b"SIP/3.0 200 OK\r\n\r\n", ParseError::VersionNotSupported),
            (
                b"INVITE sip:a@b SIP/2.1\r\n\r\n",
                ParseError::VersionNotSupported,
            ),
            (
                b"INVITE sip:a@b HTTP/1.1\r\n\r\n",
                ParseError::BadRequestLine,
            ),
            (b"INVITE sip:a@b\r\n\r\n", ParseError::BadRequestLine),
            (
                b"INV ITE sip:a@b SIP/2.0\r\n\r\n",
                ParseError::BadRequestLine,
            ),
            (
                b"INVITE  sip:a@b SIP/2.0\r\n\r\n",
                ParseError::BadRequestLine,
            ),
            (
                b"INVITE sip:a@b SIP/2.0 \r\n\r\n",
                ParseError::BadRequestLine,
            ),
            (b"\r\n\r\n", ParseError::Empty),
            (
                b"INVITE sip:a@b SIP/2.0\r\nVia: x",
                ParseError::Unterminated,
            ),
        ] {
            assert_eq!(
                Message::parse(bad),
                Err(err),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn header_line_errors() {
        for bad in [
            &b"OPTIONS sip:a@b SIP/2.0\r\nNoColon\r\n\r\n"[..],
            b"OPTIONS sip:a@b SIP/2.0\r\n: empty\r\n\r\n",
            b"OPTIONS sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n",
            b"OPTIONS sip:a@b SIP/2.0\r\nX: a\nY: b\r\n\r\n",
            b"OPTIONS sip:a@b SIP/2.0\r\nX: a\rb\r\n\r\n",
            b"OPTIONS sip:a@b SIP/2.0\r\n folded-first: x\r\n\r\n",
        ] {
            assert_eq!(
                Message::parse(bad),
                Err(ParseError::BadHeaderLine),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nX: \xff\r\n\r\n"),
            Err(ParseError::InvalidUtf8)
        );
    }

    #[test]
    fn typed_accessors() {
        let raw = "REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
Max-Forwards: 70\r\n\
Expires: 3600\r\n\
Allow: INVITE, ACK, BYE\r\n\
Session-Expires: 1800;refresher=uas\r\n\
Min-SE: 90\r\n\
Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
Record-Route: <sip:rr.example.com;lr>\r\n\
Proxy-Authenticate: Digest realm=\"r\", nonce=\"n\"\r\n\
Refer-To: <sip:c@example.com?Replaces=abc%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>\r\n\
Replaces: abc@h;to-tag=1;from-tag=2\r\n\
P-Asserted-Identity: \"Alice\" <sip:+15551234@example.com>, <tel:+15551234>\r\n\
Retry-After: 30\r\n\
\r\n";
        let m = Message::parse(raw.as_bytes()).unwrap();
        assert_eq!(m.max_forwards(), Some(Ok(70)));
        assert_eq!(m.expires(), Some(Ok(3600)));
        assert!(m.allows("BYE") && !m.allows("bye"));
        assert_eq!(m.session_expires().unwrap().unwrap().delta, 1800);
        assert_eq!(m.min_se(), Some(Ok(90)));
        let routes: Vec<_> = m
            .routes(HeaderName::Route)
            .map(|r| r.unwrap().uri.as_str())
            .collect();
        assert_eq!(
            routes,
            vec!["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
        );
        assert_eq!(m.routes(HeaderName::RecordRoute).count(), 1);
        let ch = m.auth(HeaderName::ProxyAuthenticate).unwrap().unwrap();
        assert_eq!(ch.realm().unwrap(), "r");
        let rt = m.refer_to().unwrap().unwrap();
        assert!(rt.uri.as_sip().unwrap().headers.is_some());
        assert_eq!(m.replaces().unwrap().unwrap().to_tag, "1");
        assert_eq!(m.asserted_identities().count(), 2);
        assert_eq!(m.retry_after().unwrap().unwrap().seconds, 30);
        assert_eq!(m.content_length(), None);
        assert!(m.auth(HeaderName::Authorization).is_none());
    }
}

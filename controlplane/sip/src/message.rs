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

fn find_crlf(b: &[u8], from: usize) -> Option<usize> {
    let tail = b.get(from..)?;
    memchr::memchr(b'\n', tail).map(|k| from + k)
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
            // One header field: lines until the next line that does not start with SP/HT.
            let mut end = pos;
            loop {
                let nl = find_crlf(hb, end).ok_or(ParseError::BadHeaderLine)?;
                if nl == 0 || hb.get(nl - 1) != Some(&b'\r') {
                    return Err(ParseError::BadHeaderLine);
                }
                end = nl + 1;
                match hb.get(end) {
                    Some(b' ' | b'\t') => continue,
                    _ => break,
                }
            }
            // `end` is just after a '\n'; the field is head[pos..end-2].
            let field = &head[pos..end - 2];
            if field.contains('\r')
                && field
                    .as_bytes()
                    .windows(2)
                    .any(|w| w[0] == b'\r' && w[1] != b'\n')
            {
                return Err(ParseError::BadHeaderLine);
            }
            let colon = field.find(':').ok_or(ParseError::BadHeaderLine)?;
            let name = field[..colon].trim_end_matches([' ', '\t']);
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(ParseError::BadHeaderLine);
            }
            let value = crate::grammar::trim_lws(&field[colon + 1..]);
            let kind = HeaderName::from_name(name);
            if kind == HeaderName::ContentLength {
                let v = crate::header::misc_parse_content_length(value)?;
                match content_length {
                    Some(prev) if prev != v => content_length_conflict = true,
                    Some(_) => content_length_conflict = true,
                    None => content_length = Some(v),
                }
            }
            headers.push(Header { name, kind, value });
            pos = end;
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

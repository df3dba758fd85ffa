//! Owned, editable messages: building requests and responses, B2BUA-style edits,
//! and canonical serialisation.
//!
//! An [`OwnedMessage`] keeps all header text in one arena `String`; headers are
//! spans into it. Converting a parsed [`Message`] copies the header section once
//! (no per-header allocation) and edits append to the arena, so nothing is
//! reparsed. Serialisation writes canonical names (long form), unfolds values,
//! and always emits a `Content-Length` that matches the body.

use crate::error::{BufferTooSmall, ParseError};
use crate::header::{CSeq, HeaderName, NameAddr, Via};
use crate::message::{Message, StartLine};
use crate::method::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Start {
    Request { method: Span, uri: Span },
    Response { code: u16, reason: Span },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    kind: HeaderName,
    name: Span,
    value: Span,
}

/// An owned SIP message that can be edited and serialised.
///
/// Invariants: every span lies inside `text` on char boundaries; values added
/// through the API contain no CR or LF (they are replaced by SP, so a peer-supplied
/// string can never inject a header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedMessage {
    text: String,
    start: Start,
    headers: Vec<Entry>,
    body: Vec<u8>,
}

/// Where serialised bytes go.
trait Sink {
    fn put(&mut self, b: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
}

struct Counter(usize);

impl Sink for Counter {
    fn put(&mut self, b: &[u8]) {
        self.0 += b.len();
    }
}

struct SliceSink<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl Sink for SliceSink<'_> {
    fn put(&mut self, b: &[u8]) {
        // Capacity is checked by the caller before emitting; out-of-range writes are skipped.
        if let Some(dst) = self.buf.get_mut(self.pos..self.pos + b.len()) {
            dst.copy_from_slice(b);
        }
        self.pos += b.len();
    }
}

impl OwnedMessage {
    fn empty(start: Start, text: String) -> Self {
        OwnedMessage {
            text,
            start,
            headers: Vec::with_capacity(16),
            body: Vec::new(),
        }
    }

    /// Appends sanitised text to the arena and returns its span.
    fn intern(&mut self, s: &str) -> Span {
        let start = self.text.len();
        if s.contains(['\r', '\n']) {
            self.text.extend(
                s.chars()
                    .map(|c| if c == '\r' || c == '\n' { ' ' } else { c }),
            );
        } else {
            self.text.push_str(s);
        }
        Span {
            start,
            end: self.text.len(),
        }
    }

    fn span(&self, s: Span) -> &str {
        self.text.get(s.start..s.end).unwrap_or_default()
    }

    /// A new request (`Request::builder` in other stacks).
    pub fn request(method: Method, uri: &str) -> Self {
        Self::request_ext(method.as_str(), uri)
    }

    /// A new request with an extension method token.
    pub fn request_ext(method: &str, uri: &str) -> Self {
        let mut m = Self::empty(
            Start::Request {
                method: Span { start: 0, end: 0 },
                uri: Span { start: 0, end: 0 },
            },
            String::with_capacity(512),
        );
        let method = m.intern(method);
        let uri = m.intern(uri);
        m.start = Start::Request { method, uri };
        m
    }

    /// A new response with no headers.
    pub fn response(code: u16, reason: &str) -> Self {
        let mut m = Self::empty(
            Start::Response {
                code,
                reason: Span { start: 0, end: 0 },
            },
            String::with_capacity(512),
        );
        let reason = m.intern(reason);
        m.start = Start::Response { code, reason };
        m
    }

    /// A response to `req` per RFC 3261 §8.2.6: Via (all, in order), From, To,
    /// Call-ID and CSeq are copied, and Timestamp for a 100 (§8.2.6.1). Add a To
    /// tag with [`OwnedMessage::set_to_tag`] when the response creates a dialog.
    pub fn response_to(req: &Message<'_>, code: u16, reason: &str) -> Self {
        let mut m = Self::response(code, reason);
        for h in req.headers() {
            let copy = matches!(
                h.kind,
                HeaderName::Via
                    | HeaderName::From
                    | HeaderName::To
                    | HeaderName::CallId
                    | HeaderName::CSeq
            ) || (code == 100 && h.kind == HeaderName::Timestamp);
            if copy {
                m.push(h.kind, h.value);
            }
        }
        m
    }

    /// A response to an owned request (same rules as [`OwnedMessage::response_to`]).
    pub fn response_to_owned(req: &OwnedMessage, code: u16, reason: &str) -> Self {
        let mut m = Self::response(code, reason);
        for e in &req.headers {
            if matches!(
                e.kind,
                HeaderName::Via
                    | HeaderName::From
                    | HeaderName::To
                    | HeaderName::CallId
                    | HeaderName::CSeq
            ) || (code == 100 && e.kind == HeaderName::Timestamp)
            {
                m.push(e.kind, req.span(e.value));
            }
        }
        m
    }

    /// Copies a parsed message: one copy of the header section, one of the body.
    pub fn from_message(msg: &Message<'_>) -> Self {
        let base = msg.head.as_ptr() as usize;
        let off = |s: &str| {
            let start = (s.as_ptr() as usize).saturating_sub(base);
            Span {
                start,
                end: start + s.len(),
            }
        };
        let start = match msg.start_line() {
            StartLine::Request(r) => Start::Request {
                method: off(r.method),
                uri: off(r.uri.as_str()),
            },
            StartLine::Response(s) => Start::Response {
                code: s.code,
                reason: off(s.reason),
            },
        };
        let headers = msg
            .headers()
            .iter()
            .map(|h| Entry {
                kind: h.kind,
                name: off(h.name),
                value: off(h.value),
            })
            .collect();
        OwnedMessage {
            text: msg.head.to_owned(),
            start,
            headers,
            body: msg.body().to_vec(),
        }
    }

    // ---- reading ----

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, Start::Request { .. })
    }

    /// Method token of a request.
    pub fn method(&self) -> Option<&str> {
        match self.start {
            Start::Request { method, .. } => Some(self.span(method)),
            Start::Response { .. } => None,
        }
    }

    /// Request-URI text of a request.
    pub fn request_uri(&self) -> Option<&str> {
        match self.start {
            Start::Request { uri, .. } => Some(self.span(uri)),
            Start::Response { .. } => None,
        }
    }

    /// Status code of a response.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            Start::Response { code, .. } => Some(code),
            Start::Request { .. } => None,
        }
    }

    /// Reason phrase of a response.
    pub fn reason(&self) -> Option<&str> {
        match self.start {
            Start::Response { reason, .. } => Some(self.span(reason)),
            Start::Request { .. } => None,
        }
    }

    /// Headers in order as `(name as written or canonical, kind, value)`.
    pub fn headers(&self) -> impl Iterator<Item = (&str, HeaderName, &str)> + '_ {
        self.headers
            .iter()
            .map(|e| (self.name_of(e), e.kind, self.span(e.value)))
    }

    fn name_of(&self, e: &Entry) -> &str {
        if e.kind == HeaderName::Other {
            self.span(e.name)
        } else {
            e.kind.as_str()
        }
    }

    /// First value of a known header.
    pub fn get(&self, kind: HeaderName) -> Option<&str> {
        self.headers
            .iter()
            .find(|e| e.kind == kind)
            .map(|e| self.span(e.value))
    }

    /// All values of a known header.
    pub fn get_all(&self, kind: HeaderName) -> impl Iterator<Item = &str> + '_ {
        self.headers
            .iter()
            .filter(move |e| e.kind == kind)
            .map(|e| self.span(e.value))
    }

    /// First value of a header by name (compact and long forms recognised).
    pub fn get_by_name(&self, name: &str) -> Option<&str> {
        let kind = HeaderName::from_name(name);
        self.headers
            .iter()
            .find(|e| self.matches(e, kind, name))
            .map(|e| self.span(e.value))
    }

    fn matches(&self, e: &Entry, kind: HeaderName, name: &str) -> bool {
        if kind == HeaderName::Other {
            e.kind == HeaderName::Other && self.span(e.name).eq_ignore_ascii_case(name)
        } else {
            e.kind == kind
        }
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// `Call-ID`.
    pub fn call_id(&self) -> Option<&str> {
        self.get(HeaderName::CallId)
    }

    /// `CSeq`.
    pub fn cseq(&self) -> Result<CSeq<'_>, ParseError> {
        CSeq::parse(
            self.get(HeaderName::CSeq)
                .ok_or(ParseError::MissingHeader(HeaderName::CSeq))?,
        )
    }

    /// The topmost Via element.
    pub fn top_via(&self) -> Result<Via<'_>, ParseError> {
        let first = self
            .get_all(HeaderName::Via)
            .flat_map(crate::grammar::CommaSplit::new)
            .next()
            .ok_or(ParseError::MissingHeader(HeaderName::Via))?;
        Via::parse(first)
    }

    /// `From`.
    pub fn from(&self) -> Result<NameAddr<'_>, ParseError> {
        let v = self
            .get(HeaderName::From)
            .ok_or(ParseError::MissingHeader(HeaderName::From))?;
        NameAddr::parse(v, HeaderName::From)
    }

    /// `To`.
    pub fn to(&self) -> Result<NameAddr<'_>, ParseError> {
        let v = self
            .get(HeaderName::To)
            .ok_or(ParseError::MissingHeader(HeaderName::To))?;
        NameAddr::parse(v, HeaderName::To)
    }

    // ---- editing ----

    /// Appends a known header (use [`OwnedMessage::push_named`] for others;
    /// `HeaderName::Other` has no name and is ignored here).
    pub fn push(&mut self, kind: HeaderName, value: &str) -> &mut Self {
        if kind == HeaderName::Other {
            return self;
        }
        let value = self.intern(value);
        self.headers.push(Entry {
            kind,
            name: Span { start: 0, end: 0 },
            value,
        });
        self
    }

    /// Appends a header by name; known names (any case, compact) become their kind.
    pub fn push_named(&mut self, name: &str, value: &str) -> &mut Self {
        let kind = HeaderName::from_name(name);
        let name = self.intern(name);
        let value = self.intern(value);
        self.headers.push(Entry { kind, name, value });
        self
    }

    /// Inserts a known header before the first header (e.g. a new top Via, §16.6 step 8).
    pub fn push_front(&mut self, kind: HeaderName, value: &str) -> &mut Self {
        if kind == HeaderName::Other {
            return self;
        }
        let value = self.intern(value);
        self.headers.insert(
            0,
            Entry {
                kind,
                name: Span { start: 0, end: 0 },
                value,
            },
        );
        self
    }

    /// Replaces the first header of `kind` with `value` and removes the others;
    /// appends when absent (`HeaderName::Other` is ignored: use the `_named` calls).
    pub fn set(&mut self, kind: HeaderName, value: &str) -> &mut Self {
        if kind == HeaderName::Other {
            return self;
        }
        let span = self.intern(value);
        match self.headers.iter().position(|e| e.kind == kind) {
            Some(first) => {
                if let Some(e) = self.headers.get_mut(first) {
                    e.value = span;
                }
                let mut k = 0;
                self.headers.retain(|e| {
                    let keep = e.kind != kind || k == first;
                    k += 1;
                    keep
                });
            }
            None => self.headers.push(Entry {
                kind,
                name: Span { start: 0, end: 0 },
                value: span,
            }),
        }
        self
    }

    /// Removes every header of `kind`; returns how many.
    pub fn remove(&mut self, kind: HeaderName) -> usize {
        let before = self.headers.len();
        self.headers.retain(|e| e.kind != kind);
        before - self.headers.len()
    }

    /// Removes every header with this name (compact/long/any case); returns how many.
    pub fn remove_named(&mut self, name: &str) -> usize {
        let kind = HeaderName::from_name(name);
        let before = self.headers.len();
        let keep: Vec<bool> = self
            .headers
            .iter()
            .map(|e| !self.matches(e, kind, name))
            .collect();
        let mut it = keep.into_iter();
        self.headers.retain(|_| it.next().unwrap_or(true));
        before - self.headers.len()
    }

    /// Removes the first *element* of `kind` (e.g. the top Via when a response goes
    /// upstream, RFC 3261 §18.1.2), even when several are on one line.
    pub fn remove_first_element(&mut self, kind: HeaderName) -> bool {
        let Some(pos) = self.headers.iter().position(|e| e.kind == kind) else {
            return false;
        };
        let Some(e) = self.headers.get(pos).copied() else {
            return false;
        };
        let value = self.span(e.value).to_owned();
        let mut parts = crate::grammar::CommaSplit::new(&value);
        parts.next();
        let rest: Vec<&str> = parts.collect();
        if rest.is_empty() {
            self.headers.remove(pos);
        } else {
            let joined = rest.join(", ");
            let span = self.intern(&joined);
            if let Some(e) = self.headers.get_mut(pos) {
                e.value = span;
            }
        }
        true
    }

    /// Adds `;tag=` to the To header when it has none (RFC 3261 §8.2.6.2).
    pub fn set_to_tag(&mut self, tag: &str) -> &mut Self {
        let Some(pos) = self.headers.iter().position(|e| e.kind == HeaderName::To) else {
            return self;
        };
        let Some(e) = self.headers.get(pos).copied() else {
            return self;
        };
        let current = self.span(e.value);
        let has_tag = NameAddr::parse(current, HeaderName::To).is_ok_and(|n| n.tag().is_some());
        if !has_tag {
            let v = format!("{current};tag={tag}");
            let span = self.intern(&v);
            if let Some(e) = self.headers.get_mut(pos) {
                e.value = span;
            }
        }
        self
    }

    /// Replaces the URI of the first element of the first `kind` header (From, To,
    /// Contact, Route, Refer-To, ...), keeping its display name and header
    /// parameters; the URI is written in `<>` (RFC 3261 §20.10 makes that safe for
    /// any URI). Returns the error when the current value is not a name-addr.
    pub fn set_header_uri(&mut self, kind: HeaderName, uri: &str) -> Result<(), ParseError> {
        let pos = self
            .headers
            .iter()
            .position(|e| e.kind == kind)
            .ok_or(ParseError::MissingHeader(kind))?;
        let e = self
            .headers
            .get(pos)
            .copied()
            .ok_or(ParseError::MissingHeader(kind))?;
        let current = self.span(e.value).to_owned();
        let mut elements = crate::grammar::CommaSplit::new(&current);
        let first = elements.next().ok_or(ParseError::BadHeader(kind))?;
        let na = NameAddr::parse(first, kind)?;
        let mut v = String::with_capacity(current.len() + uri.len());
        if let Some(d) = na.display_name {
            if na.display_quoted {
                v.push('"');
                v.push_str(d);
                v.push('"');
            } else {
                v.push_str(d);
            }
            v.push(' ');
        }
        v.push('<');
        v.push_str(uri);
        v.push('>');
        v.push_str(na.params.as_str());
        for rest in elements {
            v.push_str(", ");
            v.push_str(rest);
        }
        let span = self.intern(&v);
        if let Some(e) = self.headers.get_mut(pos) {
            e.value = span;
        }
        Ok(())
    }

    /// Rewrites the Request-URI (no effect on a response).
    pub fn set_request_uri(&mut self, uri: &str) -> &mut Self {
        let span = self.intern(uri);
        if let Start::Request { uri, .. } = &mut self.start {
            *uri = span;
        }
        self
    }

    /// Rewrites the method of a request.
    pub fn set_method(&mut self, method: &str) -> &mut Self {
        let span = self.intern(method);
        if let Start::Request { method, .. } = &mut self.start {
            *method = span;
        }
        self
    }

    /// Rewrites the status of a response.
    pub fn set_status(&mut self, code: u16, reason: &str) -> &mut Self {
        let span = self.intern(reason);
        if let Start::Response { code: c, reason } = &mut self.start {
            *c = code;
            *reason = span;
        }
        self
    }

    /// Replaces the body; Content-Length follows automatically.
    pub fn set_body(&mut self, body: impl Into<Vec<u8>>) -> &mut Self {
        self.body = body.into();
        self
    }

    /// Replaces the body and sets Content-Type.
    pub fn set_body_with_type(
        &mut self,
        content_type: &str,
        body: impl Into<Vec<u8>>,
    ) -> &mut Self {
        self.set(HeaderName::ContentType, content_type);
        self.set_body(body)
    }

    /// Removes the body and Content-Type.
    pub fn clear_body(&mut self) -> &mut Self {
        self.remove(HeaderName::ContentType);
        self.body.clear();
        self
    }

    // ---- serialising ----

    fn emit(&self, out: &mut impl Sink) {
        match self.start {
            Start::Request { method, uri } => {
                out.put(self.span(method).as_bytes());
                out.put(b" ");
                out.put(self.span(uri).as_bytes());
                out.put(b" SIP/2.0\r\n");
            }
            Start::Response { code, reason } => {
                out.put(b"SIP/2.0 ");
                let digits = [
                    b'0' + (code / 100 % 10) as u8,
                    b'0' + (code / 10 % 10) as u8,
                    b'0' + (code % 10) as u8,
                ];
                out.put(&digits);
                out.put(b" ");
                out.put(self.span(reason).as_bytes());
                out.put(b"\r\n");
            }
        }
        for e in &self.headers {
            if e.kind == HeaderName::ContentLength {
                continue;
            }
            out.put(self.name_of(e).as_bytes());
            out.put(b": ");
            put_unfolded(out, crate::grammar::trim_lws(self.span(e.value)));
            out.put(b"\r\n");
        }
        out.put(b"Content-Length: ");
        let mut num = [0u8; 20];
        out.put(fmt_usize(self.body.len(), &mut num));
        out.put(b"\r\n\r\n");
        out.put(&self.body);
    }

    /// Exact size of the serialised message.
    pub fn encoded_len(&self) -> usize {
        let mut c = Counter(0);
        self.emit(&mut c);
        c.0
    }

    /// Appends the serialised message to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.text.len() + self.body.len() + 64);
        self.emit(out);
    }

    /// The serialised message.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.text.len() + self.body.len() + 64);
        self.emit(&mut v);
        v
    }

    /// Serialises into a caller buffer; returns the bytes written.
    pub fn write_to_slice(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let needed = self.encoded_len();
        if needed > buf.len() {
            return Err(BufferTooSmall { needed });
        }
        let mut s = SliceSink { buf, pos: 0 };
        self.emit(&mut s);
        Ok(s.pos)
    }
}

/// Writes a value with every fold (CRLF + WS) replaced by one SP (RFC 3261 §7.3.1).
fn put_unfolded(out: &mut impl Sink, v: &str) {
    if memchr::memchr(b'\r', v.as_bytes()).is_none() {
        out.put(v.as_bytes());
        return;
    }
    let mut first = true;
    for seg in v.split("\r\n") {
        let seg = seg.trim_matches([' ', '\t']);
        if seg.is_empty() {
            continue;
        }
        if !first {
            out.put(b" ");
        }
        out.put(seg.as_bytes());
        first = false;
    }
}

fn fmt_usize(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut k = buf.len();
    loop {
        k -= 1;
        if let Some(d) = buf.get_mut(k) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || k == 0 {
            break;
        }
    }
    buf.get(k..).unwrap_or_default()
}

impl Message<'_> {
    /// An editable copy (see [`OwnedMessage::from_message`]).
    pub fn to_owned_message(&self) -> OwnedMessage {
        OwnedMessage::from_message(self)
    }
}

/// Entry point for building requests: `Request::builder(Method::Invite, uri)`.
#[derive(Debug, Clone, Copy)]
pub struct Request;

impl Request {
    /// Same as [`OwnedMessage::request`].
    pub fn builder(method: Method, uri: &str) -> OwnedMessage {
        OwnedMessage::request(method, uri)
    }
}

/// Entry point for building responses.
#[derive(Debug, Clone, Copy)]
pub struct Response;

impl Response {
    /// Same as [`OwnedMessage::response_to`] (RFC 3261 §8.2.6).
    pub fn to(req: &Message<'_>, code: u16, reason: &str) -> OwnedMessage {
        OwnedMessage::response_to(req, code, reason)
    }

    /// Same as [`OwnedMessage::response`]: a bare response to fill in.
    pub fn builder(code: u16, reason: &str) -> OwnedMessage {
        OwnedMessage::response(code, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use super::{Request, Response};

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Via: SIP/2.0/UDP p2.example.com;branch=z9hG4bK1, SIP/2.0/UDP p3.example.com;branch=z9hG4bK2\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
X-Custom: folded\r\n value\r\n\
Timestamp: 54\r\n\
l: 4\r\n\
\r\n\
v=0\n";

    #[test]
    fn response_to_copies_rfc3261_8_2_6() {
        let req = Message::parse(INVITE).unwrap();
        let mut r = OwnedMessage::response_to(&req, 180, "Ringing");
        r.set_to_tag("abc");
        let bytes = r.to_bytes();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.starts_with("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP pc33"));
        assert!(text.contains("To: Bob <sip:bob@biloxi.example.com>;tag=abc\r\n"));
        assert!(!text.contains("Timestamp"));
        assert!(!text.contains("Max-Forwards"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
        let back = Message::parse(&bytes).unwrap();
        assert_eq!(back.vias().count(), 3);
        assert_eq!(back.call_id(), req.call_id());
        assert_eq!(back.cseq().unwrap(), req.cseq().unwrap());
        assert_eq!(back.to().unwrap().tag(), Some("abc"));
        let trying = Response::to(&req, 100, "Trying");
        assert_eq!(trying.get(HeaderName::Timestamp), Some("54"));
        // An existing tag is kept.
        let mut again = OwnedMessage::from_message(&back);
        again.set_to_tag("zzz");
        assert_eq!(again.to().unwrap().tag(), Some("abc"));
    }

    #[test]
    fn edit_round_trip() {
        let req = Message::parse(INVITE).unwrap();
        let mut m = req.to_owned_message();
        assert_eq!(m.method(), Some("INVITE"));
        m.set_request_uri("sip:bob@192.0.2.4:5060")
            .push_front(
                HeaderName::Via,
                "SIP/2.0/UDP sbc.example.com;branch=z9hG4bKnew",
            )
            .set(HeaderName::MaxForwards, "69")
            .push_named("P-Foo", "bar\r\nInjected: yes")
            .set_body_with_type(
                "application/sdp",
                b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n".to_vec(),
            );
        assert_eq!(m.remove_named("x-custom"), 1);
        let before = m.encoded_len();
        m.push(HeaderName::Other, "nameless")
            .set(HeaderName::Other, "x");
        assert_eq!(m.encoded_len(), before);
        let bytes = m.to_bytes();
        let p = Message::parse(&bytes).unwrap();
        assert_eq!(p.request_uri().unwrap().as_str(), "sip:bob@192.0.2.4:5060");
        assert_eq!(p.top_via().unwrap().branch(), Some("z9hG4bKnew"));
        assert_eq!(p.max_forwards(), Some(Ok(69)));
        assert_eq!(p.get_by_name("P-Foo"), Some("bar  Injected: yes"));
        assert_eq!(p.get_by_name("Injected"), None);
        assert_eq!(p.body(), b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n");
        assert_eq!(p.content_length(), Some(Ok(31)));
        assert!(p.get_by_name("X-Custom").is_none());
        // Canonical names and unfolded values.
        let canon = OwnedMessage::from_message(&req).to_bytes();
        let t = String::from_utf8(canon).unwrap();
        assert!(t.contains("X-Custom: folded value\r\n"));
        assert!(t.contains("Content-Length: 4\r\n\r\nv=0\n"));
        assert_eq!(m.encoded_len(), bytes.len());
        let mut small = [0u8; 10];
        assert!(m.write_to_slice(&mut small).is_err());
        let mut big = vec![0u8; 4096];
        let n = m.write_to_slice(&mut big).unwrap();
        assert_eq!(&big[..n], &bytes[..]);
    }

    #[test]
    fn rewrite_header_uris() {
        let raw = b"INVITE sip:a@b SIP/2.0\r\nFrom: \"Al \\\"x\\\"\" <sip:+1555@pbx>;tag=9\r\nTo: sip:+1666@trunk\r\nContact: <sip:a@10.0.0.1>;expires=60, <sip:b@10.0.0.2>\r\n\r\n";
        let req = Message::parse(raw).unwrap();
        let mut m = req.to_owned_message();
        m.set_header_uri(HeaderName::From, "sip:+1555@sbc.example.com")
            .unwrap();
        m.set_header_uri(HeaderName::To, "tel:+1666").unwrap();
        m.set_header_uri(
            HeaderName::Contact,
            "sip:sbc@sbc.example.com:5061;transport=tls",
        )
        .unwrap();
        assert!(m.set_header_uri(HeaderName::Route, "sip:x").is_err());
        let b = m.to_bytes();
        let p = Message::parse(&b).unwrap();
        let from = p.from().unwrap();
        assert_eq!(from.uri.as_str(), "sip:+1555@sbc.example.com");
        assert_eq!(from.display().unwrap(), "Al \"x\"");
        assert_eq!(from.tag(), Some("9"));
        assert_eq!(p.to().unwrap().uri.as_str(), "tel:+1666");
        let contacts: Vec<_> = p.contacts().map(|c| c.unwrap()).collect();
        assert_eq!(contacts.len(), 2);
        assert_eq!(contacts[0].expires(), Some(60));
        assert_eq!(
            contacts[0].addr().unwrap().uri.as_str(),
            "sip:sbc@sbc.example.com:5061;transport=tls"
        );
        assert_eq!(contacts[1].addr().unwrap().uri.as_str(), "sip:b@10.0.0.2");
    }

    #[test]
    fn remove_top_via_element() {
        let req = Message::parse(INVITE).unwrap();
        let mut m = req.to_owned_message();
        assert!(m.remove_first_element(HeaderName::Via));
        assert!(m.remove_first_element(HeaderName::Via));
        assert_eq!(m.top_via().unwrap().host.to_string(), "p3.example.com");
        assert!(m.remove_first_element(HeaderName::Via));
        assert!(!m.remove_first_element(HeaderName::Via));
        assert_eq!(m.remove(HeaderName::CallId), 1);
        assert_eq!(m.call_id(), None);
    }

    #[test]
    fn build_request_from_parts() {
        let mut r = Request::builder(
            Method::Options,
            "sip:sip.pstnhub.microsoft.com:5061;transport=tls",
        );
        r.push(
            HeaderName::Via,
            "SIP/2.0/TLS sbc.example.com:5061;branch=z9hG4bK1",
        )
        .push(HeaderName::MaxForwards, "70")
        .push(HeaderName::From, "<sip:sbc.example.com>;tag=1")
        .push(HeaderName::To, "<sip:sip.pstnhub.microsoft.com>")
        .push(HeaderName::CallId, "abc")
        .push(HeaderName::CSeq, "1 OPTIONS");
        let b = r.to_bytes();
        let p = Message::parse(&b).unwrap();
        assert!(crate::validate_request(&p).is_ok());
        assert_eq!(p.method(), Some("OPTIONS"));
        assert_eq!(Method::from_token("INVITE"), Some(Method::Invite));
        assert_eq!(Method::from_token("invite"), None);
        let mut resp = OwnedMessage::response_to_owned(&r, 200, "OK");
        resp.set_status(404, "Not Found");
        assert!(resp.to_bytes().starts_with(b"SIP/2.0 404 Not Found\r\n"));
    }
}

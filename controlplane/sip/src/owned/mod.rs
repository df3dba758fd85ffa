//! Owned, editable messages: building requests and responses, B2BUA-style edits,
//! and canonical serialisation.
//!
//! An [`OwnedMessage`] keeps all header text in one arena `String`; headers are
//! spans into it. Converting a parsed [`Message`] copies the header section once
//! (no per-header allocation) and edits append to the arena, so nothing is
//! reparsed. Serialisation writes canonical names (long form), unfolds values,
//! and always emits a `Content-Length` that matches the body.

use crate::error::ParseError;
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

mod edit;
mod emit;

#[cfg(test)]
mod tests;

//! The owned SIP message the transaction and dialog layers exchange with their user.
//!
//! [`SipMsg`] wraps the codec's [`OwnedMessage`] (`portcullis-sip`: one text
//! arena with header spans, canonical serialisation, CR/LF-injection-safe
//! edits) and adds the typed accessors transactions and dialogs need — top
//! Via, CSeq, Call-ID, From/To tags, Contact, Route/Record-Route lists — parsed
//! on demand. Header names compare per RFC 3261 §7.3.1 (any case, compact
//! forms). Accessors return [`MsgError`] on malformed input and never panic.

use std::fmt;

use portcullis_sip::grammar::CommaSplit;
use portcullis_sip::{HeaderName, OwnedMessage};

use super::via::Via;
use super::MsgError;

/// A SIP method (RFC 3261 §7.1 and extensions).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Update,
    Info,
    Prack,
    Refer,
    Notify,
    Subscribe,
    Message,
    /// Any other token, case preserved (methods are case-sensitive, §7.1).
    Other(String),
}

impl Method {
    /// Parses a method token (case-sensitive, RFC 3261 §7.1).
    #[must_use]
    pub fn from_token(s: &str) -> Self {
        match s {
            "INVITE" => Self::Invite,
            "ACK" => Self::Ack,
            "BYE" => Self::Bye,
            "CANCEL" => Self::Cancel,
            "OPTIONS" => Self::Options,
            "REGISTER" => Self::Register,
            "UPDATE" => Self::Update,
            "INFO" => Self::Info,
            "PRACK" => Self::Prack,
            "REFER" => Self::Refer,
            "NOTIFY" => Self::Notify,
            "SUBSCRIBE" => Self::Subscribe,
            "MESSAGE" => Self::Message,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The wire token.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Invite => "INVITE",
            Self::Ack => "ACK",
            Self::Bye => "BYE",
            Self::Cancel => "CANCEL",
            Self::Options => "OPTIONS",
            Self::Register => "REGISTER",
            Self::Update => "UPDATE",
            Self::Info => "INFO",
            Self::Prack => "PRACK",
            Self::Refer => "REFER",
            Self::Notify => "NOTIFY",
            Self::Subscribe => "SUBSCRIBE",
            Self::Message => "MESSAGE",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// CSeq header value (RFC 3261 §20.16).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

/// An owned SIP message: the codec's [`OwnedMessage`] (one text arena, header
/// spans, canonical serialisation) plus the parsed method.
///
/// Invariant: `method` is `Some` exactly when `inner` is a request, and equals
/// its method token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipMsg {
    inner: OwnedMessage,
    method: Option<Method>,
}

/// Header kinds whose values are comma lists (RFC 3261 §7.3.1); others never split.
fn splits(kind: HeaderName) -> bool {
    matches!(
        kind,
        HeaderName::Via
            | HeaderName::Route
            | HeaderName::RecordRoute
            | HeaderName::Contact
            | HeaderName::Allow
            | HeaderName::Supported
            | HeaderName::Require
    )
}

/// Header name equality per RFC 3261 §7.3.1 (case-insensitive, compact forms).
#[must_use]
pub fn same_header(a: &str, b: &str) -> bool {
    let (ka, kb) = (HeaderName::from_name(a), HeaderName::from_name(b));
    if ka == HeaderName::Other || kb == HeaderName::Other {
        ka == kb && a.eq_ignore_ascii_case(b)
    } else {
        ka == kb
    }
}

impl SipMsg {
    /// A request with no headers.
    #[must_use]
    pub fn request(method: Method, uri: impl AsRef<str>) -> Self {
        Self {
            inner: OwnedMessage::request_ext(method.as_str(), uri.as_ref()),
            method: Some(method),
        }
    }

    /// A response with no headers.
    #[must_use]
    pub fn response(status: u16, reason: &str) -> Self {
        Self {
            inner: OwnedMessage::response(status, reason),
            method: None,
        }
    }

    /// Wraps a codec message.
    #[must_use]
    pub fn from_owned(inner: OwnedMessage) -> Self {
        let method = inner.method().map(Method::from_token);
        Self { inner, method }
    }

    /// The codec message (for B2BUA edits with the full `portcullis-sip` API).
    #[must_use]
    pub fn as_owned(&self) -> &OwnedMessage {
        &self.inner
    }

    /// Unwraps the codec message.
    #[must_use]
    pub fn into_owned(self) -> OwnedMessage {
        self.inner
    }

    /// Request method, `None` for responses.
    #[must_use]
    pub fn method(&self) -> Option<&Method> {
        self.method.as_ref()
    }

    /// Request-URI, `None` for responses.
    #[must_use]
    pub fn request_uri(&self) -> Option<&str> {
        self.inner.request_uri()
    }

    /// Status code, `None` for requests.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        self.inner.status()
    }

    /// The body.
    #[must_use]
    pub fn body(&self) -> &[u8] {
        self.inner.body()
    }

    /// Replaces the body (Content-Length is computed on serialisation).
    pub fn set_body(&mut self, body: impl Into<Vec<u8>>) {
        self.inner.set_body(body);
    }

    /// Header lines in order as `(name, value)`.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.inner.headers().map(|(n, _, v)| (n, v))
    }

    /// First value of the first header called `name`.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).next()
    }

    /// All values of every header called `name`, comma-split where RFC 3261 allows lists.
    pub fn header_values<'s, 'n>(
        &'s self,
        name: &'n str,
    ) -> impl Iterator<Item = &'s str> + use<'s, 'n> {
        let kind = HeaderName::from_name(name);
        self.inner
            .headers()
            .filter(move |(n, k, _)| {
                *k == kind && (kind != HeaderName::Other || n.eq_ignore_ascii_case(name))
            })
            .flat_map(move |(_, _, v)| {
                let mut all = CommaSplit::new(v);
                let mut whole = Some(v.trim());
                std::iter::from_fn(move || {
                    if splits(kind) {
                        all.next()
                    } else {
                        whole.take()
                    }
                })
            })
            .filter(|v| !v.is_empty())
    }

    /// Appends a header line.
    pub fn push_header(&mut self, name: &str, value: impl AsRef<str>) {
        self.inner.push_named(name, value.as_ref());
    }

    /// Replaces every `name` header with one `value` (appended when absent).
    pub fn set_header(&mut self, name: &str, value: impl AsRef<str>) {
        match HeaderName::from_name(name) {
            HeaderName::Other => {
                self.inner.remove_named(name);
                self.inner.push_named(name, value.as_ref());
            }
            kind => {
                self.inner.set(kind, value.as_ref());
            }
        }
    }

    /// Removes every `name` header.
    pub fn remove_header(&mut self, name: &str) {
        self.inner.remove_named(name);
    }

    /// Parsed topmost Via (RFC 3261 §20.42).
    pub fn top_via(&self) -> Result<Via, MsgError> {
        Via::parse(self.header("Via").ok_or(MsgError::Missing("Via"))?)
    }

    /// Replaces the topmost Via value, keeping every other Via in order.
    pub fn set_top_via(&mut self, via: &Via) -> Result<(), MsgError> {
        if !self.inner.remove_first_element(HeaderName::Via) {
            return Err(MsgError::Missing("Via"));
        }
        self.inner.push_front(HeaderName::Via, &via.to_string());
        Ok(())
    }

    /// Parsed CSeq (RFC 3261 §20.16).
    pub fn cseq(&self) -> Result<CSeq, MsgError> {
        let v = self.header("CSeq").ok_or(MsgError::Missing("CSeq"))?;
        let mut it = v.split_ascii_whitespace();
        let seq = it
            .next()
            .and_then(|s| s.parse::<u32>().ok())
            .ok_or(MsgError::Invalid("CSeq"))?;
        let method = it
            .next()
            .map(Method::from_token)
            .ok_or(MsgError::Invalid("CSeq"))?;
        Ok(CSeq { seq, method })
    }

    /// Call-ID value.
    pub fn call_id(&self) -> Result<&str, MsgError> {
        self.header("Call-ID")
            .filter(|v| !v.is_empty())
            .ok_or(MsgError::Missing("Call-ID"))
    }

    /// `tag` parameter of From.
    pub fn from_tag(&self) -> Result<Option<&str>, MsgError> {
        Ok(header_param(
            self.header("From").ok_or(MsgError::Missing("From"))?,
            "tag",
        ))
    }

    /// `tag` parameter of To.
    pub fn to_tag(&self) -> Result<Option<&str>, MsgError> {
        Ok(header_param(
            self.header("To").ok_or(MsgError::Missing("To"))?,
            "tag",
        ))
    }

    /// Sets the To tag (response-side, RFC 3261 §8.2.6.2), replacing any present.
    pub fn set_to_tag(&mut self, tag: &str) -> Result<(), MsgError> {
        let to = self.header("To").ok_or(MsgError::Missing("To"))?;
        let new = with_header_param(to, "tag", tag);
        self.set_header("To", new);
        Ok(())
    }

    /// URI of the first Contact (RFC 3261 §20.10).
    #[must_use]
    pub fn contact_uri(&self) -> Option<&str> {
        self.header("Contact").map(addr_uri)
    }

    /// Serializes to wire bytes with a correct Content-Length (RFC 3261 §7.5, §20.14).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.to_bytes()
    }
}

/// The URI of a name-addr / addr-spec header value (`"Bob" <sip:b@h>;tag=x` → `sip:b@h`).
#[must_use]
pub fn addr_uri(value: &str) -> &str {
    if let Some(open) = value.find('<') {
        let rest = value.get(open + 1..).unwrap_or("");
        return rest.split('>').next().unwrap_or("").trim();
    }
    // addr-spec form: header params start at the first ';' (RFC 3261 §20.10).
    value.split(';').next().unwrap_or("").trim()
}

/// The header parameters of a name-addr / addr-spec value (after `>` or the first `;`).
fn header_params(value: &str) -> &str {
    match value.rfind('>') {
        Some(close) => value.get(close + 1..).unwrap_or(""),
        None => value.find(';').and_then(|i| value.get(i..)).unwrap_or(""),
    }
}

/// A header parameter value (`tag`, `expires`...); name compared without case.
#[must_use]
pub fn header_param<'v>(value: &'v str, name: &str) -> Option<&'v str> {
    header_params(value)
        .split(';')
        .map(str::trim)
        .find_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
}

/// Returns `value` with header parameter `name=param` set (replaced when present).
#[must_use]
pub fn with_header_param(value: &str, name: &str, param: &str) -> String {
    let params = header_params(value);
    let head = value.get(..value.len() - params.len()).unwrap_or(value);
    let mut out = head.trim_end().to_owned();
    for p in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let k = p.split_once('=').map_or(p, |(k, _)| k).trim();
        if !k.eq_ignore_ascii_case(name) {
            out.push(';');
            out.push_str(p);
        }
    }
    out.push(';');
    out.push_str(name);
    out.push('=');
    out.push_str(param);
    out
}

/// True when a SIP URI carries the `lr` parameter (RFC 3261 §19.1.1 loose routing).
#[must_use]
pub fn uri_has_lr(uri: &str) -> bool {
    let no_headers = uri.split('?').next().unwrap_or("");
    no_headers.split(';').skip(1).any(|p| {
        let k = p.split_once('=').map_or(p, |(k, _)| k);
        k.trim().eq_ignore_ascii_case("lr")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lists_split_only_where_allowed() {
        let mut m = SipMsg::request(Method::Options, "sip:x@y");
        m.push_header("Route", r#""a, b" <sip:x@y;p=1,2>, <sip:z>"#);
        m.push_header("route", "<sip:last>");
        m.push_header("Subject", "hello, world");
        m.push_header("v", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b");
        let routes: Vec<_> = m.header_values("Route").collect();
        assert_eq!(
            routes,
            vec![r#""a, b" <sip:x@y;p=1,2>"#, "<sip:z>", "<sip:last>"]
        );
        assert_eq!(m.header("subject"), Some("hello, world"));
        let mut via = m.top_via().unwrap();
        via.set_param("received", Some("192.0.2.1".into()));
        m.set_top_via(&via).unwrap();
        let vias: Vec<_> = m.header_values("Via").collect();
        assert_eq!(
            vias,
            vec![
                "SIP/2.0/UDP a;branch=z9hG4bK1;received=192.0.2.1",
                "SIP/2.0/UDP b"
            ]
        );
        m.set_header("X-Custom", "1");
        m.set_header("x-custom", "2");
        assert_eq!(m.header_values("X-CUSTOM").collect::<Vec<_>>(), vec!["2"]);
        assert!(same_header("i", "call-id") && !same_header("X-A", "X-B"));
    }

    #[test]
    fn tags_and_uris() {
        assert_eq!(
            header_param("\"B\" <sip:b@h;tag=no>;tag=abc", "tag"),
            Some("abc")
        );
        assert_eq!(header_param("sip:b@h;tag=abc", "TAG"), Some("abc"));
        assert_eq!(header_param("<sip:b@h>", "tag"), None);
        assert_eq!(addr_uri("\"B\" <sip:b@h;lr>;x"), "sip:b@h;lr");
        assert_eq!(addr_uri("sip:b@h;tag=1"), "sip:b@h");
        assert_eq!(
            with_header_param("<sip:b@h>;tag=1;x", "tag", "2"),
            "<sip:b@h>;x;tag=2"
        );
        assert!(uri_has_lr("sip:p.example.com;lr"));
        assert!(!uri_has_lr("sip:p.example.com;lrx=1?lr"));
    }
}

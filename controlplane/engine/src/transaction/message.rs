//! The owned SIP message model used by the transaction and dialog layers.
//!
//! The transaction user hands requests and responses to the engine as [`SipMsg`]
//! values and gets them back in events. The model is deliberately small: a start
//! line, an ordered header list (names kept as received, compared without case
//! and with RFC 3261 §7.3.3 compact forms expanded) and an opaque body. Typed
//! accessors parse the few headers transactions and dialogs need (Via, CSeq,
//! Call-ID, From/To tags, Contact, Route/Record-Route) on demand; they return
//! [`MsgError`] on malformed input and never panic.

use std::fmt;

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

/// First line of a message (RFC 3261 §7.1, §7.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine {
    Request { method: Method, uri: String },
    Response { status: u16, reason: String },
}

/// CSeq header value (RFC 3261 §20.16).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

/// An owned SIP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipMsg {
    pub start: StartLine,
    /// Headers in wire order; `(name as received, value without surrounding LWS)`.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Expands an RFC 3261 §7.3.3 compact header name to its long form.
fn long_name(name: &str) -> &str {
    if name.len() != 1 {
        return name;
    }
    match name.as_bytes().first().map(u8::to_ascii_lowercase) {
        Some(b'v') => "Via",
        Some(b'f') => "From",
        Some(b't') => "To",
        Some(b'i') => "Call-ID",
        Some(b'm') => "Contact",
        Some(b'l') => "Content-Length",
        Some(b'c') => "Content-Type",
        Some(b'k') => "Supported",
        Some(b's') => "Subject",
        Some(b'e') => "Content-Encoding",
        _ => name,
    }
}

/// Header name equality per RFC 3261 §7.3.1 (case-insensitive, compact forms).
#[must_use]
pub fn same_header(a: &str, b: &str) -> bool {
    long_name(a).eq_ignore_ascii_case(long_name(b))
}

/// Splits a header value on commas that are outside quotes and angle brackets
/// (RFC 3261 §7.3.1 multiple values in one header line).
pub fn split_commas(value: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut in_q, mut in_a, mut esc, mut start) = (false, false, false, 0usize);
    for (i, c) in value.char_indices() {
        if esc {
            esc = false;
            continue;
        }
        match c {
            '\\' if in_q => esc = true,
            '"' => in_q = !in_q,
            '<' if !in_q => in_a = true,
            '>' if !in_q => in_a = false,
            ',' if !in_q && !in_a => {
                parts.push(value.get(start..i).unwrap_or("").trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value.get(start..).unwrap_or("").trim());
    parts.into_iter().filter(|p| !p.is_empty())
}

impl SipMsg {
    /// A request with no headers.
    #[must_use]
    pub fn request(method: Method, uri: impl Into<String>) -> Self {
        Self {
            start: StartLine::Request {
                method,
                uri: uri.into(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A response with no headers.
    #[must_use]
    pub fn response(status: u16, reason: impl Into<String>) -> Self {
        Self {
            start: StartLine::Response {
                status,
                reason: reason.into(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Request method, `None` for responses.
    #[must_use]
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// Request-URI, `None` for responses.
    #[must_use]
    pub fn request_uri(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// Status code, `None` for requests.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { status, .. } => Some(*status),
            StartLine::Request { .. } => None,
        }
    }

    /// First value of the first header called `name`.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).next()
    }

    /// All values of every header called `name`, comma-split, in order.
    pub fn header_values<'s, 'n>(
        &'s self,
        name: &'n str,
    ) -> impl Iterator<Item = &'s str> + use<'s, 'n> {
        self.headers
            .iter()
            .filter(move |(n, _)| same_header(n, name))
            .flat_map(|(n, v)| {
                // Call-ID, CSeq, Content-*, From/To never carry comma lists.
                let splits = [
                    "Via",
                    "Route",
                    "Record-Route",
                    "Contact",
                    "Allow",
                    "Supported",
                    "Require",
                ]
                .iter()
                .any(|h| same_header(n, h));
                let vals: Vec<&str> = if splits {
                    split_commas(v).collect()
                } else {
                    vec![v.as_str()]
                };
                vals.into_iter()
            })
    }

    /// Appends a header line.
    pub fn push_header(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.headers.push((name.into(), value.into()));
    }

    /// Inserts a header line before every other header.
    pub fn prepend_header(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.headers.insert(0, (name.into(), value.into()));
    }

    /// Replaces every `name` header with one `value` (appended when absent).
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.headers.iter().position(|(n, _)| same_header(n, name)) {
            Some(pos) => {
                self.remove_header(name);
                let pos = pos.min(self.headers.len());
                self.headers.insert(pos, (name.to_owned(), value));
            }
            None => self.headers.push((name.to_owned(), value)),
        }
    }

    /// Removes every `name` header.
    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !same_header(n, name));
    }

    /// Parsed topmost Via (RFC 3261 §20.42).
    pub fn top_via(&self) -> Result<Via, MsgError> {
        Via::parse(self.header("Via").ok_or(MsgError::Missing("Via"))?)
    }

    /// Replaces the topmost Via value, keeping any other values of that header line.
    pub fn set_top_via(&mut self, via: &Via) -> Result<(), MsgError> {
        let (_, line) = self
            .headers
            .iter_mut()
            .find(|(n, _)| same_header(n, "Via"))
            .ok_or(MsgError::Missing("Via"))?;
        let rest: Vec<&str> = split_commas(line).skip(1).collect();
        let mut v = via.to_string();
        for r in rest {
            v.push_str(", ");
            v.push_str(r);
        }
        *line = v;
        Ok(())
    }

    /// Removes the topmost Via value (used when building ACK/CANCEL copies).
    pub fn retain_only_top_via(&mut self) -> Result<(), MsgError> {
        let top = self.top_via()?;
        self.remove_header("Via");
        self.prepend_header("Via", top.to_string());
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
        let mut out = String::with_capacity(512);
        match &self.start {
            StartLine::Request { method, uri } => {
                out.push_str(method.as_str());
                out.push(' ');
                out.push_str(uri);
                out.push_str(" SIP/2.0\r\n");
            }
            StartLine::Response { status, reason } => {
                out.push_str("SIP/2.0 ");
                out.push_str(&status.to_string());
                out.push(' ');
                out.push_str(reason);
                out.push_str("\r\n");
            }
        }
        for (n, v) in &self.headers {
            if same_header(n, "Content-Length") {
                continue;
            }
            out.push_str(n);
            out.push_str(": ");
            out.push_str(v);
            out.push_str("\r\n");
        }
        out.push_str("Content-Length: ");
        out.push_str(&self.body.len().to_string());
        out.push_str("\r\n\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
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
    fn comma_split_respects_quotes_and_brackets() {
        let v: Vec<_> = split_commas(r#""a, b" <sip:x@y;p=1,2>, <sip:z>"#).collect();
        assert_eq!(v, vec![r#""a, b" <sip:x@y;p=1,2>"#, "<sip:z>"]);
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

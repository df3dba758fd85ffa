//! Edits: adding, replacing and removing headers, B2BUA-style rewrites of the start
//! line, the To tag and header URIs, and the body. Values are sanitised on the way in
//! (see [`OwnedMessage`]'s invariants).

use super::{Entry, OwnedMessage, Span, Start};
use crate::error::ParseError;
use crate::header::{HeaderName, NameAddr};

impl OwnedMessage {
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
}

//! The line-level parser: splits the input into `<type>=<value>` lines and assigns them
//! to the session or to the current media section (RFC 8866 §5, §9).
//!
//! Tolerance (an SBC meets every stack in the field):
//! - lines end in CRLF or bare LF; trailing spaces/tabs are ignored; blank lines are
//!   skipped;
//! - bytes that are not UTF-8 are replaced with U+FFFD (SDP text is UTF-8 by default,
//!   RFC 8866 §5);
//! - session-level lines may come in any order after `v=`, as long as each appears
//!   at most as often as the grammar allows;
//! - an empty `s=` is accepted;
//! - a missing `t=` is accepted (the description is then written back without one);
//! - an attribute whose value does not match its grammar (a malformed `a=crypto`,
//!   `a=candidate`, `a=rtpmap`, ...) is kept verbatim as [`Attribute::Other`] rather
//!   than failing the whole offer: RFC 8866 §5.13 has receivers ignore attributes they
//!   do not understand, RFC 4568 §7.1.2 has an answerer pick a crypto attribute it
//!   can use, and an SBC must not drop a call over one bad ICE candidate. Typed
//!   accessors skip such attributes; rewrites still match them by name.
//!
//! Rejected with the line number: a first line other than `v=0`, a line that is not
//! `<lower-case letter>=<value>`, a session-only line inside a media section, a
//! duplicate single-occurrence line, a missing `o=` or `s=`, `r=` before any `t=`, a
//! malformed `o=`, `c=`, `b=`, `t=` or `m=` value, and an `a=` line whose attribute
//! name is not a token.

use std::borrow::Cow;

use super::attribute::Attribute;
use super::error::{invalid, SdpError, SdpErrorKind};
use super::media::MediaDescription;
use super::types::{is_token, Bandwidth, Connection, Origin, RawLine, Timing};
use super::SessionDescription;

/// Splits `input` into numbered, trimmed, non-blank lines.
fn lines(input: &[u8]) -> impl Iterator<Item = (usize, Cow<'_, str>)> {
    input
        .split(|b| *b == b'\n')
        .enumerate()
        .filter_map(|(i, raw)| {
            let end = raw
                .iter()
                .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r'))
                .map_or(0, |p| p + 1);
            let line = raw.get(..end).unwrap_or_default();
            (!line.is_empty()).then(|| (i + 1, String::from_utf8_lossy(line)))
        })
}

/// Parses an `a=` value; a known attribute with a malformed value is kept verbatim as
/// [`Attribute::Other`] (see the module docs). Only a bad attribute name is an error.
fn attribute(value: &str) -> Result<Attribute, SdpErrorKind> {
    match Attribute::parse(value) {
        Ok(a) => Ok(a),
        Err(e) => {
            let (name, v) = match value.split_once(':') {
                Some((n, v)) => (n, Some(v)),
                None => (value, None),
            };
            if !is_token(name) {
                return Err(e);
            }
            Ok(Attribute::Other {
                name: name.to_owned(),
                value: v.map(str::to_owned),
            })
        }
    }
}

/// Sets a single-occurrence field or reports the duplicate.
fn once<T>(slot: &mut Option<T>, v: T, kind: char) -> Result<(), SdpErrorKind> {
    if slot.is_some() {
        return Err(SdpErrorKind::DuplicateLine(kind));
    }
    *slot = Some(v);
    Ok(())
}

/// Parses a complete session description.
pub(crate) fn parse(input: &[u8]) -> Result<SessionDescription, SdpError> {
    let mut it = lines(input);
    let (first_no, first) = it.next().ok_or(SdpError::new(1, SdpErrorKind::Empty))?;
    match first.strip_prefix("v=") {
        None => return Err(SdpError::new(first_no, SdpErrorKind::MissingVersion)),
        Some(v) if v.trim_start() != "0" => {
            let kind = SdpErrorKind::UnsupportedVersion(v.chars().take(16).collect());
            return Err(SdpError::new(first_no, kind));
        }
        Some(_) => {}
    }

    let mut b = Builder::default();
    let mut last_no = first_no;
    for (no, line) in it {
        last_no = no;
        b.line(&line).map_err(|k| SdpError::new(no, k))?;
    }
    b.finish().map_err(|k| SdpError::new(last_no, k))
}

/// Repeatable session-level lines read before the first `m=`.
#[derive(Default)]
struct Pending {
    emails: Vec<String>,
    phones: Vec<String>,
    bandwidths: Vec<Bandwidth>,
    timings: Vec<Timing>,
    extra: Vec<RawLine>,
    attributes: Vec<Attribute>,
}

/// Accumulates the session while lines are read.
#[derive(Default)]
struct Builder {
    origin: Option<Origin>,
    name: Option<String>,
    session: Option<SessionDescription>,
    media: Option<MediaDescription>,
    pending: Pending,
    info: Option<String>,
    uri: Option<String>,
    connection: Option<Connection>,
    zones: Option<String>,
    key: Option<String>,
}

impl Builder {
    fn line(&mut self, line: &str) -> Result<(), SdpErrorKind> {
        let bytes = line.as_bytes();
        let kind = match bytes {
            [k, b'=', ..] if k.is_ascii_lowercase() => char::from(*k),
            _ => return Err(SdpErrorKind::MalformedLine),
        };
        let value = line.get(2..).unwrap_or_default();
        if kind == 'm' {
            let m = MediaDescription::parse_m_line(value)?;
            self.start_session()?;
            if let (Some(s), Some(done)) = (self.session.as_mut(), self.media.take()) {
                s.media.push(done);
            }
            self.media = Some(m);
            return Ok(());
        }
        match self.media.as_mut() {
            Some(m) => media_line(m, kind, value),
            None => self.session_line(kind, value),
        }
    }

    fn session_line(&mut self, kind: char, value: &str) -> Result<(), SdpErrorKind> {
        let s = &mut self.pending;
        match kind {
            'v' => return Err(SdpErrorKind::DuplicateLine('v')),
            'o' => once(&mut self.origin, Origin::parse(value)?, 'o')?,
            's' => once(&mut self.name, value.to_owned(), 's')?,
            'i' => once(&mut self.info, value.to_owned(), 'i')?,
            'u' => once(&mut self.uri, value.to_owned(), 'u')?,
            'e' => s.emails.push(value.to_owned()),
            'p' => s.phones.push(value.to_owned()),
            'c' => once(&mut self.connection, Connection::parse(value)?, 'c')?,
            'b' => s.bandwidths.push(Bandwidth::parse(value)?),
            't' => s.timings.push(Timing::parse(value)?),
            'r' => match s.timings.last_mut() {
                Some(t) => t.repeats.push(value.to_owned()),
                None => return Err(invalid("r", "placement (no preceding t=)", value)),
            },
            'z' => once(&mut self.zones, value.to_owned(), 'z')?,
            'k' => once(&mut self.key, value.to_owned(), 'k')?,
            'a' => s.attributes.push(attribute(value)?),
            other => s.extra.push(RawLine {
                kind: other,
                value: value.to_owned(),
            }),
        }
        Ok(())
    }

    /// Moves the session-level fields into the session at the first `m=` (or at the
    /// end); `o=` and `s=` must have been seen.
    fn start_session(&mut self) -> Result<(), SdpErrorKind> {
        if self.session.is_some() {
            return Ok(());
        }
        let origin = self.origin.take().ok_or(SdpErrorKind::MissingLine('o'))?;
        let name = self.name.take().ok_or(SdpErrorKind::MissingLine('s'))?;
        let p = std::mem::take(&mut self.pending);
        self.session = Some(SessionDescription {
            origin,
            session_name: name,
            info: self.info.take(),
            uri: self.uri.take(),
            emails: p.emails,
            phones: p.phones,
            connection: self.connection.take(),
            bandwidths: p.bandwidths,
            timings: p.timings,
            time_zones: self.zones.take(),
            key: self.key.take(),
            extra: p.extra,
            attributes: p.attributes,
            media: Vec::new(),
        });
        Ok(())
    }

    fn finish(mut self) -> Result<SessionDescription, SdpErrorKind> {
        self.start_session()?;
        let mut s = self.session.take().ok_or(SdpErrorKind::MissingLine('o'))?;
        if let Some(m) = self.media.take() {
            s.media.push(m);
        }
        Ok(s)
    }
}

fn media_line(m: &mut MediaDescription, kind: char, value: &str) -> Result<(), SdpErrorKind> {
    match kind {
        'i' => once(&mut m.title, value.to_owned(), 'i')?,
        'c' => m.connections.push(Connection::parse(value)?),
        'b' => m.bandwidths.push(Bandwidth::parse(value)?),
        'k' => once(&mut m.key, value.to_owned(), 'k')?,
        'a' => m.attributes.push(attribute(value)?),
        'v' | 'o' | 's' | 'u' | 'e' | 'p' | 't' | 'r' | 'z' => {
            return Err(SdpErrorKind::NotAllowedInMedia(kind))
        }
        other => m.extra.push(RawLine {
            kind: other,
            value: value.to_owned(),
        }),
    }
    Ok(())
}

//! Media descriptions (`m=` sections, RFC 8866 §5.14) and the per-stream rewrites an
//! SBC does on them.

use std::fmt;
use std::net::IpAddr;

use super::attribute::{Attribute, Direction, Rtcp, RtpMap};
use super::crypto::Crypto;
use super::error::{invalid, SdpErrorKind};
use super::ice::Candidate;
use super::types::{field, is_token, num, Bandwidth, Connection, Proto, RawLine};

/// One media section: the `m=` line and the lines up to the next `m=`.
///
/// Rewrites match attributes by name, so a `crypto`, `rtcp`, `candidate` or ICE
/// attribute that was kept verbatim because its value did not parse is replaced or
/// removed like a typed one; read accessors ([`crypto`](Self::crypto),
/// [`rtcp`](Self::rtcp), [`candidates`](Self::candidates), ...) return typed ones only.
///
/// Lines are emitted in RFC 8866 §5 order: `m= i= c= b= k=`, then unknown line types
/// kept verbatim, then the `a=` lines in their original order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MediaDescription {
    /// `<media>`: `audio`, `video`, `image`, `application`, ...
    pub media: String,
    /// `<port>`; 0 means the stream is rejected or disabled (RFC 3264 §5.1).
    pub port: u16,
    /// The `/<number of ports>` suffix, when present.
    pub port_count: Option<u32>,
    /// `<proto>`.
    pub proto: Proto,
    /// `<fmt>` list (RTP payload types as text, or e.g. `t38`), in preference order.
    pub formats: Vec<String>,
    /// `i=` media title.
    pub title: Option<String>,
    /// `c=` lines of this section (several only for multicast layering).
    pub connections: Vec<Connection>,
    /// `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// `k=` value, kept verbatim (obsolete, RFC 8866 §5.12).
    pub key: Option<String>,
    /// Lines of unknown type, kept verbatim in order.
    pub extra: Vec<RawLine>,
    /// `a=` lines in order.
    pub attributes: Vec<Attribute>,
}

impl MediaDescription {
    /// A section with no lines besides `m=`.
    pub fn new(media: &str, port: u16, proto: Proto, formats: Vec<String>) -> Self {
        Self {
            media: media.to_owned(),
            port,
            port_count: None,
            proto,
            formats,
            title: None,
            connections: Vec::new(),
            bandwidths: Vec::new(),
            key: None,
            extra: Vec::new(),
            attributes: Vec::new(),
        }
    }

    /// Parses an `m=` value: `<media> <port>[/<number of ports>] <proto> <fmt> ...`.
    ///
    /// An empty format list is accepted (some stacks send it on rejected streams).
    pub fn parse_m_line(v: &str) -> Result<Self, SdpErrorKind> {
        let mut it = v.split_ascii_whitespace();
        let media = field(&mut it, "m", "media")?;
        if !is_token(media) {
            return Err(invalid("m", "media", media));
        }
        let port_s = field(&mut it, "m", "port")?;
        let (port, port_count) = match port_s.split_once('/') {
            Some((p, n)) => (num("m", "port", p)?, Some(num("m", "number-of-ports", n)?)),
            None => (num("m", "port", port_s)?, None),
        };
        let proto = field(&mut it, "m", "proto")?;
        if !proto.split('/').all(is_token) {
            return Err(invalid("m", "proto", proto));
        }
        let mut formats = Vec::new();
        for f in it {
            if !is_token(f) {
                return Err(invalid("m", "fmt", f));
            }
            formats.push(f.to_owned());
        }
        let mut m = Self::new(media, port, Proto::parse(proto), formats);
        m.port_count = port_count;
        Ok(m)
    }

    /// True for `m=audio`.
    pub fn is_audio(&self) -> bool {
        self.media == "audio"
    }

    /// The formats that are RTP payload types (0..=127), in order.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok().filter(|pt| *pt <= 127))
    }

    /// The `a=rtpmap` for payload type `pt`, if any.
    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::RtpMap(m) if m.payload_type == pt => Some(m),
            _ => None,
        })
    }

    /// The first `c=` of this section.
    pub fn connection(&self) -> Option<&Connection> {
        self.connections.first()
    }

    /// Replaces every `c=` of this section with one `c=IN IP4|IP6 <ip>`.
    pub fn set_connection(&mut self, ip: IpAddr) {
        self.connections.clear();
        self.connections.push(Connection::new(ip));
    }

    /// Sets the `m=` port (keeps a `/<count>` suffix).
    pub fn set_port(&mut self, port: u16) {
        self.port = port;
    }

    /// True when the stream is rejected or disabled (`m=` port 0, RFC 3264 §6).
    pub fn is_rejected(&self) -> bool {
        self.port == 0
    }

    /// Rejects the stream in an answer (RFC 3264 §6): port 0, formats kept as
    /// offered (the grammar needs at least one).
    pub fn reject(&mut self) {
        self.port = 0;
        self.port_count = None;
    }

    /// `a=ptime`, if present.
    pub fn ptime(&self) -> Option<u32> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Ptime(p) => Some(*p),
            _ => None,
        })
    }

    /// `a=mid`, if present.
    pub fn mid(&self) -> Option<&str> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Mid(m) => Some(m.as_str()),
            _ => None,
        })
    }

    /// The attributes named `name` (typed or not), in order; e.g. `"setup"`,
    /// `"fingerprint"`, `"rtcp-fb"`.
    pub fn attributes_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Attribute> {
        self.attributes.iter().filter(move |a| a.name() == name)
    }

    /// Sets `<proto>`; see [`Proto::to_secure`] / [`Proto::to_plain`] for RTP/AVP ↔
    /// RTP/SAVP.
    pub fn set_proto(&mut self, proto: Proto) {
        self.proto = proto;
    }

    /// The direction attribute of this section, if it has one.
    pub fn direction(&self) -> Option<Direction> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Direction(d) => Some(*d),
            _ => None,
        })
    }

    /// Sets the direction: the first direction attribute is replaced in place, any
    /// other is removed; appended when there was none.
    pub fn set_direction(&mut self, d: Direction) {
        set_direction(&mut self.attributes, d);
    }

    /// The `a=rtcp` attribute, if any.
    pub fn rtcp(&self) -> Option<&Rtcp> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Rtcp(r) => Some(r),
            _ => None,
        })
    }

    /// Sets `a=rtcp` (replacing the first in place, dropping others, or appending).
    pub fn set_rtcp(&mut self, rtcp: Rtcp) {
        replace_or_push(
            &mut self.attributes,
            |a| a.name() == "rtcp",
            Attribute::Rtcp(rtcp),
        );
    }

    /// Removes every `a=rtcp`.
    pub fn remove_rtcp(&mut self) {
        self.attributes.retain(|a| a.name() != "rtcp");
    }

    /// True when `a=rtcp-mux` is present.
    pub fn has_rtcp_mux(&self) -> bool {
        self.attributes.contains(&Attribute::RtcpMux)
    }

    /// Adds `a=rtcp-mux` (once) or removes it.
    pub fn set_rtcp_mux(&mut self, on: bool) {
        if on {
            if !self.has_rtcp_mux() {
                self.attributes.push(Attribute::RtcpMux);
            }
        } else {
            self.attributes.retain(|a| a.name() != "rtcp-mux");
        }
    }

    /// The `a=crypto` attributes in order.
    pub fn crypto(&self) -> impl Iterator<Item = &Crypto> + '_ {
        self.attributes.iter().filter_map(|a| match a {
            Attribute::Crypto(c) => Some(&**c),
            _ => None,
        })
    }

    /// Removes every `a=crypto`; returns how many were removed.
    pub fn remove_crypto(&mut self) -> usize {
        let before = self.attributes.len();
        self.attributes.retain(|a| a.name() != "crypto");
        before - self.attributes.len()
    }

    /// Appends an `a=crypto` after the last existing one (or at the end).
    pub fn add_crypto(&mut self, c: Crypto) {
        let at = self
            .attributes
            .iter()
            .rposition(|a| a.name() == "crypto")
            .map_or(self.attributes.len(), |i| i + 1);
        self.attributes.insert(at, Attribute::Crypto(Box::new(c)));
    }

    /// `(ice-ufrag, ice-pwd)` of this section, when both are present.
    pub fn ice_credentials(&self) -> Option<(&str, &str)> {
        ice_credentials(&self.attributes)
    }

    /// Sets `a=ice-ufrag` and `a=ice-pwd` (replacing in place or appending).
    pub fn set_ice_credentials(&mut self, ufrag: &str, pwd: &str) {
        set_ice_credentials(&mut self.attributes, ufrag, pwd);
    }

    /// The `a=candidate` attributes in order.
    pub fn candidates(&self) -> impl Iterator<Item = &Candidate> + '_ {
        self.attributes.iter().filter_map(|a| match a {
            Attribute::Candidate(c) => Some(&**c),
            _ => None,
        })
    }

    /// Replaces all candidates: the new ones go where the first old one was (or at the
    /// end) and `a=end-of-candidates` is kept after them if it was present.
    pub fn set_candidates(&mut self, cands: Vec<Candidate>) {
        let at = self
            .attributes
            .iter()
            .position(|a| a.name() == "candidate")
            .unwrap_or(self.attributes.len());
        // Everything before `at` is not a candidate, so `at` stays valid after retain.
        self.attributes.retain(|a| a.name() != "candidate");
        let at = at.min(self.attributes.len());
        let tail = self.attributes.split_off(at);
        self.attributes
            .extend(cands.into_iter().map(|c| Attribute::Candidate(Box::new(c))));
        self.attributes.extend(tail);
    }

    /// Removes every ICE attribute of this section: ufrag, pwd, candidates,
    /// `ice-options`, `end-of-candidates`, `remote-candidates`, `ice-mismatch`.
    pub fn remove_ice(&mut self) {
        self.attributes.retain(|a| !is_ice(a));
    }

    /// Keeps only the formats `keep` accepts and drops the `a=rtpmap`, `a=fmtp` and
    /// `a=rtcp-fb` lines of the removed ones. `keep` gets the format and its rtpmap
    /// (if any), so a codec filter can match by encoding name or by payload type.
    /// Returns the number of formats removed.
    pub fn retain_formats<F>(&mut self, mut keep: F) -> usize
    where
        F: FnMut(&str, Option<&RtpMap>) -> bool,
    {
        let mut removed: Vec<String> = Vec::new();
        let mut kept = Vec::with_capacity(self.formats.len());
        for f in std::mem::take(&mut self.formats) {
            let map = f.parse::<u8>().ok().and_then(|pt| self.rtpmap(pt));
            if keep(&f, map) {
                kept.push(f);
            } else {
                removed.push(f);
            }
        }
        self.formats = kept;
        if !removed.is_empty() {
            self.attributes.retain(|a| !bound_to_any(a, &removed));
        }
        removed.len()
    }
}

/// True when `a` is an `a=rtpmap`, `a=fmtp` or `a=rtcp-fb` bound to one of `formats`
/// (`a=rtcp-fb:*` is bound to none), typed or kept verbatim.
fn bound_to_any(a: &Attribute, formats: &[String]) -> bool {
    match a {
        Attribute::RtpMap(m) => formats
            .iter()
            .any(|f| f.parse::<u8>().ok() == Some(m.payload_type)),
        Attribute::Fmtp(x) => formats.contains(&x.format),
        // rtcp-fb, and rtpmap/fmtp lines kept verbatim because they were not typed.
        Attribute::Other {
            name,
            value: Some(v),
        } if matches!(name.as_str(), "rtcp-fb" | "rtpmap" | "fmtp") => v
            .split_ascii_whitespace()
            .next()
            .is_some_and(|fmt| formats.iter().any(|f| f == fmt)),
        _ => false,
    }
}

pub(crate) fn is_ice(a: &Attribute) -> bool {
    matches!(
        a.name(),
        "ice-ufrag"
            | "ice-pwd"
            | "candidate"
            | "ice-options"
            | "end-of-candidates"
            | "remote-candidates"
            | "ice-mismatch"
    )
}

pub(crate) fn set_direction(attrs: &mut Vec<Attribute>, d: Direction) {
    replace_or_push(
        attrs,
        |a| matches!(a, Attribute::Direction(_)),
        Attribute::Direction(d),
    );
}

/// Replaces the first attribute matching `is` with `new` and removes the other
/// matches; appends `new` when none matched.
pub(crate) fn replace_or_push(
    attrs: &mut Vec<Attribute>,
    is: impl Fn(&Attribute) -> bool,
    new: Attribute,
) {
    let mut new = Some(new);
    attrs.retain_mut(|a| {
        if !is(a) {
            return true;
        }
        match new.take() {
            Some(n) => {
                *a = n;
                true
            }
            None => false,
        }
    });
    if let Some(n) = new {
        attrs.push(n);
    }
}

pub(crate) fn ice_credentials(attrs: &[Attribute]) -> Option<(&str, &str)> {
    let ufrag = attrs.iter().find_map(|a| match a {
        Attribute::IceUfrag(u) => Some(u.as_str()),
        _ => None,
    })?;
    let pwd = attrs.iter().find_map(|a| match a {
        Attribute::IcePwd(p) => Some(p.as_str()),
        _ => None,
    })?;
    Some((ufrag, pwd))
}

pub(crate) fn set_ice_credentials(attrs: &mut Vec<Attribute>, ufrag: &str, pwd: &str) {
    replace_or_push(
        attrs,
        |a| a.name() == "ice-ufrag",
        Attribute::IceUfrag(ufrag.to_owned()),
    );
    let pwd = Attribute::IcePwd(pwd.to_owned());
    if attrs.iter().any(|a| a.name() == "ice-pwd") {
        replace_or_push(attrs, |a| a.name() == "ice-pwd", pwd);
    } else {
        // Keep the pair together: right after the ufrag.
        let at = attrs
            .iter()
            .position(|a| a.name() == "ice-ufrag")
            .map_or(attrs.len(), |i| i + 1);
        attrs.insert(at, pwd);
    }
}

impl fmt::Display for MediaDescription {
    /// The `m=` value (without `m=`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.media, self.port)?;
        if let Some(n) = self.port_count {
            write!(f, "/{n}")?;
        }
        write!(f, " {}", self.proto)?;
        for fmt in &self.formats {
            write!(f, " {fmt}")?;
        }
        Ok(())
    }
}

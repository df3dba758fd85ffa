//! SDP codec (RFC 8866) with the typed attributes and the rewrites a B2BUA/SBC needs.
//!
//! # Overview
//!
//! SDP is parsed once per offer/answer, so the representation is owned: a
//! [`SessionDescription`] holding session-level fields and a list of
//! [`MediaDescription`]s, each with its `a=` lines as typed [`Attribute`]s in their
//! original order. Unknown attributes ([`Attribute::Other`]) and unknown line types
//! ([`RawLine`]) are kept verbatim and in order.
//!
//! ```
//! use portcullis_sip::sdp::{Crypto, Direction, Proto, SessionDescription};
//!
//! let offer = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n\
//!               t=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
//! let mut sdp = SessionDescription::parse(offer)?;
//! // Anchor the media on the SBC and offer SDES-SRTP with rtcp-mux toward Teams.
//! sdp.set_connection_address("203.0.113.10".parse().unwrap());
//! sdp.bump_version();
//! if let Some(audio) = sdp.first_audio_mut() {
//!     audio.set_port(40000);
//!     audio.set_proto(audio.proto.to_secure());
//!     audio.remove_crypto();
//!     audio.add_crypto(Crypto::aes_cm_128_hmac_sha1_80(1, &[7; 16], &[9; 14]));
//!     audio.set_rtcp_mux(true);
//!     audio.retain_formats(|fmt, _map| fmt != "8");
//! }
//! assert_eq!(sdp.first_audio().map(|m| m.proto.clone()), Some(Proto::RtpSavp));
//! assert_eq!(sdp.media_direction(0), Some(Direction::SendRecv));
//! let wire: Vec<u8> = sdp.to_bytes();
//! assert_eq!(SessionDescription::parse(&wire)?, sdp);
//! # Ok::<(), portcullis_sip::sdp::SdpError>(())
//! ```
//!
//! ## Entry points
//! - [`SessionDescription::parse`]`(&[u8]) -> Result<SessionDescription, SdpError>`:
//!   accepts CRLF or LF line ends and trailing whitespace; a structural error names the
//!   line number and the reason ([`SdpError`], [`SdpErrorKind`]; `status()` gives the
//!   SIP response, 400). A known attribute with a malformed value is kept verbatim as
//!   [`Attribute::Other`] instead. Never panics.
//! - [`SessionDescription::to_bytes`] / [`SessionDescription::write_to`]: CRLF lines in
//!   RFC 8866 §5 order. `parse(to_bytes(x)) == x` for every parsed `x`.
//!
//! ## Lines
//! `v=` (only 0), `o=` ([`Origin`], all fields), `s=`, `i=`, `u=`, `e=`, `p=`, `c=`
//! ([`Connection`], IP4/IP6/FQDN, session and media), `b=` ([`Bandwidth`]), `t=` with
//! its `r=` lines ([`Timing`]), `z=` and `k=` kept as text, `m=` ([`MediaDescription`]:
//! port, `/count`, [`Proto`], formats).
//!
//! ## Attributes ([`Attribute`])
//! `rtpmap` ([`RtpMap`]), `fmtp` ([`Fmtp`]), `ptime`, `maxptime`, the four directions
//! ([`Direction`]), `rtcp` ([`Rtcp`], RFC 3605), `rtcp-mux`, `crypto` ([`Crypto`],
//! RFC 4568 with [`KeyParam`], [`Lifetime`], [`Mki`]), `ice-ufrag`, `ice-pwd`,
//! `ice-lite`, `candidate` ([`Candidate`], RFC 8839), `mid`, `ssrc` ([`Ssrc`]).
//!
//! ## Rewrites (SBC media anchoring)
//! New offer: [`SessionDescription::new`] + [`MediaDescription::new`].
//! Session: [`SessionDescription::set_connection_address`],
//! [`set_origin_address`](SessionDescription::set_origin_address),
//! [`bump_version`](SessionDescription::bump_version),
//! [`set_direction`](SessionDescription::set_direction),
//! [`media_direction`](SessionDescription::media_direction) (effective direction),
//! [`set_ice_lite`](SessionDescription::set_ice_lite),
//! [`remove_ice`](SessionDescription::remove_ice),
//! [`media_ice_credentials`](SessionDescription::media_ice_credentials) (effective),
//! [`first_audio`](SessionDescription::first_audio) /
//! [`first_audio_mut`](SessionDescription::first_audio_mut),
//! [`rtp_destination`](SessionDescription::rtp_destination) /
//! [`rtcp_destination`](SessionDescription::rtcp_destination) (peer media addresses).
//! Media: [`set_connection`](MediaDescription::set_connection),
//! [`set_port`](MediaDescription::set_port), [`set_proto`](MediaDescription::set_proto),
//! [`set_rtcp`](MediaDescription::set_rtcp) / [`remove_rtcp`](MediaDescription::remove_rtcp),
//! [`set_rtcp_mux`](MediaDescription::set_rtcp_mux),
//! [`remove_crypto`](MediaDescription::remove_crypto) /
//! [`add_crypto`](MediaDescription::add_crypto),
//! [`set_direction`](MediaDescription::set_direction),
//! [`set_ice_credentials`](MediaDescription::set_ice_credentials),
//! [`set_candidates`](MediaDescription::set_candidates),
//! [`retain_formats`](MediaDescription::retain_formats) (codec filter),
//! [`reject`](MediaDescription::reject) (port 0).
//! SRTP keys: [`Crypto::aes_cm_128_hmac_sha1_80`] builds the Teams offer from a 16-byte
//! key and 14-byte salt; [`Crypto::key_material`] decodes them back ([`SrtpKeyMaterial`]).

mod attribute;
mod crypto;
mod error;
mod ice;
mod media;
mod parse;
mod types;

use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};

pub use attribute::{Attribute, Direction, Fmtp, Rtcp, RtpMap, Ssrc};
pub use crypto::{
    suite_key_salt_len, Crypto, KeyParam, Lifetime, Mki, SrtpKeyMaterial, AES_CM_128_HMAC_SHA1_80,
};
pub use error::{CryptoKeyError, SdpError, SdpErrorKind};
pub use ice::{Candidate, CandidateType};
pub use media::MediaDescription;
pub use types::{AddrType, Bandwidth, Connection, Origin, Proto, RawLine, Timing};

/// A parsed session description (RFC 8866 §5).
///
/// Invariants: `v=` is always 0 and so is not stored; `o=` and `s=` are always present
/// (the parser rejects a description without them). Lines are written back in RFC 8866
/// §5 order: `v o s i u e p c b t r z k`, unknown line types, `a=`, then the media
/// sections.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionDescription {
    /// `o=`.
    pub origin: Origin,
    /// `s=` (may be empty: some stacks send `s=` with nothing after it).
    pub session_name: String,
    /// `i=`.
    pub info: Option<String>,
    /// `u=`.
    pub uri: Option<String>,
    /// `e=` lines.
    pub emails: Vec<String>,
    /// `p=` lines.
    pub phones: Vec<String>,
    /// Session-level `c=`.
    pub connection: Option<Connection>,
    /// Session-level `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// `t=` lines, each with its `r=` lines.
    pub timings: Vec<Timing>,
    /// `z=` value, kept verbatim.
    pub time_zones: Option<String>,
    /// Session-level `k=` value, kept verbatim.
    pub key: Option<String>,
    /// Session-level lines of unknown type, verbatim and in order.
    pub extra: Vec<RawLine>,
    /// Session-level `a=` lines in order.
    pub attributes: Vec<Attribute>,
    /// `m=` sections in order.
    pub media: Vec<MediaDescription>,
}

/// `fmt::Write` over a byte vector (formatting into it cannot fail).
struct VecWriter<'a>(&'a mut Vec<u8>);

impl fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

impl SessionDescription {
    /// A minimal description for an offer the SBC originates (e.g. toward a callee when
    /// the caller sent no SDP): `o=- <id> <id> IN IP4|IP6 <ip>`, `s=-`, `c=` the same
    /// address, `t=0 0`, no media. RFC 3264 §5: `t=0 0`, `s=-` when there is no name.
    pub fn new(ip: IpAddr, session_id: u64) -> Self {
        Self {
            origin: Origin {
                username: "-".to_owned(),
                session_id: session_id.to_string(),
                session_version: session_id,
                address: Connection::new(ip),
            },
            session_name: "-".to_owned(),
            info: None,
            uri: None,
            emails: Vec::new(),
            phones: Vec::new(),
            connection: Some(Connection::new(ip)),
            bandwidths: Vec::new(),
            timings: vec![Timing {
                start: 0,
                stop: 0,
                repeats: Vec::new(),
            }],
            time_zones: None,
            key: None,
            extra: Vec::new(),
            attributes: Vec::new(),
            media: Vec::new(),
        }
    }

    /// Parses a session description.
    ///
    /// Tolerated: CRLF or bare LF line ends, trailing spaces/tabs, blank lines, bytes
    /// that are not UTF-8 (replaced with U+FFFD), session-level lines in any order
    /// after `v=`, an empty `s=`, a missing `t=`, and a known attribute whose value
    /// does not match its grammar (kept verbatim as [`Attribute::Other`]; RFC 8866
    /// §5.13 has receivers ignore what they do not understand).
    ///
    /// Rejected, with the 1-based line number: a first line other than `v=0`, a line
    /// that is not `<lower-case letter>=<value>`, a session-only line inside a media
    /// section, a duplicate single-occurrence line, a missing `o=` or `s=`, `r=` before
    /// any `t=`, a malformed `o=`, `c=`, `b=`, `t=` or `m=`, and an `a=` line whose
    /// name is not a token.
    pub fn parse(input: &[u8]) -> Result<Self, SdpError> {
        parse::parse(input)
    }

    /// Serializes with CRLF line ends.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        self.write_to(&mut out);
        out
    }

    /// Appends the serialized description (CRLF line ends) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        // Every Display impl of this module only forwards the formatter's result and
        // VecWriter never fails, so the result is always Ok.
        let _ = write!(VecWriter(out), "{self}");
    }

    /// The first `m=audio` section.
    pub fn first_audio(&self) -> Option<&MediaDescription> {
        self.media.iter().find(|m| m.is_audio())
    }

    /// The first `m=audio` section, mutable.
    pub fn first_audio_mut(&mut self) -> Option<&mut MediaDescription> {
        self.media.iter_mut().find(|m| m.is_audio())
    }

    /// The session-level direction attribute, if any.
    pub fn direction(&self) -> Option<Direction> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Direction(d) => Some(*d),
            _ => None,
        })
    }

    /// Sets the session-level direction (replacing or appending).
    pub fn set_direction(&mut self, d: Direction) {
        media::set_direction(&mut self.attributes, d);
    }

    /// The effective direction of media section `index` (RFC 8866 §6.7): its own
    /// attribute, else the session-level one, else `sendrecv`. `None` when there is no
    /// such section.
    pub fn media_direction(&self, index: usize) -> Option<Direction> {
        let m = self.media.get(index)?;
        Some(m.direction().or(self.direction()).unwrap_or_default())
    }

    /// The effective connection of media section `index`: its first `c=`, else the
    /// session-level one (RFC 8866 §5.7).
    pub fn media_connection(&self, index: usize) -> Option<&Connection> {
        let m = self.media.get(index)?;
        m.connection().or(self.connection.as_ref())
    }

    /// Where to send RTP for media section `index`: the effective `c=` address and
    /// the `m=` port. `None` when the section does not exist, the stream is rejected
    /// (port 0), or the address is not an IP literal (FQDN).
    pub fn rtp_destination(&self, index: usize) -> Option<SocketAddr> {
        let m = self.media.get(index)?;
        if m.is_rejected() {
            return None;
        }
        Some(SocketAddr::new(self.media_connection(index)?.ip()?, m.port))
    }

    /// Where to send RTCP for media section `index`: the RTP destination with
    /// `a=rtcp-mux` (RFC 5761 §5.1), else the `a=rtcp` port and address (RFC 3605),
    /// else RTP port + 1 (RFC 3550 §11).
    pub fn rtcp_destination(&self, index: usize) -> Option<SocketAddr> {
        let m = self.media.get(index)?;
        let rtp = self.rtp_destination(index)?;
        if m.has_rtcp_mux() {
            return Some(rtp);
        }
        Some(match m.rtcp() {
            Some(Rtcp {
                port,
                address: Some(a),
            }) => SocketAddr::new(a.ip()?, *port),
            Some(Rtcp {
                port,
                address: None,
            }) => SocketAddr::new(rtp.ip(), *port),
            None => SocketAddr::new(rtp.ip(), rtp.port().checked_add(1)?),
        })
    }

    /// Points all media at `ip`: sets the session-level `c=` (adding it when absent)
    /// and replaces the `c=` lines of every media section that has its own.
    pub fn set_connection_address(&mut self, ip: IpAddr) {
        self.connection = Some(Connection::new(ip));
        for m in &mut self.media {
            if !m.connections.is_empty() {
                m.set_connection(ip);
            }
        }
    }

    /// Replaces the `o=` address (topology hiding).
    pub fn set_origin_address(&mut self, ip: IpAddr) {
        self.origin.address = Connection::new(ip);
    }

    /// Increments `<sess-version>` (RFC 3264 §8: a changed description gets a higher
    /// version). Wraps at `u64::MAX`.
    pub fn bump_version(&mut self) {
        self.origin.session_version = self.origin.session_version.wrapping_add(1);
    }

    /// True when `a=ice-lite` is present at session level.
    pub fn ice_lite(&self) -> bool {
        self.attributes.contains(&Attribute::IceLite)
    }

    /// Adds (once) or removes the session-level `a=ice-lite` (RFC 8839 §5.3).
    pub fn set_ice_lite(&mut self, on: bool) {
        if on {
            if !self.ice_lite() {
                self.attributes.push(Attribute::IceLite);
            }
        } else {
            self.attributes.retain(|a| a.name() != "ice-lite");
        }
    }

    /// Session-level `(ice-ufrag, ice-pwd)`, when both are present.
    pub fn ice_credentials(&self) -> Option<(&str, &str)> {
        media::ice_credentials(&self.attributes)
    }

    /// The effective `(ice-ufrag, ice-pwd)` of media section `index`: the media-level
    /// pair, else the session-level one (RFC 8839 §5.4: media level takes precedence).
    pub fn media_ice_credentials(&self, index: usize) -> Option<(&str, &str)> {
        let m = self.media.get(index)?;
        m.ice_credentials().or_else(|| self.ice_credentials())
    }

    /// Sets the session-level `a=ice-ufrag` / `a=ice-pwd` (replacing or appending).
    pub fn set_ice_credentials(&mut self, ufrag: &str, pwd: &str) {
        media::set_ice_credentials(&mut self.attributes, ufrag, pwd);
    }

    /// Removes every ICE attribute at session and media level, `ice-lite` included
    /// (for a leg that does not do ICE).
    pub fn remove_ice(&mut self) {
        self.attributes
            .retain(|a| !media::is_ice(a) && a.name() != "ice-lite");
        for m in &mut self.media {
            m.remove_ice();
        }
    }
}

fn line(f: &mut fmt::Formatter<'_>, kind: char, v: impl fmt::Display) -> fmt::Result {
    write!(f, "{kind}={v}\r\n")
}

impl fmt::Display for SessionDescription {
    /// The whole description with CRLF line ends.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("v=0\r\n")?;
        line(f, 'o', &self.origin)?;
        line(f, 's', &self.session_name)?;
        if let Some(i) = &self.info {
            line(f, 'i', i)?;
        }
        if let Some(u) = &self.uri {
            line(f, 'u', u)?;
        }
        for e in &self.emails {
            line(f, 'e', e)?;
        }
        for p in &self.phones {
            line(f, 'p', p)?;
        }
        if let Some(c) = &self.connection {
            line(f, 'c', c)?;
        }
        for b in &self.bandwidths {
            line(f, 'b', b)?;
        }
        for t in &self.timings {
            write!(f, "t={} {}\r\n", t.start, t.stop)?;
            for r in &t.repeats {
                line(f, 'r', r)?;
            }
        }
        if let Some(z) = &self.time_zones {
            line(f, 'z', z)?;
        }
        if let Some(k) = &self.key {
            line(f, 'k', k)?;
        }
        for x in &self.extra {
            line(f, x.kind, &x.value)?;
        }
        for a in &self.attributes {
            line(f, 'a', a)?;
        }
        for m in &self.media {
            line(f, 'm', m)?;
            if let Some(i) = &m.title {
                line(f, 'i', i)?;
            }
            for c in &m.connections {
                line(f, 'c', c)?;
            }
            for b in &m.bandwidths {
                line(f, 'b', b)?;
            }
            if let Some(k) = &m.key {
                line(f, 'k', k)?;
            }
            for x in &m.extra {
                line(f, x.kind, &x.value)?;
            }
            for a in &m.attributes {
                line(f, 'a', a)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

//! The SDP side of `offer` and `answer`: what one side's SDP tells its leg, and the SDP
//! the other side gets instead.
//!
//! Each media section (`m=`) is one stream anchored on one data-plane pair: leg A faces
//! the side that made the first offer (its `from-tag`), leg B the other side. The SDP
//! from side S is (1) checked before anything is allocated ([`plan`]): RTP profiles only,
//! SRTP only with an SDES key this node implements (RFC 4568; DTLS-SRTP is refused), ICE
//! only when `ICE=remove` strips it; (2) learned ([`apply`]): S's RTP address from `c=`
//! and `m=` (or `media-address`, or the SIP source with `SIP-source-address`), rtcp-mux
//! (RFC 5761), S's SDES key as S's `srtp_in`; (3) rewritten for the receiver R: each
//! stream's `m=` port becomes our port on R's leg and its `c=` our address (RFC 8866
//! §5.7), `a=rtcp` goes (RTCP rides on RTP + 1 or is muxed), crypto follows the profile
//! R gets (`transport-protocol`, else what S sent in an offer, else what R offered in an
//! answer): an SRTP profile carries our own key for R (R's `srtp_out`), with the tag and
//! suite R offered when answering it (RFC 4568 §7.1.2); a plain one carries none.
//! `o=` and the session-level `c=` change only when `replace` asks.
//!
//! Invariant: `params[side].srtp_out` is the key last written in an SDP sent to `side`;
//! it is kept (not re-drawn) while the suite stays, so a retransmitted or repeated
//! offer or answer yields the same SDP.

use portcullis_engine::config::EndpointLearning;
use std::net::{IpAddr, SocketAddr};

use portcullis_engine::media::{MediaAllocation, MediaLegParams, Side, SrtpKeyMaterial, SrtpSuite};
use portcullis_sip::sdp::{Connection, Crypto, Direction, KeyParam, Proto, SessionDescription};

use super::request::Options;
use super::NgError;

/// Most media sections (streams) in one call.
pub const MAX_STREAMS: usize = 4;

/// Index of a side in per-side arrays.
pub const fn ix(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

/// One anchored media section.
#[derive(Debug)]
pub struct Stream {
    /// The data-plane pair (`None` while the section is rejected, port 0).
    pub alloc: Option<MediaAllocation>,
    /// `m=` media type (`audio`, `video`).
    pub media_type: String,
    /// Leg parameters, indexed by [`ix`].
    pub params: [MediaLegParams; 2],
    /// The profile each side speaks (learned from its SDP or written into ours).
    pub proto: [Option<Proto>; 2],
    /// The crypto (tag, suite) each side sent us and we accepted.
    pub offered: [Option<(u32, SrtpSuite)>; 2],
}

impl Stream {
    /// A stream not yet allocated; both legs learn their peer from packets (symmetric
    /// RTP, the default of rtpengine) until an SDP says otherwise.
    pub fn new() -> Self {
        // Heuristic endpoint learning is MediaLearning's default (rtpengine's too).
        let params = [MediaLegParams::default(), MediaLegParams::default()];
        Self {
            alloc: None,
            media_type: String::new(),
            params,
            proto: [None, None],
            offered: [None, None],
        }
    }
}

impl Default for Stream {
    fn default() -> Self {
        Self::new()
    }
}

/// What one media section of a received SDP needs, checked before any allocation.
#[derive(Debug, Clone)]
pub struct Section {
    /// Not rejected (port ≠ 0).
    active: bool,
    /// Profile written toward the receiver.
    out_proto: Proto,
    /// The sender's SDES key (tag, key) when it speaks SRTP.
    crypto_in: Option<(u32, SrtpKeyMaterial)>,
    /// Where the sender receives RTP (`None`: unknown or on hold; learnt from packets).
    peer: Option<SocketAddr>,
}

impl Section {
    /// Whether the section needs a data-plane pair.
    pub fn active(&self) -> bool {
        self.active
    }
}

/// True when the SDP carries ICE at session or media level.
fn has_ice(sdp: &SessionDescription) -> bool {
    sdp.ice_lite()
        || sdp.ice_credentials().is_some()
        || sdp
            .media
            .iter()
            .any(|m| m.ice_credentials().is_some() || m.candidates().next().is_some())
}

/// The first crypto attribute whose suite the data plane implements, with its key.
fn sdes_key(m: &portcullis_sip::sdp::MediaDescription) -> Option<(u32, SrtpKeyMaterial)> {
    m.crypto().find_map(|c| {
        let suite = SrtpSuite::from_sdp(&c.suite)?;
        let km = c.key_material().ok()?;
        Some((
            c.tag,
            SrtpKeyMaterial {
                suite,
                key: km.key.as_slice().try_into().ok()?,
                salt: km.salt.as_slice().try_into().ok()?,
            },
        ))
    })
}

/// Checks an SDP from `from` against what this node implements and against the streams
/// already known; says what each section needs.
///
/// # Errors
/// [`NgError::Unsupported`] naming what is not implemented, [`NgError::Sdp`] for an
/// answer that does not match its offer.
pub fn plan(
    sdp: &SessionDescription,
    from: Side,
    offer: bool,
    opts: &Options,
    known: &[Stream],
) -> Result<Vec<Section>, NgError> {
    let n = sdp.media.len();
    if n > MAX_STREAMS {
        return Err(NgError::Unsupported(format!(
            "{n} media sections (at most {MAX_STREAMS})"
        )));
    }
    if !offer && n != known.len() {
        return Err(NgError::Sdp(format!(
            "the answer has {n} media sections, the offer had {}",
            known.len()
        )));
    }
    if has_ice(sdp) && !opts.ice_remove {
        return Err(NgError::Unsupported(
            "ICE in the SDP: only ICE=remove is implemented".into(),
        ));
    }
    let to = from.other();
    let mut out = Vec::with_capacity(n);
    for (i, m) in sdp.media.iter().enumerate() {
        if m.is_rejected() {
            out.push(Section {
                active: false,
                out_proto: m.proto.clone(),
                crypto_in: None,
                peer: None,
            });
            continue;
        }
        if !m.proto.is_rtp() {
            return Err(NgError::Unsupported(format!(
                "media {i}: protocol {} (RTP profiles only)",
                m.proto
            )));
        }
        if matches!(m.proto, Proto::UdpTlsRtpSavp | Proto::UdpTlsRtpSavpf) {
            return Err(NgError::Unsupported(format!(
                "media {i}: DTLS-SRTP ({}); SDES only",
                m.proto
            )));
        }
        let crypto_in = if m.proto.is_secure() {
            Some(sdes_key(m).ok_or_else(|| {
                NgError::Unsupported(format!(
                    "media {i}: {} without an AES_CM_128_HMAC_SHA1_80/32 SDES key",
                    m.proto
                ))
            })?)
        } else {
            None
        };
        let out_proto = match &opts.transport {
            Some(t) => t.clone(),
            None if offer => m.proto.clone(),
            None => known
                .get(i)
                .and_then(|s| s.proto[ix(to)].clone())
                .unwrap_or_else(|| m.proto.clone()),
        };
        let signalled = sdp.rtp_destination(i);
        let ip = opts
            .media_address
            .or(if opts.sip_source {
                opts.received_from
            } else {
                None
            })
            .or(signalled.map(|a| a.ip()));
        let peer = ip
            .filter(|ip| !ip.is_unspecified())
            .map(|ip| SocketAddr::new(ip, m.port));
        out.push(Section {
            active: true,
            out_proto,
            crypto_in,
            peer,
        });
    }
    Ok(out)
}

fn local_port(a: &MediaAllocation, side: Side) -> u16 {
    match side {
        Side::A => a.a_port,
        Side::B => a.b_port,
    }
}

fn crypto(tag: u32, key: &SrtpKeyMaterial) -> Crypto {
    let mut ks = [0u8; 30];
    let (k, s) = ks.split_at_mut(16);
    k.copy_from_slice(&key.key);
    s.copy_from_slice(&key.salt);
    Crypto {
        tag,
        suite: key.suite.as_sdp().to_owned(),
        keys: vec![KeyParam::inline(&ks)],
        session_params: Vec::new(),
    }
}

/// Learns `from`'s streams from its SDP and returns the SDP for the other side.
/// `sections` comes from [`plan`] on the same SDP; `streams` has one entry per section,
/// each active one allocated. `keygen` draws a fresh SRTP key.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    sdp: &SessionDescription,
    sections: &[Section],
    streams: &mut [Stream],
    from: Side,
    offer: bool,
    opts: &Options,
    ip: IpAddr,
    keygen: &mut dyn FnMut(SrtpSuite) -> SrtpKeyMaterial,
) -> Vec<u8> {
    let to = from.other();
    let (f, t) = (ix(from), ix(to));
    let mut out = sdp.clone();
    if opts.ice_remove {
        out.remove_ice();
    }
    if opts.replace_origin {
        out.set_origin_address(ip);
    }
    let session_c = out.connection.is_some() && opts.replace_session_connection;
    if session_c {
        out.connection = Some(Connection::new(ip));
    }
    for ((m, sec), st) in out.media.iter_mut().zip(sections).zip(streams.iter_mut()) {
        st.media_type.clone_from(&m.media);
        if !sec.active {
            st.params[f].peer_rtp = None;
            continue;
        }
        let Some(alloc) = st.alloc else { continue };
        let p = &mut st.params[f];
        p.peer_rtp = sec.peer;
        p.peer_rtcp = None;
        p.rtcp_mux = m.has_rtcp_mux();
        p.srtp_in = sec.crypto_in.as_ref().map(|(_, k)| k.clone());
        p.learning.endpoint_learning = if opts.asymmetric {
            EndpointLearning::Off
        } else {
            EndpointLearning::Heuristic
        };
        st.proto[f] = Some(m.proto.clone());
        st.offered[f] = sec.crypto_in.as_ref().map(|(tag, k)| (*tag, k.suite));
        if !offer {
            // The answer settles rtcp-mux for both legs (RFC 5761 §5.1.1).
            let mux = m.has_rtcp_mux();
            st.params[0].rtcp_mux = mux;
            st.params[1].rtcp_mux = mux;
        }
        m.set_port(local_port(&alloc, to));
        if !m.connections.is_empty() || !session_c {
            m.set_connection(ip);
        }
        m.remove_rtcp();
        m.remove_crypto();
        m.set_proto(sec.out_proto.clone());
        if sec.out_proto.is_secure() {
            let (tag, suite) = match (offer, st.offered[t]) {
                (false, Some(o)) => o,
                _ => (1, SrtpSuite::Aes128Sha1_80),
            };
            let key = match &st.params[t].srtp_out {
                Some(k) if k.suite == suite => k.clone(),
                _ => keygen(suite),
            };
            m.add_crypto(crypto(tag, &key));
            st.params[t].srtp_out = Some(key);
        } else {
            st.params[t].srtp_out = None;
        }
        st.proto[t] = Some(sec.out_proto.clone());
    }
    out.to_bytes()
}

/// Whether any active stream of `sdp` is not `sendrecv` (held: the silent timeout applies).
pub fn held(sdp: &SessionDescription) -> bool {
    (0..sdp.media.len()).any(|i| {
        sdp.media.get(i).is_some_and(|m| !m.is_rejected())
            && sdp.media_direction(i) != Some(Direction::SendRecv)
    })
}

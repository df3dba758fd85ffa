//! SDP rewriting for media anchoring (RFC 3264 offer/answer through the SBC).
//!
//! Every SDP received from one leg is (1) learned: the peer's RTP/RTCP address
//! from `c=`/`m=` (RFC 8866 §5.7, §5.14), rtcp-mux (RFC 5761), and when the leg
//! speaks SRTP the SDES key the peer sends with (RFC 4568 §6.1: a crypto
//! attribute carries the key of the SDP's sender) as that leg's `srtp_in`; and
//! (2) rewritten for the other leg: `o=` and `c=` to the advertised address
//! of that leg's media realm (`IN IP4` or `IN IP6` as the realm is, whatever
//! the family of the SDP received: IPv4/IPv6 interworking) with our own session id and version (RFC 3264 §8), the first audio `m=` port
//! to our local port on that leg, `a=rtcp` and ICE removed (RTCP muxed or on
//! RTP + 1), crypto per the other leg's trunk mode: `srtp` gets our fresh
//! `AES_CM_128_HMAC_SHA1_80` key (that leg's `srtp_out`) and `RTP/SAVP`,
//! `rtp` gets no crypto and `RTP/AVP`. Other media sections are rejected
//! (port 0): only the first audio stream is anchored.
//!
//! Invariant: `params[side].srtp_out` is always the key last written into an
//! SDP sent to `side` (or `None` when that leg is plain RTP).

use portcullis_sip::sdp::{Attribute, Candidate, Direction, Lifetime};
use portcullis_sip::sdp::{
    Crypto, MediaDescription, Proto, SessionDescription, AES_CM_128_HMAC_SHA1_80,
};

use crate::config::MediaMode;
use crate::media::{MediaAllocation, MediaLegParams, RealmId, Side, SrtpKeyMaterial, SrtpSuite};
use crate::trunk_policy::codecs::{self, CodecPolicy, NoCommonCodec};

/// Index of a side in per-side arrays.
pub(crate) const fn ix(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

/// Media state of one call.
#[derive(Debug)]
pub(crate) struct MediaState {
    pub alloc: MediaAllocation,
    /// The media realm of each side's ports (a new party on a side must face a trunk of
    /// that realm).
    pub realms: [RealmId; 2],
    pub params: [MediaLegParams; 2],
    /// Our session id per leg (`o=`), and the version last sent.
    session_id: [u64; 2],
    version: [u64; 2],
    /// Last body sent to each leg (to keep the version when nothing changed).
    last_sent: [Option<Vec<u8>>; 2],
    /// Last SDP received from each leg (crypto tag selection for answers).
    last_from: [Option<SessionDescription>; 2],
    /// ICE-lite credentials (ufrag, pwd) toward a side (RFC 8445 §2.5, Teams
    /// media bypass): stable for the whole call, so 18x, 2xx and re-INVITEs
    /// carry the same ones. `None`: no ICE toward that side.
    pub ice: [Option<(String, String)>; 2],
    /// The side is a Teams Direct Routing trunk: SDP toward it always offers
    /// rtcp-mux and SDES keys carry the `|2^31` lifetime.
    pub teams: [bool; 2],
    /// Codec policy of each side's trunk ([`crate::trunk_policy::codecs`]):
    /// offers are filtered by both sides' policies, answers keep what the
    /// offer held.
    pub codecs: [CodecPolicy; 2],
}

/// Per-side media state saved across a transfer attempt.
#[derive(Clone, Debug)]
pub(crate) struct SideSnapshot {
    params: MediaLegParams,
    ice: Option<(String, String)>,
    teams: bool,
    codecs: CodecPolicy,
    session_id: u64,
    version: u64,
    last_sent: Option<Vec<u8>>,
    last_from: Option<SessionDescription>,
}

/// `sdp` with its first audio stream `sendrecv` (a joined call is taken off hold).
pub(crate) fn sendrecv(sdp: &SessionDescription) -> SessionDescription {
    let mut out = sdp.clone();
    out.attributes
        .retain(|a| !matches!(a, Attribute::Direction(_)));
    if let Some(m) = audio_index(&out).and_then(|i| out.media.get_mut(i)) {
        m.set_direction(Direction::SendRecv);
    }
    out
}

/// Whether the first audio stream of `sdp` is not `sendrecv` (held).
pub(crate) fn is_held(sdp: &SessionDescription) -> bool {
    audio_index(sdp)
        .and_then(|i| sdp.media_direction(i))
        .is_some_and(|d| d != Direction::SendRecv)
}

impl MediaState {
    pub fn new(alloc: MediaAllocation, realms: [RealmId; 2], session_ids: [u64; 2]) -> Self {
        let params = [MediaLegParams::default(), MediaLegParams::default()];
        Self {
            alloc,
            realms,
            params,
            session_id: session_ids,
            version: [1, 1],
            last_sent: [None, None],
            last_from: [None, None],
            ice: [None, None],
            teams: [false, false],
            codecs: [CodecPolicy::default(), CodecPolicy::default()],
        }
    }

    /// Everything of `side` a new leg on that side changes (restored when a
    /// transfer toward a new party fails).
    pub fn snapshot(&self, side: Side) -> SideSnapshot {
        let i = ix(side);
        SideSnapshot {
            params: self.params[i].clone(),
            ice: self.ice[i].clone(),
            teams: self.teams[i],
            codecs: self.codecs[i].clone(),
            session_id: self.session_id[i],
            version: self.version[i],
            last_sent: self.last_sent[i].clone(),
            last_from: self.last_from[i].clone(),
        }
    }

    /// Puts back what [`Self::snapshot`] saved.
    pub fn restore(&mut self, side: Side, s: SideSnapshot) {
        let i = ix(side);
        self.params[i] = s.params;
        self.ice[i] = s.ice;
        self.teams[i] = s.teams;
        self.codecs[i] = s.codecs;
        self.session_id[i] = s.session_id;
        self.version[i] = s.version;
        self.last_sent[i] = s.last_sent;
        self.last_from[i] = s.last_from;
    }

    /// Continues, toward `side`, the `o=` line another call's state sent to a
    /// peer that now moves onto `side` (RFC 3264 §8: same session id, version
    /// bumped when the body changes).
    pub fn adopt_origin(&mut self, side: Side, from: &SideSnapshot) {
        let i = ix(side);
        self.session_id[i] = from.session_id;
        self.version[i] = from.version;
        self.last_sent[i] = from.last_sent.clone();
    }

    /// Whether the last exchange with `side` left its stream held (either
    /// the SDP we sent it or the one it sent is not `sendrecv`).
    pub fn held(&self, side: Side) -> bool {
        let sent = self.last_sent[ix(side)]
            .as_deref()
            .and_then(|b| SessionDescription::parse(b).ok());
        sent.as_ref().is_some_and(is_held) || self.last_from(side).is_some_and(is_held)
    }

    /// Last SDP received from `side`.
    pub fn last_from(&self, side: Side) -> Option<&SessionDescription> {
        self.last_from[ix(side)].as_ref()
    }

    /// The SRTP suite of the media exchanged with `side` (`None`: plain RTP).
    pub fn srtp(&self, side: Side) -> Option<SrtpSuite> {
        let p = &self.params[ix(side)];
        p.srtp_in.as_ref().or(p.srtp_out.as_ref()).map(|k| k.suite)
    }

    /// The codec `side` sends: the first payload type of the audio stream in the SDP it
    /// last sent us, as `NAME/rate` (its `a=rtpmap`, or the static assignments of RFC 3551
    /// §6). `None` before any SDP from it.
    pub fn codec(&self, side: Side) -> Option<String> {
        let sdp = self.last_from(side)?;
        let m = sdp.media.get(audio_index(sdp)?)?;
        let pt = m.payload_types().next()?;
        Some(codec_name(m, pt).unwrap_or_else(|| format!("PT {pt}")))
    }

    fn local_port(&self, side: Side) -> u16 {
        match side {
            Side::A => self.alloc.a_port,
            Side::B => self.alloc.b_port,
        }
    }

    /// Learns the peer address and SRTP key of `from` from its SDP.
    pub fn learn(&mut self, from: Side, sdp: &SessionDescription, mode: MediaMode) {
        let idx = audio_index(sdp);
        let p = &mut self.params[ix(from)];
        let rtp = idx
            .and_then(|i| sdp.rtp_destination(i))
            .filter(|a| !a.ip().is_unspecified() && a.port() != 0);
        let m = idx.and_then(|i| sdp.media.get(i));
        p.rtcp_mux = m.is_some_and(MediaDescription::has_rtcp_mux);
        p.peer_rtp = rtp;
        p.peer_rtcp = if p.rtcp_mux || rtp.is_none() {
            None
        } else {
            idx.and_then(|i| sdp.rtcp_destination(i))
        };
        p.srtp_in = match mode.anchored() {
            MediaMode::Srtp => m.and_then(|m| m.crypto().find_map(key_of)),
            MediaMode::Rtp | MediaMode::Bypass => None,
        };
        self.last_from[ix(from)] = Some(sdp.clone());
    }

    /// Rewrites `sdp` (received from the other leg) for `to` with trunk mode `mode`.
    /// `answer` is true when the SDP answers an offer `to` made (crypto tag reuse).
    /// `new_key` is called when `to` needs SRTP and has no key yet.
    pub fn rewrite_for(
        &mut self,
        to: Side,
        sdp: &SessionDescription,
        mode: MediaMode,
        answer: bool,
        new_key: &mut dyn FnMut() -> SrtpKeyMaterial,
    ) -> Vec<u8> {
        let mut out = sdp.clone();
        // `c=`/`o=` carry the address of `to`'s realm: IPv4 or IPv6 whatever the other
        // side's SDP said (IPv4/IPv6 interworking).
        let ip = self.alloc.ip(to);
        out.origin.username = "-".to_owned();
        out.origin.session_id = self.session_id[ix(to)].to_string();
        out.set_origin_address(ip);
        out.set_connection_address(ip);
        out.remove_ice();
        out.attributes.retain(|a| !matches!(a, Attribute::IceLite));
        let audio = audio_index(&out);
        let port = self.local_port(to);
        let offered_tag = if answer {
            self.last_from[ix(to)]
                .as_ref()
                .and_then(|o| audio_index(o).and_then(|i| o.media.get(i)))
                .and_then(|m| {
                    m.crypto()
                        .find(|c| c.suite.eq_ignore_ascii_case(AES_CM_128_HMAC_SHA1_80))
                        .map(|c| c.tag)
                })
        } else {
            None
        };
        let offered_mux = self.last_from[ix(to)]
            .as_ref()
            .and_then(|o| audio_index(o).and_then(|i| o.media.get(i)))
            .is_some_and(MediaDescription::has_rtcp_mux);
        let mut srtp_out = None;
        for (i, m) in out.media.iter_mut().enumerate() {
            if Some(i) != audio {
                m.reject();
                continue;
            }
            if !m.is_rejected() {
                m.set_port(port);
            }
            m.remove_rtcp();
            m.remove_ice();
            m.remove_crypto();
            self.apply_codecs(to, m, answer);
            if self.teams[ix(to)] && !m.is_rejected() && (!answer || offered_mux) {
                // Teams requires rtcp-mux (RFC 5761); in an answer only when it offered it.
                m.set_rtcp_mux(true);
            }
            if answer && !offered_mux {
                // RFC 5761 §5.1.1: an answer carries a=rtcp-mux only when the offer did
                // (the other side's answer may have it: it answered our offer, not this one).
                m.set_rtcp_mux(false);
            }
            match mode.anchored() {
                MediaMode::Srtp => {
                    let key = self.params[ix(to)]
                        .srtp_out
                        .clone()
                        .unwrap_or_else(&mut *new_key);
                    m.set_proto(m.proto.to_secure());
                    m.add_crypto(Crypto::aes_cm_128_hmac_sha1_80(
                        offered_tag.unwrap_or(1),
                        &key.key,
                        &key.salt,
                    ));
                    srtp_out = Some(key);
                }
                MediaMode::Rtp | MediaMode::Bypass => m.set_proto(m.proto.to_plain()),
            }
        }
        self.params[ix(to)].srtp_out = srtp_out;
        self.finish(to, &mut out)
    }

    /// Our own offer for `to` when the caller sent none (RFC 3261 §13.2.1 delayed
    /// offer is not propagated): the codecs of `to`'s policy (default PCMU, PCMA),
    /// telephone-event, rtcp-mux.
    pub fn own_offer(
        &mut self,
        to: Side,
        mode: MediaMode,
        new_key: &mut dyn FnMut() -> SrtpKeyMaterial,
    ) -> Vec<u8> {
        let ip = self.alloc.ip(to);
        let mut sdp = SessionDescription::new(ip, self.session_id[ix(to)]);
        let list = codecs::own_offer_codecs(&self.codecs[ix(to)]);
        let fmts = list.iter().map(|(pt, _)| pt.to_string()).collect();
        let mut m = MediaDescription::new("audio", self.local_port(to), Proto::RtpAvp, fmts);
        for (pt, map) in &list {
            if let Ok(Attribute::RtpMap(r)) = Attribute::parse(&format!("rtpmap:{pt} {map}")) {
                m.attributes.push(Attribute::RtpMap(r));
            }
        }
        m.set_rtcp_mux(true);
        m.attributes.push(Attribute::Direction(Direction::SendRecv));
        if mode == MediaMode::Srtp {
            let key = self.params[ix(to)]
                .srtp_out
                .clone()
                .unwrap_or_else(&mut *new_key);
            m.set_proto(Proto::RtpSavp);
            m.add_crypto(Crypto::aes_cm_128_hmac_sha1_80(1, &key.key, &key.salt));
            self.params[ix(to)].srtp_out = Some(key);
        }
        sdp.media.push(m);
        self.finish(to, &mut sdp)
    }

    /// Whether an offer `sdp` from `from` keeps a codec once both sides'
    /// codec policies are applied (an offer from the wire is checked before
    /// anything of it is learned).
    pub fn check_offer(&self, from: Side, sdp: &SessionDescription) -> Result<(), NoCommonCodec> {
        let Some(m) = audio_index(sdp).and_then(|i| sdp.media.get(i)) else {
            return Ok(());
        };
        let mut m = m.clone();
        codecs::filter_offer(
            &mut m,
            &self.codecs[ix(from)],
            &self.codecs[ix(from.other())],
        )
    }

    /// The codec policies on the audio section `m` of an SDP toward `to`: an
    /// answer keeps what `to` offered; an offer keeps what both sides allow
    /// (rejected, port 0, when nothing is left: unchecked offers only).
    fn apply_codecs(&self, to: Side, m: &mut MediaDescription, answer: bool) {
        if m.is_rejected() {
            return;
        }
        if answer {
            let offer = self.last_from[ix(to)]
                .as_ref()
                .and_then(|o| audio_index(o).and_then(|i| o.media.get(i)));
            if let Some(offer) = offer {
                codecs::restrict_answer(m, offer);
            }
            return;
        }
        let from = &self.codecs[ix(to.other())];
        if codecs::filter_offer(m, from, &self.codecs[ix(to)]).is_err() {
            m.reject();
        }
    }

    /// Sets our version (bumped only when the body changed) and serialises.
    fn finish(&mut self, to: Side, out: &mut SessionDescription) -> Vec<u8> {
        if let Some((ufrag, pwd)) = self.ice[ix(to)].clone() {
            // RFC 8839 §5: a=ice-lite at session level; credentials and one
            // host candidate per component (RTP, and RTCP without rtcp-mux).
            out.attributes.push(Attribute::IceLite);
            let ip = self.alloc.ip(to);
            let port = self.local_port(to);
            if let Some(m) = audio_index(out).and_then(|i| out.media.get_mut(i)) {
                if !m.is_rejected() {
                    m.attributes.push(Attribute::IceUfrag(ufrag.clone()));
                    m.attributes.push(Attribute::IcePwd(pwd.clone()));
                    let mut cands = vec![Candidate::host("1", 1, ip, port)];
                    if !m.has_rtcp_mux() {
                        cands.push(Candidate::host("1", 2, ip, port.saturating_add(1)));
                    }
                    m.set_candidates(cands);
                }
            }
            self.params[ix(to)].ice_lite = Some((ufrag, pwd));
        } else {
            self.params[ix(to)].ice_lite = None;
        }
        if self.teams[ix(to)] {
            // Teams expects the SDES key lifetime `|2^31` (Direct Routing SIP profile).
            for m in &mut out.media {
                for a in &mut m.attributes {
                    if let Attribute::Crypto(c) = a {
                        for k in &mut c.keys {
                            k.lifetime = Some(Lifetime::PowerOfTwo(31));
                        }
                    }
                }
            }
        }
        out.origin.session_version = self.version[ix(to)];
        let bytes = out.to_bytes();
        if self.last_sent[ix(to)].as_ref().is_none_or(|l| *l == bytes) {
            self.last_sent[ix(to)] = Some(bytes.clone());
            return bytes;
        }
        self.version[ix(to)] += 1;
        out.origin.session_version = self.version[ix(to)];
        let bytes = out.to_bytes();
        self.last_sent[ix(to)] = Some(bytes.clone());
        bytes
    }
}

/// `NAME/rate` of payload type `pt` in `m`: its `a=rtpmap` (name as sent), else the
/// static assignment of RFC 3551 §6. `None` for a dynamic type without rtpmap.
pub(crate) fn codec_name(m: &MediaDescription, pt: u8) -> Option<String> {
    match m.rtpmap(pt) {
        Some(map) => Some(format!("{}/{}", map.encoding, map.clock_rate)),
        None => static_payload(pt).map(str::to_owned),
    }
}

/// Index of the first audio section.
pub(crate) fn audio_index(sdp: &SessionDescription) -> Option<usize> {
    sdp.media.iter().position(MediaDescription::is_audio)
}

/// Audio payload types with a static assignment (RFC 3551 §6, table 4).
fn static_payload(pt: u8) -> Option<&'static str> {
    Some(match pt {
        0 => "PCMU/8000",
        3 => "GSM/8000",
        4 => "G723/8000",
        8 => "PCMA/8000",
        9 => "G722/8000",
        18 => "G729/8000",
        _ => return None,
    })
}

/// SRTP key of a crypto attribute whose suite the data plane supports.
fn key_of(c: &Crypto) -> Option<SrtpKeyMaterial> {
    let suite = SrtpSuite::from_sdp(&c.suite)?;
    let km = c.key_material().ok()?;
    Some(SrtpKeyMaterial {
        suite,
        key: km.key.as_slice().try_into().ok()?,
        salt: km.salt.as_slice().try_into().ok()?,
    })
}

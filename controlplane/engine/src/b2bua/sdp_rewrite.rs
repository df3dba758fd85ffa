//! SDP rewriting for media anchoring (RFC 3264 offer/answer through the SBC).
//!
//! Every SDP received from one leg is (1) learned: the peer's RTP/RTCP address
//! from `c=`/`m=` (RFC 8866 §5.7, §5.14), rtcp-mux (RFC 5761), and when the leg
//! speaks SRTP the SDES key the peer sends with (RFC 4568 §6.1: a crypto
//! attribute carries the key of the SDP's sender) as that leg's `srtp_in`; and
//! (2) rewritten for the other leg: `o=` and `c=` to the advertised address
//! with our own session id and version (RFC 3264 §8), each `m=` port to the
//! local port of its stream on that leg ([`super::streams`]: one port pair per
//! line), `a=rtcp` and ICE removed (RTCP muxed or on RTP + 1), crypto per the
//! other leg's trunk mode on RTP lines: `srtp` gets our fresh
//! `AES_CM_128_HMAC_SHA1_80` key per stream (that leg's `srtp_out`) and
//! `RTP/SAVP`, `rtp` gets no crypto and `RTP/AVP`. T.38 (UDPTL) lines keep
//! their proto and take no crypto; lines that cannot be relayed, and lines past
//! the anchored streams, are rejected (port 0). Codec policy applies to audio
//! lines.
//!
//! The address is that of the leg's media realm (`IN IP4` or `IN IP6` as the
//! realm is, whatever the family of the SDP received: IPv4/IPv6 interworking):
//! every stream of a call is anchored in the call's two realms
//! ([`MediaState::realms`]), so its ports toward a leg are on that leg's realm
//! address.
//!
//! Invariant: `streams[i].params[side].srtp_out` is always the key last
//! written into line `i` of an SDP sent to `side` (or `None` when that line is
//! plain toward it).

use portcullis_sip::sdp::{Attribute, Candidate, Direction, Lifetime};
use portcullis_sip::sdp::{
    Crypto, MediaDescription, Proto, SessionDescription, AES_CM_128_HMAC_SHA1_80,
};

use super::streams::{self, AnchoredStream};
use crate::config::MediaMode;
use crate::media::{
    MediaAllocation, MediaId, MediaLegParams, RealmId, Side, SrtpKeyMaterial, SrtpSuite, StreamKind,
};
use crate::trunk_policy::codecs::{self, CodecPolicy, NoCommonCodec};
use crate::trunk_policy::DtmfMode;

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
    /// The anchored streams: `streams[i]` is `m=` line `i` (never empty).
    pub streams: Vec<AnchoredStream>,
    /// The media realm of each side's ports, every stream's (a new party on a side
    /// must face a trunk of that realm).
    pub realms: [RealmId; 2],
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
    /// DTMF mode of each side's trunk ([`super::dtmf`]).
    pub dtmf: [DtmfMode; 2],
}

/// Per-side media state saved across a transfer attempt.
#[derive(Clone, Debug)]
pub(crate) struct SideSnapshot {
    params: Vec<MediaLegParams>,
    ice: Option<(String, String)>,
    teams: bool,
    codecs: CodecPolicy,
    dtmf: DtmfMode,
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
        Self {
            streams: vec![AnchoredStream::new(alloc)],
            realms,
            session_id: session_ids,
            version: [1, 1],
            last_sent: [None, None],
            last_from: [None, None],
            ice: [None, None],
            teams: [false, false],
            codecs: [CodecPolicy::default(), CodecPolicy::default()],
            dtmf: [DtmfMode::default(); 2],
        }
    }

    /// Everything of `side` a new leg on that side changes (restored when a
    /// transfer toward a new party fails).
    pub fn snapshot(&self, side: Side) -> SideSnapshot {
        let i = ix(side);
        SideSnapshot {
            params: self.streams.iter().map(|s| s.params[i].clone()).collect(),
            ice: self.ice[i].clone(),
            teams: self.teams[i],
            codecs: self.codecs[i].clone(),
            dtmf: self.dtmf[i],
            session_id: self.session_id[i],
            version: self.version[i],
            last_sent: self.last_sent[i].clone(),
            last_from: self.last_from[i].clone(),
        }
    }

    /// Puts back what [`Self::snapshot`] saved.
    pub fn restore(&mut self, side: Side, s: SideSnapshot) {
        let i = ix(side);
        let mut saved = s.params.into_iter();
        for st in &mut self.streams {
            // A stream added since the snapshot had nothing on that side.
            st.params[i] = saved.next().unwrap_or_default();
        }
        self.ice[i] = s.ice;
        self.teams[i] = s.teams;
        self.codecs[i] = s.codecs;
        self.dtmf[i] = s.dtmf;
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

    /// The durable part of the state (an active/standby pair, [`crate::ha`]).
    pub fn to_snapshot(&self) -> crate::ha::MediaSnapshot {
        use crate::ha::{Blob, IceSnapshot, LegSnapshot, MediaSnapshot, StreamSnapshot};
        let (a_ip, b_ip) = (self.advertised_ip(Side::A), self.advertised_ip(Side::B));
        MediaSnapshot {
            advertised_ip: a_ip,
            advertised_ip_b: (b_ip != a_ip).then_some(b_ip),
            session_id: self.session_id,
            version: self.version,
            last_sent: self.last_sent.clone().map(|b| b.map(Blob)),
            last_from: [0, 1].map(|i| self.last_from[i].as_ref().map(|s| Blob(s.to_bytes()))),
            ice: [0, 1].map(|i| IceSnapshot::of(self.ice[i].as_ref())),
            realms: Some(self.realms.map(|r| r.0)),
            streams: self
                .streams
                .iter()
                .enumerate()
                .map(|(mline, st)| StreamSnapshot {
                    mline: u32::try_from(mline).unwrap_or(u32::MAX),
                    ports: [st.alloc.a_port, st.alloc.b_port],
                    legs: [0, 1].map(|i| LegSnapshot::from(&st.params[i])),
                })
                .collect(),
        }
    }

    /// The state [`Self::to_snapshot`] saved, on the pairs re-created in `realms` for
    /// its streams (`streams[i]`: line `i`'s pair and legs). `None` when a stored SDP
    /// does not parse.
    pub fn from_snapshot(
        streams: Vec<(MediaAllocation, [MediaLegParams; 2])>,
        realms: [RealmId; 2],
        s: &crate::ha::MediaSnapshot,
    ) -> Option<Self> {
        use crate::ha::IceSnapshot;
        let mut last_from = [None, None];
        for (slot, b) in last_from.iter_mut().zip(&s.last_from) {
            if let Some(b) = b {
                *slot = Some(SessionDescription::parse(&b.0).ok()?);
            }
        }
        let streams = streams
            .into_iter()
            .map(|(alloc, params)| {
                let mut st = AnchoredStream::new(alloc);
                st.params = params;
                st
            })
            .collect();
        Some(Self {
            streams,
            realms,
            session_id: s.session_id,
            version: s.version,
            last_sent: s.last_sent.clone().map(|b| b.map(|b| b.0)),
            last_from,
            ice: [0, 1].map(|i| IceSnapshot::pair(s.ice[i].as_ref())),
            teams: [false, false],
            codecs: [CodecPolicy::default(), CodecPolicy::default()],
            dtmf: [DtmfMode::default(); 2],
        })
    }

    /// Whether the last exchange with `side` left its stream held (either
    /// the SDP we sent it or the one it sent is not `sendrecv`).
    pub fn held(&self, side: Side) -> bool {
        let sent = self.last_sent[ix(side)]
            .as_deref()
            .and_then(|b| SessionDescription::parse(b).ok());
        sent.as_ref().is_some_and(is_held) || self.last_from(side).is_some_and(is_held)
    }

    /// Last SDP sent to `side`.
    pub fn sent_to(&self, side: Side) -> Option<SessionDescription> {
        let b = self.last_sent[ix(side)].as_deref()?;
        SessionDescription::parse(b).ok()
    }

    /// Last SDP received from `side`.
    pub fn last_from(&self, side: Side) -> Option<&SessionDescription> {
        self.last_from[ix(side)].as_ref()
    }

    /// The call's first stream (the one CDRs and the operator API report).
    pub fn primary(&self) -> Option<MediaId> {
        self.streams.first().map(|s| s.alloc.id)
    }

    /// Every stream's allocation.
    pub fn ids(&self) -> impl Iterator<Item = MediaId> + '_ {
        self.streams.iter().map(|s| s.alloc.id)
    }

    /// How many streams `sdp` needs that are not anchored yet.
    pub fn missing_streams(&self, sdp: &SessionDescription) -> usize {
        streams::wanted(sdp).saturating_sub(self.streams.len())
    }

    /// Anchors the next `m=` line on `alloc`.
    pub fn add_stream(&mut self, alloc: MediaAllocation) {
        self.streams.push(AnchoredStream::new(alloc));
    }

    /// Forgets the SDES keys we sent to `side` (a new peer there gets fresh
    /// ones, RFC 4568 §6.1: keys are per sender).
    pub fn forget_keys(&mut self, side: Side) {
        for s in &mut self.streams {
            s.params[ix(side)].srtp_out = None;
        }
    }

    /// The parameters of the first stream toward `side`.
    fn first(&self, side: Side) -> Option<&MediaLegParams> {
        self.streams.first().map(|s| &s.params[ix(side)])
    }

    /// The SRTP suite of the media exchanged with `side` (`None`: plain RTP).
    pub fn srtp(&self, side: Side) -> Option<SrtpSuite> {
        let p = self.first(side)?;
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

    /// Learns the peer address and SRTP key of each stream of `from` from its SDP
    /// (a stream the SDP has no line for is unused on that side).
    pub fn learn(&mut self, from: Side, sdp: &SessionDescription, mode: MediaMode) {
        for (i, st) in self.streams.iter_mut().enumerate() {
            let p = &mut st.params[ix(from)];
            let m = sdp.media.get(i);
            let kind = m.and_then(streams::kind_of);
            let rtp = kind
                .and_then(|_| sdp.rtp_destination(i))
                .filter(|a| !a.ip().is_unspecified() && a.port() != 0);
            p.kind = kind.unwrap_or_default();
            let rtp_line = p.kind == StreamKind::Rtp;
            p.rtcp_mux = rtp_line && m.is_some_and(MediaDescription::has_rtcp_mux);
            p.peer_rtp = rtp;
            p.peer_rtcp = if p.rtcp_mux || rtp.is_none() || !rtp_line {
                None
            } else {
                sdp.rtcp_destination(i)
            };
            p.srtp_in = match mode.anchored() {
                MediaMode::Srtp if rtp_line => m.and_then(|m| m.crypto().find_map(key_of)),
                _ => None,
            };
            p.held = is_held(sdp);
        }
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
        let ip = self.advertised_ip(to);
        out.origin.username = "-".to_owned();
        out.origin.session_id = self.session_id[ix(to)].to_string();
        out.set_origin_address(ip);
        out.set_connection_address(ip);
        out.remove_ice();
        out.attributes.retain(|a| !matches!(a, Attribute::IceLite));
        streams::strip_bundle(&mut out);
        for (i, m) in out.media.iter_mut().enumerate() {
            let kind = streams::kind_of(m);
            let Some((st, kind)) = self.streams.get_mut(i).zip(kind) else {
                m.reject();
                continue;
            };
            if !m.is_rejected() {
                m.set_port(st.port(to));
            }
            m.remove_rtcp();
            m.remove_ice();
            m.remove_crypto();
            if kind == StreamKind::Udptl {
                // UDPTL: no RTCP, no SDES (RFC 4568 keys RTP only), proto kept.
                st.params[ix(to)].srtp_out = None;
                continue;
            }
            let offered = self.last_from[ix(to)].as_ref().and_then(|o| o.media.get(i));
            let offered_tag = offered.filter(|_| answer).and_then(|m| {
                m.crypto()
                    .find(|c| c.suite.eq_ignore_ascii_case(AES_CM_128_HMAC_SHA1_80))
                    .map(|c| c.tag)
            });
            let offered_mux = offered.is_some_and(MediaDescription::has_rtcp_mux);
            if m.is_audio() && !m.is_rejected() {
                apply_codecs(&self.codecs, to, m, offered, answer);
                super::dtmf::keep_telephone_event(self.dtmf, to, m, offered, answer);
            }
            if self.teams[ix(to)] && !m.is_rejected() && (!answer || offered_mux) {
                // Teams requires rtcp-mux (RFC 5761); in an answer only when it offered it.
                m.set_rtcp_mux(true);
            }
            if answer && !offered_mux {
                // RFC 5761 §5.1.1: an answer carries a=rtcp-mux only when the offer did
                // (the other side's answer may have it: it answered our offer, not this one).
                m.set_rtcp_mux(false);
            }
            let p = &mut st.params[ix(to)];
            match mode.anchored() {
                MediaMode::Srtp => {
                    let key = p.srtp_out.clone().unwrap_or_else(&mut *new_key);
                    m.set_proto(m.proto.to_secure());
                    m.add_crypto(Crypto::aes_cm_128_hmac_sha1_80(
                        offered_tag.unwrap_or(1),
                        &key.key,
                        &key.salt,
                    ));
                    p.srtp_out = Some(key);
                }
                MediaMode::Rtp | MediaMode::Bypass => {
                    m.set_proto(m.proto.to_plain());
                    p.srtp_out = None;
                }
            }
        }
        // Streams the SDP has no line for carry nothing toward `to`.
        for st in self.streams.iter_mut().skip(out.media.len()) {
            st.params[ix(to)].srtp_out = None;
        }
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
        let ip = self.advertised_ip(to);
        let mut sdp = SessionDescription::new(ip, self.session_id[ix(to)]);
        let list = codecs::own_offer_codecs(&self.codecs[ix(to)]);
        let fmts = list.iter().map(|(pt, _)| pt.to_string()).collect();
        let port = self.streams.first().map_or(0, |s| s.port(to));
        let mut m = MediaDescription::new("audio", port, Proto::RtpAvp, fmts);
        for (pt, map) in &list {
            if let Ok(Attribute::RtpMap(r)) = Attribute::parse(&format!("rtpmap:{pt} {map}")) {
                m.attributes.push(Attribute::RtpMap(r));
            }
        }
        m.set_rtcp_mux(true);
        m.attributes.push(Attribute::Direction(Direction::SendRecv));
        for st in &mut self.streams {
            st.params[ix(to)].srtp_out = None;
        }
        if mode == MediaMode::Srtp {
            let p = self.streams.first().map(|s| &s.params[ix(to)]);
            let key = p
                .and_then(|p| p.srtp_out.clone())
                .unwrap_or_else(&mut *new_key);
            m.set_proto(Proto::RtpSavp);
            m.add_crypto(Crypto::aes_cm_128_hmac_sha1_80(1, &key.key, &key.salt));
            if let Some(st) = self.streams.first_mut() {
                st.params[ix(to)].srtp_out = Some(key);
            }
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

    /// The address every SDP we write to `to` carries: that of `to`'s realm.
    fn advertised_ip(&self, to: Side) -> std::net::IpAddr {
        self.streams
            .first()
            .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |s| s.alloc.ip(to))
    }

    /// Sets our version (bumped only when the body changed) and serialises.
    fn finish(&mut self, to: Side, out: &mut SessionDescription) -> Vec<u8> {
        if let Some((ufrag, pwd)) = self.ice[ix(to)].clone() {
            // RFC 8839 §5: a=ice-lite at session level; credentials and one
            // host candidate per component (RTP, and RTCP without rtcp-mux) on
            // every RTP line.
            out.attributes.push(Attribute::IceLite);
            for (m, st) in out.media.iter_mut().zip(&mut self.streams) {
                if m.is_rejected() || !m.proto.is_rtp() {
                    continue;
                }
                let (ip, port) = (st.alloc.ip(to), st.port(to));
                m.attributes.push(Attribute::IceUfrag(ufrag.clone()));
                m.attributes.push(Attribute::IcePwd(pwd.clone()));
                let mut cands = vec![Candidate::host("1", 1, ip, port)];
                if !m.has_rtcp_mux() {
                    cands.push(Candidate::host("1", 2, ip, port.saturating_add(1)));
                }
                m.set_candidates(cands);
            }
            for st in &mut self.streams {
                st.params[ix(to)].ice_lite = Some((ufrag.clone(), pwd.clone()));
            }
        } else {
            for st in &mut self.streams {
                st.params[ix(to)].ice_lite = None;
            }
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

/// The codec policies on the audio line `m` of an SDP toward `to`: an answer
/// keeps what `to` offered in that line (`offered`); an offer keeps what both
/// sides allow (rejected, port 0, when nothing is left: unchecked offers and
/// audio lines after the first, which [`MediaState::check_offer`] does not
/// check).
fn apply_codecs(
    policies: &[CodecPolicy; 2],
    to: Side,
    m: &mut MediaDescription,
    offered: Option<&MediaDescription>,
    answer: bool,
) {
    if answer {
        if let Some(offer) = offered {
            codecs::restrict_answer(m, offer);
        }
        return;
    }
    let from = &policies[ix(to.other())];
    if codecs::filter_offer(m, from, &policies[ix(to)]).is_err() {
        m.reject();
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

//! The media streams of an anchored call: one stream pair per `m=` line.
//!
//! Every `m=` line of an offer is anchored on its own pair of local ports
//! (RFC 3264 §5.1: one port per stream), at its position: `streams[i]` of a
//! call is the line at index `i` of every SDP of the call, since an answer has
//! the offer's lines in order and a later offer keeps them and may append
//! (RFC 3264 §6, §8.1-8.2). A call anchors at most [`MAX_STREAMS`] lines;
//! further lines, and lines whose pair cannot be allocated, are rejected with
//! port 0 (RFC 3264 §6: the answerer may reject any stream) while the call
//! goes on. A line that arrives with port 0 stays port 0 in what we send.
//!
//! What a line carries decides how it is relayed ([`StreamKind`]): an RTP
//! profile (audio, video, a second audio...) is relayed as RTP; T.38 fax
//! (`m=image <port> udptl t38`, ITU-T T.38 Annex D) as opaque UDPTL datagrams;
//! anything else (TCP media such as BFCP or MSRP) cannot cross a UDP relay and
//! is rejected with port 0.
//!
//! BUNDLE (RFC 9143) is not negotiated: `a=group:BUNDLE` and `a=bundle-only`
//! are removed from what we send, so the answer the offerer gets carries no
//! group and every line keeps its own port (RFC 9143 §7.3.3: an answer
//! without the group rejects bundling; the offerer then keeps each line
//! separate). A `bundle-only` line came with port 0 and stays rejected.

use portcullis_sip::sdp::{Attribute, MediaDescription, Proto, SessionDescription};

use super::B2bua;
use crate::media::{MediaAllocation, MediaControl, MediaId, MediaLegParams, Side, StreamKind};

/// Streams (`m=` lines) anchored per call; later lines are answered port 0.
pub const MAX_STREAMS: usize = 4;

/// One anchored stream: its port pair and how each leg is programmed.
#[derive(Clone, Debug)]
pub(crate) struct AnchoredStream {
    pub alloc: MediaAllocation,
    pub params: [MediaLegParams; 2],
    /// The pair's received packets when the data plane last reported it
    /// inactive (`None`: not reported since the call started).
    pub inactive_at: Option<u64>,
}

impl AnchoredStream {
    pub fn new(alloc: MediaAllocation) -> Self {
        Self {
            alloc,
            params: [MediaLegParams::default(), MediaLegParams::default()],
            inactive_at: None,
        }
    }

    /// Our local port toward `side`.
    pub fn port(&self, side: Side) -> u16 {
        match side {
            Side::A => self.alloc.a_port,
            Side::B => self.alloc.b_port,
        }
    }

    /// The stream carries media on some leg (a peer address is known).
    pub fn in_use(&self) -> bool {
        self.params.iter().any(|p| p.peer_rtp.is_some())
    }
}

/// How a line is relayed; `None`: it cannot be (rejected).
pub(crate) fn kind_of(m: &MediaDescription) -> Option<StreamKind> {
    match &m.proto {
        p if p.is_rtp() => Some(StreamKind::Rtp),
        Proto::Other(p) if p.eq_ignore_ascii_case("udptl") => Some(StreamKind::Udptl),
        // Some stacks write T.38 over `udp` (ITU-T T.38 Annex D allows UDPTL only).
        Proto::Udp if m.media.eq_ignore_ascii_case("image") => Some(StreamKind::Udptl),
        _ => None,
    }
}

/// How many streams `sdp` needs anchored: up to its last line with a port,
/// at most [`MAX_STREAMS`].
pub(crate) fn wanted(sdp: &SessionDescription) -> usize {
    sdp.media
        .iter()
        .rposition(|m| !m.is_rejected() && kind_of(m).is_some())
        .map_or(0, |i| i + 1)
        .min(MAX_STREAMS)
}

/// Removes BUNDLE from a description we send (see the module docs).
pub(crate) fn strip_bundle(sdp: &mut SessionDescription) {
    sdp.attributes.retain(|a| !is_bundle_group(a));
    for m in &mut sdp.media {
        m.attributes.retain(|a| a.name() != "bundle-only");
    }
}

fn is_bundle_group(a: &Attribute) -> bool {
    match a {
        Attribute::Other {
            name,
            value: Some(v),
        } if name == "group" => v
            .split_ascii_whitespace()
            .next()
            .is_some_and(|s| s.eq_ignore_ascii_case("BUNDLE")),
        _ => false,
    }
}

/// The `telephone-event` payload type of `m` and its clock rate (RFC 4733 §7.1.1).
pub(crate) fn telephone_event(m: &MediaDescription) -> Option<(u8, u32)> {
    if m.is_rejected() {
        return None;
    }
    m.payload_types().find_map(|pt| {
        m.rtpmap(pt)
            .filter(|r| r.encoding.eq_ignore_ascii_case("telephone-event"))
            .map(|r| (pt, r.clock_rate))
    })
}

impl<M: MediaControl> B2bua<M> {
    /// Anchors the lines of `sdp` that `call` has no stream for yet (before the
    /// SDP is learned). A pair that cannot be allocated leaves its line, and
    /// the lines after it, rejected (port 0); the call goes on.
    pub(super) fn anchor_streams(&mut self, call: u64, sdp: &SessionDescription) {
        let Some(ms) = self.calls.get_mut(&call).and_then(|c| c.media.as_mut()) else {
            return;
        };
        for _ in 0..ms.missing_streams(sdp) {
            // Every stream of the call has its ports in the call's realms.
            match self.media.allocate(ms.realms) {
                Ok(a) => {
                    self.by_media.insert(a.id, call);
                    ms.add_stream(a);
                }
                Err(_) => {
                    self.stats.media_errors += 1;
                    break;
                }
            }
        }
    }
}

impl<M: MediaControl> B2bua<M> {
    /// The data plane reported stream `id` of `call` inactive: whether the
    /// whole call now is, i.e. every stream carrying media was reported
    /// inactive and has received nothing since (a fax or video stream that
    /// goes quiet does not end a call whose audio flows).
    pub(super) fn call_inactive(&mut self, call: u64, id: MediaId) -> bool {
        let Some(ms) = self.calls.get_mut(&call).and_then(|c| c.media.as_mut()) else {
            return false;
        };
        let media = &self.media;
        let rx = |id: MediaId| {
            media
                .stats(id)
                .map_or(0, |s| s.a.rx_packets.saturating_add(s.b.rx_packets))
        };
        for st in &mut ms.streams {
            if st.alloc.id == id {
                st.inactive_at = Some(rx(id));
            }
        }
        ms.streams
            .iter()
            .filter(|st| st.in_use() || st.alloc.id == id)
            .all(|st| st.inactive_at == Some(rx(st.alloc.id)))
    }
}

//! What the B2BUA needs from the data plane ([`MediaControl`]).
//!
//! The appliance implements the trait over `portcullis_dataplane::Dataplane`
//! (commands on the worker rings); tests use a recording fake. Calls are
//! synchronous and must not block: a full ring is reported as
//! [`MediaError::RingFull`] and the B2BUA refuses the call (`503`).
//!
//! Side `A` is the caller's leg (the inbound trunk), side `B` the callee's. Each side's
//! ports are in the media realm of the trunk it faces ([`RealmId`]): the address written
//! into the SDP toward that side is its realm's, IPv4 or IPv6.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::config::MediaLearning;

/// Handle of one anchored stream pair; never reused by a given [`MediaControl`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct MediaId(pub u64);

/// A media realm: one interface's media address and port range (`[[media.realm]]`),
/// by its index in the appliance's realm list; `RealmId(0)` is the default realm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
pub struct RealmId(pub u16);

/// A reserved stream pair: the local port on each leg and the address each leg is
/// told to send to (`c=` of the SDP we write toward it: its realm's advertised address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaAllocation {
    pub id: MediaId,
    pub a_port: u16,
    pub b_port: u16,
    /// Advertised address of leg A's realm.
    pub a_ip: IpAddr,
    /// Advertised address of leg B's realm.
    pub b_ip: IpAddr,
}

impl MediaAllocation {
    /// Our advertised address toward `side`.
    #[must_use]
    pub const fn ip(&self, side: Side) -> IpAddr {
        match side {
            Side::A => self.a_ip,
            Side::B => self.b_ip,
        }
    }
}

/// Call leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Side {
    /// The caller's leg (we are UAS).
    A,
    /// The callee's leg (we are UAC).
    B,
}

impl Side {
    /// The other leg.
    #[must_use]
    pub const fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }
}

/// SDES-SRTP crypto suites the data plane implements (RFC 4568 §6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SrtpSuite {
    /// `AES_CM_128_HMAC_SHA1_80`.
    Aes128Sha1_80,
    /// `AES_CM_128_HMAC_SHA1_32`.
    Aes128Sha1_32,
}

impl SrtpSuite {
    /// The SDP suite name.
    #[must_use]
    pub const fn as_sdp(self) -> &'static str {
        match self {
            Self::Aes128Sha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Self::Aes128Sha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// Parses an SDP suite name.
    #[must_use]
    pub fn from_sdp(s: &str) -> Option<Self> {
        [Self::Aes128Sha1_80, Self::Aes128Sha1_32]
            .into_iter()
            .find(|x| x.as_sdp().eq_ignore_ascii_case(s))
    }
}

/// One SRTP master key and salt (RFC 3711 §8.2).
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKeyMaterial {
    pub suite: SrtpSuite,
    pub key: [u8; 16],
    pub salt: [u8; 14],
}

impl fmt::Debug for SrtpKeyMaterial {
    /// Never prints the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SrtpKeyMaterial {{ suite: {:?}, key: <secret> }}",
            self.suite
        )
    }
}

/// How one leg of a stream pair is programmed.
///
/// `srtp_in` decrypts what the peer sends us (the key in the peer's SDP);
/// `srtp_out` encrypts what we send it (the key in the SDP we sent it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaLegParams {
    /// Peer RTP address from its SDP (`None` until known, or on hold with port 0).
    pub peer_rtp: Option<SocketAddr>,
    /// Peer RTCP address (`a=rtcp` or RTP port + 1); `None` with rtcp-mux.
    pub peer_rtcp: Option<SocketAddr>,
    pub rtcp_mux: bool,
    pub srtp_in: Option<SrtpKeyMaterial>,
    pub srtp_out: Option<SrtpKeyMaterial>,
    /// Endpoint learning of the trunk this leg faces (which sources may move
    /// the leg's media peer away from `peer_rtp`).
    pub learning: MediaLearning,
    /// ICE-lite credentials (ufrag, pwd) when the peer uses ICE (media bypass).
    pub ice_lite: Option<(String, String)>,
    /// What the stream carries (RTP, or UDPTL datagrams relayed as they are).
    pub kind: StreamKind,
    /// DTMF interworking on this leg ([`DtmfLeg`]); all off by default.
    pub dtmf: DtmfLeg,
    /// The peer's last SDP put the stream on hold (`sendonly`, `recvonly` or
    /// `inactive`): the data plane keeps such a stream off its kernel fast path.
    pub held: bool,
}

/// What one anchored stream carries (the `m=` line's proto).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub enum StreamKind {
    /// RTP (any RTP profile: audio, video, a second audio...).
    #[default]
    Rtp,
    /// T.38 over UDPTL (`m=image <port> udptl t38`, ITU-T T.38 §9.1): datagrams
    /// relayed as they come, with the same endpoint-learning rules as RTP.
    Udptl,
}

/// DTMF interworking of one leg (RFC 4733 events <-> SIP INFO).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DtmfLeg {
    /// Report the RFC 4733 events this leg's peer sends with this payload type
    /// ([`MediaEvent::Dtmf`]); `None`: not looked at.
    pub detect: Option<u8>,
    /// The detected events are not relayed to the other leg (it takes DTMF as
    /// SIP INFO only).
    pub drop_events: bool,
    /// Payload type of `telephone-event` toward this leg's peer: events asked for
    /// with [`MediaControl::dtmf`] are played in this payload type.
    pub generate: Option<u8>,
}

/// A DTMF event (RFC 4733 §3.2: events 0-15 are the DTMF digits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtmfEvent {
    /// RFC 4733 event code: 0-9, 10 `*`, 11 `#`, 12-15 `A`-`D`.
    pub event: u8,
    /// Duration in RTP timestamp units of the event's clock.
    pub duration: u16,
}

/// Per-direction counters of one leg.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LegMediaStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// RTP packets lost from this leg's peer (RFC 3550 §6.4.1); `None` when no RTP
    /// from it was measured.
    pub rtp_lost: Option<u64>,
    /// Interarrival jitter of the peer's RTP, microseconds; `None` as for `rtp_lost`.
    pub rtp_jitter_us: Option<u32>,
    /// Packets refused for their source (not the leg's peer: a spoofed or stray
    /// stream, endpoint learning).
    pub rtp_source_rejected: u64,
}

/// Counters of a stream pair, copied into the CDR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MediaStats {
    pub a: LegMediaStats,
    pub b: LegMediaStats,
}

/// Something the data plane noticed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaEvent {
    /// No packet on either leg for the configured inactivity timeout.
    Inactive(MediaId),
    /// The source of one leg was latched (symmetric RTP).
    Latched(MediaId, Side),
    /// SRTP authentication failures over threshold on one leg.
    SrtpFailures(MediaId, Side, u64),
    /// An RFC 4733 event ended on a leg flagged for detection
    /// ([`DtmfLeg::detect`]); retransmitted end packets are reported once.
    Dtmf(MediaId, Side, DtmfEvent),
}

/// Media plane errors.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("no media port pair available")]
    NoCapacity,
    #[error("dataplane command ring full")]
    RingFull,
    #[error("media: {0}")]
    Other(String),
}

/// The B2BUA's view of the data plane.
pub trait MediaControl {
    /// Reserve a stream pair (leg A port, leg B port) on the least-loaded worker, each
    /// leg in its realm (`realms`: A's, B's).
    fn allocate(&mut self, realms: [RealmId; 2]) -> Result<MediaAllocation, MediaError>;
    /// (Re)program both sides: peer address, SRTP keys per direction, flags.
    fn update(
        &mut self,
        id: MediaId,
        a: &MediaLegParams,
        b: &MediaLegParams,
    ) -> Result<(), MediaError>;
    /// Free the pair (idempotent).
    fn release(&mut self, id: MediaId);
    /// Counters for CDRs.
    fn stats(&self, id: MediaId) -> Option<MediaStats>;
    /// Plays `event` toward `to`'s peer as RFC 4733 packets in the stream relayed
    /// to it (payload type [`DtmfLeg::generate`] of that leg).
    ///
    /// # Errors
    /// [`MediaError::RingFull`]; [`MediaError::Other`] where the data plane cannot
    /// generate events (the default).
    fn dtmf(&mut self, id: MediaId, to: Side, event: DtmfEvent) -> Result<(), MediaError> {
        let _ = (id, to, event);
        Err(MediaError::Other(
            "DTMF generation not supported".to_owned(),
        ))
    }

    /// Re-create a pair on our local `ports` (leg A, leg B), each in its side's realm
    /// (`realms`: a port number names a leg only within its realm), and program it (a
    /// standby taking over a call whose SDP advertised those ports, [`crate::ha`]). A
    /// controller that cannot choose its ports refuses.
    fn restore(
        &mut self,
        realms: [RealmId; 2],
        ports: [u16; 2],
        a: &MediaLegParams,
        b: &MediaLegParams,
    ) -> Result<MediaAllocation, MediaError> {
        let _ = (realms, ports, a, b);
        Err(MediaError::Other(
            "this media controller cannot restore calls".into(),
        ))
    }
}

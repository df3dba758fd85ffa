//! Durable call state for an active/standby pair ([`CallSnapshot`]).
//!
//! An answered call is exported by [`crate::b2bua::B2bua::export_call`] as one
//! serializable snapshot: both dialogs (Call-IDs, tags, CSeqs, route sets, remote
//! targets, contacts), the INVITEs each leg was set up with, the session timers
//! (RFC 4028) with their deadlines in wall-clock milliseconds, the anchored media
//! (ports, peers, SDES keys, the SDP last exchanged per leg), and the CDR fields. A
//! fresh B2BUA takes it back with [`crate::b2bua::B2bua::restore_call`] and answers the
//! next in-dialog request from either side as the exporting node would have.
//!
//! The snapshot carries secrets (SRTP master keys, ICE passwords, the keys inside the
//! SDP bodies): the driver encrypts it whole before it leaves the process, and its
//! `Debug` never prints them.
//!
//! Invariants: `format` is [`SNAPSHOT_FORMAT`]; a snapshot is only taken of an
//! answered call with no transfer, join or re-INVITE in progress; trunks are named
//! (not indexed), so the restoring node resolves them in its own configuration.
//! Media is a list of streams, one per anchored `m=` line in line order (audio,
//! video, T.38 fax...; at most [`MAX_STREAMS`]), each with its ports, both legs'
//! peers and keys; a restore re-creates every one of them, in the media realms the
//! call's legs were in ([`MediaSnapshot::realms`]), or refuses the call whole (a
//! snapshot with more streams than a call can anchor, or a stream whose ports are
//! gone): a call is never carried on with a stream missing.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::dialog::Dialog;
use crate::media::{MediaLegParams, RealmId, SrtpKeyMaterial, SrtpSuite, StreamKind};
use crate::transaction::Transport;

/// Streams (`m=` lines) a call anchors, hence at most stored per call.
pub const MAX_STREAMS: usize = crate::b2bua::MAX_STREAMS;

/// Version of the snapshot layout; a restore refuses any other.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// Local CSeq numbers jump this far ahead on restore (RFC 3261 §12.2.2: a peer
/// only checks that a CSeq grows): a request the dead node sent after its last
/// snapshot cannot make our next one look like a retransmission or an old request.
pub const CSEQ_JUMP: u32 = 100;

/// The durable key of a call: a digest of its A-leg Call-ID and of the B-leg Call-ID
/// it was answered on (ours, random per call), so that the call's CDR journal entry
/// (which records both) names it too. 128 bits, hex.
#[must_use]
pub fn call_key(a_call_id: &str, b_call_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(a_call_id.as_bytes());
    h.update([0u8]);
    h.update(b_call_id.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Bytes (SIP messages, SDP bodies) stored as text when they are UTF-8 (`t:`), else
/// as hex (`h:`).
#[derive(Clone, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl fmt::Debug for Blob {
    /// Never prints the content (SDP carries SDES keys).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob({} bytes)", self.0.len())
    }
}

impl Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(t) => s.serialize_str(&format!("t:{t}")),
            Err(_) => s.serialize_str(&format!("h:{}", hex::encode(&self.0))),
        }
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if let Some(t) = s.strip_prefix("t:") {
            Ok(Self(t.as_bytes().to_vec()))
        } else if let Some(h) = s.strip_prefix("h:") {
            hex::decode(h).map(Self).map_err(serde::de::Error::custom)
        } else {
            Err(serde::de::Error::custom("blob without t: or h: prefix"))
        }
    }
}

/// A signalling peer (the connection of a reliable transport is not durable: the
/// restoring node sends on a new one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSnapshot {
    pub transport: TransportName,
    pub addr: SocketAddr,
}

/// [`Transport`] by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportName {
    Udp,
    Tcp,
    Tls,
}

impl From<Transport> for TransportName {
    fn from(t: Transport) -> Self {
        match t {
            Transport::Udp => Self::Udp,
            Transport::Tcp => Self::Tcp,
            Transport::Tls => Self::Tls,
        }
    }
}

impl From<TransportName> for Transport {
    fn from(t: TransportName) -> Self {
        match t {
            TransportName::Udp => Self::Udp,
            TransportName::Tcp => Self::Tcp,
            TransportName::Tls => Self::Tls,
        }
    }
}

/// The caller's leg.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ALegSnapshot {
    pub peer: PeerSnapshot,
    pub trunk: String,
    /// The INVITE as received.
    pub invite: Blob,
    pub tag: String,
    pub contact: String,
    pub dialog: Dialog,
}

/// The callee's leg.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BLegSnapshot {
    pub trunk: String,
    /// Called number as sent on this leg.
    pub called: String,
    pub redirect: Option<SocketAddr>,
    pub target: Option<SocketAddr>,
    pub dest: PeerSnapshot,
    pub call_id: String,
    pub tag: String,
    pub contact: String,
    /// The INVITE as sent.
    pub invite: Blob,
    pub dialog: Dialog,
}

/// One SDES master key and salt.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySnapshot {
    pub suite: String,
    pub key: String,
    pub salt: String,
}

impl fmt::Debug for KeySnapshot {
    /// Never prints the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeySnapshot {{ suite: {}, key: <secret> }}", self.suite)
    }
}

impl From<&SrtpKeyMaterial> for KeySnapshot {
    fn from(k: &SrtpKeyMaterial) -> Self {
        Self {
            suite: k.suite.as_sdp().to_owned(),
            key: hex::encode(k.key),
            salt: hex::encode(k.salt),
        }
    }
}

impl KeySnapshot {
    /// The key material, `None` when a field does not decode.
    #[must_use]
    pub fn material(&self) -> Option<SrtpKeyMaterial> {
        let mut key = [0u8; 16];
        let mut salt = [0u8; 14];
        hex::decode_to_slice(&self.key, &mut key).ok()?;
        hex::decode_to_slice(&self.salt, &mut salt).ok()?;
        Some(SrtpKeyMaterial {
            suite: SrtpSuite::from_sdp(&self.suite)?,
            key,
            salt,
        })
    }
}

/// ICE-lite credentials (RFC 8445 §2.5) as stored; `Debug` never prints the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceSnapshot {
    pub ufrag: String,
    pub pwd: String,
}

impl fmt::Debug for IceSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IceSnapshot {{ ufrag: {:?}, pwd: <secret> }}",
            self.ufrag
        )
    }
}

impl IceSnapshot {
    /// From (ufrag, pwd).
    #[must_use]
    pub fn of(c: Option<&(String, String)>) -> Option<Self> {
        c.map(|(ufrag, pwd)| Self {
            ufrag: ufrag.clone(),
            pwd: pwd.clone(),
        })
    }

    /// Back to (ufrag, pwd).
    #[must_use]
    pub fn pair(s: Option<&Self>) -> Option<(String, String)> {
        s.map(|s| (s.ufrag.clone(), s.pwd.clone()))
    }
}

/// How one leg of a stream is programmed (endpoint learning is the trunk's, taken
/// from the restoring node's configuration).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegSnapshot {
    pub peer_rtp: Option<SocketAddr>,
    pub peer_rtcp: Option<SocketAddr>,
    pub rtcp_mux: bool,
    pub srtp_in: Option<KeySnapshot>,
    pub srtp_out: Option<KeySnapshot>,
    /// ICE-lite credentials answered on this leg's port.
    pub ice_lite: Option<IceSnapshot>,
    /// The stream carries T.38 over UDPTL (relayed as datagrams), not RTP.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub udptl: bool,
    /// The peer's last SDP put the stream on hold (kept off the kernel fast path).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
}

impl From<&MediaLegParams> for LegSnapshot {
    fn from(p: &MediaLegParams) -> Self {
        Self {
            peer_rtp: p.peer_rtp,
            peer_rtcp: p.peer_rtcp,
            rtcp_mux: p.rtcp_mux,
            srtp_in: p.srtp_in.as_ref().map(KeySnapshot::from),
            srtp_out: p.srtp_out.as_ref().map(KeySnapshot::from),
            ice_lite: IceSnapshot::of(p.ice_lite.as_ref()),
            udptl: p.kind == StreamKind::Udptl,
            held: p.held,
        }
    }
}

impl LegSnapshot {
    /// The leg's parameters (learning left at its default: the B2BUA sets the
    /// trunk's). `None` when a key does not decode.
    #[must_use]
    pub fn params(&self) -> Option<MediaLegParams> {
        let key = |k: &Option<KeySnapshot>| match k {
            Some(k) => k.material().map(Some),
            None => Some(None),
        };
        Some(MediaLegParams {
            peer_rtp: self.peer_rtp,
            peer_rtcp: self.peer_rtcp,
            rtcp_mux: self.rtcp_mux,
            srtp_in: key(&self.srtp_in)?,
            srtp_out: key(&self.srtp_out)?,
            learning: crate::config::MediaLearning::default(),
            ice_lite: IceSnapshot::pair(self.ice_lite.as_ref()),
            kind: if self.udptl {
                StreamKind::Udptl
            } else {
                StreamKind::Rtp
            },
            held: self.held,
            // DTMF interworking is worked out again from the stored SDP and the
            // trunks' modes when the restored call is programmed.
            ..MediaLegParams::default()
        })
    }
}

/// One anchored stream: its media-line index in the SDP, our port on each leg, and
/// each leg's programming.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSnapshot {
    pub mline: u32,
    /// Our local port on leg A, leg B.
    pub ports: [u16; 2],
    pub legs: [LegSnapshot; 2],
}

/// The anchored media of a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaSnapshot {
    /// The address written in our SDP's `c=` toward leg A (and toward leg B too, unless
    /// `advertised_ip_b` says otherwise).
    pub advertised_ip: std::net::IpAddr,
    /// The address written toward leg B when its media realm's differs from leg A's
    /// (absent in a record of a call within one realm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertised_ip_b: Option<std::net::IpAddr>,
    /// Our `o=` session id and the version last sent, per leg (RFC 3264 §8).
    pub session_id: [u64; 2],
    pub version: [u64; 2],
    /// The SDP body last sent to each leg, and last received from each leg.
    pub last_sent: [Option<Blob>; 2],
    pub last_from: [Option<Blob>; 2],
    /// ICE-lite credentials toward each leg.
    pub ice: [Option<IceSnapshot>; 2],
    /// The media realm of each leg's ports (A's, B's), every stream's: a port number
    /// names a leg only within its realm. Absent in a record written before realms
    /// were stored: the realms of the legs' trunks then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realms: Option<[u16; 2]>,
    /// Every anchored stream, in `m=` line order.
    pub streams: Vec<StreamSnapshot>,
}

impl MediaSnapshot {
    /// The stored realms of the legs, if any.
    #[must_use]
    pub fn leg_realms(&self) -> Option<[RealmId; 2]> {
        self.realms.map(|r| r.map(RealmId))
    }
}

/// RFC 4028 state of one leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSnapshot {
    pub interval_ms: u64,
    pub we_refresh: bool,
}

/// A call timer that survives a takeover, with its deadline (wall-clock ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerSnapshot {
    /// We send the next session refresh on leg A / B at `at_ms`.
    RefreshA {
        at_ms: u64,
    },
    RefreshB {
        at_ms: u64,
    },
    /// The session expires at `at_ms` without a refresh.
    SessionExpiry {
        at_ms: u64,
    },
}

/// Takeovers a call went through (carried into its CDR).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeoverSnapshot {
    /// The engine call id on the node that answered the call.
    pub origin_call_id: u64,
    /// Takeovers so far (a call can fail over and back).
    pub count: u32,
    /// When the last one restored the call (wall-clock ms).
    pub at_ms: u64,
}

/// Everything a standby needs to carry an answered call on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSnapshot {
    pub format: u32,
    /// The call's durable identity (the Redis key suffix), stable across takeovers.
    pub key: String,
    /// The engine call id where the snapshot was taken.
    pub call_id: u64,
    pub route: String,
    /// Calling number as received and as sent; called number as received.
    pub a_calling: String,
    pub calling: String,
    pub called: String,
    pub a: ALegSnapshot,
    pub b: BLegSnapshot,
    pub media: Option<MediaSnapshot>,
    pub session: [Option<SessionSnapshot>; 2],
    pub timers: Vec<TimerSnapshot>,
    pub setup_at_ms: u64,
    pub answer_at_ms: u64,
    /// B leg trunk targets the call holds a slot on (trunk name, target).
    pub bound: Vec<(String, SocketAddr)>,
    /// `None` until the call is first restored.
    pub takeover: Option<TakeoverSnapshot>,
}

/// Why a snapshot could not be restored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("snapshot format {0}, this node reads {SNAPSHOT_FORMAT}")]
    Format(u32),
    #[error("call {0} is already live on this node")]
    Duplicate(String),
    #[error("trunk {0:?} is not configured on this node")]
    UnknownTrunk(String),
    #[error("stored {0} does not parse")]
    Corrupt(&'static str),
    #[error("{0} media streams stored, a call anchors 1 to {MAX_STREAMS}")]
    Streams(usize),
    #[error("media: {0}")]
    Media(#[from] crate::media::MediaError),
}

//! SRTP and SRTCP (RFC 3711) with `AES_CM_128_HMAC_SHA1_80` and
//! `AES_CM_128_HMAC_SHA1_32` (RFC 4568 §6.2), in place and allocation-free.
//!
//! An [`SrtpSession`] is ONE direction of one leg: use one for what a peer sends
//! (unprotect) and another for what we send to it (protect). Wire layouts:
//!
//! ```text
//! SRTP:  | RTP header | encrypted payload | [MKI] | auth tag (10 or 4) |
//! SRTCP: | 8-byte header | encrypted rest | E|31-bit index | [MKI] | auth tag (10) |
//! ```
//!
//! Key derivation rate is 0 (RFC 4568 default), so session keys are derived once
//! in [`SrtpSession::new`]. The MKI is optional ([`SrtpSession::with_mki`]).

mod crypto;
mod replay;

pub use crypto::{aes_cm_apply, derive as derive_session_key, label};
pub use replay::{MAX_STREAMS, REPLAY_WINDOW};

use crate::bytes::be32;
use crate::rtp::{rtp_header_len, RtpError};
use crypto::SessionKeys;
use replay::{StreamTable, SRTCP_INDEX_MASK};
use thiserror::Error;

/// Largest number of bytes `protect_rtp`/`protect_rtcp` append without an MKI
/// (SRTCP: 4-byte E+index and a 10-byte tag). An MKI adds its own length.
pub const SRTP_MAX_TRAILER: usize = 14;
/// Longest MKI accepted by [`SrtpSession::with_mki`].
pub const MAX_MKI_LEN: usize = 8;
/// SRTCP authentication tag length for both suites (RFC 4568 §6.2.2: the `_32`
/// suite shortens only the SRTP tag).
pub const SRTCP_TAG_LEN: usize = 10;
/// SRTCP E flag + index field length.
const SRTCP_INDEX_LEN: usize = 4;
/// RTCP fixed header + sender SSRC, left in the clear by SRTCP.
const SRTCP_CLEAR_LEN: usize = 8;

/// Crypto suite (RFC 4568 §6.2 names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SrtpProfile {
    /// AES-128 counter mode, HMAC-SHA1 truncated to 80 bits.
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, HMAC-SHA1 truncated to 32 bits for SRTP (80 for SRTCP).
    AesCm128HmacSha1_32,
}

impl SrtpProfile {
    /// SRTP authentication tag length in bytes.
    pub const fn rtp_tag_len(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 => 10,
            Self::AesCm128HmacSha1_32 => 4,
        }
    }
    /// SRTCP authentication tag length in bytes (10 for both suites).
    pub const fn rtcp_tag_len(self) -> usize {
        SRTCP_TAG_LEN
    }
    /// The SDES crypto-suite name (`a=crypto:1 AES_CM_128_HMAC_SHA1_80 ...`).
    pub const fn sdes_name(self) -> &'static str {
        match self {
            Self::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Self::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }
    /// Parse an SDES crypto-suite name (case-sensitive, as RFC 4568 §9.2 registers).
    pub fn from_sdes_name(name: &str) -> Option<Self> {
        match name {
            "AES_CM_128_HMAC_SHA1_80" => Some(Self::AesCm128HmacSha1_80),
            "AES_CM_128_HMAC_SHA1_32" => Some(Self::AesCm128HmacSha1_32),
            _ => None,
        }
    }
}

/// Master key material for one direction (RFC 3711 §8.2: 128-bit key, 112-bit salt).
#[derive(Clone, Copy, Debug)]
pub struct SrtpKeys {
    /// Crypto suite.
    pub profile: SrtpProfile,
    /// Master key.
    pub master_key: [u8; 16],
    /// Master salt.
    pub master_salt: [u8; 14],
}

impl SrtpKeys {
    /// Split the 30-byte SDES `inline:` key||salt (RFC 4568 §6.1, after base64).
    pub fn from_key_salt(profile: SrtpProfile, key_salt: &[u8]) -> Option<Self> {
        let (key, salt) = key_salt.split_first_chunk::<16>()?;
        let master_salt: [u8; 14] = salt.try_into().ok()?;
        Some(Self {
            profile,
            master_key: *key,
            master_salt,
        })
    }
}

/// Why a packet was refused. All but `NoRoom` blame the packet (or its sender).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum SrtpError {
    /// Shorter than its header plus trailer.
    #[error("packet too short for SRTP/SRTCP")]
    TooShort,
    /// Authentication tag (or MKI) mismatch.
    #[error("SRTP authentication failed")]
    AuthFailed,
    /// Index already seen (RFC 3711 §3.3.2).
    #[error("SRTP replayed packet")]
    Replay,
    /// Index left of the replay window, or before the stream start.
    #[error("SRTP packet too old for the replay window")]
    TooOld,
    /// The buffer has no tailroom for the trailer (caller's fault).
    #[error("no room in the buffer for the SRTP trailer")]
    NoRoom,
    /// Not RTP/RTCP version 2, inconsistent header, or `len > buf.len()`.
    #[error("malformed RTP/RTCP packet")]
    Malformed,
}

impl From<RtpError> for SrtpError {
    fn from(e: RtpError) -> Self {
        match e {
            RtpError::TooShort => Self::TooShort,
            _ => Self::Malformed,
        }
    }
}

/// SRTCP indexes [`SrtpSession::resume`] skips: at one compound RTCP packet every
/// few seconds, more than the other node can have sent between two publications.
pub const SRTCP_RESUME_JUMP: u32 = 1024;

/// The SRTP state of one SSRC in one direction, published by a node so that its
/// standby carries the stream on (an active/standby pair).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SrtpResume {
    /// The stream's SSRC.
    pub ssrc: u32,
    /// Highest 48-bit packet index accepted or sent: `ROC · 2^16 + s_l` (RFC 3711 §3.3.1).
    pub index: u64,
    /// Next SRTCP index to send.
    pub srtcp_next: u32,
}

/// One direction of one SRTP stream: SRTP and SRTCP session keys plus per-SSRC
/// index/replay state for up to [`MAX_STREAMS`] SSRCs (LRU replaced).
///
/// Invariants: no heap allocation after [`SrtpSession::new`]; per-SSRC state is
/// only advanced by packets that authenticated (unprotect) or were protected.
/// Protect refuses to reuse an index already sent (that would reuse keystream),
/// like libsrtp; [`SrtpSession::reset_stream`] forgets an SSRC whose sender restarted.
///
/// Table pressure: unprotect only inserts an SSRC after its first packet
/// authenticated, so forged packets cannot evict state. Protect inserts on first
/// sight; a sender cycling through more than [`MAX_STREAMS`] SSRCs evicts the
/// oldest, whose next packet then restarts at ROC 0 (the relay only protects
/// packets from the latched source, which bounds this).
///
/// Layout (`repr(C)`): a relay with thousands of calls finds a session out of the
/// nearest caches for every packet, so what an RTP packet reads is packed into few
/// lines. The first line holds the suite, the MKI length, the SSRC keys and the first
/// SSRC's RTP state; the SRTP keys follow (four lines read). The SRTCP keys and the MKI
/// come last.
#[derive(Clone)]
#[repr(C)]
pub struct SrtpSession {
    profile: SrtpProfile,
    mki_len: u8,
    streams: StreamTable,
    rtp: SessionKeys,
    rtcp: SessionKeys,
    /// Only read when `mki_len` is not 0.
    mki: [u8; MAX_MKI_LEN],
}

impl std::fmt::Debug for SrtpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("SrtpSession")
            .field("profile", &self.profile)
            .field("mki_len", &self.mki_len)
            .finish_non_exhaustive()
    }
}

impl SrtpSession {
    /// Derive the six session keys (RFC 3711 §4.3, KDR 0); no MKI on the wire.
    pub fn new(keys: &SrtpKeys) -> Self {
        Self {
            profile: keys.profile,
            rtp: SessionKeys::derive(&keys.master_key, &keys.master_salt, label::RTP_ENCRYPTION),
            rtcp: SessionKeys::derive(&keys.master_key, &keys.master_salt, label::RTCP_ENCRYPTION),
            streams: StreamTable::default(),
            mki: [0; MAX_MKI_LEN],
            mki_len: 0,
        }
    }

    /// Like [`Self::new`] but every packet carries `mki` before its tag (RFC 3711
    /// §3.1); unprotect refuses packets with another MKI. `None` if `mki` is longer
    /// than [`MAX_MKI_LEN`].
    pub fn with_mki(keys: &SrtpKeys, mki: &[u8]) -> Option<Self> {
        let mut s = Self::new(keys);
        s.mki.get_mut(..mki.len())?.copy_from_slice(mki);
        s.mki_len = u8::try_from(mki.len()).ok()?;
        Some(s)
    }

    /// The suite.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// Bytes `protect_rtp` appends (tag + MKI).
    pub fn rtp_trailer_len(&self) -> usize {
        self.profile.rtp_tag_len() + self.mki_len()
    }

    /// Bytes `protect_rtcp` appends (E+index, MKI, tag).
    pub fn rtcp_trailer_len(&self) -> usize {
        SRTCP_INDEX_LEN + self.mki_len() + SRTCP_TAG_LEN
    }

    /// Set the rollover counter assumed for `ssrc`'s next packet and forget its
    /// replay history (RFC 3711 §3.3.1: a receiver joining late learns the ROC out of
    /// band). Used to seed state from test vectors or signalling.
    pub fn set_roc(&mut self, ssrc: u32, roc: u32) {
        self.streams.entry(ssrc).rtp = replay::RtpState::seeded(roc);
    }

    /// The ROC of the highest packet index seen for `ssrc` (the seed if none yet).
    pub fn roc(&self, ssrc: u32) -> Option<u32> {
        self.streams.get(ssrc).map(|st| st.rtp.roc())
    }

    /// Where the most recently used SSRC stands (`None` before any packet, or when its
    /// first packet has not been accepted yet): what a standby of an active/standby
    /// pair needs to carry the stream on ([`Self::resume`]).
    pub fn resume_state(&self) -> Option<SrtpResume> {
        let (ssrc, st) = self.streams.front()?;
        Some(SrtpResume {
            ssrc,
            index: st.rtp.window.highest()?,
            srtcp_next: st.srtcp_next,
        })
    }

    /// Carries a stream on from the state another node published ([`Self::resume_state`]):
    /// RTP indexes are estimated from `r.index` (so a rollover since then is followed,
    /// as long as fewer than 2^15 packets passed), and SRTCP indexes we send continue
    /// [`SRTCP_RESUME_JUMP`] past `r.srtcp_next` (ahead of any the other node sent after
    /// publishing, never a replay at the peer).
    pub fn resume(&mut self, r: &SrtpResume) {
        let st = self.streams.entry(r.ssrc);
        st.rtp = replay::RtpState::resumed(r.index);
        st.srtcp_next = r.srtcp_next.wrapping_add(SRTCP_RESUME_JUMP) & SRTCP_INDEX_MASK;
    }

    /// Set the SRTCP index the next `protect_rtcp` for `ssrc` will use (mod 2^31).
    pub fn set_srtcp_index(&mut self, ssrc: u32, next: u32) {
        self.streams.entry(ssrc).srtcp_next = next & SRTCP_INDEX_MASK;
    }

    /// The SRTCP index the next `protect_rtcp` for `ssrc` will use.
    pub fn srtcp_index(&self, ssrc: u32) -> Option<u32> {
        self.streams.get(ssrc).map(|s| s.srtcp_next)
    }

    /// Forget everything about `ssrc` (its sender restarted its sequence).
    pub fn reset_stream(&mut self, ssrc: u32) {
        self.streams.remove(ssrc);
    }

    /// Length of the MKI (0 when none).
    fn mki_len(&self) -> usize {
        usize::from(self.mki_len)
    }

    /// The MKI, if configured.
    fn mki(&self) -> &[u8] {
        self.mki.get(..self.mki_len()).unwrap_or(&[])
    }

    /// RFC 3711 §3.3: encrypt the payload of the RTP packet in `buf[..len]` in place
    /// and append MKI and tag. `buf.len()` must leave room for
    /// [`Self::rtp_trailer_len`]. Returns the SRTP length.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let pkt = buf.get(..len).ok_or(SrtpError::Malformed)?;
        let hdr = rtp_header_len(pkt)?;
        let ssrc = be32(pkt, 8);
        let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
        let tag_len = self.profile.rtp_tag_len();
        let out_len = len + self.mki_len() + tag_len;
        if buf.len() < out_len {
            return Err(SrtpError::NoRoom);
        }
        let st = self.streams.entry(ssrc);
        let index = st.rtp.estimate(seq).ok_or(SrtpError::TooOld)?;
        st.rtp.window.check(index)?;
        st.rtp.window.commit(index);
        let roc = ((index >> 16) as u32).to_be_bytes();

        self.rtp.crypt(ssrc, index, &mut buf[hdr..len]);
        let tag = self.rtp.tag(&buf[..len], &roc);
        let (mki_dst, rest) = buf[len..out_len].split_at_mut(self.mki_len());
        mki_dst.copy_from_slice(&self.mki[..self.mki_len()]);
        rest.copy_from_slice(&tag[..tag_len]);
        Ok(out_len)
    }

    /// RFC 3711 §3.3: check replay and tag of the SRTP packet in `buf[..len]`, then
    /// decrypt in place. Returns the RTP length (MKI and tag stripped). State only
    /// advances when the tag verifies, so forged packets cannot move the window.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let pkt = buf.get(..len).ok_or(SrtpError::Malformed)?;
        let hdr = rtp_header_len(pkt)?;
        let trailer = self.rtp_trailer_len();
        if len < hdr + trailer {
            return Err(SrtpError::TooShort);
        }
        let auth_end = len - trailer;
        let (authed, tail) = pkt.split_at(auth_end);
        let (mki, tag) = tail.split_at(self.mki_len());
        if mki != self.mki() {
            return Err(SrtpError::AuthFailed);
        }
        let ssrc = be32(pkt, 8);
        let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
        let state = match self.streams.get(ssrc) {
            Some(st) => st.rtp,
            None => replay::RtpState::default(),
        };
        let index = state.estimate(seq).ok_or(SrtpError::TooOld)?;
        state.window.check(index)?;
        let roc = ((index >> 16) as u32).to_be_bytes();
        if !self.rtp.verify(authed, &roc, tag) {
            return Err(SrtpError::AuthFailed);
        }
        self.rtp.crypt(ssrc, index, &mut buf[hdr..auth_end]);
        self.streams.entry(ssrc).rtp.window.commit(index);
        Ok(auth_end)
    }

    /// RFC 3711 §3.4: encrypt `buf[8..len]` of the RTCP compound packet in place and
    /// append E=1 with the 31-bit SRTCP index, the MKI and the 80-bit tag.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let pkt = buf.get(..len).ok_or(SrtpError::Malformed)?;
        check_rtcp_header(pkt)?;
        let ssrc = be32(pkt, 4);
        let out_len = len + self.rtcp_trailer_len();
        if buf.len() < out_len {
            return Err(SrtpError::NoRoom);
        }
        let st = self.streams.entry(ssrc);
        let index = st.srtcp_next;
        st.srtcp_next = index.wrapping_add(1) & SRTCP_INDEX_MASK;

        self.rtcp
            .crypt(ssrc, u64::from(index), &mut buf[SRTCP_CLEAR_LEN..len]);
        let e_index = len + SRTCP_INDEX_LEN;
        buf[len..e_index].copy_from_slice(&(0x8000_0000 | index).to_be_bytes());
        let tag = self.rtcp.tag(&buf[..e_index], &[]);
        let (mki_dst, rest) = buf[e_index..out_len].split_at_mut(self.mki_len());
        mki_dst.copy_from_slice(&self.mki[..self.mki_len()]);
        rest.copy_from_slice(&tag[..SRTCP_TAG_LEN]);
        Ok(out_len)
    }

    /// RFC 3711 §3.4: check tag and replay of the SRTCP packet in `buf[..len]`,
    /// decrypt in place when E is set. Returns the RTCP length.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let pkt = buf.get(..len).ok_or(SrtpError::Malformed)?;
        let trailer = self.rtcp_trailer_len();
        if len < SRTCP_CLEAR_LEN + trailer {
            return Err(SrtpError::TooShort);
        }
        check_rtcp_header(pkt)?;
        let auth_end = len - self.mki_len() - SRTCP_TAG_LEN;
        let (authed, tail) = pkt.split_at(auth_end);
        let (mki, tag) = tail.split_at(self.mki_len());
        if mki != self.mki() {
            return Err(SrtpError::AuthFailed);
        }
        let rtcp_end = auth_end - SRTCP_INDEX_LEN;
        let e_index = be32(pkt, rtcp_end);
        let encrypted = e_index & 0x8000_0000 != 0;
        let index = u64::from(e_index & SRTCP_INDEX_MASK);
        let ssrc = be32(pkt, 4);
        if let Some(st) = self.streams.get(ssrc) {
            st.srtcp_rx.check(index)?;
        }
        if !self.rtcp.verify(authed, &[], tag) {
            return Err(SrtpError::AuthFailed);
        }
        if encrypted {
            self.rtcp
                .crypt(ssrc, index, &mut buf[SRTCP_CLEAR_LEN..rtcp_end]);
        }
        self.streams.entry(ssrc).srtcp_rx.commit(index);
        Ok(rtcp_end)
    }
}

/// RTCP version 2 with an RTCP packet type (RFC 5761 §4: 192..=223) and room for
/// the sender SSRC.
fn check_rtcp_header(pkt: &[u8]) -> Result<(), SrtpError> {
    match pkt {
        [first, 192..=223, _, _, _, _, _, _, ..] if first >> 6 == 2 => Ok(()),
        [_, _, _, _, _, _, _, _, ..] => Err(SrtpError::Malformed),
        _ => Err(SrtpError::TooShort),
    }
}

// What protecting or unprotecting an RTP packet of the usual SSRC reads: suite, MKI
// length, SSRC keys and that SSRC's state in the first line; MAC pads, salt and AES-NI
// round keys (11 × 16 bytes) in the four lines of the SRTP keys. Checked when building
// for x86-64, where the `aes` crate's layout is the one measured.
#[cfg(target_arch = "x86_64")]
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(align_of::<SrtpSession>() >= 64);
    assert!(offset_of!(SrtpSession, streams) + StreamTable::FRONT_RTP_END <= 64);
    assert!(offset_of!(SrtpSession, rtp) % 64 == 0);
    assert!(SessionKeys::HOT_END <= 4 * 64);
    assert!(size_of::<SrtpSession>() <= 2048);
};

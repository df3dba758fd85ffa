//! RTP/RTCP packet views and first-byte demultiplexing.
//!
//! [`RtpPacket`] is a smoltcp-style view: [`RtpPacket::new_checked`] validates the
//! lengths once, after which every accessor is infallible and cannot panic.
//!
//! RFC 3550 §5.1 fixed header:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! |                           timestamp                           |
//! |           synchronization source (SSRC) identifier            |
//! |            contributing source (CSRC) identifiers (CC × 32)   |
//! ```

use crate::bytes::{be16, be32};
use thiserror::Error;

/// Length of the fixed RTP header (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;
/// Offset of the sequence number.
pub const FIELD_SEQ: usize = 2;
/// Offset of the timestamp.
pub const FIELD_TIMESTAMP: usize = 4;
/// Offset of the SSRC.
pub const FIELD_SSRC: usize = 8;
/// Length of the fixed RTCP header plus the sender SSRC (RFC 3550 §6.4.1).
pub const RTCP_HEADER_LEN: usize = 8;

/// Why a buffer is not a well-formed RTP packet. The peer is always to blame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum RtpError {
    /// Shorter than the 12-byte fixed header.
    #[error("packet shorter than the RTP fixed header")]
    TooShort,
    /// Version field is not 2.
    #[error("RTP version is not 2")]
    BadVersion,
    /// CSRC list or header extension runs past the end of the packet.
    #[error("CSRC list or header extension truncated")]
    TruncatedHeader,
    /// P bit set but the padding count is zero or longer than the payload.
    #[error("invalid RTP padding")]
    BadPadding,
}

/// A checked, borrowed view of an RTP packet.
///
/// Invariant: `header_len <= payload_end <= buf.len()`, established by the
/// constructors, so no accessor can index out of bounds.
#[derive(Clone, Copy, Debug)]
pub struct RtpPacket<'a> {
    buf: &'a [u8],
    header_len: usize,
    payload_end: usize,
}

/// Length of the RTP header (fixed part, CSRCs, header extension) per RFC 3550
/// §5.1/§5.3.1, after checking that it fits in `buf`.
pub(crate) fn rtp_header_len(buf: &[u8]) -> Result<usize, RtpError> {
    let first = *buf.first().ok_or(RtpError::TooShort)?;
    if buf.len() < RTP_HEADER_LEN {
        return Err(RtpError::TooShort);
    }
    if first >> 6 != 2 {
        return Err(RtpError::BadVersion);
    }
    let cc = usize::from(first & 0x0f);
    let mut len = RTP_HEADER_LEN + 4 * cc;
    if first & 0x10 != 0 {
        // RFC 3550 §5.3.1: 16-bit profile, 16-bit length in 32-bit words.
        if buf.len() < len + 4 {
            return Err(RtpError::TruncatedHeader);
        }
        len += 4 + 4 * usize::from(be16(buf, len + 2));
    }
    if buf.len() < len {
        return Err(RtpError::TruncatedHeader);
    }
    Ok(len)
}

impl<'a> RtpPacket<'a> {
    /// Validate the header, the CSRC list, the header extension and the padding
    /// (RFC 3550 §5.1: the last octet counts the padding octets, itself included).
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, RtpError> {
        let pkt = Self::new_header_checked(buf)?;
        if !pkt.padding() {
            return Ok(pkt);
        }
        let pad = usize::from(*buf.last().ok_or(RtpError::BadPadding)?);
        if pad == 0 || pad > buf.len() - pkt.header_len {
            return Err(RtpError::BadPadding);
        }
        Ok(Self {
            payload_end: buf.len() - pad,
            ..pkt
        })
    }

    /// Validate only the header (fixed part, CSRCs, extension). Use this for SRTP
    /// packets, whose padding count is encrypted: `payload()` then returns every
    /// byte after the header.
    pub fn new_header_checked(buf: &'a [u8]) -> Result<Self, RtpError> {
        let header_len = rtp_header_len(buf)?;
        Ok(Self {
            buf,
            header_len,
            payload_end: buf.len(),
        })
    }

    fn byte(&self, at: usize) -> u8 {
        self.buf.get(at).copied().unwrap_or(0)
    }

    /// Version field (always 2 for a checked view).
    pub fn version(&self) -> u8 {
        self.byte(0) >> 6
    }
    /// P bit.
    pub fn padding(&self) -> bool {
        self.byte(0) & 0x20 != 0
    }
    /// X bit.
    pub fn extension(&self) -> bool {
        self.byte(0) & 0x10 != 0
    }
    /// CC field: number of CSRCs.
    pub fn csrc_count(&self) -> u8 {
        self.byte(0) & 0x0f
    }
    /// M bit.
    pub fn marker(&self) -> bool {
        self.byte(1) & 0x80 != 0
    }
    /// PT field.
    pub fn payload_type(&self) -> u8 {
        self.byte(1) & 0x7f
    }
    /// Sequence number.
    pub fn sequence(&self) -> u16 {
        be16(self.buf, FIELD_SEQ)
    }
    /// RTP timestamp.
    pub fn timestamp(&self) -> u32 {
        be32(self.buf, FIELD_TIMESTAMP)
    }
    /// Synchronization source.
    pub fn ssrc(&self) -> u32 {
        be32(self.buf, FIELD_SSRC)
    }
    /// The `i`-th CSRC, `None` when `i >= csrc_count()`.
    pub fn csrc(&self, i: usize) -> Option<u32> {
        (i < usize::from(self.csrc_count())).then(|| be32(self.buf, RTP_HEADER_LEN + 4 * i))
    }
    /// Header extension `(profile, data)` (RFC 3550 §5.3.1), if the X bit is set.
    pub fn extension_header(&self) -> Option<(u16, &'a [u8])> {
        if !self.extension() {
            return None;
        }
        let at = RTP_HEADER_LEN + 4 * usize::from(self.csrc_count());
        let data = self.buf.get(at + 4..self.header_len)?;
        Some((be16(self.buf, at), data))
    }
    /// Header length: 12 + 4·CC + extension.
    pub fn header_len(&self) -> usize {
        self.header_len
    }
    /// Payload: after the header, without padding (for [`Self::new_checked`]).
    pub fn payload(&self) -> &'a [u8] {
        self.buf
            .get(self.header_len..self.payload_end)
            .unwrap_or(&[])
    }
    /// The whole packet.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }
}

/// What a datagram on a media port is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// RTP or SRTP (first byte 128..=191, payload type outside 64..=95).
    Rtp,
    /// RTCP or SRTCP (first byte 128..=191, payload type 64..=95).
    Rtcp,
    /// A STUN message (first byte 0..=3 and a valid STUN header).
    Stun,
    /// Anything else: DTLS, ZRTP, TURN channel data, garbage.
    Unknown,
}

/// Demultiplex a datagram by its first byte (RFC 7983 §7) and then tell RTP from
/// RTCP by the second byte (RFC 5761 §4: RTCP packet types 192..=223 appear as
/// payload type 64..=95 when the marker bit is masked off).
///
/// An RTP packet must hold at least the 12-byte fixed header and an RTCP packet at
/// least its 8-byte header with the sender SSRC; shorter ones are `Unknown`.
pub fn classify(buf: &[u8]) -> PacketKind {
    match buf {
        [0..=3, ..] if crate::stun::is_stun(buf) => PacketKind::Stun,
        [128..=191, second, ..] => {
            if (64..=95).contains(&(second & 0x7f)) {
                if buf.len() >= RTCP_HEADER_LEN {
                    PacketKind::Rtcp
                } else {
                    PacketKind::Unknown
                }
            } else if buf.len() >= RTP_HEADER_LEN {
                PacketKind::Rtp
            } else {
                PacketKind::Unknown
            }
        }
        _ => PacketKind::Unknown,
    }
}

/// SSRC of the sender of an RTCP (or SRTCP) compound packet: bytes 4..8 of the first
/// packet, which every RTCP type (SR, RR, SDES, BYE, APP, RTPFB, PSFB, XR) carries
/// there (RFC 3550 §6.4–6.7, RFC 4585 §6.1). The SRTCP header is not encrypted.
pub fn rtcp_sender_ssrc(buf: &[u8]) -> Option<u32> {
    match buf {
        [first, 192..=223, _, _, a, b, c, d, ..] if first >> 6 == 2 => {
            Some(u32::from_be_bytes([*a, *b, *c, *d]))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fixed_header() {
        let pkt = [
            0x80, 0xe0, 0x12, 0x34, 0, 0, 0, 160, 0xca, 0xfe, 0xba, 0xbe, 1, 2, 3,
        ];
        let p = RtpPacket::new_checked(&pkt).unwrap();
        assert_eq!(p.version(), 2);
        assert!(p.marker());
        assert_eq!(p.payload_type(), 96);
        assert_eq!(p.sequence(), 0x1234);
        assert_eq!(p.timestamp(), 160);
        assert_eq!(p.ssrc(), 0xcafe_babe);
        assert_eq!(p.header_len(), 12);
        assert_eq!(p.payload(), &[1, 2, 3]);
        assert!(!p.padding() && !p.extension());
        assert_eq!(p.csrc(0), None);
    }

    #[test]
    fn csrc_extension_and_padding() {
        let mut pkt = vec![0xb2, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9];
        pkt.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 8]); // 2 CSRCs
        pkt.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]); // extension
        pkt.extend_from_slice(&[5, 6, 0, 2]); // payload 5 6 + 2 bytes padding
        let p = RtpPacket::new_checked(&pkt).unwrap();
        assert_eq!(p.csrc_count(), 2);
        assert_eq!(p.csrc(1), Some(8));
        assert_eq!(
            p.extension_header(),
            Some((0xbede, &[0x10, 0xaa, 0, 0][..]))
        );
        assert_eq!(p.header_len(), 28);
        assert_eq!(p.payload(), &[5, 6]);
        let h = RtpPacket::new_header_checked(&pkt).unwrap();
        assert_eq!(h.payload().len(), 4);
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(
            RtpPacket::new_checked(&[0x80; 11]).unwrap_err(),
            RtpError::TooShort
        );
        assert_eq!(
            RtpPacket::new_checked(&[0x40; 12]).unwrap_err(),
            RtpError::BadVersion
        );
        let cc = [0x81, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            RtpPacket::new_checked(&cc).unwrap_err(),
            RtpError::TruncatedHeader
        );
        let ext = [
            0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xbe, 0xde, 0, 2, 0, 0, 0, 0,
        ];
        assert_eq!(
            RtpPacket::new_checked(&ext).unwrap_err(),
            RtpError::TruncatedHeader
        );
        let pad0 = [0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        assert_eq!(
            RtpPacket::new_checked(&pad0).unwrap_err(),
            RtpError::BadPadding
        );
        let padbig = [0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3];
        assert_eq!(
            RtpPacket::new_checked(&padbig).unwrap_err(),
            RtpError::BadPadding
        );
    }

    #[test]
    fn demux() {
        let mut rtp = [0u8; 12];
        rtp[0] = 0x80;
        rtp[1] = 0x00;
        assert_eq!(classify(&rtp), PacketKind::Rtp);
        rtp[1] = 0x80 | 96;
        assert_eq!(classify(&rtp), PacketKind::Rtp);
        rtp[1] = 200; // SR
        assert_eq!(classify(&rtp), PacketKind::Rtcp);
        rtp[1] = 201;
        assert_eq!(classify(&rtp[..8]), PacketKind::Rtcp);
        assert_eq!(classify(&rtp[..7]), PacketKind::Unknown);
        rtp[1] = 0;
        assert_eq!(classify(&rtp[..11]), PacketKind::Unknown);
        rtp[0] = 22; // DTLS handshake
        assert_eq!(classify(&rtp), PacketKind::Unknown);
        assert_eq!(classify(&[]), PacketKind::Unknown);
        let mut stun = [0u8; 20];
        stun[1] = 1;
        stun[4..8].copy_from_slice(&0x2112_a442u32.to_be_bytes());
        assert_eq!(classify(&stun), PacketKind::Stun);
        stun[4] = 0;
        assert_eq!(classify(&stun), PacketKind::Unknown);
    }

    #[test]
    fn rtcp_ssrc() {
        let rr = [0x81, 201, 0, 7, 0xca, 0xfe, 0xba, 0xbe];
        assert_eq!(rtcp_sender_ssrc(&rr), Some(0xcafe_babe));
        assert_eq!(rtcp_sender_ssrc(&rr[..7]), None);
        let rtp = [0x80, 0, 0, 7, 0xca, 0xfe, 0xba, 0xbe];
        assert_eq!(rtcp_sender_ssrc(&rtp), None);
        let v1 = [0x41, 201, 0, 7, 0xca, 0xfe, 0xba, 0xbe];
        assert_eq!(rtcp_sender_ssrc(&v1), None);
    }
}

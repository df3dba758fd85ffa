//! STUN message view and an ICE-lite Binding responder (RFC 8489, RFC 8445 §2.5).
//!
//! A lite agent never sends checks; it only answers authenticated Binding requests
//! on the media port with a success response carrying XOR-MAPPED-ADDRESS,
//! MESSAGE-INTEGRITY (HMAC-SHA1 with the local ICE password, RFC 8489 §14.5) and
//! FINGERPRINT (RFC 8489 §14.7).
//!
//! What to do with an error from [`answer_binding`]: when
//! [`StunError::status_code`] is `Some(code)` (400 missing USERNAME or integrity,
//! 401 wrong username or integrity, 420 unknown comprehension-required attribute,
//! RFC 8489 §6.3.1.1/§9.1.3) the caller may answer with [`error_response`]; every
//! other error (not STUN, bad fingerprint, not a Binding request) is dropped
//! silently. Dropping everything is also acceptable for a lite agent and is what
//! a cautious deployment does for 401, to avoid reflecting traffic.

use crate::bytes::be32;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use std::net::{IpAddr, SocketAddr};
use thiserror::Error;

/// STUN header length (RFC 8489 §5).
pub const HEADER_LEN: usize = 20;
/// The magic cookie (RFC 8489 §5).
pub const MAGIC_COOKIE: u32 = 0x2112_a442;
/// FINGERPRINT is CRC-32 XOR this value (RFC 8489 §14.7).
const FINGERPRINT_XOR: u32 = 0x5354_554e;
/// Binding request / success response / error response message types.
pub const BINDING_REQUEST: u16 = 0x0001;
/// Binding success response.
pub const BINDING_SUCCESS: u16 = 0x0101;
/// Binding error response.
pub const BINDING_ERROR: u16 = 0x0111;
/// Bytes a success response to an IPv6 peer needs (the largest we build).
pub const MAX_RESPONSE_LEN: usize = HEADER_LEN + 24 + 24 + 8;

/// Attribute types used here (RFC 8489 §18.3, RFC 8445 §16.1).
pub mod attr {
    /// USERNAME.
    pub const USERNAME: u16 = 0x0006;
    /// MESSAGE-INTEGRITY (HMAC-SHA1).
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    /// ERROR-CODE.
    pub const ERROR_CODE: u16 = 0x0009;
    /// UNKNOWN-ATTRIBUTES.
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000a;
    /// MESSAGE-INTEGRITY-SHA256.
    pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001c;
    /// XOR-MAPPED-ADDRESS.
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    /// PRIORITY (ICE).
    pub const PRIORITY: u16 = 0x0024;
    /// USE-CANDIDATE (ICE).
    pub const USE_CANDIDATE: u16 = 0x0025;
    /// FINGERPRINT.
    pub const FINGERPRINT: u16 = 0x8028;
    /// ICE-CONTROLLED.
    pub const ICE_CONTROLLED: u16 = 0x8029;
    /// ICE-CONTROLLING.
    pub const ICE_CONTROLLING: u16 = 0x802a;
}

/// Why a STUN message was not answered with success.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum StunError {
    /// Not a STUN message (RFC 8489 §5 header checks failed): drop.
    #[error("not a STUN message")]
    NotStun,
    /// Attributes overrun the message: answer 400 or drop.
    #[error("malformed STUN attributes")]
    Malformed,
    /// A STUN message but not a Binding request (e.g. an indication): drop.
    #[error("not a Binding request")]
    NotBindingRequest,
    /// FINGERPRINT absent or wrong (RFC 8445 §7.2.2 requires it): drop.
    #[error("missing or bad FINGERPRINT")]
    BadFingerprint,
    /// USERNAME or MESSAGE-INTEGRITY missing: 400.
    #[error("missing USERNAME or MESSAGE-INTEGRITY")]
    MissingAttribute,
    /// USERNAME does not start with our ufrag: 401.
    #[error("unknown ICE username")]
    UnknownUsername,
    /// MESSAGE-INTEGRITY does not verify with our password: 401.
    #[error("MESSAGE-INTEGRITY check failed")]
    IntegrityFailed,
    /// An unknown comprehension-required attribute (type in the payload): 420.
    #[error("unknown comprehension-required attribute {0:#06x}")]
    UnknownAttribute(u16),
    /// The output buffer is too small (our fault).
    #[error("output buffer too small")]
    NoRoom,
    /// Ufrag or password empty or too long for [`IceCredentials`] (our config).
    #[error("invalid ICE credentials")]
    InvalidCredentials,
}

impl StunError {
    /// The error response code RFC 8489 prescribes, if one should be sent.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Self::Malformed | Self::MissingAttribute => Some(400),
            Self::UnknownUsername | Self::IntegrityFailed => Some(401),
            Self::UnknownAttribute(_) => Some(420),
            _ => None,
        }
    }
}

/// Does `buf` look like a STUN message: top two bits zero, length a multiple of 4
/// that matches the datagram, magic cookie present (RFC 8489 §5, §7.3)?
pub fn is_stun(buf: &[u8]) -> bool {
    match buf {
        [t0, _, l0, l1, c0, c1, c2, c3, ..] if buf.len() >= HEADER_LEN => {
            let len = usize::from(u16::from_be_bytes([*l0, *l1]));
            t0 & 0xc0 == 0
                && len.is_multiple_of(4)
                && len + HEADER_LEN == buf.len()
                && u32::from_be_bytes([*c0, *c1, *c2, *c3]) == MAGIC_COOKIE
        }
        _ => false,
    }
}

/// Local ICE credentials (RFC 8445 §5.3: ufrag ≥ 4 and pwd ≥ 22 characters are
/// what SDP carries; this type only bounds the size). Fixed-size and `Copy` so it
/// can travel in a ring command.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IceCredentials {
    /// Local username fragment, first `ufrag_len` bytes used.
    pub local_ufrag: [u8; 32],
    /// Length of the ufrag.
    pub ufrag_len: u8,
    /// Local password, first `pwd_len` bytes used.
    pub local_pwd: [u8; 64],
    /// Length of the password.
    pub pwd_len: u8,
}

impl std::fmt::Debug for IceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceCredentials")
            .field("ufrag", &String::from_utf8_lossy(self.ufrag()))
            .finish_non_exhaustive()
    }
}

impl IceCredentials {
    /// Non-empty ufrag up to 32 bytes and password up to 64 bytes.
    pub fn new(ufrag: &str, pwd: &str) -> Result<Self, StunError> {
        let mut c = Self {
            local_ufrag: [0; 32],
            ufrag_len: 0,
            local_pwd: [0; 64],
            pwd_len: 0,
        };
        if ufrag.is_empty() || pwd.is_empty() || ufrag.contains(':') {
            return Err(StunError::InvalidCredentials);
        }
        c.local_ufrag
            .get_mut(..ufrag.len())
            .ok_or(StunError::InvalidCredentials)?
            .copy_from_slice(ufrag.as_bytes());
        c.local_pwd
            .get_mut(..pwd.len())
            .ok_or(StunError::InvalidCredentials)?
            .copy_from_slice(pwd.as_bytes());
        c.ufrag_len = ufrag.len() as u8;
        c.pwd_len = pwd.len() as u8;
        Ok(c)
    }
    /// The ufrag bytes.
    pub fn ufrag(&self) -> &[u8] {
        self.local_ufrag
            .get(..usize::from(self.ufrag_len))
            .unwrap_or(&[])
    }
    /// The password bytes (the short-term credential key, RFC 8489 §9.1.1).
    pub fn pwd(&self) -> &[u8] {
        self.local_pwd
            .get(..usize::from(self.pwd_len))
            .unwrap_or(&[])
    }
}

/// One attribute: type, value (without padding) and the offset of its TLV header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attribute<'a> {
    /// Attribute type.
    pub typ: u16,
    /// Value bytes.
    pub value: &'a [u8],
    /// Offset of the attribute header in the message.
    pub offset: usize,
}

/// A checked STUN message view: header valid and every attribute inside the message.
#[derive(Clone, Copy, Debug)]
pub struct StunMessage<'a> {
    buf: &'a [u8],
}

/// Iterator over the attributes of a checked message.
#[derive(Clone, Debug)]
pub struct Attributes<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Attribute<'a>;
    fn next(&mut self) -> Option<Attribute<'a>> {
        let header = self.buf.get(self.at..self.at + 4)?;
        let typ = u16::from_be_bytes([header[0], header[1]]);
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let start = self.at + 4;
        let value = self.buf.get(start..start + len)?;
        let offset = self.at;
        self.at = start + len.div_ceil(4) * 4; // RFC 8489 §14: padded to 4 bytes
        Some(Attribute { typ, value, offset })
    }
}

impl<'a> StunMessage<'a> {
    /// Check the header ([`is_stun`]) and that the attributes tile the message.
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, StunError> {
        if !is_stun(buf) {
            return Err(StunError::NotStun);
        }
        let mut at = HEADER_LEN;
        while at < buf.len() {
            let len = usize::from(u16::from_be_bytes([buf[at + 2], buf[at + 3]]));
            at += 4 + len.div_ceil(4) * 4;
        }
        if at != buf.len() {
            return Err(StunError::Malformed);
        }
        Ok(Self { buf })
    }
    /// Message type (method and class).
    pub fn msg_type(&self) -> u16 {
        u16::from_be_bytes([self.buf[0], self.buf[1]])
    }
    /// The 96-bit transaction ID.
    pub fn transaction_id(&self) -> [u8; 12] {
        let mut id = [0; 12];
        id.copy_from_slice(&self.buf[8..HEADER_LEN]);
        id
    }
    /// The attributes in order.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            buf: self.buf,
            at: HEADER_LEN,
        }
    }
    /// The first attribute of type `typ`.
    pub fn attribute(&self, typ: u16) -> Option<Attribute<'a>> {
        self.attributes().find(|a| a.typ == typ)
    }
    /// The whole message.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// RFC 8489 §14.7: FINGERPRINT must be the last attribute and equal
    /// CRC-32(message before it) XOR 0x5354554e.
    pub fn verify_fingerprint(&self) -> Result<(), StunError> {
        let fp = self
            .attributes()
            .last()
            .filter(|a| a.typ == attr::FINGERPRINT);
        let fp = fp
            .filter(|a| a.value.len() == 4)
            .ok_or(StunError::BadFingerprint)?;
        let crc = crc32fast::hash(&self.buf[..fp.offset]) ^ FINGERPRINT_XOR;
        if crc == be32(fp.value, 0) {
            Ok(())
        } else {
            Err(StunError::BadFingerprint)
        }
    }

    /// RFC 8489 §14.5: HMAC-SHA1 with `key` over the message up to
    /// MESSAGE-INTEGRITY, with the header length adjusted to end at it.
    pub fn verify_integrity(&self, key: &[u8]) -> Result<(), StunError> {
        let mi = self
            .attribute(attr::MESSAGE_INTEGRITY)
            .ok_or(StunError::MissingAttribute)?;
        if mi.value.len() != 20 {
            return Err(StunError::Malformed);
        }
        let mut mac = hmac_sha1(key);
        mac.update(&self.buf[..2]);
        mac.update(&((mi.offset + 24 - HEADER_LEN) as u16).to_be_bytes());
        mac.update(&self.buf[4..mi.offset]);
        mac.verify_slice(mi.value)
            .map_err(|_| StunError::IntegrityFailed)
    }

    /// XOR-MAPPED-ADDRESS decoded (RFC 8489 §14.2).
    pub fn xor_mapped_address(&self) -> Option<SocketAddr> {
        let v = self.attribute(attr::XOR_MAPPED_ADDRESS)?.value;
        let port = u16::from_be_bytes([*v.get(2)?, *v.get(3)?]) ^ (MAGIC_COOKIE >> 16) as u16;
        let mut mask = [0u8; 16];
        mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        mask[4..].copy_from_slice(&self.buf[8..HEADER_LEN]);
        let ip: IpAddr = match (v.get(1)?, v.len()) {
            (0x01, 8) => {
                let mut a = [0u8; 4];
                a.iter_mut()
                    .zip(&v[4..8])
                    .zip(&mask)
                    .for_each(|((d, s), m)| *d = s ^ m);
                a.into()
            }
            (0x02, 20) => {
                let mut a = [0u8; 16];
                a.iter_mut()
                    .zip(&v[4..20])
                    .zip(&mask)
                    .for_each(|((d, s), m)| *d = s ^ m);
                a.into()
            }
            _ => return None,
        };
        Some(SocketAddr::new(ip, port))
    }
}

/// HMAC-SHA1 keyed with `key`; keys longer than the block are hashed (RFC 2104).
fn hmac_sha1(key: &[u8]) -> Hmac<Sha1> {
    // `new_from_slice` accepts any key length for HMAC; the fallback is unreachable
    // but keeps this path free of panics.
    Hmac::<Sha1>::new_from_slice(key).unwrap_or_else(|_| Hmac::<Sha1>::new(&Default::default()))
}

/// What a verified Binding request asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindingAnswer {
    /// Length of the success response written to `out`.
    pub len: usize,
    /// USE-CANDIDATE present: the controlling agent nominated this pair (RFC 8445 §7.3.1.5).
    pub use_candidate: bool,
    /// PRIORITY attribute, if any.
    pub priority: Option<u32>,
    /// The peer claims the controlling role (ICE-CONTROLLING present).
    pub peer_controlling: bool,
}

/// Verify a Binding request and write the success response to `out`; see
/// [`answer_binding_detailed`].
pub fn answer_binding(
    req: &[u8],
    from: SocketAddr,
    creds: &IceCredentials,
    out: &mut [u8],
) -> Result<usize, StunError> {
    answer_binding_detailed(req, from, creds, out).map(|a| a.len)
}

/// Verify a Binding request (header, FINGERPRINT, comprehension-required
/// attributes, USERNAME `local:remote`, MESSAGE-INTEGRITY with the local password)
/// and write a success response with XOR-MAPPED-ADDRESS = `from`,
/// MESSAGE-INTEGRITY and FINGERPRINT to `out` (at most [`MAX_RESPONSE_LEN`] bytes).
/// Attributes after MESSAGE-INTEGRITY other than FINGERPRINT are ignored (§14.5).
pub fn answer_binding_detailed(
    req: &[u8],
    from: SocketAddr,
    creds: &IceCredentials,
    out: &mut [u8],
) -> Result<BindingAnswer, StunError> {
    let msg = StunMessage::new_checked(req)?;
    if msg.msg_type() != BINDING_REQUEST {
        return Err(StunError::NotBindingRequest);
    }
    msg.verify_fingerprint()?;
    let mut username = None;
    let mut has_mi = false;
    let mut answer = BindingAnswer {
        len: 0,
        use_candidate: false,
        priority: None,
        peer_controlling: false,
    };
    for a in msg.attributes() {
        match a.typ {
            attr::MESSAGE_INTEGRITY => {
                has_mi = true;
                break;
            }
            attr::USERNAME => username = Some(a.value),
            attr::USE_CANDIDATE => answer.use_candidate = true,
            attr::PRIORITY if a.value.len() == 4 => answer.priority = Some(be32(a.value, 0)),
            attr::ICE_CONTROLLING => answer.peer_controlling = true,
            attr::PRIORITY | attr::MESSAGE_INTEGRITY_SHA256 => {}
            t if t < 0x8000 => return Err(StunError::UnknownAttribute(t)),
            _ => {} // comprehension-optional
        }
    }
    let username = username.ok_or(StunError::MissingAttribute)?;
    if !has_mi {
        return Err(StunError::MissingAttribute);
    }
    // RFC 8445 §7.3: USERNAME is "<our ufrag>:<their ufrag>".
    match username.strip_prefix(creds.ufrag()) {
        Some([b':', ..]) => {}
        _ => return Err(StunError::UnknownUsername),
    }
    msg.verify_integrity(creds.pwd())?;

    let mut w = Writer::new(out, BINDING_SUCCESS, &msg.transaction_id())?;
    let txid = msg.transaction_id();
    let mut xma = [0u8; 20];
    let port = from.port() ^ (MAGIC_COOKIE >> 16) as u16;
    xma[2..4].copy_from_slice(&port.to_be_bytes());
    let mut mask = [0u8; 16];
    mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    mask[4..].copy_from_slice(&txid);
    let n = match from.ip() {
        IpAddr::V4(ip) => {
            xma[1] = 0x01;
            xma[4..8]
                .iter_mut()
                .zip(ip.octets())
                .zip(&mask)
                .for_each(|((d, s), m)| *d = s ^ m);
            8
        }
        IpAddr::V6(ip) => {
            xma[1] = 0x02;
            xma[4..20]
                .iter_mut()
                .zip(ip.octets())
                .zip(&mask)
                .for_each(|((d, s), m)| *d = s ^ m);
            20
        }
    };
    w.attr(attr::XOR_MAPPED_ADDRESS, &xma[..n])?;
    w.integrity(creds.pwd())?;
    answer.len = w.fingerprint()?;
    Ok(answer)
}

/// Write a Binding error response (RFC 8489 §14.8 ERROR-CODE, plus
/// UNKNOWN-ATTRIBUTES for 420, then FINGERPRINT; no MESSAGE-INTEGRITY because the
/// request did not authenticate). `req` must be a STUN message.
pub fn error_response(req: &[u8], err: StunError, out: &mut [u8]) -> Result<usize, StunError> {
    let msg = StunMessage::new_checked(req)?;
    let code = err.status_code().ok_or(StunError::NotBindingRequest)?;
    let reason: &[u8] = match code {
        400 => b"Bad Request",
        401 => b"Unauthenticated",
        _ => b"Unknown Attribute",
    };
    let mut w = Writer::new(out, BINDING_ERROR, &msg.transaction_id())?;
    let mut value = [0u8; 4 + 17];
    value[2] = (code / 100) as u8;
    value[3] = (code % 100) as u8;
    value[4..4 + reason.len()].copy_from_slice(reason);
    w.attr(attr::ERROR_CODE, &value[..4 + reason.len()])?;
    if let StunError::UnknownAttribute(t) = err {
        w.attr(attr::UNKNOWN_ATTRIBUTES, &t.to_be_bytes())?;
    }
    w.fingerprint()
}

/// Parameters of a Binding request built by [`build_binding_request`] (the
/// controlling side of a check; used by tests and the load generator).
#[derive(Clone, Copy, Debug)]
pub struct BindingRequest<'a> {
    /// Transaction ID.
    pub transaction_id: [u8; 12],
    /// USERNAME `"<their ufrag>:<our ufrag>"`.
    pub username: &'a [u8],
    /// Their password (MESSAGE-INTEGRITY key).
    pub key: &'a [u8],
    /// PRIORITY value.
    pub priority: u32,
    /// Include USE-CANDIDATE.
    pub use_candidate: bool,
    /// ICE-CONTROLLING tie-breaker.
    pub tie_breaker: u64,
}

/// Build an ICE connectivity check (RFC 8445 §7.2.2) into `out`.
pub fn build_binding_request(req: &BindingRequest<'_>, out: &mut [u8]) -> Result<usize, StunError> {
    let mut w = Writer::new(out, BINDING_REQUEST, &req.transaction_id)?;
    w.attr(attr::USERNAME, req.username)?;
    w.attr(attr::PRIORITY, &req.priority.to_be_bytes())?;
    w.attr(attr::ICE_CONTROLLING, &req.tie_breaker.to_be_bytes())?;
    if req.use_candidate {
        w.attr(attr::USE_CANDIDATE, &[])?;
    }
    w.integrity(req.key)?;
    w.fingerprint()
}

/// Appends attributes to a message in `out`, keeping the header length current.
struct Writer<'b> {
    out: &'b mut [u8],
    len: usize,
}

impl<'b> Writer<'b> {
    fn new(out: &'b mut [u8], typ: u16, txid: &[u8; 12]) -> Result<Self, StunError> {
        let h = out.get_mut(..HEADER_LEN).ok_or(StunError::NoRoom)?;
        h[..2].copy_from_slice(&typ.to_be_bytes());
        h[2..4].fill(0);
        h[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        h[8..].copy_from_slice(txid);
        Ok(Self {
            out,
            len: HEADER_LEN,
        })
    }

    fn attr(&mut self, typ: u16, value: &[u8]) -> Result<(), StunError> {
        let padded = value.len().div_ceil(4) * 4;
        let vlen = u16::try_from(value.len()).map_err(|_| StunError::NoRoom)?;
        let end = self.len + 4 + padded;
        let dst = self.out.get_mut(self.len..end).ok_or(StunError::NoRoom)?;
        dst[..2].copy_from_slice(&typ.to_be_bytes());
        dst[2..4].copy_from_slice(&vlen.to_be_bytes());
        dst[4..4 + value.len()].copy_from_slice(value);
        dst[4 + value.len()..].fill(0); // RFC 8489 §14: padding SHOULD be zero
        self.len = end;
        self.set_length(end);
        Ok(())
    }

    fn set_length(&mut self, end: usize) {
        let l = ((end - HEADER_LEN) as u16).to_be_bytes();
        self.out[2..4].copy_from_slice(&l);
    }

    /// MESSAGE-INTEGRITY over everything so far, length covering the MI itself.
    fn integrity(&mut self, key: &[u8]) -> Result<(), StunError> {
        if self.out.len() < self.len + 24 {
            return Err(StunError::NoRoom);
        }
        self.set_length(self.len + 24);
        let mut mac = hmac_sha1(key);
        mac.update(&self.out[..self.len]);
        let tag: [u8; 20] = mac.finalize().into_bytes().into();
        self.attr(attr::MESSAGE_INTEGRITY, &tag)
    }

    /// FINGERPRINT over everything so far; returns the final message length.
    fn fingerprint(mut self) -> Result<usize, StunError> {
        if self.out.len() < self.len + 8 {
            return Err(StunError::NoRoom);
        }
        self.set_length(self.len + 8);
        let crc = crc32fast::hash(&self.out[..self.len]) ^ FINGERPRINT_XOR;
        self.attr(attr::FINGERPRINT, &crc.to_be_bytes())?;
        Ok(self.len)
    }
}

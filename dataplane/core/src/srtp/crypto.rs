//! AES-CM keystream, the SRTP key derivation function, and pre-keyed HMAC-SHA1.
//!
//! RFC 3711 §4.1.1 (AES in counter mode), §4.2.1 (HMAC-SHA1) and §4.3 (key
//! derivation). The AES key schedule is expanded once per session; the HMAC
//! inner/outer pads are hashed once per session and the keyed state is cloned per
//! packet, so the per-packet cost is the AES blocks and the SHA-1 blocks only.
//! `aes` and `sha1` pick AES-NI and SHA-NI at run time when the CPU has them.

use aes::cipher::{BlockEncrypt, KeyInit, KeyIvInit, StreamCipher};
use aes::Aes128Enc;
use hmac::digest::core_api::CoreWrapper;
use hmac::{Hmac, HmacCore, Mac};
use sha1::Sha1;

/// AES-128 in counter mode with a 128-bit big-endian counter block (RFC 3711 §4.1.1).
type AesCtr = ctr::Ctr128BE<aes::Aes128>;
type HmacSha1 = Hmac<Sha1>;

/// RFC 3711 §4.3.1 key derivation labels.
pub mod label {
    /// SRTP encryption key.
    pub const RTP_ENCRYPTION: u8 = 0x00;
    /// SRTP authentication key.
    pub const RTP_AUTH: u8 = 0x01;
    /// SRTP salt.
    pub const RTP_SALT: u8 = 0x02;
    /// SRTCP encryption key.
    pub const RTCP_ENCRYPTION: u8 = 0x03;
    /// SRTCP authentication key.
    pub const RTCP_AUTH: u8 = 0x04;
    /// SRTCP salt.
    pub const RTCP_SALT: u8 = 0x05;
}

/// Length of the derived HMAC-SHA1 key n_a (RFC 3711 §8.2: 160 bits).
pub(crate) const AUTH_KEY_LEN: usize = 20;
/// HMAC-SHA1 full output; tags are its leftmost 10 or 4 bytes (RFC 3711 §4.2.1).
pub(crate) const SHA1_LEN: usize = 20;

/// The AES-CM PRF of RFC 3711 §4.3.1/§4.3.3 with key derivation rate 0:
/// `x = (label << 48) XOR master_salt` (so the label lands in byte 7 of the
/// 14-byte salt), keystream = AES-CM(master_key, IV = x · 2^16), truncated to `out`.
pub fn derive(master_key: &[u8; 16], master_salt: &[u8; 14], label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(master_salt);
    iv[7] ^= label;
    out.fill(0);
    AesCtr::new(master_key.into(), &iv.into()).apply_keystream(out);
}

/// XOR the AES-CM keystream for `iv` (block counter starting at `iv`) into `data`.
/// Exposed for the RFC 3711 B.2 keystream test.
pub fn aes_cm_apply(key: &[u8; 16], iv: &[u8; 16], data: &mut [u8]) {
    AesCtr::new(key.into(), iv.into()).apply_keystream(data);
}

/// Session keys for one of SRTP or SRTCP: keyed MAC, salt and cipher.
///
/// Laid out for the packet path: a packet reads the MAC's two pre-hashed pads (one line),
/// the salt and the AES-NI round keys (the next three lines; `aes` holds a software key
/// schedule too, in the same union, which the packet path never reads on AES-NI
/// machines). The MAC is kept as its 64-byte core, not the 136-byte wrapper with an empty
/// block buffer; a packet wraps a copy of it.
#[derive(Clone)]
#[repr(C, align(64))]
pub(crate) struct SessionKeys {
    mac: HmacCore<Sha1>,
    salt: [u8; 14],
    aes: Aes128Enc,
}

impl SessionKeys {
    /// End of what a packet reads: the MAC, the salt, and the AES-NI round keys at the
    /// start of `aes`.
    #[cfg(target_arch = "x86_64")]
    pub(crate) const HOT_END: usize = std::mem::offset_of!(SessionKeys, aes) + 11 * 16;

    /// Derive the cipher key, auth key and salt with labels `enc`, `enc + 1`,
    /// `enc + 2` (0/1/2 for SRTP, 3/4/5 for SRTCP).
    pub(crate) fn derive(master_key: &[u8; 16], master_salt: &[u8; 14], enc: u8) -> Self {
        let mut key = [0u8; 16];
        derive(master_key, master_salt, enc, &mut key);
        // HMAC zero-pads keys shorter than the block (RFC 2104 §2), so keying it with
        // the 20-byte key padded to 64 bytes is the same function and cannot fail.
        let mut auth = [0u8; 64];
        derive(master_key, master_salt, enc + 1, &mut auth[..AUTH_KEY_LEN]);
        let mut salt = [0u8; 14];
        derive(master_key, master_salt, enc + 2, &mut salt);
        let (mac, _) = <HmacSha1 as KeyInit>::new((&auth).into()).decompose();
        Self {
            mac,
            salt,
            aes: Aes128Enc::new((&key).into()),
        }
    }

    /// RFC 3711 §4.1.1: `IV = (k_s · 2^16) XOR (SSRC · 2^64) XOR (i · 2^16)`, where
    /// `i` is the 48-bit SRTP packet index or the 31-bit SRTCP index.
    #[inline]
    fn iv(&self, ssrc: u32, index: u64) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.salt);
        for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *b ^= s;
        }
        for (b, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *b ^= s;
        }
        iv
    }

    /// Encrypt or decrypt `data` in place (AES-CM is an XOR with the keystream).
    #[inline]
    pub(crate) fn crypt(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        if data.is_empty() {
            return;
        }
        // Counter blocks are generated PAR at a time and encrypted in one call so the
        // AES-NI backend pipelines them; the 16-bit block counter cannot carry into
        // the index bits because SRTP payloads are far below 2^16 blocks.
        const PAR: usize = 8;
        let mut ctr = u128::from_be_bytes(self.iv(ssrc, index));
        let mut blocks = [aes::Block::default(); PAR];
        for chunk in data.chunks_mut(PAR * 16) {
            let n = chunk.len().div_ceil(16); // 1..=PAR
            for b in blocks.iter_mut().take(n) {
                *b = ctr.to_be_bytes().into();
                ctr = ctr.wrapping_add(1);
            }
            self.aes.encrypt_blocks(&mut blocks[..n]);
            for (d, k) in chunk.chunks_mut(16).zip(blocks.iter()) {
                for (d, k) in d.iter_mut().zip(k.iter()) {
                    *d ^= k;
                }
            }
        }
    }

    /// HMAC-SHA1 over `msg || trailer` (RFC 3711 §4.2: the trailer is the ROC for SRTP,
    /// empty for SRTCP).
    #[inline]
    pub(crate) fn tag(&self, msg: &[u8], trailer: &[u8]) -> [u8; SHA1_LEN] {
        let mut mac = CoreWrapper::from_core(self.mac.clone());
        mac.update(msg);
        mac.update(trailer);
        mac.finalize().into_bytes().into()
    }

    /// Constant-time check of a truncated tag (RFC 3711 §3.4 step 5 / §4.2).
    #[inline]
    pub(crate) fn verify(&self, msg: &[u8], trailer: &[u8], tag: &[u8]) -> bool {
        let mut mac = CoreWrapper::from_core(self.mac.clone());
        mac.update(msg);
        mac.update(trailer);
        mac.verify_truncated_left(tag).is_ok()
    }
}

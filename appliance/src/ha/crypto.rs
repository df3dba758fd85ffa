//! Sealing of the call state stored in Redis: AES-256-GCM (RustCrypto `aes-gcm`) under
//! the pair's shared key (`[ha] key_file`), a fresh 96-bit nonce from the OS CSPRNG
//! per record, and the record's Redis key as associated data (a sealed record moved
//! to another key does not open).
//!
//! Invariants: the key never leaves this type (its `Debug` prints nothing of it); a
//! sealed record is `nonce ‖ ciphertext ‖ tag`.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};

/// Nonce length (NIST SP 800-38D §8.2.2: random 96-bit nonces).
const NONCE: usize = 12;

/// Why a key file or a record was refused.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("key file {path}: {source}")]
    KeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("key file {0}: must hold 64 hex digits (32 bytes; `openssl rand -hex 32`)")]
    KeyFormat(String),
    #[error("random source: {0}")]
    Random(String),
    #[error("record does not open with this key (wrong key, or tampered with)")]
    Open,
}

/// The pair's record key.
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer { key: <secret> }")
    }
}

impl Sealer {
    /// The key in `path`: 64 hex digits, surrounding whitespace ignored.
    ///
    /// # Errors
    /// The file cannot be read or does not hold a 32-byte hex key.
    pub fn from_key_file(path: &Path) -> Result<Self, SealError> {
        let text = std::fs::read_to_string(path).map_err(|source| SealError::KeyFile {
            path: path.display().to_string(),
            source,
        })?;
        let mut key = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut key)
            .map_err(|_| SealError::KeyFormat(path.display().to_string()))?;
        let s = Self::new(&key);
        key.fill(0);
        Ok(s)
    }

    /// A sealer over `key`.
    #[must_use]
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)),
        }
    }

    /// `plain` sealed for the Redis key `aad`.
    ///
    /// # Errors
    /// The OS random source failed.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE];
        getrandom::fill(&mut nonce).map_err(|e| SealError::Random(e.to_string()))?;
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
            .map_err(|_| SealError::Open)?;
        let mut out = Vec::with_capacity(NONCE + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens what [`Self::seal`] made for `aad`.
    ///
    /// # Errors
    /// Too short, another key, another `aad`, or altered.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE {
            return Err(SealError::Open);
        }
        let (nonce, ct) = sealed.split_at(NONCE);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_refusals() {
        let s = Sealer::new(&[7; 32]);
        let a = s.seal(b"k1", b"SRTP key material").unwrap();
        let b = s.seal(b"k1", b"SRTP key material").unwrap();
        assert_ne!(a, b, "fresh nonce per record");
        assert!(!a.windows(4).any(|w| w == b"SRTP"), "no plaintext");
        assert_eq!(s.open(b"k1", &a).unwrap(), b"SRTP key material");
        assert!(
            matches!(s.open(b"k2", &a), Err(SealError::Open)),
            "bound to its key"
        );
        let mut t = a.clone();
        *t.last_mut().unwrap() ^= 1;
        assert!(matches!(s.open(b"k1", &t), Err(SealError::Open)));
        assert!(matches!(
            Sealer::new(&[8; 32]).open(b"k1", &a),
            Err(SealError::Open)
        ));
        assert!(format!("{s:?}").contains("<secret>"));
    }

    #[test]
    fn key_file_format() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ha.key");
        std::fs::write(&p, format!("{}\n", "ab".repeat(32))).unwrap();
        assert!(Sealer::from_key_file(&p).is_ok());
        std::fs::write(&p, "abcd\n").unwrap();
        let e = Sealer::from_key_file(&p).unwrap_err().to_string();
        assert!(e.contains("64 hex digits"), "{e}");
        assert!(!e.contains("abcd"), "key material never in messages: {e}");
        let e = Sealer::from_key_file(&dir.path().join("none")).unwrap_err();
        assert!(matches!(e, SealError::KeyFile { .. }));
    }
}

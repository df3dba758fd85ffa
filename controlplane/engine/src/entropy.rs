//! Where the engine's randomness comes from: an injected [`Entropy`] source,
//! like time, so the engine never reads the operating system and a simulation
//! replays exactly.
//!
//! Two kinds of draws, kept apart so one can never reveal the other:
//!
//! - **secrets** ([`Entropy::fill_secret`]): SRTP master keys and salts, ICE
//!   ufrag/pwd, the digest nonce secret. The appliance draws them from the
//!   operating system's CSPRNG (`getrandom`) per use; nothing on the wire is an
//!   input to them.
//! - **identifiers** ([`Entropy::fill_id`]): branches, tags, Call-IDs, nonce
//!   salts, cnonces. They go on the wire, so they come from a CSPRNG (a ChaCha
//!   stream seeded from the OS in the appliance): no output lets anyone compute
//!   another, or any secret.
//!
//! [`SeededEntropy`] is the deterministic source of the simulator, tests and
//! benches (two independent ChaCha12 streams from one `u64` seed). It must not
//! be used in production: anyone who learns the seed learns every key.

use std::fmt;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::media::{SrtpKeyMaterial, SrtpSuite};

/// An injected source of randomness (see the module docs).
pub trait Entropy: fmt::Debug + Send {
    /// Fills `dest` with secret bytes (keys, salts, ICE credentials, nonce
    /// secrets): in production straight from the OS CSPRNG.
    fn fill_secret(&mut self, dest: &mut [u8]);

    /// Fills `dest` with bytes for a wire identifier (branch, tag, Call-ID):
    /// from a CSPRNG, independent of the secrets.
    fn fill_id(&mut self, dest: &mut [u8]);
}

impl<E: Entropy + ?Sized> Entropy for Box<E> {
    fn fill_secret(&mut self, dest: &mut [u8]) {
        (**self).fill_secret(dest);
    }

    fn fill_id(&mut self, dest: &mut [u8]) {
        (**self).fill_id(dest);
    }
}

/// 64 identifier bits.
pub fn id_u64(e: &mut (impl Entropy + ?Sized)) -> u64 {
    let mut b = [0u8; 8];
    e.fill_id(&mut b);
    u64::from_le_bytes(b)
}

/// `N` secret bytes.
pub fn secret<const N: usize>(e: &mut (impl Entropy + ?Sized)) -> [u8; N] {
    let mut b = [0u8; N];
    e.fill_secret(&mut b);
    b
}

/// A fresh SDES master key and salt (`AES_CM_128_HMAC_SHA1_80`: 16 + 14 bytes,
/// RFC 4568 §6.1), secret bytes drawn for this key alone.
pub fn srtp_key(e: &mut (impl Entropy + ?Sized)) -> SrtpKeyMaterial {
    SrtpKeyMaterial {
        suite: SrtpSuite::Aes128Sha1_80,
        key: secret(e),
        salt: secret(e),
    }
}

/// ICE-lite credentials from secret bytes (RFC 8445 §5.3: ufrag at least 24
/// bits, pwd at least 128 bits of randomness): a 64-bit ufrag and a 128-bit
/// pwd, lower-case hex (ice-char).
pub fn ice_credentials(e: &mut (impl Entropy + ?Sized)) -> (String, String) {
    let ufrag: [u8; 8] = secret(e);
    let pwd: [u8; 16] = secret(e);
    (hex::encode(ufrag), hex::encode(pwd))
}

/// Deterministic [`Entropy`] for simulations, tests and benches: two ChaCha12
/// streams (secrets, identifiers) seeded from one `u64`. The same seed gives
/// the same run; never use it in production.
pub struct SeededEntropy {
    secrets: StdRng,
    ids: StdRng,
}

impl SeededEntropy {
    /// The source for `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        let mut root = StdRng::seed_from_u64(seed);
        Self {
            secrets: StdRng::from_rng(&mut root),
            ids: StdRng::from_rng(&mut root),
        }
    }
}

impl fmt::Debug for SeededEntropy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeededEntropy").finish_non_exhaustive()
    }
}

impl Entropy for SeededEntropy {
    fn fill_secret(&mut self, dest: &mut [u8]) {
        self.secrets.fill_bytes(dest);
    }

    fn fill_id(&mut self, dest: &mut [u8]) {
        self.ids.fill_bytes(dest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_is_deterministic_and_streams_differ() {
        let mut a = SeededEntropy::new(7);
        let mut b = SeededEntropy::new(7);
        assert_eq!(srtp_key(&mut a), srtp_key(&mut b));
        assert_eq!(id_u64(&mut a), id_u64(&mut b));
        let mut c = SeededEntropy::new(8);
        assert_ne!(id_u64(&mut a), id_u64(&mut c));
        // The identifier stream never repeats the secret stream.
        let mut d = SeededEntropy::new(9);
        let s: [u8; 32] = secret(&mut d);
        let mut i = [0u8; 32];
        SeededEntropy::new(9).fill_id(&mut i);
        assert_ne!(s, i);
    }

    #[test]
    fn ice_credentials_have_the_rfc_lengths() {
        let (u, p) = ice_credentials(&mut SeededEntropy::new(1));
        assert_eq!(u.len(), 16);
        assert_eq!(p.len(), 32);
        assert!(u.chars().chain(p.chars()).all(|c| c.is_ascii_hexdigit()));
    }
}

//! The appliance's randomness: the operating system's CSPRNG, injected into the
//! sans-IO engine as its [`Entropy`] source.
//!
//! - Secrets (SDES master keys and salts, ICE-lite credentials, the digest nonce
//!   secret, admin tokens) come straight from `getrandom`, drawn per use: no
//!   generator state in this process determines a future key.
//! - Wire identifiers (branches, tags, Call-IDs, nonce salts) come from rand's
//!   ChaCha12 `StdRng`, seeded from the OS and re-seeded from it every
//!   [`ID_RESEED_DRAWS`] draws: an observer of identifiers learns nothing about
//!   other identifiers, and nothing about any secret.

use portcullis_engine::entropy::Entropy;
use rand::rngs::{StdRng, SysRng};
use rand::{Rng, SeedableRng};

/// Identifier draws between two re-seeds of the identifier stream from the OS.
pub const ID_RESEED_DRAWS: u32 = 65_536;

/// Why the OS CSPRNG cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct EntropyError(getrandom::Error);

/// The OS CSPRNG as an engine [`Entropy`] source (see the module docs).
pub struct OsEntropy {
    ids: StdRng,
    id_draws: u32,
    /// Used only if `getrandom` fails after start-up: a second OS-seeded stream,
    /// never used for identifiers.
    secret_fallback: StdRng,
}

impl std::fmt::Debug for OsEntropy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OsEntropy").finish_non_exhaustive()
    }
}

impl OsEntropy {
    /// A source seeded from the OS.
    ///
    /// # Errors
    /// The OS CSPRNG is unavailable (the appliance refuses to start without it).
    pub fn new() -> Result<Self, EntropyError> {
        Ok(Self {
            ids: os_seeded()?,
            id_draws: 0,
            secret_fallback: os_seeded()?,
        })
    }
}

fn os_seeded() -> Result<StdRng, EntropyError> {
    StdRng::try_from_rng(&mut SysRng).map_err(EntropyError)
}

impl Entropy for OsEntropy {
    fn fill_secret(&mut self, dest: &mut [u8]) {
        if let Err(e) = getrandom::fill(dest) {
            tracing::error!(error = %e, "getrandom failed; secret drawn from the OS-seeded fallback stream");
            self.secret_fallback.fill_bytes(dest);
        }
    }

    fn fill_id(&mut self, dest: &mut [u8]) {
        self.id_draws += 1;
        if self.id_draws >= ID_RESEED_DRAWS {
            self.id_draws = 0;
            // On failure the current stream goes on; it stays a CSPRNG.
            if let Ok(fresh) = os_seeded() {
                self.ids = fresh;
            }
        }
        self.ids.fill_bytes(dest);
    }
}

/// A fresh admin bearer token: 32 bytes from the OS CSPRNG, 64 lower-case hex
/// characters (the `[admin] token` rules: at least 16 printable characters).
///
/// # Errors
/// The OS CSPRNG is unavailable.
pub fn admin_token() -> Result<String, EntropyError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(EntropyError)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use portcullis_engine::entropy::{id_u64, secret};

    use super::*;

    #[test]
    fn draws_do_not_repeat_across_reseeds() {
        let mut e = OsEntropy::new().unwrap();
        let mut seen = HashSet::new();
        for _ in 0..(2 * ID_RESEED_DRAWS + 10) {
            assert!(seen.insert(id_u64(&mut e)), "identifier repeated");
        }
        let mut keys = HashSet::new();
        for _ in 0..1_000 {
            assert!(keys.insert(secret::<16>(&mut e)), "secret repeated");
        }
    }

    #[test]
    fn two_sources_are_independent() {
        let mut a = OsEntropy::new().unwrap();
        let mut b = OsEntropy::new().unwrap();
        assert_ne!(secret::<32>(&mut a), secret::<32>(&mut b));
        assert_ne!(id_u64(&mut a), id_u64(&mut b));
    }

    #[test]
    fn admin_tokens_are_fresh_and_valid() {
        let t = admin_token().unwrap();
        assert_eq!(t.len(), 64);
        assert!(t.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(t, admin_token().unwrap());
    }
}

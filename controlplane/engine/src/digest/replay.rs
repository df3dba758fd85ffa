//! The digest replay guard (RFC 7616 §3.4 and §5.3: the nonce count).
//!
//! Nonces are issued statelessly; only nonces that carried valid credentials are
//! remembered, so a flood of unauthenticated requests grows nothing here.

use std::collections::{HashMap, VecDeque};

use super::{DigestError, Verified};
use crate::time::Timestamp;

/// Default bound of a [`NonceCountGuard`]: 65,536 nonces (about 4 MiB: a map
/// entry and a queue slot of some 60 bytes each).
pub const NONCE_GUARD_CAPACITY: usize = 65_536;

/// Refuses replayed digest credentials: per nonce, each `nc` must exceed the last
/// accepted one, and a nonce used without `qop` (no `nc`) is accepted once.
///
/// Bounded: at most `capacity` nonces are remembered. Expired nonces are dropped
/// first (they are answered `stale` anyway); when the table is still full the
/// oldest-remembered one is evicted and `evicted_up_to` rises to its issue time,
/// and from then on a nonce issued at or before that time that is not remembered
/// is refused as [`DigestError::Stale`] (the client re-authenticates with a fresh
/// nonce). Invariant: every nonce ever accepted is either remembered, expired, or
/// issued at or before `evicted_up_to`; none can be accepted twice with the same
/// count.
#[derive(Debug)]
pub struct NonceCountGuard {
    capacity: usize,
    /// Nonce id (salt) → (last accepted count, expiry).
    last: HashMap<u64, (u32, Timestamp)>,
    /// Remembered nonces in insertion order, with their issue time.
    order: VecDeque<(u64, Timestamp)>,
    /// Highest issue time among evicted nonces.
    evicted_up_to: Option<Timestamp>,
}

impl NonceCountGuard {
    /// A guard remembering at most `capacity` nonces (at least 1).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            last: HashMap::new(),
            order: VecDeque::new(),
            evicted_up_to: None,
        }
    }

    /// Accepts the credentials `v` (already verified) at `now` and records their
    /// count: `Err(Replay)` when the count does not exceed the last one accepted for
    /// the nonce (or the nonce was used without `qop`), `Err(Stale)` when the nonce
    /// was forgotten to keep the bound or has expired.
    pub fn accept(&mut self, now: Timestamp, v: &Verified) -> Result<(), DigestError> {
        if v.expires_at < now {
            return Err(DigestError::Stale);
        }
        // Without qop there is no count: the nonce is spent by this one use.
        let nc = v.nc.unwrap_or(u32::MAX);
        if let Some((last, _)) = self.last.get_mut(&v.nonce_id) {
            if v.nc.is_none() || nc <= *last {
                return Err(DigestError::Replay);
            }
            *last = nc;
            return Ok(());
        }
        if self.evicted_up_to.is_some_and(|t| v.issued_at <= t) {
            return Err(DigestError::Stale);
        }
        self.prune(now);
        while self.last.len() >= self.capacity {
            let Some((id, issued)) = self.order.pop_front() else {
                break;
            };
            if self.last.remove(&id).is_some() {
                self.evicted_up_to = Some(self.evicted_up_to.map_or(issued, |t| t.max(issued)));
            }
        }
        self.order.push_back((v.nonce_id, v.issued_at));
        self.last.insert(v.nonce_id, (nc, v.expires_at));
        Ok(())
    }

    /// Forgets the expired nonces at the front of the queue.
    fn prune(&mut self, now: Timestamp) {
        while let Some(&(id, _)) = self.order.front() {
            match self.last.get(&id) {
                Some(&(_, expires)) if expires >= now => return,
                _ => {
                    self.order.pop_front();
                    self.last.remove(&id);
                }
            }
        }
    }

    /// Nonces currently remembered (never more than the capacity).
    #[must_use]
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether nothing is remembered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }

    /// The most nonces remembered at once.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::digest::Algorithm;

    fn v(id: u64, issued_ms: u64, nc: Option<u32>) -> Verified {
        let issued_at = Timestamp::from_millis(issued_ms);
        Verified {
            algorithm: Algorithm::Sha256,
            nc,
            issued_at,
            nonce_id: id,
            expires_at: issued_at + Duration::from_secs(30),
        }
    }

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn counts_strictly_increase_per_nonce() {
        let mut g = NonceCountGuard::new(8);
        assert_eq!(g.accept(t(1), &v(1, 0, Some(1))), Ok(()));
        assert_eq!(g.accept(t(2), &v(1, 0, Some(1))), Err(DigestError::Replay));
        assert_eq!(g.accept(t(3), &v(1, 0, Some(3))), Ok(()));
        assert_eq!(g.accept(t(4), &v(1, 0, Some(2))), Err(DigestError::Replay));
        assert_eq!(g.accept(t(5), &v(2, 0, Some(1))), Ok(()), "another nonce");
    }

    #[test]
    fn a_nonce_without_qop_is_single_use() {
        let mut g = NonceCountGuard::new(8);
        assert_eq!(g.accept(t(1), &v(1, 0, None)), Ok(()));
        assert_eq!(g.accept(t(2), &v(1, 0, None)), Err(DigestError::Replay));
        assert_eq!(
            g.accept(t(2), &v(1, 0, Some(u32::MAX))),
            Err(DigestError::Replay)
        );
    }

    #[test]
    fn expired_nonces_are_stale_and_pruned() {
        let mut g = NonceCountGuard::new(8);
        assert_eq!(g.accept(t(1), &v(1, 0, Some(1))), Ok(()));
        assert_eq!(
            g.accept(t(31_000), &v(1, 0, Some(2))),
            Err(DigestError::Stale)
        );
        assert_eq!(g.accept(t(31_000), &v(2, 30_000, Some(1))), Ok(()));
        assert_eq!(g.len(), 1, "the expired nonce was forgotten");
    }

    #[test]
    fn the_table_is_bounded_and_an_evicted_nonce_never_replays() {
        let mut g = NonceCountGuard::new(4);
        for id in 0..1_000u64 {
            assert_eq!(g.accept(t(id), &v(id, id, Some(1))), Ok(()));
            assert!(g.len() <= 4);
            assert!(g.order.len() <= 4);
        }
        // Nonce 0 was evicted: its replay is refused (stale), not accepted.
        assert_eq!(
            g.accept(t(1_000), &v(0, 0, Some(1))),
            Err(DigestError::Stale)
        );
        // Remembered ones still refuse a repeated count.
        assert_eq!(
            g.accept(t(1_000), &v(999, 999, Some(1))),
            Err(DigestError::Replay)
        );
        // A nonce issued after the evictions is accepted.
        assert_eq!(g.accept(t(1_001), &v(5_000, 1_001, Some(1))), Ok(()));
    }
}

//! Targets made unavailable by `503` + `Retry-After` (RFC 3261 §21.5.4,
//! §20.33): the B2BUA records them here and skips them until the time passes.

use std::collections::HashMap;
use std::time::Duration;

use crate::config::TrunkId;
use crate::time::Timestamp;

use super::RouteTarget;

/// Per-trunk "unavailable until" times.
///
/// Invariant: an entry is only meaningful while `until > now`; expired
/// entries are ignored and removed by [`RetryAfterTracker::purge`].
#[derive(Debug, Default, Clone)]
pub struct RetryAfterTracker {
    until: HashMap<TrunkId, Timestamp>,
    /// Upper bound on a peer-supplied Retry-After (a hostile or broken peer
    /// must not disable a trunk for days).
    max_retry_after: Duration,
}

impl RetryAfterTracker {
    /// A tracker capping Retry-After at `max_retry_after` (e.g. 1 h).
    #[must_use]
    pub fn new(max_retry_after: Duration) -> Self {
        Self {
            until: HashMap::new(),
            max_retry_after,
        }
    }

    /// `trunk` answered `503` with `Retry-After: retry_after` at `now`.
    /// A later deadline extends, an earlier one does not shorten.
    pub fn mark_unavailable(&mut self, now: Timestamp, trunk: TrunkId, retry_after: Duration) {
        let until = now + retry_after.min(self.max_retry_after);
        let e = self.until.entry(trunk).or_insert(until);
        if until > *e {
            *e = until;
        }
    }

    /// Whether `trunk` may be tried at `now`.
    #[must_use]
    pub fn is_available(&self, now: Timestamp, trunk: TrunkId) -> bool {
        self.until.get(&trunk).is_none_or(|u| *u <= now)
    }

    /// When `trunk` becomes available again (`None`: it is).
    #[must_use]
    pub fn unavailable_until(&self, now: Timestamp, trunk: TrunkId) -> Option<Timestamp> {
        self.until.get(&trunk).copied().filter(|u| *u > now)
    }

    /// The targets that may be tried at `now`, order kept. May be empty:
    /// the caller then answers `503` (with Retry-After = the earliest
    /// [`RetryAfterTracker::unavailable_until`]).
    #[must_use]
    pub fn filter(&self, now: Timestamp, targets: &[RouteTarget]) -> Vec<RouteTarget> {
        targets
            .iter()
            .filter(|t| self.is_available(now, t.trunk))
            .cloned()
            .collect()
    }

    /// Forgets expired entries.
    pub fn purge(&mut self, now: Timestamp) {
        self.until.retain(|_, u| *u > now);
    }

    /// Entries (including expired ones not yet purged).
    #[must_use]
    pub fn len(&self) -> usize {
        self.until.len()
    }

    /// Whether no entry is stored.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }
}

//! Targets made unavailable by `503` + `Retry-After` (RFC 3261 §21.5.4,
//! §20.33): the B2BUA records them here and skips them until the time passes.

use std::collections::HashMap;
use std::time::Duration;

use crate::time::Timestamp;

/// Per-trunk "unavailable until" times, keyed by trunk *name* (they outlive a reload
/// that renumbers the trunks).
///
/// Invariant: an entry is only meaningful while `until > now`; expired
/// entries are ignored and removed by [`RetryAfterTracker::purge`].
#[derive(Debug, Default, Clone)]
pub struct RetryAfterTracker {
    until: HashMap<String, Timestamp>,
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
    pub fn mark_unavailable(&mut self, now: Timestamp, trunk: &str, retry_after: Duration) {
        let until = now + retry_after.min(self.max_retry_after);
        match self.until.get_mut(trunk) {
            Some(e) => *e = (*e).max(until),
            None => {
                // Expired entries go when a new trunk is added: the table stays as
                // small as the trunks currently out.
                self.purge(now);
                self.until.insert(trunk.to_owned(), until);
            }
        }
    }

    /// Whether `trunk` may be tried at `now`.
    #[must_use]
    pub fn is_available(&self, now: Timestamp, trunk: &str) -> bool {
        self.until.get(trunk).is_none_or(|u| *u <= now)
    }

    /// When `trunk` becomes available again (`None`: it is).
    #[must_use]
    pub fn unavailable_until(&self, now: Timestamp, trunk: &str) -> Option<Timestamp> {
        self.until.get(trunk).copied().filter(|u| *u > now)
    }

    /// Trunks held off at `now`, with the time each becomes available again.
    pub fn held_off(&self, now: Timestamp) -> impl Iterator<Item = (&str, Timestamp)> + '_ {
        self.until
            .iter()
            .filter(move |(_, u)| **u > now)
            .map(|(t, u)| (t.as_str(), *u))
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

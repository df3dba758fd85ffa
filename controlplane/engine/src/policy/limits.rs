//! Per-trunk concurrent call limits (`max_calls`).

use std::collections::HashMap;

use crate::config::TrunkConfig;

/// Counts calls in progress per trunk against its limit, keyed by trunk *name*: a call
/// keeps the configuration it started with, so its slot is given back under the same
/// name whatever a reload renumbered since; the limit applied is the one of the
/// configuration handed to [`TrunkLimits::try_acquire`] (the call's).
///
/// Invariant: every successful [`TrunkLimits::try_acquire`] is paired with one
/// [`TrunkLimits::release`] when the call (leg) ends.
#[derive(Debug, Clone, Default)]
pub struct TrunkLimits {
    active: HashMap<String, u32>,
    rejected: HashMap<String, u64>,
}

impl TrunkLimits {
    /// No call in progress.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one call slot on `trunk`; `false` (and counted) when the trunk is at its
    /// `max_calls`.
    pub fn try_acquire(&mut self, trunk: &TrunkConfig) -> bool {
        let active = self.active.entry(trunk.name.clone()).or_insert(0);
        if trunk.max_calls.is_some_and(|max| *active >= max) {
            *self.rejected.entry(trunk.name.clone()).or_insert(0) += 1;
            return false;
        }
        *active += 1;
        true
    }

    /// Returns one slot of the trunk named `trunk` (saturating: a double release
    /// cannot underflow).
    pub fn release(&mut self, trunk: &str) {
        if let Some(a) = self.active.get_mut(trunk) {
            *a = a.saturating_sub(1);
        }
    }

    /// Calls in progress on the trunk named `trunk`.
    #[must_use]
    pub fn active(&self, trunk: &str) -> u32 {
        self.active.get(trunk).copied().unwrap_or(0)
    }

    /// Calls refused on the trunk named `trunk` because of its limit.
    #[must_use]
    pub fn rejected(&self, trunk: &str) -> u64 {
        self.rejected.get(trunk).copied().unwrap_or(0)
    }
}

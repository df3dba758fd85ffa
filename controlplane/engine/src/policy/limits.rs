//! Per-trunk concurrent call limits (`max_calls`).

use crate::config::{EngineConfig, TrunkId};

/// Counts calls in progress per trunk against its limit.
///
/// Invariant: `active[t] <= limit[t]` for limited trunks; every successful
/// [`TrunkLimits::try_acquire`] must be paired with one
/// [`TrunkLimits::release`] when the call (leg) ends.
#[derive(Debug, Clone, Default)]
pub struct TrunkLimits {
    limits: Vec<Option<u32>>,
    active: Vec<u32>,
    rejected: Vec<u64>,
}

impl TrunkLimits {
    /// Limits from the engine config (`TrunkConfig::max_calls`).
    #[must_use]
    pub fn new(cfg: &EngineConfig) -> Self {
        Self::from_limits(cfg.trunks.iter().map(|t| t.max_calls).collect())
    }

    /// Limits indexed by [`TrunkId`] (`None` = unlimited).
    #[must_use]
    pub fn from_limits(limits: Vec<Option<u32>>) -> Self {
        let n = limits.len();
        Self {
            limits,
            active: vec![0; n],
            rejected: vec![0; n],
        }
    }

    /// Takes one call slot on `trunk`; `false` (and counted) when the trunk
    /// is at its limit or unknown.
    pub fn try_acquire(&mut self, trunk: TrunkId) -> bool {
        let (Some(limit), Some(active)) = (self.limits.get(trunk.0), self.active.get_mut(trunk.0))
        else {
            return false;
        };
        if limit.is_some_and(|l| *active >= l) {
            if let Some(r) = self.rejected.get_mut(trunk.0) {
                *r += 1;
            }
            return false;
        }
        *active += 1;
        true
    }

    /// Returns one slot (saturating: a double release cannot underflow).
    pub fn release(&mut self, trunk: TrunkId) {
        if let Some(a) = self.active.get_mut(trunk.0) {
            *a = a.saturating_sub(1);
        }
    }

    /// Calls in progress on `trunk`.
    #[must_use]
    pub fn active(&self, trunk: TrunkId) -> u32 {
        self.active.get(trunk.0).copied().unwrap_or(0)
    }

    /// Calls refused on `trunk` because of its limit.
    #[must_use]
    pub fn rejected(&self, trunk: TrunkId) -> u64 {
        self.rejected.get(trunk.0).copied().unwrap_or(0)
    }

    /// Applies a reloaded config: new limits by trunk *name*; calls in
    /// progress keep their slot under the same name (a trunk that
    /// disappeared loses its count, its calls release nothing harmful).
    pub fn reconfigure(&mut self, old: &EngineConfig, new: &EngineConfig) {
        let mut next = Self::new(new);
        for (i, t) in old.trunks.iter().enumerate() {
            if let Some(j) = new.trunks.iter().position(|n| n.name == t.name) {
                if let (Some(a), Some(slot)) = (self.active.get(i), next.active.get_mut(j)) {
                    *slot = *a;
                }
            }
        }
        *self = next;
    }
}

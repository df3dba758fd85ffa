//! Admission policy for inbound requests (sans-IO): unknown sources, per-source
//! rate limit with temporary bans, and per-trunk concurrent call limits.
//!
//! Order of [`Policy::check_request`] (ARCHITECTURE "Life of a call", step 4):
//! 1. a source banned earlier → `RateLimited` (the B2BUA drops it silently);
//! 2. the per-source token bucket ([`RateLimitSettings`]; known trunks are
//!    exempt by default, `exempt_trunks`) → over the rate: ban for `ban`,
//!    `RateLimited { new_ban: true }`;
//! 3. a source no trunk claims (the [`crate::routing::Router`] classified it
//!    by the trunk ACLs, [`crate::config::IpNet`]) → `Reject403` or `Drop`;
//! 4. otherwise `Allow`.
//!
//! Digest challenges (trunks with inbound credentials) are the B2BUA's next
//! step, with [`crate::digest::DigestServer`].

mod limits;
mod rate;

use std::net::IpAddr;

use crate::config::{PolicyConfig, TrunkId, UnknownSource};
use crate::time::Timestamp;

pub use limits::TrunkLimits;
pub use rate::RateLimitSettings;

use rate::{RateOutcome, RateTable};

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyVerdict {
    /// Process it.
    Allow,
    /// Answer `403 Forbidden` (unknown source).
    Reject403,
    /// Drop silently (unknown source, `UnknownSource::Drop`).
    Drop,
    /// Over the rate or banned: drop silently. `new_ban` is set on the
    /// request that started the ban (the B2BUA reports `PolicyBan` once).
    RateLimited {
        /// End of the ban.
        until: Timestamp,
        /// Whether this request started the ban.
        new_ban: bool,
    },
}

/// Policy counters (monotonic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyStats {
    /// Requests allowed.
    pub allowed: u64,
    /// Unknown-source requests answered 403.
    pub rejected_unknown: u64,
    /// Unknown-source requests dropped.
    pub dropped_unknown: u64,
    /// Requests refused by the rate limit or a ban.
    pub rate_limited: u64,
    /// Bans started.
    pub bans: u64,
    /// Rate-table entries evicted to respect its bound.
    pub evictions: u64,
}

/// Per-source admission state for one appliance.
#[derive(Debug, Clone)]
pub struct Policy {
    unknown: UnknownSource,
    rate: Option<RateTable>,
    stats: PolicyStats,
    last_now: Timestamp,
}

impl Policy {
    /// Policy from the engine config: `rate_limit_per_source` requests/s
    /// (burst twice that, 64k sources tracked) for sources no trunk claims,
    /// bans of `ban_duration` ([`RateLimitSettings::new`]).
    #[must_use]
    pub fn new(cfg: &PolicyConfig) -> Self {
        Self::with_settings(
            cfg.unknown_source,
            cfg.rate_limit_per_source
                .map(|r| RateLimitSettings::new(r, cfg.ban_duration)),
        )
    }

    /// Policy with explicit rate settings (`None`: no rate limit).
    #[must_use]
    pub fn with_settings(unknown: UnknownSource, rate: Option<RateLimitSettings>) -> Self {
        Self {
            unknown,
            rate: rate.map(RateTable::new),
            stats: PolicyStats::default(),
            last_now: Timestamp::ZERO,
        }
    }

    /// Applies a reloaded config. Bans and buckets survive when the table
    /// capacity and IPv6 grouping are unchanged; otherwise the table starts
    /// empty (bans are lost). Counters are kept.
    pub fn set_config(&mut self, cfg: &PolicyConfig) {
        self.unknown = cfg.unknown_source;
        let wanted = cfg
            .rate_limit_per_source
            .map(|r| RateLimitSettings::new(r, cfg.ban_duration));
        self.set_rate_settings(wanted);
    }

    /// Replaces the rate settings (see [`Policy::set_config`]).
    pub fn set_rate_settings(&mut self, wanted: Option<RateLimitSettings>) {
        let Some(s) = wanted else {
            self.rate = None;
            return;
        };
        let updated = self.rate.as_mut().is_some_and(|table| table.update(s));
        if !updated {
            self.rate = Some(RateTable::new(s));
        }
    }

    /// Verifies the rate table's internal links (for property tests).
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        self.rate
            .as_ref()
            .map_or(Ok(()), RateTable::check_invariants)
    }

    /// Decides about one request from `src`, classified as `trunk`
    /// (`None`: no trunk claims the source). See the module docs for the order.
    pub fn check_request(
        &mut self,
        now: Timestamp,
        src: IpAddr,
        trunk: Option<TrunkId>,
    ) -> PolicyVerdict {
        self.last_now = self.last_now.max(now);
        if let Some(table) = &mut self.rate {
            let exempt = trunk.is_some() && table.settings().exempt_trunks;
            let outcome = if exempt {
                // Still honour a ban started before the source became a trunk.
                match table.banned_until(now, src) {
                    Some(until) => RateOutcome::Limited {
                        until,
                        new_ban: false,
                    },
                    None => RateOutcome::Allow,
                }
            } else {
                table.check(now, src)
            };
            self.stats.evictions = table.evictions;
            if let RateOutcome::Limited { until, new_ban } = outcome {
                self.stats.rate_limited += 1;
                if new_ban {
                    self.stats.bans += 1;
                }
                return PolicyVerdict::RateLimited { until, new_ban };
            }
        }
        if trunk.is_none() {
            return match self.unknown {
                UnknownSource::Reject403 => {
                    self.stats.rejected_unknown += 1;
                    PolicyVerdict::Reject403
                }
                UnknownSource::Drop => {
                    self.stats.dropped_unknown += 1;
                    PolicyVerdict::Drop
                }
            };
        }
        self.stats.allowed += 1;
        PolicyVerdict::Allow
    }

    /// Sources banned as of the latest `now` seen.
    #[must_use]
    pub fn bans(&self) -> usize {
        self.rate
            .as_ref()
            .map_or(0, |t| t.active_bans(self.last_now))
    }

    /// When `src`'s ban ends, if it is banned at `now`.
    #[must_use]
    pub fn banned_until(&self, now: Timestamp, src: IpAddr) -> Option<Timestamp> {
        self.rate.as_ref().and_then(|t| t.banned_until(now, src))
    }

    /// Sources currently tracked by the rate limiter (≤ its capacity).
    #[must_use]
    pub fn tracked_sources(&self) -> usize {
        self.rate.as_ref().map_or(0, RateTable::len)
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> &PolicyStats {
        &self.stats
    }
}

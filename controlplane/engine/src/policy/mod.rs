//! Admission policy for inbound requests (sans-IO): unknown sources, per-source
//! rate limit with temporary bans, and per-trunk concurrent call limits.
//!
//! Order of [`Policy::check_request`] (ARCHITECTURE "Life of a call", step 4):
//! 1. a source banned earlier → `RateLimited` (the B2BUA drops it silently).
//!    Bans live in their own bounded table (`ban`), never evicted by new
//!    sources: when a level is full a new ban widens to the source's prefix
//!    (IPv4 `/24`, IPv6 `/48`, then wider). A source a trunk claims is only
//!    caught by a ban of its own address, never by a widened one;
//! 2. the per-source token buckets ([`RateLimitSettings`], in a bounded LRU
//!    table): the rate (known trunks are exempt by default, `exempt_trunks`)
//!    and, for a source no trunk claims, the unknown-source budget (20
//!    requests a minute by default, counted over a long window so a flooder
//!    is banned even when the kernel drops most of its burst) → either empty:
//!    ban for `ban`, `RateLimited { new_ban: true }`;
//! 3. a source no trunk claims (the [`crate::routing::Router`] classified it
//!    by the trunk ACLs, [`crate::config::IpNet`]) → `Reject403` or `Drop`;
//! 4. otherwise `Allow`.
//!
//! Digest challenges (trunks with inbound credentials) are the B2BUA's next
//! step, with [`crate::digest::DigestServer`].

mod ban;
mod limits;
mod rate;

use std::net::IpAddr;

use crate::config::{PolicyConfig, TrunkId, UnknownSource};
use crate::time::Timestamp;

pub use limits::TrunkLimits;
pub use rate::RateLimitSettings;

use ban::BanTable;
use rate::RateTable;

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
    /// Bans that went to a wider prefix because their level was full.
    pub widened_bans: u64,
}

/// Per-source admission state for one appliance.
#[derive(Debug, Clone)]
pub struct Policy {
    unknown: UnknownSource,
    rate: Option<RateTable>,
    bans: BanTable,
    stats: PolicyStats,
    last_now: Timestamp,
}

impl Policy {
    /// Policy from the engine config: `rate_limit_per_source` requests/s
    /// (burst twice that, 64k sources tracked) for sources no trunk claims,
    /// the unknown-source budget, bans of `ban_duration`
    /// ([`RateLimitSettings::new`]).
    #[must_use]
    pub fn new(cfg: &PolicyConfig) -> Self {
        Self::with_settings(cfg.unknown_source, Self::settings(cfg))
    }

    fn settings(cfg: &PolicyConfig) -> Option<RateLimitSettings> {
        cfg.rate_limit_per_source.map(|r| {
            let mut s = RateLimitSettings::new(r, cfg.ban_duration);
            s.unknown_budget = cfg.unknown_source_budget;
            s.unknown_window = cfg.unknown_source_window;
            s.max_bans = cfg.max_bans;
            s
        })
    }

    /// Policy with explicit rate settings (`None`: no rate limit, no bans).
    #[must_use]
    pub fn with_settings(unknown: UnknownSource, rate: Option<RateLimitSettings>) -> Self {
        let bans = rate.map_or_else(
            || BanTable::new(1, 64),
            |s| BanTable::new(s.max_bans, s.ipv6_prefix),
        );
        Self {
            unknown,
            rate: rate.map(RateTable::new),
            bans,
            stats: PolicyStats::default(),
            last_now: Timestamp::ZERO,
        }
    }

    /// Applies a reloaded config. Bans always survive (unless rate limiting is
    /// switched off); buckets survive when the rate table's capacity and IPv6
    /// grouping are unchanged. Counters are kept.
    pub fn set_config(&mut self, cfg: &PolicyConfig) {
        self.unknown = cfg.unknown_source;
        self.set_rate_settings(Self::settings(cfg));
    }

    /// Replaces the rate settings (see [`Policy::set_config`]).
    pub fn set_rate_settings(&mut self, wanted: Option<RateLimitSettings>) {
        let Some(s) = wanted else {
            self.rate = None;
            self.bans = BanTable::new(1, 64);
            return;
        };
        self.bans.reconfigure(s.max_bans, s.ipv6_prefix);
        let updated = self.rate.as_mut().is_some_and(|table| table.update(s));
        if !updated {
            self.rate = Some(RateTable::new(s));
        }
    }

    /// Verifies the rate and ban tables' internal links (for property tests).
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        self.bans.check_invariants()?;
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
            // A trunk's source is only caught by a ban of its own address.
            if let Some(until) = self.bans.banned_until(now, src, trunk.is_some()) {
                self.stats.rate_limited += 1;
                return PolicyVerdict::RateLimited {
                    until,
                    new_ban: false,
                };
            }
            let within = table.check(now, src, !exempt, trunk.is_none());
            self.stats.evictions = table.evictions;
            if !within {
                let until = now + table.settings().ban;
                table.forget(src);
                if self.bans.ban(now, src, until).1 {
                    self.stats.widened_bans += 1;
                }
                self.stats.rate_limited += 1;
                self.stats.bans += 1;
                return PolicyVerdict::RateLimited {
                    until,
                    new_ban: true,
                };
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

    /// Bans (hosts and widened prefixes) in force as of the latest `now` seen.
    #[must_use]
    pub fn bans(&self) -> usize {
        self.bans.active(self.last_now)
    }

    /// Ban entries held, ended ones not yet purged included (≤ the bound).
    #[must_use]
    pub fn ban_entries(&self) -> usize {
        self.bans.len()
    }

    /// When the ban covering `src` ends, if one is in force at `now` (hosts
    /// and widened prefixes alike).
    #[must_use]
    pub fn banned_until(&self, now: Timestamp, src: IpAddr) -> Option<Timestamp> {
        self.rate.as_ref()?;
        self.bans.banned_until(now, src, false)
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

//! The serde layer of trunk targets, their health and `[dns]` (see `raw`): several
//! targets per trunk, the strategy sharing calls between them, OPTIONS thresholds, the
//! DNS servers used to resolve trunk domains (RFC 3263).

use serde::Deserialize;

/// How a trunk's targets share new calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Ordered failover: the usable target of lowest (priority, position) takes every call.
    Priority,
    /// The lowest priority present shares calls by weight (RFC 2782).
    #[default]
    Weighted,
    /// The lowest priority present, fewest calls in progress first.
    LeastCalls,
}

/// One entry of `trunk.targets`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    /// `ip:port` of the target.
    pub address: String,
    /// Lower is preferred (default 0).
    #[serde(default)]
    pub priority: u16,
    /// Share among targets of equal priority (default 1).
    #[serde(default = "one")]
    pub weight: u16,
}

fn one() -> u16 {
    1
}

/// Default of `trunk.miss_threshold`.
pub fn default_trunk_miss_threshold() -> u32 {
    3
}

/// Default of `trunk.recovery_count`.
pub fn default_recovery_count() -> u32 {
    2
}

/// `[dns]`: the resolver of trunk domains.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    /// `ip:port` of DNS servers; empty = the system's (`/etc/resolv.conf`).
    #[serde(default)]
    pub servers: Vec<String>,
    /// Shortest time an answer is kept (a TTL below is raised to it).
    #[serde(default = "default_min_ttl")]
    pub min_ttl: String,
    /// Longest time an answer is kept (a TTL above is lowered to it).
    #[serde(default = "default_max_ttl")]
    pub max_ttl: String,
}

fn default_min_ttl() -> String {
    "10s".to_owned()
}
fn default_max_ttl() -> String {
    "1h".to_owned()
}

impl Default for RawDns {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            min_ttl: default_min_ttl(),
            max_ttl: default_max_ttl(),
        }
    }
}

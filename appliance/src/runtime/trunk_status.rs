//! Trunk targets as the admin API (`GET /api/v1/trunks`), `portcullis status` and the
//! metrics show them: one entry per target with its health, and how the trunk's
//! domain resolved.

use portcullis_engine::routing::{Resolution, TargetState, TargetTable};
use portcullis_engine::time::Timestamp;
use serde::{Deserialize, Serialize};

/// One target of a trunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetStatus {
    /// `ip:port`.
    pub address: String,
    /// Lower is preferred.
    pub priority: u16,
    /// Share among equal priorities.
    pub weight: u16,
    /// `up` or `down`.
    pub state: String,
    /// Whether new calls may use it now (up and not held off).
    pub usable: bool,
    /// Unanswered OPTIONS in a row.
    pub misses: u32,
    /// Seconds left of a `503 Retry-After` hold-off.
    pub held_off_s: Option<u64>,
    /// Status of its last answer to an OPTIONS.
    pub last_status: Option<u16>,
    /// Calls in progress on it.
    pub calls: u32,
    /// Call attempts sent to it.
    pub calls_total: u64,
    /// OPTIONS sent.
    pub options_sent: u64,
    /// OPTIONS answered.
    pub options_answered: u64,
    /// OPTIONS missed.
    pub options_missed: u64,
}

/// The targets of one trunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrunkTargetsStatus {
    /// Trunk name.
    pub trunk: String,
    /// `priority`, `weighted` or `least_calls`.
    pub strategy: String,
    /// Whether targets are pinged with OPTIONS.
    pub pinged: bool,
    /// The name resolved by DNS, if any.
    pub domain: Option<String>,
    /// `static`, `pending` (not resolved yet), `resolved` or `failed`.
    pub resolution: String,
    /// Why the last lookup failed, or why there is no target.
    pub error: Option<String>,
    /// Seconds until the answer is re-resolved.
    pub ttl_s: Option<u64>,
    /// Attempts that moved on from one of its targets.
    pub failovers: u64,
    /// Calls that found no usable target.
    pub unavailable: u64,
    /// Targets in configured or SRV order.
    pub targets: Vec<TargetStatus>,
}

impl TrunkTargetsStatus {
    /// Targets new calls may use now.
    pub fn usable(&self) -> usize {
        self.targets.iter().filter(|t| t.usable).count()
    }
}

/// Every trunk's targets at `now`.
pub fn snapshot(table: &TargetTable, now: Timestamp) -> Vec<TrunkTargetsStatus> {
    table
        .iter()
        .map(|(name, t)| {
            let (resolution, mut error, ttl_s) = match &t.resolution {
                Resolution::Static => ("static", None, None),
                Resolution::Pending => ("pending", Some("not resolved yet".to_owned()), None),
                Resolution::Resolved { expires } => (
                    "resolved",
                    None,
                    Some(expires.saturating_duration_since(now).as_secs()),
                ),
                Resolution::Failed { reason } => ("failed", Some(reason.clone()), None),
            };
            if error.is_none() && t.entries.is_empty() {
                error = Some("resolved to no address".to_owned());
            }
            TrunkTargetsStatus {
                trunk: name.to_owned(),
                strategy: t.strategy.as_str().to_owned(),
                pinged: t.policy.interval.is_some(),
                domain: t.domain.clone(),
                resolution: resolution.to_owned(),
                error,
                ttl_s,
                failovers: t.failovers,
                unavailable: t.unavailable,
                targets: t
                    .entries
                    .iter()
                    .map(|e| {
                        let c = e.probe.counters();
                        TargetStatus {
                            address: e.spec.addr.to_string(),
                            priority: e.spec.priority,
                            weight: e.spec.weight,
                            state: match e.probe.state() {
                                TargetState::Up => "up",
                                TargetState::Down => "down",
                            }
                            .to_owned(),
                            usable: e.probe.usable(now),
                            misses: e.probe.misses(),
                            held_off_s: e
                                .probe
                                .held_until(now)
                                .map(|u| u.saturating_duration_since(now).as_secs().max(1)),
                            last_status: e.probe.last_answer().1,
                            calls: e.calls,
                            calls_total: e.calls_total,
                            options_sent: c.pings_sent,
                            options_answered: c.answers,
                            options_missed: c.misses_total,
                        }
                    })
                    .collect(),
            }
        })
        .collect()
}

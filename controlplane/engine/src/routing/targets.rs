//! The targets of every trunk, their health and the choice of one for a new call.
//!
//! A trunk reaches one or more *targets* (`ip:port`): the configured ones, or
//! those its domain resolved to (RFC 3263: NAPTR → SRV → A/AAAA, done by the
//! appliance and pushed in with [`TargetTable::set_resolved`]; the engine never
//! waits on DNS). Each target has its own [`Probe`] (OPTIONS health, `503`
//! hold-off) and its count of calls in progress.
//!
//! [`TargetTable::select`] picks a target for a new call among the *usable*
//! ones (`Up`, not held off, not already tried by this call), by the trunk's
//! [`Strategy`]:
//! - `priority`: the lowest (priority, position) takes every call (ordered failover);
//! - `weighted`: the lowest priority present shares the calls by weight
//!   (RFC 2782 §"Usage rules"), the draw taken from the engine's identifier stream;
//! - `least_calls`: the lowest priority present, fewest calls in progress first.
//!
//! None usable: the trunk is skipped and the route fails over, or the call gets
//! `503`. Invariants: targets are keyed by (trunk name, address), so a reload or
//! a new DNS answer keeps the health and call counts of the targets it keeps.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::health::{HealthPolicy, Probe, TargetState, Transition};
use crate::config::TrunkConfig;
use crate::time::Timestamp;

/// How a trunk's targets share new calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Ordered failover: the lowest (priority, position) usable target.
    Priority,
    /// The lowest priority present shares by weight (RFC 2782).
    #[default]
    Weighted,
    /// The lowest priority present, fewest calls in progress first.
    LeastCalls,
}

impl Strategy {
    /// The name as configured.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Priority => "priority",
            Self::Weighted => "weighted",
            Self::LeastCalls => "least_calls",
        }
    }
}

/// One target as configured or resolved (an SRV record's priority and weight).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetSpec {
    /// Where requests go.
    pub addr: SocketAddr,
    /// Lower is preferred.
    pub priority: u16,
    /// Share among targets of equal priority.
    pub weight: u16,
}

/// Where a trunk's targets come from, and how the last DNS answer went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Configured addresses.
    Static,
    /// A domain not resolved yet: no target.
    Pending,
    /// The last answer, valid until `expires` (the appliance re-resolves then).
    Resolved {
        /// End of the answer's TTL.
        expires: Timestamp,
    },
    /// The last lookup failed: the targets of the previous answer stay (none if
    /// there was none).
    Failed {
        /// What the resolver said.
        reason: String,
    },
}

/// A DNS answer (or failure) for a trunk's domain, pushed by the appliance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetUpdate {
    /// The targets the domain resolves to now (empty: resolved to nothing), until `expires`.
    Resolved {
        /// RFC 3263 targets in SRV order.
        targets: Vec<TargetSpec>,
        /// End of the smallest TTL of the answer.
        expires: Timestamp,
    },
    /// The lookup failed (timeout, SERVFAIL, NXDOMAIN…).
    Failed(String),
}

/// One target of a trunk at run time.
#[derive(Clone, Debug)]
pub struct TargetEntry {
    /// Address, priority, weight.
    pub spec: TargetSpec,
    /// Health.
    pub probe: Probe,
    /// Calls in progress bound to it (B legs).
    pub calls: u32,
    /// B-leg INVITEs sent to it.
    pub calls_total: u64,
}

/// The targets of one trunk.
#[derive(Clone, Debug)]
pub struct TrunkTargets {
    /// Strategy of the trunk.
    pub strategy: Strategy,
    /// Health policy of its targets.
    pub policy: HealthPolicy,
    /// The domain resolved for it (RFC 3263), if any.
    pub domain: Option<String>,
    /// How the targets were obtained.
    pub resolution: Resolution,
    /// Targets in configured or SRV order.
    pub entries: Vec<TargetEntry>,
    /// Attempts that moved on from one of its targets (408/5xx/timeout).
    pub failovers: u64,
    /// Calls that found no usable target on it.
    pub unavailable: u64,
}

/// The targets of every trunk, keyed by trunk name (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct TargetTable {
    trunks: BTreeMap<String, TrunkTargets>,
}

fn static_specs(t: &TrunkConfig) -> Vec<TargetSpec> {
    if t.targets.fixed.is_empty() {
        vec![TargetSpec {
            addr: t.address,
            priority: 0,
            weight: 1,
        }]
    } else {
        t.targets.fixed.clone()
    }
}

fn merge(old: &mut Vec<TargetEntry>, specs: &[TargetSpec], policy: &HealthPolicy, now: Timestamp) {
    let mut kept = Vec::with_capacity(specs.len());
    for s in specs {
        if kept.iter().any(|e: &TargetEntry| e.spec.addr == s.addr) {
            continue;
        }
        let entry = match old.iter().position(|e| e.spec.addr == s.addr) {
            Some(i) => {
                let mut e = old.swap_remove(i);
                e.spec = *s;
                e.probe.repolicy(policy, now);
                e
            }
            None => TargetEntry {
                spec: *s,
                probe: Probe::new(policy, now),
                calls: 0,
                calls_total: 0,
            },
        };
        kept.push(entry);
    }
    *old = kept;
}

impl TargetTable {
    /// Brings the table in line with `trunks` (a new configuration): new trunks
    /// appear, gone ones disappear, kept targets keep their health and counts. A
    /// trunk that keeps its domain keeps its resolved targets.
    pub fn sync(&mut self, trunks: &[TrunkConfig], now: Timestamp) {
        let mut next = BTreeMap::new();
        for t in trunks {
            let policy = t.targets.health;
            let mut tt = self.trunks.remove(&t.name).unwrap_or(TrunkTargets {
                strategy: t.targets.strategy,
                policy,
                domain: None,
                resolution: Resolution::Static,
                entries: Vec::new(),
                failovers: 0,
                unavailable: 0,
            });
            tt.strategy = t.targets.strategy;
            tt.policy = policy;
            match &t.targets.dns {
                Some(d) => {
                    if tt.domain.as_ref() != Some(d) {
                        tt.entries.clear();
                        tt.resolution = Resolution::Pending;
                    }
                    tt.domain = Some(d.clone());
                    let specs: Vec<TargetSpec> = tt.entries.iter().map(|e| e.spec).collect();
                    merge(&mut tt.entries, &specs, &policy, now);
                }
                None => {
                    tt.domain = None;
                    tt.resolution = Resolution::Static;
                    merge(&mut tt.entries, &static_specs(t), &policy, now);
                }
            }
            next.insert(t.name.clone(), tt);
        }
        self.trunks = next;
    }

    /// A DNS answer for trunk `name`'s domain. Ignored for an unknown or static trunk.
    /// Returns whether the trunk exists and resolves by DNS.
    pub fn set_resolved(&mut self, name: &str, update: TargetUpdate, now: Timestamp) -> bool {
        let Some(tt) = self.trunks.get_mut(name).filter(|t| t.domain.is_some()) else {
            return false;
        };
        match update {
            TargetUpdate::Resolved { targets, expires } => {
                let policy = tt.policy;
                merge(&mut tt.entries, &targets, &policy, now);
                tt.resolution = Resolution::Resolved { expires };
            }
            TargetUpdate::Failed(reason) => tt.resolution = Resolution::Failed { reason },
        }
        true
    }

    /// The targets of trunk `name`.
    #[must_use]
    pub fn trunk(&self, name: &str) -> Option<&TrunkTargets> {
        self.trunks.get(name)
    }

    /// Every trunk's targets, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &TrunkTargets)> + '_ {
        self.trunks.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// Mutable access to one target.
    pub fn entry_mut(&mut self, name: &str, addr: SocketAddr) -> Option<&mut TargetEntry> {
        self.trunks
            .get_mut(name)?
            .entries
            .iter_mut()
            .find(|e| e.spec.addr == addr)
    }

    /// The policy of trunk `name`'s targets.
    #[must_use]
    pub fn policy(&self, name: &str) -> Option<HealthPolicy> {
        self.trunks.get(name).map(|t| t.policy)
    }

    /// Mutable access to one trunk.
    pub fn trunk_mut(&mut self, name: &str) -> Option<&mut TrunkTargets> {
        self.trunks.get_mut(name)
    }

    /// The trunk (empty ACL only is the caller's business) one of whose targets is `addr`
    /// exactly, else whose target IP is `addr`'s.
    #[must_use]
    pub fn trunk_of(&self, addr: SocketAddr) -> Option<&str> {
        let ip = addr.ip().to_canonical();
        let find = |exact: bool| {
            self.trunks
                .iter()
                .find(|(_, t)| {
                    t.entries.iter().any(|e| {
                        if exact {
                            e.spec.addr == addr
                        } else {
                            e.spec.addr.ip().to_canonical() == ip
                        }
                    })
                })
                .map(|(n, _)| n.as_str())
        };
        find(true).or_else(|| find(false))
    }

    /// Picks a target of trunk `name` for a new call at `now`, skipping
    /// `exclude` (targets this call already tried); `draw` gives random bits for
    /// the weighted choice. `None`: no usable target.
    pub fn select(
        &mut self,
        name: &str,
        now: Timestamp,
        exclude: &[SocketAddr],
        draw: impl FnOnce() -> u64,
    ) -> Option<SocketAddr> {
        let tt = self.trunks.get_mut(name)?;
        let usable: Vec<usize> = tt
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.probe.usable(now) && !exclude.contains(&e.spec.addr))
            .map(|(i, _)| i)
            .collect();
        let Some(best) = usable.iter().map(|&i| tt.entries[i].spec.priority).min() else {
            tt.unavailable += 1;
            return None;
        };
        let group: Vec<usize> = usable
            .into_iter()
            .filter(|&i| tt.entries[i].spec.priority == best)
            .collect();
        let pick = match tt.strategy {
            Strategy::Priority => group.first().copied(),
            Strategy::LeastCalls => group.iter().copied().min_by_key(|&i| tt.entries[i].calls),
            Strategy::Weighted => {
                let total: u64 = group
                    .iter()
                    .map(|&i| u64::from(tt.entries[i].spec.weight))
                    .sum();
                if total == 0 {
                    let n = group.len() as u64;
                    group
                        .get(usize::try_from(draw() % n.max(1)).unwrap_or(0))
                        .copied()
                } else {
                    let mut r = draw() % total;
                    group.iter().copied().find(|&i| {
                        let w = u64::from(tt.entries[i].spec.weight);
                        if r < w {
                            true
                        } else {
                            r -= w;
                            false
                        }
                    })
                }
            }
        }?;
        Some(tt.entries[pick].spec.addr)
    }

    /// A B-leg INVITE went to target `addr` of trunk `name`.
    pub fn call_bound(&mut self, name: &str, addr: SocketAddr) {
        if let Some(e) = self.entry_mut(name, addr) {
            e.calls += 1;
            e.calls_total += 1;
        }
    }

    /// That B leg ended (failed, moved on or hung up).
    pub fn call_unbound(&mut self, name: &str, addr: SocketAddr) {
        if let Some(e) = self.entry_mut(name, addr) {
            e.calls = e.calls.saturating_sub(1);
        }
    }

    /// A `503` with `Retry-After` from target `addr` of trunk `name`.
    pub fn hold_off(
        &mut self,
        name: &str,
        addr: SocketAddr,
        now: Timestamp,
        retry_after: std::time::Duration,
    ) {
        if let Some(e) = self.entry_mut(name, addr) {
            e.probe.hold_off(now, retry_after);
        }
    }

    /// A call to target `addr` of trunk `name` timed out (see [`Probe::call_timed_out`]).
    pub fn call_timed_out(&mut self, name: &str, addr: SocketAddr) -> Option<Transition> {
        let policy = self.policy(name)?;
        self.entry_mut(name, addr)?.probe.call_timed_out(&policy)
    }

    /// Trunks with a target held off at `now`, with the latest end of their hold-offs.
    #[must_use]
    pub fn held_off(&self, now: Timestamp) -> Vec<(String, Timestamp)> {
        self.trunks
            .iter()
            .filter_map(|(n, t)| {
                t.entries
                    .iter()
                    .filter_map(|e| e.probe.held_until(now))
                    .max()
                    .map(|u| (n.clone(), u))
            })
            .collect()
    }

    /// Targets `Up` and not held off of trunk `name` at `now`.
    #[must_use]
    pub fn usable_count(&self, name: &str, now: Timestamp) -> usize {
        self.trunks.get(name).map_or(0, |t| {
            t.entries.iter().filter(|e| e.probe.usable(now)).count()
        })
    }

    /// Whether target `addr` of trunk `name` is `Up`.
    #[must_use]
    pub fn is_up(&self, name: &str, addr: SocketAddr) -> bool {
        self.trunks
            .get(name)
            .and_then(|t| t.entries.iter().find(|e| e.spec.addr == addr))
            .is_some_and(|e| e.probe.state() == TargetState::Up)
    }
}

//! Health of one peer address (a trunk target or a Teams proxy): the one state
//! machine both use, and its OPTIONS schedule.
//!
//! A [`Probe`] is `Up` or `Down` ([`TargetState`]) and pinged every `interval`
//! ([`HealthPolicy`]); the owner sends the ping (its own message form: a trunk
//! OPTIONS through the transaction layer, a Teams OPTIONS over the proxy's TLS
//! connection) and feeds back what happened:
//!
//! - a ping is a *miss* when no final answer arrives within the answer window
//!   (`answer_timeout`, capped at the interval) or the transport fails;
//!   `miss_threshold` misses in a row demote an `Up` target to `Down`;
//! - a final answer clears the misses; `recovery_count` answers in a row
//!   promote a `Down` target back to `Up` (RFC 3261 §11: any final response
//!   proves the peer alive, a `503` included);
//! - a `503` with `Retry-After` (to a ping or to a call, RFC 3261 §21.5.4)
//!   holds the target off until that time (capped) without demoting it;
//! - a real call that times out on the target ([`Probe::call_timed_out`])
//!   demotes it at once when it is pinged (the pings bring it back).
//!
//! Invariants: at most one ping outstanding; `misses` saturates at
//! `miss_threshold`; time comes only from the caller; a transition is
//! reported exactly once ([`Transition`]).

use std::time::Duration;

use crate::time::Timestamp;

/// The longest a `503` with `Retry-After` holds a target off: a hostile or
/// broken peer must not disable a target for days.
pub const MAX_HOLD_OFF: Duration = Duration::from_secs(3600);

/// How a target's health is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthPolicy {
    /// OPTIONS period; `None`: never pinged (only `503` hold-offs apply).
    pub interval: Option<Duration>,
    /// Unanswered pings in a row before `Up` → `Down` (≥ 1).
    pub miss_threshold: u32,
    /// Answered pings in a row before `Down` → `Up` (≥ 1).
    pub recovery_count: u32,
    /// How long a ping may stay unanswered (capped at the interval).
    pub answer_timeout: Duration,
}

impl HealthPolicy {
    /// Timer F (64 × T1 = 32 s) as answer timeout.
    pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(32);

    /// A policy pinging every `interval`, 3 misses to demote, `recovery_count` answers to
    /// promote.
    #[must_use]
    pub fn pinged(interval: Duration, miss_threshold: u32, recovery_count: u32) -> Self {
        Self {
            interval: Some(interval),
            miss_threshold,
            recovery_count,
            answer_timeout: Self::DEFAULT_ANSWER_TIMEOUT,
        }
    }

    /// No pings: a target is always `Up`, only held off by `503` + `Retry-After`.
    #[must_use]
    pub fn unpinged() -> Self {
        Self {
            interval: None,
            miss_threshold: 1,
            recovery_count: 1,
            answer_timeout: Self::DEFAULT_ANSWER_TIMEOUT,
        }
    }

    /// Whether the values are usable (thresholds ≥ 1, non-zero times).
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.miss_threshold == 0 || self.recovery_count == 0 {
            return Err("miss_threshold and recovery_count must be at least 1");
        }
        if self.interval.is_some_and(|i| i.is_zero()) || self.answer_timeout.is_zero() {
            return Err("intervals must be non-zero");
        }
        Ok(())
    }

    fn answer_window(&self) -> Duration {
        self.interval
            .map_or(self.answer_timeout, |i| self.answer_timeout.min(i))
    }
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self::unpinged()
    }
}

/// Health of a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetState {
    /// New calls may go there.
    Up,
    /// Skipped by new calls until it answers again.
    Down,
}

/// A state change, reported once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// `Down` → `Up`.
    Up,
    /// `Up` → `Down`.
    Down,
}

/// Counters and state of one target, for status pages and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ProbeCounters {
    /// Pings sent.
    pub pings_sent: u64,
    /// Final answers to pings.
    pub answers: u64,
    /// Pings missed (timeout or transport failure).
    pub misses_total: u64,
}

/// An answer to a ping that is no longer outstanding (expired, or not ours).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LateAnswer;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Outstanding {
    token: u64,
    deadline: Timestamp,
}

/// The health of one target (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    state: TargetState,
    /// Misses in a row.
    misses: u32,
    /// Answers in a row while `Down`.
    recoveries: u32,
    next_ping: Option<Timestamp>,
    outstanding: Option<Outstanding>,
    held_until: Option<Timestamp>,
    last_answer: Option<Timestamp>,
    last_status: Option<u16>,
    counters: ProbeCounters,
}

impl Probe {
    /// A target `Up` (optimistic: calls may go out before the first answer), first
    /// ping due at `now` when `policy` pings.
    #[must_use]
    pub fn new(policy: &HealthPolicy, now: Timestamp) -> Self {
        Self {
            state: TargetState::Up,
            misses: 0,
            recoveries: 0,
            next_ping: policy.interval.map(|_| now),
            outstanding: None,
            held_until: None,
            last_answer: None,
            last_status: None,
            counters: ProbeCounters::default(),
        }
    }

    /// Keeps state and counters under a new policy (a reload): pinging starts at
    /// `now` when it was off, stops when it is now off.
    pub fn repolicy(&mut self, policy: &HealthPolicy, now: Timestamp) {
        match (policy.interval, self.next_ping) {
            (None, _) => {
                self.next_ping = None;
                self.outstanding = None;
                self.state = TargetState::Up;
            }
            (Some(_), None) => self.next_ping = Some(now),
            (Some(i), Some(n)) => self.next_ping = Some(n.min(now + i)),
        }
        self.misses = self.misses.min(policy.miss_threshold);
    }

    /// Current state.
    #[must_use]
    pub fn state(&self) -> TargetState {
        self.state
    }

    /// Misses in a row.
    #[must_use]
    pub fn misses(&self) -> u32 {
        self.misses
    }

    /// Held off by a `503` + `Retry-After` until then (`None` once passed).
    #[must_use]
    pub fn held_until(&self, now: Timestamp) -> Option<Timestamp> {
        self.held_until.filter(|t| *t > now)
    }

    /// Last final answer to a ping, and its status.
    #[must_use]
    pub fn last_answer(&self) -> (Option<Timestamp>, Option<u16>) {
        (self.last_answer, self.last_status)
    }

    /// Ping counters.
    #[must_use]
    pub fn counters(&self) -> ProbeCounters {
        self.counters
    }

    /// Whether new calls may use the target at `now`: `Up` and not held off.
    #[must_use]
    pub fn usable(&self, now: Timestamp) -> bool {
        self.state == TargetState::Up && self.held_until(now).is_none()
    }

    /// The token of the ping outstanding, if any.
    #[must_use]
    pub fn outstanding(&self) -> Option<u64> {
        self.outstanding.map(|o| o.token)
    }

    /// When [`Self::expire`] or [`Self::ping_due`] must be looked at next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match (self.outstanding, self.next_ping) {
            (Some(o), Some(n)) => Some(o.deadline.min(n)),
            (Some(o), None) => Some(o.deadline),
            (None, n) => n,
        }
    }

    /// Whether a ping is due at `now` (none outstanding, its time has come).
    #[must_use]
    pub fn ping_due(&self, now: Timestamp) -> bool {
        self.outstanding.is_none() && self.next_ping.is_some_and(|n| n <= now)
    }

    /// A ping identified by `token` went out at `now`.
    pub fn ping_sent(&mut self, policy: &HealthPolicy, now: Timestamp, token: u64) {
        self.outstanding = Some(Outstanding {
            token,
            deadline: now + policy.answer_window(),
        });
        self.next_ping = policy.interval.map(|i| now + i);
        self.counters.pings_sent += 1;
    }

    /// The outstanding ping, if overdue at `now`, is a miss.
    pub fn expire(&mut self, policy: &HealthPolicy, now: Timestamp) -> Option<Transition> {
        match self.outstanding {
            Some(o) if o.deadline <= now => {
                self.outstanding = None;
                self.miss(policy)
            }
            _ => None,
        }
    }

    /// The ping `token` failed in transport (or timed out in the transaction
    /// layer): a miss when it is the one outstanding; `None` otherwise.
    pub fn ping_failed(&mut self, policy: &HealthPolicy, token: u64) -> Option<Transition> {
        if self.outstanding.is_some_and(|o| o.token == token) {
            self.outstanding = None;
            return self.miss(policy);
        }
        None
    }

    /// The connection to the target failed: the outstanding ping, whatever it is, is a miss.
    pub fn transport_failed(&mut self, policy: &HealthPolicy) -> Option<Transition> {
        self.outstanding.take().and_then(|_| self.miss(policy))
    }

    fn miss(&mut self, policy: &HealthPolicy) -> Option<Transition> {
        let threshold = policy.miss_threshold.max(1);
        self.misses = self.misses.saturating_add(1).min(threshold);
        self.recoveries = 0;
        self.counters.misses_total += 1;
        if self.misses >= threshold && self.state == TargetState::Up {
            self.state = TargetState::Down;
            return Some(Transition::Down);
        }
        None
    }

    /// A final answer `status` to the ping `token` at `now`. `Err(LateAnswer)`
    /// when `token` is not the ping outstanding. `Ok` carries the transition, if any.
    pub fn answered(
        &mut self,
        policy: &HealthPolicy,
        now: Timestamp,
        token: u64,
        status: u16,
        retry_after: Option<u32>,
    ) -> Result<Option<Transition>, LateAnswer> {
        if self.outstanding.is_none_or(|o| o.token != token) {
            return Err(LateAnswer);
        }
        self.outstanding = None;
        self.counters.answers += 1;
        self.misses = 0;
        self.last_answer = Some(now);
        self.last_status = Some(status);
        if let (503, Some(s)) = (status, retry_after) {
            self.hold_off(now, Duration::from_secs(u64::from(s)));
        }
        if self.state == TargetState::Down {
            self.recoveries += 1;
            if self.recoveries >= policy.recovery_count.max(1) {
                self.recoveries = 0;
                self.state = TargetState::Up;
                return Ok(Some(Transition::Up));
            }
        }
        Ok(None)
    }

    /// A `503` with `Retry-After` (to a ping or a call) at `now`: out of the
    /// selection until then (capped at [`MAX_HOLD_OFF`]); a later deadline
    /// extends, an earlier one does not shorten.
    pub fn hold_off(&mut self, now: Timestamp, retry_after: Duration) {
        let until = now + retry_after.min(MAX_HOLD_OFF);
        self.held_until = Some(self.held_until.map_or(until, |u| u.max(until)));
    }

    /// A call to the target timed out (no answer to its INVITE): `Down` at once
    /// when the target is pinged (its answers bring it back), otherwise nothing
    /// (nothing would bring it back).
    pub fn call_timed_out(&mut self, policy: &HealthPolicy) -> Option<Transition> {
        if policy.interval.is_none() || self.state == TargetState::Down {
            return None;
        }
        self.state = TargetState::Down;
        self.misses = policy.miss_threshold.max(1);
        self.recoveries = 0;
        Some(Transition::Down)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> Timestamp {
        Timestamp::from_millis(s * 1000)
    }

    #[test]
    fn misses_demote_answers_promote() {
        let p = HealthPolicy::pinged(Duration::from_secs(10), 2, 3);
        let mut h = Probe::new(&p, t(0));
        assert!(h.ping_due(t(0)));
        h.ping_sent(&p, t(0), 1);
        assert!(!h.ping_due(t(5)));
        assert_eq!(h.poll_timeout(), Some(t(10)));
        assert_eq!(h.expire(&p, t(10)), None);
        h.ping_sent(&p, t(10), 2);
        assert_eq!(h.expire(&p, t(20)), Some(Transition::Down));
        assert!(!h.usable(t(20)));
        for (i, tok) in (3..6).enumerate() {
            let now = t(20 + 10 * i as u64);
            h.ping_sent(&p, now, tok);
            let tr = h.answered(&p, now, tok, 200, None).unwrap();
            assert_eq!(tr, (i == 2).then_some(Transition::Up), "answer {i}");
        }
        assert!(h.usable(t(50)));
        assert_eq!(h.counters().misses_total, 2);
        assert_eq!(h.counters().answers, 3);
        assert_eq!(h.answered(&p, t(50), 9, 200, None), Err(LateAnswer));
    }

    #[test]
    fn a_miss_restarts_the_recovery_count() {
        let p = HealthPolicy::pinged(Duration::from_secs(1), 1, 2);
        let mut h = Probe::new(&p, t(0));
        h.ping_sent(&p, t(0), 1);
        assert_eq!(h.ping_failed(&p, 1), Some(Transition::Down));
        h.ping_sent(&p, t(1), 2);
        assert_eq!(h.answered(&p, t(1), 2, 200, None), Ok(None));
        h.ping_sent(&p, t(2), 3);
        assert_eq!(h.transport_failed(&p), None);
        h.ping_sent(&p, t(3), 4);
        assert_eq!(h.answered(&p, t(3), 4, 200, None), Ok(None));
        h.ping_sent(&p, t(4), 5);
        assert_eq!(h.answered(&p, t(4), 5, 200, None), Ok(Some(Transition::Up)));
    }

    #[test]
    fn hold_off_is_capped_and_only_extends() {
        let p = HealthPolicy::unpinged();
        let mut h = Probe::new(&p, t(0));
        assert_eq!(h.poll_timeout(), None, "never pinged");
        h.hold_off(t(0), Duration::from_secs(30));
        h.hold_off(t(0), Duration::from_secs(5));
        assert!(!h.usable(t(29)));
        assert!(h.usable(t(30)));
        h.hold_off(t(0), Duration::from_secs(86_400 * 7));
        assert_eq!(h.held_until(t(0)), Some(t(3600)));
        assert_eq!(h.call_timed_out(&p), None, "unpinged targets stay up");
        let pinged = HealthPolicy::pinged(Duration::from_secs(5), 3, 1);
        let mut q = Probe::new(&pinged, t(0));
        assert_eq!(q.call_timed_out(&pinged), Some(Transition::Down));
        assert_eq!(q.call_timed_out(&pinged), None);
    }

    #[test]
    fn policy_validation() {
        assert!(HealthPolicy::pinged(Duration::from_secs(1), 0, 1)
            .validate()
            .is_err());
        assert!(HealthPolicy::pinged(Duration::from_secs(1), 1, 0)
            .validate()
            .is_err());
        assert!(HealthPolicy::pinged(Duration::ZERO, 1, 1)
            .validate()
            .is_err());
        assert!(HealthPolicy::pinged(Duration::from_secs(1), 1, 1)
            .validate()
            .is_ok());
    }
}

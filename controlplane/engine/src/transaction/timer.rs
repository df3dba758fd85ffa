//! RFC 3261 §17 transaction timers as a fixed table indexed by [`Timer`].
//!
//! Values (RFC 3261 Appendix A, RFC 6026 §8.4 for L and M):
//!
//! | timer | meaning | value |
//! |---|---|---|
//! | A | INVITE request retransmit (UDP) | starts at T1, doubles without cap |
//! | B | INVITE transaction timeout | 64*T1 |
//! | D | wait time for response retransmits | >32 s UDP, 0 reliable |
//! | E | non-INVITE request retransmit (UDP) | T1, doubles up to T2 |
//! | F | non-INVITE transaction timeout | 64*T1 |
//! | G | INVITE response retransmit (UDP) | T1, doubles up to T2 |
//! | H | wait time for ACK receipt | 64*T1 |
//! | I | wait time for ACK retransmits | T4 UDP, 0 reliable |
//! | J | wait time for non-INVITE request retransmits | 64*T1 UDP, 0 reliable |
//! | K | wait time for response retransmits | T4 UDP, 0 reliable |
//! | L | INVITE server "Accepted" lifetime (RFC 6026) | 64*T1 |
//! | M | INVITE client "Accepted" lifetime (RFC 6026) | 64*T1 |

use std::time::Duration;

use crate::time::Timestamp;

/// Transaction timers, named as in RFC 3261 §17 (L and M from RFC 6026).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    A,
    B,
    D,
    E,
    F,
    G,
    H,
    I,
    J,
    K,
    L,
    M,
}

impl Timer {
    /// Every timer, in table order.
    pub const ALL: [Timer; 12] = [
        Timer::A,
        Timer::B,
        Timer::D,
        Timer::E,
        Timer::F,
        Timer::G,
        Timer::H,
        Timer::I,
        Timer::J,
        Timer::K,
        Timer::L,
        Timer::M,
    ];

    /// Slot in a [`TimerTable`].
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Base timer values (RFC 3261 §17.1.1.1, Appendix A).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate, default 500 ms.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses, default 4 s.
    pub t2: Duration,
    /// Maximum duration a message remains in the network, default 5 s.
    pub t4: Duration,
    /// Timer D on unreliable transports; RFC 3261 requires at least 32 s.
    pub timer_d: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            timer_d: Duration::from_secs(32),
        }
    }
}

impl TimerConfig {
    /// 64*T1: Timers B, F, H, J (unreliable), L, M.
    #[must_use]
    pub fn t1x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// Timer D: `timer_d` (≥32 s) on unreliable transports, zero on reliable ones (§17.1.1.2).
    #[must_use]
    pub fn d(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.timer_d
        }
    }

    /// Timer I and K: T4 on unreliable transports, zero on reliable ones (§17.2.1, §17.1.2.2).
    #[must_use]
    pub fn t4_or_zero(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t4
        }
    }

    /// Timer J: 64*T1 on unreliable transports, zero on reliable ones (§17.2.2).
    #[must_use]
    pub fn j(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t1x64()
        }
    }

    /// Next retransmit interval capped at T2 (Timers E and G, §17.1.2.2, §17.2.1).
    #[must_use]
    pub fn double_capped(&self, interval: Duration) -> Duration {
        interval.saturating_mul(2).min(self.t2)
    }
}

/// One deadline per [`Timer`]; `None` when not running.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerTable {
    slots: [Option<Timestamp>; Timer::ALL.len()],
}

impl TimerTable {
    /// Starts (or restarts) `timer` to fire at `at`.
    pub fn set(&mut self, timer: Timer, at: Timestamp) {
        if let Some(slot) = self.slots.get_mut(timer.index()) {
            *slot = Some(at);
        }
    }

    /// Stops `timer`.
    pub fn stop(&mut self, timer: Timer) {
        if let Some(slot) = self.slots.get_mut(timer.index()) {
            *slot = None;
        }
    }

    /// Stops every timer.
    pub fn stop_all(&mut self) {
        self.slots = Default::default();
    }

    /// Deadline of `timer`.
    #[must_use]
    pub fn get(&self, timer: Timer) -> Option<Timestamp> {
        self.slots.get(timer.index()).copied().flatten()
    }

    /// Earliest running deadline.
    #[must_use]
    pub fn next(&self) -> Option<Timestamp> {
        self.slots.iter().flatten().min().copied()
    }

    /// Removes and returns the earliest timer that is due at `now`.
    pub fn pop_expired(&mut self, now: Timestamp) -> Option<Timer> {
        let (timer, _) = Timer::ALL
            .iter()
            .filter_map(|t| self.get(*t).map(|at| (*t, at)))
            .filter(|(_, at)| *at <= now)
            .min_by_key(|(t, at)| (*at, *t))?;
        self.stop(timer);
        Some(timer)
    }

    /// Running timers with their deadlines.
    pub fn running(&self) -> impl Iterator<Item = (Timer, Timestamp)> + '_ {
        Timer::ALL
            .iter()
            .filter_map(|t| self.get(*t).map(|at| (*t, at)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_orders_by_deadline() {
        let mut t = TimerTable::default();
        t.set(Timer::B, Timestamp::from_millis(32_000));
        t.set(Timer::A, Timestamp::from_millis(500));
        assert_eq!(t.next(), Some(Timestamp::from_millis(500)));
        assert_eq!(t.pop_expired(Timestamp::from_millis(499)), None);
        assert_eq!(
            t.pop_expired(Timestamp::from_millis(40_000)),
            Some(Timer::A)
        );
        assert_eq!(
            t.pop_expired(Timestamp::from_millis(40_000)),
            Some(Timer::B)
        );
        assert_eq!(t.next(), None);
    }

    #[test]
    fn defaults_match_rfc3261_appendix_a() {
        let c = TimerConfig::default();
        assert_eq!(c.t1x64(), Duration::from_secs(32));
        assert_eq!(c.d(false), Duration::from_secs(32));
        assert_eq!(c.d(true), Duration::ZERO);
        assert_eq!(
            c.double_capped(Duration::from_secs(2)),
            Duration::from_secs(4)
        );
        assert_eq!(
            c.double_capped(Duration::from_secs(4)),
            Duration::from_secs(4)
        );
    }
}

//! The process clock: a monotonic epoch for the engine ([`Clock::now`]) and a wall
//! clock ([`WallClock`]) read whenever a wall-clock time is needed.
//!
//! CDR times follow the wall clock record by record: before each input the engine
//! task hands the engine [`Clock::epoch_offset_ms`] (wall clock now minus engine
//! time now), so a record made at engine time `t` reads the wall clock at `t`, and
//! its earlier times (setup, answer) are that wall time minus the monotonic time
//! elapsed since. A clock step (NTP synchronising after boot) moves the records
//! made after it; durations inside a record never jump.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portcullis_engine::time::Timestamp;

/// A source of wall-clock time (ms since the UNIX epoch): the system clock, or a
/// manual clock that moves only when set (tests step it).
#[derive(Debug, Clone, Default)]
pub struct WallClock(Option<Arc<AtomicU64>>);

impl WallClock {
    /// The system's real-time clock.
    #[must_use]
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock reading `ms` until [`Self::set_ms`] moves it (clones share it).
    #[must_use]
    pub fn manual(ms: u64) -> Self {
        Self(Some(Arc::new(AtomicU64::new(ms))))
    }

    /// Sets a manual clock (no effect on the system clock).
    pub fn set_ms(&self, ms: u64) {
        if let Some(a) = &self.0 {
            a.store(ms, Ordering::Relaxed);
        }
    }

    /// Milliseconds since the UNIX epoch now (0 for a system clock before 1970).
    #[must_use]
    pub fn now_ms(&self) -> u64 {
        match &self.0 {
            Some(a) => a.load(Ordering::Relaxed),
            None => system_ms(),
        }
    }
}

/// The system clock in ms since the UNIX epoch.
#[must_use]
pub fn system_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The process clock (see the module docs). Clones share the epoch and the wall clock.
#[derive(Debug, Clone)]
pub struct Clock {
    start: Instant,
    wall: WallClock,
}

impl Clock {
    /// Starts the engine epoch now, with the system wall clock.
    #[must_use]
    pub fn new() -> Self {
        Self::with_wall(WallClock::system())
    }

    /// Starts the engine epoch now, with `wall` as the wall clock.
    #[must_use]
    pub fn with_wall(wall: WallClock) -> Self {
        Self {
            start: Instant::now(),
            wall,
        }
    }

    /// Engine time now.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        Timestamp::from_millis(u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// The instant of an engine timestamp.
    #[must_use]
    pub fn instant(&self, t: Timestamp) -> Instant {
        self.start + Duration::from_millis(t.as_millis())
    }

    /// The wall clock.
    #[must_use]
    pub fn wall(&self) -> &WallClock {
        &self.wall
    }

    /// The engine's epoch offset as of engine time `now`: wall clock now minus `now`,
    /// so that `now + offset` is the wall clock now.
    #[must_use]
    pub fn epoch_offset_ms(&self, now: Timestamp) -> u64 {
        self.wall.now_ms().saturating_sub(now.as_millis())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_follows_a_stepped_wall_clock() {
        let wall = WallClock::manual(1_700_000_000_000);
        let clock = Clock::with_wall(wall.clone());
        let now = clock.now();
        assert_eq!(
            now.as_millis() + clock.epoch_offset_ms(now),
            1_700_000_000_000
        );
        wall.set_ms(1_700_003_600_000);
        assert_eq!(
            now.as_millis() + clock.epoch_offset_ms(now),
            1_700_003_600_000
        );
        let sys = Clock::new();
        let before = system_ms();
        let n = sys.now();
        let w = n.as_millis() + sys.epoch_offset_ms(n);
        assert!(w >= before && w <= system_ms(), "{before} {w}");
    }
}

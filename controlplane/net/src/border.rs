//! Admission at the receive path, decided before a message takes a place in an event
//! queue: sources the engine has banned, sources that belong to configured peers
//! (trunks), and a cheap per-source rate for every other source.
//!
//! The engine's policy decides bans; the appliance pushes each one here
//! ([`crate::SipTransports::refuse`]) so that the drivers drop a banned source's
//! datagrams and connections without waking the engine. The trunk classification
//! ([`TrunkSources`]) comes from the configuration and is swapped on reload
//! ([`crate::SipTransports::set_trunk_sources`]).

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Bans held at most; past it (after a sweep of the expired ones) an arbitrary ban makes
/// room for the new one.
const MAX_BANS: usize = 65_536;
/// Independent locks of the per-source rate table (spreads the UDP receive tasks).
const RATE_SHARDS: usize = 16;
/// Sources tracked per shard; past it, entries whose bucket is full again (the source
/// went quiet) are swept, at most once per [`SWEEP_EVERY`], and new sources share one
/// overflow bucket until room frees.
const RATE_SHARD_ENTRIES: usize = 4096;
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Which source addresses belong to configured peers (trunk ACLs and addresses). Their
/// messages go to the peers' own event queue, their datagrams skip the per-source rate,
/// and their connections may use [`crate::Limits::trunk_connection_reserve`].
#[derive(Clone)]
pub struct TrunkSources(Arc<dyn Fn(IpAddr) -> bool + Send + Sync>);

impl TrunkSources {
    /// Sources for which `f` holds are configured peers.
    pub fn new(f: impl Fn(IpAddr) -> bool + Send + Sync + 'static) -> Self {
        TrunkSources(Arc::new(f))
    }

    /// No configured peer: every source is unknown.
    pub fn none() -> Self {
        TrunkSources::new(|_| false)
    }

    /// Whether `ip` belongs to a configured peer.
    pub fn contains(&self, ip: IpAddr) -> bool {
        (self.0)(ip)
    }
}

impl fmt::Debug for TrunkSources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TrunkSources(..)")
    }
}

/// A token bucket holding up to `rate` tokens, refilled at `rate` per second.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn full(rate: u32, now: Instant) -> Self {
        TokenBucket {
            tokens: f64::from(rate),
            last: now,
        }
    }

    fn refill(&mut self, now: Instant, rate: u32) {
        let rate = f64::from(rate);
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(rate);
        self.last = now;
    }

    /// Takes one token if there is one. `rate` 0 means no limit.
    pub(crate) fn take(&mut self, now: Instant, rate: u32) -> bool {
        if rate == 0 {
            return true;
        }
        self.refill(now, rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket has refilled completely (its source has been quiet).
    fn is_full(&self, now: Instant, rate: u32) -> bool {
        let mut b = *self;
        b.refill(now, rate);
        b.tokens >= f64::from(rate)
    }
}

#[derive(Debug)]
struct RateShard {
    buckets: HashMap<IpAddr, TokenBucket>,
    overflow: TokenBucket,
    last_sweep: Instant,
}

#[derive(Debug)]
struct Bans {
    until: HashMap<IpAddr, Instant>,
    last_sweep: Instant,
}

/// Where a datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The engine banned the source: dropped, counted.
    Banned,
    /// An unknown source over `unknown_source_rate`: dropped, counted.
    OverRate,
    /// A configured peer: the peers' queue.
    Trunk,
    /// Any other source: the shared queue.
    Unknown,
}

/// Bans, trunk classification and per-source rates, shared by every receive task.
pub(crate) struct Border {
    bans: RwLock<Bans>,
    /// Entries in `bans`, so the common case (no ban) takes no lock.
    ban_count: AtomicUsize,
    trunks: RwLock<TrunkSources>,
    rate: u32,
    shards: Vec<Mutex<RateShard>>,
    hasher: RandomState,
}

impl fmt::Debug for Border {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Border")
            .field("bans", &self.ban_count.load(Ordering::Relaxed))
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

impl Border {
    pub(crate) fn new(unknown_source_rate: u32) -> Self {
        let now = Instant::now();
        Border {
            bans: RwLock::new(Bans {
                until: HashMap::new(),
                last_sweep: now,
            }),
            ban_count: AtomicUsize::new(0),
            trunks: RwLock::new(TrunkSources::none()),
            rate: unknown_source_rate,
            shards: (0..RATE_SHARDS)
                .map(|_| {
                    Mutex::new(RateShard {
                        buckets: HashMap::new(),
                        overflow: TokenBucket::full(unknown_source_rate, now),
                        last_sweep: now,
                    })
                })
                .collect(),
            // Keyed per process from the OS RNG: a sender cannot aim at one shard.
            hasher: RandomState::new(),
        }
    }

    /// Whether `ip` is banned at `now`.
    pub(crate) fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        if self.ban_count.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let bans = self.bans.read().unwrap_or_else(|p| p.into_inner());
        bans.until.get(&ip).is_some_and(|until| *until > now)
    }

    /// Bans `ip` until `until` (a later end wins over an earlier one).
    pub(crate) fn ban(&self, ip: IpAddr, until: Instant, now: Instant) {
        let mut bans = self.bans.write().unwrap_or_else(|p| p.into_inner());
        // Expired entries go when a ban is added, at most once per SWEEP_EVERY.
        if now.saturating_duration_since(bans.last_sweep) >= SWEEP_EVERY {
            bans.last_sweep = now;
            bans.until.retain(|_, u| *u > now);
        }
        if bans.until.len() >= MAX_BANS && !bans.until.contains_key(&ip) {
            let any = bans.until.keys().next().copied();
            if let Some(k) = any {
                bans.until.remove(&k);
            }
        }
        let e = bans.until.entry(ip).or_insert(until);
        *e = (*e).max(until);
        self.ban_count.store(bans.until.len(), Ordering::Relaxed);
    }

    /// Sources banned at `now`.
    pub(crate) fn banned(&self, now: Instant) -> usize {
        let bans = self.bans.read().unwrap_or_else(|p| p.into_inner());
        bans.until.values().filter(|u| **u > now).count()
    }

    pub(crate) fn set_trunks(&self, trunks: TrunkSources) {
        *self.trunks.write().unwrap_or_else(|p| p.into_inner()) = trunks;
    }

    /// Whether `ip` belongs to a configured peer.
    pub(crate) fn is_trunk(&self, ip: IpAddr) -> bool {
        self.trunks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(ip)
    }

    /// Takes one message from the budget of an unknown source.
    fn admit_unknown(&self, ip: IpAddr, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        let i = usize::try_from(self.hasher.hash_one(ip) % RATE_SHARDS as u64).unwrap_or(0);
        let Some(shard) = self.shards.get(i) else {
            return true;
        };
        let mut s = shard.lock().unwrap_or_else(|p| p.into_inner());
        let rate = self.rate;
        if let Some(b) = s.buckets.get_mut(&ip) {
            return b.take(now, rate);
        }
        if s.buckets.len() >= RATE_SHARD_ENTRIES
            && now.saturating_duration_since(s.last_sweep) >= SWEEP_EVERY
        {
            s.last_sweep = now;
            s.buckets.retain(|_, b| !b.is_full(now, rate));
        }
        if s.buckets.len() >= RATE_SHARD_ENTRIES {
            return s.overflow.take(now, rate);
        }
        let mut b = TokenBucket::full(rate, now);
        let ok = b.take(now, rate);
        s.buckets.insert(ip, b);
        ok
    }

    /// The verdict on a datagram from `ip`: bans first, then configured peers (never
    /// rate-limited here: the engine's policy sees them), then the per-source rate.
    pub(crate) fn admit_datagram(&self, ip: IpAddr, now: Instant) -> Admission {
        if self.is_banned(ip, now) {
            Admission::Banned
        } else if self.is_trunk(ip) {
            Admission::Trunk
        } else if self.admit_unknown(ip, now) {
            Admission::Unknown
        } else {
            Admission::OverRate
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("literal address")
    }

    #[test]
    fn bucket_holds_one_second_and_refills() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(3, t0);
        assert!(b.take(t0, 3) && b.take(t0, 3) && b.take(t0, 3));
        assert!(!b.take(t0, 3));
        let t1 = t0 + Duration::from_millis(340);
        assert!(b.take(t1, 3), "a third of a second refills one token");
        assert!(!b.take(t1, 3));
        let t2 = t1 + Duration::from_secs(60);
        assert!(b.is_full(t2, 3));
        let mut n = 0;
        while b.take(t2, 3) {
            n += 1;
        }
        assert_eq!(n, 3, "never more than one second's worth");
        let mut unlimited = TokenBucket::full(0, t0);
        assert!((0..1000).all(|_| unlimited.take(t0, 0)));
    }

    #[test]
    fn verdicts_in_order_ban_trunk_rate() {
        let b = Border::new(2);
        let now = Instant::now();
        let trunk = ip("192.0.2.10");
        let other = ip("198.51.100.7");
        b.set_trunks(TrunkSources::new(move |a| a == trunk));
        for _ in 0..100 {
            assert_eq!(b.admit_datagram(trunk, now), Admission::Trunk);
        }
        assert_eq!(b.admit_datagram(other, now), Admission::Unknown);
        assert_eq!(b.admit_datagram(other, now), Admission::Unknown);
        assert_eq!(b.admit_datagram(other, now), Admission::OverRate);
        // Another unknown source has its own budget.
        assert_eq!(
            b.admit_datagram(ip("198.51.100.8"), now),
            Admission::Unknown
        );
        b.ban(trunk, now + Duration::from_secs(5), now);
        assert_eq!(b.admit_datagram(trunk, now), Admission::Banned);
        assert_eq!(b.banned(now), 1);
        let later = now + Duration::from_secs(6);
        assert_eq!(b.admit_datagram(trunk, later), Admission::Trunk);
        assert_eq!(b.banned(later), 0);
        assert_eq!(b.admit_datagram(other, later), Admission::Unknown);
    }

    #[test]
    fn later_ban_end_wins_and_bans_are_bounded() {
        let b = Border::new(0);
        let now = Instant::now();
        let a = ip("203.0.113.1");
        b.ban(a, now + Duration::from_secs(10), now);
        b.ban(a, now + Duration::from_secs(1), now);
        assert!(b.is_banned(a, now + Duration::from_secs(5)));
        for i in 0..(MAX_BANS as u32 + 10) {
            let v4 = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            b.ban(IpAddr::V4(v4), now + Duration::from_secs(60), now);
        }
        assert!(b.banned(now) <= MAX_BANS);
    }

    #[test]
    fn rate_table_is_bounded_and_new_sources_share_the_overflow() {
        let b = Border::new(1);
        let now = Instant::now();
        // Many distinct sources, each under its own rate: the table stays bounded.
        for i in 0..(RATE_SHARDS * RATE_SHARD_ENTRIES * 2) as u32 {
            let v4 = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            let _ = b.admit_datagram(IpAddr::V4(v4), now);
        }
        let tracked: usize = b
            .shards
            .iter()
            .map(|s| s.lock().map(|s| s.buckets.len()).unwrap_or(0))
            .sum();
        assert!(tracked <= RATE_SHARDS * RATE_SHARD_ENTRIES, "{tracked}");
        // Quiet sources are swept once their bucket is full again.
        let later = now + Duration::from_secs(5);
        assert_eq!(
            b.admit_datagram(ip("198.51.100.99"), later),
            Admission::Unknown
        );
    }
}

//! Per-source token buckets in a bounded LRU table.
//!
//! Each source has two buckets: the rate (`per_second`, `burst`) that applies
//! to every source not exempt, and the unknown-source budget (`unknown_budget`
//! requests per `unknown_window`) that applies to sources no trunk claims.
//! Bans are not kept here ([`super::ban`]): evicting a source only forgets its
//! buckets.
//!
//! Invariants: at most `capacity` sources are tracked (the least recently
//! seen is evicted to make room, so memory is bounded whatever a flood
//! sends); every operation is O(1) (hash map + intrusive doubly linked list
//! over a slab); time only comes in as `now`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::time::Timestamp;

/// Rate limit settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Sustained requests per second per source (≥ 1).
    pub per_second: u32,
    /// Bucket size: requests a source may send in a burst (≥ 1).
    pub burst: u32,
    /// How long a source that exceeded the rate is banned.
    pub ban: Duration,
    /// Most sources tracked at once (LRU eviction beyond).
    pub capacity: usize,
    /// IPv6 sources are grouped by this prefix length (a host usually owns a
    /// whole /64, so per-address limits would be trivial to dodge).
    pub ipv6_prefix: u8,
    /// Whether requests from known trunks bypass the limit.
    pub exempt_trunks: bool,
    /// Requests a source no trunk claims may send per `unknown_window` before it
    /// is banned (≥ 1). Such a source has no business with us: a budget counted
    /// over a long window bans a flooder even when the kernel drops most of its
    /// burst and the engine sees it at a rate below `per_second`.
    pub unknown_budget: u32,
    /// Window of `unknown_budget` (the bucket refills over it).
    pub unknown_window: Duration,
    /// Most bans held per prefix level (`super::ban`).
    pub max_bans: usize,
}

impl RateLimitSettings {
    /// `per_second` with a burst of twice that, 64k sources, IPv6 per /64,
    /// 20 requests per minute from unknown sources, 64k bans per prefix level,
    /// known trunks exempt: the B2BUA checks every datagram (responses and
    /// in-dialog requests too), so a carrier at a few dozen calls per second
    /// would exceed any per-source rate meant for scanners and ban itself.
    /// Trunk load is bounded by [`super::TrunkLimits`] and the transaction
    /// layer's load limit instead.
    #[must_use]
    pub fn new(per_second: u32, ban: Duration) -> Self {
        Self {
            per_second: per_second.max(1),
            burst: per_second.max(1).saturating_mul(2),
            ban,
            capacity: 65_536,
            ipv6_prefix: 64,
            exempt_trunks: true,
            unknown_budget: 20,
            unknown_window: Duration::from_secs(60),
            max_bans: 65_536,
        }
    }
}

const NIL: usize = usize::MAX;
/// One token, in milli-tokens.
const TOKEN: u64 = 1000;

/// A token bucket: `tokens` milli-tokens as of `last`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: u64,
    last: Timestamp,
}

impl Bucket {
    /// Refills `size` tokens per `period` since `last`, then takes one token
    /// if there is one.
    fn take(&mut self, now: Timestamp, size: u32, period: Duration) -> bool {
        let full = u64::from(size) * TOKEN;
        let elapsed = (now - self.last).as_millis();
        let period = period.as_millis().max(1);
        let refill = elapsed * u128::from(full) / period;
        let refill = u64::try_from(refill).unwrap_or(u64::MAX);
        self.tokens = self.tokens.saturating_add(refill).min(full);
        self.last = now.max(self.last);
        if self.tokens >= TOKEN {
            self.tokens -= TOKEN;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    key: IpAddr,
    rate: Bucket,
    unknown: Bucket,
    prev: usize,
    next: usize,
}

/// The bounded table.
#[derive(Debug, Clone)]
pub(crate) struct RateTable {
    s: RateLimitSettings,
    map: HashMap<IpAddr, usize>,
    slab: Vec<Entry>,
    /// Most recently used.
    head: usize,
    /// Least recently used (next to evict).
    tail: usize,
    pub(crate) evictions: u64,
}

impl RateTable {
    pub(crate) fn new(mut s: RateLimitSettings) -> Self {
        s.per_second = s.per_second.max(1);
        s.burst = s.burst.max(1);
        s.capacity = s.capacity.max(1);
        s.unknown_budget = s.unknown_budget.max(1);
        Self {
            s,
            map: HashMap::new(),
            slab: Vec::new(),
            head: NIL,
            tail: NIL,
            evictions: 0,
        }
    }

    pub(crate) fn settings(&self) -> &RateLimitSettings {
        &self.s
    }

    /// New rate/burst/ban/budget settings on reload. The capacity cannot
    /// change in place (`false`: the caller rebuilds the table).
    pub(crate) fn update(&mut self, mut s: RateLimitSettings) -> bool {
        s.per_second = s.per_second.max(1);
        s.burst = s.burst.max(1);
        s.capacity = s.capacity.max(1);
        s.unknown_budget = s.unknown_budget.max(1);
        if s.capacity != self.s.capacity || s.ipv6_prefix != self.s.ipv6_prefix {
            return false;
        }
        self.s = s;
        true
    }

    /// Checks the LRU list against the map (tests and debug assertions).
    #[doc(hidden)]
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        let mut n = 0usize;
        let mut prev = NIL;
        let mut i = self.head;
        while i != NIL {
            let e = self.slab.get(i).ok_or("dangling index")?;
            if e.prev != prev {
                return Err(format!("bad prev link at {i}"));
            }
            if self.map.get(&e.key) != Some(&i) {
                return Err(format!("map does not point at {i}"));
            }
            n += 1;
            if n > self.slab.len() {
                return Err("cycle".into());
            }
            prev = i;
            i = e.next;
        }
        if prev != self.tail {
            return Err("tail mismatch".into());
        }
        if n != self.map.len() || n > self.s.capacity {
            return Err(format!(
                "len {n}, map {}, cap {}",
                self.map.len(),
                self.s.capacity
            ));
        }
        Ok(())
    }

    /// The table key of a source (IPv6 masked to the configured prefix,
    /// IPv4-mapped IPv6 as IPv4).
    pub(crate) fn key(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let bits = u32::from(self.s.ipv6_prefix.min(128));
                    let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                    IpAddr::V6((u128::from(v6) & mask).into())
                }
            },
        }
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = match self.slab.get(i) {
            Some(e) => (e.prev, e.next),
            None => return,
        };
        match self.slab.get_mut(prev) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.slab.get_mut(next) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
    }

    fn push_front(&mut self, i: usize) {
        let old = self.head;
        if let Some(e) = self.slab.get_mut(i) {
            e.prev = NIL;
            e.next = old;
        }
        match self.slab.get_mut(old) {
            Some(o) => o.prev = i,
            None => self.tail = i,
        }
        self.head = i;
    }

    /// Slot for `key`, inserted (evicting the LRU entry when full) and moved
    /// to the front.
    fn slot(&mut self, now: Timestamp, key: IpAddr) -> usize {
        if let Some(&i) = self.map.get(&key) {
            self.unlink(i);
            self.push_front(i);
            return i;
        }
        let fresh = Entry {
            key,
            rate: Bucket {
                tokens: u64::from(self.s.burst) * TOKEN,
                last: now,
            },
            unknown: Bucket {
                tokens: u64::from(self.s.unknown_budget) * TOKEN,
                last: now,
            },
            prev: NIL,
            next: NIL,
        };
        let i = if self.slab.len() < self.s.capacity {
            self.slab.push(fresh);
            self.slab.len() - 1
        } else {
            let victim = self.tail;
            self.unlink(victim);
            if let Some(e) = self.slab.get_mut(victim) {
                self.map.remove(&e.key);
                *e = fresh;
            }
            self.evictions += 1;
            victim
        };
        self.map.insert(key, i);
        self.push_front(i);
        i
    }

    /// Accounts one request from `ip` at `now`: `rate` charges the rate
    /// bucket, `unknown` the unknown-source budget. `false`: a bucket was empty
    /// (the caller bans the source).
    pub(crate) fn check(&mut self, now: Timestamp, ip: IpAddr, rate: bool, unknown: bool) -> bool {
        if !rate && !unknown {
            return true;
        }
        let key = self.key(ip);
        let i = self.slot(now, key);
        let s = self.s;
        let Some(e) = self.slab.get_mut(i) else {
            return true;
        };
        // Both buckets are charged (no short-circuit): each counts every request.
        let in_rate = !rate || e.rate.take(now, s.burst, rate_period(&s));
        let in_budget = !unknown || e.unknown.take(now, s.unknown_budget, s.unknown_window);
        in_rate && in_budget
    }

    /// Forgets `ip`'s buckets (its ban starts: it gets full buckets when it ends).
    pub(crate) fn forget(&mut self, ip: IpAddr) {
        let key = self.key(ip);
        let Some(&i) = self.map.get(&key) else {
            return;
        };
        let full_rate = u64::from(self.s.burst) * TOKEN;
        let full_unknown = u64::from(self.s.unknown_budget) * TOKEN;
        if let Some(e) = self.slab.get_mut(i) {
            e.rate.tokens = full_rate;
            e.unknown.tokens = full_unknown;
        }
    }

    /// Sources tracked.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// Time the rate bucket takes to refill from empty (`burst / per_second`).
fn rate_period(s: &RateLimitSettings) -> Duration {
    Duration::from_millis(u64::from(s.burst) * 1000 / u64::from(s.per_second.max(1)))
}

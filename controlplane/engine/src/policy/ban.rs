//! Bans, kept apart from the rate table and never evicted by new sources.
//!
//! A ban is a network ([`ipnet::IpNet`]) and the time it ends. Bans live at
//! levels of widening prefixes: a host (IPv4 `/32`, IPv6 the rate table's group,
//! `/64` by default), then IPv4 `/24` / IPv6 `/48`, then IPv4 `/16` / IPv6 `/32`,
//! then IPv6 `/16`. Each level but the last holds at most `capacity` bans; a
//! new ban whose level is full goes one level wider instead of pushing an older
//! ban out, so a flood of spoofed sources can never make the table forget a ban
//! (RFC 3261 §26.3.2.4 leaves the policy to the element; this one only widens).
//! The last level is bounded by its width (at most 65,536 `/16`s per family), so
//! the whole table holds at most `(levels - 1) × capacity + 2 × 65,536` entries.
//!
//! Invariants: `expiry` holds exactly one `(until, net)` pair per entry of
//! `bans`; `counts[family][level]` is the number of entries at that level;
//! every operation is O(log n) except [`BanTable::active`] (O(n), for metrics).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::time::Timestamp;

/// Prefix lengths of the IPv4 levels, narrowest first.
const V4_LEVELS: [u8; 3] = [32, 24, 16];
/// Prefix lengths of the IPv6 levels after the host group, narrowest first.
const V6_WIDER: [u8; 3] = [48, 32, 16];

/// The bounded ban table (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct BanTable {
    capacity: usize,
    /// IPv6 host group (the rate table's `ipv6_prefix`).
    v6_group: u8,
    bans: HashMap<IpNet, Timestamp>,
    expiry: BTreeSet<(Timestamp, IpNet)>,
    /// Entries per family (0: IPv4, 1: IPv6) and level.
    counts: [[usize; 4]; 2],
}

impl BanTable {
    /// An empty table of `capacity` bans per level (at least 1).
    pub(crate) fn new(capacity: usize, v6_group: u8) -> Self {
        Self {
            capacity: capacity.max(1),
            v6_group: v6_group.clamp(16, 128),
            bans: HashMap::new(),
            expiry: BTreeSet::new(),
            counts: [[0; 4]; 2],
        }
    }

    /// New bound and IPv6 group on reload; bans already held are kept (a level
    /// over a lowered bound only stops taking new bans until some end).
    pub(crate) fn reconfigure(&mut self, capacity: usize, v6_group: u8) {
        self.capacity = capacity.max(1);
        let group = v6_group.clamp(16, 128);
        if group != self.v6_group {
            // Host-level IPv6 bans were keyed by the old group: rekey them (a
            // wider group merges some, keeping the later end).
            let old: Vec<(IpNet, Timestamp)> = self
                .bans
                .iter()
                .filter(|(n, _)| matches!(n, IpNet::V6(_)) && n.prefix_len() == self.v6_group)
                .map(|(n, u)| (*n, *u))
                .collect();
            for (net, until) in &old {
                self.remove(*net, *until);
            }
            self.v6_group = group;
            for (net, until) in old {
                let key = self.level_net(net.addr(), 0);
                let until = self.bans.get(&key).map_or(until, |u| until.max(*u));
                if let Some(prev) = self.bans.get(&key).copied() {
                    self.remove(key, prev);
                }
                self.insert(key, 0, until);
            }
        }
    }

    /// Prefix lengths of `ip`'s family, narrowest first.
    fn levels(&self, ip: IpAddr) -> ([u8; 4], usize) {
        match ip {
            IpAddr::V4(_) => ([V4_LEVELS[0], V4_LEVELS[1], V4_LEVELS[2], 0], 3),
            IpAddr::V6(_) => {
                let mut l = [self.v6_group, 0, 0, 0];
                let mut n = 1;
                for w in V6_WIDER {
                    if w < self.v6_group {
                        l[n] = w;
                        n += 1;
                    }
                }
                (l, n)
            }
        }
    }

    /// `ip` (IPv4-mapped IPv6 as IPv4) truncated to the prefix of `level`.
    fn level_net(&self, ip: IpAddr, level: usize) -> IpNet {
        let ip = normalise(ip);
        let (lens, n) = self.levels(ip);
        let len = lens.get(level.min(n - 1)).copied().unwrap_or(0);
        IpNet::new(ip, len).map_or_else(|_| IpNet::from(ip), |n| n.trunc())
    }

    fn family(net: &IpNet) -> usize {
        usize::from(matches!(net, IpNet::V6(_)))
    }

    fn insert(&mut self, net: IpNet, level: usize, until: Timestamp) {
        if self.bans.insert(net, until).is_none() {
            if let Some(c) = self
                .counts
                .get_mut(Self::family(&net))
                .and_then(|f| f.get_mut(level))
            {
                *c += 1;
            }
        }
        self.expiry.insert((until, net));
    }

    fn remove(&mut self, net: IpNet, until: Timestamp) {
        self.expiry.remove(&(until, net));
        if self.bans.remove(&net).is_some() {
            let level = self.level_of(&net);
            if let Some(c) = self
                .counts
                .get_mut(Self::family(&net))
                .and_then(|f| f.get_mut(level))
            {
                *c = c.saturating_sub(1);
            }
        }
    }

    fn level_of(&self, net: &IpNet) -> usize {
        let (lens, n) = self.levels(net.addr());
        lens.iter()
            .take(n)
            .position(|l| *l == net.prefix_len())
            .unwrap_or(n - 1)
    }

    /// Forgets the bans that ended at or before `now`.
    pub(crate) fn purge(&mut self, now: Timestamp) {
        while let Some(&(until, net)) = self.expiry.first() {
            if until > now {
                break;
            }
            self.remove(net, until);
        }
    }

    /// Bans `ip` until `until`, at the narrowest level with room. Returns the
    /// network banned and whether it is wider than the host (its level was full).
    pub(crate) fn ban(&mut self, now: Timestamp, ip: IpAddr, until: Timestamp) -> (IpNet, bool) {
        self.purge(now);
        let ip = normalise(ip);
        let (_, n) = self.levels(ip);
        let fam = usize::from(ip.is_ipv6());
        for level in 0..n {
            let net = self.level_net(ip, level);
            if let Some(prev) = self.bans.get(&net).copied() {
                // Already banned at this level: the later end wins.
                if until > prev {
                    self.remove(net, prev);
                    self.insert(net, level, until);
                }
                return (net, level > 0);
            }
            let used = self
                .counts
                .get(fam)
                .and_then(|f| f.get(level))
                .copied()
                .unwrap_or(0);
            if level + 1 == n || used < self.capacity {
                self.insert(net, level, until);
                return (net, level > 0);
            }
        }
        // Unreachable: the last level always takes the ban.
        (self.level_net(ip, n - 1), true)
    }

    /// When the ban covering `ip` ends, if one is in force at `now`.
    /// `host_only` looks at the host level alone (sources a trunk claims are
    /// never caught by a ban widened to their neighbours).
    pub(crate) fn banned_until(
        &self,
        now: Timestamp,
        ip: IpAddr,
        host_only: bool,
    ) -> Option<Timestamp> {
        let (_, n) = self.levels(normalise(ip));
        let levels = if host_only { 1 } else { n };
        (0..levels)
            .filter_map(|l| self.bans.get(&self.level_net(ip, l)).copied())
            .filter(|u| *u > now)
            .max()
    }

    /// Bans in force at `now` (entries of every level).
    pub(crate) fn active(&self, now: Timestamp) -> usize {
        self.expiry.iter().filter(|(u, _)| *u > now).count()
    }

    /// Entries held (ended ones until the next purge included).
    pub(crate) fn len(&self) -> usize {
        self.bans.len()
    }

    /// Checks the counts and the expiry index against the map (tests).
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        if self.expiry.len() != self.bans.len() {
            return Err(format!(
                "expiry {} != bans {}",
                self.expiry.len(),
                self.bans.len()
            ));
        }
        for (until, net) in &self.expiry {
            if self.bans.get(net) != Some(until) {
                return Err(format!("expiry entry {net} not in the map"));
            }
        }
        let mut counts = [[0usize; 4]; 2];
        for net in self.bans.keys() {
            let level = self.level_of(net);
            if let Some(c) = counts
                .get_mut(Self::family(net))
                .and_then(|f| f.get_mut(level))
            {
                *c += 1;
            }
        }
        if counts != self.counts {
            return Err(format!("counts {:?} != {:?}", self.counts, counts));
        }
        Ok(())
    }
}

/// IPv4-mapped IPv6 as IPv4.
fn normalise(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn full_level_widens_and_forgets_nothing() {
        let mut b = BanTable::new(2, 64);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(b.ban(t(0), ip("10.0.0.1"), t(100)).0.prefix_len(), 32);
        assert_eq!(b.ban(t(0), ip("10.0.1.1"), t(100)).0.prefix_len(), 32);
        // Host level full: the third goes to its /24.
        let (w, widened) = b.ban(t(0), ip("10.0.2.7"), t(100));
        assert_eq!(w.to_string(), "10.0.2.0/24");
        assert!(widened);
        for s in ["10.0.0.1", "10.0.1.1", "10.0.2.7", "10.0.2.200"] {
            assert_eq!(b.banned_until(t(1), ip(s), false), Some(t(100)), "{s}");
        }
        // A trunk's source is only caught by its own host ban.
        assert_eq!(b.banned_until(t(1), ip("10.0.2.200"), true), None);
        assert_eq!(b.banned_until(t(1), ip("10.0.0.1"), true), Some(t(100)));
        // Two /24s, then /16s.
        assert_eq!(b.ban(t(0), ip("10.0.3.1"), t(100)).0.prefix_len(), 24);
        assert_eq!(b.ban(t(0), ip("10.0.4.1"), t(100)).0.prefix_len(), 16);
        b.check_invariants().unwrap();
        // Everything ends; the table empties on the next ban.
        assert_eq!(b.active(t(100)), 0);
        b.ban(t(100), ip("192.0.2.1"), t(200));
        assert_eq!(b.len(), 1);
        b.check_invariants().unwrap();
    }

    #[test]
    fn ipv6_levels() {
        let mut b = BanTable::new(1, 64);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(b.ban(t(0), ip("2001:db8:1:2::1"), t(9)).0.prefix_len(), 64);
        assert_eq!(b.ban(t(0), ip("2001:db8:1:3::1"), t(9)).0.prefix_len(), 48);
        assert_eq!(b.ban(t(0), ip("2001:db8:2::1"), t(9)).0.prefix_len(), 32);
        assert_eq!(b.ban(t(0), ip("2001:db9::1"), t(9)).0.prefix_len(), 16);
        assert!(b
            .banned_until(t(0), ip("2001:db8:1:2::ffff"), true)
            .is_some());
        assert!(b.banned_until(t(0), ip("::ffff:10.0.0.1"), false).is_none());
        b.ban(t(0), ip("::ffff:10.0.0.1"), t(9));
        assert!(b.banned_until(t(0), ip("10.0.0.1"), true).is_some());
        b.reconfigure(1, 56);
        assert!(b.banned_until(t(0), ip("2001:db8:1::1"), true).is_some());
        b.check_invariants().unwrap();
    }
}

//! Policy: unknown sources, rate limit → ban → unban (virtual time), LRU
//! bound, trunk call limits.

use std::net::IpAddr;
use std::time::Duration;

use portcullis_engine::config::{PolicyConfig, TrunkId, UnknownSource};
use portcullis_engine::policy::{Policy, PolicyVerdict, RateLimitSettings, TrunkLimits};
use portcullis_engine::time::Timestamp;

fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn limited(per_second: u32, burst: u32, ban_s: u64, capacity: usize) -> RateLimitSettings {
    RateLimitSettings {
        per_second,
        burst,
        ban: Duration::from_secs(ban_s),
        capacity,
        ipv6_prefix: 64,
        exempt_trunks: false,
        unknown_budget: 1000,
        unknown_window: Duration::from_secs(1),
        max_bans: 65_536,
    }
}

#[test]
fn unknown_sources_reject_or_drop() {
    let mut p = Policy::new(&PolicyConfig::default());
    assert_eq!(
        p.check_request(t(0), ip("192.0.2.1"), None),
        PolicyVerdict::Reject403
    );
    assert_eq!(
        p.check_request(t(0), ip("192.0.2.1"), Some(TrunkId(0))),
        PolicyVerdict::Allow
    );
    let mut p = Policy::with_settings(UnknownSource::Drop, None);
    assert_eq!(
        p.check_request(t(0), ip("192.0.2.1"), None),
        PolicyVerdict::Drop
    );
    assert_eq!(p.stats().dropped_unknown, 1);
    assert_eq!(p.stats().rejected_unknown, 0);
    // No rate limit configured: thousands of requests pass.
    let mut p = Policy::new(&PolicyConfig::default());
    for i in 0..5_000 {
        assert_eq!(
            p.check_request(t(i / 10), ip("10.0.0.1"), Some(TrunkId(1))),
            PolicyVerdict::Allow
        );
    }
    assert_eq!(p.stats().allowed, 5_000);
}

#[test]
fn rate_limit_bans_then_unbans_after_duration() {
    let mut p = Policy::with_settings(UnknownSource::Reject403, Some(limited(10, 5, 60, 1024)));
    let src = ip("203.0.113.7");
    // Burst of 5 at t=0 passes, the 6th starts a ban.
    for _ in 0..5 {
        assert_eq!(
            p.check_request(t(0), src, Some(TrunkId(0))),
            PolicyVerdict::Allow
        );
    }
    let until = t(60_000);
    assert_eq!(
        p.check_request(t(0), src, Some(TrunkId(0))),
        PolicyVerdict::RateLimited {
            until,
            new_ban: true
        }
    );
    assert_eq!(p.bans(), 1);
    assert_eq!(p.banned_until(t(1), src), Some(until));
    // Still banned even if it behaves: no new ban reported.
    assert_eq!(
        p.check_request(t(59_999), src, Some(TrunkId(0))),
        PolicyVerdict::RateLimited {
            until,
            new_ban: false
        }
    );
    // Another source is unaffected.
    assert_eq!(
        p.check_request(t(10), ip("203.0.113.8"), Some(TrunkId(0))),
        PolicyVerdict::Allow
    );
    // Ban over at exactly `until`: full bucket again.
    for _ in 0..5 {
        assert_eq!(
            p.check_request(until, src, Some(TrunkId(0))),
            PolicyVerdict::Allow
        );
    }
    assert_eq!(p.bans(), 0);
    assert_eq!(p.stats().bans, 1);
    assert_eq!(p.stats().rate_limited, 2);
}

#[test]
fn sustained_rate_within_limit_is_never_banned() {
    let mut p = Policy::with_settings(UnknownSource::Reject403, Some(limited(10, 2, 60, 16)));
    let src = ip("198.51.100.4");
    // 10/s exactly (one every 100 ms) for 100 s.
    for i in 0..1000 {
        assert_eq!(
            p.check_request(t(i * 100), src, Some(TrunkId(0))),
            PolicyVerdict::Allow,
            "request {i}"
        );
    }
    // 20/s quickly exhausts the bucket.
    let mut banned = false;
    for i in 0..100 {
        if let PolicyVerdict::RateLimited { .. } =
            p.check_request(t(100_000 + i * 50), src, Some(TrunkId(0)))
        {
            banned = true;
            break;
        }
    }
    assert!(banned);
}

#[test]
fn unknown_flooder_is_banned_before_being_answered() {
    let mut p = Policy::with_settings(UnknownSource::Reject403, Some(limited(1, 3, 10, 64)));
    let src = ip("192.0.2.66");
    for _ in 0..3 {
        assert_eq!(p.check_request(t(0), src, None), PolicyVerdict::Reject403);
    }
    assert!(matches!(
        p.check_request(t(0), src, None),
        PolicyVerdict::RateLimited { new_ban: true, .. }
    ));
    assert_eq!(p.stats().rejected_unknown, 3);
}

#[test]
fn trunks_can_be_exempt() {
    let mut s = limited(1, 1, 10, 64);
    s.exempt_trunks = true;
    let mut p = Policy::with_settings(UnknownSource::Reject403, Some(s));
    for _ in 0..100 {
        assert_eq!(
            p.check_request(t(0), ip("10.0.0.1"), Some(TrunkId(0))),
            PolicyVerdict::Allow
        );
    }
    assert_eq!(
        p.check_request(t(0), ip("10.0.0.2"), None),
        PolicyVerdict::Reject403
    );
    assert!(matches!(
        p.check_request(t(0), ip("10.0.0.2"), None),
        PolicyVerdict::RateLimited { .. }
    ));
}

#[test]
fn ipv6_sources_share_their_64() {
    let mut p = Policy::with_settings(UnknownSource::Reject403, Some(limited(1, 2, 10, 64)));
    assert_eq!(
        p.check_request(t(0), ip("2001:db8:1:2::1"), Some(TrunkId(0))),
        PolicyVerdict::Allow
    );
    assert_eq!(
        p.check_request(t(0), ip("2001:db8:1:2::ffff"), Some(TrunkId(0))),
        PolicyVerdict::Allow
    );
    assert!(matches!(
        p.check_request(t(0), ip("2001:db8:1:2:abcd::9"), Some(TrunkId(0))),
        PolicyVerdict::RateLimited { new_ban: true, .. }
    ));
    // Another /64 is separate.
    assert_eq!(
        p.check_request(t(0), ip("2001:db8:1:3::1"), Some(TrunkId(0))),
        PolicyVerdict::Allow
    );
    // IPv4-mapped IPv6 is the IPv4 source.
    assert_eq!(
        p.check_request(t(0), ip("192.0.2.1"), Some(TrunkId(0))),
        PolicyVerdict::Allow
    );
    assert_eq!(
        p.check_request(t(0), ip("::ffff:192.0.2.1"), Some(TrunkId(0))),
        PolicyVerdict::Allow
    );
    assert!(matches!(
        p.check_request(t(0), ip("192.0.2.1"), Some(TrunkId(0))),
        PolicyVerdict::RateLimited { .. }
    ));
}

#[test]
fn table_is_bounded_with_lru_eviction_but_bans_are_never_evicted() {
    let cap = 1000;
    let mut p = Policy::with_settings(UnknownSource::Reject403, Some(limited(1, 1, 600, cap)));
    // Ban source A, then keep it recent while 5000 other sources pass.
    let a = ip("192.0.2.1");
    assert_eq!(
        p.check_request(t(0), a, Some(TrunkId(0))),
        PolicyVerdict::Allow
    );
    assert!(matches!(
        p.check_request(t(0), a, Some(TrunkId(0))),
        PolicyVerdict::RateLimited { .. }
    ));
    let b = ip("192.0.2.2"); // banned, then never seen again
    assert_eq!(
        p.check_request(t(0), b, Some(TrunkId(0))),
        PolicyVerdict::Allow
    );
    assert!(matches!(
        p.check_request(t(0), b, Some(TrunkId(0))),
        PolicyVerdict::RateLimited { .. }
    ));
    for i in 0..5000u32 {
        let src = IpAddr::V4((0x0a00_0000 + i).into());
        p.check_request(t(1), src, Some(TrunkId(0)));
        assert!(p.tracked_sources() <= cap);
        if i % 100 == 0 {
            assert!(matches!(
                p.check_request(t(2), a, Some(TrunkId(0))),
                PolicyVerdict::RateLimited { new_ban: false, .. }
            ));
        }
    }
    assert_eq!(p.tracked_sources(), cap);
    assert!(p.stats().evictions >= 4000);
    assert!(p.banned_until(t(3), a).is_some());
    // B's buckets were evicted from the rate table; its ban was not.
    assert_eq!(p.banned_until(t(3), b), Some(t(600_000)));
    assert!(matches!(
        p.check_request(t(3), b, Some(TrunkId(0))),
        PolicyVerdict::RateLimited { new_ban: false, .. }
    ));
    assert_eq!(p.check_invariants(), Ok(()));
}

/// The appliance's policy: 50 requests/s per source, the default unknown-source
/// budget, bans of 5 minutes.
fn appliance_policy() -> PolicyConfig {
    PolicyConfig {
        unknown_source: UnknownSource::Reject403,
        rate_limit_per_source: Some(50),
        ban_duration: Duration::from_secs(300),
        ..PolicyConfig::default()
    }
}

#[test]
fn banned_source_stays_banned_after_70000_spoofed_sources() {
    let mut p = Policy::new(&appliance_policy());
    let scanner = ip("203.0.113.9");
    let mut n = 0;
    while !matches!(
        p.check_request(t(0), scanner, None),
        PolicyVerdict::RateLimited { new_ban: true, .. }
    ) {
        n += 1;
        assert!(n < 1000, "never banned");
    }
    // 70,000 spoofed sources, one packet each, overflow the 65,536-source rate table.
    for i in 0..70_000u32 {
        let src = IpAddr::V4((0x0a00_0000 + i).into());
        assert_eq!(
            p.check_request(t(1 + u64::from(i) / 100), src, None),
            PolicyVerdict::Reject403
        );
    }
    assert!(p.stats().evictions > 0, "the rate table overflowed");
    assert!(matches!(
        p.check_request(t(1_000), scanner, None),
        PolicyVerdict::RateLimited { new_ban: false, .. }
    ));
    assert_eq!(p.check_invariants(), Ok(()));
}

#[test]
fn full_ban_table_widens_to_the_prefix_instead_of_forgetting() {
    let mut cfg = appliance_policy();
    cfg.max_bans = 4;
    let mut p = Policy::new(&cfg);
    let ban = |p: &mut Policy, src: IpAddr| {
        for _ in 0..1000 {
            if let PolicyVerdict::RateLimited { new_ban, .. } = p.check_request(t(0), src, None) {
                return new_ban;
            }
        }
        panic!("{src} never banned");
    };
    for i in 1..=4 {
        assert!(ban(&mut p, ip(&format!("198.51.100.{i}"))));
    }
    assert_eq!(p.stats().widened_bans, 0);
    // The host level is full: the fifth ban covers 203.0.113.0/24.
    assert!(ban(&mut p, ip("203.0.113.77")));
    assert_eq!(p.stats().widened_bans, 1);
    for i in 1..=4 {
        assert!(p
            .banned_until(t(1), ip(&format!("198.51.100.{i}")))
            .is_some());
    }
    assert!(p.banned_until(t(1), ip("203.0.113.200")).is_some());
    assert!(matches!(
        p.check_request(t(1), ip("203.0.113.5"), None),
        PolicyVerdict::RateLimited { new_ban: false, .. }
    ));
    // A trunk inside the widened prefix is not caught by its neighbours' ban.
    assert_eq!(
        p.check_request(t(1), ip("203.0.113.10"), Some(TrunkId(0))),
        PolicyVerdict::Allow
    );
    // IPv6: full host level widens to the /48.
    for i in 1..=4 {
        assert!(ban(&mut p, ip(&format!("2001:db8:{i}::1"))));
    }
    assert!(ban(&mut p, ip("2001:db8:99:1::1")));
    assert!(p.banned_until(t(1), ip("2001:db8:99:ffff::2")).is_some());
    assert!(p.ban_entries() <= 4 * 3 + 2, "bounded: {}", p.ban_entries());
    assert_eq!(p.check_invariants(), Ok(()));
    // Every ban ends after its duration.
    assert_eq!(p.banned_until(t(300_000), ip("203.0.113.200")), None);
}

/// 200 sources each send 250 INVITEs in 0.35 s; the kernel drops six in seven
/// and the engine, busy, sees the rest over two seconds: under 40 requests per
/// source, below the rate's burst (100) and its rate (50/s). The unknown-source
/// budget (20 a minute) bans every one of them all the same.
#[test]
fn flood_is_banned_even_when_the_kernel_drops_most_of_it() {
    let run = |cfg: &PolicyConfig| {
        let mut p = Policy::new(cfg);
        let mut banned = std::collections::BTreeSet::new();
        let mut delivered = 0u64;
        for k in 0..250u64 {
            for i in 0..200u32 {
                if (k * 200 + u64::from(i)) % 7 != 0 {
                    continue; // lost in the socket buffer
                }
                let now = t(delivered * 2_000 / 7_143);
                delivered += 1;
                let src = IpAddr::V4((0x7f00_0100 + i).into());
                if let PolicyVerdict::RateLimited { new_ban: true, .. } =
                    p.check_request(now, src, None)
                {
                    banned.insert(src);
                }
            }
        }
        banned.len()
    };
    assert_eq!(run(&appliance_policy()), 200);
    // Without the budget (the rate alone) nobody is banned: what the budget is for.
    let mut rate_only = appliance_policy();
    rate_only.unknown_source_budget = 1_000_000;
    rate_only.unknown_source_window = Duration::from_secs(1);
    assert_eq!(run(&rate_only), 0);
}

#[test]
fn trunk_call_limits() {
    let limited = |name: &str, max: Option<u32>| engine_config(&[(name, max)]).trunks.remove(0);
    let (a, b, z) = (
        limited("a", Some(2)),
        limited("b", None),
        limited("z", Some(0)),
    );
    let mut l = TrunkLimits::new();
    assert!(l.try_acquire(&a));
    assert!(l.try_acquire(&a));
    assert!(!l.try_acquire(&a));
    assert_eq!(l.active("a"), 2);
    assert_eq!(l.rejected("a"), 1);
    l.release("a");
    assert!(l.try_acquire(&a));
    // Unlimited trunk.
    for _ in 0..10_000 {
        assert!(l.try_acquire(&b));
    }
    assert_eq!(l.active("b"), 10_000);
    // Zero means no calls.
    assert!(!l.try_acquire(&z));
    // Over-release saturates; an unknown name is nothing.
    l.release("z");
    l.release("nope");
    assert_eq!(l.active("z"), 0);
    assert_eq!(l.active("nope"), 0);
}

#[test]
fn reload_keeps_bans_when_table_shape_is_unchanged() {
    let cfg = PolicyConfig {
        unknown_source: UnknownSource::Reject403,
        rate_limit_per_source: Some(1),
        ban_duration: Duration::from_secs(100),
        ..PolicyConfig::default()
    };
    let mut p = Policy::new(&cfg);
    let src = ip("192.0.2.9");
    // Default burst is twice the rate.
    assert_eq!(p.check_request(t(0), src, None), PolicyVerdict::Reject403);
    assert_eq!(p.check_request(t(0), src, None), PolicyVerdict::Reject403);
    assert!(matches!(
        p.check_request(t(0), src, None),
        PolicyVerdict::RateLimited { .. }
    ));
    let mut cfg2 = cfg.clone();
    cfg2.unknown_source = UnknownSource::Drop;
    cfg2.rate_limit_per_source = Some(50);
    p.set_config(&cfg2);
    assert!(p.banned_until(t(1), src).is_some(), "ban survives reload");
    assert_eq!(
        p.check_request(t(1), ip("192.0.2.10"), None),
        PolicyVerdict::Drop
    );
    // Rate limiting switched off: bans go with it.
    cfg2.rate_limit_per_source = None;
    p.set_config(&cfg2);
    assert_eq!(p.bans(), 0);
    assert_eq!(p.check_request(t(2), src, None), PolicyVerdict::Drop);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the traffic, the table stays within its bound, its LRU
        /// list stays consistent, and a ban is never shorter than configured.
        #[test]
        fn table_invariants(ops in proptest::collection::vec((0u32..64, 0u64..200), 1..600), cap in 1usize..32) {
            let mut p = Policy::with_settings(UnknownSource::Drop, Some(limited(5, 3, 2, cap)));
            let mut now = 0u64;
            for (src, dt) in ops {
                now += dt;
                let ip = IpAddr::V4((0xc000_0200 + src).into());
                if let PolicyVerdict::RateLimited { until, new_ban: true } = p.check_request(t(now), ip, Some(TrunkId(0))) {
                    prop_assert_eq!(until, t(now + 2_000));
                }
                prop_assert!(p.tracked_sources() <= cap);
                prop_assert_eq!(p.check_invariants(), Ok(()));
            }
        }
    }
}

fn engine_config(trunks: &[(&str, Option<u32>)]) -> portcullis_engine::config::EngineConfig {
    use portcullis_engine::config::{
        EngineConfig, ListenerInfo, MediaMode, NodeSettings, TimerSettings, TrunkConfig,
    };
    use portcullis_engine::transaction::Transport;
    EngineConfig {
        node: NodeSettings {
            name: "t".into(),
            fqdn: None,
            user_agent: "t".into(),
        },
        listeners: vec![ListenerInfo {
            transport: Transport::Udp,
            addr: "127.0.0.1:5060".parse().unwrap(),
        }],
        trunks: trunks
            .iter()
            .enumerate()
            .map(|(i, (name, max))| TrunkConfig {
                name: (*name).into(),
                address: format!("127.0.0.{}:5060", i + 2).parse().unwrap(),
                transport: Transport::Udp,
                media: MediaMode::Rtp,
                acl: Vec::new(),
                max_calls: *max,
                auth_inbound: None,
                auth_outbound: None,
                tls_server_name: None,
                fqdn_contact: None,
                learning: Default::default(),
                targets: Default::default(),
                policy: portcullis_engine::trunk_policy::TrunkPolicy::default(),
                realm: Default::default(),
                listener: None,
            })
            .collect(),
        routes: Vec::new(),
        route_rules: Vec::new(),
        policy: PolicyConfig::default(),
        timers: TimerSettings::default(),
        teams: None,
        registrations: Vec::new(),
    }
}

#[test]
fn trunk_limits_follow_config_and_reload_by_name() {
    let old = engine_config(&[("a", Some(1)), ("b", Some(5))]);
    let mut l = TrunkLimits::new();
    assert!(l.try_acquire(&old.trunks[0]));
    assert!(!l.try_acquire(&old.trunks[0]));
    assert!(l.try_acquire(&old.trunks[1]));
    assert!(l.try_acquire(&old.trunks[1]));
    // Reload: "b" moves to index 0 with limit 2, "a" becomes unlimited at 1: the
    // calls in progress count under their names against the new limits.
    let new = engine_config(&[("b", Some(2)), ("a", None)]);
    assert_eq!(l.active(&new.trunks[0].name), 2, "b's calls carried over");
    assert_eq!(l.active(&new.trunks[1].name), 1, "a's call carried over");
    assert!(!l.try_acquire(&new.trunks[0]));
    assert!(l.try_acquire(&new.trunks[1]));
    // An old-generation call releases under its name.
    l.release(&old.trunks[1].name);
    assert!(l.try_acquire(&new.trunks[0]));
}

#[test]
fn engine_config_policy_limits_unknown_sources_not_trunks() {
    let cfg = PolicyConfig {
        unknown_source: UnknownSource::Drop,
        rate_limit_per_source: Some(5),
        ban_duration: Duration::from_secs(30),
        ..PolicyConfig::default()
    };
    let mut p = Policy::new(&cfg);
    // A busy trunk (1000 datagrams in one second) is never banned.
    for i in 0..1000 {
        assert_eq!(
            p.check_request(t(i), ip("198.51.100.1"), Some(TrunkId(0))),
            PolicyVerdict::Allow
        );
    }
    // A scanner is: burst of 10 (twice the rate), then banned for 30 s.
    let scanner = ip("203.0.113.50");
    for _ in 0..10 {
        assert_eq!(p.check_request(t(0), scanner, None), PolicyVerdict::Drop);
    }
    assert_eq!(
        p.check_request(t(0), scanner, None),
        PolicyVerdict::RateLimited {
            until: t(30_000),
            new_ban: true
        }
    );
    // Even if it later becomes a trunk's source, the ban holds until it ends.
    assert!(matches!(
        p.check_request(t(1), scanner, Some(TrunkId(0))),
        PolicyVerdict::RateLimited { new_ban: false, .. }
    ));
    assert_eq!(
        p.check_request(t(30_000), scanner, Some(TrunkId(0))),
        PolicyVerdict::Allow
    );
}

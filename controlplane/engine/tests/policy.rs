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
fn table_is_bounded_with_lru_eviction() {
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
    let b = ip("192.0.2.2"); // banned, then never seen again: evicted
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
            // A stays most recently used and keeps its ban.
            assert!(matches!(
                p.check_request(t(2), a, Some(TrunkId(0))),
                PolicyVerdict::RateLimited { new_ban: false, .. }
            ));
        }
    }
    assert_eq!(p.tracked_sources(), cap);
    assert!(p.stats().evictions >= 4000);
    assert!(p.banned_until(t(3), a).is_some());
    assert_eq!(p.banned_until(t(3), b), None, "LRU entry evicted");
    assert_eq!(
        p.check_request(t(3), b, Some(TrunkId(0))),
        PolicyVerdict::Allow
    );
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
            })
            .collect(),
        routes: Vec::new(),
        route_rules: Vec::new(),
        policy: PolicyConfig::default(),
        timers: TimerSettings::default(),
        teams: None,
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

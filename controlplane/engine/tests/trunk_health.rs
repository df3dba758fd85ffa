//! Trunk targets in virtual time: OPTIONS pings through the B2BUA, targets
//! going down after N missed pings and back up after M answers, `503` +
//! Retry-After hold-off per target, call timeouts marking a target down, DNS
//! answers pushed in, and the selection strategies over many seeded draws.

mod b2bua_harness;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use b2bua_harness::*;
use portcullis_engine::b2bua::CallEvent;
use portcullis_engine::config::{TargetsConfig, TrunkConfig};
use portcullis_engine::entropy::{id_u64, SeededEntropy};
use portcullis_engine::routing::{
    HealthPolicy, Resolution, Strategy, TargetSpec, TargetState, TargetTable, TargetUpdate,
};
use portcullis_engine::time::Timestamp;
use portcullis_engine::transaction::{make_response, TxEvent, TxId};

const INTERVAL: Duration = Duration::from_secs(5);

fn spec(addr: &str, priority: u16, weight: u16) -> TargetSpec {
    TargetSpec {
        addr: sa(addr),
        priority,
        weight,
    }
}

/// Trunk `b1` reaches B1 and B2 (`strategy`), pinged every 5 s, 2 misses down, 2 answers up;
/// route `out` goes to `b1` only.
fn harness(strategy: Strategy) -> H {
    H::with(|c| {
        c.trunks[1].targets = TargetsConfig {
            strategy,
            fixed: vec![spec(B1, 0, 1), spec(B2, 1, 1)],
            dns: None,
            health: HealthPolicy::pinged(INTERVAL, 2, 2),
        };
        c.routes[0].targets = vec!["b1".into()];
    })
}

/// Answers every OPTIONS the peer at `addr` has not answered yet with `status`.
fn answer_pings(h: &mut H, addr: &str, status: u16, done: &mut HashSet<(String, TxId)>) -> usize {
    let pending: Vec<_> = h
        .peer_at(addr)
        .requests("OPTIONS")
        .into_iter()
        .filter(|(tx, _)| !done.contains(&(addr.to_owned(), *tx)))
        .collect();
    for (tx, req) in &pending {
        done.insert((addr.to_owned(), *tx));
        let now = h.now;
        let mut r = make_response(req, status, "X", Some("p"));
        if status == 503 {
            r.push_header("Retry-After", "30");
        }
        h.peer_at(addr).layer.respond(now, *tx, &r).unwrap();
    }
    h.pump();
    pending.len()
}

fn state(h: &H, addr: &str) -> TargetState {
    h.sbc
        .trunk_target_status("b1")
        .unwrap()
        .entries
        .iter()
        .find(|e| e.spec.addr == sa(addr))
        .unwrap()
        .probe
        .state()
}

fn health_events(h: &H) -> Vec<(String, bool)> {
    h.events
        .iter()
        .filter_map(|e| match e {
            CallEvent::TargetHealth { target, up, .. } => Some((target.to_string(), *up)),
            _ => None,
        })
        .collect()
}

#[test]
fn missed_pings_demote_answers_promote_and_calls_follow() {
    let mut h = harness(Strategy::Priority);
    let mut done = HashSet::new();
    h.advance(Duration::from_millis(10));
    assert_eq!(h.b1.requests("OPTIONS").len(), 1, "B1 pinged at once");
    assert_eq!(h.b2.requests("OPTIONS").len(), 1, "B2 pinged at once");
    let ping = &h.b1.requests("OPTIONS")[0].1;
    assert!(ping.header("Call-ID").is_some() && ping.header("Max-Forwards") == Some("70"));
    answer_pings(&mut h, B1, 200, &mut done);
    answer_pings(&mut h, B2, 200, &mut done);
    // A call goes to B1 (priority 0).
    h.invite_from(A, "100", Some(&sdp("192.168.1.10", 10_000, "")));
    assert_eq!(h.b1.requests("INVITE").len(), 1);
    // B1 stops answering: one miss is not enough, two are.
    for _ in 0..2 {
        h.advance(INTERVAL);
        answer_pings(&mut h, B2, 200, &mut done);
    }
    assert_eq!(state(&h, B1), TargetState::Up, "one miss only so far");
    h.advance(INTERVAL);
    answer_pings(&mut h, B2, 200, &mut done);
    assert_eq!(state(&h, B1), TargetState::Down);
    assert_eq!(health_events(&h), vec![(B1.to_owned(), false)]);
    let b1_invites = h.b1.requests("INVITE").len();
    h.invite_from(A, "101", Some(&sdp("192.168.1.10", 10_002, "")));
    assert_eq!(
        h.b1.requests("INVITE").len(),
        b1_invites,
        "down target skipped"
    );
    assert_eq!(h.b2.requests("INVITE").len(), 1, "call went to B2");
    // B1 answers again: one answer is not enough (recovery_count 2), two are.
    h.advance(INTERVAL);
    answer_pings(&mut h, B1, 200, &mut done);
    assert_eq!(state(&h, B1), TargetState::Down);
    h.advance(INTERVAL);
    answer_pings(&mut h, B1, 200, &mut done);
    assert_eq!(state(&h, B1), TargetState::Up);
    assert_eq!(
        health_events(&h),
        vec![(B1.to_owned(), false), (B1.to_owned(), true)]
    );
    h.invite_from(A, "102", Some(&sdp("192.168.1.10", 10_004, "")));
    assert_eq!(h.b1.requests("INVITE").len(), b1_invites + 1, "back on B1");
    let st = h.sbc.trunk_target_status("b1").unwrap();
    let b1 = &st.entries[0];
    assert!(b1.probe.counters().misses_total >= 2);
    assert!(b1.probe.counters().pings_sent >= 5);
}

#[test]
fn all_targets_down_the_call_gets_503() {
    let mut h = harness(Strategy::Weighted);
    for _ in 0..3 {
        h.advance(INTERVAL);
    }
    assert_eq!(state(&h, B1), TargetState::Down);
    assert_eq!(state(&h, B2), TargetState::Down);
    h.invite_from(A, "100", Some(&sdp("192.168.1.10", 10_000, "")));
    assert!(h.b1.requests("INVITE").is_empty() && h.b2.requests("INVITE").is_empty());
    assert_eq!(h.a.statuses().last(), Some(&503));
    assert!(h.sbc.trunk_target_status("b1").unwrap().unavailable >= 1);
}

#[test]
fn ping_503_with_retry_after_holds_the_target_off() {
    let mut h = harness(Strategy::Priority);
    let mut done = HashSet::new();
    h.advance(Duration::from_millis(10));
    answer_pings(&mut h, B1, 503, &mut done);
    answer_pings(&mut h, B2, 200, &mut done);
    assert_eq!(
        state(&h, B1),
        TargetState::Up,
        "a 503 is an answer: not down"
    );
    h.invite_from(A, "100", Some(&sdp("192.168.1.10", 10_000, "")));
    assert!(h.b1.requests("INVITE").is_empty(), "held off");
    assert_eq!(h.b2.requests("INVITE").len(), 1);
    assert_eq!(h.sbc.trunks_held_off(h.now).len(), 1);
    for _ in 0..7 {
        h.advance(INTERVAL);
        answer_pings(&mut h, B1, 200, &mut done);
        answer_pings(&mut h, B2, 200, &mut done);
    }
    h.invite_from(A, "101", Some(&sdp("192.168.1.10", 10_002, "")));
    assert_eq!(h.b1.requests("INVITE").len(), 1, "hold-off over");
}

#[test]
fn a_call_timeout_marks_the_target_down_and_tries_the_next_target() {
    let mut h = harness(Strategy::Priority);
    let mut done = HashSet::new();
    h.advance(Duration::from_millis(10));
    answer_pings(&mut h, B1, 200, &mut done);
    answer_pings(&mut h, B2, 200, &mut done);
    // B1 swallows everything: the INVITE times out (Timer B); pings go unanswered too.
    h.drop_to.push(sa(B1));
    h.invite_from(A, "100", Some(&sdp("192.168.1.10", 10_000, "")));
    for _ in 0..7 {
        h.advance(INTERVAL);
        answer_pings(&mut h, B2, 200, &mut done);
    }
    assert_eq!(state(&h, B1), TargetState::Down);
    assert_eq!(h.b2.requests("INVITE").len(), 1, "same trunk, next target");
    assert!(h.sbc.trunk_target_status("b1").unwrap().failovers >= 1);
}

#[test]
fn dns_targets_arrive_by_command_and_keep_their_health() {
    let mut h = H::with(|c| {
        c.trunks[1].targets = TargetsConfig {
            strategy: Strategy::Weighted,
            fixed: Vec::new(),
            dns: Some("carrier.example".into()),
            health: HealthPolicy::unpinged(),
        };
        c.routes[0].targets = vec!["b1".into()];
    });
    // Not resolved yet: no target, the call gets 503 and status says why.
    let st = h.sbc.trunk_target_status("b1").unwrap();
    assert_eq!(st.resolution, Resolution::Pending);
    h.invite_from(A, "100", Some(&sdp("192.168.1.10", 10_000, "")));
    assert_eq!(h.a.statuses().last(), Some(&503));
    let now = h.now;
    let expires = now + Duration::from_secs(60);
    assert!(h.sbc.set_trunk_targets(
        now,
        "b1",
        TargetUpdate::Resolved {
            targets: vec![spec(B2, 10, 5)],
            expires,
        }
    ));
    assert!(!h
        .sbc
        .set_trunk_targets(now, "a", TargetUpdate::Failed("x".into())));
    h.invite_from(A, "101", Some(&sdp("192.168.1.10", 10_002, "")));
    assert_eq!(h.b2.requests("INVITE").len(), 1, "resolved target used");
    // A failed re-resolution keeps the targets and says so.
    let now = h.now;
    h.sbc
        .set_trunk_targets(now, "b1", TargetUpdate::Failed("SERVFAIL".into()));
    let st = h.sbc.trunk_target_status("b1").unwrap();
    assert_eq!(st.entries.len(), 1);
    assert!(matches!(&st.resolution, Resolution::Failed { reason } if reason == "SERVFAIL"));
    // Resolved to nothing: no target.
    h.sbc.set_trunk_targets(
        now,
        "b1",
        TargetUpdate::Resolved {
            targets: Vec::new(),
            expires,
        },
    );
    assert!(h.sbc.trunk_target_status("b1").unwrap().entries.is_empty());
}

fn table(strategy: Strategy, specs: Vec<TargetSpec>) -> TargetTable {
    let mut t = TrunkConfig {
        targets: TargetsConfig {
            strategy,
            fixed: specs,
            dns: None,
            health: HealthPolicy::unpinged(),
        },
        ..trunk(
            "carrier",
            "192.0.2.1:5060",
            portcullis_engine::config::MediaMode::Rtp,
        )
    };
    t.name = "carrier".into();
    let mut tt = TargetTable::default();
    tt.sync(&[t], Timestamp::ZERO);
    tt
}

#[test]
fn weighted_split_within_tolerance_over_many_seeded_draws() {
    let specs = vec![
        spec("192.0.2.1:5060", 0, 1),
        spec("192.0.2.2:5060", 0, 2),
        spec("192.0.2.3:5060", 0, 3),
        spec("192.0.2.9:5060", 1, 100),
    ];
    let mut tt = table(Strategy::Weighted, specs);
    let mut e = SeededEntropy::new(2026);
    let mut n: HashMap<String, u32> = HashMap::new();
    let draws = 60_000;
    for _ in 0..draws {
        let a = tt
            .select("carrier", Timestamp::ZERO, &[], || id_u64(&mut e))
            .unwrap();
        *n.entry(a.to_string()).or_default() += 1;
    }
    assert_eq!(
        n.get("192.0.2.9:5060"),
        None,
        "a lower priority gets nothing"
    );
    for (addr, w) in [
        ("192.0.2.1:5060", 1.0),
        ("192.0.2.2:5060", 2.0),
        ("192.0.2.3:5060", 3.0),
    ] {
        let share = f64::from(n[addr]) / f64::from(draws);
        let want = w / 6.0;
        assert!((share - want).abs() < 0.01, "{addr}: {share} vs {want}");
    }
    // A held-off target gets none; the others share its part.
    tt.hold_off(
        "carrier",
        sa("192.0.2.3:5060"),
        Timestamp::ZERO,
        Duration::from_secs(60),
    );
    for _ in 0..1000 {
        let a = tt
            .select("carrier", Timestamp::ZERO, &[], || id_u64(&mut e))
            .unwrap();
        assert_ne!(a, sa("192.0.2.3:5060"));
    }
    // Excluding what a call tried.
    let tried = [sa("192.0.2.1:5060"), sa("192.0.2.2:5060")];
    let a = tt.select("carrier", Timestamp::ZERO, &tried, || id_u64(&mut e));
    assert_eq!(
        a,
        Some(sa("192.0.2.9:5060")),
        "the next priority when the first is spent"
    );
}

#[test]
fn least_calls_and_priority() {
    let specs = vec![spec("192.0.2.1:5060", 0, 1), spec("192.0.2.2:5060", 0, 1)];
    let mut tt = table(Strategy::LeastCalls, specs.clone());
    let pick = |tt: &mut TargetTable| {
        let a = tt.select("carrier", Timestamp::ZERO, &[], || 0).unwrap();
        tt.call_bound("carrier", a);
        a
    };
    let first = pick(&mut tt);
    let second = pick(&mut tt);
    assert_ne!(first, second, "the idle target gets the second call");
    tt.call_unbound("carrier", first);
    assert_eq!(pick(&mut tt), first, "fewest calls first");
    let mut p = table(Strategy::Priority, specs);
    for _ in 0..10 {
        let a = p.select("carrier", Timestamp::ZERO, &[], || 99).unwrap();
        assert_eq!(
            a,
            sa("192.0.2.1:5060"),
            "ordered failover: always the first"
        );
    }
}

/// Peers' OPTIONS events must not disturb their INVITE bookkeeping (sanity of the helper).
#[test]
fn pings_are_options_requests() {
    let mut h = harness(Strategy::Priority);
    h.advance(Duration::from_millis(10));
    assert!(h
        .b1
        .events
        .iter()
        .any(|e| matches!(e, TxEvent::Request { request, .. } if request.method().map(|m| m.as_str()) == Some("OPTIONS"))));
}

//! Deterministic simulation: many calls from a SimUa caller through the B2BUA
//! to a SimUa callee over an impaired network (20% loss, 20% duplication,
//! 10–400 ms delay → reordering), over many seeds. Every call must end as RFC
//! 3261 allows, and the B2BUA must not leak: no active call, every allocated
//! media pair released, exactly one CDR per call, every held call forgotten.

#[path = "b2bua_harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use harness::{config, sa, FakeMedia, A, B1, SBC};
use portcullis_engine::b2bua::{B2bua, CallEvent};
use portcullis_engine::entropy::SeededEntropy;
use portcullis_engine::sim::ua::{Outcome, Scenario, SimUa};
use portcullis_engine::sim::{NetConfig, Network, RunEnd, Sim, SimNode};
use portcullis_engine::time::Timestamp;
use portcullis_engine::transaction::{Timer, Transmit, Transport, TxConfig};

#[derive(Debug)]
enum Node {
    Ua(Box<SimUa>),
    Sbc(Box<B2bua<FakeMedia>>, Vec<CallEvent>),
}

impl SimNode for Node {
    fn addr(&self) -> SocketAddr {
        match self {
            Node::Ua(u) => u.addr(),
            Node::Sbc(s, _) => s.addr(),
        }
    }
    fn handle_datagram(&mut self, now: Timestamp, from: SocketAddr, t: Transport, bytes: &[u8]) {
        match self {
            Node::Ua(u) => u.handle_datagram(now, from, t, bytes),
            Node::Sbc(s, ev) => {
                SimNode::handle_datagram(&mut **s, now, from, t, bytes);
                while let Some(e) = s.poll_event() {
                    ev.push(e);
                }
            }
        }
    }
    fn handle_timeout(&mut self, now: Timestamp) {
        match self {
            Node::Ua(u) => u.handle_timeout(now),
            Node::Sbc(s, ev) => {
                SimNode::handle_timeout(&mut **s, now);
                while let Some(e) = s.poll_event() {
                    ev.push(e);
                }
            }
        }
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        match self {
            Node::Ua(u) => u.poll_transmit(),
            Node::Sbc(s, _) => SimNode::poll_transmit(&mut **s),
        }
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        match self {
            Node::Ua(u) => u.poll_timeout(),
            Node::Sbc(s, _) => SimNode::poll_timeout(&**s),
        }
    }
}

const SCENARIOS: [Scenario; 4] = [
    Scenario::Answer {
        hold: Duration::from_secs(2),
    },
    Scenario::Busy,
    Scenario::Cancel,
    Scenario::Options,
];

fn run(seed: u64, net: NetConfig, per_scenario: usize) -> (Sim<Node>, RunEnd) {
    let mut cfg = config();
    cfg.routes[0].targets = vec!["b1".into()];
    let sbc = B2bua::new(
        std::sync::Arc::new(cfg),
        FakeMedia::default(),
        SeededEntropy::new(seed ^ 0x5bc),
    )
    .unwrap();
    let mut uac = SimUa::new(
        sa(A),
        seed.wrapping_mul(2).wrapping_add(1),
        TxConfig::default(),
    );
    let uas = SimUa::new(
        sa(B1),
        seed.wrapping_mul(2).wrapping_add(2),
        TxConfig::default(),
    );
    for (i, s) in SCENARIOS
        .iter()
        .cycle()
        .take(SCENARIOS.len() * per_scenario)
        .enumerate()
    {
        uac.start(Timestamp::from_millis(i as u64 * 7), sa(SBC), *s);
    }
    let nodes = vec![
        Node::Ua(Box::new(uac)),
        Node::Sbc(Box::new(sbc), Vec::new()),
        Node::Ua(Box::new(uas)),
    ];
    let mut sim = Sim::new(Network::new(net, seed), nodes);
    let end = sim.run(Timestamp::from_millis(3_600_000), 2_000_000);
    (sim, end)
}

/// What RFC 3261 allows the caller to see through a B2BUA on a lossy network.
fn allowed(s: Scenario, o: Outcome) -> bool {
    let timed_out = |m: &str, t: Timer| matches!(o, Outcome::TimedOut { method, timer, .. } if method == m && timer == t);
    match s {
        // BYE may be answered 481 when the callee's leg was already torn down
        // (its 2xx never ACKed: Timer L / H at the B2BUA).
        Scenario::Answer { .. } => {
            o == Outcome::Completed
                || timed_out("INVITE", Timer::B)
                || timed_out("BYE", Timer::F)
                || o == Outcome::Failed(481)
                || o == Outcome::Failed(408)
        }
        // The B leg's INVITE may time out (408 relayed) when the loss hits it.
        Scenario::Busy => {
            o == Outcome::Busy || timed_out("INVITE", Timer::B) || o == Outcome::Failed(408)
        }
        Scenario::Cancel => {
            o == Outcome::Cancelled
                || timed_out("INVITE", Timer::B)
                || o == Outcome::Failed(408)
                || o == Outcome::Failed(480)
        }
        Scenario::Options => o == Outcome::OptionsOk || timed_out("OPTIONS", Timer::F),
    }
}

fn check(seed: u64, sim: &Sim<Node>, end: RunEnd) -> BTreeMap<String, u32> {
    assert_eq!(end, RunEnd::Idle, "seed {seed}: simulation did not settle");
    let mut hist = BTreeMap::new();
    let (Node::Ua(uac), Node::Sbc(sbc, events), Node::Ua(uas)) =
        (&sim.nodes[0], &sim.nodes[1], &sim.nodes[2])
    else {
        panic!("node layout");
    };
    for (s, o) in uac.outcomes() {
        assert!(allowed(s, o), "seed {seed}: {s:?} ended {o:?}");
        *hist.entry(format!("{o:?}")).or_insert(0) += 1;
    }
    assert!(
        uac.log.duplicates.is_empty(),
        "seed {seed}: {:?}",
        uac.log.duplicates
    );
    assert!(
        uas.log.duplicates.is_empty(),
        "seed {seed}: {:?}",
        uas.log.duplicates
    );
    assert_eq!(sbc.active_calls(), 0, "seed {seed}: active calls left");
    assert_eq!(
        sbc.held_calls(),
        0,
        "seed {seed}: ended calls never forgotten"
    );
    let media = sbc.media();
    assert!(
        media.live.is_empty(),
        "seed {seed}: media leak {:?}",
        media.live
    );
    assert_eq!(media.released.len() as u64, media.allocated);
    let started = events
        .iter()
        .filter(|e| matches!(e, CallEvent::CallStarted { .. }))
        .count();
    let mut ended = BTreeMap::new();
    for e in events {
        if let CallEvent::CallEnded { cdr } = e {
            *ended.entry(cdr.call_id).or_insert(0) += 1;
        }
    }
    assert_eq!(ended.len(), started, "seed {seed}: one CDR per call");
    assert!(
        ended.values().all(|n| *n == 1),
        "seed {seed}: duplicate CDR"
    );
    hist
}

#[test]
fn perfect_network_every_call_completes() {
    let (sim, end) = run(7, NetConfig::perfect(), 5);
    let hist = check(7, &sim, end);
    assert_eq!(hist.get("Completed"), Some(&5), "{hist:?}");
    assert_eq!(hist.get("Busy"), Some(&5), "{hist:?}");
    assert_eq!(hist.get("Cancelled"), Some(&5), "{hist:?}");
    assert_eq!(hist.get("OptionsOk"), Some(&5), "{hist:?}");
}

#[test]
fn hostile_network_many_seeds_no_leak() {
    let mut total: BTreeMap<String, u32> = BTreeMap::new();
    for seed in 0..60 {
        let (sim, end) = run(seed, NetConfig::hostile(), 3);
        for (k, v) in check(seed, &sim, end) {
            *total.entry(k).or_insert(0) += v;
        }
    }
    // The hostile network must still let most calls through.
    let completed = total.get("Completed").copied().unwrap_or(0);
    assert!(completed >= 170, "{total:?}");
    assert!(
        total.get("Cancelled").copied().unwrap_or(0) >= 150,
        "{total:?}"
    );
}

#[test]
fn hostile_network_hundred_concurrent_calls() {
    for seed in 100..106 {
        let (sim, end) = run(seed, NetConfig::hostile(), 25);
        let hist = check(seed, &sim, end);
        let n: u32 = hist.values().sum();
        assert_eq!(n, 100, "seed {seed}: {hist:?}");
    }
}

//! Deterministic simulation: UAC and UAS over an impaired in-memory network
//! (20% loss, 20% duplication, 10–400 ms random delay → reordering), 200 seeds.
//! Every call must end exactly as RFC 3261 allows, with no transaction leak and
//! no duplicate final response, ACK or new-request event reaching the TU.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use portcullis_engine::sim::ua::{Outcome, Scenario, SimUa};
use portcullis_engine::sim::{NetConfig, Network, RunEnd, Sim};
use portcullis_engine::time::Timestamp;
use portcullis_engine::transaction::{Timer, Transport, TxConfig, TxKind};

const T1X64: Duration = Duration::from_secs(32);

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

const SCENARIOS: [Scenario; 4] = [
    Scenario::Answer {
        hold: Duration::from_secs(1),
    },
    Scenario::Busy,
    Scenario::Cancel,
    Scenario::Options,
];

fn run(seed: u64, cfg: NetConfig) -> (Sim<SimUa>, RunEnd) {
    run_over(seed, cfg, Transport::Udp)
}

fn run_over(seed: u64, cfg: NetConfig, transport: Transport) -> (Sim<SimUa>, RunEnd) {
    run_calls(seed, cfg, transport, 1)
}

/// `per_scenario` calls of each scenario, started 10 ms apart.
fn run_calls(
    seed: u64,
    cfg: NetConfig,
    transport: Transport,
    per_scenario: usize,
) -> (Sim<SimUa>, RunEnd) {
    let (a, b) = (addr("10.0.0.1:5060"), addr("10.0.0.2:5060"));
    let mut uac = SimUa::new(a, seed.wrapping_mul(2).wrapping_add(1), TxConfig::default());
    let mut uas = SimUa::new(b, seed.wrapping_mul(2).wrapping_add(2), TxConfig::default());
    uac.transport = transport;
    uas.transport = transport;
    for (i, s) in SCENARIOS
        .iter()
        .cycle()
        .take(SCENARIOS.len() * per_scenario)
        .enumerate()
    {
        uac.start(Timestamp::from_millis(i as u64 * 10), b, *s);
    }
    let mut sim = Sim::new(Network::new(cfg, seed), vec![uac, uas]);
    let end = sim.run(Timestamp::from_millis(600_000), 1_000_000);
    (sim, end)
}

fn allowed(s: Scenario, o: Outcome, harsh: bool) -> bool {
    let timed_out = |m: &str, t: Timer| matches!(o, Outcome::TimedOut { method, timer, after } if method == m && timer == t && after == T1X64);
    match s {
        Scenario::Answer { .. } => {
            o == Outcome::Completed || timed_out("INVITE", Timer::B) || timed_out("BYE", Timer::F)
        }
        Scenario::Busy => o == Outcome::Busy || timed_out("INVITE", Timer::B),
        // Harsh: the UAS no-answer timer may beat a late CANCEL (480).
        Scenario::Cancel => {
            o == Outcome::Cancelled
                || timed_out("INVITE", Timer::B)
                || (harsh && o == Outcome::Failed(480))
        }
        Scenario::Options => o == Outcome::OptionsOk || timed_out("OPTIONS", Timer::F),
    }
}

/// Invariants that hold for every seed and network.
fn check(seed: u64, sim: &Sim<SimUa>, end: RunEnd, harsh: bool) {
    assert_eq!(end, RunEnd::Idle, "seed {seed}: simulation did not go idle");
    for ua in &sim.nodes {
        let st = ua.layer.stats();
        assert!(
            ua.layer.is_empty(),
            "seed {seed}: {} transactions leaked at {}",
            ua.layer.len(),
            ua.addr
        );
        for kind in TxKind::ALL {
            assert_eq!(
                st.created(kind),
                st.terminated(kind),
                "seed {seed}: {kind:?} created != terminated"
            );
        }
        assert!(
            ua.log.duplicates.is_empty(),
            "seed {seed}: duplicate TU events {:?}",
            ua.log.duplicates
        );
        for (k, n) in &ua.log.requests {
            assert_eq!(
                *n, 1,
                "seed {seed}: request {k:?} created {n} server transactions"
            );
        }
        assert_eq!(st.malformed, 0, "seed {seed}: malformed traffic");
    }
    let (uac, uas) = (&sim.nodes[0], &sim.nodes[1]);
    let mut bye_lost = 0;
    for (s, o) in uac.outcomes() {
        assert!(allowed(s, o, harsh), "seed {seed}: {s:?} ended as {o:?}");
        if matches!(o, Outcome::TimedOut { method: "BYE", .. }) {
            bye_lost += 1;
        }
    }
    assert!(uac.dialogs.is_empty(), "seed {seed}: UAC dialogs leaked");
    // A UAS dialog may only outlive the call when the BYE transaction failed
    // (BYE never arrived; or it arrived and every 200 was lost).
    assert!(
        uas.dialogs.len() <= bye_lost,
        "seed {seed}: UAS dialogs left without a lost BYE"
    );
    // The answered INVITE was ACKed, or Timer L reported the missing ACK.
    let answered = usize::from(uac.outcomes().any(|(s, o)| {
        matches!(s, Scenario::Answer { .. })
            && o != Outcome::TimedOut {
                method: "INVITE",
                timer: Timer::B,
                after: T1X64,
            }
    }));
    assert!(
        uas.log.acks + uas.log.ack_timeouts >= answered as u64,
        "seed {seed}: 2xx neither ACKed nor timed out"
    );
}

#[test]
fn two_hundred_seeds_under_loss_duplication_and_reordering() {
    let mut tally: BTreeMap<String, u32> = BTreeMap::new();
    let (mut retrans, mut absorbed, mut sent, mut dropped, mut duplicated) = (0, 0, 0, 0, 0);
    for seed in 0..200 {
        let (sim, end) = run(seed, NetConfig::hostile());
        check(seed, &sim, end, false);
        for (s, o) in sim.nodes[0].outcomes() {
            *tally.entry(format!("{s:?} -> {o:?}")).or_default() += 1;
        }
        for ua in &sim.nodes {
            retrans += ua.layer.stats().retransmissions;
            absorbed += ua.layer.stats().absorbed;
        }
        sent += sim.net.stats.sent;
        dropped += sim.net.stats.dropped;
        duplicated += sim.net.stats.duplicated;
    }
    println!("outcomes over 200 seeds: {tally:#?}");
    println!("retransmissions {retrans}, absorbed {absorbed}, dropped {dropped}, duplicated {duplicated}");
    // The impairment really happened and the layer really repaired it.
    let pct = |n: u64, of: u64| n * 100 / of.max(1);
    assert!(
        (15..=25).contains(&pct(dropped, sent)),
        "loss {dropped}/{sent}"
    );
    assert!(
        (15..=25).contains(&pct(duplicated, sent - dropped)),
        "duplication {duplicated}/{sent}"
    );
    assert!(
        retrans > 500 && absorbed > 500,
        "loss and duplicates were repaired/absorbed"
    );
    let ok = |k: &str| tally.get(k).copied().unwrap_or(0);
    // With 20% loss, a call fails only if ~7-11 consecutive datagrams are lost.
    assert!(ok("Answer { hold: 1s } -> Completed") >= 195, "{tally:?}");
    assert!(ok("Busy -> Busy") >= 195, "{tally:?}");
    assert!(ok("Cancel -> Cancelled") >= 195, "{tally:?}");
    assert!(ok("Options -> OptionsOk") >= 195, "{tally:?}");
}

#[test]
fn perfect_network_needs_no_retransmission() {
    let (sim, end) = run(1, NetConfig::perfect());
    check(1, &sim, end, false);
    let outcomes: Vec<Outcome> = sim.nodes[0].outcomes().map(|(_, o)| o).collect();
    assert_eq!(
        outcomes,
        vec![
            Outcome::Completed,
            Outcome::Busy,
            Outcome::Cancelled,
            Outcome::OptionsOk
        ]
    );
    for ua in &sim.nodes {
        assert_eq!(ua.layer.stats().retransmissions, 0);
    }
    assert_eq!(sim.nodes[1].log.acks, 1);
}

#[test]
fn black_hole_times_out_with_timers_b_and_f() {
    let cfg = NetConfig {
        loss: 1.0,
        ..NetConfig::perfect()
    };
    let (sim, end) = run(3, cfg);
    check(3, &sim, end, false);
    let outcomes: Vec<Outcome> = sim.nodes[0].outcomes().map(|(_, o)| o).collect();
    let b = Outcome::TimedOut {
        method: "INVITE",
        timer: Timer::B,
        after: T1X64,
    };
    let f = Outcome::TimedOut {
        method: "OPTIONS",
        timer: Timer::F,
        after: T1X64,
    };
    assert_eq!(outcomes, vec![b, b, b, f]);
    // INVITE: 1 + 6 Timer A retransmissions each; OPTIONS: 1 + 10 Timer E ones.
    assert_eq!(sim.nodes[0].layer.stats().retransmissions, 3 * 6 + 10);
    assert_eq!(sim.nodes[0].layer.stats().timeouts, 4);
}

#[test]
fn same_seed_same_run() {
    let (a, _) = run(42, NetConfig::hostile());
    let (b, _) = run(42, NetConfig::hostile());
    assert_eq!(a.now, b.now);
    assert_eq!(a.net.stats, b.net.stats);
    for (x, y) in a.nodes.iter().zip(&b.nodes) {
        assert_eq!(x.layer.stats(), y.layer.stats());
        assert_eq!(
            x.outcomes().collect::<Vec<_>>(),
            y.outcomes().collect::<Vec<_>>()
        );
    }
}

#[test]
fn half_the_datagrams_lost_still_ends_cleanly() {
    // At 50% loss timeouts really happen; every one must be a Timer B/F at exactly
    // 64*T1, and nothing may leak.
    let cfg = NetConfig {
        loss: 0.5,
        ..NetConfig::hostile()
    };
    let mut timeouts = 0;
    let mut tally: BTreeMap<String, u32> = BTreeMap::new();
    for seed in 1_000..1_100 {
        let (sim, end) = run(seed, cfg);
        check(seed, &sim, end, true);
        for (s, o) in sim.nodes[0].outcomes() {
            *tally.entry(format!("{s:?} -> {o:?}")).or_default() += 1;
        }
        timeouts += sim.nodes[0]
            .outcomes()
            .filter(|(_, o)| matches!(o, Outcome::TimedOut { .. }))
            .count();
    }
    println!("outcomes over 100 seeds at 50% loss: {tally:#?}");
    assert!(
        timeouts > 0,
        "50% loss produced no timeout: the timeout path was not exercised"
    );
}

#[test]
fn reliable_transport_completes_without_retransmissions_or_linger() {
    // TCP/TLS: no Timer A/E/G, and D, I, J, K are zero (§17), so once the BYE
    // is answered only the 64*T1 RFC 6026 Accepted timers (L, M) remain.
    let (sim, end) = run_over(5, NetConfig::perfect(), Transport::Tcp);
    check(5, &sim, end, false);
    let outcomes: Vec<Outcome> = sim.nodes[0].outcomes().map(|(_, o)| o).collect();
    assert_eq!(
        outcomes,
        vec![
            Outcome::Completed,
            Outcome::Busy,
            Outcome::Cancelled,
            Outcome::OptionsOk
        ]
    );
    for ua in &sim.nodes {
        assert_eq!(ua.layer.stats().retransmissions, 0);
    }
    // The last timer is Timer L/M at 64*T1 after the 2xx (sent at ~10-20 ms).
    assert!(
        sim.now <= Timestamp::from_millis(32_100),
        "lingered until {:?}",
        sim.now
    );
    let (udp, _) = run(5, NetConfig::perfect());
    assert!(
        udp.now > Timestamp::from_millis(32_100),
        "UDP waits Timer D/J for 32 s: {:?}",
        udp.now
    );
}

#[test]
fn many_concurrent_calls_per_run() {
    // 100 overlapping calls per run stress matching across many live transactions.
    for seed in 500..520 {
        let (sim, end) = run_calls(seed, NetConfig::hostile(), Transport::Udp, 25);
        check(seed, &sim, end, false);
        assert_eq!(sim.nodes[0].outcomes().count(), 100);
        let created: u64 = TxKind::ALL
            .iter()
            .map(|k| sim.nodes[1].layer.stats().created(*k))
            .sum();
        assert!(
            created >= 100 + 25 * 2,
            "seed {seed}: UAS saw {created} transactions"
        );
    }
}

#[test]
fn boxed_nodes_mix_in_one_simulation() {
    let (a, b) = (addr("10.0.0.1:5060"), addr("10.0.0.2:5060"));
    let mut uac = SimUa::new(a, 1, TxConfig::default());
    uac.start(Timestamp::ZERO, b, Scenario::Options);
    let nodes: Vec<Box<dyn portcullis_engine::sim::SimNode>> = vec![
        Box::new(uac),
        Box::new(SimUa::new(b, 2, TxConfig::default())),
    ];
    let mut sim = Sim::new(Network::new(NetConfig::perfect(), 1), nodes);
    assert_eq!(
        sim.run(Timestamp::from_millis(100_000), 10_000),
        RunEnd::Idle
    );
    assert_eq!(sim.net.stats.delivered, 2, "OPTIONS and its 200");
}

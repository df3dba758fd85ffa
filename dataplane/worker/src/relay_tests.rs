//! Unit tests of the relay decision (virtual time, no sockets).

use super::*;
use crate::counters::PairStats;
use crate::types::{EndpointLearning, IceLite, StreamFlags};
use portcullis_rtp::srtp::{SrtpKeys, SrtpProfile, SrtpSession};
use portcullis_rtp::stun::{build_binding_request, BindingRequest};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// The learning window of these tests (µs).
const WINDOW: u64 = 2_000_000;

fn limits(inactivity_us: u64) -> RelayLimits {
    RelayLimits {
        inactivity_us,
        srtp_fail_threshold: 2,
        learning_window_us: WINDOW,
    }
}

fn relay(pairs: u32) -> (Relay, Arc<WorkerShared>, Arc<ArrayQueue<Event>>) {
    let shared = Arc::new(WorkerShared::new(pairs as usize * 2));
    let events = Arc::new(ArrayQueue::new(16));
    let r = Relay::new(
        WorkerId(0),
        Arc::new(SocketPlan::single(Ipv4Addr::LOCALHOST.into(), 30000, pairs)),
        shared.clone(),
        events.clone(),
        limits(1_000_000),
    );
    (r, shared, events)
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

fn rtp(seq: u16, ssrc: u32) -> [u8; BUF_SIZE] {
    let mut b = [0u8; BUF_SIZE];
    b[0] = 0x80;
    b[2..4].copy_from_slice(&seq.to_be_bytes());
    b[8..12].copy_from_slice(&ssrc.to_be_bytes());
    b
}

/// Leg A signalled at `addr(1)`, leg B at `b_peer`.
fn update(pair: u32, generation: u32, b_peer: Option<SocketAddr>) -> Command {
    legs(pair, generation, peer(Some(addr(1))), peer(b_peer))
}

fn peer(p: Option<SocketAddr>) -> StreamParams {
    StreamParams {
        peer: p,
        ..StreamParams::default()
    }
}

fn legs(pair: u32, generation: u32, a: StreamParams, b: StreamParams) -> Command {
    Command::Update {
        pair,
        generation,
        params: [a, b],
        legs: [pair * 2, pair * 2 + 1],
    }
}

fn learning(mode: EndpointLearning, p: Option<SocketAddr>) -> StreamParams {
    StreamParams {
        flags: StreamFlags {
            learning: mode,
            ..StreamFlags::default()
        },
        ..peer(p)
    }
}

/// Where a verdict sends, if it does.
fn dest(v: Verdict) -> Option<SocketAddr> {
    match v {
        Verdict::Send { to, .. } => Some(to),
        Verdict::Drop => None,
    }
}

/// RTP packet `seq` of `ssrc` from `from` on socket `sock` at `now`: where it goes.
fn send(
    r: &mut Relay,
    sock: u32,
    from: SocketAddr,
    seq: u16,
    ssrc: u32,
    now: u64,
) -> Option<SocketAddr> {
    let mut b = rtp(seq, ssrc);
    dest(r.on_packet(sock, from, &mut b, 32, now))
}

fn rejected(shared: &WorkerShared, leg: usize) -> u64 {
    shared.legs[leg].drops[DropReason::RtpSourceRejected as usize].get()
}

#[test]
fn port_layout_maps_socket_to_pair_and_side() {
    let plan = SocketPlan::single(Ipv4Addr::LOCALHOST.into(), 30000, 6);
    let h = make_handle(WorkerId(3), &plan, 5, 9, [10, 11]);
    assert_eq!(
        (h.port_a, h.port_b, h.pair, h.generation),
        (30020, 30022, 5, 9)
    );
    let (mut r, shared, _) = relay(6);
    assert_eq!(r.sockets(), 24);
    r.apply(&update(5, 1, Some(addr(9))), 0);
    let mut b = rtp(1, 7);
    // Socket 20 = pair 5 leg A RTP → out of socket 22 (leg B RTP).
    assert_eq!(
        r.on_packet(20, addr(1), &mut b, 32, 1),
        Verdict::Send {
            sock: 22,
            to: addr(9),
            len: 32,
            forward: true,
        }
    );
    let stats = PairStats::read(&shared.legs[10], &shared.legs[11]);
    assert_eq!(stats.a.rx_packets, 1);
    assert_eq!(stats.b.tx_packets, 1);
    assert_eq!(stats.b.tx_bytes, 32);
    assert_eq!((stats.a.tx_packets, stats.b.rx_packets), (0, 0));
}

/// A pair whose legs are in two realms: leg A on realm 0's leg slot 1, leg B on realm 1's
/// first leg slot. Packets cross from one realm's socket to the other's, the counters
/// stay the pair's, and a removal frees both leg slots.
#[test]
fn a_pair_spans_two_realms_through_its_leg_slots() {
    let mut plan = SocketPlan::default();
    plan.push(
        crate::types::RealmId(0),
        Ipv4Addr::LOCALHOST.into(),
        30000,
        4,
    );
    plan.push(crate::types::RealmId(1), "::1".parse().unwrap(), 40000, 4);
    let shared = Arc::new(WorkerShared::new(plan.pairs() as usize * 2));
    let events = Arc::new(ArrayQueue::new(16));
    let plan = Arc::new(plan);
    let mut r = Relay::new(
        WorkerId(0),
        plan.clone(),
        shared.clone(),
        events,
        limits(1_000_000),
    );
    assert_eq!((r.sockets(), plan.pairs()), (16, 4));
    let b_peer: SocketAddr = "[::1]:5004".parse().unwrap();
    let cmd = Command::Update {
        pair: 2,
        generation: 1,
        params: [peer(Some(addr(9))), peer(Some(b_peer))],
        legs: [1, 4],
    };
    r.apply(&cmd, 0);
    let h = make_handle(WorkerId(0), &plan, 2, 1, [1, 4]);
    assert_eq!((h.port_a, h.port_b), (30002, 40000));
    // Leg A RTP is socket 2 (leg slot 1), leg B RTP socket 8 (leg slot 4).
    let mut b = rtp(1, 7);
    assert_eq!(
        r.on_packet(2, addr(9), &mut b, 32, 1),
        Verdict::Send {
            sock: 8,
            to: b_peer,
            len: 32,
            forward: true,
        }
    );
    let mut b = rtp(1, 8);
    assert_eq!(dest(r.on_packet(8, b_peer, &mut b, 32, 2)), Some(addr(9)));
    // RTCP without mux leaves from the other leg's RTCP socket.
    let mut rtcp = [0u8; BUF_SIZE];
    rtcp[..8].copy_from_slice(&[0x80, 200, 0, 1, 0, 0, 0, 7]);
    assert_eq!(
        r.on_packet(3, addr(10), &mut rtcp, 8, 3),
        Verdict::Send {
            sock: 9,
            to: "[::1]:5005".parse().unwrap(),
            len: 8,
            forward: false,
        }
    );
    let stats = PairStats::read(&shared.legs[4], &shared.legs[5]);
    assert_eq!(
        (stats.a.rx_packets, stats.b.tx_packets),
        (2, 2),
        "RTP and RTCP"
    );
    assert_eq!((stats.b.rx_packets, stats.a.tx_packets), (1, 1));
    // Sockets of leg slots no pair holds drop as unknown streams.
    let mut b = rtp(2, 7);
    assert_eq!(r.on_packet(0, addr(9), &mut b, 32, 4), Verdict::Drop);
    r.apply(
        &Command::Remove {
            pair: 2,
            generation: 1,
        },
        5,
    );
    let mut b = rtp(3, 7);
    assert_eq!(r.on_packet(2, addr(9), &mut b, 32, 6), Verdict::Drop);
    assert_eq!(r.leg_of(2), NO_LEG);
    assert_eq!(r.leg_of(8), NO_LEG);
    // The same leg slots serve another pair afterwards.
    let cmd = Command::Update {
        pair: 0,
        generation: 1,
        params: [peer(Some(b_peer)), peer(Some(addr(9)))],
        legs: [4, 1],
    };
    r.apply(&cmd, 7);
    assert_eq!((r.leg_of(8), r.leg_of(2)), (0, 1));
}

/// T.38 (UDPTL) across two realms: each datagram leaves from the other leg's RTP socket,
/// in the other realm, and a latch reports the pair's handle with both realms' ports.
#[test]
fn udptl_crosses_realms_from_the_other_leg_s_socket() {
    let mut plan = SocketPlan::default();
    plan.push(
        crate::types::RealmId(0),
        Ipv4Addr::LOCALHOST.into(),
        30000,
        2,
    );
    plan.push(crate::types::RealmId(1), "::1".parse().unwrap(), 40000, 2);
    let plan = Arc::new(plan);
    let shared = Arc::new(WorkerShared::new(plan.pairs() as usize * 2));
    let events = Arc::new(ArrayQueue::new(16));
    let mut r = Relay::new(
        WorkerId(0),
        plan.clone(),
        shared,
        events.clone(),
        limits(1_000_000),
    );
    let fax = |p: Option<SocketAddr>| StreamParams {
        flags: StreamFlags {
            udptl: true,
            ..StreamFlags::default()
        },
        ..peer(p)
    };
    let b_peer: SocketAddr = "[::1]:6000".parse().unwrap();
    r.apply(
        &Command::Update {
            pair: 0,
            generation: 1,
            params: [fax(Some(addr(9))), fax(Some(b_peer))],
            legs: [1, 3],
        },
        0,
    );
    let mut d = [0u8; BUF_SIZE];
    d[..6].copy_from_slice(&[0, 1, 2, 3, 4, 5]);
    // Leg A's port is socket 2 (leg slot 1); leg B's socket 6 (leg slot 3, realm 1).
    assert_eq!(
        r.on_packet(2, addr(9), &mut d, 6, 1),
        Verdict::Send {
            sock: 6,
            to: b_peer,
            len: 6,
            forward: true,
        }
    );
    assert_eq!(
        dest(r.on_packet(6, b_peer, &mut d, 6, 2)),
        Some(addr(9)),
        "and back from leg A's socket"
    );
    assert!(matches!(
        r.on_packet(6, b_peer, &mut d, 6, 3),
        Verdict::Send { sock: 2, .. }
    ));
    let latched = std::iter::from_fn(|| events.pop()).find_map(|e| match e {
        Event::Latched { handle, .. } => Some(handle),
        _ => None,
    });
    let h = latched.expect("the first datagram from the peer is reported");
    assert_eq!((h.port_a, h.port_b), (30002, 40002));
}

#[test]
fn unarmed_short_and_unknown_packets_are_counted_drops() {
    let (mut r, shared, _) = relay(2);
    let mut b = rtp(1, 1);
    assert_eq!(r.on_packet(0, addr(1), &mut b, 32, 0), Verdict::Drop);
    assert_eq!(r.on_packet(999, addr(1), &mut b, 32, 0), Verdict::Drop);
    assert_eq!(shared.worker.drops[DropReason::NoStream as usize].get(), 2);
    r.apply(&update(0, 1, Some(addr(9))), 0);
    assert_eq!(r.on_packet(0, addr(1), &mut b, 5, 0), Verdict::Drop);
    assert_eq!(
        r.on_packet(0, addr(1), &mut b, BUF_SIZE + 1, 0),
        Verdict::Drop
    );
    // RTP on the RTCP port is malformed.
    assert_eq!(r.on_packet(1, addr(1), &mut b, 32, 0), Verdict::Drop);
    assert_eq!(
        shared.legs[0].drops[DropReason::Malformed as usize].get(),
        3
    );
}

#[test]
fn generations_gate_commands() {
    let (mut r, shared, _) = relay(1);
    r.apply(&update(0, 2, None), 0);
    assert_eq!(shared.worker.active_pairs.get(), 1);
    r.apply(&update(0, 1, Some(addr(5))), 0); // older: stale
    r.apply(
        &Command::Remove {
            pair: 0,
            generation: 1,
        },
        0,
    ); // stale
    assert_eq!(shared.worker.stale_commands.get(), 2);
    r.apply(
        &Command::Remove {
            pair: 0,
            generation: 2,
        },
        0,
    );
    assert_eq!(shared.worker.active_pairs.get(), 0);
    r.apply(&update(0, 2, None), 0); // removed generation cannot come back
    assert_eq!(shared.worker.stale_commands.get(), 3);
    let mut b = rtp(1, 1);
    assert_eq!(r.on_packet(0, addr(1), &mut b, 32, 0), Verdict::Drop);
    r.apply(&update(0, u32::MAX, None), 0); // "older" in wrapping order
    assert_eq!(shared.worker.stale_commands.get(), 4);
}

#[test]
fn inactivity_and_latch_events_carry_the_generation() {
    let (mut r, _, events) = relay(1);
    // A's address unknown: learnt from a valid stream.
    r.apply(&legs(0, 4, peer(None), peer(Some(addr(9)))), 0);
    assert_eq!(send(&mut r, 0, addr(1), 1, 1, 8), None);
    assert_eq!(send(&mut r, 0, addr(1), 2, 1, 9), None);
    assert_eq!(send(&mut r, 0, addr(1), 3, 1, 10), Some(addr(9)));
    match events.pop() {
        Some(Event::Latched {
            handle,
            side,
            addr: a,
        }) => {
            assert_eq!((handle.generation, side, a), (4, Side::A, addr(1)));
        }
        other => panic!("expected Latched, got {other:?}"),
    }
    r.housekeeping(500_000);
    assert!(events.pop().is_none(), "not inactive yet");
    r.housekeeping(1_000_011);
    assert!(matches!(events.pop(), Some(Event::Inactive { handle }) if handle.generation == 4));
    r.housekeeping(3_000_000);
    assert!(events.pop().is_none(), "reported once");
    // Media again, this time from B: reported again a timeout after it, once.
    let mut b = rtp(2, 1);
    assert!(matches!(
        r.on_packet(2, addr(9), &mut b, 32, 3_500_000),
        Verdict::Send { .. }
    ));
    let b_heard = events.pop();
    assert!(
        matches!(b_heard, Some(Event::Latched { side: Side::B, .. })),
        "{b_heard:?}"
    );
    r.housekeeping(4_000_000);
    assert!(events.pop().is_none(), "active again");
    r.housekeeping(4_500_001);
    assert!(matches!(events.pop(), Some(Event::Inactive { .. })));
    r.housekeeping(9_000_000);
    assert!(events.pop().is_none(), "reported once");
}

#[test]
fn a_restore_starts_the_inactivity_clock_afresh_even_on_an_armed_pair() {
    let (mut r, _, events) = relay(1);
    let restore = |generation| Command::Restore {
        pair: 0,
        generation,
        params: [peer(Some(addr(1))), peer(Some(addr(9)))],
        legs: [0, 1],
        resume: [crate::LegResume::default(); 2],
    };
    r.apply(&restore(3), 0);
    r.housekeeping(1_000_011);
    assert!(
        matches!(events.pop(), Some(Event::Inactive { .. })),
        "idle since armed"
    );
    // Restored again (a standby's pair armed ahead, adopted by the takeover): the clock
    // restarts and the inactivity is reported once more a timeout later.
    r.apply(&restore(3), 2_000_000);
    r.housekeeping(2_500_000);
    assert!(events.pop().is_none(), "not inactive yet");
    r.housekeeping(3_000_011);
    assert!(matches!(events.pop(), Some(Event::Inactive { handle }) if handle.generation == 3));
}

/// One housekeeping run visits one slice of the table, and `SWEEP_SLICES` runs visit
/// every pair exactly once (here: every pair is inactive, one event per visit).
#[test]
fn housekeeping_walks_the_table_a_slice_at_a_time() {
    let pairs = 1050u32;
    let shared = Arc::new(WorkerShared::new(pairs as usize * 2));
    let events = Arc::new(ArrayQueue::new(pairs as usize));
    let mut r = Relay::new(
        WorkerId(0),
        Arc::new(SocketPlan::single(Ipv4Addr::LOCALHOST.into(), 30000, pairs)),
        shared,
        events.clone(),
        limits(1_000),
    );
    for p in 0..pairs {
        r.apply(&update(p, 1, None), 0);
    }
    r.housekeeping(10_000);
    let slice = (pairs as usize).div_ceil(SWEEP_SLICES);
    assert_eq!(events.len(), slice, "one run, one slice");
    for _ in 1..SWEEP_SLICES {
        r.housekeeping(10_000);
    }
    let mut seen: Vec<u32> = std::iter::from_fn(|| events.pop())
        .map(|e| match e {
            Event::Inactive { handle } => handle.pair,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), pairs as usize, "every pair visited in one walk");
}

/// An attacker spraying packets with fresh SSRCs from ports of its own, before the
/// leg heard its peer, inside the window and after it: never relayed, never sent to,
/// each one counted; the call's media keeps going to the signalled peers.
#[test]
fn a_spray_of_fresh_ssrcs_never_takes_a_leg() {
    let (mut r, shared, events) = relay(1);
    r.apply(&update(0, 1, Some(addr(9))), 0);
    let attacker =
        |i: u16| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 66)), 40000 + i % 50);
    let mut now = 0;
    let mut sprayed = 0;
    for round in 0..300u16 {
        now += 20_000; // 6 s of media, 20 ms apart: through the 2 s window and after.
        for i in 0..4u16 {
            let ssrc = u32::from(round) * 4 + u32::from(i) + 1000;
            // Every port of the pair, in sequence numbers that look valid.
            for sock in 0..4 {
                let _ = send(&mut r, sock, attacker(round + i), round, ssrc, now);
                sprayed += 1;
            }
        }
        if round > 10 {
            // The real peers send once the call is up.
            assert_eq!(send(&mut r, 0, addr(1), round, 0xa, now), Some(addr(9)));
            assert_eq!(send(&mut r, 2, addr(9), round, 0xb, now), Some(addr(1)));
        }
        r.housekeeping(now);
    }
    assert!(sprayed > 4000);
    // Each leg reported its peer once, when first heard; nothing else.
    let evs: Vec<Event> = std::iter::from_fn(|| events.pop()).collect();
    assert_eq!(evs.len(), 2, "{evs:?}");
    for e in evs {
        let peer = |a: SocketAddr| a == addr(1) || a == addr(9);
        assert!(
            matches!(e, Event::Latched { addr: a, .. } if peer(a)),
            "{e:?}"
        );
    }
    let s = PairStats::read(&shared.legs[0], &shared.legs[1]);
    assert_eq!(s.a.tx_packets, 289, "only B's packets went to A");
    assert_eq!(s.b.tx_packets, 289);
    assert!(s.a.locked && s.b.locked);
    // RTP ports: every sprayed packet refused for its source; RTCP ports: malformed
    // (RTP there), refused before anything else looks at it.
    assert_eq!(rejected(&shared, 0) + rejected(&shared, 1), 1200 * 2);
}

/// A locked leg does not follow a new source, however valid its stream and whatever
/// its SSRC: only signalling moves it.
#[test]
fn an_ssrc_change_never_moves_a_locked_leg() {
    let (mut r, shared, _) = relay(1);
    r.apply(&update(0, 1, Some(addr(9))), 0);
    assert_eq!(send(&mut r, 0, addr(1), 1, 7, 10), Some(addr(9)));
    r.housekeeping(WINDOW + 10);
    for seq in 0..20 {
        assert_eq!(send(&mut r, 0, addr(2), seq, 8, WINDOW + 100), None);
    }
    assert_eq!(rejected(&shared, 0), 20);
    assert_eq!(send(&mut r, 2, addr(9), 1, 9, WINDOW + 200), Some(addr(1)));
    // Signalling moves it.
    r.apply(
        &legs(0, 1, peer(Some(addr(2))), peer(Some(addr(9)))),
        WINDOW + 300,
    );
    assert_eq!(send(&mut r, 2, addr(9), 2, 9, WINDOW + 400), Some(addr(2)));
}

/// Heuristic: a NAT'd peer (signalled private address) is learnt from its valid stream
/// at once; inside the window the signalled address and port still win, and lock.
#[test]
fn heuristic_learns_then_prefers_the_signalled_address() {
    let (mut r, shared, events) = relay(1);
    r.apply(&update(0, 1, Some(addr(9))), 0);
    let nat = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), 5000);
    assert_eq!(send(&mut r, 0, nat, 1, 7, 10), None);
    assert_eq!(send(&mut r, 0, nat, 2, 7, 20), None);
    assert_eq!(send(&mut r, 0, nat, 3, 7, 30), Some(addr(9)));
    assert!(
        matches!(events.pop(), Some(Event::Latched { addr: a, side: Side::A, .. }) if a == nat)
    );
    assert_eq!(send(&mut r, 2, addr(9), 1, 9, 40), Some(nat));
    let b_heard = events.pop();
    assert!(
        matches!(b_heard, Some(Event::Latched { side: Side::B, .. })),
        "{b_heard:?}"
    );
    assert!(!PairStats::read(&shared.legs[0], &shared.legs[1]).a.locked);
    // The signalled address: one packet is enough, and the leg locks.
    assert_eq!(send(&mut r, 0, addr(1), 4, 7, 50), Some(addr(9)));
    assert!(matches!(events.pop(), Some(Event::Latched { addr: a, .. }) if a == addr(1)));
    assert!(PairStats::read(&shared.legs[0], &shared.legs[1]).a.locked);
    assert_eq!(send(&mut r, 2, addr(9), 2, 9, 60), Some(addr(1)));
    for seq in 5..10 {
        assert_eq!(send(&mut r, 0, nat, seq, 7, 70), None);
    }
}

/// The window closes at its end (found by housekeeping or by the next packet), and a
/// leg learns nothing after it.
#[test]
fn the_window_closes_and_locks() {
    let (mut r, shared, _) = relay(1);
    r.apply(&update(0, 1, Some(addr(9))), 0);
    r.housekeeping(WINDOW - 1);
    assert!(!PairStats::read(&shared.legs[0], &shared.legs[1]).a.locked);
    r.housekeeping(WINDOW);
    let s = PairStats::read(&shared.legs[0], &shared.legs[1]);
    assert!(s.a.locked && s.b.locked);
    let nat = addr(5000);
    for seq in 0..10 {
        assert_eq!(send(&mut r, 0, nat, seq, 7, WINDOW + 10), None);
    }
    // Without housekeeping, the first packet after the window closes it.
    r.apply(&update(0, 2, Some(addr(9))), 10 * WINDOW);
    for seq in 0..10 {
        assert_eq!(send(&mut r, 0, nat, seq, 7, 11 * WINDOW), None);
    }
    assert!(PairStats::read(&shared.legs[0], &shared.legs[1]).a.locked);
}

/// A leg that has not heard its peer learns again at the next offer/answer step of
/// the pair (a caller behind NAT that sends only once answered).
#[test]
fn the_answer_reopens_the_window_of_a_leg_not_heard() {
    let (mut r, _, _) = relay(1);
    r.apply(&legs(0, 1, peer(Some(addr(1))), peer(None)), 0);
    r.housekeeping(WINDOW + 1);
    // Ringing for a while; the answer sets B's address.
    let t = 20 * WINDOW;
    r.apply(&update(0, 1, Some(addr(9))), t);
    let nat = addr(5000);
    assert_eq!(send(&mut r, 0, nat, 1, 7, t + 10), None);
    assert_eq!(send(&mut r, 0, nat, 2, 7, t + 20), None);
    assert_eq!(send(&mut r, 0, nat, 3, 7, t + 30), Some(addr(9)));
    assert_eq!(send(&mut r, 2, addr(9), 1, 9, t + 40), Some(nat));
}

#[test]
fn strict_takes_only_the_signalled_address() {
    let (mut r, shared, _) = relay(1);
    let a = learning(EndpointLearning::Strict, Some(addr(1)));
    r.apply(&legs(0, 1, a, peer(Some(addr(9)))), 0);
    assert!(PairStats::read(&shared.legs[0], &shared.legs[1]).a.locked);
    for seq in 0..10 {
        assert_eq!(send(&mut r, 0, addr(2), seq, 7, 10), None, "another port");
    }
    assert_eq!(send(&mut r, 0, addr(1), 1, 7, 10), Some(addr(9)));
    assert_eq!(rejected(&shared, 0), 10);
    // RTCP only from the signalled RTCP port (RTP + 1).
    let mut rr = [0u8; BUF_SIZE];
    rr[..8].copy_from_slice(&[0x80, 201, 0, 1, 0, 0, 0, 7]);
    assert_eq!(
        r.on_packet(1, addr(3), &mut rr.clone(), 8, 20),
        Verdict::Drop
    );
    assert!(dest(r.on_packet(1, addr(2), &mut rr, 8, 20)).is_some());
}

#[test]
fn off_takes_any_source_and_sends_to_the_signalled_address() {
    let (mut r, shared, events) = relay(1);
    let a = learning(EndpointLearning::Off, Some(addr(1)));
    r.apply(&legs(0, 1, a, peer(Some(addr(9)))), 0);
    assert_eq!(send(&mut r, 0, addr(2), 1, 7, 10), Some(addr(9)));
    assert_eq!(send(&mut r, 0, addr(3), 9, 8, 20), Some(addr(9)));
    assert_eq!(send(&mut r, 2, addr(9), 1, 9, 30), Some(addr(1)));
    // Only B reports its peer (heard); A never learns.
    let b_heard = events.pop();
    assert!(
        matches!(b_heard, Some(Event::Latched { side: Side::B, .. })),
        "{b_heard:?}"
    );
    assert!(events.pop().is_none());
    assert_eq!(rejected(&shared, 0), 0);
}

/// Delayed: the leg sends to the signalled address for the whole window and takes the
/// source it found only at the end.
#[test]
fn delayed_decides_at_the_end_of_the_window() {
    let (mut r, shared, events) = relay(1);
    let a = learning(EndpointLearning::Delayed, Some(addr(1)));
    r.apply(&legs(0, 1, a, peer(Some(addr(9)))), 0);
    let nat = addr(5000);
    for seq in 1..=5 {
        let got = send(&mut r, 0, nat, seq, 7, u64::from(seq) * 20_000);
        assert_eq!(got.is_some(), seq >= 3, "relayed once a valid stream");
        assert_eq!(
            send(&mut r, 2, addr(9), seq, 9, 1),
            Some(addr(1)),
            "not yet"
        );
    }
    let b_heard = events.pop();
    assert!(
        matches!(b_heard, Some(Event::Latched { side: Side::B, .. })),
        "{b_heard:?}"
    );
    assert!(events.pop().is_none(), "A not moved yet");
    assert_eq!(send(&mut r, 0, nat, 6, 7, WINDOW + 1), Some(addr(9)));
    assert!(matches!(events.pop(), Some(Event::Latched { addr: x, .. }) if x == nat));
    assert_eq!(send(&mut r, 2, addr(9), 6, 9, WINDOW + 2), Some(nat));
    assert!(PairStats::read(&shared.legs[0], &shared.legs[1]).a.locked);
}

/// NAT rebinding: allowed, a locked leg silent for `relearn_after` moves to a source
/// that sends a valid stream, never to a single packet nor before the silence.
#[test]
fn rebinding_after_silence_when_allowed() {
    for allowed in [false, true] {
        let (mut r, _, _) = relay(1);
        let mut a = peer(Some(addr(1)));
        a.relearn_after = allowed.then_some(Duration::from_secs(5));
        r.apply(&legs(0, 1, a, peer(Some(addr(9)))), 0);
        assert_eq!(send(&mut r, 0, addr(1), 1, 7, 100), Some(addr(9)));
        r.housekeeping(WINDOW + 100);
        let rebound = addr(6000);
        for seq in 0..5 {
            assert_eq!(
                send(&mut r, 0, rebound, seq, 7, 4_000_000),
                None,
                "not silent"
            );
        }
        let t = 5_000_100;
        assert_eq!(send(&mut r, 0, rebound, 10, 7, t), None);
        assert_eq!(
            send(&mut r, 0, addr(6001), 11, 8, t),
            None,
            "one packet each"
        );
        assert_eq!(send(&mut r, 0, rebound, 12, 7, t), None);
        assert_eq!(send(&mut r, 0, rebound, 13, 7, t), None);
        let moved = send(&mut r, 0, rebound, 14, 7, t).is_some();
        assert_eq!(moved, allowed);
        let back = send(&mut r, 2, addr(9), 1, 9, t + 1);
        assert_eq!(back, Some(if allowed { rebound } else { addr(1) }));
    }
}

/// RTCP obeys the lock: on port + 1 from the RTCP peer, or once from the heard RTP
/// peer's address; muxed only from the RTP peer; never moves the RTP peer.
#[test]
fn rtcp_obeys_the_lock() {
    let (mut r, shared, _) = relay(1);
    r.apply(&update(0, 1, Some(addr(9))), 0);
    let rr = |ssrc: u8| {
        let mut b = [0u8; BUF_SIZE];
        b[..8].copy_from_slice(&[0x80, 201, 0, 1, 0, 0, 0, ssrc]);
        b
    };
    let other = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 66)), 2);
    // Not heard yet: only the signalled RTCP port.
    assert_eq!(r.on_packet(1, addr(700), &mut rr(1), 8, 1), Verdict::Drop);
    assert!(dest(r.on_packet(1, addr(2), &mut rr(1), 8, 1)).is_some());
    assert_eq!(send(&mut r, 0, addr(1), 1, 1, 2), Some(addr(9)));
    // Another address: refused. The peer's address, another port: latched once.
    assert_eq!(r.on_packet(1, other, &mut rr(1), 8, 3), Verdict::Drop);
    assert!(dest(r.on_packet(1, addr(700), &mut rr(1), 8, 3)).is_some());
    assert_eq!(r.on_packet(1, addr(701), &mut rr(1), 8, 4), Verdict::Drop);
    assert_eq!(r.on_packet(1, addr(2), &mut rr(1), 8, 4), Verdict::Drop);
    // B's RTCP goes to A's latched RTCP source; muxed RTCP to B only from B's peer.
    assert_eq!(
        dest(r.on_packet(3, addr(10), &mut rr(2), 8, 5)),
        Some(addr(700))
    );
    assert_eq!(r.on_packet(2, other, &mut rr(2), 8, 5), Verdict::Drop);
    assert_eq!(rejected(&shared, 0), 4);
    assert_eq!(rejected(&shared, 1), 1);
}

fn keys(seed: u8) -> SrtpKeys {
    SrtpKeys {
        profile: SrtpProfile::AesCm128HmacSha1_80,
        master_key: [seed; 16],
        master_salt: [seed.wrapping_add(1); 14],
    }
}

/// An SRTP leg learns only from a stream whose packet authenticates; a valid-looking
/// stream of forgeries is refused (and costs one authentication per stream).
#[test]
fn srtp_learns_only_authentic_streams() {
    let (mut r, shared, events) = relay(1);
    let a = StreamParams {
        srtp_in: Some(keys(3)),
        ..peer(Some(addr(1)))
    };
    r.apply(&legs(0, 1, a, peer(Some(addr(9)))), 0);
    let nat = addr(5000);
    for seq in 0..6u16 {
        let mut b = rtp(seq, 7);
        assert_eq!(r.on_packet(0, nat, &mut b, 42, 10), Verdict::Drop);
    }
    assert_eq!(shared.legs[0].drops[DropReason::SrtpAuth as usize].get(), 2);
    assert_eq!(rejected(&shared, 0), 4);
    assert!(events.pop().is_none());
    let mut tx = SrtpSession::new(&keys(3));
    let mut moved = None;
    for seq in 10..13u16 {
        let mut b = rtp(seq, 7);
        let n = tx.protect_rtp(&mut b, 32).expect("protect");
        moved = dest(r.on_packet(0, nat, &mut b, n, 20));
    }
    assert_eq!(moved, Some(addr(9)));
    assert!(matches!(events.pop(), Some(Event::Latched { addr: x, .. }) if x == nat));
}

/// ICE-lite: a Binding request carrying our credentials and USE-CANDIDATE nominates
/// its source, which the leg takes and locks on; without USE-CANDIDATE it is only
/// answered; a request that does not authenticate changes nothing.
#[test]
fn an_ice_nomination_moves_and_locks_the_leg() {
    let (mut r, shared, events) = relay(1);
    let mut a = peer(Some(addr(1)));
    a.ice = IceLite::new("sbcufrag", "sbcpassword0123456789xyz");
    r.apply(&legs(0, 1, a, peer(Some(addr(9)))), 0);
    let stun = |use_candidate: bool, key: &[u8]| {
        let mut b = [0u8; BUF_SIZE];
        let n = build_binding_request(
            &BindingRequest {
                transaction_id: [7; 12],
                username: b"sbcufrag:peer",
                key,
                priority: 1,
                use_candidate,
                tie_breaker: 1,
            },
            &mut b,
        )
        .expect("request");
        (b, n)
    };
    let client = addr(7000);
    let (mut b, n) = stun(false, b"sbcpassword0123456789xyz");
    assert_eq!(dest(r.on_packet(0, client, &mut b, n, 10)), Some(client));
    assert!(events.pop().is_none());
    let (mut b, n) = stun(true, b"not the password");
    assert_eq!(r.on_packet(0, client, &mut b, n, 10), Verdict::Drop);
    assert!(events.pop().is_none());
    let (mut b, n) = stun(true, b"sbcpassword0123456789xyz");
    assert_eq!(dest(r.on_packet(0, client, &mut b, n, 20)), Some(client));
    assert!(matches!(events.pop(), Some(Event::Latched { addr: x, .. }) if x == client));
    assert!(PairStats::read(&shared.legs[0], &shared.legs[1]).a.locked);
    assert_eq!(send(&mut r, 2, addr(9), 1, 9, 30), Some(client));
}

/// The session table stays compact: SRTP contexts are boxed, not inline (they made a
/// pair 9.5 KB). A pair is two 5-line legs and a line of its own.
#[test]
fn pair_stays_small() {
    let pair = std::mem::size_of::<Pair>();
    assert!(pair <= 704, "Pair grew to {pair} bytes");
}

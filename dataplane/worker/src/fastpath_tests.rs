//! Unit tests of promotion and demotion (virtual time, a stand-in for the kernel's
//! leg table; the real one is exercised by the appliance's namespace test).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;

use super::*;
use crate::relay::{Relay, RelayLimits, BUF_SIZE};
use crate::types::{Command, Event, IceLite, StreamFlags, StreamParams, WorkerId};

const WINDOW: u64 = 1_000_000;
const BASE: u16 = 30000;

/// The kernel's leg table, as the tests see it.
#[derive(Default)]
struct Kernel {
    routes: HashMap<LegKey, FastLeg>,
    counters: HashMap<LegKey, LegCounters>,
    refuse: bool,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<Kernel>>);

impl Fake {
    fn k(&self) -> std::sync::MutexGuard<'_, Kernel> {
        self.0.lock().unwrap()
    }

    fn route(&self, port: u16) -> Option<FastLeg> {
        self.k().routes.get(&key(port)).copied()
    }

    /// The program forwarded `n` RTP packets of 172 bytes on `port`, the last at `at_ns`.
    fn forward(&self, port: u16, n: u64, at_ns: u64) {
        let mut k = self.k();
        assert!(
            k.routes.contains_key(&key(port)),
            "port {port} not promoted"
        );
        let c = k.counters.entry(key(port)).or_default();
        c.packets += n;
        c.bytes += n * 172;
        c.rtp_received += n;
        c.rtp_expected += n + 1; // one lost
        c.rtp_jitter = 40;
        c.last_seen_ns = at_ns;
    }
}

impl KernelTable for Fake {
    fn promote(&mut self, leg: &FastLeg) -> Result<(), String> {
        let mut k = self.k();
        if k.refuse {
            return Err("refused".into());
        }
        k.routes.insert(LegKey::new(leg.local), *leg);
        k.counters
            .insert(LegKey::new(leg.local), LegCounters::default());
        Ok(())
    }

    fn demote(&mut self, key: LegKey) -> Option<LegCounters> {
        let mut k = self.k();
        k.routes.remove(&key)?;
        k.counters.remove(&key)
    }

    fn read(&self, key: LegKey) -> Option<LegCounters> {
        self.k().counters.get(&key).copied()
    }
}

fn ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2))
}

fn key(port: u16) -> LegKey {
    LegKey::new(SocketAddr::new(ip(), port))
}

fn peer_addr(n: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, n)), port)
}

struct T {
    r: Relay,
    shared: Arc<WorkerShared>,
    events: Arc<ArrayQueue<Event>>,
    fake: Fake,
    /// Leg slots of pair 0's sides A and B.
    slots: [u32; 2],
}

/// One worker with one realm on `ip()` from `BASE`, one pair (leg slots 0 and 1).
fn setup() -> T {
    setup_in(SocketPlan::single(ip(), BASE, 1), vec![Some(ip())], [0, 1])
}

/// One worker with `plan`, the program forwarding for the realms' `ips`; pair 0 on leg
/// slots `slots`.
fn setup_in(plan: SocketPlan, ips: Vec<Option<IpAddr>>, slots: [u32; 2]) -> T {
    let plan = Arc::new(plan);
    let shared = Arc::new(WorkerShared::new(plan.pairs() as usize * 2));
    let events = Arc::new(ArrayQueue::new(64));
    let mut r = Relay::new(
        WorkerId(0),
        plan.clone(),
        shared.clone(),
        events.clone(),
        RelayLimits {
            inactivity_us: 5_000_000,
            srtp_fail_threshold: 1,
            learning_window_us: WINDOW,
        },
    );
    let fake = Fake::default();
    r.fast = Some(FastSync::new(Box::new(fake.clone()), plan, ips));
    T {
        r,
        shared,
        events,
        fake,
        slots,
    }
}

fn params(peer: SocketAddr) -> StreamParams {
    StreamParams {
        peer: Some(peer),
        ..StreamParams::default()
    }
}

fn update(t: &mut T, generation: u32, a: StreamParams, b: StreamParams, now: u64) {
    t.r.apply(
        &Command::Update {
            pair: 0,
            generation,
            params: [a, b],
            legs: t.slots,
        },
        now,
    );
}

/// An RTP packet from `from` on socket `sock`: whether the worker relayed it.
fn packet(t: &mut T, sock: u32, from: SocketAddr, seq: u16, now: u64) -> bool {
    let mut b = [0u8; BUF_SIZE];
    b[0] = 0x80;
    b[2..4].copy_from_slice(&seq.to_be_bytes());
    b[8..12].copy_from_slice(&0x1234u32.to_be_bytes());
    matches!(
        t.r.on_packet(sock, from, &mut b, 172, now),
        crate::relay::Verdict::Send { .. }
    )
}

fn stats(t: &T) -> PairStats {
    let fake = t.fake.clone();
    let live = move |side: usize, ports: u64| {
        let rtp = BASE + 2 * u16::try_from(side).unwrap();
        let k = fake.k();
        live_of(ports, |rtcp| {
            let port = rtp + u16::from(rtcp);
            k.counters.get(&key(port)).copied().unwrap_or_default()
        })
    };
    PairStats::read_fast(&t.shared.legs[0], &t.shared.legs[1], &live)
}

/// A call whose legs both heard their peer (5 packets each way at 20 ms).
fn call(t: &mut T, a: StreamParams, b: StreamParams) {
    update(t, 1, a, b, 0);
    for seq in 0..5u16 {
        let now = u64::from(seq) * 20_000;
        packet(t, t.slots[0] * 2, a.peer.unwrap(), seq, now);
        packet(t, t.slots[1] * 2, b.peer.unwrap(), seq, now);
    }
}

#[test]
fn a_pair_is_promoted_only_once_both_legs_are_locked() {
    let mut t = setup();
    let (caller, callee) = (peer_addr(1, 4000), peer_addr(9, 5000));
    call(&mut t, params(caller), params(callee));
    // Heard both peers, but inside the learning window: the worker keeps them.
    t.r.housekeeping(500_000);
    assert!(t.fake.k().routes.is_empty(), "promoted while learning");
    assert_eq!(t.shared.worker.fast_ports.get(), 0);
    // The window ends: locked, promoted at the same visit. Both RTP and RTCP ports.
    t.r.housekeeping(WINDOW + 1);
    let a = t.fake.route(BASE).expect("A's RTP port promoted");
    assert_eq!(
        (a.local, a.peer, a.out_local, a.out_peer, a.kind),
        (
            SocketAddr::new(ip(), BASE),
            caller,
            SocketAddr::new(ip(), BASE + 2),
            callee,
            PortKind::Rtp
        )
    );
    let b = t.fake.route(BASE + 2).expect("B's RTP port promoted");
    assert_eq!((b.peer, b.out_peer), (callee, caller));
    let rtcp = t.fake.route(BASE + 1).expect("A's RTCP port promoted");
    assert_eq!(
        (rtcp.peer.port(), rtcp.out_peer.port(), rtcp.kind),
        (4001, 5001, PortKind::Rtcp)
    );
    assert_eq!(t.shared.worker.fast_ports.get(), 4);
    assert_eq!(t.shared.legs[0].fast.ports.get(), FAST_RTP | FAST_RTCP);
}

#[test]
fn a_leg_that_never_heard_its_peer_is_not_promoted() {
    let mut t = setup();
    update(
        &mut t,
        1,
        params(peer_addr(1, 4000)),
        params(peer_addr(9, 5000)),
        0,
    );
    packet(&mut t, 0, peer_addr(1, 4000), 1, 10);
    t.r.housekeeping(WINDOW + 1);
    assert!(t.fake.k().routes.is_empty());
}

#[test]
fn srtp_ice_hold_rebinding_udptl_dtmf_play_and_mixed_mux_stay_with_the_worker() {
    let keys = portcullis_rtp::srtp::SrtpKeys {
        profile: portcullis_rtp::srtp::SrtpProfile::AesCm128HmacSha1_80,
        master_key: [7; 16],
        master_salt: [9; 14],
    };
    let (caller, callee) = (peer_addr(1, 4000), peer_addr(9, 5000));
    let variants: [(&str, StreamParams); 7] = [
        (
            "srtp out",
            StreamParams {
                srtp_out: Some(keys),
                ..params(caller)
            },
        ),
        (
            "ice",
            StreamParams {
                ice: IceLite::new("ufrag", "passwordpasswordpassword"),
                ..params(caller)
            },
        ),
        (
            "hold",
            StreamParams {
                flags: StreamFlags {
                    held: true,
                    ..StreamFlags::default()
                },
                ..params(caller)
            },
        ),
        (
            "rebinding",
            StreamParams {
                relearn_after: Some(Duration::from_secs(5)),
                ..params(caller)
            },
        ),
        (
            "udptl (T.38)",
            StreamParams {
                flags: StreamFlags {
                    udptl: true,
                    ..StreamFlags::default()
                },
                ..params(caller)
            },
        ),
        (
            "dtmf played into the stream",
            StreamParams {
                flags: StreamFlags {
                    dtmf: crate::DtmfFlags {
                        generate: Some(101),
                        ..crate::DtmfFlags::default()
                    },
                    ..StreamFlags::default()
                },
                ..params(caller)
            },
        ),
        (
            "rtcp-mux on one leg only",
            StreamParams {
                flags: StreamFlags {
                    rtcp_mux: true,
                    ..StreamFlags::default()
                },
                ..params(caller)
            },
        ),
    ];
    for (what, a) in variants {
        let mut t = setup();
        // The SRTP leg's peer authenticates nothing here: mark it heard via plain params
        // first, then switch to the variant (same peer, so no new learning window).
        call(&mut t, params(caller), params(callee));
        t.r.housekeeping(WINDOW + 1);
        assert!(t.fake.route(BASE).is_some(), "{what}: plain call promoted");
        update(&mut t, 1, a, params(callee), WINDOW + 2);
        assert!(
            t.fake.k().routes.is_empty(),
            "{what}: still promoted after the update"
        );
        t.r.housekeeping(WINDOW + 3);
        assert!(t.fake.k().routes.is_empty(), "{what}: promoted again");
        assert_eq!(t.shared.worker.fast_ports.get(), 0, "{what}");
    }
}

#[test]
fn a_new_address_demotes_until_the_leg_is_locked_again_then_promotes_to_it() {
    let mut t = setup();
    let (caller, callee, moved) = (peer_addr(1, 4000), peer_addr(9, 5000), peer_addr(7, 5002));
    call(&mut t, params(caller), params(callee));
    t.r.housekeeping(WINDOW + 1);
    t.fake.forward(BASE, 100, 1);
    t.fake.forward(BASE + 2, 90, 1);
    // Re-INVITE: the callee moves. Demoted at once (B learns again), counters banked.
    let now = 2 * WINDOW;
    update(&mut t, 1, params(caller), params(moved), now);
    assert!(t.fake.k().routes.is_empty(), "demoted on the new address");
    assert_eq!(t.shared.legs[0].fast.packets.get(), 100);
    assert_eq!(t.shared.legs[1].fast.packets.get(), 90);
    assert_eq!(t.shared.worker.fast_packets.get(), 190);
    // The moved callee is heard, its window ends: promoted toward it.
    packet(&mut t, 2, moved, 100, now + 10);
    t.r.housekeeping(now + WINDOW + 1);
    assert_eq!(t.fake.route(BASE).map(|r| r.out_peer), Some(moved));
    assert_eq!(t.fake.route(BASE + 2).map(|r| r.peer), Some(moved));
}

#[test]
fn remove_demotes_and_counters_add_up_across_periods() {
    let mut t = setup();
    let (caller, callee) = (peer_addr(1, 4000), peer_addr(9, 5000));
    call(&mut t, params(caller), params(callee));
    let before = stats(&t);
    assert_eq!(
        (
            before.a.rx_packets,
            before.a.rtp_received,
            before.a.rtp_expected
        ),
        (5, 5, 5)
    );
    t.r.housekeeping(WINDOW + 1);
    // Promotion closed the worker's RTP period: the figures stay, banked.
    assert_eq!(stats(&t).a.rtp_received, 5);
    t.fake.forward(BASE, 100, 1);
    let s = stats(&t);
    assert_eq!(s.a.rx_packets, 105);
    assert_eq!(s.a.rx_bytes, 5 * 172 + 100 * 172);
    assert_eq!(s.b.tx_packets, 105, "what A's leg received, B's sent");
    assert_eq!((s.a.rtp_received, s.a.rtp_expected), (105, 106));
    assert_eq!((s.a.rtp_lost, s.a.rtp_jitter), (1, 40));
    // Hold: demoted; the worker's own counting resumes on top of the bank.
    let held = StreamParams {
        flags: StreamFlags {
            held: true,
            ..StreamFlags::default()
        },
        ..params(caller)
    };
    update(&mut t, 1, held, params(callee), 2 * WINDOW);
    assert!(t.fake.k().routes.is_empty(), "demoted on hold");
    assert!(packet(&mut t, 0, caller, 500, 2 * WINDOW + 10));
    let s = stats(&t);
    assert_eq!(s.a.rx_packets, 106);
    assert_eq!((s.a.rtp_received, s.a.rtp_expected), (106, 107));
    // Off hold and promoted again; then the call ends: Remove demotes everything.
    update(&mut t, 1, params(caller), params(callee), 2 * WINDOW + 20);
    t.r.housekeeping(2 * WINDOW + 30);
    assert!(t.fake.route(BASE).is_some(), "promoted again off hold");
    t.r.apply(
        &Command::Remove {
            pair: 0,
            generation: 1,
        },
        2 * WINDOW + 40,
    );
    assert!(t.fake.k().routes.is_empty(), "removed pair still promoted");
    assert!(t.fake.k().counters.is_empty());
    assert_eq!(t.shared.worker.fast_ports.get(), 0);
}

#[test]
fn kernel_forwarding_keeps_the_pair_active() {
    let mut t = setup();
    let (caller, callee) = (peer_addr(1, 4000), peer_addr(9, 5000));
    call(&mut t, params(caller), params(callee));
    t.r.housekeeping(WINDOW + 1);
    while t.events.pop().is_some() {}
    // The worker sees nothing more; the kernel forwards, last at "now" each time.
    let mono = portcullis_xdp::monotonic_now_ns();
    t.fake.forward(BASE, 1, mono);
    t.r.housekeeping(10_000_000);
    let mono = portcullis_xdp::monotonic_now_ns();
    t.fake.forward(BASE, 1, mono);
    t.r.housekeeping(20_000_000);
    assert!(
        !std::iter::from_fn(|| t.events.pop()).any(|e| matches!(e, Event::Inactive { .. })),
        "inactive while the kernel forwards"
    );
    assert_eq!(t.shared.worker.fast_packets.get(), 2);
    // The kernel stops too (its last packet 20 s ago): inactive after the timeout.
    let stale = portcullis_xdp::monotonic_now_ns().saturating_sub(20_000_000_000);
    for c in t.fake.k().counters.values_mut() {
        c.last_seen_ns = stale;
    }
    t.r.housekeeping(30_000_000);
    assert!(std::iter::from_fn(|| t.events.pop()).any(|e| matches!(e, Event::Inactive { .. })));
}

#[test]
fn a_refused_promotion_is_counted_and_the_worker_keeps_relaying() {
    let mut t = setup();
    t.fake.k().refuse = true;
    let (caller, callee) = (peer_addr(1, 4000), peer_addr(9, 5000));
    call(&mut t, params(caller), params(callee));
    t.r.housekeeping(WINDOW + 1);
    assert_eq!(t.shared.worker.fast_errors.get(), 4);
    assert_eq!(t.shared.worker.fast_ports.get(), 0);
    assert!(packet(&mut t, 0, caller, 50, WINDOW + 10));
}

#[test]
fn telephone_events_of_a_detecting_leg_go_up_to_the_worker() {
    let (caller, callee) = (peer_addr(1, 4000), peer_addr(9, 5000));
    let mut t = setup();
    let a = StreamParams {
        flags: StreamFlags {
            dtmf: crate::DtmfFlags {
                detect: Some(101),
                ..crate::DtmfFlags::default()
            },
            ..StreamFlags::default()
        },
        ..params(caller)
    };
    call(&mut t, a, params(callee));
    t.r.housekeeping(WINDOW + 1);
    let route = t.fake.route(BASE).expect("promoted");
    assert_eq!(route.user_payload_type, Some(101));
    let other = t.fake.route(BASE + 2).expect("promoted");
    assert_eq!(other.user_payload_type, None);
}

/// Two realms: `a` (from port 30000) and `b` (from 40000), two leg slots each.
fn two_realms(a: IpAddr, b: IpAddr) -> SocketPlan {
    let mut plan = SocketPlan::default();
    plan.push(crate::RealmId(0), a, 30000, 2);
    plan.push(crate::RealmId(1), b, 40000, 2);
    plan
}

#[test]
fn a_pair_across_two_realms_of_one_family_is_promoted_on_each_realm_address() {
    let inside: IpAddr = "203.0.113.7".parse().unwrap();
    // Leg A on the second leg slot of realm 0, leg B on the first of realm 1.
    let mut t = setup_in(
        two_realms(ip(), inside),
        vec![Some(ip()), Some(inside)],
        [1, 2],
    );
    let (caller, callee) = (peer_addr(1, 4000), peer_addr(9, 5000));
    call(&mut t, params(caller), params(callee));
    t.r.housekeeping(WINDOW + 1);
    let a = t.fake.route(30002).expect("A's RTP port promoted");
    assert_eq!(
        (a.local, a.peer, a.out_local, a.out_peer),
        (
            SocketAddr::new(ip(), 30002),
            caller,
            SocketAddr::new(inside, 40000),
            callee
        )
    );
    let b = t.fake.route(40000).expect("B's RTP port promoted");
    assert_eq!(
        (b.local, b.out_local),
        (SocketAddr::new(inside, 40000), SocketAddr::new(ip(), 30002))
    );
    let rtcp = t.fake.route(40001).expect("B's RTCP port promoted");
    assert_eq!(
        (rtcp.local, rtcp.out_local),
        (SocketAddr::new(inside, 40001), SocketAddr::new(ip(), 30003))
    );
    assert_eq!(t.shared.worker.fast_ports.get(), 4);
}

#[test]
fn a_pair_across_two_realms_of_different_families_is_not_promoted() {
    let v6: IpAddr = "2001:db8::7".parse().unwrap();
    let mut t = setup_in(two_realms(ip(), v6), vec![Some(ip()), Some(v6)], [0, 2]);
    let (caller, callee): (SocketAddr, SocketAddr) =
        (peer_addr(1, 4000), "[2001:db8::9]:5000".parse().unwrap());
    call(&mut t, params(caller), params(callee));
    t.r.housekeeping(WINDOW + 1);
    let s = stats(&t);
    assert!(s.a.locked && s.b.locked, "both legs locked: {s:?}");
    assert!(t.fake.k().routes.is_empty(), "an IPv4/IPv6 pair promoted");
    assert_eq!(t.shared.worker.fast_ports.get(), 0);
    assert_eq!(t.shared.worker.fast_errors.get(), 0, "not even tried");
    // The worker bridges the families.
    assert!(packet(&mut t, 0, caller, 50, WINDOW + 10));
    assert!(packet(&mut t, 4, callee, 50, WINDOW + 10));
}

#[test]
fn a_realm_the_program_does_not_forward_keeps_its_pairs_with_the_worker() {
    let inside: IpAddr = "203.0.113.7".parse().unwrap();
    let mut t = setup_in(two_realms(ip(), inside), vec![Some(ip()), None], [0, 2]);
    let (caller, callee) = (peer_addr(1, 4000), peer_addr(9, 5000));
    call(&mut t, params(caller), params(callee));
    t.r.housekeeping(WINDOW + 1);
    assert!(t.fake.k().routes.is_empty());
    assert!(packet(&mut t, 0, caller, 50, WINDOW + 10));
}

#[test]
fn realms_of_one_family_sharing_port_numbers_stay_off_the_program() {
    let realm = |ip: &str, min: u16, max: u16| RealmConfig {
        bind_ip: ip.parse().unwrap(),
        port_min: min,
        port_max: max,
    };
    let realms = [
        realm("192.0.2.1", 20000, 20999),
        realm("198.51.100.1", 20500, 21499),
        realm("2001:db8::1", 20000, 20999),
        realm("203.0.113.1", 30000, 30999),
    ];
    let ips: Vec<Option<IpAddr>> = realms.iter().map(|r| Some(r.bind_ip)).collect();
    assert_eq!(
        kernel_ips(&ips, &realms),
        vec![None, None, ips[2], ips[3]],
        "the two IPv4 realms meeting on 20500-20999 are left out, the IPv6 one is not"
    );
    // A realm the program does not forward claims no port numbers.
    let ips = vec![ips[0], None, ips[2], ips[3]];
    assert_eq!(kernel_ips(&ips, &realms), ips);
}

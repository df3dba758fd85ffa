//! The XDP fast path between network namespaces: caller ↔ appliance ↔ callee over veth
//! pairs, the program attached natively on the appliance's two veth ends, two legs
//! promoted through the API. Media both ways arrives rewritten with valid checksums,
//! counters equal the packets sent, an attacker's packets go up to the stack and never
//! out, a moved peer moves the flow, demotion hands the port back to the worker and
//! dropping the fast path detaches it.

mod support;

use std::net::{IpAddr, SocketAddr, UdpSocket};

use portcullis_xdp::{
    monotonic_now_ns, AttachMode, AttachedMode, FastLeg, FastPath, LegKey, PortKind, Stat,
};
use support::{pending, recv, rtp, Plan, Topology, V4, V6};

const PACKETS: u16 = 50;
const PAYLOAD: usize = 160;

const CALLER_PORT: u16 = 10_000;
const LEG_A_PORT: u16 = 20_000;
const LEG_B_PORT: u16 = 30_000;
const CALLEE_PORT: u16 = 40_000;

fn sa(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

/// The two ports of a call as the worker would promote them once both legs are locked.
fn legs(p: &Plan, callee: SocketAddr) -> (FastLeg, FastLeg) {
    let a_local = sa(p.appliance_a, LEG_A_PORT);
    let b_local = sa(p.appliance_b, LEG_B_PORT);
    let caller = sa(p.caller, CALLER_PORT);
    let a = FastLeg {
        local: a_local,
        peer: caller,
        out_local: b_local,
        out_peer: callee,
        kind: PortKind::Rtp,
        clock_rate: 8000,
        user_payload_type: Some(101),
    };
    let b = FastLeg {
        local: b_local,
        peer: callee,
        out_local: a_local,
        out_peer: caller,
        kind: PortKind::Rtp,
        clock_rate: 8000,
        user_payload_type: Some(101),
    };
    (a, b)
}

/// Sends `PACKETS` RTP packets from `from` to `to` and checks each arrives at `sink`
/// unchanged, from `expect_src`.
fn stream(from: &UdpSocket, to: SocketAddr, sink: &UdpSocket, expect_src: SocketAddr, ssrc: u32) {
    for seq in 0..PACKETS {
        let pkt = rtp(seq, ssrc, 0, PAYLOAD);
        from.send_to(&pkt, to).expect("send");
        let (got, src) = recv(sink);
        assert_eq!(src, expect_src, "rewritten source of packet {seq}");
        assert_eq!(got, pkt, "payload of packet {seq}");
    }
}

/// Whether `ip link show` lists an XDP program on `dev` in `ns`, and in which mode.
fn xdp_shown(ns: &support::Netns, dev: &str) -> String {
    ns.ip_out(&["link", "show", "dev", dev])
}

fn scenario(plan: &Plan) {
    let t = Topology::new(plan);

    // veth delivers XDP_TX / XDP_REDIRECT frames only to a peer that runs NAPI, i.e. has
    // an XDP program itself: the far ends get the same program with nothing promoted,
    // which passes every packet up.
    let caller_fp = t
        .caller
        .run(|| FastPath::attach("c0", AttachMode::Native).expect("attach c0"));
    let callee_fp = t
        .callee
        .run(|| FastPath::attach("b0", AttachMode::Native).expect("attach b0"));

    let mut fp = t.appliance.run(|| {
        let mut fp = FastPath::attach("a0", AttachMode::Native).expect("attach a0 natively");
        assert_eq!(
            fp.attach_also("a1", AttachMode::Native).expect("attach a1"),
            AttachedMode::Native
        );
        fp
    });
    assert!(fp
        .interfaces()
        .iter()
        .all(|i| i.mode == AttachedMode::Native));
    for dev in ["a0", "a1"] {
        let shown = xdp_shown(&t.appliance, dev);
        assert!(
            shown.contains("xdp ") || shown.contains("xdp/"),
            "{dev}: {shown}"
        );
        assert!(
            !shown.contains("xdpgeneric"),
            "{dev} in generic mode: {shown}"
        );
    }

    let caller = t.caller.udp(sa(plan.caller, CALLER_PORT));
    let callee = t.callee.udp(sa(plan.callee, CALLEE_PORT));
    let attacker = t.caller.udp(sa(plan.attacker, CALLER_PORT));
    let worker_a = t.appliance.udp(sa(plan.appliance_a, LEG_A_PORT));
    let worker_b = t.appliance.udp(sa(plan.appliance_b, LEG_B_PORT));

    // Before promotion the "worker" sees and relays the first packets (which also
    // resolves the neighbours the program's FIB lookup needs).
    caller
        .send_to(&rtp(1000, 1, 0, PAYLOAD), sa(plan.appliance_a, LEG_A_PORT))
        .unwrap();
    assert_eq!(recv(&worker_a).1, sa(plan.caller, CALLER_PORT));
    worker_b
        .send_to(b"first", sa(plan.callee, CALLEE_PORT))
        .unwrap();
    assert_eq!(recv(&callee).0, b"first");
    callee
        .send_to(&rtp(2000, 2, 0, PAYLOAD), sa(plan.appliance_b, LEG_B_PORT))
        .unwrap();
    assert_eq!(recv(&worker_b).1, sa(plan.callee, CALLEE_PORT));
    worker_a
        .send_to(b"first", sa(plan.caller, CALLER_PORT))
        .unwrap();
    assert_eq!(recv(&caller).0, b"first");
    t.appliance.wait_neighbour(plan.caller);
    t.appliance.wait_neighbour(plan.callee);
    let csum_before = (t.caller.udp_csum_errors(), t.callee.udp_csum_errors());

    // Promote both legs. The program knows no next hop toward the callee yet (it learns
    // it from the callee's packets), so the caller's first packet still goes up to the
    // worker; the callee's packets, and from then on everything, stay in the kernel.
    let (leg_a, leg_b) = legs(plan, sa(plan.callee, CALLEE_PORT));
    fp.promote(&leg_a).expect("promote A");
    fp.promote(&leg_b).expect("promote B");
    let (key_a, key_b) = (LegKey::new(leg_a.local), LegKey::new(leg_b.local));
    assert!(fp.is_promoted(key_a) && fp.is_promoted(key_b));
    let early = rtp(1001, 1, 0, PAYLOAD);
    caller.send_to(&early, leg_a.local).unwrap();
    assert_eq!(recv(&worker_a).0, early);
    assert_eq!(fp.stats().unwrap().get(Stat::NoPeerMac), 1);
    assert_eq!(fp.read_counters(key_a).unwrap().unwrap().packets, 0);

    stream(
        &callee,
        leg_b.local,
        &caller,
        sa(plan.appliance_a, LEG_A_PORT),
        0xb,
    );
    stream(
        &caller,
        leg_a.local,
        &callee,
        sa(plan.appliance_b, LEG_B_PORT),
        0xa,
    );
    assert!(
        !pending(&worker_a) && !pending(&worker_b),
        "forwarded packets reached the stack"
    );
    // Every packet arrived with a valid UDP checksum (a bad one is dropped and counted).
    assert_eq!(
        (t.caller.udp_csum_errors(), t.callee.udp_csum_errors()),
        csum_before
    );

    let now = monotonic_now_ns();
    for key in [key_a, key_b] {
        let c = fp.read_counters(key).unwrap().expect("counters");
        assert_eq!(c.packets, u64::from(PACKETS), "{key:?}");
        assert_eq!(c.bytes, u64::from(PACKETS) * (12 + PAYLOAD) as u64);
        assert_eq!(c.rtp_received, u64::from(PACKETS));
        assert_eq!(c.rtp_expected, u64::from(PACKETS));
        assert_eq!(c.rtp_lost(), 0);
        assert!(c.last_seen_ns > 0 && c.last_seen_ns <= now, "{c:?}");
    }
    let stats = fp.stats().unwrap();
    assert_eq!(stats.get(Stat::Redirect), 2 * u64::from(PACKETS));
    assert_eq!(stats.get(Stat::Tx), 0);

    // An attacker on the caller's segment, same port, other address: its packets go up
    // to the stack (the worker drops them there) and are never forwarded. The same for the
    // caller's address with another port.
    let spoof_port = t.caller.udp(sa(plan.caller, CALLER_PORT + 1));
    for (i, s) in [&attacker, &spoof_port].into_iter().enumerate() {
        for seq in 0..5 {
            s.send_to(&rtp(seq, 0xbad, 0, PAYLOAD), leg_a.local)
                .unwrap();
            let (got, from) = recv(&worker_a);
            assert_eq!(from, s.local_addr().unwrap(), "attacker {i}");
            assert_eq!(got, rtp(seq, 0xbad, 0, PAYLOAD));
        }
    }
    // The next packet the callee sees is the caller's, not one of the attacker's.
    let marker = rtp(PACKETS, 0xa, 0, PAYLOAD);
    caller.send_to(&marker, leg_a.local).unwrap();
    assert_eq!(recv(&callee).0, marker);
    assert_eq!(fp.stats().unwrap().get(Stat::PeerMismatch), 10);

    // STUN (first bits 00) and the user payload type (DTMF) go up to the worker.
    let stun = [
        0u8, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    ];
    caller.send_to(&stun, leg_a.local).unwrap();
    assert_eq!(recv(&worker_a).0, stun);
    let dtmf = rtp(PACKETS + 1, 0xa, 101, 4);
    caller.send_to(&dtmf, leg_a.local).unwrap();
    assert_eq!(recv(&worker_a).0, dtmf);
    let stats = fp.stats().unwrap();
    assert_eq!(stats.get(Stat::NotRtp), 1);
    assert_eq!(stats.get(Stat::UserPayloadType), 1);
    let c = fp.read_counters(key_a).unwrap().unwrap();
    assert_eq!(
        c.packets,
        u64::from(PACKETS) + 1,
        "only the marker was added"
    );

    // A re-INVITE moves the callee to a new address: both ports are demoted and promoted
    // again with the new peer; the flow follows once the moved callee has sent.
    let moved = t.callee.udp(sa(plan.callee_moved, CALLEE_PORT + 2));
    let (leg_a2, leg_b2) = legs(plan, moved.local_addr().unwrap());
    let before = fp.demote(key_a).unwrap().expect("A was promoted");
    assert_eq!(before.packets, u64::from(PACKETS) + 1);
    assert!(fp.demote(key_b).unwrap().is_some());
    fp.promote(&leg_a2).expect("promote A to the moved callee");
    fp.promote(&leg_b2)
        .expect("promote B from the moved callee");
    stream(
        &moved,
        leg_b2.local,
        &caller,
        sa(plan.appliance_a, LEG_A_PORT),
        0xd,
    );
    stream(
        &caller,
        leg_a2.local,
        &moved,
        sa(plan.appliance_b, LEG_B_PORT),
        0xc,
    );
    assert!(!pending(&callee), "the old callee address still gets media");
    assert!(!pending(&worker_a) && !pending(&worker_b));
    assert_eq!(
        fp.read_counters(key_a).unwrap().unwrap().packets,
        u64::from(PACKETS)
    );

    // Hold / teardown: demoted, the port's packets go to the worker again and the
    // counters are gone.
    let last = fp.demote(key_a).unwrap().expect("A promoted");
    assert_eq!(last.packets, u64::from(PACKETS));
    assert!(!fp.is_promoted(key_a));
    assert_eq!(fp.read_counters(key_a).unwrap(), None);
    assert_eq!(
        fp.demote(key_a).unwrap(),
        None,
        "a second demote is a no-op"
    );
    let after = rtp(9999, 0xa, 0, PAYLOAD);
    caller.send_to(&after, leg_a.local).unwrap();
    assert_eq!(recv(&worker_a).0, after);
    // Leg B is still in the kernel.
    let back = rtp(PACKETS, 0xd, 0, PAYLOAD);
    moved.send_to(&back, leg_b.local).unwrap();
    assert_eq!(recv(&caller).0, back);
    assert!(!pending(&worker_b));

    // Dropping the fast path detaches it: everything goes up again. The kernel releases
    // the link once its last reference is gone, which may lag the close a little.
    drop(fp);
    for dev in ["a0", "a1"] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut shown = xdp_shown(&t.appliance, dev);
        while shown.contains("xdp") && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
            shown = xdp_shown(&t.appliance, dev);
        }
        assert!(!shown.contains("xdp"), "{dev} still has XDP: {shown}");
    }
    moved.send_to(&back, leg_b.local).unwrap();
    assert_eq!(recv(&worker_b).0, back);
    assert_eq!(
        (t.caller.udp_csum_errors(), t.callee.udp_csum_errors()),
        csum_before
    );
    drop((caller_fp, callee_fp));
}

#[test]
fn ipv4_media_both_ways_promote_demote_attacker() {
    scenario(&V4);
}

#[test]
fn ipv6_media_both_ways_promote_demote_attacker() {
    scenario(&V6);
}

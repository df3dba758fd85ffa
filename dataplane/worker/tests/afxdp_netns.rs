//! The af_xdp backend in network namespaces, at the data plane's level: a caller
//! namespace, the appliance namespace with two interfaces (`a0` toward the caller, `a1`
//! toward the callee, one media realm each) and a callee namespace. Three pairs bridge the
//! two realms: plain RTP, SRTP→RTP (the caller protects) and RTP→SRTP (the appliance
//! protects toward the callee). Media both ways comes in through the AF_XDP socket of one
//! interface and leaves through the other's (copied between the two UMEMs), every packet
//! is relayed, and once the next hops are learned none goes through the kernel's sockets
//! and the worker allocates nothing per packet (STYLE practice 8). A worker held still
//! counts the frames the kernel dropped for it. Over IPv4, then over IPv6.

mod common;
#[path = "../../xdp/tests/support/mod.rs"]
mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::counting::{mark_worker, Counting, ALLOCS, ARMED};
use common::{keys, plain};
use portcullis_dataplane::{
    Backend, Dataplane, DataplaneConfig, FastPathConfig, RealmConfig, RealmId, StreamParams,
    WorkerId,
};
use portcullis_rtp::srtp::SrtpSession;
use portcullis_xdp::{AttachMode, FastPath};
use support::{Plan, Topology, V4, V6};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One pair: the caller's and the callee's sockets, the appliance's ports toward each,
/// and the caller's SRTP sender when leg A takes SRTP in.
struct Pair {
    caller: UdpSocket,
    callee: UdpSocket,
    a: SocketAddr,
    b: SocketAddr,
    srtp_from_caller: Option<SrtpSession>,
}

/// `n` packets each way on every pair, each awaited at the far end; returns them.
fn traffic(pairs: &[Pair], seq0: u16, n: u16) -> u64 {
    let mut relayed = 0;
    let mut buf = [0u8; 512];
    for i in 0..n {
        let seq = seq0.wrapping_add(i);
        for p in pairs {
            let pkt = support::rtp(seq, 0xca11, 0, 160);
            buf[..pkt.len()].copy_from_slice(&pkt);
            let mut len = pkt.len();
            if let Some(s) = &p.srtp_from_caller {
                // Cloned per packet: the ROC stays 0 and sequence numbers never repeat.
                len = s.clone().protect_rtp(&mut buf, len).expect("protect");
            }
            p.caller.send_to(&buf[..len], p.a).expect("caller send");
            support::recv(&p.callee);
            p.callee
                .send_to(&support::rtp(seq, 0xb0b, 0, 160), p.b)
                .expect("callee send");
            support::recv(&p.caller);
            relayed += 2;
        }
    }
    relayed
}

/// IPv4 then IPv6, one after the other: the allocation counter is global to the binary.
#[test]
fn af_xdp_relays_between_two_interfaces_without_the_kernel_and_without_allocating() {
    relay_between_interfaces(&V4);
    relay_between_interfaces(&V6);
}

fn relay_between_interfaces(plan: &Plan) {
    let t = Topology::new(plan);
    let (ip_a, ip_b) = (plan.appliance_a, plan.appliance_b);
    let dp = t.appliance.run(move || {
        let mut program = FastPath::attach("a0", AttachMode::Native).expect("XDP on a0");
        program
            .attach_also("a1", AttachMode::Native)
            .expect("XDP on a1");
        ARMED.store(true, Ordering::SeqCst);
        let dp = Dataplane::start(DataplaneConfig {
            bind_ip: ip_a,
            port_min: 20000,
            port_max: 20127,
            realms: vec![RealmConfig {
                bind_ip: ip_b,
                port_min: 20000,
                port_max: 20127,
            }],
            backend: Backend::AfXdp,
            af_xdp: Some(FastPathConfig {
                program: Arc::new(program),
                local_ips: vec![Some(ip_a), Some(ip_b)],
            }),
            on_worker_start: Some(mark_worker),
            ..DataplaneConfig::default()
        })
        .expect("data plane with af_xdp");
        ARMED.store(false, Ordering::SeqCst);
        dp
    });
    assert!(
        ALLOCS.swap(0, Ordering::SeqCst) > 0,
        "the counting allocator does not see the worker thread"
    );
    assert_eq!(dp.backend(), Backend::AfXdp);

    let k = keys(0x40);
    let mut pairs = Vec::new();
    for mode in 0..3 {
        let h = dp
            .allocate_pair_in(RealmId(0), RealmId(1))
            .expect("a pair across the realms");
        let caller = t.caller.udp(SocketAddr::new(plan.caller, 0));
        let callee = t.callee.udp(SocketAddr::new(plan.callee, 0));
        let (pa, pb) = (caller.local_addr().unwrap(), callee.local_addr().unwrap());
        let (a, b, srtp_from_caller) = match mode {
            0 => (plain(Some(pa)), plain(Some(pb)), None),
            1 => (
                StreamParams {
                    srtp_in: Some(k),
                    ..plain(Some(pa))
                },
                plain(Some(pb)),
                Some(SrtpSession::new(&k)),
            ),
            _ => (
                plain(Some(pa)),
                StreamParams {
                    srtp_out: Some(k),
                    ..plain(Some(pb))
                },
                None,
            ),
        };
        dp.update(&h, a, b).expect("update");
        pairs.push(Pair {
            caller,
            callee,
            a: SocketAddr::new(ip_a, h.port_a),
            b: SocketAddr::new(ip_b, h.port_b),
            srtp_from_caller,
        });
    }
    std::thread::sleep(Duration::from_millis(50));
    // Warm-up: latching, the next hops on both interfaces, first SRTP streams.
    assert_eq!(traffic(&pairs, 0, 50), 300);
    // The worker counts a batch's sends once the kernel took them, which may be after the
    // peer received the last one: let it finish before reading.
    std::thread::sleep(Duration::from_millis(50));
    let before = dp.worker_stats()[0];
    ALLOCS.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    let relayed = traffic(&pairs, 1000, 300);
    // Housekeeping runs at least once inside the window.
    std::thread::sleep(Duration::from_millis(120));
    ARMED.store(false, Ordering::SeqCst);
    let after = dp.worker_stats()[0];
    assert_eq!(relayed, 1800);
    assert_eq!(
        ALLOCS.load(Ordering::SeqCst),
        0,
        "the worker allocated on the packet path"
    );
    assert_eq!(
        after.xsk_rx - before.xsk_rx,
        relayed,
        "{before:?} {after:?}"
    );
    assert_eq!(after.xsk_tx - before.xsk_tx, relayed, "{after:?}");
    assert_eq!(after.xsk_kernel_tx, before.xsk_kernel_tx, "{after:?}");
    assert_eq!(after.rx_packets - before.rx_packets, relayed);
    assert_eq!(after.srtp_failures, 0);

    // A worker that falls behind: held still for a second while 12,000 packets arrive, it
    // has room for a fill ring's worth; the kernel drops the rest before its RX ring, and
    // the worker counts those drops from the socket's statistics.
    let sent = 12_000u64;
    dp.quiesce(WorkerId(0), Duration::from_secs(1))
        .expect("quiesce");
    std::thread::sleep(Duration::from_millis(20));
    let pkt = support::rtp(5000, 0xca11, 0, 160);
    for _ in 0..sent {
        pairs[0].caller.send_to(&pkt, pairs[0].a).expect("send");
    }
    std::thread::sleep(Duration::from_millis(1500));
    let held = dp.worker_stats()[0];
    let (got, dropped) = (
        held.xsk_rx - after.xsk_rx,
        held.xsk_rx_dropped - after.xsk_rx_dropped,
    );
    assert!(dropped > 0, "no drop counted: {held:?}");
    assert!(
        got + dropped <= sent && (got + dropped) * 10 >= sent * 9,
        "received {got} + dropped {dropped} of {sent}"
    );
}

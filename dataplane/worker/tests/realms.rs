//! Media realms: a pair with leg A in an IPv4 realm and leg B in an IPv6 realm relays
//! between an IPv4 and an IPv6 peer on both backends, each leg's packets leaving from its
//! own realm's address and port; realms run out of ports independently; bad realm sets and
//! unknown realms are refused.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use common::{peer_on, plain, recv_relayed, rtp, start_with};
use portcullis_dataplane::{
    Backend, Dataplane, DataplaneConfig, DataplaneError, RealmConfig, RealmId,
};

const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

/// Realm 0 on IPv4 loopback (`v4_base..+15`), realm 1 on IPv6 loopback (`v6_base..+7`).
fn two_realms(backend: Backend, v4_base: u16, v6_base: u16) -> Dataplane {
    start_with(DataplaneConfig {
        port_min: v4_base,
        port_max: v4_base + 15,
        bind_ip: V4,
        realms: vec![RealmConfig {
            bind_ip: V6,
            port_min: v6_base,
            port_max: v6_base + 7,
        }],
        backend,
        ..DataplaneConfig::default()
    })
}

fn v4_to_v6(backend: Backend, v4_base: u16, v6_base: u16) {
    let dp = two_realms(backend, v4_base, v6_base);
    let h = dp
        .allocate_pair_in(RealmId(0), RealmId(1))
        .expect("pair across realms");
    assert!((v4_base..v4_base + 16).contains(&h.port_a), "{h:?}");
    assert!((v6_base..v6_base + 8).contains(&h.port_b), "{h:?}");
    let (pa, pb) = (peer_on(V4), peer_on(V6));
    let (pa_addr, pb_addr) = (pa.local_addr().expect("a"), pb.local_addr().expect("b"));
    dp.update(&h, plain(Some(pa_addr)), plain(Some(pb_addr)))
        .expect("update");
    std::thread::sleep(Duration::from_millis(50));
    let port_a = SocketAddr::new(V4, h.port_a);
    let port_b = SocketAddr::new(V6, h.port_b);
    for seq in 1..=10u16 {
        pa.send_to(&rtp(seq, 0, 1, b"a"), port_a).expect("send");
        assert_eq!(
            recv_relayed(&pb),
            (rtp(seq, 0, 1, b"a"), port_b),
            "IPv4 -> IPv6"
        );
    }
    for seq in 1..=10u16 {
        pb.send_to(&rtp(seq, 0, 2, b"b"), port_b).expect("send");
        assert_eq!(
            recv_relayed(&pa),
            (rtp(seq, 0, 2, b"b"), port_a),
            "IPv6 -> IPv4"
        );
    }
    let s = dp.stats(&h).expect("stats");
    assert_eq!((s.a.rx_packets, s.b.tx_packets), (10, 10));
    assert_eq!((s.b.rx_packets, s.a.tx_packets), (10, 10));
    // Leg B's port is not open on the IPv4 realm's address (nor A's on IPv6): a packet
    // there reaches no relay socket.
    let stray = peer_on(V4);
    stray
        .send_to(&rtp(99, 0, 3, b"x"), SocketAddr::new(V4, h.port_b))
        .expect("send");
    pa.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut b = [0u8; 64];
    assert!(pa.recv_from(&mut b).is_err(), "nothing relayed to A");
    dp.remove(&h).expect("remove");
}

#[test]
fn a_v4_leg_and_a_v6_leg_relay_both_ways_on_io_uring() {
    v4_to_v6(Backend::IoUring, 13700, 13720);
}

#[test]
fn a_v4_leg_and_a_v6_leg_relay_both_ways_on_mmsg() {
    v4_to_v6(Backend::Mmsg, 13730, 13750);
}

/// Realm 1 holds four leg slots: two cross-realm pairs and one pair inside it use them
/// up, while realm 0 still has room; removing a pair gives its slots back.
#[test]
fn realms_run_out_of_ports_independently() {
    let dp = two_realms(Backend::Mmsg, 13760, 13780);
    let p1 = dp.allocate_pair_in(RealmId(0), RealmId(1)).expect("1");
    let p2 = dp.allocate_pair_in(RealmId(1), RealmId(0)).expect("2");
    let p3 = dp.allocate_pair_in(RealmId(1), RealmId(1)).expect("3");
    assert!(matches!(
        dp.allocate_pair_in(RealmId(0), RealmId(1)),
        Err(DataplaneError::Exhausted)
    ));
    let p4 = dp
        .allocate_pair_in(RealmId(0), RealmId(0))
        .expect("realm 0 has room");
    let mut ports = vec![p1.port_b, p2.port_a, p3.port_a, p3.port_b];
    ports.sort_unstable();
    assert_eq!(
        ports,
        vec![13780, 13782, 13784, 13786],
        "every realm-1 leg slot"
    );
    assert!((13760..13776).contains(&p4.port_a) && (13760..13776).contains(&p4.port_b));
    dp.remove(&p3).expect("remove");
    let p5 = dp
        .allocate_pair_in(RealmId(1), RealmId(0))
        .expect("a slot came back");
    assert!((13780..13788).contains(&p5.port_a));
    assert!(matches!(
        dp.allocate_pair_in(RealmId(2), RealmId(0)),
        Err(DataplaneError::UnknownRealm(2))
    ));
}

#[test]
fn overlapping_or_empty_realms_are_refused() {
    let base = DataplaneConfig {
        port_min: 13790,
        port_max: 13797,
        bind_ip: V4,
        backend: Backend::Mmsg,
        ..DataplaneConfig::default()
    };
    let overlapping = DataplaneConfig {
        realms: vec![RealmConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port_min: 13796,
            port_max: 13799,
        }],
        ..base.clone()
    };
    assert!(matches!(
        Dataplane::start(overlapping),
        Err(DataplaneError::Config(m)) if m.contains("overlap")
    ));
    let empty = DataplaneConfig {
        realms: vec![RealmConfig {
            bind_ip: V6,
            port_min: 13799,
            port_max: 13790,
        }],
        ..base
    };
    assert!(matches!(
        Dataplane::start(empty),
        Err(DataplaneError::Config(_))
    ));
}

/// A realm whose address is not on the host fails the start with the address.
#[test]
fn a_realm_address_not_on_the_host_fails_the_start_with_the_address() {
    let cfg = DataplaneConfig {
        port_min: 13800,
        port_max: 13807,
        bind_ip: V4,
        realms: vec![RealmConfig {
            // TEST-NET-2: never a local address here.
            bind_ip: "198.51.100.77".parse().expect("ip"),
            port_min: 13800,
            port_max: 13807,
        }],
        backend: Backend::Mmsg,
        ..DataplaneConfig::default()
    };
    let e = Dataplane::start(cfg).expect_err("not local");
    assert!(e.to_string().contains("198.51.100.77"), "{e}");
}

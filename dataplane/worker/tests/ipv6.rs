//! IPv6 media: the relay bound to `::1` relays between IPv6 peers on both backends (and
//! through connected companions on io_uring), and bound to `::` (dual stack) it relays
//! between IPv4 peers, whose addresses reach its sockets as v4-mapped ones and are
//! handled (latched, reported) as the IPv4 addresses they are.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use common::{peer_on, plain, recv_relayed, rtp, start_with, wait_event, wait_until, WAIT};
use portcullis_dataplane::{Backend, DataplaneConfig, Event, Side};

/// Both directions of one pair, bound to `bind_ip`, between peers on `peer_ip`; the relay
/// is reached at `relay_ip`.
fn relays_both_ways(
    backend: Backend,
    bind_ip: IpAddr,
    peer_ip: IpAddr,
    relay_ip: IpAddr,
    base: u16,
) {
    let dp = start_with(DataplaneConfig {
        port_min: base,
        port_max: base + 7,
        bind_ip,
        backend,
        ..DataplaneConfig::default()
    });
    let h = dp.allocate_pair().expect("pair");
    let (pa, pb) = (peer_on(peer_ip), peer_on(peer_ip));
    let pb_addr = pb.local_addr().expect("addr");
    // A learnt from its stream (its first two packets are the probation), B signalled
    // (its packets are taken only if their source compares equal to the signalled one).
    dp.update(&h, plain(None), plain(Some(pb_addr)))
        .expect("update");
    std::thread::sleep(Duration::from_millis(50));
    let (port_a, port_b) = (
        SocketAddr::new(relay_ip, h.port_a),
        SocketAddr::new(relay_ip, h.port_b),
    );
    for seq in [101, 102] {
        pa.send_to(&rtp(seq, 0, 1, b"a"), port_a).expect("send");
    }
    for seq in 103..=112u16 {
        pa.send_to(&rtp(seq, 0, 1, b"a"), port_a).expect("send");
        assert_eq!(recv_relayed(&pb), (rtp(seq, 0, 1, b"a"), port_b), "A->B");
    }
    for seq in 1..=10u16 {
        pb.send_to(&rtp(seq, 0, 2, b"b"), port_b).expect("send");
        assert_eq!(recv_relayed(&pa), (rtp(seq, 0, 2, b"b"), port_a), "B->A");
    }
    // The latched source is the peer's own address: an IPv4 peer of a dual-stack socket
    // is reported as IPv4, not as the v4-mapped form the socket saw.
    let pa_addr = pa.local_addr().expect("addr");
    assert!(
        wait_event(&dp, WAIT, |e| matches!(
            e,
            Event::Latched { side: Side::A, addr, .. } if *addr == pa_addr
        ))
        .is_some(),
        "leg A latched on {pa_addr}"
    );
    let s = dp.stats(&h).expect("stats");
    assert_eq!((s.a.rx_packets, s.b.tx_packets), (12, 10));
    assert_eq!((s.b.rx_packets, s.a.tx_packets), (10, 10));
    if backend == Backend::IoUring {
        assert!(wait_until(WAIT, || dp.worker_stats()[0].connected_sockets == 2));
        assert_eq!(dp.worker_stats()[0].connect_failures, 0);
    }
}

const V6_LO: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
const V6_ANY: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
const V4_LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[test]
fn ipv6_media_on_io_uring() {
    relays_both_ways(Backend::IoUring, V6_LO, V6_LO, V6_LO, 13420);
}

#[test]
fn ipv6_media_on_mmsg() {
    relays_both_ways(Backend::Mmsg, V6_LO, V6_LO, V6_LO, 13430);
}

#[test]
fn dual_stack_bind_relays_ipv4_peers_on_io_uring() {
    relays_both_ways(Backend::IoUring, V6_ANY, V4_LO, V4_LO, 13440);
}

#[test]
fn dual_stack_bind_relays_ipv4_peers_on_mmsg() {
    relays_both_ways(Backend::Mmsg, V6_ANY, V4_LO, V4_LO, 13450);
}

//! Connected send sockets (io_uring backend): a leg that forwards to its peer gets a
//! second socket on its port, connected to that peer, and sends through it; the peer's
//! packets that now arrive on it are relayed as before; a new peer (signalled, or learnt)
//! replaces it; removing the pair closes it; nothing leaks at teardown.

mod common;

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::time::Duration;

use common::*;
use portcullis_dataplane::{Backend, DataplaneConfig, DropReason, Event, Side, StreamParams};

const WAIT: Duration = Duration::from_secs(3);

/// `/proc/net/udp` has a socket bound to local `port` and connected to remote `peer`.
fn connected_in_kernel(port: u16, peer: &UdpSocket) -> bool {
    connected_count(port, peer) > 0
}

/// Sockets in `/proc/net/udp` bound to local `port` and connected to remote `peer`.
fn connected_count(port: u16, peer: &UdpSocket) -> usize {
    let remote = peer.local_addr().expect("peer addr").port();
    let table = std::fs::read_to_string("/proc/net/udp").expect("/proc/net/udp");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let mut f = l.split_whitespace().skip(1);
            let (Some(local), Some(rem)) = (f.next(), f.next()) else {
                return false;
            };
            let port_of = |a: &str| {
                a.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            port_of(local) == Some(port) && port_of(rem) == Some(remote)
        })
        .count()
}

fn follow_a_relatch(bind_ip: IpAddr, base: u16) {
    let dp = start_with(DataplaneConfig {
        port_min: base,
        port_max: base + 7,
        bind_ip,
        backend: Backend::IoUring,
        ..DataplaneConfig::default()
    });
    let h = dp.allocate_pair().expect("pair");
    let (pa, pa2, pb) = (peer(), peer(), peer());
    // A's address is learnt from its stream (a caller behind NAT); B's is signalled.
    let a: StreamParams = plain(None);
    dp.update(&h, a, plain(Some(addr(&pb)))).expect("update");
    std::thread::sleep(Duration::from_millis(50));

    // A → B: leg B forwards to its signalled peer and gets a companion connected to it
    // (leg A takes pa's stream from its third packet).
    for seq in 1..=2u16 {
        pa.send_to(&rtp(seq, 0, 1, b"a"), to(h.port_a))
            .expect("send");
    }
    for seq in 3..=5u16 {
        pa.send_to(&rtp(seq, 0, 1, b"a"), to(h.port_a))
            .expect("send");
        let (got, from) = recv(&pb).expect("A->B relayed");
        assert_eq!((got, from), (rtp(seq, 0, 1, b"a"), to(h.port_b)));
    }
    assert!(wait_until(WAIT, || connected_in_kernel(h.port_b, &pb)));
    // B → A: pb's packets now reach port B's connected socket and are relayed the same;
    // leg A (latched on pa) gets its own companion.
    for seq in 1..=5u16 {
        pb.send_to(&rtp(seq, 0, 2, b"b"), to(h.port_b))
            .expect("send");
        let (got, from) = recv(&pa).expect("B->A relayed");
        assert_eq!((got, from), (rtp(seq, 0, 2, b"b"), to(h.port_a)));
    }
    assert!(wait_until(WAIT, || connected_in_kernel(h.port_a, &pa)));
    assert!(wait_until(WAIT, || dp.worker_stats()[0].connected_sockets == 2));
    // This kernel hands a peer's datagrams to the socket connected to it last, so each
    // companion is a send socket that is never read and a receive socket (both connected):
    // pb's packets above came in on B's receive socket.
    assert_eq!(dp.worker_stats()[0].send_only_sockets, 2);
    assert_eq!(connected_count(h.port_b, &pb), 2);
    assert_eq!(connected_count(h.port_a, &pa), 2);

    assert!(wait_event(&dp, WAIT, |e| matches!(
        e,
        Event::Latched { side: Side::A, addr, .. } if *addr == common::addr(&pa)
    ))
    .is_some());
    // A re-INVITE moves leg A to pa2 (whose packets arrive on A's own socket, the
    // companion being connected to pa); B → A follows it through a new companion.
    dp.update(&h, plain(Some(addr(&pa2))), plain(Some(addr(&pb))))
        .expect("update");
    std::thread::sleep(Duration::from_millis(50));
    pa2.send_to(&rtp(1, 0, 11, b"a2"), to(h.port_a))
        .expect("send");
    assert_eq!(recv(&pb).expect("relayed").0, rtp(1, 0, 11, b"a2"));
    for seq in 6..=8u16 {
        pb.send_to(&rtp(seq, 0, 2, b"b"), to(h.port_b))
            .expect("send");
        let (got, from) = recv(&pa2).expect("B->A follows the move");
        assert_eq!((got, from), (rtp(seq, 0, 2, b"b"), to(h.port_a)));
    }
    assert!(wait_until(WAIT, || connected_in_kernel(h.port_a, &pa2)));
    assert!(
        wait_until(WAIT, || !connected_in_kernel(h.port_a, &pa)),
        "the companion connected to the old source is closed"
    );
    // The old source, whatever its SSRC, now reaches A's own socket and is refused for
    // its source.
    pa.send_to(&rtp(9, 0, 11, b"old"), to(h.port_a))
        .expect("send");
    pa.send_to(&rtp(10, 0, 12, b"old"), to(h.port_a))
        .expect("send");
    assert!(recv_none(&pb).is_none());
    assert!(wait_until(WAIT, || {
        dp.stats(&h)
            .is_some_and(|s| s.a.rtp_source_rejected() == 2 + 2) // and pa's first two
    }));
    let w = dp.worker_stats()[0];
    assert_eq!((w.connected_sockets, w.connect_failures), (2, 0));
    assert_eq!(w.teardown_leaks, 0);

    // Removing the pair closes its companions.
    dp.remove(&h).expect("remove");
    assert!(wait_until(WAIT, || dp.worker_stats()[0].connected_sockets == 0));
    assert_eq!(dp.worker_stats()[0].send_only_sockets, 0);
    assert!(wait_until(WAIT, || !connected_in_kernel(h.port_a, &pa2)
        && !connected_in_kernel(h.port_b, &pb)));

    // Teardown closes the companions with everything else: the ports are free at once.
    drop(dp);
    for port in [h.port_a, h.port_b] {
        UdpSocket::bind(("127.0.0.1", port)).expect("port free after teardown");
        assert!(!connected_in_kernel(port, &pa2) && !connected_in_kernel(port, &pb));
    }
}

#[test]
fn forwards_leave_from_connected_sockets_that_follow_a_move() {
    follow_a_relatch(IpAddr::V4(Ipv4Addr::LOCALHOST), 12200);
}

/// The same with the media sockets on the wildcard address (as `bind_ip = "0.0.0.0"`):
/// connecting gives the companion a specific local address, and the kernel still splits
/// the traffic between the two.
#[test]
fn connected_sockets_work_on_the_wildcard_address() {
    follow_a_relatch(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 12210);
}

/// Early media toward a far end that does not listen yet: every packet to its closed port
/// comes back as ICMP port unreachable, which the kernel reports on the connected socket
/// (the error ends its receive, or fails one send). Once the far end listens, every packet
/// reaches it again through the same companion, and its own packets are read from that
/// companion: the error is never a lasting state.
#[test]
fn a_peer_that_is_not_listening_yet_gets_every_packet_once_it_listens() {
    let dp = start_with(DataplaneConfig {
        port_min: 12220,
        port_max: 12227,
        backend: Backend::IoUring,
        ..DataplaneConfig::default()
    });
    let h = dp.allocate_pair().expect("pair");
    let pa = peer();
    // B's far end: a port that was just free, and is closed while the relay sends to it.
    let closed = addr(&peer());
    dp.update(&h, plain(Some(addr(&pa))), plain(Some(closed)))
        .expect("update");
    std::thread::sleep(Duration::from_millis(50));
    for seq in 1..=20u16 {
        pa.send_to(&rtp(seq, 0, 1, b"early"), to(h.port_a))
            .expect("send");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(wait_until(WAIT, || {
        let w = dp.worker_stats()[0];
        w.connected_sockets == 1 && w.tx_packets >= 20
    }));
    // Each early packet through the companion came back as an error: it ended the
    // companion's receive (re-armed) or failed the next send (counted).
    let refused = |dp: &portcullis_dataplane::Dataplane| {
        dp.stats(&h)
            .map_or(0, |s| s.b.dropped(DropReason::SendError))
    };
    let early_errors = dp.worker_stats()[0].rearms + refused(&dp);
    assert!(early_errors >= 10, "{early_errors} errors reported");
    let pb = UdpSocket::bind(closed).expect("the far end starts listening");
    pb.set_read_timeout(Some(WAIT)).expect("timeout");
    for seq in 21..=40u16 {
        pa.send_to(&rtp(seq, 0, 1, b"media"), to(h.port_a))
            .expect("send");
        let (got, from) = recv(&pb).expect("relayed once the far end listens");
        assert_eq!((got, from), (rtp(seq, 0, 1, b"media"), to(h.port_b)));
    }
    assert!(connected_in_kernel(h.port_b, &pb));
    // The far end's own media reaches the companion, whose receive the errors ended and
    // the worker re-armed, and is relayed to A.
    for seq in 1..=10u16 {
        pb.send_to(&rtp(seq, 0, 2, b"back"), to(h.port_b))
            .expect("send");
        let (got, from) = recv(&pa).expect("B->A relayed");
        assert_eq!((got, from), (rtp(seq, 0, 2, b"back"), to(h.port_a)));
    }
    let w = dp.worker_stats()[0];
    assert_eq!(
        w.connected_sockets, 2,
        "A forwards through a companion of its own"
    );
    assert_eq!(w.connect_failures, 0);
    // No error once the far end listens.
    assert_eq!(w.rearms + refused(&dp), early_errors);
}

//! The UDP receive path before the event queues: banned sources dropped, unknown sources
//! over their rate dropped, configured peers (trunks) in their own queue so that a flood
//! from unknown sources never takes their place.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{next_message, no_event, options, wait_until};
use portcullis_net::{
    Limits, ListenerConfig, SipTransports, Transport, TransportConfig, TransportEvent,
    TransportEvents, TrunkSources,
};
use tokio::net::UdpSocket;
use tokio::time::{sleep, timeout};

async fn bind(limits: Limits, event_queue: usize) -> (SipTransports, TransportEvents, SocketAddr) {
    let (net, rx) = SipTransports::bind(TransportConfig {
        listeners: vec![ListenerConfig {
            transport: Transport::Udp,
            addr: "127.0.0.1:0".parse().expect("literal"),
            tls: None,
        }],
        limits,
        udp_sockets_per_listener: Some(1),
        event_queue,
        ..TransportConfig::default()
    })
    .await
    .expect("bind");
    let addr = net.local_addr(Transport::Udp).expect("udp addr");
    (net, rx, addr)
}

async fn socket_at(ip: &str) -> UdpSocket {
    UdpSocket::bind(format!("{ip}:0"))
        .await
        .expect("bind a loopback source")
}

/// Datagrams the driver has dealt with (queued or dropped before the queue).
fn handled(net: &SipTransports) -> u64 {
    let c = net.counters().snapshot();
    c.messages_in(Transport::Udp) + c.event_queue_drops + c.banned_drops + c.source_rate_drops
}

/// Sends `n` OPTIONS from `sock` (tagged `tag`), waiting after each batch of 10 until the
/// driver has dealt with them, so that no datagram is lost in the kernel's buffer.
async fn send_paced(net: &SipTransports, sock: &UdpSocket, to: SocketAddr, tag: &str, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(10) {
        let before = handled(net);
        for i in chunk {
            sock.send_to(&options(&format!("{tag}{i}"), ""), to)
                .await
                .expect("send");
        }
        let want = before + chunk.len() as u64;
        wait_until("the driver dealt with the batch", || handled(net) >= want).await;
    }
}

/// A source the engine banned (pushed with `refuse`) never reaches the event queues:
/// its datagrams are dropped and counted until the ban ends; other sources are untouched.
#[tokio::test]
async fn banned_source_is_dropped_before_the_queue_until_the_ban_ends() {
    timeout(Duration::from_secs(30), async {
        let (net, mut rx, server) = bind(Limits::default(), 64).await;
        let banned = socket_at("127.0.0.5").await;
        let other = socket_at("127.0.0.6").await;
        let ip: IpAddr = "127.0.0.5".parse().expect("ip");
        let ban = Duration::from_millis(1500);
        assert_eq!(net.refuse(ip, ban), 0, "no open connection to close");
        send_paced(&net, &banned, server, "banned", 30).await;
        assert_eq!(net.counters().snapshot().banned_drops, 30);
        no_event(&mut rx, Duration::from_millis(200)).await;

        send_paced(&net, &other, server, "other", 1).await;
        assert_eq!(
            next_message(&mut rx).await.remote.ip().to_string(),
            "127.0.0.6"
        );

        sleep(ban).await;
        send_paced(&net, &banned, server, "after", 1).await;
        let m = next_message(&mut rx).await;
        assert_eq!(m.remote.ip(), ip);
        assert_eq!(net.counters().snapshot().banned_drops, 30);
    })
    .await
    .expect("test timed out");
}

/// An unknown source over `unknown_source_rate` is dropped and counted; a configured
/// peer sending as fast is never limited there (the engine's policy sees it).
#[tokio::test]
async fn unknown_source_over_rate_is_dropped_a_trunk_is_not() {
    timeout(Duration::from_secs(30), async {
        let limits = Limits {
            unknown_source_rate: 1,
            ..Limits::default()
        };
        let (net, mut rx, server) = bind(limits, 256).await;
        let trunk_ip: IpAddr = "127.0.0.7".parse().expect("ip");
        net.set_trunk_sources(TrunkSources::new(move |ip| ip == trunk_ip));
        let unknown = socket_at("127.0.0.8").await;
        let trunk = socket_at("127.0.0.7").await;

        send_paced(&net, &unknown, server, "unknown", 30).await;
        let c = net.counters().snapshot();
        assert_eq!(c.messages_in(Transport::Udp) + c.source_rate_drops, 30);
        // One second's worth, plus one per second spent sending.
        assert!(c.source_rate_drops >= 20, "{c:?}");

        send_paced(&net, &trunk, server, "trunk", 30).await;
        let after = net.counters().snapshot();
        assert_eq!(after.source_rate_drops, c.source_rate_drops);
        assert_eq!(
            after.messages_in(Transport::Udp),
            c.messages_in(Transport::Udp) + 30
        );
        let mut from_trunk = 0;
        while let Ok(ev) = rx.try_recv() {
            if let TransportEvent::Message(m) = ev {
                from_trunk += usize::from(m.remote.ip() == trunk_ip);
            }
        }
        assert_eq!(from_trunk, 30);
    })
    .await
    .expect("test timed out");
}

/// The shared queue is full of a flood from many unknown sources (the consumer is busy):
/// a trunk's datagrams still find room in their own queue and are served first.
#[tokio::test]
async fn flood_from_unknown_sources_leaves_the_trunk_its_queue() {
    timeout(Duration::from_secs(60), async {
        let (net, mut rx, server) = bind(Limits::default(), 8).await;
        let trunk_ip: IpAddr = "127.0.0.9".parse().expect("ip");
        net.set_trunk_sources(TrunkSources::new(move |ip| ip == trunk_ip));
        for i in 1..=20 {
            let s = socket_at(&format!("127.0.1.{i}")).await;
            send_paced(&net, &s, server, &format!("flood{i}-"), 5).await;
        }
        let c = net.counters().snapshot();
        assert_eq!(c.messages_in(Transport::Udp), 8, "the shared queue is full");
        assert_eq!(c.event_queue_drops, 92);

        let trunk = socket_at("127.0.0.9").await;
        send_paced(&net, &trunk, server, "trunk", 5).await;
        let c = net.counters().snapshot();
        assert_eq!(c.event_queue_drops, 92, "no trunk datagram dropped");
        assert_eq!(c.trunk_queue_drops, 0);

        let mut order = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            if let TransportEvent::Message(m) = ev {
                order.push(m.remote.ip() == trunk_ip);
            }
        }
        assert_eq!(order.len(), 13);
        assert_eq!(order.iter().filter(|t| **t).count(), 5);
        assert!(
            order.iter().take(6).filter(|t| **t).count() == 5,
            "the trunk is served ahead of the flood: {order:?}"
        );
    })
    .await
    .expect("test timed out");
}

//! UDP driver: reuseport sockets, echo through the driver, size limit.

mod common;

use std::time::Duration;

use common::{localhost, next_message, no_event, options, WAIT};
use portcullis_net::{Limits, ListenerConfig, Outbound, SipTransports, Transport, TransportConfig};
use tokio::net::UdpSocket;
use tokio::time::timeout;

fn config(sockets: usize, max: usize) -> TransportConfig {
    TransportConfig {
        listeners: vec![ListenerConfig {
            transport: Transport::Udp,
            addr: localhost(),
            tls: None,
        }],
        limits: Limits {
            max_message_bytes: max,
            ..Limits::default()
        },
        udp_sockets_per_listener: Some(sockets),
        ..TransportConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_echo_through_two_reuseport_sockets() {
    timeout(Duration::from_secs(20), async {
        let (net, mut rx) = SipTransports::bind(config(2, 4096)).await.expect("bind");
        assert_eq!(net.udp_socket_count(), 2);
        let server = net.local_addr(Transport::Udp).expect("udp addr");
        assert_ne!(server.port(), 0);

        // Several client sockets (distinct source ports) so the kernel's flow hash
        // spreads them over both reuseport sockets.
        for i in 0..8 {
            let client = UdpSocket::bind(localhost()).await.expect("client");
            let msg = options(&format!("udp{i}"), "");
            client.send_to(&msg, server).await.expect("send");

            let m = next_message(&mut rx).await;
            assert_eq!(m.transport, Transport::Udp);
            assert_eq!(m.bytes, msg);
            assert_eq!(m.remote, client.local_addr().expect("addr"));
            assert_eq!(m.local, server);
            assert!(m.conn.is_none());

            // Echo through the driver from the socket the request arrived on.
            let mut out = Outbound::new(Transport::Udp, m.remote, m.bytes.clone());
            out.local = Some(m.local);
            assert_eq!(net.send(out).expect("send"), None);
            let mut buf = vec![0u8; 8192];
            let (n, from) = timeout(WAIT, client.recv_from(&mut buf))
                .await
                .expect("echo in time")
                .expect("recv");
            assert_eq!(from, server, "reply must come from the listener address");
            assert_eq!(buf.get(..n), Some(msg.as_slice()));
        }
        let c = net.counters().snapshot();
        assert_eq!(c.messages_in(Transport::Udp), 8);
        assert_eq!(c.messages_out(Transport::Udp), 8);
        let bytes: u64 = (0..8)
            .map(|i| options(&format!("udp{i}"), "").len() as u64)
            .sum();
        assert_eq!(c.bytes_in[Transport::Udp.index()], bytes);
        assert_eq!(c.bytes_out[Transport::Udp.index()], bytes);
        assert_eq!(c.oversize_drops, 0);

        // The listener's sockets carry SO_REUSEPORT: another reuseport socket of the same
        // user can join the port, a plain one cannot.
        let plain = std::net::UdpSocket::bind(server);
        assert!(
            plain.is_err(),
            "port must be taken for non-reuseport sockets"
        );
        let s = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .expect("socket");
        s.set_reuse_port(true).expect("reuseport");
        s.bind(&server.into()).expect("joins the reuseport group");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn oversize_datagram_dropped_and_counted() {
    timeout(Duration::from_secs(20), async {
        let (net, mut rx) = SipTransports::bind(config(1, 512)).await.expect("bind");
        let server = net.local_addr(Transport::Udp).expect("udp addr");
        let client = UdpSocket::bind(localhost()).await.expect("client");
        let big = options("big", &"x".repeat(600));
        client.send_to(&big, server).await.expect("send");
        // Keepalive datagrams are absorbed too.
        client.send_to(b"\r\n\r\n", server).await.expect("send");
        let small = options("small", "");
        client.send_to(&small, server).await.expect("send");
        let m = next_message(&mut rx).await;
        assert_eq!(
            m.bytes, small,
            "the oversize datagram must not be delivered"
        );
        no_event(&mut rx, Duration::from_millis(200)).await;
        let c = net.counters().snapshot();
        assert_eq!(c.oversize_drops, 1);
        assert_eq!(c.keepalives, 1);
        assert_eq!(c.messages_in(Transport::Udp), 1);

        // Sending over the limit is refused before touching the socket.
        let err = net
            .send(Outbound::new(
                Transport::Udp,
                client.local_addr().expect("a"),
                big,
            ))
            .expect_err("too large");
        assert!(
            matches!(err, portcullis_net::NetError::TooLarge { .. }),
            "{err}"
        );
        assert_eq!(net.counters().snapshot().send_failures, 1);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn full_event_queue_drops_and_counts() {
    timeout(Duration::from_secs(20), async {
        let mut cfg = config(1, 4096);
        cfg.event_queue = 2;
        let (net, mut rx) = SipTransports::bind(cfg).await.expect("bind");
        let server = net.local_addr(Transport::Udp).expect("udp addr");
        let client = UdpSocket::bind(localhost()).await.expect("client");
        for i in 0..10 {
            client
                .send_to(&options(&format!("q{i}"), ""), server)
                .await
                .expect("send");
        }
        let n = 10;
        common::wait_until("all datagrams handled", || {
            let c = net.counters().snapshot();
            c.messages_in(Transport::Udp) + c.event_queue_drops == n
        })
        .await;
        let c = net.counters().snapshot();
        assert_eq!(c.messages_in(Transport::Udp), 2);
        assert_eq!(c.event_queue_drops, 8);
        // The queue still works after the overflow.
        assert_eq!(next_message(&mut rx).await.bytes, options("q0", ""));
    })
    .await
    .expect("test timed out");
}

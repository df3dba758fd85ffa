//! TCP driver: framing across segments, CRLF keepalive, idle timeout, caps, oversize,
//! connection reuse and outbound connections.

mod common;

use std::time::Duration;

use common::{localhost, next_event, next_message, options, WAIT};
use portcullis_net::{
    CloseReason, Limits, ListenerConfig, NetError, Outbound, SipTransports, Transport,
    TransportConfig, TransportEvent,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep, timeout};

fn config(limits: Limits) -> TransportConfig {
    TransportConfig {
        listeners: vec![ListenerConfig {
            transport: Transport::Tcp,
            addr: localhost(),
            tls: None,
        }],
        limits,
        ..TransportConfig::default()
    }
}

async fn bind(limits: Limits) -> (SipTransports, tokio::sync::mpsc::Receiver<TransportEvent>) {
    SipTransports::bind(config(limits)).await.expect("bind")
}

/// Reads until EOF or error; true when the peer closed within [`WAIT`].
async fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    timeout(WAIT, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    })
    .await
    .unwrap_or(false)
}

async fn read_exact_len(s: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    timeout(WAIT, s.read_exact(&mut buf))
        .await
        .expect("read in time")
        .expect("read");
    buf
}

#[tokio::test]
async fn two_messages_in_one_segment_and_one_split_across_segments() {
    timeout(Duration::from_secs(20), async {
        let (net, mut rx) = bind(Limits::default()).await;
        let server = net.local_addr(Transport::Tcp).expect("tcp addr");
        let mut c = TcpStream::connect(server).await.expect("connect");
        c.set_nodelay(true).expect("nodelay");

        let a = options("a", "hello");
        let b = options("b", "");
        let mut both = a.clone();
        both.extend_from_slice(&b);
        c.write_all(&both).await.expect("write");
        let ma = next_message(&mut rx).await;
        let mb = next_message(&mut rx).await;
        assert_eq!(ma.bytes, a);
        assert_eq!(mb.bytes, b);
        assert_eq!(ma.transport, Transport::Tcp);
        assert_eq!(ma.remote, c.local_addr().expect("addr"));
        assert!(ma.conn.is_some());
        assert_eq!(ma.conn, mb.conn);

        // One message in three segments, split inside the headers and inside the body.
        let m = options("split", "0123456789");
        let (p1, rest) = m.split_at(20);
        let (p2, p3) = rest.split_at(rest.len() - 4);
        for part in [p1, p2, p3] {
            c.write_all(part).await.expect("write");
            c.flush().await.expect("flush");
            sleep(Duration::from_millis(50)).await;
        }
        let got = next_message(&mut rx).await;
        assert_eq!(got.bytes, m);

        // The response goes back on the same connection (RFC 3261 §18.2.2).
        let resp = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec();
        let mut out = Outbound::new(Transport::Tcp, got.remote, resp.clone());
        out.conn = got.conn;
        assert_eq!(net.send(out).expect("send"), got.conn);
        assert_eq!(read_exact_len(&mut c, resp.len()).await, resp);

        let s = net.counters().snapshot();
        assert_eq!(s.messages_in(Transport::Tcp), 3);
        assert_eq!(s.messages_out(Transport::Tcp), 1);
        assert_eq!(s.connections_open, 1);
        assert_eq!(s.connections_total, 1);

        drop(c);
        match next_event(&mut rx).await {
            TransportEvent::ConnectionClosed { conn, reason, .. } => {
                assert_eq!(Some(conn), got.conn);
                assert!(matches!(reason, CloseReason::PeerClosed), "{reason:?}");
            }
            other => panic!("expected close, got {other:?}"),
        }
        assert_eq!(net.connection_count(), 0);
        assert_eq!(net.counters().snapshot().connections_open, 0);
        // Sending on the closed connection with nothing else to reach the peer opens a
        // new connection, which the peer (gone) refuses: reported asynchronously.
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn crlf_ping_gets_crlf_pong() {
    timeout(Duration::from_secs(20), async {
        let (net, mut rx) = bind(Limits::default()).await;
        let server = net.local_addr(Transport::Tcp).expect("tcp addr");
        let mut c = TcpStream::connect(server).await.expect("connect");
        c.write_all(b"\r\n\r\n").await.expect("ping");
        assert_eq!(read_exact_len(&mut c, 2).await, b"\r\n");
        // A message after the ping still frames correctly.
        let m = options("afterping", "");
        c.write_all(&m).await.expect("write");
        assert_eq!(next_message(&mut rx).await.bytes, m);
        assert_eq!(net.counters().snapshot().keepalives, 1);

        // Our own ping: the peer's CRLF pong is reported.
        let ping = Outbound::new(
            Transport::Tcp,
            c.local_addr().expect("a"),
            b"\r\n\r\n".to_vec(),
        );
        let conn = net.send(ping).expect("ping");
        assert_eq!(read_exact_len(&mut c, 4).await, b"\r\n\r\n");
        c.write_all(b"\r\n").await.expect("pong");
        match next_event(&mut rx).await {
            TransportEvent::KeepalivePong { conn: id, .. } => assert_eq!(Some(id), conn),
            other => panic!("expected pong, got {other:?}"),
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn idle_connection_is_closed() {
    timeout(Duration::from_secs(20), async {
        let limits = Limits {
            tcp_idle_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let (net, mut rx) = bind(limits).await;
        let server = net.local_addr(Transport::Tcp).expect("tcp addr");
        let mut c = TcpStream::connect(server).await.expect("connect");
        let started = std::time::Instant::now();
        assert!(closed_by_peer(&mut c).await, "idle connection not closed");
        assert!(started.elapsed() >= Duration::from_millis(250));
        loop {
            match next_event(&mut rx).await {
                TransportEvent::ConnectionOpened { .. } => {}
                TransportEvent::ConnectionClosed { reason, .. } => {
                    assert!(matches!(reason, CloseReason::Idle), "{reason:?}");
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(net.counters().snapshot().idle_closes, 1);
    })
    .await
    .expect("test timed out");
}

async fn wait_opened(rx: &mut tokio::sync::mpsc::Receiver<TransportEvent>, n: usize) {
    for _ in 0..n {
        match next_event(rx).await {
            TransportEvent::ConnectionOpened { .. } => {}
            other => panic!("expected open, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn per_ip_cap_refuses() {
    timeout(Duration::from_secs(20), async {
        let limits = Limits {
            max_connections_per_ip: 2,
            ..Limits::default()
        };
        let (net, mut rx) = bind(limits).await;
        let server = net.local_addr(Transport::Tcp).expect("tcp addr");
        let mut a = TcpStream::connect(server).await.expect("a");
        let _b = TcpStream::connect(server).await.expect("b");
        wait_opened(&mut rx, 2).await;
        let mut c = TcpStream::connect(server).await.expect("c (kernel accept)");
        assert!(closed_by_peer(&mut c).await, "third connection not refused");
        assert_eq!(net.counters().snapshot().connections_refused, 1);
        // The first ones still work.
        let m = options("capok", "");
        a.write_all(&m).await.expect("write");
        assert_eq!(next_message(&mut rx).await.bytes, m);
        assert_eq!(net.connection_count(), 2);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn global_cap_refuses_and_frees_on_close() {
    timeout(Duration::from_secs(20), async {
        let limits = Limits {
            max_tcp_connections: 1,
            ..Limits::default()
        };
        let (net, mut rx) = bind(limits).await;
        let server = net.local_addr(Transport::Tcp).expect("tcp addr");
        let a = TcpStream::connect(server).await.expect("a");
        wait_opened(&mut rx, 1).await;
        let mut b = TcpStream::connect(server).await.expect("b (kernel accept)");
        assert!(
            closed_by_peer(&mut b).await,
            "second connection not refused"
        );
        assert_eq!(net.counters().snapshot().connections_refused, 1);
        // Outbound connections count against the global cap too.
        let err = net
            .send(Outbound::new(Transport::Tcp, server, options("x", "")))
            .expect_err("cap");
        assert!(matches!(err, NetError::ConnectionLimit), "{err}");

        drop(a);
        match next_event(&mut rx).await {
            TransportEvent::ConnectionClosed { .. } => {}
            other => panic!("expected close, got {other:?}"),
        }
        let _c = TcpStream::connect(server).await.expect("c");
        wait_opened(&mut rx, 1).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn oversize_message_reported_answered_then_closed() {
    timeout(Duration::from_secs(20), async {
        let limits = Limits {
            max_message_bytes: 1024,
            ..Limits::default()
        };
        let (net, mut rx) = bind(limits).await;
        let server = net.local_addr(Transport::Tcp).expect("tcp addr");
        let mut c = TcpStream::connect(server).await.expect("connect");
        c.write_all(&options("huge", &"y".repeat(4000)))
            .await
            .expect("write");
        let conn = loop {
            match next_event(&mut rx).await {
                TransportEvent::ConnectionOpened { .. } => {}
                TransportEvent::FramingError { conn, status, .. } => {
                    assert_eq!(status, Some(513));
                    break conn;
                }
                other => panic!("unexpected {other:?}"),
            }
        };
        // The core answers before the driver closes.
        let resp = b"SIP/2.0 513 Message Too Large\r\nContent-Length: 0\r\n\r\n".to_vec();
        let mut out = Outbound::new(Transport::Tcp, c.local_addr().expect("a"), resp.clone());
        out.conn = Some(conn);
        net.send(out).expect("send");
        assert_eq!(read_exact_len(&mut c, resp.len()).await, resp);
        assert!(closed_by_peer(&mut c).await);
        match next_event(&mut rx).await {
            TransportEvent::ConnectionClosed { reason, .. } => {
                assert!(matches!(reason, CloseReason::Framing(_)), "{reason:?}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(net.counters().snapshot().oversize_drops, 1);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn outbound_connection_opened_reused_and_failure_reported() {
    timeout(Duration::from_secs(20), async {
        let (net, mut rx) = bind(Limits::default()).await;
        let peer = TcpListener::bind(localhost()).await.expect("peer");
        let peer_addr = peer.local_addr().expect("addr");

        let m1 = options("out1", "");
        let m2 = options("out2", "");
        let id1 = net
            .send(Outbound::new(Transport::Tcp, peer_addr, m1.clone()))
            .expect("send 1");
        let (mut s, _) = timeout(WAIT, peer.accept())
            .await
            .expect("accept")
            .expect("ok");
        assert_eq!(read_exact_len(&mut s, m1.len()).await, m1);
        let id2 = net
            .send(Outbound::new(Transport::Tcp, peer_addr, m2.clone()))
            .expect("send 2");
        assert_eq!(id1, id2, "the open connection must be reused");
        assert_eq!(read_exact_len(&mut s, m2.len()).await, m2);

        // The peer answers on the same connection: it arrives with the same id.
        let resp = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec();
        s.write_all(&resp).await.expect("write");
        let got = next_message(&mut rx).await;
        assert_eq!(got.bytes, resp);
        assert_eq!(got.conn, id1);
        assert_eq!(got.remote, peer_addr);

        // Nobody listens here: the failure comes back as SendFailed, then a close.
        drop(peer);
        let dead = {
            let l = TcpListener::bind(localhost()).await.expect("tmp");
            l.local_addr().expect("addr")
        };
        let m3 = options("out3", "");
        let id3 = net
            .send(Outbound::new(Transport::Tcp, dead, m3.clone()))
            .expect("queued");
        let mut saw_failed = false;
        loop {
            match next_event(&mut rx).await {
                TransportEvent::SendFailed {
                    conn, bytes, error, ..
                } => {
                    assert_eq!(Some(conn), id3);
                    assert_eq!(bytes, m3);
                    assert!(matches!(error, NetError::Connect { .. }), "{error}");
                    saw_failed = true;
                }
                TransportEvent::ConnectionClosed { conn, reason, .. } if Some(conn) == id3 => {
                    assert!(matches!(reason, CloseReason::ConnectFailed));
                    break;
                }
                TransportEvent::ConnectionOpened { conn, .. } if Some(conn) == id1 => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(saw_failed);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn missing_content_length_is_a_framing_error() {
    timeout(Duration::from_secs(20), async {
        let limits = Limits {
            tcp_idle_timeout: Duration::from_secs(30),
            ..Limits::default()
        };
        let (net, mut rx) = bind(limits).await;
        let server = net.local_addr(Transport::Tcp).expect("tcp addr");
        let mut c = TcpStream::connect(server).await.expect("connect");
        c.write_all(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\r\n")
            .await
            .expect("write");
        loop {
            match next_event(&mut rx).await {
                TransportEvent::ConnectionOpened { .. } => {}
                TransportEvent::FramingError { status, .. } => {
                    assert_eq!(status, Some(400));
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        // Nobody answers: the driver closes after its grace period.
        assert!(closed_by_peer(&mut c).await);
        let s = net.counters().snapshot();
        assert_eq!(s.framing_errors, 1);
        assert_eq!(s.oversize_drops, 0);
        assert_eq!(s.messages_in(Transport::Tcp), 0);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn close_writes_queued_then_closes_and_later_sends_fail() {
    timeout(Duration::from_secs(20), async {
        let (net, mut rx) = bind(Limits::default()).await;
        let server = net.local_addr(Transport::Tcp).expect("tcp addr");
        let mut c = TcpStream::connect(server).await.expect("connect");
        let conn = match next_event(&mut rx).await {
            TransportEvent::ConnectionOpened { conn, .. } => conn,
            other => panic!("unexpected {other:?}"),
        };
        let bye = options("last", "");
        let mut o = Outbound::new(Transport::Tcp, c.local_addr().expect("a"), bye.clone());
        o.conn = Some(conn);
        net.send(o.clone()).expect("send");
        assert!(net.close(conn));
        assert_eq!(read_exact_len(&mut c, bye.len()).await, bye);
        assert!(closed_by_peer(&mut c).await);
        match next_event(&mut rx).await {
            TransportEvent::ConnectionClosed {
                conn: id, reason, ..
            } => {
                assert_eq!(id, conn);
                assert!(matches!(reason, CloseReason::Local), "{reason:?}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(!net.close(conn));
        assert_eq!(net.connection_count(), 0);
        // The connection is gone: the send falls back to a new connection to the remote
        // address (RFC 3261 §18.2.2), which nobody accepts here.
        drop(c);
        let id = net.send(o).expect("queued").expect("a connection");
        assert_ne!(id, conn);
        match next_event(&mut rx).await {
            TransportEvent::SendFailed {
                conn: c2, error, ..
            } => {
                assert_eq!(c2, id);
                assert!(matches!(error, NetError::Connect { .. }), "{error}");
            }
            other => panic!("unexpected {other:?}"),
        }
    })
    .await
    .expect("test timed out");
}

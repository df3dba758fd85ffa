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

async fn bind(limits: Limits) -> (SipTransports, portcullis_net::TransportEvents) {
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

async fn wait_opened(rx: &mut portcullis_net::TransportEvents, n: usize) {
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

/// Reads what the peer sends until it closes (or [`WAIT`] passes): `(bytes, closed)`.
async fn read_to_close(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = timeout(WAIT, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(buf.get(..n).unwrap_or_default()),
            }
        }
    })
    .await
    .is_ok();
    (out, closed)
}

/// The framing error event of the first broken connection (skipping opens).
async fn framing_event(
    rx: &mut portcullis_net::TransportEvents,
) -> (portcullis_net::ConnId, Option<u16>) {
    loop {
        match next_event(rx).await {
            TransportEvent::ConnectionOpened { .. } => {}
            TransportEvent::FramingError { conn, status, .. } => return (conn, status),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn oversize_message_answered_513_by_the_driver_then_closed() {
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
        let (_, status) = framing_event(&mut rx).await;
        assert_eq!(status, Some(513));
        // Nobody else sends anything: the answer comes from the driver itself.
        let (got, closed) = read_to_close(&mut c).await;
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("SIP/2.0 513 Message Too Large (body too large)\r\n"),
            "{text}"
        );
        assert!(text.contains("Call-ID: huge@test\r\n"), "{text}");
        assert!(text.contains("branch=z9hG4bKhuge"), "{text}");
        assert!(closed, "connection not closed after the framing error");
        match next_event(&mut rx).await {
            TransportEvent::ConnectionClosed { reason, .. } => {
                assert!(matches!(reason, CloseReason::Framing(_)), "{reason:?}");
            }
            other => panic!("unexpected {other:?}"),
        }
        let s = net.counters().snapshot();
        assert_eq!(s.oversize_drops, 1);
        assert_eq!(s.framing_errors, 0);
        assert_eq!(s.messages_in(Transport::Tcp), 0);
        assert_eq!(s.messages_out(Transport::Tcp), 1, "the 513 is counted out");
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
async fn missing_content_length_is_answered_400_with_reason() {
    timeout(Duration::from_secs(20), async {
        let limits = Limits {
            tcp_idle_timeout: Duration::from_secs(30),
            ..Limits::default()
        };
        let (net, mut rx) = bind(limits).await;
        let server = net.local_addr(Transport::Tcp).expect("tcp addr");
        let mut c = TcpStream::connect(server).await.expect("connect");
        c.write_all(
            b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\
              From: <sip:x@h>;tag=9\r\nTo: <sip:a@b>\r\nCall-ID: nocl\r\nCSeq: 3 OPTIONS\r\n\r\n",
        )
        .await
        .expect("write");
        let (_, status) = framing_event(&mut rx).await;
        assert_eq!(status, Some(400));
        let (got, closed) = read_to_close(&mut c).await;
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("SIP/2.0 400 Bad Request (missing Content-Length header)\r\n"),
            "{text}"
        );
        assert!(text.contains("CSeq: 3 OPTIONS\r\n"), "{text}");
        assert!(closed, "connection not closed after the framing error");
        let s = net.counters().snapshot();
        assert_eq!(s.framing_errors, 1);
        assert_eq!(s.oversize_drops, 0);
        assert_eq!(s.messages_in(Transport::Tcp), 0);
    })
    .await
    .expect("test timed out");
}

/// Bad Content-Length, conflicting Content-Lengths, garbage without the headers a
/// response needs, binary garbage (a TLS ClientHello on the TCP port): each broken
/// connection gets its 400 when one can be formed or nothing, is closed and counted,
/// while a healthy connection opened before keeps working throughout.
#[tokio::test]
async fn framing_errors_answered_counted_closed_others_keep_working() {
    timeout(Duration::from_secs(60), async {
        let limits = Limits {
            tcp_idle_timeout: Duration::from_secs(60),
            ..Limits::default()
        };
        let (net, mut rx) = bind(limits).await;
        let server = net.local_addr(Transport::Tcp).expect("tcp addr");
        let mut good = TcpStream::connect(server).await.expect("good connect");
        let first = options("good0", "");
        good.write_all(&first).await.expect("write");
        let m = next_message(&mut rx).await;
        assert_eq!(m.bytes, first);
        let good_conn = m.conn;

        let head = |cid: &str, extra: &str| {
            format!(
                "INVITE sip:bob@b.example SIP/2.0\r\nVia: SIP/2.0/TCP a.example;branch=z9hG4bK{cid}\r\n\
                 From: <sip:al@a.example>;tag=a1\r\nTo: <sip:bob@b.example>\r\nCall-ID: {cid}\r\n\
                 CSeq: 1 INVITE\r\n{extra}\r\n"
            )
            .into_bytes()
        };
        let cases: Vec<(Vec<u8>, Option<&str>)> = vec![
            (
                head("badcl", "Content-Length: 12abc\r\n"),
                Some("SIP/2.0 400 Bad Request (invalid Content-Length)\r\n"),
            ),
            (
                head("twocl", "Content-Length: 4\r\nl: 40\r\n"),
                Some("SIP/2.0 400 Bad Request (multiple Content-Length headers)\r\n"),
            ),
            (b"hello there\r\n\r\n".to_vec(), None),
            (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(), None),
        ];
        for (i, (bytes, want)) in cases.iter().enumerate() {
            let mut bad = TcpStream::connect(server).await.expect("bad connect");
            bad.write_all(bytes).await.expect("write");
            let (conn, status) = framing_event(&mut rx).await;
            assert_ne!(Some(conn), good_conn);
            assert_eq!(status, want.map(|_| 400), "case {i}");
            let (got, closed) = read_to_close(&mut bad).await;
            let text = String::from_utf8_lossy(&got);
            match want {
                Some(start) => {
                    assert!(text.starts_with(start), "case {i}: {text}");
                    assert_eq!(text.matches("SIP/2.0 ").count(), 1, "case {i}: {text}");
                }
                None => assert!(got.is_empty(), "case {i}: answered {text}"),
            }
            assert!(closed, "case {i}: broken connection not closed");
            match next_event(&mut rx).await {
                TransportEvent::ConnectionClosed { conn: c, reason, .. } => {
                    assert_eq!(c, conn);
                    assert!(matches!(reason, CloseReason::Framing(_)), "{reason:?}");
                }
                other => panic!("case {i}: unexpected {other:?}"),
            }
            // The healthy connection still delivers, and gets its response.
            let again = options(&format!("good{}", i + 1), "");
            good.write_all(&again).await.expect("good write");
            let m = next_message(&mut rx).await;
            assert_eq!(m.bytes, again);
            assert_eq!(m.conn, good_conn);
            let resp = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec();
            let mut out = Outbound::new(Transport::Tcp, m.remote, resp.clone());
            out.conn = m.conn;
            net.send(out).expect("send");
            assert_eq!(read_exact_len(&mut good, resp.len()).await, resp);
        }
        let s = net.counters().snapshot();
        assert_eq!(s.framing_errors, 4);
        assert_eq!(s.oversize_drops, 0);
        assert_eq!(s.messages_in(Transport::Tcp), 5);
        assert_eq!(s.messages_out(Transport::Tcp), 4 + 2, "four 200s and two 400s");
        assert_eq!(s.connections_total, 5);
        assert_eq!(net.connection_count(), 1);
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

/// A TCP connection to `server` from the loopback address `src`.
async fn connect_from(src: &str, server: std::net::SocketAddr) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind(format!("{src}:0").parse().expect("address"))
        .expect("bind");
    sock.connect(server).await.expect("connect (kernel accept)")
}

/// A banned source (the policy's ban, handed to the transports): its open connection is
/// closed, new ones are refused at accept and counted, other sources are untouched, and
/// the refusal ends with the ban.
#[tokio::test]
async fn refused_source_is_cut_off_until_its_ban_ends() {
    timeout(Duration::from_secs(20), async {
        let (net, mut rx) = bind(Limits::default()).await;
        let server = net.local_addr(Transport::Tcp).expect("tcp addr");
        let mut banned = connect_from("127.0.0.2", server).await;
        let mut other = connect_from("127.0.0.1", server).await;
        wait_opened(&mut rx, 2).await;

        let ban = Duration::from_millis(800);
        let closed = net.refuse("127.0.0.2".parse().expect("ip"), ban);
        assert_eq!(closed, 1, "the banned source's open connection");
        assert!(closed_by_peer(&mut banned).await, "open connection kept");
        match next_event(&mut rx).await {
            TransportEvent::ConnectionClosed { reason, .. } => {
                assert!(matches!(reason, CloseReason::Local), "{reason:?}");
            }
            ev => panic!("expected the close, got {ev:?}"),
        }
        assert_eq!(net.refused_sources(), 1);

        let mut again = connect_from("127.0.0.2", server).await;
        assert!(closed_by_peer(&mut again).await, "new connection accepted");
        assert_eq!(net.counters().snapshot().connections_refused, 1);

        let m = options("notbanned", "");
        other.write_all(&m).await.expect("write");
        assert_eq!(next_message(&mut rx).await.bytes, m);

        sleep(ban).await;
        assert_eq!(net.refused_sources(), 0);
        let mut after = connect_from("127.0.0.2", server).await;
        wait_opened(&mut rx, 1).await;
        let m = options("afterban", "");
        after.write_all(&m).await.expect("write");
        assert_eq!(next_message(&mut rx).await.bytes, m);
        assert_eq!(net.counters().snapshot().connections_refused, 1);
    })
    .await
    .expect("test timed out");
}

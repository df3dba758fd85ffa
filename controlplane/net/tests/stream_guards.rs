//! The receive guards of stream connections: the message rate per connection, the buffer
//! cap, slow messages (a slowloris client), the per-source cap, and the connection reserve
//! of configured peers.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{localhost, next_event, next_message, options, wait_until};
use portcullis_net::{
    CloseReason, Limits, ListenerConfig, SipTransports, Transport, TransportConfig, TransportEvent,
    TransportEvents, TrunkSources,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout};

/// Long enough for any wait in these tests on a busy machine.
const LONG: Duration = Duration::from_secs(30);

async fn bind(limits: Limits) -> (SipTransports, TransportEvents, SocketAddr) {
    let (net, rx) = SipTransports::bind(TransportConfig {
        listeners: vec![ListenerConfig {
            transport: Transport::Tcp,
            addr: localhost(),
            tls: None,
        }],
        limits,
        ..TransportConfig::default()
    })
    .await
    .expect("bind");
    let addr = net.local_addr(Transport::Tcp).expect("tcp addr");
    (net, rx, addr)
}

/// A TCP connection to `server` from the loopback address `src`.
async fn connect_from(src: &str, server: SocketAddr) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind(format!("{src}:0").parse().expect("address"))
        .expect("bind");
    sock.connect(server).await.expect("connect (kernel accept)")
}

/// Reads what the peer sends until it closes or `limit` passes: `(bytes, closed)`.
async fn read_to_close(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = timeout(limit, async {
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

/// The reason of the next `ConnectionClosed`, skipping opens.
async fn next_close(rx: &mut TransportEvents) -> CloseReason {
    loop {
        match timeout(LONG, rx.recv()).await {
            Ok(Some(TransportEvent::ConnectionClosed { reason, .. })) => return reason,
            Ok(Some(TransportEvent::ConnectionOpened { .. })) => {}
            other => panic!("expected a close, got {other:?}"),
        }
    }
}

/// Pipelined requests over `per_connection_rate`: the driver answers each extra request
/// `503` with `Retry-After`, queues none of them, and counts them; the budget refills.
#[tokio::test]
async fn over_rate_requests_answered_503_and_never_queued() {
    timeout(LONG, async {
        let limits = Limits {
            per_connection_rate: 3,
            ..Limits::default()
        };
        let (net, mut rx, server) = bind(limits).await;
        let mut c = TcpStream::connect(server).await.expect("connect");
        let mut burst = Vec::new();
        for i in 0..10 {
            burst.extend_from_slice(&options(&format!("rate{i}"), ""));
        }
        c.write_all(&burst).await.expect("write");
        let mut delivered = 0u64;
        wait_until("every message delivered or refused", || {
            let s = net.counters().snapshot();
            s.messages_in(Transport::Tcp) + s.rate_limited == 10
        })
        .await;
        while let Ok(ev) = rx.try_recv() {
            if let TransportEvent::Message(m) = ev {
                assert!(m.bytes.starts_with(b"OPTIONS "));
                delivered += 1;
            }
        }
        let s = net.counters().snapshot();
        assert_eq!(delivered, s.messages_in(Transport::Tcp));
        assert!(delivered >= 3, "the first second's worth goes through");
        assert!(s.rate_limited >= 5, "{s:?}");
        // One 503 per refused request, each with Retry-After and the request's Call-ID.
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        while text.matches("SIP/2.0 503 ").count() < s.rate_limited as usize {
            let n = timeout(LONG, c.read(&mut buf))
                .await
                .expect("503s in time")
                .expect("read");
            assert!(n > 0, "connection closed early: {text}");
            text.push_str(&String::from_utf8_lossy(buf.get(..n).unwrap_or_default()));
        }
        assert_eq!(
            text.matches("SIP/2.0 503 Service Unavailable (connection rate limit)\r\n")
                .count() as u64,
            s.rate_limited,
            "{text}"
        );
        assert_eq!(
            text.matches("Retry-After: 1\r\n").count() as u64,
            s.rate_limited
        );
        assert!(text.contains("Call-ID: rate9@test\r\n"), "{text}");
        // The connection stays open and the budget refills.
        sleep(Duration::from_millis(1100)).await;
        let m = options("after-refill", "");
        c.write_all(&m).await.expect("write");
        assert_eq!(next_message(&mut rx).await.bytes, m);
    })
    .await
    .expect("test timed out");
}

/// A message that outgrows `per_connection_buffer` before it is whole closes its
/// connection (counted); the peer sees the close.
#[tokio::test]
async fn buffer_cap_closes_the_connection() {
    timeout(LONG, async {
        let limits = Limits {
            per_connection_buffer: 2048,
            ..Limits::default()
        };
        let (net, mut rx, server) = bind(limits).await;
        let mut c = TcpStream::connect(server).await.expect("connect");
        // A message that fits goes through.
        let small = options("fits", &"x".repeat(1000));
        c.write_all(&small).await.expect("write");
        assert_eq!(next_message(&mut rx).await.bytes, small);
        // One announcing 8000 bytes of body (under max_message_bytes) cannot be held.
        let big = options("too-big-to-hold", &"y".repeat(8000));
        let _ = c.write_all(&big).await;
        let (_, closed) = read_to_close(&mut c, LONG).await;
        assert!(closed, "connection kept");
        assert!(matches!(next_close(&mut rx).await, CloseReason::BufferFull));
        let s = net.counters().snapshot();
        assert_eq!(s.buffer_closes, 1);
        assert_eq!(s.messages_in(Transport::Tcp), 1);
    })
    .await
    .expect("test timed out");
}

/// A slowloris client: connections from one source trickling header bytes, each byte
/// arriving well inside the idle timeout. The per-source cap refuses the extra ones, the
/// header deadline closes the rest (not the idle timeout), and a normal client connected
/// at the same time keeps working; a connection holding only a CRLF is not timed.
#[tokio::test]
async fn slowloris_is_capped_per_source_and_cut_by_the_header_deadline() {
    timeout(Duration::from_secs(60), async {
        let limits = Limits {
            max_connections_per_ip: 8,
            header_timeout: Duration::from_secs(2),
            tcp_idle_timeout: Duration::from_secs(10),
            ..Limits::default()
        };
        let (net, mut rx, server) = bind(limits).await;
        let mut slow = Vec::new();
        for _ in 0..12 {
            slow.push(connect_from("127.0.0.20", server).await);
        }
        let mut good = connect_from("127.0.0.21", server).await;
        let mut crlf = connect_from("127.0.0.22", server).await;
        crlf.write_all(b"\r\n").await.expect("write");
        wait_until("per-source cap applied", || {
            let s = net.counters().snapshot();
            s.connections_refused == 4 && s.connections_open == 10
        })
        .await;

        // One header byte per 400 ms on every slow connection (the idle timeout is 10 s).
        let head = options("slowloris", "");
        let trickle = tokio::spawn(async move {
            let mut open = slow.len();
            for b in head.iter().take(100) {
                open = 0;
                for s in &mut slow {
                    if s.write_all(std::slice::from_ref(b)).await.is_ok() {
                        open += 1;
                    }
                }
                sleep(Duration::from_millis(400)).await;
            }
            (slow, open)
        });
        wait_until_long("the slow connections are closed", || {
            net.counters().snapshot().slow_closes >= 8
        })
        .await;
        let s = net.counters().snapshot();
        assert_eq!(s.slow_closes, 8, "{s:?}");
        assert_eq!(
            s.idle_closes, 0,
            "closed by the header deadline, not idleness"
        );
        assert_eq!(s.messages_in(Transport::Tcp), 0);

        // The normal client and the one that sent a lone CRLF were not touched.
        let m = options("not-slow", "");
        good.write_all(&m).await.expect("write");
        let m2 = options("after-crlf", "");
        crlf.write_all(&m2).await.expect("write");
        let mut got = Vec::new();
        while got.len() < 2 {
            match next_event(&mut rx).await {
                TransportEvent::Message(x) => got.push(x.bytes),
                // The stray CRLF before the message (RFC 3261 §7.5).
                TransportEvent::ConnectionOpened { .. } | TransportEvent::KeepalivePong { .. } => {}
                TransportEvent::ConnectionClosed { reason, .. } => {
                    assert!(matches!(reason, CloseReason::TooSlow), "{reason:?}");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        got.sort();
        let mut want = vec![m, m2];
        want.sort();
        assert_eq!(got, want);
        trickle.abort();
    })
    .await
    .expect("test timed out");
}

/// Polls `cond` every 20 ms until it holds, failing after [`LONG`].
async fn wait_until_long(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + LONG;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not reached within {LONG:?}: {what}"
        );
        sleep(Duration::from_millis(20)).await;
    }
}

/// A body trickling in below `min_receive_rate` closes the connection once its budget
/// (`header_timeout` plus the time its bytes earned) is spent; a whole message with the
/// same body in one write goes through.
#[tokio::test]
async fn slow_body_is_cut_by_the_minimum_rate() {
    timeout(LONG, async {
        let limits = Limits {
            header_timeout: Duration::from_secs(1),
            min_receive_rate: 1000,
            tcp_idle_timeout: Duration::from_secs(20),
            ..Limits::default()
        };
        let (net, mut rx, server) = bind(limits).await;
        let mut fast = TcpStream::connect(server).await.expect("connect");
        let whole = options("fast-body", &"b".repeat(2000));
        fast.write_all(&whole).await.expect("write");
        assert_eq!(next_message(&mut rx).await.bytes, whole);

        let mut c = TcpStream::connect(server).await.expect("connect");
        let msg = options("slow-body", &"b".repeat(2000));
        let body_at = msg.len() - 2000;
        c.write_all(msg.get(..body_at).expect("headers"))
            .await
            .expect("write headers");
        let mut closed = false;
        for b in msg.iter().skip(body_at) {
            if c.write_all(std::slice::from_ref(b)).await.is_err() {
                closed = true;
                break;
            }
            let mut probe = [0u8; 64];
            if let Ok(r) = timeout(Duration::from_millis(100), c.read(&mut probe)).await {
                assert!(
                    matches!(r, Ok(0) | Err(_)),
                    "unexpected bytes from the server"
                );
                closed = true;
                break;
            }
        }
        assert!(closed, "a body at 10 bytes/s was accepted");
        assert!(matches!(next_close(&mut rx).await, CloseReason::TooSlow));
        let s = net.counters().snapshot();
        assert_eq!(s.slow_closes, 1);
        assert_eq!(s.messages_in(Transport::Tcp), 1);
    })
    .await
    .expect("test timed out");
}

/// With `max_tcp_connections` 4 and a reserve of 2, unknown sources get 2 connections;
/// a configured peer still gets in after they are used up, up to the global cap.
#[tokio::test]
async fn trunk_reserve_keeps_room_for_configured_peers() {
    timeout(LONG, async {
        let limits = Limits {
            max_tcp_connections: 4,
            trunk_connection_reserve: 2,
            ..Limits::default()
        };
        let (net, mut rx, server) = bind(limits).await;
        let trunk: std::net::IpAddr = "127.0.0.30".parse().expect("ip");
        net.set_trunk_sources(TrunkSources::new(move |ip| ip == trunk));

        let mut unknown = Vec::new();
        for _ in 0..4 {
            unknown.push(connect_from("127.0.0.31", server).await);
        }
        wait_until("unknown sources stop at the reserve", || {
            let s = net.counters().snapshot();
            s.connections_open == 2 && s.reserve_refusals == 2
        })
        .await;
        let (_, closed) = read_to_close(unknown.last_mut().expect("4"), LONG).await;
        assert!(closed, "a refused connection is closed");

        let mut t1 = connect_from("127.0.0.30", server).await;
        let _t2 = connect_from("127.0.0.30", server).await;
        wait_until("the trunk uses the reserve", || {
            net.counters().snapshot().connections_open == 4
        })
        .await;
        let m = options("trunk-in-reserve", "");
        t1.write_all(&m).await.expect("write");
        assert_eq!(next_message(&mut rx).await.bytes, m);

        // The global cap still holds for the trunk.
        let mut t3 = connect_from("127.0.0.30", server).await;
        let (_, closed) = read_to_close(&mut t3, LONG).await;
        assert!(closed, "over the global cap");
        let s = net.counters().snapshot();
        assert_eq!(s.reserve_refusals, 2);
        assert_eq!(s.connections_refused, 3);
    })
    .await
    .expect("test timed out");
}

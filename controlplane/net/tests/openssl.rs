//! Interop with the real `openssl` CLI: `s_client` against our mTLS listener, our TLS client
//! against `s_server`. Needs `openssl` on PATH (Debian package `openssl`); fails with a clear
//! message without it.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{
    client_settings, localhost, next_event, next_message, no_event, options, server_settings,
    wait_until, Leaf, TestCa, WAIT,
};
use portcullis_net::{
    Inbound, ListenerConfig, NetError, Outbound, SipTransports, Transport, TransportConfig,
    TransportEvent, TransportEvents,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout};

fn require_openssl() {
    let ok = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the `openssl` command-line tool is required for these interop tests \
         (install it: apt-get install openssl)"
    );
}

/// Starts `openssl <args>` with piped stdio; stdout lines are forwarded to the receiver.
fn spawn_openssl(args: &[&str]) -> (Child, mpsc::UnboundedReceiver<String>) {
    require_openssl();
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn openssl");
    let (tx, rx) = mpsc::unbounded_channel();
    let stdout = child.stdout.take().expect("stdout");
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits for a stdout line containing `needle`; returns the lines before it.
async fn wait_line(rx: &mut mpsc::UnboundedReceiver<String>, needle: &str) -> Vec<String> {
    let mut before = Vec::new();
    let found = timeout(WAIT, async {
        while let Some(l) = rx.recv().await {
            if l.contains(needle) {
                return true;
            }
            before.push(l);
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "openssl never printed {needle:?}");
    before
}

/// Writes `bytes` into the child's stdin and flushes it.
async fn write_stdin(child: &mut Child, bytes: &[u8]) {
    let stdin = child.stdin.as_mut().expect("stdin");
    stdin.write_all(bytes).await.expect("write");
    stdin.flush().await.expect("flush");
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

async fn mtls_server(
    ca: &TestCa,
    srv_leaf: &Leaf,
    expected: &[&str],
) -> (SipTransports, TransportEvents, SocketAddr) {
    let (srv, rx) = SipTransports::bind(TransportConfig {
        listeners: vec![ListenerConfig {
            transport: Transport::Mtls,
            addr: localhost(),
            tls: Some(server_settings(srv_leaf, Some(ca.path()), expected)),
        }],
        ..TransportConfig::default()
    })
    .await
    .expect("bind");
    let addr = srv.local_addr(Transport::Mtls).expect("addr");
    (srv, rx, addr)
}

fn s_client_args<'a>(addr: &'a str, ca: &'a TestCa, cert: Option<&'a Leaf>) -> Vec<&'a str> {
    let mut a = vec![
        "s_client",
        "-connect",
        addr,
        "-servername",
        "sbc.test",
        "-CAfile",
        p(ca.path()),
        "-verify_return_error",
        "-quiet",
    ];
    if let Some(l) = cert {
        a.extend(["-cert", p(&l.cert_pem), "-key", p(&l.key_pem)]);
    }
    a
}

/// Sends `resp` back over the mTLS connection that `m` arrived on.
fn respond(srv: &SipTransports, m: &Inbound, resp: &[u8]) {
    let mut o = Outbound::new(Transport::Mtls, m.remote, resp.to_vec());
    o.conn = m.conn;
    srv.send(o).expect("respond");
}

/// Writes an OPTIONS into s_client (ignoring a closed pipe: the server may already have
/// dropped the connection) and checks that the server refused the client.
async fn expect_refused(
    mut child: Child,
    srx: &mut TransportEvents,
    refused: impl FnMut() -> bool,
) {
    if let Some(stdin) = child.stdin.as_mut() {
        let _ = stdin.write_all(&options("refused", "")).await;
        let _ = stdin.flush().await;
    }
    wait_until("server refused the client", refused).await;
    no_event(srx, Duration::from_millis(500)).await;
    timeout(WAIT, child.wait())
        .await
        .expect("s_client must exit once the server drops it")
        .expect("wait");
}

#[tokio::test]
async fn mtls_listener_against_openssl_s_client() {
    timeout(Duration::from_secs(60), async {
        let ca = TestCa::new("osslc");
        let other_ca = TestCa::new("untrusted");
        let srv_leaf = ca.leaf("server", &["sbc.test"]);
        let trusted = ca.leaf("client", &["sip.pstnhub.test"]);
        let untrusted = other_ca.leaf("client", &["sip.pstnhub.test"]);
        let wrong_name = ca.leaf("wrongname", &["sip.nothub.test"]);
        let (srv, mut srx, addr) = mtls_server(&ca, &srv_leaf, &["sip.pstnhub.test"]).await;
        let addr_s = addr.to_string();

        // 1. No client certificate: the handshake fails.
        let (child, _out) = spawn_openssl(&s_client_args(&addr_s, &ca, None));
        expect_refused(child, &mut srx, || {
            srv.counters().snapshot().tls_handshake_failures >= 1
        })
        .await;

        // 2. A certificate from an untrusted CA: the handshake fails.
        let (child, _out) = spawn_openssl(&s_client_args(&addr_s, &ca, Some(&untrusted)));
        expect_refused(child, &mut srx, || {
            srv.counters().snapshot().tls_handshake_failures >= 2
        })
        .await;

        // 3. Trusted chain, name outside `expected_client_names`: dropped after the handshake.
        let (child, _out) = spawn_openssl(&s_client_args(&addr_s, &ca, Some(&wrong_name)));
        expect_refused(child, &mut srx, || {
            srv.counters().snapshot().tls_name_rejections == 1
        })
        .await;

        // 4. Trusted and expected: the OPTIONS arrives and our answer reaches s_client.
        let (mut child, mut out) = spawn_openssl(&s_client_args(&addr_s, &ca, Some(&trusted)));
        let req = options("ossl-ok", "");
        write_stdin(&mut child, &req).await;
        let m = next_message(&mut srx).await;
        assert_eq!(m.bytes, req);
        assert_eq!(m.transport, Transport::Mtls);
        assert_eq!(
            m.tls_peer_names.as_deref(),
            Some(&["sip.pstnhub.test".to_owned()][..])
        );
        let resp = b"SIP/2.0 200 OK\r\nServer: portcullis-test\r\nContent-Length: 0\r\n\r\n";
        respond(&srv, &m, resp);
        wait_line(&mut out, "Server: portcullis-test").await;
        let _ = child.kill().await;

        let c = srv.counters().snapshot();
        assert_eq!(c.tls_handshake_failures, 2);
        assert_eq!(c.tls_name_rejections, 1);
        assert_eq!(c.messages_in(Transport::Mtls), 1);
    })
    .await
    .expect("test timed out");
}

/// A framing error on an mTLS connection (bad Content-Length): the driver answers 400 with
/// its reason phrase through TLS, counts it and closes that connection; a second client
/// connected before keeps working.
#[tokio::test]
async fn mtls_framing_error_answered_through_tls_then_closed() {
    timeout(Duration::from_secs(60), async {
        let ca = TestCa::new("osslf");
        let srv_leaf = ca.leaf("server", &["sbc.test"]);
        let trusted = ca.leaf("client", &["sip.pstnhub.test"]);
        let (srv, mut srx, addr) = mtls_server(&ca, &srv_leaf, &["sip.pstnhub.test"]).await;
        let addr_s = addr.to_string();

        let (mut good, mut good_out) =
            spawn_openssl(&s_client_args(&addr_s, &ca, Some(&trusted)));
        let req = options("tls-good", "");
        write_stdin(&mut good, &req).await;
        let m = next_message(&mut srx).await;
        assert_eq!(m.bytes, req);

        let (mut bad, mut bad_out) = spawn_openssl(&s_client_args(&addr_s, &ca, Some(&trusted)));
        let broken = b"OPTIONS sip:sbc.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5099;branch=z9hG4bKtlsbad\r\n\
            From: <sip:p@example.com>;tag=1\r\nTo: <sip:sbc.test>\r\nCall-ID: tlsbad@test\r\n\
            CSeq: 1 OPTIONS\r\nContent-Length: 1x\r\n\r\n";
        write_stdin(&mut bad, broken).await;
        wait_line(
            &mut bad_out,
            "SIP/2.0 400 Bad Request (invalid Content-Length)",
        )
        .await;
        wait_line(&mut bad_out, "Call-ID: tlsbad@test").await;
        timeout(WAIT, bad.wait())
            .await
            .expect("s_client must exit once the server closes the broken connection")
            .expect("wait");
        let c = srv.counters().snapshot();
        assert_eq!(c.framing_errors, 1);
        assert_eq!(c.messages_out(Transport::Mtls), 1);

        // The first connection still carries messages both ways.
        let again = options("tls-good-2", "");
        write_stdin(&mut good, &again).await;
        let m = loop {
            match next_event(&mut srx).await {
                TransportEvent::Message(m) => break m,
                TransportEvent::ConnectionOpened { .. }
                | TransportEvent::FramingError { .. }
                | TransportEvent::ConnectionClosed { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(m.bytes, again);
        let resp = b"SIP/2.0 200 OK\r\nServer: portcullis-after\r\nContent-Length: 0\r\n\r\n";
        respond(&srv, &m, resp);
        wait_line(&mut good_out, "Server: portcullis-after").await;
        let _ = good.kill().await;
    })
    .await
    .expect("test timed out");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Starts `openssl s_server` on a free loopback port with `srv_leaf`'s certificate and the
/// `extra` arguments; returns once it accepts, with the address to connect to.
async fn spawn_s_server(
    srv_leaf: &Leaf,
    extra: &[&str],
) -> (Child, mpsc::UnboundedReceiver<String>, SocketAddr) {
    let accept = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        "s_server",
        "-accept",
        &accept,
        "-cert",
        p(&srv_leaf.cert_pem),
        "-key",
        p(&srv_leaf.key_pem),
    ];
    args.extend_from_slice(extra);
    let (server, mut out) = spawn_openssl(&args);
    wait_line(&mut out, "ACCEPT").await;
    let addr: SocketAddr = accept.parse().expect("addr");
    (server, out, addr)
}

/// Our transports with only a TLS client (trusting `ca`, presenting `cert` if given).
async fn tls_client(ca: &TestCa, cert: Option<&Leaf>) -> (SipTransports, TransportEvents) {
    SipTransports::bind(TransportConfig {
        tls_client: Some(client_settings(ca, cert)),
        ..TransportConfig::default()
    })
    .await
    .expect("bind")
}

fn tls_out(to: SocketAddr, name: &str, bytes: Vec<u8>) -> Outbound {
    let mut o = Outbound::new(Transport::Tls, to, bytes);
    o.tls_server_name = Some(name.to_owned());
    o
}

#[tokio::test]
async fn tls_client_against_openssl_s_server_checks_server_name() {
    timeout(Duration::from_secs(60), async {
        let ca = TestCa::new("ossls");
        let srv_leaf = ca.leaf("server", &["right.test"]);
        let (mut server, mut out, addr) = spawn_s_server(&srv_leaf, &[]).await;

        let (cli, mut crx) = tls_client(&ca, None).await;

        // The certificate names right.test, we want wrong.test: refused by our side.
        let bad = cli
            .send(tls_out(addr, "wrong.test", options("wrong", "")))
            .expect("queued");
        match next_event(&mut crx).await {
            TransportEvent::SendFailed { conn, error, .. } => {
                assert_eq!(Some(conn), bad);
                assert!(matches!(error, NetError::Handshake { .. }), "{error}");
            }
            other => panic!("expected SendFailed, got {other:?}"),
        }
        match next_event(&mut crx).await {
            TransportEvent::ConnectionClosed { conn, .. } => assert_eq!(Some(conn), bad),
            other => panic!("expected close, got {other:?}"),
        }
        assert_eq!(cli.counters().snapshot().tls_handshake_failures, 1);

        // The right name: the OPTIONS reaches s_server, its answer reaches us.
        let ok = cli
            .send(tls_out(addr, "right.test", options("right", "")))
            .expect("queued");
        match next_event(&mut crx).await {
            TransportEvent::ConnectionOpened {
                conn,
                tls_peer_names,
                ..
            } => {
                assert_eq!(Some(conn), ok);
                assert_eq!(
                    tls_peer_names.as_deref(),
                    Some(&["right.test".to_owned()][..])
                );
            }
            other => panic!("expected open, got {other:?}"),
        }
        wait_line(&mut out, "OPTIONS sip:sbc.example.com SIP/2.0").await;
        let resp = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        write_stdin(&mut server, resp).await;
        let m = next_message(&mut crx).await;
        assert_eq!(m.bytes, resp);
        assert_eq!(m.conn, ok);
        let _ = server.kill().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn mtls_client_presents_certificate_to_openssl_s_server() {
    timeout(Duration::from_secs(60), async {
        let ca = TestCa::new("osslm");
        let srv_leaf = ca.leaf("server", &["proxy.test"]);
        let our = ca.leaf("sbc", &["sbc.test"]);
        let (mut server, mut out, addr) = spawn_s_server(
            &srv_leaf,
            &[
                "-Verify",
                "2",
                "-verify_return_error",
                "-CAfile",
                p(ca.path()),
            ],
        )
        .await;
        let (cli, mut crx) = tls_client(&ca, Some(&our)).await;
        // Without a client certificate s_server drops us after the handshake, before
        // printing any data.
        let (anon, mut arx) = tls_client(&ca, None).await;
        let nocert = anon
            .send(tls_out(addr, "proxy.test", options("nocert", "")))
            .expect("queued");
        loop {
            match next_event(&mut arx).await {
                TransportEvent::ConnectionClosed { conn, .. } => {
                    assert_eq!(Some(conn), nocert);
                    break;
                }
                TransportEvent::ConnectionOpened { .. } | TransportEvent::SendFailed { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }

        let id = cli
            .send(tls_out(addr, "proxy.test", options("mtls-out", "")))
            .expect("queued");
        match next_event(&mut crx).await {
            TransportEvent::ConnectionOpened { conn, .. } => assert_eq!(Some(conn), id),
            other => panic!("expected open, got {other:?}"),
        }
        // s_server prints the verified client subject, then the data.
        let before = wait_line(&mut out, "Call-ID: mtls-out@test").await;
        assert!(
            !before.iter().any(|l| l.contains("nocert@test")),
            "s_server accepted data from a client without a certificate: {before:?}"
        );
        assert!(
            before.iter().any(|l| l.contains("sbc.test")),
            "s_server did not report our client certificate: {before:?}"
        );
        let _ = server.kill().await;
    })
    .await
    .expect("test timed out");
}

/// Starts `openssl <args>` with piped stdio; stdout and stderr lines both go to the
/// receiver (s_client reports handshake failures on stderr).
fn spawn_openssl_all(args: &[&str]) -> (Child, mpsc::UnboundedReceiver<String>) {
    require_openssl();
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn openssl");
    let (tx, rx) = mpsc::unbounded_channel();
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let tx2 = tx.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            if tx2.send(l).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits for `child` to exit, then returns its status and every line it printed
/// (the readers end at end of file).
async fn exit_and_output(
    mut child: Child,
    mut out: mpsc::UnboundedReceiver<String>,
    what: &str,
) -> (std::process::ExitStatus, Vec<String>) {
    let status = timeout(WAIT, child.wait())
        .await
        .unwrap_or_else(|_| panic!("{what}: openssl did not exit"))
        .expect("wait");
    let mut lines = Vec::new();
    while let Ok(Some(l)) = timeout(WAIT, out.recv()).await {
        lines.push(l);
    }
    (status, lines)
}

async fn tls_server(srv_leaf: &Leaf) -> (SipTransports, TransportEvents, SocketAddr) {
    let (srv, rx) = SipTransports::bind(TransportConfig {
        listeners: vec![ListenerConfig {
            transport: Transport::Tls,
            addr: localhost(),
            tls: Some(server_settings(srv_leaf, None, &[])),
        }],
        ..TransportConfig::default()
    })
    .await
    .expect("bind");
    let addr = srv.local_addr(Transport::Tls).expect("addr");
    (srv, rx, addr)
}

/// TLS 1.2 is the minimum: `s_client -tls1_1` (its security level lowered so that it
/// really offers TLS 1.1) reaches the listener and is refused in the handshake, while
/// `-tls1_2` against the same listener carries a message.
#[tokio::test]
async fn tls_1_1_client_is_refused_tls_1_2_is_served() {
    timeout(Duration::from_secs(60), async {
        let ca = TestCa::new("osslv");
        let srv_leaf = ca.leaf("server", &["sbc.test"]);
        let (srv, mut srx, addr) = tls_server(&srv_leaf).await;
        let addr_s = addr.to_string();
        let base = [
            "s_client",
            "-connect",
            &addr_s,
            "-servername",
            "sbc.test",
            "-CAfile",
            p(ca.path()),
        ];

        let mut old = base.to_vec();
        old.extend(["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]);
        let (child, out) = spawn_openssl_all(&old);
        let (status, lines) = exit_and_output(child, out, "s_client -tls1_1").await;
        assert!(!status.success(), "a TLS 1.1 handshake succeeded");
        assert!(
            lines.iter().any(|l| l.contains("Cipher is (NONE)")),
            "no cipher may be agreed: {lines:#?}"
        );
        wait_until("the listener saw and refused the TLS 1.1 hello", || {
            srv.counters().snapshot().tls_handshake_failures == 1
        })
        .await;
        no_event(&mut srx, Duration::from_millis(300)).await;

        let mut new = base.to_vec();
        new.extend(["-tls1_2", "-quiet"]);
        let (mut child, _out) = spawn_openssl(&new);
        let req = options("tls12-ok", "");
        write_stdin(&mut child, &req).await;
        assert_eq!(next_message(&mut srx).await.bytes, req);
        let _ = child.kill().await;
        assert_eq!(srv.counters().snapshot().tls_handshake_failures, 1);
    })
    .await
    .expect("test timed out");
}

/// No renegotiation: after a TLS 1.2 session carried a message, `s_client`'s `R`
/// command sends a new ClientHello. The listener answers it with the `no_renegotiation`
/// alert (RFC 5246 §7.2.2; rustls queues it and it leaves with the next record we
/// write), no ServerHello ever follows, and the session ends.
///
/// The answer we write must leave after the listener has read the new hello (else
/// s_client reports the answer as an unexpected record, which shows nothing about the
/// listener): the scenario is repeated with longer pauses until that order holds.
#[tokio::test]
async fn tls_renegotiation_is_refused() {
    timeout(Duration::from_secs(120), async {
        let ca = TestCa::new("osslr");
        let srv_leaf = ca.leaf("server", &["sbc.test"]);
        let (srv, mut srx, addr) = tls_server(&srv_leaf).await;
        let addr_s = addr.to_string();
        for pause in [300, 1000, 3000, 6000] {
            // Interactive mode (no -quiet, no -ign_eof): a line holding `R` renegotiates;
            // -msg prints every handshake message sent and received.
            let (mut child, mut out) = spawn_openssl_all(&[
                "s_client",
                "-connect",
                &addr_s,
                "-servername",
                "sbc.test",
                "-CAfile",
                p(ca.path()),
                "-tls1_2",
                "-msg",
            ]);
            wait_line(&mut out, "Verify return code: 0 (ok)").await;
            let req = options(&format!("before-reneg-{pause}"), "");
            write_stdin(&mut child, &req).await;
            let m = next_message(&mut srx).await;
            assert_eq!(m.bytes, req);

            write_stdin(&mut child, b"R\n").await;
            wait_line(&mut out, "RENEGOTIATING").await;
            wait_line(&mut out, "ClientHello").await;
            sleep(Duration::from_millis(pause)).await;
            let mut o = Outbound::new(Transport::Tls, m.remote, b"SIP/2.0 200 OK\r\n\r\n".to_vec());
            o.conn = m.conn;
            srv.send(o).expect("queued");
            let (_, lines) = exit_and_output(child, out, "s_client after R").await;
            assert!(
                !lines.iter().any(|l| l.contains("ServerHello")),
                "the listener renegotiated: {lines:#?}"
            );
            match next_event(&mut srx).await {
                TransportEvent::ConnectionClosed { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
            if lines.iter().any(|l| l.contains("no renegotiation")) {
                return;
            }
            assert!(
                lines.iter().any(|l| l.contains("unexpected record")),
                "{lines:#?}"
            );
        }
        panic!("the listener never read the new ClientHello before our answer left");
    })
    .await
    .expect("test timed out");
}

/// An expired client certificate from the trusted CA, with an expected name, is refused
/// by the mTLS listener during the handshake (next to the unknown-CA and wrong-name cases
/// of `mtls_listener_against_openssl_s_client`).
#[tokio::test]
async fn mtls_expired_client_certificate_is_refused() {
    timeout(Duration::from_secs(60), async {
        let ca = TestCa::new("osslx");
        let srv_leaf = ca.leaf("server", &["sbc.test"]);
        let expired = ca.leaf_valid("expired", &["sip.pstnhub.test"], (2000, 1, 1), (2001, 1, 1));
        let fresh = ca.leaf("fresh", &["sip.pstnhub.test"]);
        let (srv, mut srx, addr) = mtls_server(&ca, &srv_leaf, &["sip.pstnhub.test"]).await;
        let addr_s = addr.to_string();

        let (child, _out) = spawn_openssl(&s_client_args(&addr_s, &ca, Some(&expired)));
        expect_refused(child, &mut srx, || {
            srv.counters().snapshot().tls_handshake_failures == 1
        })
        .await;
        assert_eq!(srv.counters().snapshot().tls_name_rejections, 0);

        // The same CA and name, in date: accepted.
        let (mut child, _out) = spawn_openssl(&s_client_args(&addr_s, &ca, Some(&fresh)));
        let req = options("in-date", "");
        write_stdin(&mut child, &req).await;
        assert_eq!(next_message(&mut srx).await.bytes, req);
        let _ = child.kill().await;
        assert_eq!(srv.counters().snapshot().tls_handshake_failures, 1);
    })
    .await
    .expect("test timed out");
}

//! TLS and mTLS between two in-process transport sets, with certificates from a test CA.

mod common;

use std::time::Duration;

use common::{
    client_settings, localhost, next_event, next_message, no_event, options, server_settings,
    wait_until, TestCa,
};
use portcullis_net::{
    ListenerConfig, NetError, Outbound, SipTransports, TlsClientSettings, TlsServerSettings,
    Transport, TransportConfig, TransportEvent, TransportEvents,
};
use tokio::time::timeout;

async fn server(transport: Transport, tls: TlsServerSettings) -> (SipTransports, TransportEvents) {
    SipTransports::bind(TransportConfig {
        listeners: vec![ListenerConfig {
            transport,
            addr: localhost(),
            tls: Some(tls),
        }],
        ..TransportConfig::default()
    })
    .await
    .expect("bind server")
}

async fn client(tls: TlsClientSettings) -> (SipTransports, TransportEvents) {
    SipTransports::bind(TransportConfig {
        tls_client: Some(tls),
        ..TransportConfig::default()
    })
    .await
    .expect("bind client")
}

fn tls_out(to: std::net::SocketAddr, name: &str, bytes: Vec<u8>) -> Outbound {
    let mut o = Outbound::new(Transport::Tls, to, bytes);
    o.tls_server_name = Some(name.to_owned());
    o
}

#[tokio::test]
async fn tls_request_and_response_in_process() {
    timeout(Duration::from_secs(30), async {
        let ca = TestCa::new("tls");
        let leaf = ca.leaf("server", &["sbc.test"]);
        let (srv, mut srx) = server(Transport::Tls, server_settings(&leaf, None, &[])).await;
        let addr = srv.local_addr(Transport::Tls).expect("tls addr");
        let (cli, mut crx) = client(client_settings(&ca, None)).await;

        let req = options("tls1", "");
        let id = cli
            .send(tls_out(addr, "sbc.test", req.clone()))
            .expect("send");
        let m = next_message(&mut srx).await;
        assert_eq!(m.bytes, req);
        assert_eq!(m.transport, Transport::Tls);
        assert!(m.tls_peer_names.is_none(), "no client certificate was sent");

        let resp = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec();
        let mut out = Outbound::new(Transport::Tls, m.remote, resp.clone());
        out.conn = m.conn;
        srv.send(out).expect("respond");

        match next_event(&mut crx).await {
            TransportEvent::ConnectionOpened {
                conn,
                tls_peer_names,
                ..
            } => {
                assert_eq!(Some(conn), id);
                assert_eq!(
                    tls_peer_names.as_deref(),
                    Some(&["sbc.test".to_owned()][..])
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        let r = next_message(&mut crx).await;
        assert_eq!(r.bytes, resp);
        assert_eq!(r.conn, id);
        assert_eq!(cli.counters().snapshot().messages_out(Transport::Tls), 1);
        assert_eq!(srv.counters().snapshot().messages_in(Transport::Tls), 1);

        // Server-name verification: the certificate does not name "other.test".
        let bad = cli
            .send(tls_out(addr, "other.test", options("tls2", "")))
            .expect("queued");
        match next_event(&mut crx).await {
            TransportEvent::SendFailed { conn, error, .. } => {
                assert_eq!(Some(conn), bad);
                assert!(matches!(error, NetError::Handshake { .. }), "{error}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(cli.counters().snapshot().tls_handshake_failures, 1);
        wait_until("server counts the failed handshake", || {
            srv.counters().snapshot().tls_handshake_failures == 1
        })
        .await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn mtls_in_process_checks_chain_and_expected_names() {
    timeout(Duration::from_secs(30), async {
        let ca = TestCa::new("mtls");
        let srv_leaf = ca.leaf("server", &["sbc.test"]);
        let good = ca.leaf("good", &["sip2.pstnhub.test"]);
        let wrong = ca.leaf("wrong", &["sip.elsewhere.test"]);
        let settings = server_settings(&srv_leaf, Some(ca.path()), &["sip2.pstnhub.test"]);
        let (srv, mut srx) = server(Transport::Mtls, settings).await;
        let addr = srv.local_addr(Transport::Mtls).expect("mtls addr");

        let (cli, _crx) = client(client_settings(&ca, Some(&good))).await;
        let req = options("mtls-good", "");
        cli.send(tls_out(addr, "sbc.test", req.clone()))
            .expect("send");
        let m = next_message(&mut srx).await;
        assert_eq!(m.bytes, req);
        assert_eq!(m.transport, Transport::Mtls);
        assert_eq!(
            m.tls_peer_names.as_deref(),
            Some(&["sip2.pstnhub.test".to_owned()][..])
        );

        // Trusted chain, but a name outside the expected set.
        let (cli2, _crx2) = client(client_settings(&ca, Some(&wrong))).await;
        cli2.send(tls_out(addr, "sbc.test", options("mtls-wrong", "")))
            .expect("queued");
        wait_until("name rejection counted", || {
            srv.counters().snapshot().tls_name_rejections == 1
        })
        .await;

        // No client certificate at all.
        let (cli3, _crx3) = client(client_settings(&ca, None)).await;
        cli3.send(tls_out(addr, "sbc.test", options("mtls-none", "")))
            .expect("queued");
        wait_until("missing client certificate refused", || {
            srv.counters().snapshot().tls_handshake_failures == 1
        })
        .await;

        // Neither produced a message.
        no_event(&mut srx, Duration::from_millis(300)).await;
        assert_eq!(srv.counters().snapshot().messages_in(Transport::Mtls), 1);

        // Widen the expected names at run time: the same client certificate now passes.
        let wider = server_settings(
            &srv_leaf,
            Some(ca.path()),
            &["sip2.pstnhub.test", "sip.elsewhere.test"],
        );
        srv.set_listener_tls(addr, wider).expect("set listener tls");
        let (cli4, _crx4) = client(client_settings(&ca, Some(&wrong))).await;
        let req = options("mtls-wider", "");
        cli4.send(tls_out(addr, "sbc.test", req.clone()))
            .expect("send");
        let m = next_message(&mut srx).await;
        assert_eq!(m.bytes, req);
        assert_eq!(
            m.tls_peer_names.as_deref(),
            Some(&["sip.elsewhere.test".to_owned()][..])
        );
        let e = srv
            .set_listener_tls(localhost(), server_settings(&srv_leaf, None, &[]))
            .expect_err("no such listener");
        assert!(matches!(e, NetError::UnknownListener(_)), "{e}");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn server_certificate_hot_reload() {
    timeout(Duration::from_secs(30), async {
        let ca = TestCa::new("reload");
        let leaf = ca.leaf("server", &["old.test"]);
        let (srv, mut srx) = server(Transport::Tls, server_settings(&leaf, None, &[])).await;
        let addr = srv.local_addr(Transport::Tls).expect("tls addr");

        // Replace the files in place with a certificate for another name, then reload.
        let fresh = ca.leaf("server-new", &["new.test"]);
        std::fs::copy(&fresh.cert_pem, &leaf.cert_pem).expect("copy cert");
        std::fs::copy(&fresh.key_pem, &leaf.key_pem).expect("copy key");
        srv.reload_tls().expect("reload");

        let (cli, mut crx) = client(client_settings(&ca, None)).await;
        cli.send(tls_out(addr, "old.test", options("old", "")))
            .expect("queued");
        match next_event(&mut crx).await {
            TransportEvent::SendFailed { error, .. } => {
                assert!(matches!(error, NetError::Handshake { .. }), "{error}");
            }
            other => panic!("old name must fail after reload, got {other:?}"),
        }
        let req = options("new", "");
        cli.send(tls_out(addr, "new.test", req.clone()))
            .expect("send");
        assert_eq!(next_message(&mut srx).await.bytes, req);

        // A broken file keeps the running configuration.
        std::fs::write(&leaf.key_pem, "not a key").expect("write");
        assert!(srv.reload_tls().is_err());
        let req2 = options("new2", "");
        let mut o = tls_out(addr, "new.test", req2.clone());
        o.conn = None;
        cli.send(o).expect("send on the open connection");
        assert_eq!(next_message(&mut srx).await.bytes, req2);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn tls_listener_with_optional_client_certificate() {
    timeout(Duration::from_secs(30), async {
        let ca = TestCa::new("opt");
        let leaf = ca.leaf("server", &["sbc.test"]);
        let peer = ca.leaf("peer", &["pbx.customer.test"]);
        let (srv, mut srx) =
            server(Transport::Tls, server_settings(&leaf, Some(ca.path()), &[])).await;
        let addr = srv.local_addr(Transport::Tls).expect("tls addr");

        let (with, _w) = client(client_settings(&ca, Some(&peer))).await;
        with.send(tls_out(addr, "sbc.test", options("with", "")))
            .expect("send");
        let m = next_message(&mut srx).await;
        assert_eq!(
            m.tls_peer_names.as_deref(),
            Some(&["pbx.customer.test".to_owned()][..])
        );
        assert_eq!(m.transport, Transport::Tls);

        let (without, _wo) = client(client_settings(&ca, None)).await;
        without
            .send(tls_out(addr, "sbc.test", options("without", "")))
            .expect("send");
        let m = next_message(&mut srx).await;
        assert!(m.tls_peer_names.is_none());
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn bad_tls_configuration_is_a_bind_error() {
    timeout(Duration::from_secs(30), async {
        let ca = TestCa::new("bad");
        let leaf = ca.leaf("server", &["sbc.test"]);
        let bind = |transport, tls| {
            SipTransports::bind(TransportConfig {
                listeners: vec![ListenerConfig {
                    transport,
                    addr: localhost(),
                    tls,
                }],
                ..TransportConfig::default()
            })
        };
        let e = bind(Transport::Tls, None).await.expect_err("no settings");
        assert!(
            matches!(
                e,
                NetError::TlsConfig(portcullis_net::TlsConfigError::MissingSettings(_))
            ),
            "{e}"
        );
        let e = bind(Transport::Mtls, Some(server_settings(&leaf, None, &[])))
            .await
            .expect_err("mTLS without client CA");
        assert!(matches!(e, NetError::TlsConfig(_)), "{e}");
        let mut missing = server_settings(&leaf, None, &[]);
        missing.key_pem = ca.dir.path().join("absent.key");
        let e = bind(Transport::Tls, Some(missing))
            .await
            .expect_err("missing key file");
        assert!(
            matches!(
                e,
                NetError::TlsConfig(portcullis_net::TlsConfigError::Read { .. })
            ),
            "{e}"
        );
        // A key that does not belong to the certificate.
        let other = ca.leaf("other", &["x.test"]);
        let mut mismatch = server_settings(&leaf, None, &[]);
        mismatch.key_pem = other.key_pem.clone();
        assert!(bind(Transport::Tls, Some(mismatch)).await.is_err());
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn prepared_tls_is_checked_first_and_swapped_on_apply() {
    timeout(Duration::from_secs(30), async {
        let ca = TestCa::new("prep");
        let leaf = ca.leaf("server", &["sbc.test"]);
        // mTLS server naming any client of the CA; we watch the names clients present.
        let (srv, mut srx) = server(
            Transport::Mtls,
            server_settings(&leaf, Some(ca.path()), &[]),
        )
        .await;
        let addr = srv.local_addr(Transport::Mtls).expect("mtls addr");
        let configured = ListenerConfig {
            transport: Transport::Mtls,
            addr: localhost(),
            tls: Some(server_settings(&leaf, Some(ca.path()), &[])),
        };
        let first = ca.leaf("client-1", &["one.client.test"]);
        let second = ca.leaf("client-2", &["two.client.test"]);
        let (cli, _crx) = client(client_settings(&ca, Some(&first))).await;

        // A key that is not the certificate's: refused, the files named, nothing changes.
        let mismatched = TlsServerSettings {
            key_pem: second.key_pem.clone(),
            ..server_settings(&leaf, Some(ca.path()), &[])
        };
        let bad = ListenerConfig {
            tls: Some(mismatched),
            ..configured.clone()
        };
        let e = srv.prepare_tls(&[bad], None).expect_err("mismatched key");
        let text = e.to_string();
        assert!(
            matches!(
                &e,
                NetError::ListenerTls { source, .. }
                    if matches!(**source, portcullis_net::TlsConfigError::KeyMismatch { .. })
            ),
            "{e:?}"
        );
        assert!(
            text.contains(&second.key_pem.display().to_string())
                && text.contains(&leaf.cert_pem.display().to_string()),
            "{text}"
        );
        let e = cli
            .prepare_tls(
                &[],
                Some(TlsClientSettings {
                    roots: ca.path().to_owned(),
                    client_cert: Some(portcullis_net::ClientCertificate {
                        cert_chain_pem: first.cert_pem.clone(),
                        key_pem: second.key_pem.clone(),
                    }),
                }),
            )
            .expect_err("mismatched client key");
        assert!(matches!(&e, NetError::ClientTls(_)), "{e:?}");

        // Prepared but not applied: still the first client certificate.
        let prepared = cli
            .prepare_tls(&[], Some(client_settings(&ca, Some(&second))))
            .expect("prepare");
        let req = options("prep-1", "");
        let conn = cli
            .send(tls_out(addr, "sbc.test", req.clone()))
            .expect("send");
        let m = next_message(&mut srx).await;
        assert_eq!(m.bytes, req);
        assert_eq!(
            m.tls_peer_names.as_deref(),
            Some(&["one.client.test".to_owned()][..])
        );
        let server_conn = m.conn;

        // Applied: the open connection is kept ...
        cli.apply_tls(prepared);
        let req = options("prep-2", "");
        let again = cli
            .send(tls_out(addr, "sbc.test", req.clone()))
            .expect("send");
        assert_eq!(again, conn, "the established connection is reused");
        let m = next_message(&mut srx).await;
        assert_eq!(m.bytes, req);
        assert_eq!(m.conn, server_conn);
        assert_eq!(
            m.tls_peer_names.as_deref(),
            Some(&["one.client.test".to_owned()][..])
        );
        // ... and a new one presents the second certificate.
        assert!(cli.close(conn.expect("a stream connection")));
        wait_until("old connection gone", || cli.connection_count() == 0).await;
        let req = options("prep-3", "");
        let fresh = cli
            .send(tls_out(addr, "sbc.test", req.clone()))
            .expect("send");
        assert_ne!(fresh, conn);
        let m = loop {
            match next_event(&mut srx).await {
                TransportEvent::Message(m) => break m,
                TransportEvent::ConnectionOpened { .. }
                | TransportEvent::ConnectionClosed { .. } => {}
                other => panic!("expected a message, got {other:?}"),
            }
        };
        assert_eq!(m.bytes, req);
        assert_ne!(m.conn, server_conn);
        assert_eq!(
            m.tls_peer_names.as_deref(),
            Some(&["two.client.test".to_owned()][..])
        );
    })
    .await
    .expect("test timed out");
}

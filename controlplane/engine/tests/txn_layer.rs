//! The transaction layer as a whole (RFC 3261 §17, §18): responses routed by
//! `received`/`rport`, stray responses, RFC 2543 matching, API misuse, connection loss,
//! counters and the load limit.

mod common_txn;

use portcullis_engine::entropy::SeededEntropy;
use portcullis_engine::transaction::{
    make_response, InviteServerState, Method, PeerAddr, SipMsg, TransactionLayer, Transport,
    TxConfig, TxEvent, TxId, TxKind, TxState,
};

use common_txn::*;

#[test]
fn transport_error_reaches_the_tu() {
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(14));
    let (tx, _) = client_invite(&mut l, Transport::Tcp);
    l.handle_transport_error(t(5), tx);
    assert_eq!(events(&mut l), vec![TxEvent::TransportError { tx }]);
    assert!(l.is_empty());
    assert_eq!(l.stats().transport_errors, 1);
}

#[test]
fn responses_follow_received_and_rport() {
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(15));
    let req = request(&Method::Options, "z9hG4bKnat", Transport::Udp);
    // Behind a NAT: sent-by says 192.0.2.10:5060, packet came from 203.0.113.5:40123.
    let from = peer(Transport::Udp, "203.0.113.5:40123");
    l.handle_message(t(0), from, req);
    let (tx, request) = only_request(&mut l);
    let via = request.top_via().unwrap();
    assert_eq!(via.param("received"), Some(Some("203.0.113.5")));
    assert_eq!(via.param("rport"), Some(Some("40123")));
    l.respond(t(1), tx, &make_response(&request, 200, "OK", Some("x")))
        .unwrap();
    let sent = transmits(&mut l);
    assert_eq!(sent[0].dest, from.addr);
    let text = String::from_utf8_lossy(&sent[0].bytes).into_owned();
    assert!(text.contains("rport=40123;received=203.0.113.5"), "{text}");
}

#[test]
fn stray_response_is_counted_and_dropped() {
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(16));
    let req = request(&Method::Invite, "z9hG4bKunknown", Transport::Udp);
    l.handle_message(
        t(0),
        peer(Transport::Udp, "192.0.2.20:5060"),
        make_response(&req, 200, "OK", Some("x")),
    );
    assert!(events(&mut l).is_empty());
    assert_eq!(l.stats().stray_responses, 1);
    l.handle_datagram(
        t(0),
        peer(Transport::Udp, "192.0.2.20:5060"),
        b"not sip\r\n\r\n",
    );
    assert_eq!(l.stats().malformed, 1);
}

#[test]
fn rfc2543_invite_and_ack_match_by_fallback_key() {
    // RFC 4475 §3.5.1: no branch at all.
    let raw = vector("sip-torture/rfc4475/backward-compat/inv2543.dat");
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(17));
    let from = peer(Transport::Udp, "192.0.2.99:5060");
    l.handle_datagram(t(0), from, &raw);
    let (tx, request) = only_request(&mut l);
    assert_eq!(transmits(&mut l).len(), 1, "100 Trying");
    l.handle_datagram(t(100), from, &raw);
    assert!(
        events(&mut l).is_empty(),
        "retransmission matched by the RFC 2543 key"
    );
    assert_eq!(transmits(&mut l).len(), 1);
    l.respond(
        t(200),
        tx,
        &make_response(&request, 486, "Busy Here", Some("srv")),
    )
    .unwrap();
    transmits(&mut l);
    // The RFC 2543 ACK: same Request-URI, From, Call-ID, CSeq number, top Via; To tag of our 486.
    let text = String::from_utf8(raw).unwrap();
    let ack_text = text
        .replacen(
            "INVITE sip:UserB@example.com",
            "ACK sip:UserB@example.com",
            1,
        )
        .replace("CSeq: 56 INVITE", "CSeq: 56 ACK")
        .replace(
            "To: sip:+16505552222@ss1.example.net;user=phone",
            "To: sip:+16505552222@ss1.example.net;user=phone;tag=srv",
        );
    l.handle_datagram(t(300), from, ack_text.as_bytes());
    assert_eq!(
        l.state(tx),
        Some(TxState::InviteServer(InviteServerState::Confirmed))
    );
    assert!(events(&mut l).is_empty());
    assert_eq!(l.stats().stray_acks, 0);
}

#[test]
fn bare_magic_cookie_branch_falls_back_to_rfc2543_matching() {
    // RFC 4475 §3.4.1: branch=z9hG4bK with no identifier.
    let raw = vector("sip-torture/rfc4475/transaction/badbranch.dat");
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(18));
    let from = peer(Transport::Udp, "192.0.2.1:5060");
    l.handle_datagram(t(0), from, &raw);
    l.handle_datagram(t(500), from, &raw);
    assert_eq!(events(&mut l).len(), 1);
    assert_eq!(l.stats().created(TxKind::NonInviteServer), 1);
    assert_eq!(l.stats().absorbed, 1);
    // A different OPTIONS (new CSeq) with the same bare branch is a new transaction.
    let other = String::from_utf8(raw)
        .unwrap()
        .replace("CSeq: 8 OPTIONS", "CSeq: 9 OPTIONS");
    l.handle_datagram(t(600), from, other.as_bytes());
    assert_eq!(l.stats().created(TxKind::NonInviteServer), 2);
}

#[test]
fn api_misuse_is_a_typed_error() {
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(20));
    let to = peer(Transport::Udp, "192.0.2.20:5060");
    let ack = request(&Method::Ack, "z9hG4bKx1", Transport::Udp);
    assert!(
        l.send_request(t(0), to, ack).is_err(),
        "ACK is not a transaction"
    );
    let no_cookie = request(&Method::Options, "1234", Transport::Udp);
    assert_eq!(
        l.send_request(t(0), to, no_cookie),
        Err(portcullis_engine::transaction::TxError::MissingBranch)
    );
    let ok = request(&Method::Options, "z9hG4bKdup", Transport::Udp);
    let tx = l.send_request(t(0), to, ok.clone()).unwrap();
    assert_eq!(
        l.send_request(t(0), to, ok),
        Err(portcullis_engine::transaction::TxError::DuplicateTransaction)
    );
    assert!(
        l.respond(t(0), tx, &SipMsg::response(200, "OK")).is_err(),
        "respond on a client transaction"
    );
    assert!(l.send_cancel(t(0), tx).is_err(), "CANCEL of a non-INVITE");
    assert!(l
        .respond(t(0), TxId(999), &SipMsg::response(200, "OK"))
        .is_err());
}

#[test]
fn connection_loss_fails_every_transaction_on_it() {
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(21));
    let conn = portcullis_engine::transaction::ConnId(7);
    let on_conn = PeerAddr {
        conn: Some(conn),
        ..peer(Transport::Tls, "192.0.2.20:5061")
    };
    let other = PeerAddr {
        conn: Some(portcullis_engine::transaction::ConnId(8)),
        ..on_conn
    };
    let mut txs = Vec::new();
    for dest in [on_conn, on_conn, other] {
        let b = l.new_branch();
        txs.push(
            l.send_request(t(0), dest, request(&Method::Options, &b, Transport::Tls))
                .unwrap(),
        );
    }
    l.handle_connection_lost(t(1), conn);
    assert_eq!(
        events(&mut l),
        vec![
            TxEvent::TransportError { tx: txs[0] },
            TxEvent::TransportError { tx: txs[1] }
        ]
    );
    assert_eq!(l.len(), 1);
    assert!(l.state(txs[2]).is_some());
}

#[test]
fn every_counter_moves() {
    // Style rule: every exported metric is incremented somewhere.
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(22));
    let (itx, ireq) = client_invite(&mut l, Transport::Udp);
    let (ntx, _) = client_request(&mut l, &Method::Options, Transport::Udp);
    transmits(&mut l);
    let (stx, sreq, from) = server_invite(&mut l, Transport::Udp);
    l.handle_message(
        t(1),
        from,
        request(&Method::Options, "z9hG4bKnis", Transport::Udp),
    );
    let busy = make_response(&ireq, 486, "Busy", Some("b"));
    l.handle_message(t(2), from, busy.clone());
    l.handle_message(t(3), from, busy); // absorbed
    l.handle_message(t(4), from, make_response(&sreq, 200, "OK", Some("zz"))); // stray response
    l.handle_message(
        t(5),
        from,
        request(&Method::Ack, "z9hG4bKnothing", Transport::Udp),
    ); // stray ACK
    l.handle_datagram(t(6), from, b"\x00\x01garbage"); // malformed
    l.handle_transport_error(t(7), ntx);
    l.respond(t(8), stx, &make_response(&sreq, 500, "Oops", Some("s")))
        .unwrap();
    run_until(&mut l, 100_000); // retransmissions, Timer H timeout, Timer D
    let st = *l.stats();
    let _ = (itx, events(&mut l));
    assert!(st.retransmissions > 0 && st.absorbed > 0 && st.timeouts > 0);
    assert!(
        st.stray_responses > 0 && st.stray_acks > 0 && st.malformed > 0 && st.transport_errors > 0
    );
    for kind in [
        TxKind::InviteClient,
        TxKind::NonInviteClient,
        TxKind::InviteServer,
        TxKind::NonInviteServer,
    ] {
        assert!(st.created(kind) > 0, "{kind:?} created");
    }
    for kind in [
        TxKind::InviteClient,
        TxKind::NonInviteClient,
        TxKind::InviteServer,
    ] {
        assert!(st.terminated(kind) > 0, "{kind:?} terminated");
    }
}

#[test]
fn load_limit_refuses_new_requests_with_503_but_not_cancel() {
    let cfg = TxConfig {
        max_server_transactions: 2,
        ..TxConfig::default()
    };
    let mut l = TransactionLayer::new(cfg, SeededEntropy::new(23));
    let from = peer(Transport::Udp, "192.0.2.10:5060");
    l.handle_message(
        t(0),
        from,
        request(&Method::Invite, "z9hG4bKa", Transport::Udp),
    );
    l.handle_message(
        t(0),
        from,
        request(&Method::Options, "z9hG4bKb", Transport::Udp),
    );
    transmits(&mut l);
    l.handle_message(
        t(1),
        from,
        request(&Method::Options, "z9hG4bKc", Transport::Udp),
    );
    let sent = transmits(&mut l);
    let refusal = parsed(&sent[0]);
    assert_eq!(refusal.status(), Some(503));
    assert_eq!(refusal.header("Retry-After"), Some("5"));
    assert!(refusal.to_tag().unwrap().is_some());
    assert_eq!(sent[0].tx, None, "stateless");
    assert_eq!(l.stats().overload_rejects, 1);
    assert_eq!(events(&mut l).len(), 2);
    let mut cancel = request(&Method::Cancel, "z9hG4bKa", Transport::Udp);
    cancel.set_header("Call-ID", "call-z9hG4bKa");
    l.handle_message(t(2), from, cancel);
    assert!(matches!(
        events(&mut l).as_slice(),
        [TxEvent::Request {
            cancels: Some(_),
            ..
        }]
    ));
    // Client transactions are never refused.
    let b = l.new_branch();
    assert!(l
        .send_request(
            t(3),
            peer(Transport::Udp, "192.0.2.20:5060"),
            request(&Method::Bye, &b, Transport::Udp)
        )
        .is_ok());
}

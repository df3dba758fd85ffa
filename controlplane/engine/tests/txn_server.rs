//! Server transactions under virtual time (RFC 3261 §17.2, RFC 6026): Timers G-J and L,
//! retransmissions absorbed, CANCEL matched to its INVITE, transport errors reported.

mod common_txn;

use portcullis_engine::entropy::SeededEntropy;
use portcullis_engine::transaction::{
    make_response, InviteServerState, Method, NonInviteServerState, Timer, TransactionLayer,
    Transport, TxConfig, TxEvent, TxKind, TxState,
};

use common_txn::*;

#[test]
fn invite_server_timer_g_h_and_retransmission_absorption() {
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(6));
    let (tx, req, from) = server_invite(&mut l, Transport::Udp);
    // Retransmitted INVITE: 100 re-sent, TU not told again.
    l.handle_message(
        t(200),
        from,
        request(&Method::Invite, "z9hG4bKsrv1", Transport::Udp),
    );
    assert_eq!(parsed(&transmits(&mut l)[0]).status(), Some(100));
    assert!(events(&mut l).is_empty());
    l.respond(
        t(300),
        tx,
        &make_response(&req, 486, "Busy Here", Some("s")),
    )
    .unwrap();
    assert_eq!(transmits(&mut l).len(), 1);
    let times = send_times(&mut l, 40_000);
    // G: T1 doubling to T2 from 300 ms; H at 64*T1.
    assert_eq!(
        times,
        vec![800, 1_800, 3_800, 7_800, 11_800, 15_800, 19_800, 23_800, 27_800, 31_800]
    );
    assert_timed_out(&mut l, tx, Timer::H);
}

#[test]
fn invite_server_ack_confirms_then_timer_i() {
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(7));
    let (tx, req, from) = server_invite(&mut l, Transport::Udp);
    let busy = make_response(&req, 486, "Busy Here", Some("s"));
    l.respond(t(10), tx, &busy).unwrap();
    transmits(&mut l);
    assert!(
        l.respond(t(11), tx, &busy).is_err(),
        "second final rejected"
    );
    let ack = ack_to_s("z9hG4bKsrv1", Transport::Udp);
    l.handle_message(t(20), from, ack.clone());
    assert_eq!(
        l.state(tx),
        Some(TxState::InviteServer(InviteServerState::Confirmed))
    );
    assert!(
        events(&mut l).is_empty(),
        "non-2xx ACK is absorbed by the transaction"
    );
    l.handle_message(t(30), from, ack);
    assert!(run_until(&mut l, 5_019).is_empty());
    assert!(!l.is_empty());
    run_until(&mut l, 5_020);
    assert!(l.is_empty(), "Timer I = T4");
}

#[test]
fn invite_server_2xx_retransmitted_until_ack_then_timer_l() {
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(8));
    let (tx, req, from) = server_invite(&mut l, Transport::Udp);
    l.respond(t(0), tx, &make_response(&req, 200, "OK", Some("s")))
        .unwrap();
    transmits(&mut l);
    let times = send_times(&mut l, 2_000);
    assert_eq!(times, vec![500, 1_500]);
    // ACK for 2xx: new branch, same dialog.
    let mut ack = ack_to_s("z9hG4bKnewbranch", Transport::Udp);
    ack.set_header("Call-ID", req.call_id().unwrap());
    l.handle_message(t(2_100), from, ack.clone());
    let evs = events(&mut l);
    assert!(
        matches!(evs.as_slice(), [TxEvent::Ack { tx: a, .. }] if *a == tx),
        "{evs:?}"
    );
    l.handle_message(t(2_200), from, ack.clone());
    assert!(events(&mut l).is_empty(), "ACK passed once");
    assert!(
        run_until(&mut l, 31_999).is_empty(),
        "no 2xx retransmission after ACK"
    );
    run_until(&mut l, 32_000);
    assert!(l.is_empty());
    assert!(events(&mut l).is_empty(), "no timeout: the ACK came");
    // After Timer L, the same ACK is stray and goes to the TU/dialog.
    l.handle_message(t(33_000), from, ack);
    assert!(matches!(
        events(&mut l).as_slice(),
        [TxEvent::StrayAck { .. }]
    ));
    assert_eq!(l.stats().stray_acks, 1);
}

#[test]
fn invite_server_2xx_without_ack_times_out_with_timer_l() {
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(9));
    let (tx, req, _) = server_invite(&mut l, Transport::Udp);
    l.respond(t(0), tx, &make_response(&req, 200, "OK", Some("s")))
        .unwrap();
    run_until(&mut l, 40_000);
    assert_timed_out(&mut l, tx, Timer::L);
}

#[test]
fn non_invite_server_timer_j_and_absorption() {
    for (transport, j) in [(Transport::Udp, 32_000), (Transport::Tcp, 0)] {
        let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(10));
        let req = request(&Method::Options, "z9hG4bKopt", transport);
        let from = peer(transport, "192.0.2.10:5060");
        l.handle_message(t(0), from, req.clone());
        let (tx, _) = only_request(&mut l);
        assert!(
            transmits(&mut l).is_empty(),
            "no automatic 100 for non-INVITE"
        );
        l.handle_message(t(1), from, req.clone());
        assert!(
            transmits(&mut l).is_empty() && events(&mut l).is_empty(),
            "absorbed in Trying"
        );
        l.respond(t(2), tx, &make_response(&req, 200, "OK", Some("s")))
            .unwrap();
        assert_eq!(transmits(&mut l).len(), 1);
        assert_eq!(
            l.state(tx),
            Some(TxState::NonInviteServer(NonInviteServerState::Completed))
        );
        if j > 0 {
            l.handle_message(t(3), from, req.clone());
            assert_eq!(
                parsed(&transmits(&mut l)[0]).status(),
                Some(200),
                "final re-sent in Completed"
            );
        }
        run_until(&mut l, 2 + j - 1);
        assert!(!l.is_empty(), "Timer J not yet fired");
        run_until(&mut l, 2 + j);
        assert!(l.is_empty());
        assert_eq!(l.stats().created(TxKind::NonInviteServer), 1);
    }
}

#[test]
fn cancel_matches_invite_server_transaction() {
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(12));
    let (itx, _, from) = server_invite(&mut l, Transport::Udp);
    let mut cancel = request(&Method::Cancel, "z9hG4bKsrv1", Transport::Udp);
    cancel.set_header("Call-ID", "call-z9hG4bKsrv1");
    l.handle_message(t(5), from, cancel);
    let evs = events(&mut l);
    let [TxEvent::Request {
        tx,
        cancels: Some(c),
        ..
    }] = evs.as_slice()
    else {
        panic!("{evs:?}")
    };
    assert_eq!(*c, itx);
    assert_ne!(*tx, itx, "CANCEL is its own transaction");
    let unknown = request(&Method::Cancel, "z9hG4bKnone", Transport::Udp);
    l.handle_message(t(6), from, unknown);
    assert!(matches!(
        events(&mut l).as_slice(),
        [TxEvent::Request { cancels: None, .. }]
    ));
}

#[test]
fn server_transport_error_is_reported_and_transmits_name_their_transaction() {
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(19));
    let req = request(&Method::Options, "z9hG4bKtcp", Transport::Tcp);
    let from = peer(Transport::Tcp, "192.0.2.10:40000");
    l.handle_message(t(0), from, req);
    let (tx, request) = only_request(&mut l);
    l.respond(t(1), tx, &make_response(&request, 200, "OK", Some("s")))
        .unwrap();
    let sent = transmits(&mut l);
    assert_eq!(sent[0].tx, Some(tx));
    assert_eq!(
        sent[0].dest, from.addr,
        "reliable: reply on the connection's peer"
    );
    assert_eq!(sent[0].transport, Transport::Tcp);
    // The connection died under the final response.
    l.handle_transport_error(t(2), tx);
    assert_eq!(events(&mut l), vec![TxEvent::TransportError { tx }]);
    assert!(l.is_empty());
    // Reports for unknown transactions are ignored.
    l.handle_transport_error(t(3), tx);
    assert_eq!(l.stats().transport_errors, 1);
}

#[test]
fn invite_server_over_tcp_has_no_timer_g_and_zero_timer_i() {
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(24));
    let (tx, req, from) = server_invite(&mut l, Transport::Tcp);
    l.respond(t(0), tx, &make_response(&req, 603, "Decline", Some("s")))
        .unwrap();
    transmits(&mut l);
    assert!(
        run_until(&mut l, 31_999).is_empty(),
        "no Timer G on reliable transports"
    );
    let ack = ack_to_s("z9hG4bKsrv1", Transport::Tcp);
    l.handle_message(t(31_999), from, ack);
    assert_eq!(
        l.state(tx),
        Some(TxState::InviteServer(InviteServerState::Confirmed))
    );
    assert_eq!(l.poll_timeout(), Some(t(31_999)), "Timer I is zero");
    l.handle_timeout(t(31_999));
    assert!(l.is_empty());
    assert!(
        events(&mut l).is_empty(),
        "no Timer H timeout: the ACK came first"
    );
}

//! Client transactions under virtual time (RFC 3261 §17.1, RFC 6026): Timers A-F, K
//! and M, the ACK to a non-2xx, CANCEL (§9.1).

mod common_txn;

use portcullis_engine::entropy::SeededEntropy;
use portcullis_engine::transaction::{
    make_response, InviteClientState, Method, SipMsg, Timer, TransactionLayer, Transport, TxConfig,
    TxKind, TxState,
};

use common_txn::*;

#[test]
fn timer_a_doubles_without_cap_and_b_fires_at_64_t1() {
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(1));
    let (tx, _) = client_invite(&mut l, Transport::Udp);
    let times = send_times(&mut l, 40_000);
    // A: 0.5, 1, 2, 4, 8, 16 s intervals — no T2 cap for INVITE (§17.1.1.2).
    assert_eq!(times, vec![500, 1_500, 3_500, 7_500, 15_500, 31_500]);
    assert_timed_out(&mut l, tx, Timer::B);
    assert_eq!(l.stats().retransmissions, 6);
    assert_eq!(l.stats().timeouts, 1);
    assert_eq!(l.stats().terminated(TxKind::InviteClient), 1);
}

#[test]
fn timer_e_caps_at_t2_and_f_fires_at_64_t1() {
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(2));
    let (tx, _) = client_request(&mut l, &Method::Options, Transport::Udp);
    transmits(&mut l);
    let times = send_times(&mut l, 40_000);
    assert_eq!(
        times,
        vec![500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
    );
    assert_timed_out(&mut l, tx, Timer::F);
}

#[test]
fn timer_e_becomes_t2_in_proceeding() {
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(2));
    let (_, req) = client_request(&mut l, &Method::Options, Transport::Udp);
    transmits(&mut l);
    l.handle_message(
        t(100),
        peer(Transport::Udp, "192.0.2.20:5060"),
        make_response(&req, 183, "Progress", Some("b")),
    );
    let times = send_times(&mut l, 9_000);
    // First E (armed at T1) fires at 500, then every T2.
    assert_eq!(times, vec![500, 4_500, 8_500]);
}

#[test]
fn reliable_transport_has_no_retransmissions_and_zero_d() {
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(3));
    let (tx, req) = client_invite(&mut l, Transport::Tcp);
    assert!(run_until(&mut l, 10_000).is_empty(), "no Timer A on TCP");
    l.handle_message(
        t(10_000),
        peer(Transport::Tcp, "192.0.2.20:5060"),
        make_response(&req, 486, "Busy Here", Some("b")),
    );
    let acks = transmits(&mut l);
    assert_eq!(acks.len(), 1);
    assert_eq!(
        l.state(tx),
        Some(TxState::InviteClient(InviteClientState::Completed))
    );
    assert_eq!(
        l.poll_timeout(),
        Some(t(10_000)),
        "Timer D is zero on reliable transports"
    );
    l.handle_timeout(t(10_000));
    assert!(l.is_empty());
}

#[test]
fn invite_non2xx_generates_ack_and_absorbs_retransmissions() {
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(4));
    let (tx, req) = client_invite(&mut l, Transport::Udp);
    let from = peer(Transport::Udp, "192.0.2.20:5060");
    l.handle_message(t(100), from, make_response(&req, 180, "Ringing", Some("b")));
    assert_eq!(
        l.state(tx),
        Some(TxState::InviteClient(InviteClientState::Proceeding))
    );
    let busy = make_response(&req, 486, "Busy Here", Some("b"));
    l.handle_message(t(200), from, busy.clone());
    let sent = transmits(&mut l);
    assert_eq!(sent.len(), 1);
    let ack = parsed(&sent[0]);
    // §17.1.1.3: same Request-URI, branch, Call-ID, From, CSeq number; To from the response.
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(ack.request_uri(), req.request_uri());
    assert_eq!(
        ack.top_via().unwrap().branch(),
        req.top_via().unwrap().branch()
    );
    assert_eq!(ack.cseq().unwrap().seq, 1);
    assert_eq!(ack.cseq().unwrap().method, Method::Ack);
    assert_eq!(ack.to_tag().unwrap(), Some("b"));
    assert_eq!(ack.call_id().unwrap(), req.call_id().unwrap());
    let evs = events(&mut l);
    assert_eq!(evs.len(), 2, "180 and 486 each passed once: {evs:?}");
    // Retransmitted 486: ACK again, nothing to the TU.
    l.handle_message(t(700), from, busy);
    assert_eq!(transmits(&mut l).len(), 1);
    assert!(events(&mut l).is_empty());
    assert_eq!(l.stats().absorbed, 1);
    // Timer D: 32 s on UDP.
    assert!(run_until(&mut l, 32_199).is_empty());
    assert!(!l.is_empty());
    run_until(&mut l, 32_200);
    assert!(l.is_empty());
}

#[test]
fn invite_2xx_accepted_resends_ack_and_ends_on_timer_m() {
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(5));
    let (tx, req) = client_invite(&mut l, Transport::Udp);
    let from = peer(Transport::Udp, "192.0.2.20:5060");
    let ok = make_response(&req, 200, "OK", Some("b"));
    l.handle_message(t(100), from, ok.clone());
    assert_eq!(
        l.state(tx),
        Some(TxState::InviteClient(InviteClientState::Accepted))
    );
    assert_eq!(events(&mut l).len(), 1);
    let mut ack = SipMsg::request(Method::Ack, "sip:bob@192.0.2.20");
    ack.push_header("CSeq", "1 ACK");
    l.send_ack(Some(tx), from, &ack);
    assert_eq!(transmits(&mut l).len(), 1);
    l.handle_message(t(600), from, ok.clone());
    assert_eq!(
        transmits(&mut l).len(),
        1,
        "ACK re-sent for the retransmitted 2xx"
    );
    assert!(events(&mut l).is_empty(), "no duplicate 2xx to the TU");
    // A 2xx from another fork is new to the TU.
    l.handle_message(t(700), from, make_response(&req, 200, "OK", Some("other")));
    assert_eq!(events(&mut l).len(), 1);
    run_until(&mut l, 100 + 32_000);
    assert!(l.is_empty());
    l.handle_message(t(40_000), from, ok);
    assert_eq!(l.stats().stray_responses, 1);
}

#[test]
fn non_invite_client_timer_k() {
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(11));
    let (_, req) = client_request(&mut l, &Method::Bye, Transport::Udp);
    let to = peer(Transport::Udp, "192.0.2.20:5060");
    transmits(&mut l);
    let ok = make_response(&req, 200, "OK", Some("b"));
    l.handle_message(t(50), to, ok.clone());
    l.handle_message(t(60), to, ok);
    assert_eq!(events(&mut l).len(), 1);
    run_until(&mut l, 5_049);
    assert!(!l.is_empty());
    run_until(&mut l, 5_050);
    assert!(l.is_empty(), "Timer K = T4");
}

#[test]
fn client_cancel_follows_section_9_1() {
    let mut l = TransactionLayer::new(TxConfig::default(), SeededEntropy::new(13));
    let (tx, req) = client_invite(&mut l, Transport::Udp);
    assert!(
        l.send_cancel(t(1), tx).is_err(),
        "no CANCEL before a provisional response"
    );
    l.handle_message(
        t(10),
        peer(Transport::Udp, "192.0.2.20:5060"),
        make_response(&req, 180, "Ringing", Some("b")),
    );
    let ctx = l.send_cancel(t(20), tx).unwrap();
    let sent = transmits(&mut l);
    let cancel = parsed(&sent[0]);
    assert_eq!(cancel.method(), Some(&Method::Cancel));
    assert_eq!(
        cancel.top_via().unwrap().branch(),
        req.top_via().unwrap().branch()
    );
    assert_eq!(cancel.cseq().unwrap().seq, 1);
    assert_eq!(cancel.to_tag().unwrap(), None);
    assert_ne!(ctx, tx);
    assert_eq!(l.stats().created(TxKind::NonInviteClient), 1);
}

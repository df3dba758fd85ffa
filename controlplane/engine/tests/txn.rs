//! Transaction state machines under virtual time (RFC 3261 §17, RFC 6026).

use std::net::SocketAddr;

use portcullis_engine::entropy::SeededEntropy;
use portcullis_engine::time::Timestamp;
use portcullis_engine::transaction::{
    make_response, parse_message, InviteClientState, InviteServerState, Method,
    NonInviteServerState, PeerAddr, SipMsg, Timer, TransactionLayer, Transmit, Transport, TxConfig,
    TxEvent, TxId, TxKind, TxState,
};

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/vectors");

fn peer(transport: Transport, addr: &str) -> PeerAddr {
    let addr: SocketAddr = addr.parse().expect("test address");
    PeerAddr {
        transport,
        addr,
        conn: None,
    }
}

fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn request(method: &Method, branch: &str, transport: Transport) -> SipMsg {
    let mut m = SipMsg::request(method.clone(), "sip:bob@192.0.2.20");
    m.push_header(
        "Via",
        format!(
            "SIP/2.0/{} 192.0.2.10:5060;branch={branch};rport",
            transport.as_via_token()
        ),
    );
    m.push_header("Max-Forwards", "70");
    m.push_header("From", "<sip:alice@192.0.2.10>;tag=a1");
    m.push_header("To", "<sip:bob@192.0.2.20>");
    m.push_header("Call-ID", format!("call-{branch}"));
    m.push_header("CSeq", format!("1 {method}"));
    m.push_header("Contact", "<sip:alice@192.0.2.10:5060>");
    m
}

fn transmits(l: &mut TransactionLayer) -> Vec<Transmit> {
    std::iter::from_fn(|| l.poll_transmit()).collect()
}

fn events(l: &mut TransactionLayer) -> Vec<TxEvent> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

fn parsed(tr: &Transmit) -> SipMsg {
    parse_message(&tr.bytes).expect("layer emits parseable messages")
}

/// Runs timers until `until`, returning (send time, message) for everything sent.
fn run_until(l: &mut TransactionLayer, until: u64) -> Vec<(u64, SipMsg)> {
    let mut sent = Vec::new();
    while let Some(at) = l.poll_timeout() {
        if at > t(until) {
            break;
        }
        l.handle_timeout(at);
        for tr in transmits(l) {
            sent.push((at.as_millis(), parsed(&tr)));
        }
    }
    sent
}

/// Sends times of everything sent by timers until `until`.
fn send_times(l: &mut TransactionLayer, until: u64) -> Vec<u64> {
    run_until(l, until).iter().map(|(at, _)| *at).collect()
}

/// The TU was told exactly that `tx` timed out on `timer`, and nothing is left.
fn assert_timed_out(l: &mut TransactionLayer, tx: TxId, timer: Timer) {
    assert_eq!(events(l), vec![TxEvent::Timeout { tx, timer }]);
    assert!(l.is_empty());
}

/// Sends a new `method` request to 192.0.2.20:5060 at 0 (a client transaction).
fn client_request(
    l: &mut TransactionLayer,
    method: &Method,
    transport: Transport,
) -> (TxId, SipMsg) {
    let b = l.new_branch();
    let req = request(method, &b, transport);
    let tx = l
        .send_request(t(0), peer(transport, "192.0.2.20:5060"), req.clone())
        .expect("send");
    (tx, req)
}

fn client_invite(l: &mut TransactionLayer, transport: Transport) -> (TxId, SipMsg) {
    let sent = client_request(l, &Method::Invite, transport);
    assert_eq!(transmits(l).len(), 1);
    sent
}

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

/// The ACK to our final response (to-tag `s`) of the server INVITE with Via branch `branch`.
fn ack_to_s(branch: &str, transport: Transport) -> SipMsg {
    let mut ack = request(&Method::Ack, branch, transport);
    ack.set_header("To", "<sip:bob@192.0.2.20>;tag=s");
    ack.set_header("CSeq", "1 ACK");
    ack
}

/// The one event so far: a new request; returns its transaction and the request.
fn only_request(l: &mut TransactionLayer) -> (TxId, SipMsg) {
    let evs = events(l);
    let [TxEvent::Request { tx, request, .. }] = evs.as_slice() else {
        panic!("{evs:?}")
    };
    (*tx, request.clone())
}

fn server_invite(l: &mut TransactionLayer, transport: Transport) -> (TxId, SipMsg, PeerAddr) {
    let req = request(&Method::Invite, "z9hG4bKsrv1", transport);
    let from = peer(transport, "192.0.2.10:5060");
    l.handle_message(t(0), from, req.clone());
    let sent = transmits(l);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        parsed(&sent[0]).status(),
        Some(100),
        "100 Trying sent immediately"
    );
    let evs = events(l);
    let [TxEvent::Request {
        tx,
        request,
        cancels: None,
        ..
    }] = evs.as_slice()
    else {
        panic!("{evs:?}")
    };
    (*tx, request.clone(), from)
}

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

fn vector(path: &str) -> Vec<u8> {
    let p = format!("{VECTORS}/{path}");
    std::fs::read(&p).unwrap_or_else(|e| panic!("missing conformance vector {p}: {e}"))
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

//! Shared helpers of the transaction-layer tests (`txn*.rs`): requests built in one
//! shape, the layer's outputs collected, virtual time run forward, and the client and
//! server transactions most tests start from.
#![allow(dead_code)]

use std::net::SocketAddr;

use portcullis_engine::time::Timestamp;
use portcullis_engine::transaction::{
    parse_message, Method, PeerAddr, SipMsg, Timer, TransactionLayer, Transmit, Transport, TxEvent,
    TxId,
};

pub const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/vectors");

pub fn peer(transport: Transport, addr: &str) -> PeerAddr {
    let addr: SocketAddr = addr.parse().expect("test address");
    PeerAddr {
        transport,
        addr,
        conn: None,
    }
}

pub fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

pub fn request(method: &Method, branch: &str, transport: Transport) -> SipMsg {
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

pub fn transmits(l: &mut TransactionLayer) -> Vec<Transmit> {
    std::iter::from_fn(|| l.poll_transmit()).collect()
}

pub fn events(l: &mut TransactionLayer) -> Vec<TxEvent> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

pub fn parsed(tr: &Transmit) -> SipMsg {
    parse_message(&tr.bytes).expect("layer emits parseable messages")
}

/// Runs timers until `until`, returning (send time, message) for everything sent.
pub fn run_until(l: &mut TransactionLayer, until: u64) -> Vec<(u64, SipMsg)> {
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
pub fn send_times(l: &mut TransactionLayer, until: u64) -> Vec<u64> {
    run_until(l, until).iter().map(|(at, _)| *at).collect()
}

/// The TU was told exactly that `tx` timed out on `timer`, and nothing is left.
pub fn assert_timed_out(l: &mut TransactionLayer, tx: TxId, timer: Timer) {
    assert_eq!(events(l), vec![TxEvent::Timeout { tx, timer }]);
    assert!(l.is_empty());
}

/// Sends a new `method` request to 192.0.2.20:5060 at 0 (a client transaction).
pub fn client_request(
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

pub fn client_invite(l: &mut TransactionLayer, transport: Transport) -> (TxId, SipMsg) {
    let sent = client_request(l, &Method::Invite, transport);
    assert_eq!(transmits(l).len(), 1);
    sent
}

/// The ACK to our final response (to-tag `s`) of the server INVITE with Via branch `branch`.
pub fn ack_to_s(branch: &str, transport: Transport) -> SipMsg {
    let mut ack = request(&Method::Ack, branch, transport);
    ack.set_header("To", "<sip:bob@192.0.2.20>;tag=s");
    ack.set_header("CSeq", "1 ACK");
    ack
}

/// The one event so far: a new request; returns its transaction and the request.
pub fn only_request(l: &mut TransactionLayer) -> (TxId, SipMsg) {
    let evs = events(l);
    let [TxEvent::Request { tx, request, .. }] = evs.as_slice() else {
        panic!("{evs:?}")
    };
    (*tx, request.clone())
}

pub fn server_invite(l: &mut TransactionLayer, transport: Transport) -> (TxId, SipMsg, PeerAddr) {
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

pub fn vector(path: &str) -> Vec<u8> {
    let p = format!("{VECTORS}/{path}");
    std::fs::read(&p).unwrap_or_else(|e| panic!("missing conformance vector {p}: {e}"))
}

//! B2BUA reliable provisionals end to end (RFC 3262).

#[path = "b2bua_harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;
use portcullis_engine::dialog::Dialog;
use portcullis_engine::transaction::{make_response, Method, PeerAddr, Transport};

#[test]
fn prack_relayed_end_to_end_with_rseq_mapping() {
    let mut h = H::new();
    let now = h.now;
    let (atx, ainv) = h.a.invite_with(
        now,
        "100",
        Some(&sdp("192.168.1.10", 10_000, "")),
        &[("Supported", "100rel")],
    );
    h.pump();
    let (btx, binv) = h.b1.last_request("INVITE");
    assert!(
        binv.header_values("Supported").any(|t| t == "100rel"),
        "100rel offered to B"
    );
    // B sends a reliable 183 with SDP, RSeq 7000.
    let mut r183 = make_response(&binv, 183, "Session Progress", Some("btag"));
    r183.push_header("Contact", h.b1.contact());
    r183.push_header("Require", "100rel");
    r183.push_header("RSeq", "7000");
    r183.push_header("Content-Type", "application/sdp");
    r183.set_body(sdp("172.16.0.20", 20_000, "").into_bytes());
    let now = h.now;
    h.b1.layer.respond(now, btx, &r183).unwrap();
    h.pump();
    let a183 =
        h.a.responses()
            .into_iter()
            .find(|r| r.status() == Some(183))
            .expect("183 to A");
    assert!(a183.header_values("Require").any(|t| t == "100rel"));
    let a_rseq: u32 = a183.header("RSeq").unwrap().parse().unwrap();
    assert_ne!(a183.header("RSeq"), Some("7000"), "RSeq is per leg");
    // Unacknowledged: the SBC retransmits the reliable 183 (T1, 2T1, ...).
    h.advance(Duration::from_millis(1600));
    let n183 =
        h.a.wire
            .iter()
            .filter(|w| w.starts_with(b"SIP/2.0 183"))
            .count();
    assert!(n183 >= 3, "reliable 183 retransmitted, got {n183}");
    // A PRACKs in its early dialog.
    let mut da = Dialog::from_uac(&ainv, &a183).unwrap();
    let via = h.a.via();
    let mut prack = da.request(Method::Prack, &via).unwrap();
    prack.push_header("RAck", format!("{a_rseq} 1 INVITE"));
    let now = h.now;
    h.a.layer
        .send_request(
            now,
            PeerAddr {
                transport: Transport::Udp,
                addr: sa(SBC),
                conn: None,
            },
            prack,
        )
        .unwrap();
    h.pump();
    let (ptx, bprack) = h.b1.last_request("PRACK");
    assert_eq!(
        bprack.header("RAck"),
        Some(format!("7000 {} INVITE", binv.cseq().unwrap().seq).as_str())
    );
    assert_eq!(bprack.call_id().unwrap(), binv.call_id().unwrap());
    let now = h.now;
    h.b1.respond(now, ptx, &bprack, 200, "btag", None);
    h.pump();
    assert!(h
        .a
        .responses()
        .iter()
        .any(|r| r.status() == Some(200) && r.cseq().unwrap().method == Method::Prack));
    // No more retransmissions after the PRACK.
    let before =
        h.a.wire
            .iter()
            .filter(|w| w.starts_with(b"SIP/2.0 183"))
            .count();
    h.advance(Duration::from_secs(5));
    let after =
        h.a.wire
            .iter()
            .filter(|w| w.starts_with(b"SIP/2.0 183"))
            .count();
    assert_eq!(before, after);
    // Answer completes the call.
    let now = h.now;
    h.b1.respond(
        now,
        btx,
        &binv,
        200,
        "btag",
        Some(&sdp("172.16.0.20", 20_000, "")),
    );
    h.pump();
    let ok =
        h.a.responses()
            .into_iter()
            .find(|r| r.status() == Some(200) && r.cseq().unwrap().method == Method::Invite)
            .unwrap();
    h.a.ack(atx, &ainv, &ok, None);
    h.pump();
    assert_eq!(h.sbc.active_calls(), 1);
}

#[test]
fn reliable_18x_prack_by_sbc_when_caller_lacks_100rel() {
    let mut h = H::new();
    let (_atx, _ainv, btx, binv) = h.start("100", Some(&sdp("192.168.1.10", 10_000, "")));
    assert!(!binv.header_values("Supported").any(|t| t == "100rel"));
    let mut r180 = make_response(&binv, 180, "Ringing", Some("btag"));
    r180.push_header("Contact", h.b1.contact());
    r180.push_header("Require", "100rel");
    r180.push_header("RSeq", "1");
    let now = h.now;
    h.b1.layer.respond(now, btx, &r180).unwrap();
    h.pump();
    let (_, prack) = h.b1.last_request("PRACK");
    assert_eq!(prack.header("RAck"), Some("1 1 INVITE"));
    let a180 =
        h.a.responses()
            .into_iter()
            .find(|r| r.status() == Some(180))
            .unwrap();
    assert!(a180.header("RSeq").is_none(), "unreliable toward A");
}

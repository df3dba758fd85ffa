//! Dialog layer (RFC 3261 §12): ids, route sets, in-dialog request building, CSeq rules.

use portcullis_engine::dialog::{Dialog, DialogError, DialogId, DialogState, DialogTable, Role};
use portcullis_engine::transaction::{make_response, Method, SipMsg, Transport, Via};

fn invite() -> SipMsg {
    let mut m = SipMsg::request(Method::Invite, "sip:bob@biloxi.example.com");
    m.push_header(
        "Via",
        "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK74bf9",
    );
    m.push_header("Max-Forwards", "70");
    m.push_header(
        "Record-Route",
        "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>",
    );
    m.push_header(
        "From",
        "Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl",
    );
    m.push_header("To", "Bob <sip:bob@biloxi.example.com>");
    m.push_header("Call-ID", "3848276298220188511@atlanta.example.com");
    m.push_header("CSeq", "10 INVITE");
    m.push_header("Contact", "<sip:alice@pc33.atlanta.example.com>");
    m
}

fn via() -> Via {
    Via::new(
        Transport::Udp,
        "pc33.atlanta.example.com",
        None,
        "z9hG4bKnew",
    )
}

fn response(status: u16, contact: &str, rr: &[&str]) -> SipMsg {
    let mut r = make_response(&invite(), status, "X", Some("314159"));
    r.remove_header("Record-Route");
    for v in rr {
        r.push_header("Record-Route", *v);
    }
    r.push_header("Contact", contact);
    r
}

#[test]
fn uac_early_dialog_confirmed_by_2xx_with_reversed_route_set() {
    let ringing = response(
        180,
        "<sip:bob@early.example.com>",
        &["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"],
    );
    let mut d = Dialog::from_uac(&invite(), &ringing).unwrap();
    assert_eq!(d.state, DialogState::Early);
    assert_eq!(d.role, Role::Uac);
    assert_eq!(
        d.id,
        DialogId {
            call_id: "3848276298220188511@atlanta.example.com".into(),
            local_tag: "9fxced76sl".into(),
            remote_tag: "314159".into()
        }
    );
    assert_eq!(
        d.route_set,
        vec!["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    );
    // The 2xx recomputes the route set and the target (§12.1.2).
    let ok = response(200, "<sip:bob@192.0.2.4>", &["<sip:p3.example.com;lr>"]);
    d.on_response(&Method::Invite, &ok);
    assert_eq!(d.state, DialogState::Confirmed);
    assert_eq!(d.route_set, vec!["<sip:p3.example.com;lr>"]);
    assert_eq!(d.remote_target, "sip:bob@192.0.2.4");
}

#[test]
fn loose_routing_bye_and_2xx_ack() {
    let ok = response(
        200,
        "<sip:bob@192.0.2.4>",
        &["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"],
    );
    let mut d = Dialog::from_uac(&invite(), &ok).unwrap();
    let ack = d.ack(10, &via());
    assert_eq!(ack.cseq().unwrap().seq, 10);
    assert_eq!(ack.cseq().unwrap().method, Method::Ack);
    assert_eq!(d.local_cseq, Some(10), "ACK does not consume a CSeq");
    let bye = d.request(Method::Bye, &via()).unwrap();
    assert_eq!(bye.request_uri(), Some("sip:bob@192.0.2.4"));
    let routes: Vec<&str> = bye.header_values("Route").collect();
    assert_eq!(
        routes,
        vec!["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    );
    assert_eq!(bye.cseq().unwrap().seq, 11);
    assert_eq!(bye.from_tag().unwrap(), Some("9fxced76sl"));
    assert_eq!(bye.to_tag().unwrap(), Some("314159"));
    assert_eq!(
        bye.header("From"),
        Some("Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl")
    );
    assert_eq!(Dialog::next_hop(&bye), Some("sip:p1.example.com;lr"));
    assert_eq!(
        d.request(Method::Ack, &via()),
        Err(DialogError::WrongMethod("ACK"))
    );
    let info = d.request(Method::Info, &via()).unwrap();
    assert_eq!(info.cseq().unwrap().seq, 12);
    d.terminate();
    assert_eq!(d.request(Method::Bye, &via()), Err(DialogError::Terminated));
}

#[test]
fn strict_router_fallback() {
    // §12.2.1.1: first route without lr → it becomes the Request-URI, remote target last Route.
    let ok = response(
        200,
        "<sip:bob@192.0.2.4>",
        &[
            "<sip:p2.example.com;lr>",
            "<sip:strict.example.com;method=INVITE?X=1>",
        ],
    );
    let mut d = Dialog::from_uac(&invite(), &ok).unwrap();
    let bye = d.request(Method::Bye, &via()).unwrap();
    assert_eq!(bye.request_uri(), Some("sip:strict.example.com"));
    let routes: Vec<&str> = bye.header_values("Route").collect();
    assert_eq!(
        routes,
        vec!["<sip:p2.example.com;lr>", "<sip:bob@192.0.2.4>"]
    );
}

#[test]
fn no_route_set_targets_contact() {
    let ok = response(200, "<sip:bob@192.0.2.4:5070;transport=udp>", &[]);
    let mut d = Dialog::from_uac(&invite(), &ok).unwrap();
    let bye = d.request(Method::Bye, &via()).unwrap();
    assert_eq!(
        bye.request_uri(),
        Some("sip:bob@192.0.2.4:5070;transport=udp")
    );
    assert!(bye.header("Route").is_none());
}

#[test]
fn reinvite_and_update_2xx_refresh_remote_target() {
    let ok = response(200, "<sip:bob@192.0.2.4>", &[]);
    let mut d = Dialog::from_uac(&invite(), &ok).unwrap();
    let reinvite = d.request(Method::Invite, &via()).unwrap();
    assert_eq!(d.invite_cseq, Some(11));
    assert!(
        reinvite.header("Contact").is_some(),
        "target refresh carries Contact"
    );
    let mut moved = make_response(&reinvite, 200, "OK", None);
    moved.push_header("Contact", "<sip:bob@198.51.100.9>");
    d.on_response(&Method::Invite, &moved);
    assert_eq!(d.remote_target, "sip:bob@198.51.100.9");
    let mut info_ok = make_response(&reinvite, 200, "OK", None);
    info_ok.push_header("Contact", "<sip:ignored@x>");
    d.on_response(&Method::Info, &info_ok);
    assert_eq!(
        d.remote_target, "sip:bob@198.51.100.9",
        "INFO is not a target refresh"
    );
    let mut upd = make_response(&reinvite, 200, "OK", None);
    upd.push_header("Contact", "<sip:bob@203.0.113.1>");
    d.on_response(&Method::Update, &upd);
    assert_eq!(d.remote_target, "sip:bob@203.0.113.1");
    d.on_response(&Method::Bye, &make_response(&reinvite, 481, "Gone", None));
    assert_eq!(d.state, DialogState::Terminated);
}

#[test]
fn non_2xx_final_terminates_early_dialog() {
    let mut d = Dialog::from_uac(&invite(), &response(183, "<sip:bob@h>", &[])).unwrap();
    d.on_response(&Method::Invite, &response(486, "<sip:bob@h>", &[]));
    assert_eq!(d.state, DialogState::Terminated);
    assert_eq!(
        Dialog::from_uac(&invite(), &make_response(&invite(), 180, "R", None)),
        Err(DialogError::NoRemoteTag)
    );
}

#[test]
fn uas_dialog_route_set_cseq_order_and_refresh() {
    let req = invite();
    let mut d = Dialog::from_uas(&req, "uas-tag", "<sip:sbc@192.0.2.1>", true).unwrap();
    assert_eq!(
        d.route_set,
        vec!["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"],
        "UAS keeps order"
    );
    assert_eq!(d.remote_target, "sip:alice@pc33.atlanta.example.com");
    assert_eq!(d.remote_cseq, Some(10));
    // Our first request starts the local sequence.
    let bye = d.request(Method::Bye, &via()).unwrap();
    assert_eq!(bye.cseq().unwrap().seq, 1);
    assert_eq!(bye.from_tag().unwrap(), Some("uas-tag"));
    assert_eq!(bye.to_tag().unwrap(), Some("9fxced76sl"));
    assert_eq!(
        bye.request_uri(),
        Some("sip:alice@pc33.atlanta.example.com")
    );
    // §12.2.2: lower CSeq → 500; equal (ACK) and higher accepted.
    let mut ack = req.clone();
    ack.set_header("CSeq", "10 ACK");
    assert_eq!(d.on_request(&ack), Ok(()));
    let mut old = req.clone();
    old.set_header("CSeq", "9 INFO");
    let err = d.on_request(&old).unwrap_err();
    assert_eq!(err, DialogError::CSeqOutOfOrder { got: 9, remote: 10 });
    assert_eq!(err.status(), 500);
    let mut reinv = req.clone();
    reinv.set_header("CSeq", "11 INVITE");
    reinv.set_header("Contact", "<sip:alice@203.0.113.50>");
    assert_eq!(d.on_request(&reinv), Ok(()));
    assert_eq!(d.remote_cseq, Some(11));
    d.accept_target_refresh(&reinv);
    assert_eq!(d.remote_target, "sip:alice@203.0.113.50");
}

#[test]
fn table_finds_dialogs_from_both_directions() {
    let mut t = DialogTable::new();
    let req = invite();
    let uas = Dialog::from_uas(&req, "uas-tag", "<sip:sbc@192.0.2.1>", false).unwrap();
    let id = t.insert(uas);
    let mut in_dialog = req.clone();
    in_dialog.set_header("To", "Bob <sip:bob@biloxi.example.com>;tag=uas-tag");
    in_dialog.set_header("CSeq", "11 BYE");
    assert_eq!(
        t.for_request(&in_dialog).map(|d| d.id.clone()),
        Some(id.clone())
    );
    let uac = Dialog::from_uac(&req, &response(200, "<sip:b@h>", &[])).unwrap();
    t.insert(uac);
    let ok = response(200, "<sip:b@h>", &[]);
    assert!(t.for_response(&ok).is_some());
    assert_eq!(t.len(), 2);
    t.get_mut(&id).unwrap().terminate();
    assert_eq!(t.purge_terminated(), 1);
    assert_eq!(t.counters(), (2, 1));
}

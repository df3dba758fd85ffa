//! Blind transfer (RFC 3515 REFER from the B leg, as Teams Direct Routing
//! sends it): 202, NOTIFY sipfrag progress, new leg, media re-anchored onto
//! the target, referrer BYE'd, segment CDR `Transferred`; failing target.

#[path = "b2bua_harness.rs"]
mod harness;

use harness::*;
use portcullis_engine::b2bua::EndReason;
use portcullis_engine::config::{RedirectMode, RouteConfig};
use portcullis_engine::dialog::Dialog;
use portcullis_engine::transaction::{Method, PeerAddr, SipMsg, Transport, TxId};

/// b1 calling 7xx goes to b2 (the transfer target).
fn h() -> H {
    H::with(|c| {
        c.routes.insert(
            0,
            RouteConfig {
                name: "xfer".into(),
                from_trunks: vec!["b1".into()],
                called_prefix: "7".into(),
                strip: 0,
                prepend: String::new(),
                targets: vec!["b2".into()],
                redirect: RedirectMode::Relay,
            },
        );
    })
}

fn refer(h: &mut H, db: &mut Dialog, refer_to: &str) -> (TxId, SipMsg) {
    let via = h.b1.via();
    let mut req = db.request(Method::Refer, &via).unwrap();
    req.push_header("Refer-To", refer_to);
    req.push_header("Referred-By", "<sip:teams@b1>");
    let now = h.now;
    let tx =
        h.b1.layer
            .send_request(
                now,
                PeerAddr {
                    transport: Transport::Udp,
                    addr: sa(SBC),
                    conn: None,
                },
                req.clone(),
            )
            .unwrap();
    h.pump();
    (tx, req)
}

fn notify_frags(p: &Peer) -> Vec<String> {
    p.requests("NOTIFY")
        .into_iter()
        .map(|(_, n)| {
            assert!(n.header("Event").unwrap().starts_with("refer"));
            assert!(n.header("Subscription-State").is_some());
            assert!(n
                .header("Content-Type")
                .unwrap()
                .starts_with("message/sipfrag"));
            String::from_utf8_lossy(n.body()).trim().to_owned()
        })
        .collect()
}

#[test]
fn blind_transfer_from_b_leaves_a_talking_to_target() {
    let mut h = h();
    let (mut da, mut db, _atx, _ainv) = h.answered();
    refer(&mut h, &mut db, "<sip:777@teams.example.com>");
    assert!(h.b1.statuses().contains(&202), "{:?}", h.b1.statuses());
    assert_eq!(notify_frags(&h.b1), vec!["SIP/2.0 100 Trying"]);
    let (ctx, cinv) = h.b2.last_request("INVITE");
    assert!(
        cinv.header("To").unwrap().contains("777"),
        "{:?}",
        cinv.header("To")
    );
    // The offer toward the target carries our B-side port, not A's address.
    let body = String::from_utf8_lossy(cinv.body()).into_owned();
    assert!(
        body.contains(MEDIA_IP) && !body.contains("192.168.1.10"),
        "{body}"
    );
    assert!(h.b1.requests("BYE").is_empty());
    let now = h.now;
    h.b2.respond(
        now,
        ctx,
        &cinv,
        200,
        "ctag",
        Some(&sdp("172.16.0.30", 30_000, "")),
    );
    h.pump();
    assert!(!h.b2.acks().is_empty(), "target ACKed");
    assert_eq!(
        notify_frags(&h.b1),
        vec!["SIP/2.0 100 Trying", "SIP/2.0 200 OK"]
    );
    assert_eq!(h.b1.requests("BYE").len(), 1, "referrer BYE'd");
    let (_, a_params, b_params) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(b_params.peer_rtp, Some(sa("172.16.0.30:30000")));
    assert_eq!(a_params.peer_rtp, Some(sa("192.168.1.10:10000")));
    assert!(h.sbc.media().released.is_empty(), "allocation kept");
    let cdrs = h.cdrs();
    assert_eq!(cdrs.len(), 1);
    assert_eq!(cdrs[0].end_reason, EndReason::Transferred);
    assert_eq!(cdrs[0].b_leg.as_ref().unwrap().remote, sa(B1));
    assert_eq!(h.sbc.active_calls(), 1);
    // A hangs up: the BYE now reaches the target.
    let now = h.now;
    h.a.send_in_dialog(now, &mut da, Method::Bye, None);
    h.pump();
    assert_eq!(h.b2.requests("BYE").len(), 1);
    let cdrs = h.cdrs();
    assert_eq!(cdrs.len(), 2);
    assert_eq!(cdrs[1].b_leg.as_ref().unwrap().remote, sa(B2));
    assert_eq!(h.sbc.active_calls(), 0);
}

#[test]
fn transfer_to_busy_target_keeps_the_call() {
    let mut h = h();
    let (_da, mut db, _atx, _ainv) = h.answered();
    refer(&mut h, &mut db, "<sip:777@teams.example.com>");
    let (ctx, cinv) = h.b2.last_request("INVITE");
    let now = h.now;
    h.b2.respond(now, ctx, &cinv, 486, "ctag", None);
    h.pump();
    let frags = notify_frags(&h.b1);
    assert_eq!(frags.len(), 2);
    assert!(frags[1].starts_with("SIP/2.0 486"), "{frags:?}");
    assert!(h.b1.requests("BYE").is_empty());
    assert!(h.a.requests("BYE").is_empty());
    assert_eq!(h.sbc.active_calls(), 1);
    assert!(h.cdrs().is_empty());
    let (_, _, b_params) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(b_params.peer_rtp, Some(sa("172.16.0.20:20000")));
    // The original dialog still works: b1 can hang up normally.
    let now = h.now;
    h.b1.send_in_dialog(now, &mut db, Method::Bye, None);
    h.pump();
    assert_eq!(h.a.requests("BYE").len(), 1);
}

#[test]
fn refer_without_target_or_from_a_is_refused() {
    let mut h = h();
    let (mut da, mut db, _atx, _ainv) = h.answered();
    refer(&mut h, &mut db, "<sip:teams.example.com>");
    assert!(h.b1.statuses().contains(&400), "{:?}", h.b1.statuses());
    let now = h.now;
    h.a.send_in_dialog(now, &mut da, Method::Refer, None);
    h.pump();
    assert!(h.a.statuses().contains(&501), "{:?}", h.a.statuses());
    assert_eq!(h.sbc.active_calls(), 1);
}

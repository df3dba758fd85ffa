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

/// The transfer target (b2) answers the transfer INVITE `ctx`/`cinv` with 200 and its
/// SDP at 172.16.0.30:30000.
fn target_answers(h: &mut H, ctx: TxId, cinv: &SipMsg) {
    let now = h.now;
    h.b2.respond(
        now,
        ctx,
        cinv,
        200,
        "ctag",
        Some(&sdp("172.16.0.30", 30_000, "")),
    );
    h.pump();
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
    target_answers(&mut h, ctx, &cinv);
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
fn refer_without_target_is_refused() {
    let mut h = h();
    let (mut da, mut db, _atx, _ainv) = h.answered();
    refer(&mut h, &mut db, "<sip:teams.example.com>");
    assert!(h.b1.statuses().contains(&400), "{:?}", h.b1.statuses());
    // A REFER from A without Refer-To: 400 too (never 501).
    let now = h.now;
    h.a.send_in_dialog(now, &mut da, Method::Refer, None);
    h.pump();
    assert!(h.a.statuses().contains(&400), "{:?}", h.a.statuses());
    assert!(!h.a.statuses().contains(&501), "{:?}", h.a.statuses());
    assert_eq!(h.sbc.active_calls(), 1);
}

/// Sends `req` from `p` to the SBC.
fn send(p: &mut Peer, now: portcullis_engine::time::Timestamp, req: SipMsg) -> TxId {
    p.layer
        .send_request(
            now,
            PeerAddr {
                transport: Transport::Udp,
                addr: sa(SBC),
                conn: None,
            },
            req,
        )
        .unwrap()
}

/// An in-dialog REFER from `p` with extra headers.
fn refer_from(
    p: &mut Peer,
    now: portcullis_engine::time::Timestamp,
    d: &mut Dialog,
    refer_to: &str,
) {
    let via = p.via();
    let mut req = d.request(Method::Refer, &via).unwrap();
    req.push_header("Refer-To", refer_to);
    send(p, now, req);
}

/// `s` escaped for a URI header value (RFC 3261 §19.1.1).
fn esc(s: &str) -> String {
    s.replace('%', "%25")
        .replace('@', "%40")
        .replace(';', "%3B")
        .replace('=', "%3D")
}

fn body(m: &SipMsg) -> String {
    String::from_utf8_lossy(m.body()).into_owned()
}

/// The `o=` session id of an SDP body.
fn sess_id(m: &SipMsg) -> String {
    body(m)
        .lines()
        .find_map(|l| l.strip_prefix("o="))
        .and_then(|o| o.split(' ').nth(1))
        .unwrap()
        .to_owned()
}

#[test]
fn blind_transfer_from_a_leaves_b_talking_to_target() {
    // A calling 8xx goes to b2.
    let mut h = H::with(|c| {
        c.routes.insert(
            0,
            RouteConfig {
                name: "a-xfer".into(),
                from_trunks: vec!["a".into()],
                called_prefix: "8".into(),
                strip: 0,
                prepend: String::new(),
                targets: vec!["b2".into()],
                redirect: RedirectMode::Relay,
            },
        );
    });
    let (mut da, mut db, _atx, _ainv) = h.answered();
    let now = h.now;
    refer_from(&mut h.a, now, &mut da, "<sip:888@pbx.example.com>");
    h.pump();
    assert!(h.a.statuses().contains(&202), "{:?}", h.a.statuses());
    assert_eq!(notify_frags(&h.a), vec!["SIP/2.0 100 Trying"]);
    let (ctx, cinv) = h.b2.last_request("INVITE");
    assert!(cinv.header("To").unwrap().contains("888"));
    // The remaining party (B, number 100) calls the target.
    assert!(
        cinv.header("From").unwrap().contains("sip:100@"),
        "{:?}",
        cinv.header("From")
    );
    // Offered B's SDP on our A-side port (the new leg takes A's place).
    let b = body(&cinv);
    assert!(b.contains("m=audio 40002 "), "{b}");
    assert!(b.contains(MEDIA_IP) && !b.contains("172.16.0.20"), "{b}");
    target_answers(&mut h, ctx, &cinv);
    assert!(!h.b2.acks().is_empty(), "target ACKed");
    assert_eq!(
        notify_frags(&h.a),
        vec!["SIP/2.0 100 Trying", "SIP/2.0 200 OK"]
    );
    assert_eq!(h.a.requests("BYE").len(), 1, "referrer BYE'd");
    assert!(h.b1.requests("BYE").is_empty());
    let (_, a_params, b_params) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(a_params.peer_rtp, Some(sa("172.16.0.30:30000")));
    assert_eq!(b_params.peer_rtp, Some(sa("172.16.0.20:20000")));
    assert!(h.sbc.media().released.is_empty(), "allocation kept");
    let cdrs = h.cdrs();
    assert_eq!(cdrs.len(), 1);
    assert_eq!(cdrs[0].end_reason, EndReason::Transferred);
    assert_eq!(cdrs[0].a_leg.remote, sa(A));
    // B hangs up: the BYE reaches the target.
    let now = h.now;
    h.b1.send_in_dialog(now, &mut db, Method::Bye, None);
    h.pump();
    assert_eq!(h.b2.requests("BYE").len(), 1);
    let cdrs = h.cdrs();
    assert_eq!(cdrs.len(), 2);
    assert_eq!(cdrs[1].a_leg.remote, sa(B2));
    assert_eq!(h.sbc.active_calls(), 0);
}

#[test]
fn refer_with_foreign_replaces_passes_it_to_the_target() {
    let mut h = h();
    let (_da, mut db, _atx, _ainv) = h.answered();
    let rep = "other@pbx.example.com;to-tag=t1;from-tag=f1";
    refer(
        &mut h,
        &mut db,
        &format!("<sip:777@teams.example.com?Replaces={}>", esc(rep)),
    );
    assert!(h.b1.statuses().contains(&202), "{:?}", h.b1.statuses());
    let (_, cinv) = h.b2.last_request("INVITE");
    assert_eq!(cinv.header("Replaces"), Some(rep));
    assert!(cinv
        .header_values("Require")
        .any(|v| v.trim() == "replaces"));
}

#[test]
fn refer_with_replaces_of_our_call_id_but_no_such_dialog_is_481() {
    let mut h = h();
    let (_da, mut db, _atx, _ainv) = h.answered();
    let (_, binv) = h.b1.last_request("INVITE");
    let rep = format!("{};to-tag=nope;from-tag=nope2", binv.call_id().unwrap());
    refer(
        &mut h,
        &mut db,
        &format!("<sip:777@teams.example.com?Replaces={}>", esc(&rep)),
    );
    assert!(h.b1.statuses().contains(&481), "{:?}", h.b1.statuses());
    assert!(h.b2.requests("INVITE").is_empty());
    // Malformed Replaces: 400.
    refer(
        &mut h,
        &mut db,
        "<sip:777@teams.example.com?Replaces=abc%3Bto-tag%3D1>",
    );
    assert!(h.b1.statuses().contains(&400), "{:?}", h.b1.statuses());
    assert_eq!(h.sbc.active_calls(), 1);
}

/// Call 1 (a → b1 "100", answered, held by b1) and call 2 (b1 → a "200",
/// answered): b1 is Teams consulting. Returns (da1, db1, call-2 dialog of b1,
/// call-2 INVITE as a got it).
fn consult(h: &mut H) -> (Dialog, Dialog, Dialog, SipMsg) {
    let (da, mut db, _atx, _ainv) = h.answered();
    // b1 holds call 1.
    let now = h.now;
    let (htx, _) = h.b1.send_in_dialog(
        now,
        &mut db,
        Method::Invite,
        Some(&sdp("172.16.0.20", 20_000, "a=sendonly\r\n")),
    );
    h.pump();
    let (rtx, rinv) = h.a.last_request("INVITE");
    assert!(body(&rinv).contains("a=sendonly"));
    let atag = da.id.local_tag.clone();
    let now = h.now;
    h.a.respond(
        now,
        rtx,
        &rinv,
        200,
        &atag,
        Some(&sdp("192.168.1.10", 10_000, "a=recvonly\r\n")),
    );
    h.pump();
    let ok =
        h.b1.responses()
            .into_iter()
            .rev()
            .find(|r| r.status() == Some(200) && r.cseq().unwrap().method == Method::Invite)
            .unwrap();
    let via = h.b1.via();
    let ack = db.ack(ok.cseq().unwrap().seq, &via);
    h.b1.layer.send_ack(
        Some(htx),
        PeerAddr {
            transport: Transport::Udp,
            addr: sa(SBC),
            conn: None,
        },
        &ack,
    );
    h.pump();
    // Call 2: b1 consults 200 on a.
    let now = h.now;
    let (c2tx, c2inv) =
        h.b1.invite(now, "200", Some(&sdp("172.16.0.21", 21_000, "")));
    h.pump();
    let (ytx, yinv) = h.a.last_request("INVITE");
    assert!(yinv.header("To").unwrap().contains("200"));
    let now = h.now;
    h.a.respond(
        now,
        ytx,
        &yinv,
        200,
        "ytag",
        Some(&sdp("192.168.1.11", 11_000, "")),
    );
    h.pump();
    let c2ok =
        h.b1.responses()
            .into_iter()
            .find(|r| r.status() == Some(200) && r.call_id().ok() == c2inv.call_id().ok())
            .expect("call 2 answered");
    let d2 = h.b1.ack(c2tx, &c2inv, &c2ok, None);
    h.pump();
    assert_eq!(h.sbc.active_calls(), 2);
    (da, db, d2, yinv)
}

/// Refer-To naming call 2's dialog as we see it (to-tag ours, from-tag b1's).
fn replaces_of(d2: &Dialog) -> String {
    let rep = format!(
        "{};to-tag={};from-tag={}",
        d2.id.call_id, d2.id.remote_tag, d2.id.local_tag
    );
    format!("<sip:200@{SBC}?Replaces={}>", esc(&rep))
}

#[test]
fn attended_transfer_of_two_calls_through_us_joins_them_locally() {
    let mut h = h();
    let (mut da, mut db, d2, yinv) = consult(&mut h);
    let n_inv = h.a.requests("INVITE").len();
    refer(&mut h, &mut db, &replaces_of(&d2));
    assert!(h.b1.statuses().contains(&202), "{:?}", h.b1.statuses());
    // The consulted party (a's call-2 dialog) is re-INVITEd toward call 1's B port,
    // off hold, with the o= session it knows continued.
    let invs = h.a.requests("INVITE");
    assert_eq!(invs.len(), n_inv + 1);
    let (jtx, jinv) = invs.last().unwrap().clone();
    assert_eq!(jinv.call_id().unwrap(), yinv.call_id().unwrap());
    assert!(jinv.to_tag().unwrap().is_some(), "in dialog");
    let jb = body(&jinv);
    assert!(jb.contains("m=audio 60002 "), "{jb}");
    assert!(
        jb.contains("a=sendrecv") && !jb.contains("recvonly"),
        "{jb}"
    );
    assert_eq!(sess_id(&jinv), sess_id(&yinv));
    assert!(
        h.b1.requests("BYE").is_empty(),
        "nothing released before the answer"
    );
    let now = h.now;
    h.a.respond(
        now,
        jtx,
        &jinv,
        200,
        "ytag",
        Some(&sdp("192.168.1.11", 11_002, "")),
    );
    h.pump();
    assert_eq!(
        notify_frags(&h.b1),
        vec!["SIP/2.0 100 Trying", "SIP/2.0 200 OK"]
    );
    // Both of b1's dialogs are released.
    let byes = h.b1.requests("BYE");
    assert_eq!(byes.len(), 2, "referrer and replaced leg BYE'd");
    let ids: Vec<&str> = byes.iter().map(|(_, b)| b.call_id().unwrap()).collect();
    assert!(ids.contains(&d2.id.call_id.as_str()), "{ids:?}");
    assert_eq!(h.sbc.active_calls(), 1);
    let cdrs = h.cdrs();
    assert_eq!(cdrs.len(), 2);
    assert!(cdrs.iter().all(|c| c.end_reason == EndReason::Transferred));
    // Call 2's media is released; call 1's bridges the two remaining parties.
    let media = h.sbc.media();
    assert_eq!(media.released.len(), 1);
    let id1 = media.updates[0].0;
    assert!(!media.released.contains(&id1));
    let (_, a_p, b_p) = media
        .updates
        .iter()
        .rev()
        .find(|(id, _, _)| *id == id1)
        .unwrap()
        .clone();
    assert_eq!(a_p.peer_rtp, Some(sa("192.168.1.10:10000")));
    assert_eq!(b_p.peer_rtp, Some(sa("192.168.1.11:11002")));
    // The first party was left on hold by b1: it is re-INVITEd sendrecv.
    let (utx, uinv) = h.a.last_request("INVITE");
    assert_eq!(uinv.call_id().unwrap(), da.id.call_id);
    let ub = body(&uinv);
    assert!(
        ub.contains("a=sendrecv") && ub.contains("m=audio 40002 "),
        "{ub}"
    );
    let atag = da.id.local_tag.clone();
    let now = h.now;
    h.a.respond(
        now,
        utx,
        &uinv,
        200,
        &atag,
        Some(&sdp("192.168.1.10", 10_004, "")),
    );
    h.pump();
    let (_, a_p, _) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(a_p.peer_rtp, Some(sa("192.168.1.10:10004")));
    // The first party hangs up: the BYE reaches the consulted party's dialog.
    let now = h.now;
    h.a.send_in_dialog(now, &mut da, Method::Bye, None);
    h.pump();
    let byes = h.a.requests("BYE");
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].1.call_id().unwrap(), yinv.call_id().unwrap());
    assert_eq!(h.sbc.active_calls(), 0);
    assert_eq!(h.cdrs().len(), 3);
}

#[test]
fn attended_transfer_refused_by_the_consulted_party_keeps_both_calls() {
    let mut h = h();
    let (_da, mut db, d2, _yinv) = consult(&mut h);
    let updates_before = h.sbc.media().updates.len();
    refer(&mut h, &mut db, &replaces_of(&d2));
    let (jtx, jinv) = h.a.last_request("INVITE");
    let now = h.now;
    h.a.respond(now, jtx, &jinv, 488, "ytag", None);
    h.pump();
    let frags = notify_frags(&h.b1);
    assert_eq!(frags.len(), 2);
    assert!(frags[1].starts_with("SIP/2.0 488"), "{frags:?}");
    assert!(h.b1.requests("BYE").is_empty());
    assert_eq!(h.sbc.active_calls(), 2);
    assert!(h.cdrs().is_empty());
    assert!(h.sbc.media().released.is_empty());
    assert_eq!(
        h.sbc.media().updates.len(),
        updates_before,
        "data plane untouched"
    );
    // Call 1 still works end to end: b1 hangs up, a gets the BYE.
    let now = h.now;
    h.b1.send_in_dialog(now, &mut db, Method::Bye, None);
    h.pump();
    assert_eq!(h.a.requests("BYE").len(), 1);
    assert_eq!(h.sbc.active_calls(), 1);
}

#[test]
fn invite_with_replaces_takes_over_the_named_leg() {
    let mut h = h();
    let (mut da, _db, _atx, _ainv) = h.answered();
    let (_, binv) = h.b1.last_request("INVITE");
    let rep = format!(
        "{};to-tag={};from-tag=btag",
        binv.call_id().unwrap(),
        binv.from_tag().unwrap().unwrap()
    );
    let now = h.now;
    let (ptx, pinv) = h.b2.invite_with(
        now,
        "100",
        Some(&sdp("172.16.0.40", 40_000, "")),
        &[("Replaces", &rep), ("Require", "replaces")],
    );
    h.pump();
    // a (the party on the other side) gets the new party's offer on our A port.
    let (rtx, rinv) = h.a.last_request("INVITE");
    assert_eq!(rinv.call_id().unwrap(), da.id.call_id);
    let rb = body(&rinv);
    assert!(
        rb.contains("m=audio 40002 ") && !rb.contains("172.16.0.40"),
        "{rb}"
    );
    let atag = da.id.local_tag.clone();
    let now = h.now;
    h.a.respond(
        now,
        rtx,
        &rinv,
        200,
        &atag,
        Some(&sdp("192.168.1.10", 10_006, "")),
    );
    h.pump();
    let ok =
        h.b2.responses()
            .into_iter()
            .find(|r| r.status() == Some(200))
            .expect("new party answered");
    let ob = body(&ok);
    assert!(
        ob.contains("m=audio 60002 ") && ob.contains(MEDIA_IP),
        "{ob}"
    );
    assert_eq!(h.b1.requests("BYE").len(), 1, "replaced leg BYE'd");
    let (_, a_p, b_p) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(a_p.peer_rtp, Some(sa("192.168.1.10:10006")));
    assert_eq!(b_p.peer_rtp, Some(sa("172.16.0.40:40000")));
    let _d = h.b2.ack(ptx, &pinv, &ok, None);
    h.pump();
    let cdrs = h.cdrs();
    assert_eq!(cdrs.len(), 1);
    assert_eq!(cdrs[0].b_leg.as_ref().unwrap().remote, sa(B1));
    // a hangs up: the new party gets the BYE.
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
fn invite_with_unknown_or_bad_replaces_is_refused_clearly() {
    let mut h = h();
    let _ = h.answered();
    let now = h.now;
    h.b2.invite_with(
        now,
        "100",
        Some(&sdp("172.16.0.40", 40_000, "")),
        &[("Replaces", "nope@x;to-tag=1;from-tag=2")],
    );
    h.pump();
    assert!(h.b2.statuses().contains(&481), "{:?}", h.b2.statuses());
    let now = h.now;
    h.b2.invite_with(
        now,
        "100",
        Some(&sdp("172.16.0.40", 40_000, "")),
        &[("Replaces", "nope@x;to-tag=1")],
    );
    h.pump();
    assert!(h.b2.statuses().contains(&400), "{:?}", h.b2.statuses());
    assert!(!h.b2.statuses().contains(&501));
    assert_eq!(h.sbc.active_calls(), 1);
    assert!(h.a.requests("INVITE").is_empty(), "nobody re-INVITEd");
    assert!(h.b1.requests("BYE").is_empty());
}

#[test]
fn attended_transfer_with_teams_as_caller_moves_a_caller_leg() {
    // Call 1: b1 (Teams) calls 555 on a. Call 2: a calls 100, routed to b1.
    // b1 transfers call 1's party to call 2's: the caller of call 2 moves into
    // call 1's A slot (A leg to A leg across calls).
    let mut h = h();
    let now = h.now;
    let (c1tx, c1inv) =
        h.b1.invite(now, "555", Some(&sdp("172.16.0.20", 20_000, "")));
    h.pump();
    let (xtx, xinv) = h.a.last_request("INVITE");
    let now = h.now;
    h.a.respond(
        now,
        xtx,
        &xinv,
        200,
        "xtag",
        Some(&sdp("192.168.1.10", 10_000, "")),
    );
    h.pump();
    let ok1 =
        h.b1.responses()
            .into_iter()
            .find(|r| r.status() == Some(200))
            .unwrap();
    let mut d1 = h.b1.ack(c1tx, &c1inv, &ok1, None);
    h.pump();
    let now = h.now;
    let (c2tx, c2inv) =
        h.a.invite(now, "100", Some(&sdp("192.168.1.11", 11_000, "")));
    h.pump();
    let (ttx, tinv) = h.b1.last_request("INVITE");
    assert!(tinv.header("To").unwrap().contains("100"));
    let now = h.now;
    h.b1.respond(
        now,
        ttx,
        &tinv,
        200,
        "t2",
        Some(&sdp("172.16.0.21", 21_000, "")),
    );
    h.pump();
    let ok2 =
        h.a.responses()
            .into_iter()
            .find(|r| r.status() == Some(200) && r.call_id().ok() == c2inv.call_id().ok())
            .unwrap();
    let _ = h.a.ack(c2tx, &c2inv, &ok2, None);
    h.pump();
    let d2 = Dialog::from_uas(&tinv, "t2", &h.b1.contact(), true).unwrap();
    assert_eq!(h.sbc.active_calls(), 2);
    refer(&mut h, &mut d1, &replaces_of(&d2));
    assert!(h.b1.statuses().contains(&202), "{:?}", h.b1.statuses());
    let (jtx, jinv) = h.a.last_request("INVITE");
    assert_eq!(jinv.call_id().unwrap(), c2inv.call_id().unwrap());
    let jb = body(&jinv);
    assert!(jb.contains("m=audio 40002 "), "call 1's A port: {jb}");
    assert_eq!(sess_id(&jinv), sess_id(&ok2), "o= of call 2 continued");
    let ytag = c2inv.from_tag().unwrap().unwrap().to_owned();
    let now = h.now;
    h.a.respond(
        now,
        jtx,
        &jinv,
        200,
        &ytag,
        Some(&sdp("192.168.1.11", 11_002, "")),
    );
    h.pump();
    assert_eq!(
        notify_frags(&h.b1),
        vec!["SIP/2.0 100 Trying", "SIP/2.0 200 OK"]
    );
    assert_eq!(h.b1.requests("BYE").len(), 2);
    assert_eq!(h.sbc.active_calls(), 1);
    let (_, a_p, b_p) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(a_p.peer_rtp, Some(sa("192.168.1.11:11002")));
    assert_eq!(b_p.peer_rtp, Some(sa("192.168.1.10:10000")));
    // Call 1's callee hangs up: the BYE goes to call 2's caller dialog.
    let mut dx = Dialog::from_uas(&xinv, "xtag", &h.a.contact(), true).unwrap();
    let now = h.now;
    h.a.send_in_dialog(now, &mut dx, Method::Bye, None);
    h.pump();
    let byes = h.a.requests("BYE");
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].1.call_id().unwrap(), c2inv.call_id().unwrap());
    assert_eq!(h.sbc.active_calls(), 0);
    assert_eq!(h.cdrs().len(), 3);
}

#[test]
fn transfer_fails_over_to_the_next_target_on_503() {
    // b1 calling 6xx goes to b2, then a.
    let mut h = H::with(|c| {
        c.routes.insert(
            0,
            RouteConfig {
                name: "xfer2".into(),
                from_trunks: vec!["b1".into()],
                called_prefix: "6".into(),
                strip: 0,
                prepend: String::new(),
                targets: vec!["b2".into(), "a".into()],
                redirect: RedirectMode::Relay,
            },
        );
    });
    let (_da, mut db, _atx, _ainv) = h.answered();
    refer(&mut h, &mut db, "<sip:666@teams.example.com>");
    let (ctx, cinv) = h.b2.last_request("INVITE");
    let now = h.now;
    h.b2.respond(now, ctx, &cinv, 503, "ctag", None);
    h.pump();
    assert_eq!(
        notify_frags(&h.b1),
        vec!["SIP/2.0 100 Trying"],
        "no final yet"
    );
    let invs = h.a.requests("INVITE");
    let (ttx, tinv) = invs.last().unwrap().clone();
    assert!(
        tinv.header("To").unwrap().contains("666"),
        "next target tried"
    );
    let now = h.now;
    h.a.respond(
        now,
        ttx,
        &tinv,
        200,
        "ttag",
        Some(&sdp("192.168.1.30", 12_000, "")),
    );
    h.pump();
    assert_eq!(
        notify_frags(&h.b1),
        vec!["SIP/2.0 100 Trying", "SIP/2.0 200 OK"]
    );
    assert_eq!(h.b1.requests("BYE").len(), 1);
    let (_, _, b_p) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(b_p.peer_rtp, Some(sa("192.168.1.30:12000")));
    // A 4xx (not 408) does not fail over: covered by transfer_to_busy_target_keeps_the_call.
}

#[test]
fn transfer_legs_hold_trunk_slots() {
    // b2 takes one call at a time; b1 and a unlimited.
    let mut h = H::with(|c| {
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
        c.trunks[2].max_calls = Some(1);
        c.trunks[1].max_calls = Some(1);
    });
    let (mut da, mut db, _atx, _ainv) = h.answered();
    refer(&mut h, &mut db, "<sip:777@teams.example.com>");
    let (ctx, cinv) = h.b2.last_request("INVITE");
    target_answers(&mut h, ctx, &cinv);
    assert_eq!(notify_frags(&h.b1).len(), 2);
    // b2's only slot is taken by the transferred call: a second transfer
    // toward b2 from a new b1 call fails with 503.
    let now = h.now;
    let (c2tx, c2inv) =
        h.b1.invite(now, "300", Some(&sdp("172.16.0.21", 21_000, "")));
    h.pump();
    let (ytx, yinv) = h.a.last_request("INVITE");
    assert!(
        yinv.header("To").unwrap().contains("300"),
        "b1's slot was given back"
    );
    let now = h.now;
    h.a.respond(
        now,
        ytx,
        &yinv,
        200,
        "ytag",
        Some(&sdp("192.168.1.11", 11_000, "")),
    );
    h.pump();
    let ok =
        h.b1.responses()
            .into_iter()
            .find(|r| r.status() == Some(200) && r.call_id().ok() == c2inv.call_id().ok())
            .unwrap();
    let mut d2 = h.b1.ack(c2tx, &c2inv, &ok, None);
    h.pump();
    let n_b2 = h.b2.requests("INVITE").len();
    let now = h.now;
    refer_from(&mut h.b1, now, &mut d2, "<sip:778@teams.example.com>");
    h.pump();
    assert_eq!(h.b2.requests("INVITE").len(), n_b2, "b2 at its limit");
    let frags: Vec<String> =
        h.b1.requests("NOTIFY")
            .into_iter()
            .filter(|(_, n)| n.call_id().ok() == Some(d2.id.call_id.as_str()))
            .map(|(_, n)| String::from_utf8_lossy(n.body()).trim().to_owned())
            .collect();
    assert_eq!(frags.len(), 2, "{frags:?}");
    assert!(frags[1].starts_with("SIP/2.0 503"), "{frags:?}");
    // The first call ends: b2's slot is free again, a new call reaches it.
    let now = h.now;
    h.a.send_in_dialog(now, &mut da, Method::Bye, None);
    h.pump();
    assert_eq!(h.b2.requests("BYE").len(), 1);
    let now = h.now;
    refer_from(&mut h.b1, now, &mut d2, "<sip:779@teams.example.com>");
    h.pump();
    assert_eq!(h.b2.requests("INVITE").len(), n_b2 + 1, "slot released");
}

#[test]
fn failed_transfer_restores_the_referrer_sides_srtp_key() {
    // b1 speaks SRTP, the target b2 plain RTP: the attempt changes our key
    // state toward side B, the failure must put b1's key back.
    let mut h = H::with(|c| {
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
        c.trunks[1].media = portcullis_engine::config::MediaMode::Srtp;
    });
    let (mut da, mut db, _atx, _ainv) = h.answered();
    let key = |m: &SipMsg| {
        body(m)
            .lines()
            .find(|l| l.starts_with("a=crypto:"))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no crypto in {}", body(m)))
    };
    let first = key(&h.b1.last_request("INVITE").1);
    let srtp_out_before = h.sbc.media().updates.last().unwrap().2.srtp_out.clone();
    assert!(srtp_out_before.is_some());
    refer(&mut h, &mut db, "<sip:777@teams.example.com>");
    let (ctx, cinv) = h.b2.last_request("INVITE");
    assert!(!body(&cinv).contains("a=crypto"), "plain RTP toward b2");
    let now = h.now;
    h.b2.respond(now, ctx, &cinv, 486, "ctag", None);
    h.pump();
    // A re-INVITEs: b1 gets the same key as before the attempt.
    let now = h.now;
    h.a.send_in_dialog(
        now,
        &mut da,
        Method::Invite,
        Some(&sdp("192.168.1.10", 10_000, "")),
    );
    h.pump();
    let again = key(&h.b1.last_request("INVITE").1);
    assert_eq!(first, again);
    let (_, _, b_p) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(b_p.srtp_out, srtp_out_before);
}

//! Blind transfer (RFC 3515 REFER from the B leg, as Teams Direct Routing
//! sends it): 202, NOTIFY sipfrag progress, new leg, media re-anchored onto
//! the target, referrer BYE'd, segment CDR `Transferred`; failing target.

#[path = "b2bua_harness.rs"]
mod harness;

use harness::*;
use portcullis_engine::b2bua::EndReason;
use portcullis_engine::config::{RedirectMode, RouteConfig};
use portcullis_engine::dialog::Dialog;
use portcullis_engine::transaction::{Method, SipMsg, TxId};

/// A route `name` from trunk `from` for numbers starting with `prefix` to
/// `targets`, relaying redirects.
fn relay_route(name: &str, from: &str, prefix: &str, targets: &[&str]) -> RouteConfig {
    RouteConfig {
        name: name.into(),
        from_trunks: vec![from.into()],
        called_prefix: prefix.into(),
        strip: 0,
        prepend: String::new(),
        targets: targets.iter().map(|&t| t.into()).collect(),
        redirect: RedirectMode::Relay,
    }
}

/// b1 calling 7xx goes to b2 (the transfer target).
fn h() -> H {
    H::with(|c| {
        c.routes.insert(0, relay_route("xfer", "b1", "7", &["b2"]));
    })
}

fn refer(h: &mut H, db: &mut Dialog, refer_to: &str) -> (TxId, SipMsg) {
    let via = h.b1.via();
    let mut req = db.request(Method::Refer, &via).unwrap();
    req.push_header("Refer-To", refer_to);
    req.push_header("Referred-By", "<sip:teams@b1>");
    let now = h.now;
    let tx = h.b1.send(now, req.clone());
    h.pump();
    (tx, req)
}

/// The transfer target (b2) answers the transfer INVITE `ctx`/`cinv` with 200 and its
/// SDP at 172.16.0.30:30000.
fn target_answers(h: &mut H, ctx: TxId, cinv: &SipMsg) {
    let answer = sdp("172.16.0.30", 30_000, "");
    h.reply(B2, ctx, cinv, 200, "ctag", Some(&answer));
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
    a_hangs_up_on_b2(&mut h, &mut da);
}

/// A hangs up `da`: the BYE reaches b2 (now A's peer), the second CDR's B leg is
/// b2 and no call is left.
fn a_hangs_up_on_b2(h: &mut H, da: &mut Dialog) {
    h.in_dialog(A, da, Method::Bye, None);
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
    h.reply(B2, ctx, &cinv, 486, "ctag", None);
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
    h.in_dialog(B1, &mut db, Method::Bye, None);
    assert_eq!(h.a.requests("BYE").len(), 1);
}

#[test]
fn refer_without_target_is_refused() {
    let mut h = h();
    let (mut da, mut db, _atx, _ainv) = h.answered();
    refer(&mut h, &mut db, "<sip:teams.example.com>");
    assert!(h.b1.statuses().contains(&400), "{:?}", h.b1.statuses());
    // A REFER from A without Refer-To: 400 too (never 501).
    h.in_dialog(A, &mut da, Method::Refer, None);
    assert!(h.a.statuses().contains(&400), "{:?}", h.a.statuses());
    assert!(!h.a.statuses().contains(&501), "{:?}", h.a.statuses());
    assert_eq!(h.sbc.active_calls(), 1);
}

/// An in-dialog REFER from the peer at `addr`; the network settles.
fn refer_from(h: &mut H, addr: &str, d: &mut Dialog, refer_to: &str) {
    let now = h.now;
    let p = h.peer_at(addr);
    let via = p.via();
    let mut req = d.request(Method::Refer, &via).unwrap();
    req.push_header("Refer-To", refer_to);
    p.send(now, req);
    h.pump();
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
        c.routes.insert(0, relay_route("a-xfer", "a", "8", &["b2"]));
    });
    let (mut da, mut db, _atx, _ainv) = h.answered();
    refer_from(&mut h, A, &mut da, "<sip:888@pbx.example.com>");
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
    h.in_dialog(B1, &mut db, Method::Bye, None);
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
    let hold = sdp("172.16.0.20", 20_000, "a=sendonly\r\n");
    let (htx, _) = h.in_dialog(B1, &mut db, Method::Invite, Some(&hold));
    let (rtx, rinv) = h.a.last_request("INVITE");
    assert!(body(&rinv).contains("a=sendonly"));
    let held = sdp("192.168.1.10", 10_000, "a=recvonly\r\n");
    h.reply(A, rtx, &rinv, 200, &da.id.local_tag, Some(&held));
    let ok =
        h.b1.responses()
            .into_iter()
            .rev()
            .find(|r| r.status() == Some(200) && r.cseq().unwrap().method == Method::Invite)
            .unwrap();
    h.b1.ack_reinvite(htx, &db, &ok, None);
    h.pump();
    // Call 2: b1 consults 200 on a.
    let (d2, _, yinv, _) = call(
        h,
        (B1, "200", &sdp("172.16.0.21", 21_000, "")),
        (A, "ytag", &sdp("192.168.1.11", 11_000, "")),
    );
    assert!(yinv.header("To").unwrap().contains("200"));
    assert_eq!(h.sbc.active_calls(), 2);
    (da, db, d2, yinv)
}

/// A second call: `caller` = (peer, user called, offer) sends an INVITE, the peer
/// of `callee` = (peer, to-tag, answer) gets it and answers 200, the caller ACKs.
/// Returns (caller's dialog, caller's INVITE, the INVITE the callee got, the 200
/// the caller got).
fn call(
    h: &mut H,
    caller: (&str, &str, &str),
    callee: (&str, &str, &str),
) -> (Dialog, SipMsg, SipMsg, SipMsg) {
    let (from, user, offer) = caller;
    let (to, tag, answer) = callee;
    let (tx, inv) = h.invite_from(from, user, Some(offer));
    let (rtx, rinv) = h.peer_at(to).last_request("INVITE");
    h.reply(to, rtx, &rinv, 200, tag, Some(answer));
    let ok = h
        .peer_at(from)
        .responses()
        .into_iter()
        .find(|r| r.status() == Some(200) && r.call_id().ok() == inv.call_id().ok())
        .expect("call answered");
    let d = h.peer_at(from).ack(tx, &inv, &ok, None);
    h.pump();
    (d, inv, rinv, ok)
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
    let joined = sdp("192.168.1.11", 11_002, "");
    h.reply(A, jtx, &jinv, 200, "ytag", Some(&joined));
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
    let resumed = sdp("192.168.1.10", 10_004, "");
    h.reply(A, utx, &uinv, 200, &da.id.local_tag, Some(&resumed));
    let (_, a_p, _) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(a_p.peer_rtp, Some(sa("192.168.1.10:10004")));
    // The first party hangs up: the BYE reaches the consulted party's dialog.
    h.in_dialog(A, &mut da, Method::Bye, None);
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
    h.reply(A, jtx, &jinv, 488, "ytag", None);
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
    h.in_dialog(B1, &mut db, Method::Bye, None);
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
    let answer = sdp("192.168.1.10", 10_006, "");
    h.reply(A, rtx, &rinv, 200, &da.id.local_tag, Some(&answer));
    let ok = h.b2.first_response(200).expect("new party answered");
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
    a_hangs_up_on_b2(&mut h, &mut da);
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
    let (mut d1, _, xinv, _) = call(
        &mut h,
        (B1, "555", &sdp("172.16.0.20", 20_000, "")),
        (A, "xtag", &sdp("192.168.1.10", 10_000, "")),
    );
    let (_, c2inv, tinv, ok2) = call(
        &mut h,
        (A, "100", &sdp("192.168.1.11", 11_000, "")),
        (B1, "t2", &sdp("172.16.0.21", 21_000, "")),
    );
    assert!(tinv.header("To").unwrap().contains("100"));
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
    let answer = sdp("192.168.1.11", 11_002, "");
    h.reply(A, jtx, &jinv, 200, &ytag, Some(&answer));
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
    h.in_dialog(A, &mut dx, Method::Bye, None);
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
        c.routes
            .insert(0, relay_route("xfer2", "b1", "6", &["b2", "a"]));
    });
    let (_da, mut db, _atx, _ainv) = h.answered();
    refer(&mut h, &mut db, "<sip:666@teams.example.com>");
    let (ctx, cinv) = h.b2.last_request("INVITE");
    h.reply(B2, ctx, &cinv, 503, "ctag", None);
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
    let answer = sdp("192.168.1.30", 12_000, "");
    h.reply(A, ttx, &tinv, 200, "ttag", Some(&answer));
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
        c.routes.insert(0, relay_route("xfer", "b1", "7", &["b2"]));
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
    let (mut d2, _, yinv, _) = call(
        &mut h,
        (B1, "300", &sdp("172.16.0.21", 21_000, "")),
        (A, "ytag", &sdp("192.168.1.11", 11_000, "")),
    );
    assert!(
        yinv.header("To").unwrap().contains("300"),
        "b1's slot was given back"
    );
    let n_b2 = h.b2.requests("INVITE").len();
    refer_from(&mut h, B1, &mut d2, "<sip:778@teams.example.com>");
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
    h.in_dialog(A, &mut da, Method::Bye, None);
    assert_eq!(h.b2.requests("BYE").len(), 1);
    refer_from(&mut h, B1, &mut d2, "<sip:779@teams.example.com>");
    assert_eq!(h.b2.requests("INVITE").len(), n_b2 + 1, "slot released");
}

#[test]
fn failed_transfer_restores_the_referrer_sides_srtp_key() {
    // b1 speaks SRTP, the target b2 plain RTP: the attempt changes our key
    // state toward side B, the failure must put b1's key back.
    let mut h = H::with(|c| {
        c.routes.insert(0, relay_route("xfer", "b1", "7", &["b2"]));
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
    h.reply(B2, ctx, &cinv, 486, "ctag", None);
    // A re-INVITEs: b1 gets the same key as before the attempt.
    let offer = sdp("192.168.1.10", 10_000, "");
    h.in_dialog(A, &mut da, Method::Invite, Some(&offer));
    let again = key(&h.b1.last_request("INVITE").1);
    assert_eq!(first, again);
    let (_, _, b_p) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(b_p.srtp_out, srtp_out_before);
}

//! B2BUA features: session timers, forked answers, redirects, limits, drain,
//! release_all, admin terminate, no-answer timeout.

#[path = "b2bua_harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;
use portcullis_engine::b2bua::{CallEvent, EndReason};
use portcullis_engine::config::RedirectMode;
use portcullis_engine::transaction::{make_response, Method};

#[test]
fn session_timer_refresh_by_us_on_b_and_expiry_when_a_stops() {
    let mut h = H::new();
    // A supports timers and will refresh (refresher=uac on the A leg).
    let now = h.now;
    let (atx, mut ainv) = {
        let (tx, inv) =
            h.a.invite(now, "100", Some(&sdp("192.168.1.10", 10_000, "")));
        (tx, inv)
    };
    h.pump();
    let (btx, binv) = h.b1.last_request("INVITE");
    assert_eq!(binv.header("Session-Expires"), Some("1800"));
    assert!(binv.header_values("Supported").any(|o| o == "timer"));
    // B: 90 s, we (uac) refresh.
    let now = h.now;
    let mut ok = make_response(&binv, 200, "OK", Some("btag"));
    ok.push_header("Contact", h.b1.contact());
    ok.push_header("Session-Expires", "90;refresher=uac");
    ok.push_header("Content-Type", "application/sdp");
    ok.set_body(sdp("172.16.0.20", 20_000, "").into_bytes());
    h.b1.layer.respond(now, btx, &ok).unwrap();
    h.pump();
    let r200 = h.a.first_response(200).unwrap();
    ainv.push_header("Supported", "timer");
    h.a.ack(atx, &ainv, &r200, None);
    h.pump();
    // A did not advertise timer support: no Session-Expires toward A.
    assert!(r200.header("Session-Expires").is_none());
    // At 45 s we send an UPDATE refresh on B; B answers 200.
    h.advance(Duration::from_secs(46));
    let (utx, upd) = h.b1.last_request("UPDATE");
    assert!(upd
        .header("Session-Expires")
        .unwrap()
        .starts_with("90;refresher=uac"));
    h.reply(B1, utx, &upd, 200, "btag", None);
    h.advance(Duration::from_secs(46));
    assert_eq!(h.b1.requests("UPDATE").len(), 2, "refreshed again");
    // B stops answering refreshes: 481 → call torn down (expired).
    let (utx, upd) = h.b1.last_request("UPDATE");
    h.reply(B1, utx, &upd, 481, "btag", None);
    assert_eq!(h.cdrs()[0].end_reason, EndReason::SessionExpired);
    assert_eq!(h.a.requests("BYE").len(), 1);
}

#[test]
fn session_expires_when_refresher_caller_goes_silent() {
    let mut h = H::new();
    let now = h.now;
    let via = h.a.via();
    let mut inv =
        portcullis_engine::transaction::SipMsg::request(Method::Invite, format!("sip:100@{SBC}"));
    inv.push_header("Via", via.to_string());
    inv.push_header("Max-Forwards", "70");
    inv.push_header("From", "<sip:+1@10.0.0.2>;tag=x1");
    inv.push_header("To", format!("<sip:100@{SBC}>"));
    inv.push_header("Call-ID", "se-test");
    inv.push_header("CSeq", "1 INVITE");
    inv.push_header("Contact", "<sip:a@10.0.0.2:5060>");
    inv.push_header("Supported", "timer");
    inv.push_header("Session-Expires", "120;refresher=uac");
    let atx = h.a.send(now, inv.clone());
    h.pump();
    let (btx, binv) = h.b1.last_request("INVITE");
    let now = h.now;
    let mut ok = make_response(&binv, 200, "OK", Some("btag"));
    ok.push_header("Contact", h.b1.contact());
    ok.push_header("Session-Expires", "1800;refresher=uas");
    h.b1.layer.respond(now, btx, &ok).unwrap();
    h.pump();
    let r200 = h.a.first_response(200).unwrap();
    assert_eq!(r200.header("Session-Expires"), Some("120;refresher=uac"));
    assert!(r200.header_values("Require").any(|o| o == "timer"));
    let mut da = h.a.ack(atx, &inv, &r200, None);
    h.pump();
    // A refreshes once at 60 s with a re-INVITE: relayed, call lives on.
    h.advance(Duration::from_secs(60));
    h.in_dialog(A, &mut da, Method::Update, None);
    let (utx, upd) = h.b1.last_request("UPDATE");
    h.reply(B1, utx, &upd, 200, "btag", None);
    h.advance(Duration::from_secs(80));
    assert_eq!(h.sbc.active_calls(), 1, "refresh extended the session");
    // Then silence: expiry at 120 - 32 = 88 s after the last refresh.
    h.advance(Duration::from_secs(20));
    assert_eq!(h.sbc.active_calls(), 0);
    assert_eq!(h.cdrs()[0].end_reason, EndReason::SessionExpired);
    assert_eq!(h.sbc.stats().session_expiries, 1);
    assert_eq!(h.a.requests("BYE").len(), 1);
    assert_eq!(h.b1.requests("BYE").len(), 1);
}

#[test]
fn forked_200s_first_wins_others_acked_and_byed() {
    let mut h = H::new();
    let (_atx, _ainv, btx, binv) = h.start("100", Some(&sdp("192.168.1.10", 10_000, "")));
    h.b1_rings_and_answers(btx, &binv, "fork1");
    // A second fork answers too (a proxy behind B forked): same transaction.
    let mut second = make_response(&binv, 200, "OK", Some("fork2"));
    second.push_header("Contact", "<sip:fork2@10.0.0.3:5060>");
    let bytes = second.to_bytes();
    let now = h.now;
    h.sbc.handle_datagram(now, udp(sa(B1)), &bytes);
    h.pump();
    assert_eq!(h.b1.acks().len(), 2, "both 2xx ACKed");
    let byes = h.b1.requests("BYE");
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].1.to_tag().unwrap(), Some("fork2"));
    assert_eq!(
        h.a.responses()
            .iter()
            .filter(|r| r.status() == Some(200))
            .count(),
        1
    );
    assert_eq!(h.sbc.active_calls(), 1);
    assert_eq!(h.sbc.stats().forked_answers_released, 1);
}

#[test]
fn redirect_3xx_followed_to_contact() {
    let mut h = H::new();
    let (_atx, _ainv, btx, binv) = h.start("100", Some(&sdp("192.168.1.10", 10_000, "")));
    let contact = format!("<sip:555@{B2}>");
    h.b1_answers_with_header(btx, &binv, 302, "Moved", ("Contact", &contact));
    let (_, inv2) = h.b2.last_request("INVITE");
    assert!(inv2
        .request_uri()
        .unwrap()
        .starts_with("sip:555@10.0.0.4:5060"));
    assert!(!h.a.statuses().iter().any(|s| (300..400).contains(s)));
}

#[test]
fn redirect_3xx_relayed_when_configured() {
    let mut h = H::with(|c| c.routes[0].redirect = RedirectMode::Relay);
    let (_atx, _ainv, btx, binv) = h.start("100", Some(&sdp("192.168.1.10", 10_000, "")));
    let contact = format!("<sip:555@{B2}>");
    h.b1_answers_with_header(btx, &binv, 302, "Moved", ("Contact", &contact));
    assert_eq!(h.a.statuses().last(), Some(&302));
    assert!(h.b2.requests("INVITE").is_empty());
}

#[test]
fn trunk_limit_gives_503() {
    let mut h = H::with(|c| {
        c.trunks[1].max_calls = Some(1);
        c.trunks[2].max_calls = Some(0);
    });
    let _ = h.answered();
    h.invite_from(A, "200", Some(&sdp("192.168.1.10", 10_010, "")));
    assert_eq!(h.a.statuses().last(), Some(&503));
    assert_eq!(h.b1.requests("INVITE").len(), 1);
    assert!(h.sbc.stats().trunk_limit_rejects >= 2);
    assert_eq!(h.sbc.active_calls(), 1);
}

#[test]
fn inbound_trunk_limit_gives_503() {
    let mut h = H::with(|c| c.trunks[0].max_calls = Some(1));
    let _ = h.answered();
    h.invite_from(A, "200", Some(&sdp("192.168.1.10", 10_010, "")));
    assert_eq!(h.a.statuses().last(), Some(&503));
}

#[test]
fn drain_rejects_new_calls_keeps_existing() {
    let mut h = H::new();
    let _ = h.answered();
    h.sbc.start_drain();
    h.invite_from(A, "200", Some(&sdp("192.168.1.10", 10_010, "")));
    let r = h.a.responses().into_iter().last().unwrap();
    assert_eq!(r.status(), Some(503));
    assert!(r.header("Retry-After").is_some());
    assert_eq!(h.sbc.active_calls(), 1);
    assert_eq!(h.sbc.stats().drain_rejects, 1);
    assert!(h
        .events
        .iter()
        .any(|e| matches!(e, CallEvent::Rejected { status: 503, .. })));
}

#[test]
fn release_all_byes_both_legs_and_writes_cdrs() {
    let mut h = H::new();
    let _ = h.answered();
    // A second call still ringing.
    h.invite_from(A, "200", Some(&sdp("192.168.1.10", 10_010, "")));
    let (btx, binv) = h.b1.last_request("INVITE");
    h.reply(B1, btx, &binv, 180, "r2", None);
    assert_eq!(h.sbc.active_calls(), 2);
    let now = h.now;
    h.sbc.release_all(now);
    h.pump();
    assert_eq!(h.sbc.active_calls(), 0);
    assert_eq!(h.a.requests("BYE").len(), 1);
    assert_eq!(h.b1.requests("BYE").len(), 1);
    assert_eq!(h.b1.requests("CANCEL").len(), 1, "ringing call cancelled");
    assert_eq!(h.a.statuses().last(), Some(&503));
    let cdrs = h.cdrs();
    assert_eq!(cdrs.len(), 2);
    assert!(cdrs.iter().all(|c| c.end_reason == EndReason::Shutdown));
    assert!(h.sbc.media().live.is_empty());
}

#[test]
fn admin_terminate() {
    let mut h = H::new();
    let _ = h.answered();
    let id = h.sbc.calls()[0].call;
    let now = h.now;
    assert!(h.sbc.terminate(now, id));
    assert!(!h.sbc.terminate(now, id));
    h.pump();
    assert_eq!(h.cdrs()[0].end_reason, EndReason::Terminated);
    assert_eq!(h.a.requests("BYE").len() + h.b1.requests("BYE").len(), 2);
}

#[test]
fn no_answer_timeout_cancels_b_and_answers_480() {
    let mut h = H::with(|c| c.timers.no_answer = Duration::from_secs(20));
    let (_atx, _ainv, btx, binv) = h.start("100", Some(&sdp("192.168.1.10", 10_000, "")));
    h.reply(B1, btx, &binv, 180, "btag", None);
    h.advance(Duration::from_secs(21));
    assert_eq!(h.a.statuses().last(), Some(&480));
    assert_eq!(h.b1.requests("CANCEL").len(), 1);
    assert_eq!(h.cdrs()[0].end_reason, EndReason::Timeout);
    assert_eq!(h.sbc.stats().no_answer_timeouts, 1);
}

#[test]
fn a_never_acks_200_call_torn_down() {
    let mut h = H::new();
    let (_atx, _ainv, btx, binv) = h.start("100", Some(&sdp("192.168.1.10", 10_000, "")));
    h.drop_to.push(sa(A)); // A never sees the 200, never ACKs
    let now = h.now;
    let answer = sdp("172.16.0.20", 20_000, "");
    h.b1.respond(now, btx, &binv, 200, "btag", Some(&answer));
    h.advance(Duration::from_secs(40));
    assert_eq!(h.sbc.active_calls(), 0);
    assert_eq!(h.b1.requests("BYE").len(), 1);
    assert_eq!(h.cdrs()[0].end_reason, EndReason::Timeout);
}

#[test]
fn in_dialog_request_for_unknown_dialog_gets_481() {
    let mut h = H::new();
    let (mut da, _db, _atx, _ainv) = h.answered();
    da.id.local_tag = "bogus".into();
    h.in_dialog(A, &mut da, Method::Info, None);
    assert_eq!(h.a.statuses().last(), Some(&481));
}

#[test]
fn session_interval_too_small_422_retried_with_min_se() {
    let mut h = H::new();
    let (_atx, _ainv, btx, binv) = h.start("100", Some(&sdp("192.168.1.10", 10_000, "")));
    let reason = "Session Interval Too Small";
    h.b1_answers_with_header(btx, &binv, 422, reason, ("Min-SE", "3600"));
    let invites = h.b1.requests("INVITE");
    assert_eq!(invites.len(), 2);
    assert_eq!(invites[1].1.header("Session-Expires"), Some("3600"));
    assert_eq!(invites[1].1.cseq().unwrap().seq, 2);
    assert!(h.b2.requests("INVITE").is_empty());
    assert!(!h.a.statuses().contains(&422));
}

#[test]
fn caller_session_interval_below_min_se_gets_422() {
    let mut h = H::new();
    let now = h.now;
    h.a.invite_with(now, "100", None, &[("Session-Expires", "30")]);
    h.pump();
    let r = h.a.responses().into_iter().last().unwrap();
    assert_eq!(r.status(), Some(422));
    assert_eq!(r.header("Min-SE"), Some("90"));
    assert!(h.b1.requests("INVITE").is_empty());
}

#[test]
fn tls_trunk_gets_sni_fqdn_contact_and_tls_uri() {
    let mut h = H::with(|c| {
        c.trunks[1].transport = portcullis_engine::transaction::Transport::Tls;
        c.trunks[1].tls_server_name = Some("sip.pstnhub.microsoft.com".into());
        c.trunks[1].fqdn_contact = Some("sbc.example.com".into());
        c.trunks[1].media = portcullis_engine::config::MediaMode::Srtp;
    });
    let now = h.now;
    h.a.invite(now, "+4930123", Some(&sdp("192.168.1.10", 10_000, "")));
    let bytes = h.a.layer.poll_transmit().unwrap().bytes;
    h.sbc.handle_datagram(now, udp(sa(A)), &bytes);
    let mut to_b = None;
    while let Some(t) = h.sbc.poll_transmit() {
        if t.dest.addr == sa(B1) {
            to_b = Some(t);
        }
    }
    let t = to_b.expect("INVITE toward the TLS trunk");
    assert_eq!(
        t.dest.transport,
        portcullis_engine::transaction::Transport::Tls
    );
    assert_eq!(
        t.tls_server_name.as_deref(),
        Some("sip.pstnhub.microsoft.com")
    );
    let inv = portcullis_engine::transaction::parse_message(&t.bytes).unwrap();
    assert_eq!(
        inv.request_uri(),
        Some("sip:+4930123@sip.pstnhub.microsoft.com:5060;transport=tls")
    );
    assert_eq!(
        inv.header("Contact"),
        Some("<sip:sbc@sbc.example.com:5060;transport=tls>"),
        "the FQDN with the port of our listener"
    );
    let via = inv.header("Via").unwrap();
    assert!(
        via.starts_with("SIP/2.0/TLS sbc.example.com:5060;"),
        "{via}"
    );
    assert!(inv.header("From").unwrap().contains("@sbc.example.com"));
}

//! Delayed offer end to end (RFC 3261 §13.2.1): every path where an INVITE,
//! re-INVITE or UPDATE comes without SDP. Where the other side cannot take a
//! delayed offer (the initial INVITE, a re-INVITE toward Teams) it answers our
//! own offer; the sender's answer arrives in its ACK and, when it does not
//! match what the far side answered, reaches the far side as a new offer. Where
//! the far side makes the offer, the sender's answer travels in the far side's
//! ACK.

#[path = "b2bua_harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;
use portcullis_engine::config::{MediaMode, TeamsSettings};
use portcullis_engine::transaction::{Method, SipMsg};
use portcullis_sip::sdp::SessionDescription;

/// b1 is Teams (SRTP, no media bypass).
fn teams() -> H {
    H::with(|c| {
        c.teams = Some(TeamsSettings {
            sbc_fqdn: "sbc.example.com".into(),
            options_interval: Duration::from_secs(60),
            media_bypass: false,
            proxies: Vec::new(),
        });
        c.trunks[1].tls_server_name = Some("sip.pstnhub.microsoft.com".into());
        c.trunks[1].media = MediaMode::Srtp;
    })
}

fn body(m: &SipMsg) -> SessionDescription {
    SessionDescription::parse(m.body()).unwrap()
}

/// `sdp()` with PCMA and telephone-event only.
fn pcma_only(ip: &str, port: u16) -> String {
    sdp(ip, port, "")
        .replace("RTP/AVP 0 8 101", "RTP/AVP 8 101")
        .replace("a=rtpmap:0 PCMU/8000\r\n", "")
}

/// The 2xx A got to its re-INVITE of CSeq 2.
fn a_reinvite_ok(h: &H) -> SipMsg {
    h.a.responses()
        .into_iter()
        .rfind(|r| r.status() == Some(200) && r.cseq().unwrap().seq == 2)
        .expect("A's re-INVITE answered")
}

const TEAMS_KEY: &str =
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^31\r\na=rtcp-mux\r\n";

/// Teams' SRTP answer at 172.16.0.20:`port` with `formats`.
fn teams_answer(port: u16, pcma: bool) -> String {
    let s = sdp("172.16.0.20", port, TEAMS_KEY).replace("RTP/AVP", "RTP/SAVP");
    if pcma {
        s.replace("RTP/SAVP 0 8 101", "RTP/SAVP 8 101")
            .replace("a=rtpmap:0 PCMU/8000\r\n", "")
    } else {
        s
    }
}

#[test]
fn reinvite_toward_teams_carries_the_senders_narrower_answer_in_a_new_offer() {
    let mut h = teams();
    let (mut da, _db, _atx, _ainv) = h.answered();
    let (rtx, _) = h.in_dialog(A, &mut da, Method::Invite, None);
    let invs = h.b1.requests("INVITE");
    assert_eq!(invs.len(), 2);
    let (btx, binv) = invs[1].clone();
    assert_eq!(body(&binv).media[0].formats, ["0", "8", "101"], "our offer");
    let btag = binv.to_tag().unwrap().unwrap().to_owned();
    h.reply(
        B1,
        btx,
        &binv,
        200,
        &btag,
        Some(&teams_answer(20_002, false)),
    );
    let acks = h.b1.acks();
    assert_eq!(acks.len(), 2, "Teams' 2xx ACKed at once");
    assert!(
        acks[1].body().is_empty(),
        "Teams' 2xx held an answer: its ACK carries no SDP"
    );
    // A gets Teams' answer as the offer of its 2xx and answers PCMA only, in its ACK.
    let ok = a_reinvite_ok(&h);
    assert_eq!(body(&ok).media[0].formats, ["0", "8", "101"]);
    h.a.ack_reinvite(rtx, &da, &ok, Some(&pcma_only("192.168.1.10", 10_008)));
    h.pump();
    // Teams hears A's answer: a re-INVITE offering what A accepted.
    let invs = h.b1.requests("INVITE");
    assert_eq!(invs.len(), 3, "a follow-up offer toward Teams");
    let (ftx, finv) = invs[2].clone();
    let offer = body(&finv);
    assert_eq!(offer.media[0].formats, ["8", "101"]);
    assert!(offer.media[0].has_rtcp_mux(), "rtcp-mux toward Teams");
    assert!(
        offer.media[0].crypto().next().is_some(),
        "SRTP toward Teams"
    );
    assert_eq!(
        offer.rtp_destination(0),
        Some(sa(&format!("{MEDIA_IP}:60002"))),
        "same port toward Teams"
    );
    h.reply(
        B1,
        ftx,
        &finv,
        200,
        &btag,
        Some(&teams_answer(20_004, true)),
    );
    assert_eq!(h.b1.acks().len(), 3, "the follow-up 2xx ACKed");
    let (_, a_p, b_p) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(a_p.peer_rtp, Some(sa("192.168.1.10:10008")));
    assert_eq!(b_p.peer_rtp, Some(sa("172.16.0.20:20004")));
    assert_eq!(h.sbc.stats().delayed_offer_reoffers, 1);
    // A hears nothing more: its exchange was complete.
    assert_eq!(h.a.requests("INVITE").len(), 0);
    // The call goes on: a later re-INVITE is not refused as glare.
    h.in_dialog(
        A,
        &mut da,
        Method::Invite,
        Some(&sdp("192.168.1.10", 10_010, "")),
    );
    assert_eq!(h.b1.requests("INVITE").len(), 4);
    assert_eq!(h.sbc.active_calls(), 1);
}

#[test]
fn matching_answer_in_the_ack_needs_no_follow_up() {
    let mut h = teams();
    let (mut da, _db, _atx, _ainv) = h.answered();
    let (rtx, _) = h.in_dialog(A, &mut da, Method::Invite, None);
    let (btx, binv) = h.b1.last_request("INVITE");
    let btag = binv.to_tag().unwrap().unwrap().to_owned();
    h.reply(
        B1,
        btx,
        &binv,
        200,
        &btag,
        Some(&teams_answer(20_002, false)),
    );
    let ok = a_reinvite_ok(&h);
    h.a.ack_reinvite(rtx, &da, &ok, Some(&sdp("192.168.1.10", 10_008, "")));
    h.pump();
    assert_eq!(h.b1.requests("INVITE").len(), 2, "no follow-up offer");
    assert_eq!(h.sbc.stats().delayed_offer_reoffers, 0);
    let (_, a_p, _) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(a_p.peer_rtp, Some(sa("192.168.1.10:10008")));
}

#[test]
fn initial_invite_without_sdp_follows_the_callers_answer_toward_b() {
    let mut h = H::new();
    let (atx, ainv, btx, binv) = h.start("100", None);
    assert_eq!(body(&binv).media[0].formats, ["0", "8", "101"], "our offer");
    let answer = sdp("172.16.0.20", 20_000, "");
    h.reply(B1, btx, &binv, 200, "btag", Some(&answer));
    let r200 = h.a.first_response(200).unwrap();
    // The caller answers on hold (sendonly), in the ACK.
    let held = sdp("192.168.1.10", 10_000, "a=sendonly\r\n");
    h.a.ack(atx, &ainv, &r200, Some(&held));
    h.pump();
    assert_eq!(h.b1.acks().len(), 1, "B's 2xx ACKed, without SDP");
    assert!(h.b1.acks()[0].body().is_empty());
    let invs = h.b1.requests("INVITE");
    assert_eq!(invs.len(), 2, "B hears the caller's answer in a re-INVITE");
    let (ftx, finv) = invs[1].clone();
    let offer = body(&finv);
    assert_eq!(
        offer.media_direction(0),
        Some(portcullis_sip::sdp::Direction::SendOnly)
    );
    assert_eq!(
        offer.rtp_destination(0),
        Some(sa(&format!("{MEDIA_IP}:60002")))
    );
    let recvonly = sdp("172.16.0.20", 20_000, "a=recvonly\r\n");
    h.reply(B1, ftx, &finv, 200, "btag", Some(&recvonly));
    assert_eq!(h.b1.acks().len(), 2);
    assert_eq!(h.sbc.stats().delayed_offer_reoffers, 1);
}

#[test]
fn reinvite_without_sdp_from_teams_gets_the_far_offer_and_its_ack_carries_the_answer() {
    let mut h = teams();
    let (_da, mut db, _atx, _ainv) = h.answered();
    let acks_before = h.a.acks().len();
    // Teams re-INVITEs without SDP: A is asked for an offer.
    let (ttx, _) = h.in_dialog(B1, &mut db, Method::Invite, None);
    let (artx, areinv) = h.a.last_request("INVITE");
    assert!(areinv.body().is_empty(), "A takes a delayed offer");
    let a_tag = areinv.to_tag().unwrap().unwrap().to_owned();
    h.reply(
        A,
        artx,
        &areinv,
        200,
        &a_tag,
        Some(&sdp("192.168.1.10", 10_020, "")),
    );
    assert_eq!(
        h.a.acks().len(),
        acks_before,
        "A's ACK waits for Teams' answer"
    );
    let ok =
        h.b1.responses()
            .into_iter()
            .rfind(|r| r.status() == Some(200) && r.cseq().unwrap().seq == db.local_cseq.unwrap())
            .expect("Teams' re-INVITE answered");
    let offer = body(&ok);
    assert!(offer.media[0].has_rtcp_mux() && offer.media[0].crypto().next().is_some());
    h.b1.ack_reinvite(ttx, &db, &ok, Some(&teams_answer(20_030, false)));
    h.pump();
    let acks = h.a.acks();
    assert_eq!(acks.len(), acks_before + 1);
    let carried = body(acks.last().unwrap());
    assert_eq!(
        carried.rtp_destination(0),
        Some(sa(&format!("{MEDIA_IP}:40002"))),
        "Teams' answer, rewritten, in A's ACK"
    );
    assert!(
        carried.media[0].crypto().next().is_none(),
        "plain RTP toward A"
    );
    let (_, a_p, b_p) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(a_p.peer_rtp, Some(sa("192.168.1.10:10020")));
    assert_eq!(b_p.peer_rtp, Some(sa("172.16.0.20:20030")));
    assert_eq!(h.sbc.stats().delayed_offer_reoffers, 0);
}

#[test]
fn update_without_sdp_is_a_refresh_not_an_offer() {
    let mut h = teams();
    let (mut da, _db, _atx, _ainv) = h.answered();
    let before = h.sbc.media().updates.last().cloned().unwrap();
    h.in_dialog(A, &mut da, Method::Update, None);
    let (utx, upd) = h.b1.last_request("UPDATE");
    assert!(upd.body().is_empty(), "no offer made up for an UPDATE");
    let btag = upd.to_tag().unwrap().unwrap().to_owned();
    h.reply(B1, utx, &upd, 200, &btag, None);
    let ok = h.a.last_response(200).unwrap();
    assert_eq!(ok.cseq().unwrap().method, Method::Update);
    assert!(ok.body().is_empty());
    assert_eq!(
        h.sbc.media().updates.last().cloned().unwrap(),
        before,
        "media parameters unchanged"
    );
    assert_eq!(h.b1.requests("INVITE").len(), 1);
}

//! B2BUA media: early media, re-INVITE hold/resume, UPDATE, SRTP toward B,
//! delayed offer, media inactivity.

#[path = "b2bua_harness.rs"]
mod harness;

use harness::*;
use portcullis_engine::b2bua::EndReason;
use portcullis_engine::config::MediaMode;
use portcullis_engine::media::{MediaEvent, SrtpSuite};
use portcullis_engine::transaction::Method;
use portcullis_sip::sdp::{Direction, SessionDescription};

fn body(m: &portcullis_engine::transaction::SipMsg) -> SessionDescription {
    SessionDescription::parse(m.body())
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(m.body())))
}

#[test]
fn early_media_183_rewritten_and_programmed() {
    let mut h = H::new();
    let (_atx, _ainv, btx, binv) = h.start("100", Some(&sdp("192.168.1.10", 10_000, "")));
    let answer = sdp("172.16.0.20", 20_000, "");
    h.reply(B1, btx, &binv, 183, "btag", Some(&answer));
    let r183 = h.a.first_response(183).expect("183 relayed");
    let s = body(&r183);
    assert_eq!(s.rtp_destination(0), Some(sa(&format!("{MEDIA_IP}:40002"))));
    assert_eq!(r183.header("Content-Type"), Some("application/sdp"));
    let (_, _a, b) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(b.peer_rtp, Some(sa("172.16.0.20:20000")));
    // The 200 repeats the same SDP: same o= version toward A (RFC 3264 §8).
    let answer = sdp("172.16.0.20", 20_000, "");
    h.reply(B1, btx, &binv, 200, "btag", Some(&answer));
    let r200 = h.a.first_response(200).unwrap();
    assert_eq!(body(&r200).origin.session_version, s.origin.session_version);
    assert_eq!(body(&r200).origin.session_id, s.origin.session_id);
}

/// A re-INVITE whose SDP cannot be read is refused 488 on an anchored call (it is not
/// passed on as an offerless re-INVITE); the call and its media stay as they were.
#[test]
fn reinvite_with_unreadable_sdp_is_refused_488_and_the_call_goes_on() {
    let mut h = H::new();
    let (mut da, _db, _atx, _ainv) = h.answered();
    let updates_before = h.sbc.media().updates.len();
    let invites_before = h.b1.requests("INVITE").len();
    let (_atx2, reinv) = h.in_dialog(
        A,
        &mut da,
        Method::Invite,
        Some("v=0\r\nthis is not SDP\r\nm=audio notaport RTP/AVP 0\r\n"),
    );
    let r =
        h.a.responses()
            .into_iter()
            .rfind(|r| r.cseq().unwrap().seq == reinv.cseq().unwrap().seq)
            .expect("an answer to the re-INVITE");
    assert_eq!(r.status(), Some(488));
    assert!(
        r.to_bytes()
            .starts_with(b"SIP/2.0 488 Not Acceptable Here (unreadable SDP)\r\n"),
        "{}",
        String::from_utf8_lossy(&r.to_bytes())
    );
    assert_eq!(h.b1.requests("INVITE").len(), invites_before, "not relayed");
    assert_eq!(
        h.sbc.media().updates.len(),
        updates_before,
        "media untouched"
    );
    assert_eq!(h.sbc.active_calls(), 1);
}

#[test]
fn reinvite_hold_and_resume_from_caller() {
    let mut h = H::new();
    let (mut da, mut db, _atx, _ainv) = h.answered();
    let updates_before = h.sbc.media().updates.len();
    // Hold: a=inactive.
    let offer = sdp("192.168.1.10", 10_000, "a=inactive\r\n");
    let (atx2, _) = h.in_dialog(A, &mut da, Method::Invite, Some(&offer));
    let (btx, breinv) = h.b1.last_request("INVITE");
    assert_eq!(breinv.cseq().unwrap().seq, 2, "B leg CSeq is its own");
    assert_eq!(body(&breinv).media_direction(0), Some(Direction::Inactive));
    assert_eq!(
        body(&breinv).rtp_destination(0),
        Some(sa(&format!("{MEDIA_IP}:60002")))
    );
    db.on_request(&breinv).unwrap();
    let answer = sdp("172.16.0.20", 20_000, "a=inactive\r\n");
    h.reply(B1, btx, &breinv, 200, "btag", Some(&answer));
    // B's re-INVITE 2xx is ACKed by the SBC; A gets the rewritten 200.
    assert_eq!(h.b1.acks().len(), 2);
    let r =
        h.a.responses()
            .into_iter()
            .rfind(|r| r.status() == Some(200) && r.cseq().unwrap().seq == 2)
            .expect("200 to re-INVITE");
    assert_eq!(body(&r).media_direction(0), Some(Direction::Inactive));
    let invite = h.a.layer.request(atx2).cloned();
    if let Some(inv) = invite {
        h.a.ack(atx2, &inv, &r, None);
    }
    h.pump();
    assert!(
        h.sbc.media().updates.len() > updates_before,
        "media re-programmed"
    );
    // Both legs are programmed as held (the data plane keeps them off its fast path).
    let (_, a, b) = h.sbc.media().updates.last().unwrap().clone();
    assert!(a.held && b.held, "held: A {} B {}", a.held, b.held);
    // Resume with a new address and codec.
    let now = h.now;
    let resume = "v=0\r\no=peer 77 3 IN IP4 192.168.1.11\r\ns=call\r\nc=IN IP4 192.168.1.11\r\nt=0 0\r\nm=audio 10010 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n";
    h.a.send_in_dialog(now, &mut da, Method::Invite, Some(resume));
    h.pump();
    let (btx, breinv) = h.b1.last_request("INVITE");
    assert_eq!(body(&breinv).media[0].formats, vec!["8".to_owned()]);
    let answer = sdp("172.16.0.20", 20_000, "");
    h.reply(B1, btx, &breinv, 200, "btag", Some(&answer));
    let (_, a, b) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(a.peer_rtp, Some(sa("192.168.1.11:10010")));
    assert!(!a.held && !b.held, "off hold: A {} B {}", a.held, b.held);
    assert_eq!(h.sbc.active_calls(), 1);
}

#[test]
fn reinvite_from_callee_and_glare() {
    let mut h = H::new();
    let (mut da, mut db, _atx, _ainv) = h.answered();
    let offer = sdp("172.16.0.20", 20_000, "a=sendonly\r\n");
    h.in_dialog(B1, &mut db, Method::Invite, Some(&offer));
    let (atx, areinv) = h.a.last_request("INVITE");
    assert_eq!(body(&areinv).media_direction(0), Some(Direction::SendOnly));
    // Glare: A re-INVITEs meanwhile → 491.
    let offer = sdp("192.168.1.10", 10_000, "");
    h.in_dialog(A, &mut da, Method::Invite, Some(&offer));
    assert!(h.a.statuses().contains(&491), "{:?}", h.a.statuses());
    let answer = sdp("192.168.1.10", 10_000, "a=recvonly\r\n");
    h.reply(A, atx, &areinv, 200, "", Some(&answer));
    assert!(h.b1.statuses().contains(&200));
    assert!(!h.a.acks().is_empty(), "SBC ACKed A's 2xx");
}

#[test]
fn update_relayed_with_sdp() {
    let mut h = H::new();
    let (mut da, _db, _atx, _ainv) = h.answered();
    let offer = sdp("192.168.1.12", 10_020, "");
    h.in_dialog(A, &mut da, Method::Update, Some(&offer));
    let (btx, upd) = h.b1.last_request("UPDATE");
    assert_eq!(
        body(&upd).rtp_destination(0),
        Some(sa(&format!("{MEDIA_IP}:60002")))
    );
    let answer = sdp("172.16.0.21", 20_020, "");
    h.reply(B1, btx, &upd, 200, "btag", Some(&answer));
    let r =
        h.a.responses()
            .into_iter()
            .rfind(|r| r.cseq().unwrap().method == Method::Update)
            .unwrap();
    assert_eq!(r.status(), Some(200));
    assert_eq!(
        body(&r).rtp_destination(0),
        Some(sa(&format!("{MEDIA_IP}:40002")))
    );
    let (_, a, b) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(a.peer_rtp, Some(sa("192.168.1.12:10020")));
    assert_eq!(b.peer_rtp, Some(sa("172.16.0.21:20020")));
}

#[test]
fn info_and_message_relayed_with_body() {
    let mut h = H::new();
    let (mut da, _db, _atx, _ainv) = h.answered();
    let now = h.now;
    let via = h.a.via();
    let mut info = da.request(Method::Info, &via).unwrap();
    info.push_header("Content-Type", "application/dtmf-relay");
    info.push_header("X-Internal", "nope");
    info.set_body(b"Signal=5\r\nDuration=160\r\n".to_vec());
    h.a.send(now, info);
    h.pump();
    let (itx, binfo) = h.b1.last_request("INFO");
    assert_eq!(binfo.body(), b"Signal=5\r\nDuration=160\r\n");
    assert_eq!(binfo.header("Content-Type"), Some("application/dtmf-relay"));
    assert!(binfo.header("X-Internal").is_none());
    h.reply(B1, itx, &binfo, 200, "btag", None);
    assert!(h
        .a
        .responses()
        .iter()
        .any(|r| r.status() == Some(200) && r.cseq().unwrap().method == Method::Info));
    h.in_dialog(A, &mut da, Method::Message, None);
    assert_eq!(h.b1.requests("MESSAGE").len(), 1);
}

#[test]
fn srtp_toward_b_with_fresh_key_and_plain_rtp_toward_a() {
    let mut h = H::with(|c| c.trunks[1].media = MediaMode::Srtp);
    let (_atx, _ainv, btx, binv) = h.start("100", Some(&sdp("192.168.1.10", 10_000, "")));
    let offer = body(&binv);
    let m = &offer.media[0];
    assert_eq!(m.proto.as_str(), "RTP/SAVP");
    let crypto: Vec<_> = m.crypto().collect();
    assert_eq!(crypto.len(), 1);
    assert_eq!(crypto[0].suite, "AES_CM_128_HMAC_SHA1_80");
    let km = crypto[0].key_material().expect("valid inline key");
    assert!(crypto[0].to_string().contains("|2^31"), "{}", crypto[0]);
    let (_, _, b) = h.sbc.media().updates.last().unwrap().clone();
    let out = b.srtp_out.expect("we encrypt toward B");
    assert_eq!(out.suite, SrtpSuite::Aes128Sha1_80);
    assert_eq!(out.key.as_slice(), km.key.as_slice());
    assert_eq!(out.salt.as_slice(), km.salt.as_slice());
    // B answers with its own key: that is srtp_in on B; A stays plain RTP.
    let b_key = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^31\r\n";
    let ans = sdp("172.16.0.20", 20_000, b_key).replace("RTP/AVP", "RTP/SAVP");
    h.reply(B1, btx, &binv, 200, "btag", Some(&ans));
    let (_, a, b) = h.sbc.media().updates.last().unwrap().clone();
    let inb = b.srtp_in.expect("B's key");
    assert_eq!(&inb.key[..4], b"YS__");
    assert!(a.srtp_in.is_none() && a.srtp_out.is_none());
    let r200 = h.a.first_response(200).unwrap();
    let s = body(&r200);
    assert_eq!(s.media[0].proto.as_str(), "RTP/AVP");
    assert_eq!(s.media[0].crypto().count(), 0);
    // Two calls never share a key.
    h.invite_from(A, "101", Some(&sdp("192.168.1.10", 10_100, "")));
    let (_, binv2) = h.b1.last_request("INVITE");
    let k2 = body(&binv2).media[0]
        .crypto()
        .next()
        .unwrap()
        .key_material()
        .unwrap();
    assert_ne!(k2.key, km.key);
}

#[test]
fn srtp_from_a_gives_srtp_in_on_a_and_answer_reuses_tag() {
    let mut h = H::with(|c| c.trunks[0].media = MediaMode::Srtp);
    let a_key = "a=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^31\r\n";
    let offer = sdp("192.168.1.10", 10_000, a_key).replace("RTP/AVP", "RTP/SAVP");
    let (_atx, _ainv, btx, binv) = h.start("100", Some(&offer));
    let o = body(&binv);
    assert_eq!(o.media[0].proto.as_str(), "RTP/AVP");
    assert_eq!(o.media[0].crypto().count(), 0, "plain toward B");
    let answer = sdp("172.16.0.20", 20_000, "");
    h.reply(B1, btx, &binv, 200, "btag", Some(&answer));
    let r200 = h.a.first_response(200).unwrap();
    let s = body(&r200);
    assert_eq!(s.media[0].proto.as_str(), "RTP/SAVP");
    let c = s.media[0].crypto().next().unwrap().clone();
    assert_eq!(c.tag, 7, "answer uses the offered tag (RFC 4568 §7.1.2)");
    let (_, a, _) = h.sbc.media().updates.last().unwrap().clone();
    assert!(a.srtp_in.is_some() && a.srtp_out.is_some());
    assert_eq!(
        a.srtp_out.unwrap().key.as_slice(),
        c.key_material().unwrap().key.as_slice()
    );
}

#[test]
fn delayed_offer_from_caller_gets_our_offer_toward_b() {
    let mut h = H::new();
    let (atx, ainv, btx, binv) = h.start("100", None);
    let o = body(&binv);
    assert!(o.media[0].has_rtcp_mux());
    assert_eq!(o.media[0].formats, vec!["0", "8", "101"]);
    let answer = sdp("172.16.0.20", 20_000, "a=rtcp-mux\r\n");
    h.reply(B1, btx, &binv, 200, "btag", Some(&answer));
    assert_eq!(h.b1.acks().len(), 1);
    let r200 = h.a.first_response(200).unwrap();
    assert_eq!(
        body(&r200).rtp_destination(0),
        Some(sa(&format!("{MEDIA_IP}:40002")))
    );
    // A answers in the ACK.
    h.a.ack(atx, &ainv, &r200, Some(&sdp("192.168.1.10", 10_000, "")));
    h.pump();
    let (_, a, b) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(a.peer_rtp, Some(sa("192.168.1.10:10000")));
    assert!(b.rtcp_mux);
}

#[test]
fn media_inactivity_byes_both_legs() {
    let mut h = H::new();
    let _ = h.answered();
    let id = h.sbc.calls()[0].media.unwrap();
    let now = h.now;
    h.sbc.handle_media_event(now, MediaEvent::Inactive(id));
    h.pump();
    assert_eq!(h.a.requests("BYE").len(), 1);
    assert_eq!(h.b1.requests("BYE").len(), 1);
    assert_eq!(h.cdrs()[0].end_reason, EndReason::MediaInactivity);
    assert_eq!(h.sbc.stats().media_inactivity, 1);
    assert!(h.sbc.media().live.is_empty());
}

#[test]
fn bad_sdp_is_rejected_488() {
    let mut h = H::new();
    h.invite_from(A, "100", Some("this is not sdp"));
    assert_eq!(h.a.statuses().last(), Some(&488));
    assert!(h.b1.requests("INVITE").is_empty());
    assert_eq!(h.cdrs().len(), 1);
}

#[test]
fn media_capacity_exhausted_gives_503() {
    let mut h = H::new();
    h.sbc.media_mut().capacity = Some(0);
    h.invite_from(A, "100", Some(&sdp("192.168.1.10", 10_000, "")));
    assert_eq!(h.a.statuses().last(), Some(&503));
    assert_eq!(h.sbc.stats().media_errors, 1);
}

#[test]
fn reinvite_without_sdp_answer_travels_in_ack() {
    let mut h = H::new();
    let (mut da, _db, _atx, _ainv) = h.answered();
    let acks_before = h.b1.acks().len();
    // A re-INVITEs without SDP (asks B for an offer).
    let (atx2, ainv2) = h.in_dialog(A, &mut da, Method::Invite, None);
    let (btx, breinv) = h.b1.last_request("INVITE");
    assert!(breinv.body().is_empty());
    let answer = sdp("172.16.0.40", 20_040, "");
    h.reply(B1, btx, &breinv, 200, "btag", Some(&answer));
    // B's ACK waits for A's answer.
    assert_eq!(h.b1.acks().len(), acks_before);
    let r =
        h.a.responses()
            .into_iter()
            .rfind(|r| r.status() == Some(200) && r.cseq().unwrap().seq == 2)
            .unwrap();
    assert_eq!(
        body(&r).rtp_destination(0),
        Some(sa(&format!("{MEDIA_IP}:40002")))
    );
    h.a.ack(atx2, &ainv2, &r, Some(&sdp("192.168.1.50", 10_050, "")));
    h.pump();
    let acks = h.b1.acks();
    assert_eq!(acks.len(), acks_before + 1);
    let ack = acks.last().unwrap();
    assert_eq!(
        body(ack).rtp_destination(0),
        Some(sa(&format!("{MEDIA_IP}:60002")))
    );
    let (_, a, b) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(a.peer_rtp, Some(sa("192.168.1.50:10050")));
    assert_eq!(b.peer_rtp, Some(sa("172.16.0.40:20040")));
}

/// What the admin API lists per live call: each leg's codec (first payload type of the
/// SDP its peer sent), its SRTP suite, and the pair's counters.
#[test]
fn call_summary_reports_codec_srtp_and_counters() {
    let mut h = H::with(|c| c.trunks[1].media = MediaMode::Srtp);
    let (_atx, _ainv, btx, binv) = h.start("100", Some(&sdp("192.168.1.10", 10_000, "")));
    let c = &h.sbc.calls()[0];
    assert_eq!(
        c.codec,
        [Some("PCMU/8000".to_owned()), None],
        "B has sent no SDP"
    );
    assert_eq!(
        c.srtp,
        [None, Some(SrtpSuite::Aes128Sha1_80)],
        "we offered SRTP to B"
    );
    let b_key = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^31\r\n";
    // B answers PCMA first; a static payload type without rtpmap is named from RFC 3551.
    let ans = sdp("172.16.0.20", 20_000, b_key)
        .replace("RTP/AVP 0 8 101", "RTP/SAVP 8 0 101")
        .replace("a=rtpmap:8 PCMA/8000\r\n", "");
    h.reply(B1, btx, &binv, 200, "btag", Some(&ans));
    let c = &h.sbc.calls()[0];
    assert!(c.answered);
    assert_eq!(
        c.codec,
        [Some("PCMU/8000".to_owned()), Some("PCMA/8000".to_owned())]
    );
    assert_eq!(c.srtp, [None, Some(SrtpSuite::Aes128Sha1_80)]);
    assert!(c.media_stats.is_some(), "the pair's counters");
}

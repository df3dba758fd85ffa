//! Media bypass (`MediaMode::Bypass` on every trunk a call may use): no data
//! plane pair is allocated and SDP bodies cross the B2BUA byte for byte on
//! the INVITE, 18x, 2xx, re-INVITE, UPDATE and ACK; failover keeps the
//! caller's offer; BYE ends the call with no media to release; a route that
//! mixes modes, or a delayed offer, is anchored; transfers are refused 403.

#[path = "b2bua_harness.rs"]
mod harness;

use harness::*;
use portcullis_engine::config::MediaMode;
use portcullis_engine::dialog::Dialog;
use portcullis_engine::transaction::{Method, PeerAddr, SipMsg, Transport};

/// An SRTP offer with ICE, rtcp and a video stream: everything the anchored
/// rewrite would change (address, port, crypto key, ICE, rtcp, extra m=).
const A_SDP: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.168.1.10\r\ns=-\r\nc=IN IP4 192.168.1.10\r\nt=0 0\r\nm=audio 10000 RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=rtcp:10001\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\na=ice-ufrag:8hhY\r\na=ice-pwd:asd88fgpdd777uzjYhagZg\r\nm=video 10002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
const B_SDP: &str = "v=0\r\no=bob 2808844564 2808844564 IN IP4 172.16.0.20\r\ns=-\r\nc=IN IP4 172.16.0.20\r\nt=0 0\r\nm=audio 20000 RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\nm=video 0 RTP/AVP 96\r\n";

fn all_bypass() -> H {
    H::with(|c| {
        for t in &mut c.trunks {
            t.media = MediaMode::Bypass;
        }
    })
}

fn resp(p: &Peer, status: u16, cseq: u32) -> SipMsg {
    p.responses()
        .into_iter()
        .rfind(|r| r.status() == Some(status) && r.cseq().unwrap().seq == cseq)
        .unwrap_or_else(|| panic!("{} got no {status} to CSeq {cseq}", p.addr))
}

fn text(m: &SipMsg) -> &str {
    std::str::from_utf8(m.body()).unwrap()
}

/// A calls through all-bypass trunks; B1 rings with SDP and answers; A ACKs.
fn bypassed_call(h: &mut H) -> (Dialog, Dialog) {
    let (atx, ainv, btx, binv) = h.start("100", Some(A_SDP));
    assert_eq!(text(&binv), A_SDP, "offer crosses unchanged");
    assert_eq!(binv.header("Content-Type"), Some("application/sdp"));
    let now = h.now;
    h.b1.respond(now, btx, &binv, 183, "btag", Some(B_SDP));
    h.pump();
    assert_eq!(text(&resp(&h.a, 183, 1)), B_SDP, "early answer unchanged");
    let now = h.now;
    h.b1.respond(now, btx, &binv, 200, "btag", Some(B_SDP));
    h.pump();
    let ok = resp(&h.a, 200, 1);
    assert_eq!(text(&ok), B_SDP, "answer crosses unchanged");
    let da = h.a.ack(atx, &ainv, &ok, None);
    h.pump();
    let db = Dialog::from_uas(&binv, "btag", &h.b1.contact(), true).unwrap();
    (da, db)
}

#[test]
fn bypassed_call_relays_sdp_unchanged_and_takes_no_media() {
    let mut h = all_bypass();
    bypassed_call(&mut h);
    assert_eq!(h.sbc.media().allocated, 0, "no dataplane pair");
    assert!(h.sbc.media().updates.is_empty(), "nothing programmed");
    assert_eq!(h.sbc.stats().media_bypassed, 1);
    assert_eq!(h.sbc.active_calls(), 1);
    // Signalling is still ours: B's INVITE shows none of A's headers.
    assert_absent(&h.b1.wire, &["X-Secret", "rr.10.0.0.2"], "B leg");
}

#[test]
fn bypassed_reinvite_update_and_delayed_offer_reinvite_pass_through() {
    let mut h = all_bypass();
    let (mut da, mut db) = bypassed_call(&mut h);
    // Hold from A: re-INVITE with SDP, both ways unchanged.
    let hold = A_SDP.replace("a=rtcp:10001\r\n", "a=rtcp:10001\r\na=sendonly\r\n");
    let now = h.now;
    let (atx, areinv) =
        h.a.send_in_dialog(now, &mut da, Method::Invite, Some(&hold));
    h.pump();
    let (btx, breinv) = h.b1.last_request("INVITE");
    assert_eq!(text(&breinv), hold);
    db.on_request(&breinv).unwrap();
    let held = B_SDP.replace("m=video", "a=recvonly\r\nm=video");
    let now = h.now;
    h.b1.respond(now, btx, &breinv, 200, "btag", Some(&held));
    h.pump();
    let ok = resp(&h.a, 200, 2);
    assert_eq!(text(&ok), held);
    h.a.ack(atx, &areinv, &ok, None);
    h.pump();
    // UPDATE from B.
    let moved = B_SDP.replace("20000", "20100");
    let now = h.now;
    h.b1.send_in_dialog(now, &mut db, Method::Update, Some(&moved));
    h.pump();
    let (utx, upd) = h.a.last_request("UPDATE");
    assert_eq!(text(&upd), moved);
    let now = h.now;
    h.a.respond(now, utx, &upd, 200, "", Some(A_SDP));
    h.pump();
    let uok = resp(&h.b1, 200, db.local_cseq.unwrap());
    assert_eq!(text(&uok), A_SDP);
    // A re-INVITE without SDP: B offers in its 200, A answers in the ACK.
    let now = h.now;
    let (atx, areinv) = h.a.send_in_dialog(now, &mut da, Method::Invite, None);
    h.pump();
    let (btx, breinv) = h.b1.last_request("INVITE");
    assert!(breinv.body().is_empty());
    db.on_request(&breinv).unwrap();
    let now = h.now;
    h.b1.respond(now, btx, &breinv, 200, "btag", Some(B_SDP));
    h.pump();
    let ok = resp(&h.a, 200, da.local_cseq.unwrap());
    assert_eq!(text(&ok), B_SDP);
    let answer = A_SDP.replace("10000", "10200");
    h.a.ack(atx, &areinv, &ok, Some(&answer));
    h.pump();
    let ack = h.b1.acks().pop().expect("B got the ACK");
    assert_eq!(text(&ack), answer, "answer in ACK unchanged");
    assert_eq!(h.sbc.media().allocated, 0);
    assert_eq!(h.sbc.active_calls(), 1);
}

/// A body we cannot parse is still the endpoints' business on a bypassed call: it
/// crosses unchanged (an anchored call needs to read it).
#[test]
fn bypassed_unparsable_sdp_in_dialog_crosses_unchanged() {
    let mut h = all_bypass();
    let (mut da, mut db) = bypassed_call(&mut h);
    let odd = "v=0\r\nthis is not SDP we know\r\nm=audio notaport RTP/AVP 0\r\n";
    let now = h.now;
    let (atx, areinv) = h.a.send_in_dialog(now, &mut da, Method::Invite, Some(odd));
    h.pump();
    let (btx, breinv) = h.b1.last_request("INVITE");
    assert_eq!(text(&breinv), odd, "offer relayed byte for byte");
    assert_eq!(breinv.header("Content-Type"), Some("application/sdp"));
    db.on_request(&breinv).unwrap();
    let now = h.now;
    h.b1.respond(now, btx, &breinv, 200, "btag", Some(odd));
    h.pump();
    let ok = resp(&h.a, 200, 2);
    assert_eq!(text(&ok), odd, "answer relayed byte for byte");
    h.a.ack(atx, &areinv, &ok, None);
    h.pump();
    assert_eq!(h.sbc.active_calls(), 1);
}

#[test]
fn bypassed_call_ends_cleanly_on_bye() {
    let mut h = all_bypass();
    let (mut da, _db) = bypassed_call(&mut h);
    let now = h.now;
    h.a.send_in_dialog(now, &mut da, Method::Bye, None);
    h.pump();
    let (btx, bye) = h.b1.last_request("BYE");
    let now = h.now;
    h.b1.respond(now, btx, &bye, 200, "btag", None);
    h.pump();
    assert!(h.a.statuses().contains(&200));
    assert_eq!(h.sbc.active_calls(), 0);
    let cdrs = h.cdrs();
    assert_eq!(cdrs.len(), 1);
    assert!(cdrs[0].media.is_none(), "no media stats without media");
    assert!(cdrs[0].answer_at_ms.is_some());
    assert!(h.sbc.media().live.is_empty() && h.sbc.media().released.is_empty());
}

#[test]
fn bypassed_failover_replays_the_offer_unchanged() {
    let mut h = all_bypass();
    let (_atx, _ainv, btx, binv) = h.start("100", Some(A_SDP));
    let now = h.now;
    h.b1.respond(now, btx, &binv, 503, "btag", None);
    h.pump();
    let (_, b2inv) = h.b2.last_request("INVITE");
    assert_eq!(text(&b2inv), A_SDP);
    assert_eq!(h.sbc.media().allocated, 0);
}

#[test]
fn route_mixing_modes_or_delayed_offer_is_anchored() {
    // b2 (a failover target) is plain RTP: the call is anchored.
    let mut h = H::with(|c| {
        c.trunks[0].media = MediaMode::Bypass;
        c.trunks[1].media = MediaMode::Bypass;
    });
    let (_atx, _ainv, _btx, binv) = h.start("100", Some(A_SDP));
    assert_eq!(h.sbc.media().allocated, 2, "audio and video, a pair each");
    let b = text(&binv);
    assert!(b.contains(MEDIA_IP) && !b.contains("192.168.1.10"), "{b}");
    assert!(
        b.contains("RTP/AVP") && !b.contains("a=crypto"),
        "bypass anchors as rtp: {b}"
    );
    assert_eq!(h.sbc.stats().media_bypassed, 0);
    // Inbound rtp toward bypass targets: anchored too.
    let mut h = H::with(|c| {
        c.trunks[1].media = MediaMode::Bypass;
        c.trunks[2].media = MediaMode::Bypass;
    });
    let (_atx, _ainv, _btx, binv) = h.start("100", Some(A_SDP));
    assert_eq!(h.sbc.media().allocated, 2);
    assert!(text(&binv).contains(MEDIA_IP));
    // All bypass but no offer: we must offer, so the call is anchored.
    let mut h = all_bypass();
    let (_atx, _ainv, _btx, binv) = h.start("100", None);
    assert_eq!(h.sbc.media().allocated, 1);
    assert!(text(&binv).contains(MEDIA_IP));
}

#[test]
fn transfers_of_a_bypassed_call_are_refused_and_the_call_goes_on() {
    let mut h = all_bypass();
    let (mut da, mut db) = bypassed_call(&mut h);
    let via = h.b1.via();
    let mut req = db.request(Method::Refer, &via).unwrap();
    req.push_header("Refer-To", "<sip:777@example.com>");
    let now = h.now;
    let sbc = PeerAddr {
        transport: Transport::Udp,
        addr: sa(SBC),
        conn: None,
    };
    h.b1.layer.send_request(now, sbc, req).unwrap();
    h.pump();
    let r = h.b1.responses().pop().unwrap();
    assert_eq!(r.status(), Some(403));
    assert_eq!(
        r.as_owned().reason(),
        Some("Transfer Not Possible With Media Bypass")
    );
    assert!(h.b2.requests("INVITE").is_empty());
    // INVITE with Replaces naming the bypassed B leg.
    let (_, binv) = h.b1.last_request("INVITE");
    let rep = format!(
        "{};to-tag={};from-tag=btag",
        binv.call_id().unwrap(),
        binv.from_tag().unwrap().unwrap()
    );
    let now = h.now;
    h.b2.invite_with(
        now,
        "100",
        Some(B_SDP),
        &[("Replaces", &rep), ("Require", "replaces")],
    );
    h.pump();
    assert!(h.b2.statuses().contains(&403), "{:?}", h.b2.statuses());
    assert_eq!(h.a.requests("INVITE").len(), 0, "A not re-INVITEd");
    // The call is intact: A's BYE reaches B.
    let now = h.now;
    h.a.send_in_dialog(now, &mut da, Method::Bye, None);
    h.pump();
    assert_eq!(h.b1.requests("BYE").len(), 1);
    assert_eq!(h.sbc.active_calls(), 0);
    assert_eq!(h.sbc.media().allocated, 0);
}

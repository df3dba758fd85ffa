//! Media interworking in the B2BUA: every `m=` line anchored on its own ports (at most
//! four, the rest port 0; rejected lines stay rejected; BUNDLE stripped), T.38 offers and
//! re-INVITEs (UDPTL, no SDES), per-stream inactivity, DTMF between RFC 4733 and SIP INFO
//! per trunk, and early media from a transfer target.

#[path = "b2bua_harness.rs"]
mod harness;

use harness::*;
use portcullis_engine::b2bua::EndReason;
use portcullis_engine::config::{MediaMode, RedirectMode, RouteConfig};
use portcullis_engine::dialog::Dialog;
use portcullis_engine::media::{DtmfEvent, MediaEvent, MediaId, Side, StreamKind};
use portcullis_engine::transaction::{Method, SipMsg, TxId};
use portcullis_engine::trunk_policy::DtmfMode;
use portcullis_sip::sdp::SessionDescription;

fn body(m: &SipMsg) -> SessionDescription {
    SessionDescription::parse(m.body())
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(m.body())))
}

fn text(m: &SipMsg) -> String {
    String::from_utf8_lossy(m.body()).into_owned()
}

const HEAD: &str =
    "v=0\r\no=peer 77 1 IN IP4 192.168.1.10\r\ns=call\r\nc=IN IP4 192.168.1.10\r\nt=0 0\r\n";

/// Five lines: audio, video, a rejected audio, T.38, and a fifth (beyond the limit).
fn five_lines() -> String {
    format!(
        "{HEAD}m=audio 10000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
m=video 10002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
m=audio 0 RTP/AVP 8\r\n\
m=image 10006 udptl t38\r\na=T38FaxVersion:0\r\na=T38FaxUdpEC:t38UDPRedundancy\r\n\
m=video 10008 RTP/AVP 97\r\na=rtpmap:97 VP8/90000\r\n"
    )
}

/// The (A port, B port) of every allocation, in order.
fn ports(h: &H) -> Vec<(u16, u16)> {
    // The fake hands out ports from its counter: base 40000 + 2n on A, +20000 on B.
    h.sbc
        .media()
        .live
        .iter()
        .map(|id| {
            let base = 40_000 + u16::try_from(id.0 % 2_000).unwrap() * 2;
            (base, base + 20_000)
        })
        .collect()
}

/// The last parameters pushed for stream `id`.
fn last_update(
    h: &H,
    id: MediaId,
) -> (
    portcullis_engine::media::MediaLegParams,
    portcullis_engine::media::MediaLegParams,
) {
    let (_, a, b) = h
        .sbc
        .media()
        .updates
        .iter()
        .rfind(|(i, _, _)| *i == id)
        .cloned()
        .unwrap_or_else(|| panic!("no update of {id:?}"));
    (a, b)
}

/// The one stream of the call (the first when there are more).
fn first_stream(h: &H) -> MediaId {
    *h.sbc.media().live.iter().next().unwrap()
}

/// B1 answers the INVITE `binv` (transaction `btx`) 200 with SDP `answer`, and A ACKs
/// the 200 it gets to its INVITE `ainv` (transaction `atx`); the network settles.
/// Returns A's dialog and that 200.
fn b_answers(
    h: &mut H,
    atx: TxId,
    ainv: &SipMsg,
    btx: TxId,
    binv: &SipMsg,
    answer: &str,
) -> (Dialog, SipMsg) {
    h.reply(B1, btx, binv, 200, "btag", Some(answer));
    let ok = h.a.first_response(200).expect("200 to A");
    let da = h.a.ack(atx, ainv, &ok, None);
    h.pump();
    (da, ok)
}

/// The peer at `addr` sends INFO in `d` with `content_type` and `body`; the network
/// settles. Returns the request.
fn send_info(h: &mut H, addr: &str, d: &mut Dialog, content_type: &str, body: &[u8]) -> SipMsg {
    let now = h.now;
    let peer = h.peer_at(addr);
    let via = peer.via();
    let mut req = d.request(Method::Info, &via).unwrap();
    req.push_header("Content-Type", content_type);
    req.set_body(body.to_vec());
    peer.send(now, req.clone());
    h.pump();
    req
}

/// The last response the peer at `addr` got to `req` (by CSeq number).
fn response_to(h: &mut H, addr: &str, req: &SipMsg) -> SipMsg {
    h.peer_at(addr)
        .responses()
        .into_iter()
        .rfind(|r| r.cseq().unwrap().seq == req.cseq().unwrap().seq)
        .unwrap()
}

#[test]
fn every_line_is_anchored_on_its_own_ports_up_to_four() {
    let mut h = H::new();
    let (atx, ainv, btx, binv) = h.start("100", Some(&five_lines()));
    assert_eq!(h.sbc.media().allocated, 4, "four streams at most");
    let p = ports(&h);
    let offer = body(&binv);
    assert_eq!(offer.media.len(), 5, "every line is kept, in order");
    assert_eq!(offer.media[0].port, p[0].1);
    assert_eq!(offer.media[1].port, p[1].1);
    assert_eq!(offer.media[1].media, "video");
    assert_eq!(offer.media[2].port, 0, "a rejected line stays rejected");
    assert_eq!(offer.media[3].port, p[3].1);
    assert_eq!(offer.media[3].proto.as_str(), "udptl");
    assert_eq!(offer.media[3].formats, vec!["t38"]);
    assert_eq!(
        offer.media[4].port, 0,
        "the fifth line is refused with port 0"
    );
    let distinct: std::collections::BTreeSet<u16> = p.iter().map(|x| x.1).collect();
    assert_eq!(distinct.len(), 4);
    // B takes audio and fax, refuses video (port 0, RFC 3264 §6).
    let answer = "v=0\r\no=b 1 1 IN IP4 172.16.0.20\r\ns=-\r\nc=IN IP4 172.16.0.20\r\nt=0 0\r\n\
m=audio 20000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
m=video 0 RTP/AVP 96\r\nm=audio 0 RTP/AVP 8\r\nm=image 20006 udptl t38\r\nm=video 0 RTP/AVP 97\r\n";
    let (_da, ok) = b_answers(&mut h, atx, &ainv, btx, &binv, answer);
    let ans = body(&ok);
    assert_eq!(ans.media.len(), 5);
    assert_eq!(ans.media[0].port, p[0].0);
    assert_eq!(ans.media[1].port, 0);
    assert_eq!(ans.media[3].port, p[3].0);
    assert_eq!(ans.media[4].port, 0);
    // Each stream is programmed with its own peers and kind.
    let ids: Vec<MediaId> = h.sbc.media().live.iter().copied().collect();
    let (a0, b0) = last_update(&h, ids[0]);
    assert_eq!(a0.peer_rtp, Some(sa("192.168.1.10:10000")));
    assert_eq!(b0.peer_rtp, Some(sa("172.16.0.20:20000")));
    assert_eq!(a0.kind, StreamKind::Rtp);
    let (a1, b1) = last_update(&h, ids[1]);
    assert_eq!(a1.peer_rtp, Some(sa("192.168.1.10:10002")));
    assert_eq!(b1.peer_rtp, None, "video refused by B");
    let (a3, b3) = last_update(&h, ids[3]);
    assert_eq!((a3.kind, b3.kind), (StreamKind::Udptl, StreamKind::Udptl));
    assert_eq!(a3.peer_rtp, Some(sa("192.168.1.10:10006")));
    assert_eq!(b3.peer_rtp, Some(sa("172.16.0.20:20006")));
    // Hanging up releases every stream.
    let mut da = Dialog::from_uac(&ainv, &ok).unwrap();
    h.in_dialog(A, &mut da, Method::Bye, None);
    assert_eq!(h.sbc.media().released.len(), 4);
    assert!(h.sbc.media().live.is_empty());
}

#[test]
fn lines_without_ports_left_are_rejected_and_the_call_goes_on() {
    let mut h = H::new();
    h.sbc.media_mut().capacity = Some(2);
    let (_atx, _ainv, _btx, binv) = h.start("100", Some(&five_lines()));
    assert_eq!(h.sbc.media().allocated, 2);
    let offer = body(&binv);
    assert!(offer.media[0].port != 0 && offer.media[1].port != 0);
    assert!(
        offer.media[2..].iter().all(|m| m.port == 0),
        "{}",
        text(&binv)
    );
    assert_eq!(h.sbc.active_calls(), 1);
}

#[test]
fn bundle_is_not_negotiated() {
    let mut h = H::new();
    let offer = String::from(
        "v=0\r\no=webrtc 5 1 IN IP4 192.168.1.10\r\ns=-\r\nc=IN IP4 192.168.1.10\r\nt=0 0\r\n\
a=group:BUNDLE a0 v1 v2\r\n\
m=audio 10000 RTP/AVP 0\r\na=mid:a0\r\n\
m=video 10002 RTP/AVP 96\r\na=mid:v1\r\na=rtpmap:96 VP8/90000\r\n\
m=video 0 RTP/AVP 97\r\na=mid:v2\r\na=bundle-only\r\na=rtpmap:97 VP8/90000\r\n",
    );
    let (_atx, _ainv, btx, binv) = h.start("100", Some(&offer));
    let t = text(&binv);
    assert!(!t.contains("a=group") && !t.contains("bundle-only"), "{t}");
    let o = body(&binv);
    assert_ne!(o.media[0].port, o.media[1].port, "each line its own port");
    assert_eq!(o.media[2].port, 0, "the bundle-only line stays rejected");
    // The far side's answer (even one with a group) reaches the offerer without one.
    let answer = "v=0\r\no=b 1 1 IN IP4 172.16.0.20\r\ns=-\r\nc=IN IP4 172.16.0.20\r\nt=0 0\r\n\
a=group:BUNDLE a0 v1\r\nm=audio 20000 RTP/AVP 0\r\na=mid:a0\r\nm=video 20002 RTP/AVP 96\r\na=mid:v1\r\nm=video 0 RTP/AVP 97\r\n";
    h.reply(B1, btx, &binv, 200, "btag", Some(answer));
    let ok = h.a.first_response(200).unwrap();
    let t = text(&ok);
    assert!(!t.contains("a=group"), "{t}");
    let a = body(&ok);
    assert!(a.media[0].port != 0 && a.media[1].port != 0 && a.media[0].port != a.media[1].port);
}

/// The usual audio call, then A re-INVITEs to T.38 (`m=image` in the audio line's place,
/// as fax machines and gateways do): anchored on the same ports as UDPTL; on an SRTP leg
/// the fax line takes no key.
#[test]
fn t38_reinvite_is_anchored_as_udptl() {
    let mut h = H::with(|c| c.trunks[1].media = MediaMode::Srtp);
    let (mut da, mut db, _atx, _ainv) = h.answered();
    let id = first_stream(&h);
    let (a_port, b_port) = ports(&h)[0];
    let t38 = format!(
        "{HEAD}m=image 10004 udptl t38\r\na=T38FaxVersion:0\r\na=T38MaxBitRate:14400\r\na=T38FaxRateManagement:transferredTCF\r\n"
    );
    let (atx, reinv) = h.in_dialog(A, &mut da, Method::Invite, Some(&t38));
    let (btx, breinv) = h.b1.last_request("INVITE");
    let o = body(&breinv);
    assert_eq!(o.media.len(), 1);
    assert_eq!(o.media[0].media, "image");
    assert_eq!(o.media[0].port, b_port, "the same pair carries the fax");
    assert_eq!(o.media[0].proto.as_str(), "udptl");
    let t = text(&breinv);
    assert!(!t.contains("a=crypto") && !t.contains("RTP/SAVP"), "{t}");
    assert!(
        t.contains("a=T38MaxBitRate:14400"),
        "T.38 attributes pass: {t}"
    );
    db.on_request(&breinv).unwrap();
    let answer = "v=0\r\no=b 1 2 IN IP4 172.16.0.20\r\ns=-\r\nc=IN IP4 172.16.0.20\r\nt=0 0\r\nm=image 20004 udptl t38\r\na=T38FaxVersion:0\r\n";
    h.reply(B1, btx, &breinv, 200, "btag", Some(answer));
    let ok = h
        .a
        .responses()
        .into_iter()
        .rfind(|r| r.status() == Some(200) && r.cseq().unwrap().seq == reinv.cseq().unwrap().seq)
        .expect("200 to the re-INVITE");
    let a = body(&ok);
    assert_eq!(a.media[0].media, "image");
    assert_eq!(a.media[0].port, a_port);
    h.a.ack_reinvite(atx, &da, &ok, None);
    h.pump();
    let (pa, pb) = last_update(&h, id);
    assert_eq!((pa.kind, pb.kind), (StreamKind::Udptl, StreamKind::Udptl));
    assert_eq!(pa.peer_rtp, Some(sa("192.168.1.10:10004")));
    assert_eq!(pb.peer_rtp, Some(sa("172.16.0.20:20004")));
    assert!(
        pb.srtp_in.is_none() && pb.srtp_out.is_none(),
        "no SDES on UDPTL"
    );
    assert_eq!(h.sbc.media().allocated, 1);
}

#[test]
fn a_quiet_stream_does_not_end_a_call_whose_other_stream_flows() {
    let mut h = H::new();
    let offer = format!(
        "{HEAD}m=audio 10000 RTP/AVP 0\r\nm=video 10002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    );
    let (atx, ainv, btx, binv) = h.start("100", Some(&offer));
    let answer = "v=0\r\no=b 1 1 IN IP4 172.16.0.20\r\ns=-\r\nc=IN IP4 172.16.0.20\r\nt=0 0\r\n\
m=audio 20000 RTP/AVP 0\r\nm=video 20002 RTP/AVP 96\r\n";
    b_answers(&mut h, atx, &ainv, btx, &binv, answer);
    let ids: Vec<MediaId> = h.sbc.media().live.iter().copied().collect();
    let now = h.now;
    h.sbc.handle_media_event(now, MediaEvent::Inactive(ids[1]));
    h.pump();
    assert_eq!(h.sbc.active_calls(), 1, "video alone went quiet");
    h.sbc.handle_media_event(now, MediaEvent::Inactive(ids[0]));
    h.pump();
    assert_eq!(h.sbc.active_calls(), 0, "every stream quiet");
    assert_eq!(h.cdrs()[0].end_reason, EndReason::MediaInactivity);
}

/// A's offer has telephone-event; B's trunk takes DTMF as INFO and answers without it.
fn info_toward_b() -> (H, Dialog, Dialog) {
    let mut h = H::with(|c| c.trunks[1].policy.dtmf = DtmfMode::Info);
    let a_sdp = sdp("192.168.1.10", 10_000, "");
    let (atx, ainv, btx, binv) = h.start("100", Some(&a_sdp));
    let answer = "v=0\r\no=b 1 1 IN IP4 172.16.0.20\r\ns=-\r\nc=IN IP4 172.16.0.20\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\r\n";
    let (da, ok) = b_answers(&mut h, atx, &ainv, btx, &binv, answer);
    let t = text(&ok);
    assert!(
        t.contains("a=rtpmap:101 telephone-event/8000")
            && t.contains("m=audio 40002 RTP/AVP 0 101"),
        "the answer to A keeps telephone-event so A sends events: {t}"
    );
    let db = Dialog::from_uas(&binv, "btag", &h.b1.contact(), true).unwrap();
    (h, da, db)
}

#[test]
fn rfc4733_events_become_info_toward_an_info_trunk() {
    let (mut h, _da, _db) = info_toward_b();
    let id = first_stream(&h);
    let (pa, pb) = last_update(&h, id);
    assert_eq!(pa.dtmf.detect, Some(101), "A's events are detected");
    assert!(pa.dtmf.drop_events, "and not relayed to B");
    assert_eq!(pb.dtmf.detect, None);
    assert_eq!(pb.dtmf.generate, None);
    let now = h.now;
    let ev = DtmfEvent {
        event: 11,
        duration: 1600,
    };
    h.sbc
        .handle_media_event(now, MediaEvent::Dtmf(id, Side::A, ev));
    h.pump();
    let infos = h.b1.requests("INFO");
    assert_eq!(infos.len(), 1);
    let (_, info) = &infos[0];
    assert_eq!(info.header("Content-Type"), Some("application/dtmf-relay"));
    assert_eq!(
        text(info),
        "Signal=#\r\nDuration=200\r\n",
        "1600 units at 8 kHz"
    );
    assert_eq!(h.sbc.stats().dtmf_to_info, 1);
    assert!(h.a.requests("INFO").is_empty());
}

#[test]
fn info_becomes_rfc4733_toward_an_rfc4733_trunk() {
    let mut h = H::with(|c| c.trunks[1].policy.dtmf = DtmfMode::Rfc4733);
    let (mut da, _db, _atx, _ainv) = h.answered();
    let id = first_stream(&h);
    let (pa, pb) = last_update(&h, id);
    assert_eq!(
        pb.dtmf.generate,
        Some(101),
        "events toward B in its payload type"
    );
    assert_eq!(pa.dtmf.detect, None, "B takes A's events as they are");
    let info = send_info(
        &mut h,
        A,
        &mut da,
        "application/dtmf-relay",
        b"Signal=5\r\nDuration=160\r\n",
    );
    let ok = response_to(&mut h, A, &info);
    assert_eq!(ok.status(), Some(200));
    assert!(h.b1.requests("INFO").is_empty(), "not relayed");
    assert_eq!(
        h.sbc.media().dtmf,
        vec![(
            id,
            Side::B,
            DtmfEvent {
                event: 5,
                duration: 1280
            }
        )]
    );
    assert_eq!(h.sbc.stats().dtmf_to_rfc4733, 1);
    // An unreadable DTMF body is refused with a reason.
    let req = send_info(
        &mut h,
        A,
        &mut da,
        "application/dtmf-relay",
        b"Signal=Z\r\n",
    );
    let r = response_to(&mut h, A, &req);
    assert_eq!(r.status(), Some(400));
    assert_eq!(h.sbc.stats().dtmf_failed, 1);
    assert_eq!(h.sbc.media().dtmf.len(), 1);
    // Any other INFO crosses as before.
    send_info(
        &mut h,
        A,
        &mut da,
        "application/media_control+xml",
        b"<media_control/>",
    );
    assert_eq!(h.b1.requests("INFO").len(), 1);
}

/// The caller's trunk takes RFC 4733 only and its offer has telephone-event; the callee
/// (a passthrough trunk, an INFO-only PBX) answers without it. The answer to the caller
/// keeps telephone-event (we play events toward it), and the callee's INFO digits are
/// answered here and played toward the caller.
#[test]
fn info_from_the_callee_becomes_rfc4733_toward_an_rfc4733_caller() {
    let mut h = H::with(|c| c.trunks[0].policy.dtmf = DtmfMode::Rfc4733);
    let a_sdp = sdp("192.168.1.10", 10_000, "");
    let (atx, ainv, btx, binv) = h.start("100", Some(&a_sdp));
    let answer = "v=0\r\no=b 1 1 IN IP4 172.16.0.20\r\ns=-\r\nc=IN IP4 172.16.0.20\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\r\n";
    let (_, ok) = b_answers(&mut h, atx, &ainv, btx, &binv, answer);
    let t = text(&ok);
    assert!(
        t.contains("a=rtpmap:101 telephone-event/8000") && t.contains("RTP/AVP 0 101"),
        "the answer to A keeps telephone-event so events can be played to it: {t}"
    );
    let mut db = Dialog::from_uas(&binv, "btag", &h.b1.contact(), true).unwrap();
    let id = first_stream(&h);
    let (pa, pb) = last_update(&h, id);
    assert_eq!(
        pa.dtmf.generate,
        Some(101),
        "events toward A in its payload type"
    );
    assert_eq!(pb.dtmf.detect, None);
    let req = send_info(
        &mut h,
        B1,
        &mut db,
        "application/dtmf-relay",
        b"Signal=*\r\nDuration=100\r\n",
    );
    let ok = response_to(&mut h, B1, &req);
    assert_eq!(ok.status(), Some(200));
    assert!(h.a.requests("INFO").is_empty(), "not relayed");
    assert_eq!(
        h.sbc.media().dtmf,
        vec![(
            id,
            Side::A,
            DtmfEvent {
                event: 10,
                duration: 800
            }
        )]
    );
}

#[test]
fn passthrough_touches_nothing() {
    let mut h = H::new();
    let (mut da, _db, _atx, _ainv) = h.answered();
    let id = first_stream(&h);
    let (pa, pb) = last_update(&h, id);
    assert_eq!(pa.dtmf, Default::default());
    assert_eq!(pb.dtmf, Default::default());
    send_info(
        &mut h,
        A,
        &mut da,
        "application/dtmf-relay",
        b"Signal=5\r\nDuration=160\r\n",
    );
    let infos = h.b1.requests("INFO");
    assert_eq!(infos.len(), 1, "INFO relayed");
    assert_eq!(text(&infos[0].1), "Signal=5\r\nDuration=160\r\n");
    assert!(h.sbc.media().dtmf.is_empty());
}

/// b1 calling 7xx goes to b2 (the transfer target).
fn xfer() -> H {
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

#[test]
fn early_media_of_a_transfer_target_reaches_the_remaining_party() {
    let mut h = xfer();
    let (_da, mut db, _atx, _ainv) = h.answered();
    let via = h.b1.via();
    let mut req = db.request(Method::Refer, &via).unwrap();
    req.push_header("Refer-To", "<sip:777@b2>");
    let now = h.now;
    h.b1.send(now, req);
    h.pump();
    let (ctx, cinv) = h.b2.last_request("INVITE");
    // The target rings with early media: A hears it at once.
    let early = sdp("172.16.0.30", 30_000, "");
    h.reply(B2, ctx, &cinv, 183, "ctag", Some(&early));
    let (_, pa, pb) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(
        pb.peer_rtp,
        Some(sa("172.16.0.30:30000")),
        "B side now the target"
    );
    assert_eq!(pa.peer_rtp, Some(sa("192.168.1.10:10000")));
    // The target gives up: the referrer is A's peer again.
    h.reply(B2, ctx, &cinv, 486, "ctag", None);
    let (_, _, pb) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(
        pb.peer_rtp,
        Some(sa("172.16.0.20:20000")),
        "back to the referrer"
    );
    assert_eq!(h.sbc.active_calls(), 1);
}

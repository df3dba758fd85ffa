//! Media realms and listeners per trunk: each leg's SDP carries its own realm's
//! advertised address (`IN IP4` toward an IPv4 realm, `IN IP6` toward an IPv6 one,
//! whatever the other side's SDP said), the allocation asks for each side's realm (for
//! every anchored stream of the call), a takeover re-creates the pair in the same realms
//! with the addresses the peers were told, and a trunk's signalling names and leaves
//! from the trunk's own listener.

#[path = "b2bua_harness.rs"]
mod harness;

use std::sync::Arc;

use harness::*;
use portcullis_engine::b2bua::B2bua;
use portcullis_engine::config::ListenerInfo;
use portcullis_engine::dialog::Dialog;
use portcullis_engine::entropy::SeededEntropy;
use portcullis_engine::ha::CallSnapshot;
use portcullis_engine::media::RealmId;
use portcullis_engine::transaction::Method;
use portcullis_engine::transaction::{SipMsg, Transport};
use portcullis_sip::sdp::SessionDescription;

/// The listener facing trunk b1 (an inside interface).
const INSIDE: &str = "10.0.0.9:5070";
const V6_MEDIA: &str = "2001:db8::5";

fn body(m: &SipMsg) -> SessionDescription {
    SessionDescription::parse(m.body())
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(m.body())))
}

fn v6_sdp(ip: &str, port: u16) -> String {
    format!(
        "v=0\r\no=pbx 5 1 IN IP6 {ip}\r\ns=call\r\nc=IN IP6 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
}

/// b1 and b2 in realm 1 (IPv6 media) behind the second listener; a in realm 0.
fn h() -> H {
    let mut h = H::with(|c| {
        c.listeners.push(ListenerInfo {
            transport: Transport::Udp,
            addr: sa(INSIDE),
        });
        for t in c.trunks.iter_mut().filter(|t| t.name != "a") {
            t.realm = RealmId(1);
            t.listener = Some(1);
        }
    });
    h.sbc.media_mut().realm_ips = vec![MEDIA_IP.parse().unwrap(), V6_MEDIA.parse().unwrap()];
    h
}

#[test]
fn a_v4_caller_and_a_v6_callee_each_get_their_realms_address() {
    let mut h = h();
    let (_atx, _ainv, btx, binv) = h.start("100", Some(&sdp("192.168.1.10", 10_000, "")));
    assert_eq!(h.sbc.media().realms, vec![[RealmId(0), RealmId(1)]]);
    // Toward b1: IPv6 media address, our B port.
    let offer = String::from_utf8_lossy(binv.body()).into_owned();
    assert!(
        offer.contains(&format!("c=IN IP6 {V6_MEDIA}\r\n")),
        "{offer}"
    );
    assert!(
        offer.contains("o=- ") && offer.contains(&format!("IN IP6 {V6_MEDIA}\r\n")),
        "{offer}"
    );
    assert!(!offer.contains("IP4"), "{offer}");
    assert_eq!(
        body(&binv).rtp_destination(0),
        Some(sa(&format!("[{V6_MEDIA}]:60002")))
    );
    // b1 answers from IPv6; the caller gets IPv4.
    h.reply(
        B1,
        btx,
        &binv,
        200,
        "btag",
        Some(&v6_sdp("2001:db8::77", 30_000)),
    );
    let ok = h.a.first_response(200).expect("200 relayed");
    let answer = String::from_utf8_lossy(ok.body()).into_owned();
    assert!(
        answer.contains(&format!("c=IN IP4 {MEDIA_IP}\r\n")),
        "{answer}"
    );
    assert!(!answer.contains("IP6"), "{answer}");
    assert_eq!(
        body(&ok).rtp_destination(0),
        Some(sa(&format!("{MEDIA_IP}:40002")))
    );
    let (_, a, b) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(a.peer_rtp, Some(sa("192.168.1.10:10000")));
    assert_eq!(b.peer_rtp, Some(sa("[2001:db8::77]:30000")));
}

#[test]
fn a_trunk_s_signalling_uses_its_listener() {
    let mut h = h();
    let (_atx, _ainv, _btx, binv) = h.start("100", Some(&sdp("192.168.1.10", 10_000, "")));
    let via = binv.header("Via").expect("via");
    assert!(via.contains(&format!("SIP/2.0/UDP {INSIDE};")), "{via}");
    let contact = binv.header("Contact").expect("contact");
    assert_eq!(contact, format!("<sip:sbc@{INSIDE}>"));
    // Everything toward b1 leaves from the inside listener; toward a, the driver picks.
    let to_b1: Vec<_> = h.sent_from.iter().filter(|(d, _)| *d == sa(B1)).collect();
    assert!(!to_b1.is_empty());
    assert!(
        to_b1.iter().all(|(_, l)| *l == Some(sa(INSIDE))),
        "{to_b1:?}"
    );
    assert!(h
        .sent_from
        .iter()
        .filter(|(d, _)| *d == sa(A))
        .all(|(_, l)| l.is_none()));
}

/// Targets of another realm than the pair's B side are skipped (the configuration check
/// keeps a route's targets in one realm; this is the engine's own guard).
#[test]
fn a_target_in_another_realm_is_skipped() {
    let mut h = H::with(|c| {
        if let Some(t) = c.trunks.iter_mut().find(|t| t.name == "b2") {
            t.realm = RealmId(1);
        }
    });
    let (_atx, _ainv, btx, binv) = h.start("100", Some(&sdp("192.168.1.10", 10_000, "")));
    assert_eq!(h.sbc.media().realms, vec![[RealmId(0), RealmId(0)]]);
    h.reply(B1, btx, &binv, 503, "btag", None);
    assert!(h.b2.requests("INVITE").is_empty(), "b2 is in realm 1");
    let r = h.a.last_response(503).expect("the caller gets the failure");
    assert!(
        String::from_utf8_lossy(&r.to_bytes()).starts_with("SIP/2.0 503 X\r\n"),
        "b1's own failure is relayed: {}",
        String::from_utf8_lossy(&r.to_bytes())
    );
}

#[test]
fn a_listener_of_another_transport_is_a_config_error() {
    let mut cfg = config();
    cfg.trunks[1].listener = Some(0);
    cfg.trunks[1].transport = Transport::Tcp;
    assert!(cfg.validate().is_err());
    cfg.trunks[1].transport = Transport::Udp;
    cfg.trunks[1].listener = Some(3);
    assert!(cfg.validate().is_err());
    cfg.trunks[1].listener = Some(0);
    assert!(cfg.validate().is_ok());
}

/// Audio and video from an IPv4 caller, the video line with its own `c=`.
fn audio_and_video() -> String {
    "v=0\r\no=peer 77 1 IN IP4 192.168.1.10\r\ns=call\r\nc=IN IP4 192.168.1.10\r\nt=0 0\r\n\
m=audio 10000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
m=video 10002 RTP/AVP 96\r\nc=IN IP4 192.168.1.10\r\na=rtpmap:96 H264/90000\r\n"
        .to_owned()
}

#[test]
fn every_stream_of_a_call_is_anchored_in_the_realms_of_its_sides() {
    let mut h = h();
    let (_atx, _ainv, btx, binv) = h.start("100", Some(&audio_and_video()));
    assert_eq!(
        h.sbc.media().realms,
        vec![[RealmId(0), RealmId(1)]; 2],
        "the audio and the video stream each take a leg in each side's realm"
    );
    let offer = body(&binv);
    assert_eq!(offer.media.len(), 2);
    // Toward b1: every line on its B port at the IPv6 realm's address.
    assert_eq!(
        offer.rtp_destination(0),
        Some(sa(&format!("[{V6_MEDIA}]:60002")))
    );
    assert_eq!(
        offer.rtp_destination(1),
        Some(sa(&format!("[{V6_MEDIA}]:60004")))
    );
    let text = String::from_utf8_lossy(binv.body()).into_owned();
    assert_eq!(
        text.matches(&format!("c=IN IP6 {V6_MEDIA}\r\n")).count(),
        2,
        "the session c= and the video line's own: {text}"
    );
    assert!(!text.contains("IP4"), "{text}");
    let answer =
        "v=0\r\no=pbx 5 1 IN IP6 2001:db8::77\r\ns=call\r\nc=IN IP6 2001:db8::77\r\nt=0 0\r\n\
m=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
m=video 30002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
    h.reply(B1, btx, &binv, 200, "btag", Some(answer));
    let ok = h.a.first_response(200).expect("200 relayed");
    let back = body(&ok);
    assert_eq!(
        back.rtp_destination(0),
        Some(sa(&format!("{MEDIA_IP}:40002")))
    );
    assert_eq!(
        back.rtp_destination(1),
        Some(sa(&format!("{MEDIA_IP}:40004")))
    );
    let text = String::from_utf8_lossy(ok.body()).into_owned();
    assert!(text.contains(&format!("c=IN IP4 {MEDIA_IP}\r\n")), "{text}");
    assert!(!text.contains("IP6"), "{text}");
    // The video stream relays between the IPv4 caller and the IPv6 callee.
    let video = h.sbc.media().live.iter().nth(1).copied().expect("video");
    let (_, a, b) = h
        .sbc
        .media()
        .updates
        .iter()
        .rfind(|(id, _, _)| *id == video)
        .cloned()
        .expect("video programmed");
    assert_eq!(a.peer_rtp, Some(sa("192.168.1.10:10002")));
    assert_eq!(b.peer_rtp, Some(sa("[2001:db8::77]:30002")));
}

#[test]
fn a_call_across_realms_is_taken_over_in_its_realms() {
    let mut h = h();
    h.sbc.set_ha(true);
    let (atx, ainv, btx, binv) = h.start("100", Some(&sdp("192.168.1.10", 10_000, "")));
    h.reply(
        B1,
        btx,
        &binv,
        200,
        "btag",
        Some(&v6_sdp("2001:db8::77", 30_000)),
    );
    let ok = h.a.first_response(200).expect("200 relayed");
    let _da = h.a.ack(atx, &ainv, &ok, None);
    h.pump();
    let mut db = Dialog::from_uas(&binv, "btag", &h.b1.contact(), true).unwrap();
    let call = h.sbc.poll_ha_dirty().expect("the answered call is dirty");
    let snap = h.sbc.export_call(call).expect("exported");
    let m = snap.media.as_ref().expect("anchored");
    assert_eq!(
        m.advertised_ip,
        MEDIA_IP.parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(m.advertised_ip_b, Some(V6_MEDIA.parse().unwrap()));
    let json = serde_json::to_string(&snap).unwrap();
    let back: CallSnapshot = serde_json::from_str(&json).unwrap();
    // The standby: same configuration, realm addresses of its own.
    let cfg = Arc::clone(h.sbc.config());
    h.sbc = B2bua::new(cfg, FakeMedia::default(), SeededEntropy::new(99)).unwrap();
    h.sbc.media_mut().realm_ips = vec![
        "192.0.2.200".parse().unwrap(),
        "2001:db8::200".parse().unwrap(),
    ];
    h.sbc.restore_call(h.now, &back).expect("restored");
    let restored = h.sbc.media().restored.clone();
    assert_eq!(
        restored,
        vec![(restored[0].0, m.streams[0].ports, [RealmId(0), RealmId(1)])],
        "the pair comes back on its ports, A in realm 0 and B in realm 1"
    );
    // b1 puts the call on hold: A's re-INVITE is IPv4, on the address it was told.
    let hold = v6_sdp("2001:db8::77", 30_000) + "a=sendonly\r\n";
    h.in_dialog(B1, &mut db, Method::Invite, Some(&hold));
    let (_itx, reinv) = h.a.last_request("INVITE");
    let text = String::from_utf8_lossy(reinv.body()).into_owned();
    assert!(text.contains(&format!("c=IN IP4 {MEDIA_IP}\r\n")), "{text}");
    assert!(text.contains("a=sendonly"), "{text}");
    assert!(!text.contains("IP6"), "{text}");
}

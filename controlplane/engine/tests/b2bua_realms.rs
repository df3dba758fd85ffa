//! Media realms and listeners per trunk: each leg's SDP carries its own realm's
//! advertised address (`IN IP4` toward an IPv4 realm, `IN IP6` toward an IPv6 one,
//! whatever the other side's SDP said), the allocation asks for each side's realm, and a
//! trunk's signalling names and leaves from the trunk's own listener.

#[path = "b2bua_harness.rs"]
mod harness;

use harness::*;
use portcullis_engine::config::ListenerInfo;
use portcullis_engine::media::RealmId;
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

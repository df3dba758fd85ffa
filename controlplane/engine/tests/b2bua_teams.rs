//! Teams Direct Routing specifics in the B2BUA: FQDN Contact, `X-MS-SBC` on
//! requests toward Teams, History-Info on the initial INVITE and re-INVITEs
//! (and, from a Teams REFER, on the transfer INVITE), rtcp-mux and
//! `|2^31` SDES lifetime toward Teams, no delayed offer toward Teams, ICE-lite
//! only with media bypass.

#[path = "b2bua_harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;
use portcullis_engine::config::{MediaMode, TeamsSettings};
use portcullis_engine::transaction::Method;

/// b1 is Teams (media bypass on).
fn teams() -> H {
    teams_with(true, MediaMode::Rtp)
}

/// b1 is Teams with `media_bypass` and media mode `mode`.
fn teams_with(bypass: bool, mode: MediaMode) -> H {
    H::with(|c| {
        c.teams = Some(TeamsSettings {
            sbc_fqdn: "sbc.example.com".into(),
            options_interval: Duration::from_secs(60),
            media_bypass: bypass,
            proxies: Vec::new(),
        });
        c.trunks[1].tls_server_name = Some("sip.pstnhub.microsoft.com".into());
        c.trunks[1].media = mode;
    })
}

const HI: &str = "<sip:+4930999@pbx.example.com>;index=1";
/// [`HI`] as it crosses: our host instead of the PBX's (RFC 7044 entries pass
/// on every trunk, topology hidden).
const HI_OUT: &str = "<sip:+4930999@10.0.0.1:5060>;index=1";

#[test]
fn invite_toward_teams_has_fqdn_contact_x_ms_sbc_and_history_info() {
    let mut h = teams();
    let now = h.now;
    let a_sdp = sdp("192.168.1.10", 10_000, "");
    h.a.invite_with(now, "100", Some(&a_sdp), &[("History-Info", HI)]);
    h.pump();
    let (_, inv) = h.b1.last_request("INVITE");
    let x = inv.header("X-MS-SBC").expect("X-MS-SBC toward Teams");
    assert!(x.starts_with("Portcullis/"), "{x}");
    let contact = inv.header("Contact").unwrap();
    assert!(contact.contains("sbc.example.com"), "{contact}");
    assert!(!contact.contains("10.0.0.1"), "{contact}");
    assert_eq!(inv.header("History-Info"), Some(HI_OUT));
}

#[test]
fn in_dialog_requests_toward_teams_carry_x_ms_sbc() {
    let mut h = teams();
    let (mut da, _db, _atx, _ainv) = h.answered();
    h.in_dialog(A, &mut da, Method::Bye, None);
    let (_, bye) = h.b1.last_request("BYE");
    assert!(bye.header("X-MS-SBC").is_some());
    // Not toward the non-Teams A side.
    assert!(h
        .a
        .requests("BYE")
        .iter()
        .all(|(_, r)| r.header("X-MS-SBC").is_none()));
}

#[test]
fn plain_trunks_get_no_x_ms_sbc_and_history_info_without_the_pbx_host() {
    let mut h = H::new();
    let now = h.now;
    let a_sdp = sdp("192.168.1.10", 10_000, "");
    h.a.invite_with(now, "100", Some(&a_sdp), &[("History-Info", HI)]);
    h.pump();
    let (_, inv) = h.b1.last_request("INVITE");
    assert!(inv.header("X-MS-SBC").is_none());
    assert_eq!(inv.header("History-Info"), Some(HI_OUT));
}

fn ice_of(body: &[u8]) -> (String, String) {
    let s = String::from_utf8_lossy(body);
    let get = |k: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in {s}"))
            .trim()
            .to_owned()
    };
    assert!(s.contains("a=ice-lite"), "{s}");
    (get("a=ice-ufrag:"), get("a=ice-pwd:"))
}

#[test]
fn ice_lite_toward_teams_stable_across_reinvite_and_programmed() {
    let mut h = teams();
    let (mut da, mut db, _atx, _ainv) = h.answered();
    let (_, inv) = h.b1.last_request("INVITE");
    let creds = ice_of(inv.body());
    let body = String::from_utf8_lossy(inv.body()).into_owned();
    assert!(
        body.lines()
            .any(|l| l.starts_with("a=candidate:") && l.contains(MEDIA_IP) && l.contains(" 1 UDP")),
        "{body}"
    );
    // A (not Teams) sees no ICE.
    let a_ok = h.a.first_response(200).unwrap();
    assert!(!String::from_utf8_lossy(a_ok.body()).contains("ice"));
    let (_, _, b_params) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(b_params.ice_lite, Some(creds.clone()));
    // Teams re-INVITEs (session refresh): our answer keeps the credentials.
    let offer = sdp("172.16.0.20", 20_000, "a=inactive\r\n");
    h.in_dialog(B1, &mut db, Method::Invite, Some(&offer));
    let (atx, areinv) = h.a.last_request("INVITE");
    assert!(String::from_utf8_lossy(areinv.body()).contains("a=inactive"));
    let answer = sdp("192.168.1.10", 10_000, "a=inactive\r\n");
    h.reply(A, atx, &areinv, 200, &da.id.local_tag, Some(&answer));
    let ok = h.b1.last_response(200).expect("200 to Teams re-INVITE");
    assert_eq!(ice_of(ok.body()), creds);
    let _ = &mut da;
}

#[test]
fn srtp_toward_teams_has_key_lifetime_2_31() {
    let mut h = teams_with(true, MediaMode::Srtp);
    let now = h.now;
    let a_sdp = sdp("192.168.1.10", 10_000, "");
    h.a.invite(now, "100", Some(&a_sdp));
    h.pump();
    let (_, inv) = h.b1.last_request("INVITE");
    let body = String::from_utf8_lossy(inv.body()).into_owned();
    let crypto = body
        .lines()
        .find(|l| l.starts_with("a=crypto:"))
        .unwrap_or_else(|| panic!("{body}"));
    assert!(crypto.contains("AES_CM_128_HMAC_SHA1_80"), "{crypto}");
    assert!(crypto.ends_with("|2^31"), "{crypto}");
    assert!(body.contains("RTP/SAVP"), "{body}");
}

fn text(m: &portcullis_engine::transaction::SipMsg) -> String {
    String::from_utf8_lossy(m.body()).into_owned()
}

#[test]
fn without_media_bypass_no_ice_but_rtcp_mux_and_lifetime() {
    let mut h = teams_with(false, MediaMode::Srtp);
    let (_da, _db, _atx, _ainv) = h.answered();
    let (_, inv) = h.b1.last_request("INVITE");
    let body = text(&inv);
    assert!(
        !body.contains("ice") && !body.contains("a=candidate"),
        "{body}"
    );
    // The caller's SDP had a=rtcp and no rtcp-mux: Teams still gets rtcp-mux.
    assert!(body.contains("a=rtcp-mux"), "{body}");
    assert!(!body.contains("a=rtcp:"), "{body}");
    let crypto = body.lines().find(|l| l.starts_with("a=crypto:")).unwrap();
    assert!(crypto.ends_with("|2^31"), "{crypto}");
    assert!(h
        .sbc
        .media()
        .updates
        .iter()
        .all(|(_, a, b)| a.ice_lite.is_none() && b.ice_lite.is_none()));
    // The non-Teams caller gets neither rtcp-mux forced nor a lifetime.
    let ok = h.a.first_response(200).unwrap();
    let ab = text(&ok);
    assert!(!ab.contains("2^31") && !ab.contains("rtcp-mux"), "{ab}");
}

#[test]
fn media_bypass_on_gives_ice_lite_toward_teams_only() {
    let mut h = teams_with(true, MediaMode::Srtp);
    let _ = h.answered();
    let (_, inv) = h.b1.last_request("INVITE");
    let body = text(&inv);
    assert!(
        body.contains("a=ice-lite") && body.contains("a=rtcp-mux"),
        "{body}"
    );
    let candidates = body
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .count();
    assert_eq!(candidates, 1, "one host candidate with rtcp-mux: {body}");
    let (_, a_p, b_p) = h.sbc.media().updates.last().unwrap().clone();
    assert!(a_p.ice_lite.is_none());
    assert!(b_p.ice_lite.is_some());
}

#[test]
fn delayed_offer_from_the_caller_is_never_passed_to_teams() {
    let mut h = teams_with(false, MediaMode::Srtp);
    h.invite_from(A, "100", None);
    let (_, inv) = h.b1.last_request("INVITE");
    assert!(
        inv.header("Content-Type")
            .is_some_and(|c| c.starts_with("application/sdp")),
        "INVITE toward Teams carries an offer"
    );
    let body = text(&inv);
    assert!(
        body.contains("m=audio ") && body.contains("RTP/SAVP"),
        "{body}"
    );
    assert!(body.contains("a=rtcp-mux"), "{body}");
    assert!(
        body.lines()
            .any(|l| l.starts_with("a=crypto:") && l.ends_with("|2^31")),
        "{body}"
    );
}

/// a is Teams (calls from Teams), b1 a plain trunk.
fn teams_caller() -> H {
    H::with(|c| {
        c.teams = Some(TeamsSettings {
            sbc_fqdn: "sbc.example.com".into(),
            options_interval: Duration::from_secs(60),
            media_bypass: false,
            proxies: Vec::new(),
        });
        c.trunks[0].tls_server_name = Some("sip.pstnhub.microsoft.com".into());
        c.trunks[0].media = MediaMode::Srtp;
    })
}

const TEAMS_CRYPTO: &str =
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^31\r\n";

fn answer_to_teams(offer_extra: &str) -> String {
    let mut h = teams_caller();
    let offer = sdp("52.112.0.10", 50_000, offer_extra).replace("RTP/AVP", "RTP/SAVP");
    let (atx, ainv, btx, binv) = h.start("100", Some(&offer));
    let _ = (atx, ainv);
    // The carrier answers without rtcp-mux.
    let answer = sdp("172.16.0.20", 20_000, "");
    h.reply(B1, btx, &binv, 200, "btag", Some(&answer));
    let ok = h.a.first_response(200).unwrap();
    text(&ok)
}

#[test]
fn answer_toward_teams_has_rtcp_mux_when_teams_offered_it() {
    let body = answer_to_teams(&format!("a=rtcp-mux\r\n{TEAMS_CRYPTO}"));
    assert!(body.contains("a=rtcp-mux"), "{body}");
    let crypto = body.lines().find(|l| l.starts_with("a=crypto:")).unwrap();
    assert!(crypto.ends_with("|2^31"), "{crypto}");
    // RFC 5761: no rtcp-mux in an answer to an offer without it.
    let body = answer_to_teams(TEAMS_CRYPTO);
    assert!(!body.contains("a=rtcp-mux"), "{body}");
}

/// An in-dialog request with extra headers from `p`.
fn in_dialog_with(
    p: &mut Peer,
    now: portcullis_engine::time::Timestamp,
    d: &mut portcullis_engine::dialog::Dialog,
    method: Method,
    sdp_body: Option<&str>,
    extra: &[(&str, &str)],
) {
    let via = p.via();
    let mut req = d.request(method, &via).unwrap();
    for (n, v) in extra {
        req.push_header(n, v);
    }
    if let Some(s) = sdp_body {
        req.push_header("Content-Type", "application/sdp");
        req.set_body(s.as_bytes().to_vec());
    }
    p.send(now, req);
}

/// An answered call in `h`, then A re-INVITEs (hold) with History-Info; returns
/// the re-INVITE as b1 got it.
fn reinvite_with_history_info(mut h: H) -> portcullis_engine::transaction::SipMsg {
    let (mut da, _db, _atx, _ainv) = h.answered();
    let now = h.now;
    let offer = sdp("192.168.1.10", 10_000, "a=sendonly\r\n");
    in_dialog_with(
        &mut h.a,
        now,
        &mut da,
        Method::Invite,
        Some(&offer),
        &[("History-Info", HI)],
    );
    h.pump();
    let invs = h.b1.requests("INVITE");
    assert_eq!(invs.len(), 2);
    invs[1].1.clone()
}

#[test]
fn history_info_crosses_on_reinvite_toward_teams_and_plain_trunks() {
    let reinv = reinvite_with_history_info(teams());
    assert_eq!(reinv.header("History-Info"), Some(HI_OUT));
    let reinv = reinvite_with_history_info(H::new());
    assert_eq!(reinv.header("History-Info"), Some(HI_OUT));
}

#[test]
fn transfer_invite_from_a_teams_refer_carries_its_history_info() {
    let mut h = teams();
    let (_da, mut db, _atx, _ainv) = h.answered();
    let hi = "<sip:+4930777@teams.example.com>;index=1.1";
    let now = h.now;
    in_dialog_with(
        &mut h.b1,
        now,
        &mut db,
        Method::Refer,
        None,
        &[
            ("Refer-To", "<sip:+4930777@teams.example.com>"),
            ("History-Info", hi),
        ],
    );
    h.pump();
    assert!(h.b1.statuses().contains(&202), "{:?}", h.b1.statuses());
    // b1 -> "+49..." routes to a ("in" route) in the harness config.
    let invs = h.a.requests("INVITE");
    let (_, inv) = invs.last().expect("transfer INVITE");
    assert!(inv.to_tag().unwrap().is_none(), "a new leg");
    assert_eq!(inv.header("History-Info"), Some(hi));
}

#[test]
fn reinvite_without_sdp_reaches_teams_with_our_offer() {
    let mut h = teams();
    let (mut da, _db, _atx, _ainv) = h.answered();
    let (rtx, _) = h.in_dialog(A, &mut da, Method::Invite, None);
    let invs = h.b1.requests("INVITE");
    assert_eq!(invs.len(), 2);
    let (btx, binv) = invs[1].clone();
    let offer = text(&binv);
    assert!(
        offer.contains("m=audio 60002 ") && offer.contains("a=rtcp-mux"),
        "no delayed offer toward Teams: {offer}"
    );
    let btag = binv.to_tag().unwrap().unwrap().to_owned();
    let answer = sdp("172.16.0.20", 20_002, "a=rtcp-mux\r\n");
    h.reply(B1, btx, &binv, 200, &btag, Some(&answer));
    assert_eq!(h.b1.acks().len(), 2, "Teams' answer ACKed by us");
    // A gets our offer in the 2xx and answers in its ACK.
    let ok = h.a.last_response(200).unwrap();
    assert!(text(&ok).contains("m=audio 40002 "), "{}", text(&ok));
    let answer = sdp("192.168.1.10", 10_008, "");
    h.a.ack_reinvite(rtx, &da, &ok, Some(&answer));
    h.pump();
    let (_, a_p, b_p) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(a_p.peer_rtp, Some(sa("192.168.1.10:10008")));
    assert_eq!(b_p.peer_rtp, Some(sa("172.16.0.20:20002")));
    assert_eq!(h.sbc.active_calls(), 1);
}

#[test]
fn ice_credentials_stable_from_183_to_200_toward_teams_caller() {
    let mut h = H::with(|c| {
        c.teams = Some(TeamsSettings {
            sbc_fqdn: "sbc.example.com".into(),
            options_interval: Duration::from_secs(60),
            media_bypass: true,
            proxies: Vec::new(),
        });
        c.trunks[0].tls_server_name = Some("sip.pstnhub.microsoft.com".into());
    });
    let offer = sdp("52.112.0.10", 50_000, "a=rtcp-mux\r\n");
    let (_atx, _ainv, btx, binv) = h.start("100", Some(&offer));
    let now = h.now;
    let early = sdp("172.16.0.20", 20_000, "");
    h.b1.respond(now, btx, &binv, 183, "btag", Some(&early));
    h.pump();
    let answer = sdp("172.16.0.20", 20_000, "a=sendrecv\r\n");
    h.reply(B1, btx, &binv, 200, "btag", Some(&answer));
    let rs = h.a.responses();
    let p183 = rs
        .iter()
        .find(|r| r.status() == Some(183))
        .expect("183 relayed");
    let p200 = rs
        .iter()
        .find(|r| r.status() == Some(200))
        .expect("200 relayed");
    let c183 = ice_of(p183.body());
    assert_eq!(c183, ice_of(p200.body()), "same ufrag/pwd in 183 and 200");
    let body = text(p200);
    assert_eq!(
        body.lines()
            .filter(|l| l.starts_with("a=candidate:"))
            .count(),
        1,
        "{body}"
    );
    assert!(body.contains("a=rtcp-mux"), "{body}");
    let (_, a_p, b_p) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(
        a_p.ice_lite,
        Some(c183),
        "data plane answers STUN with them"
    );
    assert!(b_p.ice_lite.is_none(), "no ICE toward the plain trunk");
    // Without media bypass: none of it.
    let mut h = teams_caller();
    let (_atx, _ainv, btx, binv) = h.start("100", Some(&offer.replace("RTP/AVP", "RTP/SAVP")));
    h.reply(B1, btx, &binv, 183, "btag", Some(&early));
    let rs = h.a.responses();
    let p183 = rs.iter().find(|r| r.status() == Some(183)).unwrap();
    assert!(!text(p183).contains("ice"), "{}", text(p183));
}

#[test]
fn responses_toward_a_teams_caller_have_the_fqdn_contact() {
    let mut h = teams_caller();
    let offer = sdp(
        "52.112.0.10",
        50_000,
        &format!("a=rtcp-mux\r\n{TEAMS_CRYPTO}"),
    )
    .replace("RTP/AVP", "RTP/SAVP");
    let (_atx, _ainv, btx, binv) = h.start("100", Some(&offer));
    h.b1_rings_and_answers(btx, &binv, "btag");
    for r in
        h.a.responses()
            .iter()
            .filter(|r| r.status().is_some_and(|s| s > 100))
    {
        let c = r.header("Contact").expect("Contact");
        assert!(c.contains("sip:sbc@sbc.example.com"), "{c}");
        assert!(!c.contains(SBC), "{c}");
    }
    // Plain trunks keep the listener address.
    let mut h = H::new();
    let _ = h.answered();
    let ok = h.a.first_response(200).unwrap();
    assert!(ok.header("Contact").unwrap().contains(SBC));
}

/// b1 is Teams, reached at 10.0.0.3:5060 (a `[teams.resolve]`-style address) while the
/// proxy is configured as `sip.pstnhub.microsoft.com:5061`; our listener is 10.0.0.1:5060.
fn teams_resolved_elsewhere() -> H {
    H::with(|c| {
        c.teams = Some(TeamsSettings {
            sbc_fqdn: "sbc.example.com".into(),
            options_interval: Duration::from_secs(60),
            media_bypass: false,
            proxies: vec![("sip.pstnhub.microsoft.com".into(), 5061)],
        });
        c.trunks[1].tls_server_name = Some("sip.pstnhub.microsoft.com".into());
    })
}

#[test]
fn invite_toward_teams_names_fqdn_and_listener_port_and_the_configured_proxy_port() {
    let mut h = teams_resolved_elsewhere();
    let now = h.now;
    h.a.invite(now, "+4930123", Some(&sdp("192.168.1.10", 10_000, "")));
    h.pump();
    let (_, inv) = h.b1.last_request("INVITE");
    // Contact: the FQDN with the port we listen on (in-dialog requests come there).
    assert_eq!(
        inv.header("Contact"),
        Some("<sip:sbc@sbc.example.com:5060>")
    );
    // Via sent-by: the FQDN too, never the listener IP.
    let via = inv.header("Via").unwrap();
    assert!(
        via.starts_with("SIP/2.0/UDP sbc.example.com:5060;"),
        "{via}"
    );
    // Request-URI and To: the proxy's configured port, not the resolved address's.
    assert_eq!(
        inv.request_uri(),
        Some("sip:+4930123@sip.pstnhub.microsoft.com:5061")
    );
    let to = inv.header("To").unwrap();
    assert!(to.contains("@sip.pstnhub.microsoft.com:5061"), "{to}");
    assert!(!to.contains("10.0.0.3"), "{to}");
    // The plain caller's leg keeps the listener address in Via and Contact.
    let ok = h.b1.respond(
        h.now,
        h.b1.last_request("INVITE").0,
        &inv,
        180,
        "btag",
        None,
    );
    h.pump();
    let _ = ok;
    let ringing = h.a.first_response(180).expect("180 relayed");
    assert!(ringing.header("Contact").unwrap().contains(SBC));
}

#[test]
fn in_dialog_requests_toward_teams_carry_the_fqdn_in_via() {
    let mut h = teams_resolved_elsewhere();
    let (mut da, _db, _atx, _ainv) = h.answered();
    h.in_dialog(A, &mut da, Method::Bye, None);
    let (_, bye) = h.b1.last_request("BYE");
    let via = bye.header("Via").unwrap();
    assert!(
        via.starts_with("SIP/2.0/UDP sbc.example.com:5060;"),
        "{via}"
    );
    let acks = h.b1.acks();
    let via = acks[0].header("Via").unwrap();
    assert!(via.contains("sbc.example.com:5060"), "ACK: {via}");
}

#[test]
fn responses_toward_teams_carry_x_ms_sbc() {
    let mut h = teams_caller();
    let offer = sdp(
        "52.112.0.10",
        50_000,
        &format!("a=rtcp-mux\r\n{TEAMS_CRYPTO}"),
    )
    .replace("RTP/AVP", "RTP/SAVP");
    let (atx, ainv, btx, binv) = h.start("100", Some(&offer));
    h.b1_rings_and_answers(btx, &binv, "btag");
    let finals: Vec<_> =
        h.a.responses()
            .into_iter()
            .filter(|r| r.status().is_some_and(|s| s > 100))
            .collect();
    assert!(finals.iter().any(|r| r.status() == Some(180)));
    assert!(finals.iter().any(|r| r.status() == Some(200)));
    for r in &finals {
        let x = r
            .header("X-MS-SBC")
            .expect("X-MS-SBC on a response to Teams");
        assert!(x.starts_with("Portcullis/"), "{x}");
    }
    // In dialog: the 200 to Teams' BYE too.
    let ok = h.a.first_response(200).unwrap();
    let mut da = h.a.ack(atx, &ainv, &ok, None);
    h.pump();
    h.in_dialog(A, &mut da, Method::Bye, None);
    let bye_ok =
        h.a.responses()
            .into_iter()
            .rfind(|r| r.cseq().is_ok_and(|c| c.method == Method::Bye))
            .expect("200 to BYE");
    assert_eq!(bye_ok.status(), Some(200));
    assert!(bye_ok.header("X-MS-SBC").is_some());
    // Toward the plain trunk: none.
    assert!(h
        .b1
        .responses()
        .iter()
        .all(|r| r.header("X-MS-SBC").is_none()));
}

#[test]
fn answer_toward_a_plain_trunk_has_no_rtcp_mux_it_did_not_offer() {
    // b1 (plain, no rtcp-mux in its offer) calls Teams (a), which answers with rtcp-mux.
    let mut h = teams_caller();
    let (_btx, _binv) = h.invite_from(B1, "100", Some(&sdp("172.16.0.20", 20_000, "")));
    let (atx, ainv) = h.a.last_request("INVITE");
    let offer_to_teams = text(&ainv);
    assert!(offer_to_teams.contains("a=rtcp-mux"), "{offer_to_teams}");
    let answer = sdp(
        "52.112.0.10",
        50_000,
        &format!("a=rtcp-mux\r\n{TEAMS_CRYPTO}"),
    )
    .replace("RTP/AVP", "RTP/SAVP");
    h.reply(A, atx, &ainv, 200, "teamstag", Some(&answer));
    let ok = h.b1.first_response(200).expect("200 relayed to the trunk");
    let body = text(&ok);
    assert!(body.contains("m=audio "), "{body}");
    assert!(!body.contains("a=rtcp-mux"), "RFC 5761 §5.1.1: {body}");
    // The trunk is the call's A side: its RTCP goes to its RTP port + 1.
    let (_, a_p, b_p) = h.sbc.media().updates.last().unwrap().clone();
    assert!(!a_p.rtcp_mux);
    assert_eq!(a_p.peer_rtcp, Some(sa("172.16.0.20:20001")));
    assert!(b_p.rtcp_mux, "Teams muxes");
}

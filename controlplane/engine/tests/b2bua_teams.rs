//! Teams Direct Routing specifics in the B2BUA: FQDN Contact, `X-MS-SBC` on
//! requests toward Teams, History-Info passed through only when Teams is involved.

#[path = "b2bua_harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;
use portcullis_engine::config::TeamsSettings;
use portcullis_engine::transaction::Method;

fn teams() -> H {
    H::with(|c| {
        c.teams = Some(TeamsSettings {
            sbc_fqdn: "sbc.example.com".into(),
            options_interval: Duration::from_secs(60),
        });
        c.trunks[1].tls_server_name = Some("sip.pstnhub.microsoft.com".into());
    })
}

const HI: &str = "<sip:+4930999@pbx.example.com>;index=1";

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
    assert_eq!(inv.header("History-Info"), Some(HI));
}

#[test]
fn in_dialog_requests_toward_teams_carry_x_ms_sbc() {
    let mut h = teams();
    let (mut da, _db, _atx, _ainv) = h.answered();
    let now = h.now;
    h.a.send_in_dialog(now, &mut da, Method::Bye, None);
    h.pump();
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
fn plain_trunks_get_neither_x_ms_sbc_nor_history_info() {
    let mut h = H::new();
    let now = h.now;
    let a_sdp = sdp("192.168.1.10", 10_000, "");
    h.a.invite_with(now, "100", Some(&a_sdp), &[("History-Info", HI)]);
    h.pump();
    let (_, inv) = h.b1.last_request("INVITE");
    assert!(inv.header("X-MS-SBC").is_none());
    assert!(inv.header("History-Info").is_none());
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
    let a_ok =
        h.a.responses()
            .into_iter()
            .find(|r| r.status() == Some(200))
            .unwrap();
    assert!(!String::from_utf8_lossy(a_ok.body()).contains("ice"));
    let (_, _, b_params) = h.sbc.media().updates.last().unwrap().clone();
    assert_eq!(b_params.ice_lite, Some(creds.clone()));
    // Teams re-INVITEs (session refresh): our answer keeps the credentials.
    let now = h.now;
    h.b1.send_in_dialog(
        now,
        &mut db,
        Method::Invite,
        Some(&sdp("172.16.0.20", 20_000, "a=inactive\r\n")),
    );
    h.pump();
    let (atx, areinv) = h.a.last_request("INVITE");
    assert!(String::from_utf8_lossy(areinv.body()).contains("a=inactive"));
    let now = h.now;
    h.a.respond(
        now,
        atx,
        &areinv,
        200,
        &da.id.local_tag.clone(),
        Some(&sdp("192.168.1.10", 10_000, "a=inactive\r\n")),
    );
    h.pump();
    let ok =
        h.b1.responses()
            .into_iter()
            .rev()
            .find(|r| r.status() == Some(200))
            .expect("200 to Teams re-INVITE");
    assert_eq!(ice_of(ok.body()), creds);
    let _ = &mut da;
}

#[test]
fn srtp_toward_teams_has_key_lifetime_2_31() {
    let mut h = H::with(|c| {
        c.teams = Some(TeamsSettings {
            sbc_fqdn: "sbc.example.com".into(),
            options_interval: Duration::from_secs(60),
        });
        c.trunks[1].tls_server_name = Some("sip.pstnhub.microsoft.com".into());
        c.trunks[1].media = portcullis_engine::config::MediaMode::Srtp;
    });
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

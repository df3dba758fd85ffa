//! B2BUA digest authentication: inbound challenge/verify, outbound answer.

#[path = "b2bua_harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;
use portcullis_engine::config::Credentials;
use portcullis_engine::digest::{answer, select_challenge, ClientRequest, DigestServer};
use portcullis_engine::time::Timestamp;
use portcullis_engine::transaction::{make_response, PeerAddr, Transport};
use portcullis_sip::header::{Auth, HeaderName};

fn creds(user: &str, pw: &str) -> Option<Credentials> {
    Some(Credentials {
        username: user.into(),
        password: pw.into(),
        realm: Some("sbc.test".into()),
    })
}

fn retry_with_auth(h: &mut H, pw: &str) -> u16 {
    let now = h.now;
    let (_tx, mut inv) =
        h.a.invite(now, "100", Some(&sdp("192.168.1.10", 10_000, "")));
    h.pump();
    let r401 = h.a.responses().into_iter().last().unwrap();
    assert_eq!(r401.status(), Some(401));
    let chals: Vec<Auth<'_>> = r401
        .header_values("WWW-Authenticate")
        .map(|v| Auth::parse(v, HeaderName::WwwAuthenticate).unwrap())
        .collect();
    let (c, _) = select_challenge(&chals).unwrap();
    let uri = inv.request_uri().unwrap().to_owned();
    let v = answer(
        c,
        &ClientRequest {
            method: "INVITE",
            uri: &uri,
            username: "alice",
            password: pw,
            cnonce: "abc",
            nc: 1,
        },
    )
    .unwrap();
    inv.push_header("Authorization", v);
    inv.set_header("CSeq", "2 INVITE");
    let via = h.a.via();
    inv.set_top_via(&via).unwrap();
    let now = h.now;
    h.a.layer
        .send_request(
            now,
            PeerAddr {
                transport: Transport::Udp,
                addr: sa(SBC),
                conn: None,
            },
            inv,
        )
        .unwrap();
    h.pump();
    h.a.statuses().last().copied().unwrap_or(0)
}

#[test]
fn inbound_challenge_then_valid_credentials_pass() {
    let mut h = H::with(|c| c.trunks[0].auth_inbound = creds("alice", "s3cret"));
    let last = retry_with_auth(&mut h, "s3cret");
    assert_eq!(last, 100, "retried INVITE accepted (100 Trying, no 403)");
    assert_eq!(h.b1.requests("INVITE").len(), 1);
    assert!(
        h.b1.last_request("INVITE")
            .1
            .header("Authorization")
            .is_none(),
        "credentials never cross"
    );
    assert!(h.sbc.stats().auth_challenges >= 1);
}

#[test]
fn inbound_wrong_password_forbidden() {
    let mut h = H::with(|c| c.trunks[0].auth_inbound = creds("alice", "s3cret"));
    let last = retry_with_auth(&mut h, "guess");
    assert_eq!(last, 403);
    assert!(h.b1.requests("INVITE").is_empty());
    assert_eq!(h.sbc.active_calls(), 0);
}

#[test]
fn outbound_407_answered_with_trunk_credentials() {
    let mut h = H::with(|c| c.trunks[1].auth_outbound = creds("sbcuser", "trunkpw"));
    let (_atx, _ainv, btx, binv) = h.start("100", Some(&sdp("192.168.1.10", 10_000, "")));
    let server = DigestServer::new("carrier", [7; 32], Duration::from_secs(60));
    let mut r = make_response(&binv, 407, "Proxy Authentication Required", Some("c1"));
    for c in server.challenges(h.now, 99, false) {
        r.push_header("Proxy-Authenticate", c);
    }
    let now = h.now;
    h.b1.layer.respond(now, btx, &r).unwrap();
    h.pump();
    let invites = h.b1.requests("INVITE");
    assert_eq!(invites.len(), 2, "INVITE resent with credentials");
    let retry = &invites[1].1;
    assert_eq!(retry.cseq().unwrap().seq, binv.cseq().unwrap().seq + 1);
    assert_eq!(retry.call_id().unwrap(), binv.call_id().unwrap());
    assert_eq!(retry.from_tag().unwrap(), binv.from_tag().unwrap());
    let cred = retry.header("Proxy-Authorization").unwrap();
    let auth = Auth::parse(cred, HeaderName::ProxyAuthorization).unwrap();
    server
        .verify(
            h.now,
            &auth,
            "INVITE",
            retry.request_uri(),
            "sbcuser",
            "trunkpw",
        )
        .expect("valid credentials");
    // The call proceeds on the retried transaction.
    let (tx2, inv2) = invites[1].clone();
    let now = h.now;
    h.b1.respond(
        now,
        tx2,
        &inv2,
        200,
        "btag",
        Some(&sdp("172.16.0.20", 20_000, "")),
    );
    h.pump();
    assert!(h.a.statuses().contains(&200));
    assert!(!h.a.statuses().contains(&407));
}

#[test]
fn outbound_second_challenge_is_not_answered_again() {
    let mut h = H::with(|c| {
        c.trunks[1].auth_outbound = creds("sbcuser", "wrong");
        c.routes[0].targets = vec!["b1".into()];
    });
    let (_atx, _ainv, btx, binv) = h.start("100", Some(&sdp("192.168.1.10", 10_000, "")));
    let server = DigestServer::new("carrier", [7; 32], Duration::from_secs(60));
    let challenge = |req: &portcullis_engine::transaction::SipMsg| {
        let mut r = make_response(req, 401, "Unauthorized", Some("c1"));
        for c in server.challenges(Timestamp::ZERO, 1, false) {
            r.push_header("WWW-Authenticate", c);
        }
        r
    };
    let now = h.now;
    h.b1.layer.respond(now, btx, &challenge(&binv)).unwrap();
    h.pump();
    let (tx2, inv2) = h.b1.last_request("INVITE");
    let now = h.now;
    h.b1.layer.respond(now, tx2, &challenge(&inv2)).unwrap();
    h.pump();
    assert_eq!(h.b1.requests("INVITE").len(), 2);
    assert_eq!(h.a.statuses().last(), Some(&401));
    assert_eq!(h.sbc.active_calls(), 0);
}

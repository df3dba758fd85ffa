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

/// The authenticated INVITE A sent (the bytes an eavesdropper captures).
fn captured_invite(h: &H) -> String {
    h.a.sent
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .rfind(|m| m.starts_with("INVITE ") && m.contains("\r\nAuthorization: "))
        .expect("an authenticated INVITE was sent")
}

/// Delivers raw bytes from A's address; the statuses and messages of what the SBC
/// answered to A.
fn inject(h: &mut H, bytes: &str) -> Vec<String> {
    let before = h.a.wire.len();
    let now = h.now;
    h.sbc.handle_datagram(now, udp(sa(A)), bytes.as_bytes());
    h.pump();
    h.a.wire[before..]
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

fn status_of(msg: &str) -> u16 {
    msg.get(8..11).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Replaces the value of the first header `name` (and a `;branch=` in it).
fn edit(msg: &str, from: &str, to: &str) -> String {
    assert!(msg.contains(from), "{from:?} not in the message");
    msg.replacen(from, to, 1)
}

fn header<'m>(msg: &'m str, name: &str) -> &'m str {
    msg.split("\r\n")
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
        .unwrap_or_else(|| panic!("no {name} in {msg}"))
}

#[test]
fn replayed_authenticated_invite_gets_a_challenge_not_a_call() {
    let mut h = H::with(|c| c.trunks[0].auth_inbound = creds("alice", "s3cret"));
    assert_eq!(retry_with_auth(&mut h, "s3cret"), 100);
    assert_eq!(h.b1.requests("INVITE").len(), 1, "the genuine call");
    let captured = captured_invite(&h);
    let branch = header(&captured, "Via")
        .split(";branch=")
        .nth(1)
        .and_then(|b| b.split(';').next())
        .unwrap()
        .to_owned();

    // 5 s later, byte for byte but for the Via branch (not covered by the digest):
    // the nonce count did not increase.
    h.advance(Duration::from_secs(5));
    let replay = edit(&captured, &branch, "z9hG4bKreplay1");
    let answers = inject(&mut h, &replay);
    let finals: Vec<u16> = answers
        .iter()
        .map(|m| status_of(m))
        .filter(|s| *s >= 200)
        .collect();
    assert_eq!(finals, vec![401], "{answers:?}");
    assert_eq!(h.sbc.stats().auth_replays, 1);
    assert_eq!(h.b1.requests("INVITE").len(), 1, "no second call");

    // The same Authorization on a new call (new Call-ID, From tag and branch).
    let call_id = header(&captured, "Call-ID").to_owned();
    let new_call = edit(
        &edit(&captured, &branch, "z9hG4bKreplay2"),
        &format!("Call-ID: {call_id}"),
        "Call-ID: stolen-credentials@10.0.0.2",
    );
    let answers = inject(&mut h, &new_call);
    assert!(answers.iter().any(|m| status_of(m) == 401), "{answers:?}");
    assert!(answers.iter().all(|m| status_of(m) != 200));
    assert_eq!(h.sbc.stats().auth_replays, 2);
    assert_eq!(h.b1.requests("INVITE").len(), 1, "no call for the thief");

    // 60 s after the capture, verbatim: still the genuine call's transaction
    // (absorbed as a retransmission), no new call.
    h.advance(Duration::from_secs(55));
    let answers = inject(&mut h, &captured);
    assert!(answers.iter().all(|m| status_of(m) < 200), "{answers:?}");
    assert_eq!(h.b1.requests("INVITE").len(), 1);
    // ... and with a new branch: the nonce has expired, the answer is a challenge
    // with stale=true.
    let answers = inject(&mut h, &edit(&captured, &branch, "z9hG4bKreplay3"));
    let challenge = answers
        .iter()
        .find(|m| status_of(m) == 401)
        .unwrap_or_else(|| panic!("no 401 in {answers:?}"));
    assert!(challenge.contains("stale=true"), "{challenge}");
    assert_eq!(h.b1.requests("INVITE").len(), 1);
    assert_eq!(h.sbc.active_calls(), 1, "only the genuine call");
}

#[test]
fn the_next_call_authenticates_with_a_fresh_nonce() {
    let mut h = H::with(|c| c.trunks[0].auth_inbound = creds("alice", "s3cret"));
    assert_eq!(retry_with_auth(&mut h, "s3cret"), 100);
    h.advance(Duration::from_secs(1));
    assert_eq!(retry_with_auth(&mut h, "s3cret"), 100);
    assert_eq!(h.b1.requests("INVITE").len(), 2, "both genuine calls pass");
    assert_eq!(h.sbc.stats().auth_replays, 0);
}

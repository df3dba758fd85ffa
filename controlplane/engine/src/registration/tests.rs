//! The registration state machine against a scripted registrar (virtual time).

use std::time::Duration;

use super::*;
use crate::digest::DigestServer;
use crate::transaction::make_response;

const HP: &str = "192.0.2.1:5060";

fn cfg(creds: bool) -> RegistrationConfig {
    RegistrationConfig {
        trunk: "carrier".into(),
        registrar: "198.51.100.7:5060".parse().unwrap(),
        tls_server_name: None,
        transport: Transport::Udp,
        registrar_uri: "sip:carrier.example".into(),
        aor: "sip:+4930123@carrier.example".into(),
        contact_user: "pc-carrier".into(),
        expires: Duration::from_secs(600),
        credentials: creds.then(|| Credentials {
            username: "alice".into(),
            password: "s3cret".into(),
            realm: None,
        }),
        retry_min: Duration::from_secs(5),
        retry_max: Duration::from_secs(60),
    }
}

fn at(s: u64) -> Timestamp {
    Timestamp::from_millis(s * 1000)
}

fn reply(req: &SipMsg, status: u16, headers: &[(&str, &str)]) -> SipMsg {
    let mut r = make_response(req, status, "Whatever", Some("reg"));
    for (n, v) in headers {
        r.push_header(n, v);
    }
    r
}

/// A registrar with digest (MD5 and SHA-256), 401 until the credentials are right.
fn registrar_answer(now: Timestamp, req: &SipMsg, password: &str) -> SipMsg {
    let server = DigestServer::new("carrier.example", [7; 32], Duration::from_secs(30));
    match req.header("Authorization") {
        None => {
            let mut r = reply(req, 401, &[]);
            for c in server.challenges(now, 1, false) {
                r.push_header("WWW-Authenticate", c);
            }
            r
        }
        Some(v) => {
            let auth = Auth::parse(v, portcullis_sip::HeaderName::Authorization).unwrap();
            let ok = server
                .verify(now, &auth, "REGISTER", req.request_uri(), "alice", password)
                .is_ok();
            if ok {
                let contact = format!("{};expires=120", req.header("Contact").unwrap());
                reply(req, 200, &[("Contact", &contact)])
            } else {
                let mut r = reply(req, 401, &[]);
                for c in server.challenges(now, 2, false) {
                    r.push_header("WWW-Authenticate", c);
                }
                r
            }
        }
    }
}

#[test]
fn registers_with_digest_then_refreshes_before_expiry() {
    let mut reg = Registration::new(cfg(true), "cid@x".into(), "ftag".into());
    assert_eq!(reg.due(), Some(Timestamp::ZERO));
    let r1 = reg.start(at(0), HP).expect("first REGISTER");
    assert_eq!(reg.state(), RegState::Registering);
    assert_eq!(r1.request_uri(), Some("sip:carrier.example"));
    assert_eq!(r1.header("To"), Some("<sip:+4930123@carrier.example>"));
    assert_eq!(
        r1.header("Contact"),
        Some("<sip:pc-carrier@192.0.2.1:5060>")
    );
    assert_eq!(r1.header("Expires"), Some("600"));
    assert_eq!(r1.cseq().unwrap().seq, 1);
    let Next::Send(r2) = reg.on_response(at(0), &registrar_answer(at(0), &r1, "s3cret"), 9) else {
        panic!("challenge answered");
    };
    assert_eq!(r2.cseq().unwrap().seq, 2, "CSeq + 1 (§22.2)");
    assert_eq!(r2.call_id().unwrap(), "cid@x");
    assert_eq!(r2.from_tag().unwrap(), Some("ftag"));
    assert!(r2.header("Authorization").is_some());
    assert_eq!(
        reg.on_response(at(0), &registrar_answer(at(0), &r2, "s3cret"), 9),
        Next::Idle
    );
    // Granted 120 s on our Contact: bound until 120, refreshed half-way... 30 s before.
    assert_eq!(
        reg.state(),
        RegState::Registered {
            expires_at: at(120),
            refresh_at: at(90)
        }
    );
    assert_eq!(reg.stats().successes, 1);
    assert!(reg.start(at(89), HP).is_none(), "not due yet");
    let r3 = reg.start(at(90), HP).expect("refresh");
    assert_eq!(
        reg.state(),
        RegState::Refreshing {
            expires_at: at(120)
        }
    );
    assert_eq!(r3.cseq().unwrap().seq, 3);
    assert_eq!(r3.call_id().unwrap(), "cid@x", "one Call-ID (§10.2)");
    let ok = reply(&r3, 200, &[("Expires", "20")]);
    reg.on_response(at(91), &ok, 1);
    assert_eq!(
        reg.state(),
        RegState::Registered {
            expires_at: at(111),
            refresh_at: at(101)
        },
        "the Expires header when the Contact has none; half-way for a short binding"
    );
}

#[test]
fn wrong_password_fails_with_doubling_back_off() {
    let mut reg = Registration::new(cfg(true), "c".into(), "t".into());
    let mut now = at(0);
    let mut retries = Vec::new();
    for _ in 0..6 {
        let r = reg.start(now, HP).expect("due");
        let Next::Send(r) = reg.on_response(now, &registrar_answer(now, &r, "wrong"), 1) else {
            panic!("first challenge answered");
        };
        assert_eq!(
            reg.on_response(now, &registrar_answer(now, &r, "wrong"), 1),
            Next::Idle
        );
        let RegState::Failed { retry_at } = reg.state() else {
            panic!("{:?}", reg.state());
        };
        assert_eq!(reg.last_error(), Some("401: credentials refused"));
        retries.push(retry_at.saturating_duration_since(now).as_secs());
        now = retry_at;
    }
    assert_eq!(
        retries,
        [5, 10, 20, 40, 60, 60],
        "doubling, capped at retry_max"
    );
    assert_eq!(reg.stats().failures, 6);
    assert_eq!(reg.stats().successes, 0);
    assert!(reg.bound_until(now).is_none());
}

#[test]
fn stale_nonce_is_answered_once_more() {
    let mut reg = Registration::new(cfg(true), "c".into(), "t".into());
    let r = reg.start(at(0), HP).unwrap();
    let chal = |stale: bool| {
        let mut r401 = reply(&r, 401, &[]);
        r401.push_header(
            "WWW-Authenticate",
            format!(
                "Digest realm=\"x\", nonce=\"n{stale}\", qop=\"auth\"{}",
                if stale { ", stale=true" } else { "" }
            ),
        );
        r401
    };
    assert!(matches!(
        reg.on_response(at(0), &chal(false), 1),
        Next::Send(_)
    ));
    assert!(matches!(
        reg.on_response(at(0), &chal(true), 1),
        Next::Send(_)
    ));
    assert_eq!(reg.on_response(at(0), &chal(true), 1), Next::Idle);
    assert!(matches!(reg.state(), RegState::Failed { .. }));
}

#[test]
fn interval_too_brief_is_retried_with_min_expires() {
    let mut reg = Registration::new(cfg(false), "c".into(), "t".into());
    let r = reg.start(at(0), HP).unwrap();
    let Next::Send(r2) = reg.on_response(at(0), &reply(&r, 423, &[("Min-Expires", "1800")]), 1)
    else {
        panic!("423 retried");
    };
    assert_eq!(r2.header("Expires"), Some("1800"));
    assert_eq!(
        r2.header("Contact"),
        Some("<sip:pc-carrier@192.0.2.1:5060>")
    );
    reg.on_response(at(0), &reply(&r2, 200, &[]), 1);
    assert!(matches!(reg.state(), RegState::Registered { .. }));
    assert_eq!(reg.bound_until(at(0)), Some(at(1800)));
}

#[test]
fn challenge_without_credentials_and_refusals_fail_clearly() {
    let mut reg = Registration::new(cfg(false), "c".into(), "t".into());
    let r = reg.start(at(0), HP).unwrap();
    let mut r401 = reply(&r, 401, &[]);
    r401.push_header("WWW-Authenticate", "Digest realm=\"x\", nonce=\"n\"");
    reg.on_response(at(0), &r401, 1);
    assert_eq!(
        reg.last_error(),
        Some("401: challenged, no credentials configured")
    );
    let r = reg.start(at(5), HP).unwrap();
    reg.on_response(at(5), &reply(&r, 503, &[("Retry-After", "40")]), 1);
    assert_eq!(reg.state(), RegState::Failed { retry_at: at(45) });
    assert!(reg.last_error().unwrap().starts_with("503"));
    let r = reg.start(at(45), HP).unwrap();
    reg.on_failure(at(77), "timeout (Timer F)");
    assert_eq!(reg.state(), RegState::Failed { retry_at: at(97) });
    let _ = r;
}

#[test]
fn a_failed_refresh_keeps_the_binding_until_it_lapses() {
    let mut reg = Registration::new(cfg(false), "c".into(), "t".into());
    let r = reg.start(at(0), HP).unwrap();
    reg.on_response(at(0), &reply(&r, 200, &[("Expires", "100")]), 1);
    let _ = reg.start(at(70), HP).unwrap();
    reg.on_failure(at(72), "timeout");
    assert_eq!(reg.bound_until(at(72)), Some(at(100)));
    // The retry (at 77) is a refresh while the binding holds.
    let _ = reg.start(at(77), HP).unwrap();
    assert_eq!(
        reg.state(),
        RegState::Refreshing {
            expires_at: at(100)
        }
    );
    reg.on_failure(at(109), "timeout");
    assert!(reg.bound_until(at(109)).is_none());
    let _ = reg.start(at(119), HP).unwrap();
    assert_eq!(reg.state(), RegState::Registering);
}

#[test]
fn unregister_sends_expires_zero_for_our_contact_only() {
    let mut reg = Registration::new(cfg(true), "c".into(), "t".into());
    assert!(reg.unregister(at(0), HP).is_none(), "nothing bound");
    let r = reg.start(at(0), HP).unwrap();
    reg.on_response(at(0), &reply(&r, 200, &[]), 1);
    let u = reg.unregister(at(10), HP).expect("un-REGISTER");
    assert_eq!(reg.state(), RegState::Unregistering);
    assert_eq!(u.header("Expires"), Some("0"));
    assert_eq!(u.header("Contact"), Some("<sip:pc-carrier@192.0.2.1:5060>"));
    assert_eq!(u.cseq().unwrap().seq, 2);
    // A challenge to it is answered; the 200 ends it.
    let Next::Send(u2) = reg.on_response(at(10), &registrar_answer(at(10), &u, "s3cret"), 3) else {
        panic!("challenge answered");
    };
    assert_eq!(u2.header("Expires"), Some("0"));
    reg.on_response(at(10), &reply(&u2, 200, &[]), 1);
    assert_eq!(reg.state(), RegState::Unregistered);
    assert!(reg.due().is_none(), "never again");
    assert!(reg.bound_until(at(10)).is_none());
    // A timeout ends it too.
    let mut reg = Registration::new(cfg(false), "c".into(), "t".into());
    let _ = reg.start(at(0), HP).unwrap();
    let _ = reg.unregister(at(1), HP).expect("in flight: un-REGISTER");
    reg.on_failure(at(33), "timeout");
    assert_eq!(reg.state(), RegState::Unregistered);
}

#[test]
fn request_uri_user_reads_the_request_line() {
    assert_eq!(
        request_uri_user(
            b"INVITE sip:pc-carrier@192.0.2.1:5060;transport=udp SIP/2.0\r\nVia: x\r\n"
        ),
        Some("pc-carrier")
    );
    assert_eq!(request_uri_user(b"INVITE sip:192.0.2.1 SIP/2.0\r\n"), None);
    assert_eq!(request_uri_user(b"SIP/2.0 200 OK\r\n"), None);
    assert_eq!(request_uri_user(b"INVITE tel:+49301 SIP/2.0\r\n"), None);
    assert_eq!(request_uri_user(b"\xff\xfe"), None);
    assert_eq!(
        request_uri_user(b"INVITE sip:u:pw@h SIP/2.0\r\n"),
        Some("u")
    );
}

#[test]
fn refresh_schedule() {
    assert_eq!(
        refresh_in(Duration::from_secs(3600)),
        Duration::from_secs(3570)
    );
    assert_eq!(refresh_in(Duration::from_secs(20)), Duration::from_secs(10));
    assert_eq!(refresh_in(Duration::from_secs(60)), Duration::from_secs(30));
    assert_eq!(
        refresh_in(Duration::from_secs(1)),
        Duration::from_millis(500)
    );
}

//! Digest authentication (RFC 2617 §3.5, RFC 7616 §3.9.1 vectors; server
//! round trips, stale nonces, wrong passwords, replay).

use std::net::IpAddr;
use std::time::Duration;

use portcullis_engine::digest::{
    answer, answer_best, challenge_value, cnonce, response_hash, select_challenge, Algorithm,
    ChallengeKind, ClientRequest, DigestError, DigestServer, NonceCountGuard, ResponseInput,
    ServerRequest, Verified, NONCE_GUARD_CAPACITY,
};
use portcullis_engine::time::Timestamp;
use portcullis_sip::header::{Auth, HeaderName};

const RFC7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
const RFC7616_OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";

fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn param(header: &str, name: &str) -> String {
    let a = Auth::parse(header, HeaderName::Authorization).expect("our own header parses");
    a.param(name)
        .unwrap_or_else(|| panic!("{name} missing in {header}"))
        .into_owned()
}

fn rfc7616_challenge(alg: &str) -> String {
    format!(
        "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm={alg}, \
         nonce=\"{RFC7616_NONCE}\", opaque=\"{RFC7616_OPAQUE}\""
    )
}

fn mufasa(pass: &'static str, cnonce: &'static str) -> ClientRequest<'static> {
    ClientRequest {
        method: "GET",
        uri: "/dir/index.html",
        username: "Mufasa",
        password: pass,
        cnonce,
        nc: 1,
    }
}

#[test]
fn rfc7616_example_md5_and_sha256() {
    for (alg, expected) in [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        (
            "SHA-256",
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        ),
    ] {
        let c = rfc7616_challenge(alg);
        let c = Auth::parse(&c, HeaderName::WwwAuthenticate).unwrap();
        let h = answer(&c, &mufasa("Circle of Life", RFC7616_CNONCE)).unwrap();
        assert_eq!(param(&h, "response"), expected, "{alg}: {h}");
        assert_eq!(param(&h, "algorithm"), alg);
        assert_eq!(param(&h, "nc"), "00000001");
        assert_eq!(param(&h, "qop"), "auth");
        assert_eq!(param(&h, "cnonce"), RFC7616_CNONCE);
        assert_eq!(param(&h, "opaque"), RFC7616_OPAQUE);
        assert_eq!(param(&h, "uri"), "/dir/index.html");
        assert_eq!(param(&h, "username"), "Mufasa");
    }
}

#[test]
fn rfc2617_example() {
    let c = "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
    let c = Auth::parse(c, HeaderName::WwwAuthenticate).unwrap();
    let h = answer(&c, &mufasa("Circle Of Life", "0a4f113b")).unwrap();
    assert_eq!(param(&h, "response"), "6629fae49393a05397450978507c4ef1");
    // No algorithm in the challenge: none echoed (MD5 implied).
    assert!(!h.contains("algorithm="), "{h}");
    assert_eq!(param(&h, "opaque"), "5ccc069c403ebaf9f0171e9517f40e41");
    // A different password gives a different response.
    let h2 = answer(&c, &mufasa("Circle of Life", "0a4f113b")).unwrap();
    assert_ne!(param(&h2, "response"), "6629fae49393a05397450978507c4ef1");
}

#[test]
fn rfc2069_style_without_qop() {
    // RFC 3261 §22.4: no qop → response = H(HA1:nonce:HA2), no cnonce/nc.
    let c = Auth::parse(
        "Digest realm=\"r\", nonce=\"n\"",
        HeaderName::ProxyAuthenticate,
    )
    .unwrap();
    let h = answer(&c, &mufasa("p", "c")).unwrap();
    assert!(!h.contains("cnonce") && !h.contains("nc="), "{h}");
    let ha1 = Algorithm::Md5.hash_hex(&[b"Mufasa", b"r", b"p"]);
    let ha2 = Algorithm::Md5.hash_hex(&[b"GET", b"/dir/index.html"]);
    let want = Algorithm::Md5.hash_hex(&[ha1.as_bytes(), b"n", ha2.as_bytes()]);
    assert_eq!(param(&h, "response"), want);
}

#[test]
fn auth_int_only_is_refused() {
    let c = Auth::parse(
        "Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"",
        HeaderName::WwwAuthenticate,
    )
    .unwrap();
    assert_eq!(
        answer(&c, &mufasa("p", "c")),
        Err(DigestError::UnsupportedQop)
    );
    let c = Auth::parse(
        "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-1",
        HeaderName::WwwAuthenticate,
    )
    .unwrap();
    assert_eq!(
        answer(&c, &mufasa("p", "c")),
        Err(DigestError::UnsupportedAlgorithm)
    );
}

#[test]
fn client_prefers_sha256_over_md5() {
    let md5 = rfc7616_challenge("MD5");
    let sha = rfc7616_challenge("SHA-256");
    for order in [[md5.as_str(), sha.as_str()], [sha.as_str(), md5.as_str()]] {
        let parsed: Vec<Auth<'_>> = order
            .iter()
            .map(|v| Auth::parse(v, HeaderName::WwwAuthenticate).unwrap())
            .collect();
        let (_, alg) = select_challenge(&parsed).unwrap();
        assert_eq!(alg, Algorithm::Sha256);
        let h = answer_best(
            ChallengeKind::Www,
            &order,
            &mufasa("Circle of Life", RFC7616_CNONCE),
        )
        .unwrap();
        assert_eq!(
            param(&h, "response"),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }
    // Garbage and unknown schemes are skipped; MD5 alone is used.
    let h = answer_best(
        ChallengeKind::Proxy,
        &["Basic realm=\"x\"", "Digest realm=", md5.as_str()],
        &mufasa("Circle of Life", RFC7616_CNONCE),
    )
    .unwrap();
    assert_eq!(param(&h, "response"), "8ca523f5e9506fed4657c9700eebdbec");
    assert_eq!(
        answer_best(
            ChallengeKind::Www,
            &["Basic realm=\"x\""],
            &mufasa("p", "c")
        ),
        Err(DigestError::UnsupportedAlgorithm)
    );
}

#[test]
fn challenge_kinds_name_headers() {
    assert_eq!(ChallengeKind::Www.status(), 401);
    assert_eq!(ChallengeKind::Proxy.status(), 407);
    assert_eq!(ChallengeKind::from_status(407), Some(ChallengeKind::Proxy));
    assert_eq!(ChallengeKind::from_status(403), None);
    assert_eq!(
        ChallengeKind::Www.challenge_header(),
        HeaderName::WwwAuthenticate
    );
    assert_eq!(
        ChallengeKind::Proxy.credentials_header(),
        HeaderName::ProxyAuthorization
    );
}

fn server() -> DigestServer {
    DigestServer::new("sbc.example.com", [7u8; 32], Duration::from_secs(30))
}

/// A client answering the first challenge the server issues at `now`.
fn client_answer(srv: &DigestServer, now: u64, alg_index: usize, pass: &str, nc: u32) -> String {
    let challenges = srv.challenges(t(now), 0x1234_5678, false);
    let c = Auth::parse(&challenges[alg_index], HeaderName::WwwAuthenticate).unwrap();
    answer(
        &c,
        &ClientRequest {
            method: "INVITE",
            uri: "sip:+4930123@sbc.example.com",
            username: "trunk1",
            password: pass,
            cnonce: &cnonce(99),
            nc,
        },
    )
    .unwrap()
}

fn verify(srv: &DigestServer, now: u64, h: &str, pass: &str) -> Result<Algorithm, DigestError> {
    let a = Auth::parse(h, HeaderName::Authorization).unwrap();
    srv.verify(
        t(now),
        &a,
        "INVITE",
        Some("sip:+4930123@sbc.example.com"),
        "trunk1",
        pass,
    )
    .map(|v| v.algorithm)
}

#[test]
fn server_challenges_sha256_then_md5() {
    let srv = server();
    let c = srv.challenges(t(5), 1, false);
    assert_eq!(c.len(), 2);
    assert!(c[0].contains("algorithm=SHA-256"), "{}", c[0]);
    assert!(c[1].contains("algorithm=MD5"), "{}", c[1]);
    for v in &c {
        let a = Auth::parse(v, HeaderName::WwwAuthenticate).unwrap();
        assert_eq!(a.realm().unwrap(), "sbc.example.com");
        assert_eq!(a.qop().unwrap(), "auth");
        assert!(a.param("stale").is_none());
    }
    let stale = srv.challenges(t(5), 1, true);
    assert!(stale.iter().all(|v| v.ends_with("stale=true")));
    // Different salts give different nonces at the same instant.
    assert_ne!(srv.nonce(t(5), 1), srv.nonce(t(5), 2));
    // The realm is quoted safely.
    assert!(
        challenge_value("a\"b", "n", Algorithm::Md5, false).starts_with("Digest realm=\"a\\\"b\"")
    );
}

#[test]
fn server_round_trip_both_algorithms() {
    let srv = server();
    let h = client_answer(&srv, 1_000, 0, "secret", 1);
    assert_eq!(verify(&srv, 2_000, &h, "secret"), Ok(Algorithm::Sha256));
    let h = client_answer(&srv, 1_000, 1, "secret", 1);
    assert_eq!(verify(&srv, 2_000, &h, "secret"), Ok(Algorithm::Md5));
}

#[test]
fn wrong_password_and_wrong_user_fail() {
    let srv = server();
    let h = client_answer(&srv, 1_000, 0, "guess", 1);
    assert_eq!(
        verify(&srv, 2_000, &h, "secret"),
        Err(DigestError::WrongResponse)
    );
    let h = client_answer(&srv, 1_000, 0, "secret", 1);
    let a = Auth::parse(&h, HeaderName::Authorization).unwrap();
    assert_eq!(
        srv.verify(t(2_000), &a, "INVITE", None, "other", "secret")
            .map(|v| v.algorithm),
        Err(DigestError::UserMismatch)
    );
    // Method is part of HA2: the same credentials do not authorise a BYE.
    assert_eq!(
        srv.verify(t(2_000), &a, "BYE", None, "trunk1", "secret")
            .map(|v| v.algorithm),
        Err(DigestError::WrongResponse)
    );
    // uri must match the Request-URI when given.
    assert_eq!(
        srv.verify(
            t(2_000),
            &a,
            "INVITE",
            Some("sip:other@x"),
            "trunk1",
            "secret"
        )
        .map(|v| v.algorithm),
        Err(DigestError::UriMismatch)
    );
}

#[test]
fn expired_nonce_is_stale_only_with_right_password() {
    let srv = server();
    let h = client_answer(&srv, 1_000, 0, "secret", 1);
    // Lifetime 30 s: fine at 31 s, stale after.
    assert!(verify(&srv, 31_000, &h, "secret").is_ok());
    let e = verify(&srv, 31_001, &h, "secret").unwrap_err();
    assert_eq!(e, DigestError::Stale);
    assert!(e.is_stale());
    let bad = client_answer(&srv, 1_000, 0, "guess", 1);
    assert_eq!(
        verify(&srv, 60_000, &bad, "secret"),
        Err(DigestError::WrongResponse)
    );
}

#[test]
fn forged_or_foreign_nonces_are_rejected() {
    let srv = server();
    let other = DigestServer::new("sbc.example.com", [8u8; 32], Duration::from_secs(30));
    // Nonce from another secret.
    let h = client_answer(&other, 1_000, 0, "secret", 1);
    assert_eq!(
        verify(&srv, 2_000, &h, "secret"),
        Err(DigestError::BadNonce)
    );
    // A nonce whose timestamp was moved forward (to dodge expiry) fails the MAC.
    let n = srv.nonce(t(1_000), 5);
    let forged = format!("{:016x}{}", 50_000u64, &n[16..]);
    assert_eq!(
        srv.check_nonce(t(60_000), &forged),
        Err(DigestError::BadNonce)
    );
    assert!(srv.check_nonce(t(2_000), &n).is_ok());
    for junk in ["", "zz", &n[..63], &format!("{n}0"), &n.replace('a', "g")] {
        assert_eq!(
            srv.check_nonce(t(2_000), junk),
            Err(DigestError::BadNonce),
            "{junk}"
        );
    }
    // Nonce from the future (clock never goes back in one process).
    let future = srv.nonce(t(100_000), 5);
    assert_eq!(
        srv.check_nonce(t(2_000), &future),
        Err(DigestError::BadNonce)
    );
}

#[test]
fn realm_algorithm_and_missing_params() {
    let srv = server().with_algorithms(&[Algorithm::Sha256]);
    assert_eq!(srv.algorithms(), &[Algorithm::Sha256]);
    let nonce = srv.nonce(t(0), 1);
    let mk = |realm: &str, alg: &str| {
        let resp = response_hash(&ResponseInput {
            algorithm: Algorithm::from_name(alg).unwrap_or(Algorithm::Md5),
            username: "trunk1",
            realm,
            password: "secret",
            method: "INVITE",
            uri: "sip:x",
            nonce: &nonce,
            cnonce: Some("c"),
            nc: Some("00000001"),
            qop: Some("auth"),
        });
        format!(
            "Digest username=\"trunk1\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"sip:x\", \
             response=\"{resp}\", algorithm={alg}, cnonce=\"c\", qop=auth, nc=00000001"
        )
    };
    let check = |h: &str| {
        let a = Auth::parse(h, HeaderName::Authorization).unwrap();
        srv.verify(t(10), &a, "INVITE", None, "trunk1", "secret")
            .map(|v| (v.algorithm, v.nc))
    };
    assert_eq!(
        check(&mk("sbc.example.com", "SHA-256")),
        Ok((Algorithm::Sha256, Some(1)))
    );
    assert_eq!(
        check(&mk("evil.example.com", "SHA-256")),
        Err(DigestError::RealmMismatch)
    );
    // MD5 not offered by this server.
    assert_eq!(
        check(&mk("sbc.example.com", "MD5")),
        Err(DigestError::UnsupportedAlgorithm)
    );
    assert_eq!(
        check(&mk("sbc.example.com", "ROT13")),
        Err(DigestError::UnsupportedAlgorithm)
    );
    let no_cnonce = mk("sbc.example.com", "SHA-256").replace(", cnonce=\"c\"", "");
    assert_eq!(check(&no_cnonce), Err(DigestError::Missing("cnonce")));
    let bad_nc = mk("sbc.example.com", "SHA-256").replace("nc=00000001", "nc=1");
    assert_eq!(check(&bad_nc), Err(DigestError::BadNonceCount));
    let int = mk("sbc.example.com", "SHA-256").replace("qop=auth", "qop=auth-int");
    assert_eq!(check(&int), Err(DigestError::UnsupportedQop));
    let basic = Auth::parse("Basic realm=\"x\"", HeaderName::Authorization).unwrap();
    assert_eq!(
        srv.verify(t(10), &basic, "INVITE", None, "trunk1", "secret")
            .map(|v| v.algorithm),
        Err(DigestError::NotDigest)
    );
}

#[test]
fn session_variants_and_userhash_round_trip() {
    for alg in [
        Algorithm::Md5Sess,
        Algorithm::Sha256Sess,
        Algorithm::Sha512_256,
    ] {
        let srv = server().with_algorithms(&[alg]);
        let h = client_answer(&srv, 0, 0, "secret", 3);
        assert_eq!(param(&h, "algorithm"), alg.name());
        assert_eq!(verify(&srv, 10, &h, "secret"), Ok(alg), "{alg}");
        assert_eq!(
            verify(&srv, 10, &h, "wrong"),
            Err(DigestError::WrongResponse)
        );
    }
    // userhash (RFC 7616 §3.4.4): the client sends H(user:realm).
    let srv = server().with_algorithms(&[Algorithm::Sha256]);
    let ch = format!("{}, userhash=true", srv.challenges(t(0), 1, false)[0]);
    let c = Auth::parse(&ch, HeaderName::WwwAuthenticate).unwrap();
    let h = answer(
        &c,
        &ClientRequest {
            method: "INVITE",
            uri: "sip:+4930123@sbc.example.com",
            username: "trunk1",
            password: "secret",
            cnonce: "abc",
            nc: 1,
        },
    )
    .unwrap();
    assert_eq!(
        param(&h, "username"),
        Algorithm::Sha256.hash_hex(&[b"trunk1", b"sbc.example.com"])
    );
    assert_eq!(verify(&srv, 10, &h, "secret"), Ok(Algorithm::Sha256));
}

fn verified(srv: &DigestServer, now: u64, h: &str) -> Verified {
    let a = Auth::parse(h, HeaderName::Authorization).unwrap();
    srv.verify(
        t(now),
        &a,
        "INVITE",
        Some("sip:+4930123@sbc.example.com"),
        "trunk1",
        "secret",
    )
    .unwrap()
}

#[test]
fn nonce_count_guard_refuses_a_replayed_authorization() {
    let srv = server();
    let mut g = NonceCountGuard::new(NONCE_GUARD_CAPACITY);
    let first = client_answer(&srv, 1_000, 0, "secret", 1);
    assert_eq!(g.accept(t(1_100), &verified(&srv, 1_100, &first)), Ok(()));
    // The same header again (a captured INVITE replayed, or its Authorization
    // copied into a new call): the count did not increase.
    assert_eq!(
        g.accept(t(20_000), &verified(&srv, 20_000, &first)),
        Err(DigestError::Replay)
    );
    // The legitimate client's next request on the same nonce counts up.
    let second = client_answer(&srv, 1_000, 0, "secret", 2);
    assert_eq!(g.accept(t(2_000), &verified(&srv, 2_000, &second)), Ok(()));
    assert_eq!(
        g.accept(t(2_500), &verified(&srv, 2_500, &first)),
        Err(DigestError::Replay)
    );
    assert_eq!(g.capacity(), 65_536);
}

#[test]
fn bound_nonces_are_valid_only_from_their_client() {
    let a: IpAddr = "192.0.2.10".parse().unwrap();
    let b: IpAddr = "192.0.2.11".parse().unwrap();
    let for_a = server().bound_to(a);
    let n = for_a.nonce(t(1_000), 5);
    assert!(for_a.check_nonce(t(2_000), &n).is_ok());
    // The IPv4-mapped form of the same address is the same client.
    let mapped: IpAddr = "::ffff:192.0.2.10".parse().unwrap();
    assert!(server().bound_to(mapped).check_nonce(t(2_000), &n).is_ok());
    assert_eq!(
        server().bound_to(b).check_nonce(t(2_000), &n),
        Err(DigestError::BadNonce)
    );
    assert_eq!(
        server().check_nonce(t(2_000), &n),
        Err(DigestError::BadNonce)
    );
    // Credentials computed on A's nonce do not verify from B.
    let h = client_answer(&for_a, 1_000, 0, "secret", 1);
    assert!(verify(&for_a, 2_000, &h, "secret").is_ok());
    assert_eq!(
        verify(&server().bound_to(b), 2_000, &h, "secret"),
        Err(DigestError::BadNonce)
    );
}

#[test]
fn algorithm_names_round_trip() {
    for a in Algorithm::ALL {
        assert_eq!(Algorithm::from_name(a.name()), Some(a));
        assert_eq!(Algorithm::from_name(&a.name().to_lowercase()), Some(a));
    }
    assert_eq!(Algorithm::from_name("SHA-1"), None);
}

#[test]
fn verify_from_raw_header_values() {
    let srv = server();
    let h = client_answer(&srv, 1_000, 0, "secret", 1);
    let req = ServerRequest {
        method: "INVITE",
        request_uri: Some("sip:+4930123@sbc.example.com"),
        username: "trunk1",
        password: "secret",
    };
    let v = srv
        .verify_value(t(2_000), ChallengeKind::Proxy, &h, &req)
        .unwrap();
    assert_eq!(v.algorithm, Algorithm::Sha256);
    assert_eq!(v.nc, Some(1));
    assert_eq!(v.issued_at, t(1_000));
    assert_eq!(
        srv.verify_value(t(2_000), ChallengeKind::Www, "Digest realm=\"x", &req),
        Err(DigestError::Malformed)
    );
    let wrong = ServerRequest {
        password: "nope",
        ..req
    };
    assert_eq!(
        srv.verify_value(t(2_000), ChallengeKind::Www, &h, &wrong),
        Err(DigestError::WrongResponse)
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Hostile Authorization values never panic the verifier and never
        /// authorise without the password.
        #[test]
        fn verify_never_panics(junk in ".{0,200}", nonce in "[0-9a-fg]{0,70}") {
            let srv = server();
            let req = ServerRequest {
                method: "INVITE",
                request_uri: None,
                username: "trunk1",
                password: "secret",
            };
            let _ = srv.verify_value(t(0), ChallengeKind::Www, &junk, &req);
            let forged = format!(
                "Digest username=\"trunk1\", realm=\"sbc.example.com\", nonce=\"{nonce}\", \
                 uri=\"sip:x\", response=\"{junk:?}\", qop=auth, nc=00000001, cnonce=\"c\""
            );
            prop_assert!(srv.verify_value(t(0), ChallengeKind::Www, &forged, &req).is_err());
            let _ = srv.check_nonce(t(0), &nonce);
        }

        /// Any challenge value: answering never panics.
        #[test]
        fn answer_never_panics(junk in ".{0,200}") {
            let _ = answer_best(ChallengeKind::Proxy, &[junk.as_str()], &mufasa("p", "c"));
        }
    }
}

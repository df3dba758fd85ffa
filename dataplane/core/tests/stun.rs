//! STUN: RFC 5769 test vectors (§2.1 request, §2.2 IPv4 and §2.3 IPv6 responses,
//! short-term password "VOkJxbRl1RmTxUk/WvJxBt") and the ICE-lite responder.

use portcullis_rtp::rtp::{classify, PacketKind};
use portcullis_rtp::stun::{
    answer_binding, answer_binding_detailed, build_binding_request, error_response, is_stun,
    BindingRequest, IceCredentials, StunError, StunMessage, BINDING_ERROR, BINDING_SUCCESS,
    MAX_RESPONSE_LEN,
};
use std::net::SocketAddr;

const PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";

/// RFC 5769 §2.1 sample request (USERNAME "evtj:h6vY", SOFTWARE, PRIORITY,
/// ICE-CONTROLLED, MESSAGE-INTEGRITY, FINGERPRINT).
const REQUEST: &str = "000100582112a442b7e7a701bc34d686fa87dfae\
    802200105354554e207465737420636c69656e74\
    002400046e0001ff\
    80290008932ff9b151263b36\
    000600096576746a3a68367659202020\
    000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2\
    80280004e57a3bcf";

/// RFC 5769 §2.2 sample IPv4 response (XOR-MAPPED-ADDRESS 192.0.2.1:32853).
const RESPONSE_V4: &str = "0101003c2112a442b7e7a701bc34d686fa87dfae\
    8022000b7465737420766563746f7220\
    002000080001a147e112a643\
    000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7\
    80280004c07d4c96";

/// RFC 5769 §2.3 sample IPv6 response
/// (XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853).
const RESPONSE_V6: &str = "010100482112a442b7e7a701bc34d686fa87dfae\
    8022000b7465737420766563746f7220\
    002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9\
    00080014a382954e4be67bf11784c97c8292c275bfe3ed41\
    80280004c8fb0b4c";

fn bytes(h: &str) -> Vec<u8> {
    hex::decode(h).unwrap()
}

#[test]
fn rfc5769_request_integrity_and_fingerprint() {
    let req = bytes(REQUEST);
    assert!(is_stun(&req));
    assert_eq!(classify(&req), PacketKind::Stun);
    let m = StunMessage::new_checked(&req).unwrap();
    assert_eq!(m.msg_type(), 0x0001);
    assert_eq!(m.attribute(0x0006).unwrap().value, b"evtj:h6vY");
    assert_eq!(m.verify_fingerprint(), Ok(()));
    assert_eq!(m.verify_integrity(PASSWORD.as_bytes()), Ok(()));
    assert_eq!(
        m.verify_integrity(b"VOkJxbRl1RmTxUk/WvJxBu"),
        Err(StunError::IntegrityFailed)
    );
    let mut bad = req.clone();
    bad[30] ^= 1; // inside SOFTWARE: both checks must notice
    let m = StunMessage::new_checked(&bad).unwrap();
    assert_eq!(m.verify_fingerprint(), Err(StunError::BadFingerprint));
    assert_eq!(
        m.verify_integrity(PASSWORD.as_bytes()),
        Err(StunError::IntegrityFailed)
    );
}

#[test]
fn rfc5769_responses_verify_and_decode() {
    for (h, addr) in [
        (RESPONSE_V4, "192.0.2.1:32853"),
        (RESPONSE_V6, "[2001:db8:1234:5678:11:2233:4455:6677]:32853"),
    ] {
        let resp = bytes(h);
        let m = StunMessage::new_checked(&resp).unwrap();
        assert_eq!(m.msg_type(), BINDING_SUCCESS);
        assert_eq!(m.verify_fingerprint(), Ok(()));
        assert_eq!(m.verify_integrity(PASSWORD.as_bytes()), Ok(()));
        assert_eq!(
            m.xor_mapped_address(),
            Some(addr.parse::<SocketAddr>().unwrap())
        );
    }
}

#[test]
fn answers_rfc5769_request_with_the_rfc_xor_mapped_address() {
    // Our ufrag is "evtj" (USERNAME is "<responder ufrag>:<sender ufrag>").
    let creds = IceCredentials::new("evtj", PASSWORD).unwrap();
    let req = bytes(REQUEST);
    for (addr, rfc) in [
        ("192.0.2.1:32853", RESPONSE_V4),
        ("[2001:db8:1234:5678:11:2233:4455:6677]:32853", RESPONSE_V6),
    ] {
        let from: SocketAddr = addr.parse().unwrap();
        let mut out = [0u8; MAX_RESPONSE_LEN];
        let a = answer_binding_detailed(&req, from, &creds, &mut out).unwrap();
        assert_eq!(a.priority, Some(0x6e00_01ff));
        assert!(!a.use_candidate && !a.peer_controlling);
        let resp = &out[..a.len];
        assert!(is_stun(resp));
        let m = StunMessage::new_checked(resp).unwrap();
        assert_eq!(m.msg_type(), BINDING_SUCCESS);
        assert_eq!(
            m.transaction_id(),
            StunMessage::new_checked(&req).unwrap().transaction_id()
        );
        assert_eq!(m.verify_fingerprint(), Ok(()));
        assert_eq!(m.verify_integrity(PASSWORD.as_bytes()), Ok(()));
        assert_eq!(m.xor_mapped_address(), Some(from));
        // Same XOR-MAPPED-ADDRESS attribute bytes as the RFC's response.
        let ours = m.attribute(0x0020).unwrap().value;
        let rfc = bytes(rfc);
        let theirs = StunMessage::new_checked(&rfc)
            .unwrap()
            .attribute(0x0020)
            .unwrap()
            .value
            .to_vec();
        assert_eq!(ours, &theirs[..]);
    }
}

fn check(creds_pwd: &str, use_candidate: bool, user: &[u8]) -> Vec<u8> {
    let req = BindingRequest {
        transaction_id: *b"0123456789ab",
        username: user,
        key: creds_pwd.as_bytes(),
        priority: 1_845_501_695,
        use_candidate,
        tie_breaker: 0x1234_5678_9abc_def0,
    };
    let mut buf = [0u8; 256];
    let n = build_binding_request(&req, &mut buf).unwrap();
    buf[..n].to_vec()
}

#[test]
fn ice_lite_answers_and_rejects() {
    let creds = IceCredentials::new("sbc1", "abcdefghijklmnopqrstuvwx").unwrap();
    let from: SocketAddr = "10.1.2.3:40000".parse().unwrap();
    let mut out = [0u8; 128];

    let req = check("abcdefghijklmnopqrstuvwx", true, b"sbc1:peer");
    let a = answer_binding_detailed(&req, from, &creds, &mut out).unwrap();
    assert!(a.use_candidate && a.peer_controlling);
    let n = answer_binding(&req, from, &creds, &mut out).unwrap();
    assert_eq!(n, a.len);
    assert_eq!(
        StunMessage::new_checked(&out[..n])
            .unwrap()
            .xor_mapped_address(),
        Some(from)
    );

    // Wrong password → 401.
    let bad = check("abcdefghijklmnopqrstuvwy", false, b"sbc1:peer");
    let e = answer_binding(&bad, from, &creds, &mut out).unwrap_err();
    assert_eq!(e, StunError::IntegrityFailed);
    assert_eq!(e.status_code(), Some(401));
    let n = error_response(&bad, e, &mut out).unwrap();
    let m = StunMessage::new_checked(&out[..n]).unwrap();
    assert_eq!(m.msg_type(), BINDING_ERROR);
    assert_eq!(m.attribute(0x0009).unwrap().value[2..4], [4, 1]);
    assert_eq!(m.verify_fingerprint(), Ok(()));

    // Wrong ufrag, and a ufrag that is only a prefix of ours.
    for user in [&b"other:peer"[..], b"sbc:peer", b"sbc1peer", b"sbc1"] {
        let r = check("abcdefghijklmnopqrstuvwx", false, user);
        assert_eq!(
            answer_binding(&r, from, &creds, &mut out),
            Err(StunError::UnknownUsername)
        );
    }

    // Tampered after signing: fingerprint check fails first (silent drop).
    let mut t = req.clone();
    t[24 + 4] ^= 0x20;
    let e = answer_binding(&t, from, &creds, &mut out).unwrap_err();
    assert_eq!(e, StunError::BadFingerprint);
    assert_eq!(e.status_code(), None);

    // Not a request / not STUN.
    let mut ind = req.clone();
    ind[1] = 0x11; // Binding indication
    assert_eq!(
        answer_binding(&ind, from, &creds, &mut out),
        Err(StunError::NotBindingRequest)
    );
    assert_eq!(
        answer_binding(&req[..req.len() - 4], from, &creds, &mut out),
        Err(StunError::NotStun)
    );

    // Output too small.
    assert_eq!(
        answer_binding(&req, from, &creds, &mut out[..40]),
        Err(StunError::NoRoom)
    );
}

#[test]
fn credentials_bounds() {
    assert!(IceCredentials::new("", "x").is_err());
    assert!(IceCredentials::new("a:b", "x").is_err());
    assert!(IceCredentials::new(&"u".repeat(33), "x").is_err());
    assert!(IceCredentials::new("u", &"p".repeat(65)).is_err());
    let c = IceCredentials::new(&"u".repeat(32), &"p".repeat(64)).unwrap();
    assert_eq!(c.ufrag().len(), 32);
    assert_eq!(c.pwd().len(), 64);
}

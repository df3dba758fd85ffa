//! Digest authentication end to end through the real appliance: a raw UDP client on
//! the trunk's address places a genuine call (INVITE, 401, INVITE with credentials
//! answering the SHA-256 challenge, 200, ACK, BYE) to a sipp callee; then the
//! authenticated INVITE it sent, as captured on the wire, is replayed with a new
//! branch, and its Authorization is reused on a new call. Each replay gets a 401
//! challenge, never a call: no INVITE reaches the callee, no second CDR, and
//! `portcullis_sip_auth_replays_total` counts both.
//!
//! (sipp's own `[authentication]` cannot be the caller: sip-tester 3.6 answers only
//! the first challenge and only MD5, and the SBC offers SHA-256 first, RFC 8760.)

mod sipp_harness;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use portcullis_engine::digest::{answer_best, cnonce, ChallengeKind, ClientRequest};
use sipp_harness::*;

/// The `left` trunk challenges inbound INVITEs (user alice, password s3cret).
fn digest_config(p: Ports) -> String {
    let left = format!("name = \"left\"\naddress = \"127.0.0.1:{}\"\n", p.left);
    let cfg = config(p, ROUTE_LEFT_RIGHT);
    assert!(cfg.contains(&left));
    cfg.replacen(
        &left,
        &format!(
            "{left}\n[trunk.credentials]\nusername = \"alice\"\npassword = \"s3cret\"\n\
             realm = \"sbc.test\"\nchallenge_inbound = true\nanswer_upstream = false\n"
        ),
        1,
    )
}

/// An INVITE from the trunk's socket `local` to `user`, CSeq `cseq`, with `extra`
/// header lines.
fn invite(
    local: &str,
    target: &str,
    call_id: &str,
    branch: &str,
    cseq: u32,
    extra: &str,
) -> String {
    let sdp = "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    format!(
        "INVITE sip:100@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\n\
         From: <sip:caller@{local}>;tag=caller1\r\nTo: <sip:100@{target}>\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:caller@{local}>\r\n\
         Max-Forwards: 70\r\n{extra}Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// An in-dialog request (`ACK`, `BYE`) of the genuine call, toward the SBC.
fn in_dialog(
    method: &str,
    local: &str,
    target: &str,
    to: &str,
    call_id: &str,
    cseq: u32,
    branch: &str,
) -> String {
    format!(
        "{method} sip:100@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\n\
         From: <sip:caller@{local}>;tag=caller1\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Responses received on `sock` until one with a final status arrives (10 s at most).
fn until_final(sock: &UdpSocket) -> Vec<(u16, String)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = vec![0u8; 65_535];
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let status = text.get(8..11).and_then(|s| s.parse().ok()).unwrap_or(0);
            got.push((status, text));
            if status >= 200 {
                return got;
            }
        }
    }
    panic!("no final response: {got:?}");
}

/// Sends `msg` from `sock` to the appliance and collects the status codes of the
/// responses for 2 s.
fn send_and_collect(sock: &UdpSocket, to: &str, msg: &str) -> Vec<(u16, String)> {
    sock.send_to(msg.as_bytes(), to).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut buf = vec![0u8; 65_535];
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let status = text.get(8..11).and_then(|s| s.parse().ok()).unwrap_or(0);
            got.push((status, text));
        }
    }
    got
}

/// Every final answer is the challenge (401, retransmitted until ACKed), none a call.
#[track_caller]
fn assert_only_401(got: &[(u16, String)]) {
    let finals: Vec<u16> = got.iter().map(|g| g.0).filter(|s| *s >= 200).collect();
    assert!(
        !finals.is_empty() && finals.iter().all(|s| *s == 401),
        "{got:?}"
    );
}

fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.split("\r\n")
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
        .unwrap_or_else(|| panic!("no {name} in {msg}"))
}

fn metric(p: Ports, name: &str) -> u64 {
    let text = ureq::get(&format!("http://127.0.0.1:{}/metrics", p.admin))
        .call()
        .expect("metrics")
        .into_string()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn a_captured_authenticated_invite_replayed_gets_a_challenge_not_a_call() {
    let _serial = serial();
    let p = Ports::for_test(40);
    let app = Appliance::start(&digest_config(p));
    let dir = app.dir.path();

    // The genuine call from the trunk's address, sipp answering as the callee.
    let mut uas = start_uas(dir, p, &["-sn", "uas", "-m", "1"]);
    let caller = UdpSocket::bind(("127.0.0.1", p.left)).unwrap();
    caller
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let local = format!("127.0.0.1:{}", p.left);
    let target = sip_target(p);
    let call_id = "genuine-call@127.0.0.1";
    caller
        .send_to(
            invite(&local, &target, call_id, "z9hG4bKfirst", 1, "").as_bytes(),
            &target,
        )
        .unwrap();
    let got = until_final(&caller);
    let (status, challenge) = got.last().unwrap();
    assert_eq!(*status, 401, "{got:?}");
    let to = header(challenge, "To").to_owned();
    let ack = in_dialog("ACK", &local, &target, &to, call_id, 1, "z9hG4bKfirst");
    caller.send_to(ack.as_bytes(), &target).unwrap();
    let values: Vec<&str> = challenge
        .split("\r\n")
        .filter_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .collect();
    assert!(values[0].contains("algorithm=SHA-256"), "{values:?}");
    let authorization = answer_best(
        ChallengeKind::Www,
        &values,
        &ClientRequest {
            method: "INVITE",
            uri: &format!("sip:100@{target}"),
            username: "alice",
            password: "s3cret",
            cnonce: &cnonce(0x5eed),
            nc: 1,
        },
    )
    .unwrap();
    let captured = invite(
        &local,
        &target,
        call_id,
        "z9hG4bKsecond",
        2,
        &format!("Authorization: {authorization}\r\n"),
    );
    caller.send_to(captured.as_bytes(), &target).unwrap();
    let got = until_final(&caller);
    let (status, ok) = got.last().unwrap();
    assert_eq!(*status, 200, "{got:?}");
    let to = header(ok, "To").to_owned();
    let ack = in_dialog("ACK", &local, &target, &to, call_id, 2, "z9hG4bKack");
    caller.send_to(ack.as_bytes(), &target).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let bye = in_dialog("BYE", &local, &target, &to, call_id, 3, "z9hG4bKbye");
    caller.send_to(bye.as_bytes(), &target).unwrap();
    assert_eq!(until_final(&caller).last().unwrap().0, 200);
    uas.wait_ok(Duration::from_secs(20), "callee");
    assert_eq!(app.wait_cdrs(1, Duration::from_secs(10)).len(), 1);
    drop(caller);

    // The callee's address now listens for anything the SBC might still send.
    let callee = UdpSocket::bind(("127.0.0.1", p.right)).unwrap();
    callee
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // The attacker sends from the trunk's address (spoofed or on the trunk's path).
    let thief = UdpSocket::bind(("127.0.0.1", p.left)).unwrap();
    thief
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let via = header(&captured, "Via");
    let branch = via
        .split(";branch=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();

    // 1. The captured INVITE with a new branch (the Via is not covered by the digest).
    let replay = captured.replacen(branch, "z9hG4bKreplay-one", 1);
    let got = send_and_collect(&thief, &target, &replay);
    assert_only_401(&got);

    // 2. Its Authorization on a new call: new Call-ID, From tag and branch.
    let new_call = captured
        .replacen(branch, "z9hG4bKreplay-two", 1)
        .replacen(call_id, "stolen@127.0.0.1", 1)
        .replacen("tag=caller1", "tag=thief1", 1);
    let got = send_and_collect(&thief, &target, &new_call);
    assert_only_401(&got);

    // No INVITE reached the callee, no second CDR, both counted as replays.
    let mut buf = vec![0u8; 65_535];
    let quiet_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < quiet_until {
        if let Ok((n, _)) = callee.recv_from(&mut buf) {
            panic!(
                "the SBC called the callee: {}",
                String::from_utf8_lossy(&buf[..n])
            );
        }
    }
    assert_eq!(app.cdrs().len(), 1, "{:?}", app.cdrs());
    assert_eq!(metric(p, "portcullis_sip_auth_replays_total"), 2);
}

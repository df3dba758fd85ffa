//! Interop with libsrtp (through python3-pylibsrtp): libsrtp protects and we
//! unprotect, we protect and libsrtp unprotects, for both suites, across a ROC
//! rollover, with CSRCs and a header extension, and for SRTCP.
//!
//! Needs `python3` with the `pylibsrtp` module (Debian: python3-pylibsrtp). The
//! interpreter is `$PORTCULLIS_PYTHON`, else the first of `python3`,
//! `/usr/bin/python3` that can import pylibsrtp. Fails loudly when none can.

use portcullis_rtp::srtp::{SrtpKeys, SrtpProfile, SrtpSession};
use std::io::Write;
use std::process::{Command, Stdio};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pylibsrtp_peer.py");
const KEY: [u8; 16] = *b"interop-key-1234";
const SALT: [u8; 14] = *b"interop-salt14";

fn python() -> String {
    let mut candidates: Vec<String> = std::env::var("PORTCULLIS_PYTHON").into_iter().collect();
    candidates.extend(["python3".to_string(), "/usr/bin/python3".to_string()]);
    for py in &candidates {
        let ok = Command::new(py)
            .args(["-c", "import pylibsrtp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return py.clone();
        }
    }
    panic!(
        "interop test needs python3 with pylibsrtp (apt-get install python3-pylibsrtp); \
         tried {candidates:?}"
    );
}

/// Run the libsrtp peer over `packets` (("rtp"|"rtcp", bytes)); one output line each.
fn libsrtp(mode: &str, suite: &str, packets: &[(&str, Vec<u8>)]) -> Vec<String> {
    let mut key_salt = KEY.to_vec();
    key_salt.extend_from_slice(&SALT);
    let mut child = Command::new(python())
        .args([SCRIPT, mode, suite, &hex::encode(key_salt)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let mut input = String::new();
    for (kind, p) in packets {
        input.push_str(&format!("{kind} {}\n", hex::encode(p)));
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "pylibsrtp peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), packets.len(), "one answer per packet");
    lines
}

fn rtp(seq: u16, ssrc: u32, fancy: bool) -> Vec<u8> {
    let mut p = vec![if fancy { 0x92 } else { 0x80 }, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq).wrapping_mul(160)).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    if fancy {
        p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]); // 2 CSRCs
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0x42, 0, 0]); // extension
    }
    p.extend((0..160).map(|i| (i as u8).wrapping_mul(seq as u8 | 1)));
    p
}

fn rtcp(ssrc: u32, n: u8) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..24).map(|i| i ^ n));
    p
}

/// The packet sequence: a ROC rollover, CSRC+extension packets and RTCP.
fn traffic(ssrc: u32) -> Vec<(&'static str, Vec<u8>)> {
    let mut v = Vec::new();
    for (i, s) in (65_520u32..65_536 + 20).enumerate() {
        v.push(("rtp", rtp(s as u16, ssrc, i % 7 == 3)));
        if i % 10 == 0 {
            v.push(("rtcp", rtcp(ssrc, i as u8)));
        }
    }
    v
}

fn suites() -> [(SrtpProfile, &'static str); 2] {
    [
        (SrtpProfile::AesCm128HmacSha1_80, "80"),
        (SrtpProfile::AesCm128HmacSha1_32, "32"),
    ]
}

fn session(p: SrtpProfile) -> SrtpSession {
    SrtpSession::new(&SrtpKeys {
        profile: p,
        master_key: KEY,
        master_salt: SALT,
    })
}

#[test]
fn libsrtp_protects_we_unprotect() {
    for (profile, suite) in suites() {
        let plain = traffic(0x1122_3344);
        let wire = libsrtp("protect", suite, &plain);
        let mut rx = session(profile);
        for ((kind, p), w) in plain.iter().zip(&wire) {
            let mut buf = hex::decode(w).unwrap_or_else(|_| panic!("libsrtp protect: {w}"));
            let len = buf.len();
            let n = if *kind == "rtp" {
                rx.unprotect_rtp(&mut buf, len)
            } else {
                rx.unprotect_rtcp(&mut buf, len)
            }
            .unwrap_or_else(|e| panic!("{suite} {kind}: our unprotect of libsrtp output: {e}"));
            assert_eq!(&buf[..n], &p[..], "{suite} {kind}");
        }
        assert_eq!(
            rx.roc(0x1122_3344),
            Some(1),
            "{suite}: ROC followed the wrap"
        );
    }
}

#[test]
fn we_protect_libsrtp_unprotects() {
    for (profile, suite) in suites() {
        let plain = traffic(0x5566_7788);
        let mut tx = session(profile);
        let mut wire = Vec::new();
        for (kind, p) in &plain {
            let mut buf = p.clone();
            buf.resize(p.len() + 14, 0);
            let n = if *kind == "rtp" {
                tx.protect_rtp(&mut buf, p.len())
            } else {
                tx.protect_rtcp(&mut buf, p.len())
            }
            .unwrap();
            buf.truncate(n);
            wire.push((*kind, buf));
        }
        // One forged copy at the end: libsrtp must refuse it.
        let mut forged = wire[3].1.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        wire.push((wire[3].0, forged));
        let back = libsrtp("unprotect", suite, &wire);
        for ((kind, p), b) in plain.iter().zip(&back) {
            assert_eq!(
                b,
                &hex::encode(p),
                "{suite} {kind}: libsrtp unprotect of our output"
            );
        }
        assert!(
            back.last().unwrap().starts_with("ERR"),
            "{suite}: libsrtp accepted a forgery"
        );
    }
}

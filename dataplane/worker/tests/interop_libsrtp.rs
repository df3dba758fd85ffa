//! SRTP interop with libsrtp (through Debian's python3-pylibsrtp) across a relayed stream:
//! packets protected by libsrtp go into an SRTP→RTP leg and come out as the original RTP;
//! plain RTP sent into an RTP→SRTP leg comes out decryptable by libsrtp.
//!
//! Needs `/usr/bin/python3` with `pylibsrtp` (`apt-get install python3-pylibsrtp`); the test
//! fails with that message when it is missing.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use portcullis_dataplane::{Backend, StreamParams};

const PY: &str = r#"
import sys, binascii
from pylibsrtp import Policy, Session
mode, key = sys.argv[1], binascii.unhexlify(sys.argv[2])
pol = Policy(key=key, ssrc_type=(Policy.SSRC_ANY_OUTBOUND if mode == "protect" else Policy.SSRC_ANY_INBOUND),
             srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
s = Session(policy=pol)
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    pkt = binascii.unhexlify(line)
    out = s.protect(pkt) if mode == "protect" else s.unprotect(pkt)
    print(binascii.hexlify(out).decode())
"#;

const PYTHON: &str = "/usr/bin/python3";

/// Run libsrtp over `packets`; `mode` is "protect" or "unprotect".
fn libsrtp(mode: &str, key_salt: &[u8], packets: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut child = Command::new(PYTHON)
        .args(["-c", PY, mode, &hex(key_salt)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{PYTHON} not runnable ({e}): install python3-pylibsrtp"));
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for p in packets {
            writeln!(stdin, "{}", hex(p)).expect("write");
        }
    }
    let out = child.wait_with_output().expect("python");
    assert!(
        out.status.success(),
        "libsrtp helper failed (is python3-pylibsrtp installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(unhex)
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn key_salt(k: &portcullis_rtp::srtp::SrtpKeys) -> Vec<u8> {
    let mut v = k.master_key.to_vec();
    v.extend_from_slice(&k.master_salt);
    v
}

fn interop(backend: Backend, base: u16) {
    let dp = start(backend, base, 2);
    let (pa, pb) = (peer(), peer());
    let k_in = keys(21);
    let k_out = keys(77);
    let originals: Vec<Vec<u8>> = (0..20u16)
        .map(|i| {
            let payload: Vec<u8> = (0..160)
                .map(|j| (i as u8).wrapping_mul(7) ^ j as u8)
                .collect();
            rtp(1000 + i, 160 * u32::from(i), 0xfeed_beef, &payload)
        })
        .collect();

    // libsrtp → [SRTP→RTP] → plain.
    let h = dp.allocate_pair().expect("pair");
    let a = StreamParams {
        srtp_in: Some(k_in),
        ..plain(Some(addr(&pa)))
    };
    dp.update(&h, a, plain(Some(addr(&pb)))).expect("update");
    std::thread::sleep(Duration::from_millis(50));
    let protected = libsrtp("protect", &key_salt(&k_in), &originals);
    assert_eq!(protected.len(), originals.len());
    for (p, o) in protected.iter().zip(&originals) {
        assert_eq!(p.len(), o.len() + 10, "libsrtp adds the 80-bit tag");
        pa.send_to(p, to(h.port_a)).expect("send");
        let (got, _) = recv(&pb).expect("relayed");
        assert_eq!(&got, o, "original RTP out of the SRTP→RTP leg");
    }

    // plain → [RTP→SRTP] → libsrtp.
    let h2 = dp.allocate_pair().expect("pair");
    let b = StreamParams {
        srtp_out: Some(k_out),
        ..plain(Some(addr(&pb)))
    };
    dp.update(&h2, plain(Some(addr(&pa))), b).expect("update");
    std::thread::sleep(Duration::from_millis(50));
    let mut srtp_out = Vec::new();
    for o in &originals {
        pa.send_to(o, to(h2.port_a)).expect("send");
        let (got, _) = recv(&pb).expect("relayed");
        assert_ne!(&got, o, "payload encrypted");
        srtp_out.push(got);
    }
    let decrypted = libsrtp("unprotect", &key_salt(&k_out), &srtp_out);
    assert_eq!(
        decrypted, originals,
        "libsrtp decrypts what the relay protected"
    );
}

#[test]
fn libsrtp_interop_mmsg() {
    interop(Backend::Mmsg, 12800);
}

#[test]
fn libsrtp_interop_io_uring() {
    interop(Backend::IoUring, 12900);
}

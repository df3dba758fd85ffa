//! SRTP protect/unprotect ns/packet, ours against libsrtp2, side by side.
//!
//! Workload (identical on both sides): a 172-byte RTP packet (12-byte header,
//! 160-byte payload, i.e. 20 ms of G.711), a fresh sequence number per packet.
//! Protect loop: build the packet, protect it in place, store the SRTP packet.
//! Unprotect loop: copy a stored SRTP packet into the work buffer, unprotect.
//! libsrtp runs as `benches/c/libsrtp_bench.c`, compiled here with the system C
//! compiler against `-lsrtp2` (Debian: libsrtp2-dev).
//!
//! Run: `cargo bench -p portcullis-benches --bench srtp`
//! (`SRTP_BENCH_ITERS` overrides the packets per round, default 200000.)

use portcullis_rtp::srtp::{SrtpKeys, SrtpProfile, SrtpSession};
use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

const PKT_LEN: usize = 172;
const SLOT: usize = PKT_LEN + 16;
const ROUNDS: usize = 5;

/// Same packet as `make_packet` in the C program.
fn make_packet(p: &mut [u8; SLOT], i: u32) {
    let seq = i as u16;
    p[0] = 0x80;
    p[1] = 0x00;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&i.wrapping_mul(160).to_be_bytes());
    p[8..12].copy_from_slice(&[0xca, 0xfe, 0xba, 0xbe]);
    for (k, b) in p.iter_mut().enumerate().take(PKT_LEN).skip(12) {
        *b = (k * 7) as u8;
    }
}

fn keys(profile: SrtpProfile) -> SrtpKeys {
    let mut ks = [0u8; 30];
    for (i, b) in ks.iter_mut().enumerate() {
        *b = (i * 13 + 1) as u8;
    }
    SrtpKeys::from_key_salt(profile, &ks).expect("30 bytes")
}

/// (protect ns/packet, unprotect ns/packet) for our implementation.
fn ours(profile: SrtpProfile, n: usize) -> (f64, f64) {
    let mut tx = SrtpSession::new(&keys(profile));
    let mut rx = SrtpSession::new(&keys(profile));
    let mut wire = vec![[0u8; SLOT]; n];
    let mut lens = vec![0usize; n];
    let mut buf = [0u8; SLOT];

    let t0 = Instant::now();
    for i in 0..n {
        make_packet(&mut buf, i as u32);
        let len = tx
            .protect_rtp(black_box(&mut buf), PKT_LEN)
            .expect("protect");
        wire[i][..len].copy_from_slice(&buf[..len]);
        lens[i] = len;
    }
    let t1 = Instant::now();
    for i in 0..n {
        let len = lens[i];
        buf[..len].copy_from_slice(&wire[i][..len]);
        let m = rx
            .unprotect_rtp(black_box(&mut buf), len)
            .expect("unprotect");
        assert_eq!(m, PKT_LEN);
    }
    let t2 = Instant::now();
    let per = |d: std::time::Duration| d.as_nanos() as f64 / n as f64;
    (per(t1 - t0), per(t2 - t1))
}

/// (protect, unprotect) ns/packet when `sessions` sessions take turns, one packet each,
/// as a relay with that many SRTP calls sees them: every packet finds its session's
/// state out of the nearest caches. Ours only; context for the relay figures.
fn ours_spread(profile: SrtpProfile, n: usize, sessions: usize) -> (f64, f64) {
    let mut tx: Vec<Box<SrtpSession>> = (0..sessions)
        .map(|_| Box::new(SrtpSession::new(&keys(profile))))
        .collect();
    let mut rx: Vec<Box<SrtpSession>> = (0..sessions)
        .map(|_| Box::new(SrtpSession::new(&keys(profile))))
        .collect();
    let rounds = n.div_ceil(sessions);
    let mut wire = vec![[0u8; SLOT]; sessions];
    let mut lens = vec![0usize; sessions];
    let mut buf = [0u8; SLOT];
    let (mut t_prot, mut t_unpr) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    for r in 0..rounds {
        let t0 = Instant::now();
        for (s, tx) in tx.iter_mut().enumerate() {
            make_packet(&mut buf, r as u32);
            let len = tx
                .protect_rtp(black_box(&mut buf), PKT_LEN)
                .expect("protect");
            wire[s][..len].copy_from_slice(&buf[..len]);
            lens[s] = len;
        }
        let t1 = Instant::now();
        for (s, rx) in rx.iter_mut().enumerate() {
            let len = lens[s];
            buf[..len].copy_from_slice(&wire[s][..len]);
            let m = rx
                .unprotect_rtp(black_box(&mut buf), len)
                .expect("unprotect");
            assert_eq!(m, PKT_LEN);
        }
        t_prot += t1 - t0;
        t_unpr += t1.elapsed();
    }
    let per = |d: std::time::Duration| d.as_nanos() as f64 / (rounds * sessions) as f64;
    (per(t_prot), per(t_unpr))
}

/// Compile the libsrtp program once.
fn build_libsrtp() -> PathBuf {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/c/libsrtp_bench.c");
    let dir = std::env::temp_dir().join(format!("portcullis-srtp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let exe = dir.join("libsrtp_bench");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(&cc)
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(src)
        .arg("-lsrtp2")
        .status()
        .unwrap_or_else(|e| panic!("cannot run C compiler {cc:?}: {e} (install gcc)"));
    assert!(
        status.success(),
        "compiling {src} failed: is libsrtp2-dev installed?"
    );
    exe
}

/// (protect, unprotect) ns/packet from the libsrtp program.
fn libsrtp(exe: &PathBuf, suite: &str, n: usize) -> (f64, f64) {
    let out = Command::new(exe)
        .args([suite, &n.to_string()])
        .output()
        .expect("run libsrtp bench");
    assert!(
        out.status.success(),
        "libsrtp bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> f64 {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text:?}"))
    };
    (field("protect_ns="), field("unprotect_ns="))
}

fn min(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    (a.0.min(b.0), a.1.min(b.1))
}

fn main() {
    let n: usize = std::env::var("SRTP_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    #[cfg(target_arch = "x86_64")]
    println!(
        "cpu: aes-ni={} sha-ni={} (the aes and sha1 crates pick these at run time)",
        std::arch::is_x86_feature_detected!("aes"),
        std::arch::is_x86_feature_detected!("sha"),
    );
    let exe = build_libsrtp();
    println!("{n} packets of {PKT_LEN} bytes per round, best of {ROUNDS} rounds (ns/packet)");
    println!(
        "{:<26} {:>10} {:>10} {:>8} {:>10} {:>10} {:>8}",
        "suite", "ours_prot", "lib_prot", "ratio", "ours_unpr", "lib_unpr", "ratio"
    );
    let mut summary = Vec::new();
    for (profile, suite) in [
        (SrtpProfile::AesCm128HmacSha1_80, "80"),
        (SrtpProfile::AesCm128HmacSha1_32, "32"),
    ] {
        let mut best_ours = (f64::MAX, f64::MAX);
        let mut best_lib = (f64::MAX, f64::MAX);
        for _ in 0..ROUNDS {
            // Alternate so both see the same background load.
            best_ours = min(best_ours, ours(profile, n));
            best_lib = min(best_lib, libsrtp(&exe, suite, n));
        }
        let rp = best_lib.0 / best_ours.0;
        let ru = best_lib.1 / best_ours.1;
        println!(
            "{:<26} {:>10.1} {:>10.1} {:>7.2}x {:>10.1} {:>10.1} {:>7.2}x",
            profile.sdes_name(),
            best_ours.0,
            best_lib.0,
            rp,
            best_ours.1,
            best_lib.1,
            ru
        );
        summary.push((suite, best_ours, best_lib, rp, ru));
    }
    let _ = std::fs::remove_dir_all(exe.parent().unwrap_or(&exe));
    let sessions: usize = std::env::var("SRTP_BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let mut spread = (f64::MAX, f64::MAX);
    for _ in 0..ROUNDS {
        spread = min(
            spread,
            ours_spread(SrtpProfile::AesCm128HmacSha1_80, n, sessions),
        );
    }
    println!(
        "{sessions} sessions in turn, {}: protect {:.1} unprotect {:.1} ns/packet; \
         a session is {} bytes",
        SrtpProfile::AesCm128HmacSha1_80.sdes_name(),
        spread.0,
        spread.1,
        std::mem::size_of::<SrtpSession>()
    );
    for (suite, o, l, rp, ru) in summary {
        println!(
            "srtp: suite={suite} ours_protect_ns={:.1} libsrtp_protect_ns={:.1} ratio={rp:.2} \
             ours_unprotect_ns={:.1} libsrtp_unprotect_ns={:.1} unprotect_ratio={ru:.2}",
            o.0, l.0, o.1, l.1
        );
    }
}

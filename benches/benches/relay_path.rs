//! The relay's packet path without I/O, per packet, with 2,000 calls taking turns.
//!
//! What it measures: `on_packet` (latching, RTP statistics, counters, SRTP) as the
//! worker runs it, fed by hand, so the figure is our code and the cache lines of our state
//! and nothing of the kernel's. Between two packets the loop reads `POLLUTE` bytes of a
//! 64 MB array, standing in for the kernel's own per-packet footprint (sockets, buffers),
//! so every call's state has left the nearest caches by its next packet, as in the
//! forwarding bench. Cases: plain RTP, and RTP → SRTP (the B leg protects).
//!
//! Run: `cargo bench -p portcullis-benches --bench relay_path`
//! (`RELAY_PATH_PACKETS`, default 2,000,000 per case; `RELAY_PATH_POLLUTE`, bytes read
//! between packets, default 2048; `RELAY_PATH_CASES`, `plain` or `srtp` for one case).
//!
//! For counts that do not move with the machine, run the binary under
//! `valgrind --tool=callgrind --cache-sim=yes --LL=2097152,16,64` (a 2 MB last level, the
//! size of this machine's L2) with `RELAY_PATH_PACKETS=200000`, and read the inclusive
//! instruction and miss counts of `PathBench::packet` with `callgrind_annotate --inclusive=yes`.

use portcullis_dataplane::relay::{PathBench, BUF_SIZE};
use portcullis_dataplane::StreamParams;
use portcullis_rtp::srtp::{SrtpKeys, SrtpProfile};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

const PAIRS: u32 = 2_000;
const PKT_LEN: usize = 172;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn addr(port: u32) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, 0, (port >> 8) as u8, port as u8)),
        4000,
    )
}

fn keys() -> SrtpKeys {
    let mut ks = [0u8; 30];
    for (i, b) in ks.iter_mut().enumerate() {
        *b = (i * 13 + 1) as u8;
    }
    SrtpKeys::from_key_salt(SrtpProfile::AesCm128HmacSha1_80, &ks).expect("30 bytes")
}

fn rtp(buf: &mut [u8], seq: u16, ssrc: u32) {
    buf[0] = 0x80;
    buf[1] = 0;
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// Read `n` bytes of `junk` from `*at` on (one byte a line), move `*at` on, and return
/// the sum so the reads are not optimised away.
fn pollute(junk: &[u8], at: &mut usize, n: usize) -> u64 {
    let sum = junk[*at..*at + n]
        .chunks(64)
        .fold(0u64, |s, line| s.wrapping_add(u64::from(line[0])));
    *at = (*at + n) % (junk.len() - n);
    sum
}

/// ns per packet for `packets` packets, `pairs` calls in turn, leg A → leg B.
fn run(srtp: bool, packets: usize, pollute_bytes: usize, junk: &[u8]) -> f64 {
    let mut path = PathBench::new(PAIRS);
    for p in 0..PAIRS {
        let b = StreamParams {
            peer: Some(addr(p + 40_000)),
            srtp_out: srtp.then(keys),
            ..StreamParams::default()
        };
        // Leg A's peer is signalled (the sender): every packet comes from the peer.
        let a = StreamParams {
            peer: Some(addr(p)),
            ..StreamParams::default()
        };
        path.update(p, a, b);
    }
    let mut buf = vec![0u8; BUF_SIZE];
    let rounds = packets.div_ceil(PAIRS as usize);
    let mut at = 0usize;
    let mut sink = 0u64;
    let mut sent = 0usize;
    let t0 = Instant::now();
    for r in 0..rounds {
        for p in 0..PAIRS {
            rtp(&mut buf, r as u16, p);
            if path
                .packet(
                    p * 4,
                    addr(p),
                    black_box(&mut buf),
                    PKT_LEN,
                    r as u64 * 20_000,
                )
                .is_some()
            {
                sent += 1;
            }
            // The kernel's share of the caches between two packets.
            sink = sink.wrapping_add(pollute(junk, &mut at, pollute_bytes));
        }
    }
    let ns = t0.elapsed().as_nanos() as f64 / (rounds * PAIRS as usize) as f64;
    black_box(sink);
    assert_eq!(sent, rounds * PAIRS as usize, "every packet relayed");
    ns
}

fn main() {
    let packets = env("RELAY_PATH_PACKETS", 2_000_000);
    let pollute_bytes = env("RELAY_PATH_POLLUTE", 2048).max(64);
    let junk: Vec<u8> = (0..64usize << 20).map(|i| i as u8).collect();
    let base = {
        // The pollution alone, to subtract.
        let t0 = Instant::now();
        let mut sink = 0u64;
        let mut at = 0usize;
        for _ in 0..packets {
            sink = sink.wrapping_add(pollute(&junk, &mut at, pollute_bytes));
        }
        black_box(sink);
        t0.elapsed().as_nanos() as f64 / packets as f64
    };
    let only = std::env::var("RELAY_PATH_CASES").unwrap_or_default();
    let mut best = [f64::NAN; 2];
    for _ in 0..3 {
        for (i, (srtp, name)) in [(false, "plain"), (true, "srtp")].into_iter().enumerate() {
            if only.is_empty() || only == name {
                let ns = run(srtp, packets, pollute_bytes, &junk) - base;
                best[i] = if best[i].is_nan() {
                    ns
                } else {
                    best[i].min(ns)
                };
            }
        }
    }
    println!(
        "relay_path: pairs={PAIRS} pollute_bytes={pollute_bytes} pollution_ns={base:.1} \
         plain_ns={:.1} srtp_ns={:.1}",
        best[0], best[1]
    );
}

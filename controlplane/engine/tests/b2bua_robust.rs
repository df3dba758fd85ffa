//! Hostile input never panics the B2BUA and never leaks calls or media:
//! seeded mutations (byte flips, truncation, spliced lines) of the messages of
//! real call flows, fed from both trunks, then a full release.

#[path = "b2bua_harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;
use portcullis_engine::sim::SimRng;
use portcullis_engine::transaction::{Method, PeerAddr, Transport};

/// Messages of a complete call with re-INVITE, INFO and BYE, as sent by A and B.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut h = H::new();
    let (mut da, _db, _atx, _ainv) = h.answered();
    let now = h.now;
    h.a.send_in_dialog(
        now,
        &mut da,
        Method::Invite,
        Some(&sdp("192.168.1.10", 10_000, "a=sendonly\r\n")),
    );
    h.pump();
    let (btx, re) = h.b1.last_request("INVITE");
    let now = h.now;
    h.b1.respond(
        now,
        btx,
        &re,
        200,
        "btag",
        Some(&sdp("172.16.0.20", 20_000, "a=recvonly\r\n")),
    );
    h.pump();
    let now = h.now;
    h.a.send_in_dialog(now, &mut da, Method::Bye, None);
    h.pump();
    let mut out: Vec<(String, Vec<u8>)> =
        h.a.sent.iter().map(|b| (A.to_owned(), b.clone())).collect();
    out.extend(h.b1.sent.iter().map(|b| (B1.to_owned(), b.clone())));
    out
}

fn mutate(rng: &mut SimRng, msg: &[u8], other: &[u8]) -> Vec<u8> {
    let mut m = msg.to_vec();
    match rng.range(0, 5) {
        0 => {
            for _ in 0..rng.range(1, 8) {
                if m.is_empty() {
                    break;
                }
                let i = rng.range(0, m.len() as u64 - 1) as usize;
                m[i] = rng.next_u64() as u8;
            }
        }
        1 => m.truncate(rng.range(0, m.len() as u64) as usize),
        2 => {
            // Splice a line of another message in.
            let lines: Vec<&[u8]> = other.split(|b| *b == b'\n').collect();
            let l = lines[rng.range(0, lines.len() as u64 - 1) as usize];
            let at = m.iter().position(|b| *b == b'\n').map_or(0, |p| p + 1);
            m.splice(at..at, l.iter().copied().chain([b'\n']));
        }
        3 => {
            // Numbers to extremes.
            let s = String::from_utf8_lossy(&m)
                .replace("CSeq: 1", "CSeq: 4294967295")
                .replace("70", "0");
            m = s.into_bytes();
        }
        4 => {
            let s = String::from_utf8_lossy(&m)
                .replace("v=0", "v=0\r\nm=audio 99999 RTP/AVP")
                .replace("tag=", "tag=;");
            m = s.into_bytes();
        }
        _ => m.reverse(),
    }
    m
}

#[test]
fn mutated_call_flows_never_panic_or_leak() {
    let corpus = corpus();
    assert!(corpus.len() >= 8, "corpus of {} messages", corpus.len());
    for seed in 0..40u64 {
        let mut rng = SimRng::new(seed);
        let mut h = H::new();
        // A real call in progress while garbage arrives.
        let _ = h.answered();
        for _ in 0..300 {
            let (from, msg) = &corpus[rng.range(0, corpus.len() as u64 - 1) as usize];
            let (_, other) = &corpus[rng.range(0, corpus.len() as u64 - 1) as usize];
            let bytes = if rng.chance(0.8) {
                mutate(&mut rng, msg, other)
            } else {
                msg.clone()
            };
            let now = h.now;
            h.sbc.handle_datagram(
                now,
                PeerAddr {
                    transport: Transport::Udp,
                    addr: sa(from),
                    conn: None,
                },
                &bytes,
            );
            while h.sbc.poll_transmit().is_some() {}
            h.now += Duration::from_millis(rng.range(0, 50));
            let now = h.now;
            h.sbc.handle_timeout(now);
        }
        let now = h.now;
        h.sbc.release_all(now);
        h.advance(Duration::from_secs(120));
        assert_eq!(h.sbc.active_calls(), 0, "seed {seed}");
        assert_eq!(h.sbc.held_calls(), 0, "seed {seed}");
        assert!(h.sbc.media().live.is_empty(), "seed {seed}: media leak");
        assert!(
            h.sbc.stats().parse_errors > 0,
            "seed {seed}: mutations reached the parser"
        );
    }
}

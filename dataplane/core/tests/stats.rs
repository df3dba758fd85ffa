//! RFC 3550 A.1 loss accounting and A.8 jitter on synthetic arrivals.

use portcullis_rtp::stats::RtpStats;

/// 8 kHz audio, 20 ms frames: 160 timestamp units per packet.
const STEP: u32 = 160;

#[test]
fn perfect_stream_has_no_loss_and_no_jitter() {
    let mut s = RtpStats::new();
    assert_eq!(s.expected(), 0);
    for i in 0..500u32 {
        s.update(1000 + i as u16, 7 + i * STEP, 99_000 + i * STEP);
    }
    assert_eq!(s.expected(), 500);
    assert_eq!(s.received(), 500);
    assert_eq!(s.lost(), 0);
    assert_eq!(s.jitter(), 0);
}

#[test]
fn loss_across_sequence_wrap() {
    let mut s = RtpStats::new();
    let mut sent = 0u64;
    let mut got = 0u64;
    for i in 0..1000u32 {
        let seq = (65_000 + i) as u16; // wraps after 536 packets
        sent += 1;
        if i % 10 == 3 {
            continue; // drop every tenth
        }
        got += 1;
        s.update(seq, i * STEP, i * STEP);
    }
    // The last packet (i = 999) arrived, so expected equals sent.
    assert_eq!(s.expected(), sent);
    assert_eq!(s.received(), got);
    assert_eq!(s.lost(), 100);
    assert_eq!(
        s.extended_max(),
        65_536 + u64::from((65_000u32 + 999) as u16)
    );
}

#[test]
fn reordering_and_duplicates() {
    let mut s = RtpStats::new();
    let order = [0u16, 1, 3, 2, 4, 4, 6, 5, 7];
    for seq in order {
        s.update(seq, u32::from(seq) * STEP, u32::from(seq) * STEP);
    }
    assert_eq!(s.expected(), 8);
    assert_eq!(s.received(), 9);
    assert_eq!(
        s.lost(),
        -1,
        "a duplicate makes cumulative loss negative (RFC 3550 A.3)"
    );
    // Reordering across the wrap does not count a cycle twice.
    let mut s = RtpStats::new();
    for seq in [65_534u16, 0, 65_535, 1, 2] {
        s.update(seq, 0, 0);
    }
    assert_eq!(s.expected(), 5);
    assert_eq!(s.lost(), 0);
}

#[test]
fn restart_after_large_jump() {
    let mut s = RtpStats::new();
    for seq in 0..10u16 {
        s.update(seq, 0, 0);
    }
    s.update(30_000, 0, 0); // bad: discarded
    assert_eq!(s.received(), 10);
    s.update(30_001, 0, 0); // sequential with the bad one: restart
    assert_eq!(s.expected(), 1);
    assert_eq!(s.received(), 1);
}

#[test]
fn jitter_converges_to_constant_deviation() {
    // Arrival is J late on every other packet: |D| = J for every pair, so the A.8
    // estimate converges to J.
    let mut s = RtpStats::new();
    let j = 40u32;
    for i in 0..2000u32 {
        let arrival = 1_000_000 + i * STEP + if i % 2 == 0 { j } else { 0 };
        s.update(i as u16, i * STEP, arrival);
    }
    let got = s.jitter();
    assert!(
        (j - 2..=j).contains(&got),
        "jitter {got}, expected about {j}"
    );
    // Transit wraps the u32 clock without disturbing the estimate.
    let mut s = RtpStats::new();
    for i in 0..100u32 {
        s.update(i as u16, i * STEP, (u32::MAX - 1000).wrapping_add(i * STEP));
    }
    assert_eq!(s.jitter(), 0);
}

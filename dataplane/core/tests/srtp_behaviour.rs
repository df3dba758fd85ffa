//! SRTP/SRTCP behaviour beyond the published vectors: replay and tamper rejection,
//! ROC rollover across 65535→0, reordering around the wrap, SRTCP index
//! increment, SSRC table replacement, buffer-room errors.

use portcullis_rtp::srtp::{
    SrtpError, SrtpKeys, SrtpProfile, SrtpSession, MAX_STREAMS, REPLAY_WINDOW, SRTP_MAX_TRAILER,
};

fn keys(profile: SrtpProfile) -> SrtpKeys {
    SrtpKeys {
        profile,
        master_key: *b"0123456789abcdef",
        master_salt: *b"saltsaltsaltsa",
    }
}

const PROFILES: [SrtpProfile; 2] = [
    SrtpProfile::AesCm128HmacSha1_80,
    SrtpProfile::AesCm128HmacSha1_32,
];

/// A 172-byte RTP packet (12 header + 160 payload), with SRTP tailroom.
fn rtp(seq: u16, ssrc: u32) -> ([u8; 200], usize) {
    let mut b = [0u8; 200];
    b[0] = 0x80;
    b[1] = 0;
    b[2..4].copy_from_slice(&seq.to_be_bytes());
    b[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    b[8..12].copy_from_slice(&ssrc.to_be_bytes());
    for (i, x) in b[12..172].iter_mut().enumerate() {
        *x = (i as u8) ^ (seq as u8);
    }
    (b, 172)
}

fn rtcp_rr(ssrc: u32) -> ([u8; 64], usize) {
    let mut b = [0u8; 64];
    b[..4].copy_from_slice(&[0x81, 201, 0, 7]);
    b[4..8].copy_from_slice(&ssrc.to_be_bytes());
    for (i, x) in b[8..32].iter_mut().enumerate() {
        *x = i as u8;
    }
    (b, 32)
}

#[test]
fn round_trip_and_replay() {
    for p in PROFILES {
        let mut tx = SrtpSession::new(&keys(p));
        let mut rx = SrtpSession::new(&keys(p));
        let (plain, len) = rtp(100, 7);
        let mut buf = plain;
        let n = tx.protect_rtp(&mut buf, len).unwrap();
        assert_eq!(n, len + p.rtp_tag_len());
        assert_ne!(buf[12..len], plain[12..len], "payload encrypted");
        assert_eq!(buf[..12], plain[..12], "header in clear");
        let wire = buf;
        let m = rx.unprotect_rtp(&mut buf, n).unwrap();
        assert_eq!(buf[..m], plain[..len]);
        let mut again = wire;
        assert_eq!(rx.unprotect_rtp(&mut again, n), Err(SrtpError::Replay));
        // The sender refuses to reuse the index (keystream reuse).
        let mut dup = plain;
        assert_eq!(tx.protect_rtp(&mut dup, len), Err(SrtpError::Replay));
    }
}

#[test]
fn every_single_bit_flip_is_rejected() {
    for p in PROFILES {
        let mut tx = SrtpSession::new(&keys(p));
        let (mut wire, len) = rtp(5, 9);
        let n = tx.protect_rtp(&mut wire, len).unwrap();
        for byte in 0..n {
            for bit in 0..8 {
                let mut rx = SrtpSession::new(&keys(p));
                let mut t = wire;
                t[byte] ^= 1 << bit;
                let r = rx.unprotect_rtp(&mut t, n);
                assert!(r.is_err(), "{p:?}: flip at byte {byte} bit {bit} accepted");
            }
        }
        let mut rx = SrtpSession::new(&keys(p));
        assert_eq!(rx.unprotect_rtp(&mut wire, n), Ok(len));
    }
}

#[test]
fn forged_packets_do_not_move_the_window() {
    let p = SrtpProfile::AesCm128HmacSha1_80;
    let mut tx = SrtpSession::new(&keys(p));
    let mut rx = SrtpSession::new(&keys(p));
    let (mut a, len) = rtp(10, 1);
    let n = tx.protect_rtp(&mut a, len).unwrap();
    // A forged packet far ahead (seq 30000) with a garbage tag.
    let (mut f, _) = rtp(30000, 1);
    assert_eq!(rx.unprotect_rtp(&mut f, n), Err(SrtpError::AuthFailed));
    assert_eq!(rx.unprotect_rtp(&mut a, n), Ok(len));
    assert_eq!(rx.roc(1), Some(0));
}

#[test]
fn roc_rolls_over_and_survives_reordering_at_the_wrap() {
    for p in PROFILES {
        let mut tx = SrtpSession::new(&keys(p));
        let mut rx = SrtpSession::new(&keys(p));
        let ssrc = 0xdead_beef;
        let mut wires = Vec::new();
        let seqs: Vec<u16> = (65_500u32..65_536 + 40).map(|s| s as u16).collect();
        for &seq in &seqs {
            let (mut b, len) = rtp(seq, ssrc);
            let n = tx.protect_rtp(&mut b, len).unwrap();
            wires.push((seq, b, n));
        }
        assert_eq!(tx.roc(ssrc), Some(1));
        // Deliver with pairs swapped around the wrap: ..., 0, 65535, 2, 1, ...
        for pair in wires.chunks(2) {
            for (seq, b, n) in pair.iter().rev() {
                let mut b = *b;
                let m = rx
                    .unprotect_rtp(&mut b, *n)
                    .unwrap_or_else(|e| panic!("seq {seq}: {e}"));
                assert_eq!(b[..m], rtp(*seq, ssrc).0[..172], "seq {seq}");
            }
        }
        assert_eq!(rx.roc(ssrc), Some(1));
        // A packet protected with ROC 1 does not verify for a receiver assuming ROC 0.
        let (seq, b, n) = wires.last().copied().unwrap();
        let mut fresh = SrtpSession::new(&keys(p));
        let mut b2 = b;
        assert_eq!(
            fresh.unprotect_rtp(&mut b2, n),
            Err(SrtpError::AuthFailed),
            "seq {seq}"
        );
        fresh.set_roc(ssrc, 1);
        assert!(fresh.unprotect_rtp(&mut b2, n).is_ok());
    }
}

#[test]
fn too_old_packets_are_rejected() {
    let p = SrtpProfile::AesCm128HmacSha1_80;
    let mut tx = SrtpSession::new(&keys(p));
    let mut rx = SrtpSession::new(&keys(p));
    let mut old = None;
    for seq in 1000..1000 + REPLAY_WINDOW as u16 + 10 {
        let (mut b, len) = rtp(seq, 3);
        let n = tx.protect_rtp(&mut b, len).unwrap();
        if seq == 1000 {
            old = Some((b, n));
            continue; // delivered late, below
        }
        rx.unprotect_rtp(&mut b, n).unwrap();
    }
    let (mut b, n) = old.unwrap();
    assert_eq!(rx.unprotect_rtp(&mut b, n), Err(SrtpError::TooOld));
}

#[test]
fn srtcp_index_increments_and_replay_is_rejected() {
    for p in PROFILES {
        let mut tx = SrtpSession::new(&keys(p));
        let mut rx = SrtpSession::new(&keys(p));
        let mut wires = Vec::new();
        for i in 0..5u32 {
            let (plain, len) = rtcp_rr(0x55);
            let mut b = plain;
            let n = tx.protect_rtcp(&mut b, len).unwrap();
            assert_eq!(
                n,
                len + SRTP_MAX_TRAILER,
                "RTCP always carries an 80-bit tag"
            );
            let e_index = u32::from_be_bytes(b[len..len + 4].try_into().unwrap());
            assert_eq!(e_index, 0x8000_0000 | i, "E flag and index {i}");
            assert_eq!(tx.srtcp_index(0x55), Some(i + 1));
            wires.push((b, n));
            let m = rx.unprotect_rtcp(&mut b, n).unwrap();
            assert_eq!(b[..m], plain[..len]);
        }
        let (mut b, n) = wires[2];
        assert_eq!(rx.unprotect_rtcp(&mut b, n), Err(SrtpError::Replay));
        let (mut b, len) = rtcp_rr(0x55);
        let n = tx.protect_rtcp(&mut b, len).unwrap();
        b[9] ^= 1;
        assert_eq!(rx.unprotect_rtcp(&mut b, n), Err(SrtpError::AuthFailed));
    }
}

#[test]
fn srtcp_index_wraps_at_2_pow_31() {
    let mut tx = SrtpSession::new(&keys(SrtpProfile::AesCm128HmacSha1_80));
    tx.set_srtcp_index(1, 0x7fff_ffff);
    let (mut b, len) = rtcp_rr(1);
    tx.protect_rtcp(&mut b, len).unwrap();
    assert_eq!(b[len..len + 4], [0xff, 0xff, 0xff, 0xff]);
    assert_eq!(tx.srtcp_index(1), Some(0));
}

#[test]
fn many_ssrcs_replace_least_recently_used() {
    let p = SrtpProfile::AesCm128HmacSha1_80;
    let mut tx = SrtpSession::new(&keys(p));
    let mut rx = SrtpSession::new(&keys(p));
    for round in 0..3u16 {
        for ssrc in 0..(MAX_STREAMS as u32 + 2) {
            let (mut b, len) = rtp(100 + round, ssrc);
            let n = tx.protect_rtp(&mut b, len).unwrap();
            assert_eq!(
                rx.unprotect_rtp(&mut b, n),
                Ok(len),
                "ssrc {ssrc} round {round}"
            );
        }
    }
}

#[test]
fn buffer_and_length_errors() {
    let p = SrtpProfile::AesCm128HmacSha1_80;
    let mut s = SrtpSession::new(&keys(p));
    let (mut b, len) = rtp(1, 1);
    assert_eq!(
        s.protect_rtp(&mut b[..len + 9], len),
        Err(SrtpError::NoRoom)
    );
    assert_eq!(
        s.protect_rtp(&mut b[..len], len + 1),
        Err(SrtpError::Malformed)
    );
    assert_eq!(s.protect_rtp(&mut b, 11), Err(SrtpError::TooShort));
    assert_eq!(s.unprotect_rtp(&mut b, 12 + 9), Err(SrtpError::TooShort));
    b[0] = 0x40;
    assert_eq!(s.protect_rtp(&mut b, len), Err(SrtpError::Malformed));
    let (mut r, rlen) = rtcp_rr(1);
    assert_eq!(
        s.protect_rtcp(&mut r[..rlen + 13], rlen),
        Err(SrtpError::NoRoom)
    );
    assert_eq!(s.unprotect_rtcp(&mut r, 8 + 13), Err(SrtpError::TooShort));
    r[1] = 96; // not an RTCP packet type
    assert_eq!(s.protect_rtcp(&mut r, rlen), Err(SrtpError::Malformed));
}

#[test]
fn mki_is_written_and_checked() {
    let k = keys(SrtpProfile::AesCm128HmacSha1_32);
    let mut tx = SrtpSession::with_mki(&k, &[1, 2, 3, 4]).unwrap();
    let mut rx = SrtpSession::with_mki(&k, &[1, 2, 3, 4]).unwrap();
    let mut other = SrtpSession::with_mki(&k, &[1, 2, 3, 5]).unwrap();
    assert!(SrtpSession::with_mki(&k, &[0; 9]).is_none());
    let (mut b, len) = rtp(1, 1);
    let n = tx.protect_rtp(&mut b, len).unwrap();
    assert_eq!(n, len + 4 + 4);
    assert_eq!(b[len..len + 4], [1, 2, 3, 4]);
    let mut c = b;
    assert_eq!(other.unprotect_rtp(&mut c, n), Err(SrtpError::AuthFailed));
    assert_eq!(rx.unprotect_rtp(&mut b, n), Ok(len));
}

//! Property tests: arbitrary bytes never panic a parser or an unprotect, and
//! protect/unprotect round-trip arbitrary packets.

use portcullis_rtp::rtp::{classify, rtcp_sender_ssrc, RtpPacket};
use portcullis_rtp::srtp::{SrtpKeys, SrtpProfile, SrtpSession};
use portcullis_rtp::stats::RtpStats;
use portcullis_rtp::stun::{answer_binding, error_response, is_stun, IceCredentials, StunMessage};
use proptest::prelude::*;

fn session(p: SrtpProfile) -> SrtpSession {
    SrtpSession::new(&SrtpKeys {
        profile: p,
        master_key: [7; 16],
        master_salt: [9; 14],
    })
}

fn profile() -> impl Strategy<Value = SrtpProfile> {
    prop_oneof![
        Just(SrtpProfile::AesCm128HmacSha1_80),
        Just(SrtpProfile::AesCm128HmacSha1_32)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn rtp_views_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = classify(&buf);
        let _ = rtcp_sender_ssrc(&buf);
        for p in [RtpPacket::new_checked(&buf), RtpPacket::new_header_checked(&buf)].into_iter().flatten() {
            prop_assert!(p.header_len() <= buf.len());
            let _ = (p.payload(), p.extension_header(), p.csrc(3), p.ssrc(), p.sequence());
        }
    }

    #[test]
    fn rtp_like_bytes_never_panic(mut buf in proptest::collection::vec(any::<u8>(), 12..120), first in 0x80u8..0xc0) {
        buf[0] = first;
        if let Ok(p) = RtpPacket::new_checked(&buf) {
            prop_assert!(p.header_len() + p.payload().len() <= buf.len());
        }
    }

    #[test]
    fn stun_never_panics(mut buf in proptest::collection::vec(any::<u8>(), 0..160), fix in any::<bool>()) {
        if fix && buf.len() >= 20 {
            // Make the header valid so the attribute walk is exercised.
            let n = (buf.len() - 20) / 4 * 4;
            buf.truncate(20 + n);
            buf[0] &= 0x3f;
            buf[2..4].copy_from_slice(&(n as u16).to_be_bytes());
            buf[4..8].copy_from_slice(&0x2112_a442u32.to_be_bytes());
        }
        let _ = is_stun(&buf);
        if let Ok(m) = StunMessage::new_checked(&buf) {
            let _ = (m.verify_fingerprint(), m.verify_integrity(b"pw"), m.xor_mapped_address());
            prop_assert!(m.attributes().count() <= buf.len() / 4);
        }
        let creds = IceCredentials::new("u", "p").unwrap();
        let mut out = [0u8; 128];
        if let Err(e) = answer_binding(&buf, "127.0.0.1:5".parse().unwrap(), &creds, &mut out) {
            let _ = error_response(&buf, e, &mut out);
        }
    }

    #[test]
    fn unprotect_never_panics(
        p in profile(),
        mut buf in proptest::collection::vec(any::<u8>(), 0..200),
        len in 0usize..220,
        rtcp_first in any::<bool>(),
    ) {
        let mut s = session(p);
        if rtcp_first && buf.len() > 1 {
            buf[0] = 0x80;
            buf[1] = 200;
        }
        let _ = s.unprotect_rtp(&mut buf, len);
        let _ = s.unprotect_rtcp(&mut buf, len);
        let _ = s.protect_rtp(&mut buf, len);
        let _ = s.protect_rtcp(&mut buf, len);
    }

    #[test]
    fn protect_unprotect_round_trip(
        p in profile(),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        seq in any::<u16>(),
        ssrc in any::<u32>(),
        roc in any::<u32>(),
        cc in 0u8..3,
    ) {
        let mut pkt = vec![0x80 | cc, 0x60];
        pkt.extend_from_slice(&seq.to_be_bytes());
        pkt.extend_from_slice(&[1, 2, 3, 4]);
        pkt.extend_from_slice(&ssrc.to_be_bytes());
        pkt.extend(std::iter::repeat_n(0xcc, 4 * usize::from(cc)));
        pkt.extend_from_slice(&payload);
        let len = pkt.len();
        let mut buf = pkt.clone();
        buf.resize(len + 14, 0);
        let mut tx = session(p);
        let mut rx = session(p);
        tx.set_roc(ssrc, roc);
        rx.set_roc(ssrc, roc);
        let n = tx.protect_rtp(&mut buf, len).unwrap();
        let m = rx.unprotect_rtp(&mut buf, n).unwrap();
        prop_assert_eq!(&buf[..m], &pkt[..]);
    }

    #[test]
    fn stats_never_panic_and_stay_consistent(
        updates in proptest::collection::vec((any::<u16>(), any::<u32>(), any::<u32>()), 1..300),
    ) {
        let mut s = RtpStats::new();
        for (seq, ts, arrival) in updates {
            s.update(seq, ts, arrival);
            prop_assert!(s.received() >= 1);
            prop_assert!(s.expected() >= 1);
            prop_assert_eq!(s.lost(), s.expected() as i64 - s.received() as i64);
            let _ = s.jitter();
        }
    }
}

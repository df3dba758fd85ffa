//! SRTP/SRTCP unprotect on arbitrary packets. The first input byte selects the
//! suite (bit 0) and RTP or RTCP (bit 1); the key is the libsrtp/RFC 3711 B.3
//! master key and salt, so seeds made from the shared vectors authenticate and
//! the fuzzer also reaches the decrypt and window paths.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_rtp::srtp::{SrtpKeys, SrtpProfile, SrtpSession};

const KEY: [u8; 16] = [
    0xe1, 0xf9, 0x7a, 0x0d, 0x3e, 0x01, 0x8b, 0xe0, 0xd6, 0x4f, 0xa3, 0x2c, 0x06, 0xde, 0x41, 0x39,
];
const SALT: [u8; 14] = [
    0x0e, 0xc6, 0x75, 0xad, 0x49, 0x8a, 0xfe, 0xeb, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6,
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, pkt)) = data.split_first() else {
        return;
    };
    let profile = if sel & 1 == 0 {
        SrtpProfile::AesCm128HmacSha1_80
    } else {
        SrtpProfile::AesCm128HmacSha1_32
    };
    let mut s = SrtpSession::new(&SrtpKeys {
        profile,
        master_key: KEY,
        master_salt: SALT,
    });
    let mut buf = pkt.to_vec();
    let len = buf.len();
    let r = if sel & 2 == 0 {
        s.unprotect_rtp(&mut buf, len)
    } else {
        s.unprotect_rtcp(&mut buf, len)
    };
    if let Ok(n) = r {
        assert!(n < len);
        // Accepted once: the same packet again is a replay.
        let mut again = pkt.to_vec();
        let r2 = if sel & 2 == 0 {
            s.unprotect_rtp(&mut again, len)
        } else {
            s.unprotect_rtcp(&mut again, len)
        };
        assert!(r2.is_err());
    }
    // Protect must not panic either, whatever the bytes.
    let mut out = pkt.to_vec();
    out.resize(len + 14, 0);
    let _ = s.protect_rtp(&mut out, len);
    let _ = s.protect_rtcp(&mut out, len);
});

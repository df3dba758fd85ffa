//! STUN view and the ICE-lite responder on arbitrary datagrams. The credentials
//! are those of the RFC 5769 §2.1 sample request, so a seed of that request is
//! answered and the fuzzer reaches the response writer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_rtp::stun::{
    answer_binding_detailed, error_response, is_stun, IceCredentials, StunMessage,
};

fuzz_target!(|data: &[u8]| {
    let stun = is_stun(data);
    if let Ok(m) = StunMessage::new_checked(data) {
        assert!(stun);
        let _ = (
            m.verify_fingerprint(),
            m.verify_integrity(b"VOkJxbRl1RmTxUk/WvJxBt"),
            m.xor_mapped_address(),
        );
        for a in m.attributes() {
            assert!(a.offset + 4 + a.value.len() <= data.len());
        }
    }
    let creds = IceCredentials::new("evtj", "VOkJxbRl1RmTxUk/WvJxBt").unwrap();
    let mut out = [0u8; 128];
    for from in ["192.0.2.1:32853", "[2001:db8::1]:9"] {
        match answer_binding_detailed(data, from.parse().unwrap(), &creds, &mut out) {
            Ok(a) => {
                let resp = StunMessage::new_checked(&out[..a.len]).unwrap();
                assert_eq!(resp.xor_mapped_address(), Some(from.parse().unwrap()));
                assert!(resp.verify_fingerprint().is_ok());
            }
            Err(e) => {
                let _ = error_response(data, e, &mut out);
            }
        }
    }
});

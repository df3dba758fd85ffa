//! SDP parser (owned by the SDP codec): no input may panic; accepted input
//! re-serialises.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_sip::sdp::SessionDescription;

fuzz_target!(|data: &[u8]| {
    if let Ok(sd) = SessionDescription::parse(data) {
        let _ = sd.to_bytes();
    }
});

//! URI parser: no panic; accepted URIs keep their text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_sip::Uri;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(u) = Uri::parse(s) {
            assert_eq!(u.as_str(), s);
            if let Some(sip) = u.as_sip() {
                let _ = sip.user_decoded();
                let _ = sip.params.iter().count();
                let _ = sip.transport();
            }
        }
    }
});

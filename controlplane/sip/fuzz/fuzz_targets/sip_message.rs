//! Message parser, validators, error-response helper, re-serialisation and the
//! stream framer: no input may panic, and a parsed message must re-serialise to
//! something that parses again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_sip::{
    error_response, validate_request, validate_response, Frame, FramerLimits, HeaderName, Message,
    OwnedMessage, StreamFramer,
};

fuzz_target!(|data: &[u8]| {
    match Message::parse(data) {
        Ok(m) => {
            let _ = validate_request(&m);
            let _ = validate_response(&m);
            let _ = m.top_via();
            let _ = m.from();
            let _ = m.to();
            let _ = m.cseq();
            let _ = m.contacts().count();
            let _ = m.routes(HeaderName::Route).count();
            let _ = m.auth(HeaderName::Authorization);
            let _ = m.refer_to();
            let _ = m.replaces();
            let _ = m.retry_after();
            let _ = m.session_expires();
            let bytes = OwnedMessage::from_message(&m).to_bytes();
            let again = Message::parse(&bytes);
            assert!(
                again.is_ok(),
                "re-serialised message does not parse: {again:?}"
            );
            if let Ok(a) = again {
                // The serialiser writes exactly one Content-Length (for the body).
                let non_cl = |x: &Message<'_>| {
                    x.headers()
                        .iter()
                        .filter(|h| h.kind != HeaderName::ContentLength)
                        .count()
                };
                assert_eq!(non_cl(&a), non_cl(&m));
                assert_eq!(a.headers_of(HeaderName::ContentLength).count(), 1);
                assert_eq!(a.body(), m.body());
            }
        }
        Err(e) => {
            let _ = error_response(data, &e);
        }
    }
    let mut f = StreamFramer::new(FramerLimits {
        max_header_bytes: 4096,
        max_body_bytes: 4096,
    });
    for chunk in data.chunks(97) {
        f.push(chunk);
        for _ in 0..64 {
            match f.next_frame() {
                Ok(Some(Frame::Message(m))) => {
                    let _ = Message::parse(m);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
});

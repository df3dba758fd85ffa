//! Property tests: serialise∘parse round-trips on generated messages, and no
//! input can make the message parser, the URI parser, the validators or the
//! stream framer panic.

use portcullis_sip::{
    error_response, validate_request, validate_response, Frame, FramerLimits, HeaderName, Message,
    Method, OwnedMessage, StreamFramer, Uri,
};
use proptest::prelude::*;

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,12}"
}

fn uri_pchar() -> impl Strategy<Value = String> {
    "([A-Za-z0-9_.!~*'()&+$:/-]|%[0-9a-fA-F]{2}){1,10}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,3}",
        (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        any::<[u16; 8]>().prop_map(|s| format!("[{}]", std::net::Ipv6Addr::from(s))),
    ]
}

fn sip_uri() -> impl Strategy<Value = String> {
    (
        proptest::option::of("[a-zA-Z0-9_.!~*'()&=+$,;?/-]{1,10}|%[0-9A-F]{2}"),
        host(),
        proptest::option::of(1u16..),
        proptest::collection::vec((uri_pchar(), proptest::option::of(uri_pchar())), 0..3),
    )
        .prop_map(|(user, host, port, params)| {
            let mut s = String::from("sip:");
            if let Some(u) = user {
                s.push_str(&u);
                s.push('@');
            }
            s.push_str(&host);
            if let Some(p) = port {
                s.push_str(&format!(":{p}"));
            }
            for (n, v) in params {
                s.push(';');
                s.push_str(&n);
                if let Some(v) = v {
                    s.push('=');
                    s.push_str(&v);
                }
            }
            s
        })
}

#[derive(Debug, Clone)]
struct Gen {
    method: Method,
    uri: String,
    via_host: String,
    branch: String,
    from_tag: String,
    call_id: String,
    seq: u32,
    extra: Vec<(String, String)>,
    body: Vec<u8>,
}

fn gen_message() -> impl Strategy<Value = Gen> {
    (
        prop::sample::select(vec![
            Method::Invite,
            Method::Ack,
            Method::Bye,
            Method::Cancel,
            Method::Options,
            Method::Register,
            Method::Refer,
            Method::Update,
        ]),
        sip_uri(),
        host(),
        token(),
        token(),
        "[A-Za-z0-9.!%*_+`'~-]{1,20}(@[a-z0-9.]{1,10})?",
        any::<u32>(),
        proptest::collection::vec(("X-[A-Za-z0-9-]{1,10}", "[ -~]{0,30}"), 0..5),
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(
            |(method, uri, via_host, branch, from_tag, call_id, seq, extra, body)| Gen {
                method,
                uri,
                via_host,
                branch,
                from_tag,
                call_id,
                seq,
                extra,
                body,
            },
        )
}

fn build(g: &Gen) -> OwnedMessage {
    let mut m = OwnedMessage::request(g.method, &g.uri);
    m.push(
        HeaderName::Via,
        &format!("SIP/2.0/UDP {};branch=z9hG4bK{}", g.via_host, g.branch),
    )
    .push(HeaderName::MaxForwards, "70")
    .push(
        HeaderName::From,
        &format!("<sip:a@example.com>;tag={}", g.from_tag),
    )
    .push(HeaderName::To, &format!("<{}>", g.uri))
    .push(HeaderName::CallId, &g.call_id)
    .push(HeaderName::CSeq, &format!("{} {}", g.seq, g.method));
    for (n, v) in &g.extra {
        m.push_named(n, v);
    }
    m.set_body(g.body.clone());
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn serialize_parse_round_trip(g in gen_message()) {
        let owned = build(&g);
        let bytes = owned.to_bytes();
        prop_assert_eq!(bytes.len(), owned.encoded_len());
        let msg = Message::parse(&bytes).map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&bytes))))?;
        prop_assert_eq!(validate_request(&msg), Ok(()));
        prop_assert_eq!(msg.method(), Some(g.method.as_str()));
        prop_assert_eq!(msg.request_uri().map(|u| u.as_str()), Some(g.uri.as_str()));
        prop_assert_eq!(msg.call_id(), Some(g.call_id.as_str()));
        prop_assert_eq!(msg.cseq().unwrap().seq, g.seq);
        let branch = format!("z9hG4bK{}", g.branch);
        prop_assert_eq!(msg.top_via().unwrap().branch(), Some(branch.as_str()));
        prop_assert_eq!(msg.from().unwrap().tag(), Some(g.from_tag.as_str()));
        prop_assert_eq!(msg.body(), &g.body[..]);
        for (n, v) in &g.extra {
            prop_assert!(msg.headers().iter().any(|h| h.name == n && h.value == v.trim()));
        }
        // parse → owned → serialise is a fixed point.
        let again = OwnedMessage::from_message(&msg).to_bytes();
        prop_assert_eq!(&again, &bytes);
        // A response built from it parses and carries the same dialog identifiers.
        let resp = OwnedMessage::response_to(&msg, 200, "OK").to_bytes();
        let r = Message::parse(&resp).unwrap();
        prop_assert_eq!(validate_response(&r), Ok(()));
        prop_assert_eq!(r.call_id(), msg.call_id());
        // Stream framing yields the same message back, even byte by byte.
        let mut f = StreamFramer::default();
        let mut frames = 0;
        for chunk in bytes.chunks(7) {
            f.push(chunk);
            while let Ok(Some(fr)) = f.next_frame() {
                prop_assert_eq!(fr, Frame::Message(&bytes[..]));
                frames += 1;
            }
        }
        prop_assert_eq!(frames, 1);
    }

    #[test]
    fn uri_round_trip(u in sip_uri()) {
        let parsed = Uri::parse(&u);
        prop_assert!(parsed.is_ok(), "{u}: {parsed:?}");
        prop_assert_eq!(parsed.unwrap().as_str(), u.as_str());
    }

    #[test]
    fn message_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(m) = Message::parse(&bytes) {
            let _ = validate_request(&m);
            let _ = validate_response(&m);
            let _ = OwnedMessage::from_message(&m).to_bytes();
        } else if let Err(e) = Message::parse(&bytes) {
            let _ = error_response(&bytes, &e);
        }
    }

    #[test]
    fn sip_shaped_garbage_never_panics(
        lines in proptest::collection::vec("[ -~\t]{0,40}", 0..12),
        start in prop::sample::select(vec!["INVITE sip:a@b SIP/2.0", "SIP/2.0 200 OK", "X y z"]),
        names in proptest::collection::vec(prop::sample::select(vec!["Via", "v", "From", "To", "Contact", "m", "CSeq", "Call-ID", "l", "Route", "Date", "Expires", "Max-Forwards", "Authorization", "Replaces", "Refer-To", "Retry-After", "Session-Expires", "Min-SE", "c", "Supported"]), 0..12),
    ) {
        let mut s = String::from(start);
        s.push_str("\r\n");
        for (n, v) in names.iter().zip(lines.iter()) {
            s.push_str(n);
            s.push_str(": ");
            s.push_str(v);
            s.push_str("\r\n");
        }
        s.push_str("\r\n");
        match Message::parse(s.as_bytes()) {
            Ok(m) => {
                let _ = validate_request(&m);
                let _ = validate_response(&m);
                for h in m.headers() { let _ = h.elements().count(); }
                let _ = m.contacts().count();
                let _ = m.routes(HeaderName::Route).count();
                let _ = m.auth(HeaderName::Authorization);
                let _ = m.refer_to();
                let _ = m.replaces();
                let _ = m.retry_after();
                let _ = m.session_expires();
            }
            Err(e) => { let _ = error_response(s.as_bytes(), &e); }
        }
    }

    #[test]
    fn uri_parser_never_panics(s in "\\PC{0,60}", b in "(sips?|tel):[ -~]{0,40}") {
        let _ = Uri::parse(&s);
        let _ = Uri::parse(&b);
    }

    #[test]
    fn framer_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 0..20)) {
        let mut f = StreamFramer::new(FramerLimits { max_header_bytes: 256, max_body_bytes: 256 });
        for c in &chunks {
            f.push(c);
            // Bounded: each call consumes bytes or stops.
            for _ in 0..64 {
                match f.next_frame() {
                    Ok(Some(Frame::Message(m))) => { let _ = Message::parse(m); }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}

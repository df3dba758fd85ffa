use super::*;
use super::{Request, Response};

const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Via: SIP/2.0/UDP p2.example.com;branch=z9hG4bK1, SIP/2.0/UDP p3.example.com;branch=z9hG4bK2\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
X-Custom: folded\r\n value\r\n\
Timestamp: 54\r\n\
l: 4\r\n\
\r\n\
v=0\n";

#[test]
fn response_to_copies_rfc3261_8_2_6() {
    let req = Message::parse(INVITE).unwrap();
    let mut r = OwnedMessage::response_to(&req, 180, "Ringing");
    r.set_to_tag("abc");
    let bytes = r.to_bytes();
    let text = std::str::from_utf8(&bytes).unwrap();
    assert!(text.starts_with("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP pc33"));
    assert!(text.contains("To: Bob <sip:bob@biloxi.example.com>;tag=abc\r\n"));
    assert!(!text.contains("Timestamp"));
    assert!(!text.contains("Max-Forwards"));
    assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
    let back = Message::parse(&bytes).unwrap();
    assert_eq!(back.vias().count(), 3);
    assert_eq!(back.call_id(), req.call_id());
    assert_eq!(back.cseq().unwrap(), req.cseq().unwrap());
    assert_eq!(back.to().unwrap().tag(), Some("abc"));
    let trying = Response::to(&req, 100, "Trying");
    assert_eq!(trying.get(HeaderName::Timestamp), Some("54"));
    // An existing tag is kept.
    let mut again = OwnedMessage::from_message(&back);
    again.set_to_tag("zzz");
    assert_eq!(again.to().unwrap().tag(), Some("abc"));
}

#[test]
fn edit_round_trip() {
    let req = Message::parse(INVITE).unwrap();
    let mut m = req.to_owned_message();
    assert_eq!(m.method(), Some("INVITE"));
    m.set_request_uri("sip:bob@192.0.2.4:5060")
        .push_front(
            HeaderName::Via,
            "SIP/2.0/UDP sbc.example.com;branch=z9hG4bKnew",
        )
        .set(HeaderName::MaxForwards, "69")
        .push_named("P-Foo", "bar\r\nInjected: yes")
        .set_body_with_type(
            "application/sdp",
            b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n".to_vec(),
        );
    assert_eq!(m.remove_named("x-custom"), 1);
    let before = m.encoded_len();
    m.push(HeaderName::Other, "nameless")
        .set(HeaderName::Other, "x");
    assert_eq!(m.encoded_len(), before);
    let bytes = m.to_bytes();
    let p = Message::parse(&bytes).unwrap();
    assert_eq!(p.request_uri().unwrap().as_str(), "sip:bob@192.0.2.4:5060");
    assert_eq!(p.top_via().unwrap().branch(), Some("z9hG4bKnew"));
    assert_eq!(p.max_forwards(), Some(Ok(69)));
    assert_eq!(p.get_by_name("P-Foo"), Some("bar  Injected: yes"));
    assert_eq!(p.get_by_name("Injected"), None);
    assert_eq!(p.body(), b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n");
    assert_eq!(p.content_length(), Some(Ok(31)));
    assert!(p.get_by_name("X-Custom").is_none());
    // Canonical names and unfolded values.
    let canon = OwnedMessage::from_message(&req).to_bytes();
    let t = String::from_utf8(canon).unwrap();
    assert!(t.contains("X-Custom: folded value\r\n"));
    assert!(t.contains("Content-Length: 4\r\n\r\nv=0\n"));
    assert_eq!(m.encoded_len(), bytes.len());
    let mut small = [0u8; 10];
    assert!(m.write_to_slice(&mut small).is_err());
    let mut big = vec![0u8; 4096];
    let n = m.write_to_slice(&mut big).unwrap();
    assert_eq!(&big[..n], &bytes[..]);
}

#[test]
fn rewrite_header_uris() {
    let raw = b"INVITE sip:a@b SIP/2.0\r\nFrom: \"Al \\\"x\\\"\" <sip:+1555@pbx>;tag=9\r\nTo: sip:+1666@trunk\r\nContact: <sip:a@10.0.0.1>;expires=60, <sip:b@10.0.0.2>\r\n\r\n";
    let req = Message::parse(raw).unwrap();
    let mut m = req.to_owned_message();
    m.set_header_uri(HeaderName::From, "sip:+1555@sbc.example.com")
        .unwrap();
    m.set_header_uri(HeaderName::To, "tel:+1666").unwrap();
    m.set_header_uri(
        HeaderName::Contact,
        "sip:sbc@sbc.example.com:5061;transport=tls",
    )
    .unwrap();
    assert!(m.set_header_uri(HeaderName::Route, "sip:x").is_err());
    let b = m.to_bytes();
    let p = Message::parse(&b).unwrap();
    let from = p.from().unwrap();
    assert_eq!(from.uri.as_str(), "sip:+1555@sbc.example.com");
    assert_eq!(from.display().unwrap(), "Al \"x\"");
    assert_eq!(from.tag(), Some("9"));
    assert_eq!(p.to().unwrap().uri.as_str(), "tel:+1666");
    let contacts: Vec<_> = p.contacts().map(|c| c.unwrap()).collect();
    assert_eq!(contacts.len(), 2);
    assert_eq!(contacts[0].expires(), Some(60));
    assert_eq!(
        contacts[0].addr().unwrap().uri.as_str(),
        "sip:sbc@sbc.example.com:5061;transport=tls"
    );
    assert_eq!(contacts[1].addr().unwrap().uri.as_str(), "sip:b@10.0.0.2");
}

#[test]
fn remove_top_via_element() {
    let req = Message::parse(INVITE).unwrap();
    let mut m = req.to_owned_message();
    assert!(m.remove_first_element(HeaderName::Via));
    assert!(m.remove_first_element(HeaderName::Via));
    assert_eq!(m.top_via().unwrap().host.to_string(), "p3.example.com");
    assert!(m.remove_first_element(HeaderName::Via));
    assert!(!m.remove_first_element(HeaderName::Via));
    assert_eq!(m.remove(HeaderName::CallId), 1);
    assert_eq!(m.call_id(), None);
}

#[test]
fn build_request_from_parts() {
    let mut r = Request::builder(
        Method::Options,
        "sip:sip.pstnhub.microsoft.com:5061;transport=tls",
    );
    r.push(
        HeaderName::Via,
        "SIP/2.0/TLS sbc.example.com:5061;branch=z9hG4bK1",
    )
    .push(HeaderName::MaxForwards, "70")
    .push(HeaderName::From, "<sip:sbc.example.com>;tag=1")
    .push(HeaderName::To, "<sip:sip.pstnhub.microsoft.com>")
    .push(HeaderName::CallId, "abc")
    .push(HeaderName::CSeq, "1 OPTIONS");
    let b = r.to_bytes();
    let p = Message::parse(&b).unwrap();
    assert!(crate::validate_request(&p).is_ok());
    assert_eq!(p.method(), Some("OPTIONS"));
    assert_eq!(Method::from_token("INVITE"), Some(Method::Invite));
    assert_eq!(Method::from_token("invite"), None);
    let mut resp = OwnedMessage::response_to_owned(&r, 200, "OK");
    resp.set_status(404, "Not Found");
    assert!(resp.to_bytes().starts_with(b"SIP/2.0 404 Not Found\r\n"));
}

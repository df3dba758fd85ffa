//! Unit tests of the session-level parser, writer and rewrites.

use super::*;

const BASIC: &str = "v=0\r\n\
o=jdoe 3724394400 3724394405 IN IP4 198.51.100.1\r\n\
s=Call to John Smith\r\n\
i=SDP Offer #1\r\n\
u=http://www.jdoe.example.com/home.html\r\n\
e=Jane Doe <jane@jdoe.example.com>\r\n\
p=+1 617 555-6011\r\n\
c=IN IP4 198.51.100.1\r\n\
b=AS:128\r\n\
t=2873397496 2873404696\r\n\
r=604800 3600 0 90000\r\n\
z=2882844526 -1h 2898848070 0\r\n\
k=prompt\r\n\
a=recvonly\r\n\
m=audio 49170 RTP/AVP 0\r\n\
m=audio 49180 RTP/AVP 0\r\n\
m=video 51372 RTP/AVP 99\r\n\
c=IN IP6 2001:db8::2\r\n\
a=rtpmap:99 h263-1998/90000\r\n";

fn parse(s: &str) -> SessionDescription {
    match SessionDescription::parse(s.as_bytes()) {
        Ok(x) => x,
        Err(e) => panic!("{e} in\n{s}"),
    }
}

fn err(s: &str) -> SdpError {
    match SessionDescription::parse(s.as_bytes()) {
        Ok(x) => panic!("accepted {x:?}"),
        Err(e) => e,
    }
}

#[test]
fn rfc8866_example_all_session_lines() {
    let s = parse(BASIC);
    assert_eq!(s.origin.username, "jdoe");
    assert_eq!(s.session_name, "Call to John Smith");
    assert_eq!(s.info.as_deref(), Some("SDP Offer #1"));
    assert_eq!(
        s.uri.as_deref(),
        Some("http://www.jdoe.example.com/home.html")
    );
    assert_eq!(s.emails, ["Jane Doe <jane@jdoe.example.com>"]);
    assert_eq!(s.phones, ["+1 617 555-6011"]);
    assert_eq!(
        s.connection.as_ref().and_then(Connection::ip),
        Some("198.51.100.1".parse().unwrap())
    );
    assert_eq!(s.bandwidths[0].value, 128);
    assert_eq!(s.timings[0].repeats, ["604800 3600 0 90000"]);
    assert_eq!(s.time_zones.as_deref(), Some("2882844526 -1h 2898848070 0"));
    assert_eq!(s.key.as_deref(), Some("prompt"));
    assert_eq!(s.direction(), Some(Direction::RecvOnly));
    assert_eq!(s.media.len(), 3);
    assert_eq!(s.media[2].media, "video");
    assert_eq!(s.media[2].formats, ["99"]);
    assert_eq!(s.media_direction(1), Some(Direction::RecvOnly));
    assert_eq!(s.media_direction(3), None);
    assert_eq!(
        s.media_connection(2).and_then(Connection::ip),
        Some("2001:db8::2".parse().unwrap())
    );
    assert_eq!(
        s.media_connection(0).and_then(Connection::ip),
        Some("198.51.100.1".parse().unwrap())
    );
    // Canonical input is written back byte for byte.
    assert_eq!(String::from_utf8(s.to_bytes()).unwrap(), BASIC);
}

#[test]
fn lf_and_trailing_whitespace_tolerated() {
    let lf = BASIC.replace("\r\n", " \t\n");
    let s = parse(&lf);
    assert_eq!(s, parse(BASIC));
    assert_eq!(String::from_utf8(s.to_bytes()).unwrap(), BASIC);
    // Blank lines and a missing final newline.
    let s2 = parse(&format!("\n{}\n\n", BASIC.trim_end()));
    assert_eq!(s2, s);
}

#[test]
fn m_line_ports_and_protos() {
    let s = parse(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n\
         m=video 49170/2 RTP/AVP 31\r\n\
         m=audio 0 UDP/TLS/RTP/SAVPF 111\r\n\
         m=image 6000 udptl t38\r\n\
         m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
         m=audio 5000 RTP/SAVP\r\n",
    );
    assert_eq!(s.media[0].port, 49170);
    assert_eq!(s.media[0].port_count, Some(2));
    assert_eq!(s.media[1].proto, Proto::UdpTlsRtpSavpf);
    assert_eq!(s.media[2].proto, Proto::Other("udptl".into()));
    assert_eq!(s.media[2].formats, ["t38"]);
    assert_eq!(s.media[2].payload_types().count(), 0);
    assert!(s.media[4].formats.is_empty());
    assert_eq!(parse(&String::from_utf8(s.to_bytes()).unwrap()), s);
    for bad in [
        "m=audio",
        "m=audio 70000 RTP/AVP 0",
        "m=audio x RTP/AVP 0",
        "m=audio 5000/x RTP/AVP 0",
        "m=audio 5000",
    ] {
        let e = err(&format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n{bad}\r\n"
        ));
        assert_eq!(e.line, 5, "{bad}: {e}");
    }
}

#[test]
fn errors_name_the_line() {
    let head = "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\n";
    assert_eq!(err("").kind, SdpErrorKind::Empty);
    assert_eq!(err("\r\n  \r\n").kind, SdpErrorKind::Empty);
    assert_eq!(
        err("o=- 1 1 IN IP4 192.0.2.1\n"),
        SdpError::new(1, SdpErrorKind::MissingVersion)
    );
    assert!(matches!(
        err("v=1\n").kind,
        SdpErrorKind::UnsupportedVersion(_)
    ));
    assert_eq!(
        err("v=0\ns=-\nt=0 0\nm=audio 1 RTP/AVP 0\n"),
        SdpError::new(4, SdpErrorKind::MissingLine('o'))
    );
    assert_eq!(
        err("v=0\no=- 1 1 IN IP4 192.0.2.1\nt=0 0\n"),
        SdpError::new(3, SdpErrorKind::MissingLine('s'))
    );
    let e = err(&format!("{head}m=audio 1 RTP/AVP 0\nthis is not sdp\n"));
    assert_eq!(e, SdpError::new(6, SdpErrorKind::MalformedLine));
    assert_eq!(
        e.to_string(),
        "SDP line 6: line is not of the form <letter>=<value>"
    );
    let e = err(&format!("{head}m=audio 1 RTP/AVP 0\nA=foo\n"));
    assert_eq!(e.kind, SdpErrorKind::MalformedLine);
    let e = err(&format!("{head}m=audio 1 RTP/AVP 0\nt=0 0\n"));
    assert_eq!(e, SdpError::new(6, SdpErrorKind::NotAllowedInMedia('t')));
    let e = err(&format!("{head}s=again\n"));
    assert_eq!(e, SdpError::new(5, SdpErrorKind::DuplicateLine('s')));
    let e = err(&format!("{head}v=0\n"));
    assert_eq!(e, SdpError::new(5, SdpErrorKind::DuplicateLine('v')));
    let e = err(&format!("{head}c=IN IP4 1.2.3.4\nc=IN IP4 1.2.3.4\n"));
    assert_eq!(e, SdpError::new(6, SdpErrorKind::DuplicateLine('c')));
    let e = err("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nr=1 2 3\n");
    assert_eq!(e.line, 4);
    let e = err(&format!("{head}m=audio 1 RTP/AVP 0\na=bad name:0\n"));
    assert_eq!(e.line, 6);
    assert!(e.to_string().contains("attribute-name"), "{e}");
    let e = err(&format!("{head}b=AS:x\n"));
    assert_eq!(e.line, 5);
    assert!(e.to_string().contains("bandwidth"), "{e}");
    let e = err(&format!("{head}m=audio 1 RTP/AVP 0\nc=IN IP4\n"));
    assert!(
        e.to_string()
            .contains("SDP line 6: c: missing field connection-address"),
        "{e}"
    );
    let e = err(&format!(
        "{head}m=audio 1 RTP/AVP 0\nc=IN IP4 not_an_address\n"
    ));
    assert_eq!(e.line, 6);
    let e = err(&format!("{head}m=audio 1 RTP/AVP 0\ni=a\ni=b\n"));
    assert_eq!(e, SdpError::new(7, SdpErrorKind::DuplicateLine('i')));
}

#[test]
fn unknown_lines_and_attributes_kept_in_order() {
    let s = parse(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nx=session extra\r\n\
         a=group:BUNDLE 0\r\na=x-foo\r\n\
         m=audio 1 RTP/AVP 0\r\ny=media extra\r\na=x-b:2\r\na=x-a:1\r\na=label:7\r\n",
    );
    assert_eq!(
        s.extra,
        [RawLine {
            kind: 'x',
            value: "session extra".into()
        }]
    );
    assert_eq!(s.media[0].extra[0].kind, 'y');
    let names: Vec<_> = s.media[0].attributes.iter().map(Attribute::name).collect();
    assert_eq!(names, ["x-b", "x-a", "label"]);
    let out = String::from_utf8(s.to_bytes()).unwrap();
    assert!(out.contains("x=session extra\r\na=group:BUNDLE 0\r\na=x-foo\r\n"));
    assert!(out.ends_with("y=media extra\r\na=x-b:2\r\na=x-a:1\r\na=label:7\r\n"));
}

#[test]
fn non_utf8_replaced_not_rejected() {
    let mut input = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=Caf".to_vec();
    input.extend_from_slice(&[0xE9, b'\r', b'\n']);
    input.extend_from_slice(b"t=0 0\r\n");
    let s = SessionDescription::parse(&input).unwrap();
    assert_eq!(s.session_name, "Caf\u{FFFD}");
}

#[test]
fn rewrite_for_media_anchoring() {
    let mut s = parse(BASIC);
    let ip: IpAddr = "203.0.113.5".parse().unwrap();
    s.set_connection_address(ip);
    s.set_origin_address(ip);
    s.bump_version();
    assert_eq!(s.origin.session_version, 3_724_394_406);
    assert_eq!(s.connection, Some(Connection::new(ip)));
    assert_eq!(s.media[2].connections, [Connection::new(ip)]);
    assert!(s.media[0].connections.is_empty(), "inherits the session c=");
    let v6: IpAddr = "2001:db8::99".parse().unwrap();
    s.media[0].set_connection(v6);
    assert_eq!(s.media_connection(0).and_then(Connection::ip), Some(v6));
    s.set_direction(Direction::SendRecv);
    s.media[1].set_direction(Direction::Inactive);
    assert_eq!(s.media_direction(0), Some(Direction::SendRecv));
    assert_eq!(s.media_direction(1), Some(Direction::Inactive));
    let out = String::from_utf8(s.to_bytes()).unwrap();
    assert!(out.contains("o=jdoe 3724394400 3724394406 IN IP4 203.0.113.5\r\n"));
    assert!(out.contains("a=sendrecv\r\nm=audio"));
    assert!(!out.contains("recvonly"));
    assert!(out.contains("c=IN IP6 2001:db8::99\r\n"));
    assert_eq!(parse(&out), s);
}

#[test]
fn first_audio_and_codec_filter() {
    let mut s = parse(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n\
         m=video 5002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
         m=audio 5000 RTP/AVPF 0 8 96 101\r\n\
         a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 opus/48000/2\r\n\
         a=fmtp:96 useinbandfec=1\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:* ccm fir\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n",
    );
    let a = s.first_audio_mut().unwrap();
    assert_eq!(a.port, 5000);
    assert_eq!(a.payload_types().collect::<Vec<_>>(), [0, 8, 96, 101]);
    let removed = a
        .retain_formats(|_, map| map.is_some_and(|m| m.encoding != "opus" && m.encoding != "PCMA"));
    assert_eq!(removed, 2);
    assert_eq!(a.formats, ["0", "101"]);
    let out = String::from_utf8(s.to_bytes()).unwrap();
    assert!(!out.contains("opus") && !out.contains("PCMA"));
    assert!(!out.contains("a=fmtp:96") && !out.contains("a=rtcp-fb:96"));
    assert!(out.contains("a=rtcp-fb:* ccm fir"));
    assert!(out.contains("a=rtpmap:96 H264/90000"), "video untouched");
    assert!(out.contains("a=fmtp:101 0-16"));
}

#[test]
fn srtp_rtcp_ice_rewrites() {
    let mut s = parse(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\na=ice-lite\r\n\
         m=audio 5000 RTP/SAVP 0\r\na=rtcp:5001\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^31\r\n\
         a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^31\r\n\
         a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdefghijkl\r\n\
         a=candidate:1 1 UDP 2130706431 192.0.2.1 5000 typ host\r\n\
         a=candidate:1 2 UDP 2130706430 192.0.2.1 5001 typ host\r\n\
         a=end-of-candidates\r\na=sendrecv\r\n",
    );
    assert!(s.ice_lite());
    let a = s.first_audio_mut().unwrap();
    assert_eq!(a.rtcp().map(|r| r.port), Some(5001));
    assert_eq!(a.crypto().count(), 2);
    assert_eq!(
        a.ice_credentials(),
        Some(("abcd", "0123456789abcdefghijkl"))
    );
    assert_eq!(a.candidates().count(), 2);

    // Toward a plain RTP trunk.
    assert_eq!(a.remove_crypto(), 2);
    a.set_proto(a.proto.to_plain());
    a.set_rtcp(Rtcp {
        port: 40001,
        address: Some(Connection::new("203.0.113.5".parse().unwrap())),
    });
    a.set_rtcp_mux(true);
    a.set_rtcp_mux(true);
    a.set_port(40000);
    let ip: IpAddr = "203.0.113.5".parse().unwrap();
    a.set_ice_credentials("SBC1", "sbcpasswordsbcpassword");
    a.set_candidates(vec![Candidate::host("1", 1, ip, 40000)]);
    let out = String::from_utf8(s.to_bytes()).unwrap();
    assert!(out.contains("m=audio 40000 RTP/AVP 0\r\na=rtcp:40001 IN IP4 203.0.113.5\r\n"));
    assert!(!out.contains("crypto"));
    assert_eq!(out.matches("a=rtcp-mux").count(), 1);
    assert!(out.contains(
        "a=ice-ufrag:SBC1\r\na=ice-pwd:sbcpasswordsbcpassword\r\n\
         a=candidate:1 1 UDP 2130706431 203.0.113.5 40000 typ host\r\na=end-of-candidates\r\n"
    ));
    assert_eq!(parse(&out), s);

    // Back toward SRTP, then remove ICE and rtcp.
    let a = s.first_audio_mut().unwrap();
    a.set_proto(a.proto.to_secure());
    a.add_crypto(Crypto::aes_cm_128_hmac_sha1_80(1, &[1; 16], &[2; 14]));
    a.remove_rtcp();
    a.set_rtcp_mux(false);
    assert_eq!(a.proto, Proto::RtpSavp);
    assert_eq!(
        a.crypto().next().map(|c| c.key_material().unwrap().salt),
        Some(vec![2; 14])
    );
    s.remove_ice();
    assert!(!s.ice_lite());
    s.set_ice_lite(true);
    s.set_ice_lite(true);
    s.set_ice_credentials("sess", "sessionpasswordsession");
    assert_eq!(
        s.ice_credentials(),
        Some(("sess", "sessionpasswordsession"))
    );
    assert_eq!(
        s.media_ice_credentials(0),
        Some(("sess", "sessionpasswordsession")),
        "inherited from session level"
    );
    s.media[0].set_ice_credentials("med", "mediapasswordmediapassw");
    assert_eq!(
        s.media_ice_credentials(0),
        Some(("med", "mediapasswordmediapassw"))
    );
    s.media[0].remove_ice();
    assert_eq!(s.media_ice_credentials(1), None);
    let out = String::from_utf8(s.to_bytes()).unwrap();
    assert_eq!(out.matches("a=ice-lite").count(), 1);
    assert!(!out.contains("candidate") && !out.contains("rtcp"));
    assert!(out.contains("a=sendrecv\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"));
    assert_eq!(parse(&out), s);
}

#[test]
fn write_to_appends() {
    let s = parse(BASIC);
    let mut buf = b"prefix".to_vec();
    s.write_to(&mut buf);
    assert_eq!(buf.get(..6), Some(&b"prefix"[..]));
    assert_eq!(buf.get(6..), Some(BASIC.as_bytes()));
    assert_eq!(s.to_string(), BASIC);
}

#[test]
fn media_destinations() {
    let s = parse(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
         m=audio 5000 RTP/AVP 0\r\n\
         m=audio 6000 RTP/AVP 0\r\na=rtcp:6100\r\n\
         m=audio 7000 RTP/AVP 0\r\nc=IN IP6 2001:db8::7\r\na=rtcp:7100 IN IP4 192.0.2.9\r\n\
         m=audio 8000 RTP/AVP 0\r\na=rtcp-mux\r\na=rtcp:8001\r\n\
         m=audio 0 RTP/AVP 0\r\n\
         m=audio 65535 RTP/AVP 0\r\nc=IN IP4 media.example.com\r\n\
         m=audio 65535 RTP/AVP 0\r\n",
    );
    let sa = |x: &str| Some(x.parse::<std::net::SocketAddr>().unwrap());
    assert_eq!(s.rtp_destination(0), sa("192.0.2.1:5000"));
    assert_eq!(s.rtcp_destination(0), sa("192.0.2.1:5001"));
    assert_eq!(s.rtcp_destination(1), sa("192.0.2.1:6100"));
    assert_eq!(s.rtp_destination(2), sa("[2001:db8::7]:7000"));
    assert_eq!(s.rtcp_destination(2), sa("192.0.2.9:7100"));
    assert_eq!(s.rtcp_destination(3), sa("192.0.2.1:8000"), "rtcp-mux wins");
    assert!(s.media[4].is_rejected());
    assert_eq!(s.rtp_destination(4), None);
    assert_eq!(s.rtp_destination(5), None, "FQDN");
    assert_eq!(s.rtcp_destination(6), None, "no port above 65535");
    assert_eq!(s.rtp_destination(7), None);
}

#[test]
fn small_media_helpers() {
    let mut s = parse(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n\
         m=audio 5000/2 UDP/TLS/RTP/SAVPF 111\r\na=mid:a0\r\na=ptime:30\r\na=setup:actpass\r\n\
         a=fingerprint:sha-256 AB:CD\r\na=rtcp-fb:111 nack\r\na=rtcp-fb:111 transport-cc\r\n",
    );
    let m = &mut s.media[0];
    assert_eq!(m.mid(), Some("a0"));
    assert_eq!(m.ptime(), Some(30));
    assert_eq!(m.attributes_named("rtcp-fb").count(), 2);
    assert_eq!(m.attributes_named("mid").count(), 1);
    assert_eq!(
        m.attributes_named("setup").next().map(ToString::to_string),
        Some("setup:actpass".to_owned())
    );
    m.reject();
    assert!(m.is_rejected());
    assert!(String::from_utf8(s.to_bytes())
        .unwrap()
        .contains("m=audio 0 UDP/TLS/RTP/SAVPF 111\r\n"));
    let e = err("v=0\nx");
    assert_eq!(
        (e.status(), e.reason()),
        (400, "Bad Request (malformed SDP)")
    );
}

#[test]
fn malformed_attributes_kept_verbatim_and_rewritten_by_name() {
    let mut s = parse(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n\
         m=audio 5000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/\r\na=rtcp:abc\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|2^x\r\n\
         a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^31\r\n\
         a=ice-ufrag:has space\r\na=candidate:1 1 UDP 1 192.0.2.1 5000 typ\r\n\
         a=candidate:2 1 UDP 1 192.0.2.1 5000 typ host\r\na=ptime:twenty\r\n",
    );
    let m = &s.media[0];
    let other = |name: &str, value: &str| Attribute::Other {
        name: name.into(),
        value: Some(value.into()),
    };
    assert_eq!(m.attributes[0], other("rtpmap", "0 PCMU/"));
    assert_eq!(m.attributes[1], other("rtcp", "abc"));
    assert_eq!(m.rtpmap(0), None);
    assert_eq!(m.rtcp(), None);
    assert_eq!(
        m.crypto().count(),
        1,
        "typed accessor skips the malformed one"
    );
    assert_eq!(m.candidates().count(), 1);
    assert_eq!(m.ice_credentials(), None);
    assert_eq!(m.ptime(), None);
    // Written back verbatim.
    let out = String::from_utf8(s.to_bytes()).unwrap();
    assert!(out.contains("a=rtcp:abc\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|2^x\r\n"));
    assert_eq!(parse(&out), s);
    // Rewrites match by name.
    let m = &mut s.media[0];
    assert_eq!(m.remove_crypto(), 2);
    m.set_rtcp(Rtcp {
        port: 5001,
        address: None,
    });
    m.set_ice_credentials("ufrag", "passwordpasswordpassword");
    m.set_candidates(Vec::new());
    assert_eq!(m.retain_formats(|_, _| false), 1);
    let names: Vec<_> = m.attributes.iter().map(ToString::to_string).collect();
    assert_eq!(
        names,
        [
            "rtcp:5001",
            "ice-ufrag:ufrag",
            "ice-pwd:passwordpasswordpassword",
            "ptime:twenty"
        ]
    );
    s.remove_ice();
    assert_eq!(s.media[0].attributes.len(), 2);
}

#[test]
fn build_offer_from_scratch() {
    let mut s = SessionDescription::new("2001:db8::10".parse().unwrap(), 42);
    let mut m = MediaDescription::new(
        "audio",
        40000,
        Proto::RtpAvp,
        vec!["0".into(), "101".into()],
    );
    m.attributes
        .push(Attribute::parse("rtpmap:0 PCMU/8000").unwrap());
    m.attributes
        .push(Attribute::parse("rtpmap:101 telephone-event/8000").unwrap());
    m.attributes.push(Attribute::Direction(Direction::SendRecv));
    s.media.push(m);
    let out = String::from_utf8(s.to_bytes()).unwrap();
    assert_eq!(
        out,
        "v=0\r\no=- 42 42 IN IP6 2001:db8::10\r\ns=-\r\nc=IN IP6 2001:db8::10\r\nt=0 0\r\n\
         m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    );
    assert_eq!(parse(&out), s);
    assert_eq!(
        s.rtp_destination(0),
        Some("[2001:db8::10]:40000".parse().unwrap())
    );
}

/// SIPp writes an IPv6 origin in brackets (`o=... IN IP6 [fd77::2]`): read as the bare
/// address (a `c=` line stays strict).
#[test]
fn a_bracketed_ipv6_origin_is_read_as_the_bare_address() {
    let text = "v=0\r\no=user1 53655765 2353687637 IN IP6 [fd77:1::2]\r\ns=-\r\nc=IN IP6 fd77:1::2\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";
    let sdp = SessionDescription::parse(text.as_bytes()).expect("parsed");
    assert_eq!(sdp.origin.address.address, "fd77:1::2");
    let bad = text.replace("c=IN IP6 fd77:1::2", "c=IN IP6 [fd77:1::2]");
    assert!(SessionDescription::parse(bad.as_bytes()).is_err());
    let v4 = text.replace("IN IP6 [fd77:1::2]", "IN IP4 [192.0.2.1]");
    assert!(SessionDescription::parse(v4.as_bytes()).is_err());
}

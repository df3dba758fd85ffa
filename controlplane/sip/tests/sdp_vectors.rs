//! SDP bodies of the SIP torture vectors (RFC 4475 §3.3, RFC 5118 §4) parse, keep
//! their content, and round-trip.

use std::net::IpAddr;
use std::path::PathBuf;

use portcullis_sip::sdp::{AddrType, Attribute, Connection, Proto, SessionDescription};

fn vectors() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/vectors/sip-torture"
    ))
}

/// The body of a SIP message file: everything after the first empty line.
fn body(rel: &str) -> Vec<u8> {
    let path = vectors().join(rel);
    let msg = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("conformance vector {} missing: {e}", path.display()));
    let (at, sep) = match msg.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => (p, 4),
        None => match msg.windows(2).position(|w| w == b"\n\n") {
            Some(p) => (p, 2),
            None => panic!("{rel}: no blank line between headers and body"),
        },
    };
    msg.get(at + sep..).map(<[u8]>::to_vec).unwrap_or_default()
}

fn parse(rel: &str) -> SessionDescription {
    let b = body(rel);
    assert!(b.starts_with(b"v=0"), "{rel}: body does not start with v=0");
    let sdp = SessionDescription::parse(&b).unwrap_or_else(|e| panic!("{rel}: {e}"));
    // parse → serialize → parse is the identity, and serialization is a fixed point.
    let wire = sdp.to_bytes();
    let again = SessionDescription::parse(&wire).unwrap_or_else(|e| panic!("{rel} re-parse: {e}"));
    assert_eq!(again, sdp, "{rel}: round trip changed the description");
    assert_eq!(again.to_bytes(), wire);
    sdp
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn rfc4475_sdp01() {
    let sdp = parse("rfc4475/application/sdp01.dat");
    assert_eq!(sdp.origin.username, "mhandley");
    assert_eq!(sdp.origin.session_id, "29739");
    assert_eq!(sdp.origin.session_version, 7_272_939);
    assert_eq!(sdp.origin.address.ip(), Some(ip("192.0.2.5")));
    assert_eq!(sdp.session_name, "-");
    assert_eq!(
        sdp.connection.as_ref().and_then(Connection::ip),
        Some(ip("192.0.2.5"))
    );
    assert_eq!((sdp.timings[0].start, sdp.timings[0].stop), (0, 0));
    assert_eq!(sdp.media.len(), 2);
    let a = sdp.first_audio().unwrap();
    assert_eq!((a.port, a.proto.clone()), (49217, Proto::RtpAvp));
    assert_eq!(a.formats, ["0", "12"]);
    let v = &sdp.media[1];
    assert_eq!((v.media.as_str(), v.port), ("video", 3227));
    // `a=rtpmap:31 LPC` has no clock rate: kept verbatim.
    assert_eq!(
        v.attributes,
        [Attribute::Other {
            name: "rtpmap".into(),
            value: Some("31 LPC".into())
        }]
    );
    // Exact bytes back (the vector is canonical CRLF SDP).
    assert_eq!(sdp.to_bytes(), body("rfc4475/application/sdp01.dat"));

    // Filtering format 31 drops its verbatim rtpmap as well.
    let mut sdp = sdp;
    assert_eq!(sdp.media[1].retain_formats(|f, _| f != "31"), 1);
    assert!(sdp.media[1].attributes.is_empty());
}

#[test]
fn rfc4475_multi01_sdp_body() {
    let sdp = parse("rfc4475/application/multi01.dat");
    assert_eq!(sdp.origin.address.ip(), Some(ip("192.0.2.25")));
    assert_eq!(sdp.media.len(), 2);
}

#[test]
fn rfc5118_ipv6_in_sdp() {
    let sdp = parse("rfc5118/ipv6-in-sdp");
    assert_eq!(sdp.origin.session_id, "971731711378798081");
    assert_eq!(sdp.origin.session_version, 0);
    assert_eq!(sdp.origin.address.addr_type, AddrType::Ip6);
    assert_eq!(sdp.origin.address.ip(), Some(ip("2001:db8::20")));
    assert_eq!(sdp.session_name, "Live video feed for today's meeting");
    let c = sdp.connection.as_ref().unwrap();
    assert_eq!(c.addr_type, AddrType::Ip6);
    assert_eq!(c.ip(), Some(ip("2001:db8::20")));
    assert_eq!(
        (sdp.timings[0].start, sdp.timings[0].stop),
        (3_338_481_189, 3_370_017_201)
    );
    let a = sdp.first_audio().unwrap();
    assert_eq!(a.port, 6000);
    let map = a.rtpmap(2).unwrap();
    assert_eq!((map.encoding.as_str(), map.clock_rate), ("G726-32", 8000));
    let v = &sdp.media[1];
    assert_eq!(
        v.rtpmap(107).map(|m| m.encoding.as_str()),
        Some("H263-1998")
    );
    assert_eq!(
        sdp.media_connection(1).and_then(Connection::ip),
        Some(ip("2001:db8::20"))
    );
    assert_eq!(sdp.to_bytes(), body("rfc5118/ipv6-in-sdp"));
}

#[test]
fn rfc5118_mult_ip_in_sdp() {
    let sdp = parse("rfc5118/mult-ip-in-sdp");
    assert_eq!(sdp.origin.address.ip(), None, "o= carries an FQDN");
    assert_eq!(sdp.origin.address.address, "host.example.com");
    assert_eq!(sdp.session_name, "", "empty s= is tolerated");
    assert!(sdp.connection.is_none());
    assert_eq!(
        sdp.media_connection(0).and_then(Connection::ip),
        Some(ip("192.0.2.1"))
    );
    assert_eq!(sdp.media[1].connections[0].addr_type, AddrType::Ip6);
    assert_eq!(
        sdp.media_connection(1).and_then(Connection::ip),
        Some(ip("2001:db8::1"))
    );

    // Anchoring rewrites both families to the SBC address.
    let mut sdp = sdp;
    sdp.set_connection_address(ip("2001:db8::5"));
    for i in 0..2 {
        assert_eq!(
            sdp.media_connection(i).and_then(Connection::ip),
            Some(ip("2001:db8::5"))
        );
    }
    let out = String::from_utf8(sdp.to_bytes()).unwrap();
    assert_eq!(out.matches("c=IN IP6 2001:db8::5\r\n").count(), 3);
    assert!(!out.contains("IP4 192.0.2.1"));
}

#[test]
fn rfc5118_ipv4_mapped_ipv6() {
    let sdp = parse("rfc5118/ipv4-mapped-ipv6");
    let c = sdp.connection.as_ref().unwrap();
    assert_eq!(c.addr_type, AddrType::Ip6);
    assert_eq!(c.ip(), Some(ip("::ffff:192.0.2.2")));
}

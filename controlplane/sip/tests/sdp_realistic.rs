//! SDP as real peers send it: a Microsoft Teams Direct Routing offer (SDES + ICE +
//! rtcp-mux), sipp's built-in scenarios (read from the installed `sipp`), and
//! Kamailio/rtpengine style offers; plus the rewrites an SBC does between them.

use std::net::IpAddr;
use std::process::Command;

use portcullis_sip::sdp::{
    Attribute, Candidate, CandidateType, Connection, Crypto, Direction, Lifetime, Mki, Proto, Rtcp,
    SessionDescription, AES_CM_128_HMAC_SHA1_80,
};

fn parse(text: &str) -> SessionDescription {
    let sdp = SessionDescription::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let wire = sdp.to_bytes();
    assert_eq!(
        SessionDescription::parse(&wire).as_ref(),
        Ok(&sdp),
        "round trip"
    );
    sdp
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A Teams Direct Routing (media bypass) offer toward the SBC, in the shape the Teams
/// media processor sends: SILK/G722/G729/PCMU/PCMA, SDES with MKI, ICE (UDP and
/// TCP-ACT/TCP-PASS candidates), rtcp-mux, x- attributes. Addresses are documentation
/// ranges.
const TEAMS_OFFER: &str = "v=0\r
o=- 0 0 IN IP4 198.51.100.20\r
s=session\r
c=IN IP4 198.51.100.20\r
b=CT:10000000\r
t=0 0\r
m=audio 52340 RTP/SAVP 104 9 103 111 18 0 8 97 101 13 118\r
c=IN IP4 198.51.100.20\r
a=rtcp:52341\r
a=ice-ufrag:LvvT\r
a=ice-pwd:o4qB4DQI7X4wZ6EaBt1ZWkkF\r
a=rtcp-mux\r
a=candidate:1 1 UDP 2130706431 10.0.0.4 52340 typ host\r
a=candidate:1 2 UDP 2130705918 10.0.0.4 52341 typ host\r
a=candidate:2 1 UDP 1694498815 198.51.100.20 52340 typ srflx raddr 10.0.0.4 rport 52340\r
a=candidate:2 2 UDP 1694498302 198.51.100.20 52341 typ srflx raddr 10.0.0.4 rport 52341\r
a=candidate:3 1 tcp-act 1684796415 198.51.100.20 55900 typ srflx raddr 10.0.0.4 rport 55900\r
a=candidate:3 2 tcp-act 1684795902 198.51.100.20 55900 typ srflx raddr 10.0.0.4 rport 55900\r
a=label:main-audio\r
a=x-source-streamid:3124\r
a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:c0UnCxwsMRRDtXnZLyD4HdWmnMtvBWmcgAzBwB+8|2^31|1:1\r
a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:rCVUqPNe6ZyUr0hjZrNcDJN0ToXDUbi4nq/Uv1+f|2^31\r
a=x-mediabw:main-audio send=12;recv=12\r
a=maxptime:200\r
a=rtpmap:104 SILK/16000\r
a=fmtp:104 useinbandfec=1; usedtx=0\r
a=rtpmap:9 G722/8000\r
a=rtpmap:103 SILK/8000\r
a=fmtp:103 useinbandfec=1; usedtx=0\r
a=rtpmap:111 SIREN/16000\r
a=fmtp:111 bitrate=16000\r
a=rtpmap:18 G729/8000\r
a=fmtp:18 annexb=no\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:97 RED/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-16\r
a=rtpmap:13 CN/8000\r
a=rtpmap:118 CN/16000\r
a=ptime:20\r
";

#[test]
fn teams_offer_typed() {
    let sdp = parse(TEAMS_OFFER);
    // Canonical input: written back byte for byte.
    assert_eq!(String::from_utf8(sdp.to_bytes()).unwrap(), TEAMS_OFFER);
    assert_eq!(sdp.bandwidths[0].bw_type, "CT");
    let a = sdp.first_audio().unwrap();
    assert_eq!(a.proto, Proto::RtpSavp);
    assert_eq!(a.payload_types().count(), 11);
    assert_eq!(a.rtcp().map(|r| r.port), Some(52341));
    assert!(a.has_rtcp_mux());
    assert_eq!(
        a.ice_credentials(),
        Some(("LvvT", "o4qB4DQI7X4wZ6EaBt1ZWkkF"))
    );
    let cands: Vec<&Candidate> = a.candidates().collect();
    assert_eq!(cands.len(), 6);
    assert_eq!(cands[2].kind, CandidateType::Srflx);
    assert_eq!(cands[2].related_address.as_deref(), Some("10.0.0.4"));
    assert_eq!(cands[2].related_port, Some(52340));
    assert_eq!(cands[4].transport, "tcp-act");
    let crypto: Vec<&Crypto> = a.crypto().collect();
    assert_eq!(crypto.len(), 2);
    assert_eq!(crypto[0].tag, 2);
    assert_eq!(crypto[0].suite, AES_CM_128_HMAC_SHA1_80);
    assert_eq!(crypto[0].keys[0].lifetime, Some(Lifetime::PowerOfTwo(31)));
    assert_eq!(
        crypto[0].keys[0].mki,
        Some(Mki {
            value: 1,
            length: 1
        })
    );
    let km = crypto[1].key_material().unwrap();
    assert_eq!((km.key.len(), km.salt.len()), (16, 14));
    assert_eq!(
        a.rtpmap(104).map(|m| (m.encoding.as_str(), m.clock_rate)),
        Some(("SILK", 16_000))
    );
    assert!(a
        .attributes
        .iter()
        .any(|x| matches!(x, Attribute::Fmtp(f) if f.format == "104" && f.params == "useinbandfec=1; usedtx=0")));
    assert!(a.attributes.contains(&Attribute::Ptime(20)));
    assert!(a.attributes.contains(&Attribute::MaxPtime(200)));
    assert_eq!(sdp.media_direction(0), Some(Direction::SendRecv));
}

/// Teams → SBC → SIP trunk: strip SRTP and ICE, anchor on the SBC, keep G.711 + DTMF.
#[test]
fn teams_offer_rewritten_for_plain_trunk() {
    let mut sdp = parse(TEAMS_OFFER);
    let teams_key = sdp
        .first_audio()
        .unwrap()
        .crypto()
        .next()
        .unwrap()
        .key_material()
        .unwrap();
    let sbc = ip("203.0.113.10");
    sdp.set_connection_address(sbc);
    sdp.set_origin_address(sbc);
    sdp.bump_version();
    sdp.remove_ice();
    let a = sdp.first_audio_mut().unwrap();
    a.set_port(30000);
    a.set_proto(a.proto.to_plain());
    assert_eq!(a.remove_crypto(), 2);
    a.set_rtcp(Rtcp {
        port: 30001,
        address: None,
    });
    a.set_rtcp_mux(false);
    a.retain_formats(|_, m| {
        m.is_some_and(|m| matches!(m.encoding.as_str(), "PCMU" | "PCMA" | "telephone-event"))
    });
    let out = String::from_utf8(sdp.to_bytes()).unwrap();
    assert!(out.starts_with(
        "v=0\r\no=- 0 1 IN IP4 203.0.113.10\r\ns=session\r\nc=IN IP4 203.0.113.10\r\n"
    ));
    assert!(
        out.contains("m=audio 30000 RTP/AVP 0 8 101\r\nc=IN IP4 203.0.113.10\r\na=rtcp:30001\r\n")
    );
    for gone in [
        "crypto",
        "candidate",
        "ice-",
        "rtcp-mux",
        "SILK",
        "G729",
        "fmtp:104",
        "RTP/SAVP",
    ] {
        assert!(!out.contains(gone), "{gone} still in\n{out}");
    }
    assert!(
        out.contains("a=label:main-audio\r\n"),
        "unknown attributes kept"
    );
    assert!(out.contains("a=fmtp:101 0-16\r\n"));
    assert_eq!(
        teams_key.key.len(),
        16,
        "key material extracted before the rewrite"
    );
    assert_eq!(parse(&out), sdp);
}

/// SIP trunk answer → SBC → Teams: add SDES, rtcp-mux, ICE-lite with a host candidate.
#[test]
fn trunk_answer_rewritten_for_teams() {
    let mut sdp = parse(
        "v=0\r\no=trunk 1000 1000 IN IP4 192.0.2.50\r\ns=-\r\nc=IN IP4 192.0.2.50\r\nt=0 0\r\n\
         m=audio 16000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-15\r\na=sendrecv\r\n",
    );
    let sbc = ip("203.0.113.10");
    let key: [u8; 16] = core::array::from_fn(|i| (i * 7) as u8);
    let salt: [u8; 14] = core::array::from_fn(|i| (i * 13) as u8);
    sdp.set_connection_address(sbc);
    sdp.set_origin_address(sbc);
    sdp.bump_version();
    sdp.set_ice_lite(true);
    let a = sdp.first_audio_mut().unwrap();
    a.set_port(40000);
    a.set_proto(a.proto.to_secure());
    a.add_crypto(Crypto::aes_cm_128_hmac_sha1_80(1, &key, &salt));
    a.set_rtcp_mux(true);
    a.set_ice_credentials("SbCu", "SbCpasswordSbCpassword22");
    a.set_candidates(vec![Candidate::host("1", 1, sbc, 40000)]);
    let out = String::from_utf8(sdp.to_bytes()).unwrap();
    assert!(out.contains("t=0 0\r\na=ice-lite\r\nm=audio 40000 RTP/SAVP 0 101\r\n"));
    assert!(out.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"));
    assert!(out.contains("|2^31\r\na=rtcp-mux\r\n"));
    assert!(out.contains("a=candidate:1 1 UDP 2130706431 203.0.113.10 40000 typ host\r\n"));
    // The far side decodes the same key and salt.
    let back = parse(&out);
    let km = back
        .first_audio()
        .unwrap()
        .crypto()
        .next()
        .unwrap()
        .key_material()
        .unwrap();
    assert_eq!(
        (km.key.as_slice(), km.salt.as_slice()),
        (&key[..], &salt[..])
    );
    // Hold toward Teams is a=inactive.
    let mut held = back;
    held.first_audio_mut()
        .unwrap()
        .set_direction(Direction::Inactive);
    assert_eq!(held.media_direction(0), Some(Direction::Inactive));
    let out = String::from_utf8(held.to_bytes()).unwrap();
    assert_eq!(out.matches("a=inactive").count(), 1);
    assert!(!out.contains("sendrecv"));
}

/// The SDP of a sipp built-in scenario, read from the installed sipp, with its
/// keywords replaced as sipp would at run time.
fn sipp_scenario_sdp(scenario: &str) -> String {
    let out = Command::new("sipp")
        .args(["-sd", scenario])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `sipp -sd {scenario}` ({e}); install sipp (Debian package sip-tester)"
            )
        });
    assert!(
        out.status.success() || !out.stdout.is_empty(),
        "sipp -sd {scenario} failed"
    );
    let xml = String::from_utf8_lossy(&out.stdout);
    let mut sdp = String::new();
    let mut inside = false;
    for l in xml.lines() {
        let t = l.trim();
        if t == "v=0" && sdp.is_empty() {
            inside = true;
        }
        if inside {
            if t.is_empty() || t.starts_with("]]>") {
                break;
            }
            sdp.push_str(t);
            sdp.push('\n');
        }
    }
    assert!(!sdp.is_empty(), "no SDP found in `sipp -sd {scenario}`");
    sdp.replace("[local_ip_type]", "4")
        .replace("[media_ip_type]", "4")
        .replace("[local_ip]", "127.0.0.1")
        .replace("[media_ip]", "127.0.0.1")
        .replace("[auto_media_port]", "6000")
        .replace("[media_port]", "6000")
}

#[test]
fn sipp_uac_pcap_offer() {
    let text = sipp_scenario_sdp("uac_pcap");
    let sdp = parse(&text);
    assert_eq!(sdp.origin.username, "user1");
    assert_eq!(sdp.origin.session_version, 2_353_687_637);
    let a = sdp.first_audio().unwrap();
    assert_eq!((a.port, &a.proto), (6000, &Proto::RtpAvp));
    assert_eq!(a.formats, ["8", "101"]);
    assert_eq!(a.rtpmap(8).map(|m| m.encoding.as_str()), Some("PCMA"));
    assert_eq!(
        a.rtpmap(101).map(|m| m.encoding.as_str()),
        Some("telephone-event")
    );
    assert!(a
        .attributes
        .iter()
        .any(|x| matches!(x, Attribute::Fmtp(f) if f.format == "101" && f.params == "0-11,16")));
    // LF input, CRLF output.
    assert!(!text.contains('\r'));
    assert_eq!(
        String::from_utf8(sdp.to_bytes()).unwrap(),
        text.replace('\n', "\r\n")
    );
}

#[test]
fn sipp_uac_offer() {
    let sdp = parse(&sipp_scenario_sdp("uac"));
    let a = sdp.first_audio().unwrap();
    assert_eq!(a.formats, ["0"]);
    assert_eq!(
        sdp.media_connection(0).and_then(Connection::ip),
        Some(ip("127.0.0.1"))
    );
}

/// What Kamailio with rtpengine (`rtpengine_offer("RTP/SAVP ICE=force SDES-...")`) hands
/// to the callee: rtpengine's o=/s=, a=rtcp with address, several SDES suites, ICE
/// candidates for RTP and RTCP, and nathelper's `a=nortpproxy:yes`.
const RTPENGINE_OFFER: &str = "v=0\r
o=- 1545997027 2 IN IP4 203.0.113.1\r
s=tester\r
t=0 0\r
a=nortpproxy:yes\r
m=audio 30004 RTP/SAVP 0 8 9 101\r
c=IN IP4 203.0.113.1\r
a=label:caller-1\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:9 G722/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-16\r
a=sendrecv\r
a=rtcp:30005 IN IP4 203.0.113.1\r
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:QkYuqfUa2+JrW4BM05E3PeQkt5nplGxl62SEf4Y7|2^31\r
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:kY3CHYHxrrmebK6oaPCC2SP/zPQ/tL6oRnCx8DY5|2^31\r
a=crypto:3 AES_192_CM_HMAC_SHA1_80 inline:m0iIIbGZHMZCJ8rg0rR1u2LuU1ykxibvm56Bgj7hmxxuc3cHsuA=|2^31\r
a=crypto:4 AES_256_CM_HMAC_SHA1_80 inline:8ZSVyQrkgf1pwOtCQz4vgeQS0KBLtvNp5rbwI3y5xMKnkmYLCwYVRdhvIMu8Ag==|2^31\r
a=crypto:5 F8_128_HMAC_SHA1_80 inline:Ffa2XVxh4kVpD/DeVGJIsLoeumuqFNtTEF2aBy6m|2^31\r
a=crypto:6 AEAD_AES_256_GCM inline:GkEEN7Egd6vgXkRR85yVASnJqTiQcyvahrwWu4CO4rnNmT/5n7hB6jYJ5Ms=|2^31\r
a=ice-ufrag:Jq8VULyV\r
a=ice-pwd:Ozb5T7upB5mwVqCQTKJDDRvxSr\r
a=candidate:Q6FQGyVizuiwiZRv 1 UDP 2130706431 203.0.113.1 30004 typ host\r
a=candidate:Q6FQGyVizuiwiZRv 2 UDP 2130706430 203.0.113.1 30005 typ host\r
a=ptime:20\r
";

#[test]
fn rtpengine_offer_typed_and_filtered() {
    let mut sdp = parse(RTPENGINE_OFFER);
    assert_eq!(String::from_utf8(sdp.to_bytes()).unwrap(), RTPENGINE_OFFER);
    assert_eq!(
        sdp.attributes,
        [Attribute::Other {
            name: "nortpproxy".into(),
            value: Some("yes".into())
        }]
    );
    let a = sdp.first_audio_mut().unwrap();
    let rtcp = a.rtcp().cloned().unwrap();
    assert_eq!(
        (rtcp.port, rtcp.address.and_then(|c| c.ip())),
        (30005, Some(ip("203.0.113.1")))
    );
    let sizes: Vec<(usize, usize)> = a
        .crypto()
        .map(|c| {
            c.key_material()
                .map(|k| (k.key.len(), k.salt.len()))
                .unwrap()
        })
        .collect();
    assert_eq!(
        sizes,
        [(16, 14), (16, 14), (24, 14), (32, 14), (16, 14), (32, 12)]
    );
    assert_eq!(
        a.candidates().map(|c| c.component).collect::<Vec<_>>(),
        [1, 2]
    );
    // Keep only the Teams suite, like an SBC answering Teams.
    let keep = a
        .crypto()
        .find(|c| c.suite == AES_CM_128_HMAC_SHA1_80)
        .cloned()
        .unwrap();
    a.remove_crypto();
    a.add_crypto(keep);
    assert_eq!(a.crypto().count(), 1);
    // Drop G722; DTMF stays.
    assert_eq!(a.retain_formats(|f, _| f != "9"), 1);
    assert_eq!(a.formats, ["0", "8", "101"]);
    let out = String::from_utf8(sdp.to_bytes()).unwrap();
    assert!(!out.contains("G722") && !out.contains("crypto:2"));
    assert_eq!(parse(&out), sdp);
}

/// A Kamailio-relayed offer from a desk phone behind NAT: LF line ends, trailing
/// spaces, nathelper's `a=oldmediaip`, video with rtcp-fb, and an unknown `y=` line.
#[test]
fn kamailio_relayed_offer_with_sloppy_whitespace() {
    let text = "v=0 \n\
o=Polycom 1234567890 1234567891 IN IP4 192.0.2.77\n\
s=Polycom IP Phone  \n\
c=IN IP4 198.51.100.9\n\
t=0 0\n\
a=sendrecv\t\n\
m=audio 2226 RTP/AVP 9 0 8 18 127\n\
a=oldmediaip:192.168.1.77\n\
a=rtpmap:9 G722/8000\n\
a=rtpmap:0 PCMU/8000\n\
a=rtpmap:8 PCMA/8000\n\
a=rtpmap:18 G729/8000\n\
a=fmtp:18 annexb=no\n\
a=rtpmap:127 telephone-event/8000\n\
m=video 2228 RTP/AVPF 109\n\
b=TIAS:512000\n\
y=vendor extension\n\
a=rtpmap:109 H264/90000\n\
a=fmtp:109 profile-level-id=42801f; packetization-mode=0\n\
a=rtcp-fb:109 nack pli\n\
a=recvonly\n";
    let sdp = parse(text);
    assert_eq!(sdp.session_name, "Polycom IP Phone");
    assert_eq!(sdp.media_direction(0), Some(Direction::SendRecv));
    assert_eq!(sdp.media_direction(1), Some(Direction::RecvOnly));
    assert_eq!(sdp.media[1].proto, Proto::RtpAvpf);
    assert_eq!(sdp.media[1].bandwidths[0].value, 512_000);
    assert_eq!(sdp.media[1].extra[0].kind, 'y');
    let out = String::from_utf8(sdp.to_bytes()).unwrap();
    assert!(out.contains("a=oldmediaip:192.168.1.77\r\n"));
    assert!(out.contains("b=TIAS:512000\r\ny=vendor extension\r\na=rtpmap:109 H264/90000\r\n"));
    assert!(!out.contains(" \r\n") && !out.contains("\t\r\n"));
}

/// A browser (WebRTC) offer: BUNDLE, DTLS-SRTP profile, mDNS and TCP candidates,
/// extmap/msid/ssrc-group lines. Everything the SBC does not type is kept verbatim.
const WEBRTC_OFFER: &str = "v=0\r
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
a=group:BUNDLE 0 1\r
a=extmap-allow-mixed\r
a=msid-semantic: WMS stream0\r
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r
c=IN IP4 0.0.0.0\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=candidate:1467250027 1 udp 2122260223 a1b2c3d4-1111-2222-3333-444455556666.local 46243 typ host generation 0 network-cost 999\r
a=candidate:842163049 1 udp 1686052607 198.51.100.33 46243 typ srflx raddr 0.0.0.0 rport 0 generation 0 network-cost 999\r
a=candidate:3297365233 1 tcp 1518280447 a1b2c3d4-1111-2222-3333-444455556666.local 9 typ host tcptype active generation 0 network-cost 999\r
a=ice-ufrag:8hhY\r
a=ice-pwd:asd88fgpdd777uzjYhagZg+L\r
a=ice-options:trickle\r
a=fingerprint:sha-256 D1:2C:BE:AD:C4:F6:64:5C:25:16:11:9C:AF:E7:0F:73:79:36:4E:9C:1E:15:54:39:0C:06:8B:ED:96:86:00:39\r
a=setup:actpass\r
a=mid:0\r
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r
a=sendrecv\r
a=msid:stream0 track0\r
a=rtcp-mux\r
a=rtpmap:111 opus/48000/2\r
a=rtcp-fb:111 transport-cc\r
a=fmtp:111 minptime=10;useinbandfec=1\r
a=rtpmap:63 red/48000/2\r
a=fmtp:63 111/111\r
a=rtpmap:9 G722/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:13 CN/8000\r
a=rtpmap:110 telephone-event/48000\r
a=rtpmap:126 telephone-event/8000\r
a=ssrc:1001 cname:abcdEFGHijklMNOP\r
a=ssrc:1001 msid:stream0 track0\r
m=video 9 UDP/TLS/RTP/SAVPF 96 97\r
c=IN IP4 0.0.0.0\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=ice-ufrag:8hhY\r
a=ice-pwd:asd88fgpdd777uzjYhagZg+L\r
a=mid:1\r
a=recvonly\r
a=rtcp-mux\r
a=rtcp-rsize\r
a=rtpmap:96 VP8/90000\r
a=rtcp-fb:96 nack pli\r
a=rtpmap:97 rtx/90000\r
a=fmtp:97 apt=96\r
a=ssrc-group:FID 2001 2002\r
";

#[test]
fn webrtc_offer_typed_and_reduced_to_g711() {
    let mut sdp = parse(WEBRTC_OFFER);
    assert_eq!(String::from_utf8(sdp.to_bytes()).unwrap(), WEBRTC_OFFER);
    let a = sdp.first_audio().unwrap();
    assert_eq!(a.proto, Proto::UdpTlsRtpSavpf);
    assert_eq!(a.mid(), Some("0"));
    let c: Vec<&Candidate> = a.candidates().collect();
    assert_eq!(c.len(), 3);
    assert_eq!(c[0].ip(), None, "mDNS name");
    assert_eq!(c[0].extensions[1], ("network-cost".into(), "999".into()));
    assert_eq!(c[2].extensions[0], ("tcptype".into(), "active".into()));
    assert_eq!(a.attributes_named("ssrc").count(), 2);
    assert_eq!(sdp.media_direction(1), Some(Direction::RecvOnly));
    assert_eq!(
        sdp.rtp_destination(0),
        Some("0.0.0.0:9".parse().unwrap()),
        "caller's placeholder before ICE"
    );
    // Toward a G.711 trunk: plain RTP, no ICE, no DTLS attributes, video rejected.
    sdp.remove_ice();
    let a = sdp.first_audio_mut().unwrap();
    a.set_proto(Proto::RtpAvp);
    a.attributes.retain(|x| {
        !matches!(
            x.name(),
            "fingerprint" | "setup" | "extmap" | "msid" | "ssrc"
        )
    });
    a.retain_formats(|_, m| {
        m.is_some_and(|m| {
            matches!(m.encoding.as_str(), "PCMU" | "PCMA")
                || (m.encoding == "telephone-event" && m.clock_rate == 8000)
        })
    });
    assert_eq!(a.formats, ["0", "8", "126"]);
    sdp.media[1].reject();
    let out = String::from_utf8(sdp.to_bytes()).unwrap();
    for gone in [
        "opus",
        "red/",
        "G722",
        "CN/",
        "110",
        "fmtp:111",
        "rtcp-fb:111",
        "candidate",
        "ice-",
    ] {
        assert!(!out.contains(gone), "{gone} still in\n{out}");
    }
    assert!(out.contains("m=audio 9 RTP/AVP 0 8 126\r\n"));
    assert!(out.contains("m=video 0 UDP/TLS/RTP/SAVPF 96 97\r\n"));
    assert_eq!(parse(&out), sdp);
}

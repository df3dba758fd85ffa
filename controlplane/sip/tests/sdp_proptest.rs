//! Property tests: the parser never panics on arbitrary or mutated input, and any
//! description built from valid parts round-trips through serialize → parse.

use proptest::prelude::*;
use proptest::test_runner::Config;

use portcullis_sip::sdp::{
    Attribute, Bandwidth, Candidate, CandidateType, Connection, Crypto, Direction, Fmtp, KeyParam,
    Lifetime, MediaDescription, Mki, Origin, Proto, RawLine, Rtcp, RtpMap, SessionDescription,
    Ssrc, Timing,
};

/// Non-empty text with no control characters and no leading/trailing whitespace.
fn text() -> impl Strategy<Value = String> {
    "[!-~]([ -~]{0,20}[!-~])?"
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.-]{0,9}"
}

fn connection() -> impl Strategy<Value = Connection> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| Connection::new(std::net::IpAddr::from(b))),
        any::<[u8; 16]>().prop_map(|b| Connection::new(std::net::IpAddr::from(b))),
        "[a-z]{1,8}\\.example\\.(com|net)"
            .prop_map(|h| Connection::parse(&format!("IN IP4 {h}")).unwrap()),
        (1u8..=255, 1u8..=255)
            .prop_map(|(t, n)| Connection::parse(&format!("IN IP4 233.1.2.3/{t}/{n}")).unwrap()),
    ]
}

fn key_param() -> impl Strategy<Value = KeyParam> {
    prop_oneof![
        (
            proptest::collection::vec(any::<u8>(), 1..48),
            proptest::option::of(prop_oneof![
                any::<u8>().prop_map(Lifetime::PowerOfTwo),
                any::<u64>().prop_map(Lifetime::Packets)
            ]),
            proptest::option::of(
                (any::<u64>(), 1u8..=128).prop_map(|(value, length)| Mki { value, length })
            ),
        )
            .prop_map(|(ks, lifetime, mki)| KeyParam {
                lifetime,
                mki,
                ..KeyParam::inline(&ks)
            }),
        ("[a-z]{1,6}", "[A-Za-z0-9:/.|]{1,20}").prop_filter_map("inline is typed", |(m, k)| {
            (m != "inline").then_some(KeyParam {
                method: m,
                key: k,
                lifetime: None,
                mki: None,
            })
        }),
    ]
}

fn candidate() -> impl Strategy<Value = Candidate> {
    (
        "[A-Za-z0-9+/]{1,32}",
        1u16..=256,
        prop_oneof![
            Just("UDP".to_owned()),
            Just("TCP".to_owned()),
            Just("tcp-pass".to_owned())
        ],
        any::<u32>(),
        prop_oneof![
            any::<[u8; 4]>().prop_map(|b| std::net::IpAddr::from(b).to_string()),
            any::<[u8; 16]>().prop_map(|b| std::net::IpAddr::from(b).to_string()),
            "[a-f0-9-]{8,36}\\.local",
        ],
        any::<u16>(),
        prop_oneof![
            Just(CandidateType::Host),
            Just(CandidateType::Srflx),
            Just(CandidateType::Prflx),
            Just(CandidateType::Relay),
            Just(CandidateType::Other("xyz".into())),
        ],
        proptest::option::of(any::<[u8; 4]>().prop_map(|b| std::net::IpAddr::from(b).to_string())),
        proptest::option::of(any::<u16>()),
        proptest::collection::vec(("x[a-z]{1,6}|generation|network-id", "[a-z0-9]{1,6}"), 0..3),
    )
        .prop_map(
            |(
                foundation,
                component,
                transport,
                priority,
                address,
                port,
                kind,
                raddr,
                rport,
                ext,
            )| Candidate {
                foundation,
                component,
                transport,
                priority,
                address,
                port,
                kind,
                related_address: raddr,
                related_port: rport,
                extensions: ext,
            },
        )
}

fn attribute() -> impl Strategy<Value = Attribute> {
    prop_oneof![
        (
            0u8..=127,
            token(),
            any::<u32>(),
            proptest::option::of("[0-9]{1,2}")
        )
            .prop_map(|(payload_type, encoding, clock_rate, params)| {
                Attribute::RtpMap(RtpMap {
                    payload_type,
                    encoding,
                    clock_rate,
                    params,
                })
            }),
        ("[0-9]{1,3}", proptest::option::of(text())).prop_map(|(format, p)| Attribute::Fmtp(
            Fmtp {
                format,
                params: p.unwrap_or_default()
            }
        )),
        any::<u32>().prop_map(Attribute::Ptime),
        any::<u32>().prop_map(Attribute::MaxPtime),
        prop_oneof![
            Just(Direction::SendRecv),
            Just(Direction::SendOnly),
            Just(Direction::RecvOnly),
            Just(Direction::Inactive)
        ]
        .prop_map(Attribute::Direction),
        (any::<u16>(), proptest::option::of(connection()))
            .prop_map(|(port, address)| Attribute::Rtcp(Rtcp { port, address })),
        Just(Attribute::RtcpMux),
        Just(Attribute::IceLite),
        (
            0u32..=999_999_999,
            prop_oneof![
                Just("AES_CM_128_HMAC_SHA1_80".to_owned()),
                Just("AEAD_AES_256_GCM".to_owned()),
                "[A-Z_0-9]{1,20}"
            ],
            proptest::collection::vec(key_param(), 1..3),
            proptest::collection::vec("[A-Z_]{1,12}(=[0-9]{1,3})?", 0..3),
        )
            .prop_map(
                |(tag, suite, keys, session_params)| Attribute::Crypto(Box::new(Crypto {
                    tag,
                    suite,
                    keys,
                    session_params
                }))
            ),
        "[A-Za-z0-9+/]{1,32}".prop_map(Attribute::IceUfrag),
        "[A-Za-z0-9+/]{1,32}".prop_map(Attribute::IcePwd),
        candidate().prop_map(|c| Attribute::Candidate(Box::new(c))),
        "[a-z0-9]{1,8}".prop_map(Attribute::Mid),
        (
            any::<u32>(),
            "cname:[a-z@.]{1,12}|msid:[a-z]{1,4} [a-z]{1,4}"
        )
            .prop_map(|(id, attribute)| Attribute::Ssrc(Ssrc { id, attribute })),
        (
            "x-[a-z]{1,8}|label|group|rtcp-fb|record",
            proptest::option::of(prop_oneof![text(), Just(String::new())])
        )
            .prop_map(|(name, value)| Attribute::Other { name, value }),
    ]
}

fn raw_line() -> impl Strategy<Value = RawLine> {
    (
        proptest::sample::select(vec!['d', 'f', 'g', 'h', 'j', 'l', 'n', 'q', 'w', 'x', 'y']),
        prop_oneof![text(), Just(String::new())],
    )
        .prop_map(|(kind, value)| RawLine { kind, value })
}

fn bandwidth() -> impl Strategy<Value = Bandwidth> {
    ("AS|CT|TIAS|RS|RR", any::<u64>()).prop_map(|(bw_type, value)| Bandwidth { bw_type, value })
}

fn media() -> impl Strategy<Value = MediaDescription> {
    (
        (
            "audio|video|image|application|text",
            any::<u16>(),
            proptest::option::of(1u32..16),
            "RTP/AVP|RTP/AVPF|RTP/SAVP|RTP/SAVPF|UDP/TLS/RTP/SAVP|UDP/TLS/RTP/SAVPF|udp|udptl|TCP/MSRP",
            proptest::collection::vec("[0-9]{1,3}|t38|\\*", 0..5),
        ),
        (
            proptest::option::of(text()),
            proptest::collection::vec(connection(), 0..3),
            proptest::collection::vec(bandwidth(), 0..2),
            proptest::option::of(text()),
            proptest::collection::vec(raw_line(), 0..2),
            proptest::collection::vec(attribute(), 0..12),
        ),
    )
        .prop_map(|((m, port, port_count, proto, formats), (title, connections, bandwidths, key, extra, attributes))| {
            let mut md = MediaDescription::new(&m, port, Proto::parse(&proto), formats);
            md.port_count = port_count;
            md.title = title;
            md.connections = connections;
            md.bandwidths = bandwidths;
            md.key = key;
            md.extra = extra;
            md.attributes = attributes;
            md
        })
}

fn session() -> impl Strategy<Value = SessionDescription> {
    (
        (
            ("[!-~]{1,10}", "[0-9]{1,20}", any::<u64>(), connection()).prop_map(
                |(username, session_id, session_version, address)| Origin {
                    username,
                    session_id,
                    session_version,
                    address,
                },
            ),
            prop_oneof![text(), Just(String::new())],
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::collection::vec(text(), 0..2),
            proptest::collection::vec(text(), 0..2),
            proptest::option::of(connection()),
        ),
        (
            proptest::collection::vec(bandwidth(), 0..2),
            proptest::collection::vec(
                (
                    any::<u64>(),
                    any::<u64>(),
                    proptest::collection::vec(text(), 0..2),
                )
                    .prop_map(|(start, stop, repeats)| Timing {
                        start,
                        stop,
                        repeats,
                    }),
                0..3,
            ),
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::collection::vec(raw_line(), 0..2),
            proptest::collection::vec(attribute(), 0..6),
            proptest::collection::vec(media(), 0..4),
        ),
    )
        .prop_map(
            |(
                (origin, session_name, info, uri, emails, phones, connection),
                (bandwidths, timings, time_zones, key, extra, attributes, media),
            )| {
                SessionDescription {
                    origin,
                    session_name,
                    info,
                    uri,
                    emails,
                    phones,
                    connection,
                    bandwidths,
                    timings,
                    time_zones,
                    key,
                    extra,
                    attributes,
                    media,
                }
            },
        )
}

const SEED: &str = "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\na=ice-lite\r\n\
m=audio 4000 RTP/SAVP 0 101\r\na=rtcp:4001 IN IP4 192.0.2.1\r\na=rtcp-mux\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^31|1:4\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\n\
a=candidate:1 1 UDP 2130706431 192.0.2.1 4000 typ srflx raddr 10.0.0.1 rport 4000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ssrc:1 cname:x\r\na=mid:0\r\na=sendonly\r\n";

/// Parsing must not panic; whatever parses must serialize to a fixed point.
fn check_no_panic(input: &[u8]) {
    if let Ok(sdp) = SessionDescription::parse(input) {
        let wire = sdp.to_bytes();
        let again = SessionDescription::parse(&wire).expect("serialized output must parse");
        assert_eq!(again, sdp);
    }
}

proptest! {
    #![proptest_config(Config { cases: 2000, ..Config::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..1024)) {
        check_no_panic(&input);
    }

    #[test]
    fn arbitrary_lines_never_panic(lines in proptest::collection::vec("[a-z]=[ -~\u{80}-\u{10FFFF}]{0,40}", 0..20)) {
        let mut input = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n".to_vec();
        for l in lines {
            input.extend_from_slice(l.as_bytes());
            input.extend_from_slice(b"\n");
        }
        check_no_panic(&input);
    }

    #[test]
    fn mutated_seed_never_panics(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8)) {
        let mut input = SEED.as_bytes().to_vec();
        for (at, byte, op) in edits {
            let i = at.index(input.len() + 1);
            match op {
                0 => input.insert(i, byte),
                1 => { if i < input.len() { input.remove(i); } }
                _ => { if let Some(b) = input.get_mut(i) { *b = byte; } }
            }
        }
        check_no_panic(&input);
    }
}

proptest! {
    #![proptest_config(Config { cases: 500, ..Config::default() })]

    #[test]
    fn generated_sdp_round_trips(sdp in session()) {
        let wire = sdp.to_bytes();
        let back = SessionDescription::parse(&wire);
        prop_assert_eq!(back.as_ref(), Ok(&sdp), "wire:\n{}", String::from_utf8_lossy(&wire));
        // LF-only variant parses to the same description.
        let lf: Vec<u8> = wire.iter().copied().filter(|b| *b != b'\r').collect();
        let back_lf = SessionDescription::parse(&lf);
        prop_assert_eq!(back_lf.as_ref(), Ok(&sdp));
    }
}

#[test]
fn seed_parses() {
    let sdp = SessionDescription::parse(SEED.as_bytes()).unwrap();
    assert_eq!(sdp.media_direction(0), Some(Direction::SendOnly));
    assert_eq!(sdp.to_bytes(), SEED.as_bytes());
}

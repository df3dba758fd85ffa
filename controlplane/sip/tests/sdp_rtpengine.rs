//! Interop with a real rtpengine (Debian package `rtpengine-daemon`), on loopback only:
//! the SDP this codec serializes is accepted by rtpengine's NG `offer`, and the SDP
//! rtpengine produces (SDES crypto suites, ICE candidates, rtcp attributes) parses
//! into the typed attributes and round-trips.
//!
//! rtpengine runs in user space (`--table=-1`), bound to 127.0.0.1, and is killed when
//! the test ends. Every wait is bounded.

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use portcullis_sip::sdp::{
    Connection, Crypto, Direction, Proto, SessionDescription, AES_CM_128_HMAC_SHA1_80,
};

/// Kills the rtpengine we started when the test ends (panics included).
struct Rtpengine {
    child: Child,
    ng: std::net::SocketAddr,
    sock: UdpSocket,
    cookie: u32,
}

impl Drop for Rtpengine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bencode value, enough for the NG protocol.
#[derive(Debug, Clone, PartialEq)]
enum Ben {
    Bytes(Vec<u8>),
    Int(i64),
    List(Vec<Ben>),
    Dict(Vec<(Vec<u8>, Ben)>),
}

fn enc(v: &Ben, out: &mut Vec<u8>) {
    match v {
        Ben::Bytes(b) => {
            out.extend_from_slice(format!("{}:", b.len()).as_bytes());
            out.extend_from_slice(b);
        }
        Ben::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
        Ben::List(l) => {
            out.push(b'l');
            l.iter().for_each(|x| enc(x, out));
            out.push(b'e');
        }
        Ben::Dict(d) => {
            out.push(b'd');
            for (k, x) in d {
                enc(&Ben::Bytes(k.clone()), out);
                enc(x, out);
            }
            out.push(b'e');
        }
    }
}

fn dec(b: &[u8]) -> Option<(Ben, &[u8])> {
    match b.first()? {
        b'i' => {
            let end = b.iter().position(|c| *c == b'e')?;
            let n = std::str::from_utf8(b.get(1..end)?).ok()?.parse().ok()?;
            Some((Ben::Int(n), b.get(end + 1..)?))
        }
        b'l' => {
            let mut rest = b.get(1..)?;
            let mut l = Vec::new();
            while rest.first()? != &b'e' {
                let (x, r) = dec(rest)?;
                l.push(x);
                rest = r;
            }
            Some((Ben::List(l), rest.get(1..)?))
        }
        b'd' => {
            let mut rest = b.get(1..)?;
            let mut d = Vec::new();
            while rest.first()? != &b'e' {
                let (Ben::Bytes(k), r) = dec(rest)? else {
                    return None;
                };
                let (x, r) = dec(r)?;
                d.push((k, x));
                rest = r;
            }
            Some((Ben::Dict(d), rest.get(1..)?))
        }
        _ => {
            let colon = b.iter().position(|c| *c == b':')?;
            let n: usize = std::str::from_utf8(b.get(..colon)?).ok()?.parse().ok()?;
            let s = b.get(colon + 1..colon + 1 + n)?.to_vec();
            Some((Ben::Bytes(s), b.get(colon + 1 + n..)?))
        }
    }
}

fn s(x: &str) -> Ben {
    Ben::Bytes(x.as_bytes().to_vec())
}

fn get<'a>(d: &'a Ben, key: &str) -> Option<&'a Ben> {
    match d {
        Ben::Dict(d) => d.iter().find(|(k, _)| k == key.as_bytes()).map(|(_, v)| v),
        _ => None,
    }
}

fn text(b: Option<&Ben>) -> String {
    match b {
        Some(Ben::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
        other => format!("{other:?}"),
    }
}

impl Rtpengine {
    fn start() -> Self {
        // A free loopback UDP port for the NG listener; media ports in a range derived
        // from it so parallel runs do not collide.
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let ng = probe.local_addr().unwrap();
        drop(probe);
        let base = 20_000 + (ng.port() % 200) * 100;
        let child = Command::new("rtpengine")
            .args([
                "--foreground",
                "--log-stderr",
                "--table=-1",
                "--interface=127.0.0.1",
                "--config-file=none",
                "--log-level=3",
            ])
            .arg(format!("--listen-ng={ng}"))
            .arg(format!("--port-min={base}"))
            .arg(format!("--port-max={}", base + 99))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start rtpengine ({e}); install the Debian package rtpengine-daemon")
            });
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut r = Self {
            child,
            ng,
            sock,
            cookie: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(reply) = r.try_command(&Ben::Dict(vec![(b"command".to_vec(), s("ping"))])) {
                assert_eq!(text(get(&reply, "result")), "pong");
                break;
            }
            if let Ok(Some(status)) = r.child.try_wait() {
                panic!("rtpengine exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "rtpengine did not answer ping within 10 s"
            );
        }
        r
    }

    fn try_command(&mut self, dict: &Ben) -> Option<Ben> {
        self.cookie += 1;
        let cookie = format!("c{}_{}", std::process::id(), self.cookie);
        let mut msg = format!("{cookie} ").into_bytes();
        enc(dict, &mut msg);
        self.sock.send_to(&msg, self.ng).ok()?;
        let mut buf = vec![0u8; 65_536];
        let deadline = Instant::now() + Duration::from_millis(600);
        while Instant::now() < deadline {
            let Ok((n, _)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            let reply = buf.get(..n)?;
            let rest = reply.strip_prefix(cookie.as_bytes())?.strip_prefix(b" ")?;
            return dec(rest).map(|(v, _)| v);
        }
        None
    }

    fn command(&mut self, dict: &Ben) -> Ben {
        for _ in 0..5 {
            if let Some(r) = self.try_command(dict) {
                assert_eq!(text(get(&r, "result")), "ok", "rtpengine error: {r:?}");
                return r;
            }
        }
        panic!("rtpengine did not answer");
    }

    /// NG `offer` of `sdp` with extra `(key, value)` entries; returns the new SDP.
    fn offer(&mut self, call_id: &str, sdp: &[u8], extra: Vec<(&str, Ben)>) -> Vec<u8> {
        let mut d = vec![
            (b"command".to_vec(), s("offer")),
            (b"call-id".to_vec(), s(call_id)),
            (b"from-tag".to_vec(), s("ftag1")),
            (b"sdp".to_vec(), Ben::Bytes(sdp.to_vec())),
        ];
        d.extend(extra.into_iter().map(|(k, v)| (k.as_bytes().to_vec(), v)));
        match get(&self.command(&Ben::Dict(d)), "sdp") {
            Some(Ben::Bytes(b)) => b.clone(),
            other => panic!("no sdp in reply: {other:?}"),
        }
    }
}

const PLAIN_OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-11,16\r\n";

#[test]
fn rtpengine_interop() {
    let mut rtp = Rtpengine::start();

    // 1. Plain offer → rtpengine makes it SDES-SRTP with ICE: parse its real output.
    let ours = SessionDescription::parse(PLAIN_OFFER.as_bytes()).unwrap();
    let out = rtp.offer(
        "portcullis-sdp-1",
        &ours.to_bytes(),
        vec![
            ("transport-protocol", s("RTP/SAVP")),
            ("ICE", s("force")),
            ("rtcp-mux", Ben::List(vec![s("offer")])),
        ],
    );
    let text_out = String::from_utf8_lossy(&out).into_owned();
    let theirs = SessionDescription::parse(&out).unwrap_or_else(|e| panic!("{e}\n{text_out}"));
    assert_eq!(
        SessionDescription::parse(&theirs.to_bytes()).as_ref(),
        Ok(&theirs)
    );
    let a = theirs
        .first_audio()
        .unwrap_or_else(|| panic!("no audio in\n{text_out}"));
    assert_eq!(a.proto, Proto::RtpSavp, "{text_out}");
    assert_eq!(
        theirs.media_connection(0).and_then(Connection::ip),
        Some("127.0.0.1".parse().unwrap())
    );
    assert_ne!(a.port, 6000, "rtpengine anchors media on its own port");
    assert_eq!(a.formats, ["8", "101"]);
    let crypto: Vec<&Crypto> = a.crypto().collect();
    assert!(!crypto.is_empty(), "no a=crypto in\n{text_out}");
    let teams = crypto
        .iter()
        .find(|c| c.suite == AES_CM_128_HMAC_SHA1_80)
        .unwrap_or_else(|| panic!("{text_out}"));
    let km = teams.key_material().unwrap();
    assert_eq!((km.key.len(), km.salt.len()), (16, 14));
    for c in &crypto {
        if portcullis_sip::sdp::suite_key_salt_len(&c.suite).is_some() {
            c.key_material().unwrap_or_else(|e| panic!("{e}: {c}"));
        }
    }
    let (ufrag, pwd) = a
        .ice_credentials()
        .unwrap_or_else(|| panic!("no ICE credentials in\n{text_out}"));
    assert!(!ufrag.is_empty() && pwd.len() >= 22);
    let cands: Vec<_> = a.candidates().collect();
    assert!(!cands.is_empty(), "no candidates in\n{text_out}");
    assert!(cands
        .iter()
        .all(|c| c.ip() == Some("127.0.0.1".parse().unwrap())));
    assert!(a.has_rtcp_mux(), "{text_out}");
    assert_eq!(theirs.media_direction(0), Some(Direction::SendRecv));

    // 2. Our SBC rewrite of that SRTP+ICE offer (plain RTP, no ICE) is accepted by
    //    rtpengine as a new call, and its output has no crypto left.
    let mut rewritten = theirs.clone();
    rewritten.remove_ice();
    rewritten.bump_version();
    let m = rewritten.first_audio_mut().unwrap();
    m.remove_crypto();
    m.set_proto(Proto::RtpAvp);
    m.set_rtcp_mux(false);
    m.set_port(6010);
    let out2 = rtp.offer(
        "portcullis-sdp-2",
        &rewritten.to_bytes(),
        vec![
            ("ICE", s("remove")),
            ("transport-protocol", s("RTP/AVP")),
            ("SDES", Ben::List(vec![s("off")])),
            ("DTLS", s("off")),
        ],
    );
    let text2 = String::from_utf8_lossy(&out2).into_owned();
    let plain = SessionDescription::parse(&out2).unwrap_or_else(|e| panic!("{e}\n{text2}"));
    let a2 = plain.first_audio().unwrap();
    assert_eq!(a2.proto, Proto::RtpAvp, "{text2}");
    assert_eq!(a2.crypto().count(), 0, "{text2}");
    assert!(a2.candidates().next().is_none(), "{text2}");

    // 3. Our own SDES offer (built with the Teams helper) goes through rtpengine's
    //    SDES parser: rtpengine accepts the key and offers SRTP on its side.
    let mut srtp = SessionDescription::parse(PLAIN_OFFER.as_bytes()).unwrap();
    let m = srtp.first_audio_mut().unwrap();
    m.set_proto(Proto::RtpSavp);
    m.set_port(6020);
    m.add_crypto(Crypto::aes_cm_128_hmac_sha1_80(1, &[0x11; 16], &[0x22; 14]));
    let out3 = rtp.offer(
        "portcullis-sdp-3",
        &srtp.to_bytes(),
        vec![("transport-protocol", s("RTP/SAVP"))],
    );
    let text3 = String::from_utf8_lossy(&out3).into_owned();
    let back = SessionDescription::parse(&out3).unwrap_or_else(|e| panic!("{e}\n{text3}"));
    let a3 = back.first_audio().unwrap();
    assert_eq!(a3.proto, Proto::RtpSavp, "{text3}");
    assert!(
        a3.crypto()
            .any(|c| c.suite == AES_CM_128_HMAC_SHA1_80 && c.key_material().is_ok()),
        "{text3}"
    );
}

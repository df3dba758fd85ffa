//! The ng core with a recording media fake and virtual time: datagrams in, replies out.

use portcullis_engine::config::EndpointLearning;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use portcullis_engine::media::{
    LegMediaStats, MediaAllocation, MediaControl, MediaError, MediaId, MediaLegParams, MediaStats,
    SrtpSuite,
};
use portcullis_sip::sdp::{Proto, SessionDescription};

use super::bencode::{decode, Value};
use super::calls::{NgCalls, NgSettings, Now};
use super::counters::NgCounters;
use super::server::NgServer;

const IP: &str = "198.51.100.7";

#[derive(Debug, Default)]
struct Fake {
    next: u64,
    live: BTreeSet<MediaId>,
    last: BTreeMap<MediaId, (MediaLegParams, MediaLegParams)>,
    rx: BTreeMap<MediaId, u64>,
    released: u64,
    capacity: Option<usize>,
}

impl MediaControl for Fake {
    fn allocate(
        &mut self,
        _realms: [portcullis_engine::media::RealmId; 2],
    ) -> Result<MediaAllocation, MediaError> {
        if self.capacity.is_some_and(|c| self.live.len() >= c) {
            return Err(MediaError::NoCapacity);
        }
        self.next += 1;
        let id = MediaId(self.next);
        self.live.insert(id);
        let base = 30_000 + u16::try_from(self.next).unwrap() * 4;
        Ok(MediaAllocation {
            id,
            a_port: base,
            b_port: base + 2,
            a_ip: IP.parse().unwrap(),
            b_ip: IP.parse().unwrap(),
        })
    }
    fn update(
        &mut self,
        id: MediaId,
        a: &MediaLegParams,
        b: &MediaLegParams,
    ) -> Result<(), MediaError> {
        assert!(self.live.contains(&id), "update of {id:?} after release");
        self.last.insert(id, (a.clone(), b.clone()));
        Ok(())
    }
    fn release(&mut self, id: MediaId) {
        assert!(self.live.remove(&id), "double release of {id:?}");
        self.released += 1;
    }
    fn stats(&self, id: MediaId) -> Option<MediaStats> {
        let rx = *self.rx.get(&id)?;
        Some(MediaStats {
            a: LegMediaStats {
                rx_packets: rx,
                rx_bytes: rx * 172,
                ..LegMediaStats::default()
            },
            b: LegMediaStats::default(),
        })
    }
}

struct T {
    srv: NgServer<Fake>,
    now: Now,
    cookie: u64,
}

fn settings(max: usize) -> NgSettings {
    NgSettings {
        max_sessions: max,
        timeout: Duration::from_secs(60),
        silent_timeout: Duration::from_secs(3600),
        interfaces: vec!["pub".into(), "priv".into()],
        advertised_ip: IP.parse().unwrap(),
    }
}

impl T {
    fn new(max: usize) -> Self {
        let counters = Arc::new(NgCounters::default());
        let mut n = 0u8;
        let fill = Box::new(move |b: &mut [u8]| {
            for x in b.iter_mut() {
                n = n.wrapping_add(1);
                *x = n;
            }
        });
        let calls = NgCalls::new(Fake::default(), settings(max), fill, counters.clone());
        Self {
            srv: NgServer::new(calls, 4096, counters),
            now: Now {
                mono: Instant::now(),
                wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            },
            cookie: 0,
        }
    }

    fn fake(&mut self) -> &mut Fake {
        self.srv.calls_mut().media_mut()
    }

    /// Sends `dict` with a fresh cookie; the reply dictionary.
    fn send(&mut self, dict: &Value) -> Value {
        self.cookie += 1;
        let mut d = format!("c{} ", self.cookie).into_bytes();
        d.extend_from_slice(&dict.encode());
        self.raw(&d).expect("a reply")
    }

    fn raw(&mut self, d: &[u8]) -> Option<Value> {
        let r = self.srv.handle(self.now, d)?;
        let sp = r.iter().position(|&b| b == b' ').unwrap();
        assert_eq!(r[..sp], d[..sp], "the reply repeats the cookie");
        Some(decode(&r[sp + 1..]).unwrap())
    }

    fn advance(&mut self, d: Duration) {
        self.now.mono += d;
        self.now.wall += d;
    }

    fn stat(&self, command: &str, result: &str) -> u64 {
        let s = self.srv.counters().snapshot();
        s.commands
            .iter()
            .find(|(c, r, _)| *c == command && *r == result)
            .map_or(0, |x| x.2)
    }

    fn error_count(&self, reason: &str) -> u64 {
        let s = self.srv.counters().snapshot();
        s.errors
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |x| x.1)
    }
}

fn result(v: &Value) -> String {
    String::from_utf8_lossy(v.get("result").and_then(Value::as_bytes).unwrap_or(b"")).into()
}

fn reason(v: &Value) -> String {
    String::from_utf8_lossy(
        v.get("error-reason")
            .and_then(Value::as_bytes)
            .unwrap_or(b""),
    )
    .into()
}

fn sdp_of(v: &Value) -> SessionDescription {
    let b = v
        .get("sdp")
        .and_then(Value::as_bytes)
        .unwrap_or_else(|| panic!("{v:?}"));
    SessionDescription::parse(b).unwrap()
}

fn offer_sdp(port: u16, extra: &str) -> String {
    format!(
        "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtcp:{}\r\n{extra}",
        port + 1
    )
}

fn answer_sdp(port: u16, extra: &str) -> String {
    format!(
        "v=0\r\no=bob 7 7 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n{extra}"
    )
}

fn req(cmd: &str, call: &str, from: &str, to: Option<&str>, sdp: Option<&str>) -> Value {
    let mut v = Value::dict([
        ("command", Value::s(cmd)),
        ("call-id", Value::s(call)),
        ("from-tag", Value::s(from)),
    ]);
    if let Some(t) = to {
        v.insert("to-tag", Value::s(t));
    }
    if let Some(s) = sdp {
        v.insert("sdp", Value::s(s));
    }
    v
}

fn with(mut v: Value, key: &str, val: Value) -> Value {
    v.insert(key, val);
    v
}

fn list(items: &[&str]) -> Value {
    Value::List(items.iter().map(Value::s).collect())
}

#[test]
fn offer_and_answer_anchor_both_legs_on_one_pair() {
    let mut t = T::new(10);
    let o = with(
        req("offer", "c1", "ft", None, Some(&offer_sdp(40000, ""))),
        "replace",
        list(&["origin", "session-connection"]),
    );
    let r = t.send(&o);
    assert_eq!(result(&r), "ok", "{r:?}");
    let sdp = sdp_of(&r);
    // The callee is told our address and our port on leg B; no a=rtcp.
    assert_eq!(
        sdp.rtp_destination(0),
        Some(format!("{IP}:30006").parse().unwrap())
    );
    assert_eq!(sdp.origin.address.address, IP);
    assert!(sdp.media[0].rtcp().is_none());
    let a = t.send(&req(
        "answer",
        "c1",
        "ft",
        Some("tt"),
        Some(&answer_sdp(50000, "")),
    ));
    assert_eq!(result(&a), "ok", "{a:?}");
    let back = sdp_of(&a);
    assert_eq!(
        back.rtp_destination(0),
        Some(format!("{IP}:30004").parse().unwrap())
    );
    let (pa, pb) = t.fake().last.values().next().cloned().unwrap();
    assert_eq!(pa.peer_rtp, Some("192.0.2.10:40000".parse().unwrap()));
    assert_eq!(pb.peer_rtp, Some("203.0.113.5:50000".parse().unwrap()));
    assert!(
        pa.learning.endpoint_learning == EndpointLearning::Heuristic
            && pb.learning.endpoint_learning == EndpointLearning::Heuristic,
        "symmetric RTP by default"
    );
    assert_eq!(t.fake().live.len(), 1);
    assert_eq!(t.stat("offer", "ok"), 1);
    assert_eq!(t.stat("answer", "ok"), 1);
    // A re-INVITE from the callee (its tag now in from-tag) reuses the pair.
    let re = t.send(&req(
        "offer",
        "c1",
        "tt",
        Some("ft"),
        Some(&answer_sdp(50002, "")),
    ));
    assert_eq!(sdp_of(&re).media[0].port, 30004, "{re:?}");
    let ans = t.send(&req(
        "answer",
        "c1",
        "tt",
        Some("ft"),
        Some(&offer_sdp(40000, "")),
    ));
    assert_eq!(sdp_of(&ans).media[0].port, 30006);
    assert_eq!(t.fake().live.len(), 1);
    let (_, pb) = t.fake().last.values().next().cloned().unwrap();
    assert_eq!(pb.peer_rtp, Some("203.0.113.5:50002".parse().unwrap()));
    let d = t.send(&req("delete", "c1", "ft", None, None));
    assert_eq!(result(&d), "ok");
    assert!(d.get("totals").is_some());
    assert!(t.fake().live.is_empty());
    assert_eq!(t.srv.counters().snapshot().sessions, 0);
}

#[test]
fn without_replace_the_origin_and_session_connection_stay() {
    let mut t = T::new(10);
    let r = t.send(&req("offer", "c2", "ft", None, Some(&offer_sdp(40000, ""))));
    let sdp = sdp_of(&r);
    assert_eq!(sdp.origin.address.address, "192.0.2.10");
    assert_eq!(sdp.connection.as_ref().unwrap().address, "192.0.2.10");
    // The stream still points at us through its own c= line.
    assert_eq!(sdp.media[0].connection().unwrap().address, IP);
    assert_eq!(sdp.rtp_destination(0).unwrap().ip().to_string(), IP);
}

#[test]
fn plain_offer_bridged_to_sdes_and_back() {
    let mut t = T::new(10);
    let o = with(
        req("offer", "c3", "ft", None, Some(&offer_sdp(40000, ""))),
        "transport-protocol",
        Value::s("RTP/SAVP"),
    );
    let r = t.send(&o);
    let m = &sdp_of(&r).media[0];
    assert_eq!(m.proto, Proto::RtpSavp);
    let c: Vec<_> = m.crypto().collect();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].suite, "AES_CM_128_HMAC_SHA1_80");
    let ours = c[0].key_material().unwrap();
    // The callee answers SRTP with its own key (tag 1, as offered).
    let key = "inline:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CB";
    let ans = answer_sdp(
        50000,
        &format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 {key}\r\n"),
    )
    .replace("RTP/AVP", "RTP/SAVP");
    let a = t.send(&with(
        req("answer", "c3", "ft", Some("tt"), Some(&ans)),
        "transport-protocol",
        Value::s("RTP/AVP"),
    ));
    let back = &sdp_of(&a).media[0];
    assert_eq!(back.proto, Proto::RtpAvp, "{a:?}");
    assert_eq!(back.crypto().count(), 0);
    let (pa, pb) = t.fake().last.values().next().cloned().unwrap();
    assert!(
        pa.srtp_in.is_none() && pa.srtp_out.is_none(),
        "caller leg plain"
    );
    let out = pb.srtp_out.expect("callee leg protected with our key");
    assert_eq!(out.key.to_vec(), ours.key);
    assert_eq!(out.salt.to_vec(), ours.salt);
    assert!(
        pb.srtp_in.is_some(),
        "the callee's key unprotects what it sends"
    );
    // Keys come from the fill function (the OS CSPRNG in the appliance).
    assert_eq!(out.key[0], 1);
}

#[test]
fn sdes_offer_answered_with_the_offered_tag_and_suite() {
    let mut t = T::new(10);
    let key = "inline:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CB";
    let off = offer_sdp(
        40000,
        &format!("a=crypto:7 AES_CM_128_HMAC_SHA1_32 {key}\r\n"),
    )
    .replace("RTP/AVP", "RTP/SAVP");
    let r = t.send(&with(
        req("offer", "c4", "ft", None, Some(&off)),
        "transport-protocol",
        Value::s("RTP/AVP"),
    ));
    let m = &sdp_of(&r).media[0];
    assert_eq!(
        (m.proto.clone(), m.crypto().count()),
        (Proto::RtpAvp, 0),
        "{r:?}"
    );
    let a = t.send(&req(
        "answer",
        "c4",
        "ft",
        Some("tt"),
        Some(&answer_sdp(50000, "")),
    ));
    let back = &sdp_of(&a).media[0];
    assert_eq!(
        back.proto,
        Proto::RtpSavp,
        "the offerer gets the profile it offered"
    );
    let c: Vec<_> = back.crypto().collect();
    assert_eq!(
        (c[0].tag, c[0].suite.as_str()),
        (7, "AES_CM_128_HMAC_SHA1_32")
    );
    let (pa, _) = t.fake().last.values().next().cloned().unwrap();
    assert_eq!(pa.srtp_in.unwrap().suite, SrtpSuite::Aes128Sha1_32);
    assert_eq!(pa.srtp_out.unwrap().suite, SrtpSuite::Aes128Sha1_32);
}

#[test]
fn what_is_not_implemented_is_refused_by_name_and_allocates_nothing() {
    let mut t = T::new(10);
    let bad = with(
        req("offer", "c5", "ft", None, Some(&offer_sdp(40000, ""))),
        "flags",
        list(&["trust-address", "strict-source"]),
    );
    let r = t.send(&bad);
    assert_eq!(result(&r), "error");
    assert!(reason(&r).contains("strict-source"), "{r:?}");
    // ICE in the SDP without ICE=remove, DTLS-SRTP, a non-RTP stream.
    for (sdp, what) in [
        (
            offer_sdp(
                40000,
                "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n",
            ),
            "ICE",
        ),
        (
            offer_sdp(40000, "").replace("RTP/AVP", "UDP/TLS/RTP/SAVPF"),
            "DTLS",
        ),
        (
            offer_sdp(40000, "").replace("RTP/AVP 0 101", "udptl t38"),
            "udptl",
        ),
        (
            offer_sdp(40000, "").replace("RTP/AVP", "RTP/SAVP"),
            "SDES key",
        ),
    ] {
        let r = t.send(&req("offer", "c5", "ft", None, Some(&sdp)));
        assert_eq!(result(&r), "error", "{what}");
        assert!(reason(&r).contains(what), "{what}: {r:?}");
    }
    let r = t.send(&with(
        req("offer", "c5", "ft", None, Some(&offer_sdp(40000, ""))),
        "direction",
        list(&["pub", "dmz"]),
    ));
    assert!(reason(&r).contains("dmz"), "{r:?}");
    assert_eq!(t.fake().next, 0, "nothing allocated");
    assert_eq!(t.srv.calls().len(), 0);
    assert_eq!(t.error_count("unsupported"), 6);
    // With ICE=remove the ICE attributes go and the call is anchored.
    let r = t.send(&with(
        with(
            req("offer", "c5", "ft", None, Some(&offer_sdp(40000, "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\na=candidate:1 1 UDP 2130706431 192.0.2.10 40000 typ host\r\n"))),
            "ICE",
            Value::s("remove"),
        ),
        "direction",
        list(&["pub", "priv"]),
    ));
    assert_eq!(result(&r), "ok", "{r:?}");
    let out = String::from_utf8(r.get("sdp").unwrap().as_bytes().unwrap().to_vec()).unwrap();
    assert!(!out.contains("ice-") && !out.contains("candidate"), "{out}");
}

#[test]
fn asymmetric_and_media_address_shape_the_leg() {
    let mut t = T::new(10);
    let o = with(
        with(
            req("offer", "c6", "ft", None, Some(&offer_sdp(40000, ""))),
            "flags",
            list(&["asymmetric", "SIP-source-address"]),
        ),
        "received-from",
        list(&["IP4", "192.0.2.99"]),
    );
    assert_eq!(result(&t.send(&o)), "ok");
    let (pa, pb) = t.fake().last.values().next().cloned().unwrap();
    assert_eq!(
        pa.learning.endpoint_learning,
        EndpointLearning::Off,
        "asymmetric: the sender's leg does not learn"
    );
    assert_eq!(pb.learning.endpoint_learning, EndpointLearning::Heuristic);
    assert_eq!(pa.peer_rtp, Some("192.0.2.99:40000".parse().unwrap()));
}

#[test]
fn retransmissions_are_answered_from_the_cache() {
    let mut t = T::new(10);
    let mut d = b"rt-1 ".to_vec();
    d.extend(req("offer", "c7", "ft", None, Some(&offer_sdp(40000, ""))).encode());
    let first = t.srv.handle(t.now, &d).unwrap();
    let again = t.srv.handle(t.now, &d).unwrap();
    assert_eq!(first, again);
    assert_eq!(t.fake().next, 1, "run once");
    assert_eq!(t.srv.counters().snapshot().retransmissions, 1);
    t.advance(Duration::from_secs(31));
    let later = t.srv.handle(t.now, &d).unwrap();
    assert_eq!(
        t.stat("offer", "ok"),
        2,
        "expired from the cache, run again"
    );
    assert_eq!(sdp_of(&decode(&later[5..]).unwrap()).media[0].port, 30006);
}

#[test]
fn limits_are_enforced_and_answered() {
    let mut t = T::new(2);
    for c in ["a", "b"] {
        let r = t.send(&req("offer", c, "ft", None, Some(&offer_sdp(40000, ""))));
        assert_eq!(result(&r), "ok");
    }
    let r = t.send(&req("offer", "c", "ft", None, Some(&offer_sdp(40000, ""))));
    assert_eq!(result(&r), "error");
    assert!(reason(&r).contains("max_sessions"), "{r:?}");
    let r = t.send(&with(
        req("offer", "c", "ft", None, Some(&offer_sdp(40000, ""))),
        "supports",
        list(&["load limit"]),
    ));
    assert_eq!(result(&r), "load limit", "{r:?}");
    assert_eq!(t.stat("offer", "load_limit"), 1);
    assert_eq!(t.error_count("capacity"), 2);
    // A re-offer of a live call is not a new session.
    assert_eq!(
        result(&t.send(&req("offer", "a", "ft", None, Some(&offer_sdp(40002, ""))))),
        "ok"
    );
    // Out of media ports: refused, nothing left behind.
    let mut t = T::new(10);
    t.fake().capacity = Some(0);
    let r = t.send(&req("offer", "x", "ft", None, Some(&offer_sdp(40000, ""))));
    assert!(reason(&r).contains("media ports"), "{r:?}");
    assert_eq!(t.srv.calls().len(), 0);
}

#[test]
fn bad_datagrams_are_answered_or_counted() {
    let mut t = T::new(10);
    // No cookie: nothing to answer to.
    assert!(t.raw(b"d7:command4:pinge").is_none());
    assert_eq!(t.error_count("malformed"), 1);
    let r = t.raw(b"k1 not-bencode").unwrap();
    assert_eq!(result(&r), "error");
    let r = t.raw(b"k2 d7:command4:pinge").unwrap();
    assert_eq!(result(&r), "pong");
    let mut big = b"k3 d3:sdp5000:".to_vec();
    big.extend(vec![b'x'; 5000]);
    big.extend(b"7:command5:offere");
    let r = t.raw(&big).unwrap();
    assert!(reason(&r).contains("max_message_size"), "{r:?}");
    assert_eq!(t.error_count("oversized"), 1);
    let r = t
        .raw(b"k4 d7:command6:answer7:call-id1:x8:from-tag1:f6:to-tag1:t3:sdp3:v=0e")
        .unwrap();
    assert_eq!(result(&r), "error");
    assert_eq!(
        t.error_count("sdp") + t.error_count("unknown_call"),
        1,
        "{r:?}"
    );
    let r = t.raw(b"k5 d7:command5:offer7:call-id1:xe").unwrap();
    assert!(reason(&r).contains("from-tag"), "{r:?}");
    assert_eq!(t.stat("other", "error"), 2, "not bencode and oversized");
}

#[test]
fn idle_calls_time_out_media_keeps_them() {
    let mut t = T::new(10);
    for c in ["idle", "busy", "held"] {
        let mut sdp = offer_sdp(40000, "");
        if c == "held" {
            sdp.push_str("a=sendonly\r\n");
        }
        assert_eq!(
            result(&t.send(&req("offer", c, "ft", None, Some(&sdp)))),
            "ok"
        );
    }
    let busy = MediaId(2);
    for _ in 0..7 {
        t.advance(Duration::from_secs(10));
        *t.fake().rx.entry(busy).or_default() += 500;
        t.srv.poll(t.now);
    }
    let left: Vec<String> = {
        let q = t.send(&Value::dict([("command", Value::s("list"))]));
        match q.get("calls") {
            Some(Value::List(l)) => l
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes().unwrap()).into_owned())
                .collect(),
            _ => panic!("{q:?}"),
        }
    };
    assert_eq!(left, ["busy", "held"]);
    assert_eq!(t.srv.counters().snapshot().timeouts, 1);
    assert_eq!(t.fake().released, 1);
    let q = t.send(&req("query", "busy", "ft", None, None));
    let tags = q.get("tags").unwrap();
    let ft = tags.get("ft").unwrap();
    assert!(
        matches!(ft.get("medias"), Some(Value::List(m)) if m.len() == 1),
        "{q:?}"
    );
    // Unknown call: query is an error, delete a warning unless fatal.
    assert_eq!(
        result(&t.send(&req("query", "nope", "ft", None, None))),
        "error"
    );
    let d = t.send(&req("delete", "nope", "ft", None, None));
    assert_eq!(result(&d), "ok");
    assert!(d.get("warning").is_some());
    let d = t.send(&with(
        req("delete", "nope", "ft", None, None),
        "flags",
        list(&["fatal"]),
    ));
    assert_eq!(result(&d), "error");
}

#[test]
fn a_busy_table_is_swept_often_enough_for_its_timeout() {
    // 2,000 calls with a 4 s timeout: each poll visits 1,000 of them, so a call with
    // media is seen at least every 2 s and never taken for idle.
    let counters = Arc::new(NgCounters::default());
    let mut s = settings(5000);
    s.timeout = Duration::from_secs(4);
    let calls = NgCalls::new(
        Fake::default(),
        s,
        Box::new(|b: &mut [u8]| b.fill(7)),
        counters.clone(),
    );
    let mut t = T {
        srv: NgServer::new(calls, 4096, counters),
        now: Now::system(),
        cookie: 0,
    };
    for i in 0..2000 {
        let r = t.send(&req(
            "offer",
            &format!("c{i:04}"),
            "ft",
            None,
            Some(&offer_sdp(40000, "")),
        ));
        assert_eq!(result(&r), "ok");
    }
    for _ in 0..12 {
        t.advance(Duration::from_secs(1));
        let ids: Vec<MediaId> = t.fake().live.iter().copied().collect();
        for id in ids {
            *t.fake().rx.entry(id).or_default() += 50;
        }
        assert_eq!(t.srv.poll(t.now), 0);
    }
    assert_eq!(t.srv.calls().len(), 2000);
    // Media stops: every call is gone within the timeout plus one sweep.
    for _ in 0..7 {
        t.advance(Duration::from_secs(1));
        t.srv.poll(t.now);
    }
    assert_eq!(t.srv.calls().len(), 0);
    assert_eq!(t.srv.counters().snapshot().timeouts, 2000);
}

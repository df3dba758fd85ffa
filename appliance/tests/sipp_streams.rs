//! Interop: every media stream of a call is anchored through the appliance, end to
//! end. sipp carries the signalling; the test plays both parties' media (RTP, UDPTL)
//! on its own sockets, which the scenarios name in their SDP.
//!
//! - Fax: an audio call re-INVITEd to T.38 (`m=image udptl t38`) and a call offering
//!   T.38 from the start; each time the image line reaches the other side on an
//!   appliance port with its T.38 attributes, and UDPTL datagrams cross both ways
//!   unchanged.
//! - Audio and video: each offered line gets its own appliance port, a line the
//!   answerer rejects comes back with port 0, a line offered with port 0 stays 0, and
//!   audio and video each reach the right socket.

mod media_peer;
mod sipp_harness;

use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

use media_peer::*;
use sipp_harness::*;

/// The T.38 attributes both fax scenarios send.
const T38_ATTRIBUTES: [&str; 6] = [
    "a=T38FaxVersion:0",
    "a=T38MaxBitRate:14400",
    "a=T38FaxRateManagement:transferredTCF",
    "a=T38FaxMaxBuffer:262",
    "a=T38FaxMaxDatagram:176",
    "a=T38FaxUdpEC:t38UDPRedundancy",
];

/// Asserts that `port` is one of the appliance's media ports (even: RTP or UDPTL).
#[track_caller]
fn assert_anchored(p: Ports, port: u16, what: &str) {
    assert!(
        (p.media_min..=p.media_min + 255).contains(&port) && port.is_multiple_of(2),
        "{what}: port {port} is not an appliance media port ({}..)",
        p.media_min
    );
}

/// Sends `n` datagrams each way, 20 ms apart: `mk(true, i)` from `a` to the appliance
/// port `a_port` (the caller's leg), `mk(false, i)` from `b` to `b_port`. Returns what
/// `b` and `a` received (waiting up to 5 s for the last ones).
fn exchange(
    (a, a_port): (&UdpSocket, u16),
    (b, b_port): (&UdpSocket, u16),
    n: u16,
    mk: impl Fn(bool, u16) -> Vec<u8>,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (mut at_b, mut at_a) = (Vec::new(), Vec::new());
    for i in 0..n {
        a.send_to(&mk(true, i), local(a_port)).expect("send");
        b.send_to(&mk(false, i), local(b_port)).expect("send");
        std::thread::sleep(Duration::from_millis(20));
        at_b.extend(drain(b));
        at_a.extend(drain(a));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while (at_b.len() < usize::from(n) || at_a.len() < usize::from(n)) && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
        at_b.extend(drain(b));
        at_a.extend(drain(a));
    }
    (at_b, at_a)
}

/// A UDPTL datagram (T.38 §9.1): the sequence number, then a primary IFP packet
/// (opaque to the relay) naming its sender and number.
fn udptl(from_caller: bool, seq: u16) -> Vec<u8> {
    let mut d = seq.to_be_bytes().to_vec();
    let ifp = format!(
        "{} t.38 page {seq}",
        if from_caller { "caller" } else { "callee" }
    );
    d.push(u8::try_from(ifp.len()).expect("short IFP"));
    d.extend_from_slice(ifp.as_bytes());
    // Error recovery: no secondary IFP packets.
    d.extend_from_slice(&[0, 0]);
    d
}

/// UDPTL datagrams cross both ways between the fax sockets through the image ports,
/// unchanged and in order.
#[track_caller]
fn assert_udptl_relayed(fax: (&UdpSocket, &UdpSocket), (a_port, b_port): (u16, u16)) {
    // Audio the other side sent while the switch to T.38 was under way may reach the
    // new port (RFC 3264 §8.3.1: the offerer listens on its new port from its offer
    // on); what counts is the fax from here.
    std::thread::sleep(Duration::from_millis(200));
    let stray = (drain(fax.0).len(), drain(fax.1).len());
    if stray != (0, 0) {
        note(&format!(
            "before the fax: {stray:?} datagrams of the audio phase"
        ));
    }
    let (at_b, at_a) = exchange((fax.0, a_port), (fax.1, b_port), 25, udptl);
    let sent = |caller| (0..25).map(|i| udptl(caller, i)).collect::<Vec<_>>();
    assert_eq!(at_b, sent(true), "caller's UDPTL at the callee");
    assert_eq!(at_a, sent(false), "callee's UDPTL at the caller");
}

/// Asserts that `m` (a relayed INVITE or 200) has a single T.38 line on an appliance
/// port with the T.38 attributes, and returns that port.
#[track_caller]
fn image_line(p: Ports, m: &Traced, peer_port: u16) -> u16 {
    let lines = m.m_lines();
    assert_eq!(lines.len(), 1, "{}", m.text);
    let (media, port, rest) = &lines[0];
    assert_eq!(
        (media.as_str(), rest.as_str()),
        ("image", "udptl t38"),
        "{}",
        m.text
    );
    assert_anchored(p, *port, &m.text);
    assert_ne!(*port, peer_port, "the peer's UDPTL port leaked: {}", m.text);
    assert_eq!(m.connection().as_deref(), Some("127.0.0.1"), "{}", m.text);
    for a in T38_ATTRIBUTES {
        assert!(m.body().lines().any(|l| l == a), "{a} lost: {}", m.text);
    }
    *port
}

/// An audio call, then the caller re-INVITEs to T.38: audio flows first; the re-INVITE
/// reaches the callee with the image line anchored, the callee's m=image answer reaches
/// the caller anchored, UDPTL crosses both ways, and BYE ends the call.
fn audio_then_t38_reinvite(p: Ports, dir: &Path) {
    let (rtp_a, rtp_b, fax_a, fax_b) = (udp_socket(), udp_socket(), udp_socket(), udp_socket());
    let keys = |rtp: &UdpSocket, fax: &UdpSocket| {
        [("rtp_port", port_of(rtp)), ("udptl_port", port_of(fax))]
    };
    let sf = scenario(dir, "uas_fax_reinvite.xml");
    let mut uas = scenario_uas(dir, p, &sf, &keys(&rtp_b, &fax_b));
    let sf = scenario(dir, "uac_fax_reinvite.xml");
    let mut uac = scenario_uac(dir, p, &sf, &keys(&rtp_a, &fax_a));
    let offer = wait_traced(
        dir,
        "uas_fax_reinvite",
        0,
        "INVITE",
        request("INVITE", false),
    );
    let answer = wait_traced(
        dir,
        "uac_fax_reinvite",
        0,
        "200",
        ok_with_sdp("INVITE", false),
    );
    let (b_audio, a_audio) = (offer.m_lines()[0].1, answer.m_lines()[0].1);
    assert_anchored(p, b_audio, &offer.text);
    assert_anchored(p, a_audio, &answer.text);

    // Audio both ways until the re-INVITE reaches the callee.
    let heard = audio_until((&rtp_a, a_audio), (&rtp_b, b_audio), || {
        traced_count(dir, "uas_fax_reinvite", 2, request("INVITE", false))
    });
    assert!(
        heard.iter().all(|h| *h >= 5),
        "audio both ways first: {heard:?}"
    );

    let reoffer = wait_traced(
        dir,
        "uas_fax_reinvite",
        1,
        "re-INVITE",
        request("INVITE", false),
    );
    let reanswer = wait_traced(
        dir,
        "uac_fax_reinvite",
        1,
        "200 (re-INVITE)",
        ok_with_sdp("INVITE", false),
    );
    let b_image = image_line(p, &reoffer, port_of(&fax_a));
    let a_image = image_line(p, &reanswer, port_of(&fax_b));
    assert_udptl_relayed((&fax_a, &fax_b), (a_image, b_image));
    uac.wait_ok(
        Duration::from_secs(30),
        "sipp uac (re-INVITE to T.38) failed",
    );
    uas.wait_ok(Duration::from_secs(30), "sipp uas (T.38 answer) failed");
}

/// RTP both ways between the audio sockets (caller's `rtp_a` toward `a_port`, callee's
/// `rtp_b` toward `b_port`) every 20 ms until `until` holds (20 s at most); returns how
/// many packets each side heard.
fn audio_until(
    (rtp_a, a_port): (&UdpSocket, u16),
    (rtp_b, b_port): (&UdpSocket, u16),
    until: impl Fn() -> bool,
) -> [usize; 2] {
    let (mut heard, mut seq) = ([0usize; 2], 0u16);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !until() {
        assert!(
            Instant::now() < deadline,
            "audio: the awaited step never came"
        );
        seq = seq.wrapping_add(1);
        let ts = u32::from(seq) * 160;
        rtp_a
            .send_to(&rtp(8, false, seq, ts, 0xa, &[0xd5; 160]), local(a_port))
            .expect("send");
        rtp_b
            .send_to(&rtp(8, false, seq, ts, 0xb, &[0xd5; 160]), local(b_port))
            .expect("send");
        std::thread::sleep(Duration::from_millis(20));
        heard[0] += drain(rtp_a).len();
        heard[1] += drain(rtp_b).len();
    }
    heard
}

/// Whether `scen`'s trace holds at least `n` messages that `pick` selects.
fn traced_count(dir: &Path, scen: &str, n: usize, pick: impl Fn(&Traced) -> bool) -> bool {
    trace(dir, scen).iter().filter(|m| pick(m)).count() >= n
}

/// The callee switches an audio call to T.38 (re-INVITE with the audio line disabled
/// and an image line added), then back to audio (image line rejected): each re-offer
/// and answer crosses with the live line anchored and the disabled one at port 0; audio
/// flows, then UDPTL, then audio again; the caller hangs up.
fn t38_switched_by_the_callee_and_back(p: Ports, dir: &Path) {
    let (rtp_a, rtp_b, fax_a, fax_b) = (udp_socket(), udp_socket(), udp_socket(), udp_socket());
    let keys = |rtp: &UdpSocket, fax: &UdpSocket| {
        [("rtp_port", port_of(rtp)), ("udptl_port", port_of(fax))]
    };
    let sf = scenario(dir, "uas_fax_switch.xml");
    let mut uas = scenario_uas(dir, p, &sf, &keys(&rtp_b, &fax_b));
    let sf = scenario(dir, "uac_fax_switched.xml");
    let mut uac = scenario_uac(dir, p, &sf, &keys(&rtp_a, &fax_a));
    let (uac_s, uas_s) = ("uac_fax_switched", "uas_fax_switch");
    let offer = wait_traced(dir, uas_s, 0, "INVITE", request("INVITE", false));
    let answer = wait_traced(dir, uac_s, 0, "200", ok_with_sdp("INVITE", false));
    let (b_audio, a_audio) = (offer.m_lines()[0].1, answer.m_lines()[0].1);
    let heard = audio_until((&rtp_a, a_audio), (&rtp_b, b_audio), || {
        traced_count(dir, uac_s, 1, request("INVITE", false))
    });
    assert!(
        heard.iter().all(|h| *h >= 5),
        "audio both ways first: {heard:?}"
    );

    // To T.38: the re-offer reaches the caller, the answer the callee.
    let reoffer = wait_traced(dir, uac_s, 0, "re-INVITE to T.38", request("INVITE", false));
    let reanswer = wait_traced(dir, uas_s, 0, "200 (T.38)", ok_with_sdp("INVITE", false));
    for (m, peer_fax) in [(&reoffer, &fax_b), (&reanswer, &fax_a)] {
        let lines = m.m_lines();
        assert_eq!(lines.len(), 2, "{}", m.text);
        assert_eq!(
            (lines[0].0.as_str(), lines[0].1),
            ("audio", 0),
            "{}",
            m.text
        );
        assert_eq!(lines[1].0, "image", "{}", m.text);
        assert_anchored(p, lines[1].1, &m.text);
        assert_ne!(lines[1].1, port_of(peer_fax), "{}", m.text);
    }
    let (a_image, b_image) = (reoffer.m_lines()[1].1, reanswer.m_lines()[1].1);
    assert_udptl_relayed((&fax_a, &fax_b), (a_image, b_image));

    // Back to audio: the image line rejected, audio anchored and flowing again.
    let back = wait_traced(
        dir,
        uac_s,
        1,
        "re-INVITE to audio",
        request("INVITE", false),
    );
    let back_answer = wait_traced(dir, uas_s, 1, "200 (audio)", ok_with_sdp("INVITE", false));
    for (m, peer_rtp) in [(&back, &rtp_b), (&back_answer, &rtp_a)] {
        let lines = m.m_lines();
        assert_eq!(lines.len(), 2, "{}", m.text);
        assert_eq!(lines[0].0, "audio", "{}", m.text);
        assert_anchored(p, lines[0].1, &m.text);
        assert_ne!(lines[0].1, port_of(peer_rtp), "{}", m.text);
        assert_eq!(
            (lines[1].0.as_str(), lines[1].1),
            ("image", 0),
            "{}",
            m.text
        );
    }
    let (a_audio, b_audio) = (back.m_lines()[0].1, back_answer.m_lines()[0].1);
    let t0 = Instant::now();
    let heard = audio_until((&rtp_a, a_audio), (&rtp_b, b_audio), || {
        t0.elapsed() > Duration::from_secs(1)
    });
    assert!(
        heard.iter().all(|h| *h >= 5),
        "audio both ways again: {heard:?}"
    );
    uac.wait_ok(
        Duration::from_secs(30),
        "sipp uac (switched to T.38 and back) failed",
    );
    uas.wait_ok(Duration::from_secs(30), "sipp uas (T.38 and back) failed");
}

/// A call offering T.38 from the start: anchored both ways, UDPTL crosses both ways.
fn t38_from_the_start(p: Ports, dir: &Path) {
    let (fax_a, fax_b) = (udp_socket(), udp_socket());
    let sf = scenario(dir, "uas_fax_t38.xml");
    let mut uas = scenario_uas(dir, p, &sf, &[("udptl_port", port_of(&fax_b))]);
    let sf = scenario(dir, "uac_fax_t38.xml");
    let mut uac = scenario_uac(dir, p, &sf, &[("udptl_port", port_of(&fax_a))]);
    let offer = wait_traced(dir, "uas_fax_t38", 0, "INVITE", request("INVITE", false));
    let answer = wait_traced(dir, "uac_fax_t38", 0, "200", ok_with_sdp("INVITE", false));
    let b_image = image_line(p, &offer, port_of(&fax_a));
    let a_image = image_line(p, &answer, port_of(&fax_b));
    assert_udptl_relayed((&fax_a, &fax_b), (a_image, b_image));
    uac.wait_ok(Duration::from_secs(30), "sipp uac (T.38 offer) failed");
    uas.wait_ok(Duration::from_secs(30), "sipp uas (T.38 answer) failed");
}

/// Audio, H.264 video, VP8 video (rejected by the callee) and a disabled audio line.
fn audio_and_video(p: Ports, dir: &Path) {
    let socks: Vec<UdpSocket> = (0..5).map(|_| udp_socket()).collect();
    let (a_audio, a_video, a_video2, b_audio, b_video) =
        (&socks[0], &socks[1], &socks[2], &socks[3], &socks[4]);
    let sf = scenario(dir, "uas_audio_video.xml");
    let mut uas = scenario_uas(
        dir,
        p,
        &sf,
        &[
            ("rtp_port", port_of(b_audio)),
            ("video_port", port_of(b_video)),
        ],
    );
    let sf = scenario(dir, "uac_audio_video.xml");
    let mut uac = scenario_uac(
        dir,
        p,
        &sf,
        &[
            ("rtp_port", port_of(a_audio)),
            ("video_port", port_of(a_video)),
            ("video2_port", port_of(a_video2)),
        ],
    );
    let offer = wait_traced(
        dir,
        "uas_audio_video",
        0,
        "INVITE",
        request("INVITE", false),
    );
    let answer = wait_traced(
        dir,
        "uac_audio_video",
        0,
        "200",
        ok_with_sdp("INVITE", false),
    );
    let kinds = |m: &Traced| m.m_lines().into_iter().map(|l| l.0).collect::<Vec<_>>();
    assert_eq!(
        kinds(&offer),
        ["audio", "video", "video", "audio"],
        "{}",
        offer.text
    );
    assert_eq!(
        kinds(&answer),
        ["audio", "video", "video", "audio"],
        "{}",
        answer.text
    );
    let (o, a) = (offer.m_lines(), answer.m_lines());
    // The offer toward the callee: three lines on three appliance ports of their own,
    // none of them the caller's; the disabled line stays at port 0.
    for (l, peer) in o[..3].iter().zip(&socks[..3]) {
        assert_anchored(p, l.1, &offer.text);
        assert_ne!(l.1, port_of(peer), "{}", offer.text);
    }
    assert!(
        o[0].1 != o[1].1 && o[1].1 != o[2].1 && o[0].1 != o[2].1,
        "{}",
        offer.text
    );
    assert_eq!(o[3].1, 0, "a disabled line stays disabled: {}", offer.text);
    // The answer toward the caller: audio and video anchored on ports of their own, the
    // rejected VP8 line and the disabled line at port 0.
    for l in &a[..2] {
        assert_anchored(p, l.1, &answer.text);
    }
    assert_ne!(a[0].1, a[1].1, "{}", answer.text);
    assert_eq!((a[2].1, a[3].1), (0, 0), "rejected lines: {}", answer.text);

    let packet = |pt: u8, tag: &str, step: u32| {
        let tag = tag.to_owned();
        move |caller: bool, i: u16| {
            let who = if caller { "caller" } else { "callee" };
            let ssrc = if caller { 0xa0 } else { 0xb0 } + u32::from(pt);
            rtp(
                pt,
                false,
                i,
                u32::from(i) * step,
                ssrc,
                format!("{who} {tag} {i}").as_bytes(),
            )
        }
    };
    let audio = packet(0, "audio", 160);
    let video = packet(96, "video", 3000);
    // Audio and video interleaved, both ways.
    let mut got = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for i in 0..25u16 {
        a_audio
            .send_to(&audio(true, i), local(a[0].1))
            .expect("send");
        a_video
            .send_to(&video(true, i), local(a[1].1))
            .expect("send");
        b_audio
            .send_to(&audio(false, i), local(o[0].1))
            .expect("send");
        b_video
            .send_to(&video(false, i), local(o[1].1))
            .expect("send");
        std::thread::sleep(Duration::from_millis(20));
        for (g, s) in got.iter_mut().zip([a_audio, a_video, b_audio, b_video]) {
            g.extend(drain(s));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.iter().any(|g| g.len() < 25) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        for (g, s) in got.iter_mut().zip([a_audio, a_video, b_audio, b_video]) {
            g.extend(drain(s));
        }
    }
    let expect = |f: &dyn Fn(bool, u16) -> Vec<u8>, caller| {
        (0..25).map(|i| f(caller, i)).collect::<Vec<_>>()
    };
    assert_eq!(
        got[0],
        expect(&audio, false),
        "callee's audio at the caller's audio socket"
    );
    assert_eq!(
        got[1],
        expect(&video, false),
        "callee's video at the caller's video socket"
    );
    assert_eq!(
        got[2],
        expect(&audio, true),
        "caller's audio at the callee's audio socket"
    );
    assert_eq!(
        got[3],
        expect(&video, true),
        "caller's video at the callee's video socket"
    );
    assert!(drain(a_video2).is_empty(), "nothing on the rejected line");
    uac.wait_ok(Duration::from_secs(30), "sipp uac (audio and video) failed");
    uas.wait_ok(Duration::from_secs(30), "sipp uas (audio and video) failed");
}

/// One call of the test, placed and checked.
type Call = fn(Ports, &Path);

/// Four calls through one appliance: audio re-INVITEd to T.38 by the caller, audio
/// switched to T.38 and back by the callee, T.38 from the start, audio with video; each ends with a BYE and a `normal_clearing` CDR.
#[test]
fn fax_and_video_streams_are_anchored_and_relayed() {
    let _serial = serial();
    let p = Ports::for_test_range2(4);
    let app = Appliance::start(&config(p, ROUTE_LEFT_RIGHT));
    let dir = app.dir.path().to_path_buf();
    let calls: [(&str, Call); 4] = [
        ("audio re-INVITEd to T.38", audio_then_t38_reinvite),
        (
            "T.38 and back, switched by the callee",
            t38_switched_by_the_callee_and_back,
        ),
        ("T.38 from the start", t38_from_the_start),
        ("audio and video", audio_and_video),
    ];
    for (n, (what, call)) in calls.into_iter().enumerate() {
        note(&format!("call {}: {what}", n + 1));
        call(p, &dir);
        let cdrs = app.wait_cdrs(n + 1, Duration::from_secs(10));
        assert_eq!(cdrs.len(), n + 1, "{what}: no CDR");
        assert_eq!(end_kind(&cdrs[n]), "normal_clearing", "{what}: {}", cdrs[n]);
    }
}

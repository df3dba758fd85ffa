//! Interop: DTMF interworking through the appliance (`trunk.dtmf`), end to end. sipp
//! carries the signalling; the test plays both parties' media on its own sockets.
//!
//! - SIP INFO from the caller (`application/dtmf-relay` and `application/dtmf`) toward
//!   an `rfc4733` trunk is answered `200` by the appliance and reaches the callee as
//!   RFC 4733 events in the caller's stream: right event, marker on the first packet,
//!   growing durations, three end packets with the INFO's duration in timestamp units.
//! - RFC 4733 events from the caller toward an `info` trunk are detected in the data
//!   plane, not relayed, and reach the callee as INFO `application/dtmf-relay` with the
//!   digit and its duration in milliseconds.
//! - Between two `rfc4733` trunks the event packets cross untouched.
//! - A caller on an `rfc4733` trunk keeps telephone-event in its answer when the callee
//!   answered without it, and the callee's INFO digits reach it as events.

mod media_peer;
mod sipp_harness;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use media_peer::*;
use sipp_harness::*;

/// The caller's SSRC and the callee's.
const CALLER_SSRC: u32 = 0xca11_0001;
const CALLEE_SSRC: u32 = 0xb0b0_0002;
/// The payload type both parties use for `telephone-event`.
const TE_PT: u8 = 101;
/// Timestamp units per 20 ms packet at 8 kHz.
const STEP: u32 = 160;
/// The same, as an event duration.
const EVENT_STEP: u16 = 160;

/// `toml` with `line` added to the trunk whose address is `127.0.0.1:port`.
fn trunk_key(toml: &str, port: u16, line: &str) -> String {
    let addr = format!("address = \"127.0.0.1:{port}\"\n");
    assert!(toml.contains(&addr), "{toml}");
    toml.replacen(&addr, &format!("{addr}{line}\n"), 1)
}

/// The sum of the samples of the metric lines starting with `prefix`.
fn metric(p: Ports, prefix: &str) -> u64 {
    let url = format!("http://127.0.0.1:{}/metrics", p.admin);
    let resp = ureq::get(&url)
        .call()
        .unwrap_or_else(|e| panic!("metrics: {e}"));
    let text = resp
        .into_string()
        .unwrap_or_else(|e| panic!("metrics: {e}"));
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// What one party sends, one packet per 20 ms: G.711 audio, with the event packets of
/// `events` (RFC 4733 §2.5) in its place when their turn comes.
struct Sender {
    ssrc: u32,
    seq: u16,
    ts: u32,
    /// `(send after this many audio packets, event, duration in timestamp units)`.
    events: Vec<(u32, u8, u16)>,
    audio_sent: u32,
    queued: std::collections::VecDeque<Vec<u8>>,
    /// Every event packet sent.
    sent_events: Vec<Vec<u8>>,
}

impl Sender {
    fn new(ssrc: u32, events: Vec<(u32, u8, u16)>) -> Self {
        Self {
            ssrc,
            seq: 1000,
            ts: 80_000,
            events,
            audio_sent: 0,
            queued: Default::default(),
            sent_events: Vec::new(),
        }
    }

    /// The next packet.
    fn next(&mut self) -> Vec<u8> {
        if self.queued.is_empty() {
            if let Some(i) = self.events.iter().position(|e| e.0 == self.audio_sent) {
                let (_, event, duration) = self.events.remove(i);
                self.queue_event(event, duration);
            }
        }
        self.seq = self.seq.wrapping_add(1);
        if let Some(mut p) = self.queued.pop_front() {
            p[2..4].copy_from_slice(&self.seq.to_be_bytes());
            self.sent_events.push(p.clone());
            return p;
        }
        self.ts = self.ts.wrapping_add(STEP);
        self.audio_sent += 1;
        rtp(0, false, self.seq, self.ts, self.ssrc, &[0xff; 160])
    }

    /// An event of `duration` units starting at the next timestamp: one packet per
    /// 20 ms with the duration so far (the first with the marker bit), then the end
    /// packet three times (RFC 4733 §2.5.1.4).
    fn queue_event(&mut self, event: u8, duration: u16) {
        let start = self.ts.wrapping_add(STEP);
        let mut first = true;
        for d in (EVENT_STEP..duration).step_by(usize::from(EVENT_STEP)) {
            let pl = event_payload(event, false, d);
            self.queued
                .push_back(rtp(TE_PT, first, 0, start, self.ssrc, &pl));
            first = false;
        }
        for _ in 0..3 {
            let pl = event_payload(event, true, duration);
            self.queued
                .push_back(rtp(TE_PT, false, 0, start, self.ssrc, &pl));
        }
        // The audio after the event goes on from the event's end.
        self.ts = start.wrapping_add(u32::from(duration));
    }
}

/// Plays both parties every 20 ms until `uac` exits (60 s at most): the caller's
/// `sender` toward `a_port`, audio from the callee toward `b_port`. Returns what the
/// callee received and what the caller received.
fn play(
    (caller, callee): (&UdpSocket, &UdpSocket),
    (a_port, b_port): (u16, u16),
    sender: &mut Sender,
    uac: &mut Sipp,
) -> (Vec<Rtp>, Vec<Rtp>) {
    let mut back = Sender::new(CALLEE_SSRC, Vec::new());
    let (mut got, mut heard) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if uac.child.try_wait().expect("try_wait").is_some() {
            break;
        }
        caller.send_to(&sender.next(), local(a_port)).expect("send");
        callee.send_to(&back.next(), local(b_port)).expect("send");
        std::thread::sleep(Duration::from_millis(20));
        heard.extend(drain(caller).iter().filter_map(|d| Rtp::parse(d)));
        got.extend(drain(callee).iter().filter_map(|d| Rtp::parse(d)));
    }
    heard.extend(drain(caller).iter().filter_map(|d| Rtp::parse(d)));
    got.extend(drain(callee).iter().filter_map(|d| Rtp::parse(d)));
    (got, heard)
}

/// A call through an appliance started with `toml`: a sipp callee running scenario
/// `<uas>.xml` on the right trunk, a sipp caller running `<uac>.xml` on the left one,
/// their media on the test's own sockets. [`DtmfCall::start`] returns once the INVITE
/// reached the callee and the caller has the 200 with SDP.
struct DtmfCall {
    app: Appliance,
    dir: std::path::PathBuf,
    caller: UdpSocket,
    callee: UdpSocket,
    uas: Sipp,
    uac: Sipp,
    /// The INVITE the callee got.
    offer: Traced,
    /// The 200 with SDP the caller got.
    answer: Traced,
}

impl DtmfCall {
    fn start(toml: &str, p: Ports, uas: &str, uac: &str) -> Self {
        let app = Appliance::start(toml);
        let dir = app.dir.path().to_path_buf();
        let (caller, callee) = (udp_socket(), udp_socket());
        let sf = scenario(&dir, &format!("{uas}.xml"));
        let uas_sipp = scenario_uas(&dir, p, &sf, &[("rtp_port", port_of(&callee))]);
        let sf = scenario(&dir, &format!("{uac}.xml"));
        let uac_sipp = scenario_uac(&dir, p, &sf, &[("rtp_port", port_of(&caller))]);
        let offer = wait_traced(&dir, uas, 0, "INVITE", request("INVITE", false));
        let answer = wait_traced(&dir, uac, 0, "200", ok_with_sdp("INVITE", false));
        Self {
            app,
            dir,
            caller,
            callee,
            uas: uas_sipp,
            uac: uac_sipp,
            offer,
            answer,
        }
    }

    /// Plays `sender` from the caller (and audio from the callee) until the caller's
    /// sipp exits, then waits for both sipps: `uac_fails` and `uas_fails` say what
    /// failed if one did not succeed. Returns what the callee and the caller received.
    fn play(
        &mut self,
        sender: &mut Sender,
        uac_fails: &str,
        uas_fails: &str,
    ) -> (Vec<Rtp>, Vec<Rtp>) {
        let (b_port, a_port) = (self.offer.m_lines()[0].1, self.answer.m_lines()[0].1);
        let got = play(
            (&self.caller, &self.callee),
            (a_port, b_port),
            sender,
            &mut self.uac,
        );
        self.uac.wait_ok(Duration::from_secs(30), uac_fails);
        self.uas.wait_ok(Duration::from_secs(30), uas_fails);
        got
    }
}

/// The event packets of `got`, grouped by event (their RTP timestamp), in order.
fn events(got: &[Rtp]) -> Vec<Vec<Rtp>> {
    let mut out: Vec<Vec<Rtp>> = Vec::new();
    for p in got.iter().filter(|p| p.pt == TE_PT) {
        match out.last_mut() {
            Some(g) if g[0].ts == p.ts => g.push(p.clone()),
            _ => out.push(vec![p.clone()]),
        }
    }
    out
}

/// Asserts that `g` is one well-formed played event (RFC 4733 §2.5): `event`, the
/// marker on the first packet only, durations growing, then exactly three end packets
/// with `duration`, all in the stream of the party whose SSRC is `ssrc` (consecutive
/// sequence numbers).
#[track_caller]
fn assert_event(g: &[Rtp], ssrc: u32, event: u8, duration: u16) {
    let what = format!("event {event} for {duration} units: {g:#?}");
    let parsed: Vec<(u8, bool, u16)> = g.iter().map(|p| p.event().expect(&what)).collect();
    assert!(parsed.iter().all(|e| e.0 == event), "{what}");
    let ends: Vec<_> = parsed.iter().filter(|e| e.1).collect();
    assert_eq!(ends.len(), 3, "three end packets: {what}");
    assert!(ends.iter().all(|e| e.2 == duration), "{what}");
    let (ongoing, tail) = parsed.split_at(parsed.len() - 3);
    assert!(
        tail.iter().all(|e| e.1),
        "the end packets come last: {what}"
    );
    assert!(
        !ongoing.is_empty(),
        "the event plays before it ends: {what}"
    );
    assert!(
        ongoing.windows(2).all(|w| w[0].2 < w[1].2) && ongoing.iter().all(|e| e.2 < duration),
        "durations grow up to the end: {what}"
    );
    assert!(g[0].marker, "marker on the first packet: {what}");
    assert!(g[1..].iter().all(|p| !p.marker), "{what}");
    assert!(g.iter().all(|p| p.ssrc == ssrc), "{what}");
    assert!(
        g.windows(2).all(|w| w[1].seq == w[0].seq.wrapping_add(1)),
        "the event replaces consecutive packets of the stream: {what}"
    );
}

/// INFO `application/dtmf-relay` (5 for 160 ms) and `application/dtmf` (7, no
/// duration: 250 ms) from the caller toward an `rfc4733` trunk: each answered 200 by
/// the appliance (never relayed: the UAS fails on any INFO), played to the callee as
/// RFC 4733 events in the caller's stream, in the callee's payload type.
#[test]
fn sip_info_reaches_an_rfc4733_trunk_as_events() {
    let _serial = serial();
    let p = Ports::for_test_range2(1);
    let toml = trunk_key(&config(p, ROUTE_LEFT_RIGHT), p.right, "dtmf = \"rfc4733\"");
    let mut call = DtmfCall::start(&toml, p, "uas_dtmf_events", "uac_dtmf_info");
    let (offer, answer) = (&call.offer, &call.answer);
    // The offer gained telephone-event toward the rfc4733 trunk; the answer to the
    // caller, which offered none, has none.
    assert!(
        offer.body().contains("telephone-event/8000"),
        "{}",
        offer.text
    );
    assert!(
        !answer.body().contains("telephone-event"),
        "{}",
        answer.text
    );

    let mut sender = Sender::new(CALLER_SSRC, Vec::new());
    let (got, _) = call.play(
        &mut sender,
        "sipp uac (INFO answered 200) failed",
        "sipp uas (no INFO relayed) failed",
    );
    let DtmfCall { app, dir, .. } = call;

    let evs = events(&got);
    note(&format!(
        "callee got {} packets, events {:?}",
        got.len(),
        evs.iter()
            .map(|g| g.iter().map(|p| p.event()).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    ));
    assert_eq!(evs.len(), 2, "two digits played: {evs:#?}");
    // 160 ms and 250 ms at 8 kHz.
    assert_event(&evs[0], CALLER_SSRC, 5, 1280);
    assert_event(&evs[1], CALLER_SSRC, 7, 2000);
    let audio = got.iter().filter(|p| p.pt == 0).count();
    assert!(
        audio > 100,
        "the caller's audio goes on around the digits: {audio}"
    );
    // Both INFOs were answered by the appliance, not relayed.
    let uac_trace = trace(&dir, "uac_dtmf_info");
    let oks = uac_trace
        .iter()
        .filter(|m| !m.sent && m.start().starts_with("SIP/2.0 200"))
        .filter(|m| m.header("CSeq").is_some_and(|c| c.ends_with("INFO")))
        .count();
    assert_eq!(oks, 2, "{uac_trace:#?}");
    assert!(
        trace(&dir, "uas_dtmf_events")
            .iter()
            .all(|m| !m.start().starts_with("INFO ")),
        "no INFO reached the rfc4733 trunk"
    );
    assert_eq!(
        metric(p, "portcullis_dtmf_interworked_total{to=\"rfc4733\"}"),
        2
    );
    assert_eq!(metric(p, "portcullis_dtmf_failed_total"), 0);
    let cdrs = app.wait_cdrs(1, Duration::from_secs(10));
    assert_eq!(end_kind(&cdrs[0]), "normal_clearing", "{}", cdrs[0]);
}

/// The caller's events and audio: 25 packets of audio, digit 5 for 200 ms (1600
/// units), 25 more, digit # for 120 ms (960 units), then audio.
fn two_digits() -> Sender {
    Sender::new(CALLER_SSRC, vec![(25, 5, 1600), (50, 11, 960)])
}

/// RFC 4733 events from a caller on an `rfc4733` trunk toward an `info` trunk: the
/// data plane detects them (each once, the end retransmissions ignored) and does not
/// relay them; the callee receives INFO `application/dtmf-relay` `Signal=5`,
/// `Duration=200` then `Signal=#`, `Duration=120` (its sipp scenario checks both, the
/// test reads them again from its trace). A second call does the same with events
/// played by sipp from sip-tester's `dtmf_2833_1.pcap` (digit 1, 280 ms).
#[test]
fn rfc4733_events_reach_an_info_trunk_as_sip_info() {
    let _serial = serial();
    let p = Ports::for_test_range2(2);
    let toml = trunk_key(&config(p, ROUTE_LEFT_RIGHT), p.right, "dtmf = \"info\"");
    let toml = trunk_key(&toml, p.left, "dtmf = \"rfc4733\"");
    let mut call = DtmfCall::start(&toml, p, "uas_dtmf_info", "uac_dtmf_events");

    let mut sender = two_digits();
    let (got, _) = call.play(
        &mut sender,
        "sipp uac failed",
        "sipp uas (two DTMF INFOs) failed",
    );
    let DtmfCall {
        app, dir, callee, ..
    } = call;
    assert_eq!(sender.sent_events.len(), 9 + 3 + 5 + 3, "both digits sent");

    let infos: Vec<Traced> = trace(&dir, "uas_dtmf_info")
        .into_iter()
        .filter(request("INFO", false))
        .collect();
    let bodies: Vec<(Option<&str>, &str)> = infos
        .iter()
        .map(|m| (m.header("Content-Type"), m.body()))
        .collect();
    assert_eq!(
        bodies,
        [
            (Some("application/dtmf-relay"), "Signal=5\nDuration=200"),
            (Some("application/dtmf-relay"), "Signal=#\nDuration=120"),
        ],
        "{infos:#?}"
    );
    // The INFOs are requests of the callee's dialog like the relayed BYE: CSeq grows
    // (RFC 3261 §12.2.1.1).
    let cseqs: Vec<(u32, String)> = trace(&dir, "uas_dtmf_info")
        .iter()
        .filter(|m| !m.sent && !m.start().starts_with("SIP/2.0") && !m.start().starts_with("ACK"))
        .filter_map(|m| {
            let (n, method) = m.header("CSeq")?.split_once(' ')?;
            Some((n.parse().ok()?, method.to_owned()))
        })
        .collect();
    let methods: Vec<&str> = cseqs.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(methods, ["INVITE", "INFO", "INFO", "BYE"], "{cseqs:?}");
    assert!(
        cseqs.windows(2).all(|w| w[0].0 < w[1].0),
        "CSeq grows: {cseqs:?}"
    );
    let relayed = got.iter().filter(|p| p.pt == TE_PT).count();
    assert_eq!(relayed, 0, "event packets relayed to the info trunk");
    let audio = got.iter().filter(|p| p.pt == 0).count();
    assert!(
        audio > 100,
        "the caller's audio reached the callee: {audio}"
    );
    assert_eq!(
        metric(p, "portcullis_dtmf_interworked_total{to=\"info\"}"),
        2
    );
    assert_eq!(metric(p, "portcullis_dataplane_dtmf_detected_total"), 2);
    let cdrs = app.wait_cdrs(1, Duration::from_secs(10));
    assert_eq!(end_kind(&cdrs[0]), "normal_clearing", "{}", cdrs[0]);

    // The same with the events of a real tool: sipp plays them from its own media port.
    pcaps(&dir);
    let sf = scenario(&dir, "uas_dtmf_info_pcap.xml");
    let mut uas = scenario_uas(&dir, p, &sf, &[("rtp_port", port_of(&callee))]);
    let sf = scenario(&dir, "uac_dtmf_pcap.xml");
    let mut uac = scenario_uac(&dir, p, &sf, &[]);
    uac.wait_ok(Duration::from_secs(40), "sipp uac (pcap DTMF) failed");
    uas.wait_ok(
        Duration::from_secs(30),
        "sipp uas (DTMF INFO of the pcap) failed",
    );
    let infos: Vec<Traced> = trace(&dir, "uas_dtmf_info_pcap")
        .into_iter()
        .filter(request("INFO", false))
        .collect();
    let bodies: Vec<&str> = infos.iter().map(Traced::body).collect();
    assert_eq!(bodies, ["Signal=1\nDuration=280"], "{infos:#?}");
    let relayed: Vec<Rtp> = drain(&callee)
        .iter()
        .filter_map(|d| Rtp::parse(d))
        .collect();
    assert!(relayed.iter().all(|p| p.pt != TE_PT), "{relayed:#?}");
    assert_eq!(
        metric(p, "portcullis_dtmf_interworked_total{to=\"info\"}"),
        3
    );
    let cdrs = app.wait_cdrs(2, Duration::from_secs(10));
    assert_eq!(end_kind(&cdrs[1]), "normal_clearing", "{}", cdrs[1]);
}

/// Between two `rfc4733` trunks the caller's event packets reach the callee as they
/// were sent, byte for byte, and no INFO is made of them.
fn events_cross_untouched_between_rfc4733_trunks(p: Ports) {
    let toml = trunk_key(&config(p, ROUTE_LEFT_RIGHT), p.right, "dtmf = \"rfc4733\"");
    let toml = trunk_key(&toml, p.left, "dtmf = \"rfc4733\"");
    let mut call = DtmfCall::start(&toml, p, "uas_dtmf_events", "uac_dtmf_events");

    let mut sender = two_digits();
    let (got, _) = call.play(&mut sender, "sipp uac failed", "sipp uas (no INFO) failed");
    let DtmfCall { app, .. } = call;

    let received: Vec<Vec<u8>> = got
        .iter()
        .filter(|p| p.pt == TE_PT)
        .map(|p| p.raw.clone())
        .collect();
    assert_eq!(received.len(), 20, "every event packet relayed");
    assert_eq!(
        received, sender.sent_events,
        "event packets changed on the way"
    );
    assert_eq!(metric(p, "portcullis_dtmf_interworked_total"), 0);
    assert_eq!(metric(p, "portcullis_dataplane_dtmf_detected_total"), 0);
    let cdrs = app.wait_cdrs(1, Duration::from_secs(10));
    assert_eq!(end_kind(&cdrs[0]), "normal_clearing", "{}", cdrs[0]);
}

/// A caller on an `rfc4733` trunk offering telephone-event calls a PBX that sends
/// DTMF as INFO (a `passthrough` trunk answering without telephone-event): the answer
/// to the caller keeps telephone-event (its sipp scenario checks it), and the PBX's
/// INFO digits (`application/dtmf-relay` `*` for 100 ms, `application/dtmf` `9`) are
/// answered 200 by the appliance and reach the caller as events in the callee's stream.
fn callee_info_reaches_an_rfc4733_caller_as_events(p: Ports) {
    let toml = trunk_key(&config(p, ROUTE_LEFT_RIGHT), p.left, "dtmf = \"rfc4733\"");
    let mut call = DtmfCall::start(&toml, p, "uas_dtmf_send_info", "uac_dtmf_events");

    let mut sender = Sender::new(CALLER_SSRC, Vec::new());
    let (_, heard) = call.play(
        &mut sender,
        "sipp uac (telephone-event answered) failed",
        "sipp uas (INFO answered 200) failed",
    );
    let DtmfCall { app, dir, .. } = call;
    let evs = events(&heard);
    assert_eq!(evs.len(), 2, "two digits played to the caller: {evs:#?}");
    // 100 ms and 250 ms at 8 kHz.
    assert_event(&evs[0], CALLEE_SSRC, 10, 800);
    assert_event(&evs[1], CALLEE_SSRC, 9, 2000);
    assert!(
        trace(&dir, "uac_dtmf_events")
            .iter()
            .all(|m| !m.start().starts_with("INFO ")),
        "no INFO reached the rfc4733 caller"
    );
    assert_eq!(
        metric(p, "portcullis_dtmf_interworked_total{to=\"rfc4733\"}"),
        2
    );
    let cdrs = app.wait_cdrs(1, Duration::from_secs(10));
    assert_eq!(end_kind(&cdrs[0]), "normal_clearing", "{}", cdrs[0]);
}

/// Toward a caller on an `rfc4733` trunk: events pass untouched from a callee on an
/// `rfc4733` trunk, INFO from a callee that sends INFO is played as events (one
/// appliance after the other on the same ports).
#[test]
fn rfc4733_trunks_get_events_passed_through_or_played_from_info() {
    let _serial = serial();
    let p = Ports::for_test_range2(3);
    events_cross_untouched_between_rfc4733_trunks(p);
    callee_info_reaches_an_rfc4733_caller_as_events(p);
}

//! No media hijack through the appliance: real sipp peers set the call up (their SDP
//! names the test's own RTP sockets), an attacker on another loopback address sprays RTP
//! with fresh SSRCs over every port of the media range from before the call, through the
//! learning window and long after it. It never receives one packet of the call, the
//! call's RTP flows both ways, and the refused packets are counted per leg in the CDR and
//! in the metrics. NAT rebinding (the caller's media moving to a new port after a silence)
//! is followed when, and only when, the caller's trunk sets `relearn_after`.

mod sipp_harness;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sipp_harness::*;

/// The `[media]` learning window of these tests.
const WINDOW: &str = "learning_window = \"1s\"";

fn rtp_socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("RTP socket");
    s.set_nonblocking(true).expect("nonblocking");
    s
}

fn port_of(s: &UdpSocket) -> u16 {
    s.local_addr().expect("addr").port()
}

fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// RTP packets waiting on a non-blocking socket (drained).
fn drain(s: &UdpSocket) -> u64 {
    let mut b = [0u8; 2048];
    let mut n = 0;
    while let Ok((len, _)) = s.recv_from(&mut b) {
        if len >= 12 && b[0] >> 6 == 2 {
            n += 1;
        }
    }
    n
}

/// The `m=audio` port of the first SDP after `start` in the message trace of the sipp
/// run whose name starts with `prefix`, waiting for it (bounded).
fn sdp_port(dir: &Path, prefix: &str, start: &str) -> u16 {
    let find = || -> Option<u16> {
        let log = std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix) && n.ends_with("_messages.log"))
            })?;
        let text = std::fs::read_to_string(log).ok()?;
        let rest = &text[text.find(start)?..];
        let m = rest.find("m=audio ")?;
        rest[m + 8..].split_whitespace().next()?.parse().ok()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(p) = find() {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "no {start:?} with SDP in {prefix} trace"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The caller (sipp `uac_teams_media.xml`, 6 s of call) and the callee (sipp
/// `uas_own_media.xml`), each offering the test's RTP socket; returns
/// `(uac, uas, a_port, b_port)`: the appliance's media ports of the caller's and the
/// callee's legs.
fn call(dir: &Path, p: Ports, caller_rtp: u16, callee_rtp: u16) -> (Sipp, Sipp, u16, u16) {
    let uas_sf = scenario(dir, "uas_own_media.xml");
    let uac_sf = scenario(dir, "uac_teams_media.xml");
    let key = |port: u16| vec!["-key".to_owned(), "rtp_port".to_owned(), port.to_string()];
    let mut uas_extra = vec!["-sf".to_owned(), uas_sf.display().to_string()];
    uas_extra.extend(key(callee_rtp));
    uas_extra.extend(["-m", "1", "-trace_msg"].map(String::from));
    let ex: Vec<&str> = uas_extra.iter().map(String::as_str).collect();
    let uas = Sipp::start(
        "uas",
        dir,
        &sipp_args("127.0.0.1", p.right, p.sipp_media + 100, &ex),
    );
    std::thread::sleep(Duration::from_millis(300));
    let target = sip_target(p);
    let mut uac_extra = vec!["-sf".to_owned(), uac_sf.display().to_string(), target];
    uac_extra.extend(key(caller_rtp));
    uac_extra.extend(["-m", "1", "-trace_msg", "-s", "1000"].map(String::from));
    let ex: Vec<&str> = uac_extra.iter().map(String::as_str).collect();
    let uac = Sipp::start(
        "uac",
        dir,
        &sipp_args("127.0.0.1", p.left, p.sipp_media, &ex),
    );
    let b_port = sdp_port(dir, "uas_own_media", "INVITE sip:");
    let a_port = sdp_port(dir, "uac_teams_media", "SIP/2.0 200 OK");
    (uac, uas, a_port, b_port)
}

/// An attacker on 127.0.0.66 spraying RTP with a fresh SSRC per packet over every port
/// of `ports` from four source ports in turn, until `stop`; counts what comes back.
fn spray(
    ports: std::ops::RangeInclusive<u16>,
    stop: Arc<AtomicBool>,
    heard: Arc<AtomicU64>,
) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 66));
        let socks: Vec<UdpSocket> = (0..4)
            .map(|_| {
                let s = UdpSocket::bind((ip, 0)).expect("bind 127.0.0.66");
                s.set_nonblocking(true).expect("nonblocking");
                s
            })
            .collect();
        let mut ssrc = 0x6600_0000u32;
        let mut sent = 0u64;
        let mut round = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let s = &socks[round % socks.len()];
            for port in ports.clone() {
                ssrc = ssrc.wrapping_add(1);
                let pkt = rtp((ssrc & 0xffff) as u16, ssrc, &[0x55; 160]);
                if s.send_to(&pkt, SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port))
                    .is_ok()
                {
                    sent += 1;
                }
            }
            for s in &socks {
                heard.fetch_add(drain(s), Ordering::Relaxed);
            }
            round += 1;
            std::thread::sleep(Duration::from_millis(30));
        }
        for s in &socks {
            heard.fetch_add(drain(s), Ordering::Relaxed);
        }
        sent
    })
}

/// `(sent, got)` per side after exchanging RTP every 20 ms for `within`: the caller from
/// `caller` (then from `rebound` once `switch` has passed, if given) to `a_port`, the
/// callee from `callee` to `b_port`. `got[0]` counts what the caller's sockets received
/// (`got[2]`: of which on `rebound`), `got[1]` the callee's.
fn exchange(
    (caller, rebound, switch): (&UdpSocket, Option<&UdpSocket>, Duration),
    callee: &UdpSocket,
    (a_port, b_port): (u16, u16),
    within: Duration,
) -> ([u64; 2], [u64; 3]) {
    let (a, b) = (
        SocketAddr::from(([127, 0, 0, 1], a_port)),
        SocketAddr::from(([127, 0, 0, 1], b_port)),
    );
    let (mut sent, mut got) = ([0u64; 2], [0u64; 3]);
    let t0 = Instant::now();
    let mut seq = 0u16;
    while t0.elapsed() < within {
        seq = seq.wrapping_add(1);
        let from = match rebound {
            Some(r) if t0.elapsed() >= switch => r,
            _ => caller,
        };
        // The caller falls silent for a moment when its NAT rebinds.
        let silent = rebound.is_some()
            && t0.elapsed() >= switch.saturating_sub(Duration::from_millis(1500))
            && t0.elapsed() < switch;
        if !silent {
            from.send_to(&rtp(seq, 0xca11, b"caller"), a).expect("send");
            sent[0] += 1;
        }
        callee
            .send_to(&rtp(seq, 0xb0b, b"callee"), b)
            .expect("send");
        sent[1] += 1;
        std::thread::sleep(Duration::from_millis(20));
        got[0] += drain(caller);
        got[1] += drain(callee);
        if let Some(r) = rebound {
            let n = drain(r);
            got[0] += n;
            got[2] += n;
        }
    }
    (sent, got)
}

fn metric(p: Ports, name: &str) -> u64 {
    let url = format!("http://127.0.0.1:{}/metrics", p.admin);
    let resp = ureq::get(&url)
        .call()
        .unwrap_or_else(|e| panic!("metrics: {e}"));
    let text = resp
        .into_string()
        .unwrap_or_else(|e| panic!("metrics: {e}"));
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn a_spraying_attacker_never_receives_the_call() {
    let _serial = serial();
    let p = Ports::for_test(7);
    let toml = config(p, ROUTE_LEFT_RIGHT).replacen(
        "inactivity_timeout = \"60s\"",
        &format!("inactivity_timeout = \"60s\"\n{WINDOW}"),
        1,
    );
    assert!(toml.contains(WINDOW));
    let app = Appliance::start(&toml);
    let dir = app.dir.path().to_path_buf();
    let (stop, heard) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    // Before the call, and on: the attacker never stops.
    let attacker = spray(p.media_min..=p.media_min + 255, stop.clone(), heard.clone());
    std::thread::sleep(Duration::from_millis(500));
    let (caller, callee) = (rtp_socket(), rtp_socket());
    let (mut uac, mut uas, a_port, b_port) = call(&dir, p, port_of(&caller), port_of(&callee));
    // The callee speaks first ("hello?"): for 600 ms of the caller's window, while the
    // caller has not sent anything, its leg has only the spray to learn from.
    let b = SocketAddr::from(([127, 0, 0, 1], b_port));
    let mut first = 0u64;
    for seq in 0..30u16 {
        callee
            .send_to(&rtp(seq, 0xb0b, b"hello?"), b)
            .expect("send");
        std::thread::sleep(Duration::from_millis(20));
        first += drain(&caller);
    }
    // Then both, inside the 1 s window and well after it (the call lasts 6 s).
    let (sent, got) = exchange(
        (&caller, None, Duration::ZERO),
        &callee,
        (a_port, b_port),
        Duration::from_millis(4500),
    );
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let sprayed = attacker.join().expect("attacker");
    uac.wait_ok(Duration::from_secs(30), "sipp uac failed");
    uas.wait_ok(Duration::from_secs(30), "sipp uas failed");
    let cdrs = app.wait_cdrs(1, Duration::from_secs(10));
    let c = &cdrs[0];
    note(&format!(
        "sprayed {sprayed}, attacker heard {}, first {first}, sent {sent:?}, got {got:?}, media {}",
        heard.load(Ordering::Relaxed),
        c["media"]
    ));
    assert!(sprayed > 10_000, "the spray ran: {sprayed}");
    assert_eq!(
        heard.load(Ordering::Relaxed),
        0,
        "the attacker received media"
    );
    assert!(
        first > 20,
        "the callee's first words reached the caller: {first}"
    );
    // Both ways, all along (a busy machine may lose a few).
    assert!(
        got[0] * 10 >= sent[1] * 9,
        "callee -> caller: {got:?} of {sent:?}"
    );
    assert!(
        got[1] * 10 >= sent[0] * 9,
        "caller -> callee: {got:?} of {sent:?}"
    );
    // Refused packets, counted on each leg and in the metrics.
    for side in ["a", "b"] {
        let n = c["media"][side]["rtp_source_rejected"]
            .as_u64()
            .unwrap_or(0);
        assert!(n > 50, "leg {side}: {n} refused: {c}");
    }
    assert!(metric(p, "portcullis_dataplane_rtp_source_rejected_total") > 100);
    assert_eq!(end_kind(c), "normal_clearing", "{c}");
}

/// The caller's NAT rebinds mid-call (same address, new port, after 1.5 s of silence):
/// with `relearn_after = "1s"` on its trunk the callee's media follows it; without,
/// the leg stays locked on the old port and the new one receives nothing.
#[test]
fn nat_rebinding_is_followed_only_when_the_trunk_allows_it() {
    let _serial = serial();
    for allowed in [false, true] {
        let p = Ports::for_test(if allowed { 9 } else { 8 });
        let mut toml = config(p, ROUTE_LEFT_RIGHT).replacen(
            "inactivity_timeout = \"60s\"",
            &format!("inactivity_timeout = \"60s\"\n{WINDOW}"),
            1,
        );
        if allowed {
            let left = format!("address = \"127.0.0.1:{}\"\n", p.left);
            toml = toml.replacen(&left, &format!("{left}relearn_after = \"1s\"\n"), 1);
            assert!(toml.contains("relearn_after"));
        }
        let app = Appliance::start(&toml);
        let dir = app.dir.path().to_path_buf();
        let (caller, rebound, callee) = (rtp_socket(), rtp_socket(), rtp_socket());
        let (mut uac, mut uas, a_port, b_port) = call(&dir, p, port_of(&caller), port_of(&callee));
        let (_, got) = exchange(
            (&caller, Some(&rebound), Duration::from_millis(2500)),
            &callee,
            (a_port, b_port),
            Duration::from_millis(4800),
        );
        uac.wait_ok(Duration::from_secs(30), "sipp uac failed");
        uas.wait_ok(Duration::from_secs(30), "sipp uas failed");
        let cdrs = app.wait_cdrs(1, Duration::from_secs(10));
        note(&format!(
            "allowed {allowed}: got {got:?}, media {}",
            cdrs[0]["media"]
        ));
        // The callee heard the caller before the silence either way.
        assert!(got[1] > 20, "caller -> callee: {got:?}");
        if allowed {
            assert!(got[2] > 10, "callee's media follows the rebinding: {got:?}");
        } else {
            assert_eq!(got[2], 0, "a locked leg does not move: {got:?}");
            let a = &cdrs[0]["media"]["a"];
            assert!(a["rtp_source_rejected"].as_u64().unwrap_or(0) > 20, "{a}");
        }
    }
}

//! Media peers played by the test beside sipp: sipp carries the signalling (its
//! scenarios name the test's own UDP sockets in their SDP through `-key`), the test sends
//! and receives the RTP or UDPTL itself, reads what sipp sent and received from its
//! `-trace_msg` log, and asserts on the packets.
#![allow(dead_code, clippy::print_stderr)]

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::sipp_harness::{sipp_args, Ports, Sipp};

/// A non-blocking UDP socket on an ephemeral loopback port.
pub fn udp_socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("media socket");
    s.set_nonblocking(true).expect("nonblocking");
    s
}

/// The local port of `s`.
pub fn port_of(s: &UdpSocket) -> u16 {
    s.local_addr().expect("addr").port()
}

/// `127.0.0.1:port`.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// An RTP packet (RFC 3550 §5.1: V=2, no padding, extension or CSRC).
pub fn rtp(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, (u8::from(marker) << 7) | (pt & 0x7f)];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// An RFC 4733 §2.3 event payload: event, E bit, volume 10, duration.
pub fn event_payload(event: u8, end: bool, duration: u16) -> [u8; 4] {
    let d = duration.to_be_bytes();
    [event, (u8::from(end) << 7) | 10, d[0], d[1]]
}

/// A received RTP packet, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtp {
    pub pt: u8,
    pub marker: bool,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
    /// The datagram as it arrived.
    pub raw: Vec<u8>,
}

impl Rtp {
    /// `None` when `d` is not a plain RTP packet with a 12-octet header.
    pub fn parse(d: &[u8]) -> Option<Self> {
        if d.len() < 12 || d[0] != 0x80 {
            return None;
        }
        Some(Self {
            pt: d[1] & 0x7f,
            marker: d[1] & 0x80 != 0,
            seq: u16::from_be_bytes([d[2], d[3]]),
            ts: u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
            ssrc: u32::from_be_bytes([d[8], d[9], d[10], d[11]]),
            payload: d[12..].to_vec(),
            raw: d.to_vec(),
        })
    }

    /// `(event, end, duration)` of an RFC 4733 event payload.
    pub fn event(&self) -> Option<(u8, bool, u16)> {
        match self.payload[..] {
            [e, f, d0, d1] => Some((e, f & 0x80 != 0, u16::from_be_bytes([d0, d1]))),
            _ => None,
        }
    }
}

/// Every datagram waiting on the non-blocking socket `s` (drained).
pub fn drain(s: &UdpSocket) -> Vec<Vec<u8>> {
    let mut b = [0u8; 2048];
    let mut out = Vec::new();
    while let Ok((len, _)) = s.recv_from(&mut b) {
        out.push(b[..len].to_vec());
    }
    out
}

/// Starts sipp `name` on `local_port` (media `media_port`, unused by these scenarios)
/// with scenario file `sf`, `-key` pairs `keys`, one call and a message trace; `target`
/// is the remote for a UAC.
pub fn start_sipp(
    name: &str,
    dir: &Path,
    (local_port, media_port): (u16, u16),
    sf: &Path,
    keys: &[(&str, u16)],
    target: Option<&str>,
) -> Sipp {
    let mut extra = vec!["-sf".to_owned(), sf.display().to_string()];
    extra.extend(target.map(str::to_owned));
    for (k, v) in keys {
        extra.extend(["-key".to_owned(), (*k).to_owned(), v.to_string()]);
    }
    extra.extend(["-m", "1", "-trace_msg"].map(String::from));
    let ex: Vec<&str> = extra.iter().map(String::as_str).collect();
    Sipp::start(
        name,
        dir,
        &sipp_args("127.0.0.1", local_port, media_port, &ex),
    )
}

/// The UAS of trunk `right` (its ports in `p`), given 300 ms to bind.
pub fn scenario_uas(dir: &Path, p: Ports, sf: &Path, keys: &[(&str, u16)]) -> Sipp {
    let s = start_sipp("uas", dir, (p.right, p.sipp_media + 100), sf, keys, None);
    std::thread::sleep(Duration::from_millis(300));
    s
}

/// The UAC of trunk `left` calling the appliance of `p`.
pub fn scenario_uac(dir: &Path, p: Ports, sf: &Path, keys: &[(&str, u16)]) -> Sipp {
    let target = format!("127.0.0.1:{}", p.sip);
    start_sipp("uac", dir, (p.left, p.sipp_media), sf, keys, Some(&target))
}

/// One SIP message of a sipp `-trace_msg` log.
#[derive(Debug, Clone)]
pub struct Traced {
    /// Sent by sipp (false: received).
    pub sent: bool,
    /// Start line, headers and body, line ends normalised to `\n`.
    pub text: String,
}

impl Traced {
    /// The start line.
    pub fn start(&self) -> &str {
        self.text.lines().next().unwrap_or("")
    }

    /// The body (after the first blank line), trailing blank lines dropped.
    pub fn body(&self) -> &str {
        self.text
            .split_once("\n\n")
            .map_or("", |(_, b)| b.trim_end())
    }

    /// The value of the first header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let head = self.text.split_once("\n\n").map_or(&*self.text, |(h, _)| h);
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }

    /// The SDP `m=` lines of the body: `(media, port, rest of the line)`.
    pub fn m_lines(&self) -> Vec<(String, u16, String)> {
        self.body()
            .lines()
            .filter_map(|l| {
                let mut it = l.trim().strip_prefix("m=")?.splitn(3, ' ');
                let media = it.next()?.to_owned();
                let port = it.next()?.parse().ok()?;
                Some((media, port, it.next().unwrap_or("").to_owned()))
            })
            .collect()
    }

    /// The session-level `c=` address of the body.
    pub fn connection(&self) -> Option<String> {
        self.body()
            .lines()
            .find_map(|l| l.trim().strip_prefix("c=IN IP4 "))
            .map(|a| a.trim().to_owned())
    }
}

/// The messages of the `-trace_msg` log of the sipp run whose scenario is `scen` in
/// `dir` (empty while there is none).
pub fn trace(dir: &Path, scen: &str) -> Vec<Traced> {
    let Some(path) = std::fs::read_dir(dir).ok().and_then(|rd| {
        rd.filter_map(Result::ok).map(|e| e.path()).find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{scen}_")) && n.ends_with("_messages.log"))
        })
    }) else {
        return Vec::new();
    };
    let log = std::fs::read_to_string(path)
        .unwrap_or_default()
        .replace('\r', "");
    log.split("\n-----------------------------------------------")
        .filter_map(|chunk| {
            // "<timestamp>\nUDP message sent (N bytes):\n\n<message>"
            let (head, msg) = chunk.split_once("\n\n")?;
            let sent = head.contains("message sent");
            if !sent && !head.contains("message received") {
                return None;
            }
            Some(Traced {
                sent,
                text: msg.trim_start_matches('\n').to_owned(),
            })
        })
        .collect()
}

/// The `nth` (0-based) message of `scen`'s trace that `pick` selects, waiting for it
/// (20 s at most).
#[track_caller]
pub fn wait_traced(
    dir: &Path,
    scen: &str,
    nth: usize,
    what: &str,
    pick: impl Fn(&Traced) -> bool,
) -> Traced {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(m) = trace(dir, scen).into_iter().filter(|m| pick(m)).nth(nth) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "{scen}: no {what} (#{nth}) after 20 s: {:#?}\nsipp output:\n{}",
            trace(dir, scen),
            sipp_outputs(dir)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `*.out` files of the sipp runs in `dir` (their last 2000 characters each).
fn sipp_outputs(dir: &Path) -> String {
    let mut out = String::new();
    for p in std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
    {
        let p = p.path();
        if p.extension().is_some_and(|e| e == "out") {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let tail: String = text
                .chars()
                .rev()
                .take(2000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            out.push_str(&format!("== {}\n{tail}\n", p.display()));
        }
    }
    out
}

/// A request `method` sipp received (`sent == false`) or sent.
pub fn request(method: &'static str, sent: bool) -> impl Fn(&Traced) -> bool {
    move |m| m.sent == sent && m.start().starts_with(&format!("{method} "))
}

/// A `200` response to `method` with a body, received (`sent == false`) or sent.
pub fn ok_with_sdp(method: &'static str, sent: bool) -> impl Fn(&Traced) -> bool {
    move |m| {
        m.sent == sent
            && m.start().starts_with("SIP/2.0 200")
            && m.header("CSeq").is_some_and(|c| c.ends_with(method))
            && !m.body().is_empty()
    }
}

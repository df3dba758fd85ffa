//! The attackers of `attack.rs`: a UDP flood from many loopback sources (INVITE, OPTIONS,
//! REGISTER, garbage), idle TCP connections, slowloris TCP connections, and a sampler of
//! the appliance's resident memory. Each runs on its own thread, is bounded in count and
//! in time, and stops by itself (or earlier through its stop flag).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A shared stop flag.
pub type Stop = Arc<AtomicBool>;

fn stopped(stop: &AtomicBool) -> bool {
    stop.load(Ordering::Relaxed)
}

/// The kinds of flood datagrams, sent in turn by every source.
const KINDS: usize = 5;

/// Datagram `n` of the flood from `local` to the appliance at `sip`: an INVITE, an
/// OPTIONS, a REGISTER, binary garbage or text that is not SIP, in turn.
fn flood_message(local: SocketAddr, sip: u16, n: u64) -> Vec<u8> {
    let ip = local.ip();
    let request = |method: &str, uri: &str, extra: &str| {
        format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-atk-{n};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{n}@{ip}>;tag=a{n}\r\n\
             To: <sip:100@127.0.0.1>\r\n\
             Call-ID: atk-{n}@{ip}\r\n\
             CSeq: 1 {method}\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        )
        .into_bytes()
    };
    match n as usize % KINDS {
        0 => request(
            "INVITE",
            &format!("sip:00{n}@127.0.0.1:{sip}"),
            &format!("Contact: <sip:x@{local}>\r\n"),
        ),
        1 => request("OPTIONS", &format!("sip:100@127.0.0.1:{sip}"), ""),
        2 => request(
            "REGISTER",
            "sip:127.0.0.1",
            &format!("Contact: <sip:{n}@{local}>\r\nExpires: 3600\r\n"),
        ),
        // Bytes that are not text (a fixed pseudo-random pattern).
        3 => (0..200u64)
            .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(n) >> 7) as u8)
            .collect(),
        _ => format!("GET / HTTP/1.1\r\nHost: {ip}\r\nX-Seq: {n}\r\n\r\n").into_bytes(),
    }
}

/// What the flood sent and what came back to its sources.
#[derive(Debug, Default, Clone)]
pub struct FloodReport {
    /// Datagrams sent (the kernel accepted them).
    pub sent: u64,
    /// Bytes sent.
    pub sent_bytes: u64,
    /// Answers received, per source address.
    pub answers: HashMap<IpAddr, u64>,
    /// Bytes of those answers.
    pub answer_bytes: u64,
    /// First lines of the answers, counted (`SIP/2.0 403 Forbidden`: n).
    pub statuses: HashMap<String, u64>,
    /// How long the flood ran.
    pub elapsed: Duration,
}

/// A flood of `total` datagrams from `sources` addresses (`ip_of(i)`), sent in bursts of
/// `burst` datagrams per source, the bursts spread evenly over `spread`.
pub struct Flood {
    pub sources: Vec<IpAddr>,
    pub total: u64,
    pub burst: u64,
    pub spread: Duration,
}

/// Sends `msg` to the appliance; a socket whose own buffer is full (a busy machine)
/// is given up to 100 ms.
fn send(sock: &UdpSocket, msg: &[u8], sip: u16) -> bool {
    for _ in 0..100 {
        match sock.send_to(msg, ("127.0.0.1", sip)) {
            Ok(_) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(_) => return false,
        }
    }
    false
}

/// Everything waiting on `sock`, counted in `r`.
fn drain(sock: &UdpSocket, r: &mut FloodReport, buf: &mut [u8]) {
    while let Ok((n, _)) = sock.recv_from(buf) {
        let ip = sock.local_addr().map(|a| a.ip()).expect("local addr");
        *r.answers.entry(ip).or_default() += 1;
        r.answer_bytes += n as u64;
        let first = String::from_utf8_lossy(buf.get(..n).unwrap_or_default())
            .lines()
            .next()
            .unwrap_or("")
            .to_owned();
        *r.statuses.entry(first).or_default() += 1;
    }
}

impl Flood {
    /// Starts the flood toward `127.0.0.1:sip` on its own thread; the report comes back
    /// when it is joined (after the last burst, plus one second for late answers).
    pub fn start(self, sip: u16, stop: Stop) -> JoinHandle<FloodReport> {
        std::thread::spawn(move || self.run(sip, &stop))
    }

    fn run(self, sip: u16, stop: &AtomicBool) -> FloodReport {
        let socks: Vec<UdpSocket> = self
            .sources
            .iter()
            .map(|ip| {
                let s = UdpSocket::bind((*ip, 0)).unwrap_or_else(|e| panic!("bind {ip}: {e}"));
                s.set_nonblocking(true).expect("nonblocking");
                s
            })
            .collect();
        let per_source = self.total / socks.len() as u64;
        let bursts = per_source.div_ceil(self.burst);
        let slots = bursts * socks.len() as u64;
        let started = Instant::now();
        let mut r = FloodReport::default();
        let mut buf = vec![0u8; 65_536];
        let mut left: Vec<u64> = vec![per_source; socks.len()];
        let mut n = 0u64;
        // Burst k of every source in turn: source i's k-th burst is slot k·sources + i.
        for slot in 0..slots {
            if stopped(stop) {
                break;
            }
            let due = self.spread.mul_f64(slot as f64 / slots as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            let i = (slot % socks.len() as u64) as usize;
            let (Some(sock), Some(rest)) = (socks.get(i), left.get_mut(i)) else {
                continue;
            };
            let local = sock.local_addr().expect("local addr");
            for _ in 0..self.burst.min(*rest) {
                n += 1;
                let msg = flood_message(local, sip, n);
                if send(sock, &msg, sip) {
                    r.sent += 1;
                    r.sent_bytes += msg.len() as u64;
                }
            }
            *rest -= self.burst.min(*rest);
            if slot % 64 == 0 {
                socks.iter().for_each(|s| drain(s, &mut r, &mut buf));
            }
        }
        r.elapsed = started.elapsed();
        std::thread::sleep(Duration::from_secs(1));
        socks.iter().for_each(|s| drain(s, &mut r, &mut buf));
        r
    }
}

/// Counters of the TCP attackers.
#[derive(Debug, Default)]
pub struct TcpCounts {
    /// Connections tried.
    pub attempted: AtomicU64,
    /// Connections the kernel completed (the appliance may close them at accept).
    pub connected: AtomicU64,
    /// Connections the appliance closed (end of stream or reset).
    pub closed_by_peer: AtomicU64,
    /// Connections still open when the attacker stopped.
    pub open_at_end: AtomicU64,
}

/// Whether the appliance closed `s` (a read sees end of stream or a reset; a timeout
/// means it is still open).
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 512];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// `per_source` idle connections (connected, never a byte sent) from each of `sources`,
/// held until `stop` or `limit`.
pub fn idle_connections(
    sources: Vec<IpAddr>,
    per_source: usize,
    sip: u16,
    stop: Stop,
    limit: Duration,
) -> (Arc<TcpCounts>, JoinHandle<()>) {
    let counts = Arc::new(TcpCounts::default());
    let c = Arc::clone(&counts);
    let h = std::thread::spawn(move || {
        let started = Instant::now();
        let mut conns = Vec::new();
        for ip in &sources {
            for _ in 0..per_source {
                c.attempted.fetch_add(1, Ordering::Relaxed);
                if let Some(s) = connect_from(*ip, sip) {
                    c.connected.fetch_add(1, Ordering::Relaxed);
                    conns.push(s);
                }
            }
        }
        while !stopped(&stop) && started.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut open = 0;
        for mut s in conns {
            s.set_read_timeout(Some(Duration::from_millis(1)))
                .expect("timeout");
            if closed(&mut s) {
                c.closed_by_peer.fetch_add(1, Ordering::Relaxed);
            } else {
                open += 1;
            }
        }
        c.open_at_end.store(open, Ordering::Relaxed);
    });
    (counts, h)
}

/// A TCP connection from `ip` (any port) to the appliance, or `None` when refused.
fn connect_from(ip: IpAddr, sip: u16) -> Option<TcpStream> {
    let sock = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .ok()?;
    sock.bind(&SocketAddr::new(ip, 0).into()).ok()?;
    let to = SocketAddr::from(([127, 0, 0, 1], sip));
    // A full accept queue drops the SYN (the kernel resends it after a second): give up
    // after two.
    sock.connect_timeout(&to.into(), Duration::from_secs(2))
        .ok()?;
    Some(sock.into())
}

/// Slowloris: `per_source` connections from each of `sources`, each sending the header
/// of an OPTIONS one byte per second; a connection the appliance closes is opened again
/// (after a second), until `stop` or `limit`. Every connection is served in turn by one
/// thread, so the attacker's cost is one byte per connection per second.
pub fn slowloris(
    sources: Vec<IpAddr>,
    per_source: usize,
    sip: u16,
    stop: Stop,
    limit: Duration,
) -> (Arc<TcpCounts>, JoinHandle<()>) {
    let counts = Arc::new(TcpCounts::default());
    let c = Arc::clone(&counts);
    let h = std::thread::spawn(move || {
        let started = Instant::now();
        let header = format!(
            "OPTIONS sip:100@127.0.0.1:{sip} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK-slow\r\n\
             X-Padding: {}\r\n",
            "a".repeat(4096)
        )
        .into_bytes();
        // (source, stream, next byte to send)
        let mut slots: Vec<(IpAddr, Option<TcpStream>, usize)> = sources
            .iter()
            .flat_map(|ip| std::iter::repeat_n(*ip, per_source))
            .map(|ip| (ip, None, 0))
            .collect();
        while !stopped(&stop) && started.elapsed() < limit {
            let tick = Instant::now();
            for (ip, conn, next) in &mut slots {
                if stopped(&stop) {
                    break;
                }
                if let Some(s) = conn {
                    let byte = header.get(*next % header.len()..=*next % header.len());
                    let sent = byte.is_some_and(|b| s.write_all(b).is_ok());
                    *next += 1;
                    if !sent || closed(s) {
                        c.closed_by_peer.fetch_add(1, Ordering::Relaxed);
                        *conn = None;
                    }
                } else if let Some(s) = connect_from(*ip, sip) {
                    s.set_read_timeout(Some(Duration::from_millis(1)))
                        .expect("timeout");
                    c.connected.fetch_add(1, Ordering::Relaxed);
                    *conn = Some(s);
                    *next = 0;
                }
            }
            if let Some(rest) = Duration::from_secs(1).checked_sub(tick.elapsed()) {
                std::thread::sleep(rest);
            }
        }
        let open = slots.iter().filter(|(_, s, _)| s.is_some()).count() as u64;
        c.open_at_end.store(open, Ordering::Relaxed);
    });
    (counts, h)
}

/// Resident set size of `pid` (VmRSS, in KiB) through `procfs`.
pub fn rss_kib(pid: u32) -> u64 {
    let pid = i32::try_from(pid).expect("pid");
    procfs::process::Process::new(pid)
        .and_then(|p| p.status())
        .ok()
        .and_then(|s| s.vmrss)
        .expect("VmRSS of the appliance")
}

/// Samples the RSS of `pid` every 250 ms until `stop`; returns (peak, last) in KiB.
pub fn sample_rss(pid: u32, stop: Stop) -> JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        let mut peak = 0;
        let mut last = 0;
        while !stopped(&stop) {
            last = rss_kib(pid);
            peak = peak.max(last);
            std::thread::sleep(Duration::from_millis(250));
        }
        (peak, last)
    })
}

//! Shared helpers for the data plane's tests (the namespace test takes the key and stream
//! helpers and the counting allocator). Every loopback test uses its own port range (tests
//! in a binary run in parallel and media sockets use SO_REUSEPORT). Ranges sit in
//! 12000–13830, below the kernel's ephemeral range (32768–60999), so no auto-bound socket
//! can share them.
#![allow(dead_code)]

pub mod blaster;
pub mod counting;
pub mod fixed;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use portcullis_dataplane::{
    Backend, Dataplane, DataplaneConfig, Event, StreamPairHandle, StreamParams,
};
use portcullis_rtp::srtp::{SrtpKeys, SrtpProfile};

pub const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// How long a test waits for a relayed packet or an event.
pub const WAIT: Duration = Duration::from_secs(3);

/// A data plane on `[base, base + 4 * pairs)` with one worker.
pub fn start(backend: Backend, base: u16, pairs: u16) -> Dataplane {
    start_with(DataplaneConfig {
        port_min: base,
        port_max: base + pairs * 4 - 1,
        backend,
        ..DataplaneConfig::default()
    })
}

pub fn start_with(cfg: DataplaneConfig) -> Dataplane {
    let backend = cfg.backend;
    let dp = match Dataplane::start(cfg) {
        Ok(dp) => dp,
        Err(e) => panic!("data plane with {backend:?} failed to start: {e}"),
    };
    if backend != Backend::Auto {
        assert_eq!(dp.backend(), backend);
    }
    dp
}

/// A peer socket on IPv4 loopback with a read timeout of [`WAIT`].
pub fn peer() -> UdpSocket {
    peer_on(LO)
}

/// A peer socket on `ip` with a read timeout of [`WAIT`].
pub fn peer_on(ip: IpAddr) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).expect("bind peer");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s
}

pub fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().expect("local addr")
}

pub fn to(port: u16) -> SocketAddr {
    SocketAddr::new(LO, port)
}

/// A minimal RTP packet (RFC 3550 §5.1), PT 0.
pub fn rtp(seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// A minimal RTCP receiver report with no blocks (RFC 3550 §6.4.2), PT 201.
pub fn rtcp_rr(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 201, 0, 1];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p
}

/// Receive one datagram or `None` on timeout.
pub fn recv(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut b = [0u8; 2048];
    match s.recv_from(&mut b) {
        Ok((n, from)) => Some((b[..n].to_vec(), from)),
        Err(_) => None,
    }
}

/// Receive one datagram; panics when nothing was relayed within the socket's timeout.
pub fn recv_relayed(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut b = [0u8; 2048];
    let (n, from) = s.recv_from(&mut b).expect("relayed");
    (b[..n].to_vec(), from)
}

/// Sets both legs and gives the worker a moment to apply them before packets are sent.
pub fn update_and_settle(dp: &Dataplane, h: &StreamPairHandle, a: StreamParams, b: StreamParams) {
    dp.update(h, a, b).expect("update");
    std::thread::sleep(Duration::from_millis(50));
}

/// Receive with a short timeout, expecting nothing.
pub fn recv_none(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let r = recv(s);
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    r
}

/// Wait (bounded) for an event matching `pred`.
pub fn wait_event(
    dp: &Dataplane,
    timeout: Duration,
    pred: impl Fn(&Event) -> bool,
) -> Option<Event> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if let Some(e) = dp.poll_events().find(|e| pred(e)) {
            return Some(e);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// Wait (bounded) until `cond` holds.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

pub fn keys(seed: u8) -> SrtpKeys {
    let mut k = [0u8; 16];
    let mut s = [0u8; 14];
    for (i, b) in k.iter_mut().enumerate() {
        *b = seed.wrapping_add(i as u8);
    }
    for (i, b) in s.iter_mut().enumerate() {
        *b = seed.wrapping_mul(3).wrapping_add(i as u8);
    }
    SrtpKeys {
        profile: SrtpProfile::AesCm128HmacSha1_80,
        master_key: k,
        master_salt: s,
    }
}

pub fn plain(peer: Option<SocketAddr>) -> StreamParams {
    StreamParams {
        peer,
        ..StreamParams::default()
    }
}

/// Instantiate a test body for both backends.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident => $base:expr;)*) => {
        mod mmsg {
            $(#[test] fn $name() { super::$name(portcullis_dataplane::Backend::Mmsg, $base); })*
        }
        mod io_uring {
            $(#[test] fn $name() { super::$name(portcullis_dataplane::Backend::IoUring, $base + 200); })*
        }
    };
}

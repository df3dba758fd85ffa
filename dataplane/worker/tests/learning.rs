//! Endpoint learning on loopback, both backends: an attacker spraying RTP with fresh
//! SSRCs over every port of the range, before, during and after the learning window,
//! never receives a packet of the call while the call's media keeps flowing both ways;
//! NAT rebinding moves a locked leg when, and only when, the leg allows it.

mod common;

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use portcullis_dataplane::{Backend, DataplaneConfig, DropReason, StreamParams};

const WAIT: Duration = Duration::from_secs(3);

fn config(backend: Backend, base: u16, pairs: u16, window: Duration) -> DataplaneConfig {
    DataplaneConfig {
        port_min: base,
        port_max: base + pairs * 4 - 1,
        backend,
        learning_window: window,
        ..DataplaneConfig::default()
    }
}

/// A UDP socket on another loopback address (the attacker is not the peers' host).
fn attacker_socket() -> UdpSocket {
    let s =
        UdpSocket::bind((IpAddr::V4(Ipv4Addr::new(127, 0, 0, 66)), 0)).expect("bind 127.0.0.66");
    s.set_nonblocking(true).expect("nonblocking");
    s
}

/// Packets waiting on a non-blocking socket (drained).
fn drain(s: &UdpSocket) -> u64 {
    let mut b = [0u8; 2048];
    let mut n = 0;
    while s.recv_from(&mut b).is_ok() {
        n += 1;
    }
    n
}

/// Sprays RTP with a fresh SSRC per packet over `ports` from new source ports, until
/// `stop`; counts what comes back to any of its sockets.
fn spray(
    ports: Vec<u16>,
    stop: Arc<AtomicBool>,
    heard: Arc<AtomicU64>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let socks: Vec<UdpSocket> = (0..4).map(|_| attacker_socket()).collect();
        let mut ssrc = 0x5000_0000u32;
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) {
            for (i, s) in socks.iter().enumerate() {
                for &port in &ports {
                    ssrc = ssrc.wrapping_add(1);
                    let seq = (ssrc & 0xffff) as u16;
                    let p = rtp(seq, u32::from(seq) * 160, ssrc, &[i as u8; 160]);
                    if s.send_to(&p, to(port)).is_ok() {
                        sent += 1;
                    }
                }
                heard.fetch_add(drain(s), Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        for s in &socks {
            heard.fetch_add(drain(s), Ordering::Relaxed);
        }
        sent
    })
}

fn spraying_attacker_never_hears_the_call(backend: Backend, base: u16) {
    let dp = start_with(config(backend, base, 2, Duration::from_millis(1000)));
    let ports: Vec<u16> = (base..base + 8).collect();
    let (stop, heard) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    // Before the call: the ports are not armed yet.
    let attacker = spray(ports, stop.clone(), heard.clone());
    std::thread::sleep(Duration::from_millis(300));
    let h = dp.allocate_pair().expect("pair");
    let (pa, pb) = (peer(), peer());
    pa.set_nonblocking(true).expect("nonblocking");
    pb.set_nonblocking(true).expect("nonblocking");
    dp.update(&h, plain(Some(addr(&pa))), plain(Some(addr(&pb))))
        .expect("update");
    // During the window (the peers wait a little, as a caller does) and long after it.
    std::thread::sleep(Duration::from_millis(300));
    let (mut got_a, mut got_b) = (0u64, 0u64);
    let t0 = Instant::now();
    let mut seq = 0u16;
    while t0.elapsed() < Duration::from_millis(2500) {
        seq = seq.wrapping_add(1);
        pa.send_to(
            &rtp(seq, u32::from(seq) * 160, 0xa, b"caller"),
            to(h.port_a),
        )
        .expect("send");
        pb.send_to(
            &rtp(seq, u32::from(seq) * 160, 0xb, b"callee"),
            to(h.port_b),
        )
        .expect("send");
        std::thread::sleep(Duration::from_millis(20));
        got_a += drain(&pa);
        got_b += drain(&pb);
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let sprayed = attacker.join().expect("attacker");
    got_a += drain(&pa);
    got_b += drain(&pb);
    let s = dp.stats(&h).expect("stats");
    assert_eq!(
        heard.load(Ordering::Relaxed),
        0,
        "{backend:?}: the attacker received media ({s:?})"
    );
    assert!(
        sprayed > 1000,
        "{backend:?}: only {sprayed} packets sprayed"
    );
    // Both ways, all along (a busy machine may lose a few on loopback).
    let sent = u64::from(seq);
    assert!(
        got_a * 10 >= sent * 9,
        "{backend:?}: B->A {got_a} of {sent}"
    );
    assert!(
        got_b * 10 >= sent * 9,
        "{backend:?}: A->B {got_b} of {sent}"
    );
    assert!(s.a.locked && s.b.locked, "{s:?}");
    let rejected = s.a.rtp_source_rejected() + s.b.rtp_source_rejected();
    assert!(rejected > 100, "{backend:?}: spray counted: {s:?}");
    assert_eq!(s.a.dropped(DropReason::NoPeer), 0);
}

/// A leg whose peer went silent (a NAT rebinding: the same host, a new port): with
/// `relearn_after` the new source's stream takes the leg once the silence lasted that
/// long; without it nothing moves the locked leg.
fn nat_rebinding_only_when_allowed(backend: Backend, base: u16) {
    for allowed in [false, true] {
        let base = base + if allowed { 4 } else { 0 };
        let dp = start_with(config(backend, base, 1, Duration::from_millis(200)));
        let h = dp.allocate_pair().expect("pair");
        let (pa, pa_rebound, pb) = (peer(), peer(), peer());
        pa_rebound.set_nonblocking(true).expect("nonblocking");
        let a = StreamParams {
            relearn_after: allowed.then_some(Duration::from_millis(500)),
            ..plain(Some(addr(&pa)))
        };
        dp.update(&h, a, plain(Some(addr(&pb)))).expect("update");
        std::thread::sleep(Duration::from_millis(50));
        for seq in 1..=3u16 {
            pa.send_to(&rtp(seq, 0, 1, b"a"), to(h.port_a))
                .expect("send");
            assert!(recv(&pb).is_some());
        }
        assert!(wait_until(WAIT, || dp
            .stats(&h)
            .is_some_and(|s| s.a.locked)));
        // The NAT rebinds: same host, new port, new stream. At first the silence is
        // too short; then it is long enough.
        let mut moved = false;
        let t0 = Instant::now();
        let mut seq = 100u16;
        while t0.elapsed() < Duration::from_millis(1500) {
            seq += 1;
            pa_rebound
                .send_to(&rtp(seq, 0, 7, b"rebound"), to(h.port_a))
                .expect("send");
            pb.send_to(&rtp(seq, 0, 2, b"b"), to(h.port_b))
                .expect("send");
            std::thread::sleep(Duration::from_millis(20));
            if drain(&pa_rebound) > 0 {
                moved = true;
                break;
            }
        }
        assert_eq!(moved, allowed, "{backend:?}: rebinding allowed = {allowed}");
        let s = dp.stats(&h).expect("stats");
        if allowed {
            // Not before the silence: the first packets from the new port were refused.
            assert!(s.a.rtp_source_rejected() >= 10, "{s:?}");
            assert!(t0.elapsed() >= Duration::from_millis(400));
        } else {
            assert!(s.a.rtp_source_rejected() >= 40, "{s:?}");
            pa.set_nonblocking(true).expect("nonblocking");
            assert!(drain(&pa) >= 40, "B->A still to the old port");
        }
    }
}

both_backends! {
    spraying_attacker_never_hears_the_call => 13600;
    nat_rebinding_only_when_allowed => 13620;
}

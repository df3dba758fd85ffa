//! The raw baseline forwarders forward every datagram unchanged to the fixed peer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use portcullis_benches::rawfwd;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn to(port: u16) -> SocketAddr {
    SocketAddr::new(LO, port)
}

fn peer() -> UdpSocket {
    let s = UdpSocket::bind((LO, 0)).expect("bind peer");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    s
}

fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().expect("local addr")
}

/// A minimal RTP packet (RFC 3550 §5.1), PT 0.
fn rtp(seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn recv(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut b = [0u8; 2048];
    s.recv_from(&mut b)
        .ok()
        .map(|(n, from)| (b[..n].to_vec(), from))
}

fn forwards(uring: bool, port: u16) {
    let sock = rawfwd::bind(to(port)).expect("bind");
    let (tx, rx) = (peer(), peer());
    let dest = addr(&rx);
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let t = std::thread::spawn(move || {
        if uring {
            rawfwd::run_uring(&sock, dest, &s2)
        } else {
            rawfwd::run_mmsg(&sock, dest, &s2)
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(100));
    for i in 0..200u16 {
        let p = rtp(i, 0, 9, &[i as u8; 100]);
        tx.send_to(&p, to(port)).expect("send");
        assert_eq!(recv(&rx).expect("forwarded").0, p);
    }
    stop.store(true, Ordering::Relaxed);
    let st = t.join().expect("join").expect("raw loop");
    assert_eq!(
        (st.rx_packets, st.tx_packets, st.send_errors),
        (200, 200, 0)
    );
}

#[test]
fn raw_mmsg_forwards() {
    forwards(false, 12990);
}

#[test]
fn raw_uring_forwards() {
    forwards(true, 12992);
}

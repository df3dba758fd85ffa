//! Helpers of the registered-file tests: descriptor counts, port probes, a relay check
//! through all legs of a pair that tolerates a loaded machine.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use portcullis_dataplane::{Dataplane, StreamPairHandle};

use super::{addr, peer, plain, rtcp_rr, rtp, to, LO};

/// Descriptors this process has open now.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// `true` when `port` is held by some socket: a plain bind (no `SO_REUSEPORT`) fails with
/// `EADDRINUSE`. Panics on any other outcome than "free" or "in use".
pub fn port_in_use(port: u16) -> bool {
    match UdpSocket::bind((LO, port)) {
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => true,
        Err(e) => panic!("bind probe of port {port}: {e}"),
    }
}

/// Receive until `want` arrives from `from` (other datagrams, e.g. late retries, are
/// skipped), or `None` at the deadline.
fn expect_packet(s: &UdpSocket, want: &[u8], from: u16, within: Duration) -> bool {
    let end = Instant::now() + within;
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut b = [0u8; 2048];
    while Instant::now() < end {
        if let Ok((n, src)) = s.recv_from(&mut b) {
            if b.get(..n) == Some(want) && src == to(from) {
                return true;
            }
        }
    }
    false
}

/// Send `pkt` from `src` to `port` until it comes out of `dst` from `out_port` (the update
/// arming the pair is applied asynchronously), bounded by 10 s.
fn relayed(src: &UdpSocket, port: u16, pkt: &[u8], dst: &UdpSocket, out_port: u16) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        src.send_to(pkt, to(port)).expect("send");
        if expect_packet(dst, pkt, out_port, Duration::from_millis(300)) {
            return true;
        }
    }
    false
}

/// Arm pair `h` (A signalled, not muxed; B signalled, RTCP-muxed) and relay through it:
/// RTP A→B, RTCP from A's port + 1 to B, RTP B→A to A, RTCP B→A out of A's port + 1. Exercises the sockets of A RTP, A RTCP and B RTP in both directions.
pub fn relay_through(dp: &Dataplane, h: &StreamPairHandle, tag: u32) {
    let (pa, pa_rtcp, pb) = (peer(), peer(), peer());
    let mut b = plain(Some(addr(&pb)));
    b.flags.rtcp_mux = true;
    dp.update(h, plain(Some(addr(&pa))), b).expect("update");
    let a2b = rtp(1, 160, tag, &tag.to_be_bytes());
    assert!(
        relayed(&pa, h.port_a, &a2b, &pb, h.port_b),
        "RTP A→B through ports {} → {}",
        h.port_a,
        h.port_b
    );
    assert!(
        relayed(&pa_rtcp, h.port_a + 1, &rtcp_rr(tag), &pb, h.port_b),
        "RTCP A→B through port {}",
        h.port_a + 1
    );
    let b2a = rtp(9, 320, tag ^ 0xffff, b"back");
    assert!(
        relayed(&pb, h.port_b, &b2a, &pa, h.port_a),
        "RTP B→A through ports {} → {}",
        h.port_b,
        h.port_a
    );
    assert!(
        relayed(&pb, h.port_b, &rtcp_rr(tag ^ 1), &pa_rtcp, h.port_a + 1),
        "RTCP B→A out of port {}",
        h.port_a + 1
    );
}

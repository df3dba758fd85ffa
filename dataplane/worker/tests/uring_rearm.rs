//! io_uring only: with a tiny provided-buffer ring a flood exhausts the buffers, the
//! multishot receive terminates with ENOBUFS, and the worker re-arms it and keeps relaying.

mod common;

use std::time::{Duration, Instant};

use common::blaster::{bind_flood, Blaster};
use common::*;
use portcullis_dataplane::{Backend, DataplaneConfig};

#[test]
fn multishot_rearmed_after_buffer_exhaustion() {
    let dp = start_with(DataplaneConfig {
        port_min: 13400,
        port_max: 13407,
        backend: Backend::IoUring,
        uring_buffers: 8,
        ..DataplaneConfig::default()
    });
    let h = dp.allocate_pair().expect("pair");
    let pb = peer();
    let flood = bind_flood(to(0)).expect("socket");
    let from = flood.local_addr().ok().and_then(|a| a.as_socket());
    dp.update(&h, plain(from), plain(Some(addr(&pb))))
        .expect("update");
    std::thread::sleep(Duration::from_millis(50));
    let mut bl = Blaster::default();
    let t0 = Instant::now();
    let mut seq = 0u16;
    while seq < 20_000 && t0.elapsed() < Duration::from_secs(3) {
        bl.send(&flood, Blaster::BATCH, |_, b| {
            seq = seq.wrapping_add(1);
            let p = rtp(seq, 0, 1, &[1; 160]);
            b[..p.len()].copy_from_slice(&p);
            (to(h.port_a), p.len())
        });
    }
    assert!(
        wait_until(Duration::from_secs(3), || {
            let w = dp.worker_stats()[0];
            w.enobufs > 0 && w.rearms > 0
        }),
        "no ENOBUFS/re-arm seen: {:?}",
        dp.worker_stats()[0]
    );
    // Drain what was relayed, then check the stream still flows.
    pb.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    while recv(&pb).is_some() {}
    pb.set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("timeout");
    let marker = rtp(seq.wrapping_add(1), 0, 1, b"after-the-flood");
    let mut ok = false;
    for _ in 0..20 {
        flood
            .send_to(&marker, &socket2::SockAddr::from(to(h.port_a)))
            .expect("send");
        if let Some((got, _)) = recv(&pb) {
            if got == marker {
                ok = true;
                break;
            }
        }
    }
    assert!(
        ok,
        "relay did not resume after re-arm: {:?}",
        dp.worker_stats()[0]
    );
}

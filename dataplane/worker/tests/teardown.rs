//! Teardown of a large io_uring slice: every in-flight request comes back before the ring
//! goes (no buffers leaked to the kernel) and the ports are free the moment the data plane
//! is dropped, ready for a restart. A cancel-all request costs the kernel a scan of
//! everything in flight per request it finds; on 16,000 sockets that overran the teardown's
//! 2 s bound, leaked the buffers and left the ports to the kernel's asynchronous clean-up.
//!
//! Ports 16000-31999: the appliance tests' blocks, in another test binary (cargo runs test
//! binaries one at a time); below the ephemeral range.

mod common;

use common::fixed::port_in_use;
use common::*;
use portcullis_dataplane::{Backend, DataplaneConfig, WorkerId};

const BASE: u16 = 16000;
const PORTS: u16 = 16000;

#[test]
fn a_large_io_uring_slice_is_torn_down_whole_and_its_ports_freed() {
    let dp = start_with(DataplaneConfig {
        port_min: BASE,
        port_max: BASE + PORTS - 1,
        backend: Backend::IoUring,
        ..DataplaneConfig::default()
    });
    // Traffic through one pair, so sends and receives have been in flight too.
    let h = dp.allocate_pair().expect("pair");
    let (a, b) = (peer(), peer());
    dp.update(&h, plain(Some(addr(&a))), plain(Some(addr(&b))))
        .expect("update");
    // The update reaches the worker through its ring: send until a packet comes through.
    let mut buf = [0u8; 64];
    let relayed = (0..30).any(|seq| {
        a.send_to(&rtp(seq, 0, 7, b"x"), to(h.port_a))
            .expect("send");
        b.recv_from(&mut buf).is_ok()
    });
    assert!(relayed, "nothing relayed through the pair");
    let workers: Vec<_> = (0..dp.worker_stats().len())
        .map(|w| {
            dp.worker_counters(WorkerId(u16::try_from(w).expect("few workers")))
                .expect("worker")
        })
        .collect();
    drop(dp);
    for (w, c) in workers.iter().enumerate() {
        assert_eq!(
            c.worker.snapshot().teardown_leaks,
            0,
            "worker {w} leaked its buffers at teardown"
        );
    }
    for port in [BASE, BASE + PORTS / 2, BASE + PORTS - 1] {
        assert!(!port_in_use(port), "port {port} still bound after the drop");
    }
}

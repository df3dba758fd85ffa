//! Zero heap allocations per packet in steady state (STYLE practice 8), on both backends.
//!
//! A counting global allocator counts allocations made on data-plane worker threads (flagged
//! through `DataplaneConfig::on_worker_start`) while armed; the relay runs a warm-up, then
//! the counter is armed for a few thousand relayed packets (plain, SRTP→RTP and RTP→SRTP).

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::counting::{mark_worker, Counting, ALLOCS, ARMED};
use common::*;
use portcullis_dataplane::{Backend, DataplaneConfig, StreamParams};
use portcullis_rtp::srtp::SrtpSession;

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Relay `n` packets on each of three pairs, waiting for each to come out.
fn run_traffic(
    pairs: &[(
        std::net::UdpSocket,
        std::net::UdpSocket,
        u16,
        Option<SrtpSession>,
    )],
    seq0: u16,
    n: u16,
) -> u64 {
    let mut relayed = 0;
    let mut buf = [0u8; 512];
    for i in 0..n {
        let seq = seq0.wrapping_add(i);
        for (tx, rx, port, srtp) in pairs {
            let p = rtp(seq, u32::from(seq) * 160, 0x4242, &[0x55; 160]);
            buf[..p.len()].copy_from_slice(&p);
            let mut len = p.len();
            if let Some(s) = srtp {
                let mut s = s.clone();
                len = s.protect_rtp(&mut buf, len).expect("protect");
            }
            tx.send_to(&buf[..len], to(*port)).expect("send");
            if recv(rx).is_some() {
                relayed += 1;
            }
        }
    }
    relayed
}

fn check(backend: Backend, base: u16) {
    // Positive control: the backend's start-up allocations on the worker thread are seen.
    ALLOCS.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    let dp = start_with(DataplaneConfig {
        port_min: base,
        port_max: base + 15,
        backend,
        on_worker_start: Some(mark_worker),
        ..DataplaneConfig::default()
    });
    assert!(
        wait_until(Duration::from_secs(2), || ALLOCS.load(Ordering::SeqCst) > 0),
        "{backend:?}: the counting allocator does not see the worker thread"
    );
    ARMED.store(false, Ordering::SeqCst);
    let k = keys(4);
    let mut pairs = Vec::new();
    for mode in 0..3 {
        let h = dp.allocate_pair().expect("pair");
        let (pa, pb) = (peer(), peer());
        let (a, b, sender) = match mode {
            0 => (plain(Some(addr(&pa))), plain(Some(addr(&pb))), None),
            1 => (
                StreamParams {
                    srtp_in: Some(k),
                    ..plain(Some(addr(&pa)))
                },
                plain(Some(addr(&pb))),
                Some(SrtpSession::new(&k)),
            ),
            _ => (
                plain(Some(addr(&pa))),
                StreamParams {
                    srtp_out: Some(k),
                    ..plain(Some(addr(&pb)))
                },
                None,
            ),
        };
        dp.update(&h, a, b).expect("update");
        pairs.push((pa, pb, h.port_a, sender));
    }
    std::thread::sleep(Duration::from_millis(50));
    // Warm-up: latching, first SRTP streams, lazily sized state.
    assert_eq!(run_traffic(&pairs, 0, 100), 300, "{backend:?} warm-up");
    // (The test's SRTP sender is cloned per packet; the ROC stays 0 and sequence numbers
    // never repeat across runs, so nothing is a replay.)
    ALLOCS.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    let relayed = run_traffic(&pairs, 1000, 700);
    // Let housekeeping run at least once inside the window.
    std::thread::sleep(Duration::from_millis(120));
    ARMED.store(false, Ordering::SeqCst);
    assert_eq!(relayed, 2100, "{backend:?}: every packet relayed");
    assert_eq!(
        ALLOCS.load(Ordering::SeqCst),
        0,
        "{backend:?}: worker allocated on the packet path"
    );
    let ws = dp.worker_stats();
    assert!(ws[0].tx_packets >= 2400);
}

#[test]
fn zero_allocations_per_packet_both_backends() {
    check(Backend::Mmsg, 12600);
    check(Backend::IoUring, 12700);
}

//! Overload: a bounded flood above what one worker relays. The worker keeps relaying,
//! loss is spread fairly across streams, control commands still get through, and drops
//! are counted by reason.
//!
//! Whether a generator outruns a worker depends on the build and the machine (a release
//! worker keeps up with one sending thread here). So the test makes the overload itself:
//! the worker is held still (`quiesce`) for part of every cycle of the flood, its sockets'
//! queues fill and the kernel drops the rest, as when a burst outruns a busy core. What is
//! checked is the behaviour under that, whatever the speed of either side.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::blaster::{bind_flood, Blaster};
use common::*;
use portcullis_dataplane::{Backend, DropReason, Event, Side};

const STREAMS: usize = 8;
/// Flood bound: packets and time, whichever comes first.
const FLOOD_PACKETS: u64 = 2_000_000;
const FLOOD_TIME: Duration = Duration::from_secs(3);

fn overload(backend: Backend, base: u16) {
    let dp = Arc::new(start(backend, base, STREAMS as u16 + 2));
    // The sink is never read: its queue overflows in the kernel, which is fine.
    let sink = peer();
    let flood_sock = bind_flood(to(0)).expect("flood socket");
    let flood_addr = flood_sock.local_addr().ok().and_then(|a| a.as_socket());
    let mut handles = Vec::new();
    for _ in 0..STREAMS {
        let h = dp.allocate_pair().expect("pair");
        // RTP→SRTP: the worker protects every packet, so a plain generator easily
        // outruns it even on a two-core machine.
        let b = portcullis_dataplane::StreamParams {
            srtp_out: Some(keys(5)),
            ..plain(Some(addr(&sink)))
        };
        dp.update(&h, plain(flood_addr), b).expect("update");
        handles.push(h);
    }
    std::thread::sleep(Duration::from_millis(50));
    let dests: Vec<SocketAddr> = handles.iter().map(|h| to(h.port_a)).collect();
    // One packet on every stream first (their signalled peer is the flood socket).
    let mut bl = Blaster::default();
    for (i, d) in dests.iter().enumerate() {
        bl.send(&flood_sock, 1, |_, b| {
            let p = rtp(0, 0, i as u32 + 1, &[0; 160]);
            b[..p.len()].copy_from_slice(&p);
            (*d, p.len())
        });
    }
    assert!(wait_until(Duration::from_secs(3), || dp.worker_stats()[0]
        .tx_packets
        > 0));

    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let d2 = dests.clone();
    let flood = std::thread::spawn(move || {
        let mut bl = Blaster::default();
        let mut sent = 0u64;
        let mut k = 0usize;
        let t0 = Instant::now();
        while sent < FLOOD_PACKETS && t0.elapsed() < FLOOD_TIME && !s2.load(Ordering::Relaxed) {
            sent += bl.send(&flood_sock, Blaster::BATCH, |_, b| {
                let s = k % STREAMS;
                k += 1;
                let seq = (k / STREAMS) as u16;
                // One packet in 100 is garbage (counted as malformed).
                if k.is_multiple_of(100) {
                    b[..40].fill(0xff);
                    return (d2[s], 40);
                }
                b[0] = 0x80;
                b[1] = 0;
                b[2..4].copy_from_slice(&seq.to_be_bytes());
                b[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
                b[8..12].copy_from_slice(&(s as u32 + 1).to_be_bytes());
                (d2[s], 172)
            }) as u64;
        }
        (sent, t0.elapsed())
    });

    // The worker is held still for 150 ms of every 250 ms while the flood runs.
    let worker = handles[0].worker;
    let holds = {
        let stop = stop.clone();
        let dp = dp.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            while !stop.load(Ordering::Relaxed) && t0.elapsed() < FLOOD_TIME {
                dp.quiesce(worker, Duration::from_millis(150))
                    .expect("quiesce");
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };

    // Commands during the flood: a new pair gets armed and latches.
    std::thread::sleep(Duration::from_millis(300));
    let late = dp.allocate_pair().expect("pair under load");
    let (pa, pb) = (peer(), peer());
    dp.update(&late, plain(None), plain(Some(addr(&pb))))
        .expect("command accepted under load");
    let mut latched = false;
    let t0 = Instant::now();
    let mut seq = 0u16;
    while !latched && t0.elapsed() < Duration::from_secs(2) {
        // A valid stream (in sequence, one SSRC) from a source nobody signalled.
        seq += 1;
        pa.send_to(&rtp(seq, 0, 77, b"late"), to(late.port_a))
            .expect("send");
        std::thread::sleep(Duration::from_millis(20));
        latched = dp
            .poll_events()
            .any(|e| matches!(e, Event::Latched { handle, side: Side::A, .. } if handle == late));
    }
    assert!(
        latched,
        "{backend:?}: command under flood did not take effect"
    );
    let (sent, took) = flood.join().expect("flood thread");
    stop.store(true, Ordering::Relaxed);
    holds.join().expect("hold thread");
    std::thread::sleep(Duration::from_millis(200));
    // A stranger on a flood stream: refused for its source. Sent once the
    // flood is over, as during it the kernel may drop it on the full socket queue before
    // the worker ever sees it (and then nothing is ours to count).
    let intruder = peer();
    let counted = wait_until(Duration::from_secs(2), || {
        intruder
            .send_to(&rtp(1, 0, 1, b"x"), dests[0])
            .expect("send");
        std::thread::sleep(Duration::from_millis(10));
        dp.worker_stats()[0].dropped(DropReason::RtpSourceRejected) > 0
    });

    let per_stream: Vec<u64> = handles
        .iter()
        .map(|h| dp.stats(h).expect("stats").b.tx_packets)
        .collect();
    let total: u64 = per_stream.iter().sum();
    let ws = dp.worker_stats()[0];
    let pps = total as f64 / took.as_secs_f64();
    println!(
        "{backend:?}: flood sent={sent} in {took:?}, relayed={total} ({pps:.0} pps), per stream {per_stream:?}, \
         worker rx={} drops={:?}",
        ws.rx_packets, ws.drops
    );
    assert!(
        total > 1000,
        "{backend:?}: worker stopped relaying under flood"
    );
    assert!(
        sent as f64 >= 1.5 * total as f64,
        "{backend:?}: the flood ({sent}) was not an overload: {total} relayed"
    );
    let (min, max) = (
        *per_stream.iter().min().expect("streams"),
        *per_stream.iter().max().expect("streams"),
    );
    assert!(
        min * 2 >= max,
        "{backend:?}: loss not spread fairly: {per_stream:?}"
    );
    assert!(
        ws.dropped(DropReason::Malformed) > 0,
        "malformed not counted"
    );
    assert!(counted, "{backend:?}: not-latched source not counted");
    // Everything received was either relayed or dropped with a reason.
    let dropped: u64 = ws.drops.iter().sum();
    assert!(ws.tx_packets + dropped >= ws.rx_packets.saturating_sub(1));
}

#[test]
fn overload_mmsg() {
    overload(Backend::Mmsg, 13000);
}

#[test]
fn overload_io_uring() {
    overload(Backend::IoUring, 13100);
}

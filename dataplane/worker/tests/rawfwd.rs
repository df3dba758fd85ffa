//! The raw baseline forwarders forward every datagram unchanged to the fixed peer.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use portcullis_dataplane::rawfwd;

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

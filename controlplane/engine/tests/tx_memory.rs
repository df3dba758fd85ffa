//! The memory bound per pending transaction, measured with a counting allocator:
//! heap bytes held by the B2BUA per INVITE left pending (a trunk's INVITE whose
//! callee never answers: its A-leg server transaction, call, B-leg client
//! transaction and timers), and per unknown-source INVITE (answered statelessly:
//! nothing). docs/operator-guide.md states the bound this test enforces.

#[path = "b2bua_harness.rs"]
mod harness;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

use harness::*;

static LIVE: AtomicI64 = AtomicI64::new(0);

struct Counting;

fn size(l: Layout) -> i64 {
    i64::try_from(l.size()).unwrap_or(i64::MAX)
}

// SAFETY: forwards to the system allocator unchanged; only counts live bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(size(l), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(size(l), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(size(l), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(
            i64::try_from(n).unwrap_or(i64::MAX) - size(l),
            Ordering::Relaxed,
        );
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes of state a pending call (one trunk INVITE, callee silent) may hold at most.
const PER_PENDING_CALL: i64 = 32 * 1024;

#[test]
fn pending_invites_hold_a_bounded_amount_of_memory_and_unknown_ones_none() {
    let mut h = H::new();
    // Callee never answers: everything it is sent is lost.
    h.drop_to.push(sa(B1));
    h.drop_to.push(sa(B2));
    let n = 2_000;
    h.invite_from(A, "warm", Some(&sdp("192.168.1.10", 10_000, "")));
    h.a.wire = Vec::with_capacity(0);
    h.a.events = Vec::with_capacity(0);
    h.events = Vec::with_capacity(0);
    let before = LIVE.load(Ordering::Relaxed);
    for i in 0..n {
        let now = h.now;
        h.a.invite(
            now,
            &format!("7{i:05}"),
            Some(&sdp("192.168.1.10", 10_000, "")),
        );
        h.pump();
        // What the harness records about the peers is not the engine's.
        h.a.wire.clear();
        h.a.events.clear();
        h.events.clear();
    }
    let sbc_and_peer = LIVE.load(Ordering::Relaxed) - before;
    assert_eq!(h.sbc.active_calls(), n + 1);
    // The peer A keeps its own client transactions: measure them apart and subtract.
    let peer_before = LIVE.load(Ordering::Relaxed);
    let mut peer = Peer::new("10.0.0.9:5060", 9);
    for i in 0..n {
        peer.invite(
            h.now,
            &format!("7{i:05}"),
            Some(&sdp("192.168.1.10", 10_000, "")),
        );
        while peer.layer.poll_transmit().is_some() {}
    }
    let peer_only = LIVE.load(Ordering::Relaxed) - peer_before;
    let per_call = (sbc_and_peer - peer_only) / i64::try_from(n).unwrap();
    assert!(
        per_call < PER_PENDING_CALL,
        "{per_call} bytes per pending call"
    );
    drop(peer);

    // Unknown sources: answered statelessly, nothing kept (beyond their rate-table slot).
    let mut h = H::new();
    let before = LIVE.load(Ordering::Relaxed);
    for i in 0..n {
        let src = format!("198.18.{}.{}:5060", i / 250, 1 + i % 250);
        let bytes = format!(
            "INVITE sip:1@{SBC} SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bKm{i}\r\n\
             From: <sip:x@{src}>;tag=t{i}\r\nTo: <sip:1@{SBC}>\r\nCall-ID: m{i}\r\n\
             CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        h.sbc
            .handle_datagram(h.now, udp(sa(&src)), bytes.as_bytes());
        while h.sbc.poll_transmit().is_some() {}
        while h.sbc.poll_event().is_some() {}
    }
    let per_unknown = (LIVE.load(Ordering::Relaxed) - before) / i64::try_from(n).unwrap();
    assert_eq!(h.sbc.transactions(), 0);
    assert!(per_unknown < 512, "{per_unknown} bytes per unknown INVITE");
}

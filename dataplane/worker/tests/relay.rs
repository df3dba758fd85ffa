//! Loopback relay behaviour on both backends: learning a peer, the lock (an SSRC change
//! never moves a leg, signalling does), RTCP (muxed and on port + 1), STUN, SRTP
//! replay/tamper rejection, inactivity, stale commands, full ring.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::*;
use portcullis_dataplane::{
    Backend, Dataplane, DataplaneConfig, DataplaneError, DropReason, EndpointLearning, Event,
    IceLite, Side, StreamFlags, StreamPairHandle, StreamParams,
};
use portcullis_rtp::srtp::SrtpSession;
use portcullis_rtp::stun::{build_binding_request, BindingRequest, StunMessage};

/// What `start(backend, base, pairs)` runs with (ports `base..base + 4 * pairs`), for a test
/// to adjust before `start_with`.
fn config(backend: Backend, base: u16, pairs: u16) -> DataplaneConfig {
    DataplaneConfig {
        port_min: base,
        port_max: base + pairs * 4 - 1,
        backend,
        ..DataplaneConfig::default()
    }
}

fn learning(backend: Backend, base: u16) {
    let dp = start(backend, base, 2);
    let h = dp.allocate_pair().expect("pair");
    let (pa, pb, intruder) = (peer(), peer(), peer());
    // A's address unknown (learnt from its stream), B's signalled.
    update_and_settle(&dp, &h, plain(None), plain(Some(addr(&pb))));
    // Two packets in sequence are not a stream yet; the third is.
    for seq in 1..=3u16 {
        pa.send_to(&rtp(seq, 160, 0xaaaa, b"hello-a"), to(h.port_a))
            .expect("send");
    }
    let (got, from) = recv(&pb).expect("A->B relayed");
    assert_eq!(got, rtp(3, 160, 0xaaaa, b"hello-a"), "payload untouched");
    assert_eq!(from, to(h.port_b), "leaves from leg B's port");
    let ev = wait_event(&dp, WAIT, |e| {
        matches!(e, Event::Latched { side: Side::A, .. })
    });
    assert_eq!(
        ev,
        Some(Event::Latched {
            handle: h,
            side: Side::A,
            addr: addr(&pa)
        })
    );
    // B → A goes to the learnt source.
    pb.send_to(&rtp(7, 160, 0xbbbb, b"hello-b"), to(h.port_b))
        .expect("send");
    let (got, from) = recv(&pa).expect("B->A relayed to the learnt source");
    assert_eq!(got, rtp(7, 160, 0xbbbb, b"hello-b"));
    assert_eq!(from, to(h.port_a));
    // DTMF (RFC 4733, dynamic PT 101) is forwarded untouched.
    let mut dtmf = rtp(4, 320, 0xaaaa, &[5, 0x8a, 0x03, 0x20]);
    dtmf[1] = 101 | 0x80;
    pa.send_to(&dtmf, to(h.port_a)).expect("send");
    assert_eq!(recv(&pb).expect("dtmf").0, dtmf);
    // Same SSRC from another source: refused (it ranks no better than the learnt one).
    intruder
        .send_to(&rtp(5, 480, 0xaaaa, b"spoof"), to(h.port_a))
        .expect("send");
    assert!(recv_none(&pb).is_none(), "intruder must not be relayed");
    assert!(wait_until(WAIT, || {
        dp.stats(&h)
            .is_some_and(|s| s.a.dropped(DropReason::RtpSourceRejected) == 3)
    }));
    let s = dp.stats(&h).expect("stats");
    assert_eq!(s.a.rx_packets, 5);
    assert_eq!(s.b.tx_packets, 2);
}

/// After the learning window a leg is locked: a new source with a new SSRC and a valid
/// stream is refused; a re-INVITE (an update with a new address) moves it.
fn the_lock_and_signalling(backend: Backend, base: u16) {
    let dp = start_with(DataplaneConfig {
        learning_window: Duration::from_millis(300),
        ..config(backend, base, 2)
    });
    let h = dp.allocate_pair().expect("pair");
    let (pa, pa2, pb) = (peer(), peer(), peer());
    update_and_settle(&dp, &h, plain(Some(addr(&pa))), plain(Some(addr(&pb))));
    pa.send_to(&rtp(1, 0, 1, b"a"), to(h.port_a)).expect("send");
    assert!(recv(&pb).is_some());
    assert!(
        wait_until(WAIT, || dp
            .stats(&h)
            .is_some_and(|s| s.a.locked && s.b.locked)),
        "locked once the window is over"
    );
    for seq in 1..=10u16 {
        pa2.send_to(&rtp(seq, 0, 11, b"a2"), to(h.port_a))
            .expect("send");
    }
    assert!(
        recv_none(&pb).is_none(),
        "a new SSRC does not move a locked leg"
    );
    assert!(wait_until(WAIT, || {
        dp.stats(&h)
            .is_some_and(|s| s.a.dropped(DropReason::RtpSourceRejected) == 10)
    }));
    pb.send_to(&rtp(1, 0, 2, b"b"), to(h.port_b)).expect("send");
    assert!(recv(&pa).is_some(), "B->A still to the signalled peer");
    assert!(recv_none(&pa2).is_none());
    // Signalling moves it, and opens a new window.
    update_and_settle(&dp, &h, plain(Some(addr(&pa2))), plain(Some(addr(&pb))));
    assert!(!dp.stats(&h).expect("stats").a.locked, "learning again");
    pb.send_to(&rtp(2, 0, 2, b"b2"), to(h.port_b))
        .expect("send");
    assert!(recv(&pa2).is_some(), "B->A follows the signalling");
    pa2.send_to(&rtp(11, 0, 11, b"a2"), to(h.port_a))
        .expect("send");
    assert_eq!(recv(&pb).expect("relayed").0, rtp(11, 0, 11, b"a2"));
}

fn rtcp_mux_and_port_plus_one(backend: Backend, base: u16) {
    let dp = start(backend, base, 2);
    let h = dp.allocate_pair().expect("pair");
    let (pa, pa_rtcp, pb) = (peer(), peer(), peer());
    let mut b = plain(Some(addr(&pb)));
    b.flags.rtcp_mux = true;
    update_and_settle(&dp, &h, plain(Some(addr(&pa))), b);
    pa.send_to(&rtp(1, 0, 5, b"m"), to(h.port_a)).expect("send");
    assert!(recv(&pb).is_some());
    // A's RTCP on port + 1 (from the heard peer's address) → B muxed: arrives from B's
    // RTP port.
    pa_rtcp
        .send_to(&rtcp_rr(5), to(h.port_a + 1))
        .expect("send");
    let (got, from) = recv(&pb).expect("rtcp relayed");
    assert_eq!(got, rtcp_rr(5));
    assert_eq!(from, to(h.port_b));
    // B's muxed RTCP → A not muxed: out of A's RTCP port to the latched RTCP source.
    pb.send_to(&rtcp_rr(6), to(h.port_b)).expect("send");
    let (got, from) = recv(&pa_rtcp).expect("rtcp back");
    assert_eq!(got, rtcp_rr(6));
    assert_eq!(from, to(h.port_a + 1));
    // RTP never goes to the RTCP peer.
    assert!(recv_none(&pa).is_none());
}

fn stun_binding_answer(backend: Backend, base: u16) {
    let dp = start(backend, base, 2);
    let h = dp.allocate_pair().expect("pair");
    let pa = peer();
    let mut a = plain(None);
    a.ice = Some(IceLite::new("sbcufrag", "sbcpassword0123456789xyz").expect("creds"));
    update_and_settle(&dp, &h, a, plain(None));
    let mut req = [0u8; 512];
    let n = build_binding_request(
        &BindingRequest {
            transaction_id: [7; 12],
            username: b"sbcufrag:teamsufrag",
            key: b"sbcpassword0123456789xyz",
            priority: 1,
            use_candidate: true,
            tie_breaker: 42,
        },
        &mut req,
    )
    .expect("request");
    pa.send_to(&req[..n], to(h.port_a)).expect("send");
    let (resp, from) = recv(&pa).expect("binding response");
    assert_eq!(from, to(h.port_a));
    let m = StunMessage::new_checked(&resp).expect("stun response");
    assert_eq!(m.msg_type(), 0x0101, "binding success");
    assert_eq!(m.transaction_id(), [7; 12]);
    assert_eq!(m.xor_mapped_address(), Some(addr(&pa)));
    m.verify_integrity(b"sbcpassword0123456789xyz")
        .expect("integrity with our password");
    // Leg B has no credentials: STUN is dropped and counted.
    pa.send_to(&req[..n], to(h.port_b)).expect("send");
    assert!(recv_none(&pa).is_none());
    assert!(wait_until(WAIT, || dp.stats(&h).is_some_and(|s| s
        .b
        .dropped(DropReason::Stun)
        == 1
        && s.a.stun_answered == 1)));
    // The answer is the only packet leg A sent; nothing was relayed to B.
    let s = dp.stats(&h).expect("stats");
    assert_eq!((s.a.tx_packets, s.a.tx_bytes), (1, resp.len() as u64));
    assert_eq!((s.b.tx_packets, s.b.tx_bytes), (0, 0));
}

/// An SRTP → RTP pair `(dp, h, pa, pb, tx)` with the crate's own SRTP sender `tx` (interop
/// with libsrtp is separate): leg A decrypts what `pa` sends, leg B relays it to `pb`.
fn srtp_to_rtp(
    backend: Backend,
    base: u16,
    threshold: u64,
    key_seed: u8,
) -> (
    Dataplane,
    StreamPairHandle,
    UdpSocket,
    UdpSocket,
    SrtpSession,
) {
    let dp = start_with(DataplaneConfig {
        srtp_fail_threshold: threshold,
        ..config(backend, base, 2)
    });
    let h = dp.allocate_pair().expect("pair");
    let (pa, pb) = (peer(), peer());
    let k = keys(key_seed);
    let a = StreamParams {
        srtp_in: Some(k),
        ..plain(Some(addr(&pa)))
    };
    update_and_settle(&dp, &h, a, plain(Some(addr(&pb))));
    (dp, h, pa, pb, SrtpSession::new(&k))
}

/// The RTP packet `p` protected by `tx`.
fn protect(tx: &mut SrtpSession, p: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; 256];
    buf[..p.len()].copy_from_slice(p);
    let n = tx.protect_rtp(&mut buf, p.len()).expect("protect");
    buf[..n].to_vec()
}

fn replay_rejected(backend: Backend, base: u16) {
    let (dp, h, pa, pb, mut tx) = srtp_to_rtp(backend, base, 100, 1);
    let p = rtp(100, 1600, 0x1234, b"secret payload");
    let srtp = protect(&mut tx, &p);
    pa.send_to(&srtp, to(h.port_a)).expect("send");
    assert_eq!(
        recv(&pb).expect("decrypted").0,
        p,
        "SRTP→RTP yields the original"
    );
    pa.send_to(&srtp, to(h.port_a)).expect("replay");
    assert!(recv_none(&pb).is_none(), "replayed packet must be dropped");
    assert!(wait_until(WAIT, || dp
        .stats(&h)
        .is_some_and(|s| s.a.dropped(DropReason::Replay) == 1)));
    let ws = dp.worker_stats();
    assert_eq!(ws[0].srtp_failures, 1);
}

fn tampered_rejected(backend: Backend, base: u16) {
    let (dp, h, pa, pb, mut tx) = srtp_to_rtp(backend, base, 3, 9);
    for seq in 0..4u16 {
        let p = rtp(seq, 160 * u32::from(seq), 0x5678, b"payload to tamper");
        let mut srtp = protect(&mut tx, &p);
        srtp[14] ^= 0x01; // flip a ciphertext bit
        pa.send_to(&srtp, to(h.port_a)).expect("send");
    }
    assert!(recv_none(&pb).is_none(), "tampered packets must not pass");
    let ev = wait_event(&dp, WAIT, |e| matches!(e, Event::SrtpAuthFailures { .. }));
    match ev {
        Some(Event::SrtpAuthFailures {
            handle,
            side: Side::A,
            count,
        }) => {
            assert_eq!(handle, h);
            assert!(count >= 3);
        }
        other => panic!("expected SrtpAuthFailures, got {other:?}"),
    }
    let s = dp.stats(&h).expect("stats");
    assert_eq!(s.a.dropped(DropReason::SrtpAuth), 4);
}

fn inactivity_event(backend: Backend, base: u16) {
    let dp = start_with(DataplaneConfig {
        inactivity_timeout: Duration::from_millis(300),
        ..config(backend, base, 2)
    });
    let h = dp.allocate_pair().expect("pair");
    let (pa, pb) = (peer(), peer());
    dp.update(&h, plain(Some(addr(&pa))), plain(Some(addr(&pb))))
        .expect("update");
    // Keep media flowing for longer than the timeout: no event.
    for i in 0..8u16 {
        pa.send_to(&rtp(i, 0, 1, b"k"), to(h.port_a)).expect("send");
        std::thread::sleep(Duration::from_millis(60));
    }
    assert!(
        !dp.poll_events()
            .any(|e| matches!(e, Event::Inactive { .. })),
        "no inactivity while media flows"
    );
    let ev = wait_event(&dp, WAIT, |e| matches!(e, Event::Inactive { .. }));
    assert_eq!(ev, Some(Event::Inactive { handle: h }));
    assert!(recv(&pb).is_some());
}

fn stale_generation_is_noop(backend: Backend, base: u16) {
    let dp = start(backend, base, 1);
    let old = dp.allocate_pair().expect("pair");
    let (pb_old, pb_new, pa) = (peer(), peer(), peer());
    dp.update(&old, plain(None), plain(Some(addr(&pb_old))))
        .expect("update");
    dp.remove(&old).expect("remove");
    let new = dp.allocate_pair().expect("slot reused");
    assert_eq!((new.pair, new.port_a), (old.pair, old.port_a));
    assert_ne!(new.generation, old.generation);
    assert!(matches!(
        dp.update(&old, plain(None), plain(None)),
        Err(DataplaneError::Stale)
    ));
    assert!(matches!(dp.remove(&old), Err(DataplaneError::Stale)));
    dp.update(&new, plain(Some(addr(&pa))), plain(Some(addr(&pb_new))))
        .expect("update new");
    let before = dp.worker_stats()[0].stale_commands;
    // A late command for the old generation reaches the worker and must change nothing.
    dp.update_unchecked(&old, plain(None), plain(Some(addr(&pb_old))))
        .expect("push");
    assert!(wait_until(WAIT, || dp.worker_stats()[0].stale_commands == before + 1));
    pa.send_to(&rtp(1, 0, 3, b"n"), to(new.port_a))
        .expect("send");
    assert!(recv(&pb_new).is_some(), "new generation's peer still used");
    assert!(recv_none(&pb_old).is_none());
    assert!(dp.stats(&old).is_none(), "old handle has no stats");
}

fn full_ring_is_error(backend: Backend, base: u16) {
    let dp = start_with(DataplaneConfig {
        ring_capacity: 4,
        ..config(backend, base, 2)
    });
    let h = dp.allocate_pair().expect("pair");
    let w = h.worker;
    // Hold the worker still, then fill its ring.
    dp.quiesce(w, Duration::from_millis(500)).expect("quiesce");
    std::thread::sleep(Duration::from_millis(50));
    let mut full = None;
    for i in 0..5 {
        if let Err(e) = dp.update(&h, plain(None), plain(None)) {
            full = Some((i, e));
            break;
        }
    }
    match full {
        Some((4, DataplaneError::RingFull(id))) => assert_eq!(id, w),
        other => panic!("expected RingFull on the 5th push, got {other:?}"),
    }
    // The metrics see it: a full ring and one refusal.
    let depth = dp.ring_depths()[usize::from(w.0)];
    assert_eq!(
        (depth.commands, depth.capacity, depth.command_overflows),
        (4, 4, 1)
    );
    // Once the worker resumes, commands flow again.
    assert!(wait_until(WAIT, || dp
        .update(&h, plain(None), plain(None))
        .is_ok()));
    assert!(wait_until(WAIT, || dp.ring_depths()[usize::from(w.0)]
        .commands
        == 0));
}

fn learning_off_forwards_to_signalled(backend: Backend, base: u16) {
    let dp = start(backend, base, 1);
    let h = dp.allocate_pair().expect("pair");
    let (pa, pa_other, pb) = (peer(), peer(), peer());
    let off = StreamFlags {
        learning: EndpointLearning::Off,
        ..StreamFlags::default()
    };
    let a = StreamParams {
        peer: Some(addr(&pa)),
        flags: off,
        ..StreamParams::default()
    };
    update_and_settle(&dp, &h, a, plain(Some(addr(&pb))));
    pa_other
        .send_to(&rtp(1, 0, 1, b"z"), to(h.port_a))
        .expect("send");
    assert!(recv(&pb).is_some(), "any source is relayed");
    pb.send_to(&rtp(1, 0, 2, b"y"), to(h.port_b)).expect("send");
    assert!(
        recv(&pa).is_some(),
        "goes to the signalled peer, not the source"
    );
    assert!(recv_none(&pa_other).is_none());
    assert!(dp
        .poll_events()
        .all(|e| !matches!(e, Event::Latched { side: Side::A, .. })));
}

fn event_ring_overflow_is_reported(backend: Backend, base: u16) {
    let dp = start_with(DataplaneConfig {
        ring_capacity: 2,
        ..config(backend, base, 3)
    });
    let pb = peer();
    let pa = peer();
    let hs: Vec<_> = (0..3).map(|_| dp.allocate_pair().expect("pair")).collect();
    for h in &hs {
        // The command ring is tiny too: retry a refused push (bounded).
        assert!(wait_until(WAIT, || dp
            .update(h, plain(None), plain(Some(addr(&pb))))
            .is_ok()));
    }
    std::thread::sleep(Duration::from_millis(50));
    // Three latch events into a ring of two, nobody polling (each leg A learns pa from
    // its stream's third packet).
    for h in &hs {
        for seq in 1..=3u16 {
            pa.send_to(&rtp(seq, 0, 1, b"e"), to(h.port_a))
                .expect("send");
        }
        assert!(recv(&pb).is_some());
    }
    assert!(wait_until(WAIT, || dp.worker_stats()[0].events_lost == 1));
    let evs: Vec<Event> = dp.poll_events().collect();
    assert_eq!(
        evs.iter()
            .filter(|e| matches!(e, Event::Latched { .. }))
            .count(),
        2
    );
    assert!(evs.contains(&Event::RingOverflow {
        worker: hs[0].worker,
        lost: 1
    }));
    assert!(dp.poll_events().next().is_none(), "overflow reported once");
}

fn rtp_statistics_published(backend: Backend, base: u16) {
    let dp = start(backend, base, 1);
    let h = dp.allocate_pair().expect("pair");
    let (pa, pb) = (peer(), peer());
    update_and_settle(&dp, &h, plain(Some(addr(&pa))), plain(Some(addr(&pb))));
    // Sequence numbers 1..=20 with 5, 6 and 7 missing: 20 expected, 17 received, 3 lost.
    for seq in (1..=20u16).filter(|s| !(5..=7).contains(s)) {
        pa.send_to(&rtp(seq, u32::from(seq) * 160, 0xcafe, b"m"), to(h.port_a))
            .expect("send");
        assert!(recv(&pb).is_some(), "relayed");
    }
    // Published by the packet path itself: there the moment the last packet was relayed,
    // not a housekeeping round later (a CDR read at hang-up has the whole call).
    let s = dp.stats(&h).expect("stats").a;
    assert_eq!(
        (s.rtp_expected, s.rtp_received, s.rtp_lost),
        (20, 17, 3),
        "RTP statistics published: {s:?}"
    );
    // Timestamps 20 ms apart, sent back to back: the jitter estimate moved, and comes
    // out in microseconds at the leg's 8 kHz clock.
    assert!(s.rtp_jitter > 0, "{s:?}");
    assert_eq!(s.rtp_jitter_us, s.rtp_jitter * 1_000_000 / 8_000);
}

both_backends! {
    learning => 12000;
    the_lock_and_signalling => 12010;
    rtcp_mux_and_port_plus_one => 12020;
    stun_binding_answer => 12030;
    replay_rejected => 12040;
    tampered_rejected => 12050;
    inactivity_event => 12060;
    stale_generation_is_noop => 12070;
    full_ring_is_error => 12080;
    learning_off_forwards_to_signalled => 12090;
    event_ring_overflow_is_reported => 12100;
    rtp_statistics_published => 12110;
}

//! Media interworking in the worker on both backends: T.38 UDPTL relayed as opaque
//! datagrams (with the RTP learning and lock rules), RFC 4733 DTMF detected (one event per
//! digit, end retransmissions de-duplicated, event packets kept from a leg that takes
//! INFO) and played into the stream toward a leg (SSRC and sequence kept).

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;
use portcullis_dataplane::{
    Backend, Dataplane, DataplaneConfig, DropReason, DtmfFlags, Event, Side, StreamFlags,
    StreamParams, DTMF_QUEUE,
};

fn udptl(peer: Option<std::net::SocketAddr>) -> StreamParams {
    StreamParams {
        peer,
        flags: StreamFlags {
            udptl: true,
            ..StreamFlags::default()
        },
        ..StreamParams::default()
    }
}

/// A UDPTL datagram (T.38 §9.1.2): sequence number, then an IFP packet (opaque here).
/// The first octet is 0 so it classifies as neither RTP nor RTCP.
fn datagram(seq: u16, body: &[u8]) -> Vec<u8> {
    let mut d = seq.to_be_bytes().to_vec();
    d.extend_from_slice(body);
    d
}

fn udptl_is_relayed_under_the_rtp_rules(backend: Backend, base: u16) {
    let dp = start_with(DataplaneConfig {
        learning_window: Duration::from_millis(400),
        ..DataplaneConfig {
            port_min: base,
            port_max: base + 7,
            backend,
            ..DataplaneConfig::default()
        }
    });
    let h = dp.allocate_pair().expect("pair");
    let (pa, pb, intruder) = (peer(), peer(), peer());
    // As RTP first: a UDPTL datagram is not RTP and is dropped.
    update_and_settle(&dp, &h, plain(Some(addr(&pa))), plain(Some(addr(&pb))));
    pa.send_to(&datagram(1, b"\x06\x80t30"), to(h.port_a))
        .expect("send");
    assert!(recv_none(&pb).is_none(), "RTP legs drop UDPTL");
    // The re-INVITE to T.38: both legs opaque, A's address not yet known.
    update_and_settle(&dp, &h, udptl(None), udptl(Some(addr(&pb))));
    // Two datagrams in sequence are not a stream; a third is, and A is learnt.
    for seq in 10..=12u16 {
        pa.send_to(&datagram(seq, b"\x06\x80ifp"), to(h.port_a))
            .expect("send");
    }
    let (got, from) = recv(&pb).expect("A->B relayed once learnt");
    assert_eq!(got, datagram(12, b"\x06\x80ifp"), "relayed untouched");
    assert_eq!(from, to(h.port_b));
    let ev = wait_event(&dp, WAIT, |e| {
        matches!(e, Event::Latched { side: Side::A, .. })
    });
    assert!(
        matches!(ev, Some(Event::Latched { addr, .. }) if addr == self::addr(&pa)),
        "{ev:?}"
    );
    // B -> A goes to the learnt source, from A's port; any size up to the limit.
    let big = datagram(7, &[0x5a; 1200]);
    pb.send_to(&big, to(h.port_b)).expect("send");
    let (got, from) = recv(&pa).expect("B->A");
    assert_eq!(got, big);
    assert_eq!(from, to(h.port_a));
    // Once the window is over the leg is locked: a valid stream from elsewhere is refused.
    assert!(wait_until(WAIT, || dp
        .stats(&h)
        .is_some_and(|s| s.a.locked)));
    for seq in 100..110u16 {
        intruder
            .send_to(&datagram(seq, b"spoof"), to(h.port_a))
            .expect("send");
    }
    assert!(recv_none(&pb).is_none(), "an intruder is not relayed");
    // The odd port carries nothing on a UDPTL leg.
    pa.send_to(&datagram(13, b"x"), to(h.port_a + 1))
        .expect("send");
    assert!(recv_none(&pb).is_none());
    assert!(wait_until(WAIT, || dp.stats(&h).is_some_and(|s| {
        s.a.dropped(DropReason::RtpSourceRejected) >= 10 + 2
    })));
    // Back to audio: RTP flows again.
    update_and_settle(&dp, &h, plain(Some(addr(&pa))), plain(Some(addr(&pb))));
    pa.send_to(&rtp(1, 0, 9, b"voice"), to(h.port_a))
        .expect("send");
    assert_eq!(recv(&pb).expect("rtp again").0, rtp(1, 0, 9, b"voice"));
}

/// An RFC 4733 packet: PT `pt`, event `ev`, end flag, duration.
fn event_pkt(pt: u8, seq: u16, ts: u32, ev: u8, end: bool, dur: u16) -> Vec<u8> {
    let mut p = rtp(seq, ts, 0xd7d7, &[ev, if end { 0x8a } else { 0x0a }, 0, 0]);
    p[1] = pt;
    p[14..16].copy_from_slice(&dur.to_be_bytes());
    p
}

fn with_dtmf(peer: Option<std::net::SocketAddr>, dtmf: DtmfFlags) -> StreamParams {
    StreamParams {
        peer,
        flags: StreamFlags {
            dtmf,
            ..StreamFlags::default()
        },
        ..StreamParams::default()
    }
}

/// Every event the data plane reports within `d`.
fn events_for(dp: &Dataplane, d: Duration) -> Vec<Event> {
    let end = Instant::now() + d;
    let mut out = Vec::new();
    while Instant::now() < end {
        out.extend(dp.poll_events());
        std::thread::sleep(Duration::from_millis(10));
    }
    out
}

fn dtmf_is_detected_once_and_not_relayed(backend: Backend, base: u16) {
    let dp = start(backend, base, 2);
    let h = dp.allocate_pair().expect("pair");
    let (pa, pb) = (peer(), peer());
    let detect = DtmfFlags {
        detect: Some(101),
        drop_events: true,
        generate: None,
    };
    update_and_settle(
        &dp,
        &h,
        with_dtmf(Some(addr(&pa)), detect),
        plain(Some(addr(&pb))),
    );
    pa.send_to(&rtp(1, 0, 0xd7d7, b"audio"), to(h.port_a))
        .expect("send");
    assert!(recv(&pb).is_some(), "audio relayed");
    // Digit 5: three updates, the end packet three times (RFC 4733 §2.5.1.4).
    let mut seq = 2;
    for (end, dur) in [(false, 160), (false, 320), (false, 480), (true, 800)] {
        let copies = if end { 3 } else { 1 };
        for _ in 0..copies {
            pa.send_to(&event_pkt(101, seq, 160, 5, end, dur), to(h.port_a))
                .expect("send");
            seq += 1;
        }
    }
    // Digit # with a new timestamp.
    for _ in 0..3 {
        pa.send_to(&event_pkt(101, seq, 1600, 11, true, 400), to(h.port_a))
            .expect("send");
        seq += 1;
    }
    pa.send_to(&rtp(seq, 2000, 0xd7d7, b"audio2"), to(h.port_a))
        .expect("send");
    let (got, _) = recv(&pb).expect("audio after the events");
    assert_eq!(
        got,
        rtp(seq, 2000, 0xd7d7, b"audio2"),
        "no event packet relayed"
    );
    let dtmf: Vec<_> = events_for(&dp, Duration::from_millis(500))
        .into_iter()
        .filter(|e| matches!(e, Event::Dtmf { .. }))
        .collect();
    assert_eq!(
        dtmf,
        vec![
            Event::Dtmf {
                handle: h,
                side: Side::A,
                event: 5,
                duration: 800
            },
            Event::Dtmf {
                handle: h,
                side: Side::A,
                event: 11,
                duration: 400
            },
        ]
    );
    assert_eq!(dp.worker_stats()[0].dtmf_detected, 2);
    // Without drop_events (the other side takes RFC 4733 too) they are relayed.
    let keep = DtmfFlags {
        drop_events: false,
        ..detect
    };
    update_and_settle(
        &dp,
        &h,
        with_dtmf(Some(addr(&pa)), keep),
        plain(Some(addr(&pb))),
    );
    let p = event_pkt(101, seq + 1, 3000, 1, true, 160);
    pa.send_to(&p, to(h.port_a)).expect("send");
    assert_eq!(recv(&pb).expect("relayed").0, p);
    // A leg with no flag relays events untouched and reports nothing.
    update_and_settle(&dp, &h, plain(Some(addr(&pa))), plain(Some(addr(&pb))));
    let p = event_pkt(101, seq + 2, 4000, 2, true, 160);
    pa.send_to(&p, to(h.port_a)).expect("send");
    assert_eq!(recv(&pb).expect("relayed").0, p);
    let late = events_for(&dp, Duration::from_millis(300));
    assert_eq!(
        late.iter()
            .filter(|e| matches!(e, Event::Dtmf { event: 2, .. }))
            .count(),
        0
    );
}

fn recv_n(s: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| recv(s).unwrap_or_else(|| panic!("packet {i} of {n}")).0)
        .collect()
}

fn dtmf_is_played_into_the_relayed_stream(backend: Backend, base: u16) {
    let dp = start(backend, base, 2);
    let h = dp.allocate_pair().expect("pair");
    let (pa, pb) = (peer(), peer());
    let gen = DtmfFlags {
        generate: Some(100),
        ..DtmfFlags::default()
    };
    update_and_settle(
        &dp,
        &h,
        plain(Some(addr(&pa))),
        with_dtmf(Some(addr(&pb)), gen),
    );
    // Events toward A (no generate flag) are refused.
    dp.dtmf(&h, Side::A, 1, 160).expect("queued on the ring");
    // Digit 9 for 480 units toward B, played in A's stream to B.
    dp.dtmf(&h, Side::B, 9, 480).expect("dtmf");
    assert!(wait_until(WAIT, || {
        let w = dp.worker_stats()[0];
        w.dtmf_queued == 1 && w.dtmf_refused == 1
    }));
    let ssrc = 0x0a0a;
    for i in 0..8u16 {
        pa.send_to(
            &rtp(50 + i, 8000 + u32::from(i) * 160, ssrc, &[0xff; 160]),
            to(h.port_a),
        )
        .expect("send");
        // One at a time: the order on the wire is the order of the assertions.
        std::thread::sleep(Duration::from_millis(5));
    }
    let got = recv_n(&pb, 8);
    for (i, p) in got.iter().enumerate() {
        let i = u16::try_from(i).unwrap();
        assert_eq!(u16::from_be_bytes([p[2], p[3]]), 50 + i, "sequence kept");
        assert_eq!(
            u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
            ssrc,
            "SSRC kept"
        );
    }
    // 480 units at 160 per packet: 160, 320, then the end (480) three times; audio after.
    let expect = [
        (true, false, 160),
        (false, false, 320),
        (false, true, 480),
        (false, true, 480),
        (false, true, 480),
    ];
    for (p, (marker, end, dur)) in got.iter().zip(expect) {
        assert_eq!(p.len(), 16, "{p:?}");
        assert_eq!(p[1] & 0x7f, 100, "telephone-event payload type");
        assert_eq!(p[1] & 0x80 != 0, marker);
        assert_eq!(
            u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            8000,
            "event start"
        );
        assert_eq!(p[12], 9);
        assert_eq!(p[13] & 0x80 != 0, end);
        assert_eq!(u16::from_be_bytes([p[14], p[15]]), dur);
    }
    for p in &got[5..] {
        assert_eq!(p.len(), 12 + 160, "audio again");
        assert_eq!(p[1], 0);
    }
    // The queue is bounded.
    for _ in 0..DTMF_QUEUE + 2 {
        dp.dtmf(&h, Side::B, 1, 160).expect("dtmf");
    }
    assert!(wait_until(WAIT, || {
        let w = dp.worker_stats()[0];
        w.dtmf_queued == 1 + DTMF_QUEUE as u64 && w.dtmf_refused == 1 + 2
    }));
}

both_backends! {
    udptl_is_relayed_under_the_rtp_rules => 15040;
    dtmf_is_detected_once_and_not_relayed => 15060;
    dtmf_is_played_into_the_relayed_stream => 15080;
}

//! Takeover of an active/standby pair, data plane side: the active node publishes
//! each leg's SRTP state; its data plane dies; a new one reserves the same ports,
//! restores the pair with that state and the latched peer, and an SRTP stream that
//! rolled over in between (ROC 0 → 1) goes on decrypting. Ports 13760–13799.

mod common;

use std::time::Duration;

use common::*;
use portcullis_dataplane::{Backend, DataplaneError, LegResume, StreamParams};
use portcullis_rtp::srtp::SrtpSession;

const SSRC: u32 = 0x5151_0001;

fn protect(tx: &mut SrtpSession, p: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; 256];
    buf[..p.len()].copy_from_slice(p);
    let n = tx.protect_rtp(&mut buf, p.len()).expect("protect");
    buf[..n].to_vec()
}

#[test]
fn srtp_carries_on_across_a_rollover_after_takeover() {
    let base = 13760;
    let k = keys(7);
    let (pa, pb) = (peer(), peer());
    let mut tx = SrtpSession::new(&k);
    let a = StreamParams {
        srtp_in: Some(k),
        ..plain(Some(addr(&pa)))
    };
    let b = plain(Some(addr(&pb)));
    // The active node relays the stream up to the last sequence number before a wrap.
    let dp = start(Backend::Mmsg, base, 2);
    let h = dp.allocate_pair().expect("pair");
    dp.update(&h, a, b).expect("update");
    std::thread::sleep(Duration::from_millis(50));
    for seq in 65_530..=65_535u16 {
        let p = rtp(seq, u32::from(seq) * 160, SSRC, b"before");
        pa.send_to(&protect(&mut tx, &p), to(h.port_a)).unwrap();
        assert_eq!(recv(&pb).expect("relayed").0, p);
    }
    // Housekeeping publishes the state within about a second.
    let mut state = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            state = dp.resume_state(&h);
            state.and_then(|s| s[0].srtp_in).map(|s| s.index) == Some(65_535)
        }),
        "published SRTP state: {state:?}"
    );
    let state = state.unwrap();
    assert_eq!(state[0].srtp_in.unwrap().ssrc, SSRC);
    assert_eq!(state[0].srtp_out, None, "leg A sends plain RTP");
    let (port_a, port_b) = (h.port_a, h.port_b);
    drop(dp); // kill -9 of the node, as far as media goes

    // The sender carries on across the wrap while nobody relays (ROC is now 1).
    for seq in 0..3u16 {
        let _ = protect(&mut tx, &rtp(seq, 1_000 + u32::from(seq), SSRC, b"lost"));
    }

    // The standby: same ports, the stored state, the latched peer.
    let dp = start(Backend::Mmsg, base, 2);
    let h = dp.allocate_at(port_a).expect("the advertised pair");
    assert_eq!((h.port_a, h.port_b), (port_a, port_b));
    assert!(matches!(
        dp.allocate_at(port_a),
        Err(DataplaneError::PortUnavailable(p)) if p == port_a
    ));
    assert!(matches!(
        dp.allocate_at(port_a + 1),
        Err(DataplaneError::PortUnavailable(_))
    ));
    let resume = [
        LegResume {
            latched: Some(addr(&pa)),
            ..state[0]
        },
        LegResume::default(),
    ];
    dp.restore(&h, [a, b], resume).expect("restore");
    std::thread::sleep(Duration::from_millis(50));
    let p = rtp(3, 2_000, SSRC, b"after the wrap");
    pa.send_to(&protect(&mut tx, &p), to(port_a)).unwrap();
    assert_eq!(recv(&pb).expect("relayed after takeover").0, p);
    let s = dp.stats(&h).expect("stats");
    assert!(s.a.locked, "leg A locked on its latched peer");
    assert_eq!(s.a.dropped(portcullis_dataplane::DropReason::SrtpAuth), 0);

    // Control: the same pair restored without the state cannot follow the wrap.
    let h2 = dp.allocate_pair().expect("second pair");
    dp.update(&h2, a, b).expect("update");
    std::thread::sleep(Duration::from_millis(50));
    let p = rtp(4, 2_160, SSRC, b"no state");
    pa.send_to(&protect(&mut tx, &p), to(h2.port_a)).unwrap();
    assert!(recv_none(&pb).is_none(), "ROC 0 assumed: the tag fails");
    assert!(wait_until(Duration::from_secs(3), || dp
        .stats(&h2)
        .is_some_and(|s| s
            .a
            .dropped(portcullis_dataplane::DropReason::SrtpAuth)
            == 1)));
}

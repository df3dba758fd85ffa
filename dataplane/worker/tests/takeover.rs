//! Takeover of an active/standby pair, data plane side: the active node publishes
//! each leg's SRTP state; its data plane dies; a new one reserves the same ports,
//! restores the pair with that state and the latched peer, and an SRTP stream that
//! rolled over in between (ROC 0 → 1) goes on decrypting. A pair across two media
//! realms is restored on its ports in each realm. Ports 13760–13799, 13820-13859.

mod common;

use std::time::Duration;

use common::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use portcullis_dataplane::{
    Backend, DataplaneConfig, DataplaneError, LegResume, RealmConfig, RealmId, StreamParams,
};
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
    let realm0 = [RealmId(0); 2];
    let h = dp
        .allocate_at(realm0, [port_a, port_b])
        .expect("the advertised pair");
    assert_eq!((h.port_a, h.port_b), (port_a, port_b));
    assert!(matches!(
        dp.allocate_at(realm0, [port_a, port_b]),
        Err(DataplaneError::PortUnavailable(p)) if p == port_a
    ));
    assert!(matches!(
        dp.allocate_at(realm0, [port_a + 1, port_b + 4]),
        Err(DataplaneError::PortUnavailable(p)) if p == port_a + 1
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

const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

/// Realm 0 on IPv4 loopback and realm 1 on IPv6 loopback, with the same port numbers.
fn v4_and_v6(base: u16) -> DataplaneConfig {
    DataplaneConfig {
        port_min: base,
        port_max: base + 15,
        bind_ip: V4,
        realms: vec![RealmConfig {
            bind_ip: V6,
            port_min: base,
            port_max: base + 15,
        }],
        backend: Backend::Mmsg,
        ..DataplaneConfig::default()
    }
}

/// A port number names a leg slot only with its realm: the standby re-creates an
/// IPv4/IPv6 pair on the ports its SDP advertised, each in its side's realm, and
/// relays both ways on the latched peers.
#[test]
fn a_pair_across_realms_is_restored_on_its_ports_in_each_realm() {
    let base = 13820;
    let (pa, pb) = (peer_on(V4), peer_on(V6));
    let (pa_addr, pb_addr) = (pa.local_addr().unwrap(), pb.local_addr().unwrap());
    let realms = [RealmId(0), RealmId(1)];
    let dp = start_with(v4_and_v6(base));
    // A call inside realm 0 set up before ours, which is not restored: ours is on the
    // third leg slot of realm 0 and the first of realm 1.
    let _earlier = dp.allocate_pair_in(RealmId(0), RealmId(0)).expect("pair");
    let h = dp.allocate_pair_in(RealmId(0), RealmId(1)).expect("pair");
    let ports = [h.port_a, h.port_b];
    assert_eq!(ports, [base + 4, base]);
    drop(dp);

    let dp = start_with(v4_and_v6(base));
    assert!(
        matches!(
            dp.allocate_at([RealmId(1), RealmId(1)], [ports[0], ports[1] + 16]),
            Err(DataplaneError::PortUnavailable(p)) if p == ports[1] + 16
        ),
        "a port outside realm 1"
    );
    let h = dp.allocate_at(realms, ports).expect("the advertised pair");
    assert_eq!([h.port_a, h.port_b], ports);
    assert!(matches!(
        dp.allocate_at(realms, ports),
        Err(DataplaneError::PortUnavailable(_))
    ));
    assert!(matches!(
        dp.allocate_at([RealmId(0), RealmId(2)], ports),
        Err(DataplaneError::UnknownRealm(2))
    ));
    // The same port numbers in the other realms are still free.
    let swapped = dp
        .allocate_at([RealmId(1), RealmId(0)], ports)
        .expect("the same numbers, the other realms");
    assert_eq!([swapped.port_a, swapped.port_b], ports);
    let fresh = dp.allocate_pair_in(RealmId(0), RealmId(1)).expect("pair");
    assert!(
        fresh.port_a != ports[0] && fresh.port_b != ports[1],
        "a new pair does not take the restored leg slots: {fresh:?}"
    );
    let resume = [
        LegResume {
            latched: Some(pa_addr),
            ..LegResume::default()
        },
        LegResume {
            latched: Some(pb_addr),
            ..LegResume::default()
        },
    ];
    dp.restore(&h, [plain(Some(pa_addr)), plain(Some(pb_addr))], resume)
        .expect("restore");
    std::thread::sleep(Duration::from_millis(50));
    let (port_a, port_b) = (SocketAddr::new(V4, ports[0]), SocketAddr::new(V6, ports[1]));
    let mut b = [0u8; 256];
    let p = rtp(1, 160, SSRC, b"v4 to v6");
    pa.send_to(&p, port_a).unwrap();
    let (n, from) = pb.recv_from(&mut b).expect("relayed to the IPv6 peer");
    assert_eq!((&b[..n], from), (&p[..], port_b));
    let p = rtp(1, 160, SSRC + 1, b"v6 to v4");
    pb.send_to(&p, port_b).unwrap();
    let (n, from) = pa.recv_from(&mut b).expect("relayed to the IPv4 peer");
    assert_eq!((&b[..n], from), (&p[..], port_a));
    let s = dp.stats(&h).expect("stats");
    assert!(
        s.a.locked && s.b.locked,
        "both legs locked on their latched peers"
    );
}

//! Attach modes and the start-up policy: generic mode on any interface, `XDP_TX` when both
//! legs sit on one interface, `auto` falling back to off and `xdp` failing clearly.

mod support;

use std::net::SocketAddr;

use portcullis_xdp::{
    start, AttachMode, AttachedMode, FastLeg, FastPath, FastPathError, FastPathSetting, LegKey,
    PortKind, Stat,
};
use support::{recv, rtp, Netns};

/// One appliance interface: caller and callee both behind `a0`, so forwarded packets go
/// back out of the interface they came in on (`XDP_TX`). Generic mode this time.
#[test]
fn one_interface_generic_mode_uses_xdp_tx() {
    let peers = Netns::new("peers");
    let app = Netns::new("sbc1");
    peers.ip(&[
        "link", "add", "p0", "type", "veth", "peer", "name", "a0", "netns", &app.name,
    ]);
    peers.ip(&["addr", "add", "192.0.2.1/24", "dev", "p0"]);
    peers.ip(&["addr", "add", "192.0.2.3/24", "dev", "p0"]);
    app.ip(&["addr", "add", "192.0.2.2/24", "dev", "a0"]);
    peers.ip(&["link", "set", "p0", "up"]);
    app.ip(&["link", "set", "a0", "up"]);
    peers.exec("ethtool", &["-K", "p0", "tx", "off"]);

    let peer_fp = peers.run(|| FastPath::attach("p0", AttachMode::Native).expect("attach p0"));
    let mut fp = app.run(|| FastPath::attach("a0", AttachMode::Generic).expect("attach a0"));
    assert_eq!(fp.interfaces()[0].mode, AttachedMode::Generic);
    assert!(app.ip_out(&["link", "show", "a0"]).contains("xdpgeneric"));

    let sa = |s: &str| -> SocketAddr { s.parse().unwrap() };
    let caller = peers.udp(sa("192.0.2.1:10000"));
    let callee = peers.udp(sa("192.0.2.3:40000"));
    let (a, b) = (sa("192.0.2.2:20000"), sa("192.0.2.2:30000"));
    let leg = |local, peer, out_local, out_peer| FastLeg {
        local,
        peer,
        out_local,
        out_peer,
        kind: PortKind::Rtcp,
        clock_rate: 8000,
        user_payload_type: None,
    };
    fp.promote(&leg(
        a,
        caller.local_addr().unwrap(),
        b,
        callee.local_addr().unwrap(),
    ))
    .unwrap();
    fp.promote(&leg(
        b,
        callee.local_addr().unwrap(),
        a,
        caller.local_addr().unwrap(),
    ))
    .unwrap();
    let worker_a = app.udp(a);

    // The caller's first packet goes up (no next hop toward the callee learned yet),
    // the callee's first is forwarded, then both ways stay in the kernel.
    caller.send_to(&rtp(0, 1, 0, 20), a).unwrap();
    assert_eq!(recv(&worker_a).0, rtp(0, 1, 0, 20));
    for seq in 1..=20u16 {
        callee.send_to(&rtp(seq, 2, 0, 20), b).unwrap();
        assert_eq!(recv(&caller), (rtp(seq, 2, 0, 20), a));
        caller.send_to(&rtp(seq, 1, 0, 20), a).unwrap();
        assert_eq!(recv(&callee), (rtp(seq, 1, 0, 20), b));
    }
    // RFC 768: an IPv4 UDP checksum of 0 means none; it must stay 0 (a value "updated"
    // from 0 would be wrong, and the callee would drop the packet).
    no_udp_checksum(&caller);
    for seq in 21..=25u16 {
        caller.send_to(&rtp(seq, 1, 0, 20), a).unwrap();
        assert_eq!(recv(&callee), (rtp(seq, 1, 0, 20), b));
    }
    assert_eq!(peers.udp_csum_errors(), 0);
    let stats = fp.stats().unwrap();
    assert_eq!(stats.get(Stat::Tx), 45);
    assert_eq!(stats.get(Stat::Redirect), 0);
    // An RTCP port counts packets but tracks no RTP sequence.
    let c = fp.read_counters(LegKey::new(a)).unwrap().unwrap();
    assert_eq!((c.packets, c.rtp_received, c.rtp_expected), (25, 0, 0));
    drop((fp, peer_fp));
}

/// Sends without a UDP checksum (`SO_NO_CHECK`, which the socket crates do not wrap).
fn no_udp_checksum(s: &std::net::UdpSocket) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: `s` is an open socket for the duration of the call; the option value points
    // to a live c_int and its size is passed alongside.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NO_CHECK,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_NO_CHECK: {}", std::io::Error::last_os_error());
}

#[test]
fn start_policy() {
    assert!(start(FastPathSetting::Off, &["no-such-if0"])
        .unwrap()
        .is_none());
    assert!(start(FastPathSetting::Auto, &["no-such-if0"])
        .unwrap()
        .is_none());
    match start(FastPathSetting::Xdp, &["no-such-if0"]) {
        Err(FastPathError::UnknownInterface(name)) => assert_eq!(name, "no-such-if0"),
        other => panic!("xdp on a missing interface: {other:?}"),
    }
    assert!(
        FastPath::built().is_ok(),
        "this build must carry the XDP object"
    );
}

#[test]
fn promote_checks_families_and_egress() {
    let app = Netns::new("sbc2");
    app.ip(&["link", "add", "x0", "type", "veth", "peer", "name", "x1"]);
    app.ip(&["addr", "add", "192.0.2.2/24", "dev", "x0"]);
    app.ip(&["link", "set", "x0", "up"]);
    app.ip(&["link", "set", "x1", "up"]);
    let mut fp = app.run(|| FastPath::attach("x0", AttachMode::Native).expect("attach x0"));
    let sa = |s: &str| -> SocketAddr { s.parse().unwrap() };
    let mut leg = FastLeg {
        local: sa("192.0.2.2:20000"),
        peer: sa("192.0.2.1:10000"),
        out_local: sa("192.0.2.2:30000"),
        out_peer: sa("[2001:db8::1]:40000"),
        kind: PortKind::Rtp,
        clock_rate: 8000,
        user_payload_type: None,
    };
    assert!(matches!(
        fp.promote(&leg),
        Err(FastPathError::FamilyMismatch)
    ));
    leg.out_peer = sa("192.0.2.3:40000");
    leg.out_local = sa("198.51.100.2:30000");
    assert!(matches!(fp.promote(&leg), Err(FastPathError::NoEgress(_))));
    assert!(!fp.is_promoted(LegKey::new(leg.local)));
}

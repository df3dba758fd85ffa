//! The XDP fast path through the appliance: the real `portcullis` binary runs in its own
//! network namespace with `[media] fast_path = "xdp"`, sipp calls through it from a
//! caller namespace to a callee namespace (all on one bridged segment, so forwarded
//! packets leave the appliance's interface they came in on, `XDP_TX`), and the test
//! sends the media itself both ways.
//!
//! Once both legs are locked the pair is promoted: the program forwards the call's media
//! and the workers see none of it. An attacker on the caller's segment spraying the four
//! media ports is passed up to the workers (which refuse it) and never forwarded. A
//! re-INVITE moving the caller to a new address demotes the pair, and once the moved leg
//! is locked again promotes it toward the new address. Hold (sendonly) demotes it and the
//! workers carry the media again. After the BYE the program's leg map is empty, and the
//! CDR counts every packet sent, whoever forwarded it.

mod common_netns;
mod sipp_harness;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use common_netns::call::{
    call_lan, drain, first_cdr, forwarded, lone_veth, map_entries, metrics, refused, rtp, sa,
    sample, sipp_call, sipp_traces, start_appliance, verdict, worker_rx, xdp_on_bridge_end, Heard,
    APPLIANCE, ATTACKER, CALLEE, CALLEE_RTP, CALLER, CALLER_RTP, LONE,
};
use common_netns::Netns;
use sipp_harness::{end_kind, note, serial};

const MOVED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 5);
const MOVED_RTP: u16 = 30002;

fn config() -> String {
    common_netns::call::config(
        "fastpath-test",
        "cores = \"auto:1\"\nfast_path = \"xdp\"",
        "",
        "",
    )
}

/// The media of the call, sent by the test every 20 ms both ways.
struct Media {
    caller: UdpSocket,
    moved: UdpSocket,
    callee: UdpSocket,
    attacker: UdpSocket,
    a: SocketAddr,
    b: SocketAddr,
    /// The caller sends from `moved` from now on.
    caller_moved: bool,
    seq: u16,
    sent_caller: u64,
    sent_callee: u64,
    heard_caller: Heard,
    heard_moved: Heard,
    heard_callee: Heard,
    heard_attacker: Heard,
}

impl Media {
    /// One packet each way, then whatever arrived.
    fn step(&mut self) {
        self.seq = self.seq.wrapping_add(1);
        let from = if self.caller_moved {
            &self.moved
        } else {
            &self.caller
        };
        from.send_to(&rtp(self.seq, 0xca11, b"caller"), self.a)
            .expect("caller send");
        self.sent_caller += 1;
        self.callee
            .send_to(&rtp(self.seq, 0xb0b, b"callee"), self.b)
            .expect("callee send");
        self.sent_callee += 1;
        std::thread::sleep(Duration::from_millis(20));
        self.drain();
    }

    fn drain(&mut self) {
        drain(&self.caller, &mut self.heard_caller);
        drain(&self.moved, &mut self.heard_moved);
        drain(&self.callee, &mut self.heard_callee);
        drain(&self.attacker, &mut self.heard_attacker);
    }

    fn run_for(&mut self, d: Duration) {
        let t0 = Instant::now();
        while t0.elapsed() < d {
            self.step();
        }
    }
}

/// What the test watches: ports promoted, packets the workers received, packets the
/// program forwarded, packets it passed up for their source.
#[derive(Debug, Clone, Copy)]
struct Watch {
    promoted: u64,
    worker_rx: u64,
    forwarded: u64,
    peer_mismatch: u64,
}

fn watch(sbc: &Netns) -> Watch {
    let m = metrics(sbc);
    Watch {
        promoted: sample(&m, "portcullis_fastpath_promoted_ports", ""),
        worker_rx: worker_rx(&m),
        forwarded: forwarded(&m),
        peer_mismatch: verdict(&m, "peer_mismatch"),
    }
}

/// Keeps the media flowing until `done` holds (checked every 250 ms), at most `within`.
fn media_until(
    m: &mut Media,
    sbc: &Netns,
    within: Duration,
    what: &str,
    done: impl Fn(&Watch, &Media) -> bool,
) -> Watch {
    let deadline = Instant::now() + within;
    loop {
        m.run_for(Duration::from_millis(250));
        let w = watch(sbc);
        if done(&w, m) {
            return w;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}: {w:?}"
        );
    }
}

/// Media keeps flowing for a second; returns the watch before and after.
fn second_of_media(m: &mut Media, sbc: &Netns) -> (Watch, Watch) {
    let before = watch(sbc);
    m.run_for(Duration::from_secs(1));
    // Let the last packets land before reading.
    std::thread::sleep(Duration::from_millis(100));
    m.drain();
    (before, watch(sbc))
}

/// Whether the sipp run `prefix` has logged `needle` in its message trace.
fn traced(dir: &Path, prefix: &str, needle: &str) -> bool {
    sipp_traces(dir, prefix)
        .into_iter()
        .any(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains(needle)))
}

/// Keeps the media flowing until the caller's trace shows `needle` (15 s at most, or
/// fails with `missing`).
fn media_until_traced(m: &mut Media, dir: &Path, needle: &str, missing: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !traced(dir, "uac_fastpath", needle) {
        assert!(Instant::now() < deadline, "{missing}");
        m.step();
    }
}

#[test]
fn xdp_forwards_locked_calls_follows_moves_and_hold_and_counts_every_packet() {
    let _serial = serial();
    let lan = call_lan(&[CALLER, MOVED, ATTACKER]);
    let (caller_ns, sbc, callee_ns) = (&lan.parties[0], &lan.parties[1], &lan.parties[2]);
    // The peers send complete UDP checksums (`call_lan`). A veth takes the frames its
    // peer sends with XDP_TX only when it runs XDP itself: the bridge's end of the
    // appliance's veth gets the same program with nothing promoted, which passes every
    // packet up.
    let _bridge_end = xdp_on_bridge_end(&lan);

    let dir = tempfile::tempdir().expect("tempdir");
    let (_app, text) = start_appliance(sbc, dir.path(), &config());
    assert!(text.contains("media fast path on"), "{text}");

    let mut m = Media {
        caller: caller_ns.udp(sa(CALLER, CALLER_RTP)),
        moved: caller_ns.udp(sa(MOVED, MOVED_RTP)),
        attacker: caller_ns.udp(sa(ATTACKER, CALLER_RTP)),
        callee: callee_ns.udp(sa(CALLEE, CALLEE_RTP)),
        a: sa(APPLIANCE, 0),
        b: sa(APPLIANCE, 0),
        caller_moved: false,
        seq: 0,
        sent_caller: 0,
        sent_callee: 0,
        heard_caller: Heard::default(),
        heard_moved: Heard::default(),
        heard_callee: Heard::default(),
        heard_attacker: Heard::default(),
    };

    let d = dir.path();
    let moved = (MOVED.to_string(), MOVED_RTP.to_string());
    let mut call = sipp_call(
        caller_ns,
        callee_ns,
        d,
        "fastpath",
        "90s",
        &["-key", "moved_ip", &moved.0, "-key", "moved_port", &moved.1],
    );
    (m.a, m.b) = (call.a, call.b);

    // 1. Both legs locked (the 500 ms window over): the pair's four ports are promoted,
    // and a second of media both ways reaches the peers without the workers.
    media_until(&mut m, sbc, Duration::from_secs(8), "promotion", |w, _| {
        w.promoted == 4
    });
    assert_eq!(
        map_entries(sbc, "a0", "legs"),
        Some(4),
        "legs map while promoted"
    );
    m.run_for(Duration::from_millis(300));
    let heard = (m.heard_caller.total, m.heard_callee.total);
    let (before, after) = second_of_media(&mut m, sbc);
    assert_eq!(
        after.worker_rx, before.worker_rx,
        "the workers received the call's media while promoted: {before:?} {after:?}"
    );
    assert!(after.forwarded > before.forwarded, "{before:?} {after:?}");
    assert!(
        m.heard_caller.total > heard.0 && m.heard_callee.total > heard.1,
        "media both ways while promoted: {:?} {:?}",
        m.heard_caller,
        m.heard_callee
    );

    // 2. An attacker next to the caller sprays all four media ports: the program passes
    // every packet up (the workers refuse them), none is forwarded.
    let before = watch(sbc);
    let ports = [m.a.port(), m.a.port() + 1, m.b.port(), m.b.port() + 1];
    let mut attack_a = 0u64;
    let mut attack_b = 0u64;
    for round in 0..25u16 {
        for (i, port) in ports.iter().enumerate() {
            m.attacker
                .send_to(
                    &rtp(round, 0x6600 + u32::from(round), b"attack"),
                    sa(APPLIANCE, *port),
                )
                .expect("attack");
            if i < 2 {
                attack_a += 1;
            } else {
                attack_b += 1;
            }
        }
        m.step();
    }
    std::thread::sleep(Duration::from_millis(200));
    m.drain();
    let after = watch(sbc);
    assert_eq!(
        after.peer_mismatch - before.peer_mismatch,
        attack_a + attack_b,
        "every attacker packet passed up: {before:?} {after:?}"
    );
    assert_eq!(
        after.worker_rx - before.worker_rx,
        attack_a + attack_b,
        "the workers saw the attack and nothing else: {before:?} {after:?}"
    );
    assert_eq!(m.heard_attacker.total, 0, "the attacker received media");

    // 3. A re-INVITE moves the caller to a new address: the pair is demoted (the moved
    // leg learns again) and promoted again toward the new address.
    media_until_traced(&mut m, d, "CSeq: 2 INVITE", "no re-INVITE from the caller");
    m.caller_moved = true;
    media_until(
        &mut m,
        sbc,
        Duration::from_secs(5),
        "media to the moved caller",
        |_, m| m.heard_moved.total > 0,
    );
    media_until(
        &mut m,
        sbc,
        Duration::from_secs(8),
        "promotion after the move",
        |w, _| w.promoted == 4,
    );
    m.run_for(Duration::from_millis(300));
    let (old, moved) = (m.heard_caller.total, m.heard_moved.total);
    let (before, after) = second_of_media(&mut m, sbc);
    assert_eq!(
        after.worker_rx, before.worker_rx,
        "the moved flow is in the kernel: {before:?} {after:?}"
    );
    assert!(
        m.heard_moved.total > moved,
        "the moved caller hears the callee"
    );
    assert_eq!(
        m.heard_caller.total, old,
        "the caller's old address still gets media"
    );

    // 4. Hold (sendonly, answered recvonly): demoted; the workers carry the media again.
    media_until_traced(
        &mut m,
        d,
        "CSeq: 3 ACK",
        "no hold re-INVITE from the caller",
    );
    media_until(
        &mut m,
        sbc,
        Duration::from_secs(5),
        "demotion on hold",
        |w, _| w.promoted == 0,
    );
    let heard = (m.heard_moved.total, m.heard_callee.total);
    let (before, after) = second_of_media(&mut m, sbc);
    assert!(
        after.worker_rx > before.worker_rx,
        "the workers carry the held call: {before:?} {after:?}"
    );
    assert!(m.heard_moved.total > heard.0 && m.heard_callee.total > heard.1);

    // 5. The caller hangs up (6 s after the hold): the media stops first.
    std::thread::sleep(Duration::from_millis(300));
    m.drain();
    call.wait_ok(d);
    let cdr = first_cdr(d);
    note(&format!(
        "sent caller {} callee {}, attack A {attack_a} B {attack_b}, heard caller {:?} moved {:?} callee {:?}; media {}",
        m.sent_caller, m.sent_callee, m.heard_caller, m.heard_moved, m.heard_callee, cdr["media"]
    ));
    assert_eq!(end_kind(&cdr), "normal_clearing", "{cdr}");
    let leg = |side: &str, key: &str| cdr["media"][side][key].as_u64().unwrap_or(u64::MAX);
    // Every packet sent, whoever forwarded it (the workers, or the kernel while promoted).
    assert_eq!(leg("a", "rx_packets"), m.sent_caller + attack_a);
    assert_eq!(leg("b", "rx_packets"), m.sent_callee + attack_b);
    assert_eq!(
        leg("a", "tx_packets"),
        m.heard_caller.total + m.heard_moved.total
    );
    assert_eq!(leg("b", "tx_packets"), m.heard_callee.total);
    // Caller -> callee: every packet delivered but those refused for their source: the
    // attacker's to A's RTP port, and any the caller's old address sent after the move
    // reached the appliance.
    let refused_caller = leg("a", "rtp_source_rejected") - attack_a / 2;
    assert!(
        refused_caller <= 5,
        "{refused_caller} of the caller's refused"
    );
    assert_eq!(
        m.heard_callee.total + refused_caller,
        m.sent_caller,
        "caller -> callee"
    );
    assert_eq!(
        m.heard_caller.total + m.heard_moved.total,
        m.sent_callee,
        "callee -> caller: all delivered"
    );
    assert_eq!(leg("a", "lost"), 0);
    assert_eq!(leg("b", "lost"), 0);
    assert!(leg("a", "rtp_source_rejected") >= attack_a / 2, "{cdr}");
    assert_eq!(
        m.heard_callee.attack + m.heard_caller.attack + m.heard_moved.attack,
        0
    );

    // 6. After the BYE nothing is promoted and the program's maps hold no leg.
    let w = watch(sbc);
    assert_eq!(w.promoted, 0, "{w:?}");
    assert_eq!(
        map_entries(sbc, "a0", "legs"),
        Some(0),
        "legs map after the BYE"
    );
    assert_eq!(
        map_entries(sbc, "a0", "counters"),
        Some(0),
        "counters map after the BYE"
    );
}

/// `fast_path = "xdp"` without the media address on the named interface: the appliance
/// does not start and says why; `auto` starts without the fast path and logs why.
#[test]
fn xdp_refuses_to_start_without_its_interface_and_auto_runs_without() {
    let ns = lone_veth();
    let toml = config().replace(&APPLIANCE.to_string(), LONE).replace(
        "fast_path = \"xdp\"",
        "fast_path = \"xdp\"\ninterfaces = [\"lo\"]",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let err = refused(&ns, dir.path(), &toml);
    assert!(
        err.contains("none of media.interfaces [\"lo\"] holds the media address 192.0.2.9"),
        "{err}"
    );

    let (_app, text) = start_appliance(
        &ns,
        dir.path(),
        &toml.replace("fast_path = \"xdp\"", "fast_path = \"auto\""),
    );
    assert!(
        text.contains("media fast path off") && text.contains("holds the media address"),
        "{text}"
    );
    assert!(ns
        .ip(&["-d", "link", "show", "d0"])
        .find("prog/xdp")
        .is_none());
}

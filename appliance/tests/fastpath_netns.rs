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

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common_netns::{run, Lan, Netns, Proc};
use sipp_harness::{end_kind, note, scenario, serial, sipp};

const APPLIANCE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const CALLER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const MOVED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 5);
const ATTACKER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 66);
const CALLEE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);
const SIP: u16 = 5060;
const UAC_SIP: u16 = 5061;
const UAS_SIP: u16 = 5062;
const CALLER_RTP: u16 = 30000;
const MOVED_RTP: u16 = 30002;
const CALLEE_RTP: u16 = 32000;
const ADMIN: u16 = 9100;

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(ip), port)
}

fn config() -> String {
    format!(
        r#"[node]
name = "fastpath-test"

[[sip.listener]]
transport = "udp"
address = "{APPLIANCE}:{SIP}"

[media]
bind_ip = "{APPLIANCE}"
port_min = 40000
port_max = 40255
cores = "auto:1"
inactivity_timeout = "60s"
learning_window = "500ms"
fast_path = "xdp"

[admin]
listen = "127.0.0.1:{ADMIN}"

[cdr]
path = "cdr.jsonl"
fsync = "always"

[log]
level = "info"

[policy]
unknown_source = "reject"

[[trunk]]
name = "left"
address = "{CALLER}:{UAC_SIP}"

[[trunk]]
name = "right"
address = "{CALLEE}:{UAS_SIP}"

[[route]]
name = "left-to-right"
from = ["left"]
targets = ["right"]
"#
    )
}

/// An RTP packet whose payload starts with `who` (6 bytes).
fn rtp(seq: u16, ssrc: u32, who: &[u8; 6]) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(who);
    p.extend_from_slice(&[0x55; 154]);
    p
}

/// Datagrams waiting on `s`, counted by the sender tag in their payload.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Heard {
    total: u64,
    attack: u64,
}

fn drain(s: &UdpSocket, h: &mut Heard) {
    let mut b = [0u8; 2048];
    while let Ok((n, _)) = s.recv_from(&mut b) {
        h.total += 1;
        if n >= 18 && &b[12..18] == b"attack" {
            h.attack += 1;
        }
    }
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

/// `/metrics` of the appliance (read from inside its namespace).
fn metrics(sbc: &Netns) -> String {
    sbc.join(|| {
        ureq::get(&format!("http://127.0.0.1:{ADMIN}/metrics"))
            .call()
            .unwrap_or_else(|e| panic!("metrics: {e}"))
            .into_string()
            .unwrap_or_else(|e| panic!("metrics: {e}"))
    })
}

/// Sum of the samples of `family` whose labels contain `label` ("" for all).
fn sample(text: &str, family: &str, label: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) || l.starts_with(&format!("{family} ")))
        .filter(|l| l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
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
    let verdict = |v: &str| {
        sample(
            &m,
            "portcullis_fastpath_program_packets_total",
            &format!("verdict=\"{v}\""),
        )
    };
    Watch {
        promoted: sample(&m, "portcullis_fastpath_promoted_ports", ""),
        worker_rx: sample(&m, "portcullis_dataplane_packets_total", "direction=\"rx\""),
        forwarded: verdict("tx") + verdict("redirect"),
        peer_mismatch: verdict("peer_mismatch"),
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
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with("_messages.log"))
        })
        .any(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains(needle)))
}

/// The `m=audio` port of the first SDP after `start` in the trace of sipp run `prefix`.
fn sdp_port(dir: &Path, prefix: &str, start: &str) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix) && n.ends_with("_messages.log"))
            })
            .find_map(|p| {
                let text = std::fs::read_to_string(p).ok()?;
                let rest = &text[text.find(start)?..];
                let m = rest.find("m=audio ")?;
                rest[m + 8..].split_whitespace().next()?.parse().ok()
            });
        if let Some(p) = found {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "no {start:?} with SDP in {prefix}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Entries of map `name` of the XDP program attached to `dev` in `ns` (`bpftool`), or
/// `None` when there is no such program or map.
fn map_entries(ns: &Netns, dev: &str, name: &str) -> Option<usize> {
    let link = ns.ip(&["-d", "link", "show", "dev", dev]);
    let prog = link
        .split("prog/xdp id ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .to_owned();
    let info: serde_json::Value =
        serde_json::from_str(&run("bpftool", &["-j", "prog", "show", "id", &prog])).ok()?;
    let id = info["map_ids"].as_array()?.iter().find_map(|id| {
        let id = id.as_u64()?.to_string();
        let map: serde_json::Value =
            serde_json::from_str(&run("bpftool", &["-j", "map", "show", "id", &id])).ok()?;
        (map["name"].as_str() == Some(name)).then_some(id)
    })?;
    let dump: serde_json::Value =
        serde_json::from_str(&run("bpftool", &["-j", "map", "dump", "id", &id])).ok()?;
    dump.as_array().map(Vec::len)
}

fn wait_log(log: &Path, app: &mut Proc, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        if let Ok(Some(st)) = app.0.try_wait() {
            panic!("portcullis exited ({st}):\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_sipp(ns: &Netns, dir: &Path, name: &str, args: &[String]) -> Proc {
    let out = std::fs::File::create(dir.join(format!("{name}.out"))).expect("sipp out");
    let err = out.try_clone().expect("clone");
    let child = ns
        .command(sipp().to_str().expect("sipp path"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("spawn sipp");
    Proc(child)
}

fn wait_ok(p: &mut Proc, dir: &Path, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = p.0.try_wait().expect("try_wait") {
            let out = std::fs::read_to_string(dir.join(format!("{name}.out"))).unwrap_or_default();
            assert!(st.success(), "sipp {name} failed ({st}):\n{out}");
            return;
        }
        assert!(Instant::now() < deadline, "sipp {name} still running");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn xdp_forwards_locked_calls_follows_moves_and_hold_and_counts_every_packet() {
    let _serial = serial();
    let caller_addrs = [
        format!("{CALLER}/24"),
        format!("{MOVED}/24"),
        format!("{ATTACKER}/24"),
    ];
    let lan = Lan::new(&[
        ("caller", "c0", &caller_addrs.each_ref().map(String::as_str)),
        ("sbc", "a0", &[&format!("{APPLIANCE}/24")]),
        ("callee", "b0", &[&format!("{CALLEE}/24")]),
    ]);
    let (caller_ns, sbc, callee_ns) = (&lan.parties[0], &lan.parties[1], &lan.parties[2]);
    // The peers send complete UDP checksums, as a wire would bring them (a veth hands
    // on partial ones). A veth takes the frames its peer sends with XDP_TX only when it
    // runs XDP itself: the bridge's end of the appliance's veth gets the same program
    // with nothing promoted, which passes every packet up.
    caller_ns.exec("ethtool", &["-K", "c0", "tx", "off"]);
    callee_ns.exec("ethtool", &["-K", "b0", "tx", "off"]);
    let _bridge_end = lan.lan.join(|| {
        portcullis_xdp::FastPath::attach("l1", portcullis_xdp::AttachMode::Native)
            .expect("XDP on the bridge's end of the appliance's veth")
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("portcullis.toml");
    std::fs::write(&cfg, config()).expect("config");
    let log = dir.path().join("portcullis.log");
    let child = sbc
        .command(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--config"])
        .arg(&cfg)
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).expect("log")))
        .spawn()
        .expect("spawn portcullis");
    let mut app = Proc(child);
    wait_log(&log, &mut app, "portcullis ready");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
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
    let common = |ip: Ipv4Addr, port: u16, mp: u16| {
        strings(&[
            "-i",
            &ip.to_string(),
            "-p",
            &port.to_string(),
            "-mp",
            &mp.to_string(),
            "-m",
            "1",
            "-trace_msg",
            "-nostdin",
            "-timeout",
            "90s",
            "-timeout_error",
        ])
    };
    let mut uas_args = common(CALLEE, UAS_SIP, 33000);
    uas_args.extend(strings(&[
        "-sf",
        &scenario(d, "uas_fastpath.xml").display().to_string(),
        "-key",
        "rtp_port",
        &CALLEE_RTP.to_string(),
    ]));
    let mut uas = start_sipp(callee_ns, d, "uas", &uas_args);
    std::thread::sleep(Duration::from_millis(300));
    let mut uac_args = common(CALLER, UAC_SIP, 31000);
    uac_args.extend(strings(&[
        "-sf",
        &scenario(d, "uac_fastpath.xml").display().to_string(),
        &format!("{APPLIANCE}:{SIP}"),
        "-s",
        "1000",
        "-key",
        "rtp_port",
        &CALLER_RTP.to_string(),
        "-key",
        "moved_ip",
        &MOVED.to_string(),
        "-key",
        "moved_port",
        &MOVED_RTP.to_string(),
    ]));
    let mut uac = start_sipp(caller_ns, d, "uac", &uac_args);
    m.b = sa(APPLIANCE, sdp_port(d, "uas_fastpath", "INVITE sip:"));
    m.a = sa(APPLIANCE, sdp_port(d, "uac_fastpath", "SIP/2.0 200 OK"));
    note(&format!("appliance media ports: A {}, B {}", m.a, m.b));

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
    let deadline = Instant::now() + Duration::from_secs(15);
    while !traced(d, "uac_fastpath", "CSeq: 2 INVITE") {
        assert!(Instant::now() < deadline, "no re-INVITE from the caller");
        m.step();
    }
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
    let deadline = Instant::now() + Duration::from_secs(15);
    while !traced(d, "uac_fastpath", "CSeq: 3 ACK") {
        assert!(
            Instant::now() < deadline,
            "no hold re-INVITE from the caller"
        );
        m.step();
    }
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
    wait_ok(&mut uac, d, "uac");
    wait_ok(&mut uas, d, "uas");
    let deadline = Instant::now() + Duration::from_secs(10);
    let cdr = loop {
        let text = std::fs::read_to_string(d.join("cdr.jsonl")).unwrap_or_default();
        if let Some(line) = text.lines().next() {
            break serde_json::from_str::<serde_json::Value>(line).expect("CDR json");
        }
        assert!(Instant::now() < deadline, "no CDR");
        std::thread::sleep(Duration::from_millis(100));
    };
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
    let ns = Netns::new("alone");
    ns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
    ns.ip(&["addr", "add", "192.0.2.9/24", "dev", "d0"]);
    ns.ip(&["link", "set", "d0", "up"]);
    ns.ip(&["link", "set", "d1", "up"]);
    let toml = config()
        .replace(&APPLIANCE.to_string(), "192.0.2.9")
        .replace(
            "fast_path = \"xdp\"",
            "fast_path = \"xdp\"\ninterfaces = [\"lo\"]",
        );
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("portcullis.toml");
    std::fs::write(&cfg, &toml).expect("config");
    let out = ns
        .command(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--config"])
        .arg(&cfg)
        .current_dir(dir.path())
        .env_remove("NOTIFY_SOCKET")
        .output()
        .expect("run portcullis");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started without its fast path:\n{err}"
    );
    assert!(
        err.contains("none of media.interfaces [\"lo\"] holds the media address 192.0.2.9"),
        "{err}"
    );

    std::fs::write(
        &cfg,
        toml.replace("fast_path = \"xdp\"", "fast_path = \"auto\""),
    )
    .expect("config");
    let log = dir.path().join("portcullis.log");
    let child = ns
        .command(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--config"])
        .arg(&cfg)
        .current_dir(dir.path())
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).expect("log")))
        .spawn()
        .expect("spawn portcullis");
    let mut app = Proc(child);
    wait_log(&log, &mut app, "portcullis ready");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("media fast path off") && text.contains("holds the media address"),
        "{text}"
    );
    assert!(ns
        .ip(&["-d", "link", "show", "d0"])
        .find("prog/xdp")
        .is_none());
}

//! The AF_XDP worker backend through the appliance: the real `portcullis` binary runs in
//! its own network namespace with `[media] backend = "af_xdp"` (and the XDP fast path
//! off, so the workers carry every packet), its peers in other namespaces on one bridged
//! segment.
//!
//! - A plain call (sipp signalling, media sent by the test both ways): every media packet
//!   reaches the worker through its AF_XDP socket (the worker's receive counter equals
//!   the AF_XDP one), the replies leave through AF_XDP once the next hop is learned, an
//!   attacker spraying the call's ports from another address gets nothing and nothing of
//!   its is forwarded, and the CDR counts every packet sent.
//! - The same call with the XDP fast path on too (one program for both): once the call is
//!   promoted the kernel forwards its media, what the program passes up (the attacker's
//!   packets) still reaches the worker through AF_XDP, and the counts stay exact.
//! - An SDES-SRTP caller bridged to a plain-RTP callee (the load generator on both ends):
//!   no SRTP error, no packet lost mid-stream, all through AF_XDP.
//! - Where it cannot run (the media address on no named interface, more workers than the
//!   interface has queues), the appliance does not start and says why.

mod common_netns;
mod sipp_harness;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common_netns::{run, Lan, Netns, Proc};
use sipp_harness::{end_kind, note, scenario, serial, sipp};

const APPLIANCE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const CALLER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const ATTACKER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 66);
const CALLEE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);
const SIP: u16 = 5060;
const UAC_SIP: u16 = 5061;
const UAS_SIP: u16 = 5062;
const CALLER_RTP: u16 = 30000;
const CALLEE_RTP: u16 = 32000;
const ADMIN: u16 = 9100;

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(ip), port)
}

/// The appliance's configuration: `media_a` / `media_b` are the trunks' media kinds.
fn config(cores: &str, media_a: &str, media_b: &str, extra_media: &str) -> String {
    format!(
        r#"[node]
name = "afxdp-test"

[[sip.listener]]
transport = "udp"
address = "{APPLIANCE}:{SIP}"

[media]
bind_ip = "{APPLIANCE}"
port_min = 40000
port_max = 40255
cores = {cores}
inactivity_timeout = "60s"
learning_window = "500ms"
backend = "af_xdp"
{extra_media}

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
media = "{media_a}"

[[trunk]]
name = "right"
address = "{CALLEE}:{UAS_SIP}"
media = "{media_b}"

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

/// Datagrams waiting on `s`: (total, of which the attacker's).
fn drain(s: &UdpSocket, heard: &mut (u64, u64)) {
    let mut b = [0u8; 2048];
    while let Ok((n, _)) = s.recv_from(&mut b) {
        heard.0 += 1;
        if n >= 18 && &b[12..18] == b"attack" {
            heard.1 += 1;
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

/// The worker's packet totals and the AF_XDP backend's frames.
#[derive(Debug, Clone, Copy)]
struct Io {
    /// Packets the XDP fast path forwarded (program verdicts `tx` and `redirect`).
    forwarded: u64,
    worker_rx: u64,
    worker_tx: u64,
    xsk_rx: u64,
    xsk_tx: u64,
    kernel_tx: u64,
}

fn io(sbc: &Netns) -> Io {
    let m = metrics(sbc);
    let frames = |p: &str| {
        sample(
            &m,
            "portcullis_dataplane_afxdp_frames_total",
            &format!("path=\"{p}\""),
        )
    };
    assert!(
        m.contains("portcullis_dataplane_info{backend=\"af_xdp\""),
        "not the af_xdp backend:\n{m}"
    );
    let verdict = |v: &str| {
        sample(
            &m,
            "portcullis_fastpath_program_packets_total",
            &format!("verdict=\"{v}\""),
        )
    };
    Io {
        forwarded: verdict("tx") + verdict("redirect"),
        worker_rx: sample(&m, "portcullis_dataplane_packets_total", "direction=\"rx\""),
        worker_tx: sample(&m, "portcullis_dataplane_packets_total", "direction=\"tx\""),
        xsk_rx: frames("rx"),
        xsk_tx: frames("tx"),
        kernel_tx: frames("kernel_tx"),
    }
}

/// Entries of map `name` of the XDP program attached to `dev` in `ns` (`bpftool`).
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

/// Starts the appliance in `ns` with `toml`, waits for it to be ready.
fn start_appliance(ns: &Netns, dir: &Path, toml: &str) -> Proc {
    let cfg = dir.join("portcullis.toml");
    std::fs::write(&cfg, toml).expect("config");
    let log = dir.join("portcullis.log");
    let child = ns
        .command(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--config"])
        .arg(&cfg)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).expect("log")))
        .spawn()
        .expect("spawn portcullis");
    let mut app = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("portcullis ready") {
            assert!(text.contains("AF_XDP socket bound"), "{text}");
            return app;
        }
        if let Ok(Some(st)) = app.0.try_wait() {
            panic!("portcullis exited ({st}):\n{text}");
        }
        assert!(Instant::now() < deadline, "not ready:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
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

fn sipp_args(ip: Ipv4Addr, port: u16, mp: u16, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
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
        "60s",
        "-timeout_error",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

/// The peers send complete UDP checksums, as a wire brings them (a veth hands on partial
/// ones, which the backend's checksum check refuses as the kernel's would not).
fn full_checksums(ns: &Netns, dev: &str) {
    ns.exec("ethtool", &["-K", dev, "tx", "off"]);
}

#[test]
fn af_xdp_relays_a_call_both_ways_refuses_an_attacker_and_counts_every_packet() {
    call_through(false);
}

#[test]
fn af_xdp_beside_the_xdp_fast_path_takes_what_the_program_passes_up() {
    call_through(true);
}

/// A call with media both ways and an attacker, through the af_xdp backend, with or
/// without the XDP fast path.
fn call_through(fast_path: bool) {
    let _serial = serial();
    let caller_addrs = [format!("{CALLER}/24"), format!("{ATTACKER}/24")];
    let lan = Lan::new(&[
        ("caller", "c0", &caller_addrs.each_ref().map(String::as_str)),
        ("sbc", "a0", &[&format!("{APPLIANCE}/24")]),
        ("callee", "b0", &[&format!("{CALLEE}/24")]),
    ]);
    let (caller_ns, sbc, callee_ns) = (&lan.parties[0], &lan.parties[1], &lan.parties[2]);
    full_checksums(caller_ns, "c0");
    full_checksums(callee_ns, "b0");
    // A veth takes the frames its peer sends with XDP_TX only when it runs XDP itself: the
    // bridge's end of the appliance's veth gets the program with nothing promoted.
    let _bridge_end = fast_path.then(|| {
        lan.lan.join(|| {
            portcullis_xdp::FastPath::attach("l1", portcullis_xdp::AttachMode::Native)
                .expect("XDP on the bridge's end of the appliance's veth")
        })
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let extra = if fast_path { "fast_path = \"xdp\"" } else { "" };
    let _app = start_appliance(sbc, d, &config("\"auto:1\"", "rtp", "rtp", extra));
    // Every port of the worker's slice is claimed for its AF_XDP socket.
    assert_eq!(map_entries(sbc, "a0", "xsk_ports"), Some(256));

    let caller = caller_ns.udp(sa(CALLER, CALLER_RTP));
    let attacker = caller_ns.udp(sa(ATTACKER, CALLER_RTP));
    let callee = callee_ns.udp(sa(CALLEE, CALLEE_RTP));
    let uas_args = sipp_args(
        CALLEE,
        UAS_SIP,
        33000,
        &[
            "-sf",
            &scenario(d, "uas_afxdp.xml").display().to_string(),
            "-key",
            "rtp_port",
            &CALLEE_RTP.to_string(),
        ],
    );
    let mut uas = start_sipp(callee_ns, d, "uas", &uas_args);
    std::thread::sleep(Duration::from_millis(300));
    let uac_args = sipp_args(
        CALLER,
        UAC_SIP,
        31000,
        &[
            "-sf",
            &scenario(d, "uac_afxdp.xml").display().to_string(),
            &format!("{APPLIANCE}:{SIP}"),
            "-s",
            "1000",
            "-key",
            "rtp_port",
            &CALLER_RTP.to_string(),
        ],
    );
    let mut uac = start_sipp(caller_ns, d, "uac", &uac_args);
    let b = sa(APPLIANCE, sdp_port(d, "uas_afxdp", "INVITE sip:"));
    let a = sa(APPLIANCE, sdp_port(d, "uac_afxdp", "SIP/2.0 200 OK"));
    note(&format!("appliance media ports: A {a}, B {b}"));
    let before = io(sbc);

    // Media both ways every 20 ms for 4 s; from the second second on, the attacker
    // sprays all four ports of the call each round.
    let ports = [a.port(), a.port() + 1, b.port(), b.port() + 1];
    let (mut sent_caller, mut sent_callee, mut attack_a, mut attack_b) = (0u64, 0, 0, 0);
    let (mut heard_caller, mut heard_callee, mut heard_attacker) = ((0, 0), (0, 0), (0, 0));
    for seq in 0..200u16 {
        caller
            .send_to(&rtp(seq, 0xca11, b"caller"), a)
            .expect("caller send");
        sent_caller += 1;
        callee
            .send_to(&rtp(seq, 0xb0b, b"callee"), b)
            .expect("callee send");
        sent_callee += 1;
        if seq >= 50 && seq % 2 == 0 {
            for (i, port) in ports.iter().enumerate() {
                attacker
                    .send_to(&rtp(seq, 0x6600, b"attack"), sa(APPLIANCE, *port))
                    .expect("attack");
                if i < 2 {
                    attack_a += 1;
                } else {
                    attack_b += 1;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
        drain(&caller, &mut heard_caller);
        drain(&callee, &mut heard_callee);
        drain(&attacker, &mut heard_attacker);
    }
    std::thread::sleep(Duration::from_millis(300));
    drain(&caller, &mut heard_caller);
    drain(&callee, &mut heard_callee);
    drain(&attacker, &mut heard_attacker);
    let after = io(sbc);
    note(&format!(
        "sent caller {sent_caller} callee {sent_callee}, attack A {attack_a} B {attack_b}; \
         heard caller {heard_caller:?} callee {heard_callee:?}; {before:?} -> {after:?}"
    ));

    // Every packet was forwarded by the kernel (fast path) or received by the worker, and
    // everything the worker received came through AF_XDP; what it sent left through
    // AF_XDP, or through its UDP socket before the next hop was learned.
    let received = sent_caller + sent_callee + attack_a + attack_b;
    let forwarded = after.forwarded - before.forwarded;
    assert_eq!(
        after.worker_rx - before.worker_rx + forwarded,
        received,
        "{after:?}"
    );
    assert_eq!(
        after.xsk_rx - before.xsk_rx,
        after.worker_rx - before.worker_rx,
        "{after:?}"
    );
    assert_eq!(
        after.worker_tx - before.worker_tx,
        (after.xsk_tx - before.xsk_tx) + (after.kernel_tx - before.kernel_tx),
        "{after:?}"
    );
    if fast_path {
        // Promoted within the first second: the kernel carried most of the call.
        assert!(forwarded > (sent_caller + sent_callee) / 2, "{after:?}");
        // The attacker's packets were passed up, to the worker's AF_XDP socket.
        assert!(
            after.xsk_rx - before.xsk_rx >= attack_a + attack_b,
            "{after:?}"
        );
    } else {
        assert_eq!(forwarded, 0);
        assert!(
            after.xsk_tx - before.xsk_tx > (sent_caller + sent_callee) / 2,
            "most replies through AF_XDP: {after:?}"
        );
    }
    assert!(
        after.kernel_tx - before.kernel_tx < 20,
        "only the first packets through the kernel: {after:?}"
    );
    // Media both ways, every packet, nothing of the attacker's.
    assert_eq!(heard_callee, (sent_caller, 0), "caller -> callee");
    assert_eq!(heard_caller, (sent_callee, 0), "callee -> caller");
    assert_eq!(heard_attacker.0, 0, "the attacker received media");

    // The caller hangs up (8 s after the answer, after the media stopped).
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
    assert_eq!(end_kind(&cdr), "normal_clearing", "{cdr}");
    let leg = |side: &str, key: &str| cdr["media"][side][key].as_u64().unwrap_or(u64::MAX);
    assert_eq!(leg("a", "rx_packets"), sent_caller + attack_a, "{cdr}");
    assert_eq!(leg("b", "rx_packets"), sent_callee + attack_b, "{cdr}");
    assert_eq!(leg("a", "tx_packets"), heard_caller.0, "{cdr}");
    assert_eq!(leg("b", "tx_packets"), heard_callee.0, "{cdr}");
    // The attacker's packets to the RTP ports are refused for their source.
    assert!(leg("a", "rtp_source_rejected") >= attack_a / 2, "{cdr}");
    assert!(leg("b", "rtp_source_rejected") >= attack_b / 2, "{cdr}");
    assert_eq!((leg("a", "lost"), leg("b", "lost")), (0, 0), "{cdr}");
}

/// The load generator, built on demand in our target directory (same profile).
fn loadtest_bin() -> PathBuf {
    let exe = Path::new(env!("CARGO_BIN_EXE_portcullis"));
    let dir = exe.parent().expect("target dir");
    let p = dir.join("portcullis-loadtest");
    if !p.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "-p",
            "portcullis-loadtest",
            "--bin",
            "portcullis-loadtest",
        ])
        .env("CARGO_TARGET_DIR", dir.parent().expect("target"));
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        assert!(
            cmd.status().expect("cargo").success(),
            "building the load generator"
        );
    }
    p
}

#[test]
fn af_xdp_bridges_an_srtp_caller_to_a_plain_rtp_callee() {
    let _serial = serial();
    let peer_addrs = [format!("{CALLER}/24"), format!("{CALLEE}/24")];
    let lan = Lan::new(&[
        ("peers", "p0", &peer_addrs.each_ref().map(String::as_str)),
        ("sbc", "a0", &[&format!("{APPLIANCE}/24")]),
    ]);
    let (peers, sbc) = (&lan.parties[0], &lan.parties[1]);
    full_checksums(peers, "p0");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let _app = start_appliance(sbc, d, &config("\"auto:1\"", "srtp", "rtp", ""));
    let before = io(sbc);
    let report = d.join("load.json");
    let out = peers
        .command(loadtest_bin().to_str().expect("path"))
        .args([
            "--target",
            &format!("{APPLIANCE}:{SIP}"),
            "--uac",
            &format!("{CALLER}:{UAC_SIP}"),
            "--uas",
            &format!("{CALLEE}:{UAS_SIP}"),
            "--calls",
            "4",
            "--max-calls",
            "4",
            "--cps",
            "10",
            "--hold",
            "4",
            "--duration",
            "8",
            "--ptime",
            "20",
            "--srtp",
            "caller",
            "--quiet",
            "--report",
        ])
        .arg(&report)
        .output()
        .expect("run the load generator");
    assert!(
        out.status.success(),
        "load generator: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    let after = io(sbc);
    note(&format!("media {}; {before:?} -> {after:?}", r["media"]));
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(u64::MAX);
    assert_eq!(n(&r["calls_completed"]), 4, "{r}");
    assert_eq!(n(&r["srtp_errors"]), 0, "{r}");
    let m = &r["media"];
    assert!(n(&m["sent"]) >= 4 * 2 * 150, "{m}");
    // Only packets before a stream's first arrival or after its last may be missing.
    assert_eq!(
        n(&m["lost"]),
        n(&m["lost_head"]) + n(&m["lost_tail"]),
        "loss mid-stream: {m}"
    );
    assert!(n(&m["received"]) * 10 >= n(&m["sent"]) * 9, "{m}");
    // Every packet the worker took came through AF_XDP, and the SRTP ones authenticated.
    assert_eq!(
        after.worker_rx - before.worker_rx,
        after.xsk_rx - before.xsk_rx
    );
    assert!(
        after.xsk_rx - before.xsk_rx >= n(&m["received"]),
        "{after:?}"
    );
    assert!(
        after.xsk_tx - before.xsk_tx > n(&m["received"]) / 2,
        "{after:?}"
    );
    let text = metrics(sbc);
    assert_eq!(
        sample(
            &text,
            "portcullis_dataplane_drops_total",
            "reason=\"srtp_auth\""
        ),
        0
    );
}

/// `backend = "af_xdp"` where it cannot run: the appliance does not start and says why.
#[test]
fn af_xdp_refuses_to_start_where_it_cannot_run() {
    let ns = Netns::new("alone");
    ns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
    ns.ip(&["addr", "add", "192.0.2.9/24", "dev", "d0"]);
    ns.ip(&["link", "set", "d0", "up"]);
    ns.ip(&["link", "set", "d1", "up"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let refused = |toml: String| -> String {
        let cfg = dir.path().join("portcullis.toml");
        std::fs::write(&cfg, toml.replace(&APPLIANCE.to_string(), "192.0.2.9")).expect("cfg");
        let out = ns
            .command(env!("CARGO_BIN_EXE_portcullis"))
            .args(["run", "--config"])
            .arg(&cfg)
            .current_dir(dir.path())
            .env_remove("NOTIFY_SOCKET")
            .output()
            .expect("run portcullis");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "started:\n{err}");
        note(&err);
        err
    };
    // The media address on none of the named interfaces.
    let err = refused(config("\"auto:1\"", "rtp", "rtp", "interfaces = [\"lo\"]"));
    assert!(
        err.contains("backend = \"af_xdp\" needs the XDP program")
            && err.contains("none of media.interfaces [\"lo\"] holds the media address 192.0.2.9"),
        "{err}"
    );
    // Two workers, one queue on the veth: the second worker has no queue of its own.
    let err = refused(config("[0, 1]", "rtp", "rtp", ""));
    assert!(
        err.contains("af_xdp backend") && err.contains("queue 1"),
        "{err}"
    );
    // Nothing left attached.
    assert!(!ns.ip(&["-d", "link", "show", "d0"]).contains("prog/xdp"));
}

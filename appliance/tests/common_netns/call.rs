//! A call through the appliance in namespaces (`afxdp_netns.rs`, `fastpath_netns.rs`): the
//! appliance in `sbc`, a caller and a callee each in their own namespace on one bridged
//! segment, sipp signalling and media sent by the test. The addresses and ports, the
//! appliance's configuration and start, its `/metrics` and XDP maps, the sipp runs and
//! their message traces, the CDR.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{run, Lan, Netns, Proc};
use crate::sipp_harness::{note, scenario, sipp};

pub const APPLIANCE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
pub const CALLER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const ATTACKER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 66);
pub const CALLEE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);
pub const SIP: u16 = 5060;
pub const UAC_SIP: u16 = 5061;
pub const UAS_SIP: u16 = 5062;
pub const CALLER_RTP: u16 = 30000;
pub const CALLEE_RTP: u16 = 32000;
pub const ADMIN: u16 = 9100;
/// The appliance's address in [`lone_veth`].
pub const LONE: &str = "192.0.2.9";

pub fn sa(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(ip), port)
}

/// The appliance's configuration, node `node`: `media` adds to `[media]`, `left` and
/// `right` to the caller's and the callee's trunks.
pub fn config(node: &str, media: &str, left: &str, right: &str) -> String {
    format!(
        r#"[node]
name = "{node}"

[[sip.listener]]
transport = "udp"
address = "{APPLIANCE}:{SIP}"

[media]
bind_ip = "{APPLIANCE}"
port_min = 40000
port_max = 40255
inactivity_timeout = "60s"
learning_window = "500ms"
{media}

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
{left}

[[trunk]]
name = "right"
address = "{CALLEE}:{UAS_SIP}"
{right}

[[route]]
name = "left-to-right"
from = ["left"]
targets = ["right"]
"#
    )
}

/// The caller (device `c0`, on `caller`), the appliance (`a0`) and the callee (`b0`) on
/// one segment, in that order in `parties`; the peers send complete UDP checksums.
pub fn call_lan(caller: &[Ipv4Addr]) -> Lan {
    let caller_addrs: Vec<String> = caller.iter().map(|a| format!("{a}/24")).collect();
    let caller_addrs: Vec<&str> = caller_addrs.iter().map(String::as_str).collect();
    let lan = Lan::new(&[
        ("caller", "c0", caller_addrs.as_slice()),
        ("sbc", "a0", &[&format!("{APPLIANCE}/24")]),
        ("callee", "b0", &[&format!("{CALLEE}/24")]),
    ]);
    full_checksums(&lan.parties[0], "c0");
    full_checksums(&lan.parties[2], "b0");
    lan
}

/// The peers send complete UDP checksums, as a wire brings them (a veth hands on partial
/// ones, which the backend's checksum check refuses as the kernel's would not).
pub fn full_checksums(ns: &Netns, dev: &str) {
    ns.exec("ethtool", &["-K", dev, "tx", "off"]);
}

/// A veth takes the frames its peer sends with XDP_TX only when it runs XDP itself: the
/// bridge's end of the appliance's veth (`l1` of [`call_lan`]) gets the program with
/// nothing promoted, which passes every packet up.
pub fn xdp_on_bridge_end(lan: &Lan) -> portcullis_xdp::FastPath {
    lan.lan.join(|| {
        portcullis_xdp::FastPath::attach("l1", portcullis_xdp::AttachMode::Native)
            .expect("XDP on the bridge's end of the appliance's veth")
    })
}

/// A namespace with a veth pair and nothing else: `d0` (holding [`LONE`]) and `d1`, up.
pub fn lone_veth() -> Netns {
    let ns = Netns::new("alone");
    ns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
    ns.ip(&["addr", "add", &format!("{LONE}/24"), "dev", "d0"]);
    ns.ip(&["link", "set", "d0", "up"]);
    ns.ip(&["link", "set", "d1", "up"]);
    ns
}

/// An RTP packet whose payload starts with `who` (6 bytes).
pub fn rtp(seq: u16, ssrc: u32, who: &[u8; 6]) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(who);
    p.extend_from_slice(&[0x55; 154]);
    p
}

/// Datagrams waiting on a socket, counted by the sender tag in their payload.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    pub total: u64,
    pub attack: u64,
}

/// Counts the datagrams waiting on `s` into `h`.
pub fn drain(s: &UdpSocket, h: &mut Heard) {
    let mut b = [0u8; 2048];
    while let Ok((n, _)) = s.recv_from(&mut b) {
        h.total += 1;
        if n >= 18 && &b[12..18] == b"attack" {
            h.attack += 1;
        }
    }
}

/// `/metrics` of the appliance (read from inside its namespace).
pub fn metrics(sbc: &Netns) -> String {
    sbc.join(|| {
        ureq::get(&format!("http://127.0.0.1:{ADMIN}/metrics"))
            .call()
            .unwrap_or_else(|e| panic!("metrics: {e}"))
            .into_string()
            .unwrap_or_else(|e| panic!("metrics: {e}"))
    })
}

/// Sum of the samples of `family` whose labels contain `label` ("" for all).
pub fn sample(text: &str, family: &str, label: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) || l.starts_with(&format!("{family} ")))
        .filter(|l| l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Packets the XDP program forwarded itself (verdicts `tx` and `redirect`).
pub fn forwarded(metrics: &str) -> u64 {
    ["tx", "redirect"].iter().map(|v| verdict(metrics, v)).sum()
}

/// Packets of the XDP program's verdict `v`.
pub fn verdict(metrics: &str, v: &str) -> u64 {
    sample(
        metrics,
        "portcullis_fastpath_program_packets_total",
        &format!("verdict=\"{v}\""),
    )
}

/// Packets the data-plane workers received.
pub fn worker_rx(metrics: &str) -> u64 {
    sample(
        metrics,
        "portcullis_dataplane_packets_total",
        "direction=\"rx\"",
    )
}

/// Entries of map `name` of the XDP program attached to `dev` in `ns` (`bpftool`), or
/// `None` when there is no such program or map.
pub fn map_entries(ns: &Netns, dev: &str, name: &str) -> Option<usize> {
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

/// Writes `toml` to `dir/portcullis.toml`.
fn write_config(dir: &Path, toml: &str) -> PathBuf {
    let cfg = dir.join("portcullis.toml");
    std::fs::write(&cfg, toml).expect("config");
    cfg
}

/// Starts the appliance in `ns` with `toml` (run in `dir`, log in `dir/portcullis.log`)
/// and waits for it to be ready; the process and its log by then.
pub fn start_appliance(ns: &Netns, dir: &Path, toml: &str) -> (Proc, String) {
    let cfg = write_config(dir, toml);
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
    let text = wait_log(&log, &mut app, "portcullis ready");
    (app, text)
}

/// Waits (30 s at most) for `needle` in the appliance's `log`; the log by then.
pub fn wait_log(log: &Path, app: &mut Proc, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return text;
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

/// Runs the appliance in `ns` with `toml` (in `dir`): it must refuse to start. Its stderr.
pub fn refused(ns: &Netns, dir: &Path, toml: &str) -> String {
    let cfg = write_config(dir, toml);
    let out = ns
        .command(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--config"])
        .arg(&cfg)
        .current_dir(dir)
        .env_remove("NOTIFY_SOCKET")
        .output()
        .expect("run portcullis");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "started:\n{err}");
    note(&err);
    err
}

/// The message traces (`-trace_msg`) of the sipp run `prefix` in `dir`.
pub fn sipp_traces(dir: &Path, prefix: &str) -> Vec<PathBuf> {
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
        .collect()
}

/// The `m=audio` port of the first SDP after `start` in the trace of sipp run `prefix`.
pub fn sdp_port(dir: &Path, prefix: &str, start: &str) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = sipp_traces(dir, prefix).into_iter().find_map(|p| {
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

/// sipp's arguments for one call from `ip:port` (media port `mp`) within `timeout`,
/// with its message trace, then `extra`.
pub fn sipp_args(ip: Ipv4Addr, port: u16, mp: u16, timeout: &str, extra: &[&str]) -> Vec<String> {
    let (ip, port, mp) = (ip.to_string(), port.to_string(), mp.to_string());
    [
        "-i",
        &ip,
        "-p",
        &port,
        "-mp",
        &mp,
        "-m",
        "1",
        "-trace_msg",
        "-nostdin",
        "-timeout",
        timeout,
        "-timeout_error",
    ]
    .iter()
    .chain(extra)
    .map(|s| (*s).to_owned())
    .collect()
}

/// Starts sipp `name` in `ns` (run in `dir`, its output in `dir/<name>.out`).
pub fn start_sipp(ns: &Netns, dir: &Path, name: &str, args: &[String]) -> Proc {
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

/// A call by sipp through the appliance, and the appliance's media ports for it.
#[derive(Debug)]
pub struct Call {
    pub uac: Proc,
    pub uas: Proc,
    /// The A leg's (toward the caller).
    pub a: SocketAddr,
    /// The B leg's (toward the callee).
    pub b: SocketAddr,
}

impl Call {
    /// Waits for the UAC, then the UAS, to end; both must succeed.
    pub fn wait_ok(&mut self, dir: &Path) {
        wait_ok(&mut self.uac, dir, "uac");
        wait_ok(&mut self.uas, dir, "uas");
    }
}

/// One call of scenarios `uac_<name>.xml` (in `caller`, with `uac_extra` more arguments)
/// and `uas_<name>.xml` (in `callee`) through the appliance, each run `timeout` at most:
/// started, and its media ports read from the traces once both SDPs went through.
pub fn sipp_call(
    caller: &Netns,
    callee: &Netns,
    dir: &Path,
    name: &str,
    timeout: &str,
    uac_extra: &[&str],
) -> Call {
    let uas_args = sipp_args(
        CALLEE,
        UAS_SIP,
        33000,
        timeout,
        &[
            "-sf",
            &scenario(dir, &format!("uas_{name}.xml"))
                .display()
                .to_string(),
            "-key",
            "rtp_port",
            &CALLEE_RTP.to_string(),
        ],
    );
    let uas = start_sipp(callee, dir, "uas", &uas_args);
    std::thread::sleep(Duration::from_millis(300));
    let mut uac_args = sipp_args(
        CALLER,
        UAC_SIP,
        31000,
        timeout,
        &[
            "-sf",
            &scenario(dir, &format!("uac_{name}.xml"))
                .display()
                .to_string(),
            &format!("{APPLIANCE}:{SIP}"),
            "-s",
            "1000",
            "-key",
            "rtp_port",
            &CALLER_RTP.to_string(),
        ],
    );
    uac_args.extend(uac_extra.iter().map(|s| (*s).to_owned()));
    let uac = start_sipp(caller, dir, "uac", &uac_args);
    let b = sa(
        APPLIANCE,
        sdp_port(dir, &format!("uas_{name}"), "INVITE sip:"),
    );
    let a = sa(
        APPLIANCE,
        sdp_port(dir, &format!("uac_{name}"), "SIP/2.0 200 OK"),
    );
    note(&format!("appliance media ports: A {a}, B {b}"));
    Call { uac, uas, a, b }
}

/// Waits (60 s at most) for sipp `name` to end; it must succeed.
pub fn wait_ok(p: &mut Proc, dir: &Path, name: &str) {
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

/// The first CDR the appliance wrote in `dir/cdr.jsonl` (10 s at most).
pub fn first_cdr(dir: &Path) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(dir.join("cdr.jsonl")).unwrap_or_default();
        if let Some(line) = text.lines().next() {
            return serde_json::from_str(line).expect("CDR json");
        }
        assert!(Instant::now() < deadline, "no CDR");
        std::thread::sleep(Duration::from_millis(100));
    }
}

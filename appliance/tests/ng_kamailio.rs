//! Interop: Portcullis media nodes driven by a real Kamailio through its `rtpengine`
//! module (rtpengine's ng protocol), as an rtpengine deployment would drive rtpengine.
//!
//! sipp UAC → Kamailio (`rtpengine_manage()` on requests and replies) → sipp UAS with
//! `-rtp_echo`: both sipps are told only the media node's address and ports, and the RTP
//! crosses the node both ways (its per-session counters, read over ng mid-call, and its
//! data plane metrics). Then two nodes in one rtpengine set: one is killed, and new calls
//! go to the other once Kamailio has found the dead one silent.

mod common_kamailio;
mod sipp_harness;

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common_kamailio::{Kamailio, MODULES};
use portcullis::ng::bencode::{decode, Value};
use sipp_harness::*;

/// The rtpengine flags of a common Kamailio configuration.
const FLAGS: &str = "replace-origin replace-session-connection ICE=remove trust-address symmetric record-call=no via-branch=1";

/// A running `portcullis media-node`; killed on drop.
struct MediaNode {
    child: Child,
    dir: tempfile::TempDir,
    ng: u16,
    admin: u16,
    media: (u16, u16),
}

impl MediaNode {
    /// A node with its ng listener on `ng`, admin on `admin`, media ports `media`.
    fn start(name: &str, ng: u16, admin: u16, media: (u16, u16)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = format!(
            r#"[node]
name = "{name}"

[media]
advertised_ip = "127.0.0.1"
bind_ip = "127.0.0.1"
port_min = {lo}
port_max = {hi}
cores = "auto:1"

[admin]
listen = "127.0.0.1:{admin}"

[ng]
listen = "127.0.0.1:{ng}"
interfaces = ["pub", "priv"]
"#,
            lo = media.0,
            hi = media.1,
        );
        let path = dir.path().join("node.toml");
        std::fs::write(&path, cfg).expect("config");
        let log = std::fs::File::create(dir.path().join("node.log")).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("media-node")
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn portcullis media-node");
        let mut n = Self {
            child,
            dir,
            ng,
            admin,
            media,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !n.log().contains("portcullis media node ready") {
            if let Ok(Some(st)) = n.child.try_wait() {
                panic!("media node exited at start ({st}):\n{}", n.log());
            }
            assert!(
                Instant::now() < deadline,
                "media node not ready:\n{}",
                n.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        n
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }

    /// Kills the node (SIGKILL by PID) and reaps it.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The value of the first `/metrics` sample starting with `prefix` (0 when absent).
    fn metric(&self, prefix: &str) -> u64 {
        let body = ureq::get(&format!("http://127.0.0.1:{}/metrics", self.admin))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .unwrap_or_default();
        body.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    fn in_range(&self, port: u16) -> bool {
        (self.media.0..=self.media.1).contains(&port)
    }

    /// One ng request from the test itself; the reply dictionary.
    fn ng(&self, dict: &Value) -> Value {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        // Unique cookies: the node answers a repeated cookie from its reply cache.
        static COOKIE: AtomicU64 = AtomicU64::new(0);
        let cookie = format!("test-{}", COOKIE.fetch_add(1, Ordering::Relaxed));
        let mut msg = format!("{cookie} ").into_bytes();
        msg.extend(dict.encode());
        sock.send_to(&msg, ("127.0.0.1", self.ng)).expect("send");
        let mut buf = vec![0u8; 65536];
        let n = sock.recv(&mut buf).expect("ng reply");
        let reply = &buf[..n];
        let sp = reply.iter().position(|&b| b == b' ').expect("cookie");
        assert_eq!(&reply[..sp], cookie.as_bytes());
        decode(&reply[sp + 1..]).expect("bencode reply")
    }
}

impl Drop for MediaNode {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            note(&format!(
                "---- media node {} log ----\n{}",
                self.ng,
                self.log()
            ));
        }
    }
}

/// Kamailio as a proxy between the sipp UAC and UAS, media through rtpengine nodes: the
/// nodes `(ng port, weight)` in one rtpengine set.
fn kamailio(dir: &Path, p: Ports, nodes: &[(u16, u32)]) -> Kamailio {
    let socks: Vec<String> = nodes
        .iter()
        .map(|(n, w)| format!("udp:127.0.0.1:{n}={w}"))
        .collect();
    let cfg = format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
listen=udp:127.0.0.1:{sip}
mpath="{MODULES}"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "rtpengine.so"
modparam("rtpengine", "rtpengine_sock", "{socks}")
modparam("rtpengine", "rtpengine_tout_ms", 500)
modparam("rtpengine", "rtpengine_retr", 1)
modparam("rtpengine", "rtpengine_disable_tout", 2)
request_route {{
  # sipp sends every request to us: in-dialog ones go to the other sipp.
  if ($sp == {uac}) {{ $du = "sip:127.0.0.1:{uas}"; }} else {{ $du = "sip:127.0.0.1:{uac}"; }}
  if (is_method("ACK")) {{ forward(); exit; }}
  if (is_method("INVITE|BYE|CANCEL")) {{
    if (!rtpengine_manage("{FLAGS} direction=pub direction=priv")) {{
      sl_send_reply("503", "No media relay");
      exit;
    }}
  }}
  t_on_reply("R");
  t_relay();
  exit;
}}
onreply_route[R] {{
  if (has_body("application/sdp")) {{ rtpengine_manage("{FLAGS}"); }}
}}
"#,
        sip = p.sip,
        socks = socks.join(" "),
        uac = p.left,
        uas = p.right,
    );
    Kamailio::start(dir, "kamailio", &cfg, p.sip)
}

/// `(c= address, m=audio port)` of every SDP in a sipp `-trace_msg` log, in order.
fn sdps(log: &str) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    let mut c = None;
    for l in log.lines().map(str::trim) {
        if let Some(a) = l.strip_prefix("c=IN IP4 ") {
            c = Some(a.trim().to_owned());
        }
        if let Some(rest) = l.strip_prefix("m=audio ") {
            let port = rest.split_whitespace().next().and_then(|p| p.parse().ok());
            if let (Some(c), Some(port)) = (c.take(), port) {
                out.push((c, port));
            }
        }
    }
    out
}

/// The `-trace_msg` log of the sipp run whose name starts with `prefix` in `dir`.
fn msg_log(dir: &Path, prefix: &str) -> String {
    let path = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with("_messages.log"))
        })
        .unwrap_or_else(|| panic!("no {prefix}*_messages.log in {}", dir.display()));
    std::fs::read_to_string(path).unwrap()
}

/// The strings of a bencode list.
fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::List(l)) => l
            .iter()
            .filter_map(Value::as_bytes)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect(),
        _ => Vec::new(),
    }
}

/// Packets received on each leg of `call`, from the node's `query`.
fn leg_packets(node: &MediaNode, call: &str) -> Vec<u64> {
    let q = node.ng(&Value::dict([
        ("command", Value::s("query")),
        ("call-id", Value::s(call)),
    ]));
    let Some(Value::Dict(tags)) = q.get("tags") else {
        panic!("query reply without tags: {q:?}");
    };
    tags.iter()
        .map(|(_, t)| match t.get("medias") {
            Some(Value::List(m)) => m
                .iter()
                .filter_map(|m| match m.get("streams") {
                    Some(Value::List(s)) => s.first().cloned(),
                    _ => None,
                })
                .filter_map(|s| match s.get("stats").and_then(|x| x.get("packets")) {
                    Some(Value::Int(n)) => u64::try_from(*n).ok(),
                    _ => None,
                })
                .sum(),
            _ => 0,
        })
        .collect()
}

#[test]
fn kamailio_anchors_a_call_on_a_media_node_and_rtp_echoes_through_it() {
    let _serial = serial();
    let p = Ports::for_test(40);
    let node = MediaNode::start("mn1", p.sip + 5, p.admin, (p.media_min, p.media_min + 255));
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    let kam = kamailio(dir, p, &[(node.ng, 1)]);
    pcaps(dir);
    let mut uas = start_uas(
        dir,
        p,
        &["-sn", "uas", "-rtp_echo", "-m", "1", "-trace_msg"],
    );
    let target = format!("127.0.0.1:{}", p.sip);
    let mut uac = start_uac(
        dir,
        p,
        &["-sn", "uac_pcap", &target, "-m", "1", "-trace_msg"],
    );
    // Mid-call (uac_pcap plays for about 8 s): the node's own per-leg counters.
    let deadline = Instant::now() + Duration::from_secs(20);
    let counts = loop {
        let calls = strings(
            node.ng(&Value::dict([("command", Value::s("list"))]))
                .get("calls"),
        );
        if let Some(c) = calls.first() {
            let legs = leg_packets(&node, c);
            if legs.len() == 2 && legs.iter().all(|&n| n >= 50) {
                break legs;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no RTP seen both ways by the node:\n{}",
            kam.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    note(&format!("packets received per leg mid-call: {counts:?}"));
    uac.wait_ok(
        Duration::from_secs(40),
        "sipp uac_pcap through kamailio failed",
    );
    uas.wait_ok(Duration::from_secs(20), "sipp uas failed");

    // Both sipps were told only the node's address and its media ports.
    let to_uas = sdps(&msg_log(dir, "uas_"));
    let to_uac = sdps(&msg_log(dir, "uac_"));
    let received_by_uas = to_uas.first().expect("an SDP reached the UAS");
    assert_eq!(received_by_uas.0, "127.0.0.1");
    assert!(
        node.in_range(received_by_uas.1),
        "UAS told port {}: {to_uas:?}",
        received_by_uas.1
    );
    // The UAC's log: its own offer first, then the answer it received.
    let answer = to_uac
        .iter()
        .find(|(_, port)| *port != p.sipp_media)
        .expect("an answer SDP reached the UAC");
    assert!(
        node.in_range(answer.1),
        "UAC told port {}: {to_uac:?}",
        answer.1
    );
    assert_ne!(answer.1, received_by_uas.1, "one port per leg");

    // The data plane relayed both ways; Kamailio's offer, answer and delete were ok.
    let rx = node.metric("portcullis_dataplane_packets_total{worker=\"0\",direction=\"rx\"}");
    let tx = node.metric("portcullis_dataplane_packets_total{worker=\"0\",direction=\"tx\"}");
    assert!(rx >= 200 && tx >= 200, "rx {rx} tx {tx}");
    for cmd in ["offer", "answer", "delete"] {
        let n = node.metric(&format!(
            "portcullis_ng_commands_total{{command=\"{cmd}\",result=\"ok\"}}"
        ));
        assert!(n >= 1, "{cmd}: {n}");
    }
    assert_eq!(
        node.metric("portcullis_ng_commands_total{command=\"offer\",result=\"error\"}"),
        0
    );
    // BYE deleted the session.
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.metric("portcullis_ng_sessions_active") != 0 {
        assert!(Instant::now() < deadline, "session not deleted after BYE");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_killed_media_node_leaves_new_calls_to_the_other_one_in_the_set() {
    let _serial = serial();
    let p = Ports::for_test(41);
    let mut one = MediaNode::start("mn1", p.sip + 5, p.admin, (p.media_min, p.media_min + 127));
    let two = MediaNode::start(
        "mn2",
        p.sip + 6,
        p.sip + 7,
        (p.media_min + 128, p.media_min + 255),
    );
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    // Node one weighs 100 times node two: while it lives, nearly every call hashes to it.
    let kam = kamailio(dir, p, &[(one.ng, 100), (two.ng, 1)]);
    // Both nodes answer Kamailio's start-up ping.
    let deadline = Instant::now() + Duration::from_secs(10);
    while one.metric("portcullis_ng_commands_total{command=\"ping\",result=\"ok\"}") == 0
        || two.metric("portcullis_ng_commands_total{command=\"ping\",result=\"ok\"}") == 0
    {
        assert!(
            Instant::now() < deadline,
            "kamailio did not ping both nodes:\n{}",
            kam.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    one.kill();
    let calls = 6;
    let mut uas = start_uas(
        dir,
        p,
        &["-sn", "uas", "-m", &calls.to_string(), "-trace_msg"],
    );
    let target = format!("127.0.0.1:{}", p.sip);
    let mut uac = start_uac(
        dir,
        p,
        &[
            "-sn",
            "uac",
            &target,
            "-m",
            &calls.to_string(),
            "-r",
            "2",
            "-trace_stat",
            "-fd",
            "1",
        ],
    );
    uac.wait_ok(Duration::from_secs(60), "calls failed with one node dead");
    uas.wait_ok(Duration::from_secs(20), "sipp uas failed");
    assert_uac_stats(dir, calls);
    // Every call's media went to the surviving node (the UAS's own answers left out).
    let seen: Vec<_> = sdps(&msg_log(dir, "uas_"))
        .into_iter()
        .filter(|(_, port)| *port != p.sipp_media + 100)
        .collect();
    assert_eq!(seen.len(), calls, "{seen:?}");
    for (addr, port) in &seen {
        assert_eq!(addr, "127.0.0.1");
        assert!(
            two.in_range(*port),
            "port {port} is not node two's: {seen:?}"
        );
    }
    let offers = two.metric("portcullis_ng_commands_total{command=\"offer\",result=\"ok\"}");
    assert_eq!(offers, calls as u64);
    // Kamailio did try the dead node first (then disabled it and moved on).
    let tried = format!("RTPEngine <udp:127.0.0.1:{}>", one.ng);
    assert!(
        kam.log()
            .lines()
            .any(|l| l.contains("send_rtpp_command") && l.contains(&tried)),
        "kamailio never tried the killed node:\n{}",
        kam.log()
    );
}

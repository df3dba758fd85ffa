//! Interfaces and media realms, IPv4 ↔ IPv6, in network namespaces: an "outside"
//! namespace (IPv4, sipp UAC playing G.711), an "inside" one (IPv6, sipp UAS echoing
//! RTP), and the appliance between them with one veth interface each, one SIP listener
//! and one media realm per interface. A call from the IPv4 trunk to the IPv6 trunk: each
//! side's SDP carries its own realm's family and address, each side's signalling its own
//! listener, and RTP flows both ways through the data plane (sipp's echo comes back; the
//! CDR's media counters show both directions on both legs). The same call with the XDP
//! fast path on: both realms are on the fast path, and the IPv4/IPv6 pair stays with the
//! workers (the program forwards within one family): nothing promoted, nothing tried.
//!
//! Runs as root (namespaces and veth pairs are created and deleted by the test); a missing
//! tool fails it.

mod sipp_harness;

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};

use sipp_harness::{end_kind, note, pcaps, serial, sipp, sipp_args};

const OUT_APP: &str = "10.77.1.1";
const OUT_PEER: &str = "10.77.1.2";
const IN_APP: &str = "fd77:1::1";
const IN_PEER: &str = "fd77:1::2";

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("`ip` (iproute2) must be installed");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace with loopback up, deleted (with its veth ends) on drop.
struct Netns(String);

impl Netns {
    fn new(role: &str) -> Netns {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "pcr-{}-{}-{role}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.0.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// `program args` inside the namespace, in `cwd`, output to `cwd/<log>`.
    fn spawn(&self, cwd: &Path, log: &str, program: &str, args: &[String]) -> Child {
        let f = File::create(cwd.join(log)).expect("log");
        let f2 = f.try_clone().expect("clone");
        Command::new("ip")
            .args(["netns", "exec", &self.0, program])
            .args(args)
            .current_dir(cwd)
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdin(Stdio::null())
            .stdout(Stdio::from(f))
            .stderr(Stdio::from(f2))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program} in {}: {e}", self.0))
    }
}

impl Netns {
    /// `GET /metrics` of the appliance, from a thread inside the namespace.
    fn metrics(&self) -> String {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let fd = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            setns(&fd, CloneFlags::CLONE_NEWNET).expect("setns");
            ureq::get("http://127.0.0.1:8080/metrics")
                .call()
                .unwrap_or_else(|e| panic!("metrics: {e}"))
                .into_string()
                .unwrap_or_else(|e| panic!("metrics: {e}"))
        })
        .join()
        .expect("metrics thread")
    }
}

/// Sum of the samples of `family` whose labels contain `label` ("" for all).
fn sample(text: &str, family: &str, label: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) || l.starts_with(&format!("{family} ")))
        .filter(|l| l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A veth pair from `a` (interface `an`) to `b` (interface `bn`), both up.
fn veth(a: &Netns, an: &str, b: &Netns, bn: &str) {
    ip(&[
        "link", "add", an, "netns", &a.0, "type", "veth", "peer", "name", bn, "netns", &b.0,
    ]);
    a.ip(&["link", "set", an, "up"]);
    b.ip(&["link", "set", bn, "up"]);
}

/// A child process killed (and reaped) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Proc {
    /// Waits for a successful exit; on failure panics with `out` and the appliance's log.
    fn wait_ok(&mut self, within: Duration, what: &str, out: &Path, app_log: &Path) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.0.try_wait().expect("wait") {
                assert!(
                    st.success(),
                    "{what} ({st}):\n{}\nportcullis:\n{}",
                    std::fs::read_to_string(out).unwrap_or_default(),
                    std::fs::read_to_string(app_log).unwrap_or_default()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: still running after {within:?}:\n{}",
                std::fs::read_to_string(out).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn config() -> String {
    config_with("")
}

/// The configuration with `media` lines added to `[media]`.
fn config_with(media: &str) -> String {
    format!(
        r#"[node]
name = "realms"

[[sip.listener]]
name = "outside"
transport = "udp"
address = "{OUT_APP}:5060"

[[sip.listener]]
name = "inside"
transport = "udp"
address = "[{IN_APP}]:5060"

[media]
cores = "auto:1"
inactivity_timeout = "60s"
{media}

[[media.realm]]
name = "outside"
bind_ip = "{OUT_APP}"
port_min = 30000
port_max = 30255

[[media.realm]]
name = "inside"
bind_ip = "{IN_APP}"
port_min = 30000
port_max = 30255

[admin]
listen = "127.0.0.1:8080"

[cdr]
path = "cdr.jsonl"
fsync = "always"

[policy]
unknown_source = "reject"

[[trunk]]
name = "carrier"
address = "{OUT_PEER}:5060"
realm = "outside"
listener = "outside"

[[trunk]]
name = "pbx"
address = "[{IN_PEER}]:5060"
realm = "inside"
listener = 1

[[route]]
name = "carrier-to-pbx"
from = ["carrier"]
targets = ["pbx"]
"#
    )
}

/// The SIP messages of a sipp `-trace_msg` log (`prefix`: the run's name) whose first
/// line starts with `start` and whose CSeq is the first INVITE's.
fn messages(dir: &Path, prefix: &str, start: &str) -> Vec<String> {
    let path = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with("_messages.log"))
        })
        .unwrap_or_else(|| panic!("no {prefix}*_messages.log in {}", dir.display()));
    let log = std::fs::read_to_string(path)
        .expect("log")
        .replace('\r', "");
    log.split("\n-----------------------------------------------")
        .filter_map(|chunk| {
            let (_, msg) = chunk.split_once("\n\n")?;
            let msg = msg.trim_start_matches('\n');
            (msg.starts_with(start) && msg.contains("CSeq: 1 INVITE")).then(|| msg.to_owned())
        })
        .collect()
}

fn counter(c: &serde_json::Value, leg: &str, field: &str) -> u64 {
    c["media"][leg][field].as_u64().unwrap_or(0)
}

#[test]
fn a_call_from_the_v4_trunk_to_the_v6_trunk_anchors_each_leg_in_its_realm() {
    v4_to_v6_call(false);
}

#[test]
fn with_the_fast_path_an_ipv4_to_ipv6_call_stays_with_the_workers() {
    v4_to_v6_call(true);
}

fn v4_to_v6_call(fast_path: bool) {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let outside = Netns::new("out");
    let app = Netns::new("app");
    let inside = Netns::new("in");
    veth(&outside, "o0", &app, "a0");
    veth(&app, "a1", &inside, "i0");
    outside.ip(&["addr", "add", &format!("{OUT_PEER}/24"), "dev", "o0"]);
    app.ip(&["addr", "add", &format!("{OUT_APP}/24"), "dev", "a0"]);
    app.ip(&["addr", "add", &format!("{IN_APP}/64"), "dev", "a1", "nodad"]);
    inside.ip(&[
        "addr",
        "add",
        &format!("{IN_PEER}/64"),
        "dev",
        "i0",
        "nodad",
    ]);

    let config_path = d.join("portcullis.toml");
    let media = if fast_path { "fast_path = \"xdp\"" } else { "" };
    std::fs::write(&config_path, config_with(media)).expect("config");
    let cfg = config_path.to_str().expect("utf-8").to_owned();
    // The check runs where the appliance runs: both realm addresses are on its host.
    let out = Command::new("ip")
        .args(["netns", "exec", &app.0, env!("CARGO_BIN_EXE_portcullis")])
        .args(["check-config", &cfg])
        .output()
        .expect("check-config");
    assert!(
        out.status.success(),
        "check-config in the appliance's namespace: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let bin = env!("CARGO_BIN_EXE_portcullis");
    let run = vec!["run".to_owned(), "--config".to_owned(), cfg];
    let mut portcullis = Proc(app.spawn(d, "portcullis.log", bin, &run));
    let log = || std::fs::read_to_string(d.join("portcullis.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log().contains("portcullis ready") {
        if let Ok(Some(st)) = portcullis.0.try_wait() {
            panic!("portcullis exited at start ({st}):\n{}", log());
        }
        assert!(Instant::now() < deadline, "not ready:\n{}", log());
        std::thread::sleep(Duration::from_millis(50));
    }
    if fast_path {
        // The program is attached to both interfaces; each realm is on the fast path.
        for realm in ["outside", "inside"] {
            assert!(
                log()
                    .lines()
                    .any(|l| l.contains("media realm on the fast path") && l.contains(realm)),
                "realm {realm} on the fast path:\n{}",
                log()
            );
        }
    }

    pcaps(d);
    let sipp = sipp().to_str().expect("utf-8").to_owned();
    let uas_args = sipp_args(
        IN_PEER,
        5060,
        6000,
        &["-sn", "uas", "-rtp_echo", "-m", "1", "-trace_msg"],
    );
    let mut uas = Proc(inside.spawn(d, "uas.out", &sipp, &uas_args));
    std::thread::sleep(Duration::from_millis(500));
    let target = format!("{OUT_APP}:5060");
    let uac_args = sipp_args(
        OUT_PEER,
        5060,
        6000,
        &["-sn", "uac_pcap", &target, "-m", "1", "-trace_msg"],
    );
    let mut uac = Proc(outside.spawn(d, "uac.out", &sipp, &uac_args));
    let app_log = d.join("portcullis.log");
    let what = "sipp uac_pcap (outside, IPv4)";
    uac.wait_ok(Duration::from_secs(60), what, &d.join("uac.out"), &app_log);
    let what = "sipp uas (inside, IPv6)";
    uas.wait_ok(Duration::from_secs(30), what, &d.join("uas.out"), &app_log);

    // The inside (IPv6) party was offered the inside realm's IPv6 address, and our
    // signalling came from the inside listener.
    let invite = messages(d, "uas_", "INVITE ")
        .into_iter()
        .next()
        .expect("the INVITE the UAS received");
    note(&invite);
    assert!(invite.contains(&format!("c=IN IP6 {IN_APP}\n")), "{invite}");
    assert!(
        !invite.contains("IN IP4"),
        "no IPv4 toward the inside: {invite}"
    );
    assert!(
        invite.contains(&format!("Via: SIP/2.0/UDP [{IN_APP}]:5060;")),
        "{invite}"
    );
    assert!(
        invite.contains(&format!("Contact: <sip:sbc@[{IN_APP}]:5060>")),
        "{invite}"
    );
    let port: u16 = invite
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .expect("m=audio");
    assert!((30000..=30255).contains(&port), "inside realm port: {port}");
    // The outside (IPv4) party got the outside realm's IPv4 address in the answer.
    let ok = messages(d, "uac_", "SIP/2.0 200")
        .into_iter()
        .next()
        .expect("the 200 the UAC received");
    note(&ok);
    assert!(ok.contains(&format!("c=IN IP4 {OUT_APP}\n")), "{ok}");
    assert!(!ok.contains("IN IP6"), "no IPv6 toward the outside: {ok}");

    // RTP both ways, counted on both legs.
    let deadline = Instant::now() + Duration::from_secs(15);
    let cdr = loop {
        let text = std::fs::read_to_string(d.join("cdr.jsonl")).unwrap_or_default();
        if let Some(line) = text.lines().next() {
            break serde_json::from_str::<serde_json::Value>(line).expect("CDR json");
        }
        assert!(Instant::now() < deadline, "no CDR:\n{}", log());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(end_kind(&cdr), "normal_clearing", "{cdr}");
    let (a_rx, a_tx) = (
        counter(&cdr, "a", "rx_packets"),
        counter(&cdr, "a", "tx_packets"),
    );
    let (b_rx, b_tx) = (
        counter(&cdr, "b", "rx_packets"),
        counter(&cdr, "b", "tx_packets"),
    );
    note(&format!(
        "media a rx/tx {a_rx}/{a_tx}, b rx/tx {b_rx}/{b_tx}"
    ));
    assert!(a_rx >= 100, "IPv4 caller's RTP received: {cdr}");
    assert!(b_tx >= 100, "relayed to the IPv6 callee: {cdr}");
    assert!(b_rx >= 100, "the IPv6 callee's echo received: {cdr}");
    assert!(
        a_tx >= 100,
        "the echo relayed back to the IPv4 caller: {cdr}"
    );
    if fast_path {
        // Every packet went through a worker: the pair was never promoted, nor tried.
        let m = app.metrics();
        assert!(
            m.contains("portcullis_fastpath_promoted_ports"),
            "fast path on: {m}"
        );
        for family in [
            "portcullis_fastpath_packets_total",
            "portcullis_fastpath_promotion_failures_total",
        ] {
            assert_eq!(sample(&m, family, ""), 0, "{family}");
        }
        let forwarded = ["tx", "redirect"].map(|v| {
            sample(
                &m,
                "portcullis_fastpath_program_packets_total",
                &format!("verdict=\"{v}\""),
            )
        });
        assert_eq!(forwarded, [0, 0], "the program forwarded nothing");
    }
}

/// A realm whose address is not on the host is a check-config error naming the realm's
/// key and the address (the appliance would otherwise fail binding it at start).
#[test]
fn a_realm_address_not_on_the_host_is_a_check_config_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("p.toml");
    let cfg = config()
        .replace(OUT_APP, "198.51.100.77")
        .replace(
            "address = \"198.51.100.77:5060\"",
            "address = \"127.0.0.1:15060\"",
        )
        .replace(
            &format!("address = \"[{IN_APP}]:5060\""),
            "address = \"[::1]:15060\"",
        )
        .replace(&format!("bind_ip = \"{IN_APP}\""), "bind_ip = \"::1\"");
    std::fs::write(&path, cfg).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check-config", path.to_str().expect("utf-8")])
        .output()
        .expect("check-config");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("media.realm[0].bind_ip"), "{text}");
    assert!(
        text.contains("198.51.100.77 is not an address of this host"),
        "{text}"
    );
    assert!(!text.contains("media.realm[1]"), "::1 is local: {text}");
}

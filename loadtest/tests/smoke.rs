//! Bounded end-to-end runs of the real binary: against the raw forwarder (media only), a
//! media node and rtpengine over ng, and UAC → UAS directly (SIP with media, every call
//! behaviour).

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis-loadtest");

fn target_dir() -> PathBuf {
    // .../target/<profile>/portcullis-loadtest
    Path::new(BIN)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Binary `bin` of workspace package `package`, built on demand in our target directory
/// (same profile as this test).
fn built_on_demand(package: &str, bin: &str) -> PathBuf {
    let p = target_dir().join(bin);
    if !p.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let target = target_dir()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", package, "--bin", bin])
            .env("CARGO_TARGET_DIR", target);
        if target_dir().ends_with("release") {
            cmd.arg("--release");
        }
        let st = cmd
            .status()
            .unwrap_or_else(|e| panic!("running cargo to build {bin}: {e}"));
        assert!(st.success(), "building {bin} failed");
    }
    assert!(p.exists(), "{bin} missing at {}", p.display());
    p
}

/// The raw forwarder binary, built on demand in our target directory.
fn rawfwd() -> PathBuf {
    built_on_demand("portcullis-benches", "portcullis-rawfwd")
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn report(path: &Path) -> serde_json::Value {
    let s = std::fs::read_to_string(path).expect("report written");
    serde_json::from_str(&s).expect("report is JSON")
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("lt-{}-{name}", std::process::id()))
}

/// Runs the tool with `--report <json>` added and asserts that it succeeded (`hint` leads
/// the failure message); returns the report and the tool's stdout, for messages.
fn run_with_report(cmd: &mut Command, json: &Path, hint: &str) -> (serde_json::Value, String) {
    let out = cmd
        .arg("--report")
        .arg(json)
        .output()
        .expect("loadtest runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{hint}{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (report(json), text)
}

/// Runs the tool and asserts that it refuses to, with `why` on stderr.
fn assert_refused(cmd: &mut Command, why: &str) {
    let bad = cmd.output().expect("loadtest runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains(why));
}

#[test]
fn fifty_streams_through_rawfwd_for_two_seconds() {
    let json = tmp("raw.json");
    let svg = tmp("raw.svg");
    let (r, text) = run_with_report(
        Command::new(BIN)
            .args([
                "--against",
                "raw",
                "--calls",
                "25",
                "--cps",
                "200",
                "--duration",
                "2",
            ])
            .args(["--relay-port", &free_port().to_string(), "--quiet"])
            .arg("--rawfwd-bin")
            .arg(rawfwd())
            .arg("--svg")
            .arg(&svg),
        &json,
        "",
    );
    assert_eq!(r["mode"], "raw");
    assert_eq!(r["media"]["streams"], 50, "{text}");
    let sent = r["media"]["sent"].as_u64().unwrap();
    // 50 streams × ~2 s × 50 packets/s, allowing for the ramp and a loaded machine.
    assert!(sent > 3000 && sent < 6000, "sent {sent}");
    assert!(
        r["media"]["received"].as_u64().unwrap() > sent * 9 / 10,
        "{text}"
    );
    assert!(r["latency_us"]["count"].as_u64().unwrap() > 0);
    assert!(r["relay"]["cpu_us"].is_u64(), "relay CPU accounted: {text}");
    assert!(text.contains("one-way latency"));
    // The charts: six panels with a time axis, the per-second latency percentiles and the
    // relay's CPU per packet among them; the timeline carries the same figures.
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(svg.matches("time (s)").count(), 6, "{svg}");
    assert!(svg.contains("µs/packet") && svg.contains("\np99\n</text>"));
    let timeline = r["timeline"].as_array().unwrap();
    assert!(
        timeline
            .iter()
            .any(|t| t["latency_p99_us"].as_f64().unwrap() > 0.0
                && t["cpu_us_per_packet"].as_f64().unwrap() > 0.0),
        "{text}"
    );
    let _ = std::fs::remove_file(json);
}

#[test]
fn direct_sip_calls_with_every_behaviour_have_no_failures() {
    let json = tmp("direct.json");
    let uac = format!("127.0.0.1:{}", free_port());
    let uas = format!("127.0.0.1:{}", free_port());
    let (r, text) = run_with_report(
        Command::new(BIN)
            .args([
                "--against",
                "direct",
                "--calls",
                "20",
                "--cps",
                "40",
                "--duration",
                "3",
            ])
            .args([
                "--hold",
                "1",
                "--reinvite-share",
                "0.2",
                "--cancel-share",
                "0.2",
            ])
            .args([
                "--callee-bye-share",
                "0.2",
                "--uac",
                &uac,
                "--uas",
                &uas,
                "--quiet",
            ]),
        &json,
        "",
    );
    let started = r["calls_started"].as_u64().unwrap();
    assert!(started >= 40, "{text}");
    assert_eq!(r["calls_completed"].as_u64().unwrap(), started, "{text}");
    assert!(r["failures"].as_object().unwrap().is_empty(), "{text}");
    assert!(r["setup_us"]["count"].as_u64().unwrap() > 0);
    assert_eq!(r["media"]["lost"], 0, "{text}");
    let _ = std::fs::remove_file(json);
}

/// The appliance binary, built on demand in our target directory.
fn appliance() -> PathBuf {
    built_on_demand("portcullis", "portcullis")
}

/// `--against portcullis-ng`: a spawned `portcullis media-node` driven through the ng
/// protocol exactly as rtpengine is (offer, answer, delete per call), media both ways.
#[test]
fn fifty_streams_through_a_portcullis_media_node_driven_by_ng() {
    let json = tmp("ng.json");
    let (r, text) = run_with_report(
        Command::new(BIN)
            .args([
                "--against",
                "portcullis-ng",
                "--calls",
                "25",
                "--cps",
                "200",
                "--duration",
                "2",
            ])
            .args(["--relay-port", &free_port().to_string(), "--quiet"])
            .arg("--appliance-bin")
            .arg(appliance()),
        &json,
        "",
    );
    assert_eq!(r["mode"], "portcullis-ng");
    assert_eq!(r["calls_started"], 25, "{text}");
    assert_eq!(r["media"]["streams"], 50, "{text}");
    let sent = r["media"]["sent"].as_u64().unwrap();
    assert!(sent > 3000 && sent < 6000, "sent {sent}");
    assert!(
        r["media"]["received"].as_u64().unwrap() > sent * 9 / 10,
        "{text}"
    );
    assert!(r["failures"].as_object().unwrap().is_empty(), "{text}");
    assert!(
        r["relay"]["cpu_us"].is_u64(),
        "media node CPU accounted: {text}"
    );
    let _ = std::fs::remove_file(json);
}

/// An rtpengine we started (userspace, one thread); killed on drop.
struct Rtpengine(std::process::Child);

impl Drop for Rtpengine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// rtpengine's count of packets it relayed in userspace, from its ng `statistics` reply
/// (`totalstatistics` → `relayedpackets_user`).
fn rtpengine_relayed(ng: &str) -> u64 {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    sock.send_to(b"st1 d7:command10:statisticse", ng).unwrap();
    let mut buf = vec![0u8; 65536];
    let n = sock
        .recv(&mut buf)
        .expect("rtpengine answers ng statistics");
    let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
    let key = "19:relayedpackets_useri";
    let at = reply
        .find(key)
        .unwrap_or_else(|| panic!("no {key}: {reply}"))
        + key.len();
    let digits: String = reply[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}

/// `--relay-addr`: an rtpengine already running (here started by the test, as a benchmark
/// starts one in another network namespace) is driven over ng and left running; what it
/// relayed, by its own counter, covers what the tool received.
#[test]
fn a_running_rtpengine_given_by_relay_addr_is_driven_not_started() {
    let ng = format!("127.0.0.1:{}", free_port());
    let mut rtpengine = Rtpengine(
        Command::new("rtpengine")
            .args(["--interface=127.0.0.1", &format!("--listen-ng={ng}")])
            .args(["--foreground", "--log-stderr", "--log-level=3"])
            .args(["--num-threads=1", "--table=-1"])
            .args(["--port-min=42000", "--port-max=43999"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("rtpengine runs (apt: rtpengine-daemon)"),
    );
    let json = tmp("relay-addr.json");
    let (r, text) = run_with_report(
        Command::new(BIN)
            .args(["--against", "rtpengine", "--relay-addr", &ng])
            .args(["--calls", "25", "--cps", "200", "--duration", "2"])
            .arg("--quiet"),
        &json,
        "",
    );
    assert_eq!(r["mode"], "rtpengine");
    assert_eq!(r["calls_started"], 25, "{text}");
    assert_eq!(r["media"]["streams"], 50, "{text}");
    assert!(r["failures"].as_object().unwrap().is_empty(), "{text}");
    let received = r["media"]["received"].as_u64().unwrap();
    assert!(
        received > r["media"]["sent"].as_u64().unwrap() * 9 / 10,
        "{text}"
    );
    assert!(
        r["relay"].is_null(),
        "no process of ours to account: {text}"
    );
    assert!(
        rtpengine.0.try_wait().unwrap().is_none(),
        "rtpengine still running after the run"
    );
    let relayed = rtpengine_relayed(&ng);
    assert!(
        relayed >= received,
        "rtpengine relayed {relayed}, tool received {received}"
    );
    assert_refused(
        Command::new(BIN).args(["--against", "raw", "--relay-addr", &ng, "--duration", "1"]),
        "--relay-addr names an ng relay",
    );
    let _ = std::fs::remove_file(json);
}

#[test]
fn twenty_calls_through_a_spawned_appliance_have_no_failures() {
    spawned_appliance_run("plain", "rtp", "rtp", "none");
}

#[test]
fn srtp_caller_to_plain_callee_through_the_appliance_is_exact() {
    // Inbound trunk SDES-SRTP, outbound plain: the appliance decrypts one way and
    // encrypts the other; the tool's own SRTP must agree with it packet for packet.
    let r = spawned_appliance_run("srtp-caller", "srtp", "rtp", "caller");
    assert_eq!(r["srtp"], "caller");
    assert_eq!(r["srtp_errors"], 0);
}

#[test]
fn plain_caller_to_srtp_callee_through_the_appliance_is_exact() {
    let r = spawned_appliance_run("srtp-callee", "rtp", "srtp", "callee");
    assert_eq!(r["srtp"], "callee");
    assert_eq!(r["srtp_errors"], 0);
}

#[test]
fn direct_srtp_calls_are_decrypted_exactly() {
    let json = tmp("direct-srtp.json");
    let uac = format!("127.0.0.1:{}", free_port());
    let uas = format!("127.0.0.1:{}", free_port());
    let (r, text) = run_with_report(
        Command::new(BIN)
            .args(["--against", "direct", "--srtp", "both"])
            .args(["--calls", "30", "--cps", "60", "--duration", "2", "--quiet"])
            .args(["--reinvite-share", "0.3", "--hold", "1.2"])
            .args(["--uac", &uac, "--uas", &uas]),
        &json,
        "",
    );
    assert_eq!(r["srtp"], "both");
    assert!(r["failures"].as_object().unwrap().is_empty(), "{text}");
    assert!(r["reinvites_ok"].as_u64().unwrap() > 0, "{text}");
    assert!(r["media"]["sent"].as_u64().unwrap() > 1000, "{text}");
    assert_eq!(r["media"]["lost"], 0, "{text}");
    assert_eq!(r["srtp_errors"], 0, "{text}");
    // The direct mode refuses one-sided SRTP (both sides are ours).
    assert_refused(
        Command::new(BIN)
            .args(["--against", "direct", "--srtp", "caller", "--duration", "1"])
            .args(["--uac", &uac, "--uas", &uas, "--quiet"]),
        "--srtp must be both",
    );
    let _ = std::fs::remove_file(json);
}

/// 20 calls with media for 3 s through a spawned appliance whose inbound trunk (`left`,
/// our UAC) and outbound trunk (`right`, our UAS) use the given media modes.
fn spawned_appliance_run(
    name: &str,
    left_media: &str,
    right_media: &str,
    srtp: &str,
) -> serde_json::Value {
    let (sip, uac, uas, admin) = (free_port(), free_port(), free_port(), free_port());
    // A media range of its own so parallel tests and other appliances do not collide.
    let salt = match name {
        "plain" => 0,
        "srtp-caller" => 1,
        _ => 2,
    };
    // 200 ports per run: three runs per process (salt), sixteen processes apart.
    let base = 20_000 + (std::process::id() % 16) as u16 * 600 + salt * 200;
    let cdr = tmp(&format!("{name}-cdr.jsonl"));
    let config = tmp(&format!("{name}-appliance.toml"));
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"lt-test\"\n\n[[sip.listener]]\ntransport = \"udp\"\n\
             address = \"127.0.0.1:{sip}\"\n\n[media]\nadvertised_ip = \"127.0.0.1\"\n\
             bind_ip = \"127.0.0.1\"\nport_min = {base}\nport_max = {}\ncores = \"auto:1\"\n\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n\n[cdr]\npath = \"{}\"\n\n\
             [policy]\nunknown_source = \"reject\"\n\n\
             [[trunk]]\nname = \"left\"\naddress = \"127.0.0.1:{uac}\"\nmedia = \"{left_media}\"\n\n\
             [[trunk]]\nname = \"right\"\naddress = \"127.0.0.1:{uas}\"\nmedia = \"{right_media}\"\n\n\
             [[route]]\nname = \"l2r\"\nfrom = [\"left\"]\ntargets = [\"right\"]\n",
            base + 199,
            cdr.display()
        ),
    )
    .unwrap();
    let json = tmp(&format!("{name}-spawn.json"));
    let (r, text) = run_with_report(
        Command::new(BIN)
            .args(["--srtp", srtp])
            .args([
                "--spawn",
                "--calls",
                "20",
                "--cps",
                "40",
                "--duration",
                "3",
                "--quiet",
            ])
            .arg("--config")
            .arg(&config)
            .arg("--appliance-bin")
            .arg(appliance())
            .args(["--appliance-sip", &format!("127.0.0.1:{sip}")])
            .args([
                "--uac",
                &format!("127.0.0.1:{uac}"),
                "--uas",
                &format!("127.0.0.1:{uas}"),
            ])
            .args(["--relay-core", "0"]),
        &json,
        "",
    );
    assert_eq!(r["mode"], "appliance");
    assert_eq!(r["calls_started"], 20, "{text}");
    assert_eq!(r["calls_answered"], 20, "{text}");
    assert_eq!(r["calls_completed"], 20, "{text}");
    assert!(r["failures"].as_object().unwrap().is_empty(), "{text}");
    let sent = r["media"]["sent"].as_u64().unwrap();
    assert!(sent > 1000, "media flowed through the appliance: {text}");
    assert!(
        r["media"]["received"].as_u64().unwrap() > sent * 9 / 10,
        "{text}"
    );
    assert!(
        r["relay"]["pid"].is_u64(),
        "appliance CPU and RSS accounted: {text}"
    );
    assert_eq!(r["media"]["lost"], 0, "{text}");
    for f in [json, config, cdr] {
        let _ = std::fs::remove_file(f);
    }
    r
}

#[test]
fn netns_run_is_isolated_and_uses_the_default_ports() {
    // In its own network namespace the run may use 5070/5080 (the appliance's trunk
    // ports) without meeting anything else on this machine. Needs root, like the
    // 10,000-call runs it exists for.
    let json = tmp("netns.json");
    let (r, text) = run_with_report(
        Command::new(BIN)
            .args(["--netns", "--against", "direct"])
            .args([
                "--calls",
                "10",
                "--cps",
                "50",
                "--duration",
                "1.5",
                "--quiet",
            ])
            .args(["--ptime", "180"]),
        &json,
        "--netns needs root (CAP_SYS_ADMIN) and iproute2: ",
    );
    assert_eq!(r["ptime_ms"], 180);
    assert!(r["failures"].as_object().unwrap().is_empty(), "{text}");
    assert!(r["media"]["sent"].as_u64().unwrap() > 50, "{text}");
    assert_eq!(r["media"]["lost"], 0, "{text}");
    assert_refused(
        Command::new(BIN).args(["--against", "direct", "--ptime", "200", "--duration", "1"]),
        "1500-byte datagram",
    );
    let _ = std::fs::remove_file(json);
}

//! The AF_XDP generator (`--generator af_xdp`) against the appliance, in network namespaces
//! joined by a veth pair: `gen` (UAC 192.0.2.1 and UAS 192.0.2.3 on veth p0) and `sbc` (the
//! appliance on 192.0.2.2, io_uring workers). Every count of the report is checked against
//! the appliance's own (`/metrics`): the packets the generator says it sent are the packets
//! the appliance received, the packets it says it received are the ones the appliance sent.
//! Root, iproute2 and curl are needed; without them the test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis-loadtest");
const TARGET: &str = "192.0.2.2:5060";
const UAC: &str = "192.0.2.1:5070";
const UAS: &str = "192.0.2.3:5080";
/// One short call.
const ONE_CALL: [&str; 4] = ["--calls", "1", "--duration", "1"];

/// The UAC and UAS, and the AF_XDP generator on `ifname`.
fn af_xdp_on(ifname: &str) -> [&str; 8] {
    [
        "--uac",
        UAC,
        "--uas",
        UAS,
        "--generator",
        "af_xdp",
        "--ifname",
        ifname,
    ]
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("`ip` (iproute2) must be installed");
    assert!(
        out.status.success(),
        "ip {}: {} (root needed)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(role: &str) -> Netns {
        let name = format!("pclt-{}-{role}", std::process::id());
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

    fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).arg(program);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A process we started, killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn appliance_bin() -> PathBuf {
    let dir = Path::new(BIN).parent().expect("target dir").to_path_buf();
    let p = dir.join("portcullis");
    if !p.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "portcullis", "--bin", "portcullis"])
            .env("CARGO_TARGET_DIR", dir.parent().expect("target root"));
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        assert!(
            cmd.status().expect("running cargo").success(),
            "building portcullis"
        );
    }
    p
}

fn config(dir: &Path) -> String {
    format!(
        r#"[node]
name = "lt-af-xdp"

[[sip.listener]]
transport = "udp"
address = "192.0.2.2:5060"

[media]
bind_ip = "192.0.2.2"
port_min = 20000
port_max = 20999
cores = [0]
backend = "io_uring"
fast_path = "off"

[admin]
listen = "127.0.0.1:9100"

[cdr]
path = "{}"
fsync = "never"

[[trunk]]
name = "left"
address = "192.0.2.1:5070"

[[trunk]]
name = "right"
address = "192.0.2.3:5080"

[[route]]
name = "out"
from = ["left"]
targets = ["right"]
"#,
        dir.join("cdr.jsonl").display()
    )
}

/// The appliance's data-plane packet counters: (received, sent), all workers.
fn appliance_packets(sbc: &Netns) -> (u64, u64) {
    let out = sbc
        .cmd("curl")
        .args(["-sf", "http://127.0.0.1:9100/metrics"])
        .output()
        .expect("curl must be installed");
    assert!(out.status.success(), "reading the appliance's /metrics");
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut rx, mut tx) = (0, 0);
    for line in text.lines() {
        if !line.starts_with("portcullis_dataplane_packets_total{") {
            continue;
        }
        let v: u64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("metric line {line}"));
        if line.contains("direction=\"rx\"") {
            rx += v;
        } else if line.contains("direction=\"tx\"") {
            tx += v;
        }
    }
    (rx, tx)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The run failed and said `why`.
fn refused(o: &Output, why: &str) {
    assert!(!o.status.success());
    assert!(text(o).contains(why), "{}", text(o));
}

#[test]
fn af_xdp_generator_through_the_appliance_counts_every_packet() {
    let tmp = TempDir(std::env::temp_dir().join(format!("pclt-afxdp-{}", std::process::id())));
    let dir = tmp.0.clone();
    std::fs::create_dir_all(&dir).unwrap();
    let gen = Netns::new("gen");
    let sbc = Netns::new("sbc");
    gen.ip(&[
        "link", "add", "p0", "type", "veth", "peer", "name", "mpa0", "netns", &sbc.0,
    ]);
    gen.ip(&["addr", "add", "192.0.2.1/24", "dev", "p0"]);
    gen.ip(&["addr", "add", "192.0.2.3/24", "dev", "p0"]);
    sbc.ip(&["addr", "add", "192.0.2.2/24", "dev", "mpa0"]);
    gen.ip(&["link", "set", "p0", "up"]);
    sbc.ip(&["link", "set", "mpa0", "up"]);

    // Bad inputs first: they must be refused with a clear reason.
    let o = gen
        .cmd(BIN)
        .args(["--target", TARGET, "--generator", "af_xdp"])
        .output()
        .unwrap();
    refused(&o, "--generator af_xdp needs --ifname");
    let o = gen
        .cmd(BIN)
        .args(["--target", TARGET])
        .args(af_xdp_on("nosuch0"))
        .args(ONE_CALL)
        .arg("--quiet")
        .output()
        .unwrap();
    refused(&o, "--ifname nosuch0: no such interface");
    let o = gen
        .cmd(BIN)
        .args(["--against", "direct"])
        .args(af_xdp_on("p0"))
        .args(ONE_CALL)
        .output()
        .unwrap();
    refused(&o, "needs an appliance across --ifname");
    // Without privileges (nobody, no capabilities): the XDP program cannot be loaded.
    let o = gen
        .cmd("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["--inh-caps=-all", "--bounding-set=-all", BIN])
        .args(["--target", TARGET])
        .args(af_xdp_on("p0"))
        .args(ONE_CALL)
        .arg("--quiet")
        .output()
        .expect("setpriv (util-linux) must be installed");
    refused(&o, "needs root");

    let cfg = dir.join("sbc.toml");
    std::fs::write(&cfg, config(&dir)).unwrap();
    let log = dir.join("sbc.log");
    let app = Proc(
        sbc.cmd(appliance_bin())
            .args(["run", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting the appliance"),
    );
    let start = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("portcullis ready")
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "appliance not ready: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let json = dir.join("report.json");
    let o = gen
        .cmd(BIN)
        .args(["--target", TARGET])
        .args(af_xdp_on("p0"))
        .args([
            "--calls",
            "20",
            "--max-calls",
            "20",
            "--cps",
            "100",
            "--hold",
            "2",
        ])
        .args(["--duration", "3"])
        .args(["--ptime", "20", "--cores", "0", "--quiet", "--report"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(o.status.success(), "loadtest: {}", text(&o));
    let (app_rx, app_tx) = appliance_packets(&sbc);
    drop(app);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    drop(tmp);

    let m = &r["media"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("{v} in {r}"));
    assert_eq!(r["generator"], "af_xdp");
    assert_eq!(r["mode"], "appliance");
    assert_eq!(n(&r["calls_completed"]), 20, "{r}");
    assert_eq!(r["failures"].as_object().map(|f| f.len()), Some(0), "{r}");
    assert_eq!(n(&m["streams"]), 40);
    // 40 streams at 50 packets/s for about 2 s: a run that sent next to nothing is not a
    // pass (a busy machine sends late, never fewer than a second's worth).
    let sent = n(&m["sent"]);
    assert!(sent >= 2000, "sent {sent}");
    // The generator's counts are the appliance's, exactly, both ways.
    assert_eq!(sent, app_rx, "generator sent / appliance received");
    assert_eq!(
        n(&m["received"]),
        app_tx,
        "generator received / appliance sent"
    );
    assert_eq!(n(&m["received"]), sent, "{r}");
    assert_eq!(n(&m["lost"]), 0);
    assert_eq!((n(&m["duplicates"]), n(&m["reordered"])), (0, 0));
    assert_eq!(n(&r["send_errors"]), 0);
    assert_eq!(n(&r["generator_rx_dropped"]), 0);
    assert_eq!(r["loss_ratio"].as_f64(), Some(0.0));
    // One latency sample per packet received.
    assert_eq!(n(&r["latency_us"]["count"]), sent);
    assert!(n(&r["latency_us"]["p50"]) > 0);
}

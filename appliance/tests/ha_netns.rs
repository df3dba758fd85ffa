//! The measured failover drill in network namespaces (root): two appliance namespaces,
//! a Redis namespace and the peers' namespace on one bridge; keepalived (VRRPv3) in each
//! appliance namespace moves the service address 192.0.2.10 (TEST-NET-1, inside the
//! namespaces only) and runs the shipped notify script on MASTER. The load generator
//! holds 200 calls with media both ways (half hung up by the caller, half by the callee);
//! the active box dies (`kill -9` of the appliance and keepalived, its link down); the
//! drill reports how long media stopped (each stream's longest gap between two
//! packets), how many calls survived, and checks that every call was hung up with a BYE
//! answered and has exactly one CDR, marked with the takeover, on the surviving node;
//! the dead node, back as standby, writes no restart record. Then the other way (fail
//! back). Run at VRRP advertisement 1 s (plain RTP) and 0.3 s (SDES-SRTP on both legs).
//!
//! Timing is reported (stdout and `ha-drill-<advert>.json` in the test's temp dir
//! printed), not asserted: the machine's load decides it. What is asserted is behaviour.

#[path = "sipp_harness/mod.rs"]
mod sipp_harness;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const VIP: &str = "192.0.2.10";
const REDIS_IP: &str = "192.0.2.20";
const UAC: &str = "192.0.2.31";
const UAS: &str = "192.0.2.32";
const TOKEN: &str = "netns-drill-token-0123456789";
const CALLS: u64 = 200;
/// VRRP priority of a standby (the first master one more), as docs/ha.md advises: the
/// backup's skew time, `(256 - priority) / 256` of an advertisement, is then ~2%.
const STANDBY_PRIORITY: u32 = 249;

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (iproute2 and root are required)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip(args: &[&str]) -> String {
    run(Command::new("ip").args(args))
}

/// `cmd` with `args` inside namespace `ns`.
fn in_ns(ns: &str, prog: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, prog]).args(args);
    c
}

fn wait_for(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A process of the drill, killed (SIGKILL, by PID) on drop.
struct Proc(Child);

impl Proc {
    fn spawn(mut cmd: Command, log: &Path) -> Self {
        let f = std::fs::File::create(log).expect("log");
        let f2 = f.try_clone().expect("log");
        Self(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::from(f))
                .stderr(Stdio::from(f2))
                .spawn()
                .unwrap_or_else(|e| panic!("{cmd:?}: {e}")),
        )
    }

    fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The namespaces and the bridge; deleted on drop.
struct Net {
    prefix: String,
}

impl Net {
    fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// `sw` holds the bridge; every other namespace gets a veth on it.
    fn new(tag: &str) -> Self {
        let prefix = format!("ph{}{tag}", std::process::id() % 100_000);
        let net = Self { prefix };
        let sw = net.ns("sw");
        ip(&["netns", "add", &sw]);
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &sw, "link", "set", "br0", "up"]);
        for (name, addrs) in [
            ("a", vec!["192.0.2.11/24"]),
            ("b", vec!["192.0.2.12/24"]),
            ("r", vec!["192.0.2.20/24"]),
            ("p", vec!["192.0.2.31/24", "192.0.2.32/24"]),
        ] {
            let ns = net.ns(name);
            let peer = format!("{}{name}", net.prefix);
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &peer,
                "netns", &sw,
            ]);
            ip(&["-n", &sw, "link", "set", &peer, "master", "br0", "up"]);
            for a in addrs {
                ip(&["-n", &ns, "addr", "add", a, "dev", "eth0"]);
            }
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        for n in ["a", "b"] {
            // The standby binds the service address before it owns it.
            run(&mut in_ns(
                &net.ns(n),
                "sysctl",
                &["-qw", "net.ipv4.ip_nonlocal_bind=1"],
            ));
        }
        net
    }

    fn has_vip(&self, node: &str) -> bool {
        ip(&["-n", &self.ns(node), "-4", "addr", "show", "dev", "eth0"]).contains(VIP)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in ["a", "b", "r", "p", "sw"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(n)])
                .status();
        }
    }
}

/// How the active node fails.
#[derive(Clone, Copy, Debug)]
enum Failure {
    /// `kill -9` of the appliance; the box lives on and its service manager stops
    /// keepalived, which gives the address up (`BindsTo=`, docs/ha.md).
    Kill9,
    /// The whole box: its link goes down, then everything on it is killed (the backup
    /// notices the missing advertisements).
    BoxDeath,
}

/// One appliance box: its directory (config, CDRs, journal), the appliance, keepalived.
struct Node {
    name: &'static str,
    dir: PathBuf,
    appliance: Option<Proc>,
    keepalived: Option<Proc>,
}

/// Fields drop in order: Redis before the namespaces, the namespaces before the files.
struct Drill {
    _redis: Proc,
    net: Net,
    tmp: tempfile::TempDir,
    advert: &'static str,
    /// SDES-SRTP on both trunks (the load generator keys both sides).
    srtp: bool,
}

impl Drill {
    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn redis_cli(&self, args: &[&str]) -> String {
        let out = in_ns(
            &self.net.ns("r"),
            "redis-cli",
            &["-h", REDIS_IP, "-a", "drill-pass", "--no-auth-warning"],
        )
        .args(args)
        .output()
        .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn live_keys(&self) -> usize {
        self.redis_cli(&["--scan", "--pattern", "portcullis:call:*"])
            .lines()
            .filter(|l| !l.is_empty())
            .count()
    }

    fn config(&self, node: &Node, role: &str) -> String {
        format!(
            r#"[node]
name = "{name}"

[[sip.listener]]
transport = "udp"
address = "{VIP}:5060"

[sip]
drain_timeout = "3s"

[media]
advertised_ip = "{VIP}"
bind_ip = "{VIP}"
port_min = 30000
port_max = 31999
cores = "auto:1"
inactivity_timeout = "60s"

[admin]
listen = "127.0.0.1:8080"
token = "{TOKEN}"

[cdr]
path = "cdr.jsonl"

[policy]
unknown_source = "reject"
rate_limit = 100000

[[trunk]]
name = "callers"
address = "{UAC}:5070"
media = "{media}"

[[trunk]]
name = "callees"
address = "{UAS}:5080"
media = "{media}"

[[route]]
name = "out"
from = ["callers"]
targets = ["callees"]

[ha]
role = "{role}"
peer = "{peer}"
redis_url = "redis://{REDIS_IP}:6379/0"
redis_password_file = "{pass}"
key_file = "{key}"
"#,
            name = node.name,
            media = if self.srtp { "srtp" } else { "rtp" },
            peer = if node.name == "a" { "b" } else { "a" },
            pass = self.path("redis.pass").display(),
            key = self.path("ha.key").display(),
        )
    }

    /// Starts the appliance of `node` (waits for it to be ready), then its keepalived.
    fn start(&self, node: &mut Node, role: &str, priority: u32) {
        self.start_appliance(node, role);
        self.start_keepalived(node, priority);
    }

    /// Starts the appliance of `node` and waits for it to be ready.
    fn start_appliance(&self, node: &mut Node, role: &str) {
        std::fs::create_dir_all(&node.dir).unwrap();
        let cfg = node.dir.join("portcullis.toml");
        std::fs::write(&cfg, self.config(node, role)).unwrap();
        let log = node.dir.join("portcullis.log");
        let mut cmd = in_ns(
            &self.net.ns(node.name),
            env!("CARGO_BIN_EXE_portcullis"),
            &["run", "--config"],
        );
        cmd.arg(&cfg)
            .current_dir(&node.dir)
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET");
        node.appliance = Some(Proc::spawn(cmd, &log));
        assert!(
            wait_for(Duration::from_secs(30), || std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("portcullis ready")),
            "node {} not ready:\n{}",
            node.name,
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// keepalived of `node`: VRRPv3, `nopreempt`, the notify script on MASTER.
    fn start_keepalived(&self, node: &mut Node, priority: u32) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/portcullis-ha-notify");
        let kconf = node.dir.join("keepalived.conf");
        std::fs::write(
            &kconf,
            format!(
                r#"global_defs {{
    router_id portcullis_{name}
    vrrp_version 3
    script_user root
}}
vrrp_instance PORTCULLIS {{
    state BACKUP
    nopreempt
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int {advert}
    virtual_ipaddress {{
        {VIP}/24 dev eth0
    }}
    notify "/usr/bin/env PORTCULLIS_TOKEN_FILE={token} /bin/sh {script}"
}}
"#,
                name = node.name,
                advert = self.advert,
                token = self.path("admin.token").display(),
                script = script.display(),
            ),
        )
        .unwrap();
        let d = &node.dir;
        let mut k = in_ns(
            &self.net.ns(node.name),
            "keepalived",
            &["-n", "-l", "-P", "-f"],
        );
        k.arg(&kconf)
            .arg("-p")
            .arg(d.join("keepalived.pid"))
            .arg("-r")
            .arg(d.join("vrrp.pid"));
        node.keepalived = Some(Proc::spawn(k, &d.join("keepalived.log")));
    }

    /// `failure` strikes `node`.
    fn fail(&self, node: &mut Node, failure: Failure) {
        match failure {
            Failure::Kill9 => {
                if let Some(mut p) = node.appliance.take() {
                    p.kill9();
                }
                // What systemd does for `BindsTo=portcullis.service` in keepalived's unit
                // (docs/ha.md): the appliance died, keepalived is stopped (SIGTERM), so
                // it sends priority 0 and the backup takes over after its skew time.
                if let Some(mut p) = node.keepalived.take() {
                    let _ = Command::new("kill")
                        .args(["-TERM", &p.0.id().to_string()])
                        .status();
                    let _ = p.0.wait();
                }
            }
            Failure::BoxDeath => {
                // The link first: nothing the dying processes do reaches the wire.
                ip(&["-n", &self.net.ns(node.name), "link", "set", "eth0", "down"]);
                if let Some(mut p) = node.appliance.take() {
                    p.kill9();
                }
                if let Some(mut p) = node.keepalived.take() {
                    p.kill9();
                }
            }
        }
    }

    /// `node` is back as the standby after `failure`.
    fn recover(&self, node: &mut Node, failure: Failure) {
        match failure {
            Failure::Kill9 => self.start(node, "standby", STANDBY_PRIORITY),
            Failure::BoxDeath => {
                let ns = self.net.ns(node.name);
                let _ = Command::new("ip")
                    .args([
                        "-n",
                        &ns,
                        "addr",
                        "del",
                        &format!("{VIP}/24"),
                        "dev",
                        "eth0",
                    ])
                    .stderr(Stdio::null())
                    .status();
                ip(&["-n", &ns, "link", "set", "eth0", "up"]);
                self.start(node, "standby", STANDBY_PRIORITY);
            }
        }
    }

    fn loadtest(&self, tag: &str) -> (Proc, PathBuf) {
        let report = self.path(&format!("load-{tag}.json"));
        let mut cmd = in_ns(
            &self.net.ns("p"),
            &sipp_harness::loadtest_bin().display().to_string(),
            &[],
        );
        cmd.args([
            "--target",
            &format!("{VIP}:5060"),
            "--uac",
            &format!("{UAC}:5070"),
            "--uas",
            &format!("{UAS}:5080"),
            "--calls",
            &CALLS.to_string(),
            "--max-calls",
            &CALLS.to_string(),
            "--cps",
            "50",
            "--hold",
            "30",
            "--duration",
            "40",
            "--ptime",
            "40",
            "--callee-bye-share",
            "0.5",
            "--srtp",
            if self.srtp { "both" } else { "none" },
            "--quiet",
            "--report",
        ])
        .arg(&report);
        (
            Proc::spawn(cmd, &self.path(&format!("load-{tag}.log"))),
            report,
        )
    }
}

fn cdrs(node: &Node) -> Vec<serde_json::Value> {
    std::fs::read_to_string(node.dir.join("cdr.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("CDR line"))
        .collect()
}

/// One failover: 200 calls through `active`, its box dies, `standby` takes over.
/// Returns the measured figures.
fn failover(
    d: &Drill,
    active: &mut Node,
    standby: &mut Node,
    failure: Failure,
    tag: &str,
) -> serde_json::Value {
    assert!(
        d.net.has_vip(active.name),
        "{} holds the service address",
        active.name
    );
    let cdrs_before = cdrs(standby).len();
    let (mut load, report) = d.loadtest(tag);
    assert!(
        wait_for(Duration::from_secs(30), || d.live_keys() as u64 == CALLS),
        "{CALLS} answered calls replicated ({} seen)",
        d.live_keys()
    );
    std::thread::sleep(Duration::from_secs(3));
    let killed = Instant::now();
    d.fail(active, failure);
    assert!(
        wait_for(Duration::from_secs(20), || d.net.has_vip(standby.name)),
        "{} took the service address",
        standby.name
    );
    let vip_moved = killed.elapsed();
    if std::env::var_os("HA_DRILL_DEBUG").is_some() {
        for n in [&*active, &*standby] {
            let k = std::fs::read_to_string(n.dir.join("keepalived.log")).unwrap_or_default();
            println!("---- keepalived {} ----\n{k}", n.name);
        }
    }
    let st = wait_for(Duration::from_secs(90), || {
        matches!(load.0.try_wait(), Ok(Some(_)))
    });
    assert!(st, "load generator finished");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    let log = std::fs::read_to_string(d.path(&format!("load-{tag}.log"))).unwrap_or_default();
    assert_eq!(r["calls_answered"], CALLS, "{log}");
    assert_eq!(
        r["calls_completed"], CALLS,
        "every survivor hung up with its BYE answered: {log}"
    );
    assert_eq!(r["failures"], serde_json::json!({}), "{log}");
    assert_eq!(
        r["srtp_errors"], 0,
        "SRTP carried on with its keys and indexes: {log}"
    );
    // Exactly one CDR per call, on the survivor, marked with the takeover.
    let all = cdrs(standby);
    let new: Vec<_> = all.iter().skip(cdrs_before).collect();
    assert_eq!(
        new.len() as u64,
        CALLS,
        "one CDR per call on {}",
        standby.name
    );
    let mut ids: Vec<&str> = new
        .iter()
        .map(|c| c["a_leg"]["call_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as u64, CALLS);
    let (mut by_caller, mut by_callee) = (0, 0);
    for c in &new {
        assert_eq!(c["takeover"]["count"], 1, "{c}");
        assert_eq!(c["end_reason"]["kind"], "normal_clearing", "{c}");
        match c["end_reason"]["by"].as_str() {
            Some("caller") => by_caller += 1,
            Some("callee") => by_callee += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(by_caller > 0 && by_callee > 0, "BYE from both sides");
    // The dead box comes back as standby: no restart record for the calls it had.
    let before = cdrs(active).len();
    d.recover(active, failure);
    assert_eq!(
        cdrs(active).len(),
        before,
        "no restart record on {}",
        active.name
    );
    // What the takeover itself took on the new node (Redis load, then restore).
    let standby_log =
        std::fs::read_to_string(standby.dir.join("portcullis.log")).unwrap_or_default();
    let field = |name: &str| -> Option<u64> {
        let line = standby_log
            .lines()
            .rev()
            .find(|l| l.contains("takeover done"))?;
        let at = line.find(&format!("{name}="))? + name.len() + 1;
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    let (load_ms, takeover_ms) = (field("load_ms"), field("total_ms"));
    let gap = &r["max_gap_us"];
    serde_json::json!({
        "direction": format!("{} -> {}", active.name, standby.name),
        "failure": format!("{failure:?}"),
        "advert_int_s": d.advert,
        "srtp": d.srtp,
        "calls": CALLS,
        "survived": new.len(),
        "hung_up_by_caller": by_caller,
        "hung_up_by_callee": by_callee,
        "service_address_moved_ms": vip_moved.as_millis() as u64,
        "takeover_load_ms": load_ms,
        "takeover_total_ms": takeover_ms,
        "media_gap_ms": {
            "p50": gap["p50"].as_u64().unwrap_or(0) / 1000,
            "p99": gap["p99"].as_u64().unwrap_or(0) / 1000,
            "max": gap["max"].as_u64().unwrap_or(0) / 1000,
        },
        "loss_ratio": r["loss_ratio"],
    })
}

fn drill(advert: &'static str, srtp: bool, tag: &str) {
    let _lock = sipp_harness::serial();
    let net = Net::new(tag);
    let tmp = tempfile::tempdir().unwrap();
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).unwrap();
    std::fs::write(tmp.path().join("ha.key"), hex::encode(key)).unwrap();
    std::fs::write(tmp.path().join("redis.pass"), "drill-pass").unwrap();
    std::fs::write(tmp.path().join("admin.token"), TOKEN).unwrap();
    let redis_dir = tmp.path().join("redis");
    std::fs::create_dir_all(&redis_dir).unwrap();
    let mut rc = in_ns(
        &net.ns("r"),
        "redis-server",
        &[
            "--bind",
            REDIS_IP,
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            "drill-pass",
            "--dir",
        ],
    );
    rc.arg(&redis_dir);
    let redis = Proc::spawn(rc, &tmp.path().join("redis.log"));
    let d = Drill {
        _redis: redis,
        net,
        tmp,
        advert,
        srtp,
    };
    assert!(
        wait_for(Duration::from_secs(10), || d.redis_cli(&["PING"]).trim()
            == "PONG"),
        "redis up"
    );
    let mut a = Node {
        name: "a",
        dir: d.path("a"),
        appliance: None,
        keepalived: None,
    };
    let mut b = Node {
        name: "b",
        dir: d.path("b"),
        appliance: None,
        keepalived: None,
    };
    d.start(&mut a, "active", STANDBY_PRIORITY + 1);
    assert!(
        wait_for(Duration::from_secs(20), || d.net.has_vip("a")),
        "a became master:\n{}",
        std::fs::read_to_string(a.dir.join("keepalived.log")).unwrap_or_default()
    );
    d.start(&mut b, "standby", STANDBY_PRIORITY);
    std::thread::sleep(Duration::from_secs(2));
    assert!(!d.net.has_vip("b"), "b stays backup");
    let first = failover(&d, &mut a, &mut b, Failure::Kill9, "ab");
    let back = failover(&d, &mut b, &mut a, Failure::BoxDeath, "ba");
    let report = serde_json::json!([first, back]);
    let out = d.path(&format!("ha-drill-{advert}.json"));
    std::fs::write(&out, serde_json::to_vec_pretty(&report).unwrap()).unwrap();
    println!("HA drill, VRRP advert_int {advert} s:\n{report:#}");
}

#[test]
fn drill_advert_1s() {
    drill("1", false, "s");
}

#[test]
fn drill_advert_300ms_srtp() {
    drill("0.3", true, "f");
}

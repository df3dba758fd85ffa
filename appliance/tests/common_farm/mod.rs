//! A signalling farm in network namespaces: Kamailio's dispatcher
//! (`deploy/kamailio/dispatcher.cfg`) in front of real `portcullis` appliances, and
//! `portcullis-loadtest` as caller and callee.
//!
//! ```text
//!   ns <tag>-load  10.77.0.21 (UAC) 10.77.0.22 (UAS) ─┐
//!   ns <tag>-kam   10.77.0.1:5060 (Kamailio)          ├─ bridge in ns <tag>-hub
//!   ns <tag>-appN  10.77.0.1N:5060 (appliance N)     ─┘
//! ```
//!
//! Callers send every INVITE to Kamailio; each appliance has Kamailio as its inbound
//! trunk and the UAS as its outbound trunk, and its admin API on 127.0.0.1:8080 inside
//! its namespace (read with `curl` run there). Every process lives in a namespace of
//! this farm; dropping the farm kills them (by PID) and deletes the namespaces. Tools
//! (`ip`, `kamailio`, `curl`, `cargo`) missing are failures, never skips.
#![allow(dead_code, clippy::print_stderr)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Kamailio's address (the callers' target, the appliances' inbound trunk).
pub const KAMAILIO: &str = "10.77.0.1";
/// The load generator's caller and callee addresses.
pub const UAC: &str = "10.77.0.21:5070";
pub const UAS: &str = "10.77.0.22:5080";
/// The dispatcher's probe interval in the tests, seconds.
pub const PING_INTERVAL_S: u64 = 1;
/// How long Kamailio waits for any answer (probes, BYE, an INVITE's 100), ms.
pub const FR_TIMER_MS: u64 = 2000;
/// How long an INVITE may wait for its final answer once provisionally answered, ms
/// (the load generator's callee answers at once).
pub const FR_INV_TIMER_MS: u64 = 5000;

/// Address of appliance `i` (1-based).
pub fn app_ip(i: usize) -> String {
    format!("10.77.0.{}", 10 + i)
}

/// The dispatcher's URI of appliance `i`.
pub fn app_uri(i: usize) -> String {
    format!("sip:{}:5060", app_ip(i))
}

/// Runs `cmd`, panicking with its output when it cannot start or fails.
fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ip(args: &[&str]) {
    run(Command::new("ip").args(args), "iproute2");
}

/// Seconds since the UNIX epoch (Kamailio logs `$TV(Sn)` on the same clock).
pub fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `portcullis-loadtest`, built by cargo in our target directory and profile (a no-op
/// when it is up to date).
pub fn loadtest_bin() -> PathBuf {
    let appliance = Path::new(env!("CARGO_BIN_EXE_portcullis"));
    let dir = appliance.parent().expect("target/<profile>");
    let target = dir.parent().expect("target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", "portcullis-loadtest", "--bin"])
        .arg("portcullis-loadtest")
        .env("CARGO_TARGET_DIR", target);
    if dir.ends_with("release") {
        cmd.arg("--release");
    }
    run(&mut cmd, "building portcullis-loadtest");
    let bin = dir.join("portcullis-loadtest");
    assert!(bin.exists(), "{} missing", bin.display());
    bin
}

/// One appliance of the farm.
pub struct App {
    pub ns: String,
    pub dir: PathBuf,
    pub child: Child,
}

impl App {
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("portcullis.log")).unwrap_or_default()
    }

    /// Its CDR lines so far.
    pub fn cdrs(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("cdr.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("CDR {l:?}: {e}")))
            .collect()
    }

    /// Its Prometheus exposition, read inside its namespace.
    pub fn metrics(&self) -> String {
        let out = run(
            Command::new("ip").args([
                "netns",
                "exec",
                &self.ns,
                "curl",
                "-sS",
                "--noproxy",
                "*",
                "--max-time",
                "10",
                "http://127.0.0.1:8080/metrics",
            ]),
            "scraping an appliance (curl)",
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The value of series `series` (`name{labels}` exactly as exported), or 0.
    pub fn metric(&self, series: &str) -> f64 {
        sample(&self.metrics(), series)
    }

    /// Sends signal `sig` ("KILL", "TERM") to the appliance's process.
    pub fn signal(&self, sig: &str) {
        run(
            Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(self.child.id().to_string()),
            "kill",
        );
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "{} still running after {within:?}:\n{}",
                self.ns,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The value of `series` in an exposition, or 0 when absent.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// What Kamailio logged about the farm (`farm: ...` lines of dispatcher.cfg).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A new INVITE sent to an appliance.
    Dispatch { call: String, to: String, at: f64 },
    /// An INVITE tried on the next appliance (503, or no answer).
    Failover { call: String, to: String, at: f64 },
    /// An INVITE got no answer at all: the appliance is taken out at once.
    Silent { uri: String, at: f64 },
    /// A probe took an appliance out (no 2xx).
    Down { uri: String, at: f64 },
    /// A probe brought an appliance back.
    Up { uri: String, at: f64 },
}

impl Event {
    fn parse(line: &str) -> Option<Self> {
        let rest = &line[line.find("farm: ")? + 6..];
        let (body, at) = rest.rsplit_once(" at ")?;
        let at: f64 = at.trim().parse().ok()?;
        let w: Vec<&str> = body.split_whitespace().collect();
        Some(match w.as_slice() {
            ["dispatch", call, "to", to] => Self::Dispatch {
                call: (*call).into(),
                to: (*to).into(),
                at,
            },
            ["failover", call, "to", to] => Self::Failover {
                call: (*call).into(),
                to: (*to).into(),
                at,
            },
            ["appliance", "silent", uri, ..] => Self::Silent {
                uri: uri.trim_end_matches(',').into(),
                at,
            },
            ["appliance", "down", uri] => Self::Down {
                uri: (*uri).into(),
                at,
            },
            ["appliance", "up", uri] => Self::Up {
                uri: (*uri).into(),
                at,
            },
            _ => return None,
        })
    }
}

/// How each appliance is configured beyond the common part.
#[derive(Debug, Clone)]
pub struct AppSettings {
    /// Lines of `[sip]`.
    pub sip: String,
    /// Lines of `[sip.limits]`.
    pub limits: String,
}

impl Default for AppSettings {
    fn default() -> Self {
        Self {
            sip: "drain_timeout = \"20s\"\ndrain_notice = \"3s\"".into(),
            limits: String::new(),
        }
    }
}

/// The farm; everything in it is stopped and removed on drop.
pub struct Farm {
    pub tag: String,
    pub dir: tempfile::TempDir,
    pub apps: Vec<App>,
    kamailio: Option<Child>,
    namespaces: Vec<String>,
    loadtest: Option<Child>,
}

impl Farm {
    /// Builds the namespaces and starts Kamailio and `n` appliances (appliance `i`
    /// configured by `settings(i)`), then waits until each has answered a probe.
    pub fn start(name: &str, n: usize, settings: impl Fn(usize) -> AppSettings) -> Self {
        let tag = format!("pcf{}{name}", std::process::id());
        let dir = tempfile::tempdir().expect("tempdir");
        let mut farm = Self {
            tag: tag.clone(),
            dir,
            apps: Vec::new(),
            kamailio: None,
            namespaces: Vec::new(),
            loadtest: None,
        };
        let hub = format!("{tag}-hub");
        farm.add_ns(&hub);
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &hub, "link", "set", "br0", "up"]);
        let mut nodes = vec![("kam".to_owned(), vec![KAMAILIO.to_owned()])];
        for i in 1..=n {
            nodes.push((format!("app{i}"), vec![app_ip(i)]));
        }
        nodes.push((
            "load".into(),
            vec!["10.77.0.21".into(), "10.77.0.22".into()],
        ));
        for (k, (node, addrs)) in nodes.iter().enumerate() {
            let ns = format!("{tag}-{node}");
            farm.add_ns(&ns);
            let veth = format!("v{k}");
            ip(&[
                "link", "add", &veth, "netns", &hub, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]);
            ip(&["-n", &hub, "link", "set", &veth, "master", "br0", "up"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            for a in addrs {
                ip(&["-n", &ns, "addr", "add", &format!("{a}/24"), "dev", "eth0"]);
            }
        }
        for i in 1..=n {
            farm.start_app(i, &settings(i));
        }
        farm.start_kamailio(n);
        // Every appliance answered the dispatcher's OPTIONS at least once.
        let deadline = Instant::now() + Duration::from_secs(30);
        for app in &farm.apps {
            while app.metric(r#"portcullis_sip_requests_total{method="OPTIONS",direction="in"}"#)
                < 1.0
            {
                assert!(
                    Instant::now() < deadline,
                    "{} never probed by the dispatcher:\n{}",
                    app.ns,
                    farm.kamailio_log()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        farm
    }

    fn add_ns(&mut self, ns: &str) {
        // A namespace of a crashed earlier run with the same pid would be in the way.
        let _ = Command::new("ip").args(["netns", "del", ns]).output();
        ip(&["netns", "add", ns]);
        self.namespaces.push(ns.to_owned());
        ip(&["-n", ns, "link", "set", "lo", "up"]);
    }

    fn start_app(&mut self, i: usize, s: &AppSettings) {
        let ns = format!("{}-app{i}", self.tag);
        let dir = self.dir.path().join(format!("app{i}"));
        std::fs::create_dir_all(&dir).expect("app dir");
        let ip = app_ip(i);
        let toml = format!(
            r#"[node]
name = "app{i}"

[[sip.listener]]
transport = "udp"
address = "{ip}:5060"

[sip]
{sip}

[sip.limits]
{limits}

[media]
advertised_ip = "{ip}"
bind_ip = "{ip}"
port_min = 20000
port_max = 23999
cores = "auto:1"
inactivity_timeout = "60s"

[admin]
listen = "127.0.0.1:8080"

[cdr]
path = "cdr.jsonl"
fsync = "always"

[log]
level = "info"

[policy]
unknown_source = "reject"
rate_limit = 100000

[[trunk]]
name = "kamailio"
address = "{KAMAILIO}:5060"

[[trunk]]
name = "callee"
address = "{UAS}"

[[route]]
name = "farm-in"
from = ["kamailio"]
targets = ["callee"]
"#,
            sip = s.sip,
            limits = s.limits,
        );
        let config = dir.join("portcullis.toml");
        std::fs::write(&config, toml).expect("write config");
        let log = File::create(dir.join("portcullis.log")).expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(env!("CARGO_BIN_EXE_portcullis"))
            .arg("run")
            .arg("--config")
            .arg(&config)
            .current_dir(&dir)
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn portcullis");
        let mut app = App { ns, dir, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !app.log().contains("portcullis ready") {
            if let Ok(Some(st)) = app.child.try_wait() {
                panic!("appliance {i} exited at start ({st}):\n{}", app.log());
            }
            assert!(
                Instant::now() < deadline,
                "appliance {i} not ready:\n{}",
                app.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.apps.push(app);
    }

    fn start_kamailio(&mut self, n: usize) {
        let dir = self.dir.path().join("kamailio");
        std::fs::create_dir_all(&dir).expect("kamailio dir");
        let list: String = (1..=n)
            .map(|i| format!("1 {} 0 0 weight=10;duid=app{i}\n", app_uri(i)))
            .collect();
        let list_path = dir.join("dispatcher.list");
        std::fs::write(&list_path, list).expect("dispatcher.list");
        let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kamailio/dispatcher.cfg");
        let log = File::create(dir.join("kamailio.log")).expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", &format!("{}-kam", self.tag), "kamailio"])
            .arg("-f")
            .arg(&cfg)
            .args(["-DD", "-E", "-m", "64", "-M", "8", "-Y"])
            .arg(&dir)
            .arg("-A")
            .arg(format!("DS_LIST=\"{}\"", list_path.display()))
            .args(["-A", &format!("LISTEN_IP={KAMAILIO}")])
            .args(["-A", &format!("PING_INTERVAL={PING_INTERVAL_S}")])
            .args(["-A", &format!("FR_TIMER={FR_TIMER_MS}")])
            .args(["-A", &format!("FR_INV_TIMER={FR_INV_TIMER_MS}")])
            .args(["-A", "CHILDREN=2", "-A", "WITH_FARM_LOG"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("kamailio (Debian package kamailio): {e}"));
        self.kamailio = Some(child);
    }

    pub fn kamailio_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio/kamailio.log")).unwrap_or_default()
    }

    /// Kamailio's farm events so far, in log order.
    pub fn events(&self) -> Vec<Event> {
        self.kamailio_log()
            .lines()
            .filter_map(Event::parse)
            .collect()
    }

    /// Starts the load generator through Kamailio: `cps` calls per second for
    /// `duration_s`, each held `hold_s` seconds (signalling only).
    pub fn start_load(&mut self, cps: u32, hold_s: u32, duration_s: u32) {
        let bin = loadtest_bin();
        let dir = self.dir.path().join("load");
        std::fs::create_dir_all(&dir).expect("load dir");
        let out = File::create(dir.join("loadtest.out")).expect("out");
        let err = out.try_clone().expect("clone");
        let child = Command::new("ip")
            .args(["netns", "exec", &format!("{}-load", self.tag)])
            .arg(bin)
            .args([
                "--target",
                &format!("{KAMAILIO}:5060"),
                "--uac",
                UAC,
                "--uas",
                UAS,
            ])
            .args(["--no-media", "--quiet", "--calls", "10000"])
            .args(["--max-calls", &(cps * duration_s).to_string()])
            .args(["--cps", &cps.to_string(), "--hold", &hold_s.to_string()])
            .args(["--duration", &duration_s.to_string()])
            .arg("--report")
            .arg(dir.join("report.json"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn portcullis-loadtest");
        self.loadtest = Some(child);
    }

    /// Waits (bounded) for the load generator to finish; returns its JSON report.
    pub fn wait_load(&mut self, within: Duration) -> serde_json::Value {
        let mut child = self.loadtest.take().expect("load running");
        let deadline = Instant::now() + within;
        let out = self.dir.path().join("load/loadtest.out");
        loop {
            if child.try_wait().expect("try_wait").is_some() {
                break;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "loadtest still running after {within:?}:\n{}",
                    std::fs::read_to_string(&out).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let text = std::fs::read_to_string(self.dir.path().join("load/report.json"))
            .unwrap_or_else(|e| {
                panic!(
                    "no loadtest report ({e}):\n{}",
                    std::fs::read_to_string(&out).unwrap_or_default()
                )
            });
        serde_json::from_str(&text).expect("report is JSON")
    }

    /// The load generator's summary, for failure messages.
    pub fn load_output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("load/loadtest.out")).unwrap_or_default()
    }

    /// Everything needed to understand a failure.
    pub fn dump(&self) -> String {
        let mut s = format!("---- loadtest ----\n{}", self.load_output());
        let farm: Vec<String> = self
            .kamailio_log()
            .lines()
            .filter(|l| l.contains("farm: appliance") || l.contains("ERROR"))
            .map(str::to_owned)
            .collect();
        s.push_str(&format!(
            "---- kamailio (farm events) ----\n{}\n",
            farm.join("\n")
        ));
        for a in &self.apps {
            let log = a.log();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            s.push_str(&format!("---- {} (tail) ----\n", a.ns));
            for l in tail.iter().rev() {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.dump());
        }
        if let Some(mut c) = self.loadtest.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for a in &mut self.apps {
            let _ = a.child.kill();
            let _ = a.child.wait();
        }
        if let Some(mut k) = self.kamailio.take() {
            let _ = k.kill();
            let _ = k.wait();
        }
        // Kamailio's worker processes (started by its main process, in our namespace).
        for ns in &self.namespaces {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

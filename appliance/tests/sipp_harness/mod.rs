//! Shared harness of the sipp interop tests: a real `portcullis` process with a
//! temp config, real `sipp` peers (Debian's sip-tester), CDR reading.
//!
//! Every test takes a file lock so sipp runs never overlap (the machine is small and
//! timing matters), and every test still uses its own ports (`Ports::for_test`) so a
//! lock failure cannot make two tests collide. Every wait is bounded.
#![allow(dead_code, clippy::print_stderr)]

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Serializes the interop tests across test binaries and processes: holds a
/// listening socket on a fixed loopback port, which the kernel frees when the holder
/// exits (even on a crash).
pub struct SerialGuard(std::net::TcpListener);

/// The port whose listener is the interop lock.
const LOCK_PORT: u16 = 14999;

/// Takes the interop lock (released on drop); waits at most 15 minutes.
pub fn serial() -> SerialGuard {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", LOCK_PORT)) {
            return SerialGuard(l);
        }
        assert!(
            Instant::now() < deadline,
            "interop test lock not free after 15 min"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Path of `sipp`, or a panic telling how to install it.
pub fn sipp() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("sipp");
        if p.is_file() {
            return p;
        }
    }
    panic!("sipp not found in PATH: install Debian's sip-tester (`apt-get install sip-tester`)");
}

/// The ports of one test.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Appliance SIP (UDP and TCP).
    pub sip: u16,
    /// sipp UAC (trunk `left`).
    pub left: u16,
    /// sipp UAS (trunk `right`).
    pub right: u16,
    /// second UAS (trunk `right2`).
    pub right2: u16,
    /// admin HTTP.
    pub admin: u16,
    /// Appliance media range start (256 ports; 1536 in the third range).
    pub media_min: u16,
    /// sipp media ports (UAC; the UAS uses +100; each uses up to +3 for RTCP/video).
    pub sipp_media: u16,
}

impl Ports {
    /// Distinct ports for test number `n` (0..48, 100..120 or 200..202), outside the
    /// ephemeral range.
    pub fn for_test(n: u16) -> Self {
        if (200..202).contains(&n) {
            // Third range, for tests with many concurrent calls: SIP 16500-16519, media
            // 4200-7271 (1536 ports each), sipp media 7400-7613.
            let k = n - 200;
            return Self {
                sip: 16500 + k * 10,
                left: 16500 + k * 10 + 1,
                right: 16500 + k * 10 + 2,
                right2: 16500 + k * 10 + 3,
                admin: 16500 + k * 10 + 4,
                media_min: 4200 + k * 1536,
                sipp_media: 7400 + k * 110,
            };
        }
        if (100..120).contains(&n) {
            // Second range: SIP 14000-14199, media 8000-13119, sipp media 2000-4199.
            let k = n - 100;
            return Self {
                sip: 14000 + k * 10,
                left: 14000 + k * 10 + 1,
                right: 14000 + k * 10 + 2,
                right2: 14000 + k * 10 + 3,
                admin: 14000 + k * 10 + 4,
                media_min: 8000 + k * 256,
                sipp_media: 2000 + k * 110,
            };
        }
        assert!(
            n < 48,
            "Ports::for_test: n must be below 48 (media ranges stay below 32768) or in 100..120 or 200..202"
        );
        Self {
            sip: 15000 + n * 10,
            left: 15000 + n * 10 + 1,
            right: 15000 + n * 10 + 2,
            right2: 15000 + n * 10 + 3,
            admin: 15000 + n * 10 + 4,
            media_min: 20000 + n * 256,
            // Above the ephemeral range (32768-60999), where nothing else binds; from
            // test 40 on there is no room left there: below the SIP ports (15000+).
            sipp_media: if n < 40 {
                61000 + n * 110
            } else {
                12000 + (n - 40) * 200
            },
        }
    }

    /// The second block of slots, `n` in 0..10, below the first (SIP 13000+, appliance
    /// media 10000+, sipp media 12600+; all outside the ephemeral range). Taken: 0
    /// (`sipp_policy`), 1-4 (`sipp_dtmf`, `sipp_streams`), 7-9.
    pub fn for_test_range2(n: u16) -> Self {
        Self {
            sip: 13000 + n * 10,
            left: 13000 + n * 10 + 1,
            right: 13000 + n * 10 + 2,
            right2: 13000 + n * 10 + 3,
            admin: 13000 + n * 10 + 4,
            media_min: 10000 + n * 256,
            sipp_media: 12600 + n * 200,
        }
    }
}

/// The base test configuration: trunks `left` (UAC), `right` and `right2` (UAS),
/// route left → right; `extra` is appended (more trunks/routes).
pub fn config(p: Ports, routes: &str) -> String {
    format!(
        r#"[node]
name = "sipp-test"

[[sip.listener]]
transport = "udp"
address = "127.0.0.1:{sip}"

[[sip.listener]]
transport = "tcp"
address = "127.0.0.1:{sip}"

[sip]
drain_timeout = "3s"

[media]
advertised_ip = "127.0.0.1"
bind_ip = "127.0.0.1"
port_min = {mmin}
port_max = {mmax}
cores = "auto:1"
inactivity_timeout = "60s"

[admin]
listen = "127.0.0.1:{admin}"

[cdr]
path = "cdr.jsonl"
fsync = "always"

[log]
level = "info"

[policy]
unknown_source = "reject"
rate_limit = 100000

[[trunk]]
name = "left"
address = "127.0.0.1:{left}"

[[trunk]]
name = "right"
address = "127.0.0.1:{right}"
acl = ["127.0.0.2"]

[[trunk]]
name = "right2"
address = "127.0.0.1:{right2}"
acl = ["127.0.0.3"]

{routes}
"#,
        sip = p.sip,
        mmin = p.media_min,
        mmax = p.media_min + 255,
        admin = p.admin,
        left = p.left,
        right = p.right,
        right2 = p.right2,
    )
}

/// Route every call from `left` to `right`.
pub const ROUTE_LEFT_RIGHT: &str = r#"[[route]]
name = "left-to-right"
from = ["left"]
targets = ["right"]
"#;

/// A running appliance; killed on drop.
pub struct Appliance {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
}

impl Appliance {
    /// Writes `toml` to a temp dir and starts `portcullis run --config` there; waits for
    /// "portcullis ready" in its log (10 s at most).
    pub fn start(toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("portcullis.toml");
        std::fs::write(&config_path, toml).expect("write config");
        Self::start_in(dir, config_path, true)
    }

    /// Starts the binary in `dir` (`with_config`: `--config config_path`).
    pub fn start_in(dir: tempfile::TempDir, config_path: PathBuf, with_config: bool) -> Self {
        let log_path = dir.path().join("portcullis.log");
        let log = File::create(&log_path).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
        cmd.arg("run");
        if with_config {
            cmd.arg("--config").arg(&config_path);
        }
        let child = cmd
            .current_dir(dir.path())
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn portcullis");
        let mut a = Self {
            child,
            dir,
            config_path,
            log_path,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if a.log().contains("portcullis ready") {
                return a;
            }
            if let Ok(Some(st)) = a.child.try_wait() {
                panic!("portcullis exited at start ({st}):\n{}", a.log());
            }
            assert!(
                Instant::now() < deadline,
                "portcullis not ready after 20 s:\n{}",
                a.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The CDR lines so far, parsed.
    pub fn cdrs(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.path().join("cdr.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad CDR line {l:?}: {e}")))
            .collect()
    }

    /// Waits until at least `n` CDR lines exist (bounded).
    pub fn wait_cdrs(&self, n: usize, within: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + within;
        loop {
            let c = self.cdrs();
            if c.len() >= n || Instant::now() >= deadline {
                return c;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends a signal (`"TERM"`, `"HUP"`).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(st.success(), "kill -{sig} failed");
    }

    /// Waits for the process to exit (bounded), returning its status.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        if let Some(st) = poll_exit(&mut self.child, within) {
            return st;
        }
        let _ = self.child.kill();
        panic!("portcullis did not exit within {within:?}:\n{}", self.log());
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- portcullis log ----\n{}", self.log());
        }
    }
}

/// Polls `child` every 50 ms until it exits (`Some(status)`) or `within` has passed
/// (`None`; the child is left running).
fn poll_exit(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return Some(st);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running sipp; killed on drop.
pub struct Sipp {
    pub child: Child,
    pub name: String,
    pub out: PathBuf,
}

impl Sipp {
    /// Starts sipp with `args` in `cwd`; stdout/stderr go to `cwd/<name>.out`.
    pub fn start(name: &str, cwd: &Path, args: &[String]) -> Self {
        let out = cwd.join(format!("{name}.out"));
        let f = File::create(&out).expect("sipp out");
        let f2 = f.try_clone().expect("clone");
        let child = Command::new(sipp())
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::from(f))
            .stderr(Stdio::from(f2))
            .spawn()
            .expect("spawn sipp");
        Self {
            child,
            name: name.to_owned(),
            out,
        }
    }

    /// Waits for sipp to exit (bounded; killed and panics after `within`).
    pub fn wait(&mut self, within: Duration) -> ExitStatus {
        if let Some(st) = poll_exit(&mut self.child, within) {
            return st;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!(
            "sipp {} still running after {within:?}:\n{}",
            self.name,
            self.output()
        );
    }

    /// Its output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Starts sipp `name` in `dir` on `ip:port`, media on `media_port`: the common
    /// arguments of [`sipp_args`] plus `extra`.
    pub fn peer(
        name: &str,
        dir: &Path,
        ip: &str,
        port: u16,
        media_port: u16,
        extra: &[&str],
    ) -> Self {
        Self::start(name, dir, &sipp_args(ip, port, media_port, extra))
    }

    /// Waits for sipp to exit (bounded, as [`Sipp::wait`]) and asserts it succeeded; the
    /// failure message is `what`, the exit status and sipp's output.
    #[track_caller]
    pub fn wait_ok(&mut self, within: Duration, what: &str) {
        let st = self.wait(within);
        assert!(st.success(), "{what} ({st}):\n{}", self.output());
    }
}

/// `127.0.0.1:<sip>`: the appliance's SIP listener, as sipp's remote host.
pub fn sip_target(p: Ports) -> String {
    format!("127.0.0.1:{}", p.sip)
}

/// Starts sipp `uas` answering as trunk `right` (127.0.0.1:`p.right`, media
/// `p.sipp_media + 100`) with `extra` arguments, and gives it 300 ms to bind before any
/// call is placed.
pub fn start_uas(dir: &Path, p: Ports, extra: &[&str]) -> Sipp {
    let uas = Sipp::peer("uas", dir, "127.0.0.1", p.right, p.sipp_media + 100, extra);
    std::thread::sleep(Duration::from_millis(300));
    uas
}

/// Starts sipp `uac` calling as trunk `left` (127.0.0.1:`p.left`, media `p.sipp_media`);
/// `extra` names the scenario and the target ([`sip_target`]).
pub fn start_uac(dir: &Path, p: Ports, extra: &[&str]) -> Sipp {
    Sipp::peer("uac", dir, "127.0.0.1", p.left, p.sipp_media, extra)
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Common sipp arguments: local IP/port, media port, no stdin, bounded run.
pub fn sipp_args(ip: &str, port: u16, media_port: u16, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "-i".into(),
        ip.into(),
        "-p".into(),
        port.to_string(),
        "-mp".into(),
        media_port.to_string(),
        "-nostdin".into(),
        "-timeout".into(),
        "60s".into(),
        "-timeout_error".into(),
    ];
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

/// Last row of a sipp `-trace_stat` CSV as (column → value).
pub fn last_stats(path: &Path) -> std::collections::HashMap<String, String> {
    let f = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lines: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
    let header = lines.first().expect("stat header");
    let last = lines.last().expect("stat row");
    header
        .split(';')
        .map(str::to_owned)
        .zip(last.split(';').map(str::to_owned))
        .collect()
}

/// Asserts the last row of the `uac` run's `-trace_stat` CSV in `dir`: `calls`
/// successful calls and no failed one.
#[track_caller]
pub fn assert_uac_stats(dir: &Path, calls: usize) {
    let stats = last_stats(&stat_file(dir, "uac_"));
    assert_eq!(stats["SuccessfulCall(C)"], calls.to_string(), "{stats:?}");
    assert_eq!(stats["FailedCall(C)"], "0", "{stats:?}");
}

/// The `.csv` written by `-trace_stat` in `dir` for scenario `scen`.
pub fn stat_file(dir: &Path, prefix: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.starts_with(prefix) && n.ends_with(".csv")
        })
        .unwrap_or_else(|| panic!("no {prefix}*.csv stat file in {}", dir.display()))
}

/// Writes a scenario from `appliance/tests/scenarios` into `dir`, returns its path.
pub fn scenario(dir: &Path, name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(name);
    let dst = dir.join(name);
    std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    dst
}

/// Copies sip-tester's pcap files so `uac_pcap` finds `pcap/g711a.pcap` under `dir`.
pub fn pcaps(dir: &Path) {
    let src = Path::new("/usr/share/sip-tester");
    let dst = dir.join("pcap");
    std::fs::create_dir_all(&dst).expect("pcap dir");
    for f in ["g711a.pcap", "dtmf_2833_1.pcap"] {
        let from = src.join(f);
        assert!(
            from.is_file(),
            "{} missing: install Debian's sip-tester",
            from.display()
        );
        std::fs::copy(&from, dst.join(f)).expect("copy pcap");
    }
}

/// Writes a line to stderr (test diagnostics).
pub fn note(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// `end_reason.kind` of a CDR.
pub fn end_kind(cdr: &serde_json::Value) -> String {
    cdr["end_reason"]["kind"].as_str().unwrap_or("").to_owned()
}

/// The load generator, built on demand in our target directory (same profile).
pub fn loadtest_bin() -> PathBuf {
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

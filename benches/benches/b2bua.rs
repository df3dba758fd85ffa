//! B2BUA signalling benchmark: Portcullis (`portcullis run`, release build) against
//! kamailio 5.6 as a stateful record-routing proxy (`benches/kamailio/proxy.cfg`), each
//! pinned to core 1, the same sipp UAC/UAS pair pinned to core 0. Signalling only (sipp
//! sends no RTP).
//!
//! Figures, per system under test:
//! - CPU µs per call at a fixed 1,000 calls/s (utime+stime of the process, all kamailio
//!   processes summed, before/after, divided by the successful calls);
//! - the highest rate of the steps that completes with 0 failed calls and 0
//!   retransmissions (both sipp sides);
//! - for Portcullis, RSS growth per established call with N long calls held.
//!
//! Run: `cargo build --release -p portcullis && cargo bench -p portcullis-benches --bench b2bua`
//! (`PORTCULLIS_BIN` overrides where the binary is looked for). Needs `sipp`, `kamailio`
//! and `taskset` in PATH. Every run is bounded (call counts and timeouts).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Core of the system under test; the sipp pair runs on `SIPP_CORE`.
const SUT_CORE: &str = "1";
const SIPP_CORE: &str = "0";
/// Fixed rate of the CPU-per-call measurement and its duration.
const FIXED_CPS: u32 = 1000;
const FIXED_SECS: u32 = 15;
/// Rate steps of the capacity search, each run for `STEP_SECS`.
const STEPS: &[u32] = &[500, 1000, 2000, 3000, 4000, 5000, 6000, 8000];
const STEP_SECS: u32 = 5;
/// Long calls held for the memory figure.
const HELD_CALLS: u32 = 1000;

const SUT_PORT: u16 = 25060;
const UAC_PORT: u16 = 25070;
const UAS_PORT: u16 = 25080;
const ADMIN_PORT: u16 = 25090;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn need(tool: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join(tool);
        if p.is_file() {
            return p;
        }
    }
    // kamailio lives in /usr/sbin, often outside a user's PATH.
    let sbin = Path::new("/usr/sbin").join(tool);
    if sbin.is_file() {
        return sbin;
    }
    panic!("{tool} not found: install Debian's sip-tester, kamailio and util-linux");
}

fn portcullis_bin() -> PathBuf {
    if let Ok(p) = std::env::var("PORTCULLIS_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace().join("target"));
    let p = target.join("release/portcullis");
    assert!(
        p.is_file(),
        "{} missing: run `cargo build --release -p portcullis` first (or set PORTCULLIS_BIN)",
        p.display()
    );
    p
}

/// A system under test: its main pid and a stop hook.
struct Sut {
    name: &'static str,
    child: Child,
}

impl Sut {
    /// utime+stime in clock ticks of the process and its descendants (kamailio forks).
    fn cpu_ticks(&self) -> u64 {
        pids_of_tree(self.child.id())
            .iter()
            .map(|p| ticks(*p))
            .sum()
    }

    /// Resident set size in KiB, summed over the process tree.
    fn rss_kib(&self) -> u64 {
        pids_of_tree(self.child.id())
            .iter()
            .map(|p| {
                std::fs::read_to_string(format!("/proc/{p}/status"))
                    .unwrap_or_default()
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
                    .unwrap_or(0)
            })
            .sum()
    }
}

impl Drop for Sut {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `pid` and every descendant (via /proc/*/stat ppid).
fn pids_of_tree(pid: u32) -> Vec<u32> {
    let mut parent: Vec<(u32, u32)> = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(pp) = stat_fields(p).and_then(|f| f.get(1)?.parse().ok()) {
            parent.push((p, pp));
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while let Some(&cur) = out.get(i) {
        out.extend(parent.iter().filter(|(_, pp)| *pp == cur).map(|(p, _)| *p));
        i += 1;
    }
    out
}

/// Fields of /proc/<pid>/stat after the `(comm)` field: [state, ppid, ...].
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.get(s.rfind(')')? + 2..)?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// utime + stime (fields 14 and 15 of stat, 11 and 12 after comm).
fn ticks(pid: u32) -> u64 {
    stat_fields(pid)
        .map(|f| {
            let g = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            g(11) + g(12)
        })
        .unwrap_or(0)
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

fn start_portcullis(dir: &Path) -> Sut {
    let toml = format!(
        r#"[node]
name = "bench"

[[sip.listener]]
transport = "udp"
address = "127.0.0.1:{SUT_PORT}"

[media]
advertised_ip = "127.0.0.1"
bind_ip = "127.0.0.1"
port_min = 61000
port_max = 65534
cores = [{SUT_CORE}]
inactivity_timeout = "600s"

[admin]
listen = "127.0.0.1:{ADMIN_PORT}"

[cdr]
path = "cdr.jsonl"
fsync = "interval"

[log]
level = "warn"

[policy]
unknown_source = "reject"
rate_limit = 1000000

[[trunk]]
name = "left"
address = "127.0.0.1:{UAC_PORT}"

[[trunk]]
name = "right"
address = "127.0.0.1:{UAS_PORT}"

[[route]]
name = "left-to-right"
from = ["left"]
targets = ["right"]
"#
    );
    let cfg = dir.join("portcullis.toml");
    std::fs::write(&cfg, toml).expect("write config");
    let log_path = dir.join("portcullis.log");
    let log = File::create(&log_path).expect("log");
    let child = Command::new(need("taskset"))
        .args(["-c", SUT_CORE])
        .arg(portcullis_bin())
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn portcullis");
    let mut sut = Sut {
        name: "portcullis",
        child,
    };
    // Ready once the SIP port is taken (the log level is `warn`: no per-call logging).
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::UdpSocket::bind(("127.0.0.1", SUT_PORT)).is_ok() {
        if let Ok(Some(st)) = sut.child.try_wait() {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("portcullis exited ({st}):\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "portcullis not listening after 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    sut
}

fn start_kamailio(dir: &Path) -> Sut {
    let cfg = workspace().join("benches/kamailio/proxy.cfg");
    let log = File::create(dir.join("kamailio.log")).expect("log");
    let child = Command::new(need("taskset"))
        .args(["-c", SUT_CORE])
        .arg(need("kamailio"))
        .arg("-f")
        .arg(&cfg)
        .args(["-DD", "-E", "-n", "1", "-m", "512", "-M", "32", "-Y"])
        .arg(dir)
        .arg("-A")
        .arg(format!("KAM_PORT={SUT_PORT}"))
        .arg("-A")
        .arg(format!("UAS_URI=\"sip:127.0.0.1:{UAS_PORT}\""))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn kamailio");
    let mut sut = Sut {
        name: "kamailio",
        child,
    };
    std::thread::sleep(Duration::from_secs(2));
    if let Ok(Some(st)) = sut.child.try_wait() {
        let text = std::fs::read_to_string(dir.join("kamailio.log")).unwrap_or_default();
        panic!("kamailio exited ({st}):\n{text}");
    }
    sut
}

/// One sipp run's outcome (from the `-trace_stat` files of both sides).
#[derive(Debug, Default, Clone, Copy)]
struct Run {
    ok: u64,
    failed: u64,
    retrans: u64,
    secs: f64,
}

fn sipp_pinned(dir: &Path, name: &str, args: &[String]) -> Child {
    let out = File::create(dir.join(format!("{name}.out"))).expect("sipp out");
    Command::new(need("taskset"))
        .args(["-c", SIPP_CORE])
        .arg(need("sipp"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().expect("clone")))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("spawn sipp")
}

fn last_stats(path: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let last = lines.last().unwrap_or("");
    header
        .split(';')
        .map(str::to_owned)
        .zip(last.split(';').map(str::to_owned))
        .collect()
}

fn stat(m: &HashMap<String, String>, k: &str) -> u64 {
    m.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn wait_bounded(child: &mut Child, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// `calls` calls at `rate`/s of `hold_ms` each through the SUT; `during` runs while
/// the calls are up (after `during_after`).
fn run_calls(
    dir: &Path,
    tag: &str,
    calls: u32,
    rate: u32,
    hold_ms: u32,
    mut during: impl FnMut(),
    during_after: Duration,
) -> Run {
    let common = |port: u16, media: u16| -> Vec<String> {
        [
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-mp",
            &media.to_string(),
            "-nostdin",
            "-trace_stat",
            "-fd",
            "1",
            "-timeout",
            "120s",
            "-timeout_error",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };
    let uas_stat = dir.join(format!("{tag}_uas.csv"));
    let uac_stat = dir.join(format!("{tag}_uac.csv"));
    let mut uas_args = common(UAS_PORT, 26000);
    uas_args.extend(["-sn", "uas", "-stf"].map(str::to_owned));
    uas_args.push(uas_stat.display().to_string());
    let mut uas = sipp_pinned(dir, &format!("{tag}_uas"), &uas_args);
    std::thread::sleep(Duration::from_millis(300));
    let mut uac_args = common(UAC_PORT, 26100);
    uac_args.extend([
        "-sn".to_owned(),
        "uac".to_owned(),
        format!("127.0.0.1:{SUT_PORT}"),
        "-m".to_owned(),
        calls.to_string(),
        "-r".to_owned(),
        rate.to_string(),
        "-d".to_owned(),
        hold_ms.to_string(),
        "-l".to_owned(),
        (calls + 10).to_string(),
        "-stf".to_owned(),
        uac_stat.display().to_string(),
    ]);
    let t0 = Instant::now();
    let mut uac = sipp_pinned(dir, &format!("{tag}_uac"), &uac_args);
    std::thread::sleep(during_after);
    during();
    let budget =
        Duration::from_secs(u64::from(calls / rate.max(1)) + u64::from(hold_ms / 1000) + 40);
    let finished = wait_bounded(&mut uac, budget);
    let secs = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    let _ = uas.kill();
    let _ = uas.wait();
    let a = last_stats(&uac_stat);
    let b = last_stats(&uas_stat);
    let ok = stat(&a, "SuccessfulCall(C)");
    Run {
        ok,
        // Failed, timed out or never finished (the UAC was killed at the budget).
        failed: u64::from(calls)
            .saturating_sub(ok)
            .max(stat(&a, "FailedCall(C)"))
            + u64::from(!finished),
        retrans: stat(&a, "Retransmissions(C)") + stat(&b, "Retransmissions(C)"),
        secs,
    }
}

/// The figures of one SUT.
#[derive(Debug, Default)]
struct Figures {
    us_per_call: f64,
    max_cps: u32,
    kib_per_call: Option<f64>,
}

fn measure(sut: &Sut, dir: &Path, memory: bool) -> Figures {
    let tck = clk_tck();
    // Memory first, on the fresh process: later runs leave freed memory in the
    // allocator's arenas, which would hide the growth.
    let kib_per_call = memory.then(|| {
        let base = sut.rss_kib();
        let mut held = 0;
        let rate = 500;
        let hold_ms = HELD_CALLS / rate * 1000 + 8000;
        let r = run_calls(
            dir,
            &format!("{}_held", sut.name),
            HELD_CALLS,
            rate,
            hold_ms,
            || held = sut.rss_kib(),
            Duration::from_millis(u64::from(HELD_CALLS / rate) * 1000 + 3000),
        );
        let per = held.saturating_sub(base) as f64 / f64::from(HELD_CALLS);
        println!(
            "{}: {HELD_CALLS} held calls: RSS {base} KiB -> {held} KiB => {per:.2} KiB/call ({} ok, {} failed)",
            sut.name, r.ok, r.failed
        );
        per
    });
    // Warm-up (allocators, tables).
    let _ = run_calls(
        dir,
        &format!("{}_warm", sut.name),
        1000,
        500,
        0,
        || {},
        Duration::ZERO,
    );

    let before = sut.cpu_ticks();
    let calls = FIXED_CPS * FIXED_SECS;
    let r = run_calls(
        dir,
        &format!("{}_fixed", sut.name),
        calls,
        FIXED_CPS,
        0,
        || {},
        Duration::ZERO,
    );
    let cpu_s = (sut.cpu_ticks() - before) as f64 / tck;
    let us_per_call = cpu_s * 1e6 / r.ok.max(1) as f64;
    println!(
        "{}: fixed {FIXED_CPS} cps: {} ok, {} failed, {} retrans in {:.1} s, CPU {:.2} s => {:.1} us/call",
        sut.name, r.ok, r.failed, r.retrans, r.secs, cpu_s, us_per_call
    );
    if r.failed > 0 || r.retrans > 0 {
        println!(
            "{}: WARNING: the fixed-rate run was not clean: the figure includes retransmission work",
            sut.name
        );
    }

    let mut max_cps = 0;
    for &rate in STEPS {
        let r = run_calls(
            dir,
            &format!("{}_step{rate}", sut.name),
            rate * STEP_SECS,
            rate,
            0,
            || {},
            Duration::ZERO,
        );
        println!(
            "{}: step {rate} cps: {} ok, {} failed, {} retrans in {:.1} s",
            sut.name, r.ok, r.failed, r.retrans, r.secs
        );
        if r.failed > 0 || r.retrans > 0 {
            break;
        }
        max_cps = rate;
    }

    Figures {
        us_per_call,
        max_cps,
        kib_per_call,
    }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing useful:
    // only run the (minutes-long) measurement under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("b2bua: run with `cargo bench -p portcullis-benches --bench b2bua`");
        return;
    }
    let ours_bin = portcullis_bin();
    println!(
        "b2bua: {} vs kamailio, load average {}",
        ours_bin.display(),
        load()
    );
    let base = std::env::temp_dir().join(format!("portcullis-b2bua-bench-{}", std::process::id()));
    let ours_dir = base.join("portcullis");
    let kam_dir = base.join("kamailio");
    std::fs::create_dir_all(&ours_dir).expect("bench dir");
    std::fs::create_dir_all(&kam_dir).expect("bench dir");

    let ours = {
        let sut = start_portcullis(&ours_dir);
        measure(&sut, &ours_dir, true)
    };
    let kam = {
        let sut = start_kamailio(&kam_dir);
        measure(&sut, &kam_dir, false)
    };
    println!("b2bua: load average after {}", load());
    println!(
        "b2bua: ours_us_per_call={:.1} kamailio_us_per_call={:.1} ratio={:.2} ours_max_cps={} kamailio_max_cps={} ours_kib_per_call={:.2}",
        ours.us_per_call,
        kam.us_per_call,
        ours.us_per_call / kam.us_per_call.max(f64::MIN_POSITIVE),
        ours.max_cps,
        kam.max_cps,
        ours.kib_per_call.unwrap_or(f64::NAN),
    );
    let _ = std::fs::remove_dir_all(&base);
}

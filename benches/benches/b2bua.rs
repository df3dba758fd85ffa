//! B2BUA signalling benchmark: Portcullis (`portcullis run`, release build) against
//! kamailio 5.6 as a stateful record-routing proxy (`benches/kamailio/proxy.cfg`), each
//! pinned to core 1, the same sipp UAC/UAS pair pinned to core 0. Signalling only (sipp
//! sends no RTP).
//!
//! Both systems run side by side (Portcullis on `SUT_PORT`, kamailio on `KAM_PORT`, the
//! same sipp ports), and the fixed-rate runs alternate between them (ABBA...), so drift in
//! the machine's load hits both alike. Figures, per system under test:
//! - CPU µs per call at a fixed 1,000 calls/s: utime+stime from `/proc/<pid>/stat` of the
//!   process and every descendant (all kamailio processes; all Portcullis threads), sampled
//!   right before the UAC starts and right after it exits, summed over the rounds and
//!   divided by the calls the UAC completed; the sipp processes are not descendants of
//!   either and are never counted. Each run also reports the CPU used on the SUT core by
//!   anything else (`/proc/stat` of that core minus the SUT) and steal time: a figure with
//!   foreign load on its core is flagged, as CPU time inflates when a core is shared;
//! - the highest rate of the steps that completes with 0 failed calls and 0
//!   retransmissions (both sipp sides);
//! - for Portcullis, RSS growth per established call with N long calls held.
//!
//! Run: `cargo build --release -p portcullis && cargo bench -p portcullis-benches --bench b2bua`
//! (`PORTCULLIS_BIN` overrides where the binary is looked for). Needs `sipp`, `kamailio`
//! and `taskset` in PATH. Every run is bounded (call counts and timeouts).
//! Shorter runs (smoke tests; the defaults are the documented method):
//! `B2B_FIXED_SECS` (15), `B2B_ROUNDS` (3), `B2B_STEPS` (comma list of calls/s, or `none`),
//! `B2B_HELD_CALLS` (1000; 0 skips the memory figure).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Core of the system under test; the sipp pair runs on `SIPP_CORE`.
const SUT_CORE: &str = "1";
const SIPP_CORE: &str = "0";
/// Fixed rate of the CPU-per-call measurement, the duration of one run and the number
/// of rounds (one run of each system per round).
const FIXED_CPS: u32 = 1000;
const FIXED_SECS: u32 = 15;
const ROUNDS: u32 = 3;
/// Rate steps of the capacity search, each run for `STEP_SECS`.
const STEPS: &[u32] = &[500, 1000, 2000, 3000, 4000, 5000, 6000, 8000];
const STEP_SECS: u32 = 5;
/// Long calls held for the memory figure.
const HELD_CALLS: u32 = 1000;
/// Foreign CPU on the SUT core above this share of a run's wall time flags the figure.
const FOREIGN_WARN: f64 = 0.05;

/// SIP ports: Portcullis, kamailio (both run at once), the sipp UAC and UAS; then the
/// admin port and the sipp media ports. All in 11000-11999, clear of the appliance's
/// default media range (20000-29999), of the ports the appliance tests use and of the
/// ephemeral range, so the bench cannot collide with a test or a running appliance.
const SUT_PORT: u16 = 11060;
const KAM_PORT: u16 = 11062;
const UAC_PORT: u16 = 11070;
const UAS_PORT: u16 = 11080;
const ADMIN_PORT: u16 = 11090;
const UAS_MEDIA_PORT: u16 = 11200;
const UAC_MEDIA_PORT: u16 = 11300;

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

/// A system under test: its main pid, its SIP port, its work directory and a stop hook.
struct Sut {
    name: &'static str,
    port: u16,
    dir: PathBuf,
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

    /// `(pid, comm, ticks)` of every process of the tree, for the accounting report.
    fn cpu_breakdown(&self) -> Vec<(u32, String, u64)> {
        pids_of_tree(self.child.id())
            .into_iter()
            .map(|p| {
                let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
                (p, comm.trim().to_owned(), ticks(p))
            })
            .collect()
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

/// `(busy, steal)` ticks of one CPU from `/proc/stat`: busy is user + nice + system +
/// irq + softirq (steal, guest excluded; guest time is already in user).
fn core_ticks(core: &str) -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let label = format!("cpu{core}");
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(label.as_str()))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            let g = |i: usize| v.get(i).copied().unwrap_or(0);
            // user nice system idle iowait irq softirq steal
            (g(0) + g(1) + g(2) + g(5) + g(6), g(7))
        })
        .unwrap_or((0, 0))
}

/// Unsigned environment knob with a default.
fn knob(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The capacity steps: `B2B_STEPS` (comma list, `none`) or [`STEPS`].
fn steps() -> Vec<u32> {
    match std::env::var("B2B_STEPS") {
        Ok(v) if v.trim() == "none" => Vec::new(),
        Ok(v) => v.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        Err(_) => STEPS.to_vec(),
    }
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
        port: SUT_PORT,
        dir: dir.to_path_buf(),
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
        .arg(format!("KAM_PORT={KAM_PORT}"))
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
        port: KAM_PORT,
        dir: dir.to_path_buf(),
        child,
    };
    std::thread::sleep(Duration::from_secs(2));
    if let Ok(Some(st)) = sut.child.try_wait() {
        let text = std::fs::read_to_string(dir.join("kamailio.log")).unwrap_or_default();
        panic!("kamailio exited ({st}):\n{text}");
    }
    sut
}

/// One sipp run's outcome (from the `-trace_stat` files of both sides) and what the SUT
/// spent on it.
#[derive(Debug, Default, Clone, Copy)]
struct Run {
    ok: u64,
    failed: u64,
    retrans: u64,
    secs: f64,
    /// CPU ticks of the SUT's process tree from right before the UAC started to right
    /// after it exited.
    sut_ticks: u64,
    /// Busy ticks of the SUT core over the same window, and its steal ticks.
    core_busy: u64,
    core_steal: u64,
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

/// `calls` calls at `rate`/s of `hold_ms` each through `sut`; `during` runs while the
/// calls are up (after `during_after`). The UAS is started first; the SUT's CPU and its
/// core's load are sampled right before the UAC starts and right after it exits.
fn run_calls(
    sut: &Sut,
    tag: &str,
    calls: u32,
    rate: u32,
    hold_ms: u32,
    mut during: impl FnMut(),
    during_after: Duration,
) -> Run {
    let dir = sut.dir.as_path();
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
    let mut uas_args = common(UAS_PORT, UAS_MEDIA_PORT);
    uas_args.extend(["-sn", "uas", "-stf"].map(str::to_owned));
    uas_args.push(uas_stat.display().to_string());
    let mut uas = sipp_pinned(dir, &format!("{tag}_uas"), &uas_args);
    std::thread::sleep(Duration::from_millis(300));
    let mut uac_args = common(UAC_PORT, UAC_MEDIA_PORT);
    uac_args.extend([
        "-sn".to_owned(),
        "uac".to_owned(),
        format!("127.0.0.1:{}", sut.port),
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
    let ticks0 = sut.cpu_ticks();
    let (busy0, steal0) = core_ticks(SUT_CORE);
    let mut uac = sipp_pinned(dir, &format!("{tag}_uac"), &uac_args);
    std::thread::sleep(during_after);
    during();
    let budget =
        Duration::from_secs(u64::from(calls / rate.max(1)) + u64::from(hold_ms / 1000) + 40);
    let finished = wait_bounded(&mut uac, budget);
    let sut_ticks = sut.cpu_ticks().saturating_sub(ticks0);
    let (busy1, steal1) = core_ticks(SUT_CORE);
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
        sut_ticks,
        core_busy: busy1.saturating_sub(busy0),
        core_steal: steal1.saturating_sub(steal0),
    }
}

/// The figures of one SUT.
#[derive(Debug, Default)]
struct Figures {
    us_per_call: f64,
    max_cps: u32,
    kib_per_call: Option<f64>,
}

/// RSS growth per call with `held` long calls up, on the fresh process (later runs leave
/// freed memory in the allocator's arenas, which would hide the growth).
fn memory_per_call(sut: &Sut, held: u32) -> f64 {
    let base = sut.rss_kib();
    let mut peak = 0;
    let rate = 500;
    let hold_ms = held / rate * 1000 + 8000;
    let r = run_calls(
        sut,
        &format!("{}_held", sut.name),
        held,
        rate,
        hold_ms,
        || peak = sut.rss_kib(),
        Duration::from_millis(u64::from(held / rate) * 1000 + 3000),
    );
    let per = peak.saturating_sub(base) as f64 / f64::from(held.max(1));
    println!(
        "{}: {held} held calls: RSS {base} KiB -> {peak} KiB => {per:.2} KiB/call ({} ok, {} failed)",
        sut.name, r.ok, r.failed
    );
    per
}

/// One fixed-rate run: prints the run's figures and what else ran on the SUT core.
fn fixed_run(sut: &Sut, round: u32, secs: u32, tck: f64) -> Run {
    let calls = FIXED_CPS * secs;
    let before = sut.cpu_breakdown();
    let r = run_calls(
        sut,
        &format!("{}_fixed{round}", sut.name),
        calls,
        FIXED_CPS,
        0,
        || {},
        Duration::ZERO,
    );
    let after = sut.cpu_breakdown();
    let cpu_s = r.sut_ticks as f64 / tck;
    let foreign_s = r.core_busy.saturating_sub(r.sut_ticks) as f64 / tck;
    let steal_s = r.core_steal as f64 / tck;
    println!(
        "{}: round {round}: fixed {FIXED_CPS} cps: {} ok, {} failed, {} retrans in {:.1} s, CPU {:.2} s => {:.1} us/call; core {SUT_CORE}: other work {:.2} s, steal {:.2} s",
        sut.name,
        r.ok,
        r.failed,
        r.retrans,
        r.secs,
        cpu_s,
        cpu_s * 1e6 / r.ok.max(1) as f64,
        foreign_s,
        steal_s,
    );
    // Which processes were summed (kamailio: main, UDP worker, timers, ...).
    let parts: Vec<String> = after
        .iter()
        .map(|(pid, comm, t)| {
            let t0 = before
                .iter()
                .find(|(p, ..)| p == pid)
                .map_or(0, |(.., t)| *t);
            format!("{pid}/{comm}:{}", t.saturating_sub(t0))
        })
        .collect();
    println!("{}:   ticks per process: {}", sut.name, parts.join(" "));
    if r.failed > 0 || r.retrans > 0 {
        println!(
            "{}: WARNING: round {round} was not clean: the figure includes retransmission work",
            sut.name
        );
    }
    if (foreign_s + steal_s) > FOREIGN_WARN * r.secs {
        println!(
            "{}: WARNING: round {round}: other work used core {SUT_CORE} ({:.2} s of {:.1} s): CPU time per call is inflated on a shared core",
            sut.name,
            foreign_s + steal_s,
            r.secs
        );
    }
    r
}

/// The highest step with 0 failures and 0 retransmissions.
fn capacity(sut: &Sut, steps: &[u32]) -> u32 {
    let mut max_cps = 0;
    for &rate in steps {
        let r = run_calls(
            sut,
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
    max_cps
}

/// Runs the whole comparison on both systems (started, idle, on their own ports).
fn compare(suts: [&Sut; 2], held: u32) -> [Figures; 2] {
    let tck = clk_tck();
    let secs = knob("B2B_FIXED_SECS", FIXED_SECS).max(1);
    let rounds = knob("B2B_ROUNDS", ROUNDS).max(1);
    let mut figs = [Figures::default(), Figures::default()];
    // Memory first, on the fresh Portcullis process.
    if held > 0 {
        figs[0].kib_per_call = Some(memory_per_call(suts[0], held));
    }
    // Warm-up (allocators, tables) of both.
    for sut in suts {
        let _ = run_calls(
            sut,
            &format!("{}_warm", sut.name),
            1000,
            500,
            0,
            || {},
            Duration::ZERO,
        );
    }
    // Fixed rate, alternating A B B A A B ...: both see the same drift of the machine.
    let mut total = [(0u64, 0u64); 2];
    for round in 1..=rounds {
        let order = if round % 2 == 1 { [0, 1] } else { [1, 0] };
        for i in order {
            let r = fixed_run(suts[i], round, secs, tck);
            total[i].0 += r.sut_ticks;
            total[i].1 += r.ok;
        }
    }
    for (i, sut) in suts.iter().enumerate() {
        let (t, ok) = total[i];
        figs[i].us_per_call = t as f64 / tck * 1e6 / ok.max(1) as f64;
        println!(
            "{}: {rounds} rounds: {ok} calls, CPU {:.2} s => {:.1} us/call",
            sut.name,
            t as f64 / tck,
            figs[i].us_per_call
        );
    }
    let steps = steps();
    for (i, sut) in suts.iter().enumerate() {
        figs[i].max_cps = capacity(sut, &steps);
    }
    figs
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

    let held = knob("B2B_HELD_CALLS", HELD_CALLS);
    let ours_sut = start_portcullis(&ours_dir);
    let kam_sut = start_kamailio(&kam_dir);
    let [ours, kam] = compare([&ours_sut, &kam_sut], held);
    drop(kam_sut);
    drop(ours_sut);
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

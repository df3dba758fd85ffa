//! Checks of the shipped systemd units with Debian's `systemd` tools
//! (`systemd-analyze`, `systemd-sysusers`, `systemd-tmpfiles`).
//!
//! `systemd-analyze verify` refuses a unit whose `ExecStart=` binary does not
//! exist, so it runs on a copy whose `ExecStart=` names the binary cargo just
//! built (`CARGO_BIN_EXE_portcullis`), with the same arguments. `User=` is not
//! resolved by `verify` (users are looked up only when the service starts), so
//! the `portcullis` account is checked separately: the sysusers file is
//! applied to an empty root with `systemd-sysusers --root` and must create it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const UNIT: &str = "portcullis.service";
const SHIPPED_EXEC: &str = "ExecStart=/usr/bin/portcullis ";
/// Upper bound on `systemd-analyze security` "Overall exposure level" (with the XDP fast
/// path's CAP_BPF and CAP_NET_ADMIN).
const MAX_EXPOSURE: f64 = 2.5;

fn systemd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd")
}

fn read(name: &str) -> String {
    let path = systemd_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Runs a systemd tool; panics with an install hint when it is missing.
fn run(tool: &str, args: &[&str]) -> Output {
    match Command::new(tool)
        .args(args)
        .current_dir(std::env::temp_dir())
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{tool}` not found: install Debian's `systemd` package \
             (apt-get install systemd) to run the unit checks"
        ),
        Err(e) => panic!("running {tool}: {e}"),
    }
}

/// The shipped unit with `ExecStart=` pointing at the freshly built binary.
fn unit_for_verify() -> (tempfile::TempDir, PathBuf) {
    let unit = read(UNIT);
    assert_eq!(
        unit.matches(SHIPPED_EXEC).count(),
        1,
        "{UNIT} must have exactly one `{SHIPPED_EXEC}...` line"
    );
    let rewritten = unit.replace(
        SHIPPED_EXEC,
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_portcullis")),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(UNIT);
    std::fs::write(&path, rewritten).expect("write unit copy");
    (dir, path)
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let (_dir, path) = unit_for_verify();
    let path = path.to_str().expect("utf-8 temp path");
    let out = run("systemd-analyze", &["verify", "--man=no", path]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Unknown keys and bad values are only warnings (exit status 0), so
    // "clean" means no output at all as well as success.
    assert!(
        out.status.success() && stdout.trim().is_empty() && stderr.trim().is_empty(),
        "systemd-analyze verify {path}: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
}

#[test]
fn verify_catches_a_misspelt_key() {
    // Guards the test above: the "no output" criterion must see warnings.
    let (_dir, path) = unit_for_verify();
    let unit = std::fs::read_to_string(&path).expect("read copy");
    std::fs::write(&path, unit.replace("WatchdogSec=", "WatchdogSecs=")).expect("write");
    let out = run(
        "systemd-analyze",
        &["verify", "--man=no", path.to_str().expect("utf-8")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("WatchdogSecs"),
        "verify did not report the bad key: {stderr}"
    );
}

/// Parses "→ Overall exposure level for portcullis.service: 1.8 OK 🙂".
fn exposure(report: &str) -> Option<f64> {
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))?;
    let after = line.rsplit_once(": ")?.1;
    after.split_whitespace().next()?.parse().ok()
}

#[test]
fn exposure_parser_reads_systemd_format() {
    let sample =
        "✗ UMask= ...  0.1\n\n→ Overall exposure level for portcullis.service: 1.8 OK 🙂\n";
    assert_eq!(exposure(sample), Some(1.8));
    assert_eq!(exposure("no summary"), None);
}

#[test]
fn unit_security_exposure_is_at_most_2_5() {
    let path = systemd_dir().join(UNIT);
    let path = path.to_str().expect("utf-8 path");
    let out = run(
        "systemd-analyze",
        &["security", "--offline=yes", "--no-pager", path],
    );
    let report = String::from_utf8_lossy(&out.stdout);
    let level = exposure(&report).unwrap_or_else(|| {
        panic!(
            "no exposure level in systemd-analyze security output ({}):\n{report}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        level <= MAX_EXPOSURE,
        "exposure {level} > {MAX_EXPOSURE}; report:\n{report}"
    );
}

#[test]
fn unit_keeps_required_settings() {
    let unit = read(UNIT);
    for line in [
        "Type=notify",
        "ExecStart=/usr/bin/portcullis run --config /etc/portcullis/portcullis.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "WatchdogSec=10s",
        "Restart=on-failure",
        "User=portcullis",
        "Group=portcullis",
        "LimitMEMLOCK=infinity",
        "KillSignal=SIGTERM",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/portcullis /var/log/portcullis",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
    ] {
        assert!(unit.lines().any(|l| l == line), "{UNIT} lacks `{line}`");
    }
    // CDR times come from the wall clock: start after it is synchronised.
    for key in ["After", "Wants"] {
        assert!(
            value(&unit, key)
                .split_whitespace()
                .any(|u| u == "time-sync.target"),
            "{UNIT}: {key}= must name time-sync.target"
        );
    }
    let nofile: u64 = value(&unit, "LimitNOFILE")
        .parse()
        .expect("LimitNOFILE number");
    // Two sockets (RTP + RTCP) per media port pair over a full 16-bit range.
    assert!(
        nofile >= 65_536 * 2,
        "LimitNOFILE={nofile} too small for the media range"
    );
    let stop = seconds(value(&unit, "TimeoutStopSec"));
    assert!(
        stop > 30,
        "TimeoutStopSec={stop}s must exceed the 30 s drain timeout"
    );
    let allowed = [
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_NICE",
        "CAP_IPC_LOCK",
        "CAP_BPF",
        "CAP_NET_ADMIN",
    ];
    for key in ["CapabilityBoundingSet", "AmbientCapabilities"] {
        let caps: Vec<&str> = value(&unit, key).split_whitespace().collect();
        for cap in &caps {
            assert!(
                allowed.contains(cap),
                "unexpected capability {cap} in {key}"
            );
        }
        // The XDP fast path (`[media] fast_path`): load the program, attach it.
        for cap in ["CAP_BPF", "CAP_NET_ADMIN"] {
            assert!(caps.contains(&cap), "{key} lacks {cap}");
        }
    }
    // bpf(2) is in @privileged, which the deny list removes: allowed again after it.
    let filters: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("SystemCallFilter="))
        .collect();
    let deny = filters.iter().position(|f| f.contains("~@privileged"));
    let bpf = filters
        .iter()
        .position(|f| f.split_whitespace().any(|s| s == "bpf"));
    assert!(
        matches!((deny, bpf), (Some(d), Some(b)) if b > d),
        "bpf must be allowed after the @privileged deny list: {filters:?}"
    );
}

fn value<'a>(unit: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    unit.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("{UNIT} has no {key}="))
}

fn seconds(v: &str) -> u64 {
    v.trim_end_matches('s')
        .parse()
        .unwrap_or_else(|_| panic!("not seconds: {v}"))
}

/// An empty root with the sysusers file applied, as the postinst does.
fn root_with_sysusers() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(root.path().join("etc")).expect("mkdir etc");
    let conf = systemd_dir().join("portcullis.sysusers.conf");
    let out = run(
        "systemd-sysusers",
        &[
            &format!("--root={}", root.path().display()),
            conf.to_str().expect("utf-8"),
        ],
    );
    assert!(out.status.success(), "systemd-sysusers: {out:?}");
    root
}

#[test]
fn sysusers_creates_the_service_account() {
    let root = root_with_sysusers();
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).expect("passwd");
    let entry = passwd
        .lines()
        .find(|l| l.starts_with("portcullis:"))
        .unwrap_or_else(|| panic!("no portcullis user in {passwd}"));
    let fields: Vec<&str> = entry.split(':').collect();
    let uid: u32 = fields.get(2).and_then(|u| u.parse().ok()).expect("uid");
    assert!(
        uid < 1000,
        "portcullis must be a system user, got uid {uid}"
    );
    assert_eq!(fields.get(6).copied(), Some("/usr/sbin/nologin"));
    let group = std::fs::read_to_string(root.path().join("etc/group")).expect("group");
    assert!(
        group.lines().any(|l| l.starts_with("portcullis:")),
        "no group: {group}"
    );
}

#[test]
fn tmpfiles_config_creates_directories() {
    // tmpfiles resolves `portcullis` in the root's /etc/passwd, so the
    // account must exist first (the postinst runs sysusers before tmpfiles).
    let root = root_with_sysusers();
    let conf = systemd_dir().join("portcullis.tmpfiles.conf");
    let out = run(
        "systemd-tmpfiles",
        &[
            &format!("--root={}", root.path().display()),
            "--create",
            conf.to_str().expect("utf-8"),
        ],
    );
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-tmpfiles: {out:?}"
    );
    for dir in ["etc/portcullis", "var/lib/portcullis", "var/log/portcullis"] {
        assert!(root.path().join(dir).is_dir(), "{dir} not created");
    }
}

#[test]
fn sysctl_dropin_ephemeral_range_is_iana_dynamic() {
    let conf = read("99-portcullis.conf");
    let range = conf
        .lines()
        .find_map(|l| l.strip_prefix("net.ipv4.ip_local_port_range = "))
        .expect("ip_local_port_range");
    let lo: u32 = range
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("low");
    assert!(
        lo >= 49_152,
        "ephemeral range must start in the RFC 6335 dynamic range"
    );
    for key in [
        "net.core.rmem_max",
        "net.core.wmem_max",
        "net.core.netdev_max_backlog",
    ] {
        assert!(conf.lines().any(|l| l.starts_with(key)), "missing {key}");
    }
}

/// `"/proc/..."` string literals outside `/proc/self` and `/proc/thread-self`
/// in the workspace's non-test Rust sources, as "file: literal".
fn non_self_proc_reads() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name();
            if p.is_dir()
                && !["tests", "target", "benches", "fuzz"].contains(&&*name.to_string_lossy())
            {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["appliance/src", "controlplane", "dataplane"] {
        walk(&root.join(dir), &mut files);
    }
    let mut found = Vec::new();
    for f in files {
        let Ok(src) = std::fs::read_to_string(&f) else {
            continue;
        };
        for (i, _) in src.match_indices("\"/proc/") {
            let lit = &src[i + 1..];
            let lit = &lit[..lit.find('"').unwrap_or(lit.len())];
            if !lit.starts_with("/proc/self") && !lit.starts_with("/proc/thread-self") {
                found.push(format!("{}: {lit}", f.display()));
            }
        }
    }
    found
}

#[test]
fn proc_subset_does_not_hide_what_the_code_reads() {
    let unit = read(UNIT);
    let subset_pid = unit.lines().any(|l| l.trim() == "ProcSubset=pid");
    let reads = non_self_proc_reads();
    assert!(
        !subset_pid || reads.is_empty(),
        "ProcSubset=pid hides these /proc paths the code reads: {reads:#?}"
    );
}

//! Tests of the `tuning/` shell scripts: shellcheck-clean, `--dry-run`
//! changes nothing on this machine, and the real mode does the right thing
//! (and nothing more on a second run) on fake `/proc` and `/sys` trees
//! (`PORTCULLIS_PROC`, `PORTCULLIS_SYS`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SCRIPTS: [&str; 4] = ["irq-affinity", "rps-xps", "sysctl", "check"];

fn tuning_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tuning")
}

fn script(name: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(tuning_dir().join(name))
        .env_remove("PORTCULLIS_PROC")
        .env_remove("PORTCULLIS_SYS");
    cmd
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("bash runs");
    assert!(out.status.success(), "{cmd:?} failed: {}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn show(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn scripts_pass_shellcheck() {
    let mut files: Vec<PathBuf> = SCRIPTS.iter().map(|s| tuning_dir().join(s)).collect();
    files.push(tuning_dir().join("lib.sh"));
    let out = match Command::new("shellcheck").arg("-x").args(&files).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`shellcheck` not found: install Debian's `shellcheck` package \
             (apt-get install shellcheck) to lint tuning/"
        ),
        Err(e) => panic!("running shellcheck: {e}"),
    };
    assert!(out.status.success(), "shellcheck findings:\n{}", show(&out));
}

/// Every value the scripts may write on this machine.
fn snapshot() -> BTreeMap<PathBuf, String> {
    let mut files: Vec<PathBuf> = Vec::new();
    for key in ["net/core", "net/ipv4"] {
        if let Ok(dir) = fs::read_dir(Path::new("/proc/sys").join(key)) {
            files.extend(dir.flatten().map(|e| e.path()));
        }
    }
    if let Ok(irqs) = fs::read_dir("/proc/irq") {
        files.extend(irqs.flatten().map(|e| e.path().join("smp_affinity_list")));
    }
    if let Ok(nics) = fs::read_dir("/sys/class/net") {
        for nic in nics.flatten() {
            if let Ok(queues) = fs::read_dir(nic.path().join("queues")) {
                for q in queues.flatten() {
                    files.push(q.path().join("rps_cpus"));
                    files.push(q.path().join("xps_cpus"));
                }
            }
        }
    }
    files
        .into_iter()
        .filter_map(|f| fs::read_to_string(&f).ok().map(|v| (f, v)))
        .collect()
}

#[test]
fn dry_runs_change_nothing_here() {
    let before = snapshot();
    assert!(!before.is_empty(), "nothing readable under /proc/sys");
    for name in SCRIPTS {
        let out = run_ok(script(name).arg("--dry-run"));
        if name != "check" {
            assert!(
                out.contains("dry run: ") && out.contains(" change(s) would be made"),
                "{name} --dry-run printed no summary:\n{out}"
            );
            assert!(!out.contains("wrote '"), "{name} --dry-run wrote:\n{out}");
        }
    }
    let after = snapshot();
    let changed: Vec<_> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    assert!(changed.is_empty(), "--dry-run changed {changed:?}");
}

#[test]
fn check_dry_run_prints_a_report() {
    let out = run_ok(script("check").arg("--dry-run"));
    let items: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("PASS  ") || l.starts_with("WARN  "))
        .collect();
    assert!(items.len() >= 10, "too few report lines:\n{out}");
    for item in ["cores:", "isolcpus:", "nohz_full:", "io_uring:", "memlock:"] {
        assert!(
            items.iter().any(|l| l[6..].starts_with(item)),
            "no {item} line in:\n{out}"
        );
    }
    assert!(out.contains("summary: "), "no summary:\n{out}");
}

fn write(root: &Path, rel: &str, value: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, value).expect("write");
}

fn read(root: &Path, rel: &str) -> String {
    fs::read_to_string(root.join(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .trim()
        .to_owned()
}

/// A 4-CPU host with one 4-queue NIC `ens1f0` (IRQs 60-63, plus 59 for
/// async events) and a virtio-style single-queue `eth1` (IRQs under the PCI
/// parent, config vector 70, input 71, output 72).
fn fake_host() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let proc_root = dir.path().join("proc");
    let sys_root = dir.path().join("sys");
    let mut interrupts = String::from("           CPU0 CPU1 CPU2 CPU3\n");
    interrupts.push_str(" 59: 1 0 0 0 PCI-MSIX-0000:01:00.0 0-edge ens1f0-async\n");
    for q in 0..4 {
        interrupts.push_str(&format!(
            " {}: 5 0 0 0 PCI-MSIX-0000:01:00.0 {}-edge ens1f0-TxRx-{q}\n",
            60 + q,
            q + 1
        ));
    }
    interrupts.push_str(" 70: 0 0 0 0 PCI-MSIX-0000:00:03.0 0-edge virtio2-config\n");
    interrupts.push_str(" 71: 9 0 0 0 PCI-MSIX-0000:00:03.0 1-edge virtio2-input.0\n");
    interrupts.push_str(" 72: 9 0 0 0 PCI-MSIX-0000:00:03.0 2-edge virtio2-output.0\n");
    write(&proc_root, "interrupts", &interrupts);
    for irq in [59, 60, 61, 62, 63, 70, 71, 72] {
        write(&proc_root, &format!("irq/{irq}/smp_affinity_list"), "0-3\n");
    }
    for irq in 59..=63 {
        write(
            &sys_root,
            &format!("class/net/ens1f0/device/msi_irqs/{irq}"),
            "msix\n",
        );
    }
    for q in 0..4 {
        write(
            &sys_root,
            &format!("class/net/ens1f0/queues/rx-{q}/rps_cpus"),
            "0\n",
        );
        write(
            &sys_root,
            &format!("class/net/ens1f0/queues/tx-{q}/xps_cpus"),
            "0\n",
        );
    }
    // virtio: class/net/eth1/device is virtioN; MSI vectors sit on the PCI
    // parent (device/../msi_irqs).
    for irq in 70..=72 {
        write(&sys_root, &format!("devices/pci/msi_irqs/{irq}"), "msix\n");
    }
    fs::create_dir_all(sys_root.join("devices/pci/virtio2")).expect("mkdir");
    fs::create_dir_all(sys_root.join("class/net/eth1")).expect("mkdir");
    std::os::unix::fs::symlink(
        sys_root.join("devices/pci/virtio2"),
        sys_root.join("class/net/eth1/device"),
    )
    .expect("symlink");
    write(&sys_root, "class/net/eth1/queues/rx-0/rps_cpus", "0\n");
    // No device: skipped like lo.
    write(&sys_root, "class/net/lo/queues/rx-0/rps_cpus", "0\n");
    write(&sys_root, "devices/system/cpu/online", "0-3\n");
    write(
        &sys_root,
        "devices/system/cpu/cpu2/cpufreq/scaling_governor",
        "performance\n",
    );
    write(
        &sys_root,
        "devices/system/cpu/cpu3/cpufreq/scaling_governor",
        "powersave\n",
    );
    write(
        &proc_root,
        "cmdline",
        "ro quiet isolcpus=managed_irq,domain,2-3 nohz_full=2-3\n",
    );
    write(&proc_root, "sys/kernel/io_uring_disabled", "2\n");
    write(
        &sys_root,
        "kernel/mm/transparent_hugepage/enabled",
        "always madvise [never]\n",
    );
    write(&proc_root, "sys/net/core/busy_poll", "0\n");
    write(&proc_root, "sys/net/core/busy_read", "50\n");
    write(&proc_root, "sys/net/core/rmem_max", "212992\n");
    write(&proc_root, "sys/net/core/somaxconn", "4096\n");
    write(&proc_root, "sys/net/ipv4/udp_mem", "1\t2\t3\n");
    write(
        &proc_root,
        "sys/net/ipv4/ip_local_port_range",
        "32768\t60999\n",
    );
    (dir, proc_root, sys_root)
}

fn on_fake(name: &str, proc_root: &Path, sys_root: &Path) -> Command {
    let mut cmd = script(name);
    cmd.env("PORTCULLIS_PROC", proc_root)
        .env("PORTCULLIS_SYS", sys_root);
    cmd
}

#[test]
fn irq_affinity_pins_queues_once() {
    let (_dir, p, s) = fake_host();
    let first = run_ok(on_fake("irq-affinity", &p, &s).args(["--cores", "2,3"]));
    assert!(first.contains("6 change(s) made"), "{first}");
    // Queue N -> core N mod 2 of [2, 3]; rx and tx of virtio queue 0 together.
    for (irq, cpu) in [
        (60, "2"),
        (61, "3"),
        (62, "2"),
        (63, "3"),
        (71, "2"),
        (72, "2"),
    ] {
        assert_eq!(
            read(&p, &format!("irq/{irq}/smp_affinity_list")),
            cpu,
            "IRQ {irq}"
        );
    }
    for irq in [59, 70] {
        assert_eq!(
            read(&p, &format!("irq/{irq}/smp_affinity_list")),
            "0-3",
            "IRQ {irq} moved"
        );
    }
    let second = run_ok(on_fake("irq-affinity", &p, &s).args(["--cores", "2,3"]));
    assert!(
        second.contains("0 change(s) made"),
        "not idempotent:\n{second}"
    );
}

#[test]
fn rps_xps_masks_follow_queue_count() {
    let (_dir, p, s) = fake_host();
    let first = run_ok(on_fake("rps-xps", &p, &s).args(["--cores", "2-3"]));
    // ens1f0 has 4 rx queues >= 2 cores: RPS stays 0; XPS queue i gets core i mod 2.
    for q in 0..4 {
        assert_eq!(
            read(&s, &format!("class/net/ens1f0/queues/rx-{q}/rps_cpus")),
            "0"
        );
    }
    assert_eq!(read(&s, "class/net/ens1f0/queues/tx-0/xps_cpus"), "4");
    assert_eq!(read(&s, "class/net/ens1f0/queues/tx-1/xps_cpus"), "8");
    assert_eq!(read(&s, "class/net/ens1f0/queues/tx-2/xps_cpus"), "0");
    // eth1 has one rx queue < 2 cores: RPS over both cores (mask 0xc).
    assert_eq!(read(&s, "class/net/eth1/queues/rx-0/rps_cpus"), "c");
    assert_eq!(
        read(&s, "class/net/lo/queues/rx-0/rps_cpus"),
        "0",
        "lo touched"
    );
    assert!(first.contains("3 change(s) made"), "{first}");
    let second = run_ok(on_fake("rps-xps", &p, &s).args(["--cores", "2-3"]));
    assert!(
        second.contains("0 change(s) made"),
        "not idempotent:\n{second}"
    );
}

#[test]
fn sysctl_applies_profile_once() {
    let (_dir, p, s) = fake_host();
    let first = run_ok(&mut on_fake("sysctl", &p, &s));
    assert_eq!(read(&p, "sys/net/core/rmem_max"), "33554432");
    assert_eq!(read(&p, "sys/net/ipv4/udp_mem"), "1048576 1572864 2097152");
    assert_eq!(read(&p, "sys/net/ipv4/ip_local_port_range"), "49152 65535");
    assert!(
        first.contains("unchanged"),
        "somaxconn already set:\n{first}"
    );
    let second = run_ok(&mut on_fake("sysctl", &p, &s));
    assert!(
        second.contains("0 change(s) made"),
        "not idempotent:\n{second}"
    );
    let dry = run_ok(on_fake("sysctl", &p, &s).arg("--dry-run"));
    assert!(dry.contains("0 change(s) would be made"), "{dry}");
}

#[test]
fn check_reads_config_and_reports_each_item() {
    let (dir, p, s) = fake_host();
    let config = dir.path().join("portcullis.toml");
    fs::write(
        &config,
        "[node]\nname = \"x\"\n[media]\n# cores = [0]\ncores = [2, 3] # workers\nport_min = 20000\nport_max = 29999\n[admin]\ncores = [0]\n",
    )
    .expect("config");
    let out = run_ok(
        on_fake("check", &p, &s)
            .args(["--config"])
            .arg(&config)
            .args(["--iface", "ens1f0"]),
    );
    let line = |item: &str| -> String {
        out.lines()
            .find(|l| l.get(6..).is_some_and(|rest| rest.starts_with(item)))
            .unwrap_or_else(|| panic!("no {item} line:\n{out}"))
            .to_owned()
    };
    assert!(
        out.contains("dataplane cores: 2 3 ([media] cores in"),
        "{out}"
    );
    assert!(line("isolcpus:").starts_with("PASS"));
    assert!(line("nohz_full:").starts_with("PASS"));
    assert!(line("governor:").starts_with("WARN") && line("governor:").contains("cpu3=powersave"));
    assert!(line("net.core.busy_poll:").starts_with("WARN"));
    assert!(line("net.core.busy_read:").starts_with("PASS"));
    assert!(line("net.core.rmem_max:").starts_with("WARN"));
    assert!(
        line("ephemeral-ports:").starts_with("PASS"),
        "20000-29999 vs 32768-60999"
    );
    assert!(line("nic-queues ens1f0:").starts_with("PASS"));
    assert!(line("irq-placement ens1f0:").starts_with("WARN"));
    assert!(line("io_uring:").starts_with("WARN"));
    assert!(line("thp:").starts_with("WARN") && line("thp:").contains("= never"));

    // After pinning, IRQ placement passes; --strict fails while warnings remain.
    run_ok(
        on_fake("irq-affinity", &p, &s)
            .args(["--config"])
            .arg(&config),
    );
    let out = run_ok(
        on_fake("check", &p, &s)
            .args(["--config"])
            .arg(&config)
            .args(["--iface", "ens1f0"]),
    );
    assert!(out.contains("PASS  irq-placement ens1f0:"), "{out}");
    write(
        &s,
        "kernel/mm/transparent_hugepage/enabled",
        "always [madvise] never\n",
    );
    let out = run_ok(on_fake("check", &p, &s).args(["--config"]).arg(&config));
    assert!(
        out.contains("PASS  thp: transparent_hugepage = madvise"),
        "{out}"
    );
    let strict = on_fake("check", &p, &s)
        .args(["--strict", "--config"])
        .arg(&config)
        .output()
        .expect("bash");
    assert_eq!(strict.status.code(), Some(1), "{}", show(&strict));
}

/// The XDP line of `check`: the driver of each media interface (from sysfs) gives native
/// or generic mode; with the fast path on, a driver without native XDP warns. (A program
/// attached in native mode is reported by the namespace test, `fastpath_netns.rs`.)
#[test]
fn check_reports_the_xdp_mode_of_the_media_interfaces() {
    let (dir, p, s) = fake_host();
    for drv in ["mlx5_core", "r8169"] {
        fs::create_dir_all(s.join("bus/pci/drivers").join(drv)).expect("mkdir");
    }
    std::os::unix::fs::symlink(
        s.join("bus/pci/drivers/mlx5_core"),
        s.join("class/net/ens1f0/device/driver"),
    )
    .expect("symlink");
    std::os::unix::fs::symlink(
        s.join("bus/pci/drivers/r8169"),
        s.join("devices/pci/virtio2/driver"),
    )
    .expect("symlink");
    let config = dir.path().join("portcullis.toml");
    let report = |fast_path: &str| {
        fs::write(
            &config,
            format!("[media]\ncores = [2, 3]\nfast_path = \"{fast_path}\"\n"),
        )
        .expect("config");
        run_ok(
            on_fake("check", &p, &s)
                .args(["--config"])
                .arg(&config)
                .args(["--iface", "ens1f0", "--iface", "eth1"]),
        )
    };
    let out = report("xdp");
    assert!(
        out.contains("PASS  xdp ens1f0: driver mlx5_core: native XDP (fast_path = xdp)"),
        "{out}"
    );
    assert!(
        out.contains(
            "WARN  xdp eth1: driver r8169: no native XDP, the fast path runs in generic mode"
        ),
        "{out}"
    );
    let out = report("off");
    assert!(
        out.contains("PASS  xdp eth1: driver r8169: generic XDP only (fast_path = off)"),
        "{out}"
    );
}

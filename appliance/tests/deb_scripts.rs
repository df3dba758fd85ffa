//! Runs the Debian maintainer scripts (`appliance/debian/`) against stub
//! commands and checks what they would do to a system.
//!
//! `PATH` holds only a directory of stubs that log their arguments, so no
//! real command can run (a missing stub makes `sh -e` fail the script, and
//! the test with it). Whether systemd is PID 1 (`/run/systemd/system`) is
//! the host's; the assertions below hold either way.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const STUBS: [&str; 13] = [
    "systemd-sysusers",
    "systemd-tmpfiles",
    "systemd-sysctl",
    "dpkg-statoverride",
    "deb-systemd-helper",
    "deb-systemd-invoke",
    "systemctl",
    "getent",
    "addgroup",
    "adduser",
    "rm",
    "cat",
    "true",
];

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    /// Stubs log "name args" and exit 0, except calls whose "name args"
    /// starts with one of `failing` (exit 1: "not overridden", "not
    /// enabled", "no such user"). Stubs in `absent` are not installed.
    fn new(failing: &[&str], absent: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).expect("mkdir");
        let log = dir.path().join("log");
        for stub in STUBS.iter().filter(|s| !absent.contains(s)) {
            let mut body = format!("#!/bin/sh\necho \"{stub} $*\" >> '{}'\n", log.display());
            for f in failing.iter().filter(|f| f.split(' ').next() == Some(stub)) {
                body.push_str(&format!("case \"{stub} $*\" in \"{f}\"*) exit 1;; esac\n"));
            }
            body.push_str("exit 0\n");
            let path = bin.join(stub);
            fs::write(&path, body).expect("stub");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        Self { dir }
    }

    fn run(&self, script: &str, args: &[&str]) -> Vec<String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("debian")
            .join(script);
        let out = Command::new("/bin/sh")
            .arg(&path)
            .args(args)
            .env_clear()
            .env("PATH", self.dir.path().join("bin"))
            .output()
            .expect("/bin/sh");
        assert!(
            out.status.success(),
            "{script} {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("log")
    }
}

fn has(log: &[String], line: &str) -> bool {
    log.iter().any(|l| l == line)
}

#[test]
fn postinst_fresh_install_creates_account_and_enables_without_starting() {
    let sb = Sandbox::new(
        &[
            "dpkg-statoverride --list",
            "deb-systemd-helper --quiet was-enabled",
        ],
        &[],
    );
    let log = sb.run("postinst", &["configure", ""]);
    assert!(
        has(&log, "systemd-sysusers /usr/lib/sysusers.d/portcullis.conf"),
        "{log:#?}"
    );
    assert!(has(
        &log,
        "systemd-tmpfiles --create /usr/lib/tmpfiles.d/portcullis.conf"
    ));
    assert!(has(
        &log,
        "dpkg-statoverride --update --add root portcullis 0750 /etc/portcullis"
    ));
    assert!(has(
        &log,
        "dpkg-statoverride --update --add root portcullis 0640 /etc/portcullis/portcullis.toml"
    ));
    assert!(has(
        &log,
        "systemd-sysctl /usr/lib/sysctl.d/99-portcullis.conf"
    ));
    assert!(
        has(&log, "deb-systemd-helper enable portcullis.service"),
        "{log:#?}"
    );
    assert!(
        !log.iter()
            .any(|l| l.contains(" start") || l.contains("restart")),
        "must not start the service: {log:#?}"
    );
    assert!(!log.iter().any(|l| l.starts_with("adduser")), "{log:#?}");
}

#[test]
fn postinst_upgrade_keeps_overrides_and_does_not_restart() {
    // statoverride --list succeeds: the admin's (or a previous) override stays.
    let sb = Sandbox::new(&["deb-systemd-helper --quiet was-enabled"], &[]);
    let log = sb.run("postinst", &["configure", "0.1.0-1"]);
    assert!(
        !log.iter()
            .any(|l| l.starts_with("dpkg-statoverride --update")),
        "{log:#?}"
    );
    // Disabled by the admin before the upgrade: stays disabled.
    assert!(
        !has(&log, "deb-systemd-helper enable portcullis.service"),
        "{log:#?}"
    );
    assert!(!log.iter().any(|l| l.contains("restart")), "{log:#?}");
}

#[test]
fn postinst_without_sysusers_falls_back_to_adduser() {
    let sb = Sandbox::new(
        &["getent", "dpkg-statoverride --list"],
        &["systemd-sysusers"],
    );
    let log = sb.run("postinst", &["configure", ""]);
    assert!(has(&log, "addgroup --system portcullis"), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with("adduser --system --ingroup portcullis")
                && l.contains("--shell /usr/sbin/nologin")),
        "{log:#?}"
    );
}

#[test]
fn postinst_ignores_other_actions() {
    let sb = Sandbox::new(&[], &[]);
    let log = sb.run("postinst", &["abort-upgrade", "0.1.0-1"]);
    assert!(log.is_empty(), "{log:#?}");
}

#[test]
fn postrm_purge_removes_state_and_overrides_but_keeps_cdrs() {
    let sb = Sandbox::new(&[], &[]);
    let log = sb.run("postrm", &["purge"]);
    assert!(
        has(&log, "deb-systemd-helper purge portcullis.service"),
        "{log:#?}"
    );
    assert!(has(&log, "dpkg-statoverride --remove /etc/portcullis"));
    assert!(has(
        &log,
        "dpkg-statoverride --remove /etc/portcullis/portcullis.toml"
    ));
    assert!(has(&log, "rm -rf /var/lib/portcullis"));
    assert!(
        !log.iter().any(|l| l.contains("/var/log/portcullis")),
        "{log:#?}"
    );
    let sb = Sandbox::new(&[], &[]);
    let log = sb.run("postrm", &["remove"]);
    assert!(
        !log.iter().any(|l| l.starts_with("rm ")),
        "remove must not delete state: {log:#?}"
    );
}

#[test]
fn prerm_upgrade_does_not_stop() {
    let sb = Sandbox::new(&[], &[]);
    let log = sb.run("prerm", &["upgrade", "0.1.1-1"]);
    assert!(log.is_empty(), "{log:#?}");
}

//! Builds the Debian package with cargo-deb and checks its layout.
//!
//! cargo-deb is not built here (`--no-build`): the test reuses the binary
//! cargo just built for the tests (`CARGO_BIN_EXE_portcullis`, debug or
//! release). cargo-deb reads the binary from `$CARGO_TARGET_DIR/release/`
//! (the `target/release/portcullis` asset), so the test copies it into a
//! temporary target directory under `release/` and points CARGO_TARGET_DIR
//! there: no second (fat-LTO) release build, no writes to the real target
//! directory, and the same command works under `cargo test` and
//! `cargo test --release`. `--no-strip --fast` keep it quick; a real release
//! is `cargo build --release -p portcullis && cargo deb -p portcullis --no-build`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn tool(cmd: &mut Command, hint: &str) -> Output {
    match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{cmd:?} not found: {hint}"),
        Err(e) => panic!("running {cmd:?}: {e}"),
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const CARGO_DEB_HINT: &str = "cargo-deb is required: `cargo install cargo-deb --locked`";

/// Builds the .deb into a temp dir; returns (dir guard, .deb path).
fn build_deb() -> (tempfile::TempDir, PathBuf) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let version = tool(
        Command::new(&cargo).args(["deb", "--version"]),
        CARGO_DEB_HINT,
    );
    assert!(
        version.status.success(),
        "{CARGO_DEB_HINT}\n{}",
        text(&version)
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let target = tmp.path().join("target");
    std::fs::create_dir_all(target.join("release")).expect("mkdir");
    std::fs::copy(
        env!("CARGO_BIN_EXE_portcullis"),
        target.join("release/portcullis"),
    )
    .expect("copy binary");
    let out_dir = tmp.path().join("out");
    let out = tool(
        Command::new(&cargo)
            .current_dir(workspace_root())
            .env("CARGO_TARGET_DIR", &target)
            .args([
                "deb",
                "-p",
                "portcullis",
                "--no-build",
                "--no-strip",
                "--fast",
            ])
            .arg("--output")
            .arg(&out_dir),
        CARGO_DEB_HINT,
    );
    assert!(out.status.success(), "cargo deb failed: {}", text(&out));
    let deb = std::fs::read_dir(&out_dir)
        .expect("output dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .unwrap_or_else(|| panic!("no .deb in {}: {}", out_dir.display(), text(&out)));
    (tmp, deb)
}

/// `dpkg-deb ARGS DEB [DEST]`, stdout on success.
fn dpkg_deb(args: &[&str], deb: &Path, dest: Option<&Path>) -> String {
    let mut cmd = Command::new("dpkg-deb");
    cmd.args(args).arg(deb);
    if let Some(dest) = dest {
        cmd.arg(dest);
    }
    let out = tool(&mut cmd, "dpkg-deb is required (Debian package dpkg)");
    assert!(out.status.success(), "dpkg-deb {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn deb_has_expected_layout_and_scripts() {
    let (tmp, deb) = build_deb();

    // Payload: "drwxr-xr-x 0/0 0 2026-01-01 00:00 ./usr/bin/portcullis".
    let contents = dpkg_deb(&["--contents"], &deb, None);
    let entries: Vec<(&str, &str)> = contents
        .lines()
        .filter_map(|l| {
            let mode = l.split_whitespace().next()?;
            let path = l.split_whitespace().last()?.strip_prefix('.')?;
            Some((path, mode))
        })
        .collect();
    let mode_of = |path: &str| {
        entries
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, m)| *m)
            .unwrap_or_else(|| panic!("{path} not in the package:\n{contents}"))
    };
    for (path, mode) in [
        ("/usr/bin/portcullis", "-rwxr-xr-x"),
        ("/lib/systemd/system/portcullis.service", "-rw-r--r--"),
        ("/etc/portcullis/portcullis.toml", "-rw-r-----"),
        ("/usr/lib/sysctl.d/99-portcullis.conf", "-rw-r--r--"),
        ("/usr/lib/sysusers.d/portcullis.conf", "-rw-r--r--"),
        ("/usr/lib/tmpfiles.d/portcullis.conf", "-rw-r--r--"),
        ("/usr/lib/portcullis/portcullis-ha-notify", "-rwxr-xr-x"),
        ("/usr/share/portcullis/tuning/check", "-rwxr-xr-x"),
        ("/usr/share/portcullis/tuning/irq-affinity", "-rwxr-xr-x"),
        ("/usr/share/portcullis/tuning/rps-xps", "-rwxr-xr-x"),
        ("/usr/share/portcullis/tuning/sysctl", "-rwxr-xr-x"),
        ("/usr/share/portcullis/tuning/lib.sh", "-rw-r--r--"),
        ("/usr/share/doc/portcullis/operator-guide.md", "-rw-r--r--"),
        ("/usr/share/doc/portcullis/af-xdp.conf", "-rw-r--r--"),
    ] {
        assert_eq!(mode_of(path), mode, "mode of {path}");
    }

    // Shipped files are the repository's, byte for byte.
    let root = tmp.path().join("root");
    dpkg_deb(&["-x"], &deb, Some(&root));
    let ws = workspace_root();
    for (packaged, source) in [
        (
            "lib/systemd/system/portcullis.service",
            "systemd/portcullis.service",
        ),
        ("etc/portcullis/portcullis.toml", "systemd/portcullis.toml"),
        (
            "usr/lib/sysctl.d/99-portcullis.conf",
            "systemd/99-portcullis.conf",
        ),
        (
            "usr/lib/sysusers.d/portcullis.conf",
            "systemd/portcullis.sysusers.conf",
        ),
        (
            "usr/lib/portcullis/portcullis-ha-notify",
            "systemd/portcullis-ha-notify",
        ),
        (
            "usr/share/doc/portcullis/af-xdp.conf",
            "systemd/af-xdp.conf",
        ),
    ] {
        let a = std::fs::read(root.join(packaged)).expect(packaged);
        let b = std::fs::read(ws.join(source)).expect(source);
        assert!(a == b, "{packaged} differs from {source}");
    }

    // Control: the config is a conffile; the maintainer scripts are there.
    let info = dpkg_deb(&["--info"], &deb, None);
    assert!(info.contains("Package: portcullis"), "{info}");
    assert!(
        info.contains("Depends:") && info.contains("systemd"),
        "{info}"
    );
    for script in ["postinst", "prerm", "postrm"] {
        assert!(info.contains(script), "no {script} in control:\n{info}");
    }
    let ctrl = tmp.path().join("ctrl");
    dpkg_deb(&["-e"], &deb, Some(&ctrl));
    let conffiles = std::fs::read_to_string(ctrl.join("conffiles")).expect("conffiles");
    assert!(
        conffiles
            .lines()
            .any(|l| l == "/etc/portcullis/portcullis.toml"),
        "conffiles: {conffiles}"
    );
    let postinst = std::fs::read_to_string(ctrl.join("postinst")).expect("postinst");
    assert!(postinst.contains("systemd-sysusers /usr/lib/sysusers.d/portcullis.conf"));
    assert!(
        postinst.contains("adduser --system"),
        "fallback without systemd-sysusers"
    );
}

#[test]
fn maintainer_scripts_pass_shellcheck() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("debian");
    let files: Vec<PathBuf> = ["postinst", "prerm", "postrm"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    let out = tool(
        Command::new("shellcheck").args(&files),
        "shellcheck is required (apt-get install shellcheck)",
    );
    assert!(out.status.success(), "shellcheck: {}", text(&out));
}

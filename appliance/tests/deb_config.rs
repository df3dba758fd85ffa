//! The packaged configuration (`systemd/portcullis.toml`, installed as
//! `/etc/portcullis/portcullis.toml`) tracks the embedded default.

use std::path::Path;

/// Setting lines (comments and blanks dropped, whitespace trimmed).
fn settings(toml: &str) -> Vec<&str> {
    toml.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

#[test]
fn packaged_config_is_the_embedded_default_with_an_absolute_cdr_path() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let embedded =
        std::fs::read_to_string(root.join("src/default.toml")).expect("src/default.toml");
    let packaged = std::fs::read_to_string(root.join("../systemd/portcullis.toml"))
        .expect("systemd/portcullis.toml");
    let (e, p) = (settings(&embedded), settings(&packaged));
    assert_eq!(
        e.len(),
        p.len(),
        "systemd/portcullis.toml out of sync with src/default.toml"
    );
    let diffs: Vec<(&str, &str)> = e
        .iter()
        .zip(&p)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| (*a, *b))
        .collect();
    assert_eq!(
        diffs.len(),
        1,
        "systemd/portcullis.toml must differ from src/default.toml only in [cdr] path: {diffs:?}"
    );
    let (from, to) = diffs[0];
    assert!(
        from.starts_with("path = "),
        "unexpected difference {from:?}"
    );
    assert_eq!(to, "path = \"/var/log/portcullis/cdr.jsonl\"");
    let unit = std::fs::read_to_string(root.join("../systemd/portcullis.service")).expect("unit");
    assert!(
        unit.lines()
            .any(|l| l == "ReadWritePaths=/var/lib/portcullis /var/log/portcullis"),
        "the CDR directory must be writable by the unit"
    );
}

#[test]
fn packaged_config_passes_check_config() {
    let packaged = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/portcullis.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("check-config")
        .arg(&packaged)
        .output()
        .expect("run portcullis");
    assert!(
        out.status.success(),
        "portcullis check-config {}: {}\n{}",
        packaged.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

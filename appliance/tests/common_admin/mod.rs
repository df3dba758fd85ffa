//! Helpers shared by the admin API and metrics tests (`admin_api.rs`, `admin_e2e.rs`,
//! `ops_metrics.rs`): validating an exposition with `promtool` and reading one sample.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `promtool check metrics` on `text`; panics with its output on failure or when
/// promtool is missing.
pub fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool is required (Debian package `prometheus`; CI installs it): {e}")
        });
    child
        .stdin
        .take()
        .unwrap_or_else(|| panic!("stdin"))
        .write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("write: {e}"));
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- exposition ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Value of the sample `name{labels}` (exact label text), or of `name` without labels,
/// if exported.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

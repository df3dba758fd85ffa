//! Shared helpers of the provisioning tests (`config*.rs`): a loader on a fixed 4-CPU
//! host, a minimal valid file (`BASE`) and edits to it, positions of needles, and
//! self-signed certificate files.
#![allow(dead_code)]

use std::path::Path;

use portcullis::config::{Config, Diagnostic, HostInfo, LineCol, LoadOptions};

/// A machine with 4 CPUs, so results do not depend on the test host.
pub fn opts() -> LoadOptions {
    LoadOptions {
        check_files: true,
        host: HostInfo::with_cpus(4),
    }
}

pub fn load(src: &str) -> Result<Config, Vec<Diagnostic>> {
    Config::from_toml(src, Path::new("/nonexistent-base"), &opts())
}

pub fn errors(src: &str) -> Vec<Diagnostic> {
    match load(src) {
        Ok(_) => panic!("expected errors, the config loaded:\n{src}"),
        Err(d) => d,
    }
}

/// Position of the first occurrence of `needle` in `src`.
pub fn pos(src: &str, needle: &str) -> LineCol {
    let off = src
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the source"));
    LineCol::from_offset(src, off)
}

pub const BASE: &str = r#"
[[sip.listener]]
transport = "udp"
address = "127.0.0.1:5060"

[media]
advertised_ip = "127.0.0.1"
cores = [0]

[[trunk]]
name = "a"
address = "127.0.0.1:5070"

[[trunk]]
name = "b"
address = "127.0.0.1:5080"

[[route]]
name = "r"
from = ["a"]
targets = ["b"]
"#;

pub fn apply(edits: &[(&str, &str)]) -> String {
    let mut src = BASE.to_owned();
    for (from, to) in edits {
        assert!(src.contains(from), "edit anchor {from:?} missing");
        src = src.replacen(from, to, 1);
    }
    src
}

/// Self-signed certificate and key for `name` written into `dir`.
pub fn write_cert(dir: &Path, name: &str) -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("rcgen");
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, ck.cert.pem()).expect("write cert");
    std::fs::write(&key, ck.key_pair.serialize_pem()).expect("write key");
    (cert.display().to_string(), key.display().to_string())
}

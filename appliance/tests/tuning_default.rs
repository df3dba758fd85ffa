//! The tuning scripts' default dataplane cores mirror the appliance's
//! embedded default configuration (`appliance/src/default.toml`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn tuning_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tuning")
}

#[test]
fn cores_default_matches_embedded_config() {
    // lib.sh mirrors `[media] cores` of the embedded default configuration.
    let default =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/default.toml"))
            .expect("appliance/src/default.toml");
    let lib = fs::read_to_string(tuning_dir().join("lib.sh")).expect("lib.sh");
    let mirrored = lib
        .lines()
        .find_map(|l| l.strip_prefix("EMBEDDED_CORES='"))
        .and_then(|v| v.strip_suffix('\''))
        .expect("EMBEDDED_CORES in lib.sh");
    let mut in_media = false;
    let mut embedded = None;
    for line in default.lines().map(str::trim) {
        if line.starts_with('[') {
            in_media = line == "[media]";
        } else if in_media {
            if let Some(v) = line.strip_prefix("cores") {
                embedded = v
                    .trim_start()
                    .strip_prefix('=')
                    .map(|v| v.trim().to_owned());
            }
        }
    }
    let embedded = embedded.unwrap_or_else(|| "\"auto:2\"".to_owned());
    assert_eq!(mirrored, embedded, "update EMBEDDED_CORES in tuning/lib.sh");

    // Without --config or --cores the scripts use it ("auto:2" = the first
    // two CPUs this process may run on, or fewer).
    let out = Command::new("bash")
        .arg(tuning_dir().join("irq-affinity"))
        .arg("--dry-run")
        .env_remove("PORTCULLIS_PROC")
        .env_remove("PORTCULLIS_SYS")
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "{out:?}");
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains("embedded default cores = ") || out.contains("/etc/portcullis"),
        "{out}"
    );
}

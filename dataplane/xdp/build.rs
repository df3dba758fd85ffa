//! Builds the XDP object (`bpf/fastpath.c`) with clang when clang and the libbpf headers
//! are present. Without them the crate still builds: no object is embedded and
//! `FastPath` reports itself unavailable at run time (with the reason given here).
//!
//! `CLANG` names another compiler. `PORTCULLIS_XDP_REQUIRE=1` turns a missing object into
//! a build error (for a CI that must not ship without the fast path).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCE: &str = "bpf/fastpath.c";

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-env-changed=PORTCULLIS_XDP_REQUIRE");
    println!("cargo::rustc-check-cfg=cfg(portcullis_xdp_object)");

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("fastpath.o");
    match compile(&out) {
        Ok(()) => {
            println!("cargo:rustc-cfg=portcullis_xdp_object");
            println!("cargo:rustc-env=PORTCULLIS_XDP_OBJECT={}", out.display());
        }
        Err(reason) => {
            if env::var("PORTCULLIS_XDP_REQUIRE").is_ok_and(|v| v == "1") {
                panic!("XDP object not built: {reason}");
            }
            println!("cargo:warning=XDP fast path not built: {reason}");
            let one_line = reason.replace(['\n', '\r'], " ");
            println!("cargo:rustc-env=PORTCULLIS_XDP_MISSING={one_line}");
        }
    }
}

fn compile(out: &Path) -> Result<(), String> {
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    let mut cmd = Command::new(&clang);
    cmd.args(["-target", "bpf", "-O2", "-g", "-Wall", "-Werror"]);
    // linux/types.h includes asm/types.h, which Debian keeps under the multiarch triple.
    if let Some(dir) = multiarch_include() {
        cmd.arg("-I").arg(dir);
    }
    cmd.arg("-c").arg(SOURCE).arg("-o").arg(out);
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run {clang} ({e}); install clang and libbpf-dev"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{clang} failed (are the libbpf-dev headers installed?): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn multiarch_include() -> Option<PathBuf> {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").ok()?;
    let entries = std::fs::read_dir("/usr/include").ok()?;
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{arch}-linux-")))
        })
        .find(|p| p.join("asm").is_dir())
}

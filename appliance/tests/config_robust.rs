//! Bad input never panics the loader: every truncation and every single-line deletion of the
//! (fully enabled) generated example is either accepted or rejected with diagnostics that all
//! carry a position inside the file.

use std::path::Path;

use portcullis::config::{Config, HostInfo, LoadOptions, EXAMPLE_TOML};

fn enabled_example() -> String {
    EXAMPLE_TOML
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest)
                if rest
                    .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '[' || c == '"') =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn check(src: &str) {
    let opts = LoadOptions {
        check_files: false,
        host: HostInfo::with_cpus(2),
    };
    if let Err(diags) = Config::from_toml(src, Path::new("/etc/portcullis"), &opts) {
        assert!(!diags.is_empty());
        let lines = src.lines().count().max(1) + 1;
        for d in &diags {
            // No position only when nothing of the setting is in the file (a missing section).
            if let Some(loc) = d.location {
                assert!(
                    loc.line >= 1 && loc.line <= lines && loc.col >= 1,
                    "{d} outside the file"
                );
            }
            assert!(d.render("f").starts_with("f:"), "{d}");
        }
    }
}

#[test]
fn truncations_never_panic() {
    let full = enabled_example();
    let mut cut = 0;
    let mut n = 0;
    while cut < full.len() {
        if full.is_char_boundary(cut) {
            check(&full[..cut]);
            n += 1;
        }
        cut += 7;
    }
    assert!(n > 500, "only {n} truncations checked");
}

#[test]
fn line_deletions_never_panic() {
    let full = enabled_example();
    let lines: Vec<&str> = full.lines().collect();
    for skip in 0..lines.len() {
        let src: Vec<&str> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, l)| *l)
            .collect();
        check(&src.join("\n"));
    }
}

#[test]
fn hostile_values_are_errors_not_panics() {
    let base = "[[sip.listener]]\ntransport = \"udp\"\naddress = \"127.0.0.1:5060\"\n[media]\nadvertised_ip = \"127.0.0.1\"\n";
    for extra in [
        "cores = \"0-99999999999999999999\"",
        "cores = \"5-1\"",
        "cores = [-1]",
        "cores = []",
        "port_min = 65534\nport_max = 65535",
        "port_min = 0\nport_max = 0",
        "inactivity_timeout = \"18446744073709551615d\"",
        "inactivity_timeout = \"\u{e9}\u{e9}\"",
        "ring_capacity = 4294967295",
    ] {
        let src = format!("{base}{extra}\n");
        let opts = LoadOptions {
            check_files: false,
            host: HostInfo::with_cpus(2),
        };
        let r = Config::from_toml(&src, Path::new("/"), &opts);
        assert!(r.is_err(), "accepted {extra:?}");
    }
    // "auto:N" takes at most the CPUs there are.
    let src = format!("{base}cores = \"auto:99999999999\"\n");
    let opts = LoadOptions {
        check_files: false,
        host: HostInfo::with_cpus(2),
    };
    let cfg = Config::from_toml(&src, Path::new("/"), &opts).unwrap_or_else(|d| panic!("{d:?}"));
    assert_eq!(cfg.media.cores.as_slice(), &[0, 1]);
}

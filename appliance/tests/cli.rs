//! The real `portcullis` binary: generate-config output passes check-config, errors are
//! printed as FILE:LINE:COL, exit statuses.

use std::path::Path;
use std::process::{Command, Output};

fn portcullis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .output()
        .expect("run the portcullis binary")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Enables the disabled settings of the generated example (`#key`, `#[table]` lines).
fn enable_all(example: &str) -> String {
    example
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

fn write(dir: &Path, name: &str, content: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write config");
    p.display().to_string()
}

#[test]
fn generated_config_passes_check_config() {
    let gen = portcullis(&["generate-config"]);
    assert!(gen.status.success());
    let example = text(&gen.stdout);
    for section in [
        "[node]",
        "[sip]",
        "[sip.limits]",
        "[sip.session_timer]",
        "[[sip.listener]]",
        "[media]",
        "[admin]",
        "[cdr]",
        "[log]",
        "[policy]",
        "[[trunk]]",
        "[trunk.credentials]",
        "[[route]]",
        "#[teams]",
        "#[teams.resolve]",
    ] {
        assert!(
            example.lines().any(|l| l == section),
            "example lacks {section}"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "example.toml", &example);
    let out = portcullis(&["check-config", &file]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with(&format!("{file}: ok (")), "{stdout}");
}

#[test]
fn fully_enabled_example_needs_its_files_or_no_files() {
    let example = text(&portcullis(&["generate-config"]).stdout);
    let full = enable_all(&example);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "full.toml", &full);

    let out = portcullis(&["check-config", "--no-files", &file]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("teams on"),
        "{}",
        text(&out.stdout)
    );

    // With file checks, every certificate, key and CA path is reported (all of them, each
    // with its position), and the status is 1.
    let out = portcullis(&["check-config", &file]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with(&format!("{file}:")))
        .collect();
    let expect = [
        "sip.listener[2].cert",
        "sip.listener[2].key",
        "sip.listener[3].cert",
        "sip.listener[3].key",
        "sip.listener[3].client_ca",
        "teams.cert_chain",
        "teams.key",
        "teams.trusted_roots",
    ];
    assert_eq!(lines.len(), expect.len(), "{stderr}");
    for (line, path) in lines.iter().zip(expect) {
        let rest = line.strip_prefix(&format!("{file}:")).unwrap_or("");
        let mut parts = rest.splitn(3, ':');
        let l: usize = parts
            .next()
            .and_then(|v| v.parse().ok())
            .expect("line number");
        let c: usize = parts.next().and_then(|v| v.parse().ok()).expect("column");
        let msg = parts.next().unwrap_or("");
        assert!(msg.starts_with(&format!(" {path}: cannot read")), "{line}");
        // The column points at the quoted file name on that line.
        let src_line = full.lines().nth(l - 1).expect("line exists");
        assert_eq!(
            src_line.chars().nth(c - 1),
            Some('"'),
            "{line} -> {src_line:?}"
        );
    }
    assert!(stderr.contains("8 error(s)"), "{stderr}");
}

#[test]
fn check_config_reports_every_error_with_file_line_col() {
    let src = "\
[[sip.listener]]
transport = \"udp\"
address = \"127.0.0.1:5060\"

[media]
advertised_ip = \"127.0.0.1\"
port_min = 30001
cores = [0]

[[trunk]]
name = \"a\"
address = \"127.0.0.1:5070\"
acl = [\"10.0.0.1/8\"]

[[route]]
name = \"r\"
from = [\"a\"]
targets = [\"b\"]
";
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "bad.toml", src);
    let out = portcullis(&["check-config", &file]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let expected = [
        format!("{file}:7:12: media.port_min: "),
        format!("{file}:13:8: trunk[0].acl[0]: "),
        format!("{file}:18:12: route[0].targets[0]: unknown trunk \"b\""),
    ];
    let lines: Vec<&str> = stderr.lines().collect();
    for (line, want) in lines.iter().zip(&expected) {
        assert!(
            line.starts_with(want.as_str()),
            "{line:?} should start with {want:?}"
        );
    }
    assert_eq!(lines.get(3).copied(), Some("3 error(s)"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn check_config_syntax_error_and_missing_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "syntax.toml",
        "[node]\nname = \"x\"\nfqdn = = 1\n",
    );
    let out = portcullis(&["check-config", &file]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with(&format!("{file}:3:")),
        "{}",
        text(&out.stderr)
    );

    let out = portcullis(&["check-config", "/nonexistent/portcullis.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read /nonexistent/portcullis.toml"));
}

#[test]
fn run_refuses_a_broken_config_before_starting() {
    // `run` with a good config starts the appliance and keeps running: that path is
    // exercised by the sipp tests (run_readme.rs uses the embedded default).
    let dir = tempfile::tempdir().expect("tempdir");
    let default = text(&portcullis(&["default-config"]).stdout);
    assert_eq!(default, portcullis::config::DEFAULT_TOML);

    let bad = write(dir.path(), "bad.toml", "[node]\nnmae = \"x\"\n");
    let out = portcullis(&["run", "--config", &bad]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with(&format!("{bad}:2:1: node.nmae: unknown field")),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn version_prints_the_crate_version() {
    let out = portcullis(&["version"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        format!("portcullis {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let out = portcullis(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_config_warns_of_a_route_mixing_bypass_and_anchored_trunks() {
    let base = "\
[[sip.listener]]
transport = \"udp\"
address = \"127.0.0.1:5060\"

[media]
advertised_ip = \"127.0.0.1\"

[[trunk]]
name = \"a\"
address = \"127.0.0.1:5070\"
media = \"bypass\"

[[trunk]]
name = \"b\"
address = \"127.0.0.1:5080\"
media = \"B_MEDIA\"

[[route]]
name = \"r\"
from = [\"a\"]
targets = [\"b\"]
";
    let dir = tempfile::tempdir().expect("tempdir");
    let mixed = write(dir.path(), "mixed.toml", &base.replace("B_MEDIA", "srtp"));
    let out = portcullis(&["check-config", "--no-files", &mixed]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "{mixed}: warning: route \"r\" mixes media \"bypass\" trunks (a) with anchored ones (b)"
        )),
        "{stdout}"
    );
    let all = write(dir.path(), "all.toml", &base.replace("B_MEDIA", "bypass"));
    let out = portcullis(&["check-config", "--no-files", &all]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stdout).contains("warning"),
        "{}",
        text(&out.stdout)
    );
}

/// The admin token on the `token = "..."` line of a generated example.
fn example_token(example: &str) -> String {
    let line = example
        .lines()
        .find(|l| l.starts_with("#token = "))
        .expect("a token line in the example");
    line.trim_start_matches("#token = ")
        .trim_matches('"')
        .to_owned()
}

#[test]
fn generated_tokens_are_fresh_random_hex() {
    let a = example_token(&text(&portcullis(&["generate-config"]).stdout));
    let b = example_token(&text(&portcullis(&["generate-config"]).stdout));
    let out = portcullis(&["generate-token"]);
    assert!(out.status.success());
    let c = text(&out.stdout).trim().to_owned();
    for t in [&a, &b, &c] {
        assert_eq!(t.len(), 64, "{t}");
        assert!(t.bytes().all(|x| x.is_ascii_hexdigit()), "{t}");
        assert!(!t.contains("replace"), "{t}");
    }
    assert!(a != b && b != c && a != c, "every token is drawn afresh");
}

//! docs/teams.md: the example configuration passes `portcullis check-config`, with
//! test certificates (rcgen CA → SBC leaf) in place of the /etc paths, and with
//! `--no-files` as written; a certificate for another name is refused.

use std::path::Path;
use std::process::{Command, Output};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

const DOC: &str = include_str!("../../docs/teams.md");
const MARKER: &str = "<!-- teams-example -->";

fn portcullis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .output()
        .expect("run the portcullis binary")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The ```toml block right after the marker.
fn example() -> String {
    let after = DOC
        .split_once(MARKER)
        .expect("docs/teams.md has the teams-example marker")
        .1;
    let body = after
        .trim_start()
        .strip_prefix("```toml\n")
        .expect("a ```toml block follows the marker");
    body.split_once("\n```")
        .expect("the toml block is closed")
        .0
        .to_owned()
}

/// Writes a test CA (as the "Microsoft roots") and a leaf for `name` signed by it;
/// returns (fullchain, key, roots) paths.
fn certificates(dir: &Path, name: &str) -> (String, String, String) {
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec![name.to_owned()])
        .expect("leaf params")
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .expect("leaf cert");
    let chain = dir.join("chain.pem");
    let key = dir.join("leaf.key");
    let roots = dir.join("roots.pem");
    std::fs::write(&chain, format!("{}{}", leaf.pem(), ca_cert.pem())).expect("chain");
    std::fs::write(&key, leaf_key.serialize_pem()).expect("key");
    std::fs::write(&roots, ca_cert.pem()).expect("roots");
    let s = |p: &Path| p.display().to_string();
    (s(&chain), s(&key), s(&roots))
}

fn with_files(example: &str, chain: &str, key: &str, roots: &str) -> String {
    let out = example
        .replace("/etc/portcullis/tls/sbc1.example.com.fullchain.pem", chain)
        .replace("/etc/portcullis/tls/sbc1.example.com.key", key)
        .replace("/etc/portcullis/tls/microsoft-roots.pem", roots);
    assert!(
        !out.contains("/etc/portcullis/tls/"),
        "every path replaced:\n{out}"
    );
    out
}

#[test]
fn example_in_teams_guide_passes_check_config() {
    let ex = example();
    assert!(ex.contains("[teams]") && ex.contains("targets = [\"teams\"]"));
    let dir = tempfile::tempdir().expect("tempdir");
    let (chain, key, roots) = certificates(dir.path(), "sbc1.example.com");
    let file = dir.path().join("teams.toml");
    std::fs::write(&file, with_files(&ex, &chain, &key, &roots)).expect("write");
    let file = file.display().to_string();
    let out = portcullis(&["check-config", &file]);
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("teams on"),
        "{}",
        text(&out.stdout)
    );

    // As written (paths under /etc that this machine lacks), with --no-files.
    let verbatim = dir.path().join("verbatim.toml");
    std::fs::write(&verbatim, &ex).expect("write");
    let verbatim = verbatim.display().to_string();
    let out = portcullis(&["check-config", "--no-files", &verbatim]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn certificate_for_another_name_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (chain, key, roots) = certificates(dir.path(), "other.example.org");
    let file = dir.path().join("teams.toml");
    std::fs::write(&file, with_files(&example(), &chain, &key, &roots)).expect("write");
    let file = file.display().to_string();
    let out = portcullis(&["check-config", &file]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("teams") && stderr.contains("sbc1.example.com"),
        "{stderr}"
    );
}

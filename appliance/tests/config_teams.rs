//! Provisioning of `[teams]`: real certificate files load; defaults; the certificate
//! must name the SBC FQDN and match its key; file contents are checked unless file checks
//! are off (`check-config --no-files`).

mod common_config;

use std::path::Path;

use portcullis::config::{Config, LoadOptions};

use common_config::*;

fn teams_config(dir: &Path) -> String {
    let (cert, key) = write_cert(dir, "sbc.example.com");
    let (roots, _) = write_cert(dir, "root.test");
    let (ca, _) = write_cert(dir, "partner-ca.test");
    format!(
        r#"
[node]
name = "sbc"
fqdn = "sbc.example.com"

[[sip.listener]]
transport = "udp"
address = "127.0.0.1:5060"

[[sip.listener]]
transport = "mtls"
address = "127.0.0.1:5061"
cert = "{cert}"
key = "{key}"
client_ca = "{ca}"
client_names = ["sip.pstnhub.microsoft.com"]

[media]
advertised_ip = "127.0.0.1"
cores = [0, 1]

[[trunk]]
name = "pbx"
address = "127.0.0.1:5070"

[[route]]
name = "pbx-to-teams"
from = ["pbx"]
called_prefix = "+"
targets = ["teams"]

[[route]]
name = "teams-to-pbx"
from = ["teams"]
targets = ["pbx"]

[teams]
sbc_fqdn = "SBC.example.com"
cert_chain = "{cert}"
key = "{key}"
trusted_roots = "{roots}"
options_interval = "30s"
miss_threshold = 2

[teams.resolve]
"sip.pstnhub.microsoft.com" = "127.0.0.1:15061"
"sip2.pstnhub.microsoft.com" = "127.0.0.1:15062"
"#
    )
}

#[test]
fn teams_with_real_certificate_files_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = teams_config(dir.path());
    let cfg = load(&src).unwrap_or_else(|d| panic!("{d:#?}"));
    let teams = cfg.teams.as_ref().expect("teams");
    assert_eq!(teams.sbc_fqdn.as_str(), "sbc.example.com");
    let proxies: Vec<String> = teams.proxies.iter().map(ToString::to_string).collect();
    assert_eq!(
        proxies,
        [
            "sip.pstnhub.microsoft.com:5061",
            "sip2.pstnhub.microsoft.com:5061",
            "sip3.pstnhub.microsoft.com:5061"
        ]
    );
    assert_eq!(teams.options_interval.as_secs(), 30);
    assert_eq!(teams.miss_threshold, 2);
    assert_eq!(teams.resolve.len(), 2);
    let mtls = cfg.sip.listeners.get(1).expect("mtls listener");
    assert_eq!(mtls.client_auth.as_ref().map(|c| c.names.len()), Some(1));
    let pbx = cfg.trunk("pbx").expect("pbx");
    assert!(cfg
        .route_for(&pbx.name, "+15551234")
        .is_some_and(|r| r.targets[0].is_teams()));
}

#[test]
fn teams_defaults_and_file_content_checks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = teams_config(dir.path());
    // Defaults when the optional keys are left out.
    let trimmed = src.replace("options_interval = \"30s\"\nmiss_threshold = 2\n", "");
    let cfg = load(&trimmed).unwrap_or_else(|d| panic!("{d:#?}"));
    let teams = cfg.teams.expect("teams");
    assert_eq!(
        (teams.options_interval.as_secs(), teams.miss_threshold),
        (60, 3)
    );
    // A key file where a certificate is expected, a missing roots file, a bad resolve entry.
    let cert_path = dir.path().join("sbc.example.com.crt").display().to_string();
    let key_path = dir.path().join("sbc.example.com.key").display().to_string();
    let roots_path = dir.path().join("root.test.crt").display().to_string();
    let bad = src
        .replace(
            &format!("cert_chain = \"{cert_path}\""),
            &format!("cert_chain = \"{key_path}\""),
        )
        .replace(&roots_path, "/nonexistent/roots.pem")
        .replace("\"127.0.0.1:15062\"", "\"localhost\"")
        .replace(
            "\"sip.pstnhub.microsoft.com\" =",
            "\"sip.pstnhub.example.com\" =",
        );
    let d = errors(&bad);
    let paths: Vec<&str> = d.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "teams.cert_chain",
            "teams.trusted_roots",
            "teams.resolve.\"sip.pstnhub.example.com\"",
            "teams.resolve.\"sip2.pstnhub.microsoft.com\""
        ],
        "{d:#?}"
    );
    assert!(
        d[0].message.contains("holds no PEM certificate"),
        "{}",
        d[0]
    );
    // Without file checks the same file loads (check-config --no-files).
    let no_files = LoadOptions {
        check_files: false,
        ..opts()
    };
    let fixed = bad
        .replace("\"localhost\"", "\"127.0.0.1:15062\"")
        .replace("pstnhub.example.com", "pstnhub.microsoft.com");
    Config::from_toml(&fixed, Path::new("/"), &no_files).unwrap_or_else(|d| panic!("{d:#?}"));
}

#[test]
fn teams_certificate_must_name_the_sbc_fqdn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = teams_config(dir.path()).replace(
        "sbc_fqdn = \"SBC.example.com\"",
        "sbc_fqdn = \"other.example.com\"",
    );
    let d = errors(&src);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].path, "teams.cert_chain");
    assert!(
        d[0].message.contains("not valid for other.example.com"),
        "{}",
        d[0]
    );
    // A wildcard certificate covers the name.
    let (wild, wild_key) = write_cert(dir.path(), "*.example.com");
    let cert = dir.path().join("sbc.example.com.crt").display().to_string();
    let key = dir.path().join("sbc.example.com.key").display().to_string();
    let src = src
        .replace(
            &format!("cert_chain = \"{cert}\""),
            &format!("cert_chain = \"{wild}\""),
        )
        .replace(
            &format!("key = \"{key}\"\ntrusted_roots"),
            &format!("key = \"{wild_key}\"\ntrusted_roots"),
        );
    load(&src).unwrap_or_else(|d| panic!("{d:#?}"));
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = teams_config(dir.path());
    let (_, other_key) = write_cert(dir.path(), "other.example.com");
    let key = dir.path().join("sbc.example.com.key").display().to_string();
    let d = errors(&src.replace(&key, &other_key));
    let paths: Vec<&str> = d.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["sip.listener[1].key", "teams.key"], "{d:#?}");
    for e in &d {
        assert!(
            e.message.contains(&other_key) && e.message.contains("does not match"),
            "{e}"
        );
    }
    // Without file checks it is not looked at (check-config --no-files).
    let no_files = LoadOptions {
        check_files: false,
        ..opts()
    };
    Config::from_toml(&src.replace(&key, &other_key), Path::new("/"), &no_files)
        .unwrap_or_else(|d| panic!("{d:#?}"));
}

//! `[ha]`: the checked model, and every refusal names its key with line and column.

mod common_config;

use std::path::Path;
use std::time::Duration;

use portcullis::config::{Config, Diagnostic, HaRole, HostInfo, LoadOptions};

use common_config::{opts, BASE};

fn load(ha: &str) -> Result<Config, Vec<Diagnostic>> {
    let src = format!("{BASE}\n[ha]\n{ha}");
    Config::from_toml(&src, Path::new("/etc/portcullis"), &opts())
}

const GOOD: &str = r#"role = "standby"
peer = "sbc-a"
redis_url = "redis://127.0.0.1:6379/0"
key_file = "ha.key"
"#;

#[test]
fn defaults_and_paths() {
    let c = load(GOOD).unwrap_or_else(|d| panic!("{d:#?}"));
    let h = c.ha.expect("[ha]");
    assert_eq!(h.role, HaRole::Standby);
    assert_eq!(h.key_file, Path::new("/etc/portcullis/ha.key"));
    assert_eq!(h.key_prefix, "portcullis:");
    assert_eq!(h.queue, 20_000);
    assert_eq!(h.state_ttl, Duration::from_secs(7200));
    assert_eq!(h.media_refresh, Duration::from_secs(10));
    assert_eq!(h.redis_timeout, Duration::from_secs(1));
    assert!(
        load("").is_err(),
        "role, peer, redis_url, key_file are required"
    );
    let c = Config::from_toml(
        BASE,
        Path::new("/etc/portcullis"),
        &LoadOptions {
            check_files: true,
            host: HostInfo::with_cpus(4),
        },
    )
    .unwrap();
    assert!(c.ha.is_none());
}

/// The single error of `[ha]` + `extra` lines replacing the good ones' keys.
fn error(replace: (&str, &str)) -> Diagnostic {
    let ha = GOOD.replace(replace.0, replace.1);
    let src = format!("{BASE}\n[ha]\n{ha}");
    let d = load(&ha).expect_err("refused");
    assert_eq!(d.len(), 1, "{d:#?}");
    let e = d.into_iter().next().unwrap();
    let at = e.location.expect("a position");
    let line = src.lines().nth(at.line - 1).unwrap_or("");
    assert!(
        line.starts_with("[ha]") || line.contains(e.path.trim_start_matches("ha.")),
        "{e:?} points at {line:?}"
    );
    e
}

#[test]
fn refusals_name_their_key() {
    let e = error(("redis://127.0.0.1:6379/0", "http://127.0.0.1:6379"));
    assert_eq!(e.path, "ha.redis_url", "{e:?}");
    let e = error(("key_file = \"ha.key\"", "key_file = \"ha.key\"\nqueue = 1"));
    assert_eq!(e.path, "ha.queue");
    let e = error((
        "key_file = \"ha.key\"",
        "key_file = \"ha.key\"\nmedia_refresh = \"3h\"",
    ));
    assert_eq!(e.path, "ha.media_refresh");
    let e = error((
        "key_file = \"ha.key\"",
        "key_file = \"ha.key\"\nredis_ca_file = \"ca.pem\"",
    ));
    assert_eq!(e.path, "ha.redis_ca_file");
    let e = error(("role = \"standby\"", "role = \"primary\""));
    assert_eq!(e.path, "ha.role");
    let e = error(("peer = \"sbc-a\"", "peer = \"sbc a\""));
    assert_eq!(e.path, "ha.peer");
    let e = error((
        "key_file = \"ha.key\"",
        "key_file = \"ha.key\"\nstate_ttl = \"5s\"",
    ));
    assert_eq!(e.path, "ha.state_ttl");
    let e = error(("key_file = \"ha.key\"", "key_file = \"ha.key\"\nsecret = 1"));
    assert!(e.message.contains("unknown field"), "{e:?}");
}

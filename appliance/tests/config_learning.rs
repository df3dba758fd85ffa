//! Endpoint learning keys: `[[trunk]]` and `[teams]` `endpoint_learning` / `relearn_after`,
//! `[media] learning_window`. Defaults, values carried to the engine's trunks and the
//! data plane, and every limit refused with its path and the value's line:col.

use std::path::Path;
use std::time::Duration;

use portcullis::config::{Config, Diagnostic, EndpointLearning, HostInfo, LineCol, LoadOptions};
use portcullis::runtime::convert::{dataplane_config, engine_config};
use portcullis_engine::config::EndpointLearning as Engine;

fn opts(check_files: bool) -> LoadOptions {
    LoadOptions {
        check_files,
        host: HostInfo::with_cpus(4),
    }
}

fn load(src: &str) -> Result<Config, Vec<Diagnostic>> {
    Config::from_toml(src, Path::new("/nonexistent-base"), &opts(false))
}

fn pos(src: &str, needle: &str) -> LineCol {
    let off = src
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the source"));
    LineCol::from_offset(src, off)
}

const BASE: &str = r#"
[[sip.listener]]
transport = "udp"
address = "127.0.0.1:5060"

[[sip.listener]]
transport = "tls"
address = "127.0.0.1:5061"
cert = "/etc/sbc.crt"
key = "/etc/sbc.key"

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

const TEAMS: &str = r#"
[teams]
sbc_fqdn = "sbc.example.com"
cert_chain = "/etc/sbc.crt"
key = "/etc/sbc.key"
trusted_roots = "/etc/roots.pem"
proxies = ["127.0.0.1:15061"]
"#;

#[test]
fn defaults_are_heuristic_no_rebinding_and_a_three_second_window() {
    let cfg = load(&format!("{BASE}{TEAMS}")).unwrap_or_else(|d| panic!("{d:#?}"));
    for t in &cfg.trunks {
        assert_eq!(t.learning.endpoint_learning, EndpointLearning::Heuristic);
        assert_eq!(t.learning.relearn_after, None);
    }
    let teams = cfg.teams.as_ref().expect("teams");
    assert_eq!(
        teams.learning.endpoint_learning,
        EndpointLearning::Heuristic
    );
    assert_eq!(cfg.media.learning_window, Duration::from_secs(3));
    assert_eq!(
        dataplane_config(&cfg).learning_window,
        Duration::from_secs(3)
    );
}

#[test]
fn values_reach_the_engine_trunks_and_the_data_plane() {
    let src = BASE
        .replace(
            "address = \"127.0.0.1:5070\"",
            "address = \"127.0.0.1:5070\"\nendpoint_learning = \"strict\"",
        )
        .replace(
            "address = \"127.0.0.1:5080\"",
            "address = \"127.0.0.1:5080\"\nendpoint_learning = \"delayed\"\nrelearn_after = \"5s\"",
        )
        .replace("cores = [0]", "cores = [0]\nlearning_window = \"1500ms\"")
        + &TEAMS.replace("proxies", "endpoint_learning = \"off\"\nproxies");
    let cfg = load(&src).unwrap_or_else(|d| panic!("{d:#?}"));
    assert_eq!(cfg.media.learning_window, Duration::from_millis(1500));
    assert_eq!(
        dataplane_config(&cfg).learning_window,
        Duration::from_millis(1500)
    );
    let ec = engine_config(&cfg).expect("engine config");
    let by_name = |n: &str| {
        ec.trunks
            .iter()
            .find(|t| t.name == n)
            .unwrap_or_else(|| panic!("trunk {n}"))
            .learning
    };
    assert_eq!(by_name("a").endpoint_learning, Engine::Strict);
    assert_eq!(by_name("a").relearn_after, None);
    assert_eq!(by_name("b").endpoint_learning, Engine::Delayed);
    assert_eq!(by_name("b").relearn_after, Some(Duration::from_secs(5)));
    assert_eq!(by_name("teams").endpoint_learning, Engine::Off);
}

/// Every limit, with its path and position.
#[test]
fn limits_are_refused_with_path_and_position() {
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        // (anchor, replacement, path, value, message)
        (
            "address = \"127.0.0.1:5070\"",
            "address = \"127.0.0.1:5070\"\nendpoint_learning = \"sometimes\"",
            "trunk[0].endpoint_learning",
            "\"sometimes\"",
            "unknown variant `sometimes`",
        ),
        (
            "address = \"127.0.0.1:5070\"",
            "address = \"127.0.0.1:5070\"\nrelearn_after = \"500ms\"",
            "trunk[0].relearn_after",
            "\"500ms\"",
            "shorter than the minimum",
        ),
        (
            "address = \"127.0.0.1:5070\"",
            "address = \"127.0.0.1:5070\"\nrelearn_after = \"soon\"",
            "trunk[0].relearn_after",
            "\"soon\"",
            "not a duration",
        ),
        (
            "address = \"127.0.0.1:5080\"",
            "address = \"127.0.0.1:5080\"\nendpoint_learning = \"strict\"\nrelearn_after = \"5s\"",
            "trunk[1].relearn_after",
            "\"5s\"",
            "NAT rebinding needs a learning endpoint_learning",
        ),
        (
            "cores = [0]",
            "cores = [0]\nlearning_window = \"100ms\"",
            "media.learning_window",
            "\"100ms\"",
            "shorter than the minimum",
        ),
        (
            "cores = [0]",
            "cores = [0]\nlearning_window = \"1m\"",
            "media.learning_window",
            "\"1m\"",
            "longer than the maximum",
        ),
        (
            "proxies",
            "endpoint_learning = \"off\"\nrelearn_after = \"5s\"\nproxies",
            "teams.relearn_after",
            "\"5s\"",
            "NAT rebinding needs a learning endpoint_learning",
        ),
    ];
    for (anchor, with, path, value, says) in cases {
        let full = format!("{BASE}{TEAMS}");
        assert!(full.contains(anchor));
        let src = full.replacen(anchor, with, 1);
        let d = load(&src).err().unwrap_or_else(|| panic!("{path}: loaded"));
        let hit = d
            .iter()
            .find(|e| e.path == *path)
            .unwrap_or_else(|| panic!("no error at {path}: {d:#?}"));
        assert!(hit.message.contains(says), "{path}: {hit}");
        assert_eq!(hit.location, Some(pos(&src, value)), "{path}: {hit}");
    }
}

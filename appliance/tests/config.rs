//! Provisioning: the embedded default and the generated example load; syntax, type and
//! semantic errors carry the TOML path and the line:col of the offending value; every
//! semantic error in a file is reported. Each semantic check is in `config_semantic.rs`,
//! `[teams]` in `config_teams.rs`.

mod common_config;

use std::path::Path;

use portcullis::config::{
    Config, HostInfo, LoadOptions, NumberMatch, Transport, DEFAULT_TOML, EXAMPLE_TOML,
};

use common_config::*;

#[test]
fn embedded_default_loads_and_relays_left_and_right() {
    let cfg = Config::from_toml(DEFAULT_TOML, Path::new("."), &opts()).expect("default config");
    let l = &cfg.sip.listeners;
    assert_eq!(l.len(), 2);
    assert!(l
        .iter()
        .all(|l| l.address == "127.0.0.1:5060".parse().expect("addr")));
    assert_eq!(l.first().map(|l| l.transport), Some(Transport::Udp));
    assert_eq!(l.get(1).map(|l| l.transport), Some(Transport::Tcp));
    let left = cfg.trunk("left").expect("left");
    let right = cfg.trunk("right").expect("right");
    assert_eq!(left.address.to_string(), "127.0.0.1:5070");
    assert_eq!(right.address.to_string(), "127.0.0.1:5080");
    let to_right = cfg.route_for(&left.name, "1000").expect("route from left");
    assert_eq!(to_right.targets, vec![right.name.clone()]);
    let to_left = cfg
        .route_for(&right.name, "2000")
        .expect("route from right");
    assert_eq!(to_left.targets, vec![left.name.clone()]);
    assert!(cfg.media.advertised_ip.is_loopback() && cfg.media.bind_ip.is_loopback());
    assert!(cfg.admin.listen.ip().is_loopback());
    assert!(
        cfg.cdr.path.is_relative(),
        "the default CDR path works without root"
    );
    // "auto:2": two cores on a big machine, one on a single-CPU machine.
    assert_eq!(cfg.media.cores.as_slice(), &[0, 1]);
    let one = LoadOptions {
        check_files: true,
        host: HostInfo::with_cpus(1),
    };
    let cfg1 = Config::from_toml(DEFAULT_TOML, Path::new("."), &one).expect("1 cpu");
    assert_eq!(cfg1.media.cores.as_slice(), &[0]);
    // And on the real machine.
    Config::embedded_default(&LoadOptions::default()).expect("default on this host");
}

#[test]
fn generated_example_loads() {
    let cfg = Config::from_toml(EXAMPLE_TOML, Path::new("/etc/portcullis"), &opts())
        .expect("example config");
    assert!(cfg.teams.is_none(), "teams is disabled in the example");
    let route = cfg.routes.first().expect("route");
    assert!(matches!(route.called, NumberMatch::Regex(_)));
    assert!(route.called.matches("0123456789") && !route.called.matches("123"));
    assert_eq!(route.translate_called("0123456789"), "+33123456789");
    assert_eq!(route.translate_calling("4321"), "+33198764321");
    assert_eq!(
        cfg.routes
            .get(1)
            .map(|r| r.translate_called("+331987651234")),
        Some("1234".into())
    );
    assert_eq!(
        cfg.routes
            .get(1)
            .map(|r| r.translate_calling("+33612345678")),
        Some("0612345678".into())
    );
    let cred = cfg
        .trunk("carrier")
        .and_then(|t| t.credentials.as_ref())
        .expect("credentials");
    assert_eq!(cred.password.expose(), "secret");
    assert!(
        !format!("{cred:?}").contains("secret"),
        "Debug redacts secrets"
    );
}

#[test]
fn unknown_field_reports_line_and_column() {
    let src = BASE.replace("[media]\n", "[media]\nport_minimum = 3\n");
    let d = errors(&src);
    assert_eq!(d.len(), 1, "{d:?}");
    let e = &d[0];
    assert_eq!(e.location, Some(pos(&src, "port_minimum")));
    assert!(e.message.contains("unknown field `port_minimum`"), "{e}");
    assert_eq!(e.path, "media.port_minimum");
}

#[test]
fn type_error_reports_line_and_column() {
    let src = BASE.replace("cores = [0]", "cores = [0]\nport_min = \"thirty thousand\"");
    let d = errors(&src);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].location, Some(pos(&src, "\"thirty thousand\"")));
    assert_eq!(d[0].path, "media.port_min");
    assert!(d[0].message.contains("invalid type"), "{}", d[0]);

    let src = BASE.replace("transport = \"udp\"", "transport = \"sctp\"");
    let d = errors(&src);
    assert_eq!(d[0].location, Some(pos(&src, "\"sctp\"")));
    assert!(d[0].message.contains("unknown variant `sctp`"), "{}", d[0]);
}

#[test]
fn syntax_error_reports_line_and_column() {
    let src = BASE.replace("name = \"b\"", "name = \"b");
    let d = errors(&src);
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].location.map(|l| l.line),
        Some(pos(&src, "name = \"b").line)
    );
}

/// `media.fast_path` takes off, auto and xdp (off by default); anything else is a type
/// error at its position.
#[test]
fn fast_path_modes() {
    use portcullis::config::FastPathMode;
    assert_eq!(load(BASE).unwrap().media.fast_path, FastPathMode::Off);
    for (v, m) in [
        ("auto", FastPathMode::Auto),
        ("xdp", FastPathMode::Xdp),
        ("off", FastPathMode::Off),
    ] {
        let cfg = load(&apply(&[(
            "cores = [0]",
            &format!("cores = [0]\nfast_path = \"{v}\""),
        )]))
        .unwrap_or_else(|d| panic!("{d:#?}"));
        assert_eq!(cfg.media.fast_path, m);
    }
    let src = apply(&[("cores = [0]", "cores = [0]\nfast_path = \"dpdk\"")]);
    let d = errors(&src);
    assert_eq!(d[0].location, Some(pos(&src, "\"dpdk\"")), "{d:#?}");
}

/// Media bound to `::` is dual stack: it may advertise IPv4 (the data plane latches and
/// reports IPv4 sources as IPv4, `dataplane/worker/tests/ipv6.rs`).
#[test]
fn media_on_the_ipv6_wildcard_may_advertise_ipv4() {
    let cfg = load(&apply(&[("cores = [0]", "cores = [0]\nbind_ip = \"::\"")]))
        .unwrap_or_else(|d| panic!("{d:#?}"));
    assert!(cfg.media.bind_ip.is_ipv6() && cfg.media.bind_ip.is_unspecified());
    assert!(cfg.media.advertised_ip.is_ipv4());
    let cfg = load(&apply(&[
        (
            "advertised_ip = \"127.0.0.1\"",
            "advertised_ip = \"2001:db8::5\"",
        ),
        ("cores = [0]", "cores = [0]\nbind_ip = \"::\""),
    ]))
    .unwrap_or_else(|d| panic!("{d:#?}"));
    assert!(cfg.media.advertised_ip.is_ipv6());
}

#[test]
fn all_errors_are_reported_in_file_order() {
    let src = apply(&[
        ("cores = [0]", "cores = [0]\nport_min = 30001"),
        ("name = \"b\"", "name = \"a\""),
        ("targets = [\"b\"]", "targets = [\"zz\"]"),
        ("[media]", "[admin]\ntoken = \"short\"\n\n[media]"),
    ]);
    let d = errors(&src);
    let paths: Vec<&str> = d.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "admin.token",
            "media.port_min",
            "trunk[1].name",
            "route[0].targets[0]"
        ],
        "{d:#?}"
    );
    assert!(d.windows(2).all(|w| w[0].location < w[1].location));
}

#[test]
fn no_listener_is_an_error() {
    let src = BASE.replace(
        "[[sip.listener]]\ntransport = \"udp\"\naddress = \"127.0.0.1:5060\"\n",
        "",
    );
    let d = errors(&src);
    assert!(
        d.iter()
            .any(|e| e.path == "sip" && e.message.contains("at least one")),
        "{d:?}"
    );
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_cert(dir.path(), "sbc.example.com");
    let src = BASE.replacen(
        "[[trunk]]",
        "[[sip.listener]]\ntransport = \"tls\"\naddress = \"127.0.0.1:5061\"\ncert = \"sbc.example.com.crt\"\nkey = \"sbc.example.com.key\"\n\n[cdr]\npath = \"cdr/x.jsonl\"\n\n[[trunk]]",
        1,
    );
    let file = dir.path().join("portcullis.toml");
    std::fs::write(&file, &src).expect("write");
    let cfg = Config::load(&file, &opts()).unwrap_or_else(|e| panic!("{e}"));
    let tls = cfg
        .sip
        .listeners
        .get(1)
        .and_then(|l| l.tls.clone())
        .expect("tls");
    assert_eq!(tls.cert, dir.path().join("sbc.example.com.crt"));
    assert_eq!(cfg.cdr.path, dir.path().join("cdr/x.jsonl"));
}

#[test]
fn config_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Config>();
    assert_send_sync::<std::sync::Arc<Config>>();
}

/// UDP and TCP on one port are two sockets: the admin API (TCP) may share a UDP
/// listener's port, not a TCP one's.
#[test]
fn admin_may_share_a_port_with_udp_only() {
    let src = apply(&[("[media]", "[admin]\nlisten = \"127.0.0.1:5060\"\n\n[media]")]);
    let cfg = load(&src).unwrap_or_else(|d| panic!("{d:#?}"));
    assert_eq!(cfg.admin.listen, "127.0.0.1:5060".parse().unwrap());
    assert_eq!(cfg.cdr.queue_capacity, 8192, "default");
    assert_eq!(cfg.log.buffer_lines, 16_384, "default");
    let other_ip = apply(&[
        ("[media]", "[admin]\nlisten = \"127.0.0.2:5062\"\n\n[media]"),
        (
            "[[trunk]]",
            "[[sip.listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:5062\"\n\n[[trunk]]",
        ),
    ]);
    assert!(load(&other_ip).is_ok(), "another address, another socket");
}

//! Provisioning: the embedded default and the generated example load; syntax, type and
//! semantic errors carry the TOML path and the line:col of the offending value; every
//! semantic error in a file is reported.

use std::path::Path;

use portcullis::config::{
    Config, Diagnostic, HostInfo, LineCol, LoadOptions, NumberMatch, Transport, DEFAULT_TOML,
    EXAMPLE_TOML,
};

/// A machine with 4 CPUs, so results do not depend on the test host.
fn opts() -> LoadOptions {
    LoadOptions {
        check_files: true,
        host: HostInfo::with_cpus(4),
    }
}

fn load(src: &str) -> Result<Config, Vec<Diagnostic>> {
    Config::from_toml(src, Path::new("/nonexistent-base"), &opts())
}

fn errors(src: &str) -> Vec<Diagnostic> {
    match load(src) {
        Ok(_) => panic!("expected errors, the config loaded:\n{src}"),
        Err(d) => d,
    }
}

/// Position of the first occurrence of `needle` in `src`.
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

/// Self-signed certificate and key for `name` written into `dir`.
fn write_cert(dir: &Path, name: &str) -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("rcgen");
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, ck.cert.pem()).expect("write cert");
    std::fs::write(&key, ck.key_pair.serialize_pem()).expect("write key");
    (cert.display().to_string(), key.display().to_string())
}

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

/// One semantic check: edits to BASE, the expected path, where the error points (a needle
/// whose first occurrence is the offending value) and a fragment of the message.
struct Case {
    edits: &'static [(&'static str, &'static str)],
    path: &'static str,
    at: &'static str,
    says: &'static str,
}

fn apply(edits: &[(&str, &str)]) -> String {
    let mut src = BASE.to_owned();
    for (from, to) in edits {
        assert!(src.contains(from), "edit anchor {from:?} missing");
        src = src.replacen(from, to, 1);
    }
    src
}

const CASES: &[Case] = &[
    Case {
        edits: &[("targets = [\"b\"]", "targets = [\"b\", \"nowhere\"]")],
        path: "route[0].targets[1]",
        at: "\"nowhere\"",
        says: "unknown trunk \"nowhere\"",
    },
    Case {
        edits: &[("from = [\"a\"]", "from = [\"ghost\"]")],
        path: "route[0].from[0]",
        at: "\"ghost\"",
        says: "unknown trunk",
    },
    Case {
        edits: &[("name = \"b\"", "name = \"a\"")],
        path: "trunk[1].name",
        at: "\"a\"\naddress = \"127.0.0.1:5080\"",
        says: "duplicate trunk name",
    },
    Case {
        edits: &[("cores = [0]", "cores = [0, 1, 2, 3]\nport_min = 30000\nport_max = 30199")],
        path: "media.port_max",
        at: "30199",
        says: "need at least 256",
    },
    Case {
        edits: &[("cores = [0]", "cores = [0]\nport_min = 30001")],
        path: "media.port_min",
        at: "30001",
        says: "odd",
    },
    Case {
        edits: &[("cores = [0]", "cores = [0, 9]")],
        path: "media.cores",
        at: "[0, 9]",
        says: "not online CPUs",
    },
    Case {
        edits: &[("cores = [0]", "cores = \"auto:0\"")],
        path: "media.cores",
        at: "\"auto:0\"",
        says: "auto:N",
    },
    Case {
        edits: &[("[[trunk]]", "[[sip.listener]]\ntransport = \"tls\"\naddress = \"127.0.0.1:5061\"\n\n[[trunk]]")],
        path: "sip.listener[1].cert",
        at: "[[sip.listener]]\ntransport = \"tls\"",
        says: "needs a certificate chain",
    },
    Case {
        edits: &[(
            "[[trunk]]",
            "[[sip.listener]]\ntransport = \"tls\"\naddress = \"127.0.0.1:5061\"\ncert = \"/nonexistent/sbc.crt\"\nkey = \"sbc.key\"\n\n[[trunk]]",
        )],
        path: "sip.listener[1].cert",
        at: "\"/nonexistent/sbc.crt\"",
        says: "cannot read certificate file /nonexistent/sbc.crt",
    },
    Case {
        edits: &[("[[trunk]]", "[[sip.listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:5060\"\nclient_ca = \"ca.pem\"\n\n[[trunk]]")],
        path: "sip.listener[1].client_ca",
        at: "\"ca.pem\"",
        says: "only mtls listeners",
    },
    Case {
        edits: &[("[[trunk]]", "[[sip.listener]]\ntransport = \"udp\"\naddress = \"127.0.0.1:5060\"\n\n[[trunk]]")],
        path: "sip.listener[1].address",
        at: "\"127.0.0.1:5060\"\n\n[[trunk]]",
        says: "same socket as sip.listener[0]",
    },
    Case {
        edits: &[("[[trunk]]", "[[sip.listener]]\ntransport = \"udp\"\naddress = \"0.0.0.0:5060\"\n\n[[trunk]]")],
        path: "sip.listener[1].address",
        at: "\"0.0.0.0:5060\"",
        says: "same socket as sip.listener[0]",
    },
    Case {
        edits: &[("[[trunk]]", "[[sip.listener]]\ntransport = \"udp\"\naddress = \"127.0.0.1:20010\"\n\n[[trunk]]")],
        path: "sip.listener[1].address",
        at: "\"127.0.0.1:20010\"",
        says: "inside the media port range 20000-29999",
    },
    Case {
        edits: &[("cores = [0]", "cores = [0]\nbind_ip = \"::1\"")],
        path: "media.bind_ip",
        at: "\"::1\"",
        says: "same address family as advertised_ip",
    },
    Case {
        edits: &[
            ("advertised_ip = \"127.0.0.1\"", "advertised_ip = \"2001:db8::5\""),
            ("cores = [0]", "cores = [0]\nbind_ip = \"0.0.0.0\""),
        ],
        path: "media.bind_ip",
        at: "\"0.0.0.0\"",
        says: "same address family as advertised_ip",
    },
    Case {
        // Media on `::` is dual stack: it takes the port on IPv4 addresses too.
        edits: &[
            ("cores = [0]", "cores = [0]\nbind_ip = \"::\""),
            ("[[trunk]]", "[[sip.listener]]\ntransport = \"udp\"\naddress = \"127.0.0.1:20010\"\n\n[[trunk]]"),
        ],
        path: "sip.listener[1].address",
        at: "\"127.0.0.1:20010\"",
        says: "inside the media port range 20000-29999",
    },
    Case {
        edits: &[("address = \"127.0.0.1:5070\"", "address = \"127.0.0.1:5070\"\nacl = [\"10.0.0.0/8\", \"10.1.2.3/16\"]")],
        path: "trunk[0].acl[1]",
        at: "\"10.1.2.3/16\"",
        says: "host bits set",
    },
    Case {
        edits: &[("address = \"127.0.0.1:5070\"", "address = \"127.0.0.1:5070\"\nacl = [\"10.0.0.0/40\"]")],
        path: "trunk[0].acl[0]",
        at: "\"10.0.0.0/40\"",
        says: "prefix length",
    },
    Case {
        edits: &[("from = [\"a\"]", "from = [\"a\"]\ncalled_regex = \"^(0[0-9\"")],
        path: "route[0].called_regex",
        at: "\"^(0[0-9\"",
        says: "invalid regex",
    },
    Case {
        edits: &[("from = [\"a\"]", "from = [\"a\"]\ntranslate_called = [{ regex = \"^0(\\\\d+)$\", replace = \"+33$2\" }]")],
        path: "route[0].translate_called[0].replace",
        at: "\"+33$2\"",
        says: "group $2",
    },
    Case {
        edits: &[("from = [\"a\"]", "from = [\"a\"]\ntranslate_calling = [{ strip_prefix = \"0\", add_prefix = \"+33\" }]")],
        path: "route[0].translate_calling[0]",
        at: "{ strip_prefix",
        says: "exactly one of",
    },
    Case {
        edits: &[("from = [\"a\"]", "from = [\"a\"]\ncalled_prefix = \"+33\"\ncalled_regex = \"^1\"")],
        path: "route[0].called_regex",
        at: "\"^1\"",
        says: "not both",
    },
    Case {
        edits: &[("from = [\"a\"]", "from = [\"teams\"]")],
        path: "route[0].from[0]",
        at: "\"teams\"",
        says: "no [teams] section",
    },
    Case {
        edits: &[("name = \"b\"", "name = \"teams\""), ("targets = [\"b\"]", "targets = [\"a\"]")],
        path: "trunk[1].name",
        at: "\"teams\"",
        says: "reserved",
    },
    Case {
        edits: &[("targets = [\"b\"]", "targets = [\"b\"]\n\n[[route]]\nname = \"r\"\nfrom = [\"b\"]\ntargets = [\"a\"]")],
        path: "route[1].name",
        at: "\"r\"\nfrom = [\"b\"]",
        says: "duplicate route name",
    },
    Case {
        edits: &[("[media]", "[admin]\ntoken = \"short\"\n\n[media]")],
        path: "admin.token",
        at: "\"short\"",
        says: "at least 16",
    },
    Case {
        edits: &[("[media]", "[admin]\nlisten = \"0.0.0.0:8080\"\n\n[media]")],
        path: "admin.listen",
        at: "\"0.0.0.0:8080\"",
        says: "set admin.token",
    },
    Case {
        edits: &[("[media]", "[media]\ninactivity_timeout = \"60\"")],
        path: "media.inactivity_timeout",
        at: "\"60\"",
        says: "with a unit",
    },
    Case {
        edits: &[("[media]", "[media]\nring_capacity = 1000")],
        path: "media.ring_capacity",
        at: "1000",
        says: "power of two",
    },
    Case {
        edits: &[("advertised_ip = \"127.0.0.1\"", "advertised_ip = \"127.0.0.300\"")],
        path: "media.advertised_ip",
        at: "\"127.0.0.300\"",
        says: "not an IP address",
    },
    Case {
        edits: &[("address = \"127.0.0.1:5080\"", "address = \"127.0.0.9\"")],
        path: "trunk[1].address",
        at: "\"127.0.0.9\"",
        says: "needs its port",
    },
    Case {
        edits: &[("address = \"127.0.0.1:5080\"", "targets = [{ address = \"127.0.0.1:5080\" }, { address = \"127.0.0.1:5080\", weight = 2 }]")],
        path: "trunk[1].targets[1].address",
        at: "\"127.0.0.1:5080\", weight",
        says: "listed twice",
    },
    Case {
        edits: &[("address = \"127.0.0.1:5080\"", "address = \"127.0.0.1:5080\"\nrecovery_count = 0 # rc")],
        path: "trunk[1].recovery_count",
        at: "0 # rc",
        says: "at least 1",
    },
    Case {
        edits: &[("[[trunk]]", "[dns]\nservers = [\"127.0.0.53\"]\n\n[[trunk]]")],
        path: "dns.servers[0]",
        at: "\"127.0.0.53\"",
        says: "not ip:port",
    },
    Case {
        edits: &[("address = \"127.0.0.1:5080\"", "address = \"127.0.0.1:5080\"\n[trunk.credentials]\nusername = \"u\"\npassword = \"p\"\nanswer_upstream = false")],
        path: "trunk[1].credentials",
        at: "[trunk.credentials]",
        says: "credentials unused",
    },
    Case {
        edits: &[("[media]", "[sip.session_timer]\nmin_se = \"60s\"\n\n[media]")],
        path: "sip.session_timer.min_se",
        at: "\"60s\"",
        says: "shorter than the minimum",
    },
    Case {
        edits: &[("[media]", "[sip.limits]\nper_connection_buffer = 1000\n\n[media]")],
        path: "sip.limits.per_connection_buffer",
        at: "1000",
        says: "at least one whole message",
    },
    // Admission limits.
    Case {
        edits: &[(
            "[media]",
            "[sip.limits]\nmax_transactions = 100\nmax_transactions_per_source = 500\n\n[media]",
        )],
        path: "sip.limits.max_transactions_per_source",
        at: "500",
        says: "must not exceed max_transactions",
    },
    // Load signalled to a load balancer (OPTIONS 503), and the drain it sees.
    Case {
        edits: &[(
            "[media]",
            "[sip.limits]\nmax_calls = 100\noverload_calls = 150\n\n[media]",
        )],
        path: "sip.limits.overload_calls",
        at: "150",
        says: "must not exceed max_calls (100)",
    },
    Case {
        edits: &[("[media]", "[sip.limits]\noverload_calls = 0 # never?\n\n[media]")],
        path: "sip.limits.overload_calls",
        at: "0 # never?",
        says: "must be at least 1",
    },
    Case {
        edits: &[(
            "[media]",
            "[sip]\ndrain_timeout = \"5s\"\ndrain_notice = \"10s\"\n\n[media]",
        )],
        path: "sip.drain_notice",
        at: "\"10s\"",
        says: "must not exceed drain_timeout",
    },
    Case {
        edits: &[("[media]", "[sip.limits]\nmax_transactions = 0 # zero\n\n[media]")],
        path: "sip.limits.max_transactions",
        at: "0 # zero",
        says: "at least 1",
    },
    Case {
        edits: &[("[[trunk]]", "[policy]\nunknown_source_window = \"10ms\"\n\n[[trunk]]")],
        path: "policy.unknown_source_window",
        at: "\"10ms\"",
        says: "shorter than the minimum",
    },
    Case {
        edits: &[("[[trunk]]", "[policy]\nunknown_source_budget = 0 # none\n\n[[trunk]]")],
        path: "policy.unknown_source_budget",
        at: "0 # none",
        says: "at least 1",
    },
    Case {
        edits: &[("[media]", "[sip.limits]\nmax_tcp_connections = 100\nmax_connections_per_source = 10\ntrunk_connection_reserve = 101\n\n[media]")],
        path: "sip.limits.trunk_connection_reserve",
        at: "101",
        says: "must not exceed max_tcp_connections (100)",
    },
    Case {
        edits: &[("[media]", "[sip.limits]\nheader_timeout = \"500ms\"\n\n[media]")],
        path: "sip.limits.header_timeout",
        at: "\"500ms\"",
        says: "shorter than the minimum",
    },
    Case {
        edits: &[("[media]", "[sip.limits]\nunknown_source_rate = 0\n\n[media]")],
        path: "sip.limits.unknown_source_rate",
        at: "0\n\n[media]",
        says: "must be at least 1",
    },
    Case {
        edits: &[
            ("[media]", "[admin]\nlisten = \"127.0.0.1:5062\"\n\n[media]"),
            ("[[trunk]]", "[[sip.listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:5062\"\n\n[[trunk]]"),
        ],
        path: "admin.listen",
        at: "\"127.0.0.1:5062\"\n\n[media]",
        says: "same TCP port as sip.listener[1] (tcp 127.0.0.1:5062)",
    },
    Case {
        edits: &[
            ("[media]", "[admin]\nlisten = \"[::]:5061\"\ntoken = \"0123456789abcdef\"\n\n[media]"),
            ("[[trunk]]", "[[sip.listener]]\ntransport = \"tcp\"\naddress = \"0.0.0.0:5061\"\n\n[[trunk]]"),
        ],
        path: "admin.listen",
        at: "\"[::]:5061\"",
        says: "same TCP port as sip.listener[1] (tcp 0.0.0.0:5061)",
    },
    Case {
        edits: &[("[media]", "[cdr]\nqueue_capacity = 8\n\n[media]")],
        path: "cdr.queue_capacity",
        at: "8\n",
        says: "between 16 and 1048576",
    },
    Case {
        edits: &[("[media]", "[log]\nbuffer_lines = 10\n\n[media]")],
        path: "log.buffer_lines",
        at: "10\n",
        says: "between 64 and 1048576",
    },
    Case {
        edits: &[("cores = [0]", "cores = [0]\nfast_path = \"xdp\"\ninterfaces = [\"eth0\", \"eth0\"]")],
        path: "media.interfaces[1]",
        at: "\"eth0\"]",
        says: "listed twice",
    },
    Case {
        edits: &[("cores = [0]", "cores = [0]\ninterfaces = [\"a-much-too-long-name\"]")],
        path: "media.interfaces[0]",
        at: "\"a-much-too-long-name\"",
        says: "is not an interface name",
    },
    Case {
        edits: &[("[[trunk]]", "[teams]\nsbc_fqdn = \"sbc.example.com\"\n\n[[trunk]]")],
        path: "teams.cert_chain",
        at: "[teams]",
        says: "needs the SBC certificate chain",
    },
];

#[test]
fn every_semantic_check_fires_with_its_path_and_position() {
    for case in CASES {
        let src = apply(case.edits);
        let d = errors(&src);
        let hit = d.iter().find(|e| e.path == case.path).unwrap_or_else(|| {
            panic!(
                "no error at {} for edits {:?}; got {d:#?}",
                case.path, case.edits
            )
        });
        assert!(
            hit.message.contains(case.says),
            "{}: {:?} lacks {:?}",
            case.path,
            hit.message,
            case.says
        );
        assert_eq!(
            hit.location,
            Some(pos(&src, case.at)),
            "position of {}: {hit}",
            case.path
        );
    }
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
fn config_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Config>();
    assert_send_sync::<std::sync::Arc<Config>>();
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

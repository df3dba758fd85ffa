//! Provisioning: every semantic check fires, with its TOML path and the line:col of the
//! offending value (one table of edits to a valid file).

mod common_config;

use common_config::*;

/// One semantic check: edits to BASE, the expected path, where the error points (a needle
/// whose first occurrence is the offending value) and a fragment of the message.
struct Case {
    edits: &'static [(&'static str, &'static str)],
    path: &'static str,
    at: &'static str,
    says: &'static str,
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

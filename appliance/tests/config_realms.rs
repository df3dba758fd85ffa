//! Interfaces and media realms in the configuration: realms and listeners by name, the
//! default realm of `[media]`, and every bad input with its path and line:col (unknown
//! realm or listener, a listener of another transport, overlapping ranges on one address,
//! a realm address not on this host, a route whose targets span realms).

use std::path::Path;

use portcullis::config::{Config, Diagnostic, HostInfo, LineCol, LoadOptions};

/// A machine with 4 CPUs and the addresses 192.0.2.1 and 2001:db8::1.
fn opts() -> LoadOptions {
    let mut host = HostInfo::with_cpus(4);
    host.addresses = Some(vec![
        "192.0.2.1".parse().unwrap(),
        "2001:db8::1".parse().unwrap(),
    ]);
    LoadOptions {
        check_files: true,
        host,
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

fn pos(src: &str, needle: &str) -> LineCol {
    let off = src
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the source"));
    LineCol::from_offset(src, off)
}

const BASE: &str = r#"
[[sip.listener]]
name = "outside"
transport = "udp"
address = "192.0.2.1:5060"

[[sip.listener]]
name = "inside"
transport = "udp"
address = "[2001:db8::1]:5060"

[[sip.listener]]
transport = "tcp"
address = "192.0.2.1:5060"

[media]
cores = [0]

[[media.realm]]
name = "outside"
bind_ip = "192.0.2.1"
port_min = 20000
port_max = 20999

[[media.realm]]
name = "inside"
bind_ip = "2001:db8::1"
port_min = 20000
port_max = 20999

[[trunk]]
name = "carrier"
address = "198.51.100.1:5060"
realm = "outside"
listener = "outside"

[[trunk]]
name = "pbx"
address = "[2001:db8::2]:5060"
realm = "inside"
listener = 1

[[route]]
name = "r"
from = ["carrier"]
targets = ["pbx"]
"#;

#[test]
fn realms_and_listeners_resolve_by_name_and_index() {
    let cfg = load(BASE).expect("loads");
    let names: Vec<_> = cfg.media.realms.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["outside", "inside"]);
    assert_eq!(
        cfg.media.advertised_ip,
        "192.0.2.1".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(
        cfg.media.realms[1].advertised_ip,
        "2001:db8::1".parse::<std::net::IpAddr>().unwrap()
    );
    let t = |n: &str| cfg.trunks.iter().find(|t| t.name.as_str() == n).unwrap();
    assert_eq!((t("carrier").realm, t("carrier").listener), (0, Some(0)));
    assert_eq!((t("pbx").realm, t("pbx").listener), (1, Some(1)));
    let dp = portcullis::runtime::convert::dataplane_config(&cfg);
    assert_eq!(dp.bind_ip, cfg.media.realms[0].bind_ip);
    assert_eq!(dp.realms.len(), 1);
    assert_eq!(dp.realms[0].bind_ip, cfg.media.realms[1].bind_ip);
    let ec = portcullis::runtime::convert::engine_config(&cfg).expect("engine config");
    assert_eq!(ec.trunks[1].realm.0, 1);
    assert_eq!(ec.trunks[1].listener, Some(1));
}

/// Without `[[media.realm]]` the `[media]` addresses are the one realm, `default`; with
/// both, `default` comes first.
#[test]
fn media_addresses_are_the_default_realm() {
    let plain = BASE
        .split("[[media.realm]]")
        .next()
        .unwrap()
        .replace("cores = [0]", "cores = [0]\nadvertised_ip = \"192.0.2.1\"");
    let plain = format!("{plain}\n[[trunk]]\nname = \"a\"\naddress = \"198.51.100.1:5060\"\n");
    let cfg = load(&plain).expect("loads");
    assert_eq!(cfg.media.realms.len(), 1);
    assert_eq!(cfg.media.realms[0].name, "default");
    let both = BASE.replace(
        "cores = [0]",
        "cores = [0]\nadvertised_ip = \"192.0.2.1\"\nport_min = 30000\nport_max = 30999",
    );
    let cfg = load(&both).expect("loads");
    let names: Vec<_> = cfg.media.realms.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["default", "outside", "inside"]);
}

#[test]
fn bad_realm_and_listener_references_are_errors_with_positions() {
    let src = BASE
        .replace("realm = \"inside\"", "realm = \"dmz\"")
        .replace("listener = \"outside\"", "listener = \"nowhere\"");
    let d = errors(&src);
    let realm = d
        .iter()
        .find(|e| e.path == "trunk[1].realm")
        .expect("realm");
    assert!(
        realm.message.contains("unknown media realm \"dmz\""),
        "{realm:?}"
    );
    assert!(realm.message.contains("outside, inside"), "{realm:?}");
    assert_eq!(realm.location, Some(pos(&src, "\"dmz\"")));
    let l = d
        .iter()
        .find(|e| e.path == "trunk[0].listener")
        .expect("listener");
    assert!(
        l.message.contains("no [[sip.listener]] \"nowhere\""),
        "{l:?}"
    );
    // Listener 2 is TCP, the trunk UDP.
    let src = BASE.replace("listener = 1", "listener = 2");
    let d = errors(&src);
    let l = d
        .iter()
        .find(|e| e.path == "trunk[1].listener")
        .expect("listener");
    assert!(
        l.message.contains("Tcp") && l.message.contains("Udp"),
        "{l:?}"
    );
    let src = BASE.replace("listener = 1", "listener = 7");
    assert!(errors(&src).iter().any(|e| e.path == "trunk[1].listener"));
}

#[test]
fn overlapping_realms_and_addresses_not_on_this_host_are_errors() {
    // Same address family wildcard over the outside realm's ports.
    let src = BASE.replace(
        "bind_ip = \"2001:db8::1\"",
        "bind_ip = \"0.0.0.0\"\nadvertised_ip = \"192.0.2.1\"",
    );
    let d = errors(&src);
    let e = d
        .iter()
        .find(|e| e.path == "media.realm[1].port_min")
        .expect("overlap");
    assert!(e.message.contains("overlap realm \"outside\""), "{e:?}");
    let src = BASE.replace("bind_ip = \"2001:db8::1\"", "bind_ip = \"2001:db8::99\"");
    let d = errors(&src);
    let e = d
        .iter()
        .find(|e| e.path == "media.realm[1].bind_ip")
        .expect("not here");
    assert!(
        e.message
            .contains("2001:db8::99 is not an address of this host")
            && e.message.contains("192.0.2.1, 2001:db8::1"),
        "{e:?}"
    );
    assert_eq!(e.location, Some(pos(&src, "\"2001:db8::99\"")));
    // Checked for another machine (--no-files), the address is not this host's business.
    let other = LoadOptions {
        check_files: false,
        ..opts()
    };
    assert!(Config::from_toml(&src, Path::new("/x"), &other).is_ok());
    // Same ports on different addresses are fine (BASE itself); a duplicate name is not.
    let src = BASE.replace("name = \"inside\"\nbind_ip", "name = \"outside\"\nbind_ip");
    assert!(errors(&src).iter().any(|e| e.path == "media.realm[1].name"));
}

#[test]
fn a_route_s_targets_share_one_realm() {
    let src = BASE.replace("targets = [\"pbx\"]", "targets = [\"pbx\", \"carrier\"]");
    let d = errors(&src);
    let e = d
        .iter()
        .find(|e| e.path == "route[0].targets")
        .expect("route");
    assert!(e.message.contains("different media realms"), "{e:?}");
}

#[test]
fn media_addresses_beside_realms_without_a_default_need_the_ports_in_the_realms() {
    let src = BASE.replace("cores = [0]", "cores = [0]\nport_min = 30000");
    let d = errors(&src);
    assert!(d.iter().any(|e| e.path == "media.port_min"), "{d:?}");
}

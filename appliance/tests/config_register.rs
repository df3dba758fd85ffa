//! `[trunk.register]`: defaults, conversion to the engine's registration, and every
//! check with its TOML path and position.

mod common_config;

use std::time::Duration;

use portcullis::config::LineCol;
use portcullis::runtime::convert::engine_config;

use common_config::load;

const BASE: &str = r#"
[[sip.listener]]
transport = "udp"
address = "127.0.0.1:5060"

[media]
advertised_ip = "127.0.0.1"
cores = [0]

[[trunk]]
name = "carrier"
address = "127.0.0.1:5070"

[trunk.credentials]
username = "alice"
password = "s3cret"
answer_upstream = false

[trunk.register]
aor = "sip:+4930123@carrier.example"

[[trunk]]
name = "pbx"
address = "127.0.0.1:5080"

[[route]]
name = "r"
from = ["pbx"]
targets = ["carrier"]
"#;

#[test]
fn defaults_and_engine_registration() {
    let cfg = load(BASE).unwrap_or_else(|d| panic!("{d:?}"));
    let r = cfg.trunks[0].register.as_ref().expect("register");
    assert_eq!(r.contact_user, "+4930123", "the AOR's user");
    assert_eq!(r.domain, "carrier.example");
    assert_eq!(r.expires, Duration::from_secs(3600));
    assert_eq!(r.retry_min, Duration::from_secs(5));
    assert_eq!(r.retry_max, Duration::from_secs(300));
    let ec = engine_config(&cfg).unwrap();
    assert_eq!(ec.registrations.len(), 1);
    let e = &ec.registrations[0];
    assert_eq!(e.trunk, "carrier");
    assert_eq!(
        e.registrar,
        "127.0.0.1:5070".parse().unwrap(),
        "the trunk address"
    );
    assert_eq!(e.registrar_uri, "sip:carrier.example");
    let creds = e.credentials.as_ref().expect("the trunk's credentials");
    assert_eq!(creds.username, "alice");
    // Explicit registrar and contact user.
    let src = BASE.replace(
        "aor = \"sip:+4930123@carrier.example\"",
        "aor = \"sip:+4930123@carrier.example\"\nregistrar = \"127.0.0.2:5090\"\ncontact_user = \"pc-1\"\nexpires = \"20s\"",
    );
    let ec = engine_config(&load(&src).unwrap_or_else(|d| panic!("{d:?}"))).unwrap();
    let e = &ec.registrations[0];
    assert_eq!(e.registrar, "127.0.0.2:5090".parse().unwrap());
    assert_eq!(e.contact_user, "pc-1");
    assert_eq!(e.expires, Duration::from_secs(20));
}

/// (edit of the register table, path, message part, text at the reported position).
const CASES: &[(&str, &str, &str, &str)] = &[
    (
        "aor = \"mailto:x@y\"",
        "trunk[0].register.aor",
        "is not a SIP URI",
        "\"mailto:x@y\"",
    ),
    (
        "aor = \"sip:carrier.example\"",
        "trunk[0].register.aor",
        "has no user part",
        "\"sip:carrier.example\"",
    ),
    (
        "aor = \"sip:a@b\"\ncontact_user = \"a b\"",
        "trunk[0].register.contact_user",
        "must be non-empty",
        "\"a b\"",
    ),
    (
        "aor = \"sip:a@b\"\nexpires = \"5s\"",
        "trunk[0].register.expires",
        "shorter than the minimum",
        "\"5s\"",
    ),
    (
        "aor = \"sip:a@b\"\nexpires = \"2d\"",
        "trunk[0].register.expires",
        "at most 1 day",
        "\"2d\"",
    ),
    (
        "aor = \"sip:a@b\"\nretry_min = \"1m\"\nretry_max = \"10s\"",
        "trunk[0].register.retry_max",
        "not be shorter than retry_min",
        "\"10s\"",
    ),
    (
        "aor = \"sip:a@b\"\nregistrar = \"reg.example\"",
        "trunk[0].register.registrar",
        "the port is mandatory",
        "\"reg.example\"",
    ),
];

#[test]
fn each_check_names_its_key_and_position() {
    for (edit, path, msg, at) in CASES {
        let src = BASE.replace("aor = \"sip:+4930123@carrier.example\"", edit);
        let d = load(&src).err().unwrap_or_else(|| panic!("{edit}: loaded"));
        let hit = d
            .iter()
            .find(|d| d.path == *path)
            .unwrap_or_else(|| panic!("{edit}: no error at {path}: {d:?}"));
        assert!(hit.message.contains(msg), "{edit}: {}", hit.message);
        let off = src.rfind(at).unwrap();
        assert_eq!(
            hit.location,
            Some(LineCol::from_offset(&src, off)),
            "{edit}"
        );
    }
}

#[test]
fn unknown_keys_and_shared_contact_users_are_refused() {
    let src = BASE.replace(
        "aor = \"sip:+4930123@carrier.example\"",
        "aor = \"sip:+4930123@carrier.example\"\nexpiry = \"1h\"",
    );
    let d = load(&src).expect_err("unknown key");
    assert!(d[0].message.contains("unknown field `expiry`"), "{d:?}");
    assert!(d[0].location.is_some());
    // Two registrations with one Contact user: calls to it could not be told apart.
    let src = BASE.replace(
        "name = \"pbx\"\naddress = \"127.0.0.1:5080\"",
        "name = \"pbx\"\naddress = \"127.0.0.1:5080\"\n\n[trunk.register]\naor = \"sip:+4930123@other.example\"",
    );
    let d = load(&src).expect_err("shared contact user");
    assert!(
        d.iter().any(|d| d.path == "trunk[1].register"
            && d.message.contains("already registered by trunk[0]")),
        "{d:?}"
    );
    // A challenge answered only for REGISTER is a use of the credentials.
    assert!(load(BASE).is_ok());
}

//! Provisioning of the trunk policy keys (`trusted`, `codecs`, `codecs_deny`,
//! `telephone_event`, `[[trunk.headers]]`) and of calling-number matching in
//! routes: accepted forms reach the engine, bad ones are reported with the
//! TOML path and line:col (inside a value template: the offending character).

mod common_config;

use portcullis::runtime::convert::engine_config;
use portcullis_engine::config::TrunkId;
use portcullis_engine::routing::Router;
use portcullis_engine::trunk_policy::{HeaderAction, RuleDirection, TelephoneEvent};

use common_config::{errors, load, pos};

const BASE: &str = r#"
[[sip.listener]]
transport = "udp"
address = "127.0.0.1:5060"

[media]
advertised_ip = "127.0.0.1"
cores = [0]

[[trunk]]
name = "b"
address = "127.0.0.1:5080"

[[route]]
name = "r"
from = ["a"]
calling_prefix = "+49"
targets = ["b"]

[[route]]
name = "other-callers"
from = ["a"]
targets = ["b"]
"#;

fn with_trunk_a(extra: &str) -> String {
    format!("{BASE}\n[[trunk]]\nname = \"a\"\naddress = \"127.0.0.1:5070\"\n{extra}")
}

#[test]
fn policy_keys_reach_the_engine() {
    let src = with_trunk_a(
        r#"trusted = true
codecs = ["PCMA", "opus/48000"]
codecs_deny = ["G729"]
telephone_event = "add"

[[trunk.headers]]
action = "keep"
name = "X-*"
direction = "inbound"

[[trunk.headers]]
action = "rewrite"
name = "X-Account"
match = 'acct-(\d+)'
value = "customer-${1} via ${trunk}"
"#,
    );
    let cfg = load(&src).unwrap();
    let ec = engine_config(&cfg).unwrap();
    let a = ec.trunks.iter().find(|t| t.name == "a").unwrap();
    assert!(a.policy.trusted);
    assert_eq!(a.policy.codecs.allow.len(), 2);
    assert_eq!(a.policy.codecs.allow[1].to_string(), "opus/48000");
    assert_eq!(a.policy.codecs.telephone_event, TelephoneEvent::Add);
    assert_eq!(a.policy.headers.len(), 2);
    assert_eq!(a.policy.headers[0].action, HeaderAction::Keep);
    assert_eq!(a.policy.headers[0].direction, RuleDirection::Inbound);
    assert_eq!(a.policy.headers[1].direction, RuleDirection::Both);
    let b = ec.trunks.iter().find(|t| t.name == "b").unwrap();
    assert!(!b.policy.trusted, "untrusted by default");
    assert!(b.policy.headers.is_empty() && b.policy.codecs.allow.is_empty());
}

#[test]
fn routes_match_the_calling_number() {
    let cfg = load(&with_trunk_a("")).unwrap();
    let ec = engine_config(&cfg).unwrap();
    let router = Router::new(&ec).unwrap();
    let a = TrunkId(ec.trunks.iter().position(|t| t.name == "a").unwrap());
    assert_eq!(router.route(a, "100", "+4930111").unwrap().route, "r");
    assert_eq!(
        router.route(a, "100", "+3312345").unwrap().route,
        "other-callers"
    );
    let bad = BASE.replace(
        "calling_prefix = \"+49\"",
        "calling_prefix = \"+49\"\ncalling_regex = \"^1\"",
    );
    let d = errors(&format!(
        "{bad}\n[[trunk]]\nname = \"a\"\naddress = \"127.0.0.1:5070\"\n"
    ));
    assert_eq!(d[0].path, "route[0].calling_regex");
    assert!(d[0].message.contains("not both"), "{}", d[0].message);
}

#[test]
fn a_bad_template_is_reported_at_its_character() {
    let src = with_trunk_a(
        r#"
[[trunk.headers]]
action = "add"
name = "X-Origin"
value = "from ${trunk} for ${caller}"
"#,
    );
    let d = errors(&src);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].path, "trunk[1].headers[0].value");
    assert!(
        d[0].message.contains("unknown name ${caller}"),
        "{}",
        d[0].message
    );
    assert_eq!(d[0].location, Some(pos(&src, "${caller}")));
}

#[test]
fn bad_rules_name_their_field() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "action = \"drop\"\nname = \"Via\"",
            "name",
            "builds for each leg",
        ),
        ("action = \"keep\"\nname = \"Call-*\"", "name", "Call-ID"),
        (
            "action = \"add\"\nname = \"X-A\"",
            "action",
            "add needs a value",
        ),
        (
            "action = \"add\"\nname = \"X-*\"\nvalue = \"1\"",
            "name",
            "not a prefix",
        ),
        (
            "action = \"keep\"\nname = \"X-A\"\nvalue = \"1\"",
            "value",
            "take no value",
        ),
        (
            "action = \"rewrite\"\nname = \"X-A\"\nvalue = \"${2}\"\nmatch = \"(a)\"",
            "value",
            "1 group",
        ),
        (
            "action = \"rewrite\"\nname = \"X-A\"\nvalue = \"x\"\nmatch = \"(\"",
            "match",
            "invalid regex",
        ),
        (
            "action = \"keep\"\nname = \"X A\"",
            "name",
            "not a header name",
        ),
    ];
    for (rule, key, needle) in cases {
        let src = with_trunk_a(&format!("\n[[trunk.headers]]\n{rule}\n"));
        let d = errors(&src);
        assert_eq!(d[0].path, format!("trunk[1].headers[0].{key}"), "{rule}");
        assert!(d[0].message.contains(needle), "{rule}: {}", d[0].message);
        assert!(d[0].location.is_some(), "{rule}");
    }
    let d = errors(&with_trunk_a(
        "codecs = [\"PCMA\"]\ncodecs_deny = [\"pcma\"]",
    ));
    assert_eq!(d[0].path, "trunk[1].codecs");
    let d = errors(&with_trunk_a("codecs = [\"PCMA/x\"]"));
    assert_eq!(d[0].path, "trunk[1].codecs[0]");
    let d = errors(&with_trunk_a("telephone_event = \"drop\""));
    assert_eq!(d[0].path, "trunk[1].telephone_event");
}

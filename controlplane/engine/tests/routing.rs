//! Router: source classification, first-match routing, prefix vs regex,
//! translation, E.164, TLS names, Retry-After tracking.

use std::net::SocketAddr;

use portcullis_engine::config::{
    IpNet, MediaMode, RedirectMode, RouteConfig, TrunkConfig, TrunkId,
};
use portcullis_engine::routing::{
    tls_name_matches, to_e164, NumberMatch, RouteReject, RouteRule, Router, RoutingError,
    TranslationRule,
};
use portcullis_engine::transaction::Transport;

fn trunk(name: &str, addr: &str, transport: Transport) -> TrunkConfig {
    TrunkConfig {
        name: name.into(),
        address: addr.parse().unwrap(),
        transport,
        media: MediaMode::Rtp,
        acl: Vec::new(),
        max_calls: None,
        auth_inbound: None,
        auth_outbound: None,
        tls_server_name: None,
        fqdn_contact: None,
        learning: Default::default(),
        targets: Default::default(),
        policy: portcullis_engine::trunk_policy::TrunkPolicy::default(),
        realm: Default::default(),
        listener: None,
    }
}

fn trunks() -> Vec<TrunkConfig> {
    let mut pbx = trunk("pbx", "192.0.2.10:5060", Transport::Udp);
    pbx.acl = vec![
        "10.0.0.0/8".parse::<IpNet>().unwrap(),
        "2001:db8:10::/48".parse::<IpNet>().unwrap(),
    ];
    let carrier = trunk("carrier", "198.51.100.1:5060", Transport::Udp);
    let backup = trunk("backup", "198.51.100.2:5060", Transport::Tcp);
    let mut teams = trunk("teams", "52.114.148.0:5061", Transport::Tls);
    teams.tls_server_name = Some("*.pstnhub.microsoft.com".into());
    vec![pbx, carrier, backup, teams]
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn rule(name: &str, from: &[&str], called: NumberMatch, targets: &[&str]) -> RouteRule {
    RouteRule {
        name: name.into(),
        from_trunks: from.iter().map(|s| (*s).to_owned()).collect(),
        called,
        targets: targets.iter().map(|s| (*s).to_owned()).collect(),
        ..RouteRule::default()
    }
}

#[test]
fn classify_by_acl_address_and_transport() {
    let r = Router::with_rules(&trunks(), &[]).unwrap();
    assert_eq!(
        r.classify_source(sa("10.1.2.3:5060"), Transport::Udp, None),
        Some(TrunkId(0))
    );
    assert_eq!(
        r.classify_source(sa("[2001:db8:10:ff::1]:5060"), Transport::Udp, None),
        Some(TrunkId(0))
    );
    assert_eq!(
        r.classify_source(sa("[2001:db8:11::1]:5060"), Transport::Udp, None),
        None
    );
    // Default ACL = the trunk address; source port does not matter.
    assert_eq!(
        r.classify_source(sa("198.51.100.1:40000"), Transport::Udp, None),
        Some(TrunkId(1))
    );
    // Right address, wrong transport.
    assert_eq!(
        r.classify_source(sa("198.51.100.1:5060"), Transport::Tcp, None),
        None
    );
    assert_eq!(
        r.classify_source(sa("198.51.100.2:5060"), Transport::Tcp, None),
        Some(TrunkId(2))
    );
    assert_eq!(
        r.classify_source(sa("203.0.113.9:5060"), Transport::Udp, None),
        None
    );
}

#[test]
fn classify_tls_by_certificate_name() {
    let r = Router::with_rules(&trunks(), &[]).unwrap();
    let names = vec!["sip2.pstnhub.microsoft.com".to_owned()];
    // Any address, as long as the certificate names the domain.
    assert_eq!(
        r.classify_source(sa("52.114.1.1:40000"), Transport::Tls, Some(&names)),
        Some(TrunkId(3))
    );
    let wrong = vec!["sip.evil.example".to_owned()];
    assert_eq!(
        r.classify_source(sa("52.114.1.1:40000"), Transport::Tls, Some(&wrong)),
        None
    );
    // No certificate presented (no mTLS): classified by address like any trunk.
    assert_eq!(
        r.classify_source(sa("52.114.148.0:40001"), Transport::Tls, None),
        Some(TrunkId(3))
    );
    assert_eq!(
        r.classify_source(sa("52.114.1.1:40000"), Transport::Tls, None),
        None
    );
    assert_eq!(
        r.classify_source(sa("52.114.1.1:40000"), Transport::Tls, Some(&[])),
        None
    );
    // A certificate with the wrong name is refused even from the trunk address.
    assert_eq!(
        r.classify_source(sa("52.114.148.0:40001"), Transport::Tls, Some(&wrong)),
        None
    );
    // With an explicit ACL the address must match too.
    let mut t = trunks();
    t[3].acl = vec!["52.112.0.0/14".parse::<IpNet>().unwrap()];
    let r = Router::with_rules(&t, &[]).unwrap();
    assert_eq!(
        r.classify_source(sa("52.114.1.1:1"), Transport::Tls, Some(&names)),
        Some(TrunkId(3))
    );
    assert_eq!(
        r.classify_source(sa("8.8.8.8:1"), Transport::Tls, Some(&names)),
        None
    );
}

#[test]
fn teams_trunk_accepts_every_proxy_of_its_domain() {
    // The runtime points the teams trunk at sip2 after sip failed; Teams may
    // still call in from sip (its certificate names only sip.pstnhub...).
    let mut t = trunks();
    t[3].tls_server_name = Some("sip2.pstnhub.microsoft.com".into());
    let from_sip = vec!["sip.pstnhub.microsoft.com".to_owned()];
    let r = Router::with_rules(&t, &[]).unwrap();
    assert_eq!(
        r.classify_source(sa("52.114.1.1:40000"), Transport::Tls, Some(&from_sip)),
        Some(TrunkId(3))
    );
    let other = vec!["sip.pstnhub.microsoft.com.evil.example".to_owned()];
    assert_eq!(
        r.classify_source(sa("52.114.1.1:40000"), Transport::Tls, Some(&other)),
        None
    );
    // Any other TLS trunk keeps its exact name.
    t[3].name = "partner".into();
    let r = Router::with_rules(&t, &[]).unwrap();
    assert_eq!(
        r.classify_source(sa("52.114.1.1:40000"), Transport::Tls, Some(&from_sip)),
        None
    );
}

#[test]
fn tls_name_rules() {
    assert!(tls_name_matches(
        "sip.pstnhub.microsoft.com",
        "SIP.pstnhub.microsoft.com."
    ));
    assert!(tls_name_matches(
        "*.pstnhub.microsoft.com",
        "sip3.pstnhub.microsoft.com"
    ));
    assert!(tls_name_matches(
        "sip.pstnhub.microsoft.com",
        "*.pstnhub.microsoft.com"
    ));
    assert!(tls_name_matches(
        "*.pstnhub.microsoft.com",
        "*.pstnhub.microsoft.com"
    ));
    assert!(!tls_name_matches(
        "*.pstnhub.microsoft.com",
        "pstnhub.microsoft.com"
    ));
    assert!(!tls_name_matches(
        "*.pstnhub.microsoft.com",
        "a.b.pstnhub.microsoft.com"
    ));
    assert!(!tls_name_matches("*.com", "example.com"));
    assert!(!tls_name_matches("*.com", "*.com"));
    assert!(!tls_name_matches(
        "s*.pstnhub.microsoft.com",
        "sip.pstnhub.microsoft.com"
    ));
    assert!(!tls_name_matches(
        "sip.pstnhub.microsoft.com",
        "sip.pstnhub.microsoft.com.evil"
    ));
    assert!(!tls_name_matches("", ""));
}

#[test]
fn first_match_wins_in_config_order() {
    let rules = [
        rule(
            "specific",
            &["pbx"],
            NumberMatch::Prefix("+4930".into()),
            &["backup"],
        ),
        rule(
            "general",
            &[],
            NumberMatch::Prefix("+49".into()),
            &["carrier", "backup"],
        ),
        rule("catch-all", &[], NumberMatch::Any, &["carrier"]),
    ];
    let r = Router::with_rules(&trunks(), &rules).unwrap();
    let d = r.route(TrunkId(0), "+4930123", "100").unwrap();
    assert_eq!(d.route, "specific");
    assert_eq!(d.targets.len(), 1);
    assert_eq!(d.targets[0].trunk, TrunkId(2));
    // Same number from another trunk skips the pbx-only rule.
    let d = r.route(TrunkId(1), "+4930123", "100").unwrap();
    assert_eq!(d.route, "general");
    let order: Vec<TrunkId> = d.targets.iter().map(|t| t.trunk).collect();
    assert_eq!(order, vec![TrunkId(1), TrunkId(2)]);
    assert_eq!(
        r.route(TrunkId(0), "+331234", "1").unwrap().route,
        "catch-all"
    );
    // Reversed order: the catch-all shadows everything.
    let rev: Vec<RouteRule> = rules.iter().rev().cloned().collect();
    let r = Router::with_rules(&trunks(), &rev).unwrap();
    assert_eq!(
        r.route(TrunkId(0), "+4930123", "100").unwrap().route,
        "catch-all"
    );
}

#[test]
fn prefix_versus_anchored_regex() {
    let rules = [
        rule(
            "regex",
            &[],
            NumberMatch::Regex(r"\+1\d{10}".into()),
            &["carrier"],
        ),
        rule("prefix", &[], NumberMatch::Prefix("+1".into()), &["backup"]),
    ];
    let r = Router::with_rules(&trunks(), &rules).unwrap();
    assert_eq!(
        r.route(TrunkId(0), "+12125551234", "x").unwrap().route,
        "regex"
    );
    // Longer than the regex allows: anchored, so no regex match; the prefix takes it.
    assert_eq!(
        r.route(TrunkId(0), "+121255512345", "x").unwrap().route,
        "prefix"
    );
    // Regex must not match a substring either.
    assert_eq!(
        r.route(TrunkId(0), "+1+12125551234", "x").unwrap().route,
        "prefix"
    );
    assert_eq!(r.route(TrunkId(0), "+44", "x"), Err(RouteReject::NoRoute));
    assert_eq!(RouteReject::NoRoute.status(), 404);
}

#[test]
fn calling_number_condition() {
    let mut anon = rule("anon", &[], NumberMatch::Any, &[]);
    anon.calling = NumberMatch::Regex("(?i)anonymous".into());
    anon.reject = Some(433);
    let rules = [anon, rule("all", &[], NumberMatch::Any, &["carrier"])];
    let r = Router::with_rules(&trunks(), &rules).unwrap();
    let e = r.route(TrunkId(0), "+4930", "Anonymous").unwrap_err();
    assert_eq!(e.status(), 433);
    assert_eq!(r.route(TrunkId(0), "+4930", "+4940").unwrap().route, "all");
}

#[test]
fn translations_apply_in_order() {
    let mut r1 = rule(
        "intl",
        &[],
        NumberMatch::Prefix("00".into()),
        &["carrier", "backup"],
    );
    r1.translate_called = vec![
        TranslationRule::StripDigits(2),
        TranslationRule::AddPrefix("+".into()),
    ];
    r1.translate_calling = vec![TranslationRule::Replace {
        pattern: r"^(\d{3})(\d+)$".into(),
        replacement: "+49${1}-$2".into(),
    }];
    let mut r2 = rule("ext", &[], NumberMatch::Prefix("9".into()), &["carrier"]);
    r2.translate_called = vec![
        TranslationRule::StripPrefix("9".into()),
        TranslationRule::StripPrefix("9".into()),
        TranslationRule::E164 {
            country_code: "49".into(),
            trunk_prefix: "0".into(),
            international_prefix: "00".into(),
        },
    ];
    let mut r3 = rule(
        "strip-all",
        &[],
        NumberMatch::Prefix("*".into()),
        &["carrier"],
    );
    r3.translate_called = vec![TranslationRule::StripDigits(10)];
    let r = Router::with_rules(&trunks(), &[r1, r2, r3]).unwrap();
    let d = r.route(TrunkId(0), "0033123456", "0301234").unwrap();
    assert_eq!(d.called, "+33123456");
    assert!(d.targets.iter().all(|t| t.called == "+33123456"));
    assert_eq!(d.calling, "+49030-1234");
    // Only one leading 9 present: second StripPrefix is a no-op; national → E.164.
    let d = r.route(TrunkId(0), "9030 1234-5", "100").unwrap();
    assert_eq!(d.called, "+493012345");
    // No pattern match: calling number unchanged.
    assert_eq!(r.route(TrunkId(0), "0033", "ab").unwrap().calling, "ab");
    let e = r.route(TrunkId(0), "*12", "1").unwrap_err();
    assert_eq!(e, RouteReject::EmptyNumber("strip-all".into()));
    assert_eq!(e.status(), 484);
}

#[test]
fn e164_normalisation() {
    let de = |n| to_e164(n, "49", "0", "00");
    assert_eq!(de("030 123456").as_deref(), Some("+4930123456"));
    assert_eq!(de("0049 30 123456").as_deref(), Some("+4930123456"));
    assert_eq!(de("+44 (20) 7946-0958").as_deref(), Some("+442079460958"));
    assert_eq!(de("30123456").as_deref(), Some("+4930123456"));
    assert_eq!(de("*100#"), None);
    assert_eq!(de("+1234567890123456"), None); // 16 digits
    assert_eq!(de("+"), None);
    let us = |n| to_e164(n, "1", "1", "011");
    assert_eq!(us("1 212 555 1234").as_deref(), Some("+12125551234"));
    assert_eq!(us("212.555.1234").as_deref(), Some("+12125551234"));
    assert_eq!(us("011 44 20 7946 0958").as_deref(), Some("+442079460958"));
}

#[test]
fn engine_route_config_prefix_strip_prepend() {
    let cfg_routes = [RouteConfig {
        name: "legacy".into(),
        from_trunks: vec!["pbx".into()],
        called_prefix: "0".into(),
        strip: 1,
        prepend: "+49".into(),
        targets: vec!["carrier".into()],
        redirect: RedirectMode::Relay,
    }];
    let rules: Vec<RouteRule> = cfg_routes.iter().map(RouteRule::from).collect();
    let r = Router::with_rules(&trunks(), &rules).unwrap();
    let d = r.route(TrunkId(0), "030123", "1").unwrap();
    assert_eq!(d.called, "+4930123");
    assert_eq!(d.redirect, RedirectMode::Relay);
    assert_eq!(r.route(TrunkId(0), "+4930", "1"), Err(RouteReject::NoRoute));
    assert_eq!(
        r.route(TrunkId(1), "030123", "1"),
        Err(RouteReject::NoRoute)
    );
}

#[test]
fn config_errors() {
    let t = trunks();
    let bad_trunk = rule("r", &[], NumberMatch::Any, &["nope"]);
    assert!(matches!(
        Router::with_rules(&t, &[bad_trunk]),
        Err(RoutingError::UnknownTrunk { .. })
    ));
    let bad_from = rule("r", &["nope"], NumberMatch::Any, &["carrier"]);
    assert!(matches!(
        Router::with_rules(&t, &[bad_from]),
        Err(RoutingError::UnknownTrunk { .. })
    ));
    let bad_re = rule("r", &[], NumberMatch::Regex("(".into()), &["carrier"]);
    assert!(matches!(
        Router::with_rules(&t, &[bad_re]),
        Err(RoutingError::BadRegex { .. })
    ));
    let empty = rule("r", &[], NumberMatch::Any, &[]);
    assert_eq!(
        Router::with_rules(&t, &[empty]).unwrap_err(),
        RoutingError::NoTargets("r".into())
    );
    let mut bad_status = rule("r", &[], NumberMatch::Any, &[]);
    bad_status.reject = Some(200);
    assert!(matches!(
        Router::with_rules(&t, &[bad_status]),
        Err(RoutingError::BadRejectStatus { status: 200, .. })
    ));
    let mut bad_cc = rule("r", &[], NumberMatch::Any, &["carrier"]);
    bad_cc.translate_called = vec![TranslationRule::E164 {
        country_code: "+49".into(),
        trunk_prefix: "0".into(),
        international_prefix: "00".into(),
    }];
    assert!(matches!(
        Router::with_rules(&t, &[bad_cc]),
        Err(RoutingError::BadCountryCode { .. })
    ));
}

#[test]
fn per_target_called_translation() {
    let mut r = rule(
        "teams-and-carrier",
        &[],
        NumberMatch::Prefix("0".into()),
        &["teams", "carrier"],
    );
    r.translate_called = vec![TranslationRule::StripPrefix("0".into())];
    r.target_translate_called = vec![(
        "teams".into(),
        vec![TranslationRule::AddPrefix("+49".into())],
    )];
    let router = Router::with_rules(&trunks(), &[r.clone()]).unwrap();
    let d = router.route(TrunkId(0), "030123", "1").unwrap();
    assert_eq!(d.called, "30123");
    assert_eq!(d.targets[0].trunk, TrunkId(3));
    assert_eq!(d.targets[0].called, "+4930123");
    assert_eq!(d.targets[1].trunk, TrunkId(1));
    assert_eq!(d.targets[1].called, "30123");
    // A per-target rule for a trunk that is not a target is a config error.
    r.target_translate_called = vec![("backup".into(), Vec::new())];
    assert!(matches!(
        Router::with_rules(&trunks(), &[r]),
        Err(RoutingError::UnknownTrunk { .. })
    ));
}

#[test]
fn trunks_on_one_host_are_told_apart_by_port() {
    let t = vec![
        trunk("left", "127.0.0.1:5070", Transport::Udp),
        trunk("right", "127.0.0.1:5080", Transport::Udp),
    ];
    let r = Router::with_rules(&t, &[]).unwrap();
    assert_eq!(
        r.classify_source(sa("127.0.0.1:5070"), Transport::Udp, None),
        Some(TrunkId(0))
    );
    assert_eq!(
        r.classify_source(sa("127.0.0.1:5080"), Transport::Udp, None),
        Some(TrunkId(1))
    );
    // Another port on that host: first trunk by IP.
    assert_eq!(
        r.classify_source(sa("127.0.0.1:40000"), Transport::Udp, None),
        Some(TrunkId(0))
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn router() -> Router {
        let mut r1 = rule(
            "re",
            &[],
            NumberMatch::Regex(r"(\+?\d{1,3})?\d+".into()),
            &["carrier"],
        );
        r1.translate_called = vec![
            TranslationRule::StripDigits(3),
            TranslationRule::Replace {
                pattern: r"^(\d)(.*)$".into(),
                replacement: "${2}$1".into(),
            },
            TranslationRule::E164 {
                country_code: "49".into(),
                trunk_prefix: "0".into(),
                international_prefix: "00".into(),
            },
        ];
        r1.translate_calling = vec![TranslationRule::StripPrefix("ä".into())];
        let mut r2 = rule("any", &[], NumberMatch::Any, &["backup"]);
        r2.translate_called = vec![
            TranslationRule::StripDigits(1),
            TranslationRule::AddPrefix("9".into()),
        ];
        Router::with_rules(&trunks(), &[r1, r2]).unwrap()
    }

    proptest! {
        /// Peer-controlled numbers (any Unicode) never panic the router, and
        /// a decision always has targets with non-empty numbers.
        #[test]
        fn route_never_panics(called in ".{0,40}", calling in ".{0,40}", inbound in 0usize..6) {
            let r = router();
            if let Ok(d) = r.route(TrunkId(inbound), &called, &calling) {
                prop_assert!(!d.targets.is_empty());
                prop_assert!(d.targets.iter().all(|t| !t.called.is_empty()));
            }
        }

        /// E.164 output is `+` and 1..=15 digits, never starting with 0.
        #[test]
        fn e164_output_is_well_formed(n in "[0-9+ ()*#.-]{0,24}") {
            if let Some(e) = to_e164(&n, "49", "0", "00") {
                let digits = e.strip_prefix('+').unwrap_or("x");
                prop_assert!((1..=15).contains(&digits.len()));
                prop_assert!(digits.bytes().all(|b| b.is_ascii_digit()));
                prop_assert!(!digits.starts_with('0'));
            }
        }

        /// Certificate name matching never panics and is symmetric.
        #[test]
        fn tls_names_symmetric(a in "[a-z*.]{0,20}", b in "[a-z*.]{0,20}") {
            prop_assert_eq!(tls_name_matches(&a, &b), tls_name_matches(&b, &a));
        }
    }
}

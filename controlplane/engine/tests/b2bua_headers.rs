//! Header policy per trunk: each rule kind (keep, drop, add, rewrite) and its
//! direction, templates, CR/LF injection refused, the RFC 3325 trust domain
//! (P-Asserted-Identity and P-Preferred-Identity, `Privacy: id`), Diversion
//! and History-Info translated with the called-number rules.

#[path = "b2bua_harness.rs"]
mod harness;

use harness::*;
use portcullis_engine::config::EngineConfig;
use portcullis_engine::routing::{NumberMatch, RouteRule, TranslationRule};
use portcullis_engine::transaction::SipMsg;
use portcullis_engine::trunk_policy::{HeaderAction, HeaderRule, RuleDirection};

fn rule(
    action: HeaderAction,
    name: &str,
    dir: RuleDirection,
    value: Option<&str>,
    pattern: Option<&str>,
) -> HeaderRule {
    HeaderRule::new(action, name, dir, value, pattern).unwrap()
}

/// Trunk `i` (0 = a, 1 = b1) gets `rules`.
fn rules(cfg: &mut EngineConfig, i: usize, rules: Vec<HeaderRule>) {
    cfg.trunks[i].policy.headers = rules;
}

/// A calls `100` with `extra` headers; returns the INVITE b1 got.
fn call_with(h: &mut H, extra: &[(&str, &str)]) -> SipMsg {
    let now = h.now;
    let offer = sdp("192.168.1.10", 10_000, "");
    h.a.invite_with(now, "100", Some(&offer), extra);
    h.pump();
    h.b1.last_request("INVITE").1
}

#[test]
fn x_headers_are_dropped_by_default_and_kept_by_a_rule_either_side() {
    let mut h = H::new();
    let inv = call_with(&mut h, &[("X-Customer", "42")]);
    assert!(inv.header("X-Secret").is_none() && inv.header("X-Customer").is_none());
    // Inbound on the caller's trunk: every X- header crosses.
    let mut h = H::with(|c| {
        rules(
            c,
            0,
            vec![rule(
                HeaderAction::Keep,
                "X-*",
                RuleDirection::Inbound,
                None,
                None,
            )],
        );
    });
    let inv = call_with(&mut h, &[("X-Customer", "42")]);
    assert_eq!(inv.header("X-Secret"), Some("internal"));
    assert_eq!(inv.header("X-Customer"), Some("42"));
    // Outbound on the callee's trunk, one name.
    let mut h = H::with(|c| {
        rules(
            c,
            1,
            vec![rule(
                HeaderAction::Keep,
                "x-customer",
                RuleDirection::Outbound,
                None,
                None,
            )],
        );
    });
    let inv = call_with(&mut h, &[("X-Customer", "42")]);
    assert_eq!(inv.header("X-Customer"), Some("42"));
    assert!(inv.header("X-Secret").is_none());
}

#[test]
fn drop_removes_a_default_header() {
    let uui = "56a390f3d2b7310023a2;encoding=hex";
    let mut h = H::new();
    let inv = call_with(&mut h, &[("User-to-User", uui)]);
    assert_eq!(inv.header("User-to-User"), Some(uui), "passed by default");
    let mut h = H::with(|c| {
        rules(
            c,
            1,
            vec![rule(
                HeaderAction::Drop,
                "User-to-User",
                RuleDirection::Both,
                None,
                None,
            )],
        );
    });
    let inv = call_with(&mut h, &[("User-to-User", uui)]);
    assert!(inv.header("User-to-User").is_none());
}

#[test]
fn add_renders_the_calls_values() {
    let mut h = H::with(|c| {
        rules(
            c,
            1,
            vec![rule(
                HeaderAction::Add,
                "X-Origin",
                RuleDirection::Outbound,
                Some("${trunk}:${calling}->${called} 100$$"),
                None,
            )],
        );
    });
    let inv = call_with(&mut h, &[]);
    assert_eq!(inv.header("X-Origin"), Some("a:+4930111->100 100$"));
}

#[test]
fn rewrite_uses_the_groups_of_its_match_and_leaves_other_values() {
    let mut h = H::with(|c| {
        rules(
            c,
            0,
            vec![
                rule(
                    HeaderAction::Keep,
                    "X-Account",
                    RuleDirection::Inbound,
                    None,
                    None,
                ),
                rule(
                    HeaderAction::Rewrite,
                    "X-Account",
                    RuleDirection::Inbound,
                    Some("customer-${1}"),
                    Some(r"acct-(\d+)"),
                ),
            ],
        );
    });
    let inv = call_with(&mut h, &[("X-Account", "acct-42"), ("X-Account", "other")]);
    let vals: Vec<&str> = inv.header_values("X-Account").collect();
    assert_eq!(vals, ["customer-42", "other"]);
}

#[test]
fn direction_limits_a_rule_to_its_messages() {
    // An inbound rule of b1 applies to what b1 sends, not to the INVITE toward it.
    let mut h = H::with(|c| {
        rules(
            c,
            1,
            vec![rule(
                HeaderAction::Add,
                "X-From-B",
                RuleDirection::Inbound,
                Some("yes"),
                None,
            )],
        );
    });
    let now = h.now;
    let offer = sdp("192.168.1.10", 10_000, "");
    let (_atx, _ainv) = h.a.invite(now, "100", Some(&offer));
    h.pump();
    let (btx, binv) = h.b1.last_request("INVITE");
    assert!(binv.header("X-From-B").is_none());
    h.b1_rings_and_answers(btx, &binv, "btag");
    let ok = h.a.first_response(200).unwrap();
    assert_eq!(ok.header("X-From-B"), Some("yes"), "on b1's 200 toward A");
}

#[test]
fn rewritten_values_cannot_inject_a_header_line() {
    // Priority crosses by default, as received; a rule rewrites it with the
    // pieces of a folded line (RFC 3261 §7.3.1: CRLF then white space) around
    // text that would be a header line of its own if a line break survived.
    let mut h = H::with(|c| {
        rules(
            c,
            0,
            vec![rule(
                HeaderAction::Rewrite,
                "Priority",
                RuleDirection::Inbound,
                Some("${1}${2}X-Injected: ${3}"),
                Some(r"(?s)(urgent)(\s+)(.*)"),
            )],
        );
    });
    let body = sdp("192.168.1.10", 10_000, "");
    let invite = format!(
        "INVITE sip:100@{SBC} SIP/2.0\r\nVia: SIP/2.0/UDP {A};branch=z9hG4bKinject1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:+4930111@{A}>;tag=inj\r\nTo: <sip:100@{SBC}>\r\n\
         Call-ID: inject-1@10.0.0.2\r\nCSeq: 1 INVITE\r\nContact: <sip:peer@{A}>\r\n\
         Priority: urgent\r\n evil\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let now = h.now;
    h.sbc.handle_datagram(now, udp(sa(A)), invite.as_bytes());
    h.pump();
    let (_, inv) = h.b1.last_request("INVITE");
    assert!(inv.header("X-Injected").is_none(), "{inv:?}");
    // The fold is white space by the time a rule sees it; whatever a match
    // captures, a rendered value stays on its header line.
    let p = inv.header("Priority").unwrap();
    assert!(
        p.starts_with("urgent") && p.ends_with("X-Injected: evil"),
        "{p}"
    );
    let wire = String::from_utf8_lossy(h.b1.wire.last().unwrap()).into_owned();
    assert!(!wire.contains("\r\nX-Injected"), "{wire}");
}

fn trusted(c: &mut EngineConfig, a: bool, b1: bool) {
    c.trunks[0].policy.trusted = a;
    c.trunks[1].policy.trusted = b1;
}

const PAI: &str = "\"Alice\" <sip:+4930111@pbx.internal;user=phone>";
const PPI: &str = "<sip:+4930112@pbx.internal>";

#[test]
fn asserted_identity_crosses_only_between_trusted_trunks() {
    let ids = [("P-Asserted-Identity", PAI), ("P-Preferred-Identity", PPI)];
    // Trusted to trusted: both cross, with our host.
    let mut h = H::with(|c| trusted(c, true, true));
    let inv = call_with(&mut h, &ids);
    assert_eq!(
        inv.header("P-Asserted-Identity"),
        Some("\"Alice\" <sip:+4930111@10.0.0.1:5060>")
    );
    assert_eq!(
        inv.header("P-Preferred-Identity"),
        Some("<sip:+4930112@10.0.0.1:5060>")
    );
    // Toward an untrusted trunk: neither leaves the trust domain.
    let mut h = H::with(|c| trusted(c, true, false));
    let inv = call_with(&mut h, &ids);
    assert!(inv.header("P-Asserted-Identity").is_none());
    assert!(inv.header("P-Preferred-Identity").is_none());
    // From an untrusted trunk: its assertion is not believed; its preference is passed on.
    let mut h = H::with(|c| trusted(c, false, true));
    let inv = call_with(&mut h, &ids);
    assert!(inv.header("P-Asserted-Identity").is_none());
    assert!(inv.header("P-Preferred-Identity").is_some());
    let wire = String::from_utf8_lossy(h.b1.wire.last().unwrap()).into_owned();
    assert!(!wire.contains("pbx.internal"), "{wire}");
}

#[test]
fn privacy_id_travels_with_the_identity_and_stops_it_at_the_border() {
    let ids = [("P-Asserted-Identity", PAI), ("Privacy", "id")];
    let mut h = H::with(|c| trusted(c, true, true));
    let inv = call_with(&mut h, &ids);
    assert!(inv.header("P-Asserted-Identity").is_some());
    assert_eq!(
        inv.header("Privacy"),
        Some("id"),
        "the trusted peer honours it"
    );
    let mut h = H::with(|c| trusted(c, true, false));
    let inv = call_with(&mut h, &ids);
    assert!(inv.header("P-Asserted-Identity").is_none());
    assert_eq!(inv.header("Privacy"), Some("id"));
    let wire = String::from_utf8_lossy(h.b1.wire.last().unwrap()).into_owned();
    assert!(!wire.contains("P-Asserted-Identity"), "{wire}");
}

/// Routes a → b1 stripping `00` and adding `+` to called numbers, adding `+`
/// to calling numbers that lack it.
fn translating(c: &mut EngineConfig) {
    c.route_rules = vec![RouteRule {
        name: "out".into(),
        from_trunks: vec!["a".into()],
        called: NumberMatch::Any,
        calling: NumberMatch::Any,
        translate_called: vec![
            TranslationRule::StripPrefix("00".into()),
            TranslationRule::AddPrefix("+".into()),
        ],
        translate_calling: vec![TranslationRule::Replace {
            pattern: "^0".into(),
            replacement: "+49".into(),
        }],
        targets: vec!["b1".into()],
        ..RouteRule::default()
    }];
}

#[test]
fn diversion_and_history_info_take_the_called_number_rules() {
    let mut h = H::with(translating);
    let now = h.now;
    let offer = sdp("192.168.1.10", 10_000, "");
    h.a.invite_with(
        now,
        "0049301",
        Some(&offer),
        &[
            ("Diversion", "<sip:0049302@pbx.internal>;reason=unconditional;counter=1"),
            (
                "History-Info",
                "<sip:0049303@pbx.internal?Reason=SIP%3Bcause%3D302>;index=1, <sip:0049301@pbx.internal>;index=1.1",
            ),
        ],
    );
    h.pump();
    let (_, inv) = h.b1.last_request("INVITE");
    assert!(inv.request_uri().unwrap().starts_with("sip:+49301@"));
    assert_eq!(
        inv.header("Diversion"),
        Some("<sip:+49302@10.0.0.1:5060>;reason=unconditional;counter=1")
    );
    let hi: Vec<&str> = inv.header_values("History-Info").collect();
    assert_eq!(
        hi,
        [
            "<sip:+49303@10.0.0.1:5060?Reason=SIP%3Bcause%3D302>;index=1",
            "<sip:+49301@10.0.0.1:5060>;index=1.1"
        ]
    );
}

#[test]
fn asserted_identity_takes_the_calling_number_rules() {
    let mut h = H::with(|c| {
        translating(c);
        trusted(c, true, true);
    });
    let inv = call_with(
        &mut h,
        &[("P-Asserted-Identity", "<sip:030111@pbx.internal>")],
    );
    assert_eq!(
        inv.header("P-Asserted-Identity"),
        Some("<sip:+4930111@10.0.0.1:5060>")
    );
}

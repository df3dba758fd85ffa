//! The appliance's real randomness source ([`OsEntropy`]) driving the call engine:
//! over 10,000 calls no two share an SDES key, an SDES salt, an ICE ufrag or pwd,
//! a Call-ID, a tag or a branch, and no identifier equals any secret.

#[path = "../../controlplane/engine/tests/b2bua_harness.rs"]
mod harness;

use std::collections::HashSet;
use std::time::Duration;

use harness::*;
use portcullis::entropy::OsEntropy;
use portcullis_engine::config::{MediaMode, TeamsSettings};
use portcullis_sip::sdp::Crypto;

const CALLS: usize = 10_000;

fn line<'a>(msg: &'a str, prefix: &str) -> &'a str {
    msg.split("\r\n")
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {msg}"))
}

fn param<'a>(value: &'a str, name: &str) -> &'a str {
    value
        .split(';')
        .find_map(|p| p.trim().strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {value}"))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Inserts `v` into `set`, failing the test on a repeat.
fn unique(set: &mut HashSet<String>, what: &str, v: &str) {
    assert!(set.insert(v.to_owned()), "{what} {v} repeated");
}

#[test]
fn ten_thousand_calls_share_no_key_or_identifier() {
    let mut h = H::with_entropy(
        |c| {
            c.teams = Some(TeamsSettings {
                sbc_fqdn: "sbc.example.com".into(),
                options_interval: Duration::from_secs(60),
                media_bypass: true,
                proxies: Vec::new(),
            });
            c.trunks[1].tls_server_name = Some("sip.pstnhub.microsoft.com".into());
            c.trunks[1].media = MediaMode::Srtp;
            c.routes[0].targets = vec!["b1".into()];
            c.policy.rate_limit_per_source = None;
        },
        OsEntropy::new().expect("the OS CSPRNG"),
    );
    let offer = sdp("192.168.1.10", 10_000, "");
    let (mut keys, mut salts, mut ufrags, mut pwds) = Default::default();
    let (mut call_ids, mut tags, mut branches) = Default::default();
    for i in 0..CALLS {
        let (_atx, _ainv, btx, binv) = h.start("100", Some(&offer));
        let now = h.now;
        h.b1.respond(now, btx, &binv, 180, &format!("b{i}"), None);
        h.pump();

        // Toward B: our SDES key and salt, ICE-lite credentials, Call-ID, tag, branch.
        let inv = String::from_utf8_lossy(&h.b1.wire[0]).into_owned();
        let body = &inv[inv.find("\r\n\r\n").unwrap() + 4..];
        let crypto = Crypto::parse(line(body, "a=crypto:")).unwrap();
        let ks = crypto.keys[0].key_salt().unwrap();
        unique(&mut keys, "SDES key", &hex(&ks[..16]));
        unique(&mut salts, "SDES salt", &hex(&ks[16..]));
        unique(&mut ufrags, "ICE ufrag", line(body, "a=ice-ufrag:"));
        unique(&mut pwds, "ICE pwd", line(body, "a=ice-pwd:"));
        unique(&mut call_ids, "Call-ID", line(&inv, "Call-ID: "));
        unique(&mut tags, "tag", param(line(&inv, "From: "), "tag="));
        unique(
            &mut branches,
            "branch",
            param(line(&inv, "Via: "), "branch="),
        );
        // Toward A: the tag of our 180.
        let ringing =
            h.a.wire
                .iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .find(|m| m.starts_with("SIP/2.0 180"))
                .expect("A got 180");
        unique(&mut tags, "tag", param(line(&ringing, "To: "), "tag="));

        for p in [&mut h.a, &mut h.b1] {
            p.wire.clear();
            p.sent.clear();
            p.events.clear();
        }
        h.events.clear();
        h.now += Duration::from_millis(1);
    }
    assert_eq!(keys.len(), CALLS);
    assert_eq!(h.sbc.active_calls(), CALLS);
    // Identifiers and secrets never coincide (64-bit identifiers vs secret prefixes).
    let secrets: HashSet<&str> = keys
        .iter()
        .chain(&salts)
        .chain(&pwds)
        .chain(&ufrags)
        .map(|s| &s[..16])
        .collect();
    for id in call_ids.iter().chain(&tags).chain(&branches) {
        let hexes = id
            .split(|c: char| !c.is_ascii_hexdigit())
            .filter(|s| s.len() >= 16);
        for h in hexes {
            assert!(
                !secrets.contains(&h[h.len() - 16..]),
                "{id} shares bytes with a secret"
            );
        }
    }
}

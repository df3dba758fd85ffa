//! Microsoft Teams Direct Routing end to end: the real `portcullis` binary against the
//! mock Teams proxies of `teams_mock` (test CA made with rcgen, TLS on loopback, names
//! resolved through `[teams.resolve]`), calls driven by sipp over UDP on the trunk side.
//!
//! - OPTIONS every interval over TLS with our client certificate, in the form Teams
//!   expects (FQDN in Request-URI, From and Contact; Max-Forwards; User-Agent), one
//!   connection per proxy reused, health visible in the admin API and the metrics;
//! - a proxy that stops answering goes down and new calls go to the next proxy; back
//!   when it answers again;
//! - certificates are checked both ways (untrusted root, wrong name), and Teams' own
//!   OPTIONS are answered `200` with `Allow` and `Supported`.
//!
//! Media and REFER from Teams are in `teams_media.rs`, reloads in `teams_reload.rs`.
//! Needs `sipp` and `promtool` (Debian packages `sip-tester` and `prometheus`).
#![allow(clippy::print_stderr)]

mod common_admin;
mod common_teams;
mod sipp_harness;
mod teams_mock;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common_admin::promtool_check;
use common_teams::{admin_get, config, metric, proxy_state, teams_api, world, Ports};
use sipp_harness::{serial, Appliance, Sipp};
use teams_mock::{header, probe_options, wait_for, MockProxy, Pki, PROXIES, SBC_FQDN};

/// One call from the carrier (sipp UAC over UDP) to `called`; panics unless it completes.
fn call(dir: &std::path::Path, p: Ports, name: &str, called: &str) {
    let args: Vec<String> = [
        "-sn",
        "uac",
        &format!("127.0.0.1:{}", p.sip),
        "-i",
        "127.0.0.1",
        "-p",
        &p.carrier.to_string(),
        "-mp",
        &p.sipp_media.to_string(),
        "-s",
        called,
        "-m",
        "1",
        "-d",
        "300",
        "-nostdin",
        "-timeout",
        "30s",
        "-timeout_error",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut s = Sipp::start(name, dir, &args);
    let st = s.wait(Duration::from_secs(40));
    assert!(
        st.success(),
        "sipp call {name} failed ({st}):\n{}",
        s.output()
    );
}

#[test]
fn options_pings_carry_the_fqdn_over_mutual_tls() {
    let p = Ports::for_test(0);
    let w = world(p);
    let app = Appliance::start(&config(p, &w.sbc, &w.pki.ca_pem, "1s", 2));
    wait_for("3 OPTIONS at every proxy", Duration::from_secs(20), || {
        w.mocks.iter().all(|m| m.seen().options.len() >= 3)
    });
    let contact = format!("<sip:{SBC_FQDN}:{};transport=tls>", p.tls);
    for (m, name) in w.mocks.iter().zip(PROXIES) {
        let seen = m.seen();
        // TLS with our client certificate, one connection reused for every ping.
        assert!(
            seen.client_names
                .iter()
                .all(|n| n == &vec![SBC_FQDN.to_owned()]),
            "{name}: client certificates {:?}",
            seen.client_names
        );
        assert_eq!(seen.connections, 1, "{name}: one connection, reused");
        for o in &seen.options {
            let t = &o.text;
            assert!(
                t.starts_with(&format!(
                    "OPTIONS sip:{name}:5061;transport=tls SIP/2.0\r\n"
                )),
                "{name}: request line of\n{t}"
            );
            assert_eq!(header(t, "contact"), Some(contact.as_str()), "{t}");
            assert!(
                header(t, "from").is_some_and(|f| f.starts_with(&format!("<sip:{SBC_FQDN}:"))),
                "{t}"
            );
            assert_eq!(header(t, "max-forwards"), Some("70"), "{t}");
            assert!(
                header(t, "user-agent").is_some_and(|u| u.starts_with("Portcullis/")),
                "{t}"
            );
            assert!(header(t, "x-ms-sbc").is_some(), "{t}");
            assert!(
                header(t, "via")
                    .is_some_and(|v| v.starts_with(&format!("SIP/2.0/TLS {SBC_FQDN}:"))),
                "{t}"
            );
        }
        // Every interval (1 s): generous bounds for a loaded machine.
        for pair in seen.options.windows(2) {
            let gap = pair[1].at.duration_since(pair[0].at);
            assert!(
                gap >= Duration::from_millis(500) && gap <= Duration::from_millis(3000),
                "{name}: OPTIONS {gap:?} apart"
            );
        }
    }
    // Health in the admin API and the metrics.
    let v = teams_api(p);
    assert_eq!(v["configured"], true);
    assert_eq!(v["sbc_fqdn"], SBC_FQDN);
    assert_eq!(v["selected"], PROXIES[0], "{v}");
    for i in 0..3 {
        assert_eq!(proxy_state(&v, i).0, "up", "{v}");
        assert!(
            v["proxies"][i]["options_answered"].as_u64().unwrap_or(0) >= 1,
            "{v}"
        );
    }
    let text = admin_get(p, "/metrics");
    promtool_check(&text);
    for name in PROXIES {
        assert_eq!(
            metric(&text, "portcullis_teams_proxy_up", name),
            Some(1),
            "{text}"
        );
        assert!(
            metric(&text, "portcullis_teams_options_sent_total", name).unwrap_or(0) >= 3,
            "{text}"
        );
        assert_eq!(
            metric(&text, "portcullis_teams_options_misses_total", name),
            Some(0)
        );
    }
    assert_eq!(
        metric(&text, "portcullis_teams_proxy_selected", PROXIES[0]),
        Some(1)
    );
    // `portcullis status` shows the proxies.
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["status", "--admin", &format!("127.0.0.1:{}", p.admin)])
        .output()
        .expect("portcullis status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("new calls go to sip.pstnhub.microsoft.com"),
        "{text}"
    );
    assert!(text.contains("sip3.pstnhub.microsoft.com"), "{text}");
    drop(app);
}

#[test]
fn a_silent_proxy_goes_down_and_calls_fail_over_and_back() {
    let _lock = serial();
    let p = Ports::for_test(1);
    let w = world(p);
    let app = Appliance::start(&config(p, &w.sbc, &w.pki.ca_pem, "1s", 2));
    wait_for("every proxy answered", Duration::from_secs(20), || {
        w.mocks.iter().all(|m| !m.seen().options.is_empty())
    });
    let dir = app.dir.path();
    // While sip answers, calls go there, in E.164.
    call(dir, p, "call1", "0198765432");
    let inv = w.mocks[0].seen().invites;
    assert_eq!(inv.len(), 1, "the first call goes to sip");
    assert!(
        inv[0].text.starts_with("INVITE sip:+33198765432@"),
        "E.164 toward Teams:\n{}",
        inv[0].text
    );
    // Identity toward Teams: the proxy by name with its configured port (not the port
    // of its `[teams.resolve]` address) in the Request-URI and To; our FQDN with the
    // port we listen on in Contact and Via.
    let t = &inv[0].text;
    assert!(
        t.starts_with("INVITE sip:+33198765432@sip.pstnhub.microsoft.com:5061;transport=tls "),
        "{t}"
    );
    assert!(
        header(t, "to").is_some_and(|v| v.contains("@sip.pstnhub.microsoft.com:5061>")),
        "{t}"
    );
    assert_eq!(
        header(t, "contact"),
        Some(format!("<sip:sbc@{SBC_FQDN}:{};transport=tls>", p.tls).as_str()),
        "{t}"
    );
    assert!(
        header(t, "via")
            .is_some_and(|v| v.starts_with(&format!("SIP/2.0/TLS {SBC_FQDN}:{};", p.tls))),
        "{t}"
    );
    assert!(w.mocks[1].seen().invites.is_empty());

    // sip stops answering: down after 2 misses (about 2-3 intervals).
    w.mocks[0].set_answering(false);
    let stopped = Instant::now();
    wait_for("sip down in the admin API", Duration::from_secs(15), || {
        proxy_state(&teams_api(p), 0).0 == "down"
    });
    let v = teams_api(p);
    assert_eq!(v["selected"], PROXIES[1], "{v}");
    assert!(
        v["proxies"][0]["options_missed"].as_u64().unwrap_or(0) >= 2,
        "{v}"
    );
    let text = admin_get(p, "/metrics");
    assert_eq!(
        metric(&text, "portcullis_teams_proxy_up", PROXIES[0]),
        Some(0)
    );
    assert_eq!(
        metric(&text, "portcullis_teams_proxy_selected", PROXIES[1]),
        Some(1)
    );
    assert!(metric(&text, "portcullis_teams_options_misses_total", PROXIES[0]).unwrap_or(0) >= 2);
    eprintln!("sip seen down {:?} after it went silent", stopped.elapsed());
    call(dir, p, "call2", "0198765433");
    assert_eq!(
        w.mocks[0].seen().invites.len(),
        1,
        "no new call to the silent sip"
    );
    let inv2 = w.mocks[1].seen().invites;
    assert_eq!(inv2.len(), 1, "the next call goes to sip2");
    assert!(inv2[0].text.starts_with("INVITE sip:+33198765433@"));
    assert!(
        w.mocks[1].seen().byes >= 1,
        "the call through sip2 ended with BYE"
    );

    // sip answers again: up at its next ping, calls go back to it.
    w.mocks[0].set_answering(true);
    wait_for("sip up and selected again", Duration::from_secs(10), || {
        let v = teams_api(p);
        proxy_state(&v, 0) == ("up".to_owned(), true)
    });
    call(dir, p, "call3", "0198765434");
    assert_eq!(w.mocks[0].seen().invites.len(), 2, "back to sip");
    assert_eq!(w.mocks[1].seen().invites.len(), 1);
    let text = admin_get(p, "/metrics");
    let failovers = text
        .lines()
        .find_map(|l| l.strip_prefix("portcullis_teams_failovers_total "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(failovers >= Some(2), "{text}");
    drop(app);
}

#[test]
fn certificates_are_checked_in_both_directions() {
    let p = Ports::for_test(2);
    let pki = Pki::new("ms");
    let rogue = Pki::new("rogue");
    let sbc = pki.leaf("sbc", &[SBC_FQDN]);
    // sip: right name, untrusted root. sip2: trusted root, wrong name. sip3: good.
    let certs = [
        rogue.leaf("proxy0", &[PROXIES[0]]),
        pki.leaf("proxy1", &["sip.evil.example"]),
        pki.leaf("proxy2", &[PROXIES[2]]),
    ];
    let mocks: Vec<MockProxy> = (0..3)
        .map(|i| MockProxy::start(PROXIES[i], p.proxy(i), &certs[i], &pki.ca_pem))
        .collect();
    let app = Appliance::start(&config(p, &sbc, &pki.ca_pem, "1s", 1));
    wait_for(
        "sip and sip2 refused, sip3 up",
        Duration::from_secs(20),
        || {
            let v = teams_api(p);
            proxy_state(&v, 0).0 == "down"
                && proxy_state(&v, 1).0 == "down"
                && proxy_state(&v, 2) == ("up".to_owned(), true)
        },
    );
    for m in &mocks[..2] {
        let seen = m.seen();
        assert!(
            seen.options.is_empty(),
            "{}: no OPTIONS over a refused TLS",
            m.name
        );
        assert!(seen.connections >= 1, "{}: we did try", m.name);
    }
    assert!(!mocks[2].seen().options.is_empty());
    assert!(app.log().contains("Teams proxy down"), "{}", app.log());

    // Inbound: a Teams proxy with a good certificate gets 200 with Allow and Supported.
    let good = pki.leaf("teams-client", &[PROXIES[0]]);
    let tls = SocketAddr::from(([127, 0, 0, 1], p.tls));
    let answer = probe_options(tls, SBC_FQDN, &pki.ca_pem, &good)
        .unwrap_or_else(|e| panic!("a good Teams client is accepted: {e}\n{}", app.log()));
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");
    assert!(
        header(&answer, "allow").is_some_and(|a| a.contains("INVITE")),
        "{answer}"
    );
    assert!(header(&answer, "supported").is_some(), "{answer}");
    // A wrong name (trusted root) and an untrusted root (right name) are refused.
    let wrong_name = pki.leaf("wrong-name", &["sip.evil.example"]);
    let untrusted = rogue.leaf("untrusted", &[PROXIES[0]]);
    for (what, leaf) in [("wrong name", &wrong_name), ("untrusted root", &untrusted)] {
        match probe_options(tls, SBC_FQDN, &pki.ca_pem, leaf) {
            Ok(a) => panic!("client with a {what} got an answer:\n{a}"),
            Err(e) => eprintln!("client with a {what} refused: {e}"),
        }
    }
    let text = admin_get(p, "/metrics");
    let count = |name: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert!(
        count("portcullis_sip_transport_tls_handshake_failures_total") >= 1,
        "{text}"
    );
    assert!(
        count("portcullis_sip_transport_tls_name_rejections_total") >= 1,
        "{text}"
    );
    drop(app);
}

//! Microsoft Teams Direct Routing end to end, reloads: the real `portcullis` binary
//! against the mock Teams proxies of `teams_mock`. A reload (SIGHUP) with a new `[teams]`
//! proxy list is followed at once, and a renewed client certificate is presented on the
//! connections opened after it.

mod common_teams;
mod sipp_harness;
mod teams_mock;

use std::time::Duration;

use common_teams::{admin_get, config, teams_api, world, Ports};
use sipp_harness::{serial, Appliance};
use teams_mock::{wait_for, Leaf, PROXIES, SBC_FQDN};

#[test]
fn reload_applies_a_new_teams_section() {
    let p = Ports::for_test(5);
    let w = world(p);
    let toml = config(p, &w.sbc, &w.pki.ca_pem, "1s", 2);
    let app = Appliance::start(&toml);
    wait_for("sip selected", Duration::from_secs(20), || {
        teams_api(p)["selected"] == PROXIES[0]
    });
    // New order, sip2 dropped: after SIGHUP the monitor follows the new list.
    let old_line = r#"proxies = ["sip.pstnhub.microsoft.com:5061", "sip2.pstnhub.microsoft.com:5061", "sip3.pstnhub.microsoft.com:5061"]"#;
    assert!(toml.contains(old_line));
    let new = toml
        .replace(
            old_line,
            r#"proxies = ["sip3.pstnhub.microsoft.com:5061", "sip.pstnhub.microsoft.com:5061"]"#,
        )
        .replace("\"sip2.pstnhub.microsoft.com\" = ", "# sip2 dropped = ");
    std::fs::write(&app.config_path, new).expect("rewrite config");
    let before = w.mocks[2].seen().options.len();
    app.signal("HUP");
    wait_for(
        "sip3 selected after reload",
        Duration::from_secs(15),
        || {
            let v = teams_api(p);
            v["selected"] == PROXIES[2] && v["proxies"].as_array().is_some_and(|a| a.len() == 2)
        },
    );
    wait_for("sip3 still pinged", Duration::from_secs(10), || {
        w.mocks[2].seen().options.len() > before + 1
    });
    // A ping already on the wire at the reload may still land: settle, then watch
    // for more than two intervals.
    std::thread::sleep(Duration::from_millis(500));
    let sip2_pings = w.mocks[1].seen().options.len();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        w.mocks[1].seen().options.len(),
        sip2_pings,
        "no more OPTIONS to the dropped sip2"
    );
    drop(app);
}

#[test]
fn reload_swaps_the_teams_client_certificate_for_new_connections() {
    let _lock = serial();
    let p = Ports::for_test(6);
    let w = world(p);
    // The SBC certificate (listener and Teams client) in files the test replaces in
    // place, as an operator renewing a certificate does.
    let live = Leaf {
        chain_pem: w.pki.dir.path().join("sbc-live.pem"),
        key_pem: w.pki.dir.path().join("sbc-live.key"),
    };
    std::fs::copy(&w.sbc.chain_pem, &live.chain_pem).expect("copy chain");
    std::fs::copy(&w.sbc.key_pem, &live.key_pem).expect("copy key");
    let app = Appliance::start(&config(p, &live, &w.pki.ca_pem, "1s", 2));
    wait_for(
        "sip pinged over mutual TLS",
        Duration::from_secs(20),
        || !w.mocks[0].seen().options.is_empty(),
    );
    let first = w.mocks[0].seen().client_names;
    assert_eq!(
        first,
        vec![vec![SBC_FQDN.to_owned()]],
        "the first certificate"
    );

    // Renewed: same FQDN, one more name so the mock can tell them apart.
    let renewed = w
        .pki
        .leaf("sbc-renewed", &[SBC_FQDN, "renewed.example.com"]);
    std::fs::copy(&renewed.chain_pem, &live.chain_pem).expect("copy chain");
    std::fs::copy(&renewed.key_pem, &live.key_pem).expect("copy key");
    app.signal("HUP");
    wait_for("reload done", Duration::from_secs(15), || {
        admin_get(p, "/metrics")
            .lines()
            .any(|l| l == "portcullis_config_generation 2")
    });
    // The connection open at the reload is kept (calls and pings go on over it) ...
    let handshakes = w.mocks[0].seen().client_names.len();
    let pings = w.mocks[0].seen().options.len();
    wait_for("sip still pinged", Duration::from_secs(10), || {
        w.mocks[0].seen().options.len() > pings + 1
    });
    assert_eq!(
        w.mocks[0].seen().client_names.len(),
        handshakes,
        "the reload did not reopen the connection"
    );
    // ... and a new connection presents the renewed certificate.
    w.mocks[0].close_connections();
    wait_for(
        "reconnected with the renewed certificate",
        Duration::from_secs(20),
        || w.mocks[0].seen().client_names.len() > handshakes,
    );
    let names = w.mocks[0].seen().client_names;
    assert_eq!(
        names[handshakes],
        vec![SBC_FQDN.to_owned(), "renewed.example.com".to_owned()],
        "{names:?}\n{}",
        app.log()
    );
    assert!(
        !app.log().contains("take effect at the next restart"),
        "{}",
        app.log()
    );
    drop(app);
}

//! Signals on a running appliance with real sipp peers:
//! SIGTERM with calls up (every call gets a BYE and a CDR, exit 0), SIGHUP mid-call
//! (media keeps flowing, the next call follows the new route, a broken file is refused
//! and the running configuration kept).

mod common_echo_call;
mod sipp_harness;

use std::time::Duration;

use common_echo_call::start_echo_call;
use sipp_harness::*;

#[test]
fn sigterm_releases_every_call_with_bye_and_cdr() {
    let _serial = serial();
    let p = Ports::for_test(4);
    let mut app = Appliance::start(&config(p, ROUTE_LEFT_RIGHT));
    let dir = app.dir.path().to_path_buf();
    let uas_sc = scenario(&dir, "uas_wait_bye.xml");
    let uac_sc = scenario(&dir, "uac_wait_bye.xml");
    let mut uas = start_uas(&dir, p, &["-sf", uas_sc.to_str().unwrap(), "-m", "5"]);
    let target = sip_target(p);
    let mut uac = start_uac(
        &dir,
        p,
        &[
            "-sf",
            uac_sc.to_str().unwrap(),
            &target,
            "-m",
            "5",
            "-r",
            "10",
        ],
    );
    // All five calls answered (the log names each).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while app.log().matches("call answered").count() < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "calls not answered:\n{}",
            uac.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(app.cdrs().is_empty(), "no call may end before SIGTERM");
    app.signal("TERM");
    // drain_timeout is 3 s in the test config, then BYE to everyone.
    let st = app.wait_exit(Duration::from_secs(15));
    assert!(st.success(), "portcullis exit status {st}:\n{}", app.log());
    uac.wait_ok(Duration::from_secs(15), "uac did not get its BYEs");
    uas.wait_ok(Duration::from_secs(15), "uas did not get its BYEs");
    let cdrs = app.cdrs();
    assert_eq!(cdrs.len(), 5, "one CDR per call");
    for c in &cdrs {
        assert_eq!(end_kind(c), "shutdown", "{c}");
    }
}

#[test]
fn sighup_reroutes_new_calls_keeps_media_and_refuses_broken_files() {
    let _serial = serial();
    let p = Ports::for_test(5);
    let app = Appliance::start(&config(p, ROUTE_LEFT_RIGHT));
    let dir = app.dir.path().to_path_buf();
    pcaps(&dir);
    let target = sip_target(p);

    // A long call (≈ 9 s of G.711 and DTMF) to `right`.
    let (mut uas1, mut long) = start_echo_call(&dir, p, &target, p.left, ("uas1", "long"));
    std::thread::sleep(Duration::from_secs(2));

    // Reload: calls from left now go to right2.
    let rerouted = config(
        p,
        "[[route]]\nname = \"left-to-right2\"\nfrom = [\"left\"]\ntargets = [\"right2\"]\n",
    );
    std::fs::write(&app.config_path, rerouted).unwrap();
    app.signal("HUP");
    wait_log(&app, "configuration reloaded", 1);

    let mut uas2 = Sipp::peer(
        "uas2",
        &dir,
        "127.0.0.1",
        p.right2,
        p.sipp_media + 150,
        &["-sn", "uas", "-m", "2"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut next = Sipp::peer(
        "next",
        &dir,
        "127.0.0.1",
        p.left + 100,
        p.sipp_media + 50,
        &["-sn", "uac", &target, "-m", "1"],
    );
    next.wait_ok(Duration::from_secs(30), "call after reload failed");

    // A broken file is refused; the running configuration stays.
    std::fs::write(
        &app.config_path,
        config(
            p,
            "[[route]]\nname = \"x\"\nfrom = [\"left\"]\ntargets = [\"nope\"]\n",
        ),
    )
    .unwrap();
    app.signal("HUP");
    wait_log(&app, "reload refused", 1);
    let mut again = Sipp::peer(
        "again",
        &dir,
        "127.0.0.1",
        p.left + 101,
        p.sipp_media + 60,
        &["-sn", "uac", &target, "-m", "1"],
    );
    again.wait_ok(
        Duration::from_secs(30),
        "call after a refused reload failed",
    );
    uas2.wait_ok(Duration::from_secs(10), "uas2");

    long.wait_ok(Duration::from_secs(40), "long call failed");
    uas1.wait_ok(Duration::from_secs(10), "uas1");

    let cdrs = app.wait_cdrs(3, Duration::from_secs(10));
    assert_eq!(cdrs.len(), 3);
    let long_cdr = cdrs
        .iter()
        .find(|c| c["b_leg"]["trunk"] == "right")
        .expect("the long call's CDR");
    for leg in ["a", "b"] {
        for dir in ["rx_packets", "tx_packets"] {
            let n = long_cdr["media"][leg][dir].as_u64().unwrap_or(0);
            assert!(
                n >= 200,
                "media stopped across the reload ({leg}.{dir} = {n}): {long_cdr}"
            );
        }
    }
    let to_right2 = cdrs
        .iter()
        .filter(|c| c["b_leg"]["trunk"] == "right2")
        .count();
    assert_eq!(
        to_right2, 2,
        "both calls after the reload went to right2: {cdrs:?}"
    );
}

fn wait_log(app: &Appliance, needle: &str, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.log().matches(needle).count() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "no {needle:?} in log:\n{}",
            app.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

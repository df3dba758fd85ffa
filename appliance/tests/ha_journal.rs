//! CDRs exactly once when a node of the pair restarts while Redis is unreachable: node A
//! dies with two answered calls, node B takes them over, Redis goes away (saving its
//! data set), A comes back. A cannot tell whether the pair carried its calls on, so it
//! writes no `restart` record and keeps them aside (`cdr.jsonl.journal.unconfirmed`);
//! once Redis answers again it finds them carried on and drops them. The calls end
//! through B: one CDR each, on B, marked with the takeover; none on A.
//! Ports: `Ports::for_test(119)`, Redis on its `right2 + 5`.

#[path = "sipp_harness/mod.rs"]
mod sipp_harness;

#[path = "common_ha/mod.rs"]
mod common_ha;

use std::time::Duration;

use common_ha::*;
use sipp_harness::{serial, sip_target, start_uac, start_uas, Ports};

#[test]
fn a_node_restarting_while_redis_is_down_writes_no_second_cdr() {
    let _lock = serial();
    let p = Ports::for_test(119);
    let redis = Redis::start(p.right2 + 5);
    let port = redis.port;
    let shared = Shared::new();
    let a = start_node(
        tempfile::tempdir().unwrap(),
        &node_config(p, port, &shared, "active", "b"),
    );
    let sipp_dir = tempfile::tempdir().unwrap();
    let mut uas = start_uas(sipp_dir.path(), p, &["-sn", "uas", "-m", "2"]);
    let mut uac = start_uac(
        sipp_dir.path(),
        p,
        &[
            "-sn",
            "uac",
            "-d",
            "25000",
            "-m",
            "2",
            "-l",
            "2",
            "-r",
            "10",
            &sip_target(p),
        ],
    );
    assert!(
        wait_for(Duration::from_secs(10), || redis
            .keys("portcullis:call:*")
            .len()
            == 2),
        "two answered calls replicated"
    );
    let dir_a = kill9(a);
    let b = start_node(
        tempfile::tempdir().unwrap(),
        &node_config(p, port, &shared, "standby", "a"),
    );
    let report = notify_master(p, &shared);
    assert_eq!(report["restored"], 2, "{report}");

    // Redis goes away; A comes back meanwhile, with its journal holding both calls open.
    let redis_dir = redis.shutdown_saving();
    let (a_cfg, p_a) = second_node_config(p, port, &shared, "standby", "b");
    let a = start_node(dir_a, &a_cfg);
    let unconfirmed = a.dir.path().join("cdr.jsonl.journal.unconfirmed");
    assert!(
        a.log().contains("cannot be confirmed"),
        "A says why it waits:\n{}",
        a.log()
    );
    assert!(
        a.cdrs().is_empty(),
        "no restart record while Redis cannot say: {:?}",
        a.cdrs()
    );
    assert!(unconfirmed.exists(), "the calls kept aside");
    assert_eq!(ha_status(p_a)["journal_deferred"], 2);

    // Redis is back with its data: A learns the pair carried both calls on.
    let redis = Redis::start_in(port, redis_dir);
    assert!(
        wait_for(Duration::from_secs(60), || !unconfirmed.exists()),
        "A settled the calls it kept aside:\n{}",
        a.log()
    );
    assert!(a.log().contains("deferred CDRs settled"), "{}", a.log());
    assert!(a.cdrs().is_empty(), "no restart record: {:?}", a.cdrs());

    // The calls end through B: one CDR each, there only.
    uac.wait_ok(Duration::from_secs(60), "callers hung up through B");
    uas.wait_ok(Duration::from_secs(30), "callees got the BYEs");
    let cdrs = b.wait_cdrs(2, Duration::from_secs(10));
    assert_eq!(cdrs.len(), 2, "{cdrs:?}");
    assert_survivors(&cdrs, "caller");
    assert!(a.cdrs().is_empty(), "{:?}", a.cdrs());
    assert!(
        wait_for(Duration::from_secs(10), || redis
            .keys("portcullis:call:*")
            .is_empty()),
        "ended calls left Redis"
    );
}

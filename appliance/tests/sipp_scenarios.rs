//! Call flows through portcullis with our own sipp scenarios (tests/scenarios):
//! each test asserts sipp's outcome on both sides and the CDR's end reason.

mod sipp_harness;

use std::path::Path;
use std::time::Duration;

use sipp_harness::*;

const FAILOVER: &str = r#"[[route]]
name = "left-to-right-then-right2"
from = ["left"]
targets = ["right", "right2"]
"#;

/// A scenario with `__STATUS__` replaced by `status`.
fn with_status(dir: &Path, name: &str, status: u16) -> String {
    let src = scenario(dir, name);
    let text = std::fs::read_to_string(&src)
        .unwrap()
        .replace("__STATUS__", &status.to_string());
    let dst = dir.join(format!("{status}-{name}"));
    std::fs::write(&dst, text).unwrap();
    dst.to_string_lossy().into_owned()
}

struct Flow {
    uac: Vec<String>,
    uas: Vec<String>,
    /// Optional second UAS on `right2`.
    uas2: Option<Vec<String>>,
}

/// Runs one call: UAS(es) first, then the UAC; both must exit 0. Returns the CDR.
fn one_call(app: &Appliance, p: Ports, flow: &Flow) -> serde_json::Value {
    let dir = app.dir.path();
    let uas_args = |port: u16, media: u16, a: &[String]| {
        let extra: Vec<&str> = a.iter().map(String::as_str).collect();
        sipp_args("127.0.0.1", port, media, &extra)
    };
    let mut uas = Sipp::start(
        "uas",
        dir,
        &uas_args(p.right, p.sipp_media + 100, &flow.uas),
    );
    let mut uas2 = flow
        .uas2
        .as_ref()
        .map(|a| Sipp::start("uas2", dir, &uas_args(p.right2, p.sipp_media + 150, a)));
    std::thread::sleep(Duration::from_millis(300));
    let mut uac_a = flow.uac.clone();
    uac_a.push(format!("127.0.0.1:{}", p.sip));
    let mut uac = Sipp::start("uac", dir, &uas_args(p.left, p.sipp_media, &uac_a));
    let st = uac.wait(Duration::from_secs(40));
    assert!(st.success(), "uac failed ({st}):\n{}", uac.output());
    let st = uas.wait(Duration::from_secs(20));
    assert!(st.success(), "uas failed ({st}):\n{}", uas.output());
    if let Some(u) = uas2.as_mut() {
        let st = u.wait(Duration::from_secs(20));
        assert!(st.success(), "uas2 failed ({st}):\n{}", u.output());
    }
    let cdrs = app.wait_cdrs(1, Duration::from_secs(10));
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    cdrs.into_iter().next().unwrap_or_default()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

/// A scenario file of tests/scenarios, by its path in the test's directory.
fn file(dir: &Path, name: &str) -> String {
    scenario(dir, name).to_string_lossy().into_owned()
}

/// One call through a fresh appliance (port block `n`, route left → right), UAC and UAS
/// each running the one scenario file `uac` and `uas` make in the test's directory.
fn scripted_call(
    n: u16,
    uac: impl FnOnce(&Path) -> String,
    uas: impl FnOnce(&Path) -> String,
) -> serde_json::Value {
    let _serial = serial();
    let p = Ports::for_test(n);
    let app = Appliance::start(&config(p, ROUTE_LEFT_RIGHT));
    let dir = app.dir.path();
    let (uac, uas) = (uac(dir), uas(dir));
    one_call(
        &app,
        p,
        &Flow {
            uac: s(&["-sf", &uac, "-m", "1"]),
            uas: s(&["-sf", &uas, "-m", "1"]),
            uas2: None,
        },
    )
}

#[test]
fn bye_from_caller() {
    let _serial = serial();
    let p = Ports::for_test(10);
    let app = Appliance::start(&config(p, ROUTE_LEFT_RIGHT));
    let c = one_call(
        &app,
        p,
        &Flow {
            uac: s(&["-sn", "uac", "-m", "1"]),
            uas: s(&["-sn", "uas", "-m", "1"]),
            uas2: None,
        },
    );
    assert_eq!(end_kind(&c), "normal_clearing", "{c}");
    assert_eq!(c["end_reason"]["by"], "caller", "{c}");
    assert_eq!(c["final_status"], 200, "{c}");
}

#[test]
fn bye_from_callee() {
    let c = scripted_call(
        11,
        |d| file(d, "uac_wait_bye.xml"),
        |d| file(d, "uas_callee_bye.xml"),
    );
    assert_eq!(end_kind(&c), "normal_clearing", "{c}");
    assert_eq!(c["end_reason"]["by"], "callee", "{c}");
}

#[test]
fn busy_486_is_relayed() {
    let c = scripted_call(
        12,
        |d| with_status(d, "uac_expect_status.xml", 486),
        |d| with_status(d, "uas_reply_status.xml", 486),
    );
    assert_eq!(end_kind(&c), "rejected", "{c}");
    assert_eq!(c["end_reason"]["status"], 486, "{c}");
}

#[test]
fn cancel_while_ringing() {
    let c = scripted_call(
        13,
        |d| file(d, "uac_cancel.xml"),
        |d| file(d, "uas_ring_cancelled.xml"),
    );
    assert_eq!(end_kind(&c), "cancelled", "{c}");
}

#[test]
fn service_unavailable_fails_over_to_the_second_trunk() {
    let _serial = serial();
    let p = Ports::for_test(14);
    let app = Appliance::start(&config(p, FAILOVER));
    let dir = app.dir.path();
    let uas = with_status(dir, "uas_reply_status.xml", 503);
    let c = one_call(
        &app,
        p,
        &Flow {
            uac: s(&["-sn", "uac", "-m", "1"]),
            uas: s(&["-sf", &uas, "-m", "1"]),
            uas2: Some(s(&["-sn", "uas", "-m", "1"])),
        },
    );
    assert_eq!(end_kind(&c), "normal_clearing", "{c}");
    assert_eq!(c["b_leg"]["trunk"], "right2", "{c}");
}

#[test]
fn decline_603_stops_failover() {
    let _serial = serial();
    let p = Ports::for_test(15);
    let app = Appliance::start(&config(p, FAILOVER));
    let dir = app.dir.path().to_path_buf();
    let uac = with_status(&dir, "uac_expect_status.xml", 603);
    let uas = with_status(&dir, "uas_reply_status.xml", 603);
    // A UAS on right2 that must never see an INVITE.
    let never = Sipp::start(
        "never",
        &dir,
        &sipp_args(
            "127.0.0.1",
            p.right2,
            p.sipp_media + 150,
            &["-sn", "uas", "-trace_msg"],
        ),
    );
    let c = one_call(
        &app,
        p,
        &Flow {
            uac: s(&["-sf", &uac, "-m", "1"]),
            uas: s(&["-sf", &uas, "-m", "1"]),
            uas2: None,
        },
    );
    drop(never);
    assert_eq!(end_kind(&c), "rejected", "{c}");
    assert_eq!(c["end_reason"]["status"], 603, "{c}");
    let got_invite = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("uas_")
                && n.ends_with("_messages.log")
                && std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .contains("INVITE sip:")
        });
    assert!(
        !got_invite,
        "603 must stop failover, but right2 got an INVITE"
    );
}

#[test]
fn udp_in_tcp_out() {
    let _serial = serial();
    let p = Ports::for_test(16);
    let toml = config(p, ROUTE_LEFT_RIGHT).replace(
        &format!("address = \"127.0.0.1:{}\"\nacl", p.right),
        &format!(
            "address = \"127.0.0.1:{}\"\ntransport = \"tcp\"\nacl",
            p.right
        ),
    );
    let app = Appliance::start(&toml);
    let c = one_call(
        &app,
        p,
        &Flow {
            uac: s(&["-sn", "uac", "-m", "1"]),
            uas: s(&["-sn", "uas", "-t", "t1", "-m", "1"]),
            uas2: None,
        },
    );
    assert_eq!(end_kind(&c), "normal_clearing", "{c}");
    assert_eq!(c["b_leg"]["trunk"], "right", "{c}");
}

#[test]
fn early_media_183_reaches_the_caller_anchored() {
    let _serial = serial();
    let p = Ports::for_test(17);
    let app = Appliance::start(&config(p, ROUTE_LEFT_RIGHT));
    let dir = app.dir.path().to_path_buf();
    let uas = scenario(&dir, "uas_early_media.xml");
    let c = one_call(
        &app,
        p,
        &Flow {
            uac: s(&["-sn", "uac", "-m", "1", "-trace_msg"]),
            uas: s(&["-sf", uas.to_str().unwrap(), "-m", "1"]),
            uas2: None,
        },
    );
    assert_eq!(end_kind(&c), "normal_clearing", "{c}");
    let log = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("uac_") && n.ends_with("_messages.log")
        })
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .expect("uac message log");
    let progress = log
        .split("SIP/2.0 183")
        .nth(1)
        .expect("the caller got the 183");
    let port: u16 = progress
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|x| x.parse().ok())
        .expect("183 carries SDP");
    assert!(
        (p.media_min..=p.media_min + 255).contains(&port),
        "183 SDP not anchored on portcullis (port {port})"
    );
}

#[test]
fn reinvite_hold_and_resume() {
    let c = scripted_call(
        18,
        |d| file(d, "uac_hold_resume.xml"),
        |d| file(d, "uas_reinvite.xml"),
    );
    assert_eq!(end_kind(&c), "normal_clearing", "{c}");
    assert_eq!(c["end_reason"]["by"], "caller", "{c}");
}

#[test]
fn reliable_provisional_prack() {
    let c = scripted_call(
        19,
        |d| file(d, "uac_prack.xml"),
        |d| file(d, "uas_prack.xml"),
    );
    assert_eq!(end_kind(&c), "normal_clearing", "{c}");
}

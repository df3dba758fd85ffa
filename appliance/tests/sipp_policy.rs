//! Header policy through the appliance, checked at a real SIP peer: a sipp UAC (the
//! `left` PBX, trusted) sends Diversion, History-Info, P-Asserted-Identity,
//! User-to-User and two X- headers; the sipp UAS (the `right` carrier, trusted)
//! asserts with regular expressions what it gets: numbers translated by the route's
//! rules with the SBC's host, the X- header the PBX's rule keeps, the one nothing
//! keeps dropped, the header the carrier's rule adds, and no PBX host anywhere.

mod sipp_harness;

use std::time::Duration;

use sipp_harness::*;

const ROUTE: &str = r#"[[route]]
name = "pbx-to-carrier"
from = ["left"]
translate_called = [{ strip_prefix = "00" }, { add_prefix = "+" }]
translate_calling = [{ regex = "^0", replace = "+49" }]
targets = ["right"]
"#;

/// The harness configuration with the trunks' policy keys added.
fn policy_config(p: Ports) -> String {
    let base = config(p, ROUTE);
    let left = format!("name = \"left\"\naddress = \"127.0.0.1:{}\"\n", p.left);
    let right = "acl = [\"127.0.0.2\"]\n";
    assert!(base.contains(&left) && base.contains(right));
    base.replacen(
        &left,
        &format!(
            "{left}trusted = true\n\n[[trunk.headers]]\naction = \"keep\"\nname = \"X-Customer\"\ndirection = \"inbound\"\n"
        ),
        1,
    )
    .replacen(
        right,
        &format!(
            "{right}trusted = true\n\n[[trunk.headers]]\naction = \"add\"\nname = \"X-Origin\"\nvalue = \"${{trunk}}:${{calling}}\"\ndirection = \"outbound\"\n"
        ),
        1,
    )
}

/// The UAS's error and message logs (`-trace_err`, `-trace_msg`) in `dir`.
fn sipp_logs(dir: &std::path::Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("uas_assert_headers") && name.ends_with(".log") {
            out.push_str(&format!("---- {name} ----\n"));
            out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    out
}

#[test]
fn diversion_x_headers_and_pai_through_the_appliance() {
    let _serial = serial();
    let p = Ports::for_test_range2(0);
    let app = Appliance::start(&policy_config(p));
    let dir = app.dir.path();
    let uas_sf = scenario(dir, "uas_assert_headers.xml");
    let uac_sf = scenario(dir, "uac_policy_headers.xml");
    let mut uas = Sipp::start(
        "uas",
        dir,
        &sipp_args(
            "127.0.0.1",
            p.right,
            p.sipp_media + 100,
            &[
                "-sf",
                &uas_sf.to_string_lossy(),
                "-m",
                "1",
                "-trace_err",
                "-trace_msg",
            ],
        ),
    );
    std::thread::sleep(Duration::from_millis(300));
    let target = format!("127.0.0.1:{}", p.sip);
    let mut uac = Sipp::start(
        "uac",
        dir,
        &sipp_args(
            "127.0.0.1",
            p.left,
            p.sipp_media,
            &[
                "-sf",
                &uac_sf.to_string_lossy(),
                "-s",
                "0049301",
                "-m",
                "1",
                &target,
            ],
        ),
    );
    // The UAS ends first: a failed check stops it before it answers.
    let st = uas.wait(Duration::from_secs(60));
    let uas_ok = st.success();
    let st_uac = uac.wait(Duration::from_secs(60));
    assert!(
        uas_ok,
        "the UAS's header checks failed ({st}):\n{}\n{}\nuac:\n{}",
        uas.output(),
        sipp_logs(dir),
        uac.output()
    );
    assert!(st_uac.success(), "uac failed ({st_uac}):\n{}", uac.output());
    let cdrs = app.wait_cdrs(1, Duration::from_secs(10));
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    assert_eq!(cdrs[0]["called"]["translated"], "+49301", "{}", cdrs[0]);
}

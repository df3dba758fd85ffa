//! The README flow: `portcullis run` with no config (embedded default: SIP on
//! 127.0.0.1:5060, trunks left 127.0.0.1:5070 and right 127.0.0.1:5080), then
//! `sipp -sn uas -p 5080 -rtp_echo` and `sipp -sn uac_pcap -p 5070 127.0.0.1:5060 -m 5`.
//! Uses the fixed ports 5060/5070/5080/8080: serialized with the other interop tests.

mod sipp_harness;

use std::time::Duration;

use sipp_harness::*;

#[test]
fn readme_flow_with_the_embedded_default() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("unused.toml");
    let app = Appliance::start_in(dir, cfg, false);
    let d = app.dir.path().to_path_buf();
    pcaps(&d);
    let mut uas = Sipp::start(
        "uas",
        &d,
        &[
            "-sn",
            "uas",
            "-p",
            "5080",
            "-rtp_echo",
            "-nostdin",
            "-m",
            "5",
            "-timeout",
            "60s",
            "-timeout_error",
        ]
        .map(String::from),
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut uac = Sipp::start(
        "uac",
        &d,
        &[
            "-sn",
            "uac_pcap",
            "-p",
            "5070",
            "127.0.0.1:5060",
            "-m",
            "5",
            "-nostdin",
            "-timeout",
            "60s",
            "-timeout_error",
        ]
        .map(String::from),
    );
    let st = uac.wait(Duration::from_secs(60));
    assert!(st.success(), "uac_pcap failed ({st}):\n{}", uac.output());
    let st = uas.wait(Duration::from_secs(20));
    assert!(st.success(), "uas failed ({st}):\n{}", uas.output());
    let text = std::fs::read_to_string(d.join("portcullis-cdr.jsonl")).unwrap_or_default();
    let n = text.lines().count();
    assert_eq!(n, 5, "one CDR per call in ./portcullis-cdr.jsonl:\n{text}");
}

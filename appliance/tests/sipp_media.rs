//! Interop: RTP crosses the data plane both ways. `sipp -sn uac_pcap` plays G.711
//! through portcullis to `sipp -sn uas -rtp_echo`, which echoes it back; the CDR's
//! media counters show packets in both directions on both legs, and the UAS was only
//! ever told about portcullis's media address (nothing goes direct).

mod sipp_harness;

use std::time::Duration;

use sipp_harness::*;

/// `(c= address, m=audio port)` of the first SDP in a sipp message log.
fn first_sdp(log: &str) -> (String, u16) {
    let c = log
        .lines()
        .find_map(|l| l.trim().strip_prefix("c=IN IP4 "))
        .expect("c= line in the INVITE the UAS received")
        .trim()
        .to_owned();
    let port = log
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .expect("m=audio line");
    (c, port)
}

fn counter(c: &serde_json::Value, leg: &str, field: &str) -> u64 {
    c["media"][leg][field].as_u64().unwrap_or(0)
}

#[test]
fn rtp_relayed_both_ways_through_the_dataplane() {
    let _serial = serial();
    let p = Ports::for_test(2);
    let app = Appliance::start(&config(p, ROUTE_LEFT_RIGHT));
    let dir = app.dir.path().to_path_buf();
    pcaps(&dir);
    let mut uas = Sipp::start(
        "uas",
        &dir,
        &sipp_args(
            "127.0.0.1",
            p.right,
            p.sipp_media + 100,
            &["-sn", "uas", "-rtp_echo", "-m", "1", "-trace_msg"],
        ),
    );
    std::thread::sleep(Duration::from_millis(300));
    let target = format!("127.0.0.1:{}", p.sip);
    let mut uac = Sipp::start(
        "uac",
        &dir,
        &sipp_args(
            "127.0.0.1",
            p.left,
            p.sipp_media,
            &["-sn", "uac_pcap", &target, "-m", "1"],
        ),
    );
    let st = uac.wait(Duration::from_secs(40));
    assert!(
        st.success(),
        "sipp uac_pcap failed ({st}):\n{}",
        uac.output()
    );
    let st = uas.wait(Duration::from_secs(20));
    assert!(st.success(), "sipp uas failed ({st}):\n{}", uas.output());

    // What the UAS was told: portcullis's address and one of its media ports.
    let msgs = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("uas_") && n.ends_with("_messages.log"))
        })
        .expect("uas message log");
    let log = std::fs::read_to_string(msgs).unwrap();
    let (addr, port) = first_sdp(&log);
    assert_eq!(addr, "127.0.0.1");
    assert!(
        (p.media_min..=p.media_min + 255).contains(&port),
        "UAS told to send media to port {port}, not a portcullis media port"
    );
    assert_ne!(port, p.sipp_media, "UAC media port leaked to the UAS");

    let cdrs = app.wait_cdrs(1, Duration::from_secs(10));
    assert_eq!(cdrs.len(), 1);
    let c = &cdrs[0];
    assert_eq!(end_kind(c), "normal_clearing", "{c}");
    // A: the caller's leg (uac_pcap sends, gets the echo back); B: the callee's.
    let a_rx = counter(c, "a", "rx_packets");
    let a_tx = counter(c, "a", "tx_packets");
    let b_rx = counter(c, "b", "rx_packets");
    let b_tx = counter(c, "b", "tx_packets");
    note(&format!(
        "media a rx/tx {a_rx}/{a_tx}, b rx/tx {b_rx}/{b_tx}"
    ));
    assert!(a_rx >= 100, "caller RTP not received by the dataplane: {c}");
    assert!(b_tx >= 100, "caller RTP not relayed to the callee: {c}");
    assert!(b_rx >= 100, "echo not received from the callee: {c}");
    assert!(a_tx >= 100, "echo not relayed to the caller: {c}");
}

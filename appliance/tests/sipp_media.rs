//! Interop: RTP crosses the data plane both ways. `sipp -sn uac_pcap` plays G.711
//! through portcullis to `sipp -sn uas -rtp_echo`, which echoes it back; the CDR's
//! media counters show packets in both directions on both legs, and the UAS was only
//! ever told about portcullis's media address (nothing goes direct). With trunks in media
//! `bypass` the SDP crosses unchanged both ways and no media is anchored.

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
    relayed_both_ways(2, "127.0.0.1");
}

/// Media sockets on `::` are dual stack: IPv4 SDP, IPv4 peers, relayed both ways.
#[test]
fn rtp_relayed_both_ways_with_media_bound_dual_stack() {
    relayed_both_ways(28, "::");
}

fn relayed_both_ways(n: u16, bind_ip: &str) {
    let _serial = serial();
    let p = Ports::for_test(n);
    let toml = config(p, ROUTE_LEFT_RIGHT).replacen(
        "bind_ip = \"127.0.0.1\"",
        &format!("bind_ip = \"{bind_ip}\""),
        1,
    );
    assert!(toml.contains(&format!("bind_ip = \"{bind_ip}\"")));
    let app = Appliance::start(&toml);
    let dir = app.dir.path().to_path_buf();
    pcaps(&dir);
    let mut uas = start_uas(
        &dir,
        p,
        &["-sn", "uas", "-rtp_echo", "-m", "1", "-trace_msg"],
    );
    let target = sip_target(p);
    let mut uac = start_uac(&dir, p, &["-sn", "uac_pcap", &target, "-m", "1"]);
    uac.wait_ok(Duration::from_secs(40), "sipp uac_pcap failed");
    uas.wait_ok(Duration::from_secs(20), "sipp uas failed");

    // What the UAS was told: portcullis's address and one of its media ports.
    let log = msg_log(&dir, "uas_");
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
    // RTP statistics from the data plane: loss and jitter measured on both legs.
    for leg in ["a", "b"] {
        let lost = c["media"][leg]["lost"].as_u64();
        let rx = counter(c, leg, "rx_packets");
        assert!(
            lost.is_some_and(|l| l * 10 < rx),
            "leg {leg}: RTP loss measured and small: {c}"
        );
        assert!(
            c["media"][leg]["jitter_us"].is_u64(),
            "leg {leg}: jitter measured: {c}"
        );
    }
}

/// The bodies of the SIP messages in a sipp `-trace_msg` log whose first line starts
/// with `start` (line ends normalised to `\n`, trailing blank lines dropped).
fn bodies(log: &str, start: &str) -> Vec<String> {
    let log = log.replace('\r', "");
    log.split("\n-----------------------------------------------")
        .filter_map(|chunk| {
            // "<timestamp>\nUDP message sent (N bytes):\n\n<message>"
            let (_, msg) = chunk.split_once("\n\n")?;
            let msg = msg.trim_start_matches('\n');
            if !msg.starts_with(start) || !msg.contains("CSeq: 1 INVITE") {
                return None;
            }
            let (_, body) = msg.split_once("\n\n")?;
            Some(body.trim_end().to_owned())
        })
        .collect()
}

/// The `-trace_msg` log of the sipp run whose name starts with `prefix` in `dir`.
fn msg_log(dir: &std::path::Path, prefix: &str) -> String {
    let path = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with("_messages.log"))
        })
        .unwrap_or_else(|| panic!("no {prefix}*_messages.log in {}", dir.display()));
    std::fs::read_to_string(path).unwrap()
}

/// Trunks `left` and `right` in `media = "bypass"`: the caller's offer reaches the
/// UAS unchanged (its own media address and port) and the UAS's answer reaches the
/// caller unchanged; no media is anchored (the CDR carries no media counters).
#[test]
fn bypass_trunks_relay_sdp_unchanged() {
    let _serial = serial();
    let p = Ports::for_test(27);
    let toml = config(p, ROUTE_LEFT_RIGHT)
        .replace(
            &format!("address = \"127.0.0.1:{}\"\n", p.left),
            &format!("address = \"127.0.0.1:{}\"\nmedia = \"bypass\"\n", p.left),
        )
        .replace(
            &format!("address = \"127.0.0.1:{}\"\n", p.right),
            &format!("address = \"127.0.0.1:{}\"\nmedia = \"bypass\"\n", p.right),
        );
    assert_eq!(toml.matches("media = \"bypass\"").count(), 2, "{toml}");
    let app = Appliance::start(&toml);
    let dir = app.dir.path().to_path_buf();
    let mut uas = start_uas(&dir, p, &["-sn", "uas", "-m", "1", "-trace_msg"]);
    let target = sip_target(p);
    let mut uac = start_uac(&dir, p, &["-sn", "uac", &target, "-m", "1", "-trace_msg"]);
    uac.wait_ok(Duration::from_secs(40), "sipp uac failed");
    uas.wait_ok(Duration::from_secs(20), "sipp uas failed");

    let uac_log = msg_log(&dir, "uac_");
    let uas_log = msg_log(&dir, "uas_");
    let offer_sent = bodies(&uac_log, "INVITE ");
    let offer_got = bodies(&uas_log, "INVITE ");
    assert_eq!(offer_sent.len(), 1, "{uac_log}");
    assert_eq!(offer_got, offer_sent, "offer changed on the way");
    let (addr, port) = first_sdp(&offer_got[0]);
    assert_eq!((addr.as_str(), port), ("127.0.0.1", p.sipp_media));
    let answer_sent = bodies(&uas_log, "SIP/2.0 200");
    let answer_got = bodies(&uac_log, "SIP/2.0 200");
    assert_eq!(answer_sent.len(), 1, "{uas_log}");
    assert_eq!(answer_got, answer_sent, "answer changed on the way");
    // The UAS's own media port (`start_uas` gives it `sipp_media + 100`).
    assert_eq!(first_sdp(&answer_got[0]).1, p.sipp_media + 100);

    let cdrs = app.wait_cdrs(1, Duration::from_secs(10));
    assert_eq!(cdrs.len(), 1);
    assert_eq!(end_kind(&cdrs[0]), "normal_clearing", "{}", cdrs[0]);
    assert!(cdrs[0]["media"].is_null(), "no media anchored: {}", cdrs[0]);
}

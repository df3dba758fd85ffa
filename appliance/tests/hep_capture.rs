//! SIP capture to a HEP collector, checked by a real one: Kamailio's `sipcapture` module
//! (the collector Homer is built on) receives the appliance's HEP v3 packets and its
//! `event_route[sipcapture:request]` logs the fields it decoded. One sipp call through the
//! appliance must show up there, both legs, every packet with the right addresses, ports,
//! protocol and capture id, and the A leg's Call-ID as correlation id on both legs.

mod common_kamailio;
mod sipp_harness;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common_kamailio::{Kamailio, MODULES};
use sipp_harness::*;

const CAPTURE_ID: u32 = 4242;

/// Kamailio as a HEP collector on `port`, logging one line per decoded packet.
struct Collector(Kamailio);

impl Collector {
    fn start(dir: &Path, port: u16) -> Self {
        let db = dir.join("capture-db");
        std::fs::create_dir_all(&db).expect("db dir");
        let cfg = format!(
            r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
listen=udp:127.0.0.1:{port}
mpath="{MODULES}"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "db_text.so"
loadmodule "sipcapture.so"
modparam("sipcapture", "db_url", "text://{db}")
modparam("sipcapture", "hep_capture_on", 1)
modparam("sipcapture", "nonsip_hook", 1)
event_route[sipcapture:request] {{
  xlog("L_ALERT", "HEPPKT v=$hep(version) family=$hep(0x001) ipproto=$hep(0x002) src=$hep(0x003):$hep(0x007) dst=$hep(0x004):$hep(0x008) proto=$hep(0x00b) id=$hep(0x00c) corr=$hep(0x011) cid=$(hep(0x00f){{line.sw,Call-ID}}) first=$(hep(0x00f){{line.at,0}})\n");
  drop;
}}
request_route {{ drop; }}
"#,
            db = db.display()
        );
        Self(Kamailio::start(dir, "collector", &cfg, port))
    }

    /// The log (it quotes what it could not parse, binary included).
    fn log(&self) -> String {
        self.0.log()
    }

    /// Every decoded packet as field → value.
    fn packets(&self) -> Vec<BTreeMap<String, String>> {
        self.log()
            .lines()
            .filter_map(|l| l.split_once("HEPPKT ").map(|(_, r)| r))
            .map(|r| {
                let mut m = BTreeMap::new();
                let (head, first) = r.split_once(" first=").unwrap_or((r, ""));
                m.insert("first".to_owned(), first.trim().to_owned());
                // `cid=Call-ID: <id>`: the payload's Call-ID line.
                let (head, cid) = head.split_once(" cid=").unwrap_or((head, ""));
                let cid = cid.trim().trim_start_matches("Call-ID:").trim();
                m.insert("cid".to_owned(), cid.to_owned());
                for kv in head.split(' ') {
                    if let Some((k, v)) = kv.split_once('=') {
                        m.insert(k.to_owned(), v.trim().to_owned());
                    }
                }
                m
            })
            .collect()
    }
}

#[test]
fn every_sip_message_of_a_call_reaches_the_collector_correlated_by_the_a_leg() {
    let _serial = serial();
    let p = Ports::for_test(25);
    let hep_port = p.sip + 5;
    let work = tempfile::tempdir().expect("tempdir");
    let collector = Collector::start(work.path(), hep_port);
    let toml = format!(
        "{}\n[capture]\nhep = \"127.0.0.1:{hep_port}\"\ncapture_id = {CAPTURE_ID}\n",
        config(p, ROUTE_LEFT_RIGHT)
    );
    let app = Appliance::start(&toml);
    let d = app.dir.path().to_path_buf();
    let mut uas = start_uas(&d, p, &["-sn", "uas", "-m", "1"]);
    let mut uac = start_uac(&d, p, &["-sn", "uac", &sip_target(p), "-m", "1"]);
    uac.wait_ok(Duration::from_secs(60), "uac");
    uas.wait_ok(Duration::from_secs(20), "uas");
    let cdrs = app.wait_cdrs(1, Duration::from_secs(10));
    let a_cid = cdrs[0]["a_leg"]["call_id"]
        .as_str()
        .expect("A Call-ID")
        .to_owned();
    let b_cid = cdrs[0]["b_leg"]["call_id"]
        .as_str()
        .expect("B Call-ID")
        .to_owned();

    // Every message reaches the collector (INVITE, 100, 180, 200, ACK, BYE, 200 on
    // each leg, less what a peer leaves out): wait for the last BYE's 200 on both legs.
    let deadline = Instant::now() + Duration::from_secs(10);
    let pkts = loop {
        let pkts = collector.packets();
        let done = |cid: &str| {
            let leg = || pkts.iter().filter(|m| m["cid"] == cid);
            leg().any(|m| m["first"].starts_with("BYE "))
                && leg().any(|m| m["first"].starts_with("SIP/2.0 200"))
        };
        if done(&a_cid) && done(&b_cid) || Instant::now() > deadline {
            break pkts;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = collector.log();
    let leg = |cid: &str| -> Vec<&BTreeMap<String, String>> {
        pkts.iter().filter(|m| m["cid"] == cid).collect()
    };
    let (a, b) = (leg(&a_cid), leg(&b_cid));
    for (name, msgs) in [("A", &a), ("B", &b)] {
        for first in ["INVITE ", "SIP/2.0 200", "ACK ", "BYE "] {
            assert!(
                msgs.iter().any(|m| m["first"].starts_with(first)),
                "{name} leg: no {first:?} captured:\n{log}"
            );
        }
    }
    for m in a.iter().chain(&b) {
        assert_eq!(m["v"], "3", "{m:?}");
        assert_eq!(m["family"], "2", "{m:?}");
        assert_eq!(m["ipproto"], "17", "{m:?}");
        assert_eq!(m["proto"], "1", "{m:?}");
        assert_eq!(m["id"], CAPTURE_ID.to_string(), "{m:?}");
        assert_eq!(m["corr"], a_cid, "both legs correlate to the A leg: {m:?}");
    }
    // Directions: the caller's INVITE arrives at the appliance, ours leaves for the callee.
    let ours = format!("127.0.0.1:{}", p.sip);
    let invite_in = a
        .iter()
        .find(|m| m["first"].starts_with("INVITE "))
        .unwrap();
    assert_eq!(invite_in["src"], format!("127.0.0.1:{}", p.left));
    assert_eq!(invite_in["dst"], ours);
    let invite_out = b
        .iter()
        .find(|m| m["first"].starts_with("INVITE "))
        .unwrap();
    assert_eq!(invite_out["src"], ours);
    assert_eq!(invite_out["dst"], format!("127.0.0.1:{}", p.right));

    // The counters say what was sent.
    let metrics = ureq_metrics(p.admin);
    let sent = metric(&metrics, "portcullis_capture_sent_total");
    assert!(
        sent >= (a.len() + b.len()) as u64,
        "{sent} < captured:\n{metrics}"
    );
    assert_eq!(metric(&metrics, "portcullis_capture_dropped_total"), 0);
}

fn ureq_metrics(admin: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", admin)).expect("admin");
    use std::io::{Read, Write};
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    out
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} not exported:\n{text}"))
}

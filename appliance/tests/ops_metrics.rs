//! `/metrics` of the real binary: the families issue 6 lists that `admin_e2e.rs` does not
//! already watch move with real traffic (`promtool check metrics` accepts every scrape):
//!
//! - calls/s rises after calls;
//! - data plane packets and bytes per worker and direction move with RTP relayed both ways
//!   (`sipp -sn uac_pcap` → portcullis → `sipp -sn uas -rtp_echo`);
//! - drops per worker and reason move with a datagram sent to a media port no call owns;
//! - transaction timeouts move when the target trunk never answers (RFC 3261 Timer B,
//!   64·T1 = 32 s);
//! - ring depth and capacity, command-ring overflows, event-ring overflows, SRTP failures
//!   and the log filter are exported per worker.
//!
//! Rate-limit bans are driven by `sipvicious.rs`; config generation by `admin_e2e.rs`.
//! Needs `sipp` (Debian `sip-tester`) and `promtool` (Debian `prometheus`).

mod common_admin;
mod common_echo_call;
mod sipp_harness;

use std::time::{Duration, Instant};

use common_admin::{promtool_check, sample};
use common_echo_call::start_echo_call;
use sipp_harness::*;

fn scrape(p: Ports) -> String {
    let url = format!("http://127.0.0.1:{}/metrics", p.admin);
    let r = ureq::get(&url)
        .timeout(Duration::from_secs(5))
        .call()
        .unwrap_or_else(|e| panic!("GET /metrics: {e}"));
    let text = r.into_string().unwrap_or_else(|e| panic!("{e}"));
    promtool_check(&text);
    text
}

/// Sum of every sample of family `name` whose labels contain `with`.
fn sum(text: &str, name: &str, with: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix('{')?;
            let (labels, v) = rest.split_once("} ")?;
            labels.contains(with).then(|| v.parse::<f64>().ok())?
        })
        .sum()
}

/// Polls the metrics until `ok` holds (bounded); returns the last scrape.
fn wait_metrics(p: Ports, within: Duration, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    loop {
        let text = scrape(p);
        if ok(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {within:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Port of trunk `dead`: nothing listens there.
fn dead_port(p: Ports) -> u16 {
    p.sip + 5
}

#[test]
fn traffic_moves_every_listed_family() {
    let _serial = serial();
    let p = Ports::for_test(38);
    let routes = format!(
        r#"[[trunk]]
name = "dead"
address = "127.0.0.1:{dead}"
acl = ["127.0.0.4"]

[[route]]
name = "to-dead"
from = ["left"]
called_prefix = "9999"
targets = ["dead"]

{ROUTE_LEFT_RIGHT}"#,
        dead = dead_port(p)
    );
    let app = Appliance::start(&config(p, &routes));
    let dir = app.dir.path().to_path_buf();
    pcaps(&dir);
    let before = scrape(p);
    let target = format!("127.0.0.1:{}", p.sip);

    // A call toward a trunk that never answers: Timer B fires after 32 s. Started first
    // so its wait overlaps the rest.
    let dead_call_started = Instant::now();
    let _dead = Sipp::start(
        "uac-dead",
        &dir,
        &sipp_args(
            "127.0.0.1",
            p.left,
            p.sipp_media + 50,
            &["-sn", "uac", &target, "-s", "9999", "-m", "1"],
        ),
    );

    // RTP both ways through one call.
    let (mut uas, mut uac) = start_echo_call(&dir, p, &target, p.left + 6, ("uas", "uac"));
    // calls/s sees the attempts while they are recent (10 s window).
    wait_metrics(p, Duration::from_secs(15), "calls/s above 0", |t| {
        sample(t, "portcullis_calls_per_second").is_some_and(|v| v > 0.0)
    });
    let st = uac.wait(Duration::from_secs(40));
    assert!(st.success(), "uac_pcap ({st}):\n{}", uac.output());
    let st = uas.wait(Duration::from_secs(20));
    assert!(st.success(), "uas ({st}):\n{}", uas.output());

    // A datagram to a media port no call owns: dropped and counted with its reason.
    let stray = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    for _ in 0..3 {
        stray
            .send_to(b"not a call's packet", ("127.0.0.1", p.media_min + 250))
            .expect("send");
    }

    let after = wait_metrics(p, Duration::from_secs(10), "drops counted", |t| {
        sum(t, "portcullis_dataplane_drops_total", "worker=\"0\"")
            > sum(&before, "portcullis_dataplane_drops_total", "worker=\"0\"")
    });
    for series in [
        r#"portcullis_dataplane_packets_total{worker="0",direction="rx"}"#,
        r#"portcullis_dataplane_packets_total{worker="0",direction="tx"}"#,
        r#"portcullis_dataplane_bytes_total{worker="0",direction="rx"}"#,
        r#"portcullis_dataplane_bytes_total{worker="0",direction="tx"}"#,
    ] {
        let b = sample(&before, series).unwrap_or(0.0);
        let a = sample(&after, series).unwrap_or_else(|| panic!("no {series}:\n{after}"));
        // uac_pcap plays a few hundred packets; each is received and relayed twice (echo).
        assert!(a >= b + 100.0, "{series}: {b} -> {a}");
    }
    // Per-worker families present with their labels.
    for series in [
        r#"portcullis_dataplane_ring_depth{worker="0",ring="command"}"#,
        r#"portcullis_dataplane_ring_depth{worker="0",ring="event"}"#,
        r#"portcullis_dataplane_command_ring_overflows_total{worker="0"}"#,
        r#"portcullis_dataplane_event_ring_overflows_total{worker="0"}"#,
        r#"portcullis_dataplane_srtp_failures_total{worker="0"}"#,
        r#"portcullis_dataplane_uring_rearms_total{worker="0"}"#,
        r#"portcullis_dataplane_connect_failures_total{worker="0"}"#,
        r#"portcullis_dataplane_uring_enobufs_total{worker="0"}"#,
        r#"portcullis_log_filter_info{filter="info"}"#,
    ] {
        assert!(sample(&after, series).is_some(), "no {series}:\n{after}");
    }
    let cap = sample(&after, r#"portcullis_dataplane_ring_capacity{worker="0"}"#);
    assert!(cap.is_some_and(|c| c >= 1.0), "ring capacity {cap:?}");

    // Timer B on the INVITE toward `dead`.
    let left = Duration::from_secs(70).saturating_sub(dead_call_started.elapsed());
    let done = wait_metrics(p, left, "transaction timeout counted", |t| {
        sample(t, "portcullis_sip_transaction_timeouts_total").unwrap_or(0.0)
            > sample(&before, "portcullis_sip_transaction_timeouts_total").unwrap_or(0.0)
    });
    let failed = sample(
        &done,
        r#"portcullis_trunk_call_outcomes_total{trunk="left",outcome="failed"}"#,
    );
    assert!(
        failed.is_some_and(|v| v >= 1.0),
        "the timed-out call is a failed outcome:\n{done}"
    );
}

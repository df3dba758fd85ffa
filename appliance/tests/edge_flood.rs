//! The border holds end to end: a flood of UDP requests from unknown loopback sources
//! (127.0.0.40 to 127.0.0.47) fills the call engine's shared queue of the real binary
//! while a trunk (127.0.0.2, the `right` trunk's ACL) sends OPTIONS. Every OPTIONS of the
//! trunk is answered by the engine, and none of its datagrams is dropped at the queue
//! (`portcullis_sip_transport_trunk_queue_drops_total` stays 0) while the flood's are
//! (`portcullis_sip_transport_event_queue_drops_total` rises during the exchange).
//!
//! The flood is let through the per-source rate (`unknown_source_rate` set very high) so
//! that it reaches the queue, and the queues are small (`engine_queue` 64) so that it
//! fills whatever the speed of the machine; `[policy]` drops it silently and bans nobody. Every step is
//! bounded in time and the flood stops by itself.

mod sipp_harness;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sipp_harness::*;

/// The trunk's source address (`right`'s ACL in the harness configuration).
const TRUNK_IP: &str = "127.0.0.2";
/// Unknown sources of the flood.
const FLOOD_IPS: std::ops::Range<u8> = 40..48;
/// OPTIONS the trunk sends during the flood.
const TRUNK_OPTIONS: usize = 30;
/// Longest the flood runs.
const FLOOD_LIMIT: Duration = Duration::from_secs(120);

fn scrape(p: Ports) -> String {
    let url = format!("http://127.0.0.1:{}/metrics", p.admin);
    let r = ureq::get(&url)
        .timeout(Duration::from_secs(5))
        .call()
        .unwrap_or_else(|e| panic!("GET /metrics: {e}"));
    r.into_string().unwrap_or_else(|e| panic!("{e}"))
}

/// The value of an unlabelled sample.
fn value(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name}:\n{text}"))
}

fn options(sip: u16, from: std::net::SocketAddr, id: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:probe@127.0.0.1:{sip} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK-{id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{ip}>;tag={id}\r\n\
         To: <sip:probe@127.0.0.1>\r\n\
         Call-ID: {id}@{ip}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        ip = from.ip(),
    )
    .into_bytes()
}

/// Sends the flood from every unknown source until `stop`, counting in `sent`.
fn flood(sip: u16, stop: &AtomicBool, sent: &AtomicU64) {
    let socks: Vec<UdpSocket> = FLOOD_IPS
        .map(|i| UdpSocket::bind((format!("127.0.0.{i}").as_str(), 0)).expect("flood socket"))
        .collect();
    let msgs: Vec<Vec<u8>> = socks
        .iter()
        .enumerate()
        .map(|(i, s)| options(sip, s.local_addr().expect("addr"), &format!("flood{i}")))
        .collect();
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) && started.elapsed() < FLOOD_LIMIT {
        for (s, m) in socks.iter().zip(&msgs) {
            // A full socket buffer only slows the flood down.
            if s.send_to(m, ("127.0.0.1", sip)).is_ok() {
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Sends one OPTIONS from the trunk and waits for its 200, retransmitting every 500 ms
/// (RFC 3261 Timer E) for at most 30 s. Returns the transmissions it took.
fn trunk_options(sock: &UdpSocket, sip: u16, n: usize) -> usize {
    let id = format!("trunk{n}");
    let msg = options(sip, sock.local_addr().expect("addr"), &id);
    let call_id = format!("Call-ID: {id}@{TRUNK_IP}\r\n");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sent = 0;
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        sock.send_to(&msg, ("127.0.0.1", sip)).expect("trunk send");
        sent += 1;
        let resend_at = Instant::now() + Duration::from_millis(500);
        while let Some(left) = resend_at.checked_duration_since(Instant::now()) {
            sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("timeout");
            let Ok(n) = sock.recv(&mut buf) else { break };
            let text = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
            if text.starts_with("SIP/2.0 200 ") && text.contains(&call_id) {
                return sent;
            }
        }
    }
    panic!("the trunk's OPTIONS {id} was never answered ({sent} transmissions)");
}

#[test]
fn trunk_options_are_answered_while_unknown_sources_flood_the_engine() {
    let _serial = serial();
    let p = Ports::for_test(25);
    let toml = config(p, ROUTE_LEFT_RIGHT)
        // The flood must reach the engine's queue for the whole test: no budget ban (the
        // bans have tests of their own).
        .replace(
            "unknown_source = \"reject\"",
            "unknown_source = \"drop\"\nunknown_source_budget = 4000000000",
        )
        .replace(
            "[media]",
            "[sip.limits]\nunknown_source_rate = 100000000\nengine_queue = 64\n\n[media]",
        );
    let app = Appliance::start(&toml);

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flooders: Vec<_> = (0..2)
        .map(|_| {
            let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
            std::thread::spawn(move || flood(p.sip, &stop, &sent))
        })
        .collect();
    let stop_flood = || {
        stop.store(true, Ordering::Relaxed);
    };

    // The flood fills the shared queue first.
    let deadline = Instant::now() + Duration::from_secs(60);
    let before = loop {
        let text = scrape(p);
        if value(&text, "portcullis_sip_transport_event_queue_drops_total") > 0 {
            break text;
        }
        if Instant::now() >= deadline {
            stop_flood();
            panic!(
                "{} flood datagrams never filled the engine queue:\n{}",
                sent.load(Ordering::Relaxed),
                text.lines()
                    .filter(|l| l.contains("sip_transport"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };

    // Rounds of the trunk's OPTIONS until one ran while the flood was overflowing the
    // shared queue (on a busy machine the flood threads may stall for a round): every
    // OPTIONS of every round must be answered.
    let trunk = UdpSocket::bind((TRUNK_IP, 0)).expect("trunk socket");
    let drops = |t: &str| value(t, "portcullis_sip_transport_event_queue_drops_total");
    let mut transmissions = 0;
    let mut last = before;
    let mut overlapped = false;
    let mut after = String::new();
    for round in 0..10 {
        for n in 0..TRUNK_OPTIONS {
            transmissions += trunk_options(&trunk, p.sip, round * TRUNK_OPTIONS + n);
        }
        after = scrape(p);
        if drops(&after) > drops(&last) {
            overlapped = true;
            break;
        }
        last = after.clone();
    }
    stop_flood();
    for f in flooders {
        f.join().expect("flood thread");
    }
    note(&format!(
        "{} flood datagrams; trunk OPTIONS answered in {transmissions} transmissions",
        sent.load(Ordering::Relaxed)
    ));
    assert!(
        overlapped,
        "the flood never overflowed its queue while the trunk was served"
    );
    assert_eq!(
        value(&after, "portcullis_sip_transport_trunk_queue_drops_total"),
        0,
        "a trunk datagram was dropped at the engine queue"
    );
    assert!(
        !app.log().contains("source banned"),
        "the test expects no ban:\n{}",
        app.log()
    );
}

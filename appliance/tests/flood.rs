//! Admission under flood, end to end: a real `portcullis` process, real sipp trunk
//! calls, and floods of raw SIP from unknown loopback sources (`127.0.x.y`, none of
//! which a trunk claims).
//!
//! Asserts: every trunk call succeeds during a 50,000-INVITE flood from 200 sources;
//! each flood source gets at most its budget of stateless `403`s (no `100 Trying`,
//! no retransmission: no amplification) and is banned whatever part of its burst the
//! kernel dropped; refusals are summarised in a few log lines, never one per request;
//! a BYE for a dialog the appliance does not hold gets `481`, its ACK nothing; a flood
//! of 20,000 INVITEs from 20,000 sources (each under the ban threshold) leaves no
//! transaction behind and the process's RSS (read from /proc) bounded and back near
//! where it started. Floods are bounded in count; every wait is bounded in time.

mod sipp_harness;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use sipp_harness::*;

/// Requests an unknown source may send before its ban (the test's budget).
const BUDGET: u32 = 10;

fn flood_config(p: Ports) -> String {
    config(p, ROUTE_LEFT_RIGHT).replace(
        "rate_limit = 100000\n",
        &format!("rate_limit = 100000\nunknown_source_budget = {BUDGET}\n"),
    )
}

/// An INVITE from `local` (a scanner's, never answered by it).
fn invite(local: std::net::SocketAddr, sip: u16, n: u64) -> Vec<u8> {
    format!(
        "INVITE sip:1000@127.0.0.1:{sip} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-fl-{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:x@{ip}>;tag=f{n}\r\n\
         To: <sip:1000@127.0.0.1>\r\n\
         Call-ID: flood-{n}@{ip}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:x@{local}>\r\n\
         Content-Length: 0\r\n\r\n",
        ip = local.ip()
    )
    .into_bytes()
}

/// A UDP socket on `ip`, nonblocking.
fn socket(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}: {e}"));
    s.set_nonblocking(true).expect("nonblocking");
    s
}

/// Everything `s` received so far (first lines).
fn drain(s: &UdpSocket) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = s.recv(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..n]);
        out.push(text.lines().next().unwrap_or("").to_owned());
    }
    out
}

/// The value of the first `/metrics` sample starting with `prefix` (0 when absent).
fn metric(p: Ports, prefix: &str) -> u64 {
    let body = ureq::get(&format!("http://127.0.0.1:{}/metrics", p.admin))
        .call()
        .ok()
        .and_then(|r| r.into_string().ok())
        .unwrap_or_default();
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Resident set size of `pid`, in KiB, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Waits (bounded) until `f` holds.
fn wait_for(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn unknown_flood_is_answered_once_banned_and_summarised_while_trunk_calls_succeed() {
    let _serial = serial();
    let p = Ports::for_test(21);
    let app = Appliance::start(&flood_config(p));
    let dir = app.dir.path().to_path_buf();
    let calls = 20;
    // The kernel drops trunk packets too while the socket buffer is full of flood:
    // SIP's retransmissions recover them, given room on a loaded machine.
    let retrans = ["-max_retrans", "30"];
    let mut uas = start_uas(
        &dir,
        p,
        &[
            "-sn",
            "uas",
            "-m",
            &calls.to_string(),
            retrans[0],
            retrans[1],
        ],
    );
    let target = sip_target(p);
    let mut uac = start_uac(
        &dir,
        p,
        &[
            "-sn",
            "uac",
            &target,
            "-m",
            &calls.to_string(),
            "-r",
            "5",
            "-d",
            "200",
            "-trace_stat",
            "-fd",
            "1",
            retrans[0],
            retrans[1],
        ],
    );
    std::thread::sleep(Duration::from_millis(500));

    // 200 sources, 250 INVITEs each, round robin, far faster than the appliance
    // reads them: the kernel drops much of the burst.
    let socks: Vec<UdpSocket> = (1..=200).map(|i| socket(&format!("127.0.1.{i}"))).collect();
    let mut n = 0u64;
    for _ in 0..250 {
        for s in &socks {
            n += 1;
            let _ = s.send_to(
                &invite(s.local_addr().unwrap(), p.sip, n),
                ("127.0.0.1", p.sip),
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    uac.wait_ok(Duration::from_secs(90), "trunk calls during the flood");
    uas.wait_ok(Duration::from_secs(30), "trunk callee during the flood");
    assert_uac_stats(&dir, calls);

    // Every source is banned: its budget of 403s, then silence.
    wait_for(Duration::from_secs(30), "every flood source banned", || {
        metric(p, "portcullis_policy_bans_total ") >= 200
    });
    std::thread::sleep(Duration::from_secs(1));
    for s in &socks {
        let got = drain(s);
        assert!(
            got.len() <= BUDGET as usize,
            "{:?} got {} answers for its budget of {BUDGET}",
            s.local_addr(),
            got.len()
        );
        assert!(got.iter().all(|l| l.starts_with("SIP/2.0 403")), "{got:?}");
    }
    for s in &socks {
        let _ = s.send_to(
            &invite(s.local_addr().unwrap(), p.sip, 0),
            ("127.0.0.1", p.sip),
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    for s in &socks {
        assert!(drain(s).is_empty(), "banned {:?} answered", s.local_addr());
    }
    assert_eq!(metric(p, "portcullis_policy_bans_total "), 200);
    assert!(metric(p, "portcullis_sip_rejected_total{status=\"403\"") <= 200 * u64::from(BUDGET));

    // Logs: a summary, not a line per request.
    wait_for(Duration::from_secs(20), "rejection summary logged", || {
        app.log().contains("rejected ") && app.log().contains("sources in the last 10 s")
    });
    let log = app.log();
    assert!(!log.contains("request rejected"), "per-request lines");
    let banned_lines = log.lines().filter(|l| l.contains("source banned")).count();
    assert!(banned_lines <= 30, "{banned_lines} ban lines");
    assert!(
        log.lines().count() < 300,
        "{} log lines",
        log.lines().count()
    );
}

#[test]
fn bye_for_an_unknown_dialog_gets_481_and_its_ack_nothing() {
    let _serial = serial();
    let p = Ports::for_test(22);
    let app = Appliance::start(&flood_config(p));
    // From the `left` trunk's own address: a BYE for a dialog of an earlier run.
    let s = UdpSocket::bind(("127.0.0.1", p.left)).expect("bind left");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = s.local_addr().unwrap();
    let msg = |method: &str, branch: &str| {
        format!(
            "{method} sip:1000@127.0.0.1:{sip} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-{branch}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:a@{local}>;tag=caller\r\n\
             To: <sip:1000@127.0.0.1>;tag=before-restart\r\n\
             Call-ID: gone-1@127.0.0.1\r\n\
             CSeq: 2 {method}\r\n\
             Content-Length: 0\r\n\r\n",
            sip = p.sip
        )
    };
    s.send_to(msg("BYE", "bye1").as_bytes(), ("127.0.0.1", p.sip))
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = s.recv(&mut buf).expect("an answer to the BYE");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(
        text.starts_with("SIP/2.0 481 Call/Transaction Does Not Exist"),
        "{text}"
    );
    assert!(text.contains("branch=z9hG4bK-bye1"));
    s.send_to(msg("ACK", "ack1").as_bytes(), ("127.0.0.1", p.sip))
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    if let Ok(n) = s.recv(&mut buf) {
        panic!("answer to an ACK: {}", String::from_utf8_lossy(&buf[..n]));
    }
    wait_for(Duration::from_secs(10), "481 counted", || {
        metric(p, "portcullis_sip_rejected_total{status=\"481\"") == 1
    });
    drop(app);
}

#[test]
fn flood_of_20000_unanswered_invites_leaves_memory_bounded_and_given_back() {
    let _serial = serial();
    let p = Ports::for_test(23);
    let app = Appliance::start(&flood_config(p));
    let pid = app.child.id();
    std::thread::sleep(Duration::from_secs(1));
    let before = rss_kib(pid);
    // 20,000 INVITEs from 20,000 sources (one each: under every ban threshold),
    // never ACKed, 1,000 at a time.
    let mut peak = before;
    for batch in 0..20u32 {
        let socks: Vec<UdpSocket> = (0..1000u32)
            .map(|i| {
                let k = batch * 1000 + i;
                socket(&format!("127.2.{}.{}", k / 200, 1 + k % 200))
            })
            .collect();
        for (i, s) in socks.iter().enumerate() {
            let n = u64::from(batch) * 1000 + i as u64;
            let _ = s.send_to(
                &invite(s.local_addr().unwrap(), p.sip, n),
                ("127.0.0.1", p.sip),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
        peak = peak.max(rss_kib(pid));
    }
    std::thread::sleep(Duration::from_secs(2));
    peak = peak.max(rss_kib(pid));
    assert_eq!(
        metric(p, "portcullis_sip_transactions "),
        0,
        "no state kept"
    );
    assert!(metric(p, "portcullis_sip_rejected_total{status=\"403\"") > 0);
    // Bounded: tens of MB at most (it grew by about 300 MB when every INVITE kept a
    // transaction for Timer H).
    assert!(
        peak < before + 64 * 1024,
        "RSS {before} KiB before, {peak} KiB at the peak"
    );
    // Given back: within the allocator's decay time, RSS is back near the start.
    wait_for(
        Duration::from_secs(40),
        "RSS back near its level before the flood",
        || rss_kib(pid) < before + 16 * 1024,
    );
    note(&format!(
        "RSS before {before} KiB, peak {peak} KiB, after {} KiB",
        rss_kib(pid)
    ));
}

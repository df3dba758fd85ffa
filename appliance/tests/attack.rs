//! The border under attack, as numbers (docs/security.md, "Measured under attack").
//!
//! A real `portcullis` process carries a steady sipp load between two trunks, 20 calls/s
//! for 60 s (`uac_pcap` playing 7 s of G.711 RTP to a `uas -rtp_echo` that echoes it
//! back), while it is attacked at once by: a UDP flood of 50,000 datagrams from 200
//! unknown sources (127.1.0.x: INVITE, OPTIONS, REGISTER, binary garbage and non-SIP
//! text, in bursts of 125 per source); a SIPVicious scan (svwar, then svmap sweeping the
//! SIP port 600 times); idle TCP connections from 4 sources, more than the connections
//! left outside the trunks' reserve; slowloris TCP connections from 4 sources (one
//! header byte per second, reconnecting when cut off).
//!
//! Asserts: at least 99.9 % of the trunk's calls succeed (sipp's `-trace_stat` counts),
//! each with its CDR; the appliance's RSS stays under the bound its configuration sets
//! ([`rss_bound_kib`]: the operator guide's "Memory bound", term by term); no flood
//! source gets more answers than its `unknown_source_budget` (no amplification); every
//! flood source and the scanner are banned and their datagrams dropped at the edge; the
//! trunks' queue drops nothing; a TCP trunk connects and is answered while attackers
//! hold every other connection, a stranger is refused; the slowloris connections are cut
//! off; afterwards the appliance answers OPTIONS (200 to a trunk over UDP and TCP, 403 to
//! a new unknown source) and nothing to a banned one. The figures are printed
//! (`--nocapture`). About 90 s; every step is bounded in time and every attacker stops
//! by itself.

mod common_attack;
mod sipp_harness;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common_attack::*;
use sipp_harness::*;

/// The trunks' hosts: `left` places the calls (sipp UAC), `right` answers (sipp UAS).
const LEFT_IP: &str = "127.0.0.2";
const RIGHT_IP: &str = "127.0.0.3";
/// A third trunk, over TCP (a PBX): it connects while attackers hold every connection
/// outside the trunks' reserve.
const PBX_IP: &str = "127.0.0.4";
/// svwar binds the wildcard address whatever it is told, so it sends from 127.0.0.1
/// (which no trunk claims here); svmap sends from this address.
const SVMAP_IP: &str = "127.9.0.1";

/// Unknown flood sources.
const FLOOD_SOURCES: u32 = 200;
/// Datagrams of the UDP flood, all sources together.
const FLOOD_TOTAL: u64 = 50_000;
/// Datagrams a flood source sends back to back.
const FLOOD_BURST: u64 = 125;
/// Idle TCP connections: sources × connections each.
const IDLE: (u8, usize) = (4, 30);
/// Slowloris TCP connections: sources × connections each.
const SLOW: (u8, usize) = (4, 8);

/// `[policy]` and `[sip.limits]` of the test (the bound and the assertions use them).
const BUDGET: u64 = 20;
const MAX_CALLS: u64 = 300;
const MAX_MESSAGE: u64 = 4096;
const ENGINE_QUEUE: u64 = 1024;
const MAX_TCP: u64 = 120;
const RESERVE: u64 = 12;
const PER_SOURCE_TCP: u64 = 32;
const CONN_BUFFER: u64 = 16_384;
/// Messages waiting to be written per connection (fixed).
const CONN_QUEUE: u64 = 256;
const MEDIA_PORTS: u16 = 1536;
const MAX_BANS: u64 = 1024;
const MAX_TRANSACTIONS: u64 = 4000;
const MEDIA_CORES: u64 = 1;

/// The trunk load: calls per second, calls in all (each plays 7 s of RTP each way).
const RATE: u32 = 20;
const CALLS: usize = 1200;
/// The flood's bursts are spread over this.
const FLOOD_SPREAD: Duration = Duration::from_secs(45);
/// svmap sweeps of the SIP port.
const SWEEPS: usize = 600;

fn attack_config(p: Ports) -> String {
    format!(
        r#"[node]
name = "attack-test"

[[sip.listener]]
transport = "udp"
address = "127.0.0.1:{sip}"

[[sip.listener]]
transport = "tcp"
address = "127.0.0.1:{sip}"

[sip.limits]
max_message_size = {MAX_MESSAGE}
max_tcp_connections = {MAX_TCP}
max_connections_per_source = {PER_SOURCE_TCP}
trunk_connection_reserve = {RESERVE}
per_connection_buffer = {CONN_BUFFER}
engine_queue = {ENGINE_QUEUE}
max_calls = {MAX_CALLS}
max_transactions = {MAX_TRANSACTIONS}
max_transactions_per_source = {MAX_TRANSACTIONS}

[media]
advertised_ip = "127.0.0.1"
bind_ip = "127.0.0.1"
port_min = {mmin}
port_max = {mmax}
cores = "auto:{MEDIA_CORES}"

[admin]
listen = "127.0.0.1:{admin}"

[cdr]
path = "cdr.jsonl"
fsync = "always"

[log]
level = "info"

[policy]
unknown_source = "reject"
unknown_source_budget = {BUDGET}
max_bans = {MAX_BANS}

[[trunk]]
name = "left"
address = "{LEFT_IP}:{left}"
acl = ["{LEFT_IP}"]

[[trunk]]
name = "right"
address = "{RIGHT_IP}:{right}"
acl = ["{RIGHT_IP}"]

[[trunk]]
name = "pbx"
address = "{PBX_IP}:{pbx}"
transport = "tcp"
acl = ["{PBX_IP}"]

[[route]]
name = "left-to-right"
from = ["left"]
targets = ["right"]
"#,
        sip = p.sip,
        mmin = p.media_min,
        mmax = p.media_min + MEDIA_PORTS - 1,
        admin = p.admin,
        left = p.left,
        right = p.right,
        pbx = p.right2,
    )
}

/// What the configuration above lets the appliance hold beyond its footprint when
/// ready, in KiB: the operator guide's "Memory bound", term by term.
fn rss_bound_kib() -> u64 {
    const KIB: u64 = 1024;
    // Calls in progress: a call with both legs, their transactions, timers and media
    // session.
    let calls = MAX_CALLS * 64 * KIB;
    // Transactions, those that outlive their call included: the request and the last
    // response kept for retransmissions, and the rest.
    let transactions = MAX_TRANSACTIONS * (2 * MAX_MESSAGE + 4 * KIB);
    // The two engine queues, each message at most max_message_size.
    let queues = 2 * ENGINE_QUEUE * MAX_MESSAGE;
    // A connection: its read chunk, its pending message, the messages waiting to be
    // written to it.
    let connections = MAX_TCP * (16 * KIB + CONN_BUFFER + CONN_QUEUE * MAX_MESSAGE);
    // Rate counters and bans: engine and transport edge, about 100 bytes an entry.
    // (engine rate counters; engine bans: two levels of max_bans, then every IPv4 and
    // IPv6 /16; the edge's rate shards and its bans)
    let tables = (65_536 + (2 * MAX_BANS + 2 * 65_536) + 16 * 4096 + 65_536) * 100;
    // The data plane's packet buffers, per worker.
    let media = MEDIA_CORES * 8 * KIB * KIB;
    (calls + transactions + queues + connections + tables + media) / KIB
}

/// Every sample of the family `name` summed (all label sets).
fn family(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn scrape(p: Ports) -> String {
    ureq::get(&format!("http://127.0.0.1:{}/metrics", p.admin))
        .timeout(Duration::from_secs(10))
        .call()
        .unwrap_or_else(|e| panic!("GET /metrics: {e}"))
        .into_string()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn options(from: SocketAddr, transport: &str, sip: u16, id: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:100@127.0.0.1:{sip} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {from};branch=z9hG4bK-{id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{ip}>;tag={id}\r\n\
         To: <sip:100@127.0.0.1>\r\n\
         Call-ID: {id}@{ip}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        ip = from.ip()
    )
    .into_bytes()
}

/// The first line of the answer to an OPTIONS from `ip` over UDP (sent `tries` times,
/// 500 ms apart: RFC 3261 Timer E), or `None` when nothing comes back.
fn udp_options(ip: &str, sip: u16, id: &str, tries: u32) -> Option<String> {
    let s = UdpSocket::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}: {e}"));
    let msg = options(s.local_addr().expect("addr"), "UDP", sip, id);
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    for _ in 0..tries {
        s.send_to(&msg, ("127.0.0.1", sip)).expect("send");
        if let Ok(n) = s.recv(&mut buf) {
            let text = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
            return text.lines().next().map(str::to_owned);
        }
    }
    None
}

/// The first line of the answer to an OPTIONS from `ip` over a new TCP connection, or
/// `None` when the connection is closed without one (10 s at most).
fn tcp_options(ip: &str, sip: u16, id: &str) -> Option<String> {
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let src: IpAddr = ip.parse().expect("ip");
    sock.bind(&SocketAddr::new(src, 0).into()).expect("bind");
    let to = SocketAddr::from(([127, 0, 0, 1], sip));
    sock.connect_timeout(&to.into(), Duration::from_secs(5))
        .ok()?;
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let msg = options(s.local_addr().expect("addr"), "TCP", sip, id);
    s.write_all(&msg).ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(buf.get(..n).unwrap_or_default()),
        }
    }
    let text = String::from_utf8_lossy(&got);
    text.lines().next().map(str::to_owned)
}

/// Path of a SIPVicious tool (`sipvicious_<tool>` upstream, `<tool>` in Debian), or a
/// panic telling how to install it.
fn sipvicious(tool: &str) -> std::path::PathBuf {
    let names = [format!("sipvicious_{tool}"), tool.to_owned()];
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        for n in &names {
            let p = Path::new(dir).join(n);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("{tool} not found in PATH: install Debian's sipvicious (`apt-get install sipvicious`)");
}

/// Runs `cmd` in `dir` to completion, killed after `within`.
fn run_bounded(mut cmd: Command, dir: &Path, name: &str, within: Duration) {
    let out = std::fs::File::create(dir.join(format!("{name}.out"))).expect("out");
    let err = out.try_clone().expect("clone");
    let mut child = cmd
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// svwar (INVITE enumeration; it stops at its first 403), then svmap sweeping the SIP
/// port [`SWEEPS`] times from [`SVMAP_IP`].
fn scan(dir: &Path, p: Ports) {
    let mut svwar = Command::new(sipvicious("svwar"));
    svwar.args(["-P", &(p.sip + 5).to_string(), "-p", &p.sip.to_string()]);
    svwar.args(["-m", "INVITE", "-e", "1000-2999", "--force"]);
    svwar.args(["--maximumtime", "15", "127.0.0.1"]);
    run_bounded(svwar, dir, "svwar", Duration::from_secs(25));
    let mut svmap = Command::new(sipvicious("svmap"));
    svmap.args(["-b", SVMAP_IP, "-P", &(p.sip + 6).to_string()]);
    svmap.args(["-p", &p.sip.to_string()]);
    svmap.args(std::iter::repeat_n("127.0.0.1", SWEEPS));
    run_bounded(svmap, dir, "svmap", Duration::from_secs(40));
}

/// sipp arguments of a trunk peer on `ip:port`, media on `media`, stopping after
/// `limit` whatever happens.
fn peer_args(ip: &str, port: u16, media: u16, limit: Duration, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["-i", ip, "-p", &port.to_string(), "-mp", &media.to_string()]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    v.extend(["-nostdin".to_owned(), "-timeout".to_owned()]);
    v.push(format!("{}s", limit.as_secs()));
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

/// `n` loopback addresses `127.a.x.y` (250 per `x`, from `127.a.0.1`).
fn ips(a: u8, n: u32) -> Vec<IpAddr> {
    (0..n)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, a, (i / 250) as u8, (i % 250) as u8 + 1)))
        .collect()
}

#[test]
fn trunk_calls_succeed_and_memory_stays_bounded_under_attack() {
    let _serial = serial();
    let p = Ports::for_test(200);
    let app = Appliance::start(&attack_config(p));
    let dir = app.dir.path().to_path_buf();
    let pid = app.child.id();
    pcaps(&dir);
    std::thread::sleep(Duration::from_secs(1));
    let rss_ready = rss_kib(pid);
    let bound = rss_bound_kib();

    // The trunk load: every call plays 7 s of G.711 each way, echoed by the callee.
    let placing = Duration::from_secs(CALLS as u64 / u64::from(RATE));
    let limit = placing + Duration::from_secs(120);
    let calls = CALLS.to_string();
    let uas = Sipp::start(
        "uas",
        &dir,
        &peer_args(
            RIGHT_IP,
            p.right,
            p.sipp_media + 100,
            limit,
            &["-sn", "uas", "-rtp_echo", "-m", &calls],
        ),
    );
    std::thread::sleep(Duration::from_millis(300));
    let target = sip_target(p);
    let rate = RATE.to_string();
    let mut uac = Sipp::start(
        "uac",
        &dir,
        &peer_args(
            LEFT_IP,
            p.left,
            p.sipp_media,
            limit,
            &[
                "-sn",
                "uac_pcap",
                &target,
                "-r",
                &rate,
                "-m",
                &calls,
                "-trace_stat",
                "-fd",
                "1",
            ],
        ),
    );
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(3));

    // The attack.
    let stop: Stop = Arc::new(AtomicBool::new(false));
    let mut phases = vec![("attack starts", started.elapsed())];
    let rss = sample_rss(pid, Arc::clone(&stop));
    let flood_sources = ips(1, FLOOD_SOURCES);
    let flood = Flood {
        sources: flood_sources.clone(),
        total: FLOOD_TOTAL,
        burst: FLOOD_BURST,
        spread: FLOOD_SPREAD,
    }
    .start(p.sip, Arc::clone(&stop));
    let (slow, slow_h) = slowloris(
        ips(11, u32::from(SLOW.0)),
        SLOW.1,
        p.sip,
        Arc::clone(&stop),
        limit,
    );
    std::thread::sleep(Duration::from_secs(1));
    let (idle, idle_h) = idle_connections(
        ips(10, u32::from(IDLE.0)),
        IDLE.1,
        p.sip,
        Arc::clone(&stop),
        limit,
    );
    let scanner = {
        let dir = dir.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            scan(&dir, p);
            t.elapsed()
        })
    };

    // The connections outside the reserve taken, a trunk still connects and is answered.
    let attempts = u64::from(IDLE.0) * IDLE.1 as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while idle.attempted.load(Ordering::Relaxed) < attempts {
        assert!(Instant::now() < deadline, "idle connections not tried");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    phases.push(("idle connections made", started.elapsed()));
    let trunk_tcp = tcp_options(PBX_IP, p.sip, "trunk-tcp-during");
    let stranger_tcp = tcp_options("127.12.0.1", p.sip, "stranger-tcp-during");
    phases.push(("TCP probes answered", started.elapsed()));

    uac.wait(limit + Duration::from_secs(30));
    let run = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let flooded = flood.join().expect("flood thread");
    let scan_time = scanner.join().expect("scanner thread");
    phases.push(("flood and scan joined", started.elapsed()));
    slow_h.join().expect("slowloris thread");
    idle_h.join().expect("idle thread");
    phases.push(("TCP attackers joined", started.elapsed()));
    let (peak, _) = rss.join().expect("rss thread");
    let cdrs = app.wait_cdrs(CALLS, Duration::from_secs(20)).len();
    drop(uas);

    // Afterwards: answers to a trunk (UDP, TCP) and a new stranger; none to the banned.
    std::thread::sleep(Duration::from_secs(2));
    let after_trunk_udp = udp_options(RIGHT_IP, p.sip, "trunk-udp-after", 10);
    let after_trunk_tcp = tcp_options(PBX_IP, p.sip, "trunk-tcp-after");
    let after_stranger = udp_options("127.13.0.1", p.sip, "stranger-udp-after", 10);
    let after_flooder = udp_options(&flood_sources[0].to_string(), p.sip, "banned-after", 4);
    let after_scanner = udp_options(SVMAP_IP, p.sip, "scanner-after", 4);
    phases.push(("probes after done", started.elapsed()));
    let m = scrape(p);
    let rss_end = rss_kib(pid);

    // The figures.
    let stats = last_stats(&stat_file(&dir, "uac_"));
    let num = |k: &str| -> u64 { stats.get(k).and_then(|v| v.parse().ok()).unwrap_or(0) };
    let ok = num("SuccessfulCall(C)");
    let failed = num("FailedCall(C)");
    let max_answers = flooded.answers.values().copied().max().unwrap_or(0);
    let f = |name: &str| family(&m, &format!("portcullis_{name}"));
    let mut figures: Vec<(String, String)> = vec![
        ("run".into(), format!("{:.0} s", run.as_secs_f64())),
        ("trunk calls".into(), format!("{ok} succeeded, {failed} failed of {}", CALLS)),
        ("sipp retransmissions".into(), num("Retransmissions(C)").to_string()),
        ("CDRs".into(), cdrs.to_string()),
        ("scan".into(), format!("svwar then {SWEEPS} svmap sweeps in {:.0} s", scan_time.as_secs_f64())),
        ("flood".into(), format!(
            "{} datagrams ({} KiB) from {} sources in {:.0} s; {} answers ({} KiB), at most {max_answers} per source; {:?}",
            flooded.sent, flooded.sent_bytes / 1024, FLOOD_SOURCES, flooded.elapsed.as_secs_f64(),
            flooded.answers.values().sum::<u64>(), flooded.answer_bytes / 1024, flooded.statuses
        )),
        ("slowloris".into(), format!(
            "{} connections made, {} cut off", slow.connected.load(Ordering::Relaxed),
            slow.closed_by_peer.load(Ordering::Relaxed)
        )),
        ("idle".into(), format!(
            "{attempts} tried, {} made, {} closed, {} still open at the end",
            idle.connected.load(Ordering::Relaxed), idle.closed_by_peer.load(Ordering::Relaxed), idle.open_at_end.load(Ordering::Relaxed)
        )),
        ("RSS".into(), format!(
            "{rss_ready} KiB ready, {peak} KiB peak, {rss_end} KiB after; bound {} KiB ({rss_ready} + {bound})",
            rss_ready + bound
        )),
        ("during: trunk TCP / stranger TCP".into(), format!("{trunk_tcp:?} / {stranger_tcp:?}")),
        ("after: trunk UDP / trunk TCP / stranger / flooder / scanner".into(), format!(
            "{after_trunk_udp:?} / {after_trunk_tcp:?} / {after_stranger:?} / {after_flooder:?} / {after_scanner:?}"
        )),
    ];
    for name in [
        "policy_bans_total",
        "policy_bans_active",
        "sip_rejected_total",
        "sip_parse_errors_total",
        "sip_transport_banned_drops_total",
        "sip_transport_source_rate_drops_total",
        "sip_transport_event_queue_drops_total",
        "sip_transport_trunk_queue_drops_total",
        "sip_transport_connections_refused_total",
        "sip_transport_reserve_refusals_total",
        "sip_transport_slow_closes_total",
        "sip_limit_rejects_total",
        "sip_transactions",
        "dataplane_packets_total",
        "dataplane_rtp_source_rejected_total",
    ] {
        figures.push((name.to_owned(), f(name).to_string()));
    }
    let mut by_status: HashMap<&str, u64> = HashMap::new();
    for l in m
        .lines()
        .filter(|l| l.starts_with("portcullis_sip_rejected_total{"))
    {
        let v = l
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        *by_status
            .entry(l.rsplit_once(' ').map_or(l, |x| x.0))
            .or_default() += v;
    }
    figures.push(("rejected by status".into(), format!("{by_status:?}")));
    figures.push(("phases".into(), format!("{phases:?}")));
    note("---- figures of the attack run ----");
    for (k, v) in &figures {
        note(&format!("{k}: {v}"));
    }

    // The trunk's calls: ≥ 99.9 % of those planned succeeded (failures counted exactly).
    let planned = CALLS as u64;
    assert!(
        ok * 1000 >= planned * 999,
        "{ok} of {planned} trunk calls succeeded ({failed} failed): {stats:?}\n{}",
        uac.output()
    );
    assert!(cdrs >= CALLS, "{cdrs} CDRs for {} calls", CALLS);
    // Memory: under the bound the configuration sets.
    assert!(
        peak <= rss_ready + bound,
        "RSS peak {peak} KiB over the bound {rss_ready} + {bound} KiB"
    );
    // No amplification: a flood source never gets more answers than its budget.
    assert!(
        max_answers <= BUDGET,
        "a flood source got {max_answers} answers for its budget of {BUDGET}: {:?}",
        flooded.answers
    );
    assert_eq!(flooded.sent, FLOOD_TOTAL, "the flood was not sent whole");
    // Every flood source and the scanner banned; the banned dropped at the edge.
    assert!(f("policy_bans_total") > u64::from(FLOOD_SOURCES), "{m}");
    assert!(f("sip_transport_banned_drops_total") > 0);
    // Bursts over unknown_source_rate are cut at the edge; garbage is counted.
    assert!(f("sip_transport_source_rate_drops_total") > 0);
    assert!(f("sip_parse_errors_total") > 0);
    assert_eq!(
        f("sip_limit_rejects_total"),
        0,
        "a load limit refused trunk traffic"
    );
    // The trunks' queue never dropped a message.
    assert_eq!(f("sip_transport_trunk_queue_drops_total"), 0);
    // TCP: the reserve kept a trunk's place, strangers were refused, slowloris cut off.
    assert_eq!(
        trunk_tcp.as_deref().map(|l| l.starts_with("SIP/2.0 200")),
        Some(true),
        "trunk over TCP during the attack: {trunk_tcp:?}"
    );
    assert_eq!(
        stranger_tcp, None,
        "a stranger got a connection past the reserve"
    );
    assert!(f("sip_transport_reserve_refusals_total") > 0);
    assert!(
        f("sip_transport_slow_closes_total") >= u64::from(SLOW.0) * SLOW.1 as u64,
        "slowloris connections not cut off"
    );
    // Afterwards: answered.
    for (what, got, want) in [
        ("trunk over UDP", &after_trunk_udp, "SIP/2.0 200"),
        ("trunk over TCP", &after_trunk_tcp, "SIP/2.0 200"),
        ("new unknown source", &after_stranger, "SIP/2.0 403"),
    ] {
        assert!(
            got.as_deref().is_some_and(|l| l.starts_with(want)),
            "OPTIONS from a {what} after the attack: {got:?}"
        );
    }
    assert_eq!(after_flooder, None, "a banned flood source answered");
    assert_eq!(after_scanner, None, "the banned scanner answered");
}

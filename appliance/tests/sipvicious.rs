//! Interop: a SIPVicious scan (svwar + svmap, Debian's `sipvicious`) from an unknown
//! loopback source while real sipp calls run from the trunks.
//!
//! The trunks live on 127.0.0.2 (caller) and 127.0.0.3 (callee); the scanner is
//! 127.0.0.1, because svwar 0.3.3 ignores `--bindingip` (it always binds the wildcard
//! address, so its packets to 127.0.0.1 come from 127.0.0.1). svwar stops at its
//! first 403, so the flood comes from svmap sweeping the SIP port 600 times.
//!
//! Ports: everything lives in this test's own block (`Ports::for_test(30)`, 15300-15309),
//! below Linux's ephemeral range (32768-60999). The sipp media ports in particular: sipp
//! exits at once ("Unable to bind audio RTP socket") when its `-mp` port (or `-mp`+2, the
//! video socket) is taken, and the harness's default for this test number (36000/36100)
//! lies inside the ephemeral range, where any socket of another process on a busy machine
//! (a load test opens thousands) can hold it: that failed a run now and then. The
//! scanners get an explicit source port too (`-P`) instead of their default 5060, the
//! appliance's default SIP port, which a default-config `portcullis run` elsewhere on the
//! machine may hold (or be kept from binding by svwar's wildcard socket).
//!
//! Asserts: every trunk call succeeds, the scanner's source is banned by the per-source
//! rate limit (`[policy] rate_limit`, log "source banned" naming 127.0.0.1, and the
//! `portcullis_policy_bans_total` counter when the admin API serves `/metrics`), and a
//! banned source gets no answer at all afterwards, over UDP or TCP (its TCP connection is
//! closed at accept). Every step is bounded in time.

mod sipp_harness;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sipp_harness::*;

/// Source address of the scanner (no trunk matches it).
const SCANNER_IP: &str = "127.0.0.1";
/// Caller trunk (sipp UAC) and callee trunk (sipp UAS) hosts.
const LEFT_IP: &str = "127.0.0.2";
const RIGHT_IP: &str = "127.0.0.3";

/// sipp media ports (audio; video is +2) of the UAC and the UAS, and the scanners' source
/// port, all in the test's port block after the five `Ports` uses (see the module docs).
fn uac_media(p: Ports) -> u16 {
    p.sip + 5
}
fn uas_media(p: Ports) -> u16 {
    p.sip + 6
}
fn scanner_port(p: Ports) -> u16 {
    p.sip + 9
}

/// The test configuration: trunks on their own loopback hosts, 8 requests/s per
/// source (each trunk sends at most 3 messages/s at 1 call/s; the scanner 20-50/s
/// depending on the machine's load).
fn scan_config(p: Ports) -> String {
    format!(
        r#"[node]
name = "sipvicious-test"

[[sip.listener]]
transport = "udp"
address = "127.0.0.1:{sip}"

[[sip.listener]]
transport = "tcp"
address = "127.0.0.1:{sip}"

[media]
advertised_ip = "127.0.0.1"
bind_ip = "127.0.0.1"
port_min = {mmin}
port_max = {mmax}
cores = "auto:1"

[admin]
listen = "127.0.0.1:{admin}"

[cdr]
path = "cdr.jsonl"
fsync = "always"

[log]
level = "info"

[policy]
unknown_source = "reject"
rate_limit = 8
ban_duration = "2m"

[[trunk]]
name = "left"
address = "{LEFT_IP}:{left}"

[[trunk]]
name = "right"
address = "{RIGHT_IP}:{right}"

[[route]]
name = "left-to-right"
from = ["left"]
targets = ["right"]
"#,
        sip = p.sip,
        mmin = p.media_min,
        mmax = p.media_min + 255,
        admin = p.admin,
        left = p.left,
        right = p.right,
    )
}

/// Path of a SIPVicious tool: `sipvicious_<tool>` (upstream ≥ 0.3.4) or `<tool>` (Debian's
/// 0.3.3), or a panic telling how to install it.
fn sipvicious(tool: &str) -> PathBuf {
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

/// Runs a scanner command to completion, killed after `within`; returns its output.
fn run_bounded(mut cmd: Command, dir: &Path, name: &str, within: Duration) -> String {
    let out = dir.join(format!("{name}.out"));
    let f = std::fs::File::create(&out).expect("scanner out");
    let f2 = f.try_clone().expect("clone");
    let mut child: Child = cmd
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(f))
        .stderr(Stdio::from(f2))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
    }
    let _ = child.wait();
    std::fs::read_to_string(&out).unwrap_or_default()
}

/// `GET path` on the admin listener: `Some((status line, body))`, or `None` when
/// nothing listens there.
fn http_get(port: u16, path: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    let (head, body) = buf.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_owned(), body.to_owned()))
}

/// Sends one OPTIONS from `SCANNER_IP` and reports whether anything came back in 1 s.
fn scanner_gets_answer(sip_port: u16) -> bool {
    let sock = UdpSocket::bind((SCANNER_IP, 0)).expect("bind scanner probe");
    sock.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let local = sock.local_addr().expect("local addr");
    let msg = format!(
        "OPTIONS sip:probe@127.0.0.1:{sip_port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-probe-1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{SCANNER_IP}>;tag=probe1\r\n\
         To: <sip:probe@127.0.0.1>\r\n\
         Call-ID: probe-1@{SCANNER_IP}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    );
    sock.send_to(msg.as_bytes(), ("127.0.0.1", sip_port))
        .expect("send probe");
    let mut buf = [0u8; 4096];
    sock.recv_from(&mut buf).is_ok()
}

/// Opens a TCP connection from `SCANNER_IP` and sends one OPTIONS: true when the appliance
/// closes it without a byte of answer within 2 s.
fn scanner_tcp_refused(sip_port: u16) -> bool {
    // The kernel completes the handshake before the appliance sees the connection.
    let Ok(mut s) = TcpStream::connect((SCANNER_IP, sip_port)) else {
        return true;
    };
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let msg = format!(
        "OPTIONS sip:probe@127.0.0.1:{sip_port} SIP/2.0\r\n\
         Via: SIP/2.0/TCP {SCANNER_IP};branch=z9hG4bK-probe-tcp\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{SCANNER_IP}>;tag=probe2\r\n\
         To: <sip:probe@127.0.0.1>\r\n\
         Call-ID: probe-tcp@{SCANNER_IP}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    );
    let _ = s.write_all(msg.as_bytes());
    let mut buf = [0u8; 1024];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        // Reset (closed with our bytes unread) is a refusal; a timeout is not.
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn scanner_is_banned_while_trunk_calls_succeed() {
    let _serial = serial();
    let p = Ports::for_test(30);
    let toml = scan_config(p);
    let app = Appliance::start(&toml);
    let dir = app.dir.path().to_path_buf();

    let calls = 25;
    let mut uas = Sipp::peer(
        "uas",
        &dir,
        RIGHT_IP,
        p.right,
        uas_media(p),
        &["-sn", "uas", "-m", &calls.to_string()],
    );
    std::thread::sleep(Duration::from_millis(300));
    let target = sip_target(p);
    let mut uac = Sipp::peer(
        "uac",
        &dir,
        LEFT_IP,
        p.left,
        uac_media(p),
        &[
            "-sn",
            "uac",
            &target,
            "-m",
            &calls.to_string(),
            "-r",
            "1",
            "-d",
            "500",
            "-trace_stat",
            "-fd",
            "1",
        ],
    );
    std::thread::sleep(Duration::from_secs(2));

    // svwar: INVITE extension enumeration (stops at the first 403).
    let mut svwar = Command::new(sipvicious("svwar"));
    svwar.args([
        "-P",
        &scanner_port(p).to_string(),
        "-p",
        &p.sip.to_string(),
        "-m",
        "INVITE",
        "-e",
        "1000-2999",
        "--force",
        "--maximumtime",
        "15",
        "127.0.0.1",
    ]);
    let svwar_out = run_bounded(svwar, &dir, "svwar", Duration::from_secs(25));
    note(&format!("svwar:\n{svwar_out}"));

    // svmap: 600 OPTIONS sweeps of the SIP port, 20-50 requests/s.
    let mut svmap = Command::new(sipvicious("svmap"));
    svmap.args([
        "-b",
        SCANNER_IP,
        "-P",
        &scanner_port(p).to_string(),
        "-p",
        &p.sip.to_string(),
    ]);
    svmap.args(std::iter::repeat_n("127.0.0.1", 600));
    let svmap_out = run_bounded(svmap, &dir, "svmap", Duration::from_secs(30));
    note(&format!("svmap:\n{svmap_out}"));

    // The ban is logged with the scanner's address (generous bound: a loaded machine).
    let deadline = Instant::now() + Duration::from_secs(20);
    let banned = loop {
        let log = app.log();
        let hit = log
            .lines()
            .any(|l| l.contains("source banned") && l.contains(SCANNER_IP));
        if hit || Instant::now() >= deadline {
            break hit;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        banned,
        "no `source banned` log line for {SCANNER_IP}:\n{}",
        app.log()
    );
    for trunk in [LEFT_IP, RIGHT_IP] {
        assert!(
            !app.log()
                .lines()
                .any(|l| l.contains("source banned") && l.contains(trunk)),
            "trunk {trunk} banned:\n{}",
            app.log()
        );
    }
    // A banned source is not answered, not even with 403.
    assert!(
        !scanner_gets_answer(p.sip),
        "the banned scanner source still gets answers"
    );

    // Nor over TCP: the ban reaches the transports, which close the connection at accept.
    assert!(
        scanner_tcp_refused(p.sip),
        "the banned scanner source can still talk over TCP"
    );

    // The trunk calls all went through meanwhile.
    uac.wait_ok(Duration::from_secs(90), "sipp uac failed");
    assert_uac_stats(&dir, calls);
    uas.wait_ok(Duration::from_secs(30), "sipp uas failed");
    let cdrs = app.wait_cdrs(calls, Duration::from_secs(10));
    assert_eq!(
        cdrs.len(),
        calls,
        "one CDR per trunk call, none for the scanner"
    );

    // The admin API's ban counter, when /metrics is served.
    match http_get(p.admin, "/metrics") {
        Some((status, body)) if status.contains(" 200") => {
            let bans: f64 = body
                .lines()
                .filter(|l| l.starts_with("portcullis_policy_bans_total"))
                .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
                .sum();
            assert!(
                bans >= 1.0,
                "portcullis_policy_bans_total is {bans}:\n{body}"
            );
            note(&format!("portcullis_policy_bans_total = {bans}"));
        }
        other => note(&format!(
            "admin /metrics not served ({other:?}); ban checked through the log only"
        )),
    }
}

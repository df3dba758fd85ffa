//! Interop: trunks with several targets against real sipp UASes (answering OPTIONS
//! with `-aa`) and a real DNS server (dnsmasq, a child of the test on a loopback port):
//!
//! - OPTIONS health: a UAS killed (by PID) goes down, calls move to the other target;
//!   started again, it comes back up and gets the calls again;
//! - load balancing: 3,000 calls over three UASes by weight, each share within
//!   5 points of its weight's, and a dead fourth target gets none;
//! - RFC 3263: a trunk domain resolved NAPTR → SRV → A through dnsmasq, records
//!   changed while calls run, calls follow; an unresolvable domain shows in status.

mod sipp_harness;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sipp_harness::*;

/// `GET path` on the admin listener (no token in these configs): the body.
fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("admin connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n")
        .map_or(out.clone(), |(_, b)| b.to_owned())
}

/// The value of one sample of `/metrics` (`None`: absent).
fn metric(port: u16, name: &str, labels: &str) -> Option<f64> {
    let text = http_get(port, "/metrics");
    let head = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&head))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits (bounded, 30 s) until `cond` holds, polling every 200 ms.
#[track_caller]
fn wait_for(what: &str, app: &Appliance, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within 30 s\n{}",
            app.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn target_up(admin: u16, trunk: &str, port: u16) -> Option<f64> {
    metric(
        admin,
        "portcullis_trunk_target_up",
        &format!("trunk=\"{trunk}\",target=\"127.0.0.1:{port}\""),
    )
}

/// A sipp UAS named `name` on 127.0.0.1:`port`, answering calls and OPTIONS (`-aa`).
fn uas(dir: &Path, name: &str, port: u16, media: u16) -> Sipp {
    Sipp::peer(name, dir, "127.0.0.1", port, media, &["-sn", "uas", "-aa"])
}

/// `calls` calls from the UAC at `rate` per second; all must succeed.
fn calls(dir: &Path, p: Ports, n: usize, rate: u32) {
    let target = sip_target(p);
    let (m, r) = (n.to_string(), rate.to_string());
    let mut uac = start_uac(
        dir,
        p,
        &["-sn", "uac", &target, "-m", &m, "-r", &r, "-l", "200"],
    );
    uac.wait_ok(Duration::from_secs(240), "sipp uac failed");
}

/// Calls per B-leg target in the CDRs from index `from` on.
fn split(cdrs: &[serde_json::Value], from: usize) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for c in &cdrs[from..] {
        assert_eq!(end_kind(c), "normal_clearing", "{c}");
        let to = c["b_leg"]["remote"].as_str().unwrap_or("?").to_owned();
        *n.entry(to).or_default() += 1;
    }
    n
}

fn base(p: Ports, extra: &str) -> String {
    let cfg = config(p, "").replace(
        "[[trunk]]\nname = \"right\"",
        &format!("{extra}\n[[trunk]]\nname = \"right\""),
    );
    format!("{cfg}\n[[route]]\nname = \"left-to-out\"\nfrom = [\"left\"]\ntargets = [\"out\"]\n")
}

#[test]
fn a_killed_target_goes_down_calls_move_and_come_back() {
    let _serial = serial();
    let p = Ports::for_test(100);
    let (t1, t2) = (p.sip + 5, p.sip + 6);
    let trunk = format!(
        r#"[[trunk]]
name = "out"
targets = [{{ address = "127.0.0.1:{t1}", priority = 0 }}, {{ address = "127.0.0.1:{t2}", priority = 1 }}]
strategy = "priority"
options_interval = "1s"
miss_threshold = 2
recovery_count = 2
acl = ["127.0.0.9"]
"#
    );
    let app = Appliance::start(&base(p, &trunk));
    let dir = app.dir.path().to_path_buf();
    let mut u1 = uas(&dir, "uas1", t1, p.sipp_media + 100);
    let _u2 = uas(&dir, "uas2", t2, p.sipp_media + 104);
    wait_for("both targets up and answered", &app, || {
        metric(
            p.admin,
            "portcullis_trunk_pings_answered_total",
            &format!("trunk=\"out\",target=\"127.0.0.1:{t1}\""),
        )
        .is_some_and(|v| v >= 1.0)
            && target_up(p.admin, "out", t2) == Some(1.0)
    });
    calls(&dir, p, 10, 20);
    let cdrs = app.wait_cdrs(10, Duration::from_secs(20));
    let s = split(&cdrs, 0);
    assert_eq!(s.get(&format!("127.0.0.1:{t1}")), Some(&10), "{s:?}");

    // uas1 dies: missed pings put it down, calls go to uas2.
    u1.child.kill().expect("kill uas1");
    let _ = u1.child.wait();
    wait_for("uas1 down", &app, || {
        target_up(p.admin, "out", t1) == Some(0.0)
    });
    calls(&dir, p, 10, 20);
    let cdrs = app.wait_cdrs(20, Duration::from_secs(20));
    let s = split(&cdrs, 10);
    assert_eq!(s.get(&format!("127.0.0.1:{t2}")), Some(&10), "{s:?}");
    let status = http_get(p.admin, "/api/v1/trunks");
    assert!(status.contains("\"state\":\"down\""), "{status}");

    // uas1 is back: answered pings bring it up, calls return to it.
    let _u1 = uas(&dir, "uas1b", t1, p.sipp_media + 100);
    wait_for("uas1 up again", &app, || {
        target_up(p.admin, "out", t1) == Some(1.0)
    });
    calls(&dir, p, 10, 20);
    let cdrs = app.wait_cdrs(30, Duration::from_secs(20));
    let s = split(&cdrs, 20);
    assert_eq!(s.get(&format!("127.0.0.1:{t1}")), Some(&10), "{s:?}");
    assert!(app.log().contains("trunk target down"), "{}", app.log());
    assert!(app.log().contains("trunk target up"), "{}", app.log());
}

#[test]
fn three_thousand_calls_split_by_weight_and_none_to_a_dead_target() {
    let _serial = serial();
    let p = Ports::for_test(102);
    let t = [p.sip + 5, p.sip + 6, p.sip + 7, p.sip + 8];
    let trunk = format!(
        r#"[[trunk]]
name = "out"
targets = [
    {{ address = "127.0.0.1:{}", weight = 1 }},
    {{ address = "127.0.0.1:{}", weight = 1 }},
    {{ address = "127.0.0.1:{}", weight = 2 }},
    {{ address = "127.0.0.1:{}", weight = 2 }},
]
strategy = "weighted"
options_interval = "1s"
miss_threshold = 2
acl = ["127.0.0.9"]
"#,
        t[0], t[1], t[2], t[3]
    );
    let app = Appliance::start(&base(p, &trunk));
    let dir = app.dir.path().to_path_buf();
    let _u: Vec<Sipp> = (0..3)
        .map(|i| {
            uas(
                &dir,
                &format!("uas{i}"),
                t[i],
                p.sipp_media + 100 + 4 * i as u16,
            )
        })
        .collect();
    // Nothing listens on the fourth target: it must be down before the calls start.
    wait_for("dead target down, live ones answered", &app, || {
        target_up(p.admin, "out", t[3]) == Some(0.0)
            && t[..3].iter().all(|port| {
                metric(
                    p.admin,
                    "portcullis_trunk_pings_answered_total",
                    &format!("trunk=\"out\",target=\"127.0.0.1:{port}\""),
                )
                .is_some_and(|v| v >= 1.0)
            })
    });
    let started = Instant::now();
    calls(&dir, p, 3000, 100);
    let cdrs = app.wait_cdrs(3000, Duration::from_secs(30));
    assert_eq!(cdrs.len(), 3000);
    let s = split(&cdrs, 0);
    note(&format!("3000 calls in {:?}: {s:?}", started.elapsed()));
    assert_eq!(
        s.get(&format!("127.0.0.1:{}", t[3])),
        None,
        "dead target got calls"
    );
    for (port, want) in [(t[0], 0.25), (t[1], 0.25), (t[2], 0.5)] {
        let got = *s.get(&format!("127.0.0.1:{port}")).unwrap_or(&0) as f64 / 3000.0;
        assert!(
            (got - want).abs() < 0.05,
            "target {port}: {got} vs {want}: {s:?}"
        );
    }
}

/// dnsmasq serving `carrier.test`: NAPTR → `_sip._udp.carrier.test` SRV → `host`:`port`.
fn dnsmasq(dir: &Path, dns_port: u16, host: &str, port: u16) -> Child {
    let log = std::fs::File::create(dir.join("dnsmasq.log")).expect("dnsmasq log");
    Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            &format!("--port={dns_port}"),
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--local-ttl=1",
            "--host-record=uas1.carrier.test,127.0.0.1",
            "--host-record=uas2.carrier.test,127.0.0.1",
            &format!("--srv-host=_sip._udp.carrier.test,{host},{port},0,1"),
            "--naptr-record=carrier.test,10,10,S,SIP+D2U,,_sip._udp.carrier.test",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("dnsmasq (Debian dnsmasq-base) must be installed")
}

#[test]
fn srv_records_changed_while_calls_run_and_a_domain_that_does_not_resolve() {
    let _serial = serial();
    let p = Ports::for_test(104);
    let (t1, t2, dns_port) = (p.sip + 5, p.sip + 6, p.sip + 7);
    let trunk = r#"[[trunk]]
name = "out"
address = "carrier.test"
options_interval = "1s"
acl = ["127.0.0.9"]

[[trunk]]
name = "ghost"
address = "nowhere.carrier.test"
acl = ["127.0.0.8"]
"#;
    let cfg = base(p, trunk)
        + &format!("\n[dns]\nservers = [\"127.0.0.1:{dns_port}\"]\nmin_ttl = \"1s\"\n");
    let app = Appliance::start(&cfg);
    let dir = app.dir.path().to_path_buf();
    let mut dns = dnsmasq(&dir, dns_port, "uas1.carrier.test", t1);
    let _u1 = uas(&dir, "uas1", t1, p.sipp_media + 100);
    let _u2 = uas(&dir, "uas2", t2, p.sipp_media + 104);
    wait_for("carrier.test resolved to uas1", &app, || {
        target_up(p.admin, "out", t1) == Some(1.0)
    });
    let status = http_get(p.admin, "/api/v1/trunks");
    assert!(status.contains("\"resolution\":\"resolved\""), "{status}");
    assert_eq!(
        metric(p.admin, "portcullis_trunk_targets", "trunk=\"ghost\""),
        Some(0.0),
        "{status}"
    );
    let trunks: serde_json::Value = serde_json::from_str(&status).expect("trunks JSON");
    let ghost = trunks
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == "ghost"))
        .expect("ghost trunk listed");
    assert!(ghost["targets"]["error"].is_string(), "{ghost}");
    assert_eq!(ghost["health"]["state"], "down", "{ghost}");

    // 40 calls at 4/s; after 3 s the SRV record moves to uas2.
    let target = sip_target(p);
    let mut uac = start_uac(
        &dir,
        p,
        &["-sn", "uac", &target, "-m", "40", "-r", "4", "-l", "50"],
    );
    std::thread::sleep(Duration::from_secs(3));
    let _ = dns.kill();
    let _ = dns.wait();
    let mut dns = dnsmasq(&dir, dns_port, "uas2.carrier.test", t2);
    uac.wait_ok(Duration::from_secs(120), "sipp uac failed");
    let cdrs = app.wait_cdrs(40, Duration::from_secs(20));
    let s = split(&cdrs, 0);
    let (n1, n2) = (
        s.get(&format!("127.0.0.1:{t1}")).copied().unwrap_or(0),
        s.get(&format!("127.0.0.1:{t2}")).copied().unwrap_or(0),
    );
    assert_eq!(n1 + n2, 40, "{s:?}");
    assert!(n1 >= 4 && n2 >= 4, "calls followed the records: {s:?}");
    let last = cdrs.last().unwrap();
    assert_eq!(last["b_leg"]["remote"], format!("127.0.0.1:{t2}"), "{last}");
    let _ = dns.kill();
    let _ = dns.wait();
}

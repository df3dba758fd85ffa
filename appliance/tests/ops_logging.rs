//! Logging of the real `portcullis` binary with real sipp peers:
//!
//! - every log line of a call carries the call's span (`call`, `a_call_id`, `b_call_id`),
//!   so the caller's Call-ID finds all of them, including the data plane's events
//!   ("media source latched" when RTP arrives);
//! - the log filter changes at run time through `PUT /api/v1/log-level` and through a
//!   SIGHUP reload of a file whose `[log] level` changed, is reported by
//!   `GET /api/v1/log-level` and `/metrics`, and really filters (lines appear and vanish);
//! - under journald (`JOURNAL_STREAM` naming stderr) every line starts with its syslog
//!   priority and carries no timestamp (text and JSON); JSON lines keep the call span.
//!
//! Needs `sipp` (Debian `sip-tester`); a missing tool fails with a message.

mod sipp_harness;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sipp_harness::*;

/// A sipp UAS (built-in scenario) for `calls` calls on trunk `right`.
fn uas(p: Ports, dir: &std::path::Path, calls: u32) -> Sipp {
    Sipp::start(
        "uas",
        dir,
        &sipp_args(
            "127.0.0.1",
            p.right,
            p.sipp_media + 100,
            &["-sn", "uas", "-m", &calls.to_string()],
        ),
    )
}

/// One call from trunk `left` with Call-ID `cid` (sipp's `-cid_str`), 200 ms long.
fn call(p: Ports, dir: &std::path::Path, cid: &str) {
    let target = format!("127.0.0.1:{}", p.sip);
    let mut uac = Sipp::start(
        "uac",
        dir,
        &sipp_args(
            "127.0.0.1",
            p.left,
            p.sipp_media,
            &[
                "-sn", "uac", &target, "-s", "2000", "-m", "1", "-d", "200", "-cid_str", cid,
            ],
        ),
    );
    let st = uac.wait(Duration::from_secs(30));
    assert!(st.success(), "uac {cid} failed ({st}):\n{}", uac.output());
}

/// One call from trunk `left` with Call-ID `cid` playing G.711 RTP (`uac_pcap`).
fn media_call(p: Ports, dir: &std::path::Path, cid: &str) {
    pcaps(dir);
    let target = format!("127.0.0.1:{}", p.sip);
    let mut uac = Sipp::start(
        "uac-media",
        dir,
        &sipp_args(
            "127.0.0.1",
            p.left,
            p.sipp_media,
            &["-sn", "uac_pcap", &target, "-m", "1", "-cid_str", cid],
        ),
    );
    let st = uac.wait(Duration::from_secs(40));
    assert!(st.success(), "uac {cid} failed ({st}):\n{}", uac.output());
}

/// `(status, body)` of an admin request (no token configured in the harness).
fn admin(p: Ports, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let url = format!("http://127.0.0.1:{}{path}", p.admin);
    let req = ureq::request(method, &url).timeout(Duration::from_secs(5));
    let r = match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    };
    match r {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

fn metric_filter(p: Ports) -> Option<String> {
    let (code, text) = admin(p, "GET", "/metrics", None);
    assert_eq!(code, 200, "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("portcullis_log_filter_info{filter=\""))
        .and_then(|l| l.strip_suffix("\"} 1"))
        .map(str::to_owned)
}

fn generation(p: Ports) -> u64 {
    let (_, text) = admin(p, "GET", "/metrics", None);
    text.lines()
        .find_map(|l| l.strip_prefix("portcullis_config_generation "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Polls `cond` on the log until true (bounded).
fn wait_log(app: &Appliance, what: &str, cond: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = app.log();
        if cond(&log) {
            return;
        }
        assert!(Instant::now() < deadline, "{what} not in the log:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A message whose Content-Length is not a number: a stream framing error, logged at debug.
fn framing_error(p: Ports) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", p.sip))
        .unwrap_or_else(|e| panic!("connect SIP/TCP: {e}"));
    s.write_all(
        b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKops\r\nContent-Length: lots\r\n\r\n",
    )
    .unwrap_or_else(|e| panic!("write: {e}"));
    // Give the driver the bytes before the socket goes.
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn call_lines_carry_call_ids_and_the_filter_changes_at_run_time() {
    let _serial = serial();
    let p = Ports::for_test(36);
    let app = Appliance::start(&config(p, ROUTE_LEFT_RIGHT));
    let dir = app.dir.path().to_path_buf();
    let mut server = uas(p, &dir, 4);
    std::thread::sleep(Duration::from_millis(300));

    // 1. A call: each of its lines names the A and B Call-IDs and the call id.
    call(p, &dir, "ops-log-one-%u-%p@%s");
    let cdrs = app.wait_cdrs(1, Duration::from_secs(10));
    assert_eq!(cdrs.len(), 1, "{}", app.log());
    let a_cid = cdrs[0]["a_leg"]["call_id"]
        .as_str()
        .unwrap_or_else(|| panic!("CDR without a_leg.call_id: {}", cdrs[0]))
        .to_owned();
    let b_cid = cdrs[0]["b_leg"]["call_id"]
        .as_str()
        .unwrap_or_else(|| panic!("CDR without b_leg.call_id: {}", cdrs[0]))
        .to_owned();
    let id = cdrs[0]["call_id"].as_u64().expect("CDR call id");
    assert!(a_cid.starts_with("ops-log-one-"), "{a_cid}");
    assert_ne!(a_cid, b_cid, "the B leg has its own Call-ID");
    let log = app.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(&a_cid)).collect();
    for msg in ["call started", "call answered", "call ended"] {
        let line = lines
            .iter()
            .find(|l| l.contains(msg))
            .unwrap_or_else(|| panic!("no {msg:?} line with {a_cid}:\n{log}"));
        assert!(
            line.contains(&format!(
                "call{{call={id} a_call_id={a_cid} b_call_id={b_cid}"
            )),
            "{msg}: span fields missing in {line:?}"
        );
    }

    // 2. The filter in force is reported.
    assert_eq!(
        admin(p, "GET", "/api/v1/log-level", None),
        (200, r#"{"level":"info"}"#.to_owned())
    );
    assert_eq!(metric_filter(p).as_deref(), Some("info"));

    // 3. PUT debug: debug lines appear (none before).
    framing_error(p);
    assert!(!app.log().contains("stream framing error"), "debug at info");
    let (code, body) = admin(p, "PUT", "/api/v1/log-level", Some(r#"{"level":"debug"}"#));
    assert_eq!((code, body.as_str()), (200, r#"{"level":"debug"}"#));
    assert_eq!(metric_filter(p).as_deref(), Some("debug"));
    framing_error(p);
    wait_log(&app, "debug line after PUT debug", |l| {
        l.contains("stream framing error")
    });
    // A bad filter is refused; the one in force stays.
    let (code, body) = admin(p, "PUT", "/api/v1/log-level", Some("chatty"));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("invalid log filter"), "{body}");
    assert_eq!(metric_filter(p).as_deref(), Some("debug"));

    // 4. SIGHUP with `[log] level = "warn"` in the file: info lines of a call vanish.
    let text = std::fs::read_to_string(&app.config_path).expect("config");
    let warn = text
        .replace("level = \"info\"", "level = \"warn\"")
        .replace("drain_timeout = \"3s\"", "drain_timeout = \"4s\"");
    assert_eq!(
        warn.len(),
        text.len(),
        "the harness config sets [log] level and drain_timeout"
    );
    assert!(warn.contains("drain_timeout = \"4s\""));
    std::fs::write(&app.config_path, &warn).expect("write config");
    app.signal("HUP");
    wait_log(&app, "filter change by SIGHUP", |l| {
        l.contains("log filter changed from=debug to=warn")
    });
    assert_eq!(
        admin(p, "GET", "/api/v1/log-level", None),
        (200, r#"{"level":"warn"}"#.to_owned())
    );
    // What a reload cannot apply is named.
    wait_log(&app, "restart-only change named", |l| {
        l.contains("drain_timeout and drain_notice changes take effect at the next restart")
    });
    call(p, &dir, "ops-log-two-%u-%p@%s");
    let cdrs = app.wait_cdrs(2, Duration::from_secs(10));
    assert_eq!(cdrs.len(), 2);
    let log = app.log();
    assert!(
        !log.contains("ops-log-two-"),
        "info lines logged at warn:\n{log}"
    );
    // A reload that leaves the level alone keeps the filter set since.
    let (code, _) = admin(p, "PUT", "/api/v1/log-level", Some("info"));
    assert_eq!(code, 200);
    app.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(15);
    while generation(p) < 3 {
        assert!(
            Instant::now() < deadline,
            "second reload not done:\n{}",
            app.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(metric_filter(p).as_deref(), Some("info"));
    call(p, &dir, "ops-log-three-%u-%p@%s");
    wait_log(&app, "info lines back", |l| {
        l.lines()
            .any(|x| x.contains("ops-log-three-") && x.contains("call ended"))
    });

    // 5. Data plane events are logged in the call's span: at debug, the caller's RTP
    // latches its source, and that line names the call and its Call-IDs.
    let (code, _) = admin(p, "PUT", "/api/v1/log-level", Some("debug"));
    assert_eq!(code, 200);
    media_call(p, &dir, "ops-log-media-%u-%p@%s");
    let cdrs = app.wait_cdrs(4, Duration::from_secs(10));
    assert_eq!(cdrs.len(), 4, "{}", app.log());
    let cdr = &cdrs[3];
    let a_cid = cdr["a_leg"]["call_id"].as_str().unwrap_or_default();
    let b_cid = cdr["b_leg"]["call_id"].as_str().unwrap_or_default();
    assert!(a_cid.starts_with("ops-log-media-"), "{cdr}");
    let span = format!(
        "call{{call={} a_call_id={a_cid} b_call_id={b_cid}}}",
        cdr["call_id"].as_u64().expect("CDR call id")
    );
    wait_log(&app, "latched line in the call's span", |l| {
        l.lines()
            .any(|x| x.contains("media source latched") && x.contains(&span))
    });
    let st = server.wait(Duration::from_secs(15));
    assert!(st.success(), "uas ({st}):\n{}", server.output());

    // 6. A refused reload names every reason on one line (one journal entry, one priority).
    let broken = warn
        .replace("targets = [\"right\"]", "targets = [\"nowhere\"]")
        .replace("rate_limit = 100000", "rate_limit = 0");
    assert!(broken.contains("nowhere") && broken.contains("rate_limit = 0"));
    std::fs::write(&app.config_path, &broken).expect("write config");
    app.signal("HUP");
    wait_log(&app, "refused reload", |l| l.contains("reload refused"));
    let log = app.log();
    let line = log
        .lines()
        .find(|l| l.contains("reload refused"))
        .unwrap_or_default();
    assert!(
        line.contains("nowhere") && line.contains("rate_limit"),
        "reasons not on the refusal line {line:?}:\n{log}"
    );
}

/// Starts the binary with `cfg` and stderr to a file that `JOURNAL_STREAM` names, as
/// systemd does for a unit whose stderr is the journal.
fn start_journal(dir: tempfile::TempDir, cfg: &str) -> Appliance {
    let config_path = dir.path().join("portcullis.toml");
    std::fs::write(&config_path, cfg).expect("config");
    let log_path = dir.path().join("portcullis.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let meta = log.metadata().expect("stat log");
    // As systemd does for a unit whose stderr is the journal: DEV:INODE of stderr.
    let journal_stream = format!("{}:{}", meta.dev(), meta.ino());
    let child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--config"])
        .arg(&config_path)
        .current_dir(dir.path())
        .env("JOURNAL_STREAM", &journal_stream)
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn portcullis");
    Appliance {
        child,
        dir,
        config_path,
        log_path,
    }
}

#[test]
fn journald_text_lines_have_priorities_and_no_timestamp() {
    let p = Ports::for_test(39);
    let dir = tempfile::tempdir().expect("tempdir");
    let app = start_journal(dir, &config(p, ROUTE_LEFT_RIGHT));
    wait_log(&app, "portcullis ready", |l| l.contains("portcullis ready"));
    let log = app.log();
    for line in log.lines() {
        let (prio, rest) = line
            .strip_prefix('<')
            .and_then(|l| l.split_once('>'))
            .unwrap_or_else(|| panic!("no <N> priority prefix: {line:?}"));
        let level = rest.split_whitespace().next().unwrap_or("");
        let want = match level {
            "ERROR" => "3",
            "WARN" => "4",
            "INFO" => "6",
            "DEBUG" | "TRACE" => "7",
            other => panic!("no level first (a timestamp?): {other:?} in {line:?}"),
        };
        assert_eq!(prio, want, "{line}");
    }
    assert!(
        log.contains("<6> INFO portcullis::runtime: portcullis ready"),
        "{log}"
    );
}

#[test]
fn journald_lines_have_priorities_and_json_keeps_the_span() {
    let _serial = serial();
    let p = Ports::for_test(37);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(p, ROUTE_LEFT_RIGHT).replace(
        "[log]\nlevel = \"info\"",
        "[log]\nlevel = \"info\"\nformat = \"json\"",
    );
    assert!(cfg.contains("format = \"json\""), "harness config changed");
    let app = start_journal(dir, &cfg);
    wait_log(&app, "portcullis ready", |l| l.contains("portcullis ready"));
    let dirp = app.dir.path().to_path_buf();
    let mut server = uas(p, &dirp, 1);
    std::thread::sleep(Duration::from_millis(300));
    call(p, &dirp, "ops-journal-%u-%p@%s");
    wait_log(&app, "call ended", |l| l.contains("call ended"));
    let log = app.log();
    let mut call_lines = 0;
    for line in log.lines() {
        let (prio, json) = line
            .strip_prefix('<')
            .and_then(|l| l.split_once('>'))
            .unwrap_or_else(|| panic!("no <N> priority prefix: {line:?}"));
        let v: serde_json::Value =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
        let want = match v["level"].as_str() {
            Some("ERROR") => "3",
            Some("WARN") => "4",
            Some("INFO") => "6",
            Some("DEBUG" | "TRACE") => "7",
            other => panic!("level {other:?} in {line:?}"),
        };
        assert_eq!(prio, want, "{line}");
        assert!(
            v.get("timestamp").is_none(),
            "journald stamps lines: {line}"
        );
        let msg = v["fields"]["message"].as_str().unwrap_or("");
        if msg.starts_with("call ") {
            call_lines += 1;
            let span = &v["span"];
            assert_eq!(span["name"], "call", "{line}");
            assert!(
                span["a_call_id"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("ops-journal-")),
                "{line}"
            );
            assert!(
                span["b_call_id"].as_str().is_some_and(|c| !c.is_empty()),
                "{line}"
            );
        }
    }
    assert_eq!(call_lines, 3, "started, answered, ended:\n{log}");
    let st = server.wait(Duration::from_secs(15));
    assert!(st.success(), "uas ({st}):\n{}", server.output());
}

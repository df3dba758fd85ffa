//! The `[ng]` section and `portcullis media-node` without Kamailio: the checks of every
//! `[ng]` key, a file with `[ng]` and no SIP listener, a node that refuses to start
//! without `[ng]`, and a running node answering (and refusing) ng requests over UDP with
//! its counters in `/metrics`.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use portcullis::config::{Config, Diagnostic, HostInfo, LoadOptions};
use portcullis::ng::bencode::{decode, Value};

fn load(src: &str) -> Result<Config, Vec<Diagnostic>> {
    let opts = LoadOptions {
        check_files: false,
        host: HostInfo::with_cpus(2),
    };
    Config::from_toml(src, Path::new("/"), &opts)
}

const NODE: &str = r#"
[media]
advertised_ip = "127.0.0.1"
port_min = 20000
port_max = 20999
cores = [0]

[ng]
listen = "127.0.0.1:22222"
"#;

#[test]
fn a_media_node_file_needs_no_sip_listener_and_takes_the_defaults() {
    let cfg = load(NODE).unwrap_or_else(|d| panic!("{d:?}"));
    let ng = cfg.ng.expect("[ng]");
    assert_eq!(ng.listen, "127.0.0.1:22222".parse().unwrap());
    assert_eq!(ng.max_sessions, 10_000);
    assert_eq!(ng.timeout, Duration::from_secs(60));
    assert_eq!(ng.silent_timeout, Duration::from_secs(3600));
    assert_eq!(ng.max_message_size, 16_384);
    assert_eq!(ng.interfaces, ["default"]);
    assert!(cfg.sip.listeners.is_empty());
    // Without [ng] a listener is still required.
    let no_ng = NODE.split("[ng]").next().unwrap();
    let d = load(no_ng).unwrap_err();
    assert!(
        d.iter()
            .any(|d| d.path == "sip" && d.message.contains("[ng]")),
        "{d:?}"
    );
}

#[test]
fn every_ng_key_is_checked_with_its_path() {
    for (bad, path, why) in [
        ("listen = \"nowhere\"", "ng.listen", ""),
        ("listen = \"127.0.0.1:0\"", "ng.listen", "port"),
        (
            "listen = \"127.0.0.1:20010\"",
            "ng.listen",
            "media port range",
        ),
        ("max_sessions = 0", "ng.max_sessions", "at least 1"),
        ("timeout = \"500ms\"", "ng.timeout", ""),
        ("silent_timeout = \"60\"", "ng.silent_timeout", ""),
        ("max_message_size = 512", "ng.max_message_size", "1024"),
        ("max_message_size = 70000", "ng.max_message_size", "65507"),
        ("interfaces = [\"a b\"]", "ng.interfaces[0]", "printable"),
    ] {
        let key = bad.split(' ').next().unwrap();
        let src = if key == "listen" {
            NODE.replace("listen = \"127.0.0.1:22222\"", bad)
        } else {
            format!("{NODE}{bad}\n")
        };
        let d = load(&src).expect_err(bad);
        assert!(
            d.iter()
                .any(|d| d.path == path && d.message.contains(why) && d.location.is_some()),
            "{bad}: {d:?}"
        );
    }
    let d = load(&format!("{NODE}colour = \"blue\"\n")).unwrap_err();
    assert!(d[0].message.contains("colour"), "{d:?}");
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn media_node_refuses_a_file_without_ng() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.toml");
    let src = format!(
        "[[sip.listener]]\ntransport = \"udp\"\naddress = \"127.0.0.1:{}\"\n{}",
        free_port(),
        NODE.split("[ng]")
            .next()
            .unwrap()
            .replace("cores = [0]", "cores = \"auto:1\"")
    );
    std::fs::write(&path, src).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["media-node", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("[ng]"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends `msg` to the node, returns the reply split at the cookie.
fn ask(sock: &UdpSocket, to: u16, msg: &[u8]) -> (String, Value) {
    sock.send_to(msg, ("127.0.0.1", to)).unwrap();
    let mut buf = vec![0u8; 65536];
    let n = sock.recv(&mut buf).expect("reply");
    let sp = buf[..n].iter().position(|&b| b == b' ').unwrap();
    (
        String::from_utf8_lossy(&buf[..sp]).into_owned(),
        decode(&buf[sp + 1..n]).unwrap(),
    )
}

fn text(v: &Value, key: &str) -> String {
    String::from_utf8_lossy(v.get(key).and_then(Value::as_bytes).unwrap_or(b"")).into_owned()
}

/// Starts `portcullis <command> --config <config>` in `dir` (its log in
/// `dir/<command>.log`) and waits (20 s at most) for `ready` in its log.
fn start(dir: &Path, command: &str, config: &Path, ready: &str) -> Child {
    let log = dir.join(format!("{command}.log"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([command, "--config"])
        .arg(config)
        .current_dir(dir)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains(ready)
    {
        assert!(
            Instant::now() < deadline,
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "portcullis {command} exited: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[test]
fn a_running_node_answers_ng_and_counts_what_it_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let (ng, admin) = (free_port(), free_port());
    let path = dir.path().join("n.toml");
    std::fs::write(
        &path,
        format!(
            "[node]\nname = \"mn\"\n[media]\nadvertised_ip = \"127.0.0.1\"\nbind_ip = \"127.0.0.1\"\n\
             port_min = 32400\nport_max = 32527\ncores = \"auto:1\"\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n[ng]\nlisten = \"127.0.0.1:{ng}\"\n\
             max_sessions = 1\n"
        ),
    )
    .unwrap();
    let mut child = start(dir.path(), "media-node", &path, "media node ready");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (cookie, r) = ask(&sock, ng, b"c-1 d7:command4:pinge");
    assert_eq!(
        (cookie.as_str(), text(&r, "result").as_str()),
        ("c-1", "pong")
    );
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n";
    let offer = |call: &str| {
        Value::dict([
            ("command", Value::s("offer")),
            ("call-id", Value::s(call)),
            ("from-tag", Value::s("f")),
            ("sdp", Value::s(sdp)),
            ("supports", Value::List(vec![Value::s("load limit")])),
        ])
        .encode()
    };
    let (_, r) = ask(&sock, ng, &[b"c-2 ".as_slice(), &offer("one")].concat());
    assert_eq!(text(&r, "result"), "ok", "{r:?}");
    assert!(text(&r, "sdp").contains("m=audio 324"), "{r:?}");
    // max_sessions = 1: the next call is refused for load.
    let (_, r) = ask(&sock, ng, &[b"c-3 ".as_slice(), &offer("two")].concat());
    assert_eq!(text(&r, "result"), "load limit", "{r:?}");
    // Not implemented: named.
    let (_, r) = ask(
        &sock,
        ng,
        b"c-4 d7:command5:offer5:flagsl13:strict-sourceee",
    );
    assert!(text(&r, "error-reason").contains("strict-source"), "{r:?}");
    // No cookie: dropped, counted.
    sock.send_to(b"garbage", ("127.0.0.1", ng)).unwrap();
    let metrics = |name: &str| -> u64 {
        let body = ureq::get(&format!("http://127.0.0.1:{admin}/metrics"))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        body.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while metrics("portcullis_ng_errors_total{reason=\"malformed\"}") != 1 {
        assert!(Instant::now() < deadline, "malformed datagram not counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        metrics("portcullis_ng_commands_total{command=\"offer\",result=\"ok\"}"),
        1
    );
    assert_eq!(
        metrics("portcullis_ng_commands_total{command=\"offer\",result=\"load_limit\"}"),
        1
    );
    assert_eq!(
        metrics("portcullis_ng_errors_total{reason=\"unsupported\"}"),
        1
    );
    assert_eq!(metrics("portcullis_ng_sessions_active"), 1);
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "SIGTERM: clean exit, got {st}");
            break;
        }
        assert!(Instant::now() < deadline, "node did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn run_with_ng_answers_beside_the_sip_engine() {
    let dir = tempfile::tempdir().unwrap();
    let (sip, ng, admin) = (free_port(), free_port(), free_port());
    let path = dir.path().join("a.toml");
    std::fs::write(
        &path,
        format!(
            "[[sip.listener]]\ntransport = \"udp\"\naddress = \"127.0.0.1:{sip}\"\n\
             [media]\nadvertised_ip = \"127.0.0.1\"\nbind_ip = \"127.0.0.1\"\n\
             port_min = 32528\nport_max = 32655\ncores = \"auto:1\"\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n[cdr]\npath = \"cdr.jsonl\"\n\
             [ng]\nlisten = \"127.0.0.1:{ng}\"\n"
        ),
    )
    .unwrap();
    let mut child = start(dir.path(), "run", &path, "portcullis ready");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n";
    let offer = Value::dict([
        ("command", Value::s("offer")),
        ("call-id", Value::s("x")),
        ("from-tag", Value::s("f")),
        ("sdp", Value::s(sdp)),
    ]);
    let (_, r) = ask(&sock, ng, &[b"r-1 ".as_slice(), &offer.encode()].concat());
    assert_eq!(text(&r, "result"), "ok", "{r:?}");
    assert!(text(&r, "sdp").contains("m=audio 325"), "{r:?}");
    let body = ureq::get(&format!("http://127.0.0.1:{admin}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        body.contains("portcullis_ng_commands_total{command=\"offer\",result=\"ok\"} 1"),
        "{body}"
    );
    assert!(body.contains("portcullis_ng_sessions_active 1"), "{body}");
    let _ = child.kill();
    let _ = child.wait();
}

//! Start-up refuses a half-working appliance: an admin listener that cannot bind fails
//! the start (exit status and a message naming the address), and an admin address that
//! is a SIP TCP/TLS listener's is refused by `check-config` and `run` alike.

mod sipp_harness;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sipp_harness::*;

/// Runs `portcullis args` in `dir` until it exits (60 s at most); returns (exit code,
/// stdout + stderr).
fn run_to_exit(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out_path = dir.join("out.log");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("spawn portcullis");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "portcullis still running after 60 s:\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status.code(),
        std::fs::read_to_string(&out_path).unwrap_or_default(),
    )
}

#[test]
fn a_busy_admin_port_fails_the_start_with_a_clear_message() {
    let _serial = serial();
    let p = Ports::for_test(21);
    // Someone else holds the admin port.
    let holder = std::net::TcpListener::bind(("127.0.0.1", p.admin)).expect("hold admin port");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("portcullis.toml");
    std::fs::write(&cfg, config(p, ROUTE_LEFT_RIGHT)).unwrap();
    let (code, out) = run_to_exit(dir.path(), &["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    let want = format!("admin API listener 127.0.0.1:{}", p.admin);
    let last = out.lines().last().unwrap_or("");
    assert!(
        last.starts_with("portcullis: ") && last.contains(&want) && last.contains("in use"),
        "last line should name the address and the cause:\n{out}"
    );
    assert!(!out.contains("portcullis ready"), "{out}");
    // Nothing was left behind: the SIP port is free again.
    std::net::UdpSocket::bind(("127.0.0.1", p.sip)).expect("SIP port released");
    drop(holder);
}

#[test]
fn an_admin_address_on_a_sip_tcp_listener_is_refused_by_check_config_and_run() {
    let p = Ports::for_test(21);
    let dir = tempfile::tempdir().unwrap();
    let admin_line = format!("listen = \"127.0.0.1:{}\"", p.admin);
    let src = config(p, ROUTE_LEFT_RIGHT)
        .replace(&admin_line, &format!("listen = \"127.0.0.1:{}\"", p.sip));
    let cfg = dir.path().join("clash.toml");
    std::fs::write(&cfg, &src).unwrap();
    let file = cfg.to_str().unwrap();
    let line = src
        .lines()
        .position(|l| l == format!("listen = \"127.0.0.1:{}\"", p.sip))
        .expect("admin line")
        + 1;
    let want = format!(
        "{file}:{line}:10: admin.listen: 127.0.0.1:{sip} uses the same TCP port as sip.listener[1] (tcp 127.0.0.1:{sip})",
        sip = p.sip
    );
    let (code, out) = run_to_exit(dir.path(), &["check-config", file]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&want), "want {want:?} in:\n{out}");
    let (code, out) = run_to_exit(dir.path(), &["run", "--config", file]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&want), "want {want:?} in:\n{out}");
    assert!(!out.contains("portcullis ready"), "{out}");

    // The same port over UDP only is another socket: accepted.
    let udp_only = src.replace(
        &format!(
            "[[sip.listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:{}\"\n",
            p.sip
        ),
        "",
    );
    assert_ne!(udp_only, src);
    let ok = dir.path().join("udp.toml");
    std::fs::write(&ok, udp_only).unwrap();
    let (code, out) = run_to_exit(dir.path(), &["check-config", ok.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
}

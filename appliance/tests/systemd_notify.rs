//! End to end: `portcullis run` under a fake service manager.
//!
//! The test plays systemd's part of the `sd_notify(3)` protocol: it binds
//! the `NOTIFY_SOCKET` datagram socket, passes `WATCHDOG_USEC`, and checks
//! that the binary says `READY=1` once both planes are up, pings
//! `WATCHDOG=1` at least every half period, and says `STOPPING=1` on
//! SIGTERM before exiting successfully.

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Ports away from the other appliance tests (15000-15300, 20000-26000).
const SIP_PORT: u16 = 16_950;
const ADMIN_PORT: u16 = 16_954;
const MEDIA_MIN: u16 = 27_000;
const MEDIA_MAX: u16 = 27_255;
/// Watchdog period given to the binary: pings are due every 1 s.
const WATCHDOG: Duration = Duration::from_secs(2);

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Next datagram within `within`, as text; panics with `what` on timeout.
fn next(sock: &UnixDatagram, within: Duration, what: &str, log: &std::path::Path) -> String {
    sock.set_read_timeout(Some(within)).expect("timeout");
    let mut buf = [0u8; 4096];
    match sock.recv(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) => panic!(
            "no {what} within {within:?} ({e}); log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        ),
    }
}

/// Reads datagrams until one holds the assignment `line`; returns the time
/// it took. Other messages (STATUS=..., earlier pings) are skipped.
fn wait_for(sock: &UnixDatagram, line: &str, within: Duration, log: &std::path::Path) -> Duration {
    let start = Instant::now();
    loop {
        let left = within
            .checked_sub(start.elapsed())
            .filter(|d| !d.is_zero())
            .unwrap_or_else(|| panic!("no {line} within {within:?}"));
        let msg = next(sock, left, line, log);
        if msg.lines().any(|l| l == line) {
            return start.elapsed();
        }
    }
}

#[test]
fn run_notifies_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            r#"[node]
name = "notify-test"

[[sip.listener]]
transport = "udp"
address = "127.0.0.1:{SIP_PORT}"

[sip]
drain_timeout = "1s"

[media]
advertised_ip = "127.0.0.1"
bind_ip = "127.0.0.1"
port_min = {MEDIA_MIN}
port_max = {MEDIA_MAX}
cores = "auto:1"

[admin]
listen = "127.0.0.1:{ADMIN_PORT}"

[cdr]
path = "cdr.jsonl"
"#
        ),
    )
    .expect("write config");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind NOTIFY_SOCKET");
    let log = dir.path().join("portcullis.log");

    let child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", WATCHDOG.as_micros().to_string())
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).expect("log")))
        .spawn()
        .expect("spawn portcullis");
    let mut app = Running(child);

    // READY=1 comes first: nothing but STATUS may precede it.
    let start = Instant::now();
    loop {
        let left = Duration::from_secs(20).saturating_sub(start.elapsed());
        let msg = next(&sock, left.max(Duration::from_millis(1)), "READY=1", &log);
        if msg.lines().any(|l| l == "READY=1") {
            break;
        }
        assert!(
            msg.lines().all(|l| l.starts_with("STATUS=")),
            "{msg:?} before READY=1"
        );
    }
    // The planes are up: the SIP listener answers on its port (bound, so a
    // second bind fails).
    assert!(
        std::net::UdpSocket::bind(("127.0.0.1", SIP_PORT)).is_err(),
        "READY=1 before the SIP listener was bound"
    );

    // Pings keep coming at least every half period.
    for _ in 0..3 {
        let took = wait_for(&sock, "WATCHDOG=1", WATCHDOG, &log);
        assert!(took <= WATCHDOG, "watchdog ping after {took:?}");
    }

    let pid = app.0.id().to_string();
    let st = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(st.success(), "kill -TERM {pid}");
    wait_for(&sock, "STOPPING=1", Duration::from_secs(5), &log);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = app.0.try_wait().expect("try_wait") {
            break st;
        }
        assert!(Instant::now() < deadline, "no exit 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

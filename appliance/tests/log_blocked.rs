//! Logging never blocks the appliance: with stderr a pipe nobody reads (after start-up),
//! calls are still handled, the lines that did not fit are dropped and counted, and the
//! process still stops on SIGTERM.

mod common_admin;
mod sipp_harness;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common_admin::sample;
use sipp_harness::*;

/// The appliance process, killed if the test ends before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn a_stalled_stderr_does_not_stall_calls_and_dropped_lines_are_counted() {
    const CALLS: usize = 200;
    let _serial = serial();
    let p = Ports::for_test(25);
    let dir = tempfile::tempdir().unwrap();
    let toml = config(p, ROUTE_LEFT_RIGHT).replace(
        "[log]\nlevel = \"info\"",
        "[log]\nlevel = \"debug\"\nbuffer_lines = 64",
    );
    let cfg = dir.path().join("portcullis.toml");
    std::fs::write(&cfg, toml).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--config", cfg.to_str().unwrap()])
        .current_dir(dir.path())
        .env("RUST_LOG", "debug")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn portcullis");
    let mut child = Running(child);
    // Read stderr until ready, then keep the pipe open and never read it again.
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<ChildStderr>();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stderr);
        let mut line = String::new();
        while r.read_line(&mut line).is_ok_and(|n| n > 0) {
            if line.contains("portcullis ready") {
                let _ = tx.send(r.into_inner());
                return;
            }
            line.clear();
        }
    });
    let Ok(_unread) = rx.recv_timeout(Duration::from_secs(30)) else {
        panic!("portcullis not ready within 30 s");
    };
    let target = sip_target(p);
    let calls = CALLS.to_string();
    let mut uas = start_uas(dir.path(), p, &["-sn", "uas", "-m", &calls]);
    let mut uac = start_uac(
        dir.path(),
        p,
        &[
            "-sn",
            "uac",
            &target,
            "-m",
            &calls,
            "-r",
            "50",
            "-trace_stat",
            "-fd",
            "1",
        ],
    );
    uac.wait_ok(
        Duration::from_secs(90),
        "calls stalled behind a blocked log",
    );
    assert_uac_stats(dir.path(), CALLS);
    uas.wait_ok(Duration::from_secs(30), "sipp uas failed");
    let text = ureq::get(&format!("http://127.0.0.1:{}/metrics", p.admin))
        .call()
        .unwrap_or_else(|e| panic!("metrics: {e}"))
        .into_string()
        .unwrap();
    let dropped = sample(&text, "portcullis_log_lines_dropped_total").expect("metric exported");
    assert!(dropped > 0.0, "no line counted as dropped:\n{text}");
    // Every call still has its record.
    let cdrs = std::fs::read_to_string(dir.path().join("cdr.jsonl")).unwrap();
    assert_eq!(cdrs.lines().count(), CALLS);
    // And the process still stops (the log flush at exit gives up on the stalled pipe).
    let st = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            assert!(st.success(), "{st}");
            break;
        }
        if std::time::Instant::now() > deadline {
            panic!("portcullis did not stop with its stderr stalled");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

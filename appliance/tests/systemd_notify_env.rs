//! The environment-reading side of `portcullis::notify`: `NOTIFY_SOCKET`,
//! `WATCHDOG_USEC`/`WATCHDOG_PID` and the watchdog loop.
//!
//! One test function on purpose: it mutates the process environment, which
//! must not race with other tests (each integration test file is its own
//! process).

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use portcullis::notify;

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("datagram within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn notifications_follow_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let server = UnixDatagram::bind(&path).expect("bind");
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");

    // Outside systemd: no-ops.
    std::env::remove_var(notify::NOTIFY_SOCKET);
    std::env::remove_var(notify::WATCHDOG_USEC);
    std::env::remove_var(notify::WATCHDOG_PID);
    assert!(!notify::notify_ready().expect("no-op"));
    assert_eq!(notify::watchdog_interval(), None);

    std::env::set_var(notify::NOTIFY_SOCKET, &path);
    assert!(notify::notify_ready().expect("ready"));
    assert_eq!(recv(&server), "READY=1");
    assert!(notify::notify_watchdog().expect("watchdog"));
    assert_eq!(recv(&server), "WATCHDOG=1");
    assert!(notify::notify_reloading().expect("reloading"));
    assert_eq!(recv(&server), "RELOADING=1");
    assert!(notify::notify_status("3 calls").expect("status"));
    assert_eq!(recv(&server), "STATUS=3 calls");
    assert!(notify::notify_stopping().expect("stopping"));
    assert_eq!(recv(&server), "STOPPING=1");

    std::env::set_var(notify::NOTIFY_SOCKET, "not-a-socket");
    assert!(notify::notify_ready().is_err());
    std::env::set_var(notify::NOTIFY_SOCKET, &path);

    // Watchdog for another process: not ours to ping.
    std::env::set_var(notify::WATCHDOG_USEC, "200000");
    std::env::set_var(notify::WATCHDOG_PID, "1");
    assert_eq!(notify::watchdog_interval(), None);
    std::env::set_var(notify::WATCHDOG_PID, std::process::id().to_string());
    assert_eq!(
        notify::watchdog_interval(),
        Some(Duration::from_millis(200))
    );

    // The loop pings while alive, then reports the failure and stops.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let mut checks = 0;
    let result = rt.block_on(notify::run_watchdog(|| {
        checks += 1;
        if checks <= 2 {
            Ok(())
        } else {
            Err("dataplane worker 1 stalled".to_owned())
        }
    }));
    assert_eq!(result, Err("dataplane worker 1 stalled".to_owned()));
    assert_eq!(recv(&server), "WATCHDOG=1");
    assert_eq!(recv(&server), "WATCHDOG=1");
    assert_eq!(
        recv(&server),
        "STATUS=unhealthy: dataplane worker 1 stalled"
    );
    server.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 64];
    assert!(server.recv(&mut buf).is_err(), "no ping after the failure");

    // No watchdog requested: the loop returns at once without calling back.
    std::env::remove_var(notify::WATCHDOG_USEC);
    let result = rt.block_on(notify::run_watchdog(|| Err("must not run".to_owned())));
    assert_eq!(result, Ok(()));
}

//! systemd service notification (the `sd_notify(3)` protocol) without
//! libsystemd and without `unsafe`.
//!
//! Protocol (sd_notify(3), systemd.service(5) `Type=notify`, `WatchdogSec=`):
//! - the manager passes `NOTIFY_SOCKET` in the environment: a filesystem path
//!   (`/run/systemd/notify`) or an abstract socket name written with a leading
//!   `@` (`@/org/freedesktop/systemd1/notify`);
//! - the service sends newline-separated `KEY=VALUE` assignments in one
//!   datagram (`READY=1`, `RELOADING=1`, `STOPPING=1`, `WATCHDOG=1`,
//!   `STATUS=...`);
//! - with `WatchdogSec=` set the manager passes `WATCHDOG_USEC` (the timeout,
//!   microseconds) and `WATCHDOG_PID` (the process meant to ping); the service
//!   must send `WATCHDOG=1` more often than that, conventionally every half
//!   period.
//!
//! Invariants: when `NOTIFY_SOCKET` is unset every call is a no-op returning
//! `Ok(false)`, so the binary behaves the same outside systemd. A `STATUS=`
//! text never carries a newline (it would smuggle in another assignment).
//!
//! The portcullis unit uses `NotifyAccess=main`: only the main process may
//! notify, so these calls must come from the `portcullis` process itself.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::time::Duration;

/// Environment variable naming the notification socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";
/// Environment variable carrying the watchdog timeout in microseconds.
pub const WATCHDOG_USEC: &str = "WATCHDOG_USEC";
/// Environment variable naming the process expected to ping the watchdog.
pub const WATCHDOG_PID: &str = "WATCHDOG_PID";

/// Errors while notifying the service manager. All of them mean "we (or the
/// manager's environment) are misconfigured"; none comes from a peer.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `NOTIFY_SOCKET` is set but empty, not UTF-8 representable as a socket
    /// address, or of a kind this implementation does not speak (`vsock:`).
    #[error("unsupported NOTIFY_SOCKET value {0:?}")]
    InvalidSocket(String),
    /// Creating the datagram socket or sending on it failed.
    #[error("sending to NOTIFY_SOCKET {target}: {source}")]
    Io {
        /// The socket address as given in the environment.
        target: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Where notifications go: a filesystem path or a Linux abstract name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyTarget {
    /// A socket bound in the filesystem.
    Path(PathBuf),
    /// An abstract socket name (the bytes after the leading `@`).
    Abstract(Vec<u8>),
}

impl NotifyTarget {
    /// Parses a `NOTIFY_SOCKET` value: `/path` or `@abstract-name`.
    pub fn parse(value: &OsStr) -> Result<Self, NotifyError> {
        let bytes = value.as_bytes();
        if bytes.starts_with(b"/") {
            return Ok(Self::Path(PathBuf::from(value)));
        }
        match bytes.strip_prefix(b"@") {
            Some(name) if !name.is_empty() => Ok(Self::Abstract(name.to_vec())),
            _ => Err(NotifyError::InvalidSocket(
                value.to_string_lossy().into_owned(),
            )),
        }
    }

    /// Reads `NOTIFY_SOCKET`; `Ok(None)` when it is unset.
    pub fn from_env() -> Result<Option<Self>, NotifyError> {
        std::env::var_os(NOTIFY_SOCKET)
            .map(|v| Self::parse(&v))
            .transpose()
    }

    fn describe(&self) -> String {
        match self {
            Self::Path(p) => p.display().to_string(),
            Self::Abstract(name) => format!("@{}", String::from_utf8_lossy(name)),
        }
    }

    /// Sends one datagram holding `state` (newline-separated assignments).
    pub fn send(&self, state: &str) -> Result<(), NotifyError> {
        let io = |source| NotifyError::Io {
            target: self.describe(),
            source,
        };
        let sock = UnixDatagram::unbound().map_err(io)?;
        match self {
            Self::Path(path) => sock.send_to(state.as_bytes(), path).map(drop).map_err(io),
            Self::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = SocketAddr::from_abstract_name(name).map_err(io)?;
                sock.send_to_addr(state.as_bytes(), &addr)
                    .map(drop)
                    .map_err(io)
            }
        }
    }
}

/// Sends raw assignments to the manager named by `NOTIFY_SOCKET`.
///
/// Returns `Ok(false)` when not running under a notify-aware manager.
pub fn notify(state: &str) -> Result<bool, NotifyError> {
    match NotifyTarget::from_env()? {
        Some(target) => target.send(state).map(|()| true),
        None => Ok(false),
    }
}

/// `READY=1`: startup finished. Send only once the control plane (SIP
/// listeners, admin API) and every dataplane worker are up.
pub fn notify_ready() -> Result<bool, NotifyError> {
    notify("READY=1")
}

/// `WATCHDOG=1`: keep-alive. Send only after checking both planes are alive.
pub fn notify_watchdog() -> Result<bool, NotifyError> {
    notify("WATCHDOG=1")
}

/// `STOPPING=1`: shutdown (drain) started.
pub fn notify_stopping() -> Result<bool, NotifyError> {
    notify("STOPPING=1")
}

/// `RELOADING=1`: a configuration reload (SIGHUP) started; send
/// [`notify_ready`] when it completes.
///
/// systemd ≥ 253 also accepts `MONOTONIC_USEC=`, required only for
/// `Type=notify-reload`; the unit uses `Type=notify`, so it is omitted.
pub fn notify_reloading() -> Result<bool, NotifyError> {
    notify("RELOADING=1")
}

/// `STATUS=...`: one line shown by `systemctl status`. Newlines become spaces.
pub fn notify_status(status: &str) -> Result<bool, NotifyError> {
    notify(&status_message(status))
}

fn status_message(status: &str) -> String {
    let line: String = status
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    format!("STATUS={line}")
}

/// The watchdog timeout requested by the manager for this process.
///
/// `None` when `WATCHDOG_USEC` is unset, zero or malformed, or when
/// `WATCHDOG_PID` names another process. Ping at half this period.
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var(WATCHDOG_USEC).ok();
    let pid = std::env::var(WATCHDOG_PID).ok();
    watchdog_interval_from(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// [`watchdog_interval`] over explicit values (testable without touching
/// the process environment).
pub fn watchdog_interval_from(
    usec: Option<&str>,
    pid: Option<&str>,
    my_pid: u32,
) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != my_pid {
            return None;
        }
    }
    match usec?.trim().parse::<u64>().ok()? {
        0 => None,
        us => Some(Duration::from_micros(us)),
    }
}

/// Pings the watchdog every half period while `alive` reports both planes
/// healthy.
///
/// Returns at once (`Ok(())`) when no watchdog is requested. When `alive`
/// returns `Err(reason)` the loop sends `STATUS=<reason>` and returns that
/// reason without pinging again, so systemd's `WatchdogSec=` expires and
/// `Restart=on-failure` restarts the service; the caller may also exit.
pub async fn run_watchdog<F>(mut alive: F) -> Result<(), String>
where
    F: FnMut() -> Result<(), String>,
{
    let Some(period) = watchdog_interval() else {
        return Ok(());
    };
    let mut tick = tokio::time::interval(period / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match alive() {
            Ok(()) => {
                if let Err(e) = notify_watchdog() {
                    tracing::warn!(error = %e, "watchdog ping failed");
                }
            }
            Err(reason) => {
                tracing::error!(%reason, "liveness check failed; stopping watchdog pings");
                if let Err(e) = notify_status(&format!("unhealthy: {reason}")) {
                    tracing::warn!(error = %e, "status notification failed");
                }
                return Err(reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn recv(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).expect("datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn path_socket_receives_ready_and_watchdog() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).expect("bind");
        let target = NotifyTarget::parse(path.as_os_str()).expect("parse");
        assert_eq!(target, NotifyTarget::Path(path.clone()));
        target.send("READY=1").expect("send ready");
        assert_eq!(recv(&server), "READY=1");
        target.send("WATCHDOG=1").expect("send watchdog");
        assert_eq!(recv(&server), "WATCHDOG=1");
    }

    #[test]
    fn abstract_socket_receives_status() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("portcullis-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let server = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        let target = NotifyTarget::parse(&OsString::from(format!("@{name}"))).expect("parse");
        target
            .send(&status_message("draining\nREADY=1"))
            .expect("send");
        assert_eq!(recv(&server), "STATUS=draining READY=1");
    }

    #[test]
    fn missing_listener_is_an_io_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = NotifyTarget::Path(dir.path().join("nobody-here"));
        assert!(matches!(
            target.send("READY=1"),
            Err(NotifyError::Io { .. })
        ));
    }

    #[test]
    fn rejects_unsupported_socket_values() {
        for bad in ["", "@", "relative/path", "vsock:2:1234"] {
            assert!(
                NotifyTarget::parse(OsStr::new(bad)).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn watchdog_interval_rules() {
        let w = watchdog_interval_from;
        assert_eq!(w(Some("10000000"), None, 7), Some(Duration::from_secs(10)));
        assert_eq!(
            w(Some("10000000"), Some("7"), 7),
            Some(Duration::from_secs(10))
        );
        assert_eq!(w(Some("10000000"), Some("8"), 7), None, "other pid");
        assert_eq!(w(Some("10000000"), Some("x"), 7), None, "bad pid");
        assert_eq!(w(Some("0"), None, 7), None, "zero disables");
        assert_eq!(w(Some("ten"), None, 7), None, "malformed");
        assert_eq!(w(None, Some("7"), 7), None, "unset");
    }
}

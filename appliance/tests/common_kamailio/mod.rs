//! Kamailio run in the foreground by a test (`hep_capture.rs`, `kamailio_register.rs`,
//! `ng_kamailio.rs`), each with its own configuration: started, waited for until it holds
//! its UDP port, stopped with SIGTERM on drop. Needs Debian's `kamailio`.
#![allow(dead_code)]

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::sipp_harness::note;

/// Where Debian's kamailio keeps its modules.
pub const MODULES: &str = "/usr/lib/x86_64-linux-gnu/kamailio/modules/";

/// A running Kamailio; its log printed when the test fails.
#[derive(Debug)]
pub struct Kamailio {
    child: Child,
    log: PathBuf,
}

impl Kamailio {
    /// Kamailio with the configuration `cfg` (written to `dir/<name>.cfg`, its log in
    /// `dir/<name>.log`), once it listens on UDP `127.0.0.1:port` (10 s at most).
    pub fn start(dir: &Path, name: &str, cfg: &str, port: u16) -> Self {
        let path = dir.join(format!("{name}.cfg"));
        std::fs::write(&path, cfg).expect("kamailio config");
        let log = dir.join(format!("{name}.log"));
        let child = Command::new("kamailio")
            .arg("-f")
            .arg(&path)
            .args(["-DD", "-E"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log")))
            .spawn()
            .expect("kamailio not found: install Debian's kamailio (`./test.sh` does)");
        let k = Self { child, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        // Listening once its UDP port is taken.
        while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "kamailio ({name}) did not start:\n{}",
                k.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        k
    }

    /// The log (it quotes what it could not parse, binary included).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // SIGTERM: Kamailio's main process stops its worker children too (SIGKILL would
        // orphan them, still holding its ports); SIGKILL only if it does not exit.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            note(&format!("---- kamailio log ----\n{}", self.log()));
        }
    }
}

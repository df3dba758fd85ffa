//! Helpers of the active/standby tests on loopback (`ha_drill.rs`, `ha_journal.rs`): a
//! Redis of the test, the files both nodes share, a node's configuration, `kill -9`,
//! the shipped keepalived notify script, the admin API.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::sipp_harness::{config, Appliance, Ports, ROUTE_LEFT_RIGHT};

pub const TOKEN: &str = "drill-token-0123456789abcdef";
pub const REDIS_PASSWORD: &str = "drill-redis-password";

/// A redis-server of this test, killed (by PID) on drop.
pub struct Redis {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
    /// CA file when the server speaks TLS only.
    tls_ca: Option<PathBuf>,
}

impl Redis {
    pub fn start(port: u16) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(port, dir)
    }

    pub fn start_in(port: u16, dir: tempfile::TempDir) -> Self {
        Self::spawn(port, dir, &["--port".into(), port.to_string()], None)
    }

    /// TLS only on `port`: server certificate `chain`/`key` from the test CA `ca`.
    pub fn start_tls(port: u16, chain: &str, key: &str, ca: &Path) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let args: Vec<String> = [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            chain,
            "--tls-key-file",
            key,
            "--tls-ca-cert-file",
            &ca.display().to_string(),
            "--tls-auth-clients",
            "no",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        Self::spawn(port, dir, &args, Some(ca.to_owned()))
    }

    fn spawn(
        port: u16,
        dir: tempfile::TempDir,
        listen: &[String],
        tls_ca: Option<PathBuf>,
    ) -> Self {
        let child = Command::new("redis-server")
            .args(listen)
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--requirepass",
                REDIS_PASSWORD,
                "--dir",
            ])
            .arg(dir.path())
            .stdout(Stdio::from(
                std::fs::File::create(dir.path().join("redis.log")).expect("log"),
            ))
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server (Debian redis-server) not runnable: {e}"));
        let r = Self {
            child,
            port,
            dir,
            tls_ca,
        };
        assert!(
            wait_for(Duration::from_secs(10), || r.cli(&["PING"]).trim()
                == "PONG"),
            "redis-server did not answer: {}\n{}",
            r.cli(&["PING"]),
            std::fs::read_to_string(r.dir.path().join("redis.log")).unwrap_or_default()
        );
        r
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let mut c = Command::new("redis-cli");
        c.args([
            "-p",
            &self.port.to_string(),
            "-a",
            REDIS_PASSWORD,
            "--no-auth-warning",
        ]);
        if let Some(ca) = &self.tls_ca {
            c.arg("--tls").arg("--cacert").arg(ca);
        }
        let out = c.args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Keys matching `pattern`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        self.cli(&["--scan", "--pattern", pattern])
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Stops the server after it saved its data set (`SHUTDOWN SAVE`), keeping its
    /// directory: [`Self::start_in`] that directory loads it back.
    pub fn shutdown_saving(mut self) -> tempfile::TempDir {
        self.cli(&["SHUTDOWN", "SAVE"]);
        let exited = wait_for(Duration::from_secs(10), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        assert!(exited, "redis-server did not stop");
        assert!(self.dir.path().join("dump.rdb").exists(), "data set saved");
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"))
    }

    /// Kills the server (SIGKILL by PID), keeping its directory.
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_for(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Files both nodes share: the record key and the Redis password.
pub struct Shared {
    dir: tempfile::TempDir,
}

impl Shared {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("random");
        std::fs::write(dir.path().join("ha.key"), format!("{}\n", hex::encode(key))).unwrap();
        std::fs::write(dir.path().join("redis.pass"), format!("{REDIS_PASSWORD}\n")).unwrap();
        std::fs::write(dir.path().join("admin.token"), TOKEN).unwrap();
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// The node's configuration: the sipp test base, an admin token, `[ha]`.
pub fn node_config(p: Ports, redis: u16, shared: &Shared, role: &str, peer: &str) -> String {
    let base = config(p, ROUTE_LEFT_RIGHT).replace(
        &format!("[admin]\nlisten = \"127.0.0.1:{}\"\n", p.admin),
        &format!(
            "[admin]\nlisten = \"127.0.0.1:{}\"\ntoken = \"{TOKEN}\"\n",
            p.admin
        ),
    );
    assert!(base.contains(TOKEN), "token placed");
    format!(
        r#"{base}
[ha]
role = "{role}"
peer = "{peer}"
redis_url = "redis://127.0.0.1:{redis}/0"
redis_password_file = "{pass}"
key_file = "{key}"
media_refresh = "1s"
"#,
        pass = shared.path("redis.pass").display(),
        key = shared.path("ha.key").display(),
    )
}

/// Starts a node in `dir` (kept across its restarts).
pub fn start_node(dir: tempfile::TempDir, toml: &str) -> Appliance {
    let config_path = dir.path().join("portcullis.toml");
    std::fs::write(&config_path, toml).expect("config");
    Appliance::start_in(dir, config_path, true)
}

/// `kill -9` of a node; its directory (CDR file, journal) is kept.
pub fn kill9(mut a: Appliance) -> tempfile::TempDir {
    a.signal("KILL");
    let st = a.wait_exit(Duration::from_secs(10));
    assert!(!st.success(), "killed: {st}");
    std::mem::replace(&mut a.dir, tempfile::tempdir().expect("tempdir"))
}

/// keepalived's view: the shipped notify script, state MASTER, against node `p`.
pub fn notify_master(p: Ports, shared: &Shared) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/portcullis-ha-notify");
    let out = Command::new("sh")
        .arg(&script)
        .args(["INSTANCE", "VI_PORTCULLIS", "MASTER", "100"])
        .env("PORTCULLIS_ADMIN", format!("http://127.0.0.1:{}", p.admin))
        .env("PORTCULLIS_TOKEN_FILE", shared.path("admin.token"))
        .output()
        .expect("notify script");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "notify script failed: {err}");
    let json = err
        .lines()
        .find_map(|l| l.strip_prefix("portcullis-ha: takeover: "))
        .unwrap_or_else(|| panic!("no takeover report: {err}"));
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

pub fn get(p: Ports, path: &str) -> String {
    ureq::get(&format!("http://127.0.0.1:{}{path}", p.admin))
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .into_string()
        .expect("body")
}

pub fn ha_status(p: Ports) -> serde_json::Value {
    serde_json::from_str(&get(p, "/api/v1/ha")).expect("json")
}

/// Every CDR has the takeover mark and ended by `by` hanging up; returns how many.
pub fn assert_survivors(cdrs: &[serde_json::Value], by: &str) {
    for c in cdrs {
        assert_eq!(c["end_reason"]["kind"], "normal_clearing", "{c}");
        assert_eq!(c["end_reason"]["by"], by, "{c}");
        assert_eq!(c["takeover"]["count"], 1, "marked with the takeover: {c}");
        assert!(c["answer_at_ms"].as_u64().is_some(), "{c}");
    }
    let mut ids: Vec<&str> = cdrs
        .iter()
        .map(|c| c["a_leg"]["call_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), cdrs.len(), "one CDR per call");
}

/// The configuration of a second node on the same loopback host while the first holds
/// `p`'s SIP, admin and media ports: SIP and admin 5 ports up, media 128 ports up.
/// Returns it with the ports it uses.
pub fn second_node_config(
    p: Ports,
    redis: u16,
    shared: &Shared,
    role: &str,
    peer: &str,
) -> (String, Ports) {
    let (toml, q) = moved_listeners(&node_config(p, redis, shared, role, peer), p);
    let toml = toml.replace(
        &format!("port_min = {}", p.media_min),
        &format!("port_min = {}", p.media_min + 128),
    );
    (toml, q)
}

/// `toml` (a node's configuration on `p`) with its SIP and admin listeners 5 ports up,
/// with the ports it then uses.
pub fn moved_listeners(toml: &str, p: Ports) -> (String, Ports) {
    let q = Ports {
        sip: p.sip + 5,
        admin: p.admin + 5,
        ..p
    };
    let toml = toml
        .replace(
            &format!("127.0.0.1:{}\"", p.sip),
            &format!("127.0.0.1:{}\"", q.sip),
        )
        .replace(
            &format!("127.0.0.1:{}\"", p.admin),
            &format!("127.0.0.1:{}\"", q.admin),
        );
    (toml, q)
}

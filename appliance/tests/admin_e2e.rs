//! The admin API of the real `portcullis` binary: a call placed with sipp
//! (uac → portcullis → uas) moves the counters of `/metrics` (validated by `promtool check
//! metrics`), the bearer token is enforced, a long call is listed and terminated with
//! `DELETE` (the uas sees the BYE), a broken config is refused by `POST /api/v1/reload`
//! (422, old config kept), and `portcullis status --json` / `portcullis calls` work.
//!
//! Needs `sipp` and `promtool` (Debian packages `sip-tester` and `prometheus`; CI installs
//! them): a missing tool fails the test with a message saying so.

mod common_admin;

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common_admin::{promtool_check, sample};

const TOKEN: &str = "e2e-admin-token-0123456789";
const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// A free loopback port for both UDP and TCP (bound then released).
fn free_port() -> u16 {
    for _ in 0..100 {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let port = u.local_addr().map(|a| a.port()).unwrap_or(0);
        if port != 0 && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port");
}

/// Kills the child on drop (the appliance or a sipp left running by a failed assertion).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Appliance {
    /// Keeps the process alive (killed on drop).
    _proc: Guard,
    dir: tempfile::TempDir,
    config: PathBuf,
    sip: u16,
    left: u16,
    right: u16,
    admin: String,
}

fn config_text(dir: &Path, sip: u16, left: u16, right: u16, admin: u16, media: u16) -> String {
    format!(
        r#"[node]
name = "admin-e2e"

[[sip.listener]]
transport = "udp"
address = "127.0.0.1:{sip}"

[media]
advertised_ip = "127.0.0.1"
bind_ip = "127.0.0.1"
port_min = {media}
port_max = {media_max}
cores = "auto:1"

[admin]
listen = "127.0.0.1:{admin}"
token = "{TOKEN}"

[cdr]
path = "{cdr}"

[log]
level = "info"

[policy]
unknown_source = "reject"

[[trunk]]
name = "left"
address = "127.0.0.1:{left}"

[[trunk]]
name = "right"
address = "127.0.0.1:{right}"

[[route]]
name = "left-to-right"
from = ["left"]
targets = ["right"]
"#,
        media_max = media + 511,
        cdr = dir.join("cdr.jsonl").display(),
    )
}

fn start_appliance() -> Appliance {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (sip, left, right, admin) = (free_port(), free_port(), free_port(), free_port());
    // Media below the ephemeral range, spread by pid so parallel test binaries differ.
    let media = 20_000 + u16::try_from(std::process::id() % 40).unwrap_or(0) * 512;
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        config_text(dir.path(), sip, left, right, admin, media),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let log =
        std::fs::File::create(dir.path().join("portcullis.log")).unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
    let app = Appliance {
        _proc: Guard(child),
        dir,
        config,
        sip,
        left,
        right,
        admin: format!("127.0.0.1:{admin}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let last = app.try_get("/health", None);
        if let Ok((200, _)) = last {
            return app;
        }
        assert!(
            Instant::now() < deadline,
            "appliance not ready within 20 s (last /health: {last:?}); log:\n{}",
            app.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Appliance {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("portcullis.log")).unwrap_or_default()
    }

    fn try_req(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> Result<(u16, String), String> {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(5))
            .build();
        let mut req = agent.request(method, &format!("http://{}{path}", self.admin));
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        match req.call() {
            Ok(r) => Ok((r.status(), r.into_string().unwrap_or_default())),
            Err(ureq::Error::Status(c, r)) => Ok((c, r.into_string().unwrap_or_default())),
            Err(e) => Err(e.to_string()),
        }
    }

    fn try_get(&self, path: &str, token: Option<&str>) -> Result<(u16, String), String> {
        self.try_req("GET", path, token)
    }

    fn req(&self, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
        self.try_req(method, path, token)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}; log:\n{}", self.log()))
    }

    fn metrics(&self) -> String {
        let (code, body) = self.req("GET", "/metrics", Some(TOKEN));
        assert_eq!(code, 200, "{body}");
        body
    }

    fn cli(&self, args: &[&str]) -> (ExitStatus, String, String) {
        let out = Command::new(BIN)
            .args(args)
            .args(["--admin", &self.admin, "--token", TOKEN])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// Starts sipp with `args`, then one call (`-m 1`), no stdin and a 40 s bound that fails
/// the run.
fn sipp(args: &[String]) -> Guard {
    let child = Command::new("sipp")
        .args(args)
        .args(["-m", "1", "-nostdin", "-timeout", "40s", "-timeout_error"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("sipp is required (Debian package `sip-tester`; CI installs it): {e}")
        });
    Guard(child)
}

fn uas(app: &Appliance) -> Guard {
    sipp(&[
        "-sn".into(),
        "uas".into(),
        "-i".into(),
        "127.0.0.1".into(),
        "-p".into(),
        app.right.to_string(),
    ])
}

/// A sipp UAC calling `2000` through the appliance, holding the call `hold_ms`.
fn uac(app: &Appliance, hold_ms: u64) -> Guard {
    sipp(&[
        "-sn".into(),
        "uac".into(),
        format!("127.0.0.1:{}", app.sip),
        "-i".into(),
        "127.0.0.1".into(),
        "-p".into(),
        app.left.to_string(),
        "-s".into(),
        "2000".into(),
        "-d".into(),
        hold_ms.to_string(),
    ])
}

/// If the sipp process has ended: its exit status and what it wrote to stderr.
fn exited(g: &mut Guard) -> Option<String> {
    let status = g.0.try_wait().ok().flatten()?;
    let mut err = String::new();
    if let Some(mut e) = g.0.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    Some(format!("{status}: {err}"))
}

/// Waits for a sipp process to exit (bounded).
fn wait(g: &mut Guard, limit: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(st)) = g.0.try_wait() {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not finish within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn call_moves_counters_and_exposition_is_valid() {
    let app = start_appliance();
    // Token enforced; /health open.
    assert_eq!(app.req("GET", "/metrics", None).0, 401);
    assert_eq!(
        app.req("GET", "/api/v1/calls", Some("wrong-token-wrong-token"))
            .0,
        401
    );
    assert_eq!(app.req("GET", "/health", None).0, 200);

    let before = app.metrics();
    promtool_check(&before);
    assert_eq!(sample(&before, "portcullis_calls_started_total"), Some(0.0));
    assert_eq!(sample(&before, "portcullis_config_generation"), Some(1.0));

    let mut s = uas(&app);
    std::thread::sleep(Duration::from_millis(300));
    let mut c = uac(&app, 500);
    let st = wait(&mut c, Duration::from_secs(30), "sipp uac");
    assert!(st.success(), "sipp uac failed: {st}; log:\n{}", app.log());
    let st = wait(&mut s, Duration::from_secs(10), "sipp uas");
    assert!(st.success(), "sipp uas failed: {st}");

    let after = app.metrics();
    promtool_check(&after);
    let must_move = [
        "portcullis_calls_started_total",
        r#"portcullis_trunk_calls_total{trunk="left",direction="inbound"}"#,
        r#"portcullis_trunk_calls_total{trunk="right",direction="outbound"}"#,
        r#"portcullis_trunk_call_outcomes_total{trunk="left",outcome="answered"}"#,
        r#"portcullis_sip_requests_total{method="INVITE",direction="in"}"#,
        r#"portcullis_sip_requests_total{method="INVITE",direction="out"}"#,
        r#"portcullis_sip_requests_total{method="BYE",direction="in"}"#,
        r#"portcullis_sip_requests_total{method="BYE",direction="out"}"#,
        r#"portcullis_sip_responses_total{class="2xx",direction="in"}"#,
        r#"portcullis_sip_responses_total{class="2xx",direction="out"}"#,
        r#"portcullis_sip_transport_messages_in_total{transport="udp"}"#,
        r#"portcullis_sip_transport_messages_out_total{transport="udp"}"#,
        r#"portcullis_dataplane_commands_total{worker="0"}"#,
        "portcullis_cdr_written_total",
    ];
    for series in must_move {
        let b = sample(&before, series).unwrap_or(0.0);
        let a = sample(&after, series).unwrap_or_else(|| panic!("no {series} in:\n{after}"));
        assert!(a > b, "{series}: {b} -> {a}");
    }
    assert_eq!(sample(&after, "portcullis_calls_active"), Some(0.0));
    assert!(
        after.contains("portcullis_dataplane_info{backend=\""),
        "{after}"
    );
}

#[test]
fn long_call_is_listed_and_terminated_then_cli_and_reload() {
    let app = start_appliance();
    let mut s = uas(&app);
    std::thread::sleep(Duration::from_millis(300));
    let mut c = uac(&app, 60_000);
    // The call shows up, answered.
    let deadline = Instant::now() + Duration::from_secs(15);
    let id = loop {
        let (code, body) = app.req("GET", "/api/v1/calls", Some(TOKEN));
        assert_eq!(code, 200);
        let calls: Vec<portcullis::admin::CallInfo> =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        if let Some(call) = calls.iter().find(|c| c.answered) {
            assert_eq!(call.inbound_trunk, "left");
            assert_eq!(call.outbound_trunk.as_deref(), Some("right"));
            assert_eq!(call.called, "2000");
            break call.id;
        }
        for (g, who) in [(&mut c, "UAC"), (&mut s, "UAS")] {
            if let Some(err) = exited(g) {
                panic!(
                    "sipp {who} ended before the call was listed: {err}\n{}",
                    app.log()
                );
            }
        }
        assert!(
            Instant::now() < deadline,
            "no answered call listed: {body}\n{}",
            app.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    // CLI against the running appliance.
    let (st, out, err) = app.cli(&["status", "--json"]);
    assert!(st.success(), "status: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["health"]["ready"], true);
    assert_eq!(v["calls_active"], 1);
    assert_eq!(v["trunks"][0]["name"], "left");
    assert_eq!(v["trunks"][0]["active_calls"], 1);
    let (st, out, err) = app.cli(&["calls"]);
    assert!(st.success(), "calls: {err}");
    assert!(out.starts_with("ID  "), "{out}");
    assert!(
        out.contains(&format!("{id}  ")) && out.contains(" 2000 ") && out.contains("answered"),
        "{out}"
    );
    assert!(out.ends_with("1 call(s)\n"), "{out}");
    // Wrong token: exit 1 and a clear message.
    let bad = Command::new(BIN)
        .args([
            "calls",
            "--admin",
            &app.admin,
            "--token",
            "nope-nope-nope-nope",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("401"));

    // Admin teardown: the uas receives the BYE and completes its scenario long before the
    // uac's 60 s pause would end.
    let t0 = Instant::now();
    let (code, body) = app.req("DELETE", &format!("/api/v1/calls/{id}"), Some(TOKEN));
    assert_eq!(code, 200, "{body}");
    let st = wait(&mut s, Duration::from_secs(10), "sipp uas after DELETE");
    assert!(st.success(), "uas did not complete on BYE: {st}");
    assert!(t0.elapsed() < Duration::from_secs(10));
    let (_, body) = app.req("GET", "/api/v1/calls", Some(TOKEN));
    assert_eq!(body, "[]");
    assert_eq!(
        app.req("DELETE", &format!("/api/v1/calls/{id}"), Some(TOKEN))
            .0,
        404
    );
    let _ = c.0.kill();
    let _ = wait(&mut c, Duration::from_secs(5), "sipp uac");

    // Reload: a broken file is refused with its errors; the old config stays.
    let good = std::fs::read_to_string(&app.config).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        &app.config,
        good.replace("targets = [\"right\"]", "targets = [\"nowhere\"]"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (code, body) = app.req("POST", "/api/v1/reload", Some(TOKEN));
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("nowhere"), "{body}");
    assert_eq!(
        sample(&app.metrics(), "portcullis_config_generation"),
        Some(1.0)
    );
    // A valid edit is taken: generation 2.
    std::fs::write(
        &app.config,
        good.replace("name = \"admin-e2e\"", "name = \"admin-e2e-2\""),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (code, body) = app.req("POST", "/api/v1/reload", Some(TOKEN));
    assert_eq!((code, body.as_str()), (200, r#"{"generation":2}"#));
    assert_eq!(
        sample(&app.metrics(), "portcullis_config_generation"),
        Some(2.0)
    );
}

//! Registration toward a real registrar: Kamailio with `registrar`, `usrloc`, `auth` and
//! `auth_db` (subscribers in `db_text`), run in the foreground by the test.
//!
//! - the appliance REGISTERs with digest, and refreshes before the binding lapses
//!   (expiry 20 s: a refresh every 10 s, each one authenticated by Kamailio);
//! - Kamailio routes a call for the AOR to the registered Contact (`lookup("location")`),
//!   from an address that is no trunk's: the appliance recognises it as the registering
//!   trunk and routes it on (sipp caller → Kamailio → appliance → sipp callee);
//! - status (`portcullis status`, `/api/v1/registrations`) and metrics show it registered;
//! - on SIGTERM the appliance un-REGISTERs: Kamailio then answers a call for the AOR
//!   `404` at once (the binding would otherwise hold for at least 10 more seconds);
//! - a wrong password shows as `failed` (`401: credentials refused`) in status and
//!   metrics, retried with a doubling back-off.
//!
//! Needs `kamailio` and `sipp` (Debian packages `kamailio`, `sip-tester`).

mod common_kamailio;
mod sipp_harness;

use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common_kamailio::{Kamailio, MODULES};
use sipp_harness::*;

const DBTEXT: &str = "/usr/share/kamailio/dbtext/kamailio";
const AOR_USER: &str = "+4930123";

/// Kamailio as registrar (digest for alice/s3cret in realm carrier.example) on `port`.
struct Registrar(Kamailio);

impl Registrar {
    fn start(dir: &Path, port: u16) -> Self {
        let db = dir.join("kamailio-db");
        std::fs::create_dir_all(&db).expect("db dir");
        for table in ["version", "subscriber", "location"] {
            let src = Path::new(DBTEXT).join(table);
            let text = std::fs::read_to_string(&src).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (install Debian's kamailio: `./test.sh` does)",
                    src.display()
                )
            });
            std::fs::write(db.join(table), text).expect("copy table");
        }
        let mut subs = std::fs::read_to_string(db.join("subscriber")).expect("subscriber");
        // ha1 and ha1b may not be empty; with calculate_ha1 the password is used.
        subs.push_str("1:alice:carrier.example:s3cret:unused:unused\n");
        std::fs::write(db.join("subscriber"), subs).expect("subscriber row");
        let cfg = format!(
            r#"#!KAMAILIO
debug=2
log_stderror=yes
children=2
listen=udp:127.0.0.1:{port}
mpath="{MODULES}"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "db_text.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "auth_db.so"
modparam("usrloc", "db_mode", 0)
modparam("registrar", "min_expires", 5)
modparam("auth_db", "db_url", "text://{db}")
modparam("auth_db", "calculate_ha1", yes)
modparam("auth_db", "password_column", "password")
modparam("auth_db", "use_domain", 0)

request_route {{
  if (is_method("REGISTER")) {{
    if (!www_authorize("carrier.example", "subscriber")) {{
      xlog("L_ALERT", "REGCHALLENGE user=$fU cseq=$cs\n");
      www_challenge("carrier.example", "0");
      exit;
    }}
    consume_credentials();
    if (!save("location")) {{
      sl_reply_error();
      exit;
    }}
    xlog("L_ALERT", "REGSAVED user=$tU expires=$hdr(Expires) contact=$ct cseq=$cs\n");
    exit;
  }}
  if (is_method("CANCEL")) {{
    if (t_check_trans()) {{ t_relay(); }}
    exit;
  }}
  if (has_totag()) {{
    if (loose_route()) {{ t_relay(); exit; }}
    if (is_method("ACK")) {{
      if (t_check_trans()) {{ t_relay(); }}
      exit;
    }}
    sl_send_reply("404", "Not Here");
    exit;
  }}
  if (is_method("INVITE")) {{
    if (!lookup("location")) {{
      xlog("L_ALERT", "NOBINDING ruri=$ru\n");
      sl_send_reply("404", "Not Found");
      exit;
    }}
    xlog("L_ALERT", "ROUTED ruri=$ru\n");
    record_route();
    t_relay();
    exit;
  }}
  sl_send_reply("405", "Method Not Allowed");
}}
"#,
            db = db.display()
        );
        Self(Kamailio::start(dir, "registrar", &cfg, port))
    }

    fn log(&self) -> String {
        self.0.log()
    }

    /// Lines with `tag` logged by the route script.
    fn lines(&self, tag: &str) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| l.split_once(tag).map(|(_, r)| r.trim().to_owned()))
            .collect()
    }
}

/// The appliance's config: trunk `carrier` registers at Kamailio (`kport`) as the AOR;
/// the trunk's own address is elsewhere, so only the registered Contact names it.
fn toml(p: Ports, kport: u16, password: &str, retry: (&str, &str)) -> String {
    let route = r#"[[route]]
name = "carrier-to-right"
from = ["carrier"]
targets = ["right"]
"#;
    format!(
        r#"{}
[[trunk]]
name = "carrier"
address = "127.0.0.9:5060"

[trunk.credentials]
username = "alice"
password = "{password}"
answer_upstream = false

[trunk.register]
registrar = "127.0.0.1:{kport}"
aor = "sip:{AOR_USER}@carrier.example"
contact_user = "pc-carrier"
expires = "20s"
retry_min = "{}"
retry_max = "{}"
"#,
        config(p, route),
        retry.0,
        retry.1,
    )
}

fn admin_get(p: Ports, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", p.admin)).expect("admin");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

fn registration(p: Ports) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&admin_get(p, "/api/v1/registrations")).expect("JSON");
    v[0].clone()
}

fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends an INVITE for the AOR to Kamailio from `sock`; the first final status back.
fn invite_status(sock: &UdpSocket, kport: u16) -> u16 {
    let local = sock.local_addr().expect("addr");
    let msg = format!(
        "INVITE sip:{AOR_USER}@127.0.0.1:{kport} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bKprobe{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=p1\r\n\
         To: <sip:{AOR_USER}@carrier.example>\r\n\
         Call-ID: probe-{n}@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:probe@{local}>\r\n\
         Content-Length: 0\r\n\r\n",
        n = std::process::id()
    );
    sock.send_to(msg.as_bytes(), ("127.0.0.1", kport))
        .expect("send");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        let (n, _) = sock.recv_from(&mut buf).expect("an answer from kamailio");
        let text = String::from_utf8_lossy(&buf[..n]);
        let status: u16 = text
            .strip_prefix("SIP/2.0 ")
            .and_then(|r| r.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if status >= 200 {
            return status;
        }
    }
}

#[test]
fn registers_refreshes_takes_calls_and_unregisters_at_kamailio() {
    let _serial = serial();
    let p = Ports::for_test(106);
    let kport = p.sip + 5;
    let work = tempfile::tempdir().expect("tempdir");
    let kam = Registrar::start(work.path(), kport);
    let mut app = Appliance::start(&toml(p, kport, "s3cret", ("1s", "4s")));

    let deadline = Instant::now() + Duration::from_secs(10);
    while registration(p)["state"] != "registered" {
        assert!(
            Instant::now() < deadline,
            "not registered: {}\n{}",
            registration(p),
            kam.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let saved = kam.lines("REGSAVED");
    assert!(
        saved[0].starts_with(&format!("user={AOR_USER} expires=20 ")),
        "{saved:?}"
    );
    assert!(
        saved[0].contains(&format!("contact=<sip:pc-carrier@127.0.0.1:{}>", p.sip)),
        "{saved:?}"
    );
    assert!(
        !kam.lines("REGCHALLENGE").is_empty(),
        "digest: challenged first"
    );

    // Refreshes: 20 s granted, refreshed every 10 s, always authenticated, never lapsing.
    let t0 = Instant::now();
    let mut states = Vec::new();
    while t0.elapsed() < Duration::from_secs(23) {
        states.push(registration(p)["state"].as_str().unwrap_or("").to_owned());
        std::thread::sleep(Duration::from_millis(500));
    }
    let saved = kam.lines("REGSAVED");
    assert!(saved.len() >= 3, "at least two refreshes: {saved:?}");
    assert!(
        states
            .iter()
            .all(|s| s == "registered" || s == "refreshing"),
        "{states:?}"
    );
    let reg = registration(p);
    assert_eq!(reg["failures"], 0, "{reg}");
    assert!(reg["successes"].as_u64().unwrap_or(0) >= 3, "{reg}");
    let exp = reg["expires_in_s"].as_u64().unwrap_or(0);
    assert!((1..=20).contains(&exp), "{reg}");
    let metrics = admin_get(p, "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l == "portcullis_registration_state{trunk=\"carrier\",state=\"registered\"} 1"),
        "{metrics}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["status", "--admin", &format!("127.0.0.1:{}", p.admin)])
        .output()
        .expect("portcullis status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("carrier ") && l.contains("registered")),
        "{text}"
    );

    // A call for the AOR: Kamailio finds our Contact and relays; the appliance takes it
    // as the carrier's call (Kamailio's address is no trunk's) and routes it to `right`.
    let d = app.dir.path().to_path_buf();
    let mut uas = start_uas(&d, p, &["-sn", "uas", "-m", "1"]);
    let target = format!("127.0.0.1:{kport}");
    let scen = scenario(&d, "uac_via_proxy.xml");
    let scen = scen.display().to_string();
    let mut uac = start_uac(&d, p, &["-sf", &scen, &target, "-s", AOR_USER, "-m", "1"]);
    uac.wait_ok(Duration::from_secs(60), "caller through kamailio");
    uas.wait_ok(Duration::from_secs(20), "callee");
    let cdrs = app.wait_cdrs(1, Duration::from_secs(10));
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    assert_eq!(cdrs[0]["a_leg"]["trunk"], "carrier", "{}", cdrs[0]);
    assert_eq!(cdrs[0]["b_leg"]["trunk"], "right", "{}", cdrs[0]);
    let routed = kam.lines("ROUTED");
    assert!(
        routed[0].contains(&format!("sip:pc-carrier@127.0.0.1:{}", p.sip)),
        "{routed:?}"
    );

    // SIGTERM: un-REGISTER, then Kamailio has no binding for the AOR.
    let probe = UdpSocket::bind("127.0.0.1:0").expect("probe socket");
    app.signal("TERM");
    let st = app.wait_exit(Duration::from_secs(30));
    assert!(st.success(), "exit {st}:\n{}", app.log());
    let stopped = Instant::now();
    let saved = kam.lines("REGSAVED");
    assert!(
        saved.last().is_some_and(|l| l.contains(" expires=0 ")),
        "un-REGISTER (Expires: 0): {saved:?}"
    );
    assert!(app.log().contains("registrations removed"), "{}", app.log());
    assert_eq!(invite_status(&probe, kport), 404, "binding removed");
    assert!(
        stopped.elapsed() < Duration::from_secs(8),
        "the 404 came from the removal, not from the binding lapsing"
    );
}

#[test]
fn a_refused_password_shows_failed_with_back_off() {
    let _serial = serial();
    let p = Ports::for_test(107);
    let kport = p.sip + 5;
    let work = tempfile::tempdir().expect("tempdir");
    let kam = Registrar::start(work.path(), kport);
    let app = Appliance::start(&toml(p, kport, "wrong", ("1s", "4s")));
    wait_for("failed with 401", Duration::from_secs(10), || {
        let r = registration(p);
        r["state"] == "failed" && r["last_status"] == 401
    });
    let reg = registration(p);
    assert_eq!(reg["last_status"], 401, "{reg}");
    assert_eq!(reg["last_error"], "401: credentials refused", "{reg}");
    assert!(reg["expires_in_s"].is_null(), "{reg}");
    // Back-off 1, 2, 4, 4 s: about five attempts in 12 s, not one per retransmission.
    std::thread::sleep(Duration::from_secs(12));
    let reg = registration(p);
    let failures = reg["failures"].as_u64().unwrap_or(0);
    assert!((4..=7).contains(&failures), "{reg}");
    assert!(kam.lines("REGSAVED").is_empty());
    let metrics = admin_get(p, "/metrics");
    for want in [
        "portcullis_registration_state{trunk=\"carrier\",state=\"failed\"} 1",
        "portcullis_registration_state{trunk=\"carrier\",state=\"registered\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == want), "{want}:\n{metrics}");
    }
    let fails = metrics
        .lines()
        .find_map(|l| l.strip_prefix("portcullis_registration_failures_total{trunk=\"carrier\"} "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(fails >= Some(4), "{metrics}");
    // Calls are not held up: the appliance answers at once.
    assert!(admin_get(p, "/health").contains("\"ready\":true"));
    assert!(
        app.log()
            .contains("registration failed; retrying with back-off"),
        "{}",
        app.log()
    );
    drop(app);
}

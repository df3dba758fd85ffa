//! Certificates take effect on reload, checked with real `openssl s_client` peers against
//! the real `portcullis` binary:
//!
//! - a TLS listener serves certificate A; its files are replaced with certificate B and
//!   the process gets SIGHUP: a new connection sees B (subject and serial, read by
//!   `openssl x509`), a connection opened before the reload is kept and still answers an
//!   OPTIONS with `200`;
//! - a key that does not match its certificate refuses the reload (`POST
//!   /api/v1/reload` answers `422` naming the file, the log too) and B is still served;
//! - an mTLS listener whose `client_ca` file is replaced: a client certificate signed by
//!   the new CA is refused before the reload and accepted after it.
//!
//! Needs `openssl` (Debian package `openssl`); a missing tool fails with a message.
#![allow(clippy::print_stderr)]

mod sipp_harness;
mod teams_mock;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sipp_harness::{config, serial, Appliance, Ports, ROUTE_LEFT_RIGHT};
use teams_mock::{wait_for, Leaf, Pki};

/// The harness configuration plus a TLS listener (`sip + 5`), an mTLS listener
/// (`sip + 6`) and a TLS trunk on 127.0.0.1 so OPTIONS over TLS from the tests are
/// answered `200`.
fn tls_config(p: Ports, cert: &Path, key: &Path, client_ca: &Path) -> String {
    let base = config(p, ROUTE_LEFT_RIGHT);
    let listeners = format!(
        r#"[[sip.listener]]
transport = "tls"
address = "127.0.0.1:{tls}"
cert = "{cert}"
key = "{key}"

[[sip.listener]]
transport = "mtls"
address = "127.0.0.1:{mtls}"
cert = "{cert}"
key = "{key}"
client_ca = "{ca}"

[sip]
"#,
        tls = p.sip + 5,
        mtls = p.sip + 6,
        cert = cert.display(),
        key = key.display(),
        ca = client_ca.display(),
    );
    assert!(base.contains("\n[sip]\n"), "harness config changed");
    let with_listeners = base.replacen("\n[sip]\n", &format!("\n{listeners}"), 1);
    format!(
        "{with_listeners}\n[[trunk]]\nname = \"tlspeer\"\naddress = \"127.0.0.1:{}\"\ntransport = \"tls\"\n",
        p.sip + 7
    )
}

/// Path of `openssl`, or a panic telling how to install it.
fn openssl() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("openssl");
        if p.is_file() {
            return p;
        }
    }
    panic!("openssl not found in PATH: install Debian's openssl (`apt-get install openssl`)");
}

/// `subject=...` and `serial=...` of the first certificate of a PEM text, by `openssl x509`.
fn identity(pem: &str) -> String {
    let mut child = Command::new(openssl())
        .args(["x509", "-noout", "-subject", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn openssl x509");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(pem.as_bytes())
        .expect("write PEM");
    let out = child.wait_with_output().expect("openssl x509");
    assert!(
        out.status.success(),
        "openssl x509: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn file_identity(path: &Path) -> String {
    identity(&std::fs::read_to_string(path).expect("read certificate"))
}

/// The server certificate block `s_client` printed.
fn served_pem(out: &str) -> Option<String> {
    let start = out.find("-----BEGIN CERTIFICATE-----")?;
    let end = out[start..].find("-----END CERTIFICATE-----")? + start;
    Some(format!("{}-----END CERTIFICATE-----\n", &out[start..end]))
}

/// An `openssl s_client` connection kept open: stdin for SIP, stdout collected by a thread.
struct Client {
    child: Child,
    out: Arc<Mutex<String>>,
}

impl Client {
    /// Connects to 127.0.0.1:`port`, presenting `client` when given.
    fn connect(port: u16, client: Option<&Leaf>) -> Self {
        let mut cmd = Command::new(openssl());
        cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(["-servername", "sbc.test", "-ign_eof"]);
        if let Some(c) = client {
            cmd.arg("-cert")
                .arg(&c.chain_pem)
                .arg("-key")
                .arg(&c.key_pem);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn openssl s_client");
        let mut stdout = child.stdout.take().expect("stdout");
        let out = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&out);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self { child, out }
    }

    fn output(&self) -> String {
        self.out
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits for the end of the handshake summary; returns the served certificate's identity.
    fn served(&self) -> String {
        wait_for("s_client handshake", Duration::from_secs(15), || {
            self.output().contains("Verify return code")
        });
        identity(&served_pem(&self.output()).expect("s_client printed the certificate"))
    }

    /// Sends an OPTIONS on the connection (a client already gone, refused by the server,
    /// just does not get an answer).
    fn options(&mut self, tag: &str) {
        let req = format!(
            "OPTIONS sip:sbc.test SIP/2.0\r\n\
             Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK{tag}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag={tag}\r\n\
             To: <sip:sbc.test>\r\nCall-ID: {tag}@tls-reload\r\nCSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let stdin = self.child.stdin.as_mut().expect("stdin");
        let _ = stdin.write_all(req.as_bytes()).and_then(|()| stdin.flush());
    }

    /// Whether a `200` to the OPTIONS with `tag` came back within `within`.
    fn answered(&self, tag: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let out = self.output();
            if out.contains("SIP/2.0 200 ") && out.contains(&format!("{tag}@tls-reload")) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn metrics(p: Ports) -> String {
    ureq::get(&format!("http://127.0.0.1:{}/metrics", p.admin))
        .timeout(Duration::from_secs(5))
        .call()
        .unwrap_or_else(|e| panic!("GET /metrics: {e}"))
        .into_string()
        .unwrap_or_else(|e| panic!("GET /metrics: {e}"))
}

fn generation(p: Ports) -> u64 {
    metrics(p)
        .lines()
        .find_map(|l| l.strip_prefix("portcullis_config_generation "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn handshake_failures(p: Ports) -> u64 {
    metrics(p)
        .lines()
        .filter(|l| l.starts_with("portcullis_sip_transport_tls_handshake_failures_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// `POST /api/v1/reload`: `(status, body)`.
fn api_reload(p: Ports) -> (u16, String) {
    let r = ureq::post(&format!("http://127.0.0.1:{}/api/v1/reload", p.admin))
        .timeout(Duration::from_secs(15))
        .call();
    match r {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap_or_default()),
        Err(e) => panic!("POST /api/v1/reload: {e}"),
    }
}

fn replace(from: &Leaf, to: &Leaf) {
    std::fs::copy(&from.chain_pem, &to.chain_pem).expect("copy certificate");
    std::fs::copy(&from.key_pem, &to.key_pem).expect("copy key");
}

#[test]
fn new_tls_connections_get_the_reloaded_certificate_old_ones_stay() {
    let _serial = serial();
    let p = Ports::for_test(33);
    let pki = Pki::new("reload");
    let a = pki.leaf("a", &["a.sbc.test"]);
    let b = pki.leaf("b", &["b.sbc.test"]);
    let live = Leaf {
        chain_pem: pki.dir.path().join("listener.pem"),
        key_pem: pki.dir.path().join("listener.key"),
    };
    replace(&a, &live);
    let app = Appliance::start(&tls_config(p, &live.chain_pem, &live.key_pem, &pki.ca_pem));
    let (id_a, id_b) = (file_identity(&a.chain_pem), file_identity(&b.chain_pem));
    assert_ne!(id_a, id_b);

    // A connection opened before the reload sees A and is kept open.
    let mut old = Client::connect(p.sip + 5, None);
    assert_eq!(old.served(), id_a, "{}", old.output());
    old.options("before");
    assert!(
        old.answered("before", Duration::from_secs(10)),
        "OPTIONS over TLS not answered:\n{}\n{}",
        old.output(),
        app.log()
    );

    // B in the same files, SIGHUP: a new connection sees B.
    replace(&b, &live);
    app.signal("HUP");
    wait_for("reload by SIGHUP", Duration::from_secs(15), || {
        generation(p) == 2
    });
    let fresh = Client::connect(p.sip + 5, None);
    assert_eq!(fresh.served(), id_b, "{}\n{}", fresh.output(), app.log());
    let log = app.log();
    assert!(
        !log.contains("take effect at the next restart"),
        "certificates need no restart:\n{log}"
    );

    // The old connection still carries SIP.
    old.options("after");
    assert!(
        old.answered("after", Duration::from_secs(10)),
        "the connection opened before the reload no longer answers:\n{}",
        old.output()
    );

    // A key that does not match the certificate: refused, naming the file; B stays.
    let other = pki.leaf("c", &["c.sbc.test"]);
    std::fs::copy(&other.key_pem, &live.key_pem).expect("copy key");
    let (code, body) = api_reload(p);
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("listener.key") && body.contains("does not match"),
        "the refusal names the key file: {body}"
    );
    wait_for("refusal logged", Duration::from_secs(10), || {
        app.log()
            .lines()
            .any(|l| l.contains("reload refused") && l.contains("listener.key"))
    });
    assert_eq!(generation(p), 2, "a refused reload keeps the generation");
    let still = Client::connect(p.sip + 5, None);
    assert_eq!(still.served(), id_b, "{}", still.output());
    drop(app);
}

#[test]
fn a_new_client_ca_admits_its_clients_after_reload() {
    let _serial = serial();
    let p = Ports::for_test(34);
    let server = Pki::new("server");
    let old_ca = Pki::new("old-ca");
    let new_ca = Pki::new("new-ca");
    let srv = server.leaf("srv", &["sbc.test"]);
    let ca_file = server.dir.path().join("clients-ca.pem");
    std::fs::copy(&old_ca.ca_pem, &ca_file).expect("copy CA");
    let app = Appliance::start(&tls_config(p, &srv.chain_pem, &srv.key_pem, &ca_file));
    let mtls = p.sip + 6;
    let by_old = old_ca.leaf("pbx-old", &["pbx.customer.test"]);
    let by_new = new_ca.leaf("pbx-new", &["pbx.customer.test"]);

    // The old CA's client is accepted, the new CA's is refused.
    let mut c = Client::connect(mtls, Some(&by_old));
    c.options("old-ca-1");
    assert!(
        c.answered("old-ca-1", Duration::from_secs(10)),
        "client of the configured CA refused:\n{}\n{}",
        c.output(),
        app.log()
    );
    drop(c);
    let failures = handshake_failures(p);
    let mut c = Client::connect(mtls, Some(&by_new));
    c.options("new-ca-1");
    assert!(
        !c.answered("new-ca-1", Duration::from_secs(3)),
        "client of an unknown CA answered:\n{}",
        c.output()
    );
    wait_for("refusal counted", Duration::from_secs(10), || {
        handshake_failures(p) > failures
    });
    drop(c);

    // The CA file now holds the new CA; SIGHUP.
    std::fs::copy(&new_ca.ca_pem, &ca_file).expect("copy CA");
    app.signal("HUP");
    wait_for("reload by SIGHUP", Duration::from_secs(15), || {
        generation(p) == 2
    });
    let mut c = Client::connect(mtls, Some(&by_new));
    c.options("new-ca-2");
    assert!(
        c.answered("new-ca-2", Duration::from_secs(10)),
        "client of the new CA refused after the reload:\n{}\n{}",
        c.output(),
        app.log()
    );
    drop(c);
    let failures = handshake_failures(p);
    let mut c = Client::connect(mtls, Some(&by_old));
    c.options("old-ca-2");
    assert!(
        !c.answered("old-ca-2", Duration::from_secs(3)),
        "client of the replaced CA answered:\n{}",
        c.output()
    );
    wait_for("refusal counted", Duration::from_secs(10), || {
        handshake_failures(p) > failures
    });
    drop(app);
}

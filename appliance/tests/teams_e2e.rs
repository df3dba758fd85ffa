//! Microsoft Teams Direct Routing end to end: the real `portcullis` binary against the
//! mock Teams proxies of `teams_mock` (test CA made with rcgen, TLS on loopback, names
//! resolved through `[teams.resolve]`), calls driven by sipp over UDP on the trunk side.
//!
//! - OPTIONS every interval over TLS with our client certificate, in the form Teams
//!   expects (FQDN in Request-URI, From and Contact; Max-Forwards; User-Agent), one
//!   connection per proxy reused, health visible in the admin API and the metrics;
//! - a proxy that stops answering goes down and new calls go to the next proxy; back
//!   when it answers again;
//! - certificates are checked both ways (untrusted root, wrong name), and Teams' own
//!   OPTIONS are answered `200` with `Allow` and `Supported`;
//! - media: plain RTP from the trunk reaches the mock Teams as SRTP that libsrtp
//!   (`teams_mock/srtp_peer.py`, pylibsrtp) decrypts to the trunk's payloads, and SRTP
//!   that libsrtp encrypts reaches the trunk as plain RTP with the same payloads;
//! - a reload (SIGHUP) with a new `[teams]` proxy list is followed at once, and a renewed
//!   client certificate is presented on the connections opened after it;
//! - a REFER from Teams (202, NOTIFY sipfrag 200, Teams leg released with BYE) leaves
//!   the trunk caller talking to the transfer target (a sipp UAS echoing RTP).
//!
//! Needs `sipp`, `promtool` and `/usr/bin/python3` with pylibsrtp (Debian packages
//! `sip-tester`, `prometheus` and `python3-pylibsrtp`).
#![allow(clippy::print_stderr)]

mod common_admin;
mod sipp_harness;
mod teams_mock;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common_admin::promtool_check;
use sipp_harness::{serial, Appliance, Sipp};
use teams_mock::{header, probe_options, wait_for, Leaf, MockProxy, Pki, PROXIES, SBC_FQDN};

/// Ports of one test: `base` + offsets for SIP, and a media range of 200 ports.
#[derive(Debug, Clone, Copy)]
struct Ports {
    sip: u16,
    tls: u16,
    admin: u16,
    carrier: u16,
    /// sipp UAS standing for a transfer target (trunk `target`).
    target: u16,
    proxies: [u16; 3],
    media_min: u16,
    sipp_media: u16,
}

impl Ports {
    /// Test `n` (0..6): SIP/admin/mocks in 17000 + n·100, media in 18000 + n·200 (200 ports),
    /// sipp media at 19000 + n·100 (no other test uses 17000-19999).
    fn for_test(n: u16) -> Self {
        let b = 17000 + n * 100;
        Self {
            sip: b,
            tls: b + 1,
            admin: b + 2,
            carrier: b + 3,
            target: b + 4,
            proxies: [b + 11, b + 12, b + 13],
            media_min: 18000 + n * 200,
            sipp_media: 19000 + n * 100,
        }
    }

    fn proxy(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.proxies[i]))
    }
}

fn config(p: Ports, sbc: &Leaf, roots: &std::path::Path, interval: &str, misses: u32) -> String {
    let chain = sbc.chain_pem.display();
    let key = sbc.key_pem.display();
    let roots = roots.display();
    format!(
        r#"[node]
name = "teams-test"

[[sip.listener]]
transport = "udp"
address = "127.0.0.1:{sip}"

[[sip.listener]]
transport = "mtls"
address = "127.0.0.1:{tls}"
cert = "{chain}"
key = "{key}"
client_ca = "{roots}"
client_names = ["sip.pstnhub.microsoft.com", "sip2.pstnhub.microsoft.com", "sip3.pstnhub.microsoft.com"]

[sip]
drain_timeout = "2s"

[media]
advertised_ip = "127.0.0.1"
bind_ip = "127.0.0.1"
port_min = {mmin}
port_max = {mmax}
cores = "auto:1"
inactivity_timeout = "60s"

[admin]
listen = "127.0.0.1:{admin}"

[cdr]
path = "cdr.jsonl"

[policy]
unknown_source = "reject"
rate_limit = 100000

[[trunk]]
name = "carrier"
address = "127.0.0.1:{carrier}"

[[route]]
name = "carrier-to-teams"
from = ["carrier"]
called_prefix = "0"
translate_called = [{{ strip_prefix = "0" }}, {{ add_prefix = "+33" }}]
targets = ["teams"]

[[trunk]]
name = "target"
address = "127.0.0.1:{target}"

[[route]]
name = "teams-transfer-target"
from = ["teams"]
called_prefix = "+49"
targets = ["target"]

[[route]]
name = "teams-to-carrier"
from = ["teams"]
targets = ["carrier"]

[teams]
sbc_fqdn = "{SBC_FQDN}"
cert_chain = "{chain}"
key = "{key}"
trusted_roots = "{roots}"
proxies = ["sip.pstnhub.microsoft.com:5061", "sip2.pstnhub.microsoft.com:5061", "sip3.pstnhub.microsoft.com:5061"]
options_interval = "{interval}"
miss_threshold = {misses}

[teams.resolve]
"sip.pstnhub.microsoft.com" = "127.0.0.1:{p1}"
"sip2.pstnhub.microsoft.com" = "127.0.0.1:{p2}"
"sip3.pstnhub.microsoft.com" = "127.0.0.1:{p3}"
"#,
        sip = p.sip,
        tls = p.tls,
        admin = p.admin,
        carrier = p.carrier,
        target = p.target,
        mmin = p.media_min,
        mmax = p.media_min + 199,
        p1 = p.proxies[0],
        p2 = p.proxies[1],
        p3 = p.proxies[2],
    )
}

/// The usual setup: one CA standing for Microsoft's roots and for the SBC's CA, the
/// SBC certificate, three mock proxies with good certificates.
struct World {
    pki: Pki,
    sbc: Leaf,
    mocks: Vec<MockProxy>,
}

fn world(p: Ports) -> World {
    let pki = Pki::new("ms");
    let sbc = pki.leaf("sbc", &[SBC_FQDN]);
    let mocks = PROXIES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let cert = pki.leaf(&format!("proxy{i}"), &[name]);
            MockProxy::start(name, p.proxy(i), &cert, &pki.ca_pem)
        })
        .collect();
    World { pki, sbc, mocks }
}

fn admin_get(p: Ports, path: &str) -> String {
    ureq::get(&format!("http://127.0.0.1:{}{path}", p.admin))
        .timeout(Duration::from_secs(5))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .into_string()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn teams_api(p: Ports) -> serde_json::Value {
    serde_json::from_str(&admin_get(p, "/api/v1/teams")).expect("teams JSON")
}

fn proxy_state(v: &serde_json::Value, i: usize) -> (String, bool) {
    let p = &v["proxies"][i];
    (
        p["state"].as_str().unwrap_or("").to_owned(),
        p["selected"].as_bool().unwrap_or(false),
    )
}

/// The value of sample `name{proxy="proxy"}` in the exposition.
fn metric(text: &str, name: &str, proxy: &str) -> Option<u64> {
    let prefix = format!("{name}{{proxy=\"{proxy}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// One call from the carrier (sipp UAC over UDP) to `called`; panics unless it completes.
fn call(dir: &std::path::Path, p: Ports, name: &str, called: &str) {
    let args: Vec<String> = [
        "-sn",
        "uac",
        &format!("127.0.0.1:{}", p.sip),
        "-i",
        "127.0.0.1",
        "-p",
        &p.carrier.to_string(),
        "-mp",
        &p.sipp_media.to_string(),
        "-s",
        called,
        "-m",
        "1",
        "-d",
        "300",
        "-nostdin",
        "-timeout",
        "30s",
        "-timeout_error",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut s = Sipp::start(name, dir, &args);
    let st = s.wait(Duration::from_secs(40));
    assert!(
        st.success(),
        "sipp call {name} failed ({st}):\n{}",
        s.output()
    );
}

#[test]
fn options_pings_carry_the_fqdn_over_mutual_tls() {
    let p = Ports::for_test(0);
    let w = world(p);
    let app = Appliance::start(&config(p, &w.sbc, &w.pki.ca_pem, "1s", 2));
    wait_for("3 OPTIONS at every proxy", Duration::from_secs(20), || {
        w.mocks.iter().all(|m| m.seen().options.len() >= 3)
    });
    let contact = format!("<sip:{SBC_FQDN}:{};transport=tls>", p.tls);
    for (m, name) in w.mocks.iter().zip(PROXIES) {
        let seen = m.seen();
        // TLS with our client certificate, one connection reused for every ping.
        assert!(
            seen.client_names
                .iter()
                .all(|n| n == &vec![SBC_FQDN.to_owned()]),
            "{name}: client certificates {:?}",
            seen.client_names
        );
        assert_eq!(seen.connections, 1, "{name}: one connection, reused");
        for o in &seen.options {
            let t = &o.text;
            assert!(
                t.starts_with(&format!(
                    "OPTIONS sip:{name}:5061;transport=tls SIP/2.0\r\n"
                )),
                "{name}: request line of\n{t}"
            );
            assert_eq!(header(t, "contact"), Some(contact.as_str()), "{t}");
            assert!(
                header(t, "from").is_some_and(|f| f.starts_with(&format!("<sip:{SBC_FQDN}:"))),
                "{t}"
            );
            assert_eq!(header(t, "max-forwards"), Some("70"), "{t}");
            assert!(
                header(t, "user-agent").is_some_and(|u| u.starts_with("Portcullis/")),
                "{t}"
            );
            assert!(header(t, "x-ms-sbc").is_some(), "{t}");
            assert!(
                header(t, "via")
                    .is_some_and(|v| v.starts_with(&format!("SIP/2.0/TLS {SBC_FQDN}:"))),
                "{t}"
            );
        }
        // Every interval (1 s): generous bounds for a loaded machine.
        for pair in seen.options.windows(2) {
            let gap = pair[1].at.duration_since(pair[0].at);
            assert!(
                gap >= Duration::from_millis(500) && gap <= Duration::from_millis(3000),
                "{name}: OPTIONS {gap:?} apart"
            );
        }
    }
    // Health in the admin API and the metrics.
    let v = teams_api(p);
    assert_eq!(v["configured"], true);
    assert_eq!(v["sbc_fqdn"], SBC_FQDN);
    assert_eq!(v["selected"], PROXIES[0], "{v}");
    for i in 0..3 {
        assert_eq!(proxy_state(&v, i).0, "up", "{v}");
        assert!(
            v["proxies"][i]["options_answered"].as_u64().unwrap_or(0) >= 1,
            "{v}"
        );
    }
    let text = admin_get(p, "/metrics");
    promtool_check(&text);
    for name in PROXIES {
        assert_eq!(
            metric(&text, "portcullis_teams_proxy_up", name),
            Some(1),
            "{text}"
        );
        assert!(
            metric(&text, "portcullis_teams_options_sent_total", name).unwrap_or(0) >= 3,
            "{text}"
        );
        assert_eq!(
            metric(&text, "portcullis_teams_options_misses_total", name),
            Some(0)
        );
    }
    assert_eq!(
        metric(&text, "portcullis_teams_proxy_selected", PROXIES[0]),
        Some(1)
    );
    // `portcullis status` shows the proxies.
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["status", "--admin", &format!("127.0.0.1:{}", p.admin)])
        .output()
        .expect("portcullis status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("new calls go to sip.pstnhub.microsoft.com"),
        "{text}"
    );
    assert!(text.contains("sip3.pstnhub.microsoft.com"), "{text}");
    drop(app);
}

#[test]
fn a_silent_proxy_goes_down_and_calls_fail_over_and_back() {
    let _lock = serial();
    let p = Ports::for_test(1);
    let w = world(p);
    let app = Appliance::start(&config(p, &w.sbc, &w.pki.ca_pem, "1s", 2));
    wait_for("every proxy answered", Duration::from_secs(20), || {
        w.mocks.iter().all(|m| !m.seen().options.is_empty())
    });
    let dir = app.dir.path();
    // While sip answers, calls go there, in E.164.
    call(dir, p, "call1", "0198765432");
    let inv = w.mocks[0].seen().invites;
    assert_eq!(inv.len(), 1, "the first call goes to sip");
    assert!(
        inv[0].text.starts_with("INVITE sip:+33198765432@"),
        "E.164 toward Teams:\n{}",
        inv[0].text
    );
    // Identity toward Teams: the proxy by name with its configured port (not the port
    // of its `[teams.resolve]` address) in the Request-URI and To; our FQDN with the
    // port we listen on in Contact and Via.
    let t = &inv[0].text;
    assert!(
        t.starts_with("INVITE sip:+33198765432@sip.pstnhub.microsoft.com:5061;transport=tls "),
        "{t}"
    );
    assert!(
        header(t, "to").is_some_and(|v| v.contains("@sip.pstnhub.microsoft.com:5061>")),
        "{t}"
    );
    assert_eq!(
        header(t, "contact"),
        Some(format!("<sip:sbc@{SBC_FQDN}:{};transport=tls>", p.tls).as_str()),
        "{t}"
    );
    assert!(
        header(t, "via")
            .is_some_and(|v| v.starts_with(&format!("SIP/2.0/TLS {SBC_FQDN}:{};", p.tls))),
        "{t}"
    );
    assert!(w.mocks[1].seen().invites.is_empty());

    // sip stops answering: down after 2 misses (about 2-3 intervals).
    w.mocks[0].set_answering(false);
    let stopped = Instant::now();
    wait_for("sip down in the admin API", Duration::from_secs(15), || {
        proxy_state(&teams_api(p), 0).0 == "down"
    });
    let v = teams_api(p);
    assert_eq!(v["selected"], PROXIES[1], "{v}");
    assert!(
        v["proxies"][0]["options_missed"].as_u64().unwrap_or(0) >= 2,
        "{v}"
    );
    let text = admin_get(p, "/metrics");
    assert_eq!(
        metric(&text, "portcullis_teams_proxy_up", PROXIES[0]),
        Some(0)
    );
    assert_eq!(
        metric(&text, "portcullis_teams_proxy_selected", PROXIES[1]),
        Some(1)
    );
    assert!(metric(&text, "portcullis_teams_options_misses_total", PROXIES[0]).unwrap_or(0) >= 2);
    eprintln!("sip seen down {:?} after it went silent", stopped.elapsed());
    call(dir, p, "call2", "0198765433");
    assert_eq!(
        w.mocks[0].seen().invites.len(),
        1,
        "no new call to the silent sip"
    );
    let inv2 = w.mocks[1].seen().invites;
    assert_eq!(inv2.len(), 1, "the next call goes to sip2");
    assert!(inv2[0].text.starts_with("INVITE sip:+33198765433@"));
    assert!(
        w.mocks[1].seen().byes >= 1,
        "the call through sip2 ended with BYE"
    );

    // sip answers again: up at its next ping, calls go back to it.
    w.mocks[0].set_answering(true);
    wait_for("sip up and selected again", Duration::from_secs(10), || {
        let v = teams_api(p);
        proxy_state(&v, 0) == ("up".to_owned(), true)
    });
    call(dir, p, "call3", "0198765434");
    assert_eq!(w.mocks[0].seen().invites.len(), 2, "back to sip");
    assert_eq!(w.mocks[1].seen().invites.len(), 1);
    let text = admin_get(p, "/metrics");
    let failovers = text
        .lines()
        .find_map(|l| l.strip_prefix("portcullis_teams_failovers_total "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(failovers >= Some(2), "{text}");
    drop(app);
}

#[test]
fn certificates_are_checked_in_both_directions() {
    let p = Ports::for_test(2);
    let pki = Pki::new("ms");
    let rogue = Pki::new("rogue");
    let sbc = pki.leaf("sbc", &[SBC_FQDN]);
    // sip: right name, untrusted root. sip2: trusted root, wrong name. sip3: good.
    let certs = [
        rogue.leaf("proxy0", &[PROXIES[0]]),
        pki.leaf("proxy1", &["sip.evil.example"]),
        pki.leaf("proxy2", &[PROXIES[2]]),
    ];
    let mocks: Vec<MockProxy> = (0..3)
        .map(|i| MockProxy::start(PROXIES[i], p.proxy(i), &certs[i], &pki.ca_pem))
        .collect();
    let app = Appliance::start(&config(p, &sbc, &pki.ca_pem, "1s", 1));
    wait_for(
        "sip and sip2 refused, sip3 up",
        Duration::from_secs(20),
        || {
            let v = teams_api(p);
            proxy_state(&v, 0).0 == "down"
                && proxy_state(&v, 1).0 == "down"
                && proxy_state(&v, 2) == ("up".to_owned(), true)
        },
    );
    for m in &mocks[..2] {
        let seen = m.seen();
        assert!(
            seen.options.is_empty(),
            "{}: no OPTIONS over a refused TLS",
            m.name
        );
        assert!(seen.connections >= 1, "{}: we did try", m.name);
    }
    assert!(!mocks[2].seen().options.is_empty());
    assert!(app.log().contains("Teams proxy down"), "{}", app.log());

    // Inbound: a Teams proxy with a good certificate gets 200 with Allow and Supported.
    let good = pki.leaf("teams-client", &[PROXIES[0]]);
    let tls = SocketAddr::from(([127, 0, 0, 1], p.tls));
    let answer = probe_options(tls, SBC_FQDN, &pki.ca_pem, &good)
        .unwrap_or_else(|e| panic!("a good Teams client is accepted: {e}\n{}", app.log()));
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");
    assert!(
        header(&answer, "allow").is_some_and(|a| a.contains("INVITE")),
        "{answer}"
    );
    assert!(header(&answer, "supported").is_some(), "{answer}");
    // A wrong name (trusted root) and an untrusted root (right name) are refused.
    let wrong_name = pki.leaf("wrong-name", &["sip.evil.example"]);
    let untrusted = rogue.leaf("untrusted", &[PROXIES[0]]);
    for (what, leaf) in [("wrong name", &wrong_name), ("untrusted root", &untrusted)] {
        match probe_options(tls, SBC_FQDN, &pki.ca_pem, leaf) {
            Ok(a) => panic!("client with a {what} got an answer:\n{a}"),
            Err(e) => eprintln!("client with a {what} refused: {e}"),
        }
    }
    let text = admin_get(p, "/metrics");
    let count = |name: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert!(
        count("portcullis_sip_transport_tls_handshake_failures_total") >= 1,
        "{text}"
    );
    assert!(
        count("portcullis_sip_transport_tls_name_rejections_total") >= 1,
        "{text}"
    );
    drop(app);
}

/// The first `200 OK` in sipp's message trace in `dir` (up to the next message).
fn trunk_answer(dir: &std::path::Path) -> Option<String> {
    let log = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("uac_teams_media") && n.ends_with("_messages.log"))
        })?;
    let text = std::fs::read_to_string(log).ok()?;
    let rest = &text[text.find("SIP/2.0 200 OK")?..];
    Some(rest[..rest.find("\n----").unwrap_or(rest.len())].to_owned())
}

/// `m=audio` port of the first `200 OK` to the INVITE in sipp's message trace in `dir`.
fn answered_port(dir: &std::path::Path) -> Option<u16> {
    let log = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("uac_teams_media") && n.ends_with("_messages.log"))
        })?;
    let text = std::fs::read_to_string(log).ok()?;
    let ok = text.find("SIP/2.0 200 OK")?;
    let rest = &text[ok..];
    let m = rest.find("m=audio ")?;
    rest[m + 8..].split_whitespace().next()?.parse().ok()
}

/// (seq, payload) of the `rx`/`tx` lines of the SRTP peer's output.
fn peer_lines(out: &str, kind: &str) -> Vec<(u16, Vec<u8>)> {
    out.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            (it.next()? == kind).then_some(())?;
            let seq = it.next()?.parse().ok()?;
            let hex = it.next().unwrap_or("");
            let bytes = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .ok()?;
            Some((seq, bytes))
        })
        .collect()
}

/// `world` with an appliance started on it, once sip has answered an OPTIONS; sip
/// answers calls with SRTP (the mock's key) on the returned port.
fn world_answering_calls(p: Ports) -> (World, Appliance, u16) {
    let w = world(p);
    let mock_rtp = p.proxies[0] + 10;
    w.mocks[0].set_answer(Box::new(move |offer| {
        teams_mock::default_answer(offer, mock_rtp)
    }));
    let app = Appliance::start(&config(p, &w.sbc, &w.pki.ca_pem, "2s", 2));
    wait_for("sip answered an OPTIONS", Duration::from_secs(20), || {
        !w.mocks[0].seen().options.is_empty()
    });
    (w, app, mock_rtp)
}

/// A call from the carrier (sipp `uac_teams_media.xml`, named `name`) to 0198765432
/// whose RTP the test sends and receives itself on the returned socket; returns once
/// its INVITE has reached `sip`.
fn media_call(dir: &std::path::Path, p: Ports, sip: &MockProxy, name: &str) -> (UdpSocket, Sipp) {
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("trunk RTP socket");
    rtp.set_read_timeout(Some(Duration::from_millis(10)))
        .expect("timeout");
    let rtp_port = rtp.local_addr().expect("addr").port();
    let scen = sipp_harness::scenario(dir, "uac_teams_media.xml");
    let args: Vec<String> = vec![
        "-sf".into(),
        scen.display().to_string(),
        format!("127.0.0.1:{}", p.sip),
        "-i".into(),
        "127.0.0.1".into(),
        "-p".into(),
        p.carrier.to_string(),
        "-mp".into(),
        p.sipp_media.to_string(),
        "-s".into(),
        "0198765432".into(),
        "-key".into(),
        "rtp_port".into(),
        rtp_port.to_string(),
        "-m".into(),
        "1".into(),
        "-trace_msg".into(),
        "-nostdin".into(),
        "-timeout".into(),
        "40s".into(),
        "-timeout_error".into(),
    ];
    let sipp = Sipp::start(name, dir, &args);
    wait_for("the INVITE reaches sip", Duration::from_secs(15), || {
        !sip.seen().invites.is_empty()
    });
    (rtp, sipp)
}

/// Where the appliance takes the trunk's RTP: the port of its 200 OK in sipp's trace.
fn trunk_media_addr(dir: &std::path::Path) -> SocketAddr {
    let mut trunk_port = None;
    wait_for(
        "sipp's trace shows the 200 OK",
        Duration::from_secs(10),
        || {
            trunk_port = answered_port(dir);
            trunk_port.is_some()
        },
    );
    SocketAddr::from(([127, 0, 0, 1], trunk_port.unwrap_or(0)))
}

/// For `within`, sends `count` plain RTP packets (PCMU, 20 ms apart, sequence numbers
/// from `seq0`, SSRC `ssrc`, packet `i` carrying `payload(i)`) from `rtp` to `to`, and
/// collects the payloads of the RTP packets that arrive. Returns (sent, got).
fn exchange_rtp(
    rtp: &UdpSocket,
    to: SocketAddr,
    within: Duration,
    count: u32,
    seq0: u16,
    ssrc: u32,
    payload: impl Fn(u32) -> Vec<u8>,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    let mut i: u32 = 0;
    while start.elapsed() < within {
        if i < count && start.elapsed() >= Duration::from_millis(20 * u64::from(i)) {
            let mut pkt = vec![0x80, 0];
            pkt.extend_from_slice(&(seq0 + i as u16).to_be_bytes());
            pkt.extend_from_slice(&(160 * i).to_be_bytes());
            pkt.extend_from_slice(&ssrc.to_be_bytes());
            let payload = payload(i);
            pkt.extend_from_slice(&payload);
            rtp.send_to(&pkt, to).expect("send RTP");
            sent.push(payload);
            i += 1;
        }
        if let Ok((n, _)) = rtp.recv_from(&mut buf) {
            if n > 12 && buf[0] >> 6 == 2 {
                got.push(buf[12..n].to_vec());
            }
        }
    }
    (sent, got)
}

#[test]
fn media_is_srtp_toward_teams_and_plain_rtp_toward_the_trunk() {
    let _lock = serial();
    let p = Ports::for_test(3);
    let (w, app, mock_rtp) = world_answering_calls(p);
    let dir = app.dir.path();
    let (rtp, mut sipp) = media_call(dir, p, &w.mocks[0], "media");
    let invite = w.mocks[0].seen().invites[0].text.clone();
    let offer = invite
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    assert!(offer.contains("RTP/SAVP"), "SRTP toward Teams:\n{offer}");
    let (_, suite, sbc_key) = teams_mock::offer_crypto(&offer).expect("a=crypto in the offer");
    assert_eq!(suite, "AES_CM_128_HMAC_SHA1_80");
    let sbc_port: u16 = offer
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("m=audio port in the offer");
    // The Teams side: libsrtp decrypts what arrives and sends SRTP back.
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/teams_mock/srtp_peer.py");
    let peer = Command::new("/usr/bin/python3")
        .arg(&script)
        .args([
            mock_rtp.to_string(),
            sbc_key,
            teams_mock::MOCK_KEY_B64.to_owned(),
            "127.0.0.1".to_owned(),
            sbc_port.to_string(),
            "100".to_owned(),
            "4".to_owned(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 with pylibsrtp (Debian python3-pylibsrtp)");
    let trunk = trunk_media_addr(dir);
    // Teams answered with rtcp-mux; the trunk offered none, so its answer has none
    // (RFC 5761 §5.1.1).
    let answer = trunk_answer(dir).expect("the trunk's 200 OK");
    assert!(answer.contains("m=audio "), "{answer}");
    assert!(!answer.contains("a=rtcp-mux"), "{answer}");
    // The trunk side: plain RTP (PCMU) out, plain RTP in.
    let (sent, got) = exchange_rtp(
        &rtp,
        trunk,
        Duration::from_millis(3500),
        100,
        2000,
        0x1234_5678,
        |i| (0..160u32).map(|k| (i * 7 + k) as u8).collect(),
    );
    let out = peer.wait_with_output().expect("SRTP peer");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "SRTP peer failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = sipp.wait(Duration::from_secs(30));
    assert!(st.success(), "sipp: {}", sipp.output());
    eprintln!(
        "trunk sent {} RTP, Teams decrypted {}; Teams sent {} SRTP, trunk got {} RTP",
        sent.len(),
        peer_lines(&stdout, "rx").len(),
        peer_lines(&stdout, "tx").len(),
        got.len()
    );
    // Trunk → Teams: libsrtp authenticates and decrypts the trunk's payloads.
    assert!(!stdout.contains("rx-fail"), "SRTP failures:\n{stdout}");
    let rx = peer_lines(&stdout, "rx");
    assert!(
        rx.len() >= 50,
        "Teams got {} of 100 packets:\n{stdout}",
        rx.len()
    );
    for (seq, payload) in &rx {
        assert!(
            sent.contains(payload),
            "seq {seq}: payload not one the trunk sent"
        );
    }
    // Teams → trunk: plain RTP with the payloads libsrtp encrypted.
    let tx: Vec<Vec<u8>> = peer_lines(&stdout, "tx")
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(tx.len(), 100, "{stdout}");
    assert!(
        got.len() >= 50,
        "the trunk got {} of 100 packets",
        got.len()
    );
    for g in &got {
        assert!(
            tx.contains(g),
            "a packet the trunk got is not one Teams sent (still encrypted?)"
        );
    }
    drop(app);
}

#[test]
fn refer_from_teams_leaves_the_caller_talking_to_the_target() {
    let _lock = serial();
    let p = Ports::for_test(4);
    let (w, app, _) = world_answering_calls(p);
    let dir = app.dir.path();
    // The transfer target: a sipp UAS echoing the RTP it gets.
    let uas_args: Vec<String> = [
        "-sn",
        "uas",
        "-i",
        "127.0.0.1",
        "-p",
        &p.target.to_string(),
        "-mp",
        &(p.sipp_media + 50).to_string(),
        "-rtp_echo",
        "-m",
        "1",
        "-nostdin",
        "-timeout",
        "40s",
        "-timeout_error",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut uas = Sipp::start("target", dir, &uas_args);
    let (rtp, mut uac) = media_call(dir, p, &w.mocks[0], "caller");
    let trunk = trunk_media_addr(dir);
    // Teams transfers the caller to +4930123456 (routed from the teams peer to `target`).
    let invite = w.mocks[0].seen().invites[0].text.clone();
    let refer = teams_mock::refer_for(
        &invite,
        "sip:+4930123456@sip.pstnhub.microsoft.com",
        p.proxies[0],
    );
    assert!(w.mocks[0].send(refer), "the mock has the call's connection");
    wait_for("202 to the REFER", Duration::from_secs(5), || {
        w.mocks[0]
            .seen()
            .responses
            .iter()
            .any(|r| r.text.starts_with("SIP/2.0 202") && r.text.contains("REFER"))
    });
    // Responses toward Teams carry X-MS-SBC like our requests.
    for r in w.mocks[0].seen().responses {
        assert!(
            header(&r.text, "x-ms-sbc").is_some_and(|v| v.starts_with("Portcullis/")),
            "{}",
            r.text
        );
    }
    wait_for(
        "NOTIFY sipfrag 200 to Teams",
        Duration::from_secs(10),
        || {
            w.mocks[0]
                .seen()
                .notifies
                .iter()
                .any(|n| n.text.contains("SIP/2.0 200"))
        },
    );
    wait_for(
        "the Teams leg released with BYE",
        Duration::from_secs(10),
        || w.mocks[0].seen().byes >= 1,
    );
    // The caller now talks to the target: its RTP comes back echoed by the target.
    let (sent, got) = exchange_rtp(
        &rtp,
        trunk,
        Duration::from_millis(2000),
        75,
        3000,
        0x2345_6789,
        |i| (0..160u32).map(|k| (i * 11 + k * 3) as u8).collect(),
    );
    eprintln!(
        "after the transfer: sent {} RTP, {} came back from the target",
        sent.len(),
        got.len()
    );
    let echoed = got.iter().filter(|g| sent.contains(g)).count();
    assert!(
        echoed >= 35,
        "only {echoed} of {} packets came back from the target",
        sent.len()
    );
    let st = uac.wait(Duration::from_secs(30));
    assert!(st.success(), "caller sipp: {}", uac.output());
    let st = uas.wait(Duration::from_secs(30));
    assert!(st.success(), "target sipp: {}", uas.output());
    drop(app);
}

#[test]
fn reload_applies_a_new_teams_section() {
    let p = Ports::for_test(5);
    let w = world(p);
    let toml = config(p, &w.sbc, &w.pki.ca_pem, "1s", 2);
    let app = Appliance::start(&toml);
    wait_for("sip selected", Duration::from_secs(20), || {
        teams_api(p)["selected"] == PROXIES[0]
    });
    // New order, sip2 dropped: after SIGHUP the monitor follows the new list.
    let old_line = r#"proxies = ["sip.pstnhub.microsoft.com:5061", "sip2.pstnhub.microsoft.com:5061", "sip3.pstnhub.microsoft.com:5061"]"#;
    assert!(toml.contains(old_line));
    let new = toml
        .replace(
            old_line,
            r#"proxies = ["sip3.pstnhub.microsoft.com:5061", "sip.pstnhub.microsoft.com:5061"]"#,
        )
        .replace("\"sip2.pstnhub.microsoft.com\" = ", "# sip2 dropped = ");
    std::fs::write(&app.config_path, new).expect("rewrite config");
    let before = w.mocks[2].seen().options.len();
    app.signal("HUP");
    wait_for(
        "sip3 selected after reload",
        Duration::from_secs(15),
        || {
            let v = teams_api(p);
            v["selected"] == PROXIES[2] && v["proxies"].as_array().is_some_and(|a| a.len() == 2)
        },
    );
    wait_for("sip3 still pinged", Duration::from_secs(10), || {
        w.mocks[2].seen().options.len() > before + 1
    });
    // A ping already on the wire at the reload may still land: settle, then watch
    // for more than two intervals.
    std::thread::sleep(Duration::from_millis(500));
    let sip2_pings = w.mocks[1].seen().options.len();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        w.mocks[1].seen().options.len(),
        sip2_pings,
        "no more OPTIONS to the dropped sip2"
    );
    drop(app);
}

#[test]
fn reload_swaps_the_teams_client_certificate_for_new_connections() {
    let _lock = serial();
    let p = Ports::for_test(6);
    let w = world(p);
    // The SBC certificate (listener and Teams client) in files the test replaces in
    // place, as an operator renewing a certificate does.
    let live = Leaf {
        chain_pem: w.pki.dir.path().join("sbc-live.pem"),
        key_pem: w.pki.dir.path().join("sbc-live.key"),
    };
    std::fs::copy(&w.sbc.chain_pem, &live.chain_pem).expect("copy chain");
    std::fs::copy(&w.sbc.key_pem, &live.key_pem).expect("copy key");
    let app = Appliance::start(&config(p, &live, &w.pki.ca_pem, "1s", 2));
    wait_for(
        "sip pinged over mutual TLS",
        Duration::from_secs(20),
        || !w.mocks[0].seen().options.is_empty(),
    );
    let first = w.mocks[0].seen().client_names;
    assert_eq!(
        first,
        vec![vec![SBC_FQDN.to_owned()]],
        "the first certificate"
    );

    // Renewed: same FQDN, one more name so the mock can tell them apart.
    let renewed = w
        .pki
        .leaf("sbc-renewed", &[SBC_FQDN, "renewed.example.com"]);
    std::fs::copy(&renewed.chain_pem, &live.chain_pem).expect("copy chain");
    std::fs::copy(&renewed.key_pem, &live.key_pem).expect("copy key");
    app.signal("HUP");
    wait_for("reload done", Duration::from_secs(15), || {
        admin_get(p, "/metrics")
            .lines()
            .any(|l| l == "portcullis_config_generation 2")
    });
    // The connection open at the reload is kept (calls and pings go on over it) ...
    let handshakes = w.mocks[0].seen().client_names.len();
    let pings = w.mocks[0].seen().options.len();
    wait_for("sip still pinged", Duration::from_secs(10), || {
        w.mocks[0].seen().options.len() > pings + 1
    });
    assert_eq!(
        w.mocks[0].seen().client_names.len(),
        handshakes,
        "the reload did not reopen the connection"
    );
    // ... and a new connection presents the renewed certificate.
    w.mocks[0].close_connections();
    wait_for(
        "reconnected with the renewed certificate",
        Duration::from_secs(20),
        || w.mocks[0].seen().client_names.len() > handshakes,
    );
    let names = w.mocks[0].seen().client_names;
    assert_eq!(
        names[handshakes],
        vec![SBC_FQDN.to_owned(), "renewed.example.com".to_owned()],
        "{names:?}\n{}",
        app.log()
    );
    assert!(
        !app.log().contains("take effect at the next restart"),
        "{}",
        app.log()
    );
    drop(app);
}

//! Shared helpers of the Microsoft Teams Direct Routing tests (`teams_e2e.rs`,
//! `teams_media.rs`, `teams_reload.rs`): each test's ports, the appliance configuration
//! facing three mock Teams proxies, the mocks themselves, and the admin API's view of them.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use super::teams_mock::{Leaf, MockProxy, Pki, PROXIES, SBC_FQDN};

/// Ports of one test: `base` + offsets for SIP, and a media range of 200 ports.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub sip: u16,
    pub tls: u16,
    pub admin: u16,
    pub carrier: u16,
    /// sipp UAS standing for a transfer target (trunk `target`).
    pub target: u16,
    pub proxies: [u16; 3],
    pub media_min: u16,
    pub sipp_media: u16,
}

impl Ports {
    /// Test `n` (0..6): SIP/admin/mocks in 17000 + n·100, media in 18000 + n·200 (200 ports),
    /// sipp media at 19000 + n·100 (no other test uses 17000-19999).
    pub fn for_test(n: u16) -> Self {
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

    pub fn proxy(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.proxies[i]))
    }
}

pub fn config(
    p: Ports,
    sbc: &Leaf,
    roots: &std::path::Path,
    interval: &str,
    misses: u32,
) -> String {
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
pub struct World {
    pub pki: Pki,
    pub sbc: Leaf,
    pub mocks: Vec<MockProxy>,
}

pub fn world(p: Ports) -> World {
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

pub fn admin_get(p: Ports, path: &str) -> String {
    ureq::get(&format!("http://127.0.0.1:{}{path}", p.admin))
        .timeout(Duration::from_secs(5))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .into_string()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

pub fn teams_api(p: Ports) -> serde_json::Value {
    serde_json::from_str(&admin_get(p, "/api/v1/teams")).expect("teams JSON")
}

pub fn proxy_state(v: &serde_json::Value, i: usize) -> (String, bool) {
    let p = &v["proxies"][i];
    (
        p["state"].as_str().unwrap_or("").to_owned(),
        p["selected"].as_bool().unwrap_or(false),
    )
}

/// The value of sample `name{proxy="proxy"}` in the exposition.
pub fn metric(text: &str, name: &str, proxy: &str) -> Option<u64> {
    let prefix = format!("{name}{{proxy=\"{proxy}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

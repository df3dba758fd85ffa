//! Where the B2BUA's randomness goes: every SDES key and salt and every ICE-lite
//! credential it sends is a draw of the injected source's *secret* stream; the
//! Call-ID, tags and branches it puts on the wire are draws of the *identifier*
//! stream; the two never share bytes.

#[path = "b2bua_harness.rs"]
mod harness;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::*;
use portcullis_engine::config::{MediaMode, TeamsSettings};
use portcullis_engine::entropy::{Entropy, SeededEntropy};
use portcullis_sip::sdp::Crypto;

/// Draws, in order, per stream.
#[derive(Debug, Default)]
struct Log {
    secrets: Vec<Vec<u8>>,
    ids: Vec<Vec<u8>>,
}

/// A seeded source that records every draw.
#[derive(Debug)]
struct Recording {
    inner: SeededEntropy,
    log: Arc<Mutex<Log>>,
}

impl Entropy for Recording {
    fn fill_secret(&mut self, dest: &mut [u8]) {
        self.inner.fill_secret(dest);
        self.log.lock().unwrap().secrets.push(dest.to_vec());
    }

    fn fill_id(&mut self, dest: &mut [u8]) {
        self.inner.fill_id(dest);
        self.log.lock().unwrap().ids.push(dest.to_vec());
    }
}

fn attr<'a>(sdp: &'a str, name: &str) -> &'a str {
    sdp.split("\r\n")
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {sdp}"))
}

fn header<'m>(msg: &'m str, name: &str) -> &'m str {
    msg.split("\r\n")
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
        .unwrap_or_else(|| panic!("no {name} in {msg}"))
}

#[test]
fn keys_and_ice_credentials_are_secret_draws_identifiers_are_id_draws() {
    let log = Arc::new(Mutex::new(Log::default()));
    let mut h = H::with_entropy(
        |c| {
            c.teams = Some(TeamsSettings {
                sbc_fqdn: "sbc.example.com".into(),
                options_interval: Duration::from_secs(60),
                media_bypass: true,
                proxies: Vec::new(),
            });
            c.trunks[1].tls_server_name = Some("sip.pstnhub.microsoft.com".into());
            c.trunks[1].media = MediaMode::Srtp;
        },
        Recording {
            inner: SeededEntropy::new(5),
            log: log.clone(),
        },
    );
    let (_atx, _ainv, _btx, binv) = h.start("100", Some(&sdp("192.168.1.10", 10_000, "")));
    let body = std::str::from_utf8(binv.body()).unwrap().to_owned();
    let log = log.lock().unwrap();
    let is_secret = |b: &[u8]| log.secrets.iter().any(|s| s == b);
    // Identifiers are 64 bits printed as 16 hex digits.
    let id_of = |d: &[u8]| format!("{:016x}", u64::from_le_bytes(d.try_into().unwrap()));
    let is_id_hex = |s: &str| log.ids.iter().any(|d| id_of(d) == s);

    // a=crypto: base64(key || salt), key and salt each one secret draw.
    let crypto = Crypto::parse(attr(&body, "a=crypto:")).unwrap();
    let ks = crypto.keys[0].key_salt().unwrap();
    assert_eq!(ks.len(), 30);
    assert!(is_secret(&ks[..16]), "SDES key is a secret draw");
    assert!(is_secret(&ks[16..]), "SDES salt is a secret draw");
    // ICE-lite credentials: hex of secret draws.
    let ufrag = hex::decode(attr(&body, "a=ice-ufrag:")).unwrap();
    let pwd = hex::decode(attr(&body, "a=ice-pwd:")).unwrap();
    assert!(is_secret(&ufrag) && ufrag.len() == 8, "ufrag");
    assert!(is_secret(&pwd) && pwd.len() == 16, "pwd: 128 bits");

    // Wire identifiers of the B leg: identifier draws, never secret ones.
    let wire = String::from_utf8_lossy(&h.b1.wire[0]).into_owned();
    let call_id = header(&wire, "Call-ID").split('@').next().unwrap();
    let tag = header(&wire, "From").split(";tag=").nth(1).unwrap();
    let branch = header(&wire, "Via")
        .split(";branch=z9hG4bK")
        .nth(1)
        .and_then(|b| b.split(';').next())
        .unwrap();
    for (what, v) in [("Call-ID", call_id), ("tag", tag), ("branch", branch)] {
        assert!(is_id_hex(v), "{what} {v} is an identifier draw");
        let bytes = u64::from_str_radix(v, 16).unwrap().to_le_bytes();
        assert!(!is_secret(&bytes), "{what} is not a secret draw");
    }
    // The streams never overlap.
    for s in &log.secrets {
        assert!(!log.ids.iter().any(|i| i == s));
    }
    // The digest nonce secret was drawn at creation too: secret draws are
    // 32 (nonce secret), then the call's key, salt, ufrag, pwd.
    assert_eq!(log.secrets[0].len(), 32);
}

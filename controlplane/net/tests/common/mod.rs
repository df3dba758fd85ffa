//! Helpers shared by the integration tests: a test PKI made with rcgen, event waiting with
//! time bounds, and SIP message builders.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use portcullis_net::{Inbound, TransportEvent, TransportEvents};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::time::timeout;

/// Upper bound for any single wait in a test.
pub const WAIT: Duration = Duration::from_secs(5);

/// A SIP OPTIONS request with a correct Content-Length.
pub fn options(branch: &str, body: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:sbc.example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@example.com>;tag=1\r\n\
         To: <sip:sbc.example.com>\r\n\
         Call-ID: {branch}@test\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Next event, failing the test after [`WAIT`].
pub async fn next_event(rx: &mut TransportEvents) -> TransportEvent {
    match timeout(WAIT, rx.recv()).await {
        Ok(Some(ev)) => ev,
        Ok(None) => panic!("event channel closed"),
        Err(_) => panic!("no transport event within {WAIT:?}"),
    }
}

/// Next `Message` event, skipping connection-opened events; panics on anything else.
pub async fn next_message(rx: &mut TransportEvents) -> Inbound {
    loop {
        match next_event(rx).await {
            TransportEvent::Message(m) => return m,
            TransportEvent::ConnectionOpened { .. } => {}
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

/// Asserts that no event arrives within `d`.
pub async fn no_event(rx: &mut TransportEvents, d: Duration) {
    if let Ok(ev) = timeout(d, rx.recv()).await {
        panic!("unexpected event {ev:?}");
    }
}

pub fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().expect("literal address")
}

/// A certificate authority whose certificates and keys are written as PEM files into a
/// temporary directory.
pub struct TestCa {
    pub dir: tempfile::TempDir,
    pub cert_pem: PathBuf,
    cert: Certificate,
    key: KeyPair,
    name: String,
}

/// A leaf certificate and key on disk.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = KeyPair::generate().expect("CA key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).expect("CA cert");
        let cert_pem = dir.path().join(format!("{name}-ca.pem"));
        std::fs::write(&cert_pem, cert.pem()).expect("write CA");
        TestCa {
            dir,
            cert_pem,
            cert,
            key,
            name: name.to_owned(),
        }
    }

    /// Issues a certificate for `names` (SAN DNS names, or IP addresses), valid for both
    /// server and client authentication.
    pub fn leaf(&self, file: &str, names: &[&str]) -> Leaf {
        self.issue(file, names, |_| {})
    }

    fn issue(
        &self,
        file: &str,
        names: &[&str],
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let sans: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let mut p = CertificateParams::new(sans).expect("leaf params");
        p.distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        adjust(&mut p);
        let cert = p.signed_by(&key, &self.cert, &self.key).expect("sign leaf");
        let cert_pem = self.dir.path().join(format!("{}-{file}.pem", self.name));
        let key_pem = self.dir.path().join(format!("{}-{file}.key", self.name));
        std::fs::write(&cert_pem, cert.pem()).expect("write leaf");
        std::fs::write(&key_pem, key.serialize_pem()).expect("write key");
        Leaf { cert_pem, key_pem }
    }

    /// Like [`TestCa::leaf`], valid only between two dates `(year, month, day)`.
    pub fn leaf_valid(
        &self,
        file: &str,
        names: &[&str],
        not_before: (i32, u8, u8),
        not_after: (i32, u8, u8),
    ) -> Leaf {
        self.issue(file, names, |p| {
            p.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
            p.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        })
    }

    pub fn path(&self) -> &Path {
        &self.cert_pem
    }
}

/// Polls `cond` every 10 ms until it holds, failing the test after [`WAIT`].
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within {WAIT:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Server settings for a TLS/mTLS listener.
pub fn server_settings(
    leaf: &Leaf,
    client_ca: Option<&Path>,
    expected: &[&str],
) -> portcullis_net::TlsServerSettings {
    portcullis_net::TlsServerSettings {
        cert_chain_pem: leaf.cert_pem.clone(),
        key_pem: leaf.key_pem.clone(),
        client_ca: client_ca.map(Path::to_owned),
        expected_client_names: expected.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// Client settings trusting `ca`, optionally presenting `cert`.
pub fn client_settings(ca: &TestCa, cert: Option<&Leaf>) -> portcullis_net::TlsClientSettings {
    portcullis_net::TlsClientSettings {
        roots: ca.cert_pem.clone(),
        client_cert: cert.map(|l| portcullis_net::ClientCertificate {
            cert_chain_pem: l.cert_pem.clone(),
            key_pem: l.key_pem.clone(),
        }),
    }
}

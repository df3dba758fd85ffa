//! rustls configuration: TLS 1.2 and 1.3 only, ring provider, material from PEM files;
//! the mTLS name policy applied after the handshake.
//!
//! RFC 5630 and RFC 5922 §7: a SIP TLS client checks that the server certificate names the
//! domain it wanted (here: the `tls_server_name` of the send, also sent as SNI). For
//! mutual TLS the server verifies the client chain against `client_ca`
//! (`WebPkiClientVerifier`) during the handshake and then requires the leaf to be valid
//! for one of `expected_client_names` ([`leaf_valid_for`]: webpki's name check, the rule
//! rustls applies to server names and the configuration check applies to our own
//! certificate).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::config::{TlsClientSettings, TlsServerSettings, Transport};
use crate::error::TlsConfigError;

/// TLS versions offered and accepted: 1.3 and 1.2, nothing older.
static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn open(path: &Path) -> Result<BufReader<File>, TlsConfigError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| TlsConfigError::Read {
            path: path.to_owned(),
            source,
        })
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let mut rd = open(path)?;
    let certs = rustls_pemfile::certs(&mut rd)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// Reads the first private key of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let mut rd = open(path)?;
    rustls_pemfile::private_key(&mut rd)
        .map_err(|source| TlsConfigError::Read {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| TlsConfigError::NoKey(path.to_owned()))
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|source| TlsConfigError::BadRoot {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(roots)
}

/// Builds the server configuration of a `Tls` or `Mtls` listener.
///
/// `Mtls` requires a client certificate chaining to `client_ca`; `Tls` with a `client_ca`
/// asks for one but also accepts clients without (their `tls_peer_names` is `None`).
pub fn server_config(
    transport: Transport,
    s: &TlsServerSettings,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let chain = load_certs(&s.cert_chain_pem)?;
    let key = load_key(&s.key_pem)?;
    let builder =
        ServerConfig::builder_with_provider(provider()).with_protocol_versions(VERSIONS)?;
    let builder = match (&s.client_ca, transport) {
        (Some(ca), _) => {
            let roots = Arc::new(load_roots(ca)?);
            let vb = WebPkiClientVerifier::builder_with_provider(roots, provider());
            let vb = if transport == Transport::Mtls {
                vb
            } else {
                vb.allow_unauthenticated()
            };
            let verifier = vb
                .build()
                .map_err(|e| TlsConfigError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        (None, Transport::Mtls) => {
            return Err(TlsConfigError::Verifier(
                "mTLS listener without client_ca".into(),
            ))
        }
        (None, _) => builder.with_no_client_auth(),
    };
    let cfg = builder
        .with_single_cert(chain, key)
        .map_err(|e| cert_key_error(e, &s.cert_chain_pem, &s.key_pem))?;
    Ok(Arc::new(cfg))
}

/// Names the files of a certificate/key pair that rustls refused.
fn cert_key_error(e: rustls::Error, cert: &Path, key: &Path) -> TlsConfigError {
    match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            TlsConfigError::KeyMismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
            }
        }
        source => TlsConfigError::CertKey {
            cert: cert.to_owned(),
            key: key.to_owned(),
            source,
        },
    }
}

/// Builds the configuration for TLS connections we open.
pub fn client_config(s: &TlsClientSettings) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let roots = load_roots(&s.roots)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_root_certificates(roots);
    let cfg = match &s.client_cert {
        Some(cc) => builder
            .with_client_auth_cert(load_certs(&cc.cert_chain_pem)?, load_key(&cc.key_pem)?)
            .map_err(|e| cert_key_error(e, &cc.cert_chain_pem, &cc.key_pem))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

/// The SAN DNS names of a leaf certificate (already verified by rustls). `None` when the
/// DER cannot be parsed.
pub fn leaf_dns_names(leaf: &CertificateDer<'_>) -> Option<Vec<String>> {
    let ee = webpki::EndEntityCert::try_from(leaf).ok()?;
    Some(ee.valid_dns_names().map(str::to_owned).collect())
}

/// Whether the leaf certificate `leaf` is valid for the DNS name `name`, by webpki's
/// rule (the one rustls applies to server certificates, RFC 6125 §6.4): a SAN DNS name
/// equal to `name` (ASCII case-insensitive), or a SAN wildcard `*.domain` whose `*` is the
/// whole left-most label and stands for exactly one label (`*.example.com` covers
/// `a.example.com`, not `example.com` nor `a.b.example.com`; at least two labels follow
/// the `*`). `name` is a concrete name; a pattern (`*.x`, `.x`) or an IP is never valid.
pub fn leaf_valid_for(leaf: &CertificateDer<'_>, name: &str) -> bool {
    let Ok(ee) = webpki::EndEntityCert::try_from(leaf) else {
        return false;
    };
    let Ok(reference) = rustls::pki_types::DnsName::try_from(name) else {
        return false;
    };
    ee.verify_is_valid_for_subject_name(&rustls::pki_types::ServerName::DnsName(reference))
        .is_ok()
}

/// Whether `leaf` is valid for one of `names` ([`leaf_valid_for`]). An empty list accepts
/// any certificate (the chain was verified during the handshake).
pub fn leaf_acceptable(names: &[String], leaf: &CertificateDer<'_>) -> bool {
    names.is_empty() || names.iter().any(|n| leaf_valid_for(leaf, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(sans: &[&str]) -> CertificateDer<'static> {
        let names: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        rcgen::generate_simple_self_signed(names)
            .unwrap()
            .cert
            .der()
            .clone()
    }

    #[test]
    fn exact_names_any_case() {
        let c = cert(&["sip.example.com"]);
        assert!(leaf_valid_for(&c, "sip.example.com"));
        assert!(leaf_valid_for(&c, "SIP.Example.COM"));
        assert!(leaf_valid_for(&c, "sip.example.com."), "absolute reference");
        assert!(!leaf_valid_for(&c, "sip2.example.com"));
        assert!(!leaf_valid_for(&c, "example.com"));
        assert!(!leaf_valid_for(&c, ""));
    }

    #[test]
    fn a_wildcard_san_covers_exactly_one_label() {
        let c = cert(&["*.pstnhub.microsoft.com"]);
        assert!(leaf_valid_for(&c, "sip.pstnhub.microsoft.com"));
        assert!(leaf_valid_for(&c, "sip3.pstnhub.microsoft.com"));
        assert!(!leaf_valid_for(&c, "pstnhub.microsoft.com"));
        assert!(!leaf_valid_for(&c, "a.b.pstnhub.microsoft.com"));
        assert!(!leaf_valid_for(&c, "evilpstnhub.microsoft.com"));
        assert!(!leaf_valid_for(&c, "sip.pstnhub.microsoft.com.evil.org"));
        // A pattern is not a name: expected names are concrete.
        assert!(!leaf_valid_for(&c, "*.pstnhub.microsoft.com"));
        assert!(!leaf_valid_for(&c, ".pstnhub.microsoft.com"));
    }

    #[test]
    fn wildcards_too_broad_or_partial_never_match() {
        assert!(!leaf_valid_for(&cert(&["*.com"]), "example.com"));
        assert!(!leaf_valid_for(
            &cert(&["s*.example.com"]),
            "sip.example.com"
        ));
        assert!(!leaf_valid_for(
            &cert(&["a.*.example.com"]),
            "a.b.example.com"
        ));
    }

    #[test]
    fn lists() {
        let c = cert(&["a.example.org"]);
        assert!(leaf_acceptable(&[], &c));
        assert!(leaf_acceptable(&["a.example.org".to_owned()], &c));
        assert!(!leaf_acceptable(&["b.example.org".to_owned()], &c));
        assert!(!leaf_acceptable(
            &["a.example.org".to_owned()],
            &CertificateDer::from(vec![0u8; 8])
        ));
    }
}

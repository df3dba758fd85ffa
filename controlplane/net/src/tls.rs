//! rustls configuration: TLS 1.2 and 1.3 only, ring provider, material from PEM files;
//! the mTLS name policy applied after the handshake.
//!
//! RFC 5630 and RFC 5922 §7: a SIP TLS client checks that the server certificate names the
//! domain it wanted (here: the `tls_server_name` of the send, also sent as SNI). For
//! mutual TLS the server verifies the client chain against `client_ca`
//! (`WebPkiClientVerifier`) during the handshake and then requires a SAN DNS name of the
//! leaf to match one of `expected_client_names` ([`name_matches`]).

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

/// Whether a certificate DNS name matches an expected-name pattern (ASCII case-insensitive,
/// a trailing dot ignored):
///
/// - `example.com`: exactly that name;
/// - `*.example.com`: any name strictly under `example.com` (any depth), or the
///   certificate's own wildcard `*.example.com`;
/// - `.example.com`: `example.com` itself or any name under it (domain suffix).
pub fn name_matches(pattern: &str, cert_name: &str) -> bool {
    let p = pattern.trim_end_matches('.').to_ascii_lowercase();
    let n = cert_name.trim_end_matches('.').to_ascii_lowercase();
    if p.is_empty() || n.is_empty() {
        return false;
    }
    if p == n {
        return true;
    }
    if let Some(domain) = p.strip_prefix("*.") {
        return !domain.is_empty()
            && n.len() > domain.len() + 1
            && n.ends_with(domain)
            && n.as_bytes().get(n.len() - domain.len() - 1) == Some(&b'.')
            && !n.starts_with("*.");
    }
    if let Some(domain) = p.strip_prefix('.') {
        return !domain.is_empty()
            && (n == domain
                || (n.len() > domain.len()
                    && n.ends_with(domain)
                    && n.as_bytes().get(n.len() - domain.len() - 1) == Some(&b'.')));
    }
    false
}

/// Whether any certificate name matches any pattern. An empty pattern list accepts all.
pub fn names_acceptable(patterns: &[String], cert_names: &[String]) -> bool {
    patterns.is_empty()
        || patterns
            .iter()
            .any(|p| cert_names.iter().any(|n| name_matches(p, n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_case() {
        assert!(name_matches("sip.example.com", "SIP.example.com."));
        assert!(!name_matches("sip.example.com", "sip2.example.com"));
        assert!(!name_matches("", ""));
    }

    #[test]
    fn wildcard_pattern() {
        let p = "*.pstnhub.microsoft.com";
        assert!(name_matches(p, "sip.pstnhub.microsoft.com"));
        assert!(name_matches(p, "a.b.pstnhub.microsoft.com"));
        assert!(name_matches(p, "*.pstnhub.microsoft.com"));
        assert!(!name_matches(p, "pstnhub.microsoft.com"));
        assert!(!name_matches(p, "evilpstnhub.microsoft.com"));
        assert!(!name_matches(p, "sip.pstnhub.microsoft.com.evil.org"));
        assert!(!name_matches("*.", "a."));
    }

    #[test]
    fn suffix_pattern() {
        let p = ".pstnhub.microsoft.com";
        assert!(name_matches(p, "pstnhub.microsoft.com"));
        assert!(name_matches(p, "sip2.pstnhub.microsoft.com"));
        assert!(!name_matches(p, "xpstnhub.microsoft.com"));
    }

    #[test]
    fn lists() {
        let names = vec!["a.example.org".to_owned()];
        assert!(names_acceptable(&[], &names));
        assert!(names_acceptable(&["*.example.org".to_owned()], &names));
        assert!(!names_acceptable(&["*.example.com".to_owned()], &names));
        assert!(!names_acceptable(&["*.example.com".to_owned()], &[]));
    }
}

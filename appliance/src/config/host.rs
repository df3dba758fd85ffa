//! Facts about the machine the configuration is checked against: CPUs and files.
//! Kept apart so tests can check a configuration against a made-up machine.

use std::path::Path;

use super::types::parse_cpulist;

/// The CPUs of the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// CPUs that exist and are online (`/sys/devices/system/cpu/online`).
    pub online_cpus: Vec<usize>,
    /// CPUs this process may run on (`Cpus_allowed_list` in `/proc/self/status`); used by
    /// `cores = "auto"`.
    pub allowed_cpus: Vec<usize>,
    /// The addresses of the host's interfaces (`getifaddrs`); a media realm must bind to
    /// one of them. `None` when they cannot be read (the check is then left to the bind).
    pub addresses: Option<Vec<std::net::IpAddr>>,
}

/// The addresses of every interface of the host (`None` when they cannot be read).
fn interface_addresses() -> Option<Vec<std::net::IpAddr>> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    let mut out: Vec<std::net::IpAddr> = addrs
        .filter_map(|a| a.address)
        .filter_map(|s| {
            s.as_sockaddr_in()
                .map(|v4| std::net::IpAddr::V4(v4.ip()))
                .or_else(|| s.as_sockaddr_in6().map(|v6| std::net::IpAddr::V6(v6.ip())))
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    Some(out)
}

impl HostInfo {
    /// Reads the current machine. Falls back to `0..available_parallelism` when `/sys` or
    /// `/proc` are unreadable (containers, non-Linux).
    pub fn detect() -> Self {
        let fallback = || {
            let n = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
            (0..n).collect::<Vec<_>>()
        };
        let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|s| parse_cpulist(&s).ok())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(fallback);
        let allowed = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                    .and_then(|v| parse_cpulist(v).ok())
            })
            .map(|v| {
                v.into_iter()
                    .filter(|c| online.contains(c))
                    .collect::<Vec<_>>()
            })
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| online.clone());
        Self {
            online_cpus: online,
            allowed_cpus: allowed,
            addresses: interface_addresses(),
        }
    }

    /// A machine with CPUs `0..n`, all allowed.
    pub fn with_cpus(n: usize) -> Self {
        let cpus: Vec<usize> = (0..n.max(1)).collect();
        Self {
            online_cpus: cpus.clone(),
            allowed_cpus: cpus,
            addresses: None,
        }
    }
}

/// What a PEM file must contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemKind {
    /// At least one CERTIFICATE.
    Certificates,
    /// A private key (PKCS#8, PKCS#1 or SEC1).
    PrivateKey,
}

impl PemKind {
    /// Noun for messages.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Certificates => "certificate",
            Self::PrivateKey => "private key",
        }
    }
}

/// Checks that `path` is a readable PEM file holding what `kind` asks for.
pub fn check_pem(path: &Path, kind: PemKind) -> Result<(), String> {
    let data = std::fs::read(path)
        .map_err(|e| format!("cannot read {} file {}: {e}", kind.noun(), path.display()))?;
    let mut rd = data.as_slice();
    let ok = match kind {
        PemKind::Certificates => rustls_pemfile::certs(&mut rd)
            .filter_map(Result::ok)
            .next()
            .is_some(),
        PemKind::PrivateKey => matches!(rustls_pemfile::private_key(&mut rd), Ok(Some(_))),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{} holds no PEM {}", path.display(), kind.noun()))
    }
}

/// Checks that the private key at `key` is the key of the leaf certificate at `cert` and
/// that the pair is usable for TLS (the same loading as the SIP listeners and a reload).
pub fn check_key_matches(cert: &Path, key: &Path) -> Result<(), String> {
    let settings = portcullis_net::TlsServerSettings {
        cert_chain_pem: cert.to_owned(),
        key_pem: key.to_owned(),
        client_ca: None,
        expected_client_names: Vec::new(),
    };
    portcullis_net::tls::server_config(portcullis_net::Transport::Tls, &settings)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Checks that the leaf (first) certificate of the PEM chain at `path` is valid for `name`
/// (a DNS SAN that matches it, wildcards as RFC 6125 §6.4.3 allows:
/// [`portcullis_net::tls::leaf_valid_for`], the rule of the mTLS listeners' `client_names`). Teams Direct Routing
/// rejects an SBC whose certificate does not name its FQDN.
pub fn check_cert_names(path: &Path, name: &str) -> Result<(), String> {
    let data = std::fs::read(path)
        .map_err(|e| format!("cannot read certificate file {}: {e}", path.display()))?;
    let mut rd = data.as_slice();
    let leaf = rustls_pemfile::certs(&mut rd)
        .find_map(Result::ok)
        .ok_or_else(|| format!("{} holds no PEM certificate", path.display()))?;
    rustls::server::ParsedCertificate::try_from(&leaf).map_err(|e| {
        format!(
            "{}: the first certificate cannot be parsed: {e}",
            path.display()
        )
    })?;
    rustls::pki_types::ServerName::try_from(name)
        .map_err(|e| format!("{name:?} is not a valid server name: {e}"))?;
    // The same rule as the mTLS listeners' `client_names` check.
    if portcullis_net::tls::leaf_valid_for(&leaf, name) {
        Ok(())
    } else {
        Err(format!(
            "the certificate in {} is not valid for {name}",
            path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration check, the mTLS listeners' check and rustls' own server-name
    /// verifier give the same answer on every wildcard case.
    #[test]
    fn one_name_rule_for_config_mtls_and_rustls() {
        let dir = tempfile::tempdir().unwrap();
        let cases: &[(&[&str], &str, bool)] = &[
            (&["sbc.example.com"], "sbc.example.com", true),
            (&["sbc.example.com"], "SBC.Example.com", true),
            (&["sbc.example.com"], "sbc2.example.com", false),
            (&["*.example.com"], "sbc.example.com", true),
            (&["*.example.com"], "example.com", false),
            (&["*.example.com"], "a.sbc.example.com", false),
            (&["*.example.com"], "sbc.example.com.evil.org", false),
            (&["*.com"], "example.com", false),
            (&["s*.example.com"], "sbc.example.com", false),
            (
                &["a.example.com", "*.pstnhub.example.com"],
                "sip2.pstnhub.example.com",
                true,
            ),
        ];
        for (i, (sans, name, want)) in cases.iter().enumerate() {
            let names: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
            let cert = rcgen::generate_simple_self_signed(names.clone()).unwrap();
            let path = dir.path().join(format!("{i}.pem"));
            std::fs::write(&path, cert.cert.pem()).unwrap();
            let der = cert.cert.der().clone();
            let parsed = rustls::server::ParsedCertificate::try_from(&der).unwrap();
            let server_name = rustls::pki_types::ServerName::try_from(*name).unwrap();
            let rustls_says = rustls::client::verify_server_name(&parsed, &server_name).is_ok();
            assert_eq!(rustls_says, *want, "rustls: {sans:?} for {name}");
            assert_eq!(
                check_cert_names(&path, name).is_ok(),
                *want,
                "config: {sans:?} {name}"
            );
            assert_eq!(
                portcullis_net::tls::leaf_valid_for(&der, name),
                *want,
                "mTLS: {sans:?} for {name}"
            );
            // The engine classifies TLS trunks by the SAN names the driver read from a
            // verified certificate (it cannot link webpki: it is sans-IO); for a trunk
            // expecting a concrete name its answer is webpki's.
            assert_eq!(
                portcullis_engine::routing::any_tls_name_matches(&[(*name).to_owned()], &names),
                *want,
                "engine: {sans:?} for {name}"
            );
        }
    }
}

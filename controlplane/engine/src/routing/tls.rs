//! Certificate name matching for TLS trunks (RFC 6125 §6.4, as profiled for
//! SIP by RFC 5922 §7.2: DNS names from subjectAltName).

/// Whether a name presented by the peer's certificate (`presented`, a SAN
/// dNSName) satisfies a name the trunk expects (`expected`). Case-insensitive,
/// a trailing dot ignored. Either side may be a wildcard `*.domain` standing
/// for exactly one left-most label (RFC 6125 §6.4.3): `*.example.com`
/// matches `a.example.com` but neither `example.com` nor `a.b.example.com`.
/// Partial-label wildcards (`f*.example.com`) and wildcards over fewer than
/// two labels (`*.com`) never match.
#[must_use]
pub fn tls_name_matches(expected: &str, presented: &str) -> bool {
    let e = normalise(expected);
    let p = normalise(presented);
    if e.is_empty() || p.is_empty() {
        return false;
    }
    if e == p {
        return !e.contains('*') || valid_wildcard(&e);
    }
    wildcard_covers(&e, &p) || wildcard_covers(&p, &e)
}

/// Whether any presented name matches any expected name.
#[must_use]
pub fn any_tls_name_matches(expected: &[String], presented: &[String]) -> bool {
    expected
        .iter()
        .any(|e| presented.iter().any(|p| tls_name_matches(e, p)))
}

fn normalise(s: &str) -> String {
    s.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// `*.a.b` with at least two labels after the wildcard and no other `*`.
fn valid_wildcard(w: &str) -> bool {
    match w.strip_prefix("*.") {
        Some(domain) => {
            !domain.contains('*')
                && domain.split('.').count() >= 2
                && domain.split('.').all(|l| !l.is_empty())
        }
        None => false,
    }
}

/// Whether wildcard `w` covers concrete host `h` (one left-most label).
fn wildcard_covers(w: &str, h: &str) -> bool {
    if !valid_wildcard(w) || h.contains('*') {
        return false;
    }
    let domain = &w[1..]; // ".a.b"
    match h.strip_suffix(domain) {
        Some(label) => !label.is_empty() && !label.contains('.'),
        None => false,
    }
}

//! Semantic checks of `[trunk.register]` (registration toward a carrier).

use std::collections::HashMap;
use std::time::Duration;

use portcullis_sip::SipUri;

use super::checker::Checker;
use super::model::{RegisterConfig, TrunkConfig};
use super::raw::RawTrunk;
use super::types::HostPort;

/// Shortest expiry we ask for (registrars refuse shorter ones with `423`).
pub const MIN_REGISTER_EXPIRES: Duration = Duration::from_secs(10);

/// Longest expiry we ask for.
pub const MAX_REGISTER_EXPIRES: Duration = Duration::from_secs(86_400);

/// Characters of a Contact user part we write unescaped (RFC 3261 §25.1 unreserved,
/// plus `+` for E.164 users).
fn is_user_char(ch: char) -> bool {
    ch.is_ascii_alphanumeric() || "-_.!~*'()+".contains(ch)
}

/// `[trunk.register]` of trunk `i`: `Some(None)` without one, `None` on errors.
pub(super) fn register(
    i: usize,
    t: &RawTrunk,
    address: Option<&HostPort>,
    c: &mut Checker<'_>,
) -> Option<Option<RegisterConfig>> {
    let Some(r) = &t.register else {
        return Some(None);
    };
    let p = format!("trunk[{i}].register");
    let mut ok = true;
    let registrar = match &r.registrar {
        Some(s) => c.ok(&format!("{p}.registrar"), HostPort::parse(s)),
        None => address.cloned(),
    };
    let aor = c.ok(
        &format!("{p}.aor"),
        SipUri::parse(&r.aor)
            .map_err(|e| format!("{:?} is not a SIP URI: {e}", r.aor))
            .and_then(|u| {
                let user = u
                    .user_decoded()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .ok_or_else(|| format!("{:?} has no user part (sip:user@domain)", r.aor))?;
                Ok((user, u.host_raw.to_owned()))
            }),
    );
    let contact_user = match (&r.contact_user, &aor) {
        (Some(u), _) => Some(u.clone()),
        (None, Some((user, _))) => Some(user.clone()),
        (None, None) => None,
    };
    if let Some(u) = &contact_user {
        if u.is_empty() || !u.chars().all(is_user_char) {
            let key = if r.contact_user.is_some() {
                "contact_user"
            } else {
                "aor"
            };
            c.err(
                format!("{p}.{key}"),
                format!(
                    "contact user {u:?} must be non-empty and hold only letters, digits and -_.!~*'()+"
                ),
            );
            ok = false;
        }
    }
    let expires = c.duration(&format!("{p}.expires"), &r.expires, MIN_REGISTER_EXPIRES);
    if expires.is_some_and(|e| e > MAX_REGISTER_EXPIRES) {
        c.err(format!("{p}.expires"), "must be at most 1 day");
        ok = false;
    }
    let retry_min = c.duration(
        &format!("{p}.retry_min"),
        &r.retry_min,
        Duration::from_secs(1),
    );
    let retry_max = c.duration(
        &format!("{p}.retry_max"),
        &r.retry_max,
        Duration::from_secs(1),
    );
    if let (Some(a), Some(b)) = (retry_min, retry_max) {
        if b < a {
            c.err(
                format!("{p}.retry_max"),
                "must not be shorter than retry_min",
            );
            ok = false;
        }
    }
    ok.then_some(())?;
    let (_, domain) = aor?;
    Some(Some(RegisterConfig {
        registrar: registrar?,
        aor: r.aor.clone(),
        domain,
        contact_user: contact_user?,
        expires: expires?,
        retry_min: retry_min?,
        retry_max: retry_max?,
    }))
}

/// Two registrations with one Contact user could not be told apart.
pub(super) fn unique_contact_users(trunks: &[TrunkConfig], c: &mut Checker<'_>) -> bool {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut ok = true;
    for (i, t) in trunks.iter().enumerate() {
        let Some(r) = &t.register else { continue };
        if let Some(first) = seen.get(r.contact_user.as_str()) {
            c.err(
                format!("trunk[{i}].register"),
                format!(
                    "contact user {:?} is already registered by trunk[{first}]: calls to it could not be told apart (set contact_user)",
                    r.contact_user
                ),
            );
            ok = false;
        } else {
            seen.insert(&r.contact_user, i);
        }
    }
    ok
}

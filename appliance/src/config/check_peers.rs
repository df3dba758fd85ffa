//! Semantic checks of the peers: `[[trunk]]`, `[[route]]` and `[teams]`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use regex::{Regex, RegexBuilder};

use super::checker::Checker;
use super::diag::path_key;
use super::host::{check_cert_names, check_key_matches, PemKind};
use super::model::{
    Credentials, LearningConfig, NumberMatch, RouteConfig, Secret, SipConfig, TeamsConfig,
    TlsFiles, Translation, TrunkAddress, TrunkConfig, MIN_RELEARN_AFTER,
};
use super::raw::{EndpointLearning, RawConfig, RawTranslation, RawTrunk, Transport};
use super::types::{parse_cidr, Fqdn, Host, HostPort, TrunkName};

/// Compiled size limit of a route regex (bytes of the compiled program).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

pub(super) fn trunks(
    raw: &RawConfig,
    sip: Option<&SipConfig>,
    c: &mut Checker<'_>,
) -> Option<Vec<TrunkConfig>> {
    let mut out = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut ok = true;
    for (i, t) in raw.trunk.iter().enumerate() {
        if let Some(first) = seen.get(t.name.as_str()) {
            c.err(
                format!("trunk[{i}].name"),
                format!(
                    "duplicate trunk name {:?} (first defined at trunk[{first}])",
                    t.name
                ),
            );
            ok = false;
        } else {
            seen.insert(&t.name, i);
        }
        match trunk(i, t, sip, c) {
            Some(t) => out.push(t),
            None => ok = false,
        }
    }
    ok &= super::check_register::unique_contact_users(&out, c);
    ok.then_some(out)
}

fn trunk(
    i: usize,
    t: &RawTrunk,
    sip: Option<&SipConfig>,
    c: &mut Checker<'_>,
) -> Option<TrunkConfig> {
    let p = format!("trunk[{i}]");
    let mut ok = true;
    let name = c.ok(&format!("{p}.name"), TrunkName::parse(&t.name));
    if name.as_ref().is_some_and(TrunkName::is_teams) {
        c.err(
            format!("{p}.name"),
            "the name \"teams\" is reserved for the [teams] peer",
        );
        ok = false;
    }
    let address = super::check_targets::address(&p, t, c);
    if t.transport == Transport::Mtls
        && sip.is_some_and(|s| !s.listeners.iter().any(|l| l.tls.is_some()))
    {
        c.err(
            format!("{p}.transport"),
            "an mtls trunk presents our certificate: add a tls or mtls [[sip.listener]] with cert and key",
        );
        ok = false;
    }
    let mut acl = Vec::new();
    for (j, a) in t.acl.iter().enumerate() {
        match c.ok(&format!("{p}.acl[{j}]"), parse_cidr(a)) {
            Some(n) => acl.push(n),
            None => ok = false,
        }
    }
    if t.max_calls == Some(0) {
        c.err(
            format!("{p}.max_calls"),
            "must be at least 1 (leave it out for no limit)",
        );
        ok = false;
    }
    let options_interval = match &t.options_interval {
        Some(s) => {
            let d = c.duration(&format!("{p}.options_interval"), s, Duration::from_secs(1));
            ok &= d.is_some();
            d
        }
        None => None,
    };
    for (k, v) in [
        ("miss_threshold", t.miss_threshold),
        ("recovery_count", t.recovery_count),
    ] {
        if v == 0 {
            c.err(format!("{p}.{k}"), "must be at least 1");
            ok = false;
        }
    }
    let credentials = match &t.credentials {
        None => None,
        Some(cr) => {
            let cp = format!("{p}.credentials");
            for (k, v) in [
                ("username", Some(&cr.username)),
                ("password", Some(&cr.password)),
                ("realm", cr.realm.as_ref()),
            ] {
                if v.is_some_and(String::is_empty) {
                    c.err(format!("{cp}.{k}"), "must not be empty");
                    ok = false;
                }
            }
            if !cr.challenge_inbound && !cr.answer_upstream && t.register.is_none() {
                c.err(
                    cp.clone(),
                    "credentials unused: set challenge_inbound and/or answer_upstream (or add [trunk.register])",
                );
                ok = false;
            }
            Some(Credentials {
                username: cr.username.clone(),
                password: Secret::new(cr.password.clone()),
                realm: cr.realm.clone(),
                challenge_inbound: cr.challenge_inbound,
                answer_upstream: cr.answer_upstream,
            })
        }
    };
    let learning = learning(&p, t.endpoint_learning, t.relearn_after.as_deref(), c);
    ok &= learning.is_some();
    let default_registrar = address.as_ref().and_then(TrunkAddress::registrar_default);
    let register = super::check_register::register(i, t, default_registrar.as_ref(), c);
    ok &= register.is_some();
    let policy = super::check_policy::trunk_policy(&p, t, c);
    ok &= policy.is_some();
    ok.then_some(())?;
    Some(TrunkConfig {
        policy: policy?,
        name: name?,
        address: address?,
        strategy: t.strategy,
        transport: t.transport,
        media: t.media,
        acl,
        max_calls: t.max_calls,
        options_interval,
        miss_threshold: t.miss_threshold,
        recovery_count: t.recovery_count,
        credentials,
        learning: learning?,
        register: register?,
        // Set from the names by `super::check_realms::apply`.
        realm: 0,
        listener: None,
    })
}

/// `endpoint_learning` and `relearn_after` of the peer at `p` (`trunk[i]`, `teams`).
fn learning(
    p: &str,
    endpoint_learning: EndpointLearning,
    relearn_after: Option<&str>,
    c: &mut Checker<'_>,
) -> Option<LearningConfig> {
    let relearn_after = match relearn_after {
        None => None,
        Some(s) => {
            let path = format!("{p}.relearn_after");
            let d = c.duration(&path, s, MIN_RELEARN_AFTER)?;
            if matches!(
                endpoint_learning,
                EndpointLearning::Strict | EndpointLearning::Off
            ) {
                c.err(
                    path,
                    format!(
                        "NAT rebinding needs a learning endpoint_learning (heuristic or \
                         delayed), not {endpoint_learning:?}"
                    ),
                );
                return None;
            }
            Some(d)
        }
    };
    Some(LearningConfig {
        endpoint_learning,
        relearn_after,
    })
}

/// Resolves a trunk reference of a route: a defined trunk, or `teams` when `[teams]` exists.
fn trunk_ref(raw: &RawConfig, path: &str, name: &str, c: &mut Checker<'_>) -> Option<TrunkName> {
    let n = c.ok(path, TrunkName::parse(name))?;
    if n.is_teams() {
        if raw.teams.is_none() {
            c.err(
                path,
                "\"teams\" names the [teams] peer, but there is no [teams] section",
            );
            return None;
        }
    } else if !raw.trunk.iter().any(|t| t.name == name) {
        let known: Vec<&str> = raw.trunk.iter().map(|t| t.name.as_str()).collect();
        c.err(
            path,
            format!("unknown trunk {name:?} (defined: {})", known.join(", ")),
        );
        return None;
    }
    Some(n)
}

fn is_number_text(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'*' | b'#'))
}

fn regex(c: &mut Checker<'_>, path: &str, pattern: &str) -> Option<Regex> {
    let r = RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build();
    c.ok(path, r.map_err(|e| format!("invalid regex: {e}")))
}

/// Checks that every group a replacement string names exists (`$1`, `${1}`, `$name`,
/// `${name}`; `$$` is a literal dollar), as the regex crate silently expands unknown groups
/// to nothing.
fn check_replacement(re: &Regex, replace: &str) -> Result<(), String> {
    let names: Vec<&str> = re.capture_names().flatten().collect();
    let mut rest = replace;
    while let Some(pos) = rest.find('$') {
        let after = rest.get(pos + 1..).unwrap_or("");
        if let Some(a) = after.strip_prefix('$') {
            rest = a;
            continue;
        }
        let (group, tail) = if let Some(b) = after.strip_prefix('{') {
            let end = b
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {replace:?}"))?;
            (b.get(..end).unwrap_or(""), b.get(end + 1..).unwrap_or(""))
        } else {
            let end = after
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .unwrap_or(after.len());
            (
                after.get(..end).unwrap_or(""),
                after.get(end..).unwrap_or(""),
            )
        };
        let known = match group.parse::<usize>() {
            Ok(n) => n < re.captures_len(),
            Err(_) => names.contains(&group),
        };
        if group.is_empty() || !known {
            return Err(format!(
                "replacement refers to group ${group}, which the regex does not have"
            ));
        }
        rest = tail;
    }
    Ok(())
}

fn translations(
    c: &mut Checker<'_>,
    path: &str,
    rules: &[RawTranslation],
) -> Option<Vec<Translation>> {
    let mut out = Vec::new();
    let mut ok = true;
    for (i, r) in rules.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let rule = match (&r.strip_prefix, &r.add_prefix, &r.regex, &r.replace) {
            (Some(s), None, None, None) if is_number_text(s) && !s.is_empty() => {
                Some(Translation::StripPrefix(s.clone()))
            }
            (None, Some(s), None, None) if is_number_text(s) && !s.is_empty() => {
                Some(Translation::AddPrefix(s.clone()))
            }
            (Some(s), None, None, None) | (None, Some(s), None, None) => {
                let k = if r.strip_prefix.is_some() {
                    "strip_prefix"
                } else {
                    "add_prefix"
                };
                c.err(
                    format!("{p}.{k}"),
                    format!("{s:?} must be non-empty and hold only digits, '+', '*' and '#'"),
                );
                None
            }
            (None, None, Some(re), Some(rep)) => {
                let rx = regex(c, &format!("{p}.regex"), re);
                match rx {
                    Some(rx) => match check_replacement(&rx, rep) {
                        Ok(()) => Some(Translation::Replace {
                            regex: rx,
                            replace: rep.clone(),
                        }),
                        Err(e) => {
                            c.err(format!("{p}.replace"), e);
                            None
                        }
                    },
                    None => None,
                }
            }
            _ => {
                c.err(
                    p.clone(),
                    "a rule holds exactly one of: strip_prefix, add_prefix, or regex with replace",
                );
                None
            }
        };
        match rule {
            Some(r) => out.push(r),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// A number condition from a `(prefix key, value)` and a `(regex key, value)`
/// of route `p`: at most one of them.
fn number_match(
    c: &mut Checker<'_>,
    p: &str,
    (pk, prefix): (&str, Option<&String>),
    (rk, re): (&str, Option<&String>),
) -> Option<NumberMatch> {
    match (prefix, re) {
        (Some(_), Some(_)) => {
            c.err(format!("{p}.{rk}"), format!("set {pk} or {rk}, not both"));
            None
        }
        (Some(pre), None) if is_number_text(pre) => Some(NumberMatch::Prefix(pre.clone())),
        (Some(pre), None) => {
            c.err(
                format!("{p}.{pk}"),
                format!("{pre:?} may only hold digits, '+', '*' and '#'"),
            );
            None
        }
        (None, Some(re)) => regex(c, &format!("{p}.{rk}"), re).map(NumberMatch::Regex),
        (None, None) => Some(NumberMatch::Any),
    }
}

pub(super) fn routes(raw: &RawConfig, c: &mut Checker<'_>) -> Option<Vec<RouteConfig>> {
    let mut out = Vec::new();
    let mut ok = true;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, r) in raw.route.iter().enumerate() {
        let p = format!("route[{i}]");
        let mut good = true;
        if r.name.is_empty() {
            c.err(format!("{p}.name"), "must not be empty");
            good = false;
        } else if let Some(first) = seen.get(r.name.as_str()) {
            c.err(
                format!("{p}.name"),
                format!(
                    "duplicate route name {:?} (first defined at route[{first}])",
                    r.name
                ),
            );
            good = false;
        } else {
            seen.insert(&r.name, i);
        }
        let refs = |key: &str, names: &[String], c: &mut Checker<'_>| {
            if names.is_empty() {
                c.err(format!("{p}.{key}"), "must name at least one trunk");
                return None;
            }
            let v: Vec<Option<TrunkName>> = names
                .iter()
                .enumerate()
                .map(|(j, n)| trunk_ref(raw, &format!("{p}.{key}[{j}]"), n, c))
                .collect();
            v.into_iter().collect::<Option<Vec<_>>>()
        };
        let from = refs("from", &r.from, c);
        let targets = refs("targets", &r.targets, c);
        let called = number_match(
            c,
            &p,
            ("called_prefix", r.called_prefix.as_ref()),
            ("called_regex", r.called_regex.as_ref()),
        );
        let calling = number_match(
            c,
            &p,
            ("calling_prefix", r.calling_prefix.as_ref()),
            ("calling_regex", r.calling_regex.as_ref()),
        );
        let tc = translations(c, &format!("{p}.translate_called"), &r.translate_called);
        let tg = translations(c, &format!("{p}.translate_calling"), &r.translate_calling);
        match (good, from, targets, (called, calling), tc, tg) {
            (
                true,
                Some(from),
                Some(targets),
                (Some(called), Some(calling)),
                Some(translate_called),
                Some(translate_calling),
            ) => {
                out.push(RouteConfig {
                    name: r.name.clone(),
                    from,
                    called,
                    calling,
                    translate_called,
                    translate_calling,
                    targets,
                    redirect: r.redirect,
                });
            }
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// `Ok(None)` when there is no `[teams]`; `None` when it has errors.
pub(super) fn teams(
    raw: &RawConfig,
    sip: Option<&SipConfig>,
    c: &mut Checker<'_>,
) -> Option<Option<TeamsConfig>> {
    let Some(t) = &raw.teams else {
        return Some(None);
    };
    let mut ok = true;
    let sbc_fqdn = match &t.sbc_fqdn {
        Some(f) => c.fqdn("teams.sbc_fqdn", f, 2),
        None => {
            c.err(
                "teams.sbc_fqdn",
                "missing: Direct Routing needs the SBC FQDN paired in the tenant",
            );
            None
        }
    };
    let why = "Direct Routing needs the SBC certificate chain (mTLS toward Microsoft)";
    let cert = c.pem(
        "teams.cert_chain",
        t.cert_chain.as_deref(),
        PemKind::Certificates,
        why,
    );
    let key = c.pem(
        "teams.key",
        t.key.as_deref(),
        PemKind::PrivateKey,
        "the private key of cert_chain",
    );
    if let (Some(chain), Some(k), true) = (&cert, &key, c.opts.check_files) {
        if c.ok("teams.key", check_key_matches(chain, k)).is_none() {
            ok = false;
        }
    }
    if let (Some(name), Some(chain), true) = (&sbc_fqdn, &cert, c.opts.check_files) {
        let r = check_cert_names(chain, name.as_str());
        if c.ok("teams.cert_chain", r).is_none() {
            ok = false;
        }
    }
    let why = "the roots the Microsoft proxies' certificates chain to";
    let roots = c.pem(
        "teams.trusted_roots",
        t.trusted_roots.as_deref(),
        PemKind::Certificates,
        why,
    );
    if t.proxies.is_empty() {
        c.err("teams.proxies", "must list at least one proxy");
        ok = false;
    }
    let mut proxies = Vec::new();
    for (i, p) in t.proxies.iter().enumerate() {
        match c.ok(&format!("teams.proxies[{i}]"), HostPort::parse(p)) {
            Some(hp) => proxies.push(hp),
            None => ok = false,
        }
    }
    let interval = c.duration(
        "teams.options_interval",
        &t.options_interval,
        Duration::from_secs(1),
    );
    if t.miss_threshold == 0 {
        c.err("teams.miss_threshold", "must be at least 1");
        ok = false;
    }
    let mut resolve = BTreeMap::new();
    for (name, addr) in &t.resolve {
        let p = format!("teams.resolve.{}", path_key(name));
        let n = c.ok(&p, Fqdn::parse(name));
        let a = c.sockaddr(&p, addr);
        if let Some(n) = &n {
            let is_proxy = proxies
                .iter()
                .any(|hp| matches!(&hp.host, Host::Name(h) if h == n));
            if !is_proxy && proxies.len() == t.proxies.len() {
                c.err(
                    &p,
                    format!("{n} is not the host of any teams.proxies entry"),
                );
                ok = false;
            }
        }
        match (n, a) {
            (Some(n), Some(a)) => {
                resolve.insert(n, a);
            }
            _ => ok = false,
        }
    }
    if sip.is_some_and(|s| !s.listeners.iter().any(|l| l.tls.is_some())) {
        c.err(
            "teams",
            "Microsoft connects over TLS: add a tls or mtls [[sip.listener]]",
        );
        ok = false;
    }
    let learning = learning("teams", t.endpoint_learning, t.relearn_after.as_deref(), c);
    ok &= learning.is_some();
    ok.then_some(())?;
    Some(Some(TeamsConfig {
        sbc_fqdn: sbc_fqdn?,
        tls: TlsFiles {
            cert: cert?,
            key: key?,
        },
        trusted_roots: roots?,
        proxies,
        options_interval: interval?,
        miss_threshold: t.miss_threshold,
        media_bypass: t.media_bypass,
        resolve,
        learning: learning?,
        // Set from the names by `super::check_realms::apply`.
        realm: 0,
        listener: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacement_groups() {
        let re = Regex::new(r"^0(?P<rest>\d+)$").unwrap();
        assert!(check_replacement(&re, "+33$1").is_ok());
        assert!(check_replacement(&re, "+33${rest}").is_ok());
        assert!(check_replacement(&re, "$$5").is_ok());
        assert!(check_replacement(&re, "+33$2").is_err());
        assert!(check_replacement(&re, "${nope}").is_err());
        assert!(check_replacement(&re, "${1").is_err());
    }
}

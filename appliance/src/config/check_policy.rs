//! Semantic checks of a trunk's policy keys: RFC 3325 trust, codec lists and
//! header rules, compiled into the engine's [`TrunkPolicy`] (regexes and value
//! templates parsed once, here, with line and column on error).

use portcullis_engine::trunk_policy::{
    CodecName, CodecPolicy, DtmfMode, HeaderAction, HeaderRule, RuleDirection, RuleError,
    TelephoneEvent, Template, TrunkPolicy,
};

use super::checker::Checker;
use super::raw::RawTrunk;
use super::raw_policy::{RawDtmf, RawHeaderAction, RawRuleDirection, RawTelephoneEvent};

/// Most header rules on one trunk.
pub const MAX_HEADER_RULES: usize = 64;

/// The policy of trunk `t` at path `p` (`trunk[i]`); `None` after an error.
pub(super) fn trunk_policy(p: &str, t: &RawTrunk, c: &mut Checker<'_>) -> Option<TrunkPolicy> {
    let mut ok = true;
    let mut names = |key: &str, list: &[String], c: &mut Checker<'_>| {
        let mut out = Vec::new();
        for (j, n) in list.iter().enumerate() {
            match c.ok(&format!("{p}.{key}[{j}]"), CodecName::parse(n)) {
                Some(n) => out.push(n),
                None => ok = false,
            }
        }
        out
    };
    let allow = names("codecs", &t.codecs, c);
    let deny = names("codecs_deny", &t.codecs_deny, c);
    if !allow.is_empty()
        && allow
            .iter()
            .all(|a| deny.iter().any(|d| d.covers(a)) || a.is_telephone_event())
    {
        c.err(
            format!("{p}.codecs"),
            "every codec listed is denied (or telephone-event): no call could use this trunk",
        );
        ok = false;
    }
    if t.headers.len() > MAX_HEADER_RULES {
        c.err(
            format!("{p}.headers"),
            format!("at most {MAX_HEADER_RULES} header rules per trunk"),
        );
        ok = false;
    }
    let mut headers = Vec::new();
    for (j, r) in t.headers.iter().enumerate() {
        let rp = format!("{p}.headers[{j}]");
        let action = match r.action {
            RawHeaderAction::Keep => HeaderAction::Keep,
            RawHeaderAction::Drop => HeaderAction::Drop,
            RawHeaderAction::Add => HeaderAction::Add,
            RawHeaderAction::Rewrite => HeaderAction::Rewrite,
        };
        let direction = match r.direction {
            RawRuleDirection::Inbound => RuleDirection::Inbound,
            RawRuleDirection::Outbound => RuleDirection::Outbound,
            RawRuleDirection::Both => RuleDirection::Both,
        };
        if let Some(Err(e)) = r.value.as_deref().map(Template::parse) {
            // Pointed at the character: the value's position plus the offset (plain strings).
            c.err_in_value(&format!("{rp}.value"), e.offset, e.to_string());
            ok = false;
            continue;
        }
        match HeaderRule::new(
            action,
            &r.name,
            direction,
            r.value.as_deref(),
            r.pattern.as_deref(),
        ) {
            Ok(rule) => headers.push(rule),
            Err(e) => {
                let key = match &e {
                    RuleError::Name(_) => "name",
                    RuleError::Value(_) if r.value.is_some() => "value",
                    RuleError::Match(_) if r.pattern.is_some() => "match",
                    _ => "action",
                };
                c.err(format!("{rp}.{key}"), e.to_string());
                ok = false;
            }
        }
    }
    ok.then(|| TrunkPolicy {
        trusted: t.trusted,
        headers,
        codecs: CodecPolicy {
            allow,
            deny,
            telephone_event: match t.telephone_event {
                RawTelephoneEvent::Keep => TelephoneEvent::Keep,
                RawTelephoneEvent::Add => TelephoneEvent::Add,
            },
        },
        dtmf: match t.dtmf {
            RawDtmf::Passthrough => DtmfMode::Passthrough,
            RawDtmf::Rfc4733 => DtmfMode::Rfc4733,
            RawDtmf::Info => DtmfMode::Info,
            RawDtmf::Both => DtmfMode::Both,
        },
    })
}

//! Header rules of a trunk: keep, drop, add and rewrite headers by name on
//! what crosses the B2BUA, inbound (messages received from the trunk) and
//! outbound (messages sent to it).
//!
//! A message relayed from one leg to the other is built per leg (topology
//! hiding, see `b2bua::headers`); then the inbound rules of the trunk it came
//! from, and the outbound rules of the trunk it goes to, apply in the order
//! written:
//! - `keep`: the headers of that name in the received message are copied
//!   (those the default set copies already are not copied twice);
//! - `drop`: the headers of that name are removed;
//! - `rewrite`: each header of that name whose value matches `match` (the
//!   whole value when no `match`) gets the template's value, `${1}`..`${9}`
//!   the groups of the match;
//! - `add`: one header with the template's value is appended.
//!
//! A name is a header name (case-insensitive) or a prefix ending in `*`
//! (`X-*`). Headers the B2BUA builds per leg ([`PROTECTED`]) cannot be named:
//! the configuration refuses them.

use regex::Regex;

use super::template::{Template, Vars};
use crate::transaction::SipMsg;

/// Headers no rule may name: they are built per leg (RFC 3261 dialog and
/// transaction state, topology hiding, message framing, authentication).
pub const PROTECTED: &[&str] = &[
    "Via",
    "Route",
    "Record-Route",
    "Contact",
    "Call-ID",
    "From",
    "To",
    "CSeq",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
    "Authorization",
    "Proxy-Authorization",
    "WWW-Authenticate",
    "Proxy-Authenticate",
    "RSeq",
    "RAck",
    "Session-Expires",
    "Min-SE",
    "Refer-To",
    "Replaces",
    "Event",
    "Subscription-State",
];

/// Compact forms of the protected headers (RFC 3261 §7.3.3, RFC 3515, RFC 4028).
const PROTECTED_COMPACT: &[&str] = &["v", "f", "t", "i", "m", "l", "c", "r", "x", "o"];

/// What a rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderAction {
    /// Copy from the received message.
    Keep,
    /// Remove.
    Drop,
    /// Append one with the value.
    Add,
    /// Replace the value of those that match.
    Rewrite,
}

/// Which messages of the trunk a rule applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RuleDirection {
    /// Messages received from the trunk.
    Inbound,
    /// Messages sent to the trunk.
    Outbound,
    /// Both.
    #[default]
    Both,
}

/// A header name or a prefix (`X-*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderPattern {
    text: String,
    prefix: bool,
}

impl HeaderPattern {
    /// Parses a header name (RFC 3261 token) or a prefix ending in `*`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (text, prefix) = match s.strip_suffix('*') {
            Some(p) => (p, true),
            None => (s, false),
        };
        let token = text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%+_`'~".contains(&b));
        if text.is_empty() || !token {
            return Err(format!(
                "{s:?} is not a header name (letters, digits, '-', ...) or a prefix like \"X-*\""
            ));
        }
        let hit = |p: &str| {
            if prefix {
                p.len() >= text.len() && p[..text.len()].eq_ignore_ascii_case(text)
            } else {
                p.eq_ignore_ascii_case(text)
            }
        };
        if let Some(p) = PROTECTED.iter().chain(PROTECTED_COMPACT).find(|p| hit(p)) {
            return Err(format!(
                "{s:?} names {p}, which the SBC builds for each leg: no rule may touch it"
            ));
        }
        Ok(Self {
            text: text.to_owned(),
            prefix,
        })
    }

    /// Whether header `name` matches.
    #[must_use]
    pub fn matches(&self, name: &str) -> bool {
        if self.prefix {
            name.get(..self.text.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(&self.text))
        } else {
            name.eq_ignore_ascii_case(&self.text)
        }
    }

    /// Whether this is one name (no `*`), usable for `add`.
    #[must_use]
    pub fn is_name(&self) -> bool {
        !self.prefix
    }

    /// The name (or prefix) without `*`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// One header rule (see the module docs). Build with [`HeaderRule::new`].
#[derive(Clone, Debug)]
pub struct HeaderRule {
    pub action: HeaderAction,
    pub name: HeaderPattern,
    pub direction: RuleDirection,
    /// The value (`add`, `rewrite`).
    pub value: Option<Template>,
    /// What a `rewrite` applies to (the whole value must match, `^(?:re)$`).
    pub pattern: Option<Regex>,
}

impl PartialEq for HeaderRule {
    fn eq(&self, o: &Self) -> bool {
        self.action == o.action
            && self.name == o.name
            && self.direction == o.direction
            && self.value == o.value
            && self.pattern.as_ref().map(Regex::as_str) == o.pattern.as_ref().map(Regex::as_str)
    }
}

impl Eq for HeaderRule {}

/// Size limit of a rule's compiled regex.
pub const RULE_REGEX_SIZE_LIMIT: usize = 1 << 20;

impl HeaderRule {
    /// A checked rule: `add` needs a value and one name; `rewrite` a value;
    /// `keep` and `drop` take neither value nor match; `match` only with
    /// `rewrite`, and every group the value names must exist in it.
    /// The error says what is wrong, for the configuration's diagnostics.
    pub fn new(
        action: HeaderAction,
        name: &str,
        direction: RuleDirection,
        value: Option<&str>,
        pattern: Option<&str>,
    ) -> Result<Self, RuleError> {
        let name = HeaderPattern::parse(name).map_err(RuleError::Name)?;
        let value = value
            .map(Template::parse)
            .transpose()
            .map_err(|e| RuleError::Value(e.to_string()))?;
        let pattern = pattern
            .map(|p| {
                regex::RegexBuilder::new(&format!("^(?:{p})$"))
                    .size_limit(RULE_REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| RuleError::Match(format!("invalid regex: {e}")))
            })
            .transpose()?;
        match action {
            HeaderAction::Keep | HeaderAction::Drop => {
                if value.is_some() {
                    return Err(RuleError::Value("keep and drop take no value".into()));
                }
                if pattern.is_some() {
                    return Err(RuleError::Match("only rewrite takes a match".into()));
                }
            }
            HeaderAction::Add => {
                if value.is_none() {
                    return Err(RuleError::Value("add needs a value".into()));
                }
                if !name.is_name() {
                    return Err(RuleError::Name(
                        "add needs one header name, not a prefix".into(),
                    ));
                }
                if pattern.is_some() {
                    return Err(RuleError::Match("only rewrite takes a match".into()));
                }
            }
            HeaderAction::Rewrite => {
                if value.is_none() {
                    return Err(RuleError::Value("rewrite needs a value".into()));
                }
            }
        }
        if let Some(v) = &value {
            let groups = pattern.as_ref().map_or(0, |p| p.captures_len() - 1);
            if v.max_group() > groups {
                return Err(RuleError::Value(format!(
                    "the value names ${{{}}}, but the match has {groups} group(s)",
                    v.max_group()
                )));
            }
        }
        Ok(Self {
            action,
            name,
            direction,
            value,
            pattern,
        })
    }

    fn applies(&self, inbound: bool) -> bool {
        match self.direction {
            RuleDirection::Both => true,
            RuleDirection::Inbound => inbound,
            RuleDirection::Outbound => !inbound,
        }
    }
}

/// What is wrong with a rule, by field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("{0}")]
    Name(String),
    #[error("{0}")]
    Value(String),
    #[error("{0}")]
    Match(String),
}

/// Applies `rules` (of one trunk, `inbound`: to a message received from it,
/// else sent to it) to `out`, built from the received message `src`.
/// Returns the number of rules that changed `out`.
pub fn apply(
    rules: &[HeaderRule],
    inbound: bool,
    src: &SipMsg,
    out: &mut SipMsg,
    vars: &Vars<'_>,
) -> usize {
    let mut changed = 0;
    for r in rules.iter().filter(|r| r.applies(inbound)) {
        match r.action {
            HeaderAction::Keep => {
                let present: Vec<String> = out
                    .headers()
                    .filter(|(n, _)| r.name.matches(n))
                    .map(|(n, _)| n.to_ascii_lowercase())
                    .collect();
                let copy: Vec<(String, String)> = src
                    .headers()
                    .filter(|(n, _)| r.name.matches(n))
                    .filter(|(n, _)| !present.contains(&n.to_ascii_lowercase()))
                    .map(|(n, v)| (n.to_owned(), super::template::header_safe(v)))
                    .collect();
                for (n, v) in &copy {
                    out.push_header(n, v);
                }
                changed += usize::from(!copy.is_empty());
            }
            HeaderAction::Drop => {
                let names: Vec<String> = out
                    .headers()
                    .filter(|(n, _)| r.name.matches(n))
                    .map(|(n, _)| n.to_owned())
                    .collect();
                for n in &names {
                    out.remove_header(n);
                }
                changed += usize::from(!names.is_empty());
            }
            HeaderAction::Add => {
                if let Some(t) = &r.value {
                    out.push_header(r.name.as_str(), t.render(vars, &[]));
                    changed += 1;
                }
            }
            HeaderAction::Rewrite => {
                changed += usize::from(rewrite(r, out, vars));
            }
        }
    }
    changed
}

/// Rewrites the headers `r` names in `out`, keeping their order.
fn rewrite(r: &HeaderRule, out: &mut SipMsg, vars: &Vars<'_>) -> bool {
    let Some(t) = &r.value else {
        return false;
    };
    let all: Vec<(String, String)> = out
        .headers()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    if !all.iter().any(|(n, _)| r.name.matches(n)) {
        return false;
    }
    let mut changed = false;
    let mut renamed: Vec<(String, String)> = Vec::with_capacity(all.len());
    for (n, v) in all {
        if !r.name.matches(&n) {
            renamed.push((n, v));
            continue;
        }
        let new = match &r.pattern {
            None => Some(t.render(vars, &[])),
            Some(p) => p.captures(v.trim()).map(|caps| {
                let groups: Vec<Option<&str>> = (0..caps.len())
                    .map(|i| caps.get(i).map(|m| m.as_str()))
                    .collect();
                t.render(vars, &groups)
            }),
        };
        match new {
            Some(new) => {
                changed = true;
                renamed.push((n, new));
            }
            None => renamed.push((n, v)),
        }
    }
    if changed {
        let names: Vec<String> = renamed
            .iter()
            .filter(|(n, _)| r.name.matches(n))
            .map(|(n, _)| n.clone())
            .collect();
        // Remove every matching header, then put them back in place order at the end of
        // their group: the relative order of the rewritten headers is kept.
        for n in &names {
            out.remove_header(n);
        }
        for (n, v) in renamed.iter().filter(|(n, _)| r.name.matches(n)) {
            out.push_header(n, v);
        }
    }
    changed
}

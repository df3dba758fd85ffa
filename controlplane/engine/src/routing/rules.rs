//! Route rules compiled: number conditions and number translation steps, built from
//! the configured forms ([`crate::config::RouteRule`] and the types it holds).
//!
//! Invariants: regexes are compiled once, when the [`super::Router`] is built;
//! a [`NumberMatch::Regex`] is anchored (it must match the whole number);
//! translation never panics and never produces anything but a `String`
//! (rules that do not apply leave the number unchanged).

use regex::Regex;

use crate::config::{NumberMatch, TranslationRule};

use super::RoutingError;

/// A compiled [`NumberMatch`].
#[derive(Clone, Debug)]
pub(crate) enum Matcher {
    Any,
    Prefix(String),
    Regex(Regex),
}

impl Matcher {
    pub(crate) fn compile(route: &str, m: &NumberMatch) -> Result<Self, RoutingError> {
        Ok(match m {
            NumberMatch::Any => Self::Any,
            NumberMatch::Prefix(p) if p.is_empty() => Self::Any,
            NumberMatch::Prefix(p) => Self::Prefix(p.clone()),
            NumberMatch::Regex(r) => Self::Regex(compile(route, &format!("^(?:{r})$"))?),
        })
    }

    pub(crate) fn matches(&self, number: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Prefix(p) => number.starts_with(p.as_str()),
            Self::Regex(r) => r.is_match(number),
        }
    }
}

fn compile(route: &str, pattern: &str) -> Result<Regex, RoutingError> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| RoutingError::BadRegex {
            route: route.to_owned(),
            error: e.to_string(),
        })
}

/// A compiled [`TranslationRule`].
#[derive(Clone, Debug)]
pub(crate) enum Step {
    StripDigits(usize),
    StripPrefix(String),
    AddPrefix(String),
    Replace(Regex, String),
    E164 {
        cc: String,
        trunk: String,
        intl: String,
    },
}

impl Step {
    pub(crate) fn compile(route: &str, t: &TranslationRule) -> Result<Self, RoutingError> {
        Ok(match t {
            TranslationRule::StripDigits(n) => Self::StripDigits(*n),
            TranslationRule::StripPrefix(p) => Self::StripPrefix(p.clone()),
            TranslationRule::AddPrefix(p) => Self::AddPrefix(p.clone()),
            TranslationRule::Replace {
                pattern,
                replacement,
            } => Self::Replace(compile(route, pattern)?, replacement.clone()),
            TranslationRule::E164 {
                country_code,
                trunk_prefix,
                international_prefix,
            } => {
                if country_code.is_empty() || !country_code.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(RoutingError::BadCountryCode {
                        route: route.to_owned(),
                        code: country_code.clone(),
                    });
                }
                Self::E164 {
                    cc: country_code.clone(),
                    trunk: trunk_prefix.clone(),
                    intl: international_prefix.clone(),
                }
            }
        })
    }

    fn apply(&self, n: String) -> String {
        match self {
            Self::StripDigits(k) => match n.char_indices().nth(*k) {
                Some((i, _)) => n[i..].to_owned(),
                None => String::new(),
            },
            Self::StripPrefix(p) => match n.strip_prefix(p.as_str()) {
                Some(rest) => rest.to_owned(),
                None => n,
            },
            Self::AddPrefix(p) => format!("{p}{n}"),
            Self::Replace(re, rep) => re.replace(&n, rep.as_str()).into_owned(),
            Self::E164 { cc, trunk, intl } => to_e164(&n, cc, trunk, intl).unwrap_or(n),
        }
    }
}

/// Applies compiled steps in order.
pub(crate) fn translate(steps: &[Step], number: &str) -> String {
    steps
        .iter()
        .fold(number.to_owned(), |n, step| step.apply(n))
}

/// Visual separators allowed in phone numbers (RFC 3966 §5.1.1).
fn is_visual_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '.' | '(' | ')')
}

/// Normalises a dialled number to E.164 `+CC...` (ITU-T E.164, RFC 3966
/// global numbers): visual separators are dropped; `+...` is kept;
/// `international_prefix...` becomes `+...`; `trunk_prefix...` (national
/// format) becomes `+CC...`; any other digit string is taken as a national
/// number without trunk prefix and becomes `+CC...`.
///
/// `None` when the result would not be E.164: non-digits (`*`, `#`,
/// letters), or not 1..=15 digits after the `+`.
#[must_use]
pub fn to_e164(
    number: &str,
    country_code: &str,
    trunk_prefix: &str,
    international_prefix: &str,
) -> Option<String> {
    let cleaned: String = number
        .chars()
        .filter(|c| !is_visual_separator(*c))
        .collect();
    let digits = if let Some(rest) = cleaned.strip_prefix('+') {
        rest.to_owned()
    } else if let Some(rest) = (!international_prefix.is_empty())
        .then(|| cleaned.strip_prefix(international_prefix))
        .flatten()
    {
        rest.to_owned()
    } else if let Some(rest) = (!trunk_prefix.is_empty())
        .then(|| cleaned.strip_prefix(trunk_prefix))
        .flatten()
    {
        format!("{country_code}{rest}")
    } else {
        format!("{country_code}{cleaned}")
    };
    let ok = (1..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    ok.then(|| format!("+{digits}"))
}

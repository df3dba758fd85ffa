//! Header parameters: `*( SEMI generic-param )` (RFC 3261 §25.1), kept as the raw
//! slice and looked up lazily without allocation.

use crate::grammar::{fail, is_token_byte, quoted_string, skip_lws};
use nom::IResult;

/// One parameter. `value` is `None` for a flag (`;lr`); quoted values are given
/// without their quotes (escapes kept, see [`crate::grammar::unquote`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    /// Parameter name as written.
    pub name: &'a str,
    /// Value, if any.
    pub value: Option<&'a str>,
    /// Whether the value was a quoted-string.
    pub quoted: bool,
}

/// The parameters of a header element, as written (starting at the first `;`).
///
/// Invariant: `raw` was accepted by `params`, so iteration cannot fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a> {
    raw: &'a str,
}

impl<'a> Params<'a> {
    /// The raw text (`;a=b;c`), possibly with LWS.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Iterates over the parameters in order.
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter { rest: self.raw }
    }

    /// Looks a parameter up by case-insensitive name: `Some(None)` for a flag.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value)
    }

    /// The value of a parameter that has one.
    pub fn value(&self, name: &str) -> Option<&'a str> {
        self.get(name).flatten()
    }

    /// Whether a parameter is present (with or without value).
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Iterator over [`Params`].
#[derive(Debug, Clone)]
pub struct ParamIter<'a> {
    rest: &'a str,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = Param<'a>;
    fn next(&mut self) -> Option<Param<'a>> {
        let (rest, p) = semi_param(self.rest).ok()?;
        self.rest = rest;
        Some(p)
    }
}

/// `gen-value = token / host / quoted-string`; host covers IPv6 references.
fn gen_value(i: &str) -> IResult<&str, (&str, bool)> {
    if i.starts_with('"') {
        let (r, v) = quoted_string(i)?;
        return Ok((r, (v, true)));
    }
    let b = i.as_bytes();
    let end = if b.first() == Some(&b'[') {
        let close = memchr::memchr(b']', b).ok_or_else(|| fail(i))?;
        let inner = b.get(1..close).unwrap_or_default();
        if !inner
            .iter()
            .all(|c| c.is_ascii_hexdigit() || *c == b':' || *c == b'.')
        {
            return Err(fail(i));
        }
        close + 1
    } else {
        // Token, or an unbracketed IPv6 address (`via-received`, RFC 3261 §25.1).
        let mut k = 0;
        while b.get(k).is_some_and(|c| is_token_byte(*c) || *c == b':') {
            k += 1;
        }
        if k == 0 {
            return Err(fail(i));
        }
        k
    };
    // `end` follows an ASCII byte: a char boundary.
    let (v, r) = i.split_at(end);
    Ok((r, (v, false)))
}

/// One `SEMI generic-param` (hand-written over bytes: this is the hot path of
/// Via/From/To/Contact parsing).
pub(crate) fn semi_param(i: &str) -> IResult<&str, Param<'_>> {
    let b = i.as_bytes();
    let mut k = skip_lws(b, 0);
    if b.get(k) != Some(&b';') {
        return Err(fail(i));
    }
    k = skip_lws(b, k + 1);
    let ns = k;
    while b.get(k).is_some_and(|c| is_token_byte(*c)) {
        k += 1;
    }
    if k == ns {
        return Err(fail(i));
    }
    // All indices follow ASCII bytes: char boundaries.
    let name = &i[ns..k];
    let j = skip_lws(b, k);
    if b.get(j) != Some(&b'=') {
        return Ok((
            &i[k..],
            Param {
                name,
                value: None,
                quoted: false,
            },
        ));
    }
    let v = skip_lws(b, j + 1);
    let (rest, (value, quoted)) = gen_value(&i[v..])?;
    Ok((
        rest,
        Param {
            name,
            value: Some(value),
            quoted,
        },
    ))
}

/// Parses `*( SEMI generic-param )`, calling `check` on each; stops with an error
/// when `check` returns false. Returns the raw slice covering the parameters.
pub(crate) fn params_checked<'a>(
    i: &'a str,
    mut check: impl FnMut(&Param<'a>) -> bool,
) -> IResult<&'a str, Params<'a>> {
    let mut rest = i;
    loop {
        // Only commit to a parameter when a ';' follows (after optional LWS).
        let k = skip_lws(rest.as_bytes(), 0);
        if rest.as_bytes().get(k) != Some(&b';') {
            break;
        }
        let (r, p) = semi_param(rest)?;
        if !check(&p) {
            return Err(fail(rest));
        }
        rest = r;
    }
    let raw = &i[..i.len() - rest.len()];
    Ok((
        rest,
        Params {
            raw: crate::grammar::trim_lws(raw),
        },
    ))
}

/// Parses `*( SEMI generic-param )` and returns the raw slice covering them.
pub(crate) fn params(i: &str) -> IResult<&str, Params<'_>> {
    params_checked(i, |_| true)
}

/// Parses a whole string as parameters.
#[cfg(test)]
pub(crate) fn params_all(i: &str) -> Option<Params<'_>> {
    let (rest, p) = params(i).ok()?;
    crate::grammar::sws(rest)
        .ok()
        .filter(|(r, _)| r.is_empty())
        .map(|_| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_values_quoted_and_lws() {
        let (rest, p) =
            params(" ;  tag = 98asjd8 ;lr; q=\"a;b\" ;received=[2001:db8::9:255], x").unwrap();
        assert_eq!(rest, ", x");
        assert_eq!(p.value("TAG"), Some("98asjd8"));
        assert_eq!(p.get("lr"), Some(None));
        assert_eq!(p.value("q"), Some("a;b"));
        assert_eq!(p.value("received"), Some("[2001:db8::9:255]"));
        assert_eq!(p.iter().count(), 4);
    }

    #[test]
    fn rejects_empty_params() {
        assert!(params(";;").is_err());
        assert!(params_all(";a=").is_none());
        assert!(params_all("").unwrap().is_empty());
    }
}

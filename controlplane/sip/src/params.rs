//! Header parameters: `*( SEMI generic-param )` (RFC 3261 §25.1), kept as the raw
//! slice and looked up lazily without allocation.

use crate::grammar::{is_lws, is_token_char, quoted_string, sep, sws, token};
use nom::bytes::complete::take_while1;
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
/// Invariant: `raw` was accepted by [`params`], so iteration cannot fail.
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
    if let Some(inner) = i.strip_prefix('[') {
        let end = inner.find(']').ok_or_else(|| crate::grammar::fail(i))?;
        let (v, r) = i.split_at(end + 2);
        if !v[1..v.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(crate::grammar::fail(i));
        }
        return Ok((r, (v, false)));
    }
    // Token, or an unbracketed IPv6 address (`via-received`, RFC 3261 §25.1).
    let (r, v) = take_while1(|c| is_token_char(c) || c == ':')(i)?;
    Ok((r, (v, false)))
}

/// One `SEMI generic-param`.
fn semi_param(i: &str) -> IResult<&str, Param<'_>> {
    let (i, _) = sep(';')(i)?;
    let (i, name) = token(i)?;
    let after_name = i;
    match sep('=')(i) {
        Ok((i, _)) => {
            let (i, (v, quoted)) = gen_value(i)?;
            Ok((
                i,
                Param {
                    name,
                    value: Some(v),
                    quoted,
                },
            ))
        }
        Err(_) => Ok((
            after_name,
            Param {
                name,
                value: None,
                quoted: false,
            },
        )),
    }
}

/// Parses `*( SEMI generic-param )` and returns the raw slice covering them.
pub(crate) fn params(i: &str) -> IResult<&str, Params<'_>> {
    let mut rest = i;
    loop {
        // Only commit to a parameter when a ';' follows (after optional LWS).
        let (after_ws, _) = sws(rest)?;
        if !after_ws.starts_with(';') {
            break;
        }
        let (r, _) = semi_param(rest)?;
        rest = r;
    }
    let raw = &i[..i.len() - rest.len()];
    Ok((
        rest,
        Params {
            raw: raw.trim_end_matches(is_lws),
        },
    ))
}

/// Parses a whole string as parameters.
#[cfg(test)]
pub(crate) fn params_all(i: &str) -> Option<Params<'_>> {
    let (rest, p) = params(i).ok()?;
    sws(rest).ok().filter(|(r, _)| r.is_empty()).map(|_| p)
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

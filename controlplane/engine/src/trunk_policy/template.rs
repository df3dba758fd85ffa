//! The value template of a header rule: literal text with `${name}`
//! references, parsed once at configuration load and rendered per message
//! from the call's values only (nothing is ever evaluated).
//!
//! Grammar: `$$` is a literal `$`; `${calling}`, `${called}`, `${trunk}` name
//! the call's values ([`Var`]); `${1}` .. `${9}` the capture groups of the
//! rule's `match` expression (a group that did not take part renders empty).
//! Any other `$` is an error, reported with its byte offset in the template.
//!
//! Invariant: a rendered value never holds a control character but HTAB
//! (CR and LF from a capture of a folded header line become one space), so
//! no template can start a header line of its own (no CR/LF injection).

use std::fmt;

/// A value of the call a template can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    /// `${calling}`: the calling number as sent on the outgoing leg.
    Calling,
    /// `${called}`: the called number as sent on the outgoing leg.
    Called,
    /// `${trunk}`: the name of the trunk the message came from.
    Trunk,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
    /// Capture group 1..=9.
    Group(usize),
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// Why a template does not parse (we are misconfigured).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("template {template:?}, at byte {offset}: {message}")]
pub struct TemplateError {
    /// The template as written.
    pub template: String,
    /// Byte offset of the problem in the template.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// The values a template renders from: the call's numbers and the source
/// trunk, and the capture groups of the rule's match (index 0 unused).
#[derive(Clone, Copy, Debug, Default)]
pub struct Vars<'a> {
    /// `${calling}`
    pub calling: &'a str,
    /// `${called}`
    pub called: &'a str,
    /// `${trunk}`
    pub trunk: &'a str,
}

impl Template {
    /// Parses `source` (see the module docs).
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let err = |offset: usize, message: String| TemplateError {
            template: source.to_owned(),
            offset,
            message,
        };
        if let Some(i) = source.find(|c: char| c.is_control() && c != '\t') {
            return Err(err(i, "control characters are not allowed".into()));
        }
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = source;
        let mut at = 0;
        while let Some(pos) = rest.find('$') {
            text.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            let here = at + pos;
            if let Some(tail) = after.strip_prefix('$') {
                text.push('$');
                at = here + 2;
                rest = tail;
                continue;
            }
            let Some(body) = after.strip_prefix('{') else {
                return Err(err(
                    here,
                    "a '$' starts ${name} (calling, called, trunk, 1..9) or is written $$".into(),
                ));
            };
            let Some(end) = body.find('}') else {
                return Err(err(here, "unclosed ${".into()));
            };
            let name = &body[..end];
            let part = match name {
                "calling" => Part::Var(Var::Calling),
                "called" => Part::Var(Var::Called),
                "trunk" => Part::Var(Var::Trunk),
                n if n.len() == 1 && matches!(n.as_bytes()[0], b'1'..=b'9') => {
                    Part::Group(usize::from(n.as_bytes()[0] - b'0'))
                }
                other => {
                    return Err(err(
                        here,
                        format!("unknown name ${{{other}}} (known: calling, called, trunk, 1..9)"),
                    ))
                }
            };
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(part);
            at = here + 2 + end + 1;
            rest = &body[end + 1..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Self {
            source: source.to_owned(),
            parts,
        })
    }

    /// The highest capture group the template names (0: none).
    #[must_use]
    pub fn max_group(&self) -> usize {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Group(g) => Some(*g),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// The template as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Renders with `vars` and the capture groups `groups` (index 0 is the
    /// whole match, unused), made safe for a header value (module docs).
    #[must_use]
    pub fn render(&self, vars: &Vars<'_>, groups: &[Option<&str>]) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var(Var::Calling) => out.push_str(vars.calling),
                Part::Var(Var::Called) => out.push_str(vars.called),
                Part::Var(Var::Trunk) => out.push_str(vars.trunk),
                Part::Group(g) => out.push_str(groups.get(*g).copied().flatten().unwrap_or("")),
            }
        }
        header_safe(&out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// `value` made safe for one header line: each run of CR/LF (with the
/// folding white space around it) becomes one space, other control
/// characters but HTAB are dropped, and the ends are trimmed.
#[must_use]
pub fn header_safe(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut in_break = false;
    for c in value.chars() {
        if c == '\r' || c == '\n' {
            if !in_break {
                while out.ends_with([' ', '\t']) {
                    out.pop();
                }
                out.push(' ');
            }
            in_break = true;
            continue;
        }
        if in_break && (c == ' ' || c == '\t') {
            continue;
        }
        in_break = false;
        if c.is_control() && c != '\t' {
            continue;
        }
        out.push(c);
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders_names_groups_and_dollars() {
        let t = Template::parse("${trunk}:${calling}->${called} [$1] ${2}$$").unwrap_err();
        assert_eq!(t.offset, 32);
        let t = Template::parse("${trunk}:${calling}->${called} [${1}] ${2}$$").unwrap();
        assert_eq!(t.max_group(), 2);
        let v = Vars {
            calling: "+4930111",
            called: "+4930222",
            trunk: "pbx",
        };
        assert_eq!(
            t.render(&v, &[None, Some("x"), None]),
            "pbx:+4930111->+4930222 [x] $"
        );
    }

    #[test]
    fn errors_name_the_offset() {
        let e = Template::parse("ab${nope}").unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(e.message.contains("unknown name ${nope}"), "{e}");
        assert_eq!(Template::parse("a${1").unwrap_err().offset, 1);
        assert_eq!(Template::parse("${10}").unwrap_err().offset, 0);
        assert_eq!(Template::parse("x\ny").unwrap_err().offset, 1);
    }

    #[test]
    fn rendered_values_cannot_start_a_header_line() {
        let t = Template::parse("v=${1}").unwrap();
        let out = t.render(
            &Vars::default(),
            &[None, Some("a\r\nX-Injected: 1\r\n\tb\0")],
        );
        assert_eq!(out, "v=a X-Injected: 1 b");
        assert!(!out.contains(['\r', '\n']));
    }
}

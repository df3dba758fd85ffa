//! Diagnostics: every problem carries the TOML path of the offending value and, when the
//! value is present in the file, its line and column.

use std::fmt;
use std::ops::Range;

use toml_edit::{ImDocument, Item, Value};

/// 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LineCol {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

impl LineCol {
    /// Converts a byte offset of `src` into a line and column. Offsets past the end (or inside
    /// a multi-byte character) are clamped, never a panic.
    pub fn from_offset(src: &str, offset: usize) -> Self {
        let mut end = offset.min(src.len());
        while !src.is_char_boundary(end) {
            end -= 1;
        }
        let before = src.get(..end).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before.get(line_start..).map_or(0, |l| l.chars().count()) + 1;
        Self { line, col }
    }
}

impl fmt::Display for LineCol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// TOML path such as `route[2].targets[0]` (0-based indices); empty for syntax errors.
    pub path: String,
    /// Position of the value (or of the nearest enclosing table present in the file).
    pub location: Option<LineCol>,
    /// What is wrong, for an operator.
    pub message: String,
}

impl Diagnostic {
    /// Renders `ORIGIN:LINE:COL: path: message`, the format of `portcullis check-config`.
    pub fn render(&self, origin: &str) -> String {
        let loc = self.location.unwrap_or(LineCol { line: 1, col: 1 });
        if self.path.is_empty() {
            format!("{origin}:{loc}: {}", self.message)
        } else {
            format!("{origin}:{loc}: {}: {}", self.path, self.message)
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.location, self.path.is_empty()) {
            (Some(l), true) => write!(f, "{l}: {}", self.message),
            (Some(l), false) => write!(f, "{l}: {}: {}", self.path, self.message),
            (None, true) => f.write_str(&self.message),
            (None, false) => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// One step of a TOML path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A key in a table.
    Key(String),
    /// An index in an array or array of tables.
    Index(usize),
}

/// Parses `route[2].targets[0]` or `teams.resolve."sip.example.com"` into segments.
pub fn parse_path(path: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').unwrap_or(r.len());
            if let Ok(i) = r.get(..end).unwrap_or("").parse() {
                segs.push(Seg::Index(i));
            }
            rest = r.get(end + 1..).unwrap_or("");
        } else if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap_or(r.len());
            segs.push(Seg::Key(r.get(..end).unwrap_or("").to_owned()));
            rest = r.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            segs.push(Seg::Key(rest.get(..end).unwrap_or("").to_owned()));
            rest = rest.get(end..).unwrap_or("");
        }
    }
    segs
}

/// Formats a key for a path, quoting it when it is not a bare TOML key.
pub fn path_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// Finds the source span of the value at `path`, or of the deepest enclosing item that has
/// one (a missing key points at its key or table header).
pub fn find_span(doc: &ImDocument<&str>, path: &str) -> Option<Range<usize>> {
    let mut best = None;
    let mut cur = Node::Table(doc.as_table());
    for seg in parse_path(path) {
        let next = match (cur, &seg) {
            (Node::Table(t), Seg::Key(k)) => {
                if let Some(span) = t.key(k).and_then(toml_edit::Key::span) {
                    best = Some(span);
                }
                t.get(k).and_then(Node::of_item)
            }
            (Node::Tables(a), Seg::Index(i)) => a.get(*i).map(Node::Table),
            (Node::Value(Value::Array(a)), Seg::Index(i)) => a.get(*i).map(Node::Value),
            (Node::Value(Value::InlineTable(t)), Seg::Key(k)) => {
                if let Some(span) = t.key(k).and_then(toml_edit::Key::span) {
                    best = Some(span);
                }
                t.get(k).map(Node::Value)
            }
            _ => None,
        };
        let Some(n) = next else { break };
        if let Some(span) = n.span() {
            best = Some(span);
        }
        cur = n;
    }
    best
}

/// The TOML path of the deepest key, value or table header whose span contains `offset`
/// (used to name the setting a serde error is about); empty when none does.
pub fn path_at(doc: &ImDocument<&str>, offset: usize) -> String {
    let mut path = String::new();
    let mut best = String::new();
    walk(Node::Table(doc.as_table()), offset, &mut path, &mut best);
    best
}

fn inside(span: Option<Range<usize>>, offset: usize) -> bool {
    span.is_some_and(|s| s.contains(&offset) || (s.is_empty() && s.start == offset))
}

/// Depth-first search; `best` keeps the last (deepest) match.
fn walk(node: Node<'_>, offset: usize, path: &mut String, best: &mut String) {
    let len = path.len();
    match node {
        Node::Table(t) => {
            if inside(t.span(), offset) {
                best.clone_from(path);
            }
            for (k, item) in t.iter() {
                push_key(path, k);
                if inside(t.key(k).and_then(toml_edit::Key::span), offset) {
                    best.clone_from(path);
                }
                if let Some(n) = Node::of_item(item) {
                    walk(n, offset, path, best);
                }
                path.truncate(len);
            }
        }
        Node::Tables(a) => {
            for (i, t) in a.iter().enumerate() {
                path.push_str(&format!("[{i}]"));
                walk(Node::Table(t), offset, path, best);
                path.truncate(len);
            }
        }
        Node::Value(v) => {
            if inside(v.span(), offset) {
                best.clone_from(path);
            }
            match v {
                Value::Array(a) => {
                    for (i, v) in a.iter().enumerate() {
                        path.push_str(&format!("[{i}]"));
                        walk(Node::Value(v), offset, path, best);
                        path.truncate(len);
                    }
                }
                Value::InlineTable(t) => {
                    for (k, v) in t.iter() {
                        push_key(path, k);
                        if inside(t.key(k).and_then(toml_edit::Key::span), offset) {
                            best.clone_from(path);
                        }
                        walk(Node::Value(v), offset, path, best);
                        path.truncate(len);
                    }
                }
                _ => {}
            }
        }
    }
}

fn push_key(path: &mut String, k: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(&path_key(k));
}

#[derive(Clone, Copy)]
enum Node<'a> {
    Table(&'a toml_edit::Table),
    Tables(&'a toml_edit::ArrayOfTables),
    Value(&'a Value),
}

impl<'a> Node<'a> {
    fn of_item(item: &'a Item) -> Option<Self> {
        match item {
            Item::None => None,
            Item::Value(v) => Some(Node::Value(v)),
            Item::Table(t) => Some(Node::Table(t)),
            Item::ArrayOfTables(a) => Some(Node::Tables(a)),
        }
    }

    fn span(self) -> Option<Range<usize>> {
        match self {
            Node::Table(t) => t.span(),
            Node::Tables(a) => a.span(),
            Node::Value(v) => v.span(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(LineCol::from_offset(src, 0), LineCol { line: 1, col: 1 });
        assert_eq!(LineCol::from_offset(src, 6), LineCol { line: 2, col: 1 });
        // 'é' is two bytes but one column.
        assert_eq!(LineCol::from_offset(src, 9), LineCol { line: 2, col: 3 });
        assert_eq!(LineCol::from_offset(src, 999).line, 3);
        // Inside 'é': clamped to its start.
        assert_eq!(LineCol::from_offset(src, 8), LineCol { line: 2, col: 2 });
    }

    #[test]
    fn paths() {
        assert_eq!(
            parse_path("route[2].targets[0]"),
            vec![
                Seg::Key("route".into()),
                Seg::Index(2),
                Seg::Key("targets".into()),
                Seg::Index(0)
            ]
        );
        assert_eq!(
            parse_path("teams.resolve.\"a.b\""),
            vec![
                Seg::Key("teams".into()),
                Seg::Key("resolve".into()),
                Seg::Key("a.b".into())
            ]
        );
    }

    #[test]
    fn spans() {
        let src = "[[route]]\nname = \"a\"\n\n[[route]]\nname = \"b\"\ntargets = [\"x\", \"y\"]\nt = { k = 1 }\n";
        let doc = ImDocument::parse(src).unwrap();
        let at = |p: &str| find_span(&doc, p).map(|s| LineCol::from_offset(src, s.start));
        assert_eq!(
            at("route[1].targets[1]"),
            Some(LineCol { line: 6, col: 17 })
        );
        assert_eq!(at("route[0].name"), Some(LineCol { line: 2, col: 8 }));
        assert_eq!(at("route[1].t.k"), Some(LineCol { line: 7, col: 11 }));
        // Missing key: the enclosing table header.
        assert_eq!(at("route[1].missing"), Some(LineCol { line: 4, col: 1 }));
        let off = |needle: &str| src.find(needle).unwrap_or(usize::MAX);
        assert_eq!(path_at(&doc, off("\"y\"")), "route[1].targets[1]");
        assert_eq!(path_at(&doc, off("k =")), "route[1].t.k");
        assert_eq!(path_at(&doc, off("name = \"b\"")), "route[1].name");
        assert_eq!(path_at(&doc, off("[[route]]\nname = \"b")), "route[1]");
    }
}

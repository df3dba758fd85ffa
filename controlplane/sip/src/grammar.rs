//! Lexical building blocks of RFC 3261 §25.1 written with nom over `&str`.
//!
//! Invariant relied on by every parser here: a header value handed to them is the
//! raw slice of the receive buffer between the colon and the end of the (possibly
//! folded) header field. Folding is always CRLF followed by SP/HTAB (checked by the
//! message parser), so treating CR and LF as linear white space is exactly RFC 3261
//! §7.3.1 unfolding, without copying.

use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::char;
use nom::sequence::delimited;
use nom::IResult;

/// `token` bytes (RFC 3261 §25.1) as a lookup table.
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        c += 1;
    }
    t
};

/// `token` characters (RFC 3261 §25.1).
#[inline]
pub(crate) fn is_token_char(c: char) -> bool {
    c.is_ascii() && TOKEN[c as usize]
}

/// Byte version of [`is_token_char`].
#[inline]
pub(crate) fn is_token_byte(c: u8) -> bool {
    TOKEN[usize::from(c)]
}

/// Index of the first byte at or after `k` that is not LWS.
#[inline]
pub(crate) fn skip_lws(b: &[u8], mut k: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\r' | b'\n') = b.get(k) {
        k += 1;
    }
    k
}

/// Linear white space, folding included (see the module invariant).
#[inline]
pub(crate) fn is_lws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// `SWS`: optional white space.
pub(crate) fn sws(i: &str) -> IResult<&str, &str> {
    take_while(is_lws)(i)
}

/// `token`.
pub(crate) fn token(i: &str) -> IResult<&str, &str> {
    take_while1(is_token_char)(i)
}

/// `SWS c SWS`, e.g. `SEMI`, `COMMA`, `EQUAL`, `SLASH`, `COLON`.
pub(crate) fn sep<'a>(c: char) -> impl FnMut(&'a str) -> IResult<&'a str, char> {
    delimited(sws, char(c), sws)
}

/// A `quoted-string` including its quotes; returns the inner text with escapes kept.
///
/// `quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)`: a backslash may escape any ASCII
/// except CR and LF.
pub(crate) fn quoted_string(i: &str) -> IResult<&str, &str> {
    let (rest, _) = tag("\"")(i)?;
    let bytes = rest.as_bytes();
    let mut k = 0;
    while let Some(&b) = bytes.get(k) {
        match b {
            b'"' => {
                // The quote is ASCII, so `k` and `k + 1` are char boundaries.
                return Ok((&rest[k + 1..], &rest[..k]));
            }
            b'\\' => match bytes.get(k + 1) {
                Some(&n) if n < 0x80 && n != b'\r' && n != b'\n' => k += 2,
                _ => return Err(fail(i)),
            },
            _ => k += 1,
        }
    }
    Err(fail(i))
}

/// A nom error at `i` (used by hand-written scanners).
pub(crate) fn fail(i: &str) -> nom::Err<nom::error::Error<&str>> {
    nom::Err::Error(nom::error::Error::new(i, nom::error::ErrorKind::Verify))
}

/// Trims linear white space (folding included) on both sides.
#[inline]
pub(crate) fn trim_lws(s: &str) -> &str {
    let b = s.as_bytes();
    let start = skip_lws(b, 0);
    let mut end = b.len();
    while end > start && matches!(b.get(end - 1), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        end -= 1;
    }
    // LWS bytes are ASCII, so both indices are char boundaries.
    s.get(start..end).unwrap_or_default()
}

/// Removes the backslash of every `quoted-pair` (RFC 3261 §25.1) when there is one.
pub fn unquote(inner: &str) -> std::borrow::Cow<'_, str> {
    if !inner.contains('\\') {
        return std::borrow::Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Iterator over the comma-separated elements of a header value (RFC 3261 §7.3.1),
/// honouring quoted strings and `<...>` so commas inside them do not split.
///
/// Elements are trimmed of LWS. An empty value yields nothing; an empty element
/// between commas is yielded as `""` so typed parsers reject it.
#[derive(Debug, Clone)]
pub struct CommaSplit<'a> {
    rest: Option<&'a str>,
}

impl<'a> CommaSplit<'a> {
    /// Splits `value`.
    pub fn new(value: &'a str) -> Self {
        let t = trim_lws(value);
        Self {
            rest: if t.is_empty() { None } else { Some(t) },
        }
    }
}

impl<'a> Iterator for CommaSplit<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        let b = s.as_bytes();
        let mut k = 0;
        // Jump from one interesting byte to the next (`,`, `"`, `<`): values such as
        // Via rarely hold quotes or brackets, so this is mostly one memchr3.
        while let Some(off) = memchr::memchr3(b',', b'"', b'<', b.get(k..).unwrap_or_default()) {
            let at = k + off;
            match b.get(at) {
                Some(b',') => {
                    // ',' is ASCII: both slices are on char boundaries.
                    self.rest = Some(&s[at + 1..]);
                    return Some(trim_lws(&s[..at]));
                }
                Some(b'"') => {
                    // Skip the quoted string, honouring quoted-pairs.
                    let mut q = at + 1;
                    loop {
                        match memchr::memchr2(b'"', b'\\', b.get(q..).unwrap_or_default()) {
                            Some(o) if b.get(q + o) == Some(&b'\\') => q += o + 2,
                            Some(o) => {
                                q += o + 1;
                                break;
                            }
                            None => {
                                q = b.len();
                                break;
                            }
                        }
                    }
                    k = q;
                }
                _ => {
                    // '<': skip to the matching '>'.
                    k = memchr::memchr(b'>', b.get(at..).unwrap_or_default())
                        .map_or(b.len(), |o| at + o + 1);
                }
            }
        }
        self.rest = None;
        Some(trim_lws(s))
    }
}

/// Position of an ASCII byte in `s` (memchr; faster than `str::find(char)`).
#[inline]
pub(crate) fn find_byte(s: &str, c: u8) -> Option<usize> {
    memchr::memchr(c, s.as_bytes())
}

/// Parses a decimal scalar made only of digits (leading zeros allowed, as in
/// RFC 4475 §3.1.1.1); `None` on overflow or any other character.
pub(crate) fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: u32 = 0;
    for b in s.bytes() {
        v = v.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_string_escapes() {
        assert_eq!(quoted_string(r#""a\"b" x"#), Ok((" x", r#"a\"b"#)));
        assert!(quoted_string(r#""unterminated"#).is_err());
        assert_eq!(unquote(r#"a\"b"#), "a\"b");
    }

    #[test]
    fn comma_split_respects_quotes_and_angles() {
        let v: Vec<_> = CommaSplit::new(r#""a,b" <sip:x;y=1,2>, <sip:z> ,"#).collect();
        assert_eq!(v, vec![r#""a,b" <sip:x;y=1,2>"#, "<sip:z>", ""]);
        assert_eq!(CommaSplit::new("  ").count(), 0);
    }

    #[test]
    fn scalars() {
        assert_eq!(parse_u32("0009"), Some(9));
        assert_eq!(parse_u32("4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32("4294967296"), None);
        assert_eq!(parse_u32("-1"), None);
        assert_eq!(parse_u32(""), None);
    }
}

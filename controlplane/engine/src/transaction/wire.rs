//! Bytes → [`SipMsg`] (RFC 3261 §7). Minimal framing used until the
//! `portcullis-sip` codec is wired in: start line, folded header lines,
//! Content-Length-delimited body.

use super::message::{same_header, Method, SipMsg, StartLine};
use super::MsgError;

/// Largest message accepted (bytes); bounded work per datagram.
const MAX_MESSAGE: usize = 64 * 1024;

/// Parses one complete SIP message.
pub fn parse_message(bytes: &[u8]) -> Result<SipMsg, MsgError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(MsgError::Syntax("message too large"));
    }
    let (head_len, body_start) =
        find_head_end(bytes).ok_or(MsgError::Syntax("no end of headers"))?;
    let head = std::str::from_utf8(bytes.get(..head_len).unwrap_or_default())
        .map_err(|_| MsgError::Syntax("headers are not UTF-8"))?;
    let mut lines: Vec<String> = Vec::new();
    for raw in head.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.starts_with([' ', '\t']) {
            // RFC 3261 §7.3.1 header folding.
            let last = lines
                .last_mut()
                .ok_or(MsgError::Syntax("folded first line"))?;
            last.push(' ');
            last.push_str(line.trim());
        } else if !line.is_empty() {
            lines.push(line.to_owned());
        }
    }
    let mut it = lines.into_iter();
    let first = it.next().ok_or(MsgError::Syntax("empty message"))?;
    let start = parse_start(&first)?;
    let mut headers = Vec::new();
    for line in it {
        let (name, value) = line
            .split_once(':')
            .ok_or(MsgError::Syntax("header without colon"))?;
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(MsgError::Syntax("bad header name"));
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let rest = bytes.get(body_start..).unwrap_or_default();
    let clen = headers
        .iter()
        .find(|(n, _)| same_header(n, "Content-Length"));
    let body = match clen {
        Some((_, v)) => {
            let n: usize = v.parse().map_err(|_| MsgError::Invalid("Content-Length"))?;
            rest.get(..n)
                .ok_or(MsgError::Invalid("Content-Length"))?
                .to_vec()
        }
        None => rest.to_vec(),
    };
    Ok(SipMsg {
        start,
        headers,
        body,
    })
}

fn find_head_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let crlf = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    let lf = bytes
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn parse_start(line: &str) -> Result<StartLine, MsgError> {
    let mut parts = line.splitn(3, ' ');
    let (a, b, c) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    if a == "SIP/2.0" {
        let status: u16 = b.parse().map_err(|_| MsgError::Syntax("bad status code"))?;
        if !(100..=699).contains(&status) {
            return Err(MsgError::Syntax("status code out of range"));
        }
        return Ok(StartLine::Response {
            status,
            reason: c.to_owned(),
        });
    }
    if c != "SIP/2.0" || a.is_empty() || b.is_empty() || !a.bytes().all(|x| x.is_ascii_graphic()) {
        return Err(MsgError::Syntax("bad request line"));
    }
    Ok(StartLine::Request {
        method: Method::from_token(a),
        uri: b.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let raw = b"INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nf: <sip:a@a>;tag=1\r\nl: 3\r\n\r\nabcdef";
        let m = parse_message(raw).unwrap();
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(m.body, b"abc");
        let again = parse_message(&m.to_bytes()).unwrap();
        assert_eq!(again.body, b"abc");
        assert_eq!(again.top_via().unwrap().branch(), Some("z9hG4bK1"));
        assert!(parse_message(b"garbage\r\n\r\n").is_err());
        assert!(parse_message(b"SIP/2.0 99 x\r\n\r\n").is_err());
        assert!(parse_message(b"INVITE sip:x SIP/2.0\r\nl: 10\r\n\r\nab").is_err());
    }
}

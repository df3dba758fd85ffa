//! Canonical serialisation: long-form names, unfolded values, and a `Content-Length`
//! that always matches the body.

use super::{OwnedMessage, Start};
use crate::error::BufferTooSmall;
use crate::header::HeaderName;

/// Where serialised bytes go.
trait Sink {
    fn put(&mut self, b: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
}

struct Counter(usize);

impl Sink for Counter {
    fn put(&mut self, b: &[u8]) {
        self.0 += b.len();
    }
}

struct SliceSink<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl Sink for SliceSink<'_> {
    fn put(&mut self, b: &[u8]) {
        // Capacity is checked by the caller before emitting; out-of-range writes are skipped.
        if let Some(dst) = self.buf.get_mut(self.pos..self.pos + b.len()) {
            dst.copy_from_slice(b);
        }
        self.pos += b.len();
    }
}

impl OwnedMessage {
    fn emit(&self, out: &mut impl Sink) {
        match self.start {
            Start::Request { method, uri } => {
                out.put(self.span(method).as_bytes());
                out.put(b" ");
                out.put(self.span(uri).as_bytes());
                out.put(b" SIP/2.0\r\n");
            }
            Start::Response { code, reason } => {
                out.put(b"SIP/2.0 ");
                let digits = [
                    b'0' + (code / 100 % 10) as u8,
                    b'0' + (code / 10 % 10) as u8,
                    b'0' + (code % 10) as u8,
                ];
                out.put(&digits);
                out.put(b" ");
                out.put(self.span(reason).as_bytes());
                out.put(b"\r\n");
            }
        }
        for e in &self.headers {
            if e.kind == HeaderName::ContentLength {
                continue;
            }
            out.put(self.name_of(e).as_bytes());
            out.put(b": ");
            put_unfolded(out, crate::grammar::trim_lws(self.span(e.value)));
            out.put(b"\r\n");
        }
        out.put(b"Content-Length: ");
        let mut num = [0u8; 20];
        out.put(fmt_usize(self.body.len(), &mut num));
        out.put(b"\r\n\r\n");
        out.put(&self.body);
    }

    /// Exact size of the serialised message.
    pub fn encoded_len(&self) -> usize {
        let mut c = Counter(0);
        self.emit(&mut c);
        c.0
    }

    /// Appends the serialised message to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.text.len() + self.body.len() + 64);
        self.emit(out);
    }

    /// The serialised message.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.text.len() + self.body.len() + 64);
        self.emit(&mut v);
        v
    }

    /// Serialises into a caller buffer; returns the bytes written.
    pub fn write_to_slice(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let needed = self.encoded_len();
        if needed > buf.len() {
            return Err(BufferTooSmall { needed });
        }
        let mut s = SliceSink { buf, pos: 0 };
        self.emit(&mut s);
        Ok(s.pos)
    }
}

/// Writes a value with every fold (CRLF + WS) replaced by one SP (RFC 3261 §7.3.1).
fn put_unfolded(out: &mut impl Sink, v: &str) {
    if memchr::memchr(b'\r', v.as_bytes()).is_none() {
        out.put(v.as_bytes());
        return;
    }
    let mut first = true;
    for seg in v.split("\r\n") {
        let seg = seg.trim_matches([' ', '\t']);
        if seg.is_empty() {
            continue;
        }
        if !first {
            out.put(b" ");
        }
        out.put(seg.as_bytes());
        first = false;
    }
}

fn fmt_usize(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut k = buf.len();
    loop {
        k -= 1;
        if let Some(d) = buf.get_mut(k) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || k == 0 {
            break;
        }
    }
    buf.get(k..).unwrap_or_default()
}

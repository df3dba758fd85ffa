//! The relays we compare against: rtpengine (driven through its ng control protocol) and
//! the raw baseline forwarder `portcullis-rawfwd`.
//!
//! The ng protocol is bencode over UDP: each datagram is `<cookie> <bencoded dict>` and the
//! reply echoes the cookie. `offer` takes the caller's SDP and returns the SDP to hand to
//! the callee (rtpengine's port for the callee to send to); `answer` takes the callee's
//! SDP and returns the one for the caller; `delete` tears the call down.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// A bencode value (BEP 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bencode {
    /// Byte string.
    Bytes(Vec<u8>),
    /// Integer.
    Int(i64),
    /// List.
    List(Vec<Bencode>),
    /// Dictionary (keys sorted, as the encoding requires).
    Dict(BTreeMap<Vec<u8>, Bencode>),
}

/// Errors of the ng client.
#[derive(Debug, thiserror::Error)]
pub enum NgError {
    /// Socket error.
    #[error("ng socket: {0}")]
    Io(#[from] std::io::Error),
    /// The reply did not decode.
    #[error("ng reply is not bencode: {0:?}")]
    Malformed(String),
    /// rtpengine answered with an error.
    #[error("rtpengine: {0}")]
    Refused(String),
    /// No reply after retries.
    #[error("rtpengine did not answer")]
    Timeout,
}

impl Bencode {
    /// A string value.
    pub fn s(v: &str) -> Self {
        Bencode::Bytes(v.as_bytes().to_vec())
    }

    /// Appends the encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Bencode::Bytes(b) => {
                out.extend_from_slice(b.len().to_string().as_bytes());
                out.push(b':');
                out.extend_from_slice(b);
            }
            Bencode::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'e');
            }
            Bencode::List(l) => {
                out.push(b'l');
                for v in l {
                    v.encode(out);
                }
                out.push(b'e');
            }
            Bencode::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    Bencode::Bytes(k.clone()).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    /// Decodes one value from the front of `buf`, returning it and the rest. Depth is
    /// bounded so hostile input cannot exhaust the stack.
    pub fn decode(buf: &[u8]) -> Option<(Bencode, &[u8])> {
        Self::decode_depth(buf, 0)
    }

    fn decode_depth(buf: &[u8], depth: u32) -> Option<(Bencode, &[u8])> {
        if depth > 32 {
            return None;
        }
        match *buf.first()? {
            b'i' => {
                let end = buf.iter().position(|&b| b == b'e')?;
                let n = std::str::from_utf8(buf.get(1..end)?).ok()?.parse().ok()?;
                Some((Bencode::Int(n), buf.get(end + 1..)?))
            }
            b'l' => {
                let mut rest = buf.get(1..)?;
                let mut l = Vec::new();
                while *rest.first()? != b'e' {
                    let (v, r) = Self::decode_depth(rest, depth + 1)?;
                    l.push(v);
                    rest = r;
                }
                Some((Bencode::List(l), rest.get(1..)?))
            }
            b'd' => {
                let mut rest = buf.get(1..)?;
                let mut d = BTreeMap::new();
                while *rest.first()? != b'e' {
                    let (k, r) = Self::decode_depth(rest, depth + 1)?;
                    let Bencode::Bytes(k) = k else { return None };
                    let (v, r) = Self::decode_depth(r, depth + 1)?;
                    d.insert(k, v);
                    rest = r;
                }
                Some((Bencode::Dict(d), rest.get(1..)?))
            }
            b'0'..=b'9' => {
                let colon = buf.iter().position(|&b| b == b':')?;
                let n: usize = std::str::from_utf8(buf.get(..colon)?).ok()?.parse().ok()?;
                let end = colon.checked_add(1)?.checked_add(n)?;
                let s = buf.get(colon + 1..end)?.to_vec();
                Some((Bencode::Bytes(s), buf.get(end..)?))
            }
            _ => None,
        }
    }

    /// The byte-string value of `key` in a dictionary.
    pub fn get_str(&self, key: &str) -> Option<&[u8]> {
        match self {
            Bencode::Dict(d) => match d.get(key.as_bytes())? {
                Bencode::Bytes(b) => Some(b),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A blocking ng client (one outstanding request at a time).
#[derive(Debug)]
pub struct NgClient {
    sock: UdpSocket,
    server: SocketAddr,
    cookie: u64,
}

impl NgClient {
    /// Binds an ephemeral loopback socket for talking to `server`.
    pub fn new(server: SocketAddr) -> Result<Self, NgError> {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        sock.set_read_timeout(Some(Duration::from_millis(500)))?;
        Ok(Self {
            sock,
            server,
            cookie: 0,
        })
    }

    /// Sends `dict` as a command and returns the reply dictionary (`result` = `ok`).
    pub fn call(&mut self, dict: BTreeMap<Vec<u8>, Bencode>) -> Result<Bencode, NgError> {
        self.cookie += 1;
        // rtpengine caches replies by cookie alone (to absorb retries), so cookies must be
        // unique across clients: the local port makes them so.
        let port = self.sock.local_addr().map(|a| a.port()).unwrap_or(0);
        let cookie = format!("lt{}-{port}-{}", std::process::id(), self.cookie);
        let mut msg = cookie.clone().into_bytes();
        msg.push(b' ');
        Bencode::Dict(dict).encode(&mut msg);
        let mut buf = vec![0u8; 65536];
        for _ in 0..5 {
            self.sock.send_to(&msg, self.server)?;
            loop {
                let n = match self.sock.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        break
                    }
                    Err(e) => return Err(e.into()),
                };
                let reply = buf.get(..n).unwrap_or(&[]);
                let Some(sp) = reply.iter().position(|&b| b == b' ') else {
                    continue;
                };
                if reply.get(..sp) != Some(cookie.as_bytes()) {
                    continue; // a late reply to an earlier retry
                }
                let body = reply.get(sp + 1..).unwrap_or(&[]);
                let (v, _) = Bencode::decode(body).ok_or_else(|| {
                    NgError::Malformed(String::from_utf8_lossy(body).chars().take(80).collect())
                })?;
                return match v.get_str("result") {
                    Some(b"ok" | b"pong") => Ok(v),
                    _ => Err(NgError::Refused(
                        String::from_utf8_lossy(v.get_str("error-reason").unwrap_or(b"?"))
                            .into_owned(),
                    )),
                };
            }
        }
        Err(NgError::Timeout)
    }

    /// `offer` (caller SDP in, SDP for the callee out).
    pub fn offer(&mut self, call_id: &str, from_tag: &str, sdp: &[u8]) -> Result<Vec<u8>, NgError> {
        let mut d = base("offer", call_id, from_tag);
        d.insert(b"sdp".to_vec(), Bencode::Bytes(sdp.to_vec()));
        d.insert(
            b"replace".to_vec(),
            Bencode::List(vec![Bencode::s("origin"), Bencode::s("session-connection")]),
        );
        let v = self.call(d)?;
        v.get_str("sdp")
            .map(<[u8]>::to_vec)
            .ok_or_else(|| NgError::Malformed("no sdp".into()))
    }

    /// `answer` (callee SDP in, SDP for the caller out).
    pub fn answer(
        &mut self,
        call_id: &str,
        from_tag: &str,
        to_tag: &str,
        sdp: &[u8],
    ) -> Result<Vec<u8>, NgError> {
        let mut d = base("answer", call_id, from_tag);
        d.insert(b"to-tag".to_vec(), Bencode::s(to_tag));
        d.insert(b"sdp".to_vec(), Bencode::Bytes(sdp.to_vec()));
        d.insert(
            b"replace".to_vec(),
            Bencode::List(vec![Bencode::s("origin"), Bencode::s("session-connection")]),
        );
        let v = self.call(d)?;
        v.get_str("sdp")
            .map(<[u8]>::to_vec)
            .ok_or_else(|| NgError::Malformed("no sdp".into()))
    }

    /// `delete`.
    pub fn delete(&mut self, call_id: &str, from_tag: &str) -> Result<(), NgError> {
        self.call(base("delete", call_id, from_tag)).map(|_| ())
    }
}

fn base(cmd: &str, call_id: &str, from_tag: &str) -> BTreeMap<Vec<u8>, Bencode> {
    let mut d = BTreeMap::new();
    d.insert(b"command".to_vec(), Bencode::s(cmd));
    d.insert(b"call-id".to_vec(), Bencode::s(call_id));
    d.insert(b"from-tag".to_vec(), Bencode::s(from_tag));
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bencode_round_trip_and_known_encoding() {
        let mut d = base("offer", "c1", "f1");
        d.insert(b"n".to_vec(), Bencode::Int(-3));
        let v = Bencode::Dict(d);
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(
            out,
            b"d7:call-id2:c17:command5:offer8:from-tag2:f11:ni-3ee".to_vec()
        );
        let (back, rest) = Bencode::decode(&out).unwrap();
        assert!(rest.is_empty());
        assert_eq!(back, v);
        assert_eq!(back.get_str("command"), Some(&b"offer"[..]));
    }

    #[test]
    fn bencode_rejects_garbage_without_panicking() {
        for bad in [
            &b"d3:abc"[..],
            b"99999999999999999999:x",
            b"i12",
            b"l",
            b"x",
            b"",
            b"d1:ai1ee1:b",
        ] {
            let _ = Bencode::decode(bad);
        }
        assert!(Bencode::decode(b"99:ab").is_none());
        let deep = vec![b'l'; 10_000];
        assert!(Bencode::decode(&deep).is_none());
    }
}

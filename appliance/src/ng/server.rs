//! The datagram layer of the ng protocol (sans-IO): `<cookie> <bencoded dictionary>` in,
//! the reply with the same cookie out.
//!
//! A datagram with no readable cookie (no space in its first [`MAX_COOKIE`] + 1 bytes) is
//! counted and dropped: there is nothing to answer to. Every other datagram gets a reply:
//! an oversized one, one that is not bencode or not a request, and one asking for what
//! this node does not implement get `result: error` with an `error-reason` naming why.
//! Replies are kept by cookie for [`CACHE_TTL`] so a retransmitted request (the proxy
//! timed out waiting) gets the same reply without being run twice; the cache is bounded
//! by entries and by bytes.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_engine::media::MediaControl;

use super::bencode::{self, Value};
use super::calls::{NgCalls, Now};
use super::counters::{ErrorKind, NgCounters, Outcome};
use super::request::{self, Command};
use super::NgError;

/// Longest cookie accepted.
pub const MAX_COOKIE: usize = 128;
/// How long a reply stays cached for retransmissions.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// Most cached replies.
pub const CACHE_ENTRIES: usize = 4096;
/// Most bytes of cached replies.
pub const CACHE_BYTES: usize = 8 << 20;

/// Replies by cookie, oldest first.
#[derive(Debug, Default)]
struct ReplyCache {
    by_cookie: HashMap<Vec<u8>, Vec<u8>>,
    order: VecDeque<(Instant, Vec<u8>)>,
    bytes: usize,
}

impl ReplyCache {
    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            let old = now.saturating_duration_since(*at) >= CACHE_TTL;
            if !old && self.order.len() <= CACHE_ENTRIES && self.bytes <= CACHE_BYTES {
                break;
            }
            if let Some((_, cookie)) = self.order.pop_front() {
                if let Some(r) = self.by_cookie.remove(&cookie) {
                    self.bytes = self.bytes.saturating_sub(r.len() + cookie.len());
                }
            }
        }
    }

    fn get(&self, cookie: &[u8]) -> Option<&Vec<u8>> {
        self.by_cookie.get(cookie)
    }

    fn insert(&mut self, now: Instant, cookie: &[u8], reply: &[u8]) {
        if self.by_cookie.contains_key(cookie) {
            return;
        }
        self.bytes += reply.len() + cookie.len();
        self.by_cookie.insert(cookie.to_vec(), reply.to_vec());
        self.order.push_back((now, cookie.to_vec()));
        self.expire(now);
    }
}

/// The ng server core: reply cache, limits, counters, over a [`NgCalls`] table.
#[derive(Debug)]
pub struct NgServer<M: MediaControl> {
    calls: NgCalls<M>,
    cache: ReplyCache,
    max_message: usize,
    counters: Arc<NgCounters>,
}

fn error_reply(e: &NgError, load_limit: bool) -> (Value, Outcome) {
    if load_limit && matches!(e, NgError::Capacity(_)) {
        let v = Value::dict([
            ("result", Value::s("load limit")),
            ("message", Value::s(e.to_string())),
        ]);
        return (v, Outcome::LoadLimit);
    }
    let v = Value::dict([
        ("result", Value::s("error")),
        ("error-reason", Value::s(e.to_string())),
    ]);
    (v, Outcome::Error)
}

impl<M: MediaControl> NgServer<M> {
    /// A server over `calls`, refusing requests larger than `max_message` bytes.
    pub fn new(calls: NgCalls<M>, max_message: usize, counters: Arc<NgCounters>) -> Self {
        Self {
            calls,
            cache: ReplyCache::default(),
            max_message,
            counters,
        }
    }

    /// The call table.
    pub fn calls(&self) -> &NgCalls<M> {
        &self.calls
    }

    /// The call table, mutably (the driver reaches the media controller through it).
    pub fn calls_mut(&mut self) -> &mut NgCalls<M> {
        &mut self.calls
    }

    /// The counters.
    pub fn counters(&self) -> &Arc<NgCounters> {
        &self.counters
    }

    /// Handles one datagram; the reply to send back to its source, if any.
    pub fn handle(&mut self, now: Now, datagram: &[u8]) -> Option<Vec<u8>> {
        self.cache.expire(now.mono);
        let head = datagram.get(..datagram.len().min(MAX_COOKIE + 1))?;
        let Some(sp) = head.iter().position(|&b| b == b' ') else {
            self.counters.error(ErrorKind::Malformed);
            return None;
        };
        let cookie = datagram.get(..sp)?;
        let body = datagram.get(sp + 1..)?;
        if cookie.is_empty() || !cookie.iter().all(u8::is_ascii_graphic) {
            self.counters.error(ErrorKind::Malformed);
            return None;
        }
        if let Some(r) = self.cache.get(cookie) {
            self.counters.retransmission();
            return Some(r.clone());
        }
        let (command, reply, outcome) = if datagram.len() > self.max_message {
            let e = NgError::Oversized(datagram.len(), self.max_message);
            self.counters.error(e.kind());
            let (v, o) = error_reply(&e, false);
            (None, v, o)
        } else {
            self.request(now, body)
        };
        self.counters.answered(command, outcome);
        let mut out = Vec::with_capacity(cookie.len() + 1 + 256);
        out.extend_from_slice(cookie);
        out.push(b' ');
        out.extend_from_slice(&reply.encode());
        self.cache.insert(now.mono, cookie, &out);
        Some(out)
    }

    /// Decodes, checks and runs one request body.
    fn request(&mut self, now: Now, body: &[u8]) -> (Option<Command>, Value, Outcome) {
        let parsed = bencode::decode(body)
            .map_err(|e| NgError::Malformed(e.to_string()))
            .and_then(|v| request::parse(&v));
        let req = match parsed {
            Ok(r) => r,
            Err(e) => {
                self.counters.error(e.kind());
                let (v, o) = error_reply(&e, false);
                return (None, v, o);
            }
        };
        match self.calls.execute(now, &req) {
            Ok(mut v) => {
                let result = if req.command == Command::Ping {
                    "pong"
                } else {
                    "ok"
                };
                v.insert("result", Value::s(result));
                (Some(req.command), v, Outcome::Ok)
            }
            Err(e) => {
                self.counters.error(e.kind());
                if matches!(e, NgError::Capacity(_)) {
                    tracing::warn!(command = req.command.as_str(), error = %e, "ng request refused");
                } else {
                    tracing::debug!(command = req.command.as_str(), error = %e, "ng request refused");
                }
                let (v, o) = error_reply(&e, req.load_limit);
                (Some(req.command), v, o)
            }
        }
    }

    /// Timer work: deletes idle calls (bounded, see [`NgCalls::poll`]).
    pub fn poll(&mut self, now: Now) -> usize {
        self.cache.expire(now.mono);
        self.calls.poll(now)
    }
}

//! The ng call table (sans-IO): call-id and tags → anchored streams, over any
//! [`MediaControl`].
//!
//! A call is created by its first `offer`; the offer's `from-tag` is side A (leg A of every
//! pair), the tag of the first `answer`'s `to-tag` side B. A later offer from either tag
//! (a re-INVITE) re-negotiates the same pairs; an answer from a new `to-tag` (another
//! branch of a forked INVITE) moves side B to it. `delete` releases every pair.
//!
//! Bounds: at most `max_sessions` calls (a new offer beyond is refused for load, before
//! any allocation), at most [`MAX_STREAMS`](super::sdp::MAX_STREAMS) streams per call; a
//! call with no packet on any leg and no command for `timeout` (`silent_timeout` while on
//! hold) is deleted by [`NgCalls::poll`], which visits a bounded number of calls per call.
//! Time comes in as [`Now`]; randomness (SRTP keys) through the `fill` function given
//! at construction.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use portcullis_engine::media::{MediaControl, RealmId, Side, SrtpKeyMaterial, SrtpSuite};
use portcullis_sip::sdp::SessionDescription;

use super::bencode::Value;
use super::counters::NgCounters;
use super::request::{Command, Options, Request};
use super::sdp::{self, ix, Stream};
use super::NgError;

/// Calls visited per [`NgCalls::poll`].
pub const POLL_BUDGET: usize = 256;
/// Call-ids listed by `list` without a `limit`, and the most with one.
pub const LIST_DEFAULT: usize = 32;
/// See [`LIST_DEFAULT`].
pub const LIST_MAX: usize = 1024;

/// The time of a request: monotonic for timeouts, wall clock for the timestamps `query`
/// reports.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic.
    pub mono: Instant,
    /// Wall clock.
    pub wall: SystemTime,
}

impl Now {
    /// The current time (drivers only; the core takes it as a parameter).
    pub fn system() -> Self {
        Self {
            mono: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// Settings of the call table (from `[ng]` and `[media]`).
#[derive(Debug, Clone)]
pub struct NgSettings {
    /// Most calls at once.
    pub max_sessions: usize,
    /// Idle timeout.
    pub timeout: Duration,
    /// Idle timeout on hold.
    pub silent_timeout: Duration,
    /// Names `direction` may use.
    pub interfaces: Vec<String>,
    /// Our media address (what `c=` says).
    pub advertised_ip: IpAddr,
}

/// Fills a buffer from a CSPRNG.
pub type Fill = Box<dyn FnMut(&mut [u8]) + Send>;

#[derive(Debug)]
struct Call {
    tags: [Option<String>; 2],
    created: SystemTime,
    last_signal: Instant,
    last_signal_wall: SystemTime,
    /// Last time a packet was seen on any leg (or the call was created).
    last_media: Instant,
    rx_seen: u64,
    held: bool,
    streams: Vec<Stream>,
    /// The side whose offer the next answer answers.
    offerer: Option<Side>,
}

impl Call {
    fn new(now: Now) -> Self {
        Self {
            tags: [None, None],
            created: now.wall,
            last_signal: now.mono,
            last_signal_wall: now.wall,
            last_media: now.mono,
            rx_seen: 0,
            held: false,
            streams: Vec::new(),
            offerer: None,
        }
    }

    fn side_of(&self, tag: &str) -> Option<Side> {
        [Side::A, Side::B]
            .into_iter()
            .find(|s| self.tags[ix(*s)].as_deref() == Some(tag))
    }
}

/// The call table.
pub struct NgCalls<M: MediaControl> {
    media: M,
    settings: NgSettings,
    calls: BTreeMap<String, Call>,
    fill: Fill,
    /// Where the next [`NgCalls::poll`] resumes.
    cursor: Option<String>,
    counters: Arc<NgCounters>,
}

impl<M: MediaControl> std::fmt::Debug for NgCalls<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NgCalls")
            .field("calls", &self.calls.len())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn need<'a>(v: &'a Option<String>, key: &'static str) -> Result<&'a str, NgError> {
    v.as_deref().ok_or(NgError::Missing(key))
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

impl<M: MediaControl> NgCalls<M> {
    /// An empty table over `media`; SRTP keys are drawn with `fill`.
    pub fn new(media: M, settings: NgSettings, fill: Fill, counters: Arc<NgCounters>) -> Self {
        Self {
            media,
            settings,
            calls: BTreeMap::new(),
            fill,
            cursor: None,
            counters,
        }
    }

    /// Live calls.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// True when no call is live.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The media controller (the driver retries its deferred work).
    pub fn media_mut(&mut self) -> &mut M {
        &mut self.media
    }

    /// Runs one checked request; the reply dictionary without `result`, or the error.
    ///
    /// # Errors
    /// See [`NgError`]; a refused request leaves the table as it was, except that a
    /// failure to push the legs to the data plane after the SDP was learnt keeps the
    /// learnt state (the proxy retries the same request).
    pub fn execute(&mut self, now: Now, req: &Request) -> Result<Value, NgError> {
        let r = match req.command {
            Command::Ping => Ok(Value::dict([])),
            Command::Offer => self.offer_answer(now, req, true),
            Command::Answer => self.offer_answer(now, req, false),
            Command::Delete => self.delete(req),
            Command::Query => self.query(req),
            Command::List => self.list(req),
        };
        self.counters.set_sessions(self.calls.len());
        r
    }

    fn check_options(&self, opts: &Options) -> Result<(), NgError> {
        for d in &opts.direction {
            if !self.settings.interfaces.iter().any(|i| i == d) {
                return Err(NgError::Unsupported(format!(
                    "direction {d:?}: not one of [ng] interfaces {:?}",
                    self.settings.interfaces
                )));
            }
        }
        if let Some(v6) = opts.ipv6 {
            if v6 != self.settings.advertised_ip.is_ipv6() {
                return Err(NgError::Unsupported(format!(
                    "address-family {}: this node's media address is {}",
                    if v6 { "IP6" } else { "IP4" },
                    self.settings.advertised_ip
                )));
            }
        }
        Ok(())
    }

    fn offer_answer(&mut self, now: Now, req: &Request, offer: bool) -> Result<Value, NgError> {
        let call_id = need(&req.call_id, "call-id")?;
        let from_tag = need(&req.from_tag, "from-tag")?;
        if !offer {
            need(&req.to_tag, "to-tag")?;
        }
        let body = req.sdp.as_deref().ok_or(NgError::Missing("sdp"))?;
        self.check_options(&req.opts)?;
        let sdp = SessionDescription::parse(body).map_err(|e| NgError::Sdp(e.to_string()))?;
        let existing = self.calls.remove(call_id);
        let is_new = existing.is_none();
        let mut call = match existing {
            Some(c) => c,
            None if !offer => return Err(NgError::UnknownCall(call_id.to_owned())),
            None if self.calls.len() >= self.settings.max_sessions => {
                return Err(NgError::Capacity(format!(
                    "{} sessions (ng.max_sessions)",
                    self.settings.max_sessions
                )))
            }
            None => {
                let mut c = Call::new(now);
                c.tags = [Some(from_tag.to_owned()), req.to_tag.clone()];
                c
            }
        };
        let side = match Self::sender(&mut call, req, offer) {
            Ok(s) => s,
            Err(e) => {
                if !is_new {
                    self.calls.insert(call_id.to_owned(), call);
                }
                return Err(e);
            }
        };
        let r = self.exchange(&mut call, side, &sdp, offer, &req.opts, now);
        if r.is_ok() || !is_new {
            self.calls.insert(call_id.to_owned(), call);
        } else {
            self.release(&mut call);
        }
        r.map(|b| Value::dict([("sdp", Value::Bytes(b))]))
    }

    /// The side that sent the SDP of this request (binding side B's tag as needed).
    fn sender(call: &mut Call, req: &Request, offer: bool) -> Result<Side, NgError> {
        let from = req.from_tag.as_deref().unwrap_or_default();
        let to = req.to_tag.as_deref();
        if offer {
            return match call.side_of(from) {
                Some(s) => Ok(s),
                // B's first request (a re-INVITE from the callee before any answer
                // named it): its to-tag is A's.
                None if call.tags[1].is_none() && to.is_some() && to == call.tags[0].as_deref() => {
                    call.tags[1] = Some(from.to_owned());
                    Ok(Side::B)
                }
                None => Err(NgError::UnknownCall(format!("from-tag {from:?}"))),
            };
        }
        // An answer comes from the to-tag side, the reverse of the from-tag's.
        let answerer = match call.side_of(from) {
            Some(Side::A) => {
                if let Some(t) = to {
                    if call.tags[1].as_deref() != Some(t) {
                        // First answer, or another branch of a forked INVITE.
                        call.tags[1] = Some(t.to_owned());
                    }
                }
                Side::B
            }
            Some(Side::B) => Side::A,
            None => return Err(NgError::UnknownCall(format!("from-tag {from:?}"))),
        };
        if call.offerer != Some(answerer.other()) {
            return Err(NgError::Sdp(
                "an answer with no offer from the other side".into(),
            ));
        }
        Ok(answerer)
    }

    fn exchange(
        &mut self,
        call: &mut Call,
        from: Side,
        sdp: &SessionDescription,
        offer: bool,
        opts: &Options,
        now: Now,
    ) -> Result<Vec<u8>, NgError> {
        let sections = sdp::plan(sdp, from, offer, opts, &call.streams)?;
        let mut fresh = Vec::new();
        let old_len = call.streams.len();
        for (i, sec) in sections.iter().enumerate() {
            if call.streams.len() <= i {
                call.streams.push(Stream::new());
            }
            let Some(st) = call.streams.get_mut(i) else {
                continue;
            };
            if sec.active() && st.alloc.is_none() {
                match self.media.allocate([RealmId::default(); 2]) {
                    Ok(a) => {
                        st.alloc = Some(a);
                        fresh.push(i);
                    }
                    Err(e) => {
                        for j in fresh {
                            if let Some(a) = call.streams.get_mut(j).and_then(|s| s.alloc.take()) {
                                self.media.release(a.id);
                            }
                        }
                        call.streams.truncate(old_len);
                        return Err(NgError::Capacity(format!("media ports: {e}")));
                    }
                }
            }
        }
        // A re-offer with fewer sections drops the streams beyond them.
        for st in call.streams.drain(sections.len()..) {
            if let Some(a) = st.alloc {
                self.media.release(a.id);
            }
        }
        let fill = &mut self.fill;
        let mut keygen = |suite: SrtpSuite| {
            let mut b = [0u8; 30];
            fill(&mut b);
            let mut key = [0u8; 16];
            let mut salt = [0u8; 14];
            let (k, s) = b.split_at(16);
            key.copy_from_slice(k);
            salt.copy_from_slice(s);
            SrtpKeyMaterial { suite, key, salt }
        };
        let out = sdp::apply(
            sdp,
            &sections,
            &mut call.streams,
            from,
            offer,
            opts,
            self.settings.advertised_ip,
            &mut keygen,
        );
        call.held = sdp::held(sdp);
        call.last_signal = now.mono;
        call.last_signal_wall = now.wall;
        if offer {
            call.offerer = Some(from);
        }
        for st in &call.streams {
            if let Some(a) = &st.alloc {
                self.media
                    .update(a.id, &st.params[0], &st.params[1])
                    .map_err(|e| NgError::Capacity(format!("data plane: {e}")))?;
            }
        }
        Ok(out)
    }

    fn release(&mut self, call: &mut Call) {
        for st in &mut call.streams {
            if let Some(a) = st.alloc.take() {
                self.media.release(a.id);
            }
        }
    }

    fn delete(&mut self, req: &Request) -> Result<Value, NgError> {
        let call_id = need(&req.call_id, "call-id")?;
        let Some(call) = self.calls.get(call_id) else {
            if req.fatal {
                return Err(NgError::UnknownCall(call_id.to_owned()));
            }
            return Ok(Value::dict([("warning", Value::s("Call-ID not found"))]));
        };
        // A failed branch of a forked call: its to-tag is not the call's B side.
        if let Some(t) = req.to_tag.as_deref() {
            if call.tags[1].is_some() && call.side_of(t).is_none() {
                return Ok(Value::dict([(
                    "warning",
                    Value::s("to-tag is not the anchored branch; call kept"),
                )]));
            }
        }
        let mut reply = self.totals(call);
        if let Some(mut call) = self.calls.remove(call_id) {
            reply.insert("created", Value::Int(unix(call.created)));
            self.release(&mut call);
        }
        Ok(reply)
    }

    /// `totals`: packets and bytes received from the peers, all streams.
    fn totals(&self, call: &Call) -> Value {
        let (mut packets, mut bytes) = (0u64, 0u64);
        for st in &call.streams {
            if let Some(s) = st.alloc.as_ref().and_then(|a| self.media.stats(a.id)) {
                packets += s.a.rx_packets + s.b.rx_packets;
                bytes += s.a.rx_bytes + s.b.rx_bytes;
            }
        }
        let stats = Value::dict([
            ("packets", int(packets)),
            ("bytes", int(bytes)),
            ("errors", Value::Int(0)),
        ]);
        // Packets are counted per port, RTCP included (on RTP + 1 or muxed): all of them
        // appear under `RTP`.
        Value::dict([(
            "totals",
            Value::dict([
                ("RTP", stats),
                (
                    "RTCP",
                    Value::dict([
                        ("packets", Value::Int(0)),
                        ("bytes", Value::Int(0)),
                        ("errors", Value::Int(0)),
                    ]),
                ),
            ]),
        )])
    }

    fn query(&self, req: &Request) -> Result<Value, NgError> {
        let call_id = need(&req.call_id, "call-id")?;
        let call = self
            .calls
            .get(call_id)
            .ok_or_else(|| NgError::UnknownCall(call_id.to_owned()))?;
        let mut reply = self.totals(call);
        reply.insert("created", Value::Int(unix(call.created)));
        reply.insert("last signal", Value::Int(unix(call.last_signal_wall)));
        let mut tags = Vec::new();
        for side in [Side::A, Side::B] {
            let tag = call.tags[ix(side)].clone().unwrap_or_default();
            let other = call.tags[ix(side.other())].clone().unwrap_or_default();
            let medias = call
                .streams
                .iter()
                .enumerate()
                .map(|(i, st)| self.media_info(i, st, side))
                .collect();
            let info = Value::dict([
                ("tag", Value::s(&tag)),
                ("created", Value::Int(unix(call.created))),
                ("in dialogue with", Value::s(other)),
                ("medias", Value::List(medias)),
            ]);
            tags.push((tag.into_bytes(), info));
        }
        reply.insert("tags", Value::Dict(tags));
        Ok(reply)
    }

    fn media_info(&self, i: usize, st: &Stream, side: Side) -> Value {
        let p = &st.params[ix(side)];
        let mut stream = Value::dict([]);
        if let Some(a) = &st.alloc {
            let port = match side {
                Side::A => a.a_port,
                Side::B => a.b_port,
            };
            stream.insert("local port", Value::Int(i64::from(port)));
            if let Some(s) = self.media.stats(a.id) {
                let l = match side {
                    Side::A => s.a,
                    Side::B => s.b,
                };
                stream.insert(
                    "stats",
                    Value::dict([
                        ("packets", int(l.rx_packets)),
                        ("bytes", int(l.rx_bytes)),
                        ("errors", Value::Int(0)),
                    ]),
                );
            }
        }
        if let Some(peer) = p.peer_rtp {
            stream.insert(
                "endpoint",
                Value::dict([
                    (
                        "family",
                        Value::s(if peer.is_ipv6() { "IPv6" } else { "IPv4" }),
                    ),
                    ("address", Value::s(peer.ip().to_string())),
                    ("port", Value::Int(i64::from(peer.port()))),
                ]),
            );
        }
        if let Some(k) = &p.srtp_in {
            stream.insert("crypto suite", Value::s(k.suite.as_sdp()));
        }
        let mut flags = vec![Value::s("initialized")];
        if p.rtcp_mux {
            flags.push(Value::s("rtcp-mux"));
        }
        if p.srtp_in.is_some() || p.srtp_out.is_some() {
            flags.push(Value::s("SDES"));
        }
        Value::dict([
            (
                "index",
                Value::Int(i64::try_from(i + 1).unwrap_or(i64::MAX)),
            ),
            ("type", Value::s(&st.media_type)),
            (
                "protocol",
                Value::s(st.proto[ix(side)].as_ref().map_or("", |p| p.as_str())),
            ),
            ("flags", Value::List(flags)),
            ("streams", Value::List(vec![stream])),
        ])
    }

    fn list(&self, req: &Request) -> Result<Value, NgError> {
        let limit = match req.limit {
            None => LIST_DEFAULT,
            Some(n) if n > 0 => usize::try_from(n).unwrap_or(LIST_MAX).min(LIST_MAX),
            Some(_) => return Err(NgError::Malformed("limit must be > 0".into())),
        };
        let calls = self.calls.keys().take(limit).map(Value::s).collect();
        Ok(Value::dict([("calls", Value::List(calls))]))
    }

    /// Deletes idle calls: visits a bounded number of calls from where the previous call
    /// stopped. Meant to be called once a second: it visits at least [`POLL_BUDGET`] calls,
    /// more when needed so that every call is seen at least twice per timeout (a call
    /// whose packets are counted between two visits is not idle). Returns how many were
    /// deleted.
    pub fn poll(&mut self, now: Now) -> usize {
        let shortest = self.settings.timeout.min(self.settings.silent_timeout);
        let ticks = usize::try_from((shortest.as_secs() / 2).max(1)).unwrap_or(usize::MAX);
        let budget = POLL_BUDGET.max(self.calls.len().div_ceil(ticks));
        // From the call after the cursor to the end, then from the start round to the
        // cursor: each call at most once per poll.
        let cursor = self.cursor.take();
        let after = match &cursor {
            Some(k) => Bound::Excluded(k.clone()),
            None => Bound::Unbounded,
        };
        let mut keys: Vec<String> = self
            .calls
            .range((after, Bound::Unbounded))
            .take(budget)
            .map(|(k, _)| k.clone())
            .collect();
        if let Some(c) = cursor {
            let rest = budget.saturating_sub(keys.len());
            keys.extend(
                self.calls
                    .range((Bound::Unbounded, Bound::Included(c)))
                    .take(rest)
                    .map(|(k, _)| k.clone()),
            );
        }
        self.cursor = keys.last().cloned();
        let mut expired = Vec::new();
        for k in keys {
            let Some(call) = self.calls.get(&k) else {
                continue;
            };
            let rx: u64 = call
                .streams
                .iter()
                .filter_map(|st| st.alloc.as_ref().and_then(|a| self.media.stats(a.id)))
                .map(|s| s.a.rx_packets + s.b.rx_packets)
                .sum();
            let Some(call) = self.calls.get_mut(&k) else {
                continue;
            };
            if rx != call.rx_seen {
                call.rx_seen = rx;
                call.last_media = now.mono;
            }
            let idle = now
                .mono
                .saturating_duration_since(call.last_signal.max(call.last_media));
            let limit = if call.held {
                self.settings.silent_timeout
            } else {
                self.settings.timeout
            };
            if idle >= limit {
                expired.push(k);
            }
        }
        let n = expired.len();
        for k in expired {
            if let Some(mut call) = self.calls.remove(&k) {
                tracing::info!(call_id = %k, "ng call deleted: no media and no command for the timeout");
                self.release(&mut call);
            }
        }
        self.counters.timed_out(n as u64);
        self.counters.set_sessions(self.calls.len());
        n
    }
}

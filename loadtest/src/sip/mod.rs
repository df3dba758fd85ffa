//! Compact SIP UAC and UAS populations (RFC 3261) for load generation.
//!
//! [`Population`] is sans-IO: [`Population::handle`] takes `now`, the side a datagram
//! arrived on, its source and bytes; [`Population::poll_timers`] fires due timers; both
//! push [`Out`] items (datagrams to send, media streams to start or stop). The driver in
//! `main.rs` owns the sockets and the clock.
//!
//! Per call only what a load generator needs: the UAC's INVITE client transaction
//! (RFC 3261 §17.1.1.2: Timer A = T1 doubling, Timer B = 64·T1), non-INVITE client
//! transactions for BYE and CANCEL (§17.1.2.2: Timer E doubling up to T2, Timer F = 64·T1),
//! the UAS's 2xx retransmission until ACK (§13.3.1.4: T1 doubling up to T2, give up at
//! 64·T1), CANCEL (§9), re-INVITE (§14) and BYE from either side (§15).
//!
//! The called number carries the call's behaviour in its last digit ([`Kind`]), so the UAS
//! knows what to do even when an appliance rewrites Call-ID and tags (B2BUA).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::SocketAddr;

use hdrhistogram::Histogram;

use portcullis_sip::sdp::{Crypto, SessionDescription, AES_CM_128_HMAC_SHA1_80};
use portcullis_sip::{HeaderName, Message, Method, Request};

/// RFC 3261 §17.1.1.1 T1 (RTT estimate), ns.
pub const T1_NS: u64 = 500_000_000;
/// RFC 3261 §17.1.2.2 T2 (cap for non-INVITE retransmissions), ns.
pub const T2_NS: u64 = 4_000_000_000;
/// Gap between stopping media and sending BYE, so in-flight packets drain first.
const MEDIA_DRAIN_NS: u64 = 200_000_000;

/// What a call does after setup (encoded as the last digit of the called number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Held, then the caller hangs up.
    Normal = 0,
    /// Re-INVITE half-way through the hold time, then the caller hangs up.
    ReInvite = 1,
    /// The callee only rings; the caller CANCELs.
    Cancel = 2,
    /// Held, then the callee hangs up.
    CalleeBye = 3,
}

impl Kind {
    fn from_digit(d: u8) -> Self {
        match d {
            b'1' => Kind::ReInvite,
            b'2' => Kind::Cancel,
            b'3' => Kind::CalleeBye,
            _ => Kind::Normal,
        }
    }
}

/// Which socket a datagram uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    /// The caller population's socket.
    Uac,
    /// The callee population's socket.
    Uas,
}

/// Output of the population.
#[derive(Debug)]
pub enum Out {
    /// Send `bytes` from `side`'s socket to `to`.
    Send {
        side: Side,
        to: SocketAddr,
        bytes: Vec<u8>,
    },
    /// Start a media stream from media worker `worker`, socket `socket`, SRTP-protected
    /// with `srtp` (SDES key||salt) when set.
    MediaAdd {
        worker: usize,
        socket: usize,
        ssrc: u32,
        dest: SocketAddr,
        srtp: Option<SrtpKey>,
    },
    /// Packets arriving at media worker `worker` from `ssrc` are SRTP with this key
    /// (the key in the SDP the peer sent: RFC 4568 §6.1).
    MediaExpect {
        worker: usize,
        ssrc: u32,
        key: SrtpKey,
    },
    /// Stop a media stream.
    MediaRemove { worker: usize, ssrc: u32 },
}

/// Settings of both populations.
#[derive(Debug, Clone)]
pub struct SipConfig {
    /// Where the UAC sends INVITEs (the appliance, or our own UAS for a direct run).
    pub target: SocketAddr,
    /// The UAC socket's address (Via, Contact).
    pub uac_addr: SocketAddr,
    /// The UAS socket's address (Contact).
    pub uas_addr: SocketAddr,
    /// Media address of each worker's caller-side socket (socket 0).
    pub media_a: Vec<SocketAddr>,
    /// Media address of each worker's callee-side socket (socket 1).
    pub media_b: Vec<SocketAddr>,
    /// Hold time, ns.
    pub hold_ns: u64,
    /// Session refresh (re-INVITE) interval, ns; 0 for none.
    pub refresh_ns: u64,
    /// Shares of calls (0..=1) that re-INVITE, are cancelled, are hung up by the callee.
    pub share_reinvite: f64,
    /// See `share_reinvite`.
    pub share_cancel: f64,
    /// See `share_reinvite`.
    pub share_callee_bye: f64,
    /// Payload type offered (0 PCMU, 8 PCMA).
    pub pt: u8,
    /// ptime, ms.
    pub ptime_ms: u32,
    /// Whether calls carry media (false: signalling only).
    pub media: bool,
    /// The caller population speaks SDES-SRTP (`RTP/SAVP`, `AES_CM_128_HMAC_SHA1_80`).
    pub srtp_caller: bool,
    /// The callee population speaks SDES-SRTP.
    pub srtp_callee: bool,
    /// Distinguishes this run's Call-IDs, tags and branches from an earlier run's: a
    /// proxy in front still holding the previous run's transactions must not take a new
    /// INVITE for a retransmission of an old one.
    pub run: u32,
}

/// An SDES master key and salt (RFC 4568 §6.1: 16 + 14 bytes for AES_CM_128).
pub type SrtpKey = [u8; 30];

/// The key a side of call `idx` sends with (0 caller, 1 callee): deterministic, distinct
/// per call and side (a load generator needs no secrecy, only distinct keystreams).
pub fn call_key(idx: usize, side: u8) -> SrtpKey {
    let mut x = (idx as u64) << 1 | u64::from(side);
    let mut out = [0u8; 30];
    for chunk in out.chunks_mut(8) {
        // splitmix64
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let b = z.to_be_bytes();
        chunk.copy_from_slice(b.get(..chunk.len()).unwrap_or(&[]));
    }
    out
}

/// The first `AES_CM_128_HMAC_SHA1_80` inline key of the first audio stream of `sdp`,
/// with its tag.
pub fn sdp_crypto(sdp: &[u8]) -> Option<(u32, SrtpKey)> {
    let s = SessionDescription::parse(sdp).ok()?;
    let m = s.media.iter().find(|m| m.is_audio() && !m.is_rejected())?;
    let c = m
        .crypto()
        .find(|c| c.suite.eq_ignore_ascii_case(AES_CM_128_HMAC_SHA1_80))?;
    let km = c.key_material().ok()?;
    let mut key = [0u8; 30];
    key.get_mut(..16)?.copy_from_slice(km.key.get(..16)?);
    key.get_mut(16..)?.copy_from_slice(km.salt.get(..14)?);
    Some((c.tag, key))
}

/// The caller's call index carried in the called number (`+1555` + 8 digits + kind).
fn call_index_of(user: &str) -> Option<usize> {
    user.strip_prefix("+1555")?.get(..8)?.parse().ok()
}

/// A pending client transaction (or UAS 2xx/487 retransmission).
#[derive(Debug)]
struct Retx {
    bytes: Vec<u8>,
    to: SocketAddr,
    next: u64,
    interval: u64,
    give_up: u64,
    cap: u64,
    what: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UacState {
    Calling,
    Proceeding,
    Confirmed,
    Terminating,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    StopMedia,
    SendBye,
    SendCancel,
    ReInvite,
    GiveUp,
}

#[derive(Debug)]
struct UacCall {
    kind: Kind,
    call_id: String,
    from: String,
    to: String,
    ruri: String,
    remote_target: Option<String>,
    /// Route set of the dialog: the 2xx's Record-Route in reverse order (RFC 3261
    /// §12.1.2), sent as Route on every in-dialog request and ACK (a record-routing
    /// proxy in front, such as Kamailio's dispatcher, stays on the path).
    route_set: Vec<String>,
    state: UacState,
    cseq: u32,
    invite_branch: String,
    invite_cseq: u32,
    invite_sent: u64,
    retx: Option<Retx>,
    action: Option<(u64, Action)>,
    media: bool,
    /// The SRTP key of the answer (what the far end sends us with).
    rx_key: Option<SrtpKey>,
}

#[derive(Debug)]
struct UasCall {
    kind: Kind,
    peer: SocketAddr,
    call_id: String,
    /// Our From for requests we send (their To + our tag).
    local: String,
    /// Their From.
    remote: String,
    remote_target: String,
    cseq: u32,
    last_response: Option<Vec<u8>>,
    retx: Option<Retx>,
    action: Option<(u64, Action)>,
    media: bool,
    confirmed: bool,
    done: bool,
    worker: usize,
    /// The caller's call index (from the called number): SSRC of the stream we receive
    /// and our SRTP key.
    uac_idx: Option<usize>,
    /// The SRTP key of the offer (what the far end sends us with).
    rx_key: Option<SrtpKey>,
    /// The stream to start once the dialog is confirmed (ACK): destination and SRTP key.
    /// Media before that would reach a relay that cannot know our answer (nor, with
    /// SRTP, our key) yet.
    pending_media: Option<(SocketAddr, Option<SrtpKey>)>,
    /// SSRC of the stream we send: the callee SSRC of the caller's call index, so the
    /// caller knows which SSRC to expect (a B2BUA rewrites Call-IDs, not numbers).
    tx_ssrc: u32,
}

/// Counters and histograms of a run.
#[derive(Debug)]
pub struct SipStats {
    /// Calls started (INVITE sent).
    pub started: u64,
    /// Calls answered (2xx to the initial INVITE).
    pub answered: u64,
    /// Calls that ended as planned (including planned CANCELs).
    pub completed: u64,
    /// Calls that failed, by reason (`"408"`, `"503"`, `"timeout INVITE"`, ...).
    pub failures: BTreeMap<String, u64>,
    /// INVITE sent → first 2xx received, µs.
    pub setup_us: Histogram<u64>,
    /// Re-INVITEs answered with 2xx.
    pub reinvites_ok: u64,
    /// Retransmissions sent (both sides).
    pub retransmissions: u64,
    /// Datagrams that did not parse or match a call.
    pub stray: u64,
}

impl SipStats {
    /// Total failures.
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }
}

/// Both populations.
#[derive(Debug)]
pub struct Population {
    cfg: SipConfig,
    uac: Vec<UacCall>,
    uas: Vec<UasCall>,
    uas_by_id: HashMap<String, usize>,
    timers: BinaryHeap<Reverse<(u64, Side, usize)>>,
    branch_seq: u64,
    /// Calls not yet `Done` on the UAC side.
    pub up: u64,
    /// Calls confirmed and not yet ending.
    pub established: u64,
    /// Statistics.
    pub stats: SipStats,
}

/// A minimal audio SDP (RFC 8866) offering one G.711 codec at `addr`; with `crypto`
/// (tag, key) it is `RTP/SAVP` with one SDES `AES_CM_128_HMAC_SHA1_80` line (RFC 4568).
pub fn sdp_for(
    addr: SocketAddr,
    pt: u8,
    ptime_ms: u32,
    version: u32,
    crypto: Option<(u32, &SrtpKey)>,
) -> Vec<u8> {
    let ip = addr.ip();
    let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let codec = if pt == 8 { "PCMA" } else { "PCMU" };
    let (proto, crypto_line) = match crypto {
        Some((tag, key)) => {
            let mut k = [0u8; 16];
            let mut salt = [0u8; 14];
            k.copy_from_slice(key.get(..16).unwrap_or(&[0; 16]));
            salt.copy_from_slice(key.get(16..).unwrap_or(&[0; 14]));
            let c = Crypto::aes_cm_128_hmac_sha1_80(tag, &k, &salt);
            ("RTP/SAVP", format!("a=crypto:{c}\r\n"))
        }
        None => ("RTP/AVP", String::new()),
    };
    format!(
        "v=0\r\no=lt 1 {version} IN {fam} {ip}\r\ns=-\r\nc=IN {fam} {ip}\r\nt=0 0\r\n\
         m=audio {} {proto} {pt}\r\na=rtpmap:{pt} {codec}/8000\r\na=ptime:{ptime_ms}\r\na=sendrecv\r\n{crypto_line}",
        addr.port()
    )
    .into_bytes()
}

/// The per-call SSRCs: caller stream, callee stream.
pub fn ssrcs(idx: usize) -> (u32, u32) {
    let i = idx as u32;
    (
        i.wrapping_mul(2).wrapping_add(1),
        i.wrapping_mul(2).wrapping_add(2),
    )
}

fn user_of(value: &str) -> Option<&str> {
    let start = value.find("sip:").map(|i| i + 4)?;
    let rest = value.get(start..)?;
    let end = rest.find(['@', '>', ';'])?;
    rest.get(..end)
}

fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if b > a => value.get(a + 1..b).unwrap_or(value),
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

fn tag_of(value: &str) -> Option<&str> {
    let i = value.find(";tag=")?;
    let rest = value.get(i + 5..)?;
    Some(rest.split([';', ' ', ',']).next().unwrap_or(rest))
}

impl Population {
    /// A population with no calls yet.
    pub fn new(cfg: SipConfig) -> Result<Self, hdrhistogram::CreationError> {
        Ok(Self {
            cfg,
            uac: Vec::new(),
            uas: Vec::new(),
            uas_by_id: HashMap::new(),
            timers: BinaryHeap::new(),
            branch_seq: 0,
            up: 0,
            established: 0,
            stats: SipStats {
                started: 0,
                answered: 0,
                completed: 0,
                failures: BTreeMap::new(),
                setup_us: Histogram::new_with_bounds(1, 120_000_000, 3)?,
                reinvites_ok: 0,
                retransmissions: 0,
                stray: 0,
            },
        })
    }

    fn workers(&self) -> usize {
        self.cfg.media_a.len().min(self.cfg.media_b.len()).max(1)
    }

    fn branch(&mut self) -> String {
        self.branch_seq += 1;
        format!("z9hG4bKlt{:x}x{}", self.cfg.run, self.branch_seq)
    }

    fn sdp(&self, addr: SocketAddr, version: u32, crypto: Option<(u32, &SrtpKey)>) -> Vec<u8> {
        sdp_for(addr, self.cfg.pt, self.cfg.ptime_ms, version, crypto)
    }

    fn kind_for(&self, idx: usize) -> Kind {
        // A fixed low-discrepancy sequence so shares hold even for small runs.
        let x = (idx as f64 * 0.618_033_988_749_895).fract();
        let c = &self.cfg;
        if x < c.share_cancel {
            Kind::Cancel
        } else if x < c.share_cancel + c.share_callee_bye {
            Kind::CalleeBye
        } else if x < c.share_cancel + c.share_callee_bye + c.share_reinvite {
            Kind::ReInvite
        } else {
            Kind::Normal
        }
    }

    fn arm(&mut self, side: Side, idx: usize, at: u64) {
        self.timers.push(Reverse((at, side, idx)));
    }

    fn fail(&mut self, reason: String) {
        *self.stats.failures.entry(reason).or_default() += 1;
    }

    /// Starts one call; returns its index.
    pub fn start_call(&mut self, now: u64, out: &mut Vec<Out>) -> usize {
        let idx = self.uac.len();
        let kind = self.kind_for(idx);
        let w = idx % self.workers();
        let a = self.cfg.uac_addr;
        let t = self.cfg.target;
        let number = format!("+1555{idx:08}{}", kind as u8);
        let ruri = format!("sip:{number}@{t}");
        let run = self.cfg.run;
        let call_id = format!("c{idx}-lt{run:x}@{}", a.ip());
        let from = format!("<sip:+1444{idx:08}@{a}>;tag=f{idx}x{run:x}");
        let to = format!("<sip:{number}@{t}>");
        let branch = self.branch();
        let media_addr = self.cfg.media_a.get(w).copied().unwrap_or(a);
        let mut inv = Request::builder(Method::Invite, &ruri);
        inv.push(
            HeaderName::Via,
            &format!("SIP/2.0/UDP {a};branch={branch};rport"),
        )
        .push(HeaderName::MaxForwards, "70")
        .push(HeaderName::From, &from)
        .push(HeaderName::To, &to)
        .push(HeaderName::CallId, &call_id)
        .push(HeaderName::CSeq, "1 INVITE")
        .push(HeaderName::Contact, &format!("<sip:lt@{a}>"));
        if self.cfg.refresh_ns > 0 {
            let secs = (self.cfg.refresh_ns * 2 / 1_000_000_000).max(90);
            inv.push(HeaderName::SessionExpires, &format!("{secs};refresher=uac"));
        }
        let key = call_key(idx, 0);
        let crypto = self.cfg.srtp_caller.then_some((1, &key));
        inv.set_body_with_type("application/sdp", self.sdp(media_addr, 1, crypto));
        let bytes = inv.to_bytes();
        out.push(Out::Send {
            side: Side::Uac,
            to: t,
            bytes: bytes.clone(),
        });
        let retx = Retx {
            bytes,
            to: t,
            next: now + T1_NS,
            interval: T1_NS,
            give_up: now + 64 * T1_NS,
            cap: u64::MAX,
            what: "INVITE",
        };
        self.arm(Side::Uac, idx, now + T1_NS);
        self.uac.push(UacCall {
            kind,
            call_id,
            from,
            to,
            ruri,
            remote_target: None,
            route_set: Vec::new(),
            state: UacState::Calling,
            cseq: 1,
            invite_branch: branch,
            invite_cseq: 1,
            invite_sent: now,
            retx: Some(retx),
            action: None,
            media: false,
            rx_key: None,
        });
        self.stats.started += 1;
        self.up += 1;
        idx
    }

    /// Ends every call still up (the run's end): BYE for confirmed calls, CANCEL for
    /// ringing ones.
    pub fn hang_up_all(&mut self, now: u64, out: &mut Vec<Out>) {
        for idx in 0..self.uac.len() {
            let Some(c) = self.uac.get_mut(idx) else {
                continue;
            };
            match c.state {
                UacState::Confirmed => {
                    c.kind = Kind::Normal;
                    c.action = Some((now, Action::StopMedia));
                    self.arm(Side::Uac, idx, now);
                }
                UacState::Proceeding => {
                    c.action = Some((now, Action::SendCancel));
                    self.arm(Side::Uac, idx, now);
                }
                _ => {}
            }
        }
        // Both populations live in this process: stop the callee streams now too, so the
        // BYEs (sent after the media drain) never race packets still in flight.
        for idx in 0..self.uas.len() {
            self.uas_stop_media(idx, out);
        }
    }

    /// The earliest pending timer.
    pub fn next_timer(&self) -> Option<u64> {
        self.timers.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Fires timers due at `now` (at most `budget`).
    pub fn poll_timers(&mut self, now: u64, budget: usize, out: &mut Vec<Out>) {
        for _ in 0..budget {
            match self.timers.peek() {
                Some(Reverse((t, _, _))) if *t <= now => {}
                _ => return,
            }
            let Some(Reverse((_, side, idx))) = self.timers.pop() else {
                return;
            };
            match side {
                Side::Uac => self.uac_timer(now, idx, out),
                Side::Uas => self.uas_timer(now, idx, out),
            }
        }
    }

    fn retx_fire(retx: &mut Option<Retx>, now: u64, side: Side, out: &mut Vec<Out>) -> RetxOutcome {
        let Some(r) = retx.as_mut() else {
            return RetxOutcome::Idle;
        };
        if r.next > now {
            return RetxOutcome::Idle;
        }
        if now >= r.give_up {
            let what = r.what;
            *retx = None;
            return RetxOutcome::TimedOut(what);
        }
        out.push(Out::Send {
            side,
            to: r.to,
            bytes: r.bytes.clone(),
        });
        r.interval = (r.interval * 2).min(r.cap);
        r.next = (now + r.interval).min(r.give_up);
        RetxOutcome::Sent(r.next)
    }

    pub fn handle(
        &mut self,
        now: u64,
        side: Side,
        from: SocketAddr,
        data: &[u8],
        out: &mut Vec<Out>,
    ) {
        let Ok(msg) = Message::parse(data) else {
            self.stats.stray += 1;
            return;
        };
        match (side, msg.status()) {
            (Side::Uac, Some(code)) => self.uac_response(now, &msg, code, out),
            (Side::Uac, None) => self.uac_request(now, from, &msg, out),
            (Side::Uas, None) => self.uas_request(now, from, &msg, out),
            (Side::Uas, Some(_)) => self.uas_response(&msg),
        }
    }
}

enum RetxOutcome {
    Idle,
    Sent(u64),
    TimedOut(&'static str),
}

mod uac;
mod uas;

#[cfg(test)]
mod tests;

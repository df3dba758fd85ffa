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
use portcullis_sip::sdp::SessionDescription;
use portcullis_sip::{HeaderName, Message, Method, OwnedMessage, Request, Response};

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
    /// Start a media stream from media worker `worker`, socket `socket`.
    MediaAdd {
        worker: usize,
        socket: usize,
        ssrc: u32,
        dest: SocketAddr,
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
    state: UacState,
    cseq: u32,
    invite_branch: String,
    invite_cseq: u32,
    invite_sent: u64,
    retx: Option<Retx>,
    action: Option<(u64, Action)>,
    media: bool,
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

/// A minimal audio SDP (RFC 8866) offering one G.711 codec at `addr`.
pub fn sdp_for(addr: SocketAddr, pt: u8, ptime_ms: u32, version: u32) -> Vec<u8> {
    let ip = addr.ip();
    let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let codec = if pt == 8 { "PCMA" } else { "PCMU" };
    format!(
        "v=0\r\no=lt 1 {version} IN {fam} {ip}\r\ns=-\r\nc=IN {fam} {ip}\r\nt=0 0\r\n\
         m=audio {} RTP/AVP {pt}\r\na=rtpmap:{pt} {codec}/8000\r\na=ptime:{ptime_ms}\r\na=sendrecv\r\n",
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
        format!("z9hG4bKlt{}", self.branch_seq)
    }

    fn sdp(&self, addr: SocketAddr, version: u32) -> Vec<u8> {
        sdp_for(addr, self.cfg.pt, self.cfg.ptime_ms, version)
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
        let call_id = format!("c{idx}-lt@{}", a.ip());
        let from = format!("<sip:+1444{idx:08}@{a}>;tag=f{idx}");
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
        inv.set_body_with_type("application/sdp", self.sdp(media_addr, 1));
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
            state: UacState::Calling,
            cseq: 1,
            invite_branch: branch,
            invite_cseq: 1,
            invite_sent: now,
            retx: Some(retx),
            action: None,
            media: false,
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
        let _ = out;
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

    fn uac_timer(&mut self, now: u64, idx: usize, out: &mut Vec<Out>) {
        let w = idx % self.workers();
        let Some(c) = self.uac.get_mut(idx) else {
            return;
        };
        if c.state == UacState::Done {
            return;
        }
        match Self::retx_fire(&mut c.retx, now, Side::Uac, out) {
            RetxOutcome::Sent(next) => {
                self.stats.retransmissions += 1;
                self.arm(Side::Uac, idx, next);
            }
            RetxOutcome::TimedOut(what) => {
                self.finish_uac(idx, now, Some(format!("timeout {what}")), out);
                return;
            }
            RetxOutcome::Idle => {}
        }
        let Some(c) = self.uac.get_mut(idx) else {
            return;
        };
        let Some((at, action)) = c.action else { return };
        if at > now {
            return;
        }
        c.action = None;
        match action {
            Action::StopMedia => {
                if c.media {
                    c.media = false;
                    out.push(Out::MediaRemove {
                        worker: w,
                        ssrc: ssrcs(idx).0,
                    });
                }
                if c.kind == Kind::CalleeBye {
                    // The callee hangs up; give it a generous deadline.
                    c.action = Some((now + 64 * T1_NS, Action::GiveUp));
                    self.arm(Side::Uac, idx, now + 64 * T1_NS);
                } else {
                    c.action = Some((now + MEDIA_DRAIN_NS, Action::SendBye));
                    self.arm(Side::Uac, idx, now + MEDIA_DRAIN_NS);
                }
                if self.established > 0 {
                    self.established -= 1;
                }
            }
            Action::SendBye => {
                c.cseq += 1;
                c.state = UacState::Terminating;
                let req = self.uac_in_dialog(idx, Method::Bye, None);
                self.send_uac_nict(idx, now, req, "BYE", out);
            }
            Action::SendCancel => {
                let a = self.cfg.uac_addr;
                let mut req = Request::builder(Method::Cancel, &c.ruri);
                req.push(
                    HeaderName::Via,
                    &format!("SIP/2.0/UDP {a};branch={};rport", c.invite_branch),
                )
                .push(HeaderName::MaxForwards, "70")
                .push(HeaderName::From, &c.from)
                .push(HeaderName::To, &c.to)
                .push(HeaderName::CallId, &c.call_id)
                .push(HeaderName::CSeq, &format!("{} CANCEL", c.invite_cseq));
                self.send_uac_nict(idx, now, req.to_bytes(), "CANCEL", out);
                if let Some(c) = self.uac.get_mut(idx) {
                    c.action = Some((now + 64 * T1_NS, Action::GiveUp));
                }
                self.arm(Side::Uac, idx, now + 64 * T1_NS);
            }
            Action::ReInvite => {
                c.cseq += 1;
                c.invite_cseq = c.cseq;
                let v = c.cseq;
                let media_addr = self
                    .cfg
                    .media_a
                    .get(w)
                    .copied()
                    .unwrap_or(self.cfg.uac_addr);
                let body = self.sdp(media_addr, v);
                let req = self.uac_in_dialog(idx, Method::Invite, Some(body));
                let t = self.cfg.target;
                out.push(Out::Send {
                    side: Side::Uac,
                    to: t,
                    bytes: req.clone(),
                });
                if let Some(c) = self.uac.get_mut(idx) {
                    c.retx = Some(Retx {
                        bytes: req,
                        to: t,
                        next: now + T1_NS,
                        interval: T1_NS,
                        give_up: now + 64 * T1_NS,
                        cap: u64::MAX,
                        what: "re-INVITE",
                    });
                }
                self.arm(Side::Uac, idx, now + T1_NS);
            }
            Action::GiveUp => {
                let why = match c.state {
                    UacState::Confirmed => "callee never hung up",
                    _ => "no final response",
                };
                self.finish_uac(idx, now, Some(why.to_string()), out);
            }
        }
    }

    fn send_uac_nict(
        &mut self,
        idx: usize,
        now: u64,
        bytes: Vec<u8>,
        what: &'static str,
        out: &mut Vec<Out>,
    ) {
        let t = self.cfg.target;
        out.push(Out::Send {
            side: Side::Uac,
            to: t,
            bytes: bytes.clone(),
        });
        if let Some(c) = self.uac.get_mut(idx) {
            c.retx = Some(Retx {
                bytes,
                to: t,
                next: now + T1_NS,
                interval: T1_NS,
                give_up: now + 64 * T1_NS,
                cap: T2_NS,
                what,
            });
        }
        self.arm(Side::Uac, idx, now + T1_NS);
    }

    /// An in-dialog request from the caller (RFC 3261 §12.2.1.1).
    fn uac_in_dialog(&mut self, idx: usize, method: Method, sdp: Option<Vec<u8>>) -> Vec<u8> {
        let branch = self.branch();
        let a = self.cfg.uac_addr;
        let Some(c) = self.uac.get(idx) else {
            return Vec::new();
        };
        let target = c.remote_target.clone().unwrap_or_else(|| c.ruri.clone());
        let mut req = Request::builder(method, &target);
        req.push(
            HeaderName::Via,
            &format!("SIP/2.0/UDP {a};branch={branch};rport"),
        )
        .push(HeaderName::MaxForwards, "70")
        .push(HeaderName::From, &c.from)
        .push(HeaderName::To, &c.to)
        .push(HeaderName::CallId, &c.call_id)
        .push(HeaderName::CSeq, &format!("{} {}", c.cseq, method.as_str()));
        if method == Method::Invite {
            req.push(HeaderName::Contact, &format!("<sip:lt@{a}>"));
        }
        if let Some(b) = sdp {
            req.set_body_with_type("application/sdp", b);
        }
        req.to_bytes()
    }

    fn ack(&mut self, idx: usize, branch: Option<String>, cseq: u32) -> Vec<u8> {
        let branch = branch.unwrap_or_else(|| self.branch());
        let a = self.cfg.uac_addr;
        let Some(c) = self.uac.get(idx) else {
            return Vec::new();
        };
        let target = c.remote_target.clone().unwrap_or_else(|| c.ruri.clone());
        let mut req = Request::builder(Method::Ack, &target);
        req.push(
            HeaderName::Via,
            &format!("SIP/2.0/UDP {a};branch={branch};rport"),
        )
        .push(HeaderName::MaxForwards, "70")
        .push(HeaderName::From, &c.from)
        .push(HeaderName::To, &c.to)
        .push(HeaderName::CallId, &c.call_id)
        .push(HeaderName::CSeq, &format!("{cseq} ACK"));
        req.to_bytes()
    }

    fn finish_uac(&mut self, idx: usize, _now: u64, failure: Option<String>, out: &mut Vec<Out>) {
        let w = idx % self.workers();
        let Some(c) = self.uac.get_mut(idx) else {
            return;
        };
        if c.state == UacState::Done {
            return;
        }
        if c.media {
            out.push(Out::MediaRemove {
                worker: w,
                ssrc: ssrcs(idx).0,
            });
        }
        if c.state == UacState::Confirmed && c.action.is_some_and(|(_, a)| a != Action::SendBye) {
            self.established = self.established.saturating_sub(1);
        }
        c.media = false;
        c.state = UacState::Done;
        c.retx = None;
        c.action = None;
        self.up = self.up.saturating_sub(1);
        match failure {
            None => self.stats.completed += 1,
            Some(r) => self.fail(r),
        }
    }

    /// Handles one datagram received on `side` from `from`.
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

    fn uac_index(&self, call_id: &str) -> Option<usize> {
        let rest = call_id.strip_prefix('c')?;
        let n: usize = rest.split('-').next()?.parse().ok()?;
        let c = self.uac.get(n)?;
        (c.call_id == call_id).then_some(n)
    }

    fn uac_response(&mut self, now: u64, msg: &Message<'_>, code: u16, out: &mut Vec<Out>) {
        let Some(idx) = msg.call_id().and_then(|id| self.uac_index(id)) else {
            self.stats.stray += 1;
            return;
        };
        let Ok(cseq) = msg.cseq() else { return };
        let (method, seq) = (cseq.method.to_string(), cseq.seq);
        let to = msg.get(HeaderName::To).unwrap_or("").to_string();
        let contact = msg.get(HeaderName::Contact).map(|v| uri_of(v).to_string());
        let body = msg.body().to_vec();
        let workers = self.workers();
        let hold = self.cfg.hold_ns;
        let Some(c) = self.uac.get_mut(idx) else {
            return;
        };
        if c.state == UacState::Done {
            // A retransmitted 2xx after we finished: ACK it again below if INVITE.
            if method == "INVITE" && (200..300).contains(&code) {
                let ack = self.ack(idx, None, seq);
                out.push(Out::Send {
                    side: Side::Uac,
                    to: self.cfg.target,
                    bytes: ack,
                });
            }
            return;
        }
        match method.as_str() {
            "INVITE" if seq == c.invite_cseq => {
                if code < 200 {
                    if c.state == UacState::Calling {
                        c.state = UacState::Proceeding;
                        c.retx = None;
                        if c.kind == Kind::Cancel {
                            c.action = Some((now + 300_000_000, Action::SendCancel));
                            self.arm(Side::Uac, idx, now + 300_000_000);
                        } else {
                            c.action = Some((now + 64 * T1_NS, Action::GiveUp));
                            self.arm(Side::Uac, idx, now + 64 * T1_NS);
                        }
                    }
                    return;
                }
                let first = seq == 1;
                if (200..300).contains(&code) {
                    if tag_of(&c.to).is_none() {
                        c.to = to;
                    }
                    if let Some(ct) = contact {
                        c.remote_target = Some(ct);
                    }
                    let was_confirmed = c.state == UacState::Confirmed;
                    c.retx = None;
                    let ack = self.ack(idx, None, seq);
                    out.push(Out::Send {
                        side: Side::Uac,
                        to: self.cfg.target,
                        bytes: ack,
                    });
                    let Some(c) = self.uac.get_mut(idx) else {
                        return;
                    };
                    if first && !was_confirmed && c.state != UacState::Terminating {
                        c.state = UacState::Confirmed;
                        self.stats.answered += 1;
                        self.established += 1;
                        let setup = (now.saturating_sub(c.invite_sent) / 1000).max(1);
                        let _ = self.stats.setup_us.record(setup);
                        if self.cfg.media {
                            let dest = SessionDescription::parse(&body)
                                .ok()
                                .and_then(|s| s.rtp_destination(0));
                            match dest {
                                Some(dest) => {
                                    c.media = true;
                                    out.push(Out::MediaAdd {
                                        worker: idx % workers,
                                        socket: 0,
                                        ssrc: ssrcs(idx).0,
                                        dest,
                                    });
                                }
                                None => {
                                    self.finish_uac(idx, now, Some("bad answer SDP".into()), out);
                                    return;
                                }
                            }
                        }
                        let Some(c) = self.uac.get_mut(idx) else {
                            return;
                        };
                        let refresh = self.cfg.refresh_ns;
                        let next = if c.kind == Kind::ReInvite && hold > 0 {
                            (now + hold / 2, Action::ReInvite)
                        } else if refresh > 0 && refresh < hold {
                            (now + refresh, Action::ReInvite)
                        } else {
                            (now + hold, Action::StopMedia)
                        };
                        c.action = Some(next);
                        self.arm(Side::Uac, idx, next.0);
                    } else if !first {
                        // A re-INVITE answered: schedule the next refresh or the end.
                        self.stats.reinvites_ok += 1;
                        let end = c.invite_sent + hold;
                        let refresh = self.cfg.refresh_ns;
                        let next = if refresh > 0 && now + refresh < end {
                            (now + refresh, Action::ReInvite)
                        } else {
                            (end.max(now), Action::StopMedia)
                        };
                        if c.action.is_none() {
                            c.action = Some(next);
                            self.arm(Side::Uac, idx, next.0);
                        }
                    }
                } else {
                    // Non-2xx final: ACK in the INVITE transaction (RFC 3261 §17.1.1.3).
                    c.to = to;
                    let branch = c.invite_branch.clone();
                    let ack = self.ack(idx, Some(branch), seq);
                    out.push(Out::Send {
                        side: Side::Uac,
                        to: self.cfg.target,
                        bytes: ack,
                    });
                    let Some(c) = self.uac.get_mut(idx) else {
                        return;
                    };
                    if !first {
                        // Failed re-INVITE: the dialog goes on (RFC 3261 §14.1).
                        c.retx = None;
                        *self
                            .stats
                            .failures
                            .entry(format!("re-INVITE {code}"))
                            .or_default() += 1;
                        c.action = Some((now, Action::StopMedia));
                        self.arm(Side::Uac, idx, now);
                    } else if code == 487 && c.kind == Kind::Cancel {
                        self.finish_uac(idx, now, None, out);
                    } else {
                        self.finish_uac(idx, now, Some(code.to_string()), out);
                    }
                }
            }
            "BYE" if code >= 200 => {
                let failure = (!(200..300).contains(&code)).then(|| format!("BYE {code}"));
                self.finish_uac(idx, now, failure, out);
            }
            "CANCEL" if code >= 200 => {
                c.retx = None;
            }
            _ => {}
        }
    }

    fn uac_request(&mut self, now: u64, from: SocketAddr, msg: &Message<'_>, out: &mut Vec<Out>) {
        let resp = OwnedMessage::response_to(msg, 200, "OK").to_bytes();
        out.push(Out::Send {
            side: Side::Uac,
            to: from,
            bytes: resp,
        });
        if msg.method() == Some("BYE") {
            if let Some(idx) = msg.call_id().and_then(|id| self.uac_index(id)) {
                let failure = match self.uac.get(idx).map(|c| c.kind) {
                    Some(Kind::CalleeBye) => None,
                    _ => Some("unexpected BYE from callee".to_string()),
                };
                self.finish_uac(idx, now, failure, out);
            }
        }
    }

    fn uas_response(&mut self, msg: &Message<'_>) {
        // 200 to our BYE ends the callee side.
        let Some(&idx) = msg.call_id().and_then(|id| self.uas_by_id.get(id)) else {
            return;
        };
        if let Some(c) = self.uas.get_mut(idx) {
            if msg.status().is_some_and(|s| s >= 200) {
                c.retx = None;
                c.done = true;
            }
        }
    }

    fn uas_request(&mut self, now: u64, from: SocketAddr, msg: &Message<'_>, out: &mut Vec<Out>) {
        let Some(call_id) = msg.call_id() else { return };
        let method = msg.method().unwrap_or("");
        let existing = self.uas_by_id.get(call_id).copied();
        match (method, existing) {
            ("INVITE", None) => self.uas_new_invite(now, from, msg, call_id, out),
            ("INVITE", Some(idx)) => {
                let to_tagged = msg.get(HeaderName::To).and_then(tag_of).is_some();
                let Some(c) = self.uas.get_mut(idx) else {
                    return;
                };
                if !to_tagged {
                    // Retransmission of the initial INVITE: repeat the last response.
                    if let Some(r) = &c.last_response {
                        out.push(Out::Send {
                            side: Side::Uas,
                            to: from,
                            bytes: r.clone(),
                        });
                    }
                    return;
                }
                // re-INVITE: answer with the same SDP, retransmit until ACK.
                let w = c.worker;
                let media = self
                    .cfg
                    .media_b
                    .get(w)
                    .copied()
                    .unwrap_or(self.cfg.uas_addr);
                let sdp = self.sdp(media, 2);
                let mut ok = Response::to(msg, 200, "OK");
                ok.push(
                    HeaderName::Contact,
                    &format!("<sip:uas@{}>", self.cfg.uas_addr),
                );
                ok.set_body_with_type("application/sdp", sdp);
                self.uas_send_2xx(idx, now, from, ok.to_bytes(), out);
            }
            ("ACK", Some(idx)) => {
                let Some(c) = self.uas.get_mut(idx) else {
                    return;
                };
                c.retx = None;
                if !c.confirmed && c.kind != Kind::Cancel {
                    c.confirmed = true;
                    let at = now + self.cfg.hold_ns;
                    c.action = Some((at, Action::StopMedia));
                    self.arm(Side::Uas, idx, at);
                }
            }
            ("CANCEL", Some(idx)) => {
                out.push(Out::Send {
                    side: Side::Uas,
                    to: from,
                    bytes: Response::to(msg, 200, "OK").to_bytes(),
                });
                let Some(c) = self.uas.get(idx) else { return };
                if c.confirmed || c.last_response.is_none() {
                    return;
                }
                // 487 to the INVITE (RFC 3261 §9.2), retransmitted until ACK.
                let inv = c.last_response.clone().unwrap_or_default();
                let Ok(ringing) = Message::parse(&inv) else {
                    return;
                };
                let mut r = OwnedMessage::from_message(&ringing);
                r.set_status(487, "Request Terminated");
                r.clear_body();
                self.uas_send_2xx(idx, now, from, r.to_bytes(), out);
            }
            ("BYE", Some(idx)) => {
                out.push(Out::Send {
                    side: Side::Uas,
                    to: from,
                    bytes: Response::to(msg, 200, "OK").to_bytes(),
                });
                self.uas_stop_media(idx, out);
                if let Some(c) = self.uas.get_mut(idx) {
                    c.done = true;
                    c.action = None;
                    c.retx = None;
                }
            }
            ("ACK", None) => {}
            (_, _) => {
                let code = if existing.is_some() { 200 } else { 481 };
                out.push(Out::Send {
                    side: Side::Uas,
                    to: from,
                    bytes: Response::to(msg, code, "OK").to_bytes(),
                });
            }
        }
    }

    fn uas_new_invite(
        &mut self,
        now: u64,
        from: SocketAddr,
        msg: &Message<'_>,
        call_id: &str,
        out: &mut Vec<Out>,
    ) {
        let to_v = msg.get(HeaderName::To).unwrap_or("");
        let kind = user_of(to_v)
            .and_then(|u| u.as_bytes().last().copied())
            .map(Kind::from_digit)
            .unwrap_or(Kind::Normal);
        let idx = self.uas.len();
        let w = idx % self.workers();
        let tag = format!("u{idx}");
        let remote_sdp = SessionDescription::parse(msg.body())
            .ok()
            .and_then(|s| s.rtp_destination(0));
        let local = format!("{to_v};tag={tag}");
        let remote = msg.get(HeaderName::From).unwrap_or("").to_string();
        let remote_target = msg
            .get(HeaderName::Contact)
            .map(|v| uri_of(v).to_string())
            .unwrap_or_else(|| format!("sip:{from}"));
        self.uas_by_id.insert(call_id.to_string(), idx);
        self.uas.push(UasCall {
            kind,
            peer: from,
            call_id: call_id.to_string(),
            local,
            remote,
            remote_target,
            cseq: 0,
            last_response: None,
            retx: None,
            action: None,
            media: false,
            confirmed: false,
            done: false,
            worker: w,
        });
        let mut ringing = Response::to(msg, 180, "Ringing");
        ringing.set_to_tag(&tag);
        let ringing = ringing.to_bytes();
        out.push(Out::Send {
            side: Side::Uas,
            to: from,
            bytes: ringing.clone(),
        });
        if kind == Kind::Cancel {
            if let Some(c) = self.uas.get_mut(idx) {
                c.last_response = Some(ringing);
            }
            return;
        }
        if self.cfg.media {
            let Some(dest) = remote_sdp else {
                let r = Response::to(msg, 488, "Not Acceptable Here");
                out.push(Out::Send {
                    side: Side::Uas,
                    to: from,
                    bytes: r.to_bytes(),
                });
                return;
            };
            if let Some(c) = self.uas.get_mut(idx) {
                c.media = true;
            }
            out.push(Out::MediaAdd {
                worker: w,
                socket: 1,
                ssrc: ssrcs(idx).1,
                dest,
            });
        }
        let media = self
            .cfg
            .media_b
            .get(w)
            .copied()
            .unwrap_or(self.cfg.uas_addr);
        let mut ok = Response::to(msg, 200, "OK");
        ok.set_to_tag(&tag).push(
            HeaderName::Contact,
            &format!("<sip:uas@{}>", self.cfg.uas_addr),
        );
        ok.set_body_with_type("application/sdp", self.sdp(media, 1));
        self.uas_send_2xx(idx, now, from, ok.to_bytes(), out);
    }

    fn uas_send_2xx(
        &mut self,
        idx: usize,
        now: u64,
        to: SocketAddr,
        bytes: Vec<u8>,
        out: &mut Vec<Out>,
    ) {
        out.push(Out::Send {
            side: Side::Uas,
            to,
            bytes: bytes.clone(),
        });
        if let Some(c) = self.uas.get_mut(idx) {
            c.last_response = Some(bytes.clone());
            c.retx = Some(Retx {
                bytes,
                to,
                next: now + T1_NS,
                interval: T1_NS,
                give_up: now + 64 * T1_NS,
                cap: T2_NS,
                what: "ACK (callee)",
            });
        }
        self.arm(Side::Uas, idx, now + T1_NS);
    }

    fn uas_stop_media(&mut self, idx: usize, out: &mut Vec<Out>) {
        if let Some(c) = self.uas.get_mut(idx) {
            if c.media {
                c.media = false;
                out.push(Out::MediaRemove {
                    worker: c.worker,
                    ssrc: ssrcs(idx).1,
                });
            }
        }
    }

    fn uas_timer(&mut self, now: u64, idx: usize, out: &mut Vec<Out>) {
        let Some(c) = self.uas.get_mut(idx) else {
            return;
        };
        if c.done {
            return;
        }
        match Self::retx_fire(&mut c.retx, now, Side::Uas, out) {
            RetxOutcome::Sent(next) => {
                self.stats.retransmissions += 1;
                self.arm(Side::Uas, idx, next);
            }
            RetxOutcome::TimedOut(what) => {
                self.fail(format!("timeout {what}"));
                self.uas_stop_media(idx, out);
                if let Some(c) = self.uas.get_mut(idx) {
                    c.done = true;
                }
                return;
            }
            RetxOutcome::Idle => {}
        }
        let Some(c) = self.uas.get_mut(idx) else {
            return;
        };
        let Some((at, action)) = c.action else { return };
        if at > now {
            return;
        }
        c.action = None;
        match action {
            Action::StopMedia => {
                let bye = c.kind == Kind::CalleeBye;
                self.uas_stop_media(idx, out);
                if bye {
                    if let Some(c) = self.uas.get_mut(idx) {
                        c.action = Some((now + MEDIA_DRAIN_NS, Action::SendBye));
                    }
                    self.arm(Side::Uas, idx, now + MEDIA_DRAIN_NS);
                }
            }
            Action::SendBye => {
                let branch = self.branch();
                let a = self.cfg.uas_addr;
                let Some(c) = self.uas.get_mut(idx) else {
                    return;
                };
                c.cseq += 1;
                let mut req = Request::builder(Method::Bye, &c.remote_target);
                req.push(
                    HeaderName::Via,
                    &format!("SIP/2.0/UDP {a};branch={branch};rport"),
                )
                .push(HeaderName::MaxForwards, "70")
                .push(HeaderName::From, &c.local)
                .push(HeaderName::To, &c.remote)
                .push(HeaderName::CallId, &c.call_id)
                .push(HeaderName::CSeq, &format!("{} BYE", c.cseq));
                let bytes = req.to_bytes();
                let to = c.peer;
                out.push(Out::Send {
                    side: Side::Uas,
                    to,
                    bytes: bytes.clone(),
                });
                c.retx = Some(Retx {
                    bytes,
                    to,
                    next: now + T1_NS,
                    interval: T1_NS,
                    give_up: now + 64 * T1_NS,
                    cap: T2_NS,
                    what: "BYE (callee)",
                });
                self.arm(Side::Uas, idx, now + T1_NS);
            }
            _ => {}
        }
    }
}

enum RetxOutcome {
    Idle,
    Sent(u64),
    TimedOut(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_helpers() {
        assert_eq!(
            user_of("<sip:+15550000012@127.0.0.1:5060>;tag=x"),
            Some("+15550000012")
        );
        assert_eq!(
            uri_of("<sip:uas@127.0.0.1:5080>;expires=3"),
            "sip:uas@127.0.0.1:5080"
        );
        assert_eq!(tag_of("<sip:a@b>;tag=abc;x=y"), Some("abc"));
        assert_eq!(tag_of("<sip:a@b>"), None);
        assert_eq!(user_of("garbage"), None);
    }

    fn cfg(hold_s: u64) -> SipConfig {
        SipConfig {
            target: "127.0.0.1:5080".parse().unwrap(),
            uac_addr: "127.0.0.1:5070".parse().unwrap(),
            uas_addr: "127.0.0.1:5080".parse().unwrap(),
            media_a: vec!["127.0.0.1:4000".parse().unwrap()],
            media_b: vec!["127.0.0.1:4002".parse().unwrap()],
            hold_ns: hold_s * 1_000_000_000,
            refresh_ns: 0,
            share_reinvite: 0.25,
            share_cancel: 0.25,
            share_callee_bye: 0.25,
            pt: 0,
            ptime_ms: 20,
            media: true,
        }
    }

    /// Virtual-time harness: UAC and UAS talk straight to each other; `drop` decides
    /// which datagrams (by running count) are lost.
    fn simulate(calls: usize, drop: impl Fn(u64, &[u8]) -> bool) -> (Population, i64) {
        let mut p = Population::new(cfg(2)).unwrap();
        let mut now = 0u64;
        let mut out = Vec::new();
        let mut media: i64 = 0;
        let mut n = 0u64;
        for _ in 0..calls {
            p.start_call(now, &mut out);
        }
        let step = 10_000_000;
        while now < 120_000_000_000 {
            let mut pending: Vec<Out> = std::mem::take(&mut out);
            while !pending.is_empty() {
                for o in pending.drain(..) {
                    match o {
                        Out::Send { side, bytes, .. } => {
                            n += 1;
                            if drop(n, &bytes) {
                                continue;
                            }
                            let (to, from) = match side {
                                Side::Uac => (Side::Uas, p.cfg.uac_addr),
                                Side::Uas => (Side::Uac, p.cfg.uas_addr),
                            };
                            p.handle(now, to, from, &bytes, &mut out);
                        }
                        Out::MediaAdd { .. } => media += 1,
                        Out::MediaRemove { .. } => media -= 1,
                    }
                }
                pending = std::mem::take(&mut out);
            }
            if p.up == 0 {
                break;
            }
            now += step;
            p.poll_timers(now, usize::MAX, &mut out);
        }
        (p, media)
    }

    #[test]
    fn all_call_kinds_complete_without_loss() {
        let (p, media) = simulate(40, |_, _| false);
        assert_eq!(p.stats.started, 40);
        assert_eq!(p.stats.completed, 40, "failures: {:?}", p.stats.failures);
        assert_eq!(p.stats.failed(), 0);
        let kinds: Vec<Kind> = (0..40).map(|i| p.kind_for(i)).collect();
        let count = |k: Kind| kinds.iter().filter(|&&x| x == k).count() as u64;
        for k in [Kind::Normal, Kind::ReInvite, Kind::Cancel, Kind::CalleeBye] {
            assert!((8..=12).contains(&count(k)), "{k:?}: {}", count(k));
        }
        // Cancelled calls are never answered.
        assert_eq!(p.stats.answered, 40 - count(Kind::Cancel));
        assert_eq!(p.stats.reinvites_ok, count(Kind::ReInvite));
        assert_eq!(p.stats.retransmissions, 0);
        assert_eq!(media, 0, "every started stream is stopped");
        assert_eq!(p.up, 0);
    }

    #[test]
    fn lost_requests_and_responses_are_retransmitted() {
        // Drop every 4th datagram: INVITEs, 200s, ACKs, BYEs and CANCELs all get hit.
        let (p, media) = simulate(40, |n, _| n % 4 == 0);
        assert_eq!(p.stats.completed, 40, "failures: {:?}", p.stats.failures);
        assert!(p.stats.retransmissions > 0);
        assert_eq!(media, 0);
    }

    #[test]
    fn silent_peer_times_out_after_64_t1() {
        let (p, _) = simulate(3, |_, b| b.starts_with(b"INVITE"));
        assert_eq!(p.stats.failures.get("timeout INVITE"), Some(&3));
        // Timer A: T1, 2T1, 4T1, ... below 64·T1 = 6 retransmissions per call.
        assert_eq!(p.stats.retransmissions, 18);
    }

    #[test]
    fn garbage_is_counted_not_fatal() {
        let mut p = Population::new(cfg(1)).unwrap();
        let mut out = Vec::new();
        let from = p.cfg.uas_addr;
        for junk in [
            &b"\x00\xff"[..],
            b"SIP/2.0 200 OK\r\n\r\n",
            b"INVITE x SIP/2.0\r\n\r\n",
        ] {
            p.handle(0, Side::Uac, from, junk, &mut out);
            p.handle(0, Side::Uas, from, junk, &mut out);
        }
        assert!(p.stats.stray > 0);
    }
}

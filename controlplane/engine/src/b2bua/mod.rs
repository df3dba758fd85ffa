//! The sans-IO B2BUA call engine (RFC 3261 back-to-back user agent), quinn-style.
//!
//! [`B2bua`] terminates every call on an A leg (we are UAS toward the caller)
//! and re-originates it on a B leg (we are UAC toward the routed trunk), with
//! nothing of one leg's Via, Route/Record-Route, Contact, Call-ID, tags or
//! CSeq reaching the other (`headers` lists what crosses). Media is anchored
//! through [`MediaControl`]: every SDP is rewritten (`sdp_rewrite`) and the
//! stream pair reprogrammed after each offer/answer.
//!
//! Inputs carry `now`; outputs are pulled:
//! [`B2bua::handle_datagram`], [`B2bua::handle_timeout`],
//! [`B2bua::handle_transport_error`], [`B2bua::handle_media_event`];
//! [`B2bua::poll_transmit`], [`B2bua::poll_timeout`], [`B2bua::poll_event`].
//!
//! Module map: `call` (state), `invite` (initial INVITE, B responses,
//! CANCEL, forks), `failover` (next target, Retry-After, 3xx, relayed
//! failures), `auth` (digest both legs), `prack` (RFC 3262), `in_dialog` (BYE, re-INVITE,
//! UPDATE, INFO, MESSAGE relays, ACKs), `refer` (REFER transfers, Replaces
//! joins), `options` (OPTIONS answers: availability and load for a load balancer),
//! `teardown` (ending calls, CDRs),
//! `timers` (no-answer, session timers RFC 4028, linger).

mod auth;
mod call;
mod failover;
mod headers;
mod in_dialog;
mod invite;
mod options;
mod prack;
mod refer;
mod route;
mod sdp_rewrite;
mod sim_node;
mod stats;
mod teardown;
mod timers;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use self::call::{Call, CallState, CallTimer, ClientRole};
pub use self::options::{Availability, LOAD_HEADER};
pub use self::stats::{EngineStats, Outcome, TrunkStats};
pub use crate::cdr::{CdrRecord, EndReason, LegRecord, Party};
use crate::config::{ConfigError, EngineConfig, TrunkId};
use crate::digest::{NonceCountGuard, NONCE_GUARD_CAPACITY};
use crate::entropy::{self, Entropy};
use crate::media::{
    MediaControl, MediaEvent, MediaId, MediaStats, Side, SrtpKeyMaterial, SrtpSuite,
};
use crate::policy::{Policy, PolicyVerdict, TrunkLimits};
use crate::routing::{RetryAfterTracker, Router};
use crate::time::Timestamp;
use crate::transaction::{
    make_response, ConnId, Method, PeerAddr, SipMsg, Timer, TransactionLayer, TxConfig, TxEvent,
    TxId, Via,
};

/// Bytes the driver must send.
/// The longest a `503` with `Retry-After` takes a trunk out of routing (RFC 3261
/// §21.5.4): a hostile or broken peer must not disable a trunk for days.
pub const MAX_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub dest: PeerAddr,
    pub bytes: Vec<u8>,
    /// SNI / expected certificate name when `dest` is a TLS trunk.
    pub tls_server_name: Option<String>,
    /// Transaction that produced the bytes (for [`B2bua::handle_tx_error`]).
    pub tx: Option<TxId>,
}

/// What happened to calls (the appliance logs, counts and writes CDRs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallEvent {
    CallStarted {
        call: u64,
        inbound_trunk: String,
        calling: String,
        called: String,
    },
    CallAnswered {
        call: u64,
        outbound_trunk: String,
    },
    /// Exactly one per call that got past classification and routing began.
    CallEnded {
        cdr: Box<CdrRecord>,
    },
    /// A request refused before a call existed (policy, drain, parse).
    Rejected {
        status: u16,
        reason: String,
        source: SocketAddr,
    },
    /// A source was banned by the rate limiter, for `duration` (from now).
    PolicyBan {
        ip: IpAddr,
        duration: std::time::Duration,
    },
}

/// One live call, for the admin API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallSummary {
    pub call: u64,
    pub inbound_trunk: String,
    pub outbound_trunk: Option<String>,
    pub calling: String,
    pub called: String,
    pub answered: bool,
    pub setup_at: Timestamp,
    pub media: Option<MediaId>,
    /// Per leg (A, B): the codec that leg's peer sends (`PCMU/8000`, first payload type of
    /// its last SDP); `None` before its SDP or when media is bypassed.
    pub codec: [Option<String>; 2],
    /// Per leg (A, B): the SRTP suite of the media exchanged with that leg's peer; `None`
    /// for plain RTP.
    pub srtp: [Option<SrtpSuite>; 2],
    /// The data plane's counters of the pair now; `None` when media is bypassed or the
    /// pair is gone.
    pub media_stats: Option<MediaStats>,
}

/// How long an ended call lingers to absorb a late 2xx (64·T1, RFC 3261 §17.1.1.2).
const LINGER_T1_MULTIPLE: u32 = 64;

/// Retry-After (seconds) of the 503 sent while draining or full.
const RETRY_AFTER_SECS: u32 = 30;

/// Reason phrase of a 481.
const DIALOG_UNKNOWN: &str = "Call/Transaction Does Not Exist";

/// Work budget for transaction events handled per input.
const EVENT_BUDGET: usize = 100_000;

/// The B2BUA. See the module docs.
#[derive(Debug)]
pub struct B2bua<M: MediaControl> {
    cfg: Arc<EngineConfig>,
    media: M,
    txn: TransactionLayer,
    calls: BTreeMap<u64, Call>,
    /// (Call-ID, our tag) → (call, leg).
    by_dialog: HashMap<(String, String), (u64, Side)>,
    /// Our client transactions → (call, role).
    by_client_tx: HashMap<TxId, (u64, ClientRole)>,
    /// INVITE server transactions (initial and re-INVITEs) → (call, leg).
    by_invite_tx: HashMap<TxId, (u64, Side)>,
    by_media: HashMap<MediaId, u64>,
    /// Call timers, validated lazily against `Call::timers`.
    timers: BTreeSet<(Timestamp, u64, CallTimer)>,
    events: VecDeque<CallEvent>,
    stats: EngineStats,
    draining: bool,
    /// Calls not yet ended (the global `max_calls` bound).
    live_calls: usize,
    next_call: u64,
    /// Calls holding a slot per trunk.
    trunk_calls: TrunkLimits,
    /// Trunks skipped until the time given by their Retry-After (capped).
    trunk_blocked: RetryAfterTracker,
    /// Secret of our digest nonces' MAC (drawn from the secret source at creation).
    digest_secret: auth::DigestSecret,
    /// Replay guard of inbound digest credentials (bounded).
    nonce_guard: NonceCountGuard,
    /// Trunk of the datagram being handled (classified before parsing).
    current_trunk: Option<TrunkId>,
    router: Router,
    policy: Policy,
    last_parse_errors: u64,
    /// Added to `now` for CDR wall-clock times (ms since the UNIX epoch).
    epoch_offset_ms: u64,
}

impl<M: MediaControl> B2bua<M> {
    /// A B2BUA with `cfg`, driving `media`, drawing its randomness from `entropy`
    /// ([`crate::entropy`]): in production the OS CSPRNG (SRTP keys, ICE credentials
    /// and the digest nonce secret per use; tags, Call-IDs and branches from a CSPRNG
    /// seeded from it), in simulation a seeded source.
    pub fn new(
        cfg: Arc<EngineConfig>,
        media: M,
        entropy: impl Entropy + 'static,
    ) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let router = Router::new(&cfg).map_err(|e| ConfigError::Routing(e.to_string()))?;
        let policy = Policy::new(&cfg.policy);
        let t = &cfg.timers;
        let mut tx_cfg = TxConfig::default();
        tx_cfg.timers.t1 = t.t1;
        tx_cfg.timers.t2 = t.t2;
        tx_cfg.timers.t4 = t.t4;
        tx_cfg.max_server_transactions = cfg.policy.max_transactions;
        tx_cfg.max_server_transactions_per_source = cfg.policy.max_transactions_per_source;
        let mut entropy = entropy;
        let digest_secret = auth::DigestSecret(entropy::secret(&mut entropy));
        Ok(Self {
            txn: TransactionLayer::new(tx_cfg, entropy),
            cfg,
            media,
            calls: BTreeMap::new(),
            by_dialog: HashMap::new(),
            by_client_tx: HashMap::new(),
            by_invite_tx: HashMap::new(),
            by_media: HashMap::new(),
            timers: BTreeSet::new(),
            events: VecDeque::new(),
            stats: EngineStats::default(),
            draining: false,
            live_calls: 0,
            next_call: 1,
            trunk_calls: TrunkLimits::new(),
            trunk_blocked: RetryAfterTracker::new(MAX_RETRY_AFTER),
            digest_secret,
            nonce_guard: NonceCountGuard::new(NONCE_GUARD_CAPACITY),
            current_trunk: None,
            router,
            policy,
            last_parse_errors: 0,
            epoch_offset_ms: 0,
        })
    }

    /// Reload: new calls use `cfg`, calls in progress keep theirs.
    pub fn set_config(&mut self, cfg: Arc<EngineConfig>) -> Result<(), ConfigError> {
        cfg.validate()?;
        self.router = Router::new(&cfg).map_err(|e| ConfigError::Routing(e.to_string()))?;
        self.policy.set_config(&cfg.policy);
        self.txn.set_load_limits(
            cfg.policy.max_transactions,
            cfg.policy.max_transactions_per_source,
        );
        self.cfg = cfg;
        Ok(())
    }

    /// CDR times are `now + offset` (the driver passes UNIX-epoch ms of its
    /// `Timestamp::ZERO`; the engine itself never reads a clock).
    pub fn set_epoch_offset_ms(&mut self, offset_ms: u64) {
        self.epoch_offset_ms = offset_ms;
    }

    /// The configuration new calls use.
    #[must_use]
    pub fn config(&self) -> &Arc<EngineConfig> {
        &self.cfg
    }

    /// The media controller (tests inspect their fake through it).
    #[must_use]
    pub fn media(&self) -> &M {
        &self.media
    }

    /// Mutable access to the media controller.
    pub fn media_mut(&mut self) -> &mut M {
        &mut self.media
    }

    /// Transaction layer counters.
    #[must_use]
    pub fn tx_stats(&self) -> &crate::transaction::TxStats {
        self.txn.stats()
    }

    /// One datagram or framed stream message from `from`.
    pub fn handle_datagram(&mut self, now: Timestamp, from: PeerAddr, bytes: &[u8]) {
        self.handle_datagram_with_names(now, from, None, bytes);
    }

    /// As [`Self::handle_datagram`], for TLS connections whose peer certificate
    /// names (verified by the driver) take part in trunk classification.
    pub fn handle_datagram_with_names(
        &mut self,
        now: Timestamp,
        from: PeerAddr,
        tls_peer_names: Option<&[String]>,
        bytes: &[u8],
    ) {
        self.stats.count_wire(bytes, true);
        let trunk = route::classify(
            &self.cfg,
            &self.router,
            from.addr,
            from.transport,
            tls_peer_names,
        );
        // Policy before any parsing: drops and bans cost nothing, scanners learn nothing.
        match self.policy.check_request(now, from.addr.ip(), trunk) {
            PolicyVerdict::Allow => {}
            PolicyVerdict::Reject403 => {
                self.on_unknown_source(now, from, bytes);
                return;
            }
            PolicyVerdict::Drop => {
                self.stats.dropped += 1;
                self.stats.policy_rejects += 1;
                return;
            }
            PolicyVerdict::RateLimited { until, new_ban } => {
                self.stats.dropped += 1;
                self.stats.policy_rejects += 1;
                if new_ban {
                    self.stats.bans += 1;
                    self.events.push_back(CallEvent::PolicyBan {
                        ip: from.addr.ip(),
                        duration: until.saturating_duration_since(now),
                    });
                }
                return;
            }
        }
        self.current_trunk = trunk;
        self.txn.handle_datagram(now, from, bytes);
        self.sync_parse_errors();
        self.process(now);
        self.current_trunk = None;
    }

    /// A datagram from a source no trunk claims, in reject mode: answered
    /// statelessly, once, with no transaction kept (RFC 3261 §8.2.6; a `403`
    /// costs one packet out and no memory, whatever the flood). Its ACK is
    /// absorbed; a response goes to the transaction layer (it matches a client
    /// transaction or is dropped, no state either way); a request inside a
    /// dialog we hold (a trunk's address changed on reload) is handled as usual.
    fn on_unknown_source(&mut self, now: Timestamp, from: PeerAddr, bytes: &[u8]) {
        let msg = match crate::transaction::parse_message(bytes) {
            Ok(m) => m,
            Err(_) => {
                // Counted and answered 400 (when possible) statelessly by the layer.
                self.txn.handle_datagram(now, from, bytes);
                self.sync_parse_errors();
                return;
            }
        };
        let known_dialog = match (msg.call_id(), msg.to_tag()) {
            (Ok(id), Ok(Some(tag))) => self
                .by_dialog
                .contains_key(&(id.to_owned(), tag.to_owned())),
            _ => false,
        };
        if msg.method().is_none() || known_dialog {
            self.txn.handle_message(now, from, msg);
            self.sync_parse_errors();
            self.process(now);
            return;
        }
        if msg.method() == Some(&Method::Ack) {
            self.stats.absorbed_acks += 1;
            return;
        }
        let ua = self.cfg.node.user_agent.clone();
        if self
            .txn
            .respond_stateless(from, &msg, 403, "Forbidden", &[("Server", &ua)])
        {
            self.stats.policy_rejects += 1;
            self.count_rejected(from, 403, "Forbidden");
        } else {
            self.sync_parse_errors();
        }
    }

    /// Fires due transaction and call timers.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.txn.handle_timeout(now);
        self.process(now);
        self.fire_call_timers(now);
        self.process(now);
    }

    /// The driver could not reach `dest`: every transaction bound to its
    /// connection fails (RFC 3261 §17.1.4), and so does every pending B-leg
    /// INVITE toward its address; calls fail over or end.
    pub fn handle_transport_error(&mut self, now: Timestamp, dest: PeerAddr) {
        if let Some(conn) = dest.conn {
            self.txn.handle_connection_lost(now, conn);
        }
        // Datagram transports (ICMP unreachable): pending B-leg INVITEs toward
        // `dest` fail now instead of at Timer B, so failover is immediate.
        let pending: Vec<TxId> = self
            .calls
            .values()
            .filter(|c| c.state == CallState::Proceeding)
            .filter_map(|c| c.b.as_ref())
            .filter(|b| b.dest.addr == dest.addr && !b.final_received && !b.cancelled)
            .filter_map(|b| b.invite_tx)
            .collect();
        for tx in pending {
            self.txn.handle_transport_error(now, tx);
        }
        self.process(now);
    }

    /// The driver could not send a [`Transmit`] of transaction `tx`.
    pub fn handle_tx_error(&mut self, now: Timestamp, tx: TxId) {
        self.txn.handle_transport_error(now, tx);
        self.process(now);
    }

    /// A connection closed (same as a transport error on every transaction using it).
    pub fn handle_connection_lost(&mut self, now: Timestamp, conn: ConnId) {
        self.txn.handle_connection_lost(now, conn);
        self.process(now);
    }

    /// Something the data plane noticed.
    pub fn handle_media_event(&mut self, now: Timestamp, ev: MediaEvent) {
        match ev {
            MediaEvent::Inactive(id) => {
                if let Some(&call) = self.by_media.get(&id) {
                    self.stats.media_inactivity += 1;
                    self.end_call(now, call, EndReason::MediaInactivity, None);
                }
            }
            MediaEvent::Latched(..) => {}
            MediaEvent::SrtpFailures(..) => self.stats.media_errors += 1,
        }
        self.process(now);
    }

    /// Next bytes to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.txn.poll_transmit()?;
        self.stats.count_wire(&t.bytes, false);
        let tls_server_name = self
            .cfg
            .trunks
            .iter()
            .find(|tr| tr.address == t.dest && tr.transport == t.transport)
            .and_then(|tr| tr.tls_server_name.clone());
        Some(Transmit {
            dest: PeerAddr {
                transport: t.transport,
                addr: t.dest,
                conn: t.conn,
            },
            bytes: t.bytes,
            tls_server_name,
            tx: t.tx,
        })
    }

    /// When [`Self::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let call = self.timers.first().map(|(at, _, _)| *at);
        match (self.txn.poll_timeout(), call) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Next call event.
    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.events.pop_front()
    }

    /// Live calls (not yet ended), for the admin API.
    #[must_use]
    pub fn calls(&self) -> Vec<CallSummary> {
        self.calls
            .values()
            .filter(|c| c.state != CallState::Ended)
            .map(|c| CallSummary {
                call: c.id,
                inbound_trunk: Self::trunk_name(&c.cfg, c.a.trunk),
                outbound_trunk: c
                    .b
                    .as_ref()
                    .map(|b| Self::trunk_name(&c.cfg, b.target.trunk)),
                calling: c.calling.clone(),
                called: c.called.clone(),
                answered: c.state == CallState::Answered,
                setup_at: c.setup_at,
                media: c.media.as_ref().map(|m| m.alloc.id),
                codec: [Side::A, Side::B].map(|s| c.media.as_ref().and_then(|m| m.codec(s))),
                srtp: [Side::A, Side::B].map(|s| c.media.as_ref().and_then(|m| m.srtp(s))),
                media_stats: c.media.as_ref().and_then(|m| self.media.stats(m.alloc.id)),
            })
            .collect()
    }

    /// Trunks out of routing at `now` after a `503` with `Retry-After` (RFC 3261 §21.5.4),
    /// with the time each is tried again.
    pub fn trunks_held_off(&self, now: Timestamp) -> Vec<(String, Timestamp)> {
        self.trunk_blocked
            .held_off(now)
            .map(|(t, u)| (t.to_owned(), u))
            .collect()
    }

    /// The SIP Call-IDs of call `call`: the A leg's and the current B leg's (for the
    /// driver's per-call log span). `None` once the call is gone.
    pub fn call_ids(&self, call: u64) -> Option<(&str, Option<&str>)> {
        let c = self.calls.get(&call)?;
        Some((
            c.a.invite.call_id().unwrap_or(""),
            c.b.as_ref().map(|b| b.call_id.as_str()),
        ))
    }

    /// The A leg's Call-ID of the call a message with `call_id` and these tags belongs to
    /// (either tag may be ours: the To tag of what the caller sends, the From tag of what
    /// we send to the callee). Capture tools tie a call's two legs together with it.
    #[must_use]
    pub fn a_leg_call_id(&self, call_id: &str, tags: [Option<&str>; 2]) -> Option<&str> {
        tags.into_iter().flatten().find_map(|tag| {
            let (call, _) = self.by_dialog.get(&(call_id.to_owned(), tag.to_owned()))?;
            self.calls.get(call)?.a.invite.call_id().ok()
        })
    }

    /// The live call using media allocation `id` (to log a data plane event in the
    /// call's span). `None` once the call released it.
    #[must_use]
    pub fn call_of_media(&self, id: MediaId) -> Option<u64> {
        self.by_media.get(&id).copied()
    }

    /// Admin: tears call `call` down (BYE both legs, or CANCEL/487 before answer).
    pub fn terminate(&mut self, now: Timestamp, call: u64) -> bool {
        let live = self
            .calls
            .get(&call)
            .is_some_and(|c| c.state != CallState::Ended);
        if live {
            self.end_call(now, call, EndReason::Terminated, None);
            self.process(now);
        }
        live
    }

    /// New INVITEs and OPTIONS get `503` + Retry-After (`options`); calls in progress
    /// continue.
    pub fn start_drain(&mut self) {
        self.draining = true;
    }

    /// Whether [`Self::start_drain`] was called.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Ends every call (end reason Shutdown).
    pub fn release_all(&mut self, now: Timestamp) {
        let ids: Vec<u64> = self
            .calls
            .values()
            .filter(|c| c.state != CallState::Ended)
            .map(|c| c.id)
            .collect();
        for id in ids {
            self.end_call(now, id, EndReason::Shutdown, None);
        }
        self.process(now);
    }

    /// Calls not yet ended.
    #[must_use]
    pub fn active_calls(&self) -> usize {
        self.live_calls
    }

    /// Live transactions (server and client), for the memory bound.
    #[must_use]
    pub fn transactions(&self) -> usize {
        self.txn.len()
    }

    /// Gives back memory a flood made the tables grow (cheap when there is
    /// none to give back; the driver calls it from time to time).
    pub fn shrink(&mut self) {
        self.txn.shrink();
        if self.events.capacity() > 4 * self.events.len() + 1024 {
            self.events.shrink_to(2 * self.events.len());
        }
        for m in [&mut self.by_client_tx] {
            if m.capacity() > 4 * m.len() + 1024 {
                m.shrink_to(2 * m.len());
            }
        }
        if self.by_invite_tx.capacity() > 4 * self.by_invite_tx.len() + 1024 {
            self.by_invite_tx.shrink_to(2 * self.by_invite_tx.len());
        }
        if self.by_dialog.capacity() > 4 * self.by_dialog.len() + 1024 {
            self.by_dialog.shrink_to(2 * self.by_dialog.len());
        }
    }

    /// Calls still held in memory (ended ones linger 64·T1).
    #[must_use]
    pub fn held_calls(&self) -> usize {
        self.calls.len()
    }

    /// Sources currently banned by the rate limiter.
    #[must_use]
    pub fn bans(&self) -> usize {
        self.policy.bans()
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    // ----- internals shared by the submodules -----

    fn sync_parse_errors(&mut self) {
        let m = self.txn.stats().malformed;
        self.stats.parse_errors += m.saturating_sub(self.last_parse_errors);
        self.last_parse_errors = m;
    }

    fn trunk_name(cfg: &EngineConfig, id: TrunkId) -> String {
        cfg.trunk(id).map(|t| t.name.clone()).unwrap_or_default()
    }

    /// Handles every pending transaction event (bounded).
    fn process(&mut self, now: Timestamp) {
        for _ in 0..EVENT_BUDGET {
            let Some(ev) = self.txn.poll_event() else {
                return;
            };
            match ev {
                TxEvent::Request {
                    tx,
                    from,
                    request,
                    cancels,
                } => self.on_request(now, tx, from, request, cancels),
                TxEvent::Response { tx, response } => self.on_response(now, tx, &response),
                TxEvent::Ack { tx, request, .. } => self.on_ack(now, tx, &request),
                TxEvent::StrayAck { .. } => {}
                TxEvent::Timeout { tx, timer } => {
                    self.stats.transaction_timeouts += 1;
                    self.on_tx_failure(now, tx, timer == Timer::L, 408);
                }
                TxEvent::TransportError { tx } => self.on_tx_failure(now, tx, false, 503),
            }
        }
    }

    fn on_request(
        &mut self,
        now: Timestamp,
        tx: TxId,
        from: PeerAddr,
        req: SipMsg,
        cancels: Option<TxId>,
    ) {
        let method = req.method().cloned().unwrap_or(Method::Ack);
        if method == Method::Cancel {
            self.on_cancel(now, tx, &req, cancels);
            return;
        }
        match req.to_tag() {
            Ok(Some(tag)) => {
                let key = (req.call_id().unwrap_or("").to_owned(), tag.to_owned());
                match self.by_dialog.get(&key).copied() {
                    Some((call, side)) => self.on_in_dialog(now, call, side, tx, req),
                    // §12.2.2: a request for a dialog we do not hold (a BYE after a
                    // restart, a stale re-INVITE) is answered, never left to retransmit.
                    None => self.reject(now, tx, &req, from, 481, DIALOG_UNKNOWN),
                }
            }
            _ => self.on_out_of_dialog(now, tx, from, &req),
        }
    }

    /// Requests without a To tag: INVITE starts a call, OPTIONS is answered here.
    fn on_out_of_dialog(&mut self, now: Timestamp, tx: TxId, from: PeerAddr, req: &SipMsg) {
        let Some(trunk) = self.current_trunk else {
            self.stats.policy_rejects += 1;
            self.reject(now, tx, req, from, 403, "Forbidden");
            return;
        };
        match req.method() {
            Some(Method::Invite) => self.on_new_invite(now, tx, from, trunk, req),
            Some(Method::Options) => self.on_options(now, tx, req),
            _ => {
                let mut r = self.response(req, 405, "Method Not Allowed", Some("na"));
                r.push_header("Allow", ALLOW);
                self.send_response(now, tx, &r);
            }
        }
    }

    /// A response to `req` carrying our Server header. A dialog-creating response
    /// (101-299 to INVITE) echoes the request's Record-Route (RFC 3261 §12.1.1): a
    /// record-routing proxy in front (a dispatcher over a farm) stays on the caller's
    /// path. Only that side's own proxies are named; the other leg never sees them.
    fn response(&self, req: &SipMsg, status: u16, reason: &str, tag: Option<&str>) -> SipMsg {
        let mut r = make_response(req, status, reason, tag);
        if req.method() != Some(&Method::Invite) {
            r.remove_header("Record-Route");
        }
        r.push_header("Server", &self.cfg.node.user_agent);
        r
    }

    fn send_response(&mut self, now: Timestamp, tx: TxId, r: &SipMsg) {
        // An error means the transaction already ended: nothing left to answer.
        let _ = self.txn.respond(now, tx, r);
    }

    /// Answers `req` with a locally generated response.
    fn reply(
        &mut self,
        now: Timestamp,
        tx: TxId,
        req: &SipMsg,
        status: u16,
        reason: &str,
        tag: Option<&str>,
    ) {
        let tag = tag.map(str::to_owned).or_else(|| {
            matches!(req.to_tag(), Ok(None)).then(|| format!("{:x}", self.txn.next_random()))
        });
        let r = self.response(req, status, reason, tag.as_deref());
        self.send_response(now, tx, &r);
    }

    /// Refuses a request before any call exists (counted by status and reason).
    fn reject(
        &mut self,
        now: Timestamp,
        tx: TxId,
        req: &SipMsg,
        from: PeerAddr,
        status: u16,
        reason: &'static str,
    ) {
        let tag = format!("{:x}", self.txn.next_random());
        let mut r = self.response(req, status, reason, Some(&tag));
        if status == 503 {
            r.push_header("Retry-After", RETRY_AFTER_SECS.to_string());
        }
        self.send_response(now, tx, &r);
        self.count_rejected(from, status, reason);
    }

    /// Counts a refused request and reports it (the driver summarises these).
    fn count_rejected(&mut self, from: PeerAddr, status: u16, reason: &'static str) {
        *self.stats.rejected.entry((status, reason)).or_insert(0) += 1;
        self.events.push_back(CallEvent::Rejected {
            status,
            reason: reason.to_owned(),
            source: from.addr,
        });
    }

    /// A fresh Via for a request on a leg using `transport`.
    fn via(&mut self, transport: crate::transaction::Transport) -> Via {
        let branch = self.txn.new_branch();
        let (host, port) = self
            .cfg
            .listener(transport)
            .map_or((String::from("0.0.0.0"), None), |l| {
                (l.addr.ip().to_string(), Some(l.addr.port()))
            });
        Via::new(transport, host, port, &branch)
    }

    /// Our host (`ip:port` of the listener) for URIs on a leg.
    fn our_hostport(cfg: &EngineConfig, transport: crate::transaction::Transport) -> String {
        cfg.listener(transport)
            .map_or_else(|| String::from("0.0.0.0"), |l| l.addr.to_string())
    }

    fn random_hex(&mut self) -> String {
        format!("{:016x}", self.txn.next_random())
    }

    /// A fresh SDES key and salt from the secret source.
    fn new_key(entropy: &mut dyn Entropy) -> SrtpKeyMaterial {
        entropy::srtp_key(entropy)
    }

    fn set_timer(&mut self, call: u64, kind: CallTimer, at: Timestamp) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.timers.insert(kind, at);
            self.timers.insert((at, call, kind));
        }
    }

    fn stop_timer(&mut self, call: u64, kind: CallTimer) {
        if let Some(c) = self.calls.get_mut(&call) {
            if let Some(at) = c.timers.remove(&kind) {
                self.timers.remove(&(at, call, kind));
            }
        }
    }

    /// Sends a request on a leg as a new client transaction.
    fn send_on(
        &mut self,
        now: Timestamp,
        call: u64,
        dest: PeerAddr,
        req: SipMsg,
        role: ClientRole,
    ) -> Option<TxId> {
        match self.txn.send_request(now, dest, req) {
            Ok(tx) => {
                self.by_client_tx.insert(tx, (call, role));
                if let Some(c) = self.calls.get_mut(&call) {
                    c.client_txs.push(tx);
                }
                Some(tx)
            }
            Err(_) => None,
        }
    }

    /// Fresh ICE-lite credentials (ufrag, pwd).
    fn ice_creds(&mut self) -> (String, String) {
        entropy::ice_credentials(self.txn.entropy())
    }

    /// The trunk of a leg of `c`.
    fn leg_trunk(c: &Call, side: Side) -> Option<TrunkId> {
        match side {
            Side::A => Some(c.a.trunk),
            Side::B => c.b.as_ref().map(|b| b.target.trunk),
        }
    }

    /// Sets the Teams flags of `side` of `call` for a leg on `trunk` (a new B
    /// attempt, a transfer target): rtcp-mux and `|2^31` when Teams, fresh
    /// ICE-lite credentials when Teams with media bypass, none otherwise.
    fn set_leg_teams(&mut self, call: u64, side: Side, trunk: TrunkId) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let teams = c.cfg.is_teams_trunk(trunk);
        let creds = c.cfg.is_teams_bypass(trunk).then(|| self.ice_creds());
        if let Some(ms) = self.calls.get_mut(&call).and_then(|c| c.media.as_mut()) {
            let i = sdp_rewrite::ix(side);
            ms.teams[i] = teams;
            ms.ice[i] = creds;
            ms.params[i].ice_lite = None;
        }
    }

    /// Builds an in-dialog request on `side` (fresh Via), or `None` without a usable dialog.
    fn dialog_request(
        &mut self,
        call: u64,
        side: Side,
        method: Method,
    ) -> Option<(SipMsg, PeerAddr)> {
        let transport = self.calls.get(&call)?.dest(side)?.transport;
        let via = self.via(transport);
        let ua = self.cfg.node.user_agent.clone();
        let c = self.calls.get_mut(&call)?;
        let dest = c.dest(side)?;
        let teams = match side {
            Side::A => c.cfg.is_teams_trunk(c.a.trunk),
            Side::B => {
                c.b.as_ref()
                    .is_some_and(|b| c.cfg.is_teams_trunk(b.target.trunk))
            }
        };
        let mut req = c.dialog_mut(side)?.request(method, &via).ok()?;
        req.push_header("User-Agent", ua);
        if teams {
            req.push_header("X-MS-SBC", x_ms_sbc());
        }
        Some((req, dest))
    }
}

/// `X-MS-SBC` value on requests toward Teams Direct Routing trunks.
pub(crate) fn x_ms_sbc() -> String {
    format!("Portcullis/{}", env!("CARGO_PKG_VERSION"))
}

/// Methods we accept (Allow).
pub(crate) const ALLOW: &str =
    "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO, MESSAGE, PRACK, REFER, NOTIFY";

/// The party on `side`.
pub(crate) const fn party(side: Side) -> Party {
    match side {
        Side::A => Party::Caller,
        Side::B => Party::Callee,
    }
}

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
//! CANCEL, forks), `answer` (the 2xx path every INVITE we send shares), `failover` (next target, Retry-After, 3xx, relayed
//! failures), `auth` (digest both legs), `prack` (RFC 3262), `in_dialog` (BYE, re-INVITE,
//! UPDATE, INFO, MESSAGE relays, ACKs), `refer` (REFER transfers, Replaces
//! joins), `reoffer` (our own re-offers, the delayed offer followed end to end),
//! `options` (OPTIONS answers: availability and load for a load balancer), `teardown`
//! (ending calls, CDRs),
//! `timers` (no-answer, session timers RFC 4028, linger).

mod admin;
mod answer;
mod auth;
mod call;
mod codec_rules;
mod dtmf;
mod failover;
mod ha;
mod header_rules;
mod headers;
mod identity;
mod in_dialog;
mod inbound;
mod invite;
mod options;
mod prack;
mod probe;
mod refer;
mod register;
mod reoffer;
mod route;
mod sdp_rewrite;
mod sim_node;
mod stats;
mod streams;
mod teardown;
mod timers;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use self::call::{Call, CallState, CallTimer, ClientRole};
pub use self::options::{Availability, LOAD_HEADER};
pub use self::register::RegistrationStatus;
pub use self::stats::{EngineStats, Outcome, TrunkStats};
pub use self::streams::MAX_STREAMS;
pub use crate::cdr::{CdrRecord, EndReason, LegRecord, Party};
use crate::config::{ConfigError, EngineConfig, TrunkId};
use crate::digest::{NonceCountGuard, NONCE_GUARD_CAPACITY};
use crate::entropy::{self, Entropy};
use crate::media::{
    MediaControl, MediaEvent, MediaId, MediaStats, Side, SrtpKeyMaterial, SrtpSuite,
};
use crate::policy::{Policy, PolicyVerdict, TrunkLimits};
use crate::routing::{Router, TargetTable};
use crate::time::Timestamp;
use crate::transaction::{
    make_response, ConnId, Method, PeerAddr, SipMsg, Timer, TransactionLayer, TxConfig, TxEvent,
    TxId, Via,
};

/// The longest a `503` with `Retry-After` takes a trunk target out of routing (RFC 3261
/// §21.5.4): a hostile or broken peer must not disable a target for days.
pub const MAX_RETRY_AFTER: std::time::Duration = crate::routing::MAX_HOLD_OFF;

/// Bytes the driver must send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub dest: PeerAddr,
    pub bytes: Vec<u8>,
    /// SNI / expected certificate name when `dest` is a TLS trunk.
    pub tls_server_name: Option<String>,
    /// The listener to send from: that of the trunk `dest` belongs to when the trunk
    /// names one (`[[trunk]] listener`); `None` leaves the choice to the driver.
    pub local: Option<std::net::SocketAddr>,
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
    /// Routing chose `route` for the call (right after `CallStarted`; a call that no
    /// route takes ends with [`EndReason::NoRoute`] instead).
    CallRouted {
        call: u64,
        route: String,
    },
    /// An INVITE went out on a new B leg toward `target` of `trunk`, with Call-ID
    /// `b_call_id` (one per target tried: failover and followed redirects start new
    /// attempts).
    AttemptStarted {
        call: u64,
        trunk: String,
        target: SocketAddr,
        b_call_id: String,
    },
    /// The current B attempt failed: a final non-2xx response, or Timer B / a transport
    /// error as `408` / `503`. The call goes on with the next target or ends.
    AttemptFailed {
        call: u64,
        status: u16,
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
    /// A trunk target went up (answers OPTIONS again) or down (missed pings, a
    /// call timed out on it).
    TargetHealth {
        trunk: String,
        target: SocketAddr,
        up: bool,
    },
    /// A registration toward a carrier changed state ([`crate::registration::RegState::name`]);
    /// `error` says why the last attempt failed.
    RegistrationChanged {
        trunk: String,
        state: &'static str,
        error: Option<String>,
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
    /// The driver's CDR writer is behind: new calls are refused.
    cdr_backpressure: bool,
    next_call: u64,
    /// Calls holding a slot per trunk.
    trunk_calls: TrunkLimits,
    /// Every trunk's targets: health (OPTIONS, Retry-After hold-off), calls, selection.
    targets: TargetTable,
    /// OPTIONS pings in flight.
    ping_txs: HashMap<TxId, probe::PingTx>,
    /// Token of the last ping.
    ping_token: u64,
    /// The latest `now` seen (new targets of a reload are first pinged then).
    last_now: Timestamp,
    /// Secret of our digest nonces' MAC (drawn from the secret source at creation).
    digest_secret: auth::DigestSecret,
    /// Replay guard of inbound digest credentials (bounded).
    nonce_guard: NonceCountGuard,
    /// Trunk of the datagram being handled (classified before parsing).
    current_trunk: Option<TrunkId>,
    /// Server transactions of requests from Teams (`X-MS-SBC` on their responses).
    teams_server_txs: identity::TeamsServerTxs,
    /// Registrations toward carriers.
    registrations: register::Registrations,
    router: Router,
    policy: Policy,
    last_parse_errors: u64,
    /// Added to `now` for CDR wall-clock times (ms since the UNIX epoch).
    epoch_offset_ms: u64,
    /// Active/standby pair: durable keys and dirty calls (`ha`).
    ha: ha::HaTable,
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
        let mut targets = TargetTable::default();
        targets.sync(&cfg.trunks, Timestamp::ZERO);
        let mut b = Self {
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
            cdr_backpressure: false,
            next_call: 1,
            trunk_calls: TrunkLimits::new(),
            targets,
            ping_txs: HashMap::new(),
            ping_token: 0,
            last_now: Timestamp::ZERO,
            digest_secret,
            nonce_guard: NonceCountGuard::new(NONCE_GUARD_CAPACITY),
            current_trunk: None,
            teams_server_txs: identity::TeamsServerTxs::default(),
            registrations: register::Registrations::default(),
            router,
            policy,
            last_parse_errors: 0,
            epoch_offset_ms: 0,
            ha: ha::HaTable::default(),
        };
        let cfg = b.cfg.clone();
        b.set_registrations(&cfg);
        Ok(b)
    }

    /// Reload: new calls use `cfg`, calls in progress keep theirs.
    pub fn set_config(&mut self, cfg: Arc<EngineConfig>) -> Result<(), ConfigError> {
        cfg.validate()?;
        self.router = Router::new(&cfg).map_err(|e| ConfigError::Routing(e.to_string()))?;
        self.targets.sync(&cfg.trunks, self.last_now);
        self.policy.set_config(&cfg.policy);
        self.txn.set_load_limits(
            cfg.policy.max_transactions,
            cfg.policy.max_transactions_per_source,
        );
        self.set_registrations(&cfg);
        self.cfg = cfg;
        Ok(())
    }

    /// CDR times are `now + offset` (the driver passes UNIX-epoch ms of its
    /// `Timestamp::ZERO`; the engine itself never reads a clock). A driver that
    /// refreshes it before each input (wall clock now minus `now`) gets records
    /// stamped from the wall clock at the time they are made: every time in a
    /// record moves with a clock step, durations stay monotonic.
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

    /// Fires due transaction and call timers.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        self.run_probes(now);
        self.txn.handle_timeout(now);
        self.process(now);
        self.drive_registrations(now);
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
                let call = self.by_media.get(&id).copied();
                if let Some(call) = call.filter(|&c| self.call_inactive(c, id)) {
                    self.stats.media_inactivity += 1;
                    self.end_call(now, call, EndReason::MediaInactivity, None);
                }
            }
            MediaEvent::Latched(..) => {}
            MediaEvent::SrtpFailures(..) => self.stats.media_errors += 1,
            MediaEvent::Dtmf(id, side, ev) => {
                if let Some(&call) = self.by_media.get(&id) {
                    self.on_dtmf_event(now, call, side, ev);
                }
            }
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
            .and_then(|tr| tr.tls_server_name.clone())
            .or_else(|| self.tls_name_of_target(t.dest))
            .or_else(|| self.registrations.tls_name(t.dest));
        let local = self.listener_toward(t.dest, t.transport);
        Some(Transmit {
            dest: PeerAddr {
                transport: t.transport,
                addr: t.dest,
                conn: t.conn,
            },
            bytes: t.bytes,
            tls_server_name,
            local,
            tx: t.tx,
        })
    }

    /// The address of the listener of the trunk `dest` belongs to (its address, one of
    /// its targets, or a source its ACL claims), when that trunk names its listener.
    fn listener_toward(
        &self,
        dest: std::net::SocketAddr,
        transport: crate::transaction::Transport,
    ) -> Option<std::net::SocketAddr> {
        let cfg = &self.cfg;
        if cfg.trunks.iter().all(|t| t.listener.is_none()) {
            return None;
        }
        let id = cfg
            .trunks
            .iter()
            .position(|t| t.address == dest && t.transport == transport)
            .or_else(|| {
                let name = self.targets.trunk_of(dest)?;
                cfg.trunks.iter().position(|t| t.name == name)
            })
            .or_else(|| {
                cfg.trunks
                    .iter()
                    .position(|t| t.transport == transport && t.matches_source(dest.ip()))
            })?;
        let t = cfg.trunks.get(id)?;
        t.listener?;
        cfg.trunk_listener(crate::config::TrunkId(id), transport)
            .map(|l| l.addr)
    }

    /// When [`Self::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let call = self.timers.first().map(|(at, _, _)| *at);
        [
            self.txn.poll_timeout(),
            call,
            self.probe_timeout(),
            self.registrations.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Next call event.
    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.events.pop_front()
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

    /// A response to `req` carrying our Server header.
    fn response(&self, req: &SipMsg, status: u16, reason: &str, tag: Option<&str>) -> SipMsg {
        // RFC 3261 §12.1.1: a 18x/2xx echoes the request's own Record-Route (the
        // route set of this leg's proxies, e.g. a registrar that routed the call to
        // us); we add none of ours and nothing crosses from the other leg.
        let mut r = make_response(req, status, reason, tag);
        r.push_header("Server", &self.cfg.node.user_agent);
        r
    }

    fn send_response(&mut self, now: Timestamp, tx: TxId, r: &SipMsg) {
        // An error means the transaction already ended: nothing left to answer.
        if self.teams_server_txs.contains(tx) {
            let mut r = r.clone();
            self.stamp_teams_response(tx, &mut r);
            let _ = self.txn.respond(now, tx, &r);
        } else {
            let _ = self.txn.respond(now, tx, r);
        }
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
        self.via_listener(None, transport)
    }

    /// A fresh Via naming the listener of `trunk` (its own, else the first of
    /// `transport`) by address.
    fn via_listener(
        &mut self,
        trunk: Option<crate::config::TrunkId>,
        transport: crate::transaction::Transport,
    ) -> Via {
        let branch = self.txn.new_branch();
        let listener = match trunk {
            Some(t) => self.cfg.trunk_listener(t, transport),
            None => self.cfg.listener(transport),
        };
        let (host, port) = listener.map_or((String::from("0.0.0.0"), None), |l| {
            (l.addr.ip().to_string(), Some(l.addr.port()))
        });
        Via::new(transport, host, port, &branch)
    }

    /// Our host (`ip:port` of the listener) for URIs on a leg toward `trunk`.
    fn our_hostport(
        cfg: &EngineConfig,
        trunk: crate::config::TrunkId,
        transport: crate::transaction::Transport,
    ) -> String {
        cfg.trunk_listener(trunk, transport)
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
        if matches!(kind, CallTimer::Refresh(_) | CallTimer::SessionExpiry) {
            self.ha_touch(call);
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
                self.ha_touch(call);
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
    /// ICE-lite credentials when Teams with media bypass, none otherwise;
    /// and the trunk's codec policy.
    fn set_leg_teams(&mut self, call: u64, side: Side, trunk: TrunkId) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let teams = c.cfg.is_teams_trunk(trunk);
        let codecs = c
            .cfg
            .trunk(trunk)
            .map(|t| t.policy.codecs.clone())
            .unwrap_or_default();
        let dtmf = c
            .cfg
            .trunk(trunk)
            .map(|t| t.policy.dtmf)
            .unwrap_or_default();
        let creds = c.cfg.is_teams_bypass(trunk).then(|| self.ice_creds());
        if let Some(ms) = self.calls.get_mut(&call).and_then(|c| c.media.as_mut()) {
            let i = sdp_rewrite::ix(side);
            ms.teams[i] = teams;
            ms.codecs[i] = codecs;
            ms.dtmf[i] = dtmf;
            ms.ice[i] = creds;
            for st in &mut ms.streams {
                st.params[i].ice_lite = None;
            }
        }
    }

    /// Builds an in-dialog request on `side` (fresh Via), or `None` without a usable dialog.
    fn dialog_request(
        &mut self,
        call: u64,
        side: Side,
        method: Method,
    ) -> Option<(SipMsg, PeerAddr)> {
        let dest = self.calls.get(&call)?.dest(side)?;
        let via = self.via_to(call, dest);
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

//! [`TransactionLayer`]: matching, dispatch, timers and output queues.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;

use super::build::{build_cancel, build_non2xx_ack, make_response};
use super::ctx::Ctx;
use super::invite_client::{InviteClient, InviteClientState};
use super::invite_server::{InviteServer, InviteServerState};
use super::key::{AckKey, ClientKey, ServerKey};
use super::message::{Method, SipMsg};
use super::non_invite_client::{NonInviteClient, NonInviteClientState};
use super::non_invite_server::{NonInviteServer, NonInviteServerState};
use super::stats::TxStats;
use super::timer::{Timer, TimerConfig, TimerTable};
use super::via::{response_target, ResponseTarget, MAGIC_COOKIE};
use super::wire::{error_reply, parse_message};
use super::{PeerAddr, Transmit, TxError, TxEvent, TxId, TxKind, TxState};
use crate::entropy::{id_u64, Entropy};
use crate::time::Timestamp;

/// Configuration of a [`TransactionLayer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxConfig {
    pub timers: TimerConfig,
    /// Work budget: most timers processed by one [`TransactionLayer::handle_timeout`] call.
    pub timer_budget: usize,
    /// Load limit: with this many live transactions, new inbound requests (CANCEL
    /// excepted, it frees resources) get a stateless `503` with `Retry-After`
    /// (RFC 3261 §21.5.4) and are counted in [`TxStats::overload_rejects`].
    /// Client transactions are never refused: the TU must be able to tear calls down.
    pub max_server_transactions: usize,
    /// Per-source load limit: with this many live server transactions created by
    /// requests from one source IP, that source's new requests (CANCEL excepted)
    /// get the same stateless `503`, counted in [`TxStats::source_limit_rejects`].
    /// One source (a trunk, or someone spoofing its address) cannot fill the table.
    pub max_server_transactions_per_source: usize,
}

impl Default for TxConfig {
    fn default() -> Self {
        Self {
            timers: TimerConfig::default(),
            timer_budget: 4096,
            max_server_transactions: 100_000,
            max_server_transactions_per_source: 20_000,
        }
    }
}

/// Retry-After (seconds) of the stateless 503 at a load limit.
const OVERLOAD_RETRY_AFTER: &str = "5";

#[derive(Debug)]
enum Machine {
    InviteClient(InviteClient),
    NonInviteClient(NonInviteClient),
    InviteServer(InviteServer),
    NonInviteServer(NonInviteServer),
}

impl Machine {
    fn kind(&self) -> TxKind {
        match self {
            Self::InviteClient(_) => TxKind::InviteClient,
            Self::NonInviteClient(_) => TxKind::NonInviteClient,
            Self::InviteServer(_) => TxKind::InviteServer,
            Self::NonInviteServer(_) => TxKind::NonInviteServer,
        }
    }

    fn state(&self) -> TxState {
        match self {
            Self::InviteClient(m) => TxState::InviteClient(m.state),
            Self::NonInviteClient(m) => TxState::NonInviteClient(m.state),
            Self::InviteServer(m) => TxState::InviteServer(m.state),
            Self::NonInviteServer(m) => TxState::NonInviteServer(m.state),
        }
    }

    fn timers(&mut self) -> &mut TimerTable {
        match self {
            Self::InviteClient(m) => &mut m.timers,
            Self::NonInviteClient(m) => &mut m.timers,
            Self::InviteServer(m) => &mut m.timers,
            Self::NonInviteServer(m) => &mut m.timers,
        }
    }

    fn dest(&self) -> &PeerAddr {
        match self {
            Self::InviteClient(m) => &m.dest,
            Self::NonInviteClient(m) => &m.dest,
            Self::InviteServer(m) => &m.dest,
            Self::NonInviteServer(m) => &m.dest,
        }
    }

    fn is_terminated(&self) -> bool {
        matches!(
            self.state(),
            TxState::InviteClient(InviteClientState::Terminated)
                | TxState::NonInviteClient(NonInviteClientState::Terminated)
                | TxState::InviteServer(InviteServerState::Terminated)
                | TxState::NonInviteServer(NonInviteServerState::Terminated)
        )
    }
}

#[derive(Debug)]
struct Entry {
    machine: Machine,
    client_key: Option<ClientKey>,
    server_keys: Vec<ServerKey>,
    ack_key: Option<AckKey>,
    /// Deadlines currently in the layer's timer set.
    armed: TimerTable,
    /// Source IP of a server transaction (per-source load limit).
    source: Option<IpAddr>,
}

/// All transactions of one SIP endpoint (RFC 3261 §17). See the module docs.
#[derive(Debug)]
pub struct TransactionLayer {
    cfg: TxConfig,
    txs: HashMap<TxId, Entry>,
    clients: HashMap<ClientKey, TxId>,
    servers: HashMap<ServerKey, TxId>,
    acks: HashMap<AckKey, TxId>,
    timers: BTreeSet<(Timestamp, TxId, Timer)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TxEvent>,
    stats: TxStats,
    /// Live server transactions (load limit).
    servers_live: usize,
    /// Live server transactions per source IP (per-source load limit; at most
    /// `servers_live` keys).
    per_source: HashMap<IpAddr, usize>,
    next_id: u64,
    /// The endpoint's randomness (identifiers here; its TU also draws secrets from it).
    entropy: Box<dyn Entropy>,
}

impl TransactionLayer {
    /// A layer drawing branches and tags from `entropy` (a seeded source in simulation;
    /// the appliance injects the OS-seeded CSPRNG so identifiers are unguessable).
    #[must_use]
    pub fn new(cfg: TxConfig, entropy: impl Entropy + 'static) -> Self {
        Self {
            cfg,
            txs: HashMap::new(),
            clients: HashMap::new(),
            servers: HashMap::new(),
            acks: HashMap::new(),
            timers: BTreeSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: TxStats::default(),
            servers_live: 0,
            per_source: HashMap::new(),
            next_id: 1,
            entropy: Box::new(entropy),
        }
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> &TxStats {
        &self.stats
    }

    /// New load limits (reload); transactions in progress are kept.
    pub fn set_load_limits(&mut self, total: usize, per_source: usize) {
        self.cfg.max_server_transactions = total;
        self.cfg.max_server_transactions_per_source = per_source;
    }

    /// Live server transactions created by requests from `ip`.
    #[must_use]
    pub fn server_transactions_from(&self, ip: IpAddr) -> usize {
        self.per_source.get(&ip).copied().unwrap_or(0)
    }

    /// Gives back the memory of tables and queues a flood grew (hash maps and
    /// queues keep their capacity when emptied). Cheap when nothing is to be
    /// given back; the driver calls it from time to time.
    pub fn shrink(&mut self) {
        shrink_map(&mut self.txs);
        shrink_map(&mut self.clients);
        shrink_map(&mut self.servers);
        shrink_map(&mut self.acks);
        shrink_map(&mut self.per_source);
        if self.transmits.capacity() > 4 * self.transmits.len() + 1024 {
            self.transmits.shrink_to(2 * self.transmits.len());
        }
        if self.events.capacity() > 4 * self.events.len() + 1024 {
            self.events.shrink_to(2 * self.events.len());
        }
    }

    /// Answers `msg` (a request) statelessly (RFC 3261 §8.2.6, §16.3-style):
    /// one response, no transaction, no retransmission; the top Via gets
    /// `received`/`rport` and the response goes where §18.2.2 says. An ACK is
    /// absorbed (never answered). Returns whether a response was queued.
    pub fn respond_stateless(
        &mut self,
        from: PeerAddr,
        msg: &SipMsg,
        status: u16,
        reason: &str,
        extra: &[(&str, &str)],
    ) -> bool {
        if msg.method().is_none_or(|m| *m == Method::Ack) {
            return false;
        }
        let Ok(mut via) = msg.top_via() else {
            self.stats.malformed += 1;
            return false;
        };
        via.stamp_received(from.addr);
        let mut stamped = msg.clone();
        if stamped.set_top_via(&via).is_err() || stamped.to_tag().is_err() {
            self.stats.malformed += 1;
            return false;
        }
        let dest = match response_target(&via, &from) {
            ResponseTarget::Addr(p) => p,
            ResponseTarget::Resolve { .. } => from,
        };
        // §8.2.6.2: a final response carries a To tag.
        let tag = format!("{:x}", self.next_random());
        let mut r = make_response(&stamped, status, reason, Some(&tag));
        for (n, v) in extra {
            r.push_header(n, *v);
        }
        self.stats.stateless_responses += 1;
        self.send_stateless(dest, r.to_bytes());
        true
    }

    /// Live (not yet terminated) transactions.
    #[must_use]
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// No live transaction.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// State of a live transaction (`None` once terminated and removed).
    #[must_use]
    pub fn state(&self, tx: TxId) -> Option<TxState> {
        self.txs.get(&tx).map(|e| e.machine.state())
    }

    /// The request that created a live transaction (server: as received, Via stamped).
    #[must_use]
    pub fn request(&self, tx: TxId) -> Option<&SipMsg> {
        self.txs.get(&tx).map(|e| match &e.machine {
            Machine::InviteClient(m) => &m.request,
            Machine::NonInviteClient(m) => &m.request,
            Machine::InviteServer(m) => &m.request,
            Machine::NonInviteServer(m) => &m.request,
        })
    }

    /// A fresh RFC 3261 branch: magic cookie + 64 identifier bits from the entropy source.
    pub fn new_branch(&mut self) -> String {
        format!("{MAGIC_COOKIE}{:016x}", self.next_random())
    }

    /// 64 identifier bits (tags, Call-IDs) from the entropy source.
    pub fn next_random(&mut self) -> u64 {
        id_u64(&mut *self.entropy)
    }

    /// The injected entropy source (the TU draws its tags, Call-IDs and secrets from it).
    pub fn entropy(&mut self) -> &mut dyn Entropy {
        &mut *self.entropy
    }

    /// Next bytes to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event for the transaction user.
    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.first().map(|(at, _, _)| *at)
    }

    /// Fires every timer due at `now` (up to the configured budget).
    pub fn handle_timeout(&mut self, now: Timestamp) {
        for _ in 0..self.cfg.timer_budget {
            let Some(&(at, id, timer)) = self.timers.first() else {
                return;
            };
            if at > now {
                return;
            }
            self.timers.remove(&(at, id, timer));
            let Some(entry) = self.txs.get_mut(&id) else {
                continue;
            };
            entry.armed.stop(timer);
            if entry.machine.timers().get(timer) != Some(at) {
                continue;
            }
            entry.machine.timers().stop(timer);
            self.run(now, id, |m, ctx| match m {
                Machine::InviteClient(m) => m.on_timer(ctx, timer),
                Machine::NonInviteClient(m) => m.on_timer(ctx, timer),
                Machine::InviteServer(m) => m.on_timer(ctx, timer),
                Machine::NonInviteServer(m) => m.on_timer(timer),
            });
        }
    }

    /// The driver failed to send a [`Transmit`] of `tx` (ICMP error, connection
    /// refused or reset, TLS failure): the transaction terminates and the TU is told
    /// while it still waits for something (§17.1.4, §17.2.4).
    pub fn handle_transport_error(&mut self, now: Timestamp, tx: TxId) {
        if !self.txs.contains_key(&tx) {
            return;
        }
        self.stats.transport_errors += 1;
        self.run(now, tx, |m, ctx| match m {
            Machine::InviteClient(m) => m.on_transport_error(ctx),
            Machine::NonInviteClient(m) => m.on_transport_error(ctx),
            Machine::InviteServer(m) => m.on_transport_error(ctx),
            Machine::NonInviteServer(m) => m.on_transport_error(ctx),
        });
    }

    /// A reliable connection closed or failed: every transaction bound to it gets
    /// [`Self::handle_transport_error`] (RFC 3261 §17.1.4, §17.2.4; the TU may
    /// retry over a new connection). Transactions are visited in id order.
    pub fn handle_connection_lost(&mut self, now: Timestamp, conn: super::ConnId) {
        let mut ids: Vec<TxId> = self
            .txs
            .iter()
            .filter(|(_, e)| e.machine.dest().conn == Some(conn))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        for id in ids {
            self.handle_transport_error(now, id);
        }
    }

    /// Parses and handles one datagram or framed stream message. Malformed input is
    /// counted; a request gets the codec's stateless 4xx when one can be formed
    /// (sent back to the source), anything else is dropped.
    pub fn handle_datagram(&mut self, now: Timestamp, from: PeerAddr, bytes: &[u8]) {
        match parse_message(bytes) {
            Ok(msg) => self.handle_message(now, from, msg),
            Err(e) => {
                self.stats.malformed += 1;
                if let Some(reply) = error_reply(bytes, &e) {
                    self.send_stateless(from, reply);
                }
            }
        }
    }

    /// Handles one received message (RFC 3261 §17.1.3, §17.2.3).
    pub fn handle_message(&mut self, now: Timestamp, from: PeerAddr, msg: SipMsg) {
        let ok = if msg.method().is_some() {
            self.handle_request(now, from, msg)
        } else {
            self.handle_response(now, msg)
        };
        if ok.is_err() {
            self.stats.malformed += 1;
        }
    }

    fn handle_response(&mut self, now: Timestamp, msg: SipMsg) -> Result<(), TxError> {
        let key = ClientKey::of_response(&msg)?;
        let Some(&id) = self.clients.get(&key) else {
            self.stats.stray_responses += 1;
            return Ok(());
        };
        self.run(now, id, |m, ctx| match m {
            Machine::InviteClient(m) => {
                let request = m.request.clone();
                m.on_response(ctx, msg, |resp| build_non2xx_ack(&request, resp).to_bytes());
            }
            Machine::NonInviteClient(m) => m.on_response(ctx, msg),
            _ => {}
        });
        Ok(())
    }

    fn handle_request(
        &mut self,
        now: Timestamp,
        from: PeerAddr,
        mut msg: SipMsg,
    ) -> Result<(), TxError> {
        let mut via = msg.top_via()?;
        // RFC 3261 §18.2.1 / RFC 3581 §4.
        via.stamp_received(from.addr);
        msg.set_top_via(&via)?;
        // Headers every transaction needs; reject early so the TU never sees them missing.
        msg.cseq()?;
        msg.call_id()?;
        msg.from_tag()?;
        msg.to_tag()?;
        let key = ServerKey::of_request(&msg, &via)?;
        let method = msg.method().cloned().unwrap_or(Method::Ack);
        if method == Method::Ack {
            let by_branch = self.servers.get(&key).copied();
            let by_dialog = || {
                AckKey::of(&msg)
                    .ok()
                    .and_then(|k| self.acks.get(&k).copied())
            };
            match by_branch.or_else(by_dialog) {
                Some(id) => self.run(now, id, |m, ctx| {
                    if let Machine::InviteServer(m) = m {
                        m.on_ack(ctx, from, msg);
                    }
                }),
                None => {
                    self.stats.stray_acks += 1;
                    self.events
                        .push_back(TxEvent::StrayAck { from, request: msg });
                }
            }
            return Ok(());
        }
        if let Some(&id) = self.servers.get(&key) {
            self.run(now, id, |m, ctx| match m {
                Machine::InviteServer(m) => m.on_retransmission(ctx),
                Machine::NonInviteServer(m) => m.on_retransmission(ctx),
                _ => {}
            });
            return Ok(());
        }
        let dest = match response_target(&via, &from) {
            ResponseTarget::Addr(p) => p,
            // Unresolvable maddr: answer where the request came from.
            ResponseTarget::Resolve { .. } => from,
        };
        if method != Method::Cancel {
            let total = self.servers_live >= self.cfg.max_server_transactions;
            let source = self.server_transactions_from(from.addr.ip())
                >= self.cfg.max_server_transactions_per_source;
            if total || source {
                if total {
                    self.stats.overload_rejects += 1;
                } else {
                    self.stats.source_limit_rejects += 1;
                }
                // §8.2.6.2: a final response carries a To tag.
                let tag = format!("{:x}", self.next_random());
                let mut busy = make_response(&msg, 503, "Service Unavailable", Some(&tag));
                busy.push_header("Retry-After", OVERLOAD_RETRY_AFTER);
                self.send_stateless(dest, busy.to_bytes());
                return Ok(());
            }
        }
        let cancels = if method == Method::Cancel {
            ServerKey::cancel_target(&msg, &via)
                .ok()
                .and_then(|k| self.servers.get(&k).copied())
                .filter(|id| {
                    matches!(
                        self.txs.get(id).map(|e| e.machine.kind()),
                        Some(TxKind::InviteServer)
                    )
                })
        } else {
            None
        };
        let id = self.alloc_id();
        let machine = if method == Method::Invite {
            let trying = make_response(&msg, 100, "Trying", None);
            let mut ctx = Ctx {
                now,
                cfg: &self.cfg.timers,
                id,
                transmits: &mut self.transmits,
                events: &mut self.events,
                stats: &mut self.stats,
            };
            Machine::InviteServer(InviteServer::start(&mut ctx, dest, msg.clone(), &trying))
        } else {
            Machine::NonInviteServer(NonInviteServer::start(dest, msg.clone()))
        };
        self.insert(id, machine, None, Some(key));
        *self.per_source.entry(from.addr.ip()).or_insert(0) += 1;
        if let Some(e) = self.txs.get_mut(&id) {
            e.source = Some(from.addr.ip());
        }
        self.events.push_back(TxEvent::Request {
            tx: id,
            from,
            request: msg,
            cancels,
        });
        Ok(())
    }

    /// Starts a client transaction for `request` towards `dest` (§17.1). The top
    /// Via must carry a branch from [`Self::new_branch`]. ACK is not a transaction:
    /// use [`Self::send_ack`].
    pub fn send_request(
        &mut self,
        now: Timestamp,
        dest: PeerAddr,
        request: SipMsg,
    ) -> Result<TxId, TxError> {
        let method = request
            .method()
            .cloned()
            .ok_or(TxError::InvalidState("send_request with a response"))?;
        if method == Method::Ack {
            return Err(TxError::InvalidState("ACK is sent with send_ack"));
        }
        let via = request.top_via()?;
        let branch = via
            .rfc3261_branch()
            .ok_or(TxError::MissingBranch)?
            .to_owned();
        let cseq = request.cseq()?;
        if cseq.method != method {
            return Err(TxError::InvalidState(
                "CSeq method differs from the request method",
            ));
        }
        let key = ClientKey {
            branch,
            method: method.clone(),
        };
        if self.clients.contains_key(&key) {
            return Err(TxError::DuplicateTransaction);
        }
        let id = self.alloc_id();
        let mut ctx = Ctx {
            now,
            cfg: &self.cfg.timers,
            id,
            transmits: &mut self.transmits,
            events: &mut self.events,
            stats: &mut self.stats,
        };
        let machine = if method == Method::Invite {
            Machine::InviteClient(InviteClient::start(&mut ctx, dest, request))
        } else {
            Machine::NonInviteClient(NonInviteClient::start(&mut ctx, dest, request))
        };
        self.insert(id, machine, Some(key), None);
        Ok(id)
    }

    /// Cancels a pending INVITE client transaction (§9.1): builds the CANCEL and
    /// starts its own non-INVITE client transaction towards the INVITE's
    /// destination. §9.1 forbids a CANCEL before a provisional response, so the
    /// call fails in Calling; after a final response there is nothing to cancel.
    pub fn send_cancel(&mut self, now: Timestamp, invite_tx: TxId) -> Result<TxId, TxError> {
        let entry = self
            .txs
            .get(&invite_tx)
            .ok_or(TxError::UnknownTransaction(invite_tx))?;
        let Machine::InviteClient(m) = &entry.machine else {
            return Err(TxError::InvalidState(
                "CANCEL of a non-INVITE client transaction",
            ));
        };
        if m.state != InviteClientState::Proceeding {
            return Err(TxError::InvalidState(
                "CANCEL is only allowed in Proceeding (§9.1)",
            ));
        }
        let cancel = build_cancel(&m.request)?;
        let dest = m.dest;
        let cancel_tx = self.send_request(now, dest, cancel)?;
        self.run(now, invite_tx, |m, ctx| {
            if let Machine::InviteClient(m) = m {
                m.on_cancel_sent(ctx);
            }
        });
        Ok(cancel_tx)
    }

    /// Sends the ACK for a 2xx (built by the dialog layer, §13.2.2.4) outside any
    /// transaction. When `invite_tx` is still Accepted, the ACK is remembered and
    /// re-sent for every retransmission of that 2xx (RFC 6026 §7.2).
    pub fn send_ack(&mut self, invite_tx: Option<TxId>, dest: PeerAddr, ack: &SipMsg) {
        let bytes = ack.to_bytes();
        if let Some(Entry {
            machine: Machine::InviteClient(m),
            ..
        }) = invite_tx.and_then(|id| self.txs.get_mut(&id))
        {
            if m.state == InviteClientState::Accepted {
                m.ack_2xx = Some((dest, bytes.clone()));
            }
        }
        self.send_stateless(dest, bytes);
    }

    /// Sends bytes outside any transaction (stateless responses, §8.2.7).
    pub fn send_stateless(&mut self, dest: PeerAddr, bytes: Vec<u8>) {
        self.transmits.push_back(Transmit {
            dest: dest.addr,
            transport: dest.transport,
            conn: dest.conn,
            tx: None,
            bytes,
        });
    }

    /// The TU answers server transaction `tx` (§17.2.1, §17.2.2).
    pub fn respond(&mut self, now: Timestamp, tx: TxId, response: &SipMsg) -> Result<(), TxError> {
        let entry = self.txs.get(&tx).ok_or(TxError::UnknownTransaction(tx))?;
        if !matches!(
            entry.machine,
            Machine::InviteServer(_) | Machine::NonInviteServer(_)
        ) {
            return Err(TxError::InvalidState("respond on a client transaction"));
        }
        let mut result = Ok(());
        self.run(now, tx, |m, ctx| {
            result = match m {
                Machine::InviteServer(m) => m.respond(ctx, response),
                Machine::NonInviteServer(m) => m.respond(ctx, response),
                _ => Ok(()),
            };
        });
        result?;
        let status = response.status().unwrap_or(0);
        let Some(entry) = self.txs.get_mut(&tx) else {
            return Ok(());
        };
        let Machine::InviteServer(m) = &entry.machine else {
            return Ok(());
        };
        let to_tag = response.to_tag().ok().flatten();
        if (300..=699).contains(&status) {
            // RFC 2543 ACK matching: the ACK carries the To tag of our final response.
            if let Some(ServerKey::Rfc2543 { .. }) = entry.server_keys.first() {
                let ack_key = entry.server_keys.first().map(|k| k.with_to_tag(to_tag));
                if let Some(k) = ack_key {
                    self.servers.insert(k.clone(), tx);
                    entry.server_keys.push(k);
                }
            }
        } else if (200..=299).contains(&status) && entry.ack_key.is_none() {
            let mut key = AckKey::of(&m.request)?;
            key.to_tag = to_tag.map(str::to_owned);
            self.acks.insert(key.clone(), tx);
            entry.ack_key = Some(key);
        }
        Ok(())
    }

    fn alloc_id(&mut self) -> TxId {
        let id = TxId(self.next_id);
        self.next_id += 1;
        id
    }

    fn insert(
        &mut self,
        id: TxId,
        mut machine: Machine,
        client: Option<ClientKey>,
        server: Option<ServerKey>,
    ) {
        self.stats.on_created(machine.kind());
        if server.is_some() {
            self.servers_live += 1;
        }
        if let Some(k) = &client {
            self.clients.insert(k.clone(), id);
        }
        if let Some(k) = &server {
            self.servers.insert(k.clone(), id);
        }
        let armed = *machine.timers();
        for (timer, at) in armed.running() {
            self.timers.insert((at, id, timer));
        }
        let entry = Entry {
            machine,
            client_key: client,
            server_keys: server.into_iter().collect(),
            ack_key: None,
            armed,
            source: None,
        };
        self.txs.insert(id, entry);
    }

    /// Runs `f` on transaction `id`, then re-syncs its timers and removes it once Terminated.
    fn run(&mut self, now: Timestamp, id: TxId, f: impl FnOnce(&mut Machine, &mut Ctx<'_>)) {
        let Some(entry) = self.txs.get_mut(&id) else {
            return;
        };
        let mut ctx = Ctx {
            now,
            cfg: &self.cfg.timers,
            id,
            transmits: &mut self.transmits,
            events: &mut self.events,
            stats: &mut self.stats,
        };
        f(&mut entry.machine, &mut ctx);
        let current = *entry.machine.timers();
        for (timer, at) in entry.armed.running() {
            if current.get(timer) != Some(at) {
                self.timers.remove(&(at, id, timer));
            }
        }
        for (timer, at) in current.running() {
            self.timers.insert((at, id, timer));
        }
        entry.armed = current;
        if entry.machine.is_terminated() {
            self.remove(id);
        }
    }

    fn remove(&mut self, id: TxId) {
        let Some(entry) = self.txs.remove(&id) else {
            return;
        };
        for (timer, at) in entry.armed.running() {
            self.timers.remove(&(at, id, timer));
        }
        if let Some(k) = entry.client_key {
            self.clients.remove(&k);
        }
        if !entry.server_keys.is_empty() {
            self.servers_live = self.servers_live.saturating_sub(1);
        }
        if let Some(ip) = entry.source {
            if let Some(n) = self.per_source.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_source.remove(&ip);
                }
            }
        }
        for k in entry.server_keys {
            if self.servers.get(&k) == Some(&id) {
                self.servers.remove(&k);
            }
        }
        if let Some(k) = entry.ack_key {
            if self.acks.get(&k) == Some(&id) {
                self.acks.remove(&k);
            }
        }
        self.stats.on_terminated(entry.machine.kind());
    }
}

/// Shrinks a map that holds far less than its capacity.
fn shrink_map<K: std::hash::Hash + Eq, V>(m: &mut HashMap<K, V>) {
    if m.capacity() > 4 * m.len() + 1024 {
        m.shrink_to(2 * m.len());
    }
}

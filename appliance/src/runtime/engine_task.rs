//! The engine task: the only owner of the sans-IO [`B2bua`].
//!
//! One tokio task feeds it transport events (with `now` from the process
//! [`Clock`]), sleeps until `poll_timeout`, polls the data plane's events every
//! [`MEDIA_POLL`], drains `poll_transmit` into the drivers and `poll_event` into
//! logs and the CDR writer. Everything else talks to it through [`Cmd`] on a
//! bounded channel, so the engine stays single-threaded and lock-free.
//!
//! CDRs: every input first refreshes the engine's wall-clock offset
//! ([`engine_now`]), so records carry the wall clock of the moment they are made. An
//! answered call is journalled at once (its record as of the answer, see
//! [`super::cdr_journal`]); each record goes to the writer's [`CdrQueue`], and after
//! every turn the queue's state drives the engine's CDR back-pressure (new calls get
//! `503` while the writer is behind).

use std::sync::Arc;
use std::time::Duration;

use portcullis_engine::b2bua::{B2bua, CallEvent, CallSummary, CdrRecord, EndReason, EngineStats};
use portcullis_engine::config::EngineConfig;
use portcullis_engine::media::MediaControl;
use portcullis_engine::time::Timestamp;
use portcullis_engine::transaction::{ConnId, PeerAddr, Transport as TxTransport, TxStats};
use portcullis_net::{
    CloseReason, ConnId as NetConnId, Outbound, SipTransports, Transport as NetTransport,
    TransportEvent,
};
use tokio::sync::{mpsc, oneshot};

use super::call_log::CallSpans;
use super::cdr_writer::CdrQueue;
pub use super::clock::Clock;
use super::media::{DataplaneMedia, MediaNote};
use super::teams::{TeamsCounters, TeamsDriver, TeamsPlan, TeamsProxyStatus};

/// How often the data plane's event rings are drained.
pub const MEDIA_POLL: Duration = Duration::from_millis(25);

/// Transport events handled per wake-up before outputs are flushed (work budget).
const INPUT_BUDGET: usize = 256;

/// Outputs drained per flush (work budget; the rest waits for the next turn).
const OUTPUT_BUDGET: usize = 100_000;

/// Engine counters copied out for metrics.
#[derive(Debug, Clone, Default)]
pub struct EngineSnapshot {
    /// Call engine counters.
    pub engine: EngineStats,
    /// Transaction layer counters.
    pub tx: TxStats,
    /// Calls not yet ended.
    pub active_calls: usize,
    /// Media pairs reserved.
    pub media_pairs: usize,
    /// Data plane events lost to full rings.
    pub media_events_lost: u64,
    /// Whether new calls are refused (SIGTERM).
    pub draining: bool,
    /// Teams proxies (empty without `[teams]`).
    pub teams: Vec<TeamsProxyStatus>,
    /// Teams driver counters.
    pub teams_counters: TeamsCounters,
}

/// Requests to the engine task.
#[derive(Debug)]
pub enum Cmd {
    /// Live calls.
    Calls(oneshot::Sender<Vec<CallSummary>>),
    /// Admin teardown of one call.
    Terminate(u64, oneshot::Sender<bool>),
    /// Reload: new calls use this configuration.
    SetConfig(Arc<EngineConfig>, oneshot::Sender<Result<(), String>>),
    /// Reload: the `[teams]` section to watch from now on (`None`: none). An
    /// unchanged plan keeps the proxies' health; a changed one starts afresh.
    SetTeams(Option<TeamsPlan>),
    /// Counters.
    Stats(oneshot::Sender<EngineSnapshot>),
    /// Liveness probe (watchdog).
    Ping(oneshot::Sender<()>),
    /// Refuse new calls with 503.
    Drain,
    /// BYE every call.
    ReleaseAll,
    /// Leave the loop (outputs are flushed first).
    Stop,
}

/// What the engine task starts with besides the B2BUA.
#[derive(Debug)]
pub struct EngineTaskConfig {
    /// Process clock.
    pub clock: Clock,
    /// CDR records and journal entries go there.
    pub cdr: CdrQueue,
    /// Node name written in CDRs.
    pub node: String,
    /// Teams proxies to watch (`[teams]`).
    pub teams: Option<TeamsPlan>,
    /// Seed of the Teams monitor's identifiers.
    pub seed: u64,
}

/// Runs the engine until [`Cmd::Stop`] or until the drivers close.
pub async fn run(
    mut b2b: B2bua<DataplaneMedia>,
    net: SipTransports,
    mut events: mpsc::Receiver<TransportEvent>,
    mut cmds: mpsc::Receiver<Cmd>,
    tc: EngineTaskConfig,
) {
    let clock = tc.clock.clone();
    let mut ctx = Ctx {
        net,
        clock: tc.clock,
        cdr: tc.cdr,
        node: tc.node,
        media_buf: Vec::new(),
        spans: CallSpans::default(),
        teams: None,
        seed: tc.seed,
    };
    ctx.set_teams(tc.teams);
    let mut media_tick = tokio::time::interval(MEDIA_POLL);
    media_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let now = clock.now();
        let teams_due = ctx.teams.as_ref().and_then(|t| t.poll_timeout(now));
        let deadline = [b2b.poll_timeout(), teams_due]
            .into_iter()
            .flatten()
            .min()
            .map(|t| clock.instant(t));
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            cmd = cmds.recv() => {
                let Some(cmd) = cmd else { break };
                if !ctx.command(&mut b2b, cmd) {
                    ctx.flush(&mut b2b);
                    break;
                }
            }
            ev = events.recv() => {
                let Some(ev) = ev else {
                    tracing::error!("SIP drivers stopped");
                    break;
                };
                ctx.transport_event(&mut b2b, ev);
                for _ in 1..INPUT_BUDGET {
                    match events.try_recv() {
                        Ok(ev) => ctx.transport_event(&mut b2b, ev),
                        Err(_) => break,
                    }
                }
            }
            () = sleep => {
                let now = engine_now(&clock, &mut b2b);
                b2b.handle_timeout(now);
                if let Some(t) = &mut ctx.teams {
                    t.handle_timeout(now, &ctx.net);
                }
            }
            _ = media_tick.tick() => ctx.media(&mut b2b),
        }
        ctx.flush(&mut b2b);
    }
}

/// Engine time now, with the engine's CDR wall-clock offset refreshed from `clock`
/// (see [`super::clock`]): every input goes through it.
pub fn engine_now<M: MediaControl>(clock: &Clock, b2b: &mut B2bua<M>) -> Timestamp {
    let now = clock.now();
    b2b.set_epoch_offset_ms(clock.epoch_offset_ms(now));
    now
}

struct Ctx {
    net: SipTransports,
    clock: Clock,
    cdr: CdrQueue,
    node: String,
    media_buf: Vec<MediaNote>,
    spans: CallSpans,
    teams: Option<TeamsDriver>,
    seed: u64,
}

fn tx_transport(t: NetTransport) -> TxTransport {
    match t {
        NetTransport::Udp => TxTransport::Udp,
        NetTransport::Tcp => TxTransport::Tcp,
        NetTransport::Tls | NetTransport::Mtls => TxTransport::Tls,
    }
}

fn net_transport(t: TxTransport) -> NetTransport {
    match t {
        TxTransport::Udp => NetTransport::Udp,
        TxTransport::Tcp => NetTransport::Tcp,
        TxTransport::Tls => NetTransport::Tls,
    }
}

impl Ctx {
    /// Starts, keeps or stops the Teams monitor.
    fn set_teams(&mut self, plan: Option<TeamsPlan>) {
        if self.teams.as_ref().map(TeamsDriver::plan) == plan.as_ref() {
            return;
        }
        self.teams = None;
        let Some(plan) = plan else { return };
        self.seed = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let n = plan.proxies.len();
        match TeamsDriver::new(plan, self.clock.now(), self.seed) {
            Ok(d) => {
                tracing::info!(proxies = n, "Teams proxy health monitor started");
                self.teams = Some(d);
            }
            Err(e) => tracing::error!(error = %e, "Teams proxy health monitor not started"),
        }
    }

    /// Handles one command; `false` asks the loop to stop.
    fn command(&mut self, b2b: &mut B2bua<DataplaneMedia>, cmd: Cmd) -> bool {
        match cmd {
            Cmd::Calls(tx) => {
                let _ = tx.send(b2b.calls());
            }
            Cmd::Terminate(call, tx) => {
                if let Some(span) = self.spans.get(call) {
                    span.in_scope(|| tracing::info!("terminate requested by the admin API"));
                }
                let now = engine_now(&self.clock, b2b);
                let ok = b2b.terminate(now, call);
                let _ = tx.send(ok);
            }
            Cmd::SetConfig(cfg, tx) => {
                let _ = tx.send(b2b.set_config(cfg).map_err(|e| e.to_string()));
            }
            Cmd::SetTeams(plan) => self.set_teams(plan),
            Cmd::Stats(tx) => {
                let now = self.clock.now();
                let _ = tx.send(EngineSnapshot {
                    teams: self
                        .teams
                        .as_ref()
                        .map(|t| t.status(now))
                        .unwrap_or_default(),
                    teams_counters: self
                        .teams
                        .as_ref()
                        .map(TeamsDriver::counters)
                        .unwrap_or_default(),
                    engine: b2b.stats().clone(),
                    tx: *b2b.tx_stats(),
                    active_calls: b2b.active_calls(),
                    media_pairs: b2b.media().active(),
                    media_events_lost: b2b.media().events_lost,
                    draining: b2b.is_draining(),
                });
            }
            Cmd::Ping(tx) => {
                let _ = tx.send(());
            }
            Cmd::Drain => b2b.start_drain(),
            Cmd::ReleaseAll => {
                let now = engine_now(&self.clock, b2b);
                b2b.release_all(now);
            }
            Cmd::Stop => return false,
        }
        true
    }

    fn transport_event(&mut self, b2b: &mut B2bua<DataplaneMedia>, ev: TransportEvent) {
        let now = engine_now(&self.clock, b2b);
        match ev {
            TransportEvent::Message(m) => {
                if let Some(t) = &mut self.teams {
                    if t.handle_message(now, m.remote, &m.bytes) {
                        return;
                    }
                }
                let from = PeerAddr {
                    transport: tx_transport(m.transport),
                    addr: m.remote,
                    conn: m.conn.map(|c| ConnId(c.0)),
                };
                match &m.tls_peer_names {
                    Some(names) => b2b.handle_datagram_with_names(now, from, Some(names), &m.bytes),
                    None => b2b.handle_datagram(now, from, &m.bytes),
                }
            }
            TransportEvent::ConnectionClosed {
                conn,
                remote,
                reason,
                ..
            } => {
                if let Some(t) = &mut self.teams {
                    let local = matches!(reason, CloseReason::Local);
                    t.handle_connection_closed(now, remote, local);
                }
                b2b.handle_connection_lost(now, ConnId(conn.0));
            }
            TransportEvent::SendFailed {
                conn,
                remote,
                error,
                bytes,
                ..
            } => {
                tracing::debug!(%remote, %error, "send failed");
                if let Some(t) = &mut self.teams {
                    t.handle_send_failed(now, remote, &bytes);
                }
                b2b.handle_connection_lost(now, ConnId(conn.0));
            }
            TransportEvent::FramingError {
                conn,
                remote,
                error,
                ..
            } => {
                tracing::debug!(%conn, %remote, ?error, "stream framing error");
            }
            TransportEvent::ConnectionOpened { remote, .. } => {
                if let Some(t) = &mut self.teams {
                    t.handle_connection_opened(remote);
                }
            }
            TransportEvent::KeepalivePong { .. } => {}
        }
    }

    fn media(&mut self, b2b: &mut B2bua<DataplaneMedia>) {
        self.media_buf.clear();
        b2b.media_mut().poll_events(&mut self.media_buf);
        if self.media_buf.is_empty() {
            return;
        }
        let now = engine_now(&self.clock, b2b);
        for note in std::mem::take(&mut self.media_buf) {
            // Logged in the call's span, before the engine acts on it (an inactivity
            // ends the call, and its span with it).
            match b2b.call_of_media(note.media()) {
                Some(call) => self.call_span(b2b, call).in_scope(|| note.log()),
                None => note.log(),
            }
            b2b.handle_media_event(now, note.event);
        }
    }

    /// Sends what the engine wants sent and handles what it reports.
    fn flush(&mut self, b2b: &mut B2bua<DataplaneMedia>) {
        if let Some(t) = &mut self.teams {
            t.flush(self.clock.now(), &self.net, b2b);
        }
        for _ in 0..OUTPUT_BUDGET {
            let Some(mut t) = b2b.poll_transmit() else {
                break;
            };
            if t.tls_server_name.is_none() && t.dest.transport == TxTransport::Tls {
                t.tls_server_name = self
                    .teams
                    .as_ref()
                    .and_then(|tm| tm.server_name_for(t.dest.addr));
            }
            let out = Outbound {
                transport: net_transport(t.dest.transport),
                remote: t.dest.addr,
                conn: t.dest.conn.map(|c| NetConnId(c.0)),
                local: None,
                bytes: t.bytes,
                tls_server_name: t.tls_server_name,
            };
            if let Err(e) = self.net.send(out) {
                tracing::debug!(dest = %t.dest.addr, error = %e, "send refused");
                if let Some(tx) = t.tx {
                    let now = engine_now(&self.clock, b2b);
                    b2b.handle_tx_error(now, tx);
                }
            }
        }
        for _ in 0..OUTPUT_BUDGET {
            let Some(ev) = b2b.poll_event() else { break };
            self.call_event(b2b, ev);
        }
        let behind = self.cdr.pump();
        if behind != b2b.cdr_backpressure() {
            b2b.set_cdr_backpressure(behind);
            if behind {
                tracing::warn!(
                    queued = self.cdr.depth(),
                    "CDR writer behind: new calls refused with 503"
                );
            } else {
                tracing::info!("CDR writer caught up: new calls accepted");
            }
        }
    }

    /// The call's span (see [`super::call_log`]), its Call-IDs as the engine knows them now.
    fn call_span(&mut self, b2b: &B2bua<DataplaneMedia>, call: u64) -> tracing::Span {
        let (a, b) = b2b.call_ids(call).unwrap_or(("", None));
        self.spans.span(call, a, b)
    }

    fn call_event(&mut self, b2b: &B2bua<DataplaneMedia>, ev: CallEvent) {
        match ev {
            CallEvent::CallStarted {
                call,
                inbound_trunk,
                calling,
                called,
            } => {
                let _in = self.call_span(b2b, call).entered();
                tracing::info!(trunk = %inbound_trunk, %calling, %called, "call started");
            }
            CallEvent::CallAnswered {
                call,
                outbound_trunk,
            } => {
                let _in = self.call_span(b2b, call).entered();
                tracing::info!(trunk = %outbound_trunk, "call answered");
                self.journal(b2b, call);
            }
            CallEvent::CallEnded { cdr } => {
                let b_call_id = cdr.b_leg.as_ref().map(|b| b.call_id.as_str());
                let span = self.spans.span(cdr.call_id, &cdr.a_leg.call_id, b_call_id);
                self.spans.close(cdr.call_id);
                let _in = span.entered();
                tracing::info!(
                    reason = ?cdr.end_reason,
                    status = ?cdr.final_status,
                    "call ended"
                );
                self.cdr.record(cdr.call_id, cdr_line(&cdr, &self.node));
                if cdr.end_reason == EndReason::Transferred {
                    // The call goes on with its new leg: journal it as it is now.
                    self.journal(b2b, cdr.call_id);
                }
            }
            CallEvent::Rejected {
                status,
                reason,
                source,
            } => tracing::info!(status, %reason, %source, "request rejected"),
            CallEvent::PolicyBan { ip, duration } => {
                // Its TCP/TLS connections go too, and it gets none until the ban ends.
                let closed = self.net.refuse(ip, duration);
                tracing::warn!(%ip, ?duration, closed, "source banned");
            }
        }
    }

    /// Journals live answered call `call` (its record as of now).
    fn journal(&mut self, b2b: &B2bua<DataplaneMedia>, call: u64) {
        if let Some(r) = b2b.open_record(self.clock.now(), call) {
            self.cdr.open(call, cdr_line(&r, &self.node));
        }
    }
}

/// The CDR as one JSON line with the node name added (times are already wall-clock:
/// the engine adds the clock's epoch offset).
pub fn cdr_line(cdr: &CdrRecord, node: &str) -> String {
    let mut v = match serde_json::to_value(cdr) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => return cdr.to_json_line(),
    };
    v.insert("node".into(), node.into());
    let mut s = serde_json::Value::Object(v).to_string();
    s.push('\n');
    s
}

#[cfg(test)]
#[path = "engine_task_tests.rs"]
mod tests;

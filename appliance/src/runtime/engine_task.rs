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
use std::time::{Duration, Instant, SystemTime};

use portcullis_engine::b2bua::{B2bua, CallSummary, CdrRecord, EngineStats};
use portcullis_engine::config::EngineConfig;
use portcullis_engine::media::MediaControl;
use portcullis_engine::time::Timestamp;
use portcullis_engine::transaction::{ConnId, PeerAddr, Transport as TxTransport, TxStats};
use portcullis_net::{
    CloseReason, ConnId as NetConnId, Outbound, SipTransports, Transport as NetTransport,
    TransportEvent, TransportEvents,
};
use tokio::sync::{mpsc, oneshot};

use super::call_log::CallSpans;
use super::call_trace::CallTraces;
use super::capture::{self, Capture, IpProto, SipCapture};
use super::cdr_writer::CdrQueue;
pub use super::clock::Clock;
use super::media::{DataplaneMedia, MediaNote};
use super::reject_log::RejectLog;
use super::teams::{TeamsCounters, TeamsDriver, TeamsPlan, TeamsProxyStatus};
use crate::admin::recent::RecentCalls;

mod commands;
mod events;

/// How often the data plane's event rings are drained.
pub const MEDIA_POLL: Duration = Duration::from_millis(25);

/// Transport events handled per wake-up before outputs are flushed (work budget).
const INPUT_BUDGET: usize = 256;

/// Outputs drained per flush (work budget; the rest waits for the next turn).
const OUTPUT_BUDGET: usize = 100_000;

/// How often the engine's tables give back what a flood made them grow.
const SHRINK_EVERY: Duration = Duration::from_secs(5);

/// Engine counters copied out for metrics.
#[derive(Debug, Clone, Default)]
pub struct EngineSnapshot {
    /// Call engine counters.
    pub engine: EngineStats,
    /// Transaction layer counters.
    pub tx: TxStats,
    /// Calls not yet ended.
    pub active_calls: usize,
    /// Live SIP transactions.
    pub transactions: usize,
    /// Bans in force (hosts and widened prefixes).
    pub bans_active: usize,
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
    /// SIP messages sent to the HEP collector, and those dropped.
    pub capture: (u64, u64),
    /// Trunks out of routing after a `503` with `Retry-After`, with the time left.
    pub trunks_held_off: Vec<(String, Duration)>,
    /// Every trunk's targets and their health.
    pub trunk_targets: Vec<super::trunk_status::TrunkTargetsStatus>,
    /// Registrations toward carriers.
    pub registrations: Vec<crate::admin::RegistrationInfo>,
    /// A REGISTER (an un-REGISTER at shutdown) is still in flight.
    pub registrations_pending: bool,
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
    /// Reload: the `[capture]` section (`None`: capture off).
    SetCapture(Option<crate::config::CaptureConfig>),
    /// Reload: the trunk names to resolve and the `[dns]` section. An unchanged
    /// plan keeps its resolution tasks; a changed one starts afresh.
    SetDns(super::dns::DnsPlan),
    /// Counters.
    Stats(oneshot::Sender<EngineSnapshot>),
    /// Liveness probe (watchdog).
    Ping(oneshot::Sender<()>),
    /// Refuse new calls with 503.
    Drain,
    /// BYE every call.
    ReleaseAll,
    /// Un-REGISTER every registration (shutdown).
    Unregister,
    /// Leave the loop (outputs are flushed first).
    Stop,
    /// Records of calls an earlier run left open, settled late
    /// (`super::cdr_unconfirmed`): to the CDR writer, `done` told when durable.
    CdrRecovered(Vec<String>, oneshot::Sender<bool>),
    /// Standby of a pair: arm the media of these replicated calls ahead of a takeover,
    /// release that of the calls gone (`crate::ha::warm`).
    HaWarm(crate::ha::store::Changes),
    /// Active/standby pair: restore these calls (a takeover, `crate::ha`).
    HaTakeover(
        Vec<(String, crate::ha::HaRecord)>,
        oneshot::Sender<crate::ha::TakeoverReport>,
    ),
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
    /// HEP capture (`[capture]`).
    pub capture: Option<crate::config::CaptureConfig>,
    /// Trunk names and domains to resolve (`[dns]`).
    pub dns: super::dns::DnsPlan,
    /// Ended calls and refusals, for the dashboard's recent failures and trunk health.
    pub recent: Arc<RecentCalls>,
    /// Replication of answered calls (`[ha]`).
    pub ha: Option<crate::ha::driver::HaDriver>,
}

/// Runs the engine until [`Cmd::Stop`] or until the drivers close.
pub async fn run(
    mut b2b: B2bua<DataplaneMedia>,
    net: SipTransports,
    mut events: TransportEvents,
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
        traces: CallTraces::new(crate::traces::tracer()),
        teams: None,
        capture: None,
        capture_config: None,
        capture_counts: (0, 0),
        correlations: capture::Correlations::default(),
        rejects: RejectLog::default(),
        shrunk_at: Timestamp::ZERO,
        recent: tc.recent,
        dns: None,
        ha: tc.ha,
    };
    ctx.set_dns(tc.dns);
    ctx.set_teams(tc.teams);
    ctx.set_capture(tc.capture);
    let mut media_tick = tokio::time::interval(MEDIA_POLL);
    media_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Set when a whole input budget was taken: the drivers' receive tasks get their
        // turn before the next batch (on a single control-plane thread, overload then
        // lands in the drivers' event queues, where trunks have their own, not in the
        // sockets' kernel buffers, which every source shares).
        let mut busy = false;
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
                busy = true;
                for _ in 1..INPUT_BUDGET {
                    match events.try_recv() {
                        Ok(ev) => ctx.transport_event(&mut b2b, ev),
                        Err(_) => {
                            busy = false;
                            break;
                        }
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
            _ = media_tick.tick() => {
                ctx.media(&mut b2b);
                if let Some(h) = &mut ctx.ha {
                    h.tick(&mut b2b);
                }
            }
            Some(answer) = next_dns(&mut ctx.dns) => {
                let now = clock.now();
                let trunk = answer.trunk.clone();
                match &answer.result {
                    Ok((t, ttl)) => tracing::debug!(%trunk, targets = t.len(), ?ttl, "trunk resolved"),
                    Err(e) => tracing::warn!(%trunk, error = %e, "trunk not resolved"),
                }
                b2b.set_trunk_targets(now, &trunk, answer.update(now));
            }
        }
        ctx.flush(&mut b2b);
        if busy {
            tokio::task::yield_now().await;
        }
    }
}

/// The next DNS answer (pending forever without a resolver).
async fn next_dns(d: &mut Option<super::dns::DnsDriver>) -> Option<super::dns::DnsAnswer> {
    match d {
        Some(d) => d.recv().await,
        None => std::future::pending().await,
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
    /// OpenTelemetry traces of call setup (`[otel]`).
    traces: CallTraces,
    teams: Option<TeamsDriver>,
    capture: Option<Capture>,
    capture_config: Option<crate::config::CaptureConfig>,
    /// Sent and dropped by captures replaced on reload.
    capture_counts: (u64, u64),
    correlations: capture::Correlations,
    /// Refusals and bans, summarised once per interval.
    rejects: RejectLog,
    /// Last [`B2bua::shrink`].
    shrunk_at: Timestamp,
    recent: Arc<RecentCalls>,
    /// Resolution of trunk names (RFC 3263), off this task.
    dns: Option<super::dns::DnsDriver>,
    /// Replication of answered calls (`[ha]`).
    ha: Option<crate::ha::driver::HaDriver>,
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
    /// Captures one SIP message, correlated with its call's A leg.
    fn capture(
        &mut self,
        b2b: &B2bua<DataplaneMedia>,
        proto: NetTransport,
        src: std::net::SocketAddr,
        dst: std::net::SocketAddr,
        bytes: &[u8],
    ) {
        let Some(cap) = &mut self.capture else { return };
        let correlation = capture::dialog_ids(bytes).map(|(id, tags)| {
            self.correlations
                .correlate(id, b2b.a_leg_call_id(id, tags), Instant::now())
        });
        cap.send(&SipCapture {
            proto: if proto.is_stream() {
                IpProto::Tcp
            } else {
                IpProto::Udp
            },
            src,
            dst,
            time: SystemTime::now(),
            payload: bytes,
            correlation: correlation.as_deref(),
        });
    }

    fn transport_event(&mut self, b2b: &mut B2bua<DataplaneMedia>, ev: TransportEvent) {
        let now = engine_now(&self.clock, b2b);
        match ev {
            TransportEvent::Message(m) => {
                if self.capture.is_some() {
                    self.capture(b2b, m.transport, m.remote, m.local, &m.bytes);
                }
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
            if self.capture.is_some() {
                let transport = net_transport(t.dest.transport);
                // The listener of that transport sends it (a stream's own local port is
                // the connection's, which the engine does not see).
                let src = self.net.local_addr(transport).unwrap_or(t.dest.addr);
                self.capture(b2b, transport, src, t.dest.addr, &t.bytes);
            }
            let out = Outbound {
                transport: net_transport(t.dest.transport),
                remote: t.dest.addr,
                conn: t.dest.conn.map(|c| NetConnId(c.0)),
                // The trunk's own listener, when it names one (UDP: that socket sends).
                local: t.local,
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
        if let Some(h) = &mut self.ha {
            h.drain(b2b);
        }
        let now = self.clock.now();
        if let Some(line) = self.rejects.poll(now) {
            tracing::info!("{line}");
        }
        if now.saturating_duration_since(self.shrunk_at) >= SHRINK_EVERY {
            self.shrunk_at = now;
            b2b.shrink();
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

//! [`AdminBackend`] for the running appliance ([`ApplianceHandle`]), and the runtime
//! [`Extension`] that starts the admin server once both planes are up.

use std::collections::BTreeMap;
use std::path::PathBuf;

use portcullis_engine::b2bua::{CallSummary, EngineStats, Outcome};
use portcullis_engine::media::LegMediaStats;

use super::metrics::backend_label;
use super::recent::TrunkOutcome;
use super::{
    quality, spawn, AdminBackend, AdminServerConfig, CallInfo, CallMedia, Failure, Health,
    LegMedia, MetricsSnapshot, SipCounters, TeamsInfo, TeamsMetrics, TrunkCounters, TrunkHealth,
    TrunkInfo, WorkerSample,
};
use crate::config::{AdminConfig, Config};
use crate::runtime::{ApplianceHandle, EngineSnapshot, Extension};

/// The admin view of the running appliance.
#[derive(Debug, Clone)]
pub struct ApplianceBackend {
    handle: ApplianceHandle,
}

impl ApplianceBackend {
    /// Wraps the runtime handle.
    #[must_use]
    pub fn new(handle: ApplianceHandle) -> Self {
        Self { handle }
    }
}

/// The runtime extension serving the admin API on `[admin] listen`.
///
/// A bind failure (the port is taken) fails the start with a message naming the address,
/// as the SIP and media binds do: an appliance without its admin API cannot be watched
/// or drained by its operators. (The configuration check already refuses an address that
/// clashes with a SIP TCP/TLS listener.)
#[must_use]
pub fn extension(cfg: &AdminConfig) -> Extension {
    let scfg = AdminServerConfig {
        listen: cfg.listen,
        token: cfg.token.as_ref().map(|t| t.expose().to_owned()),
    };
    Box::new(move |handle: ApplianceHandle| {
        Box::pin(async move {
            let listen = scfg.listen;
            // The server keeps running once spawned (dropping its handle does not stop it).
            spawn(scfg, ApplianceBackend::new(handle))
                .await
                .map(drop)
                .map_err(|e| anyhow::anyhow!("admin API listener {listen}: {e}"))
        })
    })
}

/// A live call's media for the admin API: codec and SRTP per leg, counters, quality.
fn call_media(c: &CallSummary) -> Option<CallMedia> {
    c.media?;
    let stats = c.media_stats.unwrap_or_default();
    let leg = |i: usize, s: &LegMediaStats| LegMedia {
        codec: c.codec.get(i).cloned().flatten(),
        srtp: c
            .srtp
            .get(i)
            .copied()
            .flatten()
            .map(|k| k.as_sdp().to_owned()),
        rx_packets: s.rx_packets,
        rx_bytes: s.rx_bytes,
        tx_packets: s.tx_packets,
        tx_bytes: s.tx_bytes,
        lost: s.rtp_lost,
        jitter_ms: s.rtp_jitter_us.map(|j| f64::from(j) / 1000.0),
        quality: quality::estimate(s.rx_packets, s.rtp_lost, s.rtp_jitter_us),
    };
    Some(CallMedia {
        a: leg(0, &stats.a),
        b: leg(1, &stats.b),
    })
}

/// A trunk's health from its `Retry-After` hold-off and the last call that tried it.
fn trunk_health(held_off_s: Option<u64>, last: Option<&TrunkOutcome>) -> TrunkHealth {
    let state = match (held_off_s, last) {
        (Some(_), _) => "held_off",
        (None, Some(o)) if o.failures_in_row > 0 => "failing",
        (None, Some(_)) => "up",
        (None, None) => "unknown",
    };
    TrunkHealth {
        state: state.to_owned(),
        held_off_s,
        last_attempt_ms: last.map(|o| o.at_ms),
        last_status: last.and_then(|o| o.status),
        failures_in_row: last.map_or(0, |o| o.failures_in_row),
    }
}

/// Stable label of a call outcome.
fn outcome_label(o: Outcome) -> &'static str {
    match o {
        Outcome::Answered => "answered",
        Outcome::Cancelled => "cancelled",
        Outcome::Failed => "failed",
        Outcome::Refused => "refused",
        Outcome::NoRoute => "no_route",
    }
}

fn sip_counters(snap: &EngineSnapshot) -> SipCounters {
    let e = &snap.engine;
    SipCounters {
        rejected: e.rejected.clone(),
        limit_rejects: [
            ("transactions", snap.tx.overload_rejects),
            ("transactions_per_source", snap.tx.source_limit_rejects),
            ("calls", e.call_limit_rejects),
        ]
        .into_iter()
        .collect(),
        options_unavailable: [
            ("draining", e.options_draining),
            ("overload", e.options_overloaded),
        ]
        .into_iter()
        .collect(),
        transactions: snap.transactions as u64,
        bans_active: snap.bans_active as u64,
        requests_in: e.requests_in.clone(),
        requests_out: e.requests_out.clone(),
        responses_in: e.responses_in,
        responses_out: e.responses_out,
        transaction_timeouts: e.transaction_timeouts,
        parse_errors: e.parse_errors,
        policy_rejects: e.policy_rejects,
        auth_replays: e.auth_replays,
        codec_rejects: e.codec_rejects,
        header_rules_applied: e.header_rules_applied,
        delayed_offer_reoffers: e.delayed_offer_reoffers,
        dtmf_to_info: e.dtmf_to_info,
        dtmf_to_rfc4733: e.dtmf_to_rfc4733,
        dtmf_failed: e.dtmf_failed,
        bans: e.bans,
        dropped: e.dropped,
    }
}

/// Per-trunk counters: every configured trunk appears (zeros included), plus any trunk
/// the engine still counts from before a reload.
fn trunk_counters(
    cfg: &Config,
    e: &EngineStats,
    calls: &[CallSummary],
) -> BTreeMap<String, TrunkCounters> {
    let mut out: BTreeMap<String, TrunkCounters> = cfg
        .trunks
        .iter()
        .map(|t| (t.name.to_string(), TrunkCounters::default()))
        .collect();
    for (name, s) in &e.by_trunk {
        let t = out.entry(name.clone()).or_default();
        t.inbound = s.inbound;
        t.outbound = s.outbound;
        t.outcomes = s
            .outcomes
            .iter()
            .map(|(o, n)| (outcome_label(*o), *n))
            .collect();
    }
    for c in calls {
        if let Some(t) = out.get_mut(&c.inbound_trunk) {
            t.active += 1;
        }
        if let Some(ob) = &c.outbound_trunk {
            if ob != &c.inbound_trunk {
                if let Some(t) = out.get_mut(ob) {
                    t.active += 1;
                }
            }
        }
    }
    out
}

impl AdminBackend for ApplianceBackend {
    async fn health(&self) -> Health {
        let (ready, reasons) = self.handle.health().await;
        Health { ready, reasons }
    }

    async fn metrics(&self) -> MetricsSnapshot {
        let stats = self.handle.stats().await;
        let calls = self.handle.calls().await;
        let cfg = self.handle.config();
        let e = &stats.engine.engine;
        MetricsSnapshot {
            config_generation: stats.config_generation,
            calls_total: e.calls_total,
            calls_active: stats.engine.active_calls as u64,
            trunks: trunk_counters(&cfg, e, &calls),
            sip: sip_counters(&stats.engine),
            net: Some(stats.net),
            workers: stats.workers,
            dataplane_backend: backend_label(self.handle.dataplane().backend()).to_owned(),
            media_events_lost: stats.engine.media_events_lost,
            media_errors: e.media_errors,
            media_bypassed: e.media_bypassed,
            cdr_written: stats.cdr_written,
            cdr_errors: stats.cdr_errors,
            cdr_queue_depth: stats.cdr_queue_depth,
            cdr_backpressure: stats.cdr_behind,
            cdr_backpressure_rejects: e.cdr_rejects,
            cdr_recovered: stats.cdr_recovered,
            log_lines_dropped: crate::logging::lines_dropped(),
            rings: self.handle.dataplane().ring_depths(),
            capture: cfg.capture.is_some().then_some(stats.engine.capture),
            ng: self.handle.ng_stats(),
            log_filter: self.log_filter(),
            teams: cfg.teams.is_some().then(|| TeamsMetrics {
                proxies: stats.engine.teams.clone(),
                failovers: stats.engine.teams_counters.failovers,
            }),
            trunk_targets: stats.engine.trunk_targets.clone(),
            registrations: stats.engine.registrations.clone(),
            fast_path: self.handle.dataplane().fast_path_stats(),
            traces: crate::traces::counts(),
            ha: self.handle.ha_status(),
        }
    }

    fn ha_status(&self) -> Option<crate::ha::HaStatus> {
        self.handle.ha_status()
    }

    async fn ha_takeover(&self) -> Result<crate::ha::TakeoverReport, String> {
        self.handle.ha_takeover().await
    }

    async fn calls_total(&self) -> u64 {
        self.handle
            .engine_stats()
            .await
            .map_or(0, |s| s.engine.calls_total)
    }

    async fn calls(&self) -> Vec<CallInfo> {
        let now = self.handle.now();
        self.handle
            .calls()
            .await
            .into_iter()
            .map(|c| CallInfo {
                id: c.call,
                duration_s: now.saturating_duration_since(c.setup_at).as_secs(),
                media: call_media(&c),
                inbound_trunk: c.inbound_trunk,
                outbound_trunk: c.outbound_trunk,
                calling: c.calling,
                called: c.called,
                answered: c.answered,
            })
            .collect()
    }

    async fn call_counts(&self) -> (u64, u64) {
        self.handle
            .engine_stats()
            .await
            .map_or((0, 0), |s| (s.engine.calls_total, s.active_calls as u64))
    }

    fn node_name(&self) -> String {
        self.handle.config().node.name.clone()
    }

    async fn workers(&self) -> Vec<WorkerSample> {
        let cfg = self.handle.config();
        let cores = cfg.media.cores.as_slice();
        self.handle
            .dataplane()
            .worker_stats()
            .iter()
            .enumerate()
            .map(|(i, w)| WorkerSample {
                worker: i,
                core: cores.get(i).copied(),
                backend: w
                    .backend
                    .map_or_else(String::new, |b| backend_label(b).to_owned()),
                active_pairs: w.active_pairs,
                rx_packets: w.rx_packets,
                tx_packets: w.tx_packets,
                rx_bytes: w.rx_bytes,
                drops: w.drops.iter().sum(),
                cpu_ms: (w.tid != 0).then(|| thread_cpu_ms(w.tid)).flatten(),
            })
            .collect()
    }

    fn failures(&self) -> Vec<Failure> {
        self.handle.recent().failures()
    }

    fn cdr_files(&self) -> Vec<PathBuf> {
        let path = self.handle.config().cdr.path.clone();
        let mut rotated = path.clone().into_os_string();
        rotated.push(".1");
        vec![PathBuf::from(rotated), path]
    }

    fn wall_ms(&self) -> u64 {
        self.handle.wall_ms()
    }

    async fn terminate(&self, id: u64) -> bool {
        self.handle.terminate(id).await
    }

    async fn trunks(&self) -> Vec<TrunkInfo> {
        let cfg = self.handle.config();
        let calls = self.handle.calls().await;
        let counts = trunk_counters(&cfg, &EngineStats::default(), &calls);
        let stats = self.handle.engine_stats().await;
        let mut targets: BTreeMap<String, crate::runtime::trunk_status::TrunkTargetsStatus> = stats
            .as_ref()
            .map(|s| s.trunk_targets.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|t| (t.trunk.clone(), t))
            .collect();
        let held: BTreeMap<String, u64> = stats
            .map(|s| s.trunks_held_off)
            .unwrap_or_default()
            .into_iter()
            .map(|(t, left)| (t, left.as_secs().max(1)))
            .collect();
        let outcomes = self.handle.recent().trunk_outcomes();
        cfg.trunks
            .iter()
            .map(|t| {
                let name = t.name.to_string();
                let tt = targets.remove(&name);
                let mut health = trunk_health(held.get(&name).copied(), outcomes.get(&name));
                if tt
                    .as_ref()
                    .is_some_and(|tt| tt.usable() == 0 && health.state != "held_off")
                {
                    health.state = "down".to_owned();
                }
                TrunkInfo {
                    health: Some(health),
                    targets: tt,
                    active_calls: counts.get(&name).map_or(0, |c| c.active),
                    address: t.address.to_string(),
                    transport: format!("{:?}", t.transport).to_ascii_lowercase(),
                    media: format!("{:?}", t.media).to_ascii_lowercase(),
                    max_calls: t.max_calls,
                    name,
                }
            })
            .collect()
    }

    async fn registrations(&self) -> Vec<super::RegistrationInfo> {
        self.handle
            .engine_stats()
            .await
            .map(|s| s.registrations)
            .unwrap_or_default()
    }

    async fn teams(&self) -> TeamsInfo {
        let cfg = self.handle.config();
        let proxies = match self.handle.engine_stats().await {
            Some(s) => s.teams,
            None => Vec::new(),
        };
        TeamsInfo {
            configured: cfg.teams.is_some(),
            sbc_fqdn: cfg.teams.as_ref().map(|t| t.sbc_fqdn.to_string()),
            selected: proxies.iter().find(|p| p.selected).map(|p| p.proxy.clone()),
            proxies,
        }
    }

    async fn reload(&self) -> Result<u64, Vec<String>> {
        self.handle.reload().await.map_err(|e| {
            e.lines()
                .map(str::to_owned)
                .filter(|l| !l.is_empty())
                .collect()
        })
    }
}

/// CPU time (user + system) of thread `tid` of this process, in ms.
fn thread_cpu_ms(tid: u64) -> Option<u64> {
    let me = procfs::process::Process::myself().ok()?;
    let stat = me
        .task_from_tid(i32::try_from(tid).ok()?)
        .ok()?
        .stat()
        .ok()?;
    let hz = procfs::ticks_per_second().max(1);
    u64::try_from(u128::from(stat.utime + stat.stime) * 1000 / u128::from(hz)).ok()
}
